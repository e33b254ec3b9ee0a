"""Simulated fluoroscopy against known answers: analytic phantoms, geometry, needle, contrast,
noise and display. No display needed; volumes are small so each test takes a second or less
(the numba kernels are compiled once and cached on disk)."""
import math
import struct
import threading
import zlib

import numpy as np
import pytest

from simulator.core.anatomy import Anatomy, Structure
from simulator.core.carm import CArmPose, orbit_poses
from simulator.core.tissue import Tissue
from simulator.imaging.fluoroscopy import (
    BONE_SLOPE_60KEV,
    MU_STEEL_60KEV_PER_MM,
    MU_WATER_60KEV_PER_MM,
    NEEDLE_OUTER_DIAMETER_MM,
    AttenuationVolume,
    ContrastBlob,
    ContrastGrid,
    ContrastScene,
    DisplaySettings,
    FluoroscopyRenderer,
    NeedleModel,
    add_contrast,
    add_needles,
    encode_png,
    hu_to_mu,
    iodine_mu_per_mm,
    merge_boxes,
    tissue_to_mu,
    vascular_washout_fraction,
)
from simulator.imaging.fluoroscopy_phantom import ellipsoid_chords, ellipsoid_mu_volume, sphere_markers_volume

ISO = np.array([5.0, -20.0, 30.0])


def _grid(shape, spacing, center=ISO):
    spacing = np.asarray(spacing, float)
    origin = np.asarray(center) - (np.asarray(shape) - 1) / 2 * spacing
    return origin


@pytest.fixture(scope="module")
def ellipsoid():
    shape, spacing = (150, 130, 110), (1.0, 1.0, 1.0)
    origin = _grid(shape, spacing)
    axes = (60.0, 48.0, 40.0)
    mu = 0.02
    vol = ellipsoid_mu_volume(shape, spacing, origin, ISO, axes, mu)
    return AttenuationVolume.from_xyz(vol, origin, spacing), axes, mu


def _relative_errors(p, pose, axes, mu, n):
    o, d = pose.pixel_rays(n)
    chord = ellipsoid_chords(o.reshape(-1, 3), d.reshape(-1, 3), ISO, axes).reshape(n, n)
    inside = chord > 0.2 * chord.max()
    return np.abs(p[inside] - mu * chord[inside]) / (mu * chord[inside])


# ---- physics tables ------------------------------------------------------------------------------
def test_attenuation_from_ct_numbers_and_tissues():
    hu = np.array([-1000, -950, -500, 0, 1000, 1588], dtype=np.int16)
    mu = hu_to_mu(hu)
    assert mu[0] == 0 and mu[1] == 0  # air
    assert mu[2] == pytest.approx(0.5 * MU_WATER_60KEV_PER_MM)
    assert mu[3] == pytest.approx(MU_WATER_60KEV_PER_MM)
    assert mu[4] == pytest.approx(MU_WATER_60KEV_PER_MM * (1 + BONE_SLOPE_60KEV))
    assert mu[5] == pytest.approx(0.0604, rel=1e-3)  # cortical bone at 60 keV, NIST
    assert hu_to_mu(hu, bone_slope=1.0)[4] == pytest.approx(2 * MU_WATER_60KEV_PER_MM)
    t = tissue_to_mu(np.array([Tissue.AIR, Tissue.CORTICAL_BONE, Tissue.FAT, Tissue.LUNG], dtype=np.uint8))
    assert np.allclose(t, [0.0, 0.0604, 0.0187, 0.0053], rtol=1e-6)
    # iodinated contrast 300 mgI/ml: iodine 2.27 /cm on top of water's 0.206 (table: 2.48 /cm)
    assert 10 * iodine_mu_per_mm(300.0) + 0.206 == pytest.approx(2.48, rel=0.01)


# ---- volume projection -----------------------------------------------------------------------------
@pytest.mark.parametrize("lao,cranial", [(0, 0), (30, 15), (90, 0), (-60, -25), (45, 40)])
def test_uniform_ellipsoid_line_integrals_match_the_analytic_chords(ellipsoid, lao, cranial):
    vol, axes, mu = ellipsoid
    pose = CArmPose(lao_deg=lao, cranial_deg=cranial, isocenter_mm=tuple(ISO), detector_pixels=128)
    rel = _relative_errors(vol.project_fast(pose), pose, axes, mu, 128)
    assert np.median(rel) <= 0.01
    assert np.percentile(rel, 90) <= 0.03


