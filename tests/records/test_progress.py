"""Learning-curve data and the instructor's overview."""
import math

import numpy as np
import pytest

from simulator.core.recording import Recording
from simulator.records.progress import KEY_METRICS, instructor_overview, learning_curve, learning_curves


def _as(rec, trainee, day):
    r = Recording.from_json_dict(rec.to_json_dict())
    r.trainee = trainee
    r.started_at = f"2026-02-{day:02d}T10:00:00+00:00"
    return r


@pytest.fixture
def course(store, expert, novice, scenario):
    """ann: novice, novice, expert (learning), one day apart; bob: expert; ann also one unscored
    (recovered) attempt and one still live."""
    e, n = expert[0].recording, novice[0].recording
    ids = {
        "ann": [store.save_recording(_as(n, "ann", 1), novice[1], scenario=scenario),
                store.save_recording(_as(n, "ann", 2), novice[1], scenario=scenario),
                store.save_recording(_as(e, "ann", 3), expert[1], scenario=scenario)],
        "bob": [store.save_recording(_as(e, "bob", 2), expert[1], scenario=scenario)],
    }
    store.save_recording(_as(n, "ann", 4), None, status="recovered")
    store.start_attempt(_as(n, "ann", 5), scenario)  # live: not counted
    return ids


def test_learning_curve_series_and_thresholds(store, course, expert, novice, scenario):
    c = learning_curve(store, "ann", scenario.id)
    assert c.scenario_title == scenario.title and c.pass_mark == 70.0
    assert np.array_equal(c.x, [1.0, 2.0, 3.0])
    assert [p.attempt_id for p in c.points] == course["ann"]
    assert np.array_equal(c.series("score"), [novice[1].score, novice[1].score, expert[1].score])
    assert np.array_equal(c.series("passed"), [0.0, 0.0, 1.0])
    for m in KEY_METRICS:
        want = [novice[1].metrics[m], novice[1].metrics[m], expert[1].metrics[m]]
        got = c.series(m)
        assert np.array_equal(got, np.array([math.nan if v is None else v for v in want]), equal_nan=True), m
    assert c.series("fluoro_shots")[2] == expert[1].metrics["fluoro_shots"] > 0
    # thresholds from the rubric for the key metrics it scores
    t = c.thresholds["tissue_damage_mm2"]
    assert (t.good, t.bad, t.weight, t.unit) == (300.0, 3000.0, 10.0, "mm2") and t.lower_is_better
    assert set(c.thresholds) == {"tissue_damage_mm2", "fluoro_shots", "advances_without_imaging",
                                 "final_distance_mm", "elapsed_time_s"}
    assert "path_in_tissue_mm" not in c.thresholds  # not scored by this rubric
    assert c.metric_labels["fluoro_shots"] == ("fluoroscopy images", "")
    assert (c.best_score, c.last_score, c.pass_rate) == (expert[1].score, expert[1].score, pytest.approx(1 / 3))
    d = c.to_json()
    assert d["points"][2]["passed"] is True and d["thresholds"]["fluoro_shots"]["good"] == 30.0


def test_unscored_attempts_only_on_request(store, course, scenario):
    c = learning_curve(store, "ann", scenario.id, include_unscored=True)
    assert len(c.points) == 4 and c.points[3].status == "recovered" and math.isnan(c.series("score")[3])
    assert learning_curve(store, "nobody", scenario.id).points == []


def test_learning_curves_per_scenario(store, course, scenario):
    curves = learning_curves(store, "bob")
    assert list(curves) == [scenario.id] and curves[scenario.id].attempts == 1


def test_instructor_overview(store, course, expert, novice, scenario):
    (ov,) = instructor_overview(store)
    assert ov.scenario_id == scenario.id and ov.pass_mark == 70.0
    assert ov.trainees == 2 and ov.attempts == 4 and ov.unscored == 1
    assert ov.pass_rate == pytest.approx(2 / 4) and ov.best_score == expert[1].score
    assert ov.mean_score == pytest.approx((2 * novice[1].score + 2 * expert[1].score) / 4)
    rows = {r.trainee: r for r in ov.rows}
    assert rows["ann"].attempts == 3 and rows["ann"].passed == 1 and rows["ann"].pass_rate == pytest.approx(1 / 3)
    assert rows["ann"].best_score == expert[1].score and rows["ann"].last_score == expert[1].score
    assert rows["ann"].last_passed is True
    assert rows["bob"].attempts == 1 and rows["bob"].pass_rate == 1.0
    assert instructor_overview(store, "other_scenario") == []
