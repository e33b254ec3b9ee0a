"""Rescoring replays the stored inputs and gives the same score to the last digit."""
import json

import pytest

from simulator.core.procedure import Procedure
from simulator.core.recording import Recording
from simulator.records.live import LiveRecorder
from simulator.records.rescore import rescore
from simulator.records.store import RecordsError


def test_rescore_gives_the_same_card_to_the_last_digit(store, expert, novice, scenario):
    for proc, card in (expert, novice):
        aid = store.save_recording(proc.recording, card, scenario=scenario)
        res = rescore(store, aid)  # scenario from the store, anatomy phantom:test_block by reference
        assert res.identical and res.differences == [] and res.warnings == []
        assert res.replay_identical
        assert json.dumps(res.card.to_json(), sort_keys=True) == json.dumps(card.to_json(), sort_keys=True)
        assert repr(res.card.score) == repr(card.score)


def test_rescore_reports_what_changed_and_can_store_it(store, expert, scenario):
    proc, card = expert
    aid = store.save_recording(proc.recording, card, scenario=scenario)
    tampered = json.loads(json.dumps(card.to_json()))
    tampered["score"] = 12.5
    tampered["metrics"]["fluoro_shots"] = 99.0
    store.set_score(aid, tampered)
    res = rescore(store, aid)
    assert not res.identical
    assert res.differences[:2] == [f"score: 12.5 -> {card.score!r}", f"metrics.fluoro_shots: 99.0 -> "
                                   f"{card.metrics['fluoro_shots']!r}"]
    rescore(store, aid, save=True)
    assert rescore(store, aid).identical and store.attempt(aid).score == card.score


def test_rescore_with_another_scenario_version_warns(store, expert, block):
    from simulator.benchmarks.scoring import synthetic_scenario

    proc, card = expert
    aid = store.save_recording(proc.recording, card, scenario=synthetic_scenario())
    rubric = synthetic_scenario().rubric.model_dump(mode="json")
    rubric["items"] = [dict(it, good=5, bad=10) if it["metric"] == "fluoro_shots" else it for it in rubric["items"]]
    stricter = synthetic_scenario(rubric=rubric)  # fewer fluoroscopy images for full marks
    res = rescore(store, aid, scenario=stricter, anatomy=block)
    assert res.warnings and "another version of scenario" in res.warnings[0]
    assert card.score == 100.0 and card.metrics["fluoro_shots"] > 10
    lost = 100.0 * 5 / sum(it["weight"] for it in rubric["items"])  # the 5 weight points of that item
    assert res.card.score == pytest.approx(100.0 - lost) and res.card.passed
    assert not res.identical and res.differences[0].startswith(f"score: 100.0 -> {res.card.score!r}")


def test_rescore_needs_inputs(store, expert, scenario):
    bare = Recording.from_json_dict(expert[0].recording.to_json_dict())
    bare.inputs = []
    aid = store.save_recording(bare, expert[1], scenario=scenario)
    with pytest.raises(RecordsError, match=f"attempt {aid} has no recorded inputs"):
        rescore(store, aid)


def _celiac():
    from simulator.anatomy import bundled
    from simulator.core.paths import SCENARIOS_DIR
    from simulator.core.scenario import load_scenario

    path = SCENARIOS_DIR / "celiac_plexus_posterior.yaml"
    if not path.exists() or not bundled.cache_is_valid():
        pytest.skip("the bundled patient is not built (run `python main.py setup-data`)")
    from simulator.anatomy import load_anatomy

    return load_scenario(path), load_anatomy("bundled")


def test_celiac_expert_recorded_live_and_rescored(store):
    """The scripted expert celiac plexus block on the bundled patient, recorded live, rescored."""
    from simulator.benchmarks.scoring import StepClock, expert_side
    from simulator.core.scoring import score_attempt

    scenario, anatomy = _celiac()
    proc = Procedure(scenario, anatomy, clock=lambda: 0.0, trainee="ann")
    rec = LiveRecorder(store, proc)
    aid = rec.start()
    clock = StepClock(1.5)
    for plan in [scenario.planned_trajectory] + list(scenario.additional_trajectories):
        expert_side(proc, clock, plan.entry_mm, plan.target_mm)
    proc.end(time_s=clock())
    card = score_attempt(proc.recording, scenario, anatomy)
    assert card.passed
    rec.finish(card)
    assert store.load_attempt(aid).same_as(proc.recording)
    res = rescore(store, aid, anatomy=anatomy)
    assert res.identical and res.replay_identical, res.differences
    assert res.card.score == card.score