def test_joseph_reference_and_fast_projector_agree(ellipsoid):
    vol, axes, mu = ellipsoid
    pose = CArmPose(lao_deg=20, cranial_deg=-10, isocenter_mm=tuple(ISO), detector_pixels=96)
    a = vol.project_fast(pose)
    b = vol.project(pose)
    assert np.median(_relative_errors(b, pose, axes, mu, 96)) <= 0.01
    inside = b > 0.2 * b.max()
    assert np.median(np.abs(a[inside] - b[inside]) / b[inside]) < 0.003
    assert np.array_equal(vol.project_fast(pose, parallel=True), a)


def test_anisotropic_ct_like_voxels_keep_the_ellipsoid_accurate():
    shape, spacing = (200, 180, 44), (0.7, 0.7, 2.5)
    origin = _grid(shape, spacing)
    axes = (55.0, 45.0, 40.0)
    vol = AttenuationVolume.from_xyz(ellipsoid_mu_volume(shape, spacing, origin, ISO, axes, 0.02), origin, spacing)
    for lao, cra in ((0, 0), (25, -20)):
        pose = CArmPose(lao_deg=lao, cranial_deg=cra, isocenter_mm=tuple(ISO), detector_pixels=128)
        assert np.median(_relative_errors(vol.project_fast(pose), pose, axes, 0.02, 128)) <= 0.01


@pytest.fixture(scope="module")
def markers():
    shape, spacing = (121, 121, 121), (1.0, 1.0, 1.0)
    origin = _grid(shape, spacing)
    centers = ISO + np.array([[30.0, -25.0, 20.0], [-35.0, 20.0, -30.0], [0.0, 40.0, 35.0], [-20.0, -40.0, -10.0]])
    vol = sphere_markers_volume(shape, spacing, origin, centers, 2.5, 0.08)
    return AttenuationVolume.from_xyz(vol, origin, spacing), centers


def test_points_land_on_the_predicted_pixel_at_every_angle(markers):
    vol, centers = markers
    for pose in orbit_poses((-90, -60, -30, 0, 20, 45, 75, 90), (-30, 0, 25), isocenter_mm=tuple(ISO),
                            detector_pixels=256):
        p = vol.project_fast(pose)
        us, vs = pose.world_to_pixel(centers)
        checked = 0
        for i, (u, v) in enumerate(zip(us, vs)):
            others = [math.hypot(u - us[j], v - vs[j]) for j in range(len(us)) if j != i]
            if min(others) < 14:  # two shadows overlap at this angle: the centroid would mix them
                continue
            checked += 1
            r0, c0 = int(round(v)), int(round(u))
            win = p[r0 - 10:r0 + 11, c0 - 10:c0 + 11]
            rr, cc = np.mgrid[r0 - 10:r0 + 11, c0 - 10:c0 + 11]
            w = np.where(win > 0.2 * win.max(), win, 0.0)
            cu, cv = (w * cc).sum() / w.sum(), (w * rr).sum() / w.sum()
            assert math.hypot(cu - u, cv - v) < 1.0, (pose.lao_deg, pose.cranial_deg)
        assert checked >= 2


def test_shadow_size_follows_source_to_object_distance(markers):
    vol, centers = markers
    base = CArmPose(isocenter_mm=tuple(ISO), detector_pixels=256)
    sizes = []
    for shift in (0.0, 60.0):  # prone AP: +y moves the patient towards the tube (below)
        pose = base.replace(table_offset_mm=(0.0, shift, 0.0))
        p = vol.project_fast(pose)
        u, v = pose.world_to_pixel(centers[0])
        r0, c0 = int(round(v[0])), int(round(u[0]))
        row = p[r0, c0 - 15:c0 + 16]
        # area of the marker's shadow: sum of line integrals = mu * volume * mag^2 / pitch^2
        total = p[r0 - 15:r0 + 16, c0 - 15:c0 + 16].sum()
        sizes.append((total, float(pose.magnification_at(centers[0])[0]), row))
    ratio = sizes[1][0] / sizes[0][0]
    assert ratio == pytest.approx((sizes[1][1] / sizes[0][1]) ** 2, rel=0.02)
    volume = 4 / 3 * math.pi * 2.5**3
    pitch = base.pixel_pitch_mm
    assert sizes[0][0] == pytest.approx(0.08 * volume * sizes[0][1] ** 2 / pitch**2, rel=0.03)


