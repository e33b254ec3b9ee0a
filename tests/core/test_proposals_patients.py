"""The label-based proposals on the two bundled patients: each lies where the clinical texts put it
(relative to the labelled bones and vessels), in loose soft tissue, and names what it needs."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from simulator.core.proposals import propose, propose_targets, proposal_needs
from simulator.core.tissue import Tissue

SOFT = {Tissue.FAT, Tissue.SOFT_TISSUE, Tissue.MUSCLE}
_BOXES: dict[int, list] = {}


def voxels(a, name):
    s = a.structure_by_name(name)
    assert s is not None, name
    box = _BOXES.setdefault(id(a), ndi.find_objects(a.labels))[s.id - 1]
    off = np.array([b.start for b in box])
    return a.origin_mm + (np.argwhere(a.labels[box] == s.id) + off) * a.spacing_mm


def point(a, name):
    p = propose(a, name)
    assert p is not None, f"{name} not proposed on {a.name}"
    q = p.points_mm[0]
    assert Tissue(int(a.tissue_at(q[None])[0])) in SOFT, f"{name} is not in loose soft tissue"
    return q


def slab(pts, z, half=2.0):
    return pts[np.abs(pts[:, 2] - z) <= half]


@pytest.mark.parametrize("level", ["L2", "L3", "L4"])
def test_lumbar_sympathetic_per_level_on_the_anterolateral_body(lumbopelvic, level):
    a = lumbopelvic
    vert = voxels(a, f"vertebrae_{level}")
    for side, sign in (("left", -1), ("right", 1)):
        q = point(a, f"lumbar_sympathetic_{level.lower()}_{side}")
        assert vert[:, 2].min() <= q[2] <= vert[:, 2].max(), "at its own level"
        ring = slab(vert, q[2])
        mid_x = np.median(ring[:, 0])
        front = ring[:, 1].max()
        assert 8.0 <= sign * (q[0] - mid_x) <= 30.0, "lateral to the midline, on the body's side"
        assert front - 15.0 <= q[1] <= front + 4.0, "anterolateral: near the front of the body, not past it"
        assert np.hypot(*(ring[:, :2] - q[:2]).T).min() <= 4.0, "on the bone's surface"
        st = a.structure_at(q)
        assert st is None or not st.name.startswith("iliopsoas"), "medial to the psoas, not in it"


def test_superior_hypogastric_in_front_of_l5_s1_between_the_iliac_vessels(lumbopelvic):
    a = lumbopelvic
    l5 = voxels(a, "vertebrae_L5")
    left, right = point(a, "superior_hypogastric_left"), point(a, "superior_hypogastric_right")
    low = l5[l5[:, 2] <= l5[:, 2].min() + 6.0]  # L5's lowest 6 mm: the inferior end-plate
    for q in (left, right):
        assert l5[:, 2].min() - 12.0 <= q[2] <= l5[:, 2].min(), "at the L5-S1 disc, below L5's end-plate"
        assert q[1] >= low[:, 1].max() - 8.0, "at the disc's anterior margin, not behind it"
    assert left[0] < right[0] and 15.0 <= right[0] - left[0] <= 40.0, "one needle each side of the midline"
    mid = np.median(l5[:, 0])
    for side, q in (("left", left), ("right", right)):
        near = slab(voxels(a, f"iliac_artery_{side}"), q[2], 10.0)
        if len(near):
            assert abs(q[0] - mid) < abs(np.median(near[:, 0]) - mid), "medial to the common iliac artery"


def test_ganglion_impar_in_front_of_the_sacrococcygeal_joint(lumbopelvic):
    a = lumbopelvic
    joint = a.structure_by_name("sacrococcygeal_joint")
    assert joint is not None and joint.tissue == Tissue.INTERVERTEBRAL_DISC
    sac = voxels(a, "sacrum")
    jv = voxels(a, "sacrococcygeal_joint")
    assert sac[:, 2].min() + 9.0 <= jv[:, 2].min() and jv[:, 2].max() <= sac[:, 2].min() + 60.0, \
        "between the coccyx's tip and the sacral apex"
    q = point(a, "ganglion_impar")
    assert abs(q[0] - jv[:, 0].mean()) < 4.0 and abs(q[2] - jv[:, 2].mean()) < 3.0
    # 4 mm in front of the joint's anterior surface (its front voxels' centre + half a voxel)
    front = jv[:, 1].max() + 0.5 * float(a.spacing_mm[1])
    assert q[1] - front == pytest.approx(4.0, abs=0.01), "just in front of the joint"
    # a straight needle from behind through the joint meets no bone: the transcoccygeal path exists
    ys = np.arange(q[1] - 60.0, q[1], 0.25)
    path = np.column_stack([np.full_like(ys, q[0]), ys, np.full_like(ys, q[2])])
    tissue = a.tissue_at(path)
    assert not np.isin(tissue, [int(Tissue.CORTICAL_BONE), int(Tissue.CANCELLOUS_BONE)]).any()
    assert (tissue == int(Tissue.INTERVERTEBRAL_DISC)).any()


def test_thoracic_sympathetic_on_the_lateral_t2_t3_bodies(bundled):
    a = bundled
    for level in ("T2", "T3"):
        vert = voxels(a, f"vertebrae_{level}")
        for side, sign in (("left", -1), ("right", 1)):
            q = point(a, f"thoracic_sympathetic_{level.lower()}_{side}")
            ring = slab(vert, q[2])
            assert vert[:, 2].min() <= q[2] <= vert[:, 2].max()
            body = ring[ring[:, 1] >= ring[:, 1].max() - 30.0]  # the body, not the arch
            assert sign * (q[0] - np.median(body[:, 0])) >= 8.0, "on the body's side"
            assert np.hypot(*(ring[:, :2] - q[:2]).T).min() <= 4.0
            lung = voxels(a, f"lung_upper_lobe_{side}")
            assert np.linalg.norm(lung - q, axis=1).min() <= 12.0, "the pleura close beside it"


def test_stellate_in_front_of_c7_and_the_notch_on_the_scapula(bundled):
    a = bundled
    c7 = voxels(a, "vertebrae_C7")
    for side, sign in (("left", -1), ("right", 1)):
        q = point(a, f"stellate_ganglion_{side}")
        ring = slab(c7, q[2])
        assert c7[:, 2].min() <= q[2] <= c7[:, 2].max()
        assert sign * (q[0] - np.median(ring[:, 0])) > 0.0
        carotid = slab(voxels(a, f"common_carotid_artery_{side}"), q[2], 5.0)
        assert q[1] < carotid[:, 1].mean(), "behind the carotid (prevertebral)"
    # right notch: on the scapula's upper border; the left border runs out of this scan (no notch)
    q = point(a, "suprascapular_notch_right")
    scap = voxels(a, "scapula_right")
    column = scap[np.hypot(scap[:, 0] - q[0], scap[:, 1] - q[1]) <= 1.5]
    assert len(column) and q[2] - 8.0 < column[:, 2].max() < q[2], "just above the bone of the border"
    lateral = scap[(scap[:, 0] > q[0] + 5.0) & (np.abs(scap[:, 1] - q[1]) < 15.0)]
    assert lateral[:, 2].max() > q[2], "the coracoid base rises lateral to it"
    assert q[2] >= scap[:, 2].max() - 45.0
    assert propose(a, "suprascapular_notch_left") is None
    pre = point(a, "celiac_preaortic")
    aorta = slab(voxels(a, "aorta"), pre[2])
    assert pre[1] > aorta[:, 1].max() and abs(pre[0] - aorta[:, 0].mean()) < 5.0


def test_what_each_patient_offers_and_what_proposals_need(bundled, lumbopelvic):
    chest, pelvis = set(propose_targets(bundled)), set(propose_targets(lumbopelvic))
    assert {"thoracic_sympathetic_t2_left", "stellate_ganglion_left", "celiac_preaortic"} <= chest
    assert not {"ganglion_impar", "superior_hypogastric_left", "lumbar_sympathetic_l4_left"} & chest
    assert {"ganglion_impar", "superior_hypogastric_left", "lumbar_sympathetic_l3_left", "celiac_plexus_left"} <= pelvis
    assert not {"stellate_ganglion_left", "thoracic_sympathetic_t2_left"} & pelvis
    assert proposal_needs("lumbar_sympathetic_l3_left") == ("vertebrae_L3", "iliopsoas_left")
    assert proposal_needs("thoracic_sympathetic_t2_right") == ("vertebrae_T2",)
    assert proposal_needs("intercostal_left_10") == ("rib_left_10", "vertebrae_T10|spinal_cord")
    assert proposal_needs("ganglion_impar") == ("sacrum", "sacrococcygeal_joint")
    assert proposal_needs("no_such_nerve") is None
