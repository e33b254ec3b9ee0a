"""Geometry for placing nerve targets on a label map: structures' voxels, vertebral bodies and
points on their surfaces (used by the proposal modules: `proposals_trunk.py`, `proposals_girdle.py`).

A vertebral body is the part of the vertebra mask in front of its vertebral foramen (the hole that
the vertebra's mask encloses when projected along z); without a visible foramen, the part in front
of the spinal cord/canal, else the front 45 % of the vertebra.

Angles are measured in the axial plane from straight anterior (+y) towards the patient's side
(left = -x in RAS).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from simulator.core.anatomy import Anatomy
from simulator.core.tissue import Tissue


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
    cut: bool = False  # the scan ends inside it (its first or last slice holds the body)


class LabelGeometry:
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
        ks = body[:, 2]
        cut = bool(ks.min() == 0 or ks.max() == self.a.labels.shape[2] - 1)
        return VertebralBody(name, body, world, world.mean(axis=0), (float(world[:, 2].min()), float(world[:, 2].max())),
                             cut)

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


def surface_point(slice_pts: np.ndarray, spacing: np.ndarray, direction_xy: np.ndarray, offset_mm: float):
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


def side_sign(side: str) -> float:
    """+x is the patient's right; the left side has smaller x."""
    return -1.0 if side == "left" else 1.0


def direction(side: str, angle_from_anterior_deg: float) -> np.ndarray:
    a = np.radians(angle_from_anterior_deg)
    return np.array([side_sign(side) * np.sin(a), np.cos(a)])


SOFT = {int(Tissue.FAT), int(Tissue.SOFT_TISSUE), int(Tissue.MUSCLE), int(Tissue.NERVE)}


def step_out_of(g: LabelGeometry, p: np.ndarray, d: np.ndarray, max_mm: float = 8.0) -> np.ndarray:
    """Move p along d (1 mm steps, up to max_mm) until it lies in loose soft tissue (fat, soft
    tissue, muscle) rather than inside an organ or vessel; p unchanged if none is found."""
    for s in np.arange(0.0, max_mm + 1e-6, 1.0):
        q = p + s * d
        if int(g.a.tissue_at(q[None])[0]) in SOFT:
            return q
    return p


def body_point(g: LabelGeometry, name: str, side: str, angle: float, offset: float, fraction: float,
               avoid: tuple[str, ...] = ()) -> np.ndarray | None:
    """A point on the surface of vertebral body `name`: in its axial slice at `fraction` of its height
    (0 its lower end plate, 1 its upper), a ray from the slice's centroid at `angle` from anterior
    towards `side`, `offset` mm beyond the bone. The point must land in loose soft tissue (not bone,
    lung, organ or vessel, nor in a structure named in `avoid`); otherwise the ray is turned forwards
    (10, 20, 30 deg) and brought closer. None when there is no such point."""
    body = g.body(name)
    if body is None:
        return None
    z0, z1 = body.z_range_mm
    sl = g.body_slice(body, z0 + fraction * (z1 - z0))
    for a in (angle, angle - 10, angle - 20, angle - 30):
        for off in (offset, 0.5 * offset):
            p = surface_point(sl, g.a.spacing_mm, direction(side, a), off)
            if p is None or not is_soft(g, p):
                continue
            st = g.a.structure_at(p)
            if st is not None and st.name in avoid:
                continue
            return p
    return None


def on_bodies(g: LabelGeometry, names: list[str], side: str, angle: float, offset: float,
              per_body: int = 3, avoid: tuple[str, ...] = ()) -> np.ndarray | None:
    """Points on the surfaces of vertebral bodies (`body_point` at `per_body` heights from 80 % to
    20 % of each body), cranial to caudal, with kinks dropped; None for fewer than two."""
    pts = []
    for name in names:
        for f in np.linspace(0.8, 0.2, per_body):
            p = body_point(g, name, side, angle, offset, f, avoid)
            if p is not None:
                pts.append(p)
    if len(pts) < 2:
        return None
    pts = np.array(pts)
    pts = pts[np.argsort(-pts[:, 2], kind="stable")]
    return drop_kinks(pts)


KINK_MM = 8.0  # a nerve runs smoothly along the bodies: an inner point this far off its neighbours' mid-point is dropped


def drop_kinks(pts: np.ndarray) -> np.ndarray:
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


def is_soft(g: LabelGeometry, p: np.ndarray) -> bool:
    return int(g.a.tissue_at(p[None])[0]) in SOFT
