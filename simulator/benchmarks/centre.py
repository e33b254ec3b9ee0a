"""Benchmark of a simulation centre: `python main.py bench centre --json`.

Starts a throw-away PostgreSQL server on this machine (Debian's postgresql package; fsync on, as a
centre would run it), creates the roles and a cohort, and measures:

- sync_lag_s_median / sync_lag_s_p95: 10 workstations, each a thread recording attempts at 60
  samples per second in real time through `LiveRecorder` into its own SQLite file, each with its
  background `CentreSync` connected as its trainee (row-level security on): the time from an
  attempt being closed on the workstation to its server transaction committing. Baseline in the
  same run: `baseline_push_s_median`, the server transaction of one such attempt's push alone
  (one process, nothing else running: the least a lag can be), and the sync's polling interval.
- attempts_lost / attempts_duplicated: after that run and after `schedules_tested` random
  schedules of outages and kills (of workstations mid-attempt and of the sync at every step,
  mid-transfer included; the model of `records.centre.schedules`), closed attempts missing on the
  server (or there with other content) and UUIDs there twice. Both must be 0.
- history_open_s / overview_open_s: 10,000 stored attempts (10 trainees, 5 scenarios, score cards
  like real ones): a trainee opening their history (connect as the trainee, their attempts and
  learning curves) and an instructor opening the overview of their cohort (all 10 trainees),
  median of repeated opens (p95 beside). Baseline: the same on one SQLite file.
- server_version: the PostgreSQL server measured against.

`--quick` (tests): fewer and shorter attempts, fewer schedules, 2,000 stored attempts.
"""
from __future__ import annotations

import json
import os
import random
import statistics
import tempfile
import threading
import time
import uuid as uuidlib
from pathlib import Path

import numpy as np

TRAINEES = [f"t{k:02d}" for k in range(1, 11)]
SCENARIOS = ["celiac_plexus_posterior", "splanchnic_t11", "lumbar_sympathetic_l3", "stellate_ganglion",
             "superior_hypogastric"]


def _pct(values, q) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _setup_server(cluster, db: str):
    from simulator.records.centre import admin
    from simulator.records.store.postgres import PostgresRecordStore

    cluster.create_database(db)
    su = PostgresRecordStore(cluster.conninfo(db))
    admin.add_cohort(su, "bench", "Benchmark cohort")
    for t in TRAINEES:
        admin.add_user(su, t, "trainee")
        admin.add_member(su, "bench", t)
    admin.add_user(su, "instructor_bench", "instructor")
    admin.add_instructor(su, "bench", "instructor_bench")
    return su


def _record_attempt(store, trainee: str, duration_s: float, seed: int, realtime: bool):
    """One attempt at 60 Hz through the live recorder (real time when `realtime`); its uuid and
    the moment it was closed."""
    from simulator.records.centre.schedules import synthetic_recording
    from simulator.records.live import LiveRecorder

    full = synthetic_recording(trainee, int(duration_s * 60), seed)
    from simulator.core.recording import Recording

    rec = Recording(scenario_id=full.scenario_id, scenario_version=full.scenario_version,
                    anatomy_ref=full.anatomy_ref, anatomy_hash=full.anatomy_hash, trainee=trainee,
                    mode="practice", started_at=full.started_at)
    recorder = LiveRecorder(store, rec, interval_s=0.5)
    recorder.start(uuid=str(uuidlib.uuid4()))
    s = full.samples.arrays()
    events = {round(e.time_s, 6): e for e in full.events}
    t0 = time.monotonic()
    for i in range(len(s["time_s"])):
        if realtime:
            delay = t0 + i / 60.0 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        t = float(s["time_s"][i])
        rec.add_input(t, "tick", {})
        rec.add_sample(t, s["needle_tip_to_world"][i])
        e = events.get(round(t, 6))
        if e is not None:
            rec.add_event(e)
    info = recorder.finish({"score": float(50 + seed % 50), "passed": seed % 3 != 0, "pass_mark": 70.0,
                            "metrics": {"elapsed_time_s": duration_s}})
    return info.uuid, time.time()


