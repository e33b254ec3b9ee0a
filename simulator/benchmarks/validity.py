"""Does the score separate scripted experts from scripted novices on every library scenario?

`python main.py bench validity --json` prints one JSON object. Per scenario of the library whose
anatomy is available: 20 scripted expert and 20 scripted novice attempts (`simulator.scripted.cohort`,
varied by seed: entry point, tremor, speed, pace; each novice makes one or two of the battery's
error behaviours), scored, and compared as `records validity` compares real trainees
(`records.validity.compare_cards`):
- score_auc (with score_auc_ci_low / _high): the total score's AUC, expert over novice;
- agreement, experts_failing, novices_passing: pass/fail against the group;
- metric_auc: the AUC of every metric on the card (lower is better unless the rubric or
  `HIGHER_IS_BETTER` says otherwise);
- baseline_path_length_auc: the AUC of Perk Tutor's path length in the same run (the metric the
  literature found weakest, 0.61 in JVIR 2023) beside the score's;
- seconds_per_attempt: scripting and scoring time per attempt.
At the top: min_score_auc over the scenarios, total novices_passing, the load average.
`--quick`: 6 + 6 attempts per scenario and quick hands (one input per movement).
"""
from __future__ import annotations

import os
import statistics
import time


def _library():
    from simulator.core.paths import SCENARIOS_DIR
    from simulator.core.scenario import load_scenario

    out = []
    for path in sorted(SCENARIOS_DIR.glob("*.yaml")):
        try:
            sc = load_scenario(path)
            out.append(sc)
        except Exception:  # noqa: BLE001 - a broken file is `validate`'s business, not this bench's
            continue
    return out


def _anatomy(sc):
    try:
        from simulator.records.rescore import anatomy_for

        return anatomy_for(sc.anatomy)
    except Exception:  # noqa: BLE001 - a patient not built: the scenario is skipped (and said so)
        return None


def run(args) -> dict:
    from simulator.core.scoring import score_attempt
    from simulator.core.targets import resolve_targets
    from simulator.records.validity import compare_cards
    from simulator.scripted import ScriptError, cohort

    quick = bool(getattr(args, "quick", False))
    n = 6 if quick else 20
    out: dict = {"attempts_per_group": n, "scenarios": {}, "skipped": {}}
    for sc in _library():
        an = _anatomy(sc)
        if an is None:
            out["skipped"][sc.id] = f"anatomy {sc.anatomy} not available (python main.py setup-data)"
            continue
        targets = resolve_targets(sc, an)
        t0 = time.perf_counter()
        cards = {}
        try:
            for skill in ("expert", "novice"):
                cards[skill] = [score_attempt(p.recording, sc, an, targets=targets).to_json()
                                for _s, _f, p in cohort(sc, an, skill, n=n, seed0=1000, targets=targets, quick=quick)]
        except ScriptError as e:
            out["skipped"][sc.id] = str(e)
            continue
        per = (time.perf_counter() - t0) / (2 * n)
        directions = {it.metric: (it.good, it.bad) for it in sc.rubric.items if it.target is None}
        v = compare_cards(sc.id, sc.title, cards["expert"], cards["novice"], directions, n_boot=2000, seed=0,
                          pass_mark=sc.rubric.pass_mark)
        by = {m.metric: m for m in v.metrics}
        out["scenarios"][sc.id] = {
            "score_auc": round(by["score"].auc, 4),
            "score_auc_ci_low": round(by["score"].ci_low, 4),
            "score_auc_ci_high": round(by["score"].ci_high, 4),
            "expert_median_score": round(by["score"].expert_median, 1),
            "novice_median_score": round(by["score"].novice_median, 1),
            "agreement": v.agreement,
            "experts_failing": sum(1 for c in cards["expert"] if not c["passed"]),
            "novices_passing": sum(1 for c in cards["novice"] if c["passed"]),
            "baseline_path_length_auc": None if "path_length_mm" not in by else round(by["path_length_mm"].auc, 4),
            "metric_auc": {m.metric: None if m.auc is None else round(m.auc, 4) for m in v.metrics if m.metric != "score"},
            "seconds_per_attempt": round(per, 3),
        }
    s = out["scenarios"]
    out["min_score_auc"] = min((x["score_auc"] for x in s.values()), default=None)
    out["novices_passing"] = sum(x["novices_passing"] for x in s.values())
    out["experts_failing"] = sum(x["experts_failing"] for x in s.values())
    out["median_seconds_per_attempt"] = statistics.median([x["seconds_per_attempt"] for x in s.values()]) if s else None
    out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return out
