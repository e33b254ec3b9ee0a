"""The recording benchmark runs (quick: a 2-minute attempt) and the recorder keeps every sample."""
from types import SimpleNamespace

from simulator.benchmarks.recording import run


def test_recording_benchmark_quick():
    out = run(SimpleNamespace(quick=True, json=True))
    assert out["samples"] == 7200 and out["samples_dropped"] == 0 and out["samples_identical"]
    for key in ("append_us_median", "baseline_append_us_median", "file_mb_30min", "load_s", "json_file_mb",
                "npz_file_mb", "flush_ms_median_60hz", "realtime_margin"):
        assert out[key] > 0, key
    assert out["file_mb_30min"] < out["json_file_mb"]  # far smaller than the JSON baseline
    assert out["realtime_margin"] > 10  # the recorder writes much faster than the attempt makes samples
