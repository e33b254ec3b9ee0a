"""Every target scored on its own: a bilateral block on the test block with one side left undone fails
with that reason, and the done side is measured against its own target."""
import numpy as np
import pytest

from simulator.benchmarks.scoring import ENTRY, SKIN_Y, TARGET, synthetic_scenario
from simulator.core.events import EventKind
from simulator.core.metrics import attempt_metrics, intended_targets
from simulator.core.scoring import score_attempt
from simulator.scripted import run_attempt

RIGHT = (32.0, 30.0, 0.0)
RIGHT_ENTRY = (56.0, SKIN_Y, 0.0)


@pytest.fixture(scope="module")
def bilateral():
    rubric = synthetic_scenario().rubric.model_dump()
    rubric["items"].append({"metric": "target_coverage_pct", "target": "celiac_right", "weight": 10, "good": 80,
                            "bad": 20})
    return synthetic_scenario(
        targets=[{"id": "celiac_left", "name": "celiac plexus, left", "points_mm": [list(TARGET)], "side": "left"},
                 {"id": "celiac_right", "name": "celiac plexus, right", "points_mm": [list(RIGHT)], "side": "right"}],
        planned_trajectory={"entry_mm": list(ENTRY), "target_mm": list(TARGET), "target_id": "celiac_left"},
        additional_trajectories=[{"entry_mm": list(RIGHT_ENTRY), "target_mm": list(RIGHT), "target_id": "celiac_right"}],
        rubric=rubric)


def test_both_sides_done_pass_with_each_target_reached_and_injected(bilateral, block):
    proc = run_attempt(bilateral, block, "expert", seed=3)
    card = score_attempt(proc.recording, bilateral, block)
    assert card.passed, card.text()
    by_id = {t["id"]: t for t in card.targets}
    for tid in ("celiac_left", "celiac_right"):
        assert by_id[tid]["injected"] and by_id[tid]["reached"] and by_id[tid]["final_distance_mm"] < 2.0
    # each neurolytic injection is meant for the target of its own needle
    am = attempt_metrics(proc.recording, bilateral, block)
    neuro = [e for e in proc.events if e.kind == EventKind.injection and e.data["kind"] == "neurolytic"]
    meant = intended_targets(proc.events, bilateral, [t for t in _targets(bilateral, block)])
    assert [meant[id(e)] for e in neuro] == [0, 1]
    assert am.per_target["celiac_right"]["target_coverage_pct"] == 100.0
    item = next(i for i in card.items if i.metric == "target_coverage_pct" and "right" in i.label)
    assert item.value == 100.0 and item.points == pytest.approx(item.share)


def _targets(scenario, anatomy):
    from simulator.core.targets import resolve_targets

    return resolve_targets(scenario, anatomy)


def test_one_side_only_fails_and_the_done_side_keeps_its_own_distance(bilateral, block):
    proc = run_attempt(bilateral, block, "expert", seed=3, faults=["one_side_only"])
    card = score_attempt(proc.recording, bilateral, block)
    assert not card.passed
    fail = [f for f in card.automatic_fails if f["key"] == "required_target_missed"]
    assert fail and fail[0]["reason"] == ("no needle placed and nothing injected at the celiac plexus, right "
                                          "(a required target) - automatic fail")
    left = next(t for t in card.targets if t["id"] == "celiac_left")
    assert left["injected"] and left["final_distance_mm"] < 2.0
    # the distance item is the left injection's distance to the left target, not to the right one (64 mm away)
    assert card.metrics["final_distance_mm"] == pytest.approx(left["final_distance_mm"])
    dist = next(i for i in card.items if i.metric == "final_distance_mm")
    assert dist.points == pytest.approx(dist.share)
    assert "celiac plexus, right: no needle, no injection" in card.reasons


def test_an_optional_target_left_alone_costs_nothing(bilateral, block):
    sc = bilateral.model_copy(deep=True)
    sc.targets[1].required = False
    proc = run_attempt(sc, block, "expert", seed=3)  # a needle for the required target only
    card = score_attempt(proc.recording, sc, block)
    assert card.passed, card.text()
    right = next(t for t in card.targets if t["id"] == "celiac_right")
    assert not right["injected"] and "celiac plexus, right: no needle, no injection (optional)" in card.reasons


def test_a_needle_placed_but_nothing_injected_is_said_so(bilateral, block):
    from simulator.core.geometry import normalize, pose_from_tip_axis
    from simulator.core.procedure import Procedure

    rec = run_attempt(bilateral, block, "expert", seed=3, faults=["one_side_only"]).recording
    p = Procedure(bilateral, block, clock=lambda: 0.0)
    for inp in rec.inputs[:-1]:  # the left side as before, without its end
        getattr(p, inp.name)(**inp.args, time_s=inp.time_s)
    t = rec.inputs[-1].time_s
    d = normalize(np.array(RIGHT) - np.array(RIGHT_ENTRY))  # then a tracked needle to the right target
    p.set_needle_tip_to_world(pose_from_tip_axis(np.array(RIGHT_ENTRY) - 2 * d, d), time_s=t)
    p.set_needle_tip_to_world(pose_from_tip_axis(np.array(RIGHT), d), time_s=t + 1)
    p.end(time_s=t + 2)
    card = score_attempt(p.recording, bilateral, block)
    assert ("needle placed at the celiac plexus, right but nothing injected there (a required target) - "
            "automatic fail") in card.reasons
    assert "celiac plexus, right: needle placed, nothing injected" in card.reasons
