"""The scripted operator: deterministic by seed, drives any scenario from its plan, refuses what it
cannot do with a reason."""
import numpy as np
import pytest

from simulator.benchmarks.scoring import TARGET, synthetic_block_anatomy, synthetic_scenario
from simulator.core.events import EventKind
from simulator.core.scoring import score_attempt
from simulator.scripted import FAULTS, FaultNotApplicable, Hand, ScriptError, cohort, fault_applies, run_attempt


@pytest.fixture(scope="module")
def block():
    return synthetic_block_anatomy()


@pytest.fixture(scope="module")
def fluoro():
    return synthetic_scenario()


def test_same_seed_same_attempt_other_seed_another(block, fluoro):
    a = run_attempt(fluoro, block, "expert", seed=4)
    b = run_attempt(fluoro, block, "expert", seed=4)
    c = run_attempt(fluoro, block, "expert", seed=5)
    assert a.recording.same_as(b.recording)
    assert not a.recording.same_as(c.recording)
    assert a.ended and a.recording.inputs[-1].name == "end"


def test_expert_reaches_the_target_with_every_step_under_imaging(block, fluoro):
    proc = run_attempt(fluoro, block, "expert", seed=1)
    card = score_attempt(proc.recording, fluoro, block)
    assert card.passed, card.text()
    kinds = [e.kind for e in proc.events]
    assert EventKind.bone_contact in kinds  # a celiac technique: touch the vertebral body, walk off
    assert EventKind.advance_without_imaging not in kinds
    assert EventKind.critical_contact not in kinds
    inj = [e for e in proc.events if e.kind == EventKind.injection]
    assert [e.data["kind"] for e in inj] == ["contrast", "test_dose", "neurolytic"]
    assert all(e.data["aspirated"] for e in inj)
    assert np.linalg.norm(np.asarray(inj[-1].data["tip_mm"]) - TARGET) < 5.0
    # the hand moves in recorded sub-steps: many small advances, not one jump per movement
    adv = [i for i in proc.recording.inputs if i.name == "advance"]
    assert len(adv) > 40 and max(i.args["mm"] for i in adv) < 3.0


def test_hands_differ_by_skill_and_seed():
    e = [Hand.draw("expert", s) for s in range(10)]
    i = [Hand.draw("intermediate", s) for s in range(10)]
    n = [Hand.draw("novice", s) for s in range(10)]
    assert max(h.entry_jitter_mm for h in e) < min(h.entry_jitter_mm for h in n)
    for key in ("tremor_deg", "turn_deg_s", "withdraw_fraction"):
        assert max(getattr(h, key) for h in e) <= min(getattr(h, key) for h in i), key
        assert max(getattr(h, key) for h in i) <= min(getattr(h, key) for h in n), key
    assert max(h.image_fraction for h in n) < min(h.image_fraction for h in e)  # the novice images more often
    assert max(h.turn_deg_s for h in e) < 50.0 < min(h.turn_deg_s for h in n)  # Perk Tutor's action threshold
    assert all(h.lapse_p == h.live_p == h.jab_share == 0.0 for h in e)
    assert len({h.tremor_deg for h in e}) == 10
    assert Hand.draw("expert", 3, steady=True).tremor_deg == 0.0
    with pytest.raises(ValueError, match="skill"):
        Hand.draw("wizard", 0)


def test_a_novice_style_is_clumsy_in_its_own_way_only():
    from simulator.scripted.hand import _RANGES, STYLES

    for style, keys in STYLES.items():
        for seed in range(5):
            h = Hand.draw("novice", seed, style=style)
            assert h.style == style
            for k, (lo, hi) in _RANGES["novice"].items():
                own = _RANGES["novice" if k in keys else "expert"][k]
                assert own[0] - 1e-9 <= getattr(h, k) <= own[1] + 1e-9, (style, k)
            assert h.correct_deg == (3.0 if style == "unsteady" else 0.8)
            assert h.probe_skill == ("novice" if style == "imaging" else "expert")
    assert Hand.draw("novice", 1).probe_skill == "novice" and Hand.draw("novice", 1).style == ""
    with pytest.raises(ValueError, match="style"):
        Hand.draw("expert", 0, style="rotational")
    with pytest.raises(ValueError, match="style"):
        Hand.draw("novice", 0, style="sloppy")


def test_a_rotational_novice_turns_quickly_and_is_scored_on_it(block, fluoro):
    """Full hands (not quick): the rotational novice makes Perk Tutor rotational actions the expert
    of the same seed does not; with action counts in the rubric it loses points for them."""
    exp = score_attempt(run_attempt(fluoro, block, "expert", seed=4).recording, fluoro, block)
    rot_proc = run_attempt(fluoro, block, "novice", seed=4, style="rotational")
    rot = score_attempt(rot_proc.recording, fluoro, block)
    assert exp.metrics["rotational_actions"] == 0 and rot.metrics["rotational_actions"] >= 2
    assert not rot.automatic_fails
    items = fluoro.rubric.model_dump()
    items["items"] = items["items"] + [{"metric": "rotational_actions", "weight": 10, "good": 1, "bad": 6}]
    strict = synthetic_scenario(rubric=items)
    assert score_attempt(rot_proc.recording, strict, block).score < score_attempt(
        run_attempt(fluoro, block, "expert", seed=4).recording, strict, block).score - 2


