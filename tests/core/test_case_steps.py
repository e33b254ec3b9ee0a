"""The case steps of an attempt on the synthetic block: time-out, consent, asepsis, the prognostic
block before the neurolytic, the celiac quadrants stored with each injection, and the course."""
import numpy as np
import pytest

from simulator.benchmarks.scoring import ENTRY, TARGET, synthetic_scenario
from simulator.core.events import EventKind
from simulator.core.outcome import course_for_attempt
from simulator.core.outcome_facts import facts_from_recording
from simulator.core.procedure import Procedure, ProcedureError, replay

ORIGIN = [-20.0, 27.0, 0.0]  # the front of the test block's aorta


def case_scenario(**pb):
    block = {"required": True, "agent": "bupivacaine", "concentration_pct": 0.25, "min_ml": 2, "max_ml": 10}
    block.update(pb)
    steps = dict(synthetic_scenario().steps.model_dump(mode="json"), time_out=True, consent=True, asepsis=True)
    return synthetic_scenario(
        steps=steps,
        vignette={"age_years": 64, "sex": "female", "diagnosis": "pancreatic cancer", "pain_history": "epigastric pain",
                  "pain_nrs": 8, "consent_items": ["diarrhoea", "hypotension"],
                  "anticoagulation": {"drug": "none"}},
        prognostic_block=block,
        outcome={"parameters": "celiac_plexus", "celiac_origin_mm": ORIGIN, "n_patients": 100},
    )


def reach_target(proc, t=10.0):
    d = np.subtract(TARGET, ENTRY)
    proc.set_entry(ENTRY, d / np.linalg.norm(d), time_s=t)
    proc.local_anaesthetic(time_s=t + 1)
    proc.advance(float(np.linalg.norm(d)) - 1.0, time_s=t + 2)
    proc.aspirate(time_s=t + 3)


def test_case_steps_the_prognostic_block_and_the_course(block):
    sc = case_scenario(positive=True)
    proc = Procedure(sc, block, clock=lambda: 0.0)
    assert [s["step"] for s in proc.steps_status()][:3] == ["time_out", "consent", "asepsis"]
    assert proc.current_step() == "time_out"
    proc.time_out([], "proceed", time_s=1.0)
    proc.consent(["diarrhoea", "hypotension"], time_s=2.0)
    proc.skin_preparation(time_s=3.0)
    proc.drape(time_s=4.0)
    assert proc.current_step() == "local_anaesthetic"
    with pytest.raises(ProcedureError, match="unknown contraindication"):
        proc.time_out(["bad_luck"], time_s=5.0)
    reach_target(proc)
    assert proc.state.target_distances_mm["celiac_left"] < 5
    with pytest.raises(ProcedureError, match="prognostic local-anaesthetic block first"):
        proc.inject("neurolytic", "alcohol", 100.0, 10.0, time_s=20.0)
    with pytest.raises(ProcedureError, match="local anaesthetic"):
        proc.inject("prognostic", "alcohol", 100.0, 5.0, time_s=20.0)
    proc.inject("prognostic", "bupivacaine", 0.25, 5.0, time_s=21.0)
    res = [e for e in proc.events if e.kind == EventKind.prognostic_result]
    assert len(res) == 1 and res[0].data["positive"] and res[0].data["reached"]
    proc.aspirate(time_s=22.0)
    proc.inject("neurolytic", "alcohol", 100.0, 15.0, time_s=23.0)
    inj = [e for e in proc.events if e.kind == EventKind.injection and e.data["kind"] == "neurolytic"][-1]
    q = inj.data["quadrant_ml"]
    assert set(q) == {"upper_right", "upper_left", "lower_right", "lower_left"}
    assert q["upper_left"] > 0 and q["lower_left"] > 0  # the left tip at the aorta's level: left quadrants first
    assert sum(q.values()) <= 15.0 + 1e-6
    proc.end(time_s=30.0)
    # replay rebuilds the same events (the prognostic result and the quadrants included)
    again = replay(proc.recording, sc, block)
    assert [e.to_json() for e in again.events] == [e.to_json() for e in proc.events]
    facts = facts_from_recording(proc.recording)
    assert facts.asepsis and facts.consent_items == ["diarrhoea", "hypotension"]
    assert facts.time_out == {"contraindications": [], "decision": "proceed"}
    assert facts.prognostic_result["positive"] and len(facts.neurolytic) == 1
    course = course_for_attempt(proc.recording, sc)
    assert course.available and course.coverage["quadrants"] >= 1
    assert course_for_attempt(again.recording, sc).to_json() == course.to_json()


def test_a_negative_block_and_a_missed_block(block):
    sc = case_scenario(positive=False, required=False)
    proc = Procedure(sc, block, clock=lambda: 0.0)
    reach_target(proc)
    proc.inject("prognostic", "bupivacaine", 0.25, 5.0, time_s=20.0)
    res = [e for e in proc.events if e.kind == EventKind.prognostic_result][-1]
    assert not res.data["positive"] and "do not carry" in res.message
    proc.aspirate(time_s=21.0)
    proc.inject("neurolytic", "alcohol", 100.0, 10.0, time_s=22.0)
    keys = [e.data.get("key") for e in proc.events if e.kind == EventKind.step_warning]
    assert "negative_prognostic_block" in keys
    # a block given far from the target relieves nothing, whatever the truth: a false negative
    sc2 = case_scenario(positive=True, required=False)
    p2 = Procedure(sc2, block, clock=lambda: 0.0)
    d = np.subtract(TARGET, ENTRY)
    p2.set_entry(ENTRY, d / np.linalg.norm(d), time_s=1.0)
    p2.advance(40.0, time_s=2.0)
    p2.inject("prognostic", "bupivacaine", 0.25, 2.0, time_s=3.0)
    r2 = [e for e in p2.events if e.kind == EventKind.prognostic_result][-1]
    assert not r2.data["positive"] and not r2.data["reached"] and "false negative" in r2.message
