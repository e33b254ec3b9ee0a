"""The treatment decisions on the score card (pure: no Qt, no files).

`core.decisions.judge_decisions` gives each decision a verdict (good | acceptable | poor) and why.
Here they become rubric metrics and the card's rules:

- metrics (0-100: good 100, acceptable 50, poor 0; None when the topic does not apply to the
  attempt, so its item drops out and the others share its weight): one per topic
  (`decision_time_out`, `decision_consent`, `decision_asepsis`, `decision_prognostic_block`,
  `decision_agent`, `decision_volume`, `decision_level_side`, `decision_approach`; the worst when a
  topic was judged more than once, e.g. two agents) and `treatment_decisions_pct`, their mean;
- a deferral at the time-out (`deferral`): "right" when the vignette's key holds a contraindication
  that says defer or correct first - the needle work was rightly not done: its items and the
  target fails do not apply, the decisions carry the card; "wrong" when nothing in the case stops
  the procedure (the target fails stand, and the time-out decision is poor);
- going on despite such a contraindication (`ignored_contraindications`): an automatic fail
  (`contraindication_ignored`) on every scenario whose key has one.
"""
from __future__ import annotations

from simulator.core.decisions import Decision, judge_decisions
from simulator.core.outcome_facts import facts_from_events

DECISION_METRICS = {
    "decision_time_out": "time-out",
    "decision_consent": "consent",
    "decision_asepsis": "asepsis",
    "decision_prognostic_block": "prognostic block",
    "decision_agent": "agent",
    "decision_volume": "volume",
    "decision_level_side": "level and side",
    "decision_approach": "approach",
}
ALL_DECISIONS = "treatment_decisions_pct"
METRIC_OF_TOPIC = {topic: metric for metric, topic in DECISION_METRICS.items()}
VERDICT_PCT = {"good": 100.0, "acceptable": 50.0, "poor": 0.0}
DEFER_ACTIONS = ("defer", "correct_first")


def decision_values(decisions: list[Decision]) -> dict:
    """The decision metrics of an attempt (see the module notes)."""
    out: dict = dict.fromkeys(DECISION_METRICS)
    for d in decisions:
        m = METRIC_OF_TOPIC.get(d.topic)
        if m is None:
            continue
        v = VERDICT_PCT.get(d.verdict, 0.0)
        out[m] = v if out[m] is None else min(out[m], v)
    vals = [v for v in out.values() if v is not None]
    out[ALL_DECISIONS] = sum(vals) / len(vals) if vals else None
    return out


def must_defer(scenario) -> list:
    """The key's contraindications that stop the procedure today."""
    v = getattr(scenario, "vignette", None)
    return [c for c in (v.contraindications if v is not None else []) if c.action in DEFER_ACTIONS]


def deferral(facts, scenario) -> str | None:
    """"right" | "wrong" for an attempt deferred at the time-out before any needle, else None."""
    to = facts.time_out
    if to is None or to.get("decision") != "defer" or facts.skin_punctures > 0:
        return None
    return "right" if must_defer(scenario) else "wrong"


def ignored_contraindications(facts, scenario) -> list:
    """The contraindications that say defer, when the needle went in anyway."""
    return must_defer(scenario) if facts.skin_punctures > 0 else []


def card_decisions(recording, scenario, somatic_targets=None) -> dict:
    """Everything the score card needs: {"values", "decisions" (JSON), "deferral", "ignored" (JSON)}.
    A right deferral is judged on the time-out alone: consent, asepsis and the rest belong to a
    procedure that rightly did not happen."""
    facts = facts_from_events(recording.events, getattr(recording, "scenario_id", ""))
    decisions = judge_decisions(facts, scenario, somatic_targets)
    deferred = deferral(facts, scenario)
    if deferred == "right":
        decisions = [d for d in decisions if d.topic == "time-out"]
    return {"values": decision_values(decisions), "decisions": [d.to_json() for d in decisions],
            "deferral": deferred,
            "ignored": [{"kind": c.kind, "finding": c.finding, "why": c.why}
                        for c in ignored_contraindications(facts, scenario)]}


def decision_reasons(decisions: list[dict]) -> list[str]:
    """One line per decision that was not good, for the card's reasons."""
    return [f"Decision - {d['topic']}: {d['chosen']} ({d['verdict']}). {d['why']}".rstrip()
            for d in decisions if d.get("verdict") != "good"]


__all__ = ["DECISION_METRICS", "ALL_DECISIONS", "decision_values", "deferral", "ignored_contraindications",
           "card_decisions", "decision_reasons", "must_defer"]