def test_faults_change_the_attempt(block, fluoro):
    proc = run_attempt(fluoro, block, "expert", seed=1, faults=["no_aspiration", "neurolytic_before_test_dose"])
    kinds = [e.kind for e in proc.events]
    assert EventKind.aspiration not in kinds
    inj = [e.data["kind"] for e in proc.events if e.kind == EventKind.injection]
    assert inj == ["contrast", "neurolytic", "test_dose"]
    proc = run_attempt(fluoro, block, "expert", seed=1, faults=["no_imaging"])
    assert sum(e.kind == EventKind.advance_without_imaging for e in proc.events) >= 5


def test_unknown_or_impossible_faults_are_refused_with_the_reason(block, fluoro):
    with pytest.raises(KeyError, match="unknown fault"):
        run_attempt(fluoro, block, "expert", faults=["sneeze"])
    with pytest.raises(FaultNotApplicable, match="one required target"):
        run_attempt(fluoro, block, "expert", faults=["one_side_only"])
    assert fault_applies("probe_off_tip", fluoro, []) == "fluoroscopy only: no probe"
    assert set(FAULTS) >= {"one_side_only", "no_aspiration", "no_imaging", "muscle_injection", "intravascular",
                           "wrong_level", "pleura_dura", "excessive_redirections", "neurolytic_before_test_dose",
                           "probe_off_tip"}


def test_a_required_target_without_a_plan_is_an_error(block):
    sc = synthetic_scenario(targets=[
        {"id": "celiac_left", "name": "celiac plexus", "points_mm": [list(TARGET)], "side": "left"},
        {"id": "other", "name": "other target", "points_mm": [[-30.0, 30.0, 10.0]], "side": "left"},
    ], planned_trajectory={"entry_mm": [-56.0, -70.0, 0.0], "target_mm": list(TARGET), "target_id": "celiac_left"})
    with pytest.raises(ScriptError, match="target 'other' has no planned trajectory"):
        run_attempt(sc, block, "expert")


def test_ultrasound_expert_keeps_the_tip_in_view(block):
    sc = synthetic_scenario(modality="ultrasound")
    proc = run_attempt(sc, block, "expert", seed=2, faults=())
    seen = [e for e in proc.events if e.kind == EventKind.ultrasound_view]
    assert seen and seen[-2].data["visible"]  # in view at the target (the last one: out of the skin)
    off = run_attempt(sc, block, "expert", seed=2, faults=["probe_off_tip"])
    n_off = sum(e.kind == EventKind.advance_without_imaging for e in off.events)
    n_ok = sum(e.kind == EventKind.advance_without_imaging for e in proc.events)
    assert n_off > n_ok + 5


def test_novice_cohort_draws_faults_by_seed(block, fluoro):
    group = cohort(fluoro, block, "novice", n=4, seed0=7, quick=True)
    assert [s for s, _, _ in group] == [7, 8, 9, 10]
    assert [bool(f) for _, f, _ in group] == [True, False, True, False]  # half the novices: clumsy only
    again = cohort(fluoro, block, "novice", n=1, seed0=7, quick=True)
    assert again[0][1] == group[0][1] and again[0][2].recording.same_as(group[0][2].recording)
    assert all(not f for _, f, _ in cohort(fluoro, block, "expert", n=2, quick=True))
    assert all(f for _, f, _ in cohort(fluoro, block, "intermediate", n=2, quick=True, fault_share=1.0))


def _fluoro_runs(events):
    return [e for e in events if e.kind == EventKind.fluoro_shot]


def test_the_expert_images_at_the_decisive_moments_and_the_novice_is_clumsy_not_faulty(block, fluoro):
    """The expert images the entry, every allowance of movement and the decisive moments (bone,
    walk-off, lateral depth, contrast under a short live run) and nothing more: no unimaged advance,
    about one image per allowance of path. A clumsy novice (no fault) takes more images and more
    fluoroscopy time, more time, and more, larger, quicker turns (Perk Tutor's rotational actions)."""
    from simulator.core.scoring import score_attempt

    exp = run_attempt(fluoro, block, "expert", seed=3)
    shots = _fluoro_runs(exp.events)
    path = exp.live_metrics()["path_in_tissue_mm"]
    allowance = fluoro.rubric.advance_without_imaging_mm
    assert not any(e.kind == EventKind.advance_without_imaging for e in exp.events)
    assert len(shots) <= path / allowance + 10  # the decisive moments on top of the allowance's images
    lives = [e for e in shots if e.data["live"]]
    inj = [e.time_s for e in exp.events if e.kind == EventKind.injection and e.data["kind"] == "contrast"]
    assert len(lives) == 1 and 1.0 <= lives[0].data["duration_s"] <= 2.0 and lives[0].time_s > inj[0]
    assert any(e.data["lao_deg"] == 90.0 for e in shots)  # the depth checked in the lateral view
    nov = run_attempt(fluoro, block, "novice", seed=3)
    e_card, n_card = score_attempt(exp.recording, fluoro, block), score_attempt(nov.recording, fluoro, block)
    assert e_card.passed and not n_card.automatic_fails
    for key in ("fluoro_shots", "fluoro_time_s", "elapsed_time_s", "rotational_actions", "tissue_damage_mm2"):
        assert n_card.metrics[key] > e_card.metrics[key], key
    assert e_card.metrics["rotational_actions"] == 0 and n_card.metrics["rotational_actions"] >= 2
