"""Random schedules of a centre's bad days, for the sync tests and `bench centre`: workstations
(each its own SQLite file) recording small synthetic attempts, going offline, being killed
mid-attempt or mid-sync, restarting; one server. `run_schedule` plays one and counts the attempts
lost and duplicated on the server once everything is back (both must be 0).

A kill is modelled inside this process at one of the sync's kill points: the sync raises
`Killed` there, the server connection is dropped without a rollback (the server undoes the open
transaction, as it does for a process killed by the kernel), the workstation's store is closed
and reopened, its attempts being recorded lose their recorder; a fresh `CentreSync` takes over.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid as uuidlib
from pathlib import Path

import numpy as np

from simulator.core.events import Event, EventKind
from simulator.core.recording import Recording
from simulator.records.centre.sync import CentreSync
from simulator.records.live import LiveRecorder
from simulator.records.store.checksum import attempt_checksum
from simulator.records.store import SQLiteRecordStore, mark_active
from simulator.records.store.model import RecordsError
from simulator.records.store.postgres import ServerError
from simulator.records.store.sql import SQLRecordStore

KILL_POINTS = ("connect", "attempt_read", "server_rows_written", "server_verified", "server_committed",
               "local_marked", "trainee_sent")
IN_SERVER_TX = ("server_rows_written", "server_verified")


_TEMPLATE: dict[str, Path] = {}


def _scratch_root() -> str | None:
    """tmpfs where there is one: the model's many small SQLite files need no disk flushes."""
    return "/dev/shm" if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK) else None


def new_local_file(path: Path) -> None:
    """An empty, migrated records file (a copy of one made once per process)."""
    if "file" not in _TEMPLATE:
        folder = Path(tempfile.mkdtemp(prefix="nt-sync-template-", dir=_scratch_root()))
        atexit.register(shutil.rmtree, folder, True)
        SQLiteRecordStore(folder / "template.sqlite").close()
        _TEMPLATE["file"] = folder / "template.sqlite"
    shutil.copyfile(_TEMPLATE["file"], path)


class ReusedServer:
    """A server store shared by the model's workstations while its connection lives (connecting
    costs more than a whole push); a kill drops it and the next `open()` connects again."""

    def __init__(self, conninfo: str):
        self.conninfo = conninfo
        self.store = None
        self.connects = 0

    def open(self):
        from simulator.records.store.postgres import PostgresRecordStore

        if self.store is None or self.store._closed:
            outer = self

            class _Shared(PostgresRecordStore):
                def close(self):  # the workstations' "close" leaves it open for the next one
                    pass

                def abort_connections(self):
                    super().abort_connections()
                    outer.store = None

            self.store = _Shared(self.conninfo, migrate=False)
            self.connects += 1
        return self.store

    __call__ = open

    def shutdown(self) -> None:
        if self.store is not None:
            SQLRecordStore.close(self.store)  # really close it
            self.store = None


class Killed(BaseException):
    """The process died here (a BaseException: no `except Exception` in the code catches it)."""


def synthetic_recording(trainee: str, n: int, seed: int) -> Recording:
    rng = np.random.default_rng(seed)
    rec = Recording(scenario_id="sync_model", scenario_version="v1", anatomy_ref="phantom:test_block",
                    anatomy_hash="h", trainee=trainee, mode="practice",
                    started_at=f"2026-03-01T10:{seed % 60:02d}:00+00:00")
    for i in range(n):
        m = np.eye(4)
        m[:3, 3] = rng.normal(size=3)
        t = round(i / 60.0, 3)
        rec.add_input(t, "tick", {})
        rec.add_sample(t, m)
        if i % 7 == 3:
            rec.add_event(Event(t, EventKind.bone_contact, "bone", {"structure": "vertebrae_L1"}))
    return rec


class Workstation:
    def __init__(self, folder: Path, name: str, server_factory, trainee: str):
        self.path = folder / f"{name}.sqlite"
        self.name = name
        self.trainee = trainee
        self.server_factory = server_factory
        self.online = True
        self.kill_at: str | None = None
        new_local_file(self.path)
        self.store = SQLiteRecordStore(self.path)
        self.sync = self._new_sync()
        self.live: list[str] = []

    def _open_server(self):
        if not self.online:
            raise ServerError(f"{self.name}: server unreachable (the network is down)", "unreachable")
        return self.server_factory()

    def _kill_hook(self, point: str) -> None:
        if not self.online and point != "connect":
            # the network went away mid-transfer: the connection breaks, the sync goes on later
            if self.sync.server is not None:
                self.sync.server.abort_connections()
            raise ServerError(f"{self.name}: connection lost", "unreachable")
        if point == self.kill_at:
            self.kill_at = None
            if point in IN_SERVER_TX and self.sync.server is not None:
                self.sync.server.abort_connections()
            raise Killed(point)

    def _new_sync(self) -> CentreSync:
        return CentreSync(self.store, self._open_server, workstation=self.name, kill=self._kill_hook)

    def record(self, n: int, seed: int, finish: bool = True) -> str:
        rec = synthetic_recording(self.trainee, n, seed)
        recorder = LiveRecorder(self.store, rec, thread=False)
        recorder.start(uuid=str(uuidlib.uuid4()))
        recorder.flush()
        if finish:
            recorder.finish({"score": float(seed % 100), "passed": seed % 2 == 0, "pass_mark": 50.0, "metrics": {}})
        else:
            mark_active(recorder.uuid, False)  # the workstation died mid-attempt: nobody records it
            self.live.append(recorder.uuid)
        return recorder.uuid

    def sync_round(self, kill_at: str | None = None):
        self.kill_at = kill_at
        try:
            return self.sync.sync_once()
        except Killed:
            self.die()
            return None
        finally:
            self.kill_at = None

    def die(self) -> None:
        """kill -9: connections dropped, nothing cleaned up; the process starts again."""
        if self.sync.server is not None:
            self.sync.server.abort_connections()
        self.sync.server = None
        self.store.close()
        self.store = SQLiteRecordStore(self.path)
        self.sync = self._new_sync()

    def restart(self) -> int:
        """The trainer starts again: attempts its dead recorder left open are recovered."""
        n = 0
        for a in self.store.recoverable_attempts():
            self.store.recover(a.id)
            n += 1
        return n

    def close(self) -> None:
        self.sync.stop()
        self.store.close()


