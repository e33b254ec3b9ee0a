"""Does the score separate scripted experts from scripted novices on every library scenario?

`python main.py bench validity --json` prints one JSON object. Per scenario of the library whose
anatomy is available: 20 scripted expert and 20 scripted novice attempts (`simulator.scripted.cohort`,
varied by seed: entry point, tremor, speed, pace, imaging; half the novices also make one or two of
the battery's error behaviours, the other half are clumsy only), scored, and compared as
`records validity` compares real trainees (`records.validity.compare_cards`):
- score_auc (with score_auc_ci_low / _high): the total score's AUC, expert over novice;
- agreement, experts_failing, novices_passing: pass/fail against the group; faulty_novices_passing
  (novices with a battery fault that passed: must be 0) and clumsy_novices_passing;
- metric_auc: the AUC of every metric on the card (lower is better unless the rubric or
  `HIGHER_IS_BETTER` says otherwise);
- baseline_path_length_auc: the AUC of Perk Tutor's path length in the same run (the metric the
  literature found weakest, 0.61 in JVIR 2023) beside the score's;
- styles: per novice style (`scripted.STYLES`: clumsy in one way only - rotational, translational,
  unsteady, imaging, hesitant; 5 attempts each, 3 with --quick): score_auc against the experts, passing, the
  median score, the AUC of the metric that style should show (`STYLE_METRIC`) and the metric that
  separates it best;
- seconds_per_attempt: scripting and scoring time per attempt.
At the top: min_score_auc over the scenarios, total novices_passing / faulty_novices_passing, the
load average. `--quick`: 6 + 6 attempts per scenario and quick hands (one input per
movement: no Perk Tutor actions); `--scenario ID`: that scenario only.
"""
from __future__ import annotations

import os
import statistics
import time

#: The metric each novice style should show (ultrasound: the imaging style loses the tip).
STYLE_METRIC = {"rotational": "rotational_actions", "translational": "translational_actions",
                "unsteady": "tissue_damage_mm2", "imaging": "fluoro_shots", "hesitant": "elapsed_time_s"}


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


def _styles(sc, an, targets, expert_cards, n: int, quick: bool, directions) -> dict:
    """Per novice style: how the score and the style's own metric separate it from the experts."""
    from simulator.core.scoring import score_attempt
    from simulator.records.validity import compare_cards
    from simulator.scripted import STYLES, cohort

    modality = str(getattr(sc.modality, "value", sc.modality))
    out = {}
    for style in STYLES:
        cards = [score_attempt(p.recording, sc, an, targets=targets).to_json()
                 for _s, _f, p in cohort(sc, an, "novice", n=n, seed0=2000, targets=targets, quick=quick, style=style)]
        v = compare_cards(sc.id, sc.title, expert_cards, cards, directions, n_boot=1000, seed=0,
                          pass_mark=sc.rubric.pass_mark)
        by = {m.metric: m for m in v.metrics}
        own = STYLE_METRIC[style]
        if style == "imaging" and modality == "ultrasound":
            own = "tip_visible_pct"
        best = next((m for m in v.metrics if m.metric != "score" and m.auc is not None), None)
        out[style] = {
            "score_auc": round(by["score"].auc, 4),
            "passing": sum(1 for c in cards if c["passed"]),
            "automatic_fails": sum(1 for c in cards if c["automatic_fails"]),
            "median_score": round(by["score"].novice_median, 1),
            "metric": own,
            "metric_auc": None if own not in by or by[own].auc is None else round(by[own].auc, 4),
            "best_metric": None if best is None else best.metric,
            "best_metric_auc": None if best is None else round(best.auc, 4),
        }
    return out


def run(args) -> dict:
    from simulator.core.scoring import score_attempt
    from simulator.core.targets import resolve_targets
    from simulator.records.validity import compare_cards
    from simulator.scripted import ScriptError, cohort

    quick = bool(getattr(args, "quick", False))
    only = getattr(args, "scenario", None)
    n = 6 if quick else 20
    per_style = max(3, n // 4)
    out: dict = {"attempts_per_group": n, "attempts_per_style": per_style, "scenarios": {}, "skipped": {}}
    for sc in _library():
        if only and sc.id != only:
            continue
        an = _anatomy(sc)
        if an is None:
            out["skipped"][sc.id] = f"anatomy {sc.anatomy} not available (python main.py setup-data)"
            continue
        targets = resolve_targets(sc, an)
        t0 = time.perf_counter()
        cards, faulty = {}, []
        try:
            for skill in ("expert", "novice"):
                group = cohort(sc, an, skill, n=n, seed0=1000, targets=targets, quick=quick)
                cards[skill] = [score_attempt(p.recording, sc, an, targets=targets).to_json() for _s, _f, p in group]
                if skill == "novice":
                    faulty = [bool(f) for _s, f, _p in group]
        except ScriptError as e:
            out["skipped"][sc.id] = str(e)
            continue
        per = (time.perf_counter() - t0) / (2 * n)
        directions = {it.metric: (it.good, it.bad) for it in sc.rubric.items if it.target is None}
        v = compare_cards(sc.id, sc.title, cards["expert"], cards["novice"], directions, n_boot=2000, seed=0,
                          pass_mark=sc.rubric.pass_mark)
        by = {m.metric: m for m in v.metrics}
        passing = [c["passed"] for c in cards["novice"]]
        out["scenarios"][sc.id] = {
            "score_auc": round(by["score"].auc, 4),
            "score_auc_ci_low": round(by["score"].ci_low, 4),
            "score_auc_ci_high": round(by["score"].ci_high, 4),
            "expert_median_score": round(by["score"].expert_median, 1),
            "novice_median_score": round(by["score"].novice_median, 1),
            "agreement": v.agreement,
            "experts_failing": sum(1 for c in cards["expert"] if not c["passed"]),
            "novices_passing": sum(passing),
            "faulty_novices_passing": sum(1 for ok, f in zip(passing, faulty) if ok and f),
            "clumsy_novices_passing": sum(1 for ok, f in zip(passing, faulty) if ok and not f),
            "baseline_path_length_auc": None if "path_length_mm" not in by else round(by["path_length_mm"].auc, 4),
            "metric_auc": {m.metric: None if m.auc is None else round(m.auc, 4) for m in v.metrics if m.metric != "score"},
            "styles": _styles(sc, an, targets, cards["expert"], per_style, quick, directions),
            "seconds_per_attempt": round(per, 3),
        }
    s = out["scenarios"]
    out["min_score_auc"] = min((x["score_auc"] for x in s.values()), default=None)
    out["novices_passing"] = sum(x["novices_passing"] for x in s.values())
    out["faulty_novices_passing"] = sum(x["faulty_novices_passing"] for x in s.values())
    out["experts_failing"] = sum(x["experts_failing"] for x in s.values())
    out["median_seconds_per_attempt"] = statistics.median([x["seconds_per_attempt"] for x in s.values()]) if s else None
    out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return out
