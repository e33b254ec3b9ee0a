"""Scripted attempts on any scenario: an operator of a given skill, varied by a seed, with named
faults, driving the `Procedure` through the same inputs a trainee's hands and the imaging views give.

    from simulator.scripted import run_attempt, cohort, FAULTS
    proc = run_attempt(scenario, anatomy, skill="expert", seed=3)               # an ended Procedure
    proc = run_attempt(scenario, anatomy, "expert", seed=3, faults=["no_aspiration"])
    attempts = cohort(scenario, anatomy, "novice", n=20)                         # [(seed, faults, proc)]

Skills (`hand.SKILLS`): expert, intermediate and novice hands - how steady, how fast, how they image
(`hand.Hand`). A novice hand is merely clumsy; the named faults (`faults.FAULTS`) are the error
behaviours, made on purpose by any hand. In a cohort half the novices also make one or two of the
battery's faults (`NOVICE_FAULT_SHARE`), the others none: the group is a fair test of the score.
Novice styles (`hand.STYLES`: rotational, translational, unsteady, imaging, hesitant) are novices
clumsy in one way only, an expert's hand otherwise: what each kind of clumsiness costs the score.

Used by the tests (behaviour battery, scoring, validity), the benchmarks and the scenario library's
checks. Everything is a function of (scenario, anatomy, skill, seed, faults): same inputs, same
recording to the last bit.

How a scenario plugs in (nothing to write for a new scenario that has a plan):
- every required target needs a planned needle: `planned_trajectory` / `additional_trajectories`
  with `target_id` naming it (a one-target, one-trajectory scenario needs no target_id). The
  needle enters at `entry_mm` and its tip goes to `target_mm`; the plan must be clear (the
  editor's plan check). Targets with `required: false` get no needle.
- the steps come from `steps`: local anaesthetic, aspiration before each injection, contrast
  (fluoroscopy only) with an image, test dose, neurolytic (the first agent option, its highest
  concentration, the middle of its volume range), each only when the scenario has it.
- imaging comes from `modality`: fluoroscopy at the decisive moments and within
  `rubric.advance_without_imaging_mm` of movement (presets `oblique_left` / `oblique_right` /
  `lateral` used when present; see `imaging`); ultrasound with the probe in plane with the planned
  path (depth axis from `imaging.ultrasound.direction`), following the tip.
- the only per-technique hint: procedures in `plan.TOUCH_BONE_FIRST` (celiac, splanchnic, lumbar
  sympathetic, superior hypogastric) touch the nearest vertebral body first and walk off it.

Faults (`faults.FAULTS`) that a scenario cannot have (one side only on a one-target block, a probe
fault under fluoroscopy) are refused: `fault_applies` says why beforehand, and the few that depend
on the anatomy (no vessel near the target ...) raise `FaultNotApplicable` when run.
"""
from __future__ import annotations

import numpy as np

from simulator.scripted.attempt import Operator
from simulator.scripted.faults import BATTERY, FAULTS, FaultNotApplicable, applicable_faults, fault_applies
from simulator.scripted.hand import SKILLS, STYLES, Hand
from simulator.scripted.plan import NeedlePlan, ScriptError, needle_plans

__all__ = ["BATTERY", "FAULTS", "NOVICE_FAULT_SHARE", "SKILLS", "STYLES", "FaultNotApplicable", "Hand", "NeedlePlan",
           "Operator", "ScriptError", "applicable_faults", "cohort", "fault_applies", "needle_plans", "run_attempt"]

#: Faults a scripted novice draws from: the battery's error behaviours (each fails the attempt).
NOVICE_FAULTS = BATTERY
#: The share of a novice cohort that also makes one or two of those faults (the rest: clumsy only).
NOVICE_FAULT_SHARE = 0.5


def run_attempt(scenario, anatomy, skill: str = "expert", seed: int = 0, faults=(), *, steady: bool = False,
                quick: bool = False, targets=None, trainee: str = "", mode: str = "practice", t0: float = 0.0, procedure=None,
                style: str | None = None):
    """One scripted attempt, ended. Returns the `Procedure` (its `recording` is the attempt).

    `steady`: the hand without jitter or tremor (the scenario's reference attempt); `quick`: one
    input per movement (fewer inputs, the same steps and imaging); `style`: a novice clumsy in one
    way only (`hand.STYLES`). `procedure`:
    drive this (fresh) procedure instead of making one. Raises `ScriptError` (the scenario lacks
    a plan), `FaultNotApplicable` (a fault this scenario cannot have) or `KeyError` (unknown fault)."""
    from simulator.core.procedure import Procedure

    faults = tuple(faults)
    proc = procedure or Procedure(scenario, anatomy, clock=lambda: 0.0, trainee=trainee, mode=mode, targets=targets)
    for f in faults:
        why = fault_applies(f, scenario, proc.targets)
        if why is not None:
            raise FaultNotApplicable(f"fault {f!r} on scenario {scenario.id!r}: {why}")
    plans = needle_plans(scenario, proc.targets)
    Operator(proc, Hand.draw(skill, seed, steady=steady, quick=quick, style=style), faults, t0=t0).run(plans)
    return proc


def cohort(scenario, anatomy, skill: str, n: int = 20, seed0: int = 0, *, targets=None, trainee: str = "",
           quick: bool = False, fault_share: float | None = None, style: str | None = None):
    """`n` attempts of one skill, seeds seed0.. seed0+n-1: [(seed, faults, procedure)]. A share of
    the seeds (`fault_share`, spread evenly: 0.5 is every odd seed; default `NOVICE_FAULT_SHARE` for
    novices, none for the others and for a `style` of novice) also make one or two faults drawn
    (by the seed) from the battery's that the scenario allows; a fault the anatomy turns out not to
    allow is replaced by the next one drawn. `style`: novices clumsy in that way only (`STYLES`).
    On a scenario whose key holds a contraindication that says defer, every novice (not a style)
    misses it at the time-out (`contraindication_missed`) and goes on with the needle: that decision
    is the lesson of such a scenario, an expert defers."""
    from simulator.core.targets import resolve_targets

    tg = targets if targets is not None else resolve_targets(scenario, anatomy)
    default = NOVICE_FAULT_SHARE if skill == "novice" and not style else 0.0
    share = default if fault_share is None else float(fault_share)
    pool = applicable_faults(scenario, tg, NOVICE_FAULTS) if share > 0 else []
    # A scenario whose lesson is the decision (its key says defer): a novice misses it and goes on.
    decision = ["contraindication_missed"] if (
        skill == "novice" and not style and fault_applies("contraindication_missed", scenario, tg) is None) else []
    out = []
    for k in range(n):
        seed = seed0 + k
        rng = np.random.default_rng(10_000 + seed)
        faulty = bool(pool) and (seed * share) % 1.0 + share > 1.0 - 1e-9  # every 1/share-th seed (by the seed)
        order = list(rng.permutation(pool)) if faulty else []
        count = 1 + int(rng.random() < 0.5)
        chosen: list[str] = list(decision)
        count += len(chosen)
        proc = None
        while order and len(chosen) < count:
            f = str(order.pop(0))
            try:
                proc = run_attempt(scenario, anatomy, skill, seed, tuple(chosen + [f]), targets=tg, quick=quick,
                                   trainee=trainee or f"{skill}_{seed}", style=style)
            except FaultNotApplicable:
                continue
            chosen.append(f)
        if proc is None:
            proc = run_attempt(scenario, anatomy, skill, seed, tuple(chosen), targets=tg, quick=quick,
                               trainee=trainee or f"{skill}_{seed}", style=style)
        out.append((seed, tuple(chosen), proc))
    return out
