"""Metrics of an attempt: ours, from a recording, beside Perk Tutor's (`core.perk`).

`attempt_metrics` gives every metric the rubric can score (definitions in its notes), each
target's own result (`TargetResult`) and the procedure-step problems (`core.step_issues`).
Perk Tutor's metrics live in `core.perk`, target geometry in `core.targets`; their names are
re-exported here for older imports.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulator.core.anatomy import Anatomy
from simulator.core.events import EventKind
from simulator.core.geometry import angle_between_deg
from simulator.core.behaviours import Behaviour, detect_behaviours
from simulator.core.perk import (
    CORE_KEYS,
    action_counts,
    PERK_NEEDLE_LENGTH_MM,
    SYNC_TOLERANCE_S,
    PerkAccumulator,
    VoxelBody,
    body_surface,
    needle_base,
    parse_axis,
    perk_core_metrics,
    perk_core_metrics_loop,
    sample_sequence_at,
)
from simulator.core.step_issues import StepIssue, step_issues
from simulator.core.targets import NERVE_CONTACT_MM, TargetGeometry, resolve_targets

__all__ = ["CORE_KEYS", "NERVE_CONTACT_MM", "OFF_TARGET_MARGIN_MM", "PERK_NEEDLE_LENGTH_MM", "SYNC_TOLERANCE_S",
           "AttemptMetrics", "PerkAccumulator", "StepIssue", "TargetGeometry", "TargetResult", "VoxelBody",
           "attempt_metrics", "body_surface", "needle_base", "parse_axis", "perk_core_metrics",
           "perk_core_metrics_loop", "resolve_targets", "sample_sequence_at", "step_issues"]

OFF_TARGET_MARGIN_MM = 20.0  # deposit farther than tolerance + this from every target is off target


# --------------------------------------------------------------------------------------------
# Our metrics of an attempt
# --------------------------------------------------------------------------------------------


@dataclass
class TargetResult:
    """One target's own result: was a needle placed there, was it injected there (by an injection
    meant for it), how close, how well covered."""

    id: str
    name: str
    required: bool
    tolerance_mm: float
    final_distance_mm: float  # at the injection meant for it (the closest such); without one, at the end
    min_distance_mm: float
    min_time_s: float
    evaluated_at_s: float  # when the final distance was taken (an injection, or the end)
    coverage: float  # 0..1 by the agent (any injection counted)
    agent_ml: float  # neurolytic volume given at this target
    injected: bool = False  # an evaluated injection was meant for this target
    needs_injection: bool = True  # the scenario has an injection to give here

    @property
    def placed(self) -> bool:
        """The tip came within tolerance of the target at some moment."""
        return self.min_distance_mm <= self.tolerance_mm + 1e-9

    @property
    def reached(self) -> bool:
        if self.needs_injection and not self.injected:
            return False
        return self.final_distance_mm <= self.tolerance_mm + 1e-9

    @property
    def done(self) -> bool:
        """A needle placed and (when the scenario injects) an injection given for it."""
        return self.injected if self.needs_injection else self.placed

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "required": self.required, "tolerance_mm": self.tolerance_mm,
                "final_distance_mm": self.final_distance_mm, "min_distance_mm": self.min_distance_mm,
                "min_time_s": self.min_time_s, "evaluated_at_s": self.evaluated_at_s, "coverage": self.coverage,
                "agent_ml": self.agent_ml, "reached": self.reached, "injected": self.injected,
                "placed": self.placed, "needs_injection": self.needs_injection}


@dataclass
class AttemptMetrics:
    values: dict  # MetricName -> float | None (None: not applicable to this scenario)
    perk: dict
    targets: list[TargetResult]
    critical_contacts: list[dict]
    issues: list[StepIssue]
    injections: list[dict]
    start_time_s: float
    end_time_s: float
    extra: dict = field(default_factory=dict)
    per_target: dict = field(default_factory=dict)  # target id -> {metric: value} of the per-target metrics
    behaviours: list[Behaviour] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"values": self.values, "perk": self.perk, "targets": [t.to_json() for t in self.targets],
                "critical_contacts": self.critical_contacts,
                "issues": [{"key": i.key, "time_s": i.time_s, "message": i.message} for i in self.issues],
                "injections": self.injections, "start_time_s": self.start_time_s, "end_time_s": self.end_time_s,
                "extra": self.extra, "per_target": self.per_target,
                "behaviours": [b.to_json() for b in self.behaviours]}


#: Metrics a rubric item may score for one target (`RubricItem.target`).
PER_TARGET_METRICS = ("final_distance_mm", "min_distance_mm", "target_coverage_pct", "angle_to_plan_deg")
#: Metrics of the probe: only with an ultrasound probe.
PROBE_METRICS = ("probe_translational_actions", "probe_rotational_actions")


def _modality(scenario) -> str:
    m = scenario.modality
    return str(getattr(m, "value", m))


def tip_advance_visibility(m: np.ndarray, inside: np.ndarray, visible: np.ndarray) -> tuple[float, float]:
    """Forward advance of the tip in tissue (mm), and the part of it made with the tip visible."""
    if len(m) < 2:
        return 0.0, 0.0
    p = m[:, :3, 3]
    ax = m[:-1, :3, 2]
    fwd = np.maximum(np.einsum("ij,ij->i", p[1:] - p[:-1], ax), 0.0)
    fwd = np.where(inside[1:] | inside[:-1], fwd, 0.0)
    vis = visible[1:] == 1
    return float(fwd.sum()), float(fwd[vis].sum())


PLAN_ENTRY_MM = 20.0  # a pass entering this close to a planned entry follows that plan
PLAN_TARGET_MARGIN_MM = 20.0


def intended_targets(events, scenario, targets) -> dict[int, int]:
    """id(injection event) -> index of the target it was meant for: the target of the planned needle
    whose entry the pass went in by (within 20 mm, or the entry zone's radius) when the tip is
    within that target's tolerance + 20 mm; else the nearest target."""
    index = {tg.id: k for k, tg in enumerate(targets)}
    zone = getattr(scenario, "skin_entry_zone", None)
    near_mm = max(PLAN_ENTRY_MM, float(zone.radius_mm) if zone is not None else 0.0)
    plans = [(np.asarray(tr.entry_mm, dtype=np.float64), index[tr.target_id]) for tr in scenario.trajectories
             if tr.target_id in index]
    punctures = [e for e in events if e.kind == EventKind.skin_puncture]
    out = {}
    for e in events:
        if e.kind != EventKind.injection or not targets:
            continue
        tip = np.asarray(e.data.get("tip_mm"), dtype=np.float64)
        dists = [float(tg.distance(tip)[0]) for tg in targets]
        pick = int(np.argmin(dists))
        before = [p for p in punctures if p.time_s <= e.time_s]
        if before and plans:
            entry = np.asarray(before[-1].data.get("position_mm", [np.nan] * 3), dtype=np.float64)
            for pe, k in plans:
                if (np.linalg.norm(entry - pe) <= near_mm
                        and dists[k] <= targets[k].tolerance_mm + PLAN_TARGET_MARGIN_MM):
                    pick = k
                    break
        out[id(e)] = pick
    return out


def _sample_index(t: np.ndarray, time_s: float) -> int:
    return int(np.clip(np.searchsorted(t, ms_round(time_s), side="right") - 1, 0, len(t) - 1))


def _angle_to_plan(scenario, tg, m_at: np.ndarray, tip: np.ndarray) -> float | None:
    plan = scenario.trajectory_for(tg.id) if hasattr(scenario, "trajectory_for") else None
    if plan is None:
        plans = scenario.trajectories
        if not plans:
            return None
        plan = min(plans, key=lambda pl: float(np.linalg.norm(np.asarray(pl.target_mm) - tip)))
    direction = np.asarray(plan.target_mm, dtype=np.float64) - np.asarray(plan.entry_mm, dtype=np.float64)
    return float(angle_between_deg(m_at[:3, 2], direction))


def attempt_metrics(recording, scenario, anatomy: Anatomy, targets: list[TargetGeometry] | None = None,
                    surface=None) -> AttemptMetrics:
    """Every metric of one attempt, as a pure function of the recording (and the scenario and anatomy).

    Each injection is meant for one target (`intended_targets`); the "evaluated" injections are the
    neurolytic ones (any injection in scenarios without a neurolytic). Per target:
    - final distance: the tip's distance to the target at the closest evaluated injection meant
      for it; without one, at the end. injected: there is such an injection.
    - min distance: the closest the tip came to it. coverage: the best coverage of it by any
      evaluated injection. agent: the neurolytic volume meant for it.
    Over the attempt:
    - final_distance_mm: the worst final distance over the required targets that were injected
      (over all required targets when none was); min_distance_mm: the worst closest approach.
    - angle_to_plan_deg: angle between the needle and the plan of the target each evaluated
      injection was meant for, at that injection (at the end without one); the largest.
    - skin_punctures: Perk Tutor's tissue punctures. redirections, bone_contacts,
      advances_without_imaging: counts of those events. critical_contacts: contacts with the
      scenario's critical structures (any severity; each listed with its severity).
    - translational_actions, rotational_actions (needle) and probe_translational_actions,
      probe_rotational_actions (ultrasound probe): Perk Tutor's action counts (`perk.action_counts`).
    - error_behaviours: the number of error behaviours on the timeline (`core.behaviours`).
    - fluoro_shots, fluoro_time_s, dap_gycm2: from the fluoroscopy events.
    - tip_visible_pct: share of the forward advance in tissue made with the tip in the ultrasound
      plane (ultrasound scenarios only).
    - target_coverage_pct: mean over the required targets of their coverage (0 for one without).
    - off_target_spread_ml: neurolytic volume deposited farther than tolerance + 20 mm from every
      target, plus any given into a vessel or the dural sac.
    """
    samples = recording.samples
    t = samples.time_s
    m = samples.needle_tip_to_world
    events = recording.events
    if surface is None:
        surface = body_surface(anatomy)
    if targets is None:
        targets = resolve_targets(scenario, anatomy)
    n = len(t)
    t0 = float(t[0]) if n else 0.0
    t1 = float(t[-1]) if n else 0.0
    perk = perk_core_metrics(t, m, surface) if n else perk_core_metrics([], np.zeros((0, 4, 4)), surface)
    tips = m[:, :3, 3] if n else np.zeros((0, 3))
    modality = _modality(scenario)
    steps = scenario.steps
    options = list(steps.agent_options())
    gives = bool(options) or steps.test_dose is not None or steps.contrast is not None

    injections = [e for e in events if e.kind == EventKind.injection]
    neuro = [e for e in injections if e.data.get("kind") == "neurolytic"]
    evaluated = neuro if options else injections
    intended = intended_targets(events, scenario, targets)

    # each target on its own
    results: list[TargetResult] = []
    per_target: dict[str, dict] = {}
    for k, tg in enumerate(targets):
        if n:
            dist = tg.distance(tips)
            j = int(np.argmin(dist))
            dmin, tmin = float(dist[j]), float(t[j])
        else:
            dmin, tmin = math.inf, 0.0
        mine = [e for e in evaluated if intended.get(id(e)) == k]
        if mine:
            ds = [float(tg.distance(np.asarray(e.data["tip_mm"], dtype=np.float64))[0]) for e in mine]
            i = int(np.argmin(ds))
            final, when = ds[i], mine[i].time_s
        elif n:
            final, when = float(tg.distance(tips[-1])[0]), t1
        else:
            final, when = math.inf, 0.0
        cov = max([float(e.data.get("coverage", {}).get(tg.id, 0.0)) for e in evaluated] or [0.0])
        agent_ml = float(sum(float(e.data.get("volume_ml", 0.0)) for e in mine if e.data.get("kind") == "neurolytic"))
        r = TargetResult(tg.id, tg.name, tg.required, tg.tolerance_mm, final, dmin, tmin, float(when), cov, agent_ml,
                         injected=bool(mine), needs_injection=gives)
        results.append(r)
        angle = None
        if n and scenario.trajectories:
            at = [_sample_index(t, e.time_s) for e in mine] or [n - 1]
            angle = max(_angle_to_plan(scenario, tg, m[i], tips[i]) or 0.0 for i in at)
        per_target[tg.id] = {"final_distance_mm": final, "min_distance_mm": dmin,
                             "target_coverage_pct": 100.0 * cov, "angle_to_plan_deg": angle}
    req = [r for r in results if r.required] or results
    done = [r for r in req if r.injected] if gives else req

    # angle to the planned trajectory, at each evaluated injection (or the end)
    angle = None
    if scenario.trajectories and n:
        angs = []
        for e in evaluated or [None]:
            i = n - 1 if e is None else _sample_index(t, e.time_s)
            k = intended.get(id(e)) if e is not None else None
            if k is None:
                k = int(np.argmin([float(tg.distance(tips[i])[0]) for tg in targets])) if targets else None
            if k is not None:
                a = _angle_to_plan(scenario, targets[k], m[i], tips[i])
                if a is not None:
                    angs.append(a)
        angle = max(angs) if angs else None

    # contacts and counts
    crit = [e for e in events if e.kind == EventKind.critical_contact]
    critical_contacts = [{"time_s": e.time_s, "structure": e.data.get("structure") or e.data.get("tissue"),
                          "severity": e.data.get("severity", "major"), "message": e.message} for e in crit]
    count = lambda kind: sum(1 for e in events if e.kind == kind)  # noqa: E731
    shots = [e for e in events if e.kind == EventKind.fluoro_shot]
    fluoro_time = float(sum(float(e.data.get("duration_s", 0.0) or 0.0) for e in shots))
    dap = float(sum(float(e.data.get("dap_gycm2", 0.0) or 0.0) for e in shots))
    fluoro = modality in ("fluoroscopy", "both")
    us = modality in ("ultrasound", "both")

    # ultrasound tip visibility
    tip_vis = None
    if us and n:
        inside = surface.contains(tips)
        total, seen = tip_advance_visibility(m, inside, samples.tip_visible)
        tip_vis = 100.0 * seen / total if total > 0 else None

    # action counts (needle; probe under ultrasound)
    needle_actions = action_counts(t, m)
    probe_actions = action_counts(t, samples.probe_to_world) if us else None

    behaviours = detect_behaviours(recording, scenario, anatomy, targets, intended)
    perk = dict(perk, **needle_actions)  # Perk Tutor's action counts beside its core metrics
    if probe_actions is not None:
        perk.update({f"probe_{k}": v for k, v in probe_actions.items()})

    cov_pct = 100.0 * float(np.mean([r.coverage for r in req])) if req else 0.0
    off_ml = float(sum(float(e.data.get("off_target_ml", 0.0)) for e in evaluated))
    final_from = done or req

    values = {
        "final_distance_mm": max((r.final_distance_mm if r.injected or not gives else r.min_distance_mm
                                  for r in final_from), default=None),
        "min_distance_mm": max((r.min_distance_mm for r in req), default=None),
        "elapsed_time_s": perk["elapsed_time_s"],
        "path_length_mm": perk["path_length_mm"],
        "path_in_tissue_mm": perk["path_in_tissue_mm"],
        "time_in_tissue_s": perk["time_in_tissue_s"],
        "tissue_damage_mm2": perk["tissue_damage_mm2"],
        "skin_punctures": float(perk["tissue_punctures"]),
        "redirections": float(count(EventKind.redirection)),
        "angle_to_plan_deg": angle,
        "advances_without_imaging": float(count(EventKind.advance_without_imaging)),
        "translational_actions": float(needle_actions["translational_actions"]),
        "rotational_actions": float(needle_actions["rotational_actions"]),
        "probe_translational_actions": None if probe_actions is None else float(probe_actions["translational_actions"]),
        "probe_rotational_actions": None if probe_actions is None else float(probe_actions["rotational_actions"]),
        "error_behaviours": float(len(behaviours)),
        "fluoro_shots": float(len(shots)) if fluoro else None,
        "fluoro_time_s": fluoro_time if fluoro else None,
        "dap_gycm2": dap if fluoro else None,
        "target_coverage_pct": cov_pct if (options or steps.test_dose is not None) else None,
        "off_target_spread_ml": off_ml if (options or steps.test_dose is not None) else None,
        "tip_visible_pct": tip_vis,
        "critical_contacts": float(len(crit)),
        "bone_contacts": float(count(EventKind.bone_contact)),
    }
    issues = step_issues(events, scenario, results, options)
    return AttemptMetrics(values=values, perk=perk, targets=results, critical_contacts=critical_contacts,
                          issues=issues, injections=[e.to_json() for e in injections], start_time_s=t0,
                          end_time_s=t1, extra={"modality": modality}, per_target=per_target, behaviours=behaviours)


def ms_round(t: float) -> float:
    return float(round(float(t), 3))
