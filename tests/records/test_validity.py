"""The validity report: AUC with known answers, its bootstrap interval, and the report from a records
database of scripted expert and novice cohorts (API and `main.py records validity`)."""
import json

import numpy as np
import pytest

from simulator.core.scoring import score_attempt
from simulator.records.store import SQLiteRecordStore
from simulator.records.validity import ValidityError, auc, auc_ci, validity_report
from simulator.scripted import cohort
from tests.records.test_cli import records


def test_auc_known_answers_and_interval():
    assert auc([3, 4, 5], [0, 1, 2]) == 1.0
    assert auc([0, 1, 2], [3, 4, 5]) == 0.0
    assert auc([1, 1], [1, 1]) == 0.5  # ties count half
    assert auc([1, 3], [2]) == 0.5
    a, lo, hi = auc_ci(np.arange(10, 20), np.arange(0, 10), n_boot=500)
    assert a == lo == hi == 1.0  # perfect separation in every resample
    rng = np.random.default_rng(1)
    a, lo, hi = auc_ci(rng.normal(0.5, 1, 40), rng.normal(0, 1, 40), n_boot=1000)
    assert lo < a < hi and 0.2 < hi - lo < 0.5
    e, n = rng.normal(0.5, 1, 40), rng.normal(0, 1, 40)
    assert auc_ci(e, n, n_boot=300, seed=4) == auc_ci(e, n, n_boot=300, seed=4)  # a fixed seed: the same report


@pytest.fixture(scope="module")
def cohort_db(tmp_path_factory, block, scenario):
    """Scripted cohorts in a records database: 10 experts (eva, emil), 10 novices (nina, noah) -
    half of the novices make battery faults, the others are clumsy only. Returns (db, cards by
    skill: [(faults, card)])."""
    db = tmp_path_factory.mktemp("validity") / "study.sqlite"
    st = SQLiteRecordStore(db)
    cards = {}
    for skill, names in (("expert", ("eva", "emil")), ("novice", ("nina", "noah"))):
        for seed, faults, proc in cohort(scenario, block, skill, n=10, seed0=100, quick=True):
            rec = proc.recording
            rec.trainee = names[seed % 2]
            card = score_attempt(rec, scenario, block)
            cards.setdefault(skill, []).append((faults, card))
            st.save_recording(rec, card, scenario=scenario)
    st.add_trainee("zoe")  # no attempts
    st.close()
    return db, cards


def test_scripted_cohorts_separate_on_the_total_score(cohort_db):
    db, cards = cohort_db
    with SQLiteRecordStore(db) as st:
        rep = validity_report(st, ["eva", "emil"], ["nina", "noah"], n_boot=500)
    (s,) = rep.scenarios
    assert s.n_expert == s.n_novice == 10
    total = s.metrics[0]
    assert total.metric == "score" and total.higher_is_better
    assert total.auc >= 0.95 and total.ci_low >= 0.85
    faulty = [c for f, c in cards["novice"] if f]
    clumsy = [c for f, c in cards["novice"] if not f]
    assert len(faulty) == len(clumsy) == 5
    assert not any(c.passed for c in faulty)  # every battery fault fails the attempt
    assert not any(c.automatic_fails for c in clumsy)  # clumsy, not unsafe: points off only
    assert max(c.score for c in clumsy) < min(c.score for _, c in cards["expert"])
    novices_passing = sum(c.passed for c in clumsy)
    assert s.expert_pass_rate == 1.0 and s.novice_fail_rate == pytest.approx(1.0 - novices_passing / 10)
    assert s.agreement == pytest.approx(1.0 - novices_passing / 20)
    names = {m.metric for m in s.metrics}
    assert {"translational_actions", "rotational_actions", "error_behaviours", "tissue_damage_mm2",
            "path_length_mm"} <= names
    by = {m.metric: m for m in s.metrics}
    assert not by["final_distance_mm"].higher_is_better and by["target_coverage_pct"].higher_is_better
    assert all(m.auc is None or 0.0 <= m.ci_low <= m.auc <= m.ci_high <= 1.0 for m in s.metrics)


def test_cli_prints_the_table_and_json(cohort_db):
    db, cards = cohort_db
    r = records("validity", "--expert", "eva,emil", "--novice", "nina", "noah", "--boot", "300", "--db", db)
    assert r.returncode == 0, r.stderr
    failing = sum(not c.passed for _, c in cards["novice"])
    agree = 10 + failing
    assert (f"pass/fail agreement {100 * agree / 20:.0f} % (experts passing 100 %, novices failing "
            f"{100 * failing / 10:.0f} %)") in r.stdout
    assert "total score" in r.stdout and "AUC" in r.stdout and "needle translational actions" in r.stdout
    r = records("validity", "--expert", "eva", "--novice", "nina", "--json", "--boot", "300", "--db", db)
    data = json.loads(r.stdout)
    assert data["expert"] == ["eva"] and data["scenarios"][0]["metrics"][0]["metric"] == "score"


@pytest.mark.parametrize("args, words", [
    (("--expert", "eva", "--novice", "nobody"), "novice group: no trainee 'nobody'"),
    (("--expert", "zoe", "--novice", "nina"), "the expert group (zoe) has no scored attempts"),
    (("--expert", "eva", "--novice", "eva"), "in both groups"),
    (("--expert", "eva", "--novice", "nina", "--scenario", "elsewhere"), "no scored attempts on scenario 'elsewhere'"),
    (("--expert", " ,", "--novice", "nina"), "the expert group is empty"),
])
def test_unknown_trainee_or_empty_group_is_said_plainly(cohort_db, args, words):
    r = records("validity", *args, "--db", cohort_db[0])
    assert r.returncode == 1 and words in r.stderr, r.stderr
    assert r.stderr.startswith("records validity: ")


def test_validity_error_is_a_records_error(cohort_db):
    with SQLiteRecordStore(cohort_db[0]) as st, pytest.raises(ValidityError, match="no trainee 'x'"):
        validity_report(st, ["x"], ["nina"])


def test_treatment_decisions_count_higher_as_better():
    """A group whose decisions were judged good (100 %) is the better one on those metrics, as on
    coverage; a lower-is-better metric (distance) the other way round."""
    from simulator.records.validity import compare_cards

    def card(score, decision, distance):
        return {"score": score, "passed": score >= 70, "metrics": {"decision_time_out": decision,
                "treatment_decisions_pct": decision, "final_distance_mm": distance}}

    expert = [card(95, 100.0, 1.0 + 0.1 * i) for i in range(5)]
    novice = [card(40, 0.0, 9.0 + 0.1 * i) for i in range(5)]
    v = compare_cards("s", "t", expert, novice, {}, n_boot=50, pass_mark=70)
    by = {m.metric: m.auc for m in v.metrics}
    assert by["decision_time_out"] == by["treatment_decisions_pct"] == by["final_distance_mm"] == by["score"] == 1.0
