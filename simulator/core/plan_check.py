"""Does a planned needle path work on this anatomy? The editor's plan check.

A straight needle from a skin entry to a tip position is sampled every `step_mm` (nearest-voxel
look-ups in the anatomy's tissue and label volumes; the start of every run of samples is then
refined by bisection to 0.05 mm). Problems, one per run of consecutive samples:

    critical          a critical structure of the scenario (by structure name or tissue class);
                      severity: the structure's own
    forbidden_tissue  lung/airway (pleura: pneumothorax), spinal cord, CSF, brain (critical); vessels,
                      heart and organs (major) that the scenario does not list itself
    bone              bone before the last 2 mm of the path: the needle cannot pass (major); only
                      the first bone met (the needle stops there)
    leaves_body       air more than 5 mm after the entry (major)
    entry_off_skin    the entry is more than 5 mm above the skin, or inside the body (major)
    too_long          the path is longer than the needle (critical), or leaves less than 10 mm of
                      shaft at the hub (minor)
    misses_target     the tip is not within the target's tolerance (critical)
  and, from check_plan only:
    target_inside     a target point inside a critical structure, bone or air (critical/major)
    outside_anatomy   a target point or path end outside the anatomy's voxel grid (critical)
    unknown_structure a critical structure name the anatomy does not have (minor: it is never hit)

Severities are the scenario's words: "critical" (the plan cannot be used as it is: this is what the
interface first called "fatal"), "major", "minor". `s_mm` is the depth from the entry along the path
where the problem starts, `end_mm` where it ends.

No Qt, no VTK: numpy only. `check_trajectory` takes a `Scenario`, a `ScenarioDocument` (its current
fields, even while other fields have errors) or None.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Optional

import numpy as np

from simulator.core.tissue import BONE, ORGAN, Tissue

__all__ = [
    "PathProblem",
    "check_trajectory",
    "check_plan",
    "distance_to_target_mm",
    "SEVERITY_ORDER",
    "DEFAULT_FORBIDDEN",
    "HUB_MARGIN_MM",
    "worst",
]

SEVERITY_ORDER = {"critical": 0, "major": 1, "minor": 2}
HUB_MARGIN_MM = 10.0  # shaft to spare at the hub
_TISSUE_NAMES = frozenset(t.name.lower() for t in Tissue)
BONE_NAME_WITHIN_MM = 5.0  # an unlabelled bone voxel takes the name of a labelled bone this close
BONE_ALLOWED_LAST_MM = 2.0  # bone in the last 2 mm: the tip rests on it (walking off bone is a technique)
AIR_ALLOWED_FIRST_MM = 5.0  # the entry may lie up to 5 mm above the skin
REFINE_MM = 0.05

# Tissues a needle must not cross even when the scenario does not list them: tissue -> severity.
DEFAULT_FORBIDDEN: dict[Tissue, str] = {
    Tissue.LUNG: "critical",
    Tissue.AIRWAY: "critical",
    Tissue.SPINAL_CORD: "critical",
    Tissue.CSF: "critical",
    Tissue.BRAIN: "critical",
    Tissue.ARTERY: "major",
    Tissue.VEIN: "major",
    Tissue.HEART: "critical",
    **{t: "major" for t in ORGAN},
}


@dataclass(frozen=True)
class PathProblem:
    kind: str  # see the module doc
    s_mm: float  # depth from the entry where it starts
    length_mm: float  # the path's length
    what: str  # structure name or tissue name
    severity: str  # "critical" | "major" | "minor"
    message: str  # a sentence for the instructor, naming the structure and the depth
    end_mm: Optional[float] = None  # depth where it ends (runs of samples)
    trajectory: Optional[int] = None  # check_plan: index in scenario.trajectories
    target_id: Optional[str] = None  # the target concerned (misses_target, target_inside, ...)

    @property
    def fatal(self) -> bool:
        return self.severity == "critical"


# ---------------------------------------------------------------------------------------------
# What the check needs from a scenario (a model, a document being edited, or nothing)
# ---------------------------------------------------------------------------------------------

@dataclass
class _Critical:
    structure: Optional[str]
    tissue: Optional[str]
    severity: str
    message: Optional[str]


@dataclass
class _Target:
    id: str
    kind: str
    points_mm: Optional[np.ndarray]
    radius_mm: float
    tolerance_mm: float
    proposal: Optional[str]


@dataclass
class _Plan:
    critical: list[_Critical]
    targets: list[_Target]
    needle_length_mm: Optional[float]
    trajectories: list[tuple[tuple, tuple, Optional[str]]]  # (entry, target, target_id)


def _sev(v: Any) -> str:
    v = getattr(v, "value", v)
    return str(v) if str(v) in SEVERITY_ORDER else "major"


class _PlanHolder:
    """Lets check_plan hand its already-extracted plan to check_trajectory."""

    def __init__(self, plan: _Plan):
        self.plan = plan


def _plan(obj: Any) -> _Plan:
    if isinstance(obj, _PlanHolder):
        return obj.plan
    if obj is None:
        return _Plan([], [], None, [])
    if hasattr(obj, "get") and hasattr(obj, "text") and hasattr(obj, "scenario"):  # ScenarioDocument
        sc = obj.scenario()
        if sc is not None:
            return _plan(sc)
        return _plan_from_raw(obj.get((), {}) or {})
    if isinstance(obj, dict):
        return _plan_from_raw(obj)
    crit = [_Critical(c.structure, c.tissue, _sev(c.severity), c.message) for c in obj.critical_structures]
    targets = [_Target(t.id, t.kind, None if t.points_mm is None else np.asarray(t.points_mm, float),
                       float(t.radius_mm), float(t.tolerance_mm), t.proposal) for t in obj.targets]
    trajs = [(tuple(t.entry_mm), tuple(t.target_mm), t.target_id) for t in obj.trajectories]
    return _Plan(crit, targets, float(obj.needle.length_mm), trajs)


def _num(v, default=None):
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else default


def _vec(v) -> Optional[tuple]:
    if isinstance(v, (list, tuple)) and len(v) == 3 and all(_num(x) is not None for x in v):
        return tuple(float(x) for x in v)
    return None


def _plan_from_raw(raw: dict) -> _Plan:
    """Best effort from a document's plain fields (entries with errors are skipped)."""
    crit = []
    for c in raw.get("critical_structures") or []:
        if isinstance(c, dict) and (isinstance(c.get("structure"), str) or isinstance(c.get("tissue"), str)):
            crit.append(_Critical(c.get("structure") if isinstance(c.get("structure"), str) else None,
                                  c.get("tissue") if isinstance(c.get("tissue"), str) else None,
                                  _sev(c.get("severity", "major")), c.get("message")))
    targets = []
    for t in raw.get("targets") or []:
        if not isinstance(t, dict) or not isinstance(t.get("id"), str):
            continue
        pts = t.get("points_mm")
        arr = None
        if isinstance(pts, list) and pts and all(_vec(p) is not None for p in pts):
            arr = np.array([_vec(p) for p in pts], float)
        targets.append(_Target(t["id"], str(t.get("kind", "point")), arr, _num(t.get("radius_mm"), 0.0),
                               _num(t.get("tolerance_mm"), 5.0), t.get("proposal")))
    needle = raw.get("needle") if isinstance(raw.get("needle"), dict) else {}
    length = _num(needle.get("length_mm"), 150.0)
    trajs = []
    items = [raw.get("planned_trajectory")] + list(raw.get("additional_trajectories") or [])
    for t in items:
        if isinstance(t, dict) and _vec(t.get("entry_mm")) and _vec(t.get("target_mm")):
            tid = t.get("target_id") if isinstance(t.get("target_id"), str) else None
            trajs.append((_vec(t["entry_mm"]), _vec(t["target_mm"]), tid))
    return _Plan(crit, targets, length, trajs)


