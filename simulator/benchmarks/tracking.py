"""Tracking benchmark, its headless part (`python main.py bench tracking --json` runs it with the
trainer's part, `simulator.ui.bench_tracking`).

Everything on loopback (127.0.0.1), no hardware: a simulated tracker streams a hand-held needle
pass (`tracking.hand_motion`) as PLUS streams a live one.

In the trainer (a child process on the display, or under Xvfb; the tracker is another process, as
PLUS is), a tracked attempt on the celiac scenario of the bundled patient (the gel phantom when the
patient is not built), the tracker at 60 Hz, then 120 and 240 Hz:
- poses_to_views_ms_median / _p95: a pose read from the socket (the client's thread) -> the 3D
  render that shows it (or a newer pose) finished, with the procedure, the procedure panel and the
  fluoroscopy view updated before it (all synchronous on the GUI thread); at 60 Hz;
- poses_dropped / poses_reordered: poses sent and not in the attempt's recording / recorded out of
  the order they were sent (over every rate run);
- max_rate_hz: the highest rate at which every pose reached the recording, in order, with the GUI
  keeping up (no backlog: every pose applied within 0.5 s of the tracker's end, p95 latency below
  100 ms); beside it max_rate_no_backlog_hz, the same without the latency bound, and per rate
  backlog_at_end (poses still waiting 0.5 s after the tracker's end); moving_frames: renders
  during the 60 Hz stream drawn at the moving level of detail (decimated meshes, reduced image)
  out of the renders begun between its first and last pose applied; renders_per_s and
  vtk_render_ms_median;
  transport_ms_best: the quickest pose from the tracker's timestamp to our read (one clock);
  the 3D render apart from our own code: poses_to_procedure_ms_median / _p95 (arrival -> the attempt
  updated in the trainer: our code and the wait for the GUI thread, no render), vtk_render_ms_median
  (one render's wall time), gui_cpu_ms_per_s (the GUI thread's CPU per second of stream) split into
  gui_cpu_vtk_render_ms_per_s (inside VTK's render) and gui_cpu_ours_ms_per_s (everything else: the
  procedure, panels, plots, Qt), process_cpu_ms_per_s (all threads, Mesa's rasterisers too);
Headless, in this process:
- image_stream_fps: 512x512 B-mode frames of the ultrasound simulator (gel phantom) streamed by our
  server to our client (complete, CRC-checked frames received per second, frames offered as fast as
  the server takes them), image_stream_fps_at_60 offered at 60 per second, encode_ms_median;
  baseline raw_socket_fps: the same bytes over a bare TCP socket in the same run;
- metrics_equal: a recorded .igs.mha replayed by the simulated tracker into a tracked attempt gives
  Perk Tutor's core metrics equal, to the last digit, to the same file imported directly;
- baseline: baseline_poses_to_procedure_ms_median / _p95: the same 60 Hz stream into a bare
  Procedure (no window), arrival -> procedure updated.
loadavg_start / loadavg_end: the 1-minute load average around the run (2 shared cores).
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time

import numpy as np

from simulator.benchmarks.stats import median, p95


def headless(quick: bool) -> dict:
    """The figures measured without a window (see the module notes)."""
    out: dict = {}
    out.update(image_stream(quick))
    out.update(headless_poses(quick))
    out.update(metrics_equal())
    return out


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ------------------------------------------------------------------------------------------------
# headless parts
# ------------------------------------------------------------------------------------------------
def us_frames(n: int = 4) -> list[np.ndarray]:
    from simulator.anatomy.phantoms import make_phantom
    from simulator.core.probe import ProbePose, ProbeSpec
    from simulator.imaging.ultrasound import NeedleGeometry, ScannerSettings, UltrasoundSimulator

    gel = make_phantom("gel_block")
    sim = UltrasoundSimulator(gel, ProbeSpec.named("linear"))
    pose = ProbePose.from_vectors((0.0, 0.0, 0.0), (0.0, -1.0, 0.0), (1.0, 0.0, 0.0))
    frames = []
    for k in range(n):
        tip = np.array([1.0 + 2 * k, -19.0 + k, 0.0])
        needle = NeedleGeometry(tip, (tip - [-38.0, 1.0, 0.0]) / np.linalg.norm(tip - [-38.0, 1.0, 0.0]), 50.0, 0.72)
        f = sim.render(pose, ScannerSettings(depth_mm=40, frequency_mhz=10, image_shape=(512, 512)), needle)
        frames.append((f.display, f.geometry.image_to_world(f.pose)))
    return frames


def image_stream(quick: bool) -> dict:
    from simulator.tracking.client import TrackingClient
    from simulator.tracking.protocol import encode_image, warm_up
    from simulator.tracking.server import TrackingServer

    warm_up(background=False)
    frames = us_frames()
    enc = []
    for img, m in frames * 3:
        t0 = time.perf_counter()
        data = encode_image("Image_Reference", img, m, 1.0)
        enc.append((time.perf_counter() - t0) * 1e3)
    out = {"image_shape": list(frames[0][0].shape), "image_message_bytes": len(data), "encode_ms_median": round(median(enc), 3)}
    seconds = 1.5 if quick else 3.0
    for key, rate in (("image_stream_fps", 0.0), ("image_stream_fps_at_60", 60.0)):
        server = TrackingServer("127.0.0.1", 0)
        server.start()
        client = TrackingClient("127.0.0.1", server.port)
        client.start()
        try:
            server.wait_for_clients(1, 10)
            got = 0
            t0 = time.perf_counter()
            k = 0
            while time.perf_counter() - t0 < seconds:
                img, m = frames[k % len(frames)]
                server.send_image("Image_Reference", img, m, time.time())
                k += 1
                got += sum(1 for r in client.take() if r.message is not None and r.message.image is not None)
                if rate:
                    time.sleep(max(0.0, t0 + k / rate - time.perf_counter()))
                else:
                    time.sleep(0.001)  # let the sender and the client run
            elapsed = time.perf_counter() - t0
            server.flush(2.0)
            time.sleep(0.05)
            got += sum(1 for r in client.take() if r.message is not None and r.message.image is not None)
            out[key] = round(got / elapsed, 1)
            if not rate:
                out["image_frames_offered_fps"] = round(k / elapsed, 1)
        finally:
            client.stop()
            server.stop()
    out["raw_socket_fps"] = round(_raw_socket_fps(data, seconds), 1)
    return out


def _raw_socket_fps(data: bytes, seconds: float) -> float:
    """The same message bytes over a bare TCP socket on loopback: frames per second (the baseline)."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    recv_n = [0]

    def reader():
        c, _ = lst.accept()
        need = len(data)
        buf = 0
        while True:
            b = c.recv(1 << 20)
            if not b:
                break
            buf += len(b)
            while buf >= need:
                buf -= need
                recv_n[0] += 1
        c.close()

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    s = socket.create_connection(("127.0.0.1", lst.getsockname()[1]))
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        s.sendall(data)
    s.close()
    th.join(5)
    lst.close()
    return recv_n[0] / (time.perf_counter() - t0)


