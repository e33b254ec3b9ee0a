"""The rubric: linear items, normalised weights, automatic fails, reasons, and purity."""
import json

import numpy as np
import pytest

from simulator.benchmarks.scoring import TARGET, expert_attempt, novice_attempt, synthetic_scenario
from simulator.core.geometry import pose_from_tip_axis
from simulator.core.procedure import Procedure, replay
from simulator.core.recording import Recording
from simulator.core.scoring import item_fraction, score_attempt


@pytest.fixture(scope="module")
def expert(scenario, block):
    return expert_attempt(Procedure(scenario, block, clock=lambda: 0.0))


@pytest.fixture(scope="module")
def novice(scenario, block):
    return novice_attempt(Procedure(scenario, block, clock=lambda: 0.0))


def test_item_fraction_is_linear_between_good_and_bad():
    assert item_fraction(2.0, good=2.0, bad=10.0) == 1.0
    assert item_fraction(6.0, good=2.0, bad=10.0) == 0.5
    assert item_fraction(12.0, good=2.0, bad=10.0) == 0.0
    assert item_fraction(0.0, good=2.0, bad=10.0) == 1.0
    # higher is better when good > bad
    assert item_fraction(75.0, good=100.0, bad=0.0) == 0.75
    assert item_fraction(120.0, good=100.0, bad=0.0) == 1.0


def test_expert_passes_with_full_marks_on_the_essentials(expert, scenario, block):
    card = score_attempt(expert.recording, scenario, block)
    assert card.passed and card.automatic_fails == []
    assert card.score >= 90
    items = {i.metric: i for i in card.items}
    assert items["final_distance_mm"].points == pytest.approx(items["final_distance_mm"].share)
    assert items["critical_contacts"].value == 0
    assert sum(i.share for i in card.items) == pytest.approx(100.0)
    assert card.reasons[0] == "celiac plexus: injected 0.0 mm from it (tolerance 5 mm), coverage 100 %"
    assert card.metrics["bone_contacts"] == 1 and card.metrics["target_coverage_pct"] == 100.0


def test_novice_fails_with_reasons_naming_the_errors(novice, scenario, block):
    card = score_attempt(novice.recording, scenario, block)
    assert not card.passed and card.score < 50
    keys = {f["key"] for f in card.automatic_fails}
    assert {"critical_contact", "intravascular_agent", "agent_without_aspiration", "agent_without_local_anaesthetic",
            "agent_without_contrast", "agent_volume_exceeded", "target_not_reached"} <= keys
    text = "\n".join(card.reasons)
    assert "aorta punctured at 00:06 - automatic fail" in text
    assert "into a blood vessel" in text
    assert "without aspirating" in text
    assert "no local anaesthetic" in text
    assert "30 ml of neurolytic" in text and "at most 25 ml" in text
    assert "advances without imaging: 6" in text
    # automatic fails come first in the reasons
    assert card.reasons[0].endswith("automatic fail")


def test_not_applicable_items_drop_out_and_weights_renormalise(block):
    sc = synthetic_scenario(rubric={
        "pass_mark": 50,
        "items": [{"metric": "final_distance_mm", "weight": 30, "good": 2, "bad": 10},
                  {"metric": "tip_visible_pct", "weight": 70, "good": 90, "bad": 50}],
        "automatic_fails": [],
        "advance_without_imaging_mm": 10,
    })
    proc = expert_attempt(Procedure(sc, block, clock=lambda: 0.0))
    card = score_attempt(proc.recording, sc, block)
    vis = next(i for i in card.items if i.metric == "tip_visible_pct")
    assert not vis.applicable and vis.share == 0.0
    assert card.score == pytest.approx(100.0)
    assert card.passed


def test_wrong_agent_and_missing_agent(scenario, block):
    proc = Procedure(scenario, block, clock=lambda: 0.0)
    proc.set_needle_tip_to_world(pose_from_tip_axis(np.array(TARGET) - [0, 100, 0], [0, 1, 0]), time_s=1.0)
    proc.set_needle_tip_to_world(pose_from_tip_axis(TARGET, [0, 1, 0]), time_s=2.0)
    proc.aspirate(time_s=3.0)
    proc.inject("neurolytic", "phenol", 6.0, 10.0, time_s=4.0)
    card = score_attempt(proc.recording, scenario, block)
    assert any("phenol 6 % is not an agent" in r for r in card.reasons)
    proc2 = Procedure(scenario, block, clock=lambda: 0.0)
    proc2.set_needle_tip_to_world(pose_from_tip_axis(TARGET, [0, 1, 0]), time_s=1.0)
    card2 = score_attempt(proc2.recording, scenario, block)
    assert "no_agent_injected" in {f["key"] for f in card2.automatic_fails}


def test_score_is_a_pure_function_of_the_recording(expert, scenario, block, tmp_path):
    a = score_attempt(expert.recording, scenario, block).to_json()
    b = score_attempt(expert.recording, scenario, block).to_json()
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    loaded = Recording.load(expert.recording.save(tmp_path / "e.nlrec.npz"))
    c = score_attempt(loaded, scenario, block).to_json()
    assert c["score"] == a["score"] and c["reasons"] == a["reasons"] and c["perk"] == a["perk"]
    again = replay(loaded, scenario, block, silent=True)
    d = score_attempt(again.recording, scenario, block).to_json()
    assert json.dumps(d, sort_keys=True) == json.dumps(a, sort_keys=True)


def test_live_metrics_match_the_final_perk_metrics(expert, scenario, block):
    card = score_attempt(expert.recording, scenario, block)
    live = expert.live_metrics()
    for k in ("elapsed_time_s", "path_length_mm", "path_in_tissue_mm", "time_in_tissue_s", "tissue_damage_mm2"):
        assert live[k] == pytest.approx(card.perk[k], abs=1e-9)
    assert live["tissue_punctures"] == card.perk["tissue_punctures"] == 1


def test_repeated_reasons_are_counted_per_kind_and_another_kind_is_never_hidden():
    """Five artery punctures then the pleura: three artery lines, "... and 2 more like it", then
    the pleura - a pneumothorax is not folded into the artery's count."""
    from simulator.core.scoring import _shorten

    artery = [{"key": "critical_contact", "time_s": float(t), "reason": f"Artery punctured. at 00:{t:02d} - automatic fail"}
              for t in (10, 20, 30, 40, 50)]
    pleura = {"key": "critical_contact", "time_s": 60.0, "reason": "The pleura punctured: pneumothorax. at 01:00 - automatic fail"}
    out = [f["reason"] for f in _shorten(artery + [pleura])]
    assert out[:3] == [a["reason"] for a in artery[:3]]
    assert out[3] == "... and 2 more like it" and out[4] == pleura["reason"] and len(out) == 5