# ---- needle ----------------------------------------------------------------------------------------
def _needle_layer(pose, needles, ss=4):
    out = np.zeros((pose.detector_pixels, pose.detector_pixels), np.float32)
    add_needles(out, pose, needles, supersample=ss)
    return out


@pytest.mark.parametrize("gauge", [22, 20])
def test_needle_along_the_beam_is_a_dot_of_its_width(gauge):
    pose = CArmPose(lao_deg=25, cranial_deg=-10, isocenter_mm=tuple(ISO), detector_pixels=1024, magnification=2)
    axis = pose.beam_direction
    tip = ISO + 40.0 * axis  # on the central ray, pointing towards the detector
    nd = NeedleModel.from_gauge(gauge, tip, direction=axis, length_mm=90.0, hub_length_mm=0.0)
    p = _needle_layer(pose, [nd])
    c = (pose.detector_pixels - 1) / 2
    # at half the peak (half the 100 mm of steel on the beam) the dot is the shaft's width magnified
    # at the middle of the needle
    start, axis_, length = nd.cylinders()[0][:3]
    mid = start + 0.5 * length * axis_
    expected_px = NEEDLE_OUTER_DIAMETER_MM[gauge] * float(pose.magnification_at(mid)[0]) / pose.pixel_pitch_mm
    ys, xs = np.nonzero(p > 0.5 * p.max())
    assert abs(xs.mean() - c) < 0.5 and abs(ys.mean() - c) < 0.5
    width_u = xs.max() - xs.min() + 1
    width_v = ys.max() - ys.min() + 1
    assert abs(width_u - expected_px) <= 1.0 and abs(width_v - expected_px) <= 1.0
    # down the shaft the steel is 100 mm long: black
    assert p.max() == pytest.approx(MU_STEEL_60KEV_PER_MM * 100.0, rel=0.05)


def test_needle_perpendicular_to_the_beam_is_a_line_of_its_projected_length():
    pose = CArmPose(isocenter_mm=tuple(ISO), detector_pixels=1024, magnification=2)
    u_ax = pose.detector_u_axis
    tip = ISO + 30.0 * u_ax
    nd = NeedleModel.from_gauge(22, tip, direction=u_ax, length_mm=60.0, hub_length_mm=0.0, shaft_into_hub_mm=0.0)
    p = _needle_layer(pose, [nd])
    c = int(round((pose.detector_pixels - 1) / 2))
    mag = 1000.0 / 600.0
    # along the line: the central chord is the diameter; the line covers the projected length
    chord_max = MU_STEEL_60KEV_PER_MM * 0.72
    row = p[c]
    length_px = np.count_nonzero(row > 0.5 * row.max())
    assert length_px == pytest.approx(60.0 * mag / pose.pixel_pitch_mm, abs=2)
    col = p[:, c]
    width_px = np.count_nonzero(col > 0.5 * chord_max * 0.6)
    assert width_px == pytest.approx(0.72 * mag / pose.pixel_pitch_mm, abs=1.5)
    # the integral across the line is the cylinder's cross-section (pi r^2 mu), magnified
    across = col.sum() * pose.pixel_pitch_mm / mag
    assert across == pytest.approx(MU_STEEL_60KEV_PER_MM * math.pi * 0.36**2 / 0.72 * 0.72, rel=0.03)


def test_tilted_needle_is_foreshortened_like_its_end_points():
    pose = CArmPose(lao_deg=10, isocenter_mm=tuple(ISO), detector_pixels=512)
    d = pose.detector_u_axis * math.cos(math.radians(50)) + pose.beam_direction * math.sin(math.radians(50))
    tip = ISO + 20 * d
    nd = NeedleModel.from_gauge(21, tip, direction=d, length_mm=80.0, hub_length_mm=0.0, shaft_into_hub_mm=0.0)
    p = _needle_layer(pose, [nd], ss=3)
    u, v = pose.world_to_pixel([nd.hub_mm, nd.tip_mm])
    ys, xs = np.nonzero(p > 0.3 * np.percentile(p[p > 0], 90))
    assert xs.min() == pytest.approx(min(u), abs=2) and xs.max() == pytest.approx(max(u), abs=2)
    shorter = abs(u[1] - u[0]) * pose.pixel_pitch_mm / (80.0 * 1000 / 600)
    assert 0.55 < shorter < 0.75  # about cos(50 deg), with perspective


