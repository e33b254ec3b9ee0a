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
