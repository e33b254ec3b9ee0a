"""Where each scripted needle goes: one `NeedlePlan` per target, from the scenario's own plan.

A needle plan is a skin entry, the tip's goal and the target it serves. It comes from the
scenario (`Scenario.trajectory_for(target.id)`: the planned trajectory naming the target, or the
only trajectory of a one-target scenario); a target without one is an error the script reports
(`ScriptError`), never a guess.

Anatomy helpers used by the faults (a needle at the wrong level, on the wrong side, in a muscle,
a vessel, the pleura or the dura) live here too: they read the anatomy's labels and tissues only.
"""
from __future__ import annotations

import re
import weakref
from dataclasses import dataclass, replace

import numpy as np

from simulator.core.geometry import normalize
from simulator.core.tissue import BONE, VESSEL, Tissue

#: Techniques that touch bone first and walk off it (by `Scenario.procedure`): the expert aims at
#: the vertebral body next to the planned path, notes the depth at contact, withdraws half way and
#: turns towards the target. Every other procedure goes straight along its plan.
TOUCH_BONE_FIRST = {"celiac_plexus", "splanchnic", "lumbar_sympathetic", "superior_hypogastric"}

_LEVEL = re.compile(r"^(vertebrae_)([CTLS])(\d+)$|^(rib_(?:left|right)_)(\d+)$")
_SPINE_ORDER = [f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)] + ["S1"]


class ScriptError(ValueError):
    """The script cannot drive this scenario as asked (the message says why)."""


@dataclass(frozen=True)
class NeedlePlan:
    target_id: str
    target_name: str
    entry_mm: np.ndarray  # on (or just above) the skin
    goal_mm: np.ndarray  # where the tip should end
    tolerance_mm: float
    side: str = "midline"
    touch_bone: bool = False  # aim at the nearest vertebral body first and walk off it

    @property
    def direction(self) -> np.ndarray:
        return normalize(self.goal_mm - self.entry_mm)

    @property
    def length_mm(self) -> float:
        return float(np.linalg.norm(self.goal_mm - self.entry_mm))

    def shifted(self, delta_mm) -> "NeedlePlan":
        d = np.asarray(delta_mm, dtype=np.float64)
        return replace(self, entry_mm=self.entry_mm + d, goal_mm=self.goal_mm + d)


def needle_plans(scenario, targets, all_targets: bool = False) -> list[NeedlePlan]:
    """One plan per required target (every target with `all_targets`), in the scenario's order."""
    touch = str(getattr(scenario.procedure, "value", scenario.procedure)) in TOUCH_BONE_FIRST
    out = []
    for tg in targets:
        if not (tg.required or all_targets):
            continue
        traj = scenario.trajectory_for(tg.id)
        if traj is None:
            raise ScriptError(f"scenario {scenario.id!r}: target {tg.id!r} has no planned trajectory naming it "
                              f"(planned_trajectory / additional_trajectories with target_id: {tg.id})")
        out.append(NeedlePlan(tg.id, tg.name, np.asarray(traj.entry_mm, float), np.asarray(traj.target_mm, float),
                              float(tg.tolerance_mm), tg.side, touch))
    if not out:
        raise ScriptError(f"scenario {scenario.id!r} has no target to drive a needle to")
    return out


# --------------------------------------------------------------------------------------------
# anatomy look-ups
# --------------------------------------------------------------------------------------------


_INDEX: dict[int, tuple] = {}  # id(anatomy) -> (weak reference, index)


def _label_index(anatomy) -> dict:
    """Per label: the bounding box (slices) and centroid (RAS mm) of its voxels; computed once per
    anatomy (one pass over the label volume)."""
    ref, idx = _INDEX.get(id(anatomy), (None, None))
    if ref is None or ref() is not anatomy:
        from scipy import ndimage

        labels = anatomy.labels
        boxes = ndimage.find_objects(labels)
        idx = {}
        for lab, box in enumerate(boxes, start=1):
            if box is None:
                continue
            sub = np.argwhere(labels[box] == lab)
            if len(sub) == 0:
                continue
            lo = np.array([b.start for b in box])
            idx[lab] = (box, anatomy.origin_mm + (sub.mean(axis=0) + lo) * anatomy.spacing_mm)
        _INDEX[id(anatomy)] = (weakref.ref(anatomy), idx)
    return idx


def structure_points(anatomy, name: str) -> np.ndarray:
    """Voxel centres of a named structure (RAS mm)."""
    s = anatomy.structure_by_name(name)
    entry = None if s is None else _label_index(anatomy).get(s.id)
    if entry is None:
        return np.zeros((0, 3))
    box = entry[0]
    sub = np.argwhere(anatomy.labels[box] == s.id) + np.array([b.start for b in box])
    return anatomy.origin_mm + sub * anatomy.spacing_mm


def centroid(anatomy, name: str) -> np.ndarray | None:
    s = anatomy.structure_by_name(name)
    entry = None if s is None else _label_index(anatomy).get(s.id)
    return None if entry is None else entry[1]


