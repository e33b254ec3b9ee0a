"""`bench validity`: the figures named in its notes, on one scenario (the gel phantom, fast)."""
from types import SimpleNamespace

from simulator.benchmarks import validity
from simulator.core.paths import SCENARIOS_DIR
from simulator.core.scenario import load_scenario


def test_bench_validity_on_the_gel_phantom(monkeypatch):
    gel = load_scenario(SCENARIOS_DIR / "needle_basics_gel.yaml")
    monkeypatch.setattr(validity, "_library", lambda: [gel])
    out = validity.run(SimpleNamespace(quick=True))
    s = out["scenarios"]["needle_basics_gel"]
    assert out["attempts_per_group"] == 6 and out["min_score_auc"] == s["score_auc"] >= 0.95
    assert s["novices_passing"] == 0 and s["experts_failing"] == 0 and s["agreement"] == 1.0
    assert s["score_auc_ci_low"] <= s["score_auc"] <= s["score_auc_ci_high"]
    assert {"translational_actions", "rotational_actions", "path_length_mm", "error_behaviours"} <= set(s["metric_auc"])
    assert s["baseline_path_length_auc"] == s["metric_auc"]["path_length_mm"]
    assert s["faulty_novices_passing"] == out["faulty_novices_passing"] == 0
    assert s["novices_passing"] == s["clumsy_novices_passing"] == 0
    assert out["attempts_per_style"] == 3 and set(s["styles"]) == {"rotational", "translational", "unsteady",
                                                                   "imaging", "hesitant"}
    for style, row in s["styles"].items():
        assert 0.0 <= row["score_auc"] <= 1.0 and 0 <= row["passing"] <= 3, style
        assert row["best_metric"] in s["metric_auc"] and row["best_metric_auc"] >= 0.5, style
    assert s["styles"]["imaging"]["metric"] == "tip_visible_pct"  # the gel phantom is under ultrasound
    assert len(out["load_average"]) == 3