def test_hub_draws_a_faint_ring_around_the_dot():
    pose = CArmPose(isocenter_mm=tuple(ISO), detector_pixels=512)
    axis = pose.beam_direction
    nd = NeedleModel.from_gauge(22, ISO + 30 * axis, direction=axis, length_mm=60.0)
    p = _needle_layer(pose, [nd])
    c = (pose.detector_pixels - 1) / 2
    r = np.hypot(*np.meshgrid(np.arange(512) - c, np.arange(512) - c))
    ring_px = 2.5 * float(pose.magnification_at(nd.hub_mm)[0]) / pose.pixel_pitch_mm  # between 1.5 and 3.5 mm radius
    ring = p[np.abs(r - ring_px) < 1.0]
    assert 0.0 < ring.mean() < 0.5  # plastic: faint
    assert p[r < 1.0].max() > 40  # the steel down the beam: dense


# ---- contrast --------------------------------------------------------------------------------------
def test_gaussian_blob_line_integral_is_analytic():
    pose = CArmPose(isocenter_mm=tuple(ISO), detector_pixels=255)  # odd: a pixel on the central ray
    blob = ContrastBlob(tuple(ISO), 6.0, 100.0)
    out = np.zeros((255, 255), np.float32)
    add_contrast(out, pose, ContrastScene(blobs=[blob]))
    expected = float(iodine_mu_per_mm(100.0)) * 6.0 * math.sqrt(2 * math.pi)
    assert out.max() == pytest.approx(expected, rel=1e-3)
    # total: peak mu times the blob's volume integral, magnified onto the detector
    total = out.sum() * pose.pixel_pitch_mm**2 / (1000 / 600) ** 2
    assert total == pytest.approx(float(iodine_mu_per_mm(100.0)) * (2 * math.pi) ** 1.5 * 6.0**3, rel=0.02)
    assert ContrastBlob.from_volume(ISO, 2.0, 300.0).state_at(0.0)[2] == pytest.approx(float(iodine_mu_per_mm(300.0)))


def test_contrast_grid_slab_gives_concentration_times_thickness():
    pose = CArmPose(isocenter_mm=tuple(ISO), detector_pixels=128)
    conc = np.zeros((30, 22, 30), np.float32)
    conc[5:25, 1:21, 5:25] = 100.0  # 20 voxels of 1 mm along y (the beam)
    origin = ISO - np.array([14.5, 10.5, 14.5])
    out = np.zeros((128, 128), np.float32)
    add_contrast(out, pose, ContrastScene(grids=[ContrastGrid(conc, tuple(origin), (1.0, 1.0, 1.0))]))
    c = 64
    assert out[c - 2:c + 2, c - 2:c + 2].mean() == pytest.approx(float(iodine_mu_per_mm(100.0)) * 20.0, rel=0.02)


def test_vessel_contrast_washes_out_and_tissue_contrast_stays():
    pose = CArmPose(isocenter_mm=tuple(ISO), detector_pixels=128)
    vessel = ContrastBlob(tuple(ISO + [15, 0, 0]), (3.0, 3.0, 12.0), 150.0, intravascular=True,
                          injected_at_s=10.0, washout_s=2.0, flow_mm_s=(0.0, 0.0, 60.0))
    tissue = ContrastBlob(tuple(ISO - [15, 0, 0]), 5.0, 150.0, injected_at_s=10.0)
    scene = ContrastScene(blobs=[vessel, tissue])

    def peaks(t):
        out = np.zeros((128, 128), np.float32)
        add_contrast(out, pose, scene, time_s=t)
        return out[:, 70:].max(), out[:, :58].max()  # vessel on the screen's right (patient's right, prone)

    v_before, _ = peaks(9.0)
    v_flash, t_flash = peaks(10.3)
    v_end, t_end = peaks(12.0)
    v_late, t_late = peaks(60.0)
    assert v_before == 0.0
    assert v_flash > 0.3
    assert v_end < 0.01 * v_flash and v_late == 0.0  # gone within the wash-out time
    assert t_end == pytest.approx(t_flash) and t_late == pytest.approx(t_flash)  # tissue persists
    assert vascular_washout_fraction(2.0, 2.0) == pytest.approx(0.01, rel=0.1)


