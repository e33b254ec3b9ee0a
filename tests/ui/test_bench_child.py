"""The GUI benchmarks' child process (simulator/ui/bench_child.py): one JSON line back, a data
folder of its own (removed after), an exception reported in the JSON, not a traceback."""
import os

from simulator.core.paths import PROJECT_ROOT
from simulator.ui.bench_child import run_child


def test_the_child_measures_in_its_own_data_folder_and_reports_json(monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)  # `python -m tests.ui.bench_child_probe`
    out = run_child("tests.ui.bench_child_probe", ["--quick"], timeout_s=120)
    assert out["args"] == ["--quick"] and out["env"] == out["data"]
    assert os.path.basename(out["data"]).startswith("nt-probe-") and not os.path.exists(out["data"])
    out = run_child("tests.ui.bench_child_probe", ["--fail"], timeout_s=120)
    assert out["error"] == "RuntimeError: the probe fell over" and "Traceback" in out["traceback"]


def test_the_summary_figures_skip_missing_samples():
    from simulator.benchmarks.stats import median, p95

    assert median([3.0, float("nan"), 1.0, 2.0]) == 2.0 and median([1.0, 2.0]) == 1.5
    assert p95([float(i) for i in range(101)]) == 95.0 and p95([7.0]) == 7.0
    assert median([]) != median([]) and p95([float("nan")]) != p95([float("nan")])  # NaN: nothing measured
