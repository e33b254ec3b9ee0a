"""Treatment decisions judged against the scenario (facts built by hand; no anatomy)."""
from simulator.benchmarks.scoring import synthetic_scenario
from simulator.core.decisions import decision_errors, judge_decisions
from simulator.core.outcome_facts import AttemptFacts, Dose

VIGNETTE = {"age_years": 70, "sex": "male", "diagnosis": "pancreatic cancer", "pain_history": "epigastric pain",
            "pain_nrs": 7, "consent_items": ["diarrhoea", "paraplegia (rare)"]}


def scenario(**vignette):
    v = dict(VIGNETTE, **vignette)
    return synthetic_scenario(vignette=v, prognostic_block={"required": False, "positive": True})


def facts(agent="alcohol", pct=100.0, ml=15.0, cov=1.0, **kw) -> AttemptFacts:
    base = dict(skin_punctures=1, skin_prep=True, drape=True, asepsis_before_puncture=True,
                consent_items=["diarrhoea", "paraplegia (rare)"], time_out={"contraindications": [], "decision": "proceed"},
                prognostic=[Dose(1.0, "bupivacaine", 0.25, 5, "tissue", coverage={"celiac_left": 1.0})],
                prognostic_result={"positive": True, "reached": True, "message": "positive"})
    base.update(kw)
    return AttemptFacts(neurolytic=[Dose(2.0, agent, pct, ml, "tissue", coverage={"celiac_left": cov}, pass_index=1)], **base)


def by_topic(ds):
    return {d.topic: d for d in ds}


def test_a_careful_attempt_has_no_poor_decision():
    ds = judge_decisions(facts(), scenario())
    assert decision_errors(ds) == 0, [d for d in ds if d.verdict == "poor"]
    assert {"time-out", "consent", "asepsis", "prognostic block", "agent", "volume", "level and side"} <= set(by_topic(ds))


def test_contraindication_missed_or_ignored():
    sc = scenario(contraindications=[{"kind": "coagulopathy", "finding": "INR 2.6 on warfarin", "action": "defer",
                                      "why": "bleeding into the retroperitoneum cannot be compressed"}])
    missed = by_topic(judge_decisions(facts(), sc))["time-out"]
    assert missed.verdict == "poor" and "INR 2.6" in missed.why
    ignored = by_topic(judge_decisions(facts(time_out={"contraindications": ["coagulopathy"], "decision": "proceed"}), sc))
    assert ignored["time-out"].verdict == "poor" and "went ahead" in ignored["time-out"].why
    deferred = AttemptFacts(time_out={"contraindications": ["coagulopathy"], "decision": "defer"})
    assert by_topic(judge_decisions(deferred, sc))["time-out"].verdict == "good"
    # deferring a patient without a contraindication is a poor decision too
    needless = by_topic(judge_decisions(AttemptFacts(time_out={"contraindications": [], "decision": "defer"}),
                                        scenario(contraindications=[])))["time-out"]
    assert needless.verdict == "poor" and "leaves the patient in pain" in needless.why


def test_agent_concentration_volume_and_level():
    sc = scenario()
    weak = by_topic(judge_decisions(facts(pct=30.0), sc))["agent"]
    assert weak.verdict == "poor" and "below 50 %" in weak.why
    phenol = by_topic(judge_decisions(facts(agent="phenol", pct=6.0), sc))["agent"]
    assert phenol.verdict == "poor" and "alcohol" in phenol.why
    assert by_topic(judge_decisions(facts(ml=40.0), sc))["volume"].verdict == "poor"
    assert by_topic(judge_decisions(facts(ml=3.0), sc))["volume"].verdict == "poor"
    missed = by_topic(judge_decisions(facts(cov=0.0), sc))["level and side"]
    assert missed.verdict == "poor" and "not reached" in missed.why


def test_skipped_prognostic_block_is_explained():
    sc = scenario()
    d = by_topic(judge_decisions(facts(prognostic=[], prognostic_result=None), sc))["prognostic block"]
    assert d.verdict == "poor" and "destroys nerves for months" in d.why
    neg = facts(prognostic_result={"positive": False, "reached": True})
    assert by_topic(judge_decisions(neg, sc))["prognostic block"].verdict == "poor"


def test_asepsis_and_consent():
    sc = synthetic_scenario(vignette=VIGNETTE, steps=dict(synthetic_scenario().steps.model_dump(mode="json"),
                                                          asepsis=True, consent=True))
    f = facts(skin_prep=False, drape=False, asepsis_before_puncture=False, consent_items=None)
    d = by_topic(judge_decisions(f, sc))
    assert d["asepsis"].verdict == "poor" and "infection" in d["asepsis"].why
    assert d["consent"].verdict == "poor"
    partial = by_topic(judge_decisions(facts(consent_items=["diarrhoea"]), sc))["consent"]
    assert partial.verdict == "acceptable" and "paraplegia" in partial.why
