"""Nerve targets on and around the vertebral column, placed from the labelled bones and vessels.

Each function takes a `LabelGeometry` and returns a `Proposal` or None when the structures it needs
are missing (their names: `NEEDS`) or no point fits (the place is bone, vessel or organ):

- celiac plexus, left/right and pre-aortic: in front of the aorta at the T12-L1 level;
- greater splanchnic nerve: over the anterolateral T11-T12 bodies;
- lumbar sympathetic chain: a polyline over the L2-L4 bodies, and one point per level
  (`lumbar_sympathetic_l3_left`: "anterolateral L3 body, left");
- thoracic sympathetic chain at T2 and T3: the lateral surface of the body at mid-height, where the
  chain lies in front of the rib heads, behind the pleura;
- stellate ganglion (C7): in front of the longus colli on the anterolateral C7 body;
- superior hypogastric plexus: anterolateral to the lower L5 body (the L5-S1 junction), medial to
  the common iliac vessels, one point per side for the bilateral technique;
- ganglion impar: in front of the sacrococcygeal joint, in the midline.
"""
from __future__ import annotations

import numpy as np

from simulator.core.proposal_geometry import (
    LabelGeometry,
    Proposal,
    body_point,
    direction,
    is_soft,
    on_bodies,
    step_out_of,
)

CELIAC_OFFSET_MM = 4.0  # outside the aortic wall
CELIAC_ANGLE_DEG = 45.0  # from straight anterior towards the side
SPLANCHNIC_ANGLE_DEG = 60.0
SPLANCHNIC_OFFSET_MM = 2.0
CHAIN_ANGLE_DEG = 50.0
CHAIN_OFFSET_MM = 2.0
LUMBAR_LEVEL_HEIGHT = {"L2": 0.35, "L3": 0.5, "L4": 0.65}  # lower L2, mid L3, upper L4
THORACIC_ANGLE_DEG = 85.0  # the body's lateral surface
THORACIC_OFFSET_MM = 1.5
STELLATE_ANGLE_DEG = 55.0
STELLATE_OFFSET_MM = 9.0  # in front of the longus colli (about 1 cm thick)
SHP_LATERAL_MM = 12.0  # each needle's tip this far to its side of the midline
SHP_BEHIND_CORNER_MM = 4.0  # the disc's front margin lies this far behind L5's anterior-inferior corner
SHP_BELOW_CORNER_MM = 7.0  # the L5-S1 disc: this far below L5's anterior-inferior corner
IMPAR_OFFSET_MM = 4.0  # in front of the sacrococcygeal joint

SCJ = "sacrococcygeal_joint"

#: structures each proposal needs (by name pattern, `{side}` / `{level}` filled in)
NEEDS: dict[str, tuple[str, ...]] = {
    "celiac_plexus_{side}": ("aorta", "vertebrae_T12|vertebrae_L1"),
    "celiac_preaortic": ("aorta", "vertebrae_T12|vertebrae_L1"),
    "splanchnic_{side}": ("vertebrae_T11", "vertebrae_T12"),
    "sympathetic_chain_{side}": ("vertebrae_L2|vertebrae_L3|vertebrae_L4",),
    "lumbar_sympathetic_{level}_{side}": ("vertebrae_{LEVEL}", "iliopsoas_{side}"),
    "thoracic_sympathetic_{level}_{side}": ("vertebrae_{LEVEL}",),
    "stellate_ganglion_{side}": ("vertebrae_C7",),
    "superior_hypogastric_{side}": ("vertebrae_L5", "iliac_artery_{side}"),
    "ganglion_impar": ("sacrum", SCJ),
}


