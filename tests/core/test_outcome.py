"""The outcome model against the published figures it encodes (virtual patients, no display)."""
import math

import numpy as np
import pytest

from simulator.core import outcome_library
from simulator.core.outcome import CaseInfo, compute_course, course_for_attempt, relief_chance
from simulator.core.outcome_facts import QUADRANTS, AttemptFacts, Dose, celiac_quadrants, count_quadrants
from simulator.core.outcome_params import wilson

N = 1000


@pytest.fixture(scope="module")
def lib():
    return outcome_library.shared_library()


def _clean(**kw) -> dict:
    return dict(skin_punctures=2, skin_prep=True, drape=True, asepsis_before_puncture=True, **kw)


def celiac_facts(quadrants: int, agent="alcohol", pct=100.0, seed=7, **kw) -> AttemptFacts:
    qm = {q: (1.5 if i < quadrants else 0.0) for i, q in enumerate(QUADRANTS)}
    return AttemptFacts(neurolytic=[Dose(0.0, agent, pct, 15.0, "tissue", quadrant_ml=qm)], seed=seed, **_clean(**kw))


def target_facts(coverage: dict, agent="phenol", pct=10.0, seed=7, mode="tissue", **kw) -> AttemptFacts:
    return AttemptFacts(neurolytic=[Dose(0.0, agent, pct, 4.0, mode, coverage=coverage,
                                         tissue="artery" if mode == "intravascular" else "fat")], seed=seed, **_clean(**kw))


def _share_ok(share: float, p: float, n: int = N) -> bool:
    """Binomial sampling error: within 4 standard errors (and 1 %)."""
    return abs(share - p) <= 4 * math.sqrt(p * (1 - p) / n) + 0.01


def test_every_figure_is_cited_or_marked_as_an_assumption(lib):
    ids = {s.id for s in lib.sources}
    for name, cp in lib.sets.items():
        figs = cp.figures()
        assert figs, name
        for path, f in figs:
            assert f.assumption or f.source in ids, f"{name}.{path}"
            if f.source is not None:
                assert f.source in ids


@pytest.mark.parametrize("quadrants, k, n, lo, hi", [(4, 18, 18, 0.81, 1.0), (3, 5, 12, 0.15, 0.72), (2, 0, 75, None, None),
                                                     (1, 0, 75, None, None), (0, 0, 75, None, None)])
def test_celiac_lasting_relief_by_quadrants_within_the_published_interval(lib, quadrants, k, n, lo, hi):
    """De Cicco 1997/2001: four quadrants 18/18 (95 % CI 81-100), three 5/12 (15-72), two or fewer 0/75."""
    cp = lib.sets["celiac_plexus"]
    if lo is None:
        lo, hi = wilson(k, n)
    c = compute_course(celiac_facts(quadrants), cp, CaseInfo(n_patients=N, block_truth=True, baseline_nrs=8.0))
    assert c.coverage["quadrants"] == quadrants
    assert lo <= c.relief_share <= hi, (c.relief_share, lo, hi)
    assert _share_ok(c.relief_share, c.relief_probability)
    # and the pain course follows: with four quadrants the median patient is relieved at 4 weeks
    four_weeks = int(np.searchsorted(c.days, 28))
    if quadrants == 4:
        assert c.median[four_weeks] <= 8.0 * (1 - 0.6) + 0.5
    elif quadrants <= 2:
        assert c.median[four_weeks] >= 7.5


def test_celiac_side_effects_match_the_published_rates(lib):
    """Eisenberg 1995: local pain 96 %, diarrhoea 44 %; orthostatic hypotension 10 %."""
    c = compute_course(celiac_facts(4), lib.sets["celiac_plexus"], CaseInfo(n_patients=N, block_truth=True))
    by = {e.id: e for e in c.effects}
    for eid, p in (("local_pain", 0.96), ("diarrhoea", 0.44), ("hypotension", 0.10)):
        assert by[eid].probability == pytest.approx(p)
        assert _share_ok(by[eid].share, p), (eid, by[eid].share)
    # nothing harmful happened: no complication is possible except the tiny baseline infection risk
    assert all(e.probability <= 0.001 + 1e-12 for e in c.effects if e.kind == "complication")


