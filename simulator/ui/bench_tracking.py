"""Tracking benchmark: `python main.py bench tracking --json` (the module notes of
`simulator.benchmarks.tracking` list every figure).

The headless figures are measured in this process; the trainer's in a child process on the display
(or under Xvfb), with the simulated tracker as a third process, as PLUS would be.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

from simulator.benchmarks.tracking import dropped_reordered, free_port, headless, median, p95, pass_file
from simulator.ui import bench_child
from simulator.ui.bench_workstation import run_child


def run(args) -> dict:
    quick = bool(getattr(args, "quick", False))
    out: dict = {"loadavg_start": round(os.getloadavg()[0], 2)}
    out.update(headless(quick))
    out.update(run_child("simulator.ui.bench_tracking", quick))
    out["baseline"] = "bare Procedure fed by the same 60 Hz stream (no window), same run; raw TCP for the images"
    out["baseline_ms_median"] = out.get("baseline_poses_to_procedure_ms_median")
    out["loadavg_end"] = round(os.getloadavg()[0], 2)
    return out


def _run_until(pred, timeout_s: float) -> None:
    """Run the Qt event loop as the trainer does (blocking until events come) until pred() holds."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    end = time.perf_counter() + timeout_s
    timer = QTimer()
    timer.setInterval(50)
    timer.timeout.connect(lambda: loop.quit() if pred() or time.perf_counter() > end else None)
    timer.start()
    loop.exec()
    timer.stop()


