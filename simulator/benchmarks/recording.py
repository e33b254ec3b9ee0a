"""Benchmark of the live recorder and the record store.

`python main.py bench recording --json` records a 30-minute attempt at 60 samples per second
(108,000 samples; `--quick`: 2 minutes) through `LiveRecorder` into a fresh SQLite record store,
feeding it as fast as the caller can (the recorder flushes from its thread meanwhile), and prints:

- samples_dropped: samples fed minus samples the store gives back (must be 0); samples_identical:
  the loaded samples, inputs and events equal what was fed, bit for bit;
- append_us_median / append_us_p99: the caller's time for one frame (an input and its sample,
  an event every 2 s) with the recorder flushing in the background; baseline_append_us_median:
  the same frames into a recording without a recorder (the difference is what recording costs
  the views);
- flush_ms_median_60hz: one flush of half a second of attempt (30 samples and their inputs) at the
  simulation rate (on the recorder's thread), and recorder_samples_per_s, how many samples per
  second the recorder writes (realtime_margin = that / 60); finish_ms_60hz: closing a one-minute
  attempt recorded at that pace (finish_s is the same after the fast feed, where the last flush
  holds most of the attempt);
- file_mb_30min: the database file (after the attempt is finished and compacted); load_s: loading
  the attempt back (a new connection); load_without_inputs_s: the same without the input log (what
  a replay viewer needs);
- baseline: the same recording as one JSON file (json_file_mb, json_write_s, json_load_s) and as
  our `.nlrec.npz` (npz_file_mb, npz_write_s, npz_load_s), measured in the same run.

The attempt is synthetic but shaped like a real one: the needle moves in bursts (advances between
rests), the probe is moved now and then (a matrix input per frame while it moves), the C-arm is
repositioned a few times, fluoroscopy shots and structure events come every couple of seconds.
"""
from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from simulator.core.events import Event, EventKind
from simulator.core.recording import Recording

RATE_HZ = 60


def synthetic_attempt(duration_s: float, seed: int = 7) -> dict:
    """Frames of a synthetic attempt: times, poses, inputs (name, args) and events per frame."""
    from simulator.core.geometry import frame_from_axis

    rng = np.random.default_rng(seed)
    n = int(round(duration_s * RATE_HZ))
    t = np.arange(n) / RATE_HZ + 1.0
    needle = np.zeros((n, 4, 4))
    probe = np.full((n, 4, 4), np.nan)
    carm = np.zeros((n, 5))
    vis = np.full(n, -1, np.int8)
    inputs: list[tuple[str, dict]] = []
    events: dict[int, tuple] = {}
    tip = np.array([-56.0, -75.0, 0.0])
    axis = np.array([0.35, 0.93, 0.0])
    axis /= np.linalg.norm(axis)
    rot = frame_from_axis(axis)
    probe_pose = np.eye(4)
    probe_pose[:3, 3] = [-40.0, -72.0, 10.0]
    carm_pose = np.array([20.0, 0.0, -10.0, -20.0, 0.0])
    needle_moving = probe_moving = False
    for i in range(n):
        if i % 90 == 0:
            needle_moving = rng.random() < 0.35
            probe_moving = rng.random() < 0.2
            if rng.random() < 0.05:
                axis = axis + rng.normal(0, 0.05, 3)
                axis /= np.linalg.norm(axis)
                rot = frame_from_axis(axis)
        if i % 5400 == 2700:
            carm_pose = carm_pose + np.array([rng.normal(0, 5), rng.normal(0, 3), 0, 0, 0])
            inputs.append(("set_carm_pose", {"lao_deg": float(carm_pose[0]), "cranial_deg": float(carm_pose[1]),
                                             "isocenter_mm": carm_pose[2:].tolist()}))
        elif needle_moving:
            step = float(rng.choice([0.25, 0.5, -0.25]))
            tip = tip + step * axis
            inputs.append(("advance", {"mm": step}))
        elif probe_moving:
            probe_pose = probe_pose.copy()
            probe_pose[:3, 3] += rng.normal(0, 0.2, 3)
            inputs.append(("set_probe_to_world", {"matrix": probe_pose.tolist()}))
        else:
            inputs.append(("tick", {}))
        needle[i, :3, :3] = rot
        needle[i, :3, 3] = tip
        needle[i, 3, 3] = 1.0
        if i > n // 10:
            probe[i] = probe_pose
            vis[i] = int(needle_moving)
        carm[i] = carm_pose
        if i % 120 == 60:
            events[i] = (EventKind.fluoro_shot, "fluoroscopy image", {"dap_gycm2": 0.05, "duration_s": 0.2,
                                                                      "lao_deg": float(carm_pose[0])})
        elif i % 120 == 0 and i:
            events[i] = (EventKind.enter_structure, "tip entered the autochthon left",
                         {"structure": "autochthon_left", "tissue": "muscle", "position_mm": tip.tolist()})
    return {"t": t, "needle": needle, "probe": probe, "carm": carm, "vis": vis, "inputs": inputs, "events": events}


def _new_recording() -> Recording:
    return Recording(scenario_id="bench_recording", scenario_version="bench", anatomy_ref="phantom:test_block",
                     anatomy_hash="bench", trainee="bench", mode="practice", started_at="2026-01-01T00:00:00+00:00",
                     meta={"benchmark": "recording"})


