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
from simulator.core.perk import (
    CORE_KEYS,
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
    id: str
    name: str
    required: bool
    tolerance_mm: float
    final_distance_mm: float
    min_distance_mm: float
    min_time_s: float
    evaluated_at_s: float  # when the final distance was taken (an injection, or the end)
    coverage: float  # 0..1 by the agent
    agent_ml: float  # neurolytic volume given nearest this target

    @property
    def reached(self) -> bool:
        return self.final_distance_mm <= self.tolerance_mm + 1e-9

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "required": self.required, "tolerance_mm": self.tolerance_mm,
                "final_distance_mm": self.final_distance_mm, "min_distance_mm": self.min_distance_mm,
                "min_time_s": self.min_time_s, "evaluated_at_s": self.evaluated_at_s, "coverage": self.coverage,
                "agent_ml": self.agent_ml, "reached": self.reached}


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

    def to_json(self) -> dict:
        return {"values": self.values, "perk": self.perk, "targets": [t.to_json() for t in self.targets],
                "critical_contacts": self.critical_contacts,
                "issues": [{"key": i.key, "time_s": i.time_s, "message": i.message} for i in self.issues],
                "injections": self.injections, "start_time_s": self.start_time_s, "end_time_s": self.end_time_s,
                "extra": self.extra}


def _modality(scenario) -> str:
    m = scenario.modality
    return str(getattr(m, "value", m))


def _plans(scenario) -> list:
    plans = []
    if scenario.planned_trajectory is not None:
        plans.append(scenario.planned_trajectory)
    plans += list(getattr(scenario, "additional_trajectories", []) or [])
    return plans


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


def attempt_metrics(recording, scenario, anatomy: Anatomy, targets: list[TargetGeometry] | None = None,
                    surface=None) -> AttemptMetrics:
    """Every metric of one attempt, as a pure function of the recording (and the scenario and anatomy).

    Definitions:
    - final_distance_mm: for each target, the tip's distance to it when the neurolytic agent (or,
      in scenarios without one, any injection) was given nearest to it; without injections, at the
      end. The metric is the worst (largest) over required targets.
    - min_distance_mm: the closest the tip came to each target; the worst over required targets.
    - angle_to_plan_deg: angle between the needle's axis and the planned trajectory nearest to the
      tip (entry -> target), at the moments the final distances are taken; the largest.
    - skin_punctures: Perk Tutor's tissue punctures. redirections, bone_contacts,
      advances_without_imaging: counts of those events. critical_contacts: contacts with the
      scenario's critical structures (any severity; each listed with its severity).
    - fluoro_shots, fluoro_time_s, dap_gycm2: from the fluoroscopy events.
    - tip_visible_pct: share of the forward advance in tissue made with the tip in the ultrasound
      plane (ultrasound scenarios only).
    - target_coverage_pct: mean over required targets of the best coverage of the target by the
      neurolytic agent (any agent when the scenario has no neurolytic).
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
    options = list(steps.agent_options()) if hasattr(steps, "agent_options") else (
        ([steps.neurolytic] if steps.neurolytic else []) + list(steps.neurolytic_options))

    injections = [e for e in events if e.kind == EventKind.injection]
    neuro = [e for e in injections if e.data.get("kind") == "neurolytic"]
    evaluated = neuro if options else injections

    # targets
    results: list[TargetResult] = []
    nearest_of = {}
    for e in evaluated:
        tip = np.asarray(e.data.get("tip_mm"), dtype=np.float64)
        if targets:
            d = [float(tg.distance(tip)[0]) for tg in targets]
            nearest_of[id(e)] = int(np.argmin(d))
    for k, tg in enumerate(targets):
        if n:
            dist = tg.distance(tips)
            j = int(np.argmin(dist))
            dmin, tmin = float(dist[j]), float(t[j])
        else:
            dmin, tmin = math.inf, 0.0
        mine = [e for e in evaluated if nearest_of.get(id(e)) == k]
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
        results.append(TargetResult(tg.id, tg.name, tg.required, tg.tolerance_mm, final, dmin, tmin, float(when),
                                    cov, agent_ml))
    req = [r for r in results if r.required] or results

    # angle to the planned trajectory
    plans = _plans(scenario)
    angle = None
    if plans and n:
        eval_idx = []
        for e in evaluated:
            eval_idx.append(int(np.clip(np.searchsorted(t, ms_round(e.time_s), side="right") - 1, 0, n - 1)))
        if not eval_idx:
            eval_idx = [n - 1]
        angs = []
        for i in eval_idx:
            tip = tips[i]
            plan = min(plans, key=lambda pl: float(np.linalg.norm(np.asarray(pl.target_mm) - tip)))
            direction = np.asarray(plan.target_mm, dtype=np.float64) - np.asarray(plan.entry_mm, dtype=np.float64)
            angs.append(float(angle_between_deg(m[i, :3, 2], direction)))
        angle = max(angs)

    # contacts and counts
    crit = [e for e in events if e.kind == EventKind.critical_contact]
    critical_contacts = [{"time_s": e.time_s, "structure": e.data.get("structure") or e.data.get("tissue"),
                          "severity": e.data.get("severity", "major"), "message": e.message} for e in crit]
    count = lambda kind: sum(1 for e in events if e.kind == kind)  # noqa: E731
    shots = [e for e in events if e.kind == EventKind.fluoro_shot]
    fluoro_time = float(sum(float(e.data.get("duration_s", 0.0) or 0.0) for e in shots))
    dap = float(sum(float(e.data.get("dap_gycm2", 0.0) or 0.0) for e in shots))

    # ultrasound tip visibility
    tip_vis = None
    if modality in ("ultrasound", "both") and n:
        inside = surface.contains(tips)
        total, seen = tip_advance_visibility(m, inside, samples.tip_visible)
        tip_vis = 100.0 * seen / total if total > 0 else None

    # coverage and off-target spread
    if req:
        cov_pct = 100.0 * float(np.mean([r.coverage for r in req]))
    else:
        cov_pct = 0.0
    off_ml = float(sum(float(e.data.get("off_target_ml", 0.0)) for e in (neuro if options else injections)))

    values = {
        "final_distance_mm": max((r.final_distance_mm for r in req), default=None),
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
        "fluoro_shots": float(len(shots)) if modality in ("fluoroscopy", "both") else None,
        "fluoro_time_s": fluoro_time if modality in ("fluoroscopy", "both") else None,
        "dap_gycm2": dap if modality in ("fluoroscopy", "both") else None,
        "target_coverage_pct": cov_pct if (options or steps.test_dose is not None) else None,
        "off_target_spread_ml": off_ml if (options or steps.test_dose is not None) else None,
        "tip_visible_pct": tip_vis,
        "critical_contacts": float(len(crit)),
        "bone_contacts": float(count(EventKind.bone_contact)),
    }
    issues = step_issues(events, scenario, results, options)
    return AttemptMetrics(values=values, perk=perk, targets=results, critical_contacts=critical_contacts,
                          issues=issues, injections=[e.to_json() for e in injections], start_time_s=t0,
                          end_time_s=t1, extra={"modality": modality})


def ms_round(t: float) -> float:
    return float(round(float(t), 3))