def test_contrast_grid_from_a_spread_like_object_and_its_washout():
    class FakeSpread:
        washout = True
        time_s = 3.0

        def subgrid(self):
            v = np.zeros((10, 10, 10), np.float32)
            v[3:7, 3:7, 3:7] = 1.0
            return v, ISO - 4.5, np.array([1.0, 1.0, 1.0])

    g = ContrastGrid.from_spread(FakeSpread(), iodine_mg_per_ml=240.0, smooth_mm=0.0)
    assert g.intravascular and g.injected_at_s == 3.0
    assert g.volume_at(3.5) is not None and g.volume_at(3.0 + 5.0) is None
    assert float(g.iodine_mg_per_ml.max()) == 240.0
    pose = CArmPose(isocenter_mm=tuple(ISO), detector_pixels=128)

    def peak(grid, t):
        out = np.zeros((128, 128), np.float32)
        add_contrast(out, pose, ContrastScene(grids=[grid]), time_s=t)
        return float(out.max())

    full = float(iodine_mu_per_mm(240.0)) * 4.0  # 4 voxels of 1 mm along the beam
    assert peak(g, 3.0 + 0.15) == pytest.approx(full, rel=0.03)  # the flash
    assert peak(g, 3.0 + 1.0) == pytest.approx(full * g.scale_at(4.0), rel=0.03)
    assert peak(g, 3.0 + 2.0) < 0.011 * full  # washed out
    # smoothing keeps the amount of iodine and softens the edges
    soft = ContrastGrid.from_spread(FakeSpread(), iodine_mg_per_ml=240.0, smooth_mm=1.5)
    soft.__dict__["intravascular"] = False  # frozen dataclass: only for this check, view it in tissue
    sharp = ContrastGrid.from_spread(FakeSpread(), iodine_mg_per_ml=240.0, smooth_mm=0.0)
    sharp.__dict__["intravascular"] = False
    a, b = np.zeros((128, 128), np.float32), np.zeros((128, 128), np.float32)
    add_contrast(a, pose, ContrastScene(grids=[sharp]))
    add_contrast(b, pose, ContrastScene(grids=[soft]))
    # the sum over pixels is the iodine's attenuation times the volume, magnified (64 voxels of 1 mm3)
    expected = 64.0 * float(iodine_mu_per_mm(240.0)) * (1000.0 / 600.0) ** 2 / pose.pixel_pitch_mm**2
    assert b.sum() == pytest.approx(expected, rel=0.01)
    assert a.sum() == pytest.approx(expected, rel=0.06)  # a sharp 4 mm cube is undersampled by 2.3 mm pixels
    assert b.max() < a.max()


# ---- renderer, detector and display -------------------------------------------------------------------
@pytest.fixture(scope="module")
def slab_renderer():
    """A water slab 200 mm thick with a bone block in its middle, on a coarse grid."""
    shape, spacing = (64, 100, 64), (4.0, 2.0, 4.0)
    origin = _grid(shape, spacing)
    mu = np.full(shape, MU_WATER_60KEV_PER_MM, np.float32)
    mu[26:38, 40:60, 26:38] = 0.0604
    return FluoroscopyRenderer(volume=AttenuationVolume.from_xyz(mu, origin, spacing), seed=3)


def test_dense_is_dark_invert_flips_and_the_field_and_shutters_show(slab_renderer):
    pose = CArmPose(isocenter_mm=tuple(ISO), detector_pixels=256, field_shape="circle",
                    collimation=(0.3, 0.0, 0.0, 0.0))
    plain = DisplaySettings(edge_enhance=0, detail_enhance=0, range_compression=0, band_compression=0, window=(3.5, 5.5))
    f = slab_renderer.render(pose, quality="full", quanta_per_pixel=0, display=plain)
    img = f.image.astype(float)
    c = 128
    bone = img[c - 5:c + 5, c - 5:c + 5].mean()
    water = img[c - 5:c + 5, c + 60:c + 70].mean()
    assert bone < water - 40  # dense is dark (fluoroscopy display)
    assert img[2, 2] == 0  # outside the circular field: black
    assert 15 < img[c, 20] < 45  # behind the left shutter: dark grey
    inv = slab_renderer.render(pose, quality="full", quanta_per_pixel=0,
                               display=DisplaySettings(edge_enhance=0, detail_enhance=0, range_compression=0, band_compression=0,
                                                       window=(3.5, 5.5), invert=True)).image.astype(float)
    assert inv[c - 5:c + 5, c - 5:c + 5].mean() > inv[c - 5:c + 5, c + 60:c + 70].mean() + 40