def _feed(rec: Recording, a: dict, times_ns: np.ndarray | None) -> None:
    t, needle, probe, carm, vis = a["t"], a["needle"], a["probe"], a["carm"], a["vis"]
    inputs, events = a["inputs"], a["events"]
    clock = time.perf_counter_ns
    for i in range(len(t)):
        t0 = clock()
        name, args = inputs[i]
        rec.add_input(t[i], name, args)
        rec.add_sample(t[i], needle[i], probe[i], carm[i], vis[i] if vis[i] >= 0 else None)
        ev = events.get(i)
        if ev is not None:
            rec.add_event(Event(t[i], ev[0], ev[1], ev[2]))
        if times_ns is not None:
            times_ns[i] = clock() - t0


def run(args) -> dict:
    from simulator.records.live import LiveRecorder
    from simulator.records.store import SQLiteRecordStore

    quick = bool(getattr(args, "quick", False))
    duration_s = 120.0 if quick else 1800.0
    a = synthetic_attempt(duration_s)
    n = len(a["t"])
    out: dict = {"duration_s": duration_s, "rate_hz": RATE_HZ, "samples": n, "events": len(a["events"]),
                 "inputs": len(a["inputs"])}
    with tempfile.TemporaryDirectory(prefix="bench-recording-") as tmp:
        tmp = Path(tmp)
        # baseline: the caller's cost without a recorder
        base_ns = np.zeros(n, np.int64)
        _feed(_new_recording(), a, base_ns)

        # the live recorder, flushing from its thread while the caller feeds as fast as it can
        db = tmp / "records.sqlite"
        store = SQLiteRecordStore(db)
        rec = _new_recording()
        recorder = LiveRecorder(store, rec, interval_s=0.5)
        recorder.start()
        times_ns = np.zeros(n, np.int64)
        w0 = time.perf_counter()
        _feed(rec, a, times_ns)
        feed_s = time.perf_counter() - w0
        f0 = time.perf_counter()
        info = recorder.finish()
        finish_s = time.perf_counter() - f0
        stats = recorder.stats()
        store.checkpoint()
        file_bytes = store.size_bytes()
        store.close()

        store2 = SQLiteRecordStore(db)
        l0 = time.perf_counter()
        back = store2.load_attempt(info.id)
        load_s = time.perf_counter() - l0
        l0 = time.perf_counter()
        store2.load_attempt(info.id, inputs=False)
        load_samples_s = time.perf_counter() - l0
        store2.close()
        out.update({
            "samples_dropped": int(n - back.n_samples),
            "samples_identical": bool(back.same_as(rec)),
            "append_us_median": float(np.median(times_ns) / 1e3),
            "append_us_p99": float(np.percentile(times_ns, 99) / 1e3),
            "baseline_append_us_median": float(np.median(base_ns) / 1e3),
            "feed_s": feed_s,
            "flushes_during_feed": stats["flushes"],
            "finish_s": finish_s,
            "file_mb_30min": file_bytes / 1e6 * (1800.0 / duration_s),
            "file_mb": file_bytes / 1e6,
            "load_s": load_s,
            "load_without_inputs_s": load_samples_s,
        })

        # flushes at the simulation rate: half a second of attempt each
        store3 = SQLiteRecordStore(tmp / "paced.sqlite")
        rec3 = _new_recording()
        r3 = LiveRecorder(store3, rec3, thread=False)
        r3.start()
        m = min(n, 60 * RATE_HZ)
        part = {k: (v[:m] if k != "events" else {i: e for i, e in v.items() if i < m}) for k, v in a.items()}
        part["inputs"] = a["inputs"][:m]
        flush_ms = []
        half = RATE_HZ // 2
        for k in range(0, m, half):
            sub = {"t": part["t"][k:k + half], "needle": part["needle"][k:k + half], "probe": part["probe"][k:k + half],
                   "carm": part["carm"][k:k + half], "vis": part["vis"][k:k + half],
                   "inputs": part["inputs"][k:k + half],
                   "events": {i - k: e for i, e in part["events"].items() if k <= i < k + half}}
            _feed(rec3, sub, None)
            f = time.perf_counter()
            r3.flush()
            flush_ms.append(1e3 * (time.perf_counter() - f))
        f = time.perf_counter()
        r3.finish()
        out["finish_ms_60hz"] = 1e3 * (time.perf_counter() - f)
        store3.close()
        med = statistics.median(flush_ms)
        out["flush_ms_median_60hz"] = med
        out["recorder_samples_per_s"] = half / (med / 1e3) if med > 0 else float("inf")
        out["realtime_margin"] = out["recorder_samples_per_s"] / RATE_HZ

        # baselines: one JSON file, and our .nlrec.npz
        j0 = time.perf_counter()
        jpath = tmp / "attempt.json"
        jpath.write_text(json.dumps(rec.to_json_dict()))
        out["json_write_s"] = time.perf_counter() - j0
        out["json_file_mb"] = jpath.stat().st_size / 1e6 * (1800.0 / duration_s)
        j0 = time.perf_counter()
        Recording.from_json_dict(json.loads(jpath.read_text()))
        out["json_load_s"] = time.perf_counter() - j0
        z0 = time.perf_counter()
        zpath = rec.save(tmp / "attempt.nlrec.npz")
        out["npz_write_s"] = time.perf_counter() - z0
        out["npz_file_mb"] = zpath.stat().st_size / 1e6 * (1800.0 / duration_s)
        z0 = time.perf_counter()
        Recording.load(zpath)
        out["npz_load_s"] = time.perf_counter() - z0
    return out