def test_celiac_relief_lasts_as_published(lib):
    """Eisenberg 1995: about 90 % of patients still relieved at 3 months."""
    cp = lib.sets["celiac_plexus"]
    c = compute_course(celiac_facts(4, seed=3), cp, CaseInfo(n_patients=N, block_truth=True))
    med = cp.relief.median_duration_days()
    assert med == pytest.approx(13 * 7 * math.exp(0.6 * 1.2815516), rel=1e-3)
    # the median patient's pain at 13 weeks is still well below the baseline
    i13 = int(np.searchsorted(c.days, 91))
    assert c.median[i13] < 0.6 * c.baseline_nrs
    assert c.return_day_median is not None and c.repeat_day_median is not None
    assert c.repeat_day_median >= cp.repeat.min_interval.days


def test_intercostal_pneumothorax_per_nerve(lib):
    """Shanti 2001: pneumothorax 1.4 % per nerve (one nerve treated: 1.4 %; four: 1-(1-0.014)^4)."""
    cp = lib.sets["intercostal"]
    one = compute_course(target_facts({"n10": 1.0}), cp, CaseInfo(n_patients=N, pain_targets=["n10"], block_truth=True))
    four = compute_course(target_facts({f"n{i}": 1.0 for i in range(4)}), cp,
                          CaseInfo(n_patients=N, pain_targets=[f"n{i}" for i in range(4)], block_truth=True))
    pn = {e.id: e for e in one.effects}["pneumothorax_per_nerve"]
    assert pn.probability == pytest.approx(0.014)
    assert {e.id: e for e in four.effects}["pneumothorax_per_nerve"].probability == pytest.approx(1 - 0.986 ** 4)


def test_coverage_level_and_side_decide_relief(lib):
    cp = lib.sets["intercostal"]
    case = CaseInfo(n_patients=N, pain_targets=["left_10"], block_truth=True)
    hit = compute_course(target_facts({"left_10": 1.0}), cp, case)
    wrong_level = compute_course(target_facts({"left_10": 0.0, "left_9": 1.0}), cp, case)
    assert hit.relief_probability == pytest.approx((35 + 1) / (42 + 2))
    assert wrong_level.relief_probability == 0.0 and wrong_level.relief_share == 0.0


def test_agent_and_concentration(lib):
    cp = lib.sets["celiac_plexus"]
    case = CaseInfo(n_patients=200, block_truth=True)
    full = relief_chance(celiac_facts(4), cp, case)[0]
    weak = relief_chance(celiac_facts(4, pct=30.0), cp, case)[0]
    assert weak == pytest.approx(full * cp.agents["alcohol"].below_min_factor.value)
    unknown = relief_chance(celiac_facts(4, agent="glycerol"), cp, case)
    assert unknown[0] == 0.0 and "no course parameters" in unknown[1]


def test_events_trigger_complications(lib):
    cp = lib.sets["celiac_plexus"]
    case = CaseInfo(n_patients=N, block_truth=True)
    ivp = compute_course(target_facts({}, agent="phenol", mode="intravascular"), cp, case)
    by = {e.id: e for e in ivp.effects}
    assert by["seizure"].probability == pytest.approx(0.2) and by["paraplegia_arterial"].probability == pytest.approx(0.1)
    assert by["alcohol_intoxication"].probability == 0.0
    assert ivp.relief_probability == 0.0  # washed away: nothing neurolysed
    dirty = compute_course(AttemptFacts(neurolytic=celiac_facts(4).neurolytic, skin_punctures=1, seed=7), cp, case)
    assert {e.id: e for e in dirty.effects}["infection"].probability == pytest.approx(0.05)
    arterial = celiac_facts(4)
    arterial.arterial_punctures = arterial.vessel_punctures = 1
    plain = {e.id: e for e in compute_course(arterial, cp, case).effects}["retroperitoneal_haematoma"].probability
    anticoag = {e.id: e for e in compute_course(arterial, cp, CaseInfo(n_patients=N, conditions={"anticoagulated"})).effects}
    assert anticoag["retroperitoneal_haematoma"].probability == pytest.approx(4 * plain)


