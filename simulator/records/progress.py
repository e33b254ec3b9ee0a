"""Learning curves and the instructor's overview, as plain data (the GUI plots them with pyqtgraph).

    curve = learning_curve(store, "dr_smith", "celiac_plexus_posterior")
    curve.x                          # attempt numbers 1..N (scored attempts, oldest first)
    curve.series("score")            # float array (NaN where a value does not apply)
    curve.series("tissue_damage_mm2")
    curve.pass_mark                  # the rubric's pass mark (a horizontal line on the score plot)
    curve.thresholds["tissue_damage_mm2"]   # Threshold(good, bad, ...) from the rubric, or absent
    overview = instructor_overview(store)   # per scenario: trainees, attempts, best/last, pass rate

Key metrics (`KEY_METRICS`): time taken, potential tissue damage, fluoroscopy images, advances
without imaging, tip-to-target distance and needle path in tissue; any other metric of the score
card can be asked for by name. Attempts without a score card (recovered before scoring,
abandoned) are left out unless `include_unscored=True` (then their values are NaN).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from simulator.records.store import AttemptInfo, RecordStore

KEY_METRICS = ("elapsed_time_s", "tissue_damage_mm2", "fluoro_shots", "advances_without_imaging",
               "final_distance_mm", "path_in_tissue_mm")


@dataclass
class Threshold:
    metric: str
    label: str
    unit: str
    good: float  # full marks at or better than this
    bad: float  # no marks at or worse than this
    weight: float

    @property
    def lower_is_better(self) -> bool:
        return self.good < self.bad

    def to_json(self) -> dict:
        d = asdict(self)
        d["lower_is_better"] = self.lower_is_better
        return d


@dataclass
class CurvePoint:
    number: int  # 1-based, in the order the attempts were made
    attempt_id: int
    uuid: str
    started_at: str
    status: str
    score: float | None
    passed: bool | None
    metrics: dict[str, float | None]

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class LearningCurve:
    trainee: str
    scenario_id: str
    scenario_title: str
    pass_mark: float | None
    thresholds: dict[str, Threshold]
    metric_labels: dict[str, tuple[str, str]]  # metric -> (label, unit)
    points: list[CurvePoint] = field(default_factory=list)

    @property
    def x(self) -> np.ndarray:
        return np.array([p.number for p in self.points], dtype=np.float64)

    def series(self, name: str) -> np.ndarray:
        """"score", "passed" (1/0) or a metric name, per point (NaN where missing)."""
        def val(p: CurvePoint):
            if name == "score":
                v = p.score
            elif name == "passed":
                v = None if p.passed is None else float(p.passed)
            else:
                v = p.metrics.get(name)
            return math.nan if v is None else float(v)

        return np.array([val(p) for p in self.points], dtype=np.float64)

    @property
    def attempts(self) -> int:
        return len(self.points)

    @property
    def best_score(self) -> float | None:
        s = [p.score for p in self.points if p.score is not None]
        return max(s) if s else None

    @property
    def last_score(self) -> float | None:
        s = [p.score for p in self.points if p.score is not None]
        return s[-1] if s else None

    @property
    def pass_rate(self) -> float | None:
        s = [p.passed for p in self.points if p.passed is not None]
        return sum(s) / len(s) if s else None

    def to_json(self) -> dict:
        return {"trainee": self.trainee, "scenario_id": self.scenario_id, "scenario_title": self.scenario_title,
                "pass_mark": self.pass_mark, "thresholds": {k: t.to_json() for k, t in self.thresholds.items()},
                "metric_labels": {k: list(v) for k, v in self.metric_labels.items()},
                "points": [p.to_json() for p in self.points], "best_score": self.best_score,
                "last_score": self.last_score, "pass_rate": self.pass_rate}


def _rubric(store: RecordStore, scenario_id: str, version: str):
    text = store.scenario_json(scenario_id, version)
    if not text:
        return None
    try:
        return json.loads(text).get("rubric")
    except (ValueError, AttributeError):
        return None


def _labels(metrics) -> dict[str, tuple[str, str]]:
    from simulator.core.scoring import LABELS

    return {m: LABELS.get(m, (m.replace("_", " "), "")) for m in metrics}


def _thresholds(rubric: dict | None) -> tuple[float | None, dict[str, Threshold]]:
    from simulator.core.scoring import LABELS

    if not rubric:
        return None, {}
    out = {}
    for it in rubric.get("items", []):
        m = it.get("metric")
        label, unit = LABELS.get(m, (m, ""))
        out[m] = Threshold(m, label, unit, float(it["good"]), float(it["bad"]), float(it.get("weight", 0.0)))
    mark = rubric.get("pass_mark")
    return (None if mark is None else float(mark)), out


def learning_curve(store: RecordStore, trainee: str, scenario_id: str, metrics=KEY_METRICS,
                   include_unscored: bool = False) -> LearningCurve:
    """One trainee's attempts at one scenario (see the module notes). Thresholds come from the
    rubric of the scenario version of the latest attempt."""
    attempts = [a for a in store.list_attempts(trainee=trainee, scenario=scenario_id) if a.status != "live"]
    cards = store.score_cards([a.id for a in attempts])
    kept = [a for a in attempts if include_unscored or cards.get(a.id) is not None]
    latest = kept[-1] if kept else (attempts[-1] if attempts else None)
    pass_mark, thresholds = _thresholds(_rubric(store, scenario_id, latest.scenario_version) if latest else None)
    title = latest.scenario_title if latest else scenario_id
    wanted = list(metrics)
    points = []
    for k, a in enumerate(kept, start=1):
        card = cards.get(a.id) or {}
        vals = card.get("metrics", {})
        points.append(CurvePoint(k, a.id, a.uuid, a.started_at, a.status, card.get("score"), card.get("passed"),
                                 {m: vals.get(m) for m in wanted}))
    return LearningCurve(trainee, scenario_id, title, pass_mark,
                         {m: t for m, t in thresholds.items() if m in wanted}, _labels(wanted), points)


def learning_curves(store: RecordStore, trainee: str, metrics=KEY_METRICS) -> dict[str, LearningCurve]:
    """A trainee's learning curve for every scenario they attempted."""
    ids = []
    for a in store.list_attempts(trainee=trainee):
        if a.scenario_id not in ids:
            ids.append(a.scenario_id)
    return {sid: learning_curve(store, trainee, sid, metrics) for sid in ids}