def _lag_run(cluster, db: str, folder: Path, attempts_each: int, duration_s: float) -> dict:
    from simulator.records.centre.sync import CentreSync
    from simulator.records.store import SQLiteRecordStore
    from simulator.records.store.postgres import PostgresRecordStore

    closed: dict[str, float] = {}
    committed: dict[str, float] = {}
    lock = threading.Lock()
    stores, syncs = [], []
    for t in TRAINEES:
        local = SQLiteRecordStore(folder / f"ws_{t}.sqlite")
        sync = CentreSync(local, (lambda t=t: PostgresRecordStore(cluster.conninfo(db, user=t), migrate=False)),
                          workstation=f"ws-{t}", interval_s=1.0)

        def on_round(report, lock=lock):
            with lock:
                committed.update(report.committed_at)

        sync.on_round = on_round
        stores.append(local)
        syncs.append(sync.start())
    errors: list[str] = []

    def workstation(k: int) -> None:
        try:
            for j in range(attempts_each):
                uuid, t_closed = _record_attempt(stores[k], TRAINEES[k], duration_s, seed=100 * k + j, realtime=True)
                with lock:
                    closed[uuid] = t_closed
                syncs[k].wake()  # the trainer wakes its sync when an attempt is closed
        except Exception as e:  # noqa: BLE001 - reported in the result
            errors.append(f"{TRAINEES[k]}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=workstation, args=(k,)) for k in range(len(TRAINEES))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not set(closed) <= set(committed):
        time.sleep(0.05)
    for s in syncs:
        s.stop()
    lags = [committed[u] - closed[u] for u in closed if u in committed]
    # every closed attempt on the server once, with its content
    from simulator.records.store.checksum import attempt_checksum

    su = PostgresRecordStore(cluster.conninfo(db))
    lost = duplicated = 0
    with su._tx() as tx:
        rows = tx.all("SELECT id, uuid FROM attempts")
        uuids = [r[1] for r in rows]
        duplicated = len(uuids) - len(set(uuids))
        server_sums = {r[1]: attempt_checksum(su._raw(tx, int(r[0]))) for r in rows}
    for local in stores:
        with local._tx() as tx:
            for u, c in tx.all("SELECT uuid, checksum FROM attempts WHERE status <> 'live'"):
                lost += server_sums.get(u) != c
        local.close()
    su.close()
    return {"lags": lags, "lost": int(lost), "duplicated": int(duplicated), "errors": errors,
            "attempts": len(closed), "uuids": list(closed)}


def _direct_pushes(cluster, db: str, folder: Path, n: int, duration_s: float) -> list[float]:
    """Baseline: the same attempts sent straight to the server by one process with nothing else
    running (the server transaction of a push alone: the least a sync lag can be)."""
    from simulator.records.centre.schedules import synthetic_recording
    from simulator.records.centre.sync import receive_attempt
    from simulator.records.store import SQLiteRecordStore
    from simulator.records.store.checksum import attempt_checksum
    from simulator.records.store.postgres import PostgresRecordStore

    local = SQLiteRecordStore(folder / "direct.sqlite")
    st = PostgresRecordStore(cluster.conninfo(db, user=TRAINEES[0]), migrate=False)
    out = []
    for k in range(n):
        aid = local.save_recording(synthetic_recording(TRAINEES[0], int(duration_s * 60), 9000 + k),
                                   {"score": 80.0, "passed": True, "pass_mark": 70.0, "metrics": {}})
        raw = local.raw_attempt(aid)
        t0 = time.perf_counter()
        receive_attempt(st, raw, attempt_checksum(raw))
        out.append(time.perf_counter() - t0)
    st.close()
    local.close()
    return out


def _card(rng: random.Random, k: int) -> dict:
    metrics = {"elapsed_time_s": rng.uniform(120, 1500), "tissue_damage_mm2": rng.uniform(0, 40),
               "fluoro_shots": rng.randint(3, 40), "advances_without_imaging": rng.randint(0, 6),
               "final_distance_mm": rng.uniform(0, 15), "path_in_tissue_mm": rng.uniform(60, 140)}
    score = min(100.0, max(0.0, 40 + k * 0.05 + rng.gauss(0, 12)))
    items = [{"metric": m, "value": v, "points": rng.uniform(0, 10), "reason": f"{m} was {v:.1f}"}
             for m, v in metrics.items()]
    return {"score": score, "passed": score >= 70, "pass_mark": 70.0, "metrics": metrics, "items": items,
            "critical_fail": False, "reasons": ["reached the target", "aspirated before injecting"]}


def _fill(store, n: int, seed: int = 3) -> None:
    """n finished attempts (10 trainees x 5 scenarios) with score cards, written in bulk."""
    rng = random.Random(seed)
    with store._tx() as tx:
        for t in TRAINEES:
            store._ensure_trainee(tx, t, t.upper(), "2026-01-01T00:00:00+00:00", login=t)
        for sid in SCENARIOS:
            store._ensure_scenario(tx, None, sid, "v1", sid.replace("_", " "), None)
        rows = []
        for k in range(n):
            t = TRAINEES[k % len(TRAINEES)]
            card = _card(rng, k)
            day, sec = divmod(k, 86400 // 60)
            started = f"2026-{1 + day // 28 % 12:02d}-{1 + day % 28:02d}T{sec // 60 % 24:02d}:{sec % 60:02d}:00+00:00"
            rows.append((str(uuidlib.UUID(int=rng.getrandbits(128), version=4)), t, SCENARIOS[k % len(SCENARIOS)],
                         "v1", "finished", started, started, 0.0, card["metrics"]["elapsed_time_s"], 36000,
                         40, 36000, card["score"], int(card["passed"]), 70.0, json.dumps(card), "{}", "sha256:x",
                         started))
        tx.many("INSERT INTO attempts (uuid, trainee, scenario_id, scenario_version, status, started_at, ended_at, "
                "first_time_s, last_time_s, n_samples, n_events, n_inputs, score, passed, pass_mark, "
                "score_card_json, meta_json, checksum, synced_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def _open_times(open_store, trainee: str, repeats: int) -> tuple[list[float], list[float], int, int]:
    from simulator.records.progress import instructor_overview, learning_curves

    hist, over = [], []
    n_hist = n_over = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        st = open_store(trainee)
        attempts = st.list_attempts(trainee=trainee)
        learning_curves(st, trainee)
        hist.append(time.perf_counter() - t0)
        st.close()
        n_hist = len(attempts)
        t0 = time.perf_counter()
        st = open_store(None)
        rows = instructor_overview(st)
        over.append(time.perf_counter() - t0)
        st.close()
        n_over = sum(o.attempts + o.unscored for o in rows)
    return hist, over, n_hist, n_over


def run(args) -> dict:
    from simulator.records.centre.cluster import LocalCluster
    from simulator.records.centre.schedules import ReusedServer, random_schedule, run_schedule
    from simulator.records.store import SQLiteRecordStore
    from simulator.records.store.postgres import PostgresRecordStore

    quick = bool(getattr(args, "quick", False))
    attempts_each, duration_s = (1, 2.0) if quick else (3, 8.0)
    n_schedules = 20 if quick else 200
    n_stored = 2000 if quick else 10000
    repeats = 3 if quick else 7
    out: dict = {"load_average_start": list(os.getloadavg())}
    t_all = time.perf_counter()
    with LocalCluster(durable=True) as cluster, tempfile.TemporaryDirectory(prefix="bench-centre-") as tmp:
        folder = Path(tmp)
        out["server_version"] = cluster.version()
        su = _setup_server(cluster, "centre")
        su.close()
        lag = _lag_run(cluster, "centre", folder, attempts_each, duration_s)
        direct = _direct_pushes(cluster, "centre", folder, 10, duration_s)

        cluster.create_database("chaos")
        PostgresRecordStore(cluster.conninfo("chaos")).close()
        shared = ReusedServer(cluster.conninfo("chaos"))
        rng = random.Random(20260105)
        lost = lag["lost"]
        duplicated = lag["duplicated"]
        t0 = time.perf_counter()
        for k in range(n_schedules):
            lo, du = run_schedule(shared, random_schedule(rng), f"b{k:05d}")
            lost += lo
            duplicated += du
        schedules_s = time.perf_counter() - t0
        shared.shutdown()

        su = _setup_server(cluster, "stored")
        _fill(su, n_stored)
        su.close()
        sqlite = SQLiteRecordStore(folder / "stored.sqlite")
        _fill(sqlite, n_stored)
        sqlite.close()

        def open_pg(trainee):
            return PostgresRecordStore(cluster.conninfo("stored", user=trainee or "instructor_bench"), migrate=False)

        def open_sqlite(trainee):
            return SQLiteRecordStore(folder / "stored.sqlite")

        hist, over, n_hist, n_over = _open_times(open_pg, TRAINEES[3], repeats)
        bhist, bover, _, _ = _open_times(open_sqlite, TRAINEES[3], repeats)

    out.update({
        "sync_lag_s_median": statistics.median(lag["lags"]) if lag["lags"] else float("nan"),
        "sync_lag_s_p95": _pct(lag["lags"], 95),
        "attempts_lost": int(lost),
        "attempts_duplicated": int(duplicated),
        "schedules_tested": n_schedules,
        "history_open_s": statistics.median(hist),
        "overview_open_s": statistics.median(over),
        "history_open_s_p95": _pct(hist, 95),
        "overview_open_s_p95": _pct(over, 95),
        "baseline_push_s_median": statistics.median(direct),
        "baseline_sync_interval_s": 1.0,
        "baseline_history_open_s_sqlite": statistics.median(bhist),
        "baseline_overview_open_s_sqlite": statistics.median(bover),
        "workstations": len(TRAINEES),
        "attempts_synced": lag["attempts"],
        "attempt_duration_s": duration_s,
        "rate_hz": 60,
        "stored_attempts": n_stored,
        "history_attempts": n_hist,
        "overview_attempts": n_over,
        "schedules_s": schedules_s,
        "errors": lag["errors"],
        "bench_s": time.perf_counter() - t_all,
        "load_average_end": list(os.getloadavg()),
    })
    return out
