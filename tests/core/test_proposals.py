"""Nerve proposals on a synthetic spine with known geometry; robustness when structures are missing."""
from __future__ import annotations

import numpy as np
import pytest

from simulator.core.proposals import propose, propose_targets
from simulator.core.anatomy import Anatomy, Structure
from simulator.core.tissue import Tissue

SP = np.array([1.0, 1.0, 1.0])
ORIGIN = np.array([-60.0, -60.0, -40.0])
SHAPE = (120, 120, 80)
AORTA_C, AORTA_R = (-20.0, 25.0), 10.0
CANAL_C = (0.0, -30.0)
BODY_X, BODY_Y = (-15.0, 15.0), (-20.0, 10.0)
T12_Z, L1_Z = (0.0, 25.0), (-30.0, -5.0)


def spine_anatomy(with_aorta=True, with_l1=True) -> Anatomy:
    axes = [ORIGIN[a] + SP[a] * np.arange(SHAPE[a]) for a in range(3)]
    X, Y, Z = np.meshgrid(*axes, indexing="ij")
    labels = np.zeros(SHAPE, np.uint16)
    tissue = np.full(SHAPE, int(Tissue.FAT), np.uint8)
    structures = {}

    def vertebra(sid, name, z):
        zs = (Z >= z[0]) & (Z <= z[1])
        body = (X >= BODY_X[0]) & (X <= BODY_X[1]) & (Y >= BODY_Y[0]) & (Y <= BODY_Y[1]) & zs
        r = np.hypot(X - CANAL_C[0], Y - CANAL_C[1])
        arch = (r >= 8.0) & (r <= 14.0) & (Y <= BODY_Y[0] + 2) & zs
        m = body | arch
        labels[m] = sid
        tissue[m] = int(Tissue.CANCELLOUS_BONE)
        structures[sid] = Structure(sid, name, Tissue.CANCELLOUS_BONE, "spine", int(m.sum()))

    vertebra(1, "vertebrae_T12", T12_Z)
    if with_l1:
        vertebra(2, "vertebrae_L1", L1_Z)
    if with_aorta:
        m = np.hypot(X - AORTA_C[0], Y - AORTA_C[1]) <= AORTA_R
        labels[m] = 3
        tissue[m] = int(Tissue.ARTERY)
        structures[3] = Structure(3, "aorta", Tissue.ARTERY, "vessels", int(m.sum()))
    return Anatomy("spine", np.zeros(SHAPE, np.int16), tissue, labels, SP, ORIGIN, structures)


def test_celiac_in_front_of_the_aortic_wall_at_t12_l1():
    a = spine_anatomy()
    props = propose_targets(a)
    z_level = 0.5 * (T12_Z[0] + L1_Z[1])
    for side, sign in (("left", -1.0), ("right", 1.0)):
        p = props[f"celiac_plexus_{side}"]
        assert p.kind == "point" and p.side == side and p.points_mm.shape == (1, 3)
        x, y, z = p.points_mm[0]
        d = np.array([sign * np.sin(np.radians(45)), np.cos(np.radians(45))])
        expected = np.array(AORTA_C) + d * (AORTA_R + 4.0)
        assert np.hypot(x - expected[0], y - expected[1]) < 1.5
        assert abs(z - z_level) <= 1.0
        assert y > AORTA_C[1]  # anterior
        assert sign * (x - AORTA_C[0]) > 0  # on its side
        assert Tissue(int(a.tissue_at(p.points_mm)[0])) == Tissue.FAT


def test_splanchnic_on_the_anterolateral_vertebral_body():
    a = spine_anatomy()
    for side, sign in (("left", -1.0), ("right", 1.0)):
        p = propose(a, f"splanchnic_{side}")
        assert p is not None and p.kind == "polyline" and len(p.points_mm) >= 3
        pts = p.points_mm
        assert np.all(np.diff(pts[:, 2]) <= 0)  # cranial to caudal
        assert np.all((pts[:, 2] >= T12_Z[0]) & (pts[:, 2] <= T12_Z[1]))  # T11 absent: T12 only
        # just outside the body's lateral wall, in its anterior half
        assert np.all(np.abs(sign * pts[:, 0] - (BODY_X[1] + 2.0)) < 1.5)
        assert np.all(pts[:, 1] > 0.5 * (BODY_Y[0] + BODY_Y[1]))
        assert np.all(a.tissue_at(pts) == Tissue.FAT)


def test_missing_structures_skip_their_proposals():
    assert "celiac_plexus_left" not in propose_targets(spine_anatomy(with_aorta=False))
    no_l1 = propose_targets(spine_anatomy(with_l1=False))
    assert "celiac_plexus_left" in no_l1  # T12 alone gives the level (its lower end)
    assert abs(no_l1["celiac_plexus_left"].points_mm[0, 2] - T12_Z[0]) <= 1.0
    empty = Anatomy("empty", np.zeros((4, 4, 4), np.int16), np.zeros((4, 4, 4), np.uint8),
                    np.zeros((4, 4, 4), np.uint16), SP, ORIGIN, {})
    assert propose_targets(empty) == {}
    assert propose(empty, "celiac_plexus_left") is None
    assert "sympathetic_chain_left" not in no_l1 and "intercostal_left_10" not in no_l1


def test_proposals_cached_per_anatomy():
    a = spine_anatomy()
    assert propose_targets(a) is propose_targets(a)
    b = spine_anatomy()
    assert propose_targets(b) is not propose_targets(a)
    js = propose(a, "celiac_plexus_left").to_json()
    assert js["kind"] == "point" and len(js["points_mm"]) == 1
    assert pytest.approx(js["radius_mm"]) == 5.0


def test_a_point_off_the_line_of_its_neighbours_is_dropped():
    """A chain sampled slice by slice: an inner point 12 mm off its neighbours' mid-point (a ray
    that had to turn forwards) is dropped; smooth bends and the end points stay."""
    from simulator.core.proposal_geometry import KINK_MM, drop_kinks as _drop_kinks

    z = -np.arange(6) * 8.0
    x = np.array([-41.0, -41.0, -42.0, -31.0, -42.0, -37.0])  # the 4th sits 11 mm medial
    y = np.array([-16.0, -12.0, -7.0, 1.0, -3.0, -4.0])
    kept = _drop_kinks(np.column_stack([x, y, z]))
    assert kept[:, 2].tolist() == [0.0, -8.0, -16.0, -32.0, -40.0]
    bend = np.column_stack([np.linspace(0, 0.8 * KINK_MM, 5) ** 1.5 / 3, np.zeros(5), -np.arange(5) * 8.0])
    assert len(_drop_kinks(bend)) == 5
