"""Offline-first sync of a workstation's records with the centre's server.

Each workstation records into its own SQLite file as always: a session never waits on the network.
`CentreSync` sends what is new to the server in the background and fetches what the workstation
needs from it:

- push: every closed attempt (finished, recovered, abandoned) not yet on the server, and trainees
  added or renamed here. Attempts are identified by UUID, so sending one twice stores it once.
  An attempt goes in one server transaction that writes all its rows, reads them back and
  compares their checksum with the one the attempt was sealed with before it commits; only
  then is it marked sent here. A score changed after sending (a rescore) is sent again.
- pull: the trainees (and cohorts) the connected role may see, and, for the trainees named in
  `pull_history`, their attempts made on other workstations (a trainee who rotates sees all
  their history).

Killed at any moment, nothing is lost or doubled: before the server commits, the server undoes
the transaction when the connection drops and the attempt is still unsent here; after the
commit but before the mark here, the next round finds the UUID on the server with the same
checksum and just marks it. An attempt whose rows no longer match its checksum (damaged on this
disk) is not sent; a server that is unreachable, refuses the password, holds a newer schema or
refuses the role is reported by name and tried again later; local recording is never touched.

`kill(point)` is called at each step (tests model a kill there: "connect", "attempt_read",
"server_rows_written", "server_verified", "server_committed", "local_marked", "trainee_sent").
"""
from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Callable

from simulator.records.centre.background import Background
from simulator.records.store.checksum import attempt_checksum
from simulator.records.store.model import RecordsError, now_iso
from simulator.records.store.postgres import ServerError
from simulator.records.store.sql import SQLRecordStore

CLOSED = ("finished", "recovered", "abandoned")


def _no_kill(point: str) -> None:
    return None


@dataclass
class SyncReport:
    """One round of sync: what went where, and what failed (uuid or trainee -> message)."""

    pushed: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    rescored: list[str] = field(default_factory=list)
    trainees_pushed: list[str] = field(default_factory=list)
    pulled: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    error: str = ""  # the server as a whole (unreachable, password, schema)
    committed_at: dict[str, float] = field(default_factory=dict)  # uuid -> time.time() of the server commit

    @property
    def ok(self) -> bool:
        return not self.error and not self.failed

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


def receive_attempt(server: SQLRecordStore, raw: dict, checksum: str, kill: Callable = _no_kill) -> str:
    """Store one attempt (as `raw_attempt` gives it) on the server, all or nothing, checked against
    `checksum` before the commit. "pushed", "already" (same UUID and checksum there) or "rescored"
    (there, with another score card now updated); ServerError when the server holds different
    content under that UUID or its copy does not match."""
    att = raw["attempt"]
    uuid = att["uuid"]
    with server._tx() as tx:
        row = tx.one("SELECT id, checksum, score_card_json FROM attempts WHERE uuid = ?", (uuid,))
        if row is not None:
            if row[1] and row[1] != checksum:
                raise ServerError(f"attempt {uuid}: the server holds different content under this UUID "
                                  f"({row[1][:19]}..., here {checksum[:19]}...); it stays on this workstation",
                                  "conflict")
            if row[2] != att["score_card_json"]:
                tx.run("UPDATE attempts SET score = ?, passed = ?, pass_mark = ?, score_card_json = ? WHERE id = ?",
                       (att["score"], att["passed"], att["pass_mark"], att["score_card_json"], int(row[0])))
                return "rescored"
            return "already"
        aid = server._insert_raw(tx, dict(raw, login=att["trainee"]), {"checksum": checksum, "synced_at": now_iso()})
        kill("server_rows_written")
        back = attempt_checksum(server._raw(tx, aid))
        if back != checksum:
            raise ServerError(f"attempt {uuid}: the server's copy does not match its checksum ({back[:19]}..., "
                              f"sent {checksum[:19]}...); nothing was kept there", "checksum")
        kill("server_verified")
    return "pushed"


