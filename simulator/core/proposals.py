"""Nerve target proposals derived from a TotalSegmentator-style label map, and the one rule for a
target's points (`target_points`: its own, else its proposal's on the anatomy).

Nerves are not in CT segmentations; these proposals place the usual neurolysis targets from the
labelled bones and vessels so that any imported patient gets targets (scenarios may override them):

- `celiac_plexus_left` / `_right` (point): just in front of the aorta's left / right anterolateral
  wall at the T12-L1 level.
- `splanchnic_left` / `_right` (polyline): the greater splanchnic nerve's course over the
  anterolateral surface of the T11 and T12 vertebral bodies.
- `intercostal_<side>_<n>` (polyline): along the lower border of rib n, from about the rib angle
  (5 cm from the midline) laterally.
- `sympathetic_chain_left` / `_right` (polyline): on the anterolateral surface of the L2-L4 bodies,
  medial to the psoas (the lumbar vertebrae that are present).

A vertebral body is the part of the vertebra mask in front of its vertebral foramen (the hole that
the vertebra's mask encloses when projected along z); without a visible foramen, the part in front
of the spinal cord/canal, else the front 45 % of the vertebra. A proposal whose structures are
missing is skipped.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from simulator.core.anatomy import Anatomy
from simulator.core.tissue import Tissue

CELIAC_OFFSET_MM = 4.0  # outside the aortic wall
CELIAC_ANGLE_DEG = 45.0  # from straight anterior towards the side
SPLANCHNIC_ANGLE_DEG = 60.0
SPLANCHNIC_OFFSET_MM = 2.0
CHAIN_ANGLE_DEG = 50.0
CHAIN_OFFSET_MM = 2.0
INTERCOSTAL_FROM_MM = 50.0  # lateral distance from the midline where the polyline starts (rib angle)
INTERCOSTAL_TO_MM = 90.0
INTERCOSTAL_STEP_MM = 10.0
INTERCOSTAL_BELOW_MM = 1.0  # below the rib's lower border


@dataclass
class Proposal:
    name: str
    kind: str  # "point" | "polyline"
    points_mm: np.ndarray  # (N, 3) RAS mm
    radius_mm: float
    side: str  # "left" | "right" | "midline"
    description: str

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "points_mm": np.round(self.points_mm, 2).tolist(),
                "radius_mm": self.radius_mm, "side": self.side, "description": self.description}


@dataclass
class VertebralBody:
    name: str
    ijk: np.ndarray  # (N, 3) voxel indices of the body
    world: np.ndarray  # (N, 3) RAS mm
    center_mm: np.ndarray
    z_range_mm: tuple[float, float]


class _Geometry:
    """Per-anatomy access to structures' voxels (bounding boxes computed once)."""

    def __init__(self, anatomy: Anatomy):
        self.a = anatomy
        self.objects = ndi.find_objects(anatomy.labels)
        self.by_name = {s.name: s for s in anatomy.structures.values()}
        self._bodies: dict[str, VertebralBody | None] = {}

    def has(self, name: str) -> bool:
        s = self.by_name.get(name)
        return s is not None and s.id <= len(self.objects) and self.objects[s.id - 1] is not None

    def mask(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(bool mask within the structure's bounding box, ijk offset of the box)."""
        if not self.has(name):
            return None
        s = self.by_name[name]
        sl = self.objects[s.id - 1]
        return self.a.labels[sl] == s.id, np.array([x.start for x in sl])

    def world(self, ijk: np.ndarray) -> np.ndarray:
        return self.a.origin_mm + np.asarray(ijk, dtype=np.float64) * self.a.spacing_mm

    def voxels_mm(self, name: str) -> np.ndarray | None:
        m = self.mask(name)
        if m is None:
            return None
        mask, off = m
        return self.world(np.argwhere(mask) + off)

    def body(self, name: str) -> VertebralBody | None:
        if name not in self._bodies:
            self._bodies[name] = self._vertebral_body(name)
        return self._bodies[name]

    def _vertebral_body(self, name: str) -> VertebralBody | None:
        """The part of the vertebra in front of its canal, slice by slice: in front of the
        foramen when the slice encloses it, else in front of the spinal canal (or the cord plus
        3.5 mm) in that slice, else the front 45 % of the slice's vertebra."""
        m = self.mask(name)
        if m is None:
            return None
        mask, off = m
        sp = self.a.spacing_mm
        canal_ant = self._canal_front_by_slice(off, mask.shape)
        keep = np.zeros_like(mask)
        for k in range(mask.shape[2]):
            sl = mask[:, :, k]
            if sl.sum() < 5:
                continue
            js = np.nonzero(sl.any(axis=0))[0]
            cut = None
            holes, n = ndi.label(ndi.binary_fill_holes(sl) & ~sl)
            if n:
                sizes = np.bincount(holes.ravel())
                sizes[0] = 0
                if sizes.max() * sp[0] * sp[1] >= 20.0:
                    cut = float(np.nonzero((holes == int(np.argmax(sizes))).any(axis=0))[0].max()) + 0.5
            if cut is None and not np.isnan(canal_ant[k]):
                cut = canal_ant[k]
            if cut is None:
                cut = js.max() - 0.45 * (js.max() - js.min())
            jj = np.arange(sl.shape[1])
            keep[:, :, k] = sl & (jj[None, :] > cut)
        ijk = np.argwhere(keep)
        if len(ijk) < 10:
            return None
        body = ijk + off
        world = self.world(body)
        return VertebralBody(name, body, world, world.mean(axis=0), (float(world[:, 2].min()), float(world[:, 2].max())))

    def _canal_front_by_slice(self, off: np.ndarray, shape) -> np.ndarray:
        """Per slice of a box (offset `off`), the box-relative j of the canal's anterior edge
        (spinal_canal, else spinal_cord + 3.5 mm); NaN where neither is present."""
        out = np.full(shape[2], np.nan)
        for cname, extra_mm in (("spinal_canal", 0.0), ("spinal_cord", 3.5)):
            m = self.mask(cname)
            if m is None:
                continue
            cmask, coff = m
            for k in range(shape[2]):
                kk = k + off[2] - coff[2]
                if not np.isnan(out[k]) or kk < 0 or kk >= cmask.shape[2]:
                    continue
                js = np.nonzero(cmask[:, :, kk].any(axis=0))[0]
                if len(js):
                    out[k] = js.max() + coff[1] - off[1] + 0.5 + extra_mm / self.a.spacing_mm[1]
        return out

    def body_slice(self, body: VertebralBody, z_mm: float) -> np.ndarray:
        """World points of the body in the axial slice nearest z_mm."""
        k = int(round((z_mm - self.a.origin_mm[2]) / self.a.spacing_mm[2]))
        sel = body.ijk[:, 2] == k
        return body.world[sel]


def _surface_point(slice_pts: np.ndarray, spacing: np.ndarray, direction_xy: np.ndarray, offset_mm: float):
    """Where a ray from the slice's centroid along direction_xy leaves the body's cross-section,
    pushed offset_mm further out (None if the slice is empty)."""
    if len(slice_pts) < 5:
        return None
    c = slice_pts[:, :2].mean(axis=0)
    d = direction_xy / np.linalg.norm(direction_xy)
    rel = slice_pts[:, :2] - c
    along = rel @ d
    across = np.abs(rel @ np.array([-d[1], d[0]]))
    near = across <= 0.75 * max(spacing[0], spacing[1])
    if not near.any():
        return None
    reach = float(along[near].max()) + 0.5 * float(np.min(spacing[:2]))
    p = c + d * (reach + offset_mm)
    return np.array([p[0], p[1], float(slice_pts[0, 2])])


def _side_sign(side: str) -> float:
    """+x is the patient's right; the left side has smaller x."""
    return -1.0 if side == "left" else 1.0


def _direction(side: str, angle_from_anterior_deg: float) -> np.ndarray:
    a = np.radians(angle_from_anterior_deg)
    return np.array([_side_sign(side) * np.sin(a), np.cos(a)])


def _celiac(g: _Geometry, side: str) -> Proposal | None:
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
    d = _direction(side, CELIAC_ANGLE_DEG)
    p = np.array([*(center + d * (radius + CELIAC_OFFSET_MM)), float(sl[0, 2])])
    p = _step_out_of(g, p, np.array([d[0], d[1], 0.0]))
    return Proposal(
        f"celiac_plexus_{side}", "point", p[None, :], 5.0, side,
        f"Celiac plexus, {side}: {CELIAC_OFFSET_MM:.0f} mm in front of the aorta's {side} anterolateral wall "
        f"at the T12-L1 level",
    )


_SOFT = {int(Tissue.FAT), int(Tissue.SOFT_TISSUE), int(Tissue.MUSCLE), int(Tissue.NERVE)}


def _step_out_of(g: _Geometry, p: np.ndarray, d: np.ndarray, max_mm: float = 8.0) -> np.ndarray:
    """Move p along d (1 mm steps, up to max_mm) until it lies in loose soft tissue (fat, soft
    tissue, muscle) rather than inside an organ or vessel; p unchanged if none is found."""
    for s in np.arange(0.0, max_mm + 1e-6, 1.0):
        q = p + s * d
        if int(g.a.tissue_at(q[None])[0]) in _SOFT:
            return q
    return p


def _on_bodies(g: _Geometry, names: list[str], side: str, angle: float, offset: float,
               per_body: int = 3, avoid: str | None = None) -> np.ndarray | None:
    """Points on the anterolateral surface of vertebral bodies (cranial to caudal): a ray from
    each sampled slice's centroid at `angle` from anterior towards `side`, `offset` mm beyond
    the bone. A point must land in loose soft tissue (not bone, lung, organ or vessel, nor in the
    structure `avoid`); otherwise the ray is turned forwards and brought closer, else the slice is
    skipped."""
    pts = []
    for name in names:
        body = g.body(name)
        if body is None:
            continue
        z0, z1 = body.z_range_mm
        for f in np.linspace(0.8, 0.2, per_body):
            z = z0 + f * (z1 - z0)
            sl = g.body_slice(body, z)
            found = None
            for a in (angle, angle - 10, angle - 20, angle - 30):
                for off in (offset, 0.5 * offset):
                    p = _surface_point(sl, g.a.spacing_mm, _direction(side, a), off)
                    if p is None or not _is_soft(g, p):
                        continue
                    st = g.a.structure_at(p)
                    if avoid is not None and st is not None and st.name == avoid:
                        continue
                    found = p
                    break
                if found is not None:
                    break
            if found is not None:
                pts.append(found)
    if len(pts) < 2:
        return None
    pts = np.array(pts)
    pts = pts[np.argsort(-pts[:, 2], kind="stable")]
    return _drop_kinks(pts)


KINK_MM = 8.0  # a nerve runs smoothly along the bodies: an inner point this far off its neighbours' mid-point is dropped


def _drop_kinks(pts: np.ndarray) -> np.ndarray:
    """Drop inner points that sit more than KINK_MM (in the axial plane) off the mid-point of their
    neighbours: a slice where the ray had to turn forwards lands in front of the chain."""
    keep = np.ones(len(pts), dtype=bool)
    prev = 0
    for i in range(1, len(pts) - 1):
        mid = 0.5 * (pts[prev, :2] + pts[i + 1, :2])  # the last point kept, the next one
        if np.linalg.norm(pts[i, :2] - mid) > KINK_MM:
            keep[i] = False
        else:
            prev = i
    return pts[keep]


def _is_soft(g: _Geometry, p: np.ndarray) -> bool:
    return int(g.a.tissue_at(p[None])[0]) in _SOFT


def _splanchnic(g: _Geometry, side: str) -> Proposal | None:
    pts = _on_bodies(g, ["vertebrae_T11", "vertebrae_T12"], side, SPLANCHNIC_ANGLE_DEG, SPLANCHNIC_OFFSET_MM)
    if pts is None:
        return None
    return Proposal(f"splanchnic_{side}", "polyline", pts, 2.0, side,
                    f"Greater splanchnic nerve, {side}: over the anterolateral surface of the T11-T12 bodies")


def _sympathetic_chain(g: _Geometry, side: str) -> Proposal | None:
    names = [n for n in ("vertebrae_L2", "vertebrae_L3", "vertebrae_L4") if g.has(n)]
    psoas = f"iliopsoas_{side}"
    pts = _on_bodies(g, names, side, CHAIN_ANGLE_DEG, CHAIN_OFFSET_MM, avoid=psoas)
    if pts is None:
        return None
    levels = ", ".join(n.split("_")[1] for n in names)
    return Proposal(f"sympathetic_chain_{side}", "polyline", pts, 2.0, side,
                    f"Lumbar sympathetic chain, {side}: on the anterolateral surface of the {levels} bodies, "
                    f"medial to the psoas")


def _midline(g: _Geometry, level: int) -> float | None:
    for name in (f"vertebrae_T{level}", f"vertebrae_T{min(level + 1, 12)}", f"vertebrae_T{max(level - 1, 1)}"):
        body = g.body(name)
        if body is not None:
            return float(body.center_mm[0]), float(body.center_mm[1])
    cord = g.voxels_mm("spinal_cord")
    if cord is not None:
        return float(cord[:, 0].mean()), float(cord[:, 1].mean()) + 25.0
    return None


def _intercostal(g: _Geometry, side: str, n: int) -> Proposal | None:
    name = f"rib_{side}_{n}"
    pts = g.voxels_mm(name)
    if pts is None or len(pts) < 20:
        return None
    ref = _midline(g, n)
    if ref is None:
        return None
    x_mid, y_body = ref
    lateral = _side_sign(side) * (pts[:, 0] - x_mid)
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
        outward = np.array([_side_sign(side), 0.0, 0.0])
        for step in np.arange(0.0, 5.01, 1.0):
            q = p + outward * step
            if _is_soft(g, q):
                out.append(q)
                break
    if len(out) < 2:
        return None
    return Proposal(f"intercostal_{side}_{n}", "polyline", np.array(out), 1.0, side,
                    f"Intercostal nerve {n}, {side}: along the lower border of rib {n} from the rib angle "
                    f"laterally")


_CACHE: dict[int, tuple[weakref.ref, dict[str, Proposal]]] = {}


def propose_targets(anatomy: Anatomy) -> dict[str, Proposal]:
    """All proposals the anatomy's labels support (name -> Proposal); cached per anatomy object."""
    key = id(anatomy)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is anatomy:
        return hit[1]
    g = _Geometry(anatomy)
    out: dict[str, Proposal] = {}

    def add(p: Proposal | None) -> None:
        if p is not None:
            out[p.name] = p

    for side in ("left", "right"):
        add(_celiac(g, side))
    for side in ("left", "right"):
        add(_splanchnic(g, side))
    for side in ("left", "right"):
        for n in range(1, 13):
            add(_intercostal(g, side, n))
    for side in ("left", "right"):
        add(_sympathetic_chain(g, side))
    try:
        ref = weakref.ref(anatomy, lambda _r, k=key: _CACHE.pop(k, None))
    except TypeError:
        return out
    _CACHE[key] = (ref, out)
    return out


def propose(anatomy: Anatomy, name: str) -> Proposal | None:
    """One proposal by name (None if the anatomy's labels do not support it)."""
    return propose_targets(anatomy).get(name)


def target_points(anatomy, points_mm, proposal):
    """The one rule for where a target is: its own points (`points_mm`, returned as given) when it
    has any, else the points of its `proposal` on `anatomy` ((N, 3) array), else None. Used by the
    scoring (`metrics.resolve_targets`), the plan check, the trainer and the editor."""
    if points_mm is not None and len(points_mm):
        return points_mm
    if proposal and anatomy is not None:
        p = propose(anatomy, str(proposal))
        if p is not None:
            return p.points_mm
    return None
