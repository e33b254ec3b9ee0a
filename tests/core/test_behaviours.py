"""Error behaviours on the timeline, and the behaviour battery: on every library scenario the scripted
expert passes and each listed fault fails the attempt (or loses the rubric points it should) with a
reason a trainee can read."""
from __future__ import annotations

import numpy as np
import pytest

from simulator.benchmarks.scoring import ENTRY, synthetic_block_anatomy, synthetic_scenario
from simulator.core.behaviours import detect_behaviours
from simulator.core.geometry import normalize
from simulator.core.paths import SCENARIOS_DIR
from simulator.core.procedure import Procedure
from simulator.core.scoring import score_attempt
from simulator.core.targets import resolve_targets
from simulator.scripted import BATTERY, FaultNotApplicable, fault_applies, run_attempt

#: words the card must show for each fault (any of them)
SAYS = {
    "one_side_only": ("no needle placed and nothing injected",),
    "no_aspiration": ("without aspirating first",),
    "no_imaging": ("since the last fluoroscopy image", "out of the ultrasound plane"),
    "muscle_injection": ("injected into muscle",),
    "intravascular": ("blood on aspiration", "into a blood vessel", "vascular puncture"),
    "wrong_level": ("given at",),
    "pleura_dura": ("pleura", "dura", "spinal canal"),
    "excessive_redirections": ("more than",),
    "neurolytic_before_test_dose": ("before a test dose",),
    "probe_off_tip": ("out of the ultrasound plane",),
}


def _keys(card) -> set:
    return {b["key"] for b in card.behaviours}


# ------------------------------------------------------------------------------------------
# behaviours with known answers (test block)
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def block():
    return synthetic_block_anatomy()


def _proc(scenario, block):
    return Procedure(scenario, block, clock=lambda: 0.0)


def test_pushing_on_against_bone_and_redirections_beyond_the_allowance(block):
    sc = synthetic_scenario(rubric={**synthetic_scenario().rubric.model_dump(), "redirections_allowed": 2})
    p = _proc(sc, block)
    aim = normalize(np.array([-5.0, -10.0, 0.0]) - np.array(ENTRY))
    p.set_entry(ENTRY, aim, time_s=1.0)
    for k in range(30):
        p.advance(5.0, time_s=2.0 + k)
        if p.state.bone_contact:
            break
    t = p.time_s
    p.advance(3.0, time_s=t + 1)  # pushes on: the bone holds the tip
    p.advance(3.0, time_s=t + 2)
    p.withdraw(20.0, time_s=t + 3)
    for k, turn in enumerate((0.2, -0.2, 0.2, -0.2)):
        p.set_direction(normalize(aim + [turn, 0.0, 0.0]), time_s=t + 4 + k)
    p.record_fluoro_shot(dap_gycm2=1.0, duration_s=25.0, live=True, frames=180, time_s=t + 10)
    found = detect_behaviours(p.recording, sc, block, resolve_targets(sc, block))
    keys = [b.key for b in found]
    assert keys.count("bone_pushed") == 1  # one per contact, at the first push
    pushed = next(b for b in found if b.key == "bone_pushed")
    assert pushed.time_s == t + 1 and "vertebrae L1" in pushed.message
    redirs = [b for b in found if b.key == "too_many_redirections"]
    assert len(redirs) == 2 and redirs[0].message.startswith("redirection 3 (more than 2)")
    live = next(b for b in found if b.key == "live_fluoro_too_long")
    assert live.time_s == t + 10 and "25 s" in live.message
    assert [b.time_s for b in found] == sorted(b.time_s for b in found)


def test_a_long_stretch_without_an_image_is_a_blind_advance(block):
    """Fluoroscopy, allowance 10 mm: a lapse past the allowance costs points; an unbroken stretch
    past three allowances (30 mm) is one blind advance, whatever its length; an image or the needle
    out of the skin ends a stretch; the rubric can set the limit."""
    sc = synthetic_scenario()
    p = _proc(sc, block)
    d = normalize(np.array([-15.0, -10.0, 0.0]) - np.array(ENTRY))
    p.set_entry(ENTRY, d, time_s=1.0)
    t = 2.0
    for mm in (12.0, 12.0):  # 24 mm: two lapses, no blind advance yet
        p.advance(mm, time_s=t)
        t += 1
    p.record_fluoro_shot(dap_gycm2=0.01, duration_s=0.2, time_s=t)
    for mm in (11.0, 11.0, 11.0, 11.0):  # 44 mm unbroken: blind once, at the third lapse (33 mm)
        p.advance(mm, time_s=t + 1)
        t += 1
    found = detect_behaviours(p.recording, sc, block, resolve_targets(sc, block))
    unseen = [b for b in found if b.key == "advance_unseen"]
    blind = [b for b in found if b.key == "advance_blind"]
    assert len(unseen) == 6 and len(blind) == 1
    assert blind[0].time_s == unseen[4].time_s and "33 mm without an image (more than 30 mm)" in blind[0].message
    lenient = synthetic_scenario(rubric={**sc.rubric.model_dump(), "blind_advance_mm": 50})
    assert not [b for b in detect_behaviours(p.recording, lenient, block, resolve_targets(sc, block))
                if b.key == "advance_blind"]