def celiac(g: LabelGeometry, side: str) -> Proposal | None:
    """`side` left/right: anterolateral to the aorta; "anterior": in front of it (transaortic)."""
    if not g.has("aorta"):
        return None
    t12, l1 = g.body("vertebrae_T12"), g.body("vertebrae_L1")
    if t12 is not None and l1 is not None:
        z = 0.5 * (t12.z_range_mm[0] + l1.z_range_mm[1])
    elif l1 is not None:
        z = l1.z_range_mm[1]
    elif t12 is not None:
        z = t12.z_range_mm[0]
    else:
        return None
    aorta = g.voxels_mm("aorta")
    k_of = np.rint((aorta[:, 2] - g.a.origin_mm[2]) / g.a.spacing_mm[2])
    sl = aorta[k_of == np.floor((z - g.a.origin_mm[2]) / g.a.spacing_mm[2] + 0.5)]  # the one nearest slice
    if len(sl) < 10:
        return None
    # the aortic lumen at this level (the descending aorta: the largest piece of the slice)
    center = sl[:, :2].mean(axis=0)
    area = len(sl) * g.a.spacing_mm[0] * g.a.spacing_mm[1]
    radius = float(np.sqrt(area / np.pi))
    d = direction(side, 0.0 if side == "anterior" else CELIAC_ANGLE_DEG)
    p = np.array([*(center + d * (radius + CELIAC_OFFSET_MM)), float(sl[0, 2])])
    p = step_out_of(g, p, np.array([d[0], d[1], 0.0]))
    if side == "anterior":
        return Proposal("celiac_preaortic", "point", p[None, :], 5.0, "midline",
                        f"Celiac plexus, pre-aortic: {CELIAC_OFFSET_MM:.0f} mm in front of the aorta's anterior wall at "
                        f"the T12-L1 level (the transaortic needle's goal)")
    return Proposal(
        f"celiac_plexus_{side}", "point", p[None, :], 5.0, side,
        f"Celiac plexus, {side}: {CELIAC_OFFSET_MM:.0f} mm in front of the aorta's {side} anterolateral wall "
        f"at the T12-L1 level",
    )


def splanchnic(g: LabelGeometry, side: str) -> Proposal | None:
    """Over the bodies: none when the scan ends inside T11 or T12 (the nerve's course is not in it)."""
    if any(b is not None and b.cut for b in (g.body("vertebrae_T11"), g.body("vertebrae_T12"))):
        return None
    pts = on_bodies(g, ["vertebrae_T11", "vertebrae_T12"], side, SPLANCHNIC_ANGLE_DEG, SPLANCHNIC_OFFSET_MM)
    if pts is None:
        return None
    return Proposal(f"splanchnic_{side}", "polyline", pts, 2.0, side,
                    f"Greater splanchnic nerve, {side}: over the anterolateral surface of the T11-T12 bodies")


def sympathetic_chain(g: LabelGeometry, side: str) -> Proposal | None:
    names = [n for n in ("vertebrae_L2", "vertebrae_L3", "vertebrae_L4") if g.has(n)]
    psoas = f"iliopsoas_{side}"
    pts = on_bodies(g, names, side, CHAIN_ANGLE_DEG, CHAIN_OFFSET_MM, avoid=(psoas,))
    if pts is None:
        return None
    levels = ", ".join(n.split("_")[1] for n in names)
    return Proposal(f"sympathetic_chain_{side}", "polyline", pts, 2.0, side,
                    f"Lumbar sympathetic chain, {side}: on the anterolateral surface of the {levels} bodies, "
                    f"medial to the psoas")


def _on_body(g: LabelGeometry, name: str, vertebra: str, side: str, angle: float, offset: float, fraction: float,
             radius: float, description: str, avoid: tuple[str, ...] = ()) -> Proposal | None:
    p = body_point(g, vertebra, side, angle, offset, fraction, avoid)
    return None if p is None else Proposal(name, "point", p[None, :], radius, side, description)


def lumbar_sympathetic(g: LabelGeometry, level: str, side: str) -> Proposal | None:
    """The chain at one lumbar level: "anterolateral L3 body, left"."""
    psoas = f"iliopsoas_{side}"
    if not g.has(psoas):
        return None
    where = {"L2": "lower third", "L3": "middle", "L4": "upper third"}[level]
    return _on_body(g, f"lumbar_sympathetic_{level.lower()}_{side}", f"vertebrae_{level}", side, CHAIN_ANGLE_DEG,
                    CHAIN_OFFSET_MM, LUMBAR_LEVEL_HEIGHT[level], 4.0,
                    f"Lumbar sympathetic chain at {level}, {side}: anterolateral {level} body ({where} of its height), "
                    f"{CHAIN_OFFSET_MM:.0f} mm off the bone, medial to the psoas", avoid=(psoas,))


def thoracic_sympathetic(g: LabelGeometry, level: str, side: str) -> Proposal | None:
    """The upper thoracic chain (T2, T3): on the lateral surface of the body at mid-height."""
    return _on_body(g, f"thoracic_sympathetic_{level.lower()}_{side}", f"vertebrae_{level}", side, THORACIC_ANGLE_DEG,
                    THORACIC_OFFSET_MM, 0.5, 3.0,
                    f"Thoracic sympathetic chain at {level}, {side}: lateral surface of the {level} body at mid-height, "
                    f"in front of the rib head, behind the pleura")