# ---------------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------------

def distance_to_target_mm(p, kind: str, points_mm, radius_mm: float = 0.0) -> float:
    """Tip-to-target distance as the schema defines it: to the point, to the nerve's surface
    (polyline: centre line minus radius) or to the sphere's surface; 0 inside."""
    p = np.asarray(p, float)
    pts = np.atleast_2d(np.asarray(points_mm, float))
    if kind == "polyline" and len(pts) >= 2:
        best = math.inf
        for a, b in zip(pts[:-1], pts[1:]):
            ab = b - a
            denom = float(ab @ ab)
            t = 0.0 if denom == 0 else float(np.clip((p - a) @ ab / denom, 0.0, 1.0))
            best = min(best, float(np.linalg.norm(p - (a + t * ab))))
        return max(0.0, best - radius_mm)
    d = float(np.linalg.norm(p - pts[0]))
    return max(0.0, d - (radius_mm if kind == "sphere" else 0.0))


def _target_points(anatomy, t: _Target) -> Optional[np.ndarray]:
    """The target's points: its own, else its label-based proposal on this anatomy."""
    from simulator.core.proposals import target_points  # late: scipy label analysis

    return target_points(anatomy, t.points_mm, t.proposal)


class _Sampler:
    """What lies at a point: (category key, severity, what, kind) or None for harmless tissue."""

    def __init__(self, anatomy, plan: _Plan, forbidden: dict[Tissue, str]):
        self.a = anatomy
        self.names = {int(sid): st.name for sid, st in anatomy.structures.items()}
        self.by_structure = {c.structure: c for c in plan.critical if c.structure}
        self.by_tissue = {c.tissue: c for c in plan.critical if c.tissue}
        self.forbidden = forbidden

    def classify(self, points: np.ndarray, s: np.ndarray, length: float) -> list[Optional[tuple]]:
        tissue = self.a.tissue_at(points)
        labels = self.a.label_at(points)
        return [self._one(int(t), int(l), float(si), length) for t, l, si in zip(tissue, labels, s)]

    def _one(self, t: int, label: int, s: float, length: float) -> Optional[tuple]:
        tissue = Tissue(t)
        tname = tissue.name.lower()
        name = self.names.get(label, "")
        c = self.by_structure.get(name) if name else None
        if c is None:
            c = self.by_tissue.get(tname)
        if c is not None:
            what = name or tname
            return ("critical", what, c.severity, c.message)
        if tissue in self.forbidden:
            return ("forbidden_tissue", name or tname, self.forbidden[tissue], None)
        if tissue in BONE and s < length - BONE_ALLOWED_LAST_MM:
            return ("bone", name or tname, "major", None)
        if tissue == Tissue.AIR:
            return ("air", "air", "major", None)
        return None


