"""Scatter is made in the patient, not in the air beside it: a bone next to the skin keeps its
contrast when the direct beam fills part of the field (a lateral of the sacrum, the buttocks'
skin a few centimetres behind it), and the lumbopelvic patient's lower sacrum and coccyx show in
the ganglion impar exercise's lateral view."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from simulator.core.carm import CArmPose
from simulator.imaging.fluoroscopy import MU_WATER_60KEV_PER_MM, AttenuationVolume, DisplaySettings, FluoroscopyRenderer
from simulator.imaging.fluoroscopy_landmarks import sobel_magnitude, structure_path_mm

MU_BONE = 0.0604  # cortical bone at 60 keV (per mm)


def _rod_contrast(image: np.ndarray, pose: CArmPose, x_mm: float) -> float:
    """Grey-level depth of a rod's shadow: its centre against the mean 10-14 mm either side."""
    n = image.shape[0]
    prof = image[n // 2 - 20:n // 2 + 20].astype(float).mean(axis=0)
    cols = [pose.world_to_pixel(np.array([[x, 0.0, 0.0]]))[0][0] for x in (x_mm - 12.0, x_mm, x_mm + 12.0)]
    side = [prof[int(round(c)) - 3:int(round(c)) + 4].mean() for c in (cols[0], cols[2])]
    c = int(round(cols[1]))
    return float(np.mean(side) - prof[c - 1:c + 2].mean())


def test_a_bone_beside_the_direct_beam_keeps_its_contrast():
    """200 mm of water ending at x = 30 mm (air beyond, a third of the field); two 8 mm bone rods,
    one 18 mm inside the skin, one deep. Noise-free, a plain linear display: the rod by the skin
    keeps at least 80 % of the deep rod's contrast (the thin tissue at the skin's edge scatters;
    the direct beam, when it scattered as if it were tissue, fogged the rod to 15 % of it)."""
    spacing = (2.0, 4.0, 4.0)
    shape = (90, 50, 40)
    origin = -0.5 * (np.array(shape) - 1) * np.array(spacing)
    x = origin[0] + np.arange(shape[0]) * spacing[0]
    y = origin[1] + np.arange(shape[1]) * spacing[1]
    mu = np.zeros(shape, np.float32)
    mu[x < 30.0] = MU_WATER_60KEV_PER_MM
    for xc in (12.0, -50.0):
        mu[np.ix_(np.abs(x - xc) <= 4.0, np.abs(y) <= 4.0, np.ones(shape[2], bool))] = MU_BONE
    renderer = FluoroscopyRenderer(volume=AttenuationVolume.from_xyz(mu, origin, spacing), seed=1)
    pose = CArmPose(isocenter_mm=(0.0, 0.0, 0.0), detector_pixels=256, field_shape="square")
    plain = DisplaySettings(edge_enhance=0, detail_enhance=0, range_compression=0, band_compression=0,
                            window=(0.0, 6.0), gamma=1.0, shoulder=0.0)
    img = renderer.render(pose, quality="full", quanta_per_pixel=0, display=plain).image
    deep, skin = _rod_contrast(img, pose, -50.0), _rod_contrast(img, pose, 12.0)
    assert deep > 5.0  # bone is darker than the water beside it
    assert skin >= 0.8 * deep


@pytest.fixture(scope="module")
def lumbopelvic_lateral():
    from simulator.anatomy import load_anatomy, lumbopelvic, packaged
    from simulator.imaging.fluoroscopy_session import FluoroscopySession

    if not packaged.cache_is_valid(lumbopelvic.PATIENT):
        pytest.skip("the lumbopelvic patient is not built (make data)")
    anatomy = load_anatomy(lumbopelvic.REF)
    # the ganglion impar exercise's lateral: the C-arm centred on the sacrococcygeal joint
    pose = CArmPose(lao_deg=90.0, isocenter_mm=(2.0, 60.0, 142.0), detector_pixels=512)
    session = FluoroscopySession(FluoroscopyRenderer(anatomy, seed=0), pose)
    return anatomy, session.pose, session.shot().image


def sacrum_edge_ratio(image, anatomy, pose, z_max_mm: float) -> float:
    """Mean gradient on the projected outline of the sacrum-and-coccyx mesh below z_max_mm (a
    3-pixel band) over the mean gradient 6-12 pixels away from it."""
    n = image.shape[0]
    bone = structure_path_mm(anatomy, ["sacrum"], pose, n) > 0.5
    outline = bone ^ ndi.binary_erosion(bone)
    iso = pose.isocenter_mm
    row = int(round(pose.world_to_pixel(np.array([[iso[0], iso[1], z_max_mm]]))[1][0]))
    outline[:row] = False  # rows grow caudally in this view
    band = ndi.binary_dilation(outline, iterations=1)
    near = ndi.binary_dilation(outline, iterations=12) & ~ndi.binary_dilation(outline, iterations=5)
    near[:row] = False
    grad, _ = sobel_magnitude(image)
    assert band.sum() > 150 and near.sum() > 500
    return float(grad[band].mean() / grad[near].mean())


def test_the_lower_sacrum_and_coccyx_outline_show_in_the_ganglion_impar_lateral(lumbopelvic_lateral):
    """From S3 (z 200 mm) down to the coccyx's tip the bone's outline carries more gradient than
    the soft tissue around it (1.13; it used to carry none, 0.97: the air behind the patient's
    back, a third of the lateral field, fogged it with scatter it cannot make)."""
    anatomy, pose, image = lumbopelvic_lateral
    assert sacrum_edge_ratio(image, anatomy, pose, 200.0) >= 1.08
