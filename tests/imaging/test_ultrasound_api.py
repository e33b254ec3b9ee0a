"""The simulator's interface: settings validation, frame geometry, needle visibility, Doppler
on/off, scenario settings, the phantom refinement, the speckle's independence from the grid."""
import math

import numpy as np
import pytest

from simulator.core.probe import ProbePose, ProbeSpec, needle_visibility
from simulator.core.scenario_model import UltrasoundSettings
from simulator.core.tissue import Tissue
from simulator.imaging import ultrasound_phantoms as P
from simulator.imaging.ultrasound import (
    NeedleGeometry,
    ScannerSettings,
    UltrasoundSimulator,
    acoustic_codes,
    refine_small_anatomy,
)
from simulator.imaging.ultrasound_tissue import GAS

LINEAR = ProbeSpec.linear()
DOWN = (0.0, -1.0, 0.0)


@pytest.fixture(scope="module")
def gel_sim():
    return UltrasoundSimulator(P.gel_block(0.4), LINEAR, refine=False)


def test_settings_errors_name_the_field():
    with pytest.raises(ValueError, match="frequency_mhz.*3"):
        ScannerSettings(frequency_mhz=3.0).resolve(LINEAR)
    with pytest.raises(ValueError, match="depth_mm"):
        ScannerSettings(depth_mm=500.0).resolve(LINEAR)
    with pytest.raises(ValueError, match="dynamic_range_db"):
        ScannerSettings(dynamic_range_db=5.0).resolve(LINEAR)
    with pytest.raises(ValueError, match="elevation_planes"):
        ScannerSettings(elevation_planes=4).resolve(LINEAR)
    with pytest.raises(ValueError, match="image_shape"):
        ScannerSettings(image_shape=(4, 512)).resolve(LINEAR)
    with pytest.raises(ValueError, match="'axis'"):
        NeedleGeometry((0, 0, 0), (0, 0, 0))
    s = ScannerSettings().resolve(ProbeSpec.curvilinear())
    assert s.depth_mm == 120.0 and s.frequency_mhz == 3.5 and s.focus_mm == 60.0
    assert 2.0 <= s.doppler_frequency_mhz <= 5.0


def test_from_scenario_settings():
    us = UltrasoundSettings(probe="linear", depth_mm=35, frequency_mhz=12, gain_db=4, focus_mm=15, doppler=True)
    s = ScannerSettings.from_scenario(us).resolve(LINEAR)
    assert (s.depth_mm, s.frequency_mhz, s.gain_db, s.focus_mm, s.doppler) == (35, 12, 4, 15, True)


def test_frame_geometry_matches_the_probe(gel_sim):
    pose = ProbePose.from_vectors((1.0, 0.0, 2.0), DOWN, (1.0, 0.0, 0.0))
    f = gel_sim.render(pose, ScannerSettings(depth_mm=40.0, image_shape=(300, 256)))
    assert f.bmode_db.shape == f.display.shape == (300, 256) and f.display.dtype == np.uint8
    assert f.bmode_db.dtype == np.float32 and f.doppler_rgba is None
    # The artery centre (x = -8, y = -20) is dark, at the pixel world_to_pixel gives.
    u, v, e = f.world_to_pixel([[-8.0, -20.0, 2.0]])[0]
    assert abs(e) < 1e-9
    assert f.display[int(v), int(u)] < 20
    back = f.pixel_to_world([[u, v]])[0]
    assert np.allclose(back, [-8.0, -20.0, 2.0])
    h = f.image_to_world @ np.array([u, v, 0.0, 1.0])
    assert np.allclose(h[:3], back)
    assert f.tgc_db.shape == (f.grid.n_samples,)
    assert set(f.timings_ms) >= {"lines_ms", "psf_ms", "scan_convert_ms", "total_ms"}


def test_frame_reports_needle_visibility(gel_sim):
    pose = ProbePose.from_vectors((0, 0, 0), DOWN, (1, 0, 0))
    needle = NeedleGeometry.from_points((-35.0, 0.0, 0.3), (2.0, -18.0, 0.3))
    f = gel_sim.render(pose, ScannerSettings(depth_mm=40.0), needle)
    want = needle_visibility(needle.tip_mm, needle.axis, pose, LINEAR, depth_mm=40.0, frequency_mhz=10.0,
                             shaft_length_mm=needle.length_mm)
    assert f.needle_visibility == want and f.tip_visible is True
    off = NeedleGeometry.from_points((-35.0, 0.0, 4.0), (2.0, -18.0, 4.0))
    g = gel_sim.render(pose, ScannerSettings(depth_mm=40.0), off)
    assert g.tip_visible is False and g.needle_visibility.tip_distance_to_plane_mm == pytest.approx(4.0)
    # Out of the slice the needle leaves no echo: the image equals the one without a needle.
    none = gel_sim.render(pose, ScannerSettings(depth_mm=40.0))
    assert np.array_equal(g.bmode_db, none.bmode_db)