def _samples(entry: np.ndarray, target: np.ndarray, step_mm: float):
    length = float(np.linalg.norm(target - entry))
    n = max(2, int(math.ceil(length / step_mm)) + 1)
    s = np.linspace(0.0, length, n)
    v = (target - entry) / length
    return entry + s[:, None] * v, s, v, length


def _refine(sampler: _Sampler, entry, v, length, s_out: float, s_in: float, key) -> float:
    """Bisect between a sample without `key` (s_out) and one with it (s_in): where it starts."""
    while abs(s_in - s_out) > REFINE_MM:
        mid = 0.5 * (s_in + s_out)
        got = sampler.classify((entry + mid * v)[None], np.array([mid]), length)[0]
        if got is not None and got[:2] == key:
            s_in = mid
        else:
            s_out = mid
    return s_in


def _fmt(x: float) -> str:
    return f"{x:.1f}"


def check_trajectory(anatomy, scenario_or_doc_model, entry_mm, target_mm, step_mm: float = 0.5, *,
                     target_id: Optional[str] = None,
                     forbidden_tissues: Optional[dict] = None) -> list[PathProblem]:
    """Problems of a straight needle from `entry_mm` to `target_mm` (RAS mm) on `anatomy`, for the
    scenario's critical structures, needle and targets (see the module doc); [] when clean.
    `target_id` names the target the tip must reach (default: the nearest target with points)."""
    plan = _plan(scenario_or_doc_model)
    forbidden = DEFAULT_FORBIDDEN if forbidden_tissues is None else dict(forbidden_tissues)
    entry = np.asarray(entry_mm, float).reshape(3)
    target = np.asarray(target_mm, float).reshape(3)
    if float(np.linalg.norm(target - entry)) < 1.0:
        return [PathProblem("too_long", 0.0, 0.0, "path", "critical",
                            "The entry and the tip are less than 1 mm apart: there is no path to check.")]
    pts, s, v, length = _samples(entry, target, max(0.05, float(step_mm)))
    sampler = _Sampler(anatomy, plan, forbidden)
    cats = sampler.classify(pts, s, length)
    problems: list[PathProblem] = []
    L = _fmt(length)

    # runs of consecutive samples with the same finding
    runs: list[tuple[tuple, int, int]] = []
    for i, c in enumerate(cats):
        key = None if c is None else c[:2]
        if key is not None and runs and runs[-1][0][:2] == key and runs[-1][2] == i - 1:
            runs[-1] = (runs[-1][0], runs[-1][1], i)
        elif key is not None:
            runs.append((c, i, i))
    # bone stops the needle: only the first bone met is reported, named by the first labelled
    # bone structure within BONE_NAME_WITHIN_MM of it (cortex and marrow voxels may lack a label)
    bone_runs = [r for r in runs if r[0][0] == "bone"]
    if len(bone_runs) > 1:
        first = bone_runs[0]
        what = first[0][1]
        if what in _TISSUE_NAMES:
            for c, i0, _i1 in bone_runs[1:]:
                if float(s[i0] - s[first[1]]) > BONE_NAME_WITHIN_MM:
                    break
                if c[1] not in _TISSUE_NAMES:
                    what = c[1]
                    break
        runs = [r for r in runs if r[0][0] != "bone" or r is first]
        runs[runs.index(first)] = ((first[0][0], what) + tuple(first[0][2:]), first[1], first[2])
    for c, i0, i1 in runs:
        kind, what, severity, note = c
        start = 0.0 if i0 == 0 else _refine(sampler, entry, v, length, float(s[i0 - 1]), float(s[i0]), c[:2])
        end = float(s[i1])
        if kind == "air":
            if i0 == 0:
                if end <= AIR_ALLOWED_FIRST_MM:
                    continue
                skin = end if i1 == len(s) - 1 else _refine(sampler, entry, v, length, float(s[i1 + 1]), float(s[i1]), c[:2])
                problems.append(PathProblem(
                    "entry_off_skin", 0.0, length, "air", "major",
                    f"The entry lies {_fmt(skin)} mm above the skin: move it onto the body surface.", skin))
                continue
            if start <= AIR_ALLOWED_FIRST_MM:  # a gap just under the entry
                continue
            problems.append(PathProblem(
                "leaves_body", start, length, "air", "major",
                f"The path leaves the body (air) at {_fmt(start)} mm of {L} mm.", end))
            continue
        if kind == "critical":
            msg = f"Crosses the {what.replace('_', ' ')} ({severity} structure) at {_fmt(start)} mm of {L} mm"
            msg += f" (to {_fmt(end)} mm)." if end - start >= 1.0 else "."
            if note:
                msg += f" Trainee is told: {note}"
        elif kind == "forbidden_tissue":
            msg = (f"Crosses {what.replace('_', ' ')} at {_fmt(start)} mm of {L} mm"
                   + (" (pleura: pneumothorax)." if what.startswith("lung") or what == "airway" else ".")
                   + " The scenario does not list it as a critical structure.")
        else:  # bone (only the first: the needle stops there)
            msg = (f"Bone ({what.replace('_', ' ')}) at {_fmt(start)} mm of {L} mm blocks the needle "
                   f"before the target.")
        problems.append(PathProblem(kind, round(start, 2), length, what, severity, msg, round(end, 2)))

    # an entry inside the body: no air within 5 mm before it
    outside = entry - AIR_ALLOWED_FIRST_MM * v
    if int(anatomy.tissue_at(outside[None])[0]) != int(Tissue.AIR):
        problems.append(PathProblem(
            "entry_off_skin", 0.0, length, Tissue(int(anatomy.tissue_at(entry[None])[0])).name.lower(), "major",
            f"The entry is inside the body: no skin within {AIR_ALLOWED_FIRST_MM:.0f} mm before it. "
            "Move it back onto the body surface."))

    # needle length
    if plan.needle_length_mm is not None:
        needle = plan.needle_length_mm
        if length > needle:
            problems.append(PathProblem("too_long", needle, length, "needle", "critical",
                                        f"The path is {L} mm long: the {needle:.0f} mm needle cannot reach the target."))
        elif length > needle - HUB_MARGIN_MM:
            problems.append(PathProblem("too_long", length, length, "needle", "minor",
                                        f"The path is {L} mm long: the {needle:.0f} mm needle leaves less than "
                                        f"{HUB_MARGIN_MM:.0f} mm at the hub."))

    # the tip reaches its target
    candidates = [t for t in plan.targets if target_id is None or t.id == target_id]
    if target_id is not None and not candidates:
        problems.append(PathProblem("misses_target", length, length, target_id, "critical",
                                    f"The path leads to target {target_id!r}, which the scenario does not have.",
                                    target_id=target_id))
    else:
        best: Optional[tuple[float, _Target]] = None
        for t in candidates:
            tp = _target_points(anatomy, t)
            if tp is None:
                continue
            d = distance_to_target_mm(target, t.kind, tp, t.radius_mm)
            if best is None or d - t.tolerance_mm < best[0] - best[1].tolerance_mm:
                best = (d, t)
        if best is not None and best[0] > best[1].tolerance_mm:
            d, t = best
            problems.append(PathProblem(
                "misses_target", length, length, t.id, "critical",
                f"The tip is {_fmt(d)} mm from target {t.id} (tolerance {t.tolerance_mm:g} mm).",
                target_id=t.id))
    problems.sort(key=lambda p: (p.s_mm, SEVERITY_ORDER.get(p.severity, 3)))
    return problems


