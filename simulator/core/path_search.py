"""A clear straight needle path to a target on a given patient, near a preferred approach.

Used to place a scenario's planned needles on a patient it was not written for (`fitting.py`), and
by the library's authors to find the planned paths on the bundled patients. Every candidate is the
editor's own plan check (`plan_check.check_trajectory`) with the scenario's critical structures:

- the preferred approach is a direction from the target towards the skin (the authored path's,
  reversed); candidates turn away from it on cones of 0, 3, 6 ... `max_deviation_deg` degrees,
  12 around each cone, the smallest turn first;
- the tip goes to the target's point, else to one of six points GOAL_SHIFT_MM from it (still well
  inside the target's tolerance), when no line reaches the point itself at that turn;
- a candidate's entry is where the line leaves the body going outwards from the target (the skin),
  half a millimetre outside it; the line must stay in the body for at least `min_depth_mm`;
- a candidate is accepted when the plan check finds no problem with it (bone only in the last 2
  mm, no critical or forbidden tissue, the shaft fits with 10 mm to spare, the tip within the
  target's tolerance), except crossings of structures the scenario lists as minor (the aorta of a
  transaortic celiac block is crossed on purpose).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulator.core.plan_check import HUB_MARGIN_MM, PathProblem, check_trajectory
from simulator.core.tissue import BONE, Tissue

_BONE_CODES = np.array(sorted(int(t) for t in BONE))
STEP_DEG = 3.0
AROUND = 12
OUTSIDE_MM = 0.5  # the entry sits this far outside the skin
AIR_RUN_MM = 6.0  # this much air beyond the surface: outside the body (not a gas pocket)
EDGE_MM = 3.0  # a surface this close to the grid's faces is where the scan ends, not skin
GOAL_SHIFT_MM = 2.5
BONE_NEAR_TIP_MM = 25.0  # bone clearance is not asked of the needle's last part (it may rest on bone)  # the tip may end this far from the target's point (inside its tolerance)


@dataclass(frozen=True)
class FoundPath:
    entry_mm: np.ndarray
    target_mm: np.ndarray
    deviation_deg: float  # from the preferred approach

    @property
    def length_mm(self) -> float:
        return float(np.linalg.norm(self.target_mm - self.entry_mm))


class NoClearPath(ValueError):
    """No clear path within the allowed deviation; `problems` are those of the preferred line."""

    def __init__(self, message: str, problems: list[PathProblem]):
        super().__init__(message)
        self.problems = problems


def skin_entry(anatomy, target_mm, outward, max_mm: float = 400.0, step_mm: float = 0.25) -> np.ndarray | None:
    """Where the line from `target_mm` along `outward` leaves the body (followed by AIR_RUN_MM of
    air), OUTSIDE_MM outside it; None if it does not leave within max_mm, or leaves through the
    scan's end or a field-of-view cut (within EDGE_MM of the grid's faces: no skin there)."""
    t = np.asarray(target_mm, float)
    d = np.asarray(outward, float)
    d = d / np.linalg.norm(d)
    s = np.arange(0.0, max_mm, step_mm)
    air = anatomy.tissue_at(t + s[:, None] * d) == int(Tissue.AIR)
    run = int(round(AIR_RUN_MM / step_mm))
    lo, hi = anatomy.bounds_mm()
    for i in np.flatnonzero(air):
        if air[i:i + run].all() and i + run <= len(air):
            surface = t + (s[i] - step_mm) * d
            if np.any(surface - lo < EDGE_MM) or np.any(hi - surface < EDGE_MM):
                return None  # the scan's end or field-of-view cut, not skin
            return surface + OUTSIDE_MM * d
    return None


def _cone(axis: np.ndarray, angle_deg: float, n: int):
    axis = axis / np.linalg.norm(axis)
    helper = np.array([0.0, 0.0, 1.0]) if abs(axis[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(axis, helper)
    u /= np.linalg.norm(u)
    v = np.cross(axis, u)
    a = math.radians(angle_deg)
    if angle_deg == 0.0:
        yield axis
        return
    for k in range(n):
        phi = 2.0 * math.pi * k / n
        yield math.cos(a) * axis + math.sin(a) * (math.cos(phi) * u + math.sin(phi) * v)


def _bone_clearance_ok(anatomy, entry, goal, clearance_mm: float, tip_mm: float) -> bool:
    """No bone within `clearance_mm` of the line before its last `tip_mm` (a needle that grazes a
    vertebra far from its target cannot be steered past it)."""
    if clearance_mm <= 0:
        return True
    v = goal - entry
    length = float(np.linalg.norm(v))
    s = np.arange(0.0, max(length - tip_mm, 0.0), 0.5)
    if not len(s):
        return True
    pts = entry + (s / length)[:, None] * v
    u = _unit_perp(v / length)
    for du in (u, np.cross(v / length, u)):
        for sign in (1.0, -1.0):
            if np.isin(anatomy.tissue_at(pts + sign * clearance_mm * du), _BONE_CODES).any():
                return False
    return True


def _unit_perp(d: np.ndarray) -> np.ndarray:
    helper = np.array([0.0, 0.0, 1.0]) if abs(d[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(d, helper)
    return u / np.linalg.norm(u)


def _crosses(anatomy, entry, goal, name: str) -> bool:
    st = anatomy.structure_by_name(name)
    if st is None:
        return False
    s = np.linspace(0.0, 1.0, int(np.linalg.norm(goal - entry) / 0.25) + 2)[:, None]
    return bool(np.any(anatomy.label_at(entry + s * (goal - entry)) == st.id))


def find_path(anatomy, scenario, target_mm, outward, target_id: str | None = None,
              max_deviation_deg: float = 21.0, min_depth_mm: float = 10.0, through: str | None = None,
              bone_clearance_mm: float = 0.0) -> FoundPath:
    """The clear path nearest to the preferred approach (`outward`: from the target towards the
    skin); with `through`, one that crosses that structure (a transaortic needle); with
    `bone_clearance_mm`, one that keeps that far from bone until its last BONE_NEAR_TIP_MM. Raises
    NoClearPath naming what blocks the preferred line."""
    target = np.asarray(target_mm, float)
    pref = np.asarray(outward, float)
    pref = pref / np.linalg.norm(pref)
    first_problems: list[PathProblem] | None = None
    needle = float(scenario.needle.length_mm)
    dev = 0.0
    goals = [target] + [target + GOAL_SHIFT_MM * np.array(v) for v in
                        ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))]
    while dev <= max_deviation_deg + 1e-9:
        for goal in goals:
            for d in _cone(pref, dev, AROUND):
                entry = skin_entry(anatomy, goal, d)
                if entry is None or np.linalg.norm(entry - goal) < min_depth_mm:
                    continue
                if np.linalg.norm(entry - goal) > needle - HUB_MARGIN_MM - 0.2:  # rounding room
                    if first_problems is None:
                        first_problems = [PathProblem("too_long", needle, float(np.linalg.norm(entry - goal)),
                                                      "needle", "critical", "the path is longer than the needle allows")]
                    continue
                problems = [p for p in check_trajectory(anatomy, scenario, entry, goal, target_id=target_id)
                            if not (p.kind == "critical" and p.severity == "minor")]
                if not problems and (through is None or _crosses(anatomy, entry, goal, through)) \
                        and _bone_clearance_ok(anatomy, entry, goal, bone_clearance_mm, BONE_NEAR_TIP_MM):
                    return FoundPath(entry, goal, dev)
                if first_problems is None:
                    first_problems = problems
        dev += STEP_DEG
    what = "; ".join(p.message for p in (first_problems or [])[:3]) or "no entry on the skin"
    raise NoClearPath(f"no clear straight path to {target_id or 'the target'} within {max_deviation_deg:g} deg of "
                      f"the planned approach ({what})", first_problems or [])
