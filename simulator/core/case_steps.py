"""The patient's side of the procedure steps: time-out, consent, asepsis, the prognostic block.

Used by `Procedure` (which owns the state and records the inputs); everything here is a pure
function of the scenario and what the attempt did so far, so a replay gives the same results.

- `prognostic_result(scenario, coverage, seed)`: what the patient reports after the
  local-anaesthetic block - relief yes/no (the vignette's answer when the block reached the painful
  targets; a block that missed them relieves nothing, whatever the truth), how much, for how many
  hours, and its side effects (hypotension after a celiac block ...).
- `neurolytic_refusal(scenario, events)`: why a neurolytic is refused now (the required prognostic
  block not done yet), or None.
- `injection_extras(scenario, spread, kind)`: data the outcome model needs stored with an
  injection (the celiac quadrants reached).
"""
from __future__ import annotations

import hashlib

import numpy as np

from simulator.core.events import EventKind
from simulator.core.outcome_params import LOCAL_ANAESTHETICS
from simulator.core.scenario_case import CONTRAINDICATION_KINDS

__all__ = ["LOCAL_ANAESTHETICS", "case_seed", "patient_seed", "prognostic_result", "prognostic_done", "neurolytic_refusal",
           "injection_extras", "check_time_out"]

TIME_OUT_DECISIONS = ("proceed", "defer")
DEFAULT_PREP = "chlorhexidine 2 % in 70 % alcohol"


def case_seed(scenario_id: str, started_at: str, trainee: str) -> int:
    """The seed of what is fixed about an attempt's patient (e.g. its prognostic block)."""
    h = hashlib.sha256(f"{scenario_id}|{started_at}|{trainee}".encode()).digest()
    return int.from_bytes(h[:8], "little")


def patient_seed(recording) -> int:
    """The seed of the attempt's patient: a follow-up's is the first attempt's (the same patient,
    whose prognostic block answers the same way), else `case_seed` of this attempt."""
    first = (getattr(recording, "meta", None) or {}).get("follows")
    who = first.get("patient") if isinstance(first, dict) else None
    if isinstance(who, dict) and who.get("started_at"):
        return case_seed(str(who.get("scenario_id", recording.scenario_id)), str(who["started_at"]), recording.trainee)
    return case_seed(recording.scenario_id, recording.started_at, recording.trainee)


def _params(scenario):
    from simulator.core.outcome_library import parameters_for

    try:
        found = parameters_for(scenario)
    except Exception:  # noqa: BLE001 - a broken parameter file never stops the procedure
        return None
    return None if found is None else found[0]


def _covered_share(scenario, coverage: dict, covered_at: float) -> float:
    v = getattr(scenario, "vignette", None)
    targets = list(v.pain_targets) if v is not None and v.pain_targets else [t.id for t in scenario.targets if t.required]
    if not targets:
        return 0.0
    return sum(1 for t in targets if float(coverage.get(t, 0.0)) >= covered_at) / len(targets)


def prognostic_result(scenario, coverage: dict, seed: int) -> dict:
    """The result of the prognostic block for this patient (JSON-ready)."""
    pb = scenario.prognostic_block
    params = _params(scenario)
    rng = np.random.default_rng(seed)
    covered_at = params.relief.covered_at if params is not None else 0.5
    share = _covered_share(scenario, coverage, covered_at)
    reached = share >= 0.5
    if pb is not None and pb.positive is not None:
        truth = bool(pb.positive)
        rng.random()
    elif params is not None:
        from simulator.core.outcome import CaseInfo, block_truth

        truth = block_truth(params, CaseInfo(block_truth_seed=seed))
        rng.random()
    else:
        truth = bool(rng.random() < 0.75)
    positive = truth and reached
    hours = None if pb is None else pb.duration_hours
    if hours is None and params is not None:
        lo, hi = params.prognostic.relief_hours.range_days()
        m = params.prognostic.relief_hours.days
        hours = 24.0 * (m if hi - lo < 1e-9 else float(rng.triangular(lo, min(max(m, lo), hi), hi)))
    hours = round(float(hours if hours is not None else 6.0), 1)
    relief_pct = None if pb is None else pb.relief_pct
    if relief_pct is None:
        relief_pct = 80.0 if positive else 10.0
    if not positive:
        relief_pct = min(float(relief_pct), 20.0)
    effects: list[str] = []
    if pb is not None and pb.side_effects:
        effects = list(pb.side_effects)
    elif params is not None:
        for e in params.prognostic.side_effects:
            if rng.random() < e.p.value:
                effects.append(e.name)
    if positive:
        msg = f"Prognostic block positive: {relief_pct:.0f} % relief for {hours:g} hours."
    elif not reached:
        msg = ("No relief - but the local anaesthetic did not reach the painful targets, so this block says nothing "
               "about them: a misplaced prognostic block gives a false negative.")
    else:
        msg = (f"Prognostic block negative: {relief_pct:.0f} % relief. These nerves do not carry this patient's pain; "
               "a neurolysis would destroy them for nothing.")
    if effects:
        msg += " After the block: " + ", ".join(effects) + "."
    return {"positive": bool(positive), "reached": bool(reached), "truth": bool(truth), "relief_pct": float(relief_pct),
            "duration_hours": hours, "side_effects": effects, "message": msg}


def prognostic_done(events) -> dict | None:
    """The last prognostic block's result in the events (None if none was done)."""
    out = None
    for e in events:
        if e.kind == EventKind.injection and e.data.get("kind") == "prognostic":
            out = e.data.get("prognostic_result") or {}
    return out


def neurolytic_refusal(scenario, events) -> str | None:
    pb = getattr(scenario, "prognostic_block", None)
    if pb is None or not pb.required:
        return None
    if prognostic_done(events) is None:
        return ("The neurolytic is refused: this scenario requires a prognostic local-anaesthetic block first "
                f"({pb.agent} {pb.concentration_pct:g} %, {pb.min_ml:g}-{pb.max_ml:g} ml at the target). " + pb.why)
    return None


def injection_extras(scenario, spread, kind: str) -> dict:
    """Data stored with an injection for the course: the ml in each celiac quadrant."""
    out = getattr(scenario, "outcome", None)
    if out is None or out.celiac_origin_mm is None or kind not in ("neurolytic", "prognostic"):
        return {}
    params = _params(scenario)
    if params is None or params.celiac_area is None:
        return {}
    from simulator.core.outcome_facts import spread_quadrants

    area = params.celiac_area
    return {"quadrant_ml": spread_quadrants(spread, out.celiac_origin_mm, area.radius_mm, area.posterior_mm)}


def check_time_out(contraindications, decision: str) -> tuple[list[str], str]:
    """Validated time-out answers (raises ValueError naming the bad value)."""
    items = [str(c) for c in (contraindications or [])]
    for c in items:
        if c not in CONTRAINDICATION_KINDS:
            raise ValueError(f"time_out: unknown contraindication {c!r}; known: {', '.join(CONTRAINDICATION_KINDS)}")
    if decision not in TIME_OUT_DECISIONS:
        raise ValueError(f"time_out: decision must be one of {', '.join(TIME_OUT_DECISIONS)}, got {decision!r}")
    return items, decision
