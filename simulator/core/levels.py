"""Vertebral and rib levels of an anatomy, and the patient's midline: "which level is this point
at, which side is it on?" (wrong level or side, in the score; the scripted faults).

Levels are the labelled bone structures named like TotalSegmentator's: `vertebrae_T12`, `vertebrae_L1`
(ordered C1 .. S1) and `rib_left_10` / `rib_right_10` (ordered by number, per side). Per anatomy the
labels' bounding boxes are found once (one pass over the label volume), each centroid once.
"""
from __future__ import annotations

import re
import weakref

import numpy as np

_LEVEL = re.compile(r"^(vertebrae_)([CTLS])(\d+)$|^(rib_(?:left|right)_)(\d+)$")
SPINE_ORDER = [f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)] + ["S1"]
VERTEBRAE = "vertebrae_"

_INDEX: dict[int, tuple] = {}  # id(anatomy) -> (weak reference, boxes, centroids)


def _index(anatomy) -> tuple[list, dict]:
    ref, boxes, cents = _INDEX.get(id(anatomy), (None, None, None))
    if ref is None or ref() is not anatomy:
        from scipy import ndimage

        boxes = ndimage.find_objects(anatomy.labels)
        cents = {}
        _INDEX[id(anatomy)] = (weakref.ref(anatomy), boxes, cents)
    return boxes, cents


def label_box(anatomy, label: int):
    """The bounding box (slices) of a label's voxels, or None."""
    boxes, _ = _index(anatomy)
    return boxes[label - 1] if 0 < label <= len(boxes) else None


def label_centroid(anatomy, label: int) -> np.ndarray | None:
    """Centroid (RAS mm) of a label's voxels (computed once per anatomy and label)."""
    _, cents = _index(anatomy)
    if label not in cents:
        box = label_box(anatomy, label)
        c = None
        if box is not None:
            sub = np.argwhere(anatomy.labels[box] == label)
            if len(sub):
                lo = np.array([b.start for b in box])
                c = anatomy.origin_mm + (sub.mean(axis=0) + lo) * anatomy.spacing_mm
        cents[label] = c
    return cents[label]


def structure_points(anatomy, name: str) -> np.ndarray:
    """Voxel centres of a named structure (RAS mm; empty when the anatomy has none)."""
    s = anatomy.structure_by_name(name)
    box = None if s is None else label_box(anatomy, s.id)
    if box is None:
        return np.zeros((0, 3))
    sub = np.argwhere(anatomy.labels[box] == s.id) + np.array([b.start for b in box])
    return anatomy.origin_mm + sub * anatomy.spacing_mm


def level_centroids(anatomy) -> dict[str, tuple[str, int, np.ndarray]]:
    """name -> (family, order, centroid) of every level structure: family `vertebrae_` (order along
    the spine) or `rib_left_` / `rib_right_` (order = rib number)."""
    out = {}
    for s in anatomy.structures.values():
        m = _LEVEL.match(s.name)
        if not m:
            continue
        if m.group(1):
            key = f"{m.group(2)}{m.group(3)}"
            if key not in SPINE_ORDER:
                continue
            fam, order = VERTEBRAE, SPINE_ORDER.index(key)
        else:
            fam, order = m.group(4), int(m.group(5))
        c = label_centroid(anatomy, s.id)
        if c is not None:
            out[s.name] = (fam, order, c)
    return out


def level_of(anatomy, point_mm, family: str | None = None, centroids: dict | None = None) -> str | None:
    """The level (of one family, or any) of a point: for vertebrae the one whose centroid is
    nearest in height (RAS z: the spine's levels stack along it); for ribs the one with the nearest
    voxel, among those whose centroid is within 80 mm of the nearest (a rib's centroid says little
    about where along it the point is)."""
    cents = centroids if centroids is not None else level_centroids(anatomy)
    p = np.asarray(point_mm, dtype=np.float64)
    if family is None:
        fam = [(float(np.linalg.norm(c - p)), f) for f, _o, c in cents.values()]
        if not fam:
            return None
        family = min(fam)[1]
    cand = [(name, c) for name, (f, _o, c) in cents.items() if f == family]
    if not cand:
        return None
    if family == VERTEBRAE:
        return min(cand, key=lambda nc: abs(float(nc[1][2] - p[2])))[0]
    dist = sorted((float(np.linalg.norm(c - p)), name) for name, c in cand)
    best, best_d = None, np.inf
    for d, name in dist:
        if d > dist[0][0] + 80.0:
            break
        pts = structure_points(anatomy, name)
        dv = float(np.min(np.linalg.norm(pts - p, axis=1))) if len(pts) else np.inf
        if dv < best_d:
            best, best_d = name, dv
    return best


LEVEL_REACH_MM = 40.0  # a point farther than this (in height) from the nearest vertebra is at no level


def neighbour_level(anatomy, point_mm, family: str | None = None) -> tuple[str, str, np.ndarray] | None:
    """(the level at the point, the next level caudally - cranially when there is none, the vector
    from the one's centroid to the other's) or None when the anatomy has no levels, or the point
    is at none (more than LEVEL_REACH_MM above or below the nearest vertebra: the coccyx)."""
    cents = level_centroids(anatomy)
    here = level_of(anatomy, point_mm, family, cents)
    if here is None:
        return None
    fam, order, c = cents[here]
    if fam == VERTEBRAE and abs(float(c[2] - np.asarray(point_mm, dtype=np.float64)[2])) > LEVEL_REACH_MM:
        return None
    for step in (1, -1):
        for n, (f, o, c2) in cents.items():
            if f == fam and o == order + step:
                return here, n, c2 - c
    return None


def nearest_vertebra(anatomy, point_mm) -> str | None:
    return level_of(anatomy, point_mm, VERTEBRAE)


def midline_x(anatomy, point_mm) -> float:
    """The patient's midline (RAS x) near a point: the nearest vertebra's centroid, else the
    middle of the anatomy."""
    cents = level_centroids(anatomy)
    name = level_of(anatomy, point_mm, VERTEBRAE, cents)
    if name is not None:
        return float(cents[name][2][0])
    lo, hi = anatomy.bounds_mm()
    return float(0.5 * (lo[0] + hi[0]))


def level_name(structure: str) -> str:
    """'vertebrae_T12' -> 'T12', 'rib_left_10' -> 'left 10th rib'."""
    m = _LEVEL.match(structure)
    if not m:
        return structure.replace("_", " ")
    if m.group(1):
        return f"{m.group(2)}{m.group(3)}"
    n = int(m.group(5))
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{m.group(4)[4:-1]} {n}{suffix} rib"
