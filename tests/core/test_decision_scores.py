"""The treatment decisions on the score card: rubric metrics, reasons, a right or wrong deferral at
the time-out, and the automatic fail for going on despite a contraindication (the synthetic block
phantom with a vignette; scripted attempts)."""
import pytest

from simulator.benchmarks.scoring import expert_attempt, synthetic_scenario
from simulator.core.decision_scores import decision_values, deferral
from simulator.core.decisions import Decision
from simulator.core.outcome_facts import AttemptFacts
from simulator.core.procedure import Procedure
from simulator.core.scoring import score_attempt

VIGNETTE = {"age_years": 70, "sex": "male", "diagnosis": "pancreatic cancer", "pain_history": "epigastric pain",
            "pain_nrs": 7}
WARFARIN = {"kind": "coagulopathy", "finding": "INR 2.9 on warfarin", "action": "defer",
            "why": "retroperitoneal bleeding cannot be compressed"}


def scenario(contraindications=(), items=()):
    sc = synthetic_scenario(vignette=dict(VIGNETTE, contraindications=list(contraindications)))
    if items:
        sc.rubric.items = list(sc.rubric.items) + [type(sc.rubric.items[0])(**it) for it in items]
    return sc


def test_decision_values_take_the_worst_verdict_and_the_mean():
    v = decision_values([Decision("agent", "alcohol 50 %", "good", ""), Decision("agent", "phenol 3 %", "poor", ""),
                         Decision("consent", "2 of 3", "acceptable", "")])
    assert v["decision_agent"] == 0.0 and v["decision_consent"] == 50.0 and v["decision_volume"] is None
    assert v["treatment_decisions_pct"] == pytest.approx(25.0)
    assert decision_values([])["treatment_decisions_pct"] is None


def test_deferral_right_or_wrong():
    defer = AttemptFacts(time_out={"contraindications": ["coagulopathy"], "decision": "defer"})
    assert deferral(defer, scenario([WARFARIN])) == "right"
    assert deferral(defer, scenario()) == "wrong"
    assert deferral(AttemptFacts(time_out={"contraindications": [], "decision": "proceed"}), scenario([WARFARIN])) is None


def test_needle_despite_a_contraindication_fails_with_the_reason(block):
    sc = scenario([WARFARIN], items=[{"metric": "decision_time_out", "weight": 10, "good": 100, "bad": 0}])
    proc = Procedure(sc, block, clock=lambda: 0.0)
    proc.time_out([], "proceed")
    card = score_attempt(expert_attempt(proc).recording, sc, block)
    assert not card.passed
    fail = next(f for f in card.automatic_fails if f["key"] == "contraindication_ignored")
    assert "INR 2.9 on warfarin" in fail["reason"] and "cannot be compressed" in fail["reason"]
    item = next(i for i in card.items if i.metric == "decision_time_out")
    assert item.applicable and item.value == 0.0 and item.points == 0.0
    assert any(r.startswith("Decision - time-out") and "Missed" in r for r in card.reasons)
    assert card.extra["decisions"] and card.extra["deferral"] is None


def test_a_right_deferral_passes_on_its_decisions(block):
    sc = scenario([WARFARIN])
    proc = Procedure(sc, block, clock=lambda: 0.0)
    proc.time_out(["coagulopathy"], "defer")
    proc.end()
    card = score_attempt(proc.recording, sc, block)
    assert card.passed and card.automatic_fails == [] and card.score == pytest.approx(100.0)
    assert card.reasons[0].startswith("Procedure deferred at the time-out")
    assert not any("no needle" in r for r in card.reasons)
    needle = [i for i in card.items if i.metric == "final_distance_mm"]
    assert needle and not needle[0].applicable and "deferred" in needle[0].reason
    assert card.extra["deferral"] == "right"


def test_a_needless_deferral_fails(block):
    sc = scenario()
    proc = Procedure(sc, block, clock=lambda: 0.0)
    proc.time_out([], "defer")
    proc.end()
    card = score_attempt(proc.recording, sc, block)
    assert not card.passed
    assert {"required_target_missed"} <= {f["key"] for f in card.automatic_fails}
    assert any("leaves the patient in pain" in r for r in card.reasons)


