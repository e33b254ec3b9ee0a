"""Live progress of each workstation, for the instructor's dashboard.

The trainer takes a `procedure_snapshot` of the attempt in progress on its GUI thread (a few
numbers: trainee, scenario, the current step, the distance from the tip to the nearest target,
the newest events) and hands it to `LiveFeed.publish`, which returns at once; the feed's thread
writes the newest snapshot to the server's `live_progress` table every `interval_s` (0.5 s).
When the server cannot be reached the feed waits and tries again; the session never waits on it.

`read_live(store)` is what the dashboard reads: one row per workstation (its latest trainee),
with the age of its last update by the server's clock.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from simulator.records.centre.background import Background
from simulator.records.store.model import RecordsError, now_iso

STEP_LABELS = {"local_anaesthetic": "local anaesthetic", "insertion": "needle insertion", "target": "reaching the target",
               "aspiration": "aspiration before injection", "contrast": "contrast injection",
               "test_dose": "test dose", "neurolytic": "neurolytic injection", "end": "end of the attempt"}
MAX_EVENTS = 8
NOTABLE = {"bone_contact", "vessel_puncture", "pleural_breach", "dural_puncture", "organ_puncture", "nerve_contact",
           "critical_contact", "target_reached", "target_left", "aspiration", "injection", "local_anaesthetic",
           "skin_puncture", "end"}


def procedure_snapshot(procedure, *, attempt_uuid: str = "", trainee: str = "", state: str = "live") -> dict:
    """What the dashboard shows of an attempt in progress (call it on the thread that owns the
    procedure)."""
    from simulator.core.events import HARMFUL

    rec = procedure.recording
    live = procedure.live_metrics()
    dists = [float(d) for d in (live.get("target_distances_mm") or {}).values()]
    t_now = float(rec.samples.time_s[-1]) if len(rec.samples) else 0.0
    t0 = float(rec.samples.time_s[0]) if len(rec.samples) else 0.0
    events = [{"t": round(float(e.time_s) - t0, 2), "kind": e.kind.value, "message": e.message,
               "harmful": e.kind in HARMFUL} for e in rec.events if e.kind.value in NOTABLE][-MAX_EVENTS:]
    scenario = procedure.scenario
    return {"trainee": trainee or rec.trainee, "attempt_uuid": attempt_uuid, "scenario_id": str(scenario.id),
            "scenario_title": str(getattr(scenario, "title", scenario.id)),
            "state": "ended" if procedure.ended else state, "step": procedure.current_step(),
            "distance_mm": min(dists) if dists else None, "elapsed_s": max(0.0, t_now - t0), "events": events}


UPSERT = ("INSERT INTO live_progress (workstation, trainee, attempt_uuid, scenario_id, scenario_title, state, step, "
          "distance_mm, elapsed_s, events_json, updated_at, updated_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
          "ON CONFLICT (workstation, trainee) DO UPDATE SET attempt_uuid = excluded.attempt_uuid, "
          "scenario_id = excluded.scenario_id, scenario_title = excluded.scenario_title, state = excluded.state, "
          "step = excluded.step, distance_mm = excluded.distance_mm, elapsed_s = excluded.elapsed_s, "
          "events_json = excluded.events_json, updated_at = excluded.updated_at, updated_s = excluded.updated_s")


def write_progress(store, workstation: str, snap: dict, at_s: float | None = None) -> None:
    with store._tx() as tx:
        tx.run(UPSERT, (workstation, snap["trainee"], snap.get("attempt_uuid", ""), snap.get("scenario_id", ""),
                        snap.get("scenario_title", ""), snap.get("state", "live"), snap.get("step", ""),
                        snap.get("distance_mm"), snap.get("elapsed_s"), json.dumps(snap.get("events", [])),
                        now_iso(), time.time() if at_s is None else at_s))


@dataclass
class LiveRow:
    workstation: str
    trainee: str
    attempt_uuid: str
    scenario_id: str
    scenario_title: str
    state: str
    step: str
    distance_mm: float | None
    elapsed_s: float | None
    events: list[dict] = field(default_factory=list)
    age_s: float = 0.0

    @property
    def harmful(self) -> list[dict]:
        return [e for e in self.events if e.get("harmful")]

    def to_json(self) -> dict:
        return asdict(self)


def read_live(store, now_s: float | None = None, max_age_s: float = 3600.0) -> list[LiveRow]:
    """The newest row of each workstation (what the connected role may see), by workstation."""
    now_s = time.time() if now_s is None else now_s
    with store._tx() as tx:
        rows = tx.all("SELECT workstation, trainee, attempt_uuid, scenario_id, scenario_title, state, step, "
                      "distance_mm, elapsed_s, events_json, updated_s FROM live_progress WHERE updated_s >= ? "
                      "ORDER BY workstation, updated_s DESC", (now_s - max_age_s,))
    out: dict[str, LiveRow] = {}
    for r in rows:
        if r[0] in out:
            continue
        try:
            events = json.loads(r[9] or "[]")
        except ValueError:
            events = []
        out[r[0]] = LiveRow(str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]), str(r[6]),
                            None if r[7] is None else float(r[7]), None if r[8] is None else float(r[8]), events,
                            max(0.0, now_s - float(r[10] or 0.0)))
    return list(out.values())


class LiveFeed(Background):
    """Sends the newest snapshot of this workstation to the server (see the module notes)."""

    def __init__(self, open_server: Callable[[], object], workstation: str, *, interval_s: float = 0.5,
                 retry_s: float = 5.0):
        self.open_server = open_server
        self.workstation = workstation
        self.interval_s = float(interval_s)
        self.retry_s = float(retry_s)
        self.state = "idle"
        self.last_error = ""
        self.sent = 0
        self._latest: dict | None = None
        self._lock = threading.Lock()
        self._init_background()
        self._retry_at = 0.0

    def publish(self, snapshot: dict) -> None:
        with self._lock:
            self._latest = dict(snapshot)
        if snapshot.get("state") != "live" or any(e.get("harmful") for e in snapshot.get("events", [])[-1:]):
            self._wake.set()  # the end of an attempt and a harmful contact go out at once

    thread_name = "LiveFeed"

    def send_pending(self) -> bool:
        """Write the newest snapshot now (the thread's step; tests call it directly)."""
        with self._lock:
            snap, self._latest = self._latest, None
        if snap is None:
            return False
        if time.monotonic() < self._retry_at:
            with self._lock:
                self._latest = self._latest or snap
            return False
        try:
            if self.server is None:
                self.server = self.open_server()
            write_progress(self.server, self.workstation, snap)
            self.state, self.last_error = "online", ""
            self.sent += 1
            return True
        except RecordsError as e:
            self.state, self.last_error = "offline", str(e)
            self._retry_at = time.monotonic() + self.retry_s
            self._disconnect()
            with self._lock:
                self._latest = self._latest or snap
            return False

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.wait(self.interval_s)
                self._wake.clear()
                self.send_pending()
        finally:
            self._disconnect()
