"""The C-arm in use: shots, pulsed live fluoroscopy, last image hold, saved images, dose."""
import numpy as np
import pytest

from simulator.core.carm import CArmPose, DoseTracker
from simulator.imaging.fluoroscopy import MU_WATER_60KEV_PER_MM, AttenuationVolume, FluoroscopyRenderer, NeedleModel
from simulator.imaging.fluoroscopy_session import FluoroscopySession


@pytest.fixture(scope="module")
def renderer():
    mu = np.full((48, 50, 48), MU_WATER_60KEV_PER_MM, np.float32)  # a 200 mm water slab along y
    return FluoroscopyRenderer(volume=AttenuationVolume.from_xyz(mu, (-94.0, -98.0, -94.0), (4.0, 4.0, 4.0)), seed=0)


def test_shots_live_pulses_hold_and_save(renderer):
    pose = CArmPose(detector_pixels=96)
    s = FluoroscopySession(renderer, pose, DoseTracker(pulse_rate_pps=15))
    nd = NeedleModel.from_gauge(22, (0.0, 20.0, 0.0), direction=(0.0, -1.0, 0.3))
    f = s.shot([nd], time_s=1.0)
    assert f.quality == "full" and s.last_image is f
    assert s.tick(1.5, [nd]) is None  # pedal up: nothing fires, the image is held
    s.pedal_down(2.0)
    frames = [s.tick(2.0 + t, [nd]) for t in np.arange(0.0, 1.0, 0.02)]
    s.pedal_up(3.0)
    fired = [fr for fr in frames if fr is not None]
    assert 14 <= len(fired) <= 16  # about one frame per pulse at 15 pulses/s
    summary = s.dose.summary()
    assert summary["live_runs"] == 1 and summary["single_shots"] == 1 and summary["shots"] == 2
    assert summary["images"] == 3 + 15  # a shot is 0.2 s of pulses
    assert summary["fluoro_time_s"] == pytest.approx(0.2 + 1.0)
    assert s.last_image is fired[-1] and not s.live
    saved = s.save("tip at L1")
    assert saved.frame is fired[-1] and s.saved[0].label == "tip at L1"
    # the exposure's quanta set the image noise; the thickness comes from the renderer
    assert fired[-1].quanta_per_pixel == pytest.approx(s.dose.last_exposure.quanta_per_pixel)
    assert s.dose.last_exposure.water_thickness_mm == pytest.approx(200.0, rel=0.03)


def test_refine_pending_and_moving_the_c_arm(renderer):
    renderer.clear_cache()
    s = FluoroscopySession(renderer, CArmPose(lao_deg=5, detector_pixels=64))
    s.pedal_down(0.0)
    assert s.tick(0.0).quality == "preview"  # not refined yet: the coarse image
    assert s.refine_pending() is True and s.refine_pending() is False
    assert s.tick(0.1).quality == "full"
    s.set_pose(s.pose.replace(lao_deg=10))
    assert s.tick(0.2).quality == "preview"
    s.pedal_up(0.3)


def test_live_recursive_filter_lowers_noise_and_lags_a_moving_needle(renderer):
    pose = CArmPose(detector_pixels=96)
    s = FluoroscopySession(renderer, pose, DoseTracker(pulse_rate_pps=15), preset="image_intensifier")
    assert s.pose.field_shape == "circle"  # the intensifier's round field
    s.refine_pending()
    s.pedal_down(0.0)
    raw = [renderer.render(s.pose, quality="full", quanta_per_pixel=s.dose.exposure(s.pose, 0.0).quanta_per_pixel,
                           display=s.display.__class__(**{**s.display.__dict__, "frames_averaged": 1.0}),
                           beam=s.beam(s.dose.exposure(s.pose, 0.0).kvp), rng=np.random.default_rng(i)).image
           for i in range(2)]
    frames = [s.tick(t) for t in np.arange(0.0, 1.0, 1 / 15)]
    frames = [f.image.astype(float) for f in frames if f is not None]
    c = slice(30, 66)
    noise_raw = np.std(raw[0][c, c].astype(float) - raw[1][c, c].astype(float))
    noise_live = np.std(frames[-1][c, c] - frames[-2][c, c])
    assert noise_live < 0.8 * noise_raw
    # a needle that jumps shows faded at its new place in the first filtered frame (lag)
    nd = NeedleModel.from_gauge(22, (0.0, 20.0, 0.0), direction=(0.0, -1.0, 0.3))
    before = s.last_image.image.astype(float)
    after = s.tick(1.2, [nd]).image.astype(float)
    settled = [s.tick(1.2 + k / 15, [nd]) for k in range(1, 12)][-1].image.astype(float)
    col = int(np.argmin(settled[48, 20:76])) + 20
    drop_first = before[48, col] - after[48, col]
    drop_settled = before[48, col] - settled[48, col]
    assert 0 < drop_first < 0.6 * drop_settled
    s.pedal_up(2.0)


def test_the_aec_raises_kvp_for_a_thicker_patient():
    thin = FluoroscopyRenderer(volume=AttenuationVolume.from_xyz(
        np.full((48, 30, 48), MU_WATER_60KEV_PER_MM, np.float32), (-94.0, -58.0, -94.0), (4.0, 4.0, 4.0)), seed=0)
    thick = FluoroscopyRenderer(volume=AttenuationVolume.from_xyz(
        np.full((48, 90, 48), MU_WATER_60KEV_PER_MM, np.float32), (-94.0, -178.0, -94.0), (4.0, 4.0, 4.0)), seed=0)
    pose = CArmPose(detector_pixels=64)
    e_thin = FluoroscopySession(thin, pose, DoseTracker(kvp=70.0)).dose.exposure(pose, 0.0)
    e_thick = FluoroscopySession(thick, pose, DoseTracker(kvp=70.0)).dose.exposure(pose, 0.0)
    assert e_thin.kvp == 70.0 and e_thin.ma < 20.0  # thin: mA alone
    assert e_thick.kvp > 80.0 and e_thick.ma == pytest.approx(20.0)  # thick: mA at its limit, then kVp
    assert e_thick.air_kerma_irp_mgy > e_thin.air_kerma_irp_mgy and e_thick.dap_gycm2 > e_thin.dap_gycm2
