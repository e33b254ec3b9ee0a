"""A repeat procedure on the same patient: the history an attempt leaves, the second course
(McGreevy 2013's lower and shorter relief, scarring as an assumption), and scenario variants
(`based_on`) such as the follow-up and the aneurysm patient. No display."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.benchmarks.scoring import synthetic_block_anatomy, synthetic_scenario
from simulator.core import outcome_library, paths
from simulator.core.outcome import CaseInfo, case_info, compute_course, course_for_attempt, relief_chance, relief_days
from simulator.core.outcome_facts import QUADRANTS, AttemptFacts, Dose
from simulator.core.repeat import history_from_attempt, months_until_repeat, repeat_sites
from simulator.core.scenario import ScenarioError, load_scenario, parse_scenario_text
from tests.attempts import neurolysis_on_block


@pytest.fixture(scope="module")
def celiac():
    return outcome_library.shared_library().sets["celiac_plexus"]


def facts(ml_per_quadrant: float, seed: int = 3) -> AttemptFacts:
    qm = dict.fromkeys(QUADRANTS, ml_per_quadrant)
    return AttemptFacts(neurolytic=[Dose(0.0, "alcohol", 100.0, 15.0, "tissue", quadrant_ml=qm)], skin_punctures=2,
                        skin_prep=True, drape=True, asepsis_before_puncture=True, seed=seed)


def test_a_repeat_is_less_likely_to_help_mcgreevy_2013(celiac):
    """Success 67 % after the first celiac neurolysis, 29 % after a repeat: x0.43 (cited)."""
    assert celiac.repeat.relief_factor.source == "mcgreevy2013" and not celiac.repeat.relief_factor.assumption
    first = relief_chance(facts(1.5), celiac, CaseInfo(block_truth=True))[0]
    again = relief_chance(facts(1.5), celiac, CaseInfo(block_truth=True, repeat_of=[]))[0]
    assert again == pytest.approx(first * 29 / 67, abs=0.005)


def test_scarring_cuts_the_agent_reaching_quadrants_treated_before(celiac):
    """0.6 ml in each quadrant counts (>= 0.5 ml); after a neurolysis there, x0.8 reaches them
    (0.48 ml): no quadrant counts - the relief of two or fewer quadrants (0/75), x0.43."""
    prior = [{"agent": "alcohol", "quadrant_ml": dict.fromkeys(QUADRANTS, 1.5)}]
    fresh = relief_chance(facts(0.6), celiac, CaseInfo(block_truth=True, repeat_of=[]))
    scarred = relief_chance(facts(0.6), celiac, CaseInfo(block_truth=True, repeat_of=prior))
    assert fresh[2]["quadrants"] == 4 and scarred[2]["quadrants"] == 0
    assert scarred[0] == pytest.approx((0 + 1) / (75 + 2) * celiac.repeat.relief_factor.value)
    assert "scarring" in scarred[1] and celiac.repeat.fibrosis_spread_factor.assumption


def test_relief_after_a_repeat_lasts_about_half_as_long(celiac):
    """Mean relief 3.4 months after the first, 1.6 after a repeat (x0.47): the same patient draws."""
    for seed in range(60):
        a = compute_course(facts(1.5, seed), celiac, CaseInfo(block_truth=True, n_patients=50))
        b = compute_course(facts(1.5, seed), celiac, CaseInfo(block_truth=True, n_patients=50, repeat_of=[]))
        if a.index_relief and b.index_relief and a.index_return_day is not None:
            break
    else:
        pytest.fail("no seed with relief after both")
    assert relief_days(b) == pytest.approx(0.47 * relief_days(a), rel=0.02)
    assert any(n.startswith("A repeat procedure") for n in b.notes)


def _attempt(scenario):
    return neurolysis_on_block(scenario)[1]


def test_the_history_of_an_attempt_and_the_second_course():
    sc = synthetic_scenario(outcome={"parameters": "celiac_plexus", "celiac_origin_mm": [-20.0, 27.0, 0.0]})
    proc = _attempt(sc)
    course = course_for_attempt(proc.recording, sc)
    hist = history_from_attempt(proc.recording, sc, course, attempt_id=12)
    assert hist["scenario_id"] == sc.id and hist["attempt_id"] == 12 and hist["started_at"] == proc.recording.started_at
    [site] = hist["sites"]
    assert site["agent"] == "alcohol" and site["volume_ml"] == 15.0 and set(site["quadrant_ml"]) == set(QUADRANTS)
    assert hist["months_before"] == months_until_repeat(course)
    assert 0 <= hist["pain_nrs_now"] <= 10
    # the follow-up: its recording carries the history; the course reads it back
    again = _attempt(sc)
    again.recording.meta["follows"] = hist
    assert repeat_sites(again.recording.meta) == hist["sites"]
    info = case_info(sc, again.recording)
    assert info.repeat_of == hist["sites"] and info.baseline_nrs == hist["pain_nrs_now"]
    second = course_for_attempt(again.recording, sc)
    assert second.relief_probability < course.relief_probability
    assert course_for_attempt(again.recording, sc).to_json() == second.to_json()  # deterministic


def test_a_follows_scenario_is_a_repeat_without_a_known_earlier_attempt():
    rep = load_scenario(paths.SCENARIOS_DIR / "celiac_plexus_repeat.yaml")
    assert rep.follows == "celiac_plexus_posterior"
    assert repeat_sites({}, rep) == [] and repeat_sites({}, load_scenario(paths.SCENARIOS_DIR / "celiac_plexus_posterior.yaml")) is None


# --- variants: based_on -------------------------------------------------------------------------

def test_variants_take_their_base_and_change_the_patient():
    base = load_scenario(paths.SCENARIOS_DIR / "splanchnic_t11_t12.yaml")
    var = load_scenario(paths.SCENARIOS_DIR / "splanchnic_t11_t12_aneurysm.yaml")
    assert var.based_on == "splanchnic_t11_t12" and var.id != base.id
    assert var.targets == base.targets and var.planned_trajectory == base.planned_trajectory and var.rubric == base.rubric
    assert [c.kind for c in var.vignette.contraindications] == ["aortic_aneurysm"]
    assert var.vignette.contraindications[0].action == "defer" and base.vignette.contraindications == []
    rep = load_scenario(paths.SCENARIOS_DIR / "celiac_plexus_repeat.yaml")
    first = load_scenario(paths.SCENARIOS_DIR / "celiac_plexus_posterior.yaml")
    # mappings merge key by key: the vignette keeps the base's age, the block the base's agent
    assert rep.vignette.age_years == first.vignette.age_years and rep.vignette.pain_nrs == 6
    assert rep.prognostic_block.agent == first.prognostic_block.agent and rep.prognostic_block.required
    assert rep.steps.time_out and rep.outcome == first.outcome


VARIANT = """schema_version: 1
id: my_variant
title: "A variant"
based_on: {base}
{extra}"""


@pytest.mark.parametrize("base, extra, field, words", [
    ("no_such_scenario", "", "based_on", "not found"),
    ("my_variant", "", "based_on", "cycle"),
    ("splanchnic_t11_t12", "difficulty: 9\n", "difficulty", "less than or equal to 4"),
    ("splanchnic_t11_t12", "vignette: {pain_nrs: 12}\n", "vignette.pain_nrs", "less than or equal to 10"),
])
def test_variant_errors_name_the_file_line_and_field(tmp_path, monkeypatch, base, extra, field, words):
    monkeypatch.setenv("NEUROLYSIS_DATA", str(tmp_path))
    (tmp_path / "scenarios").mkdir()
    f = tmp_path / "scenarios" / "my_variant.yaml"
    f.write_text(VARIANT.format(base=base, extra=extra), encoding="utf-8")
    with pytest.raises(ScenarioError) as e:
        load_scenario(f)
    text = str(e.value)
    assert f"my_variant.yaml:" in text and field in text and words in text, text
    line = int(text.split("my_variant.yaml:")[1].split(":")[0])
    want = next(i for i, ln in enumerate(f.read_text().splitlines(), 1) if ln.startswith(field.split(".")[0]))
    assert line == want


REAL_VARIANT = (paths.SCENARIOS_DIR / "celiac_plexus_repeat.yaml").read_text(encoding="utf-8")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_variants_give_our_error_never_a_traceback(data):
    lines = REAL_VARIANT.splitlines()
    i = data.draw(st.integers(0, len(lines) - 1))
    junk = data.draw(st.sampled_from(["", "based_on: celiac_plexus_repeat", "based_on: [1, 2]", "based_on:", "  - x",
                                      "vignette: 3", "prognostic_block: {required: maybe}", "follows: ''", ": :"]))
    text = "\n".join(lines[:i] + [junk] + lines[i + 1:])
    try:
        parse_scenario_text(text, "mutant.yaml")
    except ScenarioError as e:
        assert str(e).startswith("mutant.yaml")


def test_the_same_patient_answers_the_prognostic_block_the_same_way():
    from simulator.core.case_steps import case_seed, patient_seed

    sc = synthetic_scenario(outcome={"parameters": "celiac_plexus", "celiac_origin_mm": [-20.0, 27.0, 0.0]})
    first = _attempt(sc)
    hist = history_from_attempt(first.recording, sc, course_for_attempt(first.recording, sc))
    second = _attempt(sc)
    second.recording.started_at = "2031-01-01T00:00:00"
    second.recording.meta["follows"] = hist
    assert patient_seed(second.recording) == patient_seed(first.recording) == case_seed(
        sc.id, first.recording.started_at, first.recording.trainee)
    third = _attempt(sc)  # a follow-up of the follow-up: still the first attempt's patient
    third.recording.meta["follows"] = history_from_attempt(second.recording, sc, course_for_attempt(second.recording, sc))
    assert patient_seed(third.recording) == patient_seed(first.recording)
    assert case_info(sc, third.recording).block_truth_seed == case_info(sc, first.recording).block_truth_seed


def _case_scenario(action: str):
    from simulator.core.scenario_model import Steps

    base = synthetic_scenario(outcome={"parameters": "celiac_plexus", "celiac_origin_mm": [-20.0, 27.0, 0.0]})
    steps = base.steps.model_dump()
    steps.update(time_out=True, consent=True, asepsis=True)
    vignette = {"age_years": 70, "sex": "male", "diagnosis": "pancreatic cancer", "pain_history": "epigastric pain",
                "pain_nrs": 8, "consent_items": ["bleeding", "pneumothorax"],
                "contraindications": [{"kind": "aortic_aneurysm", "finding": "a 5.6 cm aneurysm", "action": action,
                                       "why": "the needle passes beside it"}]}
    return synthetic_scenario(steps=Steps(**steps), vignette=vignette,
                              outcome={"parameters": "celiac_plexus", "celiac_origin_mm": [-20.0, 27.0, 0.0]})


@pytest.mark.parametrize("action, needles", [("defer", 0), ("proceed_with_caution", 1)])
def test_the_scripted_expert_does_the_case_steps_and_defers_when_the_key_says_so(action, needles):
    from simulator.core.decisions import judge_decisions
    from simulator.core.events import EventKind
    from simulator.core.outcome_facts import facts_from_recording
    from simulator.scripted import run_attempt

    sc = _case_scenario(action)
    proc = run_attempt(sc, synthetic_block_anatomy(), "expert", seed=0, steady=True, quick=True)
    ev = proc.recording.events
    [to] = [e for e in ev if e.kind == EventKind.time_out]
    assert to.data["contraindications"] == ["aortic_aneurysm"]
    assert to.data["decision"] == ("defer" if action == "defer" else "proceed")
    assert sum(e.kind == EventKind.skin_puncture for e in ev) == needles and proc.ended
    verdicts = {d.topic: d.verdict for d in judge_decisions(facts_from_recording(proc.recording), sc)}
    assert verdicts["time-out"] == "good"
    if needles:
        assert verdicts["asepsis"] == "good" and verdicts["consent"] == "good"


def test_a_novice_misses_the_contraindication_that_says_defer_and_fails_for_it():
    """On a scenario whose lesson is the decision, the scripted novices go on with the needle (the
    fault `contraindication_missed`): an automatic fail, while the expert's deferral passes - the
    score separates them. Where the key says proceed with caution, the fault does not apply."""
    from simulator.core.scoring import score_attempt
    from simulator.scripted import cohort, fault_applies

    sc, an = _case_scenario("defer"), synthetic_block_anatomy()
    novices = cohort(sc, an, "novice", n=2, seed0=0, quick=True)
    assert all("contraindication_missed" in faults for _s, faults, _p in novices)
    for _s, _f, proc in novices:
        card = score_attempt(proc.recording, sc, an)
        assert not card.passed and "contraindication_ignored" in {a["key"] for a in card.automatic_fails}
    [(_s, faults, proc)] = cohort(sc, an, "expert", n=1, quick=True)
    assert faults == () and score_attempt(proc.recording, sc, an).passed
    assert fault_applies("contraindication_missed", _case_scenario("proceed_with_caution"), []) is not None
    assert all("contraindication_missed" not in f for _s, f, _p in
               cohort(_case_scenario("proceed_with_caution"), an, "novice", n=2, quick=True))
