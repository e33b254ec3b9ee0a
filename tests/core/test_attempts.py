"""Scripted attempts: an expert passes, a novice fails with reasons naming what went wrong.

On the test block (always) and on the celiac plexus scenario with the bundled patient (when its
anatomy cache is built: `make test` builds it first).
"""
import math

import numpy as np
import pytest

from simulator.benchmarks.scoring import (
    StepClock,
    expert_attempt,
    expert_side,
    novice_attempt,
    synthetic_block_anatomy,
    synthetic_scenario,
)
from simulator.core.events import EventKind
from simulator.core.geometry import normalize
from simulator.core.paths import SCENARIOS_DIR
from simulator.core.procedure import Procedure, replay
from simulator.core.scoring import score_attempt

# ------------------------------------------------------------------------------------------
# the test block
# ------------------------------------------------------------------------------------------


def test_block_expert_passes_and_novice_fails():
    an = synthetic_block_anatomy()
    sc = synthetic_scenario()
    good = score_attempt(expert_attempt(Procedure(sc, an, clock=lambda: 0.0)).recording, sc, an)
    bad = score_attempt(novice_attempt(Procedure(sc, an, clock=lambda: 0.0)).recording, sc, an)
    assert good.passed and good.score >= 90
    assert not bad.passed
    text = "\n".join(bad.reasons)
    for words in ("aorta punctured", "blood vessel", "without aspirating", "no local anaesthetic",
                  "without a contrast injection", "advances without imaging"):
        assert words in text, words


# ------------------------------------------------------------------------------------------
# the celiac plexus scenario on the bundled patient
# ------------------------------------------------------------------------------------------


def _bundled():
    from simulator.anatomy import bundled, load_anatomy

    if not bundled.cache_is_valid():
        pytest.skip("the bundled patient is not built (run `python main.py setup-data`)")
    return load_anatomy("bundled")


@pytest.fixture(scope="module")
def celiac():
    from simulator.core.scenario import load_scenario

    path = SCENARIOS_DIR / "celiac_plexus_posterior.yaml"
    anatomy = _bundled()
    return load_scenario(path), anatomy


def test_celiac_expert_passes(celiac):
    scenario, anatomy = celiac
    clock = StepClock(1.5)
    proc = Procedure(scenario, anatomy, clock=lambda: 0.0)
    plans = [scenario.planned_trajectory] + list(scenario.additional_trajectories)
    for plan in plans:
        expert_side(proc, clock, plan.entry_mm, plan.target_mm)
    proc.end(time_s=clock())
    card = score_attempt(proc.recording, scenario, anatomy)
    kinds = [e.kind for e in proc.events]
    contacts = [e for e in proc.events if e.kind == EventKind.bone_contact]
    assert contacts and contacts[0].data["structure"] == "vertebrae_L1"  # touched L1 and walked off
    assert EventKind.critical_contact not in kinds, [e.message for e in proc.events if e.kind == EventKind.critical_contact]
    assert card.automatic_fails == [], card.reasons
    assert card.passed, card.text()
    for t in card.targets:
        assert t["reached"] and t["final_distance_mm"] < 1.0
    assert card.metrics["advances_without_imaging"] == 0
    assert [e.data["result"] for e in proc.events if e.kind == EventKind.aspiration] == ["nothing"] * 6
    assert card.metrics["target_coverage_pct"] == 100.0
    # replaying the recording gives the same score to the last digit
    again = replay(proc.recording, scenario, anatomy, silent=True)
    assert again.recording.same_as(proc.recording)
    assert score_attempt(again.recording, scenario, anatomy).to_json() == card.to_json()


def test_celiac_novice_fails_with_reasons(celiac):
    scenario, anatomy = celiac
    clock = StepClock(1.5)
    proc = Procedure(scenario, anatomy, clock=lambda: 0.0)
    plan = scenario.planned_trajectory
    entry = np.array(plan.entry_mm, float)
    target = np.array(plan.target_mm, float)
    # aim at the aorta beside the target instead of the target; no local anaesthetic, no images
    aorta = anatomy.structure_by_name("aorta")
    idx = np.argwhere(anatomy.labels == aorta.id)
    pts = anatomy.origin_mm + idx * anatomy.spacing_mm
    aim = pts[np.abs(pts[:, 2] - target[2]) < 2.6].mean(axis=0)
    proc.set_entry(entry, normalize(aim - entry), time_s=clock())
    for _ in range(20):
        proc.advance(15.0, time_s=clock())
        if proc.state.structure == "aorta" or proc.state.bone_contact:
            break
    assert proc.state.structure == "aorta"
    proc.inject("neurolytic", "alcohol", 100.0, 20.0, time_s=clock())
    proc.end(time_s=clock())
    card = score_attempt(proc.recording, scenario, anatomy)
    assert not card.passed
    keys = {f["key"] for f in card.automatic_fails}
    assert {"critical_contact", "intravascular_agent", "agent_without_aspiration",
            "agent_without_local_anaesthetic", "agent_without_contrast"} <= keys
    text = "\n".join(card.reasons)
    assert "Aortic puncture" in text and "automatic fail" in text
    assert "injected into a blood vessel" in text
    assert "advances without imaging" in text
    assert "Celiac plexus, right" in text  # the other side was never done
    assert math.isfinite(card.score) and card.score < card.pass_mark