def pass_file(folder, entry, target, rate_hz: float, seconds: float, probe_pose=None, seed: int = 0):
    from simulator.core.trackfiles import write_sequence_metafile
    from simulator.tracking.hand_motion import needle_pass

    seqs = needle_pass(entry, target, rate_hz=rate_hz, duration_s=seconds, seed=seed, probe_pose=probe_pose)
    return write_sequence_metafile(os.path.join(folder, f"pass_{int(rate_hz)}hz.igs.mha"), seqs), seqs


def _stream_all(session, tracker, poll_s: float, timeout_s: float = 30.0) -> None:
    """Connect the session to the running simulated tracker, pump until every needle pose has come
    (or `timeout_s`), then stop both."""
    session.connect("127.0.0.1", tracker.port)
    end = time.perf_counter() + timeout_s
    while time.perf_counter() < end and session.counts["needle_poses"] < tracker.n_frames:
        session.pump()
        time.sleep(poll_s)
    tracker.stop()
    session.disconnect()


def headless_poses(quick: bool) -> dict:
    """The baseline: a 60 Hz stream into a bare Procedure, arrival -> procedure updated."""
    from simulator.benchmarks.scoring import ENTRY, TARGET, synthetic_block_anatomy, synthetic_scenario
    from simulator.core.procedure import Procedure
    from simulator.tracking.session import TrackingConfig, TrackingSession
    from simulator.tracking.simtracker import SimulatedTracker

    sc, an = synthetic_scenario(), synthetic_block_anatomy()
    folder = tempfile.mkdtemp(prefix="nt-track-")
    try:
        path, _ = pass_file(folder, ENTRY, TARGET, 60.0, 3.0 if quick else 6.0)
        tracker = SimulatedTracker(path, port=0, speed=1.0, clock="now")
        tracker.start()
        session = TrackingSession(TrackingConfig())
        proc = Procedure(sc, an, clock=session.clock)
        session.attach(proc)
        lat: list[float] = []
        session.frames_applied.subscribe(lambda arr: lat.extend((time.perf_counter() - a) * 1e3 for a in arr))
        _stream_all(session, tracker, 0.001)
        return {"baseline_poses_to_procedure_ms_median": round(median(lat), 3),
                "baseline_poses_to_procedure_ms_p95": round(p95(lat), 3),
                "baseline_poses_applied": f"{session.counts['needle_poses']}/{tracker.n_frames}"}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def metrics_equal() -> dict:
    """A recorded file through the simulated tracker into a tracked attempt: Perk Tutor's core
    metrics equal, to the last digit, to the file imported directly."""
    from simulator.benchmarks.scoring import ENTRY, TARGET, synthetic_block_anatomy, synthetic_scenario
    from simulator.core.procedure import Procedure
    from simulator.core.scoring import score_attempt
    from simulator.records.exchange import procedure_from_tracked
    from simulator.tracking.session import TrackingConfig, TrackingSession
    from simulator.tracking.simtracker import SimulatedTracker

    sc, an = synthetic_scenario(), synthetic_block_anatomy()
    folder = tempfile.mkdtemp(prefix="nt-track-")
    try:
        path, _ = pass_file(folder, np.array(ENTRY) + [0, -5, 0], TARGET, 60.0, 4.0, seed=5)
        tracker = SimulatedTracker(path, port=0, speed=0.0)
        tracker.start()
        session = TrackingSession(TrackingConfig())
        proc = Procedure(sc, an, clock=session.clock)
        session.attach(proc)
        _stream_all(session, tracker, 0.002)
        proc.end()
        ref = procedure_from_tracked(path, sc, an)
        a = score_attempt(proc.recording, sc, an).perk
        b = score_attempt(ref.recording, sc, an).perk
        return {"metrics_equal": a == b, "metrics_tracked": a, "metrics_file": b}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def dropped_reordered(sent: np.ndarray, recorded: np.ndarray) -> tuple[int, int]:
    """Poses sent that are not in the recording, and recorded poses that came before one sent
    earlier (each recorded pose is found among the sent ones by its exact numbers)."""
    where = {m.tobytes(): i for i, m in enumerate(np.ascontiguousarray(sent))}
    idx = [where.get(m.tobytes(), -1) for m in np.ascontiguousarray(recorded)]
    found = [i for i in idx if i >= 0]
    reordered = sum(1 for a, b in zip(found, found[1:]) if b <= a)
    return len(sent) - len(set(found)), reordered