def test_probe_moved_while_the_needle_advances_but_not_between_movements(block):
    sc = synthetic_scenario(modality="ultrasound")
    probe = np.eye(4)
    probe[:3, 3] = [-40.0, -70.0, 0.0]

    def attempt(move_probe_during: bool):
        p = _proc(sc, block)
        p.set_entry(ENTRY, [0.3, 1.0, 0.0], time_s=1.0)
        p.set_probe_to_world(probe, time_s=1.5)
        t = 2.0
        for k in range(6):
            p.advance(1.0, time_s=t)
            if move_probe_during and k == 3:
                moved = probe.copy()
                moved[0, 3] += 3.0
                p.set_probe_to_world(moved, time_s=t + 0.05)
            t += 0.1
        moved = probe.copy()
        moved[1, 3] += 5.0
        p.set_probe_to_world(moved, time_s=t + 1.0)  # after the needle stopped: fine
        return [b.key for b in detect_behaviours(p.recording, sc, block, resolve_targets(sc, block))]

    assert "probe_moved_while_advancing" in attempt(True)
    assert "probe_moved_while_advancing" not in attempt(False)


def test_the_rubric_sets_what_a_behaviour_costs(block):
    base = synthetic_scenario()
    proc = run_attempt(base, block, "expert", seed=1, faults=["no_imaging"])
    card = score_attempt(proc.recording, base, block)
    unseen = [b for b in card.behaviours if b["key"] == "advance_unseen"]
    assert len(unseen) >= 7 and card.deductions == 15.0  # 3 points each, at most 15
    assert sum(b["points"] for b in unseen) == 15.0
    assert [f["key"] for f in card.automatic_fails] == ["advance_blind"]  # and the long stretch fails
    cheap = synthetic_scenario(rubric={**base.rubric.model_dump(),
                                       "behaviours": {"advance_unseen": "ignore", "advance_blind": 10}})
    c = score_attempt(proc.recording, cheap, block)
    assert c.deductions == 10.0 and not c.automatic_fails
    strict = synthetic_scenario(rubric={**base.rubric.model_dump(), "behaviours": {"advance_unseen": "fail"}})
    c = score_attempt(proc.recording, strict, block)
    assert not c.passed and any(f["key"] == "advance_unseen" for f in c.automatic_fails)
    assert any(r.startswith("... and ") and r.endswith("more like it") for r in c.reasons)


@pytest.mark.parametrize("modality", ["fluoroscopy", "ultrasound"])
def test_battery_on_the_test_block(block, modality):
    sc = synthetic_scenario(modality=modality)
    expert = score_attempt(run_attempt(sc, block, "expert", seed=0, steady=True, quick=True).recording, sc, block)
    assert expert.passed and not expert.behaviours, expert.text()
    _battery(sc, block, expert)


# ------------------------------------------------------------------------------------------
# the battery on every library scenario
# ------------------------------------------------------------------------------------------


def _battery(sc, anatomy, expert) -> list[str]:
    targets = resolve_targets(sc, anatomy)
    ran = []
    for fault in BATTERY:
        if fault_applies(fault, sc, targets) is not None:
            continue
        try:
            proc = run_attempt(sc, anatomy, "expert", seed=0, faults=[fault], steady=True, quick=True, targets=targets)
        except FaultNotApplicable:
            continue
        card = score_attempt(proc.recording, sc, anatomy, targets=targets)
        text = "\n".join(card.reasons)
        assert any(w in text for w in SAYS[fault]), (sc.id, fault, card.reasons)
        assert not card.passed or card.score < expert.score - 5, (sc.id, fault, card.text())
        assert not card.passed, (sc.id, fault, card.text())  # every battery behaviour fails the attempt
        ran.append(fault)
    return ran


def _library():
    return sorted(p.stem for p in SCENARIOS_DIR.glob("*.yaml"))


@pytest.mark.parametrize("scenario_id", _library())
def test_battery_on_the_library(scenario_id):
    from simulator.anatomy import load_anatomy
    from simulator.anatomy.bundled import cache_is_valid
    from simulator.core.scenario import load_scenario

    sc = load_scenario(SCENARIOS_DIR / f"{scenario_id}.yaml")
    if sc.anatomy == "bundled" and not cache_is_valid():
        pytest.skip("the bundled patient is not built (python main.py setup-data)")
    try:
        anatomy = load_anatomy(sc.anatomy)
    except Exception as e:  # noqa: BLE001 - a patient not built here
        pytest.skip(f"anatomy {sc.anatomy} not available: {e}")
    if sc.vignette is not None and any(c.action in ("defer", "correct_first") for c in sc.vignette.contraindications):
        pytest.skip("the right action is to defer at the time-out: no needle (tests/core/test_repeat.py)")
    proc = run_attempt(sc, anatomy, "expert", seed=0, steady=True, quick=True)
    expert = score_attempt(proc.recording, sc, anatomy)
    assert expert.passed and not expert.automatic_fails, expert.text()
    assert all(t["injected"] or not t["required"] for t in expert.targets)
    ran = _battery(sc, anatomy, expert)
    assert {"no_imaging", "excessive_redirections"} <= set(ran) and len(ran) >= 4, ran


def test_a_tracked_needle_driven_into_the_bone_is_pushing_past_contact(block):
    from simulator.core.geometry import pose_from_tip_axis

    sc = synthetic_scenario()
    p = _proc(sc, block)
    d = np.array([0.0, 1.0, 0.0])
    for k, y in enumerate(range(-75, -25, 5)):  # beside the canal: the vertebral body starts at y = -25
        p.set_needle_tip_to_world(pose_from_tip_axis([8.0, float(y), 0.0], d), time_s=1.0 + k)
    found = [b for b in detect_behaviours(p.recording, sc, block, resolve_targets(sc, block)) if b.key == "bone_pushed"]
    assert not found  # not yet at the bone
    p.set_needle_tip_to_world(pose_from_tip_axis([8.0, -21.0, 0.0], d), time_s=20.0)  # 4 mm into it
    found = [b for b in detect_behaviours(p.recording, sc, block, resolve_targets(sc, block)) if b.key == "bone_pushed"]
    assert len(found) == 1 and found[0].time_s == 20.0 and "into the vertebrae L1" in found[0].message