def tissue_points(anatomy, tissues, near_mm, within_mm: float) -> np.ndarray:
    """Voxel centres of the given tissue classes within `within_mm` of `near_mm`."""
    near = np.asarray(near_mm, dtype=np.float64)
    lo = np.floor((near - within_mm - anatomy.origin_mm) / anatomy.spacing_mm).astype(int)
    hi = np.ceil((near + within_mm - anatomy.origin_mm) / anatomy.spacing_mm).astype(int) + 1
    lo = np.clip(lo, 0, np.array(anatomy.tissue.shape))
    hi = np.clip(hi, 0, np.array(anatomy.tissue.shape))
    sub = anatomy.tissue[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    mask = np.isin(sub, np.array([int(t) for t in tissues], dtype=sub.dtype))
    idx = np.argwhere(mask) + lo
    pts = anatomy.origin_mm + idx * anatomy.spacing_mm
    return pts[np.linalg.norm(pts - near, axis=1) <= within_mm]


def level_structures(anatomy) -> dict[str, tuple[str, int]]:
    """Bone structures that name a level: name -> (family, order) (vertebrae by spine order, ribs
    per side by number)."""
    out = {}
    for s in anatomy.structures.values():
        m = _LEVEL.match(s.name)
        if not m:
            continue
        if m.group(1):
            key = f"{m.group(2)}{m.group(3)}"
            if key in _SPINE_ORDER:
                out[s.name] = ("vertebrae_", _SPINE_ORDER.index(key))
        else:
            out[s.name] = (m.group(4), int(m.group(5)))
    return out


def level_of(anatomy, point_mm, family: str | None = None, centroids: dict | None = None) -> str | None:
    """The level structure (vertebra or rib) whose centroid is nearest `point_mm` (of one family)."""
    cents = centroids if centroids is not None else level_centroids(anatomy)
    p = np.asarray(point_mm, dtype=np.float64)
    best, best_d = None, np.inf
    for name, (fam, _order, c) in cents.items():
        if family is not None and fam != family:
            continue
        d = float(np.linalg.norm(c - p))
        if d < best_d:
            best, best_d = name, d
    return best


def level_centroids(anatomy) -> dict[str, tuple[str, int, np.ndarray]]:
    out = {}
    for name, (fam, order) in level_structures(anatomy).items():
        c = centroid(anatomy, name)
        if c is not None:
            out[name] = (fam, order, np.asarray(c, dtype=np.float64))
    return out


def neighbour_level(anatomy, point_mm, family: str | None = None) -> tuple[str, str, np.ndarray] | None:
    """(level at the point, the next level caudally - cranially when there is none, the vector
    from one centroid to the other) or None when the anatomy has no levels."""
    cents = level_centroids(anatomy)
    if family is None:
        near = level_of(anatomy, point_mm, centroids=cents)
        if near is None:
            return None
        family = cents[near][0]
    here = level_of(anatomy, point_mm, family, cents)
    if here is None:
        return None
    fam, order, c = cents[here]
    same = {n: v for n, v in cents.items() if v[0] == fam}
    for step in (1, -1):
        for n, (_f, o, c2) in same.items():
            if o == order + step:
                return here, n, c2 - c
    return None


def midline_x(anatomy, point_mm) -> float:
    """The patient's midline (RAS x) near a point: the nearest vertebra's centroid, else the
    anatomy's centre."""
    cents = {n: v for n, v in level_centroids(anatomy).items() if v[0] == "vertebrae_"}
    if cents:
        p = np.asarray(point_mm, dtype=np.float64)
        name = min(cents, key=lambda n: float(np.linalg.norm(cents[n][2] - p)))
        return float(cents[name][2][0])
    lo, hi = anatomy.bounds_mm()
    return float(0.5 * (lo[0] + hi[0]))


def nearest_vertebra(anatomy, point_mm) -> str | None:
    cents = {n: v for n, v in level_centroids(anatomy).items() if v[0] == "vertebrae_"}
    if not cents:
        return None
    p = np.asarray(point_mm, dtype=np.float64)
    return min(cents, key=lambda n: float(np.linalg.norm(cents[n][2] - p)))


def clear_line(probe, entry, aim, stop_tissues=(), critical=None) -> bool:
    """Does the line entry -> aim meet no bone (and nothing `critical(tis, lab)` calls critical)
    before its last 1.5 mm?"""
    entry = np.asarray(entry, dtype=np.float64)
    aim = np.asarray(aim, dtype=np.float64)
    length = float(np.linalg.norm(aim - entry))
    if length <= 0:
        return False
    for t, tis, lab in probe.runs(entry, aim):
        if t * length >= length - 1.5:
            break
        if Tissue(tis) in BONE or Tissue(tis) in stop_tissues:
            return False
        if critical is not None and critical(tis, lab):
            return False
    return True


def reachable_point(probe, entry, candidates, goal, stop_tissues=(), critical=None, tries: int = 60):
    """Of `candidates`, the one nearest `goal` whose line from the entry is clear (see
    `clear_line`); None if none of the nearest `tries` is."""
    if len(candidates) == 0:
        return None
    order = np.argsort(np.linalg.norm(candidates - np.asarray(goal, dtype=np.float64), axis=1))
    step = max(1, len(order) // (tries * 4))
    for i in order[: tries * step: step]:
        if clear_line(probe, entry, candidates[i], stop_tissues, critical):
            return candidates[i]
    return None


def bone_aim(proc, entry, goal):
    """A point on the vertebral body next to the planned path whose line from the entry meets bone
    before anything the scenario calls critical: where an expert first touches the body (None if
    there is none)."""
    an = proc.anatomy
    name = nearest_vertebra(an, goal)
    if name is None:
        return None
    pts = structure_points(an, name)
    entry = np.asarray(entry, dtype=np.float64)
    d = normalize(np.asarray(goal, dtype=np.float64) - entry)
    along = (pts - entry) @ d
    off = np.linalg.norm(pts - entry - along[:, None] * d, axis=1)
    probe = proc.probe_tissue
    for i in np.argsort(off)[:400:8]:
        aim = pts[i]
        for _, tis, lab in probe.runs(entry, aim):
            if Tissue(tis) in BONE:
                return aim
            if proc.is_critical(tis, lab):
                break
    return None


VESSELS = tuple(VESSEL)
