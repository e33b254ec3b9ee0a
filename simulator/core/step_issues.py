"""Procedure-step problems of an attempt, keyed by the rubric's automatic-fail names where they
are one: injections without aspiration, agent into a vessel or the dural sac, a wrong agent, the
agent before local anaesthetic / contrast / test dose, volumes out of range, targets not reached,
a required target without a needle and an injection (`required_target_missed`: it always fails
the attempt), pleural breach.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from simulator.core.events import EventKind

if TYPE_CHECKING:
    from simulator.core.metrics import TargetResult


@dataclass
class StepIssue:
    key: str  # an AutoFail name when it is one
    time_s: float
    message: str


def agent_ok(option, agent: str, pct: float) -> bool:
    """Is (agent, concentration) one of an agent option's?"""
    return option.agent == agent and any(abs(pct - c) <= 1e-6 for c in option.concentrations_pct)


LA_SITE_MM = 30.0


def step_issues(events, scenario, results: list[TargetResult], options) -> list[StepIssue]:
    """Procedure-step problems, keyed by the rubric's automatic-fail names where they are one."""
    steps = scenario.steps
    out: list[StepIssue] = []
    punctures = [e for e in events if e.kind == EventKind.skin_puncture]
    las = [e for e in events if e.kind == EventKind.local_anaesthetic]
    injections = [e for e in events if e.kind == EventKind.injection]

    def pass_start(time_s):
        before = [p for p in punctures if p.time_s <= time_s]
        return before[-1] if before else None

    for e in injections:
        kind = e.data.get("kind")
        agent = e.data.get("agent", "")
        vol = float(e.data.get("volume_ml", 0.0))
        if steps.aspiration_before_injection and not e.data.get("aspirated", False):
            key = "agent_without_aspiration" if kind == "neurolytic" else "injection_without_aspiration"
            out.append(StepIssue(key, e.time_s, f"{kind.replace('_', ' ')} injected without aspirating first"))
        if kind != "neurolytic":
            continue
        mode = e.data.get("mode", "tissue")
        if mode == "intravascular":
            out.append(StepIssue("intravascular_agent", e.time_s, f"{agent} injected into a blood vessel"))
        if mode == "intrathecal":
            out.append(StepIssue("intrathecal_agent", e.time_s, f"{agent} injected into the dural sac (intrathecal)"))
        if options and not any(agent_ok(o, agent, float(e.data.get("concentration_pct", 0.0))) for o in options):
            allowed = "; ".join(f"{o.agent} {'/'.join(f'{c:g}' for c in o.concentrations_pct)} %" for o in options)
            out.append(StepIssue("wrong_agent", e.time_s,
                                 f"{agent} {float(e.data.get('concentration_pct', 0.0)):g} % is not an agent of this "
                                 f"procedure ({allowed})"))
        p = pass_start(e.time_s)
        if steps.local_anaesthetic:
            ok = False
            if p is not None:
                site = np.asarray(p.data.get("position_mm", [np.nan] * 3), dtype=np.float64)
                for la in las:
                    if la.time_s <= p.time_s:
                        s = np.asarray(la.data.get("site_mm", [np.nan] * 3), dtype=np.float64)
                        if np.all(np.isfinite(s)) and np.linalg.norm(s - site) <= LA_SITE_MM:
                            ok = True
            if not ok:
                out.append(StepIssue("agent_without_local_anaesthetic", e.time_s,
                                     "no local anaesthetic at the entry site before the needle went in"))
        in_pass = [x for x in injections if x.time_s <= e.time_s and x is not e and
                   (p is None or x.time_s >= p.time_s)]
        if steps.contrast is not None and not any(x.data.get("kind") == "contrast" for x in in_pass):
            out.append(StepIssue("agent_without_contrast", e.time_s,
                                 f"{agent} given without a contrast injection first to confirm the spread"))
        if steps.test_dose is not None and not any(x.data.get("kind") == "test_dose" for x in in_pass):
            out.append(StepIssue("agent_without_test_dose", e.time_s,
                                 f"{agent} given without a local anaesthetic test dose first"))
        del vol
    # volumes per target
    if options:
        limit = max(o.volume_ml.max_ml for o in options)
        low = min(o.volume_ml.min_ml for o in options)
        for r in results:
            if r.agent_ml > limit + 1e-9:
                out.append(StepIssue("agent_volume_exceeded", 0.0,
                                     f"{r.agent_ml:g} ml of neurolytic at the {r.name} (at most {limit:g} ml)"))
            elif 0 < r.agent_ml < low - 1e-9:
                out.append(StepIssue("agent_volume_low", 0.0,
                                     f"only {r.agent_ml:g} ml of neurolytic at the {r.name} (at least {low:g} ml)"))
        if not any(e.data.get("kind") == "neurolytic" for e in injections):
            out.append(StepIssue("no_agent_injected", 0.0, "no neurolytic agent was injected"))
    if steps.contrast is not None:
        for e in injections:
            if e.data.get("kind") == "contrast":
                v = float(e.data.get("volume_ml", 0.0))
                if not (steps.contrast.min_ml - 1e-9 <= v <= steps.contrast.max_ml + 1e-9):
                    out.append(StepIssue("contrast_volume", e.time_s,
                                         f"{v:g} ml of contrast ({steps.contrast.min_ml:g}-{steps.contrast.max_ml:g} ml expected)"))
    for r in results:
        if not r.required:
            continue
        if not r.done:
            if r.needs_injection:
                what = (f"needle placed at the {r.name} but nothing injected there" if r.placed
                        else f"no needle placed and nothing injected at the {r.name}")
            else:
                what = f"no needle placed at the {r.name} (closest {r.min_distance_mm:.1f} mm)"
            out.append(StepIssue("required_target_missed", 0.0, f"{what} (a required target)"))
        elif not r.reached:
            out.append(StepIssue("target_not_reached", r.evaluated_at_s,
                                 f"tip {r.final_distance_mm:.1f} mm from the {r.name} at the injection "
                                 f"(tolerance {r.tolerance_mm:g} mm)"))
    for e in events:
        if e.kind == EventKind.pleural_breach:
            out.append(StepIssue("pleural_breach", e.time_s, e.message))
    return out