def test_gain_and_tgc_shift_the_float_image(gel_sim):
    pose = ProbePose.from_vectors((0, 0, 0), DOWN, (1, 0, 0))
    a = gel_sim.render(pose, ScannerSettings(depth_mm=40.0, tgc_alpha_db_cm_mhz=0.5))
    b = gel_sim.render(pose, ScannerSettings(depth_mm=40.0, tgc_alpha_db_cm_mhz=0.5, gain_db=6.0, tgc_db=(0.0, 10.0)))
    m = a.fov_mask()
    depth = b.geometry.pixel_to_probe(np.c_[np.zeros(a.bmode_db.shape[0]), np.arange(a.bmode_db.shape[0])])[:, 1]
    want = 6.0 + 10.0 * np.clip(depth / 40.0, 0, 1)
    diff = (b.bmode_db - a.bmode_db)[m]
    rows = np.nonzero(m)[0]
    assert np.allclose(diff, want[rows], atol=0.3)
    assert b.display[m].mean() > a.display[m].mean()


def test_gut_gas_and_calcification_from_hu():
    tissue = np.full((4, 4, 4), int(Tissue.BOWEL), np.uint8)
    tissue[0] = int(Tissue.SKIN)
    hu = np.full((4, 4, 4), 30, np.int16)
    hu[1, 1, 1] = -800  # gas in the bowel
    hu[0, 1, 1] = -800  # skin at the body outline: partly air in CT, must stay skin
    hu[2, 2, 2] = 700  # calcification
    c = acoustic_codes(tissue, hu)
    assert c[1, 1, 1] == GAS and c[0, 1, 1] == int(Tissue.SKIN) and c[2, 2, 2] != int(Tissue.BOWEL)
    assert c[3, 3, 3] == int(Tissue.BOWEL)


def test_small_phantoms_are_refined_to_round_boundaries():
    a = P.block((-12, -12, -4), (12, 12, 4), 0.5, Tissue.GEL)
    P.add_cylinder(a, (0, 0, -4), (0, 0, 4), 4.0, Tissue.ARTERY, "vessel")
    r = refine_small_anatomy(a)
    assert r is not a and np.allclose(r.spacing_mm, 0.25)
    assert r.structures is a.structures
    # World positions are preserved: voxel centres of the finer grid sit inside the old voxels.
    assert np.allclose(r.origin_mm, a.origin_mm - 0.125)

    def radius_spread(anat):
        th = np.linspace(0, 2 * math.pi, 720, endpoint=False)
        radii = []
        for t in th:
            rr = np.linspace(2.0, 6.0, 801)
            pts = np.c_[rr * np.cos(t), rr * np.sin(t), np.zeros_like(rr)]
            inside = anat.tissue_at(pts) == int(Tissue.ARTERY)
            radii.append(rr[np.argmin(inside)])
        return np.ptp(radii)

    # (nearest-voxel sampling: +-half a voxel of quantisation remains in both)
    assert radius_spread(r) < 0.7 * radius_spread(a) and radius_spread(r) <= 0.3
    assert np.count_nonzero(r.labels == 1) == pytest.approx(8 * np.count_nonzero(a.labels == 1), rel=0.05)
    # A CT-like anisotropic grid is left as it is.
    ct = P.block((-10, -10, -10), (10, 10, 10), 1.0, Tissue.MUSCLE)
    ct.spacing_mm = np.array([0.7, 0.7, 2.5])
    assert refine_small_anatomy(ct) is ct


def test_speckle_level_does_not_depend_on_the_grid():
    """The calibrated speckle keeps a tissue's mean echo level whatever the beam grid."""
    sim = UltrasoundSimulator(P.block((-30, -45, -30), (30, 0, 30), 0.5, Tissue.GEL), LINEAR, refine=False)
    pose = ProbePose.from_vectors((0, 0, 0), DOWN, (1, 0, 0))
    levels = []
    for lines, samples in ((256, 512), (128, 300), (400, 700)):
        f = sim.render(pose, ScannerSettings(depth_mm=40.0, beam_lines=lines, beam_samples=samples, noise_db=-300,
                                             tgc_alpha_db_cm_mhz=0.5))
        m = f.fov_mask()
        levels.append(10 * np.log10(np.mean(10 ** (f.bmode_db[m][::7] / 10))))
    assert np.ptp(levels) < 1.0, levels


