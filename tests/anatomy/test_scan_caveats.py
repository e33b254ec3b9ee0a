"""A scan's caveats: metal implants, coarse grids, field-of-view cuts (synthetic volumes, known answers)."""
from __future__ import annotations

import numpy as np
import pytest

from simulator.anatomy.metal import METAL_HU, METAL_STRUCTURE, apply_metal, find_metal
from simulator.anatomy.regrid import refine_coarse_grid, refinement_factors
from simulator.anatomy.scan_caveats import caveats, field_of_view_cuts, prepare_volumes
from simulator.core.tissue import Tissue, tissue_for_structure
from simulator.imaging.fluoroscopy import hu_to_mu

SP3 = np.array([3.0, 3.0, 3.0])


def _noop(f, m):
    return None


def hip_with_stem():
    """30 x 30 x 20 voxels of 3 mm: soft tissue with a 'femur' box (label 1) holding a 'stem' of
    over 3000 HU, a dark and a bright streak beside it, and an unlabelled dense blob far away."""
    hu = np.full((30, 30, 20), 40, np.int16)
    labels = np.zeros(hu.shape, np.uint16)
    labels[8:20, 8:20, :] = 1
    hu[8:20, 8:20, :] = 400
    hu[12:16, 12:16, :12] = 3071  # the stem, 12 x 12 x 36 mm
    hu[12:16, 11, :12] = 2200  # its partial-volume rim
    hu[22:26, 14, 5] = -600  # a dark streak (would read as gas)
    hu[22:26, 16, 5] = 900  # a bright streak (would read as bone)
    hu[2:4, 2:4, 17:19] = 3071  # dense, unlabelled, far from bone (undiluted contrast in a vein)
    return hu, labels, {1: "femur_left"}


def test_metal_found_labelled_and_streaks_clipped():
    hu, labels, names = hip_with_stem()
    metal = find_metal(hu, labels, SP3, names, contrast_enhanced=False)
    assert metal is not None
    assert metal[12:16, 11:16, :12].all() and metal.sum() == 4 * 5 * 12 + 2 * 2 * 2  # stem + rim, and the blob
    enhanced = find_metal(hu, labels, SP3, names, contrast_enhanced=True)
    assert enhanced.sum() == 4 * 5 * 12, "on a contrast CT only metal inside bone counts"
    notes = apply_metal(hu, labels, enhanced, SP3, {**names, 7: METAL_STRUCTURE}, 7)
    assert (labels[enhanced] == 7).all() and (labels[8:20, 8:20, 15] == 1).all()
    assert notes["metal_implant_in"] == ["femur_left"] and notes["metal_implant_mm3"] == pytest.approx(240 * 27)
    assert hu[22:26, 14, 5].min() == -150 and hu[22:26, 16, 5].max() == 150, "streaks clipped to soft tissue"
    assert (hu[8:20, 8:20, :][labels[8:20, 8:20, :] == 1] == 400).all(), "bone is left as it is"
    assert tissue_for_structure(METAL_STRUCTURE) == Tissue.METAL


def test_no_metal_in_an_ordinary_scan():
    hu = np.full((20, 20, 10), 40, np.int16)
    hu[5:10, 5:10, :] = 1900  # dense cortical bone stays bone
    assert find_metal(hu, np.zeros(hu.shape, np.uint16), SP3, {}, False) is None


def test_metal_is_opaque_to_a_c_arm():
    """60 keV attenuation from the metal's CT number: 15 mm of implant lets through under 0.5 %."""
    mu = float(hu_to_mu(np.array([METAL_HU]))[0])
    assert np.exp(-mu * 15.0) < 0.005
    bone = float(hu_to_mu(np.array([1500]))[0])
    assert np.exp(-bone * 15.0) > 0.3, "15 mm of cortical bone is not opaque"


def test_refinement_only_for_coarse_in_plane_grids():
    assert refinement_factors([3, 3, 3]) == (2, 2, 2)
    assert refinement_factors([0.7, 0.7, 2.5]) is None  # the bundled patient: left as it is
    assert refinement_factors([2.5, 2.5, 5.0]) == (2, 2, 4)


