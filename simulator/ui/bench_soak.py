"""Soak benchmark: `python main.py bench soak --json [--minutes N]`.

Drives the real window (a QApplication on the current X display; without DISPLAY it re-runs
itself under `xvfb-run`) for N minutes (default 10) on the celiac scenario as a long attempt
does: the needle placed at the planned entry, then advanced, withdrawn and steered about 23 times
a second (the pattern repeats: 6 advances, 2 steers, 6 withdrawals, 2 steers back), a
fluoroscopy shot (pedal tap) every 60 inputs. Every attempt is recorded live into a records
store of the benchmark's own, as in the trainer.

Figures (the issue's key names):
- inputs, shots: what was sent;
- rss_growth_mb: resident memory at the end minus at the first minute's end (the window, the
  anatomy, the caches and the first images are in place by then);
- thumbnails_mb: what the stored exposures' thumbnails take (the image strip's icons, RGBA);
  rss_growth_beyond_thumbnails_mb = rss_growth_mb - thumbnails_mb;
- latency_ms_median_first_quarter / _last_quarter: key press -> every view updated (the
  procedure, the panel, the 3D frame rendered), median over the first / last quarter of the run;
  latency_drift_pct = 100 (last / first - 1);
- rss_mb_series / latency_ms_series: per tenth of the run (memory at its end, median latency);
- baseline: the same input pattern applied to a bare Procedure (no window) in the same run, its
  per-input time in the first and last quarter (baseline_core_ms_median_first_quarter / _last_);
- loadavg_start / loadavg_end: the machine's 1-minute load (the 2 cores may be shared).
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

from simulator.ui import bench_child
from simulator.ui.bench_workstation import _median, _p95

INPUT_RATE_HZ = 23.0
SHOT_EVERY = 60
PATTERN = ["W"] * 6 + ["Right", "Up"] + ["S"] * 6 + ["Left", "Down"]


def add_arguments(parser) -> None:
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to drive the window (default 10)")


def run(args) -> dict:
    """Measure in a child process (see workstation.run)."""
    minutes = float(getattr(args, "minutes", None) or (1.0 if getattr(args, "quick", False) else 10.0))
    return bench_child.run_child("simulator.ui.bench_soak", [str(minutes)], timeout_s=int(minutes * 60 * 3 + 900))


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _quarters(values: list[float]) -> tuple[float, float]:
    n = len(values)
    q = max(1, n // 4)
    return _median(values[:q]), _median(values[-q:])


def _tenths(values: list[float]) -> list[float]:
    n = len(values)
    return [round(_median(values[i * n // 10:(i + 1) * n // 10]), 2) for i in range(10)] if n >= 10 else []


def core_baseline(scenario, anatomy, n_inputs: int) -> dict:
    """The same pattern on a bare Procedure: per-input ms in the first and last quarter."""
    from simulator.core.procedure import Procedure

    proc = Procedure(scenario, anatomy)
    plan = scenario.planned_trajectory
    entry = np.asarray(plan.entry_mm, float)
    proc.set_entry(entry, np.asarray(plan.target_mm, float) - entry)
    proc.advance(30.0)
    steer = {"Right": (1.0, 0.0), "Left": (-1.0, 0.0), "Up": (0.0, 1.0), "Down": (0.0, -1.0)}
    step = np.radians(1.0)
    times = []
    for i in range(n_inputs):
        k = PATTERN[i % len(PATTERN)]
        t0 = time.perf_counter()
        if k == "W":
            proc.advance(1.0)
        elif k == "S":
            proc.advance(-1.0)
        else:
            axis = proc.state.axis
            side = np.cross(axis, (0.0, 0.0, 1.0))
            side /= np.linalg.norm(side)
            up = np.cross(side, axis)
            a, b = steer[k]
            proc.set_direction(axis + step * (a * side + b * up))
        times.append((time.perf_counter() - t0) * 1e3)
        if i % 2:  # the simulation clock runs as in the window (60 samples a second)
            proc.tick()
    first, last = _quarters(times)
    return {"baseline_core_ms_median_first_quarter": round(first, 3),
            "baseline_core_ms_median_last_quarter": round(last, 3)}


def _run(minutes: float, data: str) -> dict:
    from PySide6.QtCore import QCoreApplication, QEvent, QSettings, Qt
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from simulator.anatomy import bundled
    from simulator.ui.driver import WindowDriver, process, wait_until
    from simulator.ui.main_window import MainWindow

    if not bundled.cache_is_valid():
        return {"error": "the bundled patient is not built: run `python main.py setup-data`"}
    out: dict = {"minutes": minutes, "loadavg_start": round(os.getloadavg()[0], 2)}
    scenario = "celiac_plexus_posterior"
    w = MainWindow(scenario=scenario, settings=QSettings(os.path.join(data, "soak.ini"), QSettings.Format.IniFormat))
    w.question_answer = lambda key, text: "discard"
    w.resize(1500, 950)
    w.show()
    wait_until(lambda: w.scenario is not None and w.scenario.id == scenario and w.anatomy is not None, 120, "the scenario")
    wait_until(lambda: w.procedure_panel.plots_ready, 30, "the plots")
    wait_until(lambda: w.fluoro_view.ready, 120, "the fluoroscopy engine")
    d = WindowDriver(w)
    d.start_on_plan(advances=6)
    process(300)

    keys = {"W": Qt.Key.Key_W, "S": Qt.Key.Key_S, "Right": Qt.Key.Key_Right, "Left": Qt.Key.Key_Left,
            "Up": Qt.Key.Key_Up, "Down": Qt.Key.Key_Down}
    fv = w.fluoro_view
    v = w.view3d
    period = 1.0 / INPUT_RATE_HZ
    t_start = time.perf_counter()
    t_end = t_start + minutes * 60.0
    latencies: list[float] = []
    cpu_ms: list[float] = []  # the GUI thread's CPU per input: what the load of other jobs does not inflate
    loads: list[float] = []
    rss: list[tuple[float, float]] = []
    rss_after_first_minute = None
    shots = 0
    i = 0
    next_rss = t_start
    while time.perf_counter() < t_end:
        t_due = t_start + i * period
        while time.perf_counter() < t_due:
            QCoreApplication.processEvents()
            time.sleep(0.001)
        if i and i % SHOT_EVERY == 0:
            n = fv.frames_shown
            d.key(Qt.Key.Key_Space)
            wait_until(lambda: fv.frames_shown > n, 30, "the shot")
            shots += 1
        k = PATTERN[i % len(PATTERN)]
        rc = v.render_count
        t_panel: list[float] = []
        conn = w.procedure_panel.updated.connect(lambda t: t_panel.append(t))
        t_key = time.perf_counter()
        c_key = time.thread_time()
        d.key(keys[k])
        wait_until(lambda: v.render_count > rc, 10, "the 3D render")
        cpu_ms.append((time.thread_time() - c_key) * 1e3)
        w.procedure_panel.updated.disconnect(conn)
        done = max([v.last_render_end] + t_panel[:1])
        latencies.append((done - t_key) * 1e3)
        i += 1
        now = time.perf_counter()
        if now >= next_rss:
            rss.append((now - t_start, rss_mb()))
            loads.append(os.getloadavg()[0])
            next_rss = now + 5.0
            if rss_after_first_minute is None and now - t_start >= min(60.0, minutes * 60.0 / 4):
                rss_after_first_minute = rss[-1][1]
    process(500)
    rss.append((time.perf_counter() - t_start, rss_mb()))
    thumbs = 0.0
    strip = fv.strip
    for j in range(strip.count()):
        icon = strip.item(j).icon()
        for size in icon.availableSizes():
            thumbs += size.width() * size.height() * 4 / 2**20
    first, last = _quarters(latencies)
    cpu_first, cpu_last = _quarters(cpu_ms)
    growth = rss[-1][1] - (rss_after_first_minute if rss_after_first_minute is not None else rss[0][1])
    tenths_t = [minutes * 60.0 * (k + 1) / 10 for k in range(10)]
    rss_series = [round(min(rss, key=lambda r: abs(r[0] - t))[1], 1) for t in tenths_t]
    out.update({
        "inputs": i,
        "shots": shots,
        "rss_mb_start": round(rss[0][1], 1),
        "rss_mb_after_first_minute": round(rss_after_first_minute or rss[0][1], 1),
        "rss_mb_end": round(rss[-1][1], 1),
        "rss_growth_mb": round(growth, 1),
        "thumbnails_mb": round(thumbs, 2),
        "rss_growth_beyond_thumbnails_mb": round(growth - thumbs, 1),
        "latency_ms_median_first_quarter": round(first, 2),
        "latency_ms_median_last_quarter": round(last, 2),
        "latency_drift_pct": round(100.0 * (last / first - 1.0), 1) if first > 0 else None,
        "latency_ms_p95": round(_p95(latencies), 2),
        "rss_mb_series": rss_series,
        "latency_ms_series": _tenths(latencies),
        # The same drift measured on the GUI thread's CPU time per input (key to its 3D frame): other
        # jobs on the machine lengthen the wall-clock latency above, not this.
        "cpu_ms_median_first_quarter": round(cpu_first, 2),
        "cpu_ms_median_last_quarter": round(cpu_last, 2),
        "cpu_drift_pct": round(100.0 * (cpu_last / cpu_first - 1.0), 1) if cpu_first > 0 else None,
        "cpu_ms_series": _tenths(cpu_ms),
        "loadavg_series": _tenths(loads),
        "targets": {"rss_growth_beyond_thumbnails_mb": 20.0, "latency_drift_pct": 10.0},
    })
    out.update(core_baseline(w.scenario, w.anatomy, i))
    out["baseline"] = "the same inputs on a bare Procedure (no window), same run"
    w.question_answer = lambda key, text: "discard"
    w.close()
    w.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    out["loadavg_end"] = round(os.getloadavg()[0], 2)
    return out


if __name__ == "__main__":
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    bench_child.child_main(lambda data: _run(minutes, data), prefix="nt-soak-")
