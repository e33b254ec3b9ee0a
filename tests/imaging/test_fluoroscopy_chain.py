"""The image chain's supporting steps, by measured properties: a wide blur without bands, the CT's
own noise smoothed while its edges stay, metal neither mirrored past a scan's end nor in the
window, the point spread of a refined CT grid, solid (preview) bones."""
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import ndimage as ndi

from simulator.core.carm import CArmPose
from simulator.imaging import fluoroscopy_volume as FV
from simulator.imaging.fluoroscopy import AttenuationVolume, FluoroscopyRenderer, blur_fast
from simulator.imaging.xray_bones import CT_PSF_SIGMA_MM, BoneGroup, BoneModel, ct_psf_sigma_mm


def test_a_wide_blur_is_smooth_and_right():
    """The scatter blur (sigma about 50 px) runs on a block-averaged copy: it matches the exact
    Gaussian and its slope has no steep kinks at the blocks' seams (a 32-px block gave kinks 14x
    the exact curvature, which the display's detail enhancement turned into bands)."""
    img = np.zeros((512, 512), np.float32)
    img[:, 300:] = 1.0
    got = blur_fast(img, 51.0)[256]
    want = ndi.gaussian_filter1d(img[256].astype(np.float64), 51.0, mode="nearest")
    assert np.abs(got[60:-60] - want[60:-60]).max() < 0.01
    curvature = np.abs(np.diff(got[60:-60], 2))
    exact = np.abs(np.diff(want[60:-60], 2)).max()
    assert curvature.max() < 5.0 * exact


def test_ct_noise_is_smoothed_and_edges_kept():
    rng = np.random.default_rng(0)
    hu = np.zeros((64, 64, 6))
    hu[32:] = 1000.0
    noisy = np.rint(hu + rng.normal(0.0, 30.0, hu.shape)).astype(np.int16)
    out = FV.denoise_ct_hu(noisy, (0.7, 0.7, 2.5))
    assert out.dtype == noisy.dtype and out.shape == noisy.shape
    inner = (slice(4, 28), slice(4, 60))
    assert out[inner].std() < 0.5 * noisy[inner].std()
    assert abs(out[inner].mean() - noisy[inner].mean()) < 3.0
    # at the step nothing moves by more than the limit: the edge is not smeared
    change = np.abs(out.astype(float) - noisy)
    assert change.max() <= FV.CT_DENOISE_LIMIT_HU + 0.5
    assert np.abs(out[30:34].astype(float).mean(axis=(1, 2)) - hu[30:34].mean(axis=(1, 2))).max() < 110


def test_metal_is_not_mirrored_past_the_scans_end():
    slab = np.full((3, 10, 10), np.float32(FV.MU_WATER_60KEV_PER_MM))
    slab[1, 4:6, 4:6] = 9.0  # a screw
    slab[1, 3, 4] = 0.08  # its partial-volume rim
    slab[0, 0, 0] = 0.05  # bone far from it stays
    FV._unmirror_metal(slab)
    assert slab.max() <= 0.05 + 1e-6
    assert slab[0, 0, 0] == pytest.approx(0.05)


def test_point_spread_of_a_refined_ct_grid():
    native = SimpleNamespace(spacing_mm=np.array([0.7, 0.7, 2.5]), source={})
    assert ct_psf_sigma_mm(native) == CT_PSF_SIGMA_MM
    coarse = SimpleNamespace(spacing_mm=np.array([1.5, 1.5, 1.5]), source={"grid_refined_from_mm": [3.0, 3.0, 3.0]})
    xy, z = ct_psf_sigma_mm(coarse)
    # A 3 mm scan: the scanner's own blur scaled to its voxels (0.45 mm at 0.703 mm in-plane, 0.6 mm
    # at 2.5 mm slices), the refinement's trilinear triangle (sigma = 3 / sqrt(6)) and, along z,
    # the 3 mm slab sampled on 1.5 mm (variance (3^2 - 1.5^2) / 12), in quadrature.
    assert xy == pytest.approx(np.hypot(0.45 / 0.703125 * 3.0, 3.0 / np.sqrt(6.0)), rel=1e-9)  # 2.277
    assert z == pytest.approx(np.sqrt((0.6 / 2.5 * 3.0) ** 2 + 9.0 / 6.0 + (9.0 - 2.25) / 12.0), rel=1e-9)  # 1.607


def _water_block(metal: bool) -> AttenuationVolume:
    mu = np.zeros((160, 160, 60), np.float32)
    mu[30:130, 30:130, :] = FV.MU_WATER_60KEV_PER_MM  # 70 x 70 mm of water, air around it
    mu[60:70, 60:70, :] += 0.04  # a bone-like rod
    if metal:
        mu[95:105, 95:105, 25:35] = FV.MU_STEEL_60KEV_PER_MM  # a steel screw
    return AttenuationVolume.from_xyz(mu, (-56.0, -56.0, -21.0), (0.7, 0.7, 0.7))


def test_window_leaves_metal_and_the_direct_beam_out():
    """A screw in the field does not widen the automatic window over the anatomy."""
    pose = CArmPose(detector_pixels=256, detector_size_mm=200.0)
    windows = {}
    for metal in (False, True):
        r = FluoroscopyRenderer(volume=_water_block(metal), seed=0)
        windows[metal] = r.render(pose, quality="full", quanta_per_pixel=0).window
    w0 = windows[False][1] - windows[False][0]
    w1 = windows[True][1] - windows[True][0]
    assert w1 == pytest.approx(w0, rel=0.25)


def test_solid_bones_give_their_weighted_path():
    """The preview's solid bones (no inner surface) are summed in one pass: a sphere at weight
    0.4 gives 0.4 times its chord, like the shell-and-core path with equal weights."""
    from simulator.core.geometry import icosphere

    mesh = icosphere(subdivisions=4)
    v = mesh.vertices.astype(np.float64) * 15.0
    f = mesh.faces.astype(np.int64)
    solid = BoneModel(v, f, [BoneGroup("ball", 1, (0, len(f)), (len(f), len(f)), (0, len(v)), 1.0, 0.4, 0.0, 0, 0, 0)])
    shell = BoneModel(np.concatenate([v, v * 0.5]), np.concatenate([f, f + len(v)]),
                      [BoneGroup("ball", 1, (0, len(f)), (len(f), 2 * len(f)), (0, 2 * len(v)), 1.0, 0.4, 0.4, 0, 0, 0)])
    pose = CArmPose(detector_pixels=128)
    a, b = solid.project(pose), shell.project(pose)
    assert a.max() == pytest.approx(0.4 * 30.0, rel=0.02)
    assert np.abs(a - b).max() < 0.05