@dataclass
class TraineeRow:
    trainee: str
    attempts: int  # scored attempts
    best_score: float | None
    last_score: float | None
    last_passed: bool | None
    passed: int
    pass_rate: float | None
    last_at: str

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class ScenarioOverview:
    scenario_id: str
    scenario_title: str
    pass_mark: float | None
    trainees: int
    attempts: int  # scored attempts
    unscored: int  # recovered / abandoned without a score
    best_score: float | None
    mean_score: float | None
    pass_rate: float | None
    rows: list[TraineeRow]

    def to_json(self) -> dict:
        d = asdict(self)
        d["rows"] = [r.to_json() for r in self.rows]
        return d


def instructor_overview(store: RecordStore, scenario: str | None = None) -> list[ScenarioOverview]:
    """Per scenario: trainees, attempts, best and last scores, pass rate (scenario order: by id)."""
    attempts = [a for a in store.list_attempts(scenario=scenario) if a.status != "live"]
    by_scenario: dict[str, list[AttemptInfo]] = {}
    for a in attempts:
        by_scenario.setdefault(a.scenario_id, []).append(a)
    out = []
    for sid in sorted(by_scenario):
        group = by_scenario[sid]
        scored = [a for a in group if a.score is not None]
        rows = []
        trainees = sorted({a.trainee for a in group})
        for t in trainees:
            mine = [a for a in scored if a.trainee == t]
            passed = sum(1 for a in mine if a.passed)
            rows.append(TraineeRow(t, len(mine), max((a.score for a in mine), default=None),
                                   mine[-1].score if mine else None, mine[-1].passed if mine else None, passed,
                                   passed / len(mine) if mine else None,
                                   max((a.started_at for a in group if a.trainee == t), default="")))
        latest = group[-1]
        pass_mark, _ = _thresholds(_rubric(store, sid, latest.scenario_version))
        if pass_mark is None:
            pass_mark = next((a.pass_mark for a in reversed(scored) if a.pass_mark is not None), None)
        scores = [a.score for a in scored]
        out.append(ScenarioOverview(
            sid, latest.scenario_title, pass_mark, len(trainees), len(scored), len(group) - len(scored),
            max(scores) if scores else None, float(np.mean(scores)) if scores else None,
            sum(1 for a in scored if a.passed) / len(scored) if scored else None, rows))
    return out