def test_refined_grid_keeps_world_positions_volumes_and_thin_structures():
    hu = np.zeros((20, 20, 20), np.int16)
    labels = np.zeros(hu.shape, np.uint16)
    X, Y, Z = np.meshgrid(*(np.arange(20.0),) * 3, indexing="ij")
    ball = (X - 10) ** 2 + (Y - 9) ** 2 + (Z - 10) ** 2 <= 5.2 ** 2
    labels[ball] = 1
    hu[ball] = 300
    labels[3, 3, 2:18] = 2  # a vessel one voxel (3 mm) across
    origin = np.array([-30.0, 10.0, 100.0])
    fh, fl, sp, org, f = refine_coarse_grid(hu, labels, SP3, origin)
    assert f == (2, 2, 2) and np.allclose(sp, 1.5) and fh.shape == (40, 40, 40)

    def centroid(lab, spacing, o, sid):
        return o + np.argwhere(lab == sid).mean(axis=0) * spacing

    assert np.allclose(centroid(fl, sp, org, 1), centroid(labels, SP3, origin, 1), atol=0.2)
    assert (fl == 1).sum() * 1.5 ** 3 == pytest.approx(ball.sum() * 27, rel=0.08)
    assert (fl == 2).sum() >= 0.7 * 8 * 16, "a thin vessel does not vanish"
    assert np.allclose(centroid(fl, sp, org, 2), centroid(labels, SP3, origin, 2), atol=0.8)
    # CT numbers interpolated: the ball's centre keeps its value, the edge is a ramp
    c = np.rint((centroid(labels, SP3, origin, 1) - org) / sp).astype(int)
    assert fh[tuple(c)] == 300 and 0 < fh[c[0] + 11, c[1], c[2]] < 300
    # the surface is rounder: its boundary voxels' distances from the centre vary less than those of
    # the nearest-neighbour copy (a staircase)
    def radius_spread(mask):
        inner = mask.copy()
        for a in range(3):
            inner &= np.roll(mask, 1, a) & np.roll(mask, -1, a)
        edge = np.argwhere(mask & ~inner) * 1.5
        return float(np.std(np.linalg.norm(edge - edge.mean(axis=0), axis=1)))

    near = labels.repeat(2, 0).repeat(2, 1).repeat(2, 2) == 1
    assert radius_spread(fl == 1) < 0.92 * radius_spread(near)


def test_prepare_volumes_and_caveats():
    hu, labels, names = hip_with_stem()
    hu0, labels0 = hu.copy(), labels.copy()
    h, lab, sp, org, nm, notes = prepare_volumes(hu, labels, SP3, np.zeros(3), names, False, _noop)
    assert np.array_equal(hu, hu0) and np.array_equal(labels, labels0), "inputs untouched"
    metal_id = [k for k, v in nm.items() if v == METAL_STRUCTURE][0]
    assert np.allclose(sp, 1.5) and (h[lab == metal_id] == METAL_HU).all()
    assert notes["grid_refined_from_mm"] == [3.0, 3.0, 3.0] and notes["metal_implant_in"][0] == "femur_left"
    body = np.zeros((10, 12, 8), bool)
    body[0, 2:10, 1:7] = True  # touches the patient's left face
    body[1:9, 2:10, :] = True
    cuts = field_of_view_cuts(body, SP3, np.array([0.0, 0.0, 50.0]))["field_of_view_cuts"]
    assert [c["side"] for c in cuts] == ["left"] and cuts[0]["z_mm"] == [53.0, 68.0]
    text = " ".join(caveats({**notes, "field_of_view_cuts": cuts}, contrast_enhanced=False))
    for words in ("Coarse CT grid (3 x 3 x 3 mm)", "Metal implant", "femur_left", "patient's left side",
                  "No intravenous contrast"):
        assert words in text, words


def test_sacrococcygeal_joint_where_the_sacrum_narrows_into_the_coccyx():
    from simulator.anatomy.joints import sacrococcygeal_joint

    labels = np.zeros((40, 40, 60), np.uint16)  # 1.5 mm voxels
    labels[18:22, 18:22, 0:16] = 25  # coccyx: 6 x 6 mm, 24 mm long (z 0..22.5 mm)
    labels[8:32, 12:28, 16:60] = 25  # sacral apex and sacrum: 36 x 24 mm
    joint = sacrococcygeal_joint(labels, np.array([1.5, 1.5, 1.5]), 25)
    ks = np.nonzero(joint.any(axis=(0, 1)))[0]
    assert ks.tolist() == [14, 15], "the 3 mm of coccyx just below the widening"
    assert joint.sum() == 2 * 16 and (labels[joint] == 25).all()
    labels[:] = 0
    labels[8:32, 12:28, 0:60] = 25  # no narrowing: no joint found
    assert sacrococcygeal_joint(labels, np.array([1.5, 1.5, 1.5]), 25) is None
