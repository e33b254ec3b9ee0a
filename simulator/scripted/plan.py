"""Where each scripted needle goes: one `NeedlePlan` per target, from the scenario's own plan.

A needle plan is a skin entry, the tip's goal and the target it serves. It comes from the
scenario (`Scenario.trajectory_for(target.id)`: the planned trajectory naming the target, or the
only trajectory of a one-target scenario); a target without one is an error the script reports
(`ScriptError`), never a guess.

Anatomy helpers used by the faults (a needle at the wrong level, on the wrong side, in a muscle,
a vessel, the pleura or the dura) live here too: they read the anatomy's labels and tissues only.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from simulator.core.geometry import normalize
from simulator.core.levels import nearest_vertebra, structure_points
from simulator.core.tissue import BONE, Tissue

#: Techniques that touch bone first and walk off it (by `Scenario.procedure`): the expert aims at
#: the vertebral body next to the planned path, notes the depth at contact, withdraws half way and
#: turns towards the target. Every other procedure goes straight along its plan.
TOUCH_BONE_FIRST = {"celiac_plexus", "splanchnic", "lumbar_sympathetic", "superior_hypogastric"}



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
    target_mm: np.ndarray | None = None  # the target's point nearest the goal (a walk-off keeps near it)

    @property
    def direction(self) -> np.ndarray:
        return normalize(self.goal_mm - self.entry_mm)

    @property
    def length_mm(self) -> float:
        return float(np.linalg.norm(self.goal_mm - self.entry_mm))

    def shifted(self, delta_mm) -> "NeedlePlan":
        d = np.asarray(delta_mm, dtype=np.float64)
        return replace(self, entry_mm=self.entry_mm + d, goal_mm=self.goal_mm + d,
                       target_mm=None if self.target_mm is None else self.target_mm + d)


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
        entry = np.asarray(traj.entry_mm, float)
        goal = beside_nerve(tg, entry, np.asarray(traj.target_mm, float))
        pts = np.asarray(tg.points_mm, dtype=np.float64)
        near = pts[int(np.argmin(np.linalg.norm(pts - goal, axis=1)))]
        out.append(NeedlePlan(tg.id, tg.name, entry, goal, float(tg.tolerance_mm), tg.side, touch, near))
    if not out:
        raise ScriptError(f"scenario {scenario.id!r} has no target to drive a needle to")
    return out


EXTRANEURAL_MM = 0.75  # the tip stops this far outside a somatic nerve's surface


def beside_nerve(tg, entry, goal) -> np.ndarray:
    """A plan's goal inside a somatic nerve moved back along the path until the tip is just outside
    it (an injection belongs beside a nerve, never in it)."""
    if not (tg.is_nerve and tg.kind == "polyline"):
        return goal
    d = normalize(goal - entry)
    for _ in range(80):
        if float(tg.centre_distance(goal)[0]) >= tg.radius_mm + EXTRANEURAL_MM:
            break
        goal = goal - 0.25 * d
    return goal


# --------------------------------------------------------------------------------------------
# anatomy look-ups
# --------------------------------------------------------------------------------------------


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


def avoided(proc):
    """`critical(tissue, label)` for `clear_line`: the scenario's critical structures a needle must not
    cross - all but those it lists as minor (crossed on purpose: the aorta of a transaortic block)."""
    crit = [c for c in proc.scenario.critical_structures if str(getattr(c.severity, "value", c.severity)) != "minor"]
    names = {c.structure for c in crit if c.structure}
    tissues = {int(Tissue[str(getattr(c.tissue, "value", c.tissue)).upper()]) for c in crit if c.tissue}
    name_of = proc.probe_tissue.name_of
    return lambda tis, lab: int(tis) in tissues or (bool(names) and name_of(lab) in names)


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