class CentreSync(Background):
    """Sync one workstation's local store with a server (see the module notes).

    `server`: a function opening the server store (a `PostgresRecordStore` for a centre; any
    `SQLRecordStore` works). `sync_once()` does one round; `start()` runs rounds in a thread every
    `interval_s` and at once after `wake()` (call it when an attempt is closed)."""

    def __init__(self, local: SQLRecordStore, server: Callable[[], SQLRecordStore], *, workstation: str = "",
                 interval_s: float = 1.0, pull_history: Callable[[], list[str]] | None = None,
                 kill: Callable[[str], None] = _no_kill, clock: Callable[[], float] = time.time,
                 roster_every_s: float = 60.0):
        self.local = local
        self.open_server = server
        self.workstation = workstation or socket.gethostname()
        self.interval_s = float(interval_s)
        self.pull_history = pull_history
        self.kill = kill
        self.clock = clock
        self.roster_every_s = float(roster_every_s)
        self._roster_at = -1e18
        self.state = "idle"  # idle, online, offline, error
        self.last_report = SyncReport()
        self.last_error = ""
        self._init_background()
        self.rounds = 0
        self.on_round: Callable[[SyncReport], None] | None = None

    # -- the server connection ----------------------------------------------------------------
    def _connect(self) -> SQLRecordStore:
        if self.server is None:
            self.kill("connect")
            self.server = self.open_server()
        return self.server

    # -- one round ------------------------------------------------------------------------------
    def sync_once(self) -> SyncReport:
        report = SyncReport()
        try:
            server = self._connect()
        except RecordsError as e:  # unreachable: offline; a password, schema or setting refused: error
            unreachable = getattr(e, "kind", "") == "unreachable"
            self.state, report.error = ("offline" if unreachable else "error"), str(e)
            return self._done(report)
        try:
            self._push_trainees(server, report)
            self._push_attempts(server, report)
            self._pull(server, report)
            self.state = "online"
        except ServerError as e:
            report.error = str(e)
            self.state = "offline" if e.kind == "unreachable" else "error"
            self._disconnect()
        return self._done(report)

    def _done(self, report: SyncReport) -> SyncReport:
        self.rounds += 1
        self.last_report = report
        self.last_error = report.error
        if self.on_round is not None:
            self.on_round(report)
        return report

    def pending(self) -> list[tuple[int, str, str]]:
        """(local id, uuid, checksum) of the closed attempts not yet on the server, oldest first."""
        with self.local._tx() as tx:
            rows = tx.all("SELECT id, uuid, checksum FROM attempts WHERE synced_at = '' AND status IN (?, ?, ?) "
                          "ORDER BY id", CLOSED)
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def _push_attempts(self, server: SQLRecordStore, report: SyncReport) -> None:
        for aid, uuid, sealed in self.pending():
            raw = self.local.raw_attempt(aid)
            checksum = attempt_checksum(raw)
            self.kill("attempt_read")
            if not sealed:  # closed before this version sealed attempts
                with self.local._tx() as tx:
                    tx.run("UPDATE attempts SET checksum = ? WHERE id = ? AND checksum = ''", (checksum, aid))
            elif sealed != checksum:
                msg = (f"attempt {uuid} (#{aid} in {self.local.location}) fails its checksum: its rows changed after "
                       f"it was closed (sealed {sealed[:19]}..., now {checksum[:19]}...); it is not sent and stays "
                       f"here untouched")
                report.failed[uuid] = msg
                continue
            try:
                result = receive_attempt(server, raw, checksum, self.kill)
            except ServerError as e:
                if e.kind in ("unreachable", "schema", "auth"):
                    raise
                report.failed[uuid] = str(e)
                continue
            report.committed_at[uuid] = self.clock()
            self.kill("server_committed")
            with self.local._tx() as tx:
                # a rescore meanwhile clears the mark again (set_score): only this content is marked
                tx.run("UPDATE attempts SET synced_at = ? WHERE id = ? AND checksum = ? AND "
                       "COALESCE(score_card_json, '') = ?", (now_iso(), aid, checksum, raw["attempt"]["score_card_json"]
                                                             or ""))
            self.kill("local_marked")
            {"pushed": report.pushed, "already": report.already, "rescored": report.rescored}[result].append(uuid)

    def _push_trainees(self, server: SQLRecordStore, report: SyncReport) -> None:
        with self.local._tx() as tx:
            rows = tx.all("SELECT name, full_name, created_at FROM trainees WHERE synced_at = '' ORDER BY name")
        for name, full, created in rows:
            try:
                with server._tx() as tx:
                    server._ensure_trainee(tx, name, full, created, login=name)
                    if full:
                        tx.run("UPDATE trainees SET full_name = ? WHERE name = ? AND full_name <> ?", (full, name, full))
            except ServerError as e:
                if e.kind in ("unreachable", "schema", "auth"):
                    raise
                report.failed[f"trainee {name}"] = str(e)
                continue
            self.kill("trainee_sent")
            with self.local._tx() as tx:
                tx.run("UPDATE trainees SET synced_at = ? WHERE name = ? AND full_name = ?", (now_iso(), name, full))
            report.trainees_pushed.append(name)

    def _pull(self, server: SQLRecordStore, report: SyncReport) -> None:
        if time.monotonic() - self._roster_at >= self.roster_every_s:  # the trainees this role may see
            with server._tx() as tx:
                trainees = tx.all("SELECT name, full_name, created_at FROM trainees ORDER BY name")
            with self.local._tx() as tx:
                tx.many("INSERT INTO trainees (name, full_name, created_at, synced_at) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (name) DO NOTHING", [(n, f or "", c or "", now_iso()) for n, f, c in trainees])
            self._roster_at = time.monotonic()
        for trainee in (self.pull_history() if self.pull_history else []):
            here = {a.uuid for a in self.local.list_attempts(trainee=trainee)}
            for a in server.list_attempts(trainee=trainee, status=CLOSED):
                if a.uuid in here:
                    continue
                aid = self.local.copy_attempt(server, a.id)
                if aid is not None:
                    with self.local._tx() as tx:
                        tx.run("UPDATE attempts SET synced_at = ? WHERE id = ?", (now_iso(), aid))
                    report.pulled.append(a.uuid)

    # -- in the background ----------------------------------------------------------------------
    thread_name = "CentreSync"

    def _run(self) -> None:
        backoff = self.interval_s
        try:
            while not self._stop.is_set():
                report = self.sync_once()
                backoff = self.interval_s if not report.error else min(30.0, max(backoff * 2, self.interval_s))
                self._wake.wait(backoff if report.error else self.interval_s)
                self._wake.clear()
        finally:
            self._disconnect()
            release = getattr(self.local, "release_thread_connection", None)
            if release is not None:
                release()

    def status(self) -> dict:
        """For a status line: online/offline, attempts waiting, the last error."""
        return {"state": self.state, "pending": len(self.pending()), "error": self.last_error,
                "workstation": self.workstation, "rounds": self.rounds,
                "last": json.loads(json.dumps(self.last_report.to_json()))}
