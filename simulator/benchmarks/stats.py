"""Summary figures of the benchmarks' timings: median and 95th percentile, NaN samples skipped
(NaN when nothing is left)."""
from __future__ import annotations

import statistics


def median(v) -> float:
    v = [x for x in v if x == x]
    return float(statistics.median(v)) if v else float("nan")


def p95(v) -> float:
    v = sorted(x for x in v if x == x)
    return float(v[min(len(v) - 1, int(round(0.95 * (len(v) - 1))))]) if v else float("nan")
