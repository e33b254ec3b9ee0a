"""The new library scenarios with scripted operators (simulator.scripted) on their own patients: the
expert passes; novices with a named fault fail, and the score card names what went wrong."""
from __future__ import annotations

import pytest

from simulator.core import paths
from simulator.core.scenario import load_scenario
from simulator.core.scoring import score_attempt
from simulator.scripted import run_attempt

# scenario -> (fault, words the failed card must contain), two or three per scenario
NOVICES = {
    "lumbar_sympathetic_l3": [("no_aspiration", "without aspirating"), ("pleura_dura", "spinal canal"),
                              ("neurolytic_before_test_dose", "without a local anaesthetic test dose")],
    "superior_hypogastric_l5_s1": [("intravascular", "iliac vein punctured"), ("no_imaging", "advances without imaging")],
    "ganglion_impar_transcoccygeal": [("no_aspiration", "without aspirating"), ("no_imaging", "advances without imaging")],
    "thoracic_sympathetic_t2_t3": [("pleura_dura", "Pleura crossed"), ("one_side_only", "from the Right thoracic sympathetic chain at T3")],
    "stellate_ganglion_c7_ultrasound": [("intravascular", "Carotid artery punctured"),
                                        ("probe_off_tip", "needle tip seen on ultrasound"),
                                        ("no_aspiration", "injected without aspirating")],
    "celiac_transaortic": [("intravascular", "injected into a blood vessel"), ("pleura_dura", "Pleura crossed")],
    "suprascapular_notch_ultrasound": [("pleura_dura", "pneumothorax"), ("no_imaging", "needle tip seen on ultrasound")],
    "suprascapular_notch_fluoroscopy": [("no_aspiration", "without aspirating"),
                                        ("neurolytic_before_test_dose", "without a local anaesthetic test dose")],
}


@pytest.fixture(scope="module")
def patients(request):
    cache = {}

    def get(ref):
        if ref not in cache:
            cache[ref] = request.getfixturevalue({"bundled": "bundled", "bundled:lumbopelvic": "lumbopelvic"}[ref])
        return cache[ref]

    return get


@pytest.mark.parametrize("sid", sorted(NOVICES))
def test_expert_passes_and_novices_fail_with_named_reasons(sid, patients):
    sc = load_scenario(paths.SCENARIOS_DIR / f"{sid}.yaml")
    anatomy = patients(sc.anatomy)
    expert = score_attempt(run_attempt(sc, anatomy, "expert", seed=0).recording, sc, anatomy)
    assert expert.passed and expert.score >= 85.0, (sid, expert.score, expert.reasons[:3])
    for fault, words in NOVICES[sid]:
        card = score_attempt(run_attempt(sc, anatomy, "novice", seed=0, faults=[fault]).recording, sc, anatomy)
        assert not card.passed, (sid, fault, card.score)
        assert any(words in r for r in card.reasons), (sid, fault, card.reasons)