def _inside_grid(anatomy, p: np.ndarray) -> bool:
    lo, hi = anatomy.bounds_mm()
    return bool(np.all(p >= lo) and np.all(p <= hi))


def check_plan(anatomy, scenario) -> list[PathProblem]:
    """Every planned trajectory (`trajectory` = its index in scenario.trajectories), targets inside
    critical structures, bone or air, points outside the anatomy's grid, and critical structure names
    the anatomy lacks. `scenario`: a Scenario, a ScenarioDocument or a plain dict of fields."""
    plan = _plan(scenario)
    out: list[PathProblem] = []
    names = {st.name for st in anatomy.structures.values()}
    for c in plan.critical:
        if c.structure and c.structure not in names:
            out.append(PathProblem("unknown_structure", 0.0, 0.0, c.structure, "minor",
                                   f"Critical structure {c.structure!r} is not in anatomy {anatomy.name!r}: "
                                   f"it will never be touched."))
    sampler = _Sampler(anatomy, plan, DEFAULT_FORBIDDEN)
    for t in plan.targets:
        pts = _target_points(anatomy, t)
        if pts is None:
            continue
        for p in np.atleast_2d(pts):
            where = "[" + ", ".join(_fmt(x) for x in p) + "]"
            if not _inside_grid(anatomy, p):
                out.append(PathProblem("outside_anatomy", 0.0, 0.0, t.id, "critical",
                                       f"Target {t.id} point {where} lies outside the anatomy {anatomy.name!r}.",
                                       target_id=t.id))
                continue
            c = sampler.classify(p[None], np.array([0.0]), math.inf)[0]
            if c is None:
                continue
            kind, what, severity, _ = c
            if kind == "air":
                msg, severity = f"Target {t.id} point {where} lies in air, outside the body.", "critical"
            elif kind == "bone":
                msg = f"Target {t.id} point {where} lies inside bone ({what.replace('_', ' ')})."
            else:
                msg = f"Target {t.id} point {where} lies inside the {what.replace('_', ' ')}."
            out.append(PathProblem("target_inside", 0.0, 0.0, what, severity, msg, target_id=t.id))
    for i, (entry, tip, tid) in enumerate(plan.trajectories):
        name = "planned_trajectory" if i == 0 else f"additional_trajectories[{i - 1}]"
        bad_end = [p for p in (entry, tip) if not _inside_grid(anatomy, np.asarray(p, float))]
        if tip in bad_end:
            out.append(PathProblem("outside_anatomy", 0.0, 0.0, name, "critical",
                                   f"The tip of {name} lies outside the anatomy {anatomy.name!r}.",
                                   trajectory=i, target_id=tid))
            continue
        for p in check_trajectory(anatomy, _PlanHolder(plan), entry, tip, target_id=tid):
            out.append(PathProblem(p.kind, p.s_mm, p.length_mm, p.what, p.severity, f"{name}: {p.message}",
                                   p.end_mm, i, p.target_id or tid))
    return out


def worst(problems: Iterable[PathProblem]) -> Optional[str]:
    """The most serious severity among `problems` (None if there are none)."""
    sev = [p.severity for p in problems]
    return min(sev, key=lambda s: SEVERITY_ORDER.get(s, 3)) if sev else None
