"""Nerve targets on the chest wall and the shoulder girdle, placed from the labelled ribs, vertebrae
and scapulae (see `proposals_trunk.py` for the column):

- `intercostal_<side>_<n>` (polyline): along the lower border of rib n, from about the rib angle
  (5 cm from the midline) laterally;
- `suprascapular_notch_<side>` (point): the suprascapular nerve in the notch of the scapula's
  superior border, just medial to the base of the coracoid process, under the superior transverse
  scapular ligament.
"""
from __future__ import annotations

import numpy as np

from simulator.core.proposal_geometry import LabelGeometry, Proposal, is_soft, side_sign

INTERCOSTAL_FROM_MM = 50.0  # lateral distance from the midline where the polyline starts (rib angle)
INTERCOSTAL_TO_MM = 90.0
INTERCOSTAL_STEP_MM = 10.0
INTERCOSTAL_BELOW_MM = 1.0  # below the rib's lower border
CORACOID_FRONT_MM = 12.0  # the coracoid: the scapula's most anterior 12 mm, in its upper part
SCAPULA_TOP_MM = 45.0  # the upper part of the scapula (below its highest voxel)
NOTCH_MEDIAL_MM = 4.0  # the notch lies this far medial to the coracoid's base
NOTCH_ABOVE_MM = 3.0  # the nerve in the notch, above the border's bone

NEEDS: dict[str, tuple[str, ...]] = {
    "intercostal_{side}_{n}": ("rib_{side}_{n}", "vertebrae_T{n}|spinal_cord"),
    "suprascapular_notch_{side}": ("scapula_{side}",),
}


def _midline(g: LabelGeometry, level: int) -> float | None:
    for name in (f"vertebrae_T{level}", f"vertebrae_T{min(level + 1, 12)}", f"vertebrae_T{max(level - 1, 1)}"):
        body = g.body(name)
        if body is not None:
            return float(body.center_mm[0]), float(body.center_mm[1])
    cord = g.voxels_mm("spinal_cord")
    if cord is not None:
        return float(cord[:, 0].mean()), float(cord[:, 1].mean()) + 25.0
    return None


def intercostal(g: LabelGeometry, side: str, n: int) -> Proposal | None:
    name = f"rib_{side}_{n}"
    pts = g.voxels_mm(name)
    if pts is None or len(pts) < 20:
        return None
    ref = _midline(g, n)
    if ref is None:
        return None
    x_mid, y_body = ref
    lateral = side_sign(side) * (pts[:, 0] - x_mid)
    posterior = pts[:, 1] < y_body + 15.0  # the rib's posterior segment (behind the body's front)
    half = 0.5 * g.a.spacing_mm
    out: list[np.ndarray] = []
    for start in (INTERCOSTAL_FROM_MM, INTERCOSTAL_FROM_MM - 20.0):  # short (first) ribs: start closer in
        groups = []
        for d in np.arange(start, start + INTERCOSTAL_TO_MM - INTERCOSTAL_FROM_MM + 1e-6, INTERCOSTAL_STEP_MM):
            sel = posterior & (np.abs(lateral - d) <= 0.5 * INTERCOSTAL_STEP_MM)
            if sel.sum() >= 3:
                groups.append(pts[sel])
        if len(groups) >= 2:
            break
    if len(groups) < 2:
        return None
    centres = np.array([grp.mean(axis=0) for grp in groups])
    ez = np.array([0.0, 0.0, 1.0])
    for i, grp in enumerate(groups):
        # the rib's local course, and "down" perpendicular to it (in the plane of the course and z)
        t = centres[min(i + 1, len(groups) - 1)] - centres[max(i - 1, 0)]
        t = t / (np.linalg.norm(t) or 1.0)
        down = -(ez - (ez @ t) * t)
        norm = np.linalg.norm(down)
        down = down / norm if norm > 0.2 else -ez
        reach = float(((grp - centres[i]) @ down).max()) + float(np.abs(half * down).sum())
        p = centres[i] + down * (reach + INTERCOSTAL_BELOW_MM)
        # keep it out of the pleura/lung and the bone: nudge outwards (away from the midline) if needed
        outward = np.array([side_sign(side), 0.0, 0.0])
        for step in np.arange(0.0, 5.01, 1.0):
            q = p + outward * step
            if is_soft(g, q):
                out.append(q)
                break
    if len(out) < 2:
        return None
    return Proposal(f"intercostal_{side}_{n}", "polyline", np.array(out), 1.0, side,
                    f"Intercostal nerve {n}, {side}: along the lower border of rib {n} from the rib angle "
                    f"laterally")


def suprascapular_notch(g: LabelGeometry, side: str) -> Proposal | None:
    """The coracoid is the scapula's most anterior part in its upper region; its base's medial edge
    is where the superior border meets it; the notch lies just medial to that, at the top of the
    border there. The point sits NOTCH_ABOVE_MM above the bone, in soft tissue."""
    pts = g.voxels_mm(f"scapula_{side}")
    if pts is None or len(pts) < 200:
        return None
    upper = pts[pts[:, 2] >= pts[:, 2].max() - SCAPULA_TOP_MM]
    lateral = side_sign(side) * upper[:, 0]  # grows away from the midline
    coracoid = upper[:, 1] >= upper[:, 1].max() - CORACOID_FRONT_MM
    base = float(np.percentile(lateral[coracoid], 10))
    where = np.abs(lateral - (base - NOTCH_MEDIAL_MM)) <= 2.0
    if where.sum() < 5:
        return None
    column = upper[where]
    if column[:, 2].max() >= g.a.bounds_mm()[1][2] - g.a.spacing_mm[2]:
        return None  # the border runs out of the scan's top: the notch is not in it
    top = column[column[:, 2] >= column[:, 2].max() - 0.5 * g.a.spacing_mm[2]]
    p = np.array([top[:, 0].mean(), top[:, 1].mean(), float(top[:, 2].max()) + NOTCH_ABOVE_MM])
    for _ in range(4):
        if is_soft(g, p):
            return Proposal(f"suprascapular_notch_{side}", "point", p[None, :], 3.0, side,
                            f"Suprascapular nerve at the notch, {side}: on the scapula's superior border just "
                            f"medial to the base of the coracoid process")
        p = p + np.array([0.0, 0.0, 1.0])
    return None


def girdle_proposals(g: LabelGeometry):
    """Every chest-wall and shoulder proposal the labels support."""
    for side in ("left", "right"):
        for n in range(1, 13):
            yield intercostal(g, side, n)
    for side in ("left", "right"):
        yield suprascapular_notch(g, side)
