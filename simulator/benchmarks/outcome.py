"""Benchmark of the course after an attempt and of the debrief that shows it.

`python main.py bench outcome --json` prints one JSON object:
- course_ms / course_p95_ms: `course_for_attempt` (facts from the events, 200 virtual patients,
  26 weeks day by day, every side effect and complication) on the scripted expert celiac attempt
  (both needles) on the bundled patient, or on the test block when it is not built;
- baseline_score_ms: the score card of the same recording (`score_attempt`), measured in the same
  run - the other computation made when an attempt ends;
- debrief_s / debrief_p95_s: from the end of the attempt to the debrief drawn (course, pyqtgraph
  timeline, effects table) in an offscreen Qt window (absent when Qt cannot start);
- params_parse_ms: reading and validating scenarios/outcome/course_parameters.yaml in a new process
  (its YAML data from the content-hash cache on disk), beside params_parse_yaml_ms (the YAML read
  by ruamel's loader: a changed file, or the project before the cache - the baseline) and
  params_cached_ms (the same text again in the same process);
- targets: course <= 50 ms, debrief <= 0.5 s; load: `os.getloadavg()` at the start.
"""
from __future__ import annotations

import itertools
import math
import os
import statistics
import time


def _attempt():
    from simulator.benchmarks.scoring import (
        _bundled_celiac,
        expert_attempt,
        expert_side,
        synthetic_block_anatomy,
        synthetic_scenario,
    )
    from simulator.core.procedure import Procedure

    real = _bundled_celiac()
    if real is not None:
        scenario, anatomy = real
        clk = itertools.count(1.0)
        proc = Procedure(scenario, anatomy, clock=lambda: 0.0)
        for tr in scenario.trajectories:
            expert_side(proc, lambda: float(next(clk)), tr.entry_mm, tr.target_mm)
        proc.end(time_s=float(next(clk)))
        return proc, scenario, anatomy, "bundled patient, celiac_plexus_posterior"
    scenario = synthetic_scenario(outcome={"parameters": "celiac_plexus", "celiac_origin_mm": [-20.0, 27.0, 0.0]})
    anatomy = synthetic_block_anatomy()
    proc = Procedure(scenario, anatomy, clock=lambda: 0.0)
    expert_attempt(proc)
    return proc, scenario, anatomy, "test block (the bundled patient is not built)"


def _stats(xs: list[float], scale: float, digits: int) -> tuple[float, float]:
    xs = sorted(xs)
    return round(scale * statistics.median(xs), digits), round(scale * xs[math.ceil(0.95 * (len(xs) - 1))], digits)


def _debrief_times(proc, scenario, reps: int) -> list[float] | str:
    try:
        from simulator.records.report import ensure_qt_app

        app = ensure_qt_app(headless=True)
        from simulator.ui.debrief import DebriefWidget
    except Exception as e:  # noqa: BLE001 - reported in the output, the course figures still count
        return f"no Qt: {e}"
    from simulator.core.outcome import course_for_attempt

    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        course = course_for_attempt(proc.recording, scenario)
        w = DebriefWidget(course)
        w.resize(720, 520)
        w.show()
        app.processEvents()
        w.grab()  # drawn
        out.append(time.perf_counter() - t0)
        w.close()
        w.deleteLater()
        app.processEvents()
    return out


def _parse_times(reps: int) -> dict:
    """The parameter file: from the YAML data cache (as a new process finds it), read by the YAML
    loader (no cache: the baseline), and again in the same process."""
    from simulator.core import outcome_library, yaml_cache

    path = outcome_library.library_path()
    outcome_library.load_library(path)  # the disk cache holds it now
    from_cache, from_yaml, again = [], [], []
    for _ in range(reps):
        outcome_library._cache.clear()
        yaml_cache.clear_memory()
        t0 = time.perf_counter()
        outcome_library.load_library(path)
        from_cache.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        outcome_library.load_library(path)
        again.append(time.perf_counter() - t0)
    real_get = yaml_cache.get
    yaml_cache.get = lambda text: None  # every read through the YAML loader
    try:
        for _ in range(max(2, reps // 3)):
            outcome_library._cache.clear()
            t0 = time.perf_counter()
            outcome_library.load_library(path)
            from_yaml.append(time.perf_counter() - t0)
    finally:
        yaml_cache.get = real_get
    out = {}
    out["params_parse_ms"], out["params_parse_p95_ms"] = _stats(from_cache, 1000.0, 1)
    out["params_parse_yaml_ms"] = _stats(from_yaml, 1000.0, 1)[0]
    out["params_cached_ms"] = _stats(again, 1000.0, 3)[0]
    return out


def run(args) -> dict:
    from simulator.core.outcome import course_for_attempt
    from simulator.core.scoring import score_attempt

    quick = bool(getattr(args, "quick", False))
    load = os.getloadavg()
    proc, scenario, anatomy, where = _attempt()
    rec = proc.recording
    reps = 10 if quick else 40
    course_for_attempt(rec, scenario)  # warm: the parameter file is read once
    course = []
    for _ in range(reps):
        t0 = time.perf_counter()
        c = course_for_attempt(rec, scenario)
        course.append(time.perf_counter() - t0)
    score = []
    for _ in range(3 if quick else 7):
        t0 = time.perf_counter()
        score_attempt(rec, scenario, anatomy)
        score.append(time.perf_counter() - t0)
    med, p95 = _stats(course, 1000.0, 2)
    out = {
        "anatomy": where,
        "n_patients": c.n_patients,
        "days": len(c.days),
        "relief_probability": round(c.relief_probability, 3),
        "course_ms": med,
        "course_p95_ms": p95,
        "baseline_score_ms": _stats(score, 1000.0, 1)[0],
        "target_course_ms": 50,
        "target_debrief_s": 0.5,
        "loadavg_1_5_15": [round(x, 2) for x in load],
    }
    out.update(_parse_times(3 if quick else 9))
    deb = _debrief_times(proc, scenario, 3 if quick else 10)
    if isinstance(deb, str):
        out["debrief_note"] = deb
    else:
        out["debrief_s"], out["debrief_p95_s"] = _stats(deb[1:] or deb, 1.0, 3)
        out["debrief_first_s"] = round(deb[0], 3)
    return out