class Centre:
    """Workstations and a server factory for one schedule; `settle()` then `check()`."""

    def __init__(self, server_factory, n_workstations: int, tag: str):
        self.folder = Path(tempfile.mkdtemp(prefix="nt-sync-", dir=_scratch_root()))
        self.server_factory = server_factory
        self.tag = tag
        self.ws = [Workstation(self.folder, f"ws{k}", server_factory, f"{tag}_t{k}") for k in range(n_workstations)]

    def settle(self, rounds: int = 4) -> None:
        for w in self.ws:
            w.online = True
            w.restart()
        for _ in range(rounds):
            for w in self.ws:
                w.sync_round()
            if all(not w.sync.pending() for w in self.ws):
                return

    def local_closed(self) -> dict[str, str]:
        out = {}
        for w in self.ws:
            with w.store._tx() as tx:
                for u, c in tx.all("SELECT uuid, checksum FROM attempts WHERE status <> 'live'"):
                    out[u] = c
        return out

    def server_rows(self) -> list[tuple[str, str]]:
        """(uuid, checksum of the rows the server holds) of this schedule's attempts there."""
        server = self.server_factory()
        try:
            with server._tx() as tx:
                ids = tx.all("SELECT id, uuid FROM attempts WHERE trainee LIKE ? ORDER BY uuid", (self.tag + "_%",))
                return [(str(u), attempt_checksum(server._raw(tx, int(i)))) for i, u in ids]
        finally:
            server.close()

    def lost_and_duplicated(self) -> tuple[int, int]:
        """Closed attempts of the workstations not on the server with their content, and UUIDs
        there more than once."""
        local = self.local_closed()
        rows = self.server_rows()
        uuids = [u for u, _ in rows]
        duplicated = len(uuids) - len(set(uuids))
        on_server = dict(rows)
        lost = sum(1 for u, c in local.items() if on_server.get(u) != c)
        return lost, duplicated

    def close(self) -> None:
        for w in self.ws:
            try:
                w.close()
            except RecordsError:
                pass
        shutil.rmtree(self.folder, ignore_errors=True)


def steps_to_ops(steps) -> list[tuple]:
    """A schedule of steps - (workstation, online, [(samples, finished), ...], restart, kill point or
    None): the network state set, attempts recorded (an unfinished one: the workstation died in
    it), the trainer restarted, then a sync round killed at that point - as the ops run_schedule
    plays: ("network", w, online), ("record", w, samples, finished), ("restart", w), ("sync", w, kill)."""
    ops = []
    for w, online, records, restart, kill in steps:
        ops.append(("network", w, online))
        ops += [("record", w, n, finished) for n, finished in records]
        if restart:
            ops.append(("restart", w))
        ops.append(("sync", w, kill))
    return ops


def random_schedule(rng, n_workstations: int = 2, max_steps: int = 5) -> list[tuple]:
    """Random steps (as the tests' hypothesis strategy draws them) as ops."""
    steps = []
    for _ in range(rng.randint(1, max_steps)):
        records = [(rng.randint(5, 60), rng.random() < 0.8) for _ in range(rng.randint(0, 2))]
        steps.append((rng.randrange(n_workstations), rng.random() < 0.75, records, rng.random() < 0.3,
                      rng.choice((None,) + KILL_POINTS)))
    return steps_to_ops(steps)


def run_schedule(server_factory, schedule: list[tuple], tag: str, n_workstations: int = 2) -> tuple[int, int]:
    """Play a schedule, bring everything back, sync; (attempts lost, attempts duplicated)."""
    centre = Centre(server_factory, n_workstations, tag)
    try:
        seed = 1
        for op in schedule:
            w = centre.ws[op[1]]
            if op[0] == "record":
                w.record(op[2], seed=seed, finish=op[3])
                seed += 1
            elif op[0] == "sync":
                w.sync_round(kill_at=op[2])
            elif op[0] == "network":
                w.online = op[2]
            else:
                w.restart()
        centre.settle()
        lost, duplicated = centre.lost_and_duplicated()
        pending = sum(len(w.sync.pending()) for w in centre.ws)
        return lost + pending, duplicated
    finally:
        centre.close()