def _gui(quick: bool, data: str) -> dict:
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])  # noqa: F841 - kept alive
    import simulator.render.lod as lod_mod
    from simulator.anatomy import bundled
    from simulator.ui.driver import process, wait_until
    from simulator.ui.main_window import MainWindow

    scenario = "celiac_plexus_posterior" if bundled.cache_is_valid() else "needle_basics_gel"
    out: dict = {"scenario": scenario, "display": os.environ.get("DISPLAY", "")}
    w = MainWindow(scenario=scenario, settings=QSettings(os.path.join(data, "s.ini"), QSettings.Format.IniFormat))
    w.question_answer = lambda key, text: "discard"
    w.resize(1500, 950)
    w.show()
    wait_until(lambda: w.scenario is not None and w.scenario.id == scenario and w.anatomy is not None, 180, "the scenario")
    scene = w.view3d.scene
    wait_until(lambda: scene.has_lod() or scene.triangle_count() <= lod_mod.LOD_MIN_TRIANGLES, 180, "the moving meshes")
    wait_until(lambda: scene.has_medium() or scene.triangle_count() <= lod_mod.MEDIUM_MIN_TRIANGLES, 180,
               "the medium meshes")  # built on a worker thread: not while measuring
    out["anatomy_triangles"] = scene.triangle_count()
    out["triangles_moving"] = scene.moving_triangle_count()
    plan = w.scenario.planned_trajectory
    us = w.scenario.imaging.ultrasound
    probe = (us.center_mm, us.direction, us.marker) if us is not None and None not in (
        us.center_mm, us.direction, us.marker) else None
    port = free_port()
    w.tracking_panel.port_spin.setValue(port)
    details: list[tuple[float, str]] = []  # (render began, level of detail)
    render_ms: list[float] = []
    w.view3d.rendered.connect(lambda ms: (details.append((w.view3d.render_started, scene.detail)), render_ms.append(ms)))
    apply_cpu: list[float] = []  # GUI thread CPU per tracker frame: the procedure, its signals, the recorder
    apply = w._apply_tracked

    def timed_apply(needle, probe, t):
        c0 = time.thread_time()
        try:
            return apply(needle, probe, t)
        finally:
            apply_cpu.append((time.thread_time() - c0) * 1e3)

    w._apply_tracked = timed_apply
    render_cpu: list[float] = []  # GUI thread CPU inside VTK's render (the rest of a frame is llvmpipe's threads)
    scene_render = scene.render

    def timed_render():
        c0 = time.thread_time()
        try:
            scene_render()
        finally:
            render_cpu.append((time.thread_time() - c0) * 1e3)

    scene.render = timed_render
    applied: list[float] = []  # arrival -> the attempt updated in the trainer (our code and its queue)
    applied_at: list[float] = []  # when each batch was applied

    def on_applied(arr):
        now = time.perf_counter()
        applied.extend((now - a) * 1e3 for a in arr)
        applied_at.append(now)

    w.tracking.frames_applied.subscribe(on_applied)
    rates = (60.0, 120.0) if quick else (60.0, 120.0, 240.0)
    seconds = {60.0: 4.0 if quick else 8.0, 120.0: 3.0 if quick else 5.0, 240.0: 4.0}
    dropped = reordered = 0
    max_rate = 0.0
    max_rate_no_backlog = 0.0  # the same without the latency bound (all poses in, in order, none left behind)
    for rate in rates:
        path, seqs = pass_file(data, plan.entry_mm, plan.target_mm, rate, seconds[rate], probe, seed=int(rate))
        if not w.tracked_mode:
            w.set_tracked_mode(True)
        else:
            w.new_attempt()
        proc = w.controller.procedure
        if w.modality in ("fluoroscopy", "both"):  # its engine is set up on a worker thread for each attempt
            wait_until(lambda: w.fluoro_view.ready, 180, "the fluoroscopy engine")
        if w.modality in ("ultrasound", "both"):
            n_us = w.us_view.frames_shown
            wait_until(lambda: w.us_view.frames_shown > n_us, 180, "an ultrasound frame")
        process(500)
        w.poses_to_views.clear()
        details.clear()
        render_ms.clear()
        render_cpu.clear()
        applied.clear()
        applied_at.clear()
        gui0, proc0 = time.thread_time(), time.process_time()
        transport: list[float] = []
        t_start = time.perf_counter()
        cmd = [sys.executable, "-m", "simulator", "tracker", "replay", str(path), "--port", str(port), "--wait",
               "--clock", "now", "--speed", "1"]
        tracker = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            n = len(seqs["NeedleTipToReference"][0])
            _run_until(lambda: tracker.poll() is not None, seconds[rate] + 60)  # the app's own event loop
            t_end = time.perf_counter()
            gui_cpu, proc_cpu = time.thread_time() - gui0, time.process_time() - proc0
            n_render_cpu = sum(render_cpu) / 1e3
            try:
                wait_until(lambda: w.tracking.counts["needle_poses"] >= n, 0.5, "the last poses")
                behind = False
            except TimeoutError:
                behind = True
            process(300)
        finally:
            if tracker.poll() is None:
                tracker.kill()
        for d in w.tracking.client.status().devices if w.tracking.client else []:
            if d["name"] == "NeedleTipToReference" and np.isfinite(d["clock_offset_s"]):
                transport.append(d["clock_offset_s"] * 1e3)
        drop, reord = dropped_reordered(seqs["NeedleTipToReference"][1], proc.recording.samples.needle_tip_to_world)
        got = proc.recording.samples.needle_tip_to_world
        lat = [(done - a) * 1e3 for a, done in w.poses_to_views if t_start <= a <= t_end + 1]
        lat_p95 = p95(lat)
        ok = drop == 0 and reord == 0 and not behind and lat_p95 < 100.0
        key = f"{int(rate)}hz"
        out[f"poses_to_views_ms_median_{key}"] = round(median(lat), 2)
        out[f"poses_to_views_ms_p95_{key}"] = round(lat_p95, 2)
        out[f"poses_applied_{key}"] = f"{len(got)}/{n}"
        during = [d for t0, d in details if applied_at and applied_at[0] <= t0 <= applied_at[-1]]  # while poses came
        out[f"moving_frames_{key}"] = f"{sum(d == 'moving' for d in during)}/{len(during)}"
        out[f"renders_per_s_{key}"] = round(len(details) / max(1e-9, t_end - t_start), 1)
        out[f"vtk_render_ms_median_{key}"] = round(median(render_ms), 2)
        span = max(1e-9, t_end - t_start)
        out[f"poses_to_procedure_ms_median_{key}"] = round(median(applied), 2)
        out[f"poses_to_procedure_ms_p95_{key}"] = round(p95(applied), 2)
        out[f"gui_cpu_ms_per_s_{key}"] = round(1e3 * gui_cpu / span, 1)
        out[f"gui_cpu_vtk_render_ms_per_s_{key}"] = round(1e3 * n_render_cpu / span, 1)
        out[f"gui_cpu_ours_ms_per_s_{key}"] = round(1e3 * (gui_cpu - n_render_cpu) / span, 1)
        out[f"process_cpu_ms_per_s_{key}"] = round(1e3 * proc_cpu / span, 1)
        out[f"transport_ms_best_{key}"] = round(transport[0], 2) if transport else None
        dropped += drop
        reordered += reord
        if ok:
            max_rate = max(max_rate, rate)
        out[f"backlog_at_end_{key}"] = bool(behind)
        if drop == 0 and reord == 0 and not behind:
            max_rate_no_backlog = max(max_rate_no_backlog, rate)
        if rate == 60.0:
            out["poses_to_views_ms_median"] = out[f"poses_to_views_ms_median_{key}"]
            out["poses_to_views_ms_p95"] = out[f"poses_to_views_ms_p95_{key}"]
            out["moving_frames"] = out[f"moving_frames_{key}"]
            out["vtk_render_ms_median"] = out[f"vtk_render_ms_median_{key}"]
            out["transport_ms_best"] = out[f"transport_ms_best_{key}"]
            for k in ("poses_to_procedure_ms_median", "poses_to_procedure_ms_p95", "gui_cpu_ms_per_s",
                      "gui_cpu_vtk_render_ms_per_s", "gui_cpu_ours_ms_per_s", "process_cpu_ms_per_s"):
                out[k] = out[f"{k}_{key}"]
        w.tracking.counts.clear()
    out["frame_apply_cpu_ms_mean"] = round(float(np.mean(apply_cpu)), 3) if apply_cpu else None
    out["frame_apply_cpu_ms_p95"] = round(p95(apply_cpu), 3)
    out["poses_dropped"] = dropped
    out["poses_reordered"] = reordered
    out["max_rate_hz"] = max_rate
    out["max_rate_no_backlog_hz"] = max_rate_no_backlog
    w.question_answer = lambda key, text: "discard"
    w.close()
    process(100)
    return out


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    bench_child.child_main(lambda data: _gui(quick, data))