def test_quantum_noise_variance_falls_with_dose(slab_renderer):
    pose = CArmPose(isocenter_mm=tuple(ISO), detector_pixels=256, field_shape="square")
    disp = DisplaySettings(edge_enhance=0, detail_enhance=0, range_compression=0, band_compression=0, gamma=1.0, window=(3.0, 5.0),
                           frames_averaged=1.0)

    def noise_var(img):  # from neighbour differences, so that slow shading does not count
        region = img[20:90, 180:240].astype(float)  # water only
        return np.diff(region, axis=1).var() / 2

    var = {}
    for q in (50.0, 800.0):
        f = slab_renderer.render(pose, quality="full", quanta_per_pixel=q, display=disp, rng=np.random.default_rng(1))
        var[q] = noise_var(f.image)
    assert var[50.0] / var[800.0] == pytest.approx(16.0, rel=0.3)
    quiet = slab_renderer.render(pose, quality="full", quanta_per_pixel=0, display=disp).image
    assert noise_var(quiet) < 0.02 * var[50.0]


def test_needle_is_darker_than_its_surroundings_in_the_frame(slab_renderer):
    pose = CArmPose(isocenter_mm=tuple(ISO), detector_pixels=256)
    nd = NeedleModel.from_gauge(22, ISO + [40.0, 0, 70.0], direction=pose.detector_u_axis, length_mm=60)
    f = slab_renderer.render(pose, [nd], quality="full", quanta_per_pixel=0)
    u, v = pose.world_to_pixel(ISO + [25.0, 0, 70.0])
    r, c = int(round(v[0])), int(round(u[0]))
    background = min(f.image[r - 10, c], f.image[r + 10, c])
    assert f.image[r - 1:r + 2, c].min() < background - 40


def test_pose_cache_preview_refine_and_collimation(slab_renderer):
    pose = CArmPose(lao_deg=12, isocenter_mm=tuple(ISO), detector_pixels=128)
    slab_renderer.clear_cache()
    assert slab_renderer.render(pose, quanta_per_pixel=0).quality == "preview"
    assert not slab_renderer.has_full(pose)
    assert slab_renderer.refine(pose) >= 0
    assert slab_renderer.has_full(pose)
    assert slab_renderer.render(pose, quanta_per_pixel=0).quality == "full"
    # shutters do not invalidate the cached anatomy image
    assert slab_renderer.has_full(pose.replace(collimation=(0.2, 0.2, 0.1, 0.1)))
    full = slab_renderer.anatomy_line_integral(pose, "full")
    prev = slab_renderer.anatomy_line_integral(pose, "preview")
    up = np.kron(prev, np.ones((2, 2)))
    assert np.median(np.abs(up - full)) < 0.05
    # the AEC reads the centre of the field: water and the bone block (worth 1.6 of line integral)
    water, _bone = slab_renderer.anatomy_paths(pose, "full")
    assert slab_renderer.water_thickness_mm(pose) == pytest.approx(np.median(water[45:83, 45:83]), rel=0.02)
    assert slab_renderer.water_thickness_mm(pose) > 200.0 / math.cos(math.radians(12))


def test_refine_in_a_worker_thread_while_previews_render(slab_renderer):
    slab_renderer.clear_cache()
    poses = [CArmPose(lao_deg=a, isocenter_mm=tuple(ISO), detector_pixels=128) for a in (3, 6, 9)]
    worker = threading.Thread(target=lambda: [slab_renderer.refine(p) for p in poses])
    worker.start()
    for p in poses:
        slab_renderer.render(p, quality="preview", quanta_per_pixel=0)
    worker.join()
    assert all(slab_renderer.has_full(p) for p in poses)


