"""Does the score tell experts from novices? A validity report from the records database.

For instructors running a validation study: name the trainees of the expert group and of the
novice group; for every metric on the score cards and for the total score, per scenario:
- AUC: the probability that an expert attempt is better on the metric than a novice attempt
  (Mann-Whitney; ties count half). "Better" is the rubric's direction (good < bad: lower is
  better) where the scenario scores the metric, else the metric's usual direction (`HIGHER_IS_BETTER`);
  0.5 is chance, 1.0 perfect separation.
- its 95 % confidence interval: percentile bootstrap, the two groups resampled separately
  (`n_boot` resamples from a fixed seed: the same database gives the same report);
- the pass/fail agreement: the share of attempts whose pass/fail matches the group (experts pass,
  novices fail), with the experts' pass rate and the novices' fail rate beside it.
Only scored, finished (or recovered) attempts count. An unknown trainee, a trainee in both groups,
or a group without scored attempts is an error that names them (`ValidityError`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from simulator.core.decision_scores import ALL_DECISIONS, DECISION_METRICS
from simulator.records.store import RecordsError

#: Metrics where a larger value is the better one (every other metric: smaller is better).
#: Metrics where more is better (the decisions are verdicts in % - 100 good, 50 acceptable, 0 poor).
HIGHER_IS_BETTER = {"score", "target_coverage_pct", "tip_visible_pct", ALL_DECISIONS, *DECISION_METRICS}
COUNTED = ("finished", "recovered")
SCORE = "score"


class ValidityError(RecordsError):
    """The groups cannot be compared (the message names the trainee or the group)."""


@dataclass
class MetricValidity:
    metric: str
    label: str
    n_expert: int
    n_novice: int
    expert_median: float | None
    novice_median: float | None
    auc: float | None
    ci_low: float | None
    ci_high: float | None
    higher_is_better: bool

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class ScenarioValidity:
    scenario_id: str
    scenario_title: str
    n_expert: int
    n_novice: int
    metrics: list[MetricValidity]
    agreement: float | None  # share of attempts whose pass/fail matches the group
    expert_pass_rate: float | None
    novice_fail_rate: float | None
    pass_mark: float | None = None

    def to_json(self) -> dict:
        d = asdict(self)
        d["metrics"] = [m.to_json() for m in self.metrics]
        return d


@dataclass
class ValidityReport:
    expert: list[str]
    novice: list[str]
    scenarios: list[ScenarioValidity] = field(default_factory=list)
    n_boot: int = 2000

    def to_json(self) -> dict:
        return {"expert": self.expert, "novice": self.novice, "n_boot": self.n_boot,
                "scenarios": [s.to_json() for s in self.scenarios]}


def auc(better: np.ndarray, worse: np.ndarray) -> float:
    """P(a value of `better` beats one of `worse`), ties half (higher beats lower)."""
    b = np.asarray(better, dtype=np.float64)[:, None]
    w = np.asarray(worse, dtype=np.float64)[None, :]
    return float(np.mean((b > w) + 0.5 * (b == w)))


def auc_ci(expert: np.ndarray, novice: np.ndarray, n_boot: int = 2000, seed: int = 0,
           level: float = 0.95) -> tuple[float, float, float]:
    """AUC of experts over novices (higher beats lower) and its percentile-bootstrap interval: each
    resample draws the experts and the novices with replacement, separately."""
    e = np.asarray(expert, dtype=np.float64)
    n = np.asarray(novice, dtype=np.float64)
    pair = (e[:, None] > n[None, :]) + 0.5 * (e[:, None] == n[None, :])
    a = float(pair.mean())
    rng = np.random.default_rng(seed)
    ce = rng.multinomial(len(e), np.full(len(e), 1.0 / len(e)), size=n_boot).astype(np.float64)
    cn = rng.multinomial(len(n), np.full(len(n), 1.0 / len(n)), size=n_boot).astype(np.float64)
    boot = np.einsum("bi,ij,bj->b", ce, pair, cn) / (len(e) * len(n))
    lo, hi = np.quantile(boot, [(1 - level) / 2, 1 - (1 - level) / 2])
    return a, float(lo), float(hi)


def _direction(metric: str, rubric_items: dict) -> bool:
    """True when a larger value is better."""
    if metric in rubric_items:
        good, bad = rubric_items[metric]
        return good > bad
    return metric in HIGHER_IS_BETTER


def _median(v: list[float]) -> float | None:
    return float(np.median(v)) if v else None


def _labels() -> dict:
    from simulator.core.scoring import LABELS

    return LABELS


def _rubric_directions(store, info) -> dict:
    """metric -> (good, bad) of the scenario version the attempt was scored with (when stored)."""
    import json

    try:
        text = store.scenario_json(info.scenario_id, info.scenario_version)
        items = (json.loads(text) or {}).get("rubric", {}).get("items", []) if text else []
    except (ValueError, RecordsError):
        items = []
    return {it["metric"]: (float(it["good"]), float(it["bad"])) for it in items
            if "metric" in it and not it.get("target")}


def compare_cards(scenario_id: str, title: str, expert: list[dict], novice: list[dict], directions: dict,
                  n_boot: int = 2000, seed: int = 0, pass_mark: float | None = None) -> ScenarioValidity:
    """The comparison of two groups of score cards (JSON dicts: score, passed, metrics) of one
    scenario: per metric and the total score, the AUC and its interval; the pass/fail agreement.
    `directions`: metric -> (good, bad) of the rubric (which way is better)."""
    labels = _labels()
    metrics = [SCORE] + sorted({k for c in expert + novice for k, v in (c.get("metrics") or {}).items()
                                if isinstance(v, (int, float))})
    rows = []
    for m in metrics:
        def vals(group):
            out = []
            for c in group:
                v = c.get("score") if m == SCORE else (c.get("metrics") or {}).get(m)
                if isinstance(v, (int, float)) and math.isfinite(v):
                    out.append(float(v))
            return out

        ev, nv = vals(expert), vals(novice)
        higher = _direction(m, directions)
        if ev and nv:
            sign = 1.0 if higher else -1.0
            a, lo, hi = auc_ci(sign * np.array(ev), sign * np.array(nv), n_boot=n_boot, seed=seed)
        else:
            a = lo = hi = None
        label = "total score" if m == SCORE else labels.get(m, (m, ""))[0]
        rows.append(MetricValidity(m, label, len(ev), len(nv), _median(ev), _median(nv), a, lo, hi, higher))
    first, rest = rows[:1], rows[1:]
    rest.sort(key=lambda r: (r.auc is None, -(r.auc or 0.0), r.metric))
    passed_e = [bool(c["passed"]) for c in expert if c.get("passed") is not None]
    passed_n = [bool(c["passed"]) for c in novice if c.get("passed") is not None]
    agree = (sum(passed_e) + sum(not p for p in passed_n)) / (len(passed_e) + len(passed_n)) if (
        passed_e or passed_n) else None
    return ScenarioValidity(
        scenario_id=scenario_id, scenario_title=title, n_expert=len(expert), n_novice=len(novice),
        metrics=first + rest, agreement=agree,
        expert_pass_rate=(sum(passed_e) / len(passed_e)) if passed_e else None,
        novice_fail_rate=(sum(not p for p in passed_n) / len(passed_n)) if passed_n else None,
        pass_mark=pass_mark)


def _group_attempts(store, names: list[str], what: str, scenario: str | None):
    known = {t.name for t in store.list_trainees()}
    missing = [n for n in names if n not in known]
    if missing:
        raise ValidityError(f"{what} group: no trainee {', '.join(repr(m) for m in missing)} in {store.location}"
                            f" (trainees: {', '.join(sorted(known)) or 'none'})")
    out = []
    for n in names:
        out += [a for a in store.list_attempts(trainee=n, scenario=scenario)
                if a.status in COUNTED and a.score is not None]
    return out


def validity_report(store, expert, novice, scenario: str | None = None, n_boot: int = 2000,
                    seed: int = 0) -> ValidityReport:
    """The report (see the module notes) for the trainees named in each group."""
    expert = [str(x).strip() for x in expert if str(x).strip()]
    novice = [str(x).strip() for x in novice if str(x).strip()]
    if not expert or not novice:
        raise ValidityError(f"the {'expert' if not expert else 'novice'} group is empty: name at least one trainee")
    both = sorted(set(expert) & set(novice))
    if both:
        raise ValidityError(f"trainee {', '.join(repr(b) for b in both)} is in both groups")
    ea = _group_attempts(store, expert, "expert", scenario)
    na = _group_attempts(store, novice, "novice", scenario)
    where = f" on scenario {scenario!r}" if scenario else ""
    for what, names, att in (("expert", expert, ea), ("novice", novice, na)):
        if not att:
            raise ValidityError(f"the {what} group ({', '.join(names)}) has no scored attempts{where}")
    report = ValidityReport(expert=expert, novice=novice, n_boot=n_boot)
    scenarios = sorted({a.scenario_id for a in ea} & {a.scenario_id for a in na})
    if not scenarios:
        raise ValidityError(f"no scenario has attempts from both groups{where} (experts: "
                            f"{', '.join(sorted({a.scenario_id for a in ea}))}; novices: "
                            f"{', '.join(sorted({a.scenario_id for a in na}))})")
    for sid in scenarios:
        e_att = [a for a in ea if a.scenario_id == sid]
        n_att = [a for a in na if a.scenario_id == sid]
        cards = store.score_cards([a.id for a in e_att + n_att])
        info = e_att[-1]
        report.scenarios.append(compare_cards(
            sid, info.scenario_title or sid, [cards.get(a.id) or {} for a in e_att],
            [cards.get(a.id) or {} for a in n_att], _rubric_directions(store, info), n_boot, seed, info.pass_mark))
    return report


TABLE_HEAD = ["metric", "better", "expert median", "novice median", "AUC", "95 % CI", "n expert/novice"]


def summary_line(s: ScenarioValidity) -> str:
    agree = "-" if s.agreement is None else f"{100 * s.agreement:.0f} %"
    ep = "-" if s.expert_pass_rate is None else f"{100 * s.expert_pass_rate:.0f} %"
    nf = "-" if s.novice_fail_rate is None else f"{100 * s.novice_fail_rate:.0f} %"
    return (f"{s.scenario_title} ({s.scenario_id}): {s.n_expert} expert and {s.n_novice} novice attempts; "
            f"pass/fail agreement {agree} (experts passing {ep}, novices failing {nf})")


def table_rows(s: ScenarioValidity) -> list[list[str]]:
    """One row per metric (total score first, then by AUC): the cells of `TABLE_HEAD`."""
    def f(v):
        return "-" if v is None else f"{v:.3g}"

    return [[m.label, "higher" if m.higher_is_better else "lower", f(m.expert_median), f(m.novice_median),
             "-" if m.auc is None else f"{m.auc:.2f}", "-" if m.ci_low is None else f"{m.ci_low:.2f}-{m.ci_high:.2f}",
             f"{m.n_expert}/{m.n_novice}"] for m in s.metrics]


def header_line(report: ValidityReport) -> str:
    return (f"expert group: {', '.join(report.expert)}; novice group: {', '.join(report.novice)}; AUC = P(an expert "
            f"attempt is better than a novice one), 95 % CI by bootstrap ({report.n_boot} resamples)")