def test_alcohol_on_a_somatic_nerve_gives_neuritis_that_hurts(lib):
    cp = lib.sets["intercostal"]
    case = CaseInfo(n_patients=N, pain_targets=["n"], somatic_targets={"n"}, block_truth=True)
    c = compute_course(target_facts({"n": 1.0}, agent="alcohol", pct=100.0), cp, case)
    ne = {e.id: e for e in c.effects}["alcohol_neuritis"]
    assert ne.probability == pytest.approx((3 + 1) / (20 + 2))
    phenol = compute_course(target_facts({"n": 1.0}), cp, case)
    assert {e.id: e for e in phenol.effects}["alcohol_neuritis"].probability == 0.0


def test_negative_prognostic_block_and_repeat_reduce_relief(lib):
    cp = lib.sets["celiac_plexus"]
    pos = relief_chance(celiac_facts(4), cp, CaseInfo(block_truth=True))[0]
    neg = relief_chance(celiac_facts(4), cp, CaseInfo(block_truth=False))[0]
    rep = relief_chance(celiac_facts(4), cp, CaseInfo(block_truth=True, repeat_of=[{"agent": "alcohol"}]))[0]
    assert neg == pytest.approx(pos * cp.relief.negative_block_factor.value)
    assert rep == pytest.approx(pos * cp.repeat.relief_factor.value)


def test_post_sympathectomy_neuralgia(lib):
    """BJA 2001: 12-35 % after chemical sympathectomy, lasting 2-3 months."""
    cp = lib.sets["lumbar_sympathetic"]
    c = compute_course(target_facts({"l3": 1.0}), cp, CaseInfo(n_patients=N, pain_targets=["l3"], block_truth=True))
    psn = {e.id: e for e in c.effects}["post_sympathectomy_neuralgia"]
    assert 0.12 <= psn.share <= 0.35


def test_deterministic_for_a_seed(lib):
    cp = lib.sets["celiac_plexus"]
    a = compute_course(celiac_facts(3, seed=11), cp, CaseInfo())
    b = compute_course(celiac_facts(3, seed=11), cp, CaseInfo())
    c = compute_course(celiac_facts(3, seed=12), cp, CaseInfo())
    assert np.array_equal(a.index, b.index) and np.array_equal(a.median, b.median) and a.to_json() == b.to_json()
    assert not np.array_equal(a.index, c.index)


def test_untreated_and_labelled(lib):
    c = compute_course(AttemptFacts(seed=1), lib.sets["celiac_plexus"], CaseInfo(baseline_nrs=6.0))
    assert c.relief_probability == 0.0 and np.allclose(c.index, 6.0)
    assert "No neurolytic" in " ".join(c.notes) and "Educational model" in c.label
    assert any(f["assumption"] for f in c.figures) and any(not f["assumption"] for f in c.figures)


def test_quadrants_of_points():
    origin = (0.0, 0.0, 0.0)
    pts = np.array([[5, 0, 5], [-5, 0, 5], [5, 0, -5], [-5, 0, -5], [50, 0, 0], [0, -30, 1]], float)
    ml = np.ones(len(pts))
    q = celiac_quadrants(pts, ml, origin, radius_mm=35, posterior_mm=15)
    assert q == {"upper_right": 1.0, "upper_left": 1.0, "lower_right": 1.0, "lower_left": 1.0}
    assert count_quadrants([Dose(0, "alcohol", 100, 4, "tissue", quadrant_ml=q)], 0.5) == 4
    assert count_quadrants([Dose(0, "alcohol", 100, 4, "intravascular", quadrant_ml=q)], 0.5) == 0


def test_a_scenario_without_outcome_parameters_says_why(scenario):
    from simulator.core.recording import Recording

    rec = Recording(scenario_id=scenario.id)
    c = course_for_attempt(rec, scenario)
    assert not c.available and "no outcome parameters" in c.reason