def test_attenuation_volume_from_anatomy_phantom_ct_and_contrast_removal():
    shape = (20, 20, 12)
    hu = np.full(shape, -1000, np.int16)
    tissue = np.zeros(shape, np.uint8)
    labels = np.zeros(shape, np.uint16)
    hu[4:16, 4:16, :] = 40
    tissue[4:16, 4:16, :] = Tissue.MUSCLE
    hu[8:12, 8:12, :] = 350  # an enhanced aorta
    tissue[8:12, 8:12, :] = Tissue.ARTERY
    hu[0:20, 0:2, :] = 200  # a scanner table, marked as air by the builder
    structures = {1: Structure(1, "aorta", Tissue.ARTERY, "vessels")}
    anat = Anatomy("t", hu, tissue, labels, (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), structures,
                   source={"kind": "ct"}, contrast_enhanced=True)
    v = AttenuationVolume.from_anatomy(anat, crop=False, pad_cut_ends_mm=0)
    mu = v.mu_zyx[1:-1, 1:-1, 1:-1].transpose(2, 1, 0)  # back to (i, j, k)
    assert mu[10, 10, 5] == pytest.approx(float(hu_to_mu(np.array([45 + 30]))[0]))  # capped at blood + 30 HU
    assert mu[10, 1, 5] == 0.0  # the table is gone
    assert mu[5, 5, 5] == pytest.approx(float(hu_to_mu(np.array([40]))[0]))
    # the body reaches the first and last slices: the volume is continued by its mirror image
    padded = AttenuationVolume.from_anatomy(anat, pad_cut_ends_mm=8.0)
    assert padded.info["mirrored_slices"] == [4, 4]
    assert padded.mu_zyx.shape[0] == 12 + 8 + 2
    # a phantom (no CT numbers to trust) takes mu from its tissue classes
    anat.source = {"kind": "phantom"}
    ph = AttenuationVolume.from_anatomy(anat, crop=False, pad_cut_ends_mm=0)
    assert ph.info["source"] == "tissue"
    assert ph.mu_zyx[5, 6, 6] == pytest.approx(0.0215)
    with pytest.raises(ValueError, match="source"):
        AttenuationVolume.from_anatomy(anat, source="xray")


def test_merge_boxes_and_png_encoding():
    assert merge_boxes([(0, 10, 0, 10), (5, 20, 5, 20), (50, 60, 50, 60)], 0, 100) == [(0, 20, 0, 20), (50, 60, 50, 60)]
    img = (np.arange(12 * 7) % 256).astype(np.uint8).reshape(7, 12)
    data = encode_png(img)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    assert (w, h) == (12, 7)
    idat = data[data.index(b"IDAT") + 4:data.index(b"IEND") - 8]
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(7, 13)
    assert np.array_equal(raw[:, 1:], img)
    with pytest.raises(ValueError, match="shape"):
        encode_png(np.zeros((2, 2, 2), np.uint8))


def test_bad_inputs_name_the_field():
    with pytest.raises(ValueError, match="gauge"):
        NeedleModel.from_gauge(17, ISO, direction=(0, 0, 1))
    with pytest.raises(ValueError, match="sigma_mm"):
        ContrastBlob(tuple(ISO), 0.0, 100.0).state_at(0.0)
    with pytest.raises(ValueError, match="quality"):
        FluoroscopyRenderer(volume=AttenuationVolume.from_xyz(np.zeros((4, 4, 4)), (0, 0, 0), (1, 1, 1))).render(
            CArmPose(detector_pixels=32), quality="ultra")


def test_needle_model_from_the_needle_module_state():
    from simulator.core.needle import NeedleSpec, NeedleState

    m = np.eye(4)
    m[:3, 2] = [0.0, 0.6, 0.8]
    m[:3, 0] = [1.0, 0.0, 0.0]
    m[:3, 1] = np.cross(m[:3, 2], m[:3, 0])
    m[:3, 3] = ISO
    state = NeedleState(time_s=0.0, needle_tip_to_world=m, spec=NeedleSpec(gauge=21, length_mm=90.0))
    a = NeedleModel.from_state(state)
    b = NeedleModel.from_tip_to_world(m, gauge=21, length_mm=90.0)
    assert a == b
    assert a.outer_diameter_mm == pytest.approx(0.82)
    assert np.allclose(a.axis, [0.0, 0.6, 0.8]) and a.shaft_length_mm == pytest.approx(90.0)


def test_few_quanta_behind_steel_stay_dark_without_scatter(slab_renderer):
    pose = CArmPose(isocenter_mm=tuple(ISO), detector_pixels=128)
    axis = pose.beam_direction
    nd = NeedleModel.from_gauge(18, ISO + 30 * axis, direction=axis, length_mm=60, hub_length_mm=0.0)
    disp = DisplaySettings(scatter_fraction=0.0, frames_averaged=1.0)
    for seed in range(3):
        img = slab_renderer.render(pose, [nd], quanta_per_pixel=400.0, display=disp,
                                   rng=np.random.default_rng(seed), quality="full").image
        assert img[63:65, 63:65].max() < 40  # the dot: black, not speckled white