def stellate(g: LabelGeometry, side: str) -> Proposal | None:
    """The stellate ganglion at C7: prevertebral, in front of the longus colli on the anterolateral
    C7 body (the transverse process of C7 behind it, the vertebral artery lateral)."""
    return _on_body(g, f"stellate_ganglion_{side}", "vertebrae_C7", side, STELLATE_ANGLE_DEG, STELLATE_OFFSET_MM, 0.5,
                    4.0, f"Stellate ganglion (cervicothoracic), {side}: in front of the longus colli on the "
                    f"anterolateral C7 body, under the prevertebral fascia")


def superior_hypogastric(g: LabelGeometry, side: str) -> Proposal | None:
    """One needle of the bilateral superior hypogastric block: at the anterolateral margin of the
    L5-S1 disc (below and a little behind L5's anterior-inferior corner, above the sacral
    promontory), SHP_LATERAL_MM to the side of the midline, in loose tissue."""
    if not g.has(f"iliac_artery_{side}"):
        return None
    l5 = g.body("vertebrae_L5")
    if l5 is None:
        return None
    mid = float(np.median(l5.world[:, 0]))
    slab = l5.world[np.abs(l5.world[:, 0] - mid) <= 3.0]
    front = slab[slab[:, 1] >= slab[:, 1].max() - 10.0]
    if len(front) < 3:
        return None
    corner = front[np.argmin(front[:, 2])]  # L5's anterior-inferior corner
    x = mid + (-1.0 if side == "left" else 1.0) * SHP_LATERAL_MM
    z = float(corner[2]) - SHP_BELOW_CORNER_MM
    near = l5.world[(np.abs(l5.world[:, 0] - x) <= 3.0) & (l5.world[:, 2] <= corner[2] + 6.0)]
    y0 = float(near[:, 1].max()) if len(near) else float(corner[1])
    p = step_out_of(g, np.array([x, y0 - SHP_BEHIND_CORNER_MM, z]), np.array([0.0, 1.0, 0.0]), max_mm=6.0)
    if not is_soft(g, p):
        return None
    return Proposal(f"superior_hypogastric_{side}", "point", p[None, :], 5.0, side,
                    f"Superior hypogastric plexus, {side} needle: in front of the L5-S1 junction, "
                    f"{SHP_LATERAL_MM:.0f} mm {side} of the midline, medial to the common iliac vessels")


def ganglion_impar(g: LabelGeometry) -> Proposal | None:
    """In front of the sacrococcygeal joint, in the midline (retroperitoneal, behind the rectum)."""
    joint = g.voxels_mm(SCJ)
    if joint is None or len(joint) < 4:
        return None
    c = joint.mean(axis=0)
    column = joint[np.abs(joint[:, 0] - c[0]) <= 2.0]
    front = float(column[:, 1].max()) + 0.5 * float(g.a.spacing_mm[1])
    p = np.array([c[0], front + IMPAR_OFFSET_MM, c[2]])
    p = step_out_of(g, p, np.array([0.0, 1.0, 0.0]), max_mm=4.0)
    if not is_soft(g, p):
        return None
    return Proposal("ganglion_impar", "point", p[None, :], 4.0, "midline",
                    f"Ganglion impar: {IMPAR_OFFSET_MM:.0f} mm in front of the sacrococcygeal joint, midline")


def trunk_proposals(g: LabelGeometry):
    """Every trunk proposal the labels support."""
    for side in ("left", "right"):
        yield celiac(g, side)
    yield celiac(g, "anterior")
    for side in ("left", "right"):
        yield splanchnic(g, side)
    for side in ("left", "right"):
        yield sympathetic_chain(g, side)
    for level in ("L2", "L3", "L4"):
        for side in ("left", "right"):
            yield lumbar_sympathetic(g, level, side)
    for level in ("T2", "T3"):
        for side in ("left", "right"):
            yield thoracic_sympathetic(g, level, side)
    for side in ("left", "right"):
        yield stellate(g, side)
    for side in ("left", "right"):
        yield superior_hypogastric(g, side)
    yield ganglion_impar(g)