def test_flow_direction_from_the_heart():
    from simulator.imaging.ultrasound_flow import FlowFieldCache

    a = P.block((-30, -30, -60), (30, 30, 60), 1.0, Tissue.SOFT_TISSUE)
    P.add_box(a, (-10, -10, 20), (10, 10, 40), Tissue.HEART, "heart")
    P.add_cylinder(a, (0, 0, 20), (0, 0, -55), 3.0, Tissue.ARTERY, "aorta")  # leaves the heart downwards
    P.add_cylinder(a, (-20, 0, -50), (-20, 0, 50), 3.0, Tissue.VEIN, "vein")  # passes by, not touching
    P.add_cylinder(a, (5, 0, 30), (25, 0, 30), 2.0, Tissue.ARTERY, "branch")  # starts at the heart, goes +x
    cache = FlowFieldCache(a, {"aorta": 0.5})
    ids = {s.name: s.id for s in a.structures.values()}
    cache.ensure(ids.values())
    mean = {}
    for name in ("aorta", "vein", "branch"):
        lo, f = cache._fields[ids[name]]
        v = f[np.linalg.norm(f, axis=-1) > 0]
        mean[name] = v.mean(axis=0)
        speed = np.linalg.norm(v, axis=1)
        assert speed.max() <= (0.5 if name == "aorta" else 0.6) + 1e-6
    assert mean["aorta"][2] < -0.2  # away from the heart
    assert mean["vein"][2] > 0.05  # towards the heart's end (superior)
    assert mean["branch"][0] > 0.15  # away from the heart, along the branch
    # Parabolic profile: fastest on the axis.
    lo, f = cache._fields[ids["aorta"]]
    s = np.linalg.norm(f, axis=-1)
    k = int(round((-20 - a.origin_mm[2]) / a.spacing_mm[2])) - lo[2]
    sl = s[:, :, k]
    i, j = np.unravel_index(np.argmax(sl), sl.shape)
    centre = (np.array([i, j]) + lo[:2]) * a.spacing_mm[:2] + a.origin_mm[:2]
    assert np.linalg.norm(centre) < 1.5


def test_scenario_nerve_painted_as_honeycomb():
    anat = P.layered_block(0.25)  # fat, muscle, bone plate; no nerve in the volume
    sim = UltrasoundSimulator(anat, LINEAR)
    pose = ProbePose.from_vectors((0, 0, 0), DOWN, (1, 0, 0))  # transverse: the nerve (along z) in section
    st = ScannerSettings(depth_mm=30.0, frequency_mhz=12.0)
    before = sim.render(pose, st)
    lid = sim.add_nerve([[4.0, -18.0, -30.0], [4.0, -18.0, 30.0]], 2.5, "median")
    after = sim.render(pose, st)
    assert lid == len(sim.label_axes) - 1 and anat.tissue.max() < int(Tissue.NERVE)  # anatomy untouched
    u, v, _ = after.world_to_pixel([[4.0, -18.0, 0.0]])[0]
    r = int(2.0 / after.geometry.spacing_mm)
    patch = after.bmode_db[int(v) - r:int(v) + r, int(u) - r:int(u) + r]
    old = before.bmode_db[int(v) - r:int(v) + r, int(u) - r:int(u) + r]
    codes = after.tissue_beam
    assert (codes == int(Tissue.NERVE)).sum() > 100
    # Brighter epineurium with dark fascicles: a brighter and more contrasted patch than muscle.
    assert patch.mean() > old.mean() + 3.0
    assert np.percentile(patch, 90) - np.percentile(patch, 10) > np.percentile(old, 90) - np.percentile(old, 10)
    with pytest.raises(ValueError, match="points_mm"):
        sim.add_nerve([[0, 0, 0]], 1.0)


@pytest.mark.parametrize("old,new,field", [
    ("    frequency_mhz: 10\n", "    frequency_mhz: 3.5\n", "imaging.ultrasound.frequency_mhz"),
    ("    depth_mm: 40\n", "    depth_mm: 120\n", "imaging.ultrasound.depth_mm"),
])
def test_scenario_settings_outside_the_probe_are_refused_with_file_line_field(tmp_path, old, new, field):
    from pathlib import Path

    from simulator.core.scenario import ScenarioError, load_scenario

    text = (Path(__file__).parents[2] / "scenarios" / "intercostal_ultrasound.yaml").read_text()
    assert old in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(old, new))
    with pytest.raises(ScenarioError) as info:
        load_scenario(bad)
    (err,) = [e for e in info.value.errors if e.field == field]
    assert err.line == text.replace(old, new).splitlines().index(new.rstrip("\n")) + 1
    assert f"{bad}:{err.line}: {field}: " in str(info.value) and "linear probe" in err.message


def test_settings_outside_the_probe_are_clamped_with_a_message():
    spec = ProbeSpec.linear()
    s, notes = ScannerSettings(depth_mm=150.0, frequency_mhz=3.5, gain_db=45.0, focus_mm=140.0).clamped(spec)
    assert (s.depth_mm, s.frequency_mhz, s.gain_db, s.focus_mm) == (spec.max_depth_mm, 6.0, 30.0, None)
    assert len(notes) == 4 and any("3.5 MHz" in n and "6-13 MHz" in n for n in notes)
    s.resolve(spec)  # the clamped settings are accepted
    ok, none = ScannerSettings(depth_mm=40.0, frequency_mhz=10.0).clamped(spec)
    assert none == [] and ok.depth_mm == 40.0
