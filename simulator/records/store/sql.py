"""`SQLRecordStore`: the `RecordStore` over any DB-API 2 connection, portable SQL."""
from __future__ import annotations

import json
import threading
import uuid as uuidlib
from typing import Callable, Iterable, Sequence

from simulator.core.events import Event
from simulator.core.recording import InputRecord, Recording, RecordingError
from simulator.records.codec import (
    INPUT_CODEC,
    SAMPLE_CODEC,
    CodecError,
    concat_samples,
    decode_inputs,
    decode_samples,
    encode_inputs,
    encode_samples,
    slice_samples,
)
from simulator.records.store.interface import RecordStore
from simulator.records.store.liveness import this_process
from simulator.records.store.model import STATUSES, AttemptInfo, RecordsError, Trainee, UnknownAttempt, now_iso
from simulator.records.store.checksum import attempt_checksum
from simulator.records.store.migrations import migrate
from simulator.records.store.schema import ATTEMPT_COLUMNS, ATTEMPT_FROM, SQLITE, Dialect, _info

MAX_CHUNK_SAMPLES = 1200  # samples per row (20 s at 60 Hz): appends fill the last row up to this
COMPACT_SAMPLES = MAX_CHUNK_SAMPLES
MAX_CHUNK_INPUTS = 2000


def _card_json(card) -> dict | None:
    if card is None:
        return None
    if hasattr(card, "to_json"):
        return card.to_json()
    if isinstance(card, dict):
        return card
    raise TypeError(f"a score card must be a ScoreCard or its JSON dict, got {type(card).__name__}")


def _dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


class SQLRecordStore(RecordStore):
    """`RecordStore` over DB-API 2 connections made by `connect()` (one per thread)."""

    def __init__(self, connect: Callable[[], object], dialect: Dialect = SQLITE, *, location: str = "database"):
        self._connect = connect
        self.dialect = dialect
        self._location = location
        self._local = threading.local()
        self._all: list = []
        self._all_lock = threading.Lock()
        self._closed = False
        self._create_schema()

    # -- connections and transactions ----------------------------------------------------
    @property
    def location(self) -> str:
        return self._location

    def _conn(self):
        if self._closed:
            raise RecordsError(f"{self._location}: the record store is closed")
        c = getattr(self._local, "conn", None)
        if c is None:
            c = self._connect()
            self._setup_connection(c)
            self._local.conn = c
            with self._all_lock:
                self._all.append(c)
        return c

    def _setup_connection(self, conn) -> None:
        """Per-connection settings (SQLite pragmas); nothing for other databases."""

    def release_thread_connection(self) -> None:
        """Close this thread's connection (a worker thread calls it before it ends)."""
        c = getattr(self._local, "conn", None)
        if c is not None:
            self._local.conn = None
            with self._all_lock:
                if c in self._all:
                    self._all.remove(c)
            c.close()

    def close(self) -> None:
        if self._closed:
            return
        with self._all_lock:
            conns, self._all = self._all, []
        for c in conns:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - a connection of a thread that is gone
                pass
        self._local = threading.local()
        self._closed = True

    class _Tx:
        def __init__(self, store, migration: bool = False):
            self.store = store
            self.migration = migration

        def __enter__(self):
            self.conn = self.store._conn()
            self.cur = self.conn.cursor()
            if self.migration and self.store.dialect.lock:
                self.run(self.store.dialect.lock)
            return self

        def __exit__(self, exc_type, exc, tb):
            try:
                if exc_type is None:
                    self.conn.commit()
                else:
                    self.conn.rollback()
            except Exception as e:  # noqa: BLE001 - the connection broke: its transaction is undone
                if exc_type is None:
                    raise self.store._translate_error(e) or e from None
            finally:
                try:
                    self.cur.close()
                except Exception:  # noqa: BLE001 - a cursor of a broken connection
                    pass
            if exc is not None and not isinstance(exc, RecordsError):
                mapped = self.store._translate_error(exc)
                if mapped is not None:
                    raise mapped from None
            return False

        def run(self, sql: str, params: Sequence = ()):
            if params:
                self.cur.execute(self.store.dialect.sql(sql), tuple(params))
            else:
                self.cur.execute(self.store.dialect.sql(sql))
            return self.cur

        def many(self, sql: str, rows: Iterable[Sequence]):
            rows = [tuple(r) for r in rows]
            if rows:
                self.cur.executemany(self.store.dialect.sql(sql), rows)

        def one(self, sql: str, params: Sequence = ()):
            return self.run(sql, params).fetchone()

        def all(self, sql: str, params: Sequence = ()):
            return self.run(sql, params).fetchall()

    def _tx(self, migration: bool = False) -> "_Tx":
        return SQLRecordStore._Tx(self, migration)

    def _missing(self, ref) -> UnknownAttempt:
        return UnknownAttempt(f"no attempt {ref} in {self._location}{self.visibility_note()}")

    def visibility_note(self) -> str:
        """Appended to "no attempt ..." where the connected role sees only some attempts."""
        return ""

    def _translate_error(self, exc: BaseException) -> RecordsError | None:
        """A database error as a RecordsError naming what failed (None: leave it as it is)."""
        return None

    def _create_schema(self) -> None:
        migrate(self)

    # -- trainees and scenarios ----------------------------------------------------------
    def add_trainee(self, name: str, full_name: str = "") -> Trainee:
        name = str(name).strip()
        if not name:
            raise RecordsError("a trainee needs a name")
        with self._tx() as tx:
            self._ensure_trainee(tx, name, full_name)
            if full_name:
                tx.run("UPDATE trainees SET full_name = ?, synced_at = '' WHERE name = ? AND full_name <> ?",
                       (full_name, name, full_name))
        return next(t for t in self.list_trainees() if t.name == name)

    def _ensure_trainee(self, tx, name: str, full_name: str = "", created_at: str | None = None,
                        login: str = "") -> None:
        tx.run("INSERT INTO trainees (name, full_name, created_at, login) VALUES (?, ?, ?, ?) "
               "ON CONFLICT (name) DO NOTHING", (name, full_name or "", created_at or now_iso(), login or ""))

    def list_trainees(self) -> list[Trainee]:
        with self._tx() as tx:
            rows = tx.all(
                "SELECT t.name, t.full_name, t.created_at, COUNT(a.id), MAX(a.started_at) FROM trainees t "
                "LEFT JOIN attempts a ON a.trainee = t.name GROUP BY t.name, t.full_name, t.created_at "
                "ORDER BY t.name")
        return [Trainee(str(r[0]), str(r[1] or ""), str(r[2] or ""), int(r[3] or 0), str(r[4] or "")) for r in rows]

    def add_scenario(self, scenario=None, *, scenario_id: str = "", version: str = "", title: str = "",
                     scenario_json: str | None = None) -> None:
        with self._tx() as tx:
            self._ensure_scenario(tx, scenario, scenario_id, version, title, scenario_json)

    def _ensure_scenario(self, tx, scenario, scenario_id: str, version: str, title: str = "",
                         scenario_json: str | None = None) -> tuple[str, str]:
        if scenario is not None:
            from simulator.core.recording import scenario_version

            scenario_id = scenario_id or str(getattr(scenario, "id", ""))
            version = version or scenario_version(scenario)
            title = title or str(getattr(scenario, "title", ""))
            if scenario_json is None and hasattr(scenario, "model_dump_json"):
                scenario_json = scenario.model_dump_json()
        scenario_id = scenario_id or "unknown"
        tx.run("INSERT INTO scenarios (id, version, title, scenario_json, first_seen) VALUES (?, ?, ?, ?, ?) "
               "ON CONFLICT (id, version) DO NOTHING", (scenario_id, version, title or scenario_id, scenario_json,
                                                       now_iso()))
        if scenario_json is not None:
            tx.run("UPDATE scenarios SET scenario_json = ? WHERE id = ? AND version = ? AND scenario_json IS NULL",
                   (scenario_json, scenario_id, version))
        if title:
            tx.run("UPDATE scenarios SET title = ? WHERE id = ? AND version = ? AND title = id",
                   (title, scenario_id, version))
        return scenario_id, version

    def put_info(self, key: str, value: str) -> None:
        """A note about the whole store (kept beside the schema version)."""
        with self._tx() as tx:
            tx.run("DELETE FROM nt_schema WHERE key = ?", (key,))
            tx.run("INSERT INTO nt_schema (key, value) VALUES (?, ?)", (key, str(value)))

    def get_info(self, key: str) -> str | None:
        with self._tx() as tx:
            row = tx.one("SELECT value FROM nt_schema WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def scenario_json(self, scenario_id: str, version: str) -> str | None:
        with self._tx() as tx:
            row = tx.one("SELECT scenario_json FROM scenarios WHERE id = ? AND version = ?", (scenario_id, version))
        return None if row is None or row[0] is None else str(row[0])

    def list_scenarios(self) -> list[dict]:
        """Every scenario version seen: id, version, title, has_json."""
        with self._tx() as tx:
            rows = tx.all("SELECT id, version, title, scenario_json IS NOT NULL, first_seen FROM scenarios "
                          "ORDER BY id, first_seen")
        return [{"id": r[0], "version": r[1], "title": r[2], "has_json": bool(r[3]), "first_seen": r[4]} for r in rows]

    # -- attempts: writing ---------------------------------------------------------------
    def start_attempt(self, recording: Recording, scenario=None, *, trainee: str | None = None,
                      uuid: str | None = None, status: str = "live", owner: str | None = None) -> int:
        if status not in STATUSES:
            raise RecordsError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        trainee = (trainee if trainee is not None else recording.trainee) or "anonymous"
        uid = uuid or str(uuidlib.uuid4())
        if uuid is not None and self.attempt_by_uuid(uid) is not None:
            raise RecordsError(f"attempt {uid} is already in {self._location}")
        with self._tx() as tx:
            self._ensure_trainee(tx, trainee)
            sid, sver = self._ensure_scenario(tx, scenario, recording.scenario_id, recording.scenario_version)
            row = tx.one(
                "INSERT INTO attempts (uuid, trainee, scenario_id, scenario_version, anatomy_ref, anatomy_hash, mode, "
                "status, started_at, updated_at, owner, meta_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "RETURNING id",
                (uid, trainee, sid, sver, recording.anatomy_ref, recording.anatomy_hash, recording.mode, status,
                 recording.started_at or now_iso(), now_iso(), this_process() if owner is None else owner,
                 _dumps(recording.meta_dict())))
        return int(row[0])

    def _counts(self, tx, attempt_id: int) -> tuple:
        row = tx.one("SELECT n_samples, n_events, n_inputs, first_time_s, status FROM attempts WHERE id = ?",
                     (attempt_id,))
        if row is None:
            raise self._missing(attempt_id)
        return row

    def append(self, attempt_id: int, *, samples: dict | None = None, inputs: Sequence[InputRecord] = (),
               events: Sequence[Event] = (), tail: dict | None = None, images: dict | None = None) -> None:
        """Add samples (final ones: they follow the stored ones), inputs and events, in one transaction.
        `tail` is the newest sample, which may still be replaced (kept aside until it is final; a
        recovered attempt includes it). `images`: name -> PNG bytes (a name already stored is replaced)."""
        n_new = 0 if samples is None else len(samples["time_s"])
        in_blobs = [(a, len(inputs[a:a + MAX_CHUNK_INPUTS]), encode_inputs(inputs[a:a + MAX_CHUNK_INPUTS]))
                    for a in range(0, len(inputs), MAX_CHUNK_INPUTS)]
        tail_blob = None
        if tail is not None and len(tail["time_s"]):
            tail_blob = encode_samples(tail)
        ev_rows = [(e.time_s, e.kind.value, e.message, _dumps(e.data)) for e in events]
        with self._tx() as tx:
            ns, ne, ni, t_first, status = self._counts(tx, attempt_id)
            if status != "live":
                raise RecordsError(f"attempt {attempt_id} is {status}: it takes no more samples")
            if n_new:
                self._append_samples(tx, attempt_id, ns, samples)
            tx.many("INSERT INTO input_chunks (attempt_id, first_index, n, codec, data) VALUES (?, ?, ?, ?, ?)",
                    [(attempt_id, ni + a, n, INPUT_CODEC, b) for a, n, b in in_blobs])
            tx.many("INSERT INTO events (attempt_id, seq, time_s, kind, message, data_json) VALUES (?, ?, ?, ?, ?, ?)",
                    [(attempt_id, ne + k, *r) for k, r in enumerate(ev_rows)])
            for name, png in (images or {}).items():
                tx.run("DELETE FROM images WHERE attempt_id = ? AND name = ?", (attempt_id, str(name)))
                tx.run("INSERT INTO images (attempt_id, name, mime, data) VALUES (?, ?, ?, ?)",
                       (attempt_id, str(name), _mime(png), bytes(png)))
            first = t_first
            last_t = None
            if n_new:
                last_t = float(samples["time_s"][-1])
                first = float(samples["time_s"][0]) if first is None else first
            tail_index = None
            if tail_blob is not None:
                tail_index = ns + n_new
                last_t = float(tail["time_s"][0])
                first = last_t if first is None else first
            sets = ["n_samples = ?", "n_events = ?", "n_inputs = ?", "updated_at = ?", "first_time_s = ?",
                    "tail_index = ?", "tail_data = ?"]
            params = [ns + n_new, ne + len(ev_rows), ni + len(inputs), now_iso(), first, tail_index, tail_blob]
            if last_t is not None:
                sets.append("last_time_s = ?")
                params.append(last_t)
            tx.run(f"UPDATE attempts SET {', '.join(sets)} WHERE id = ?", (*params, attempt_id))

    def _append_samples(self, tx, attempt_id: int, ns: int, samples: dict) -> None:
        """Samples ns.. of an attempt: the last row is filled up to MAX_CHUNK_SAMPLES first (so the
        live recorder's small flushes still end up in rows of that size), then new rows."""
        n_new = len(samples["time_s"])
        k = 0
        last = tx.one("SELECT first_index, n, codec, data FROM sample_chunks WHERE attempt_id = ? "
                      "ORDER BY first_index DESC LIMIT 1", (attempt_id,))
        if (last is not None and last[2] == SAMPLE_CODEC and int(last[1]) < MAX_CHUNK_SAMPLES
                and int(last[0]) + int(last[1]) == ns):
            try:
                old = decode_samples(last[3], int(last[1]))
            except CodecError:
                old = None
            if old is not None:
                k = min(MAX_CHUNK_SAMPLES - int(last[1]), n_new)
                merged = concat_samples([old, slice_samples(samples, 0, k)])
                tx.run("UPDATE sample_chunks SET n = ?, t1 = ?, data = ? WHERE attempt_id = ? AND first_index = ?",
                       (len(merged["time_s"]), float(merged["time_s"][-1]), encode_samples(merged), attempt_id,
                        int(last[0])))
        rows = []
        for a in range(k, n_new, MAX_CHUNK_SAMPLES):
            part = slice_samples(samples, a, min(n_new, a + MAX_CHUNK_SAMPLES))
            rows.append((attempt_id, ns + a, len(part["time_s"]), float(part["time_s"][0]), float(part["time_s"][-1]),
                         SAMPLE_CODEC, encode_samples(part)))
        tx.many("INSERT INTO sample_chunks (attempt_id, first_index, n, t0, t1, codec, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def finish_attempt(self, attempt_id: int, card=None, *, status: str = "finished",
                       recording: Recording | None = None, compact: bool = True) -> AttemptInfo:
        """Close an attempt: its status, end time, score card (when given); `recording` refreshes the
        stored meta; `compact` rewrites the sample rows into fewer, larger ones."""
        if status not in STATUSES or status == "live":
            raise RecordsError(f"an attempt finishes as finished, recovered or abandoned, not {status!r}")
        cj = _card_json(card)
        with self._tx() as tx:
            self._counts(tx, attempt_id)
            tx.run("UPDATE attempts SET status = ?, ended_at = ?, updated_at = ? WHERE id = ?",
                   (status, now_iso(), now_iso(), attempt_id))
            if recording is not None:
                # the mode can change during an attempt (hints shown: an exam attempt becomes practice)
                tx.run("UPDATE attempts SET meta_json = ?, mode = ? WHERE id = ?",
                       (_dumps(recording.meta_dict()), recording.mode, attempt_id))
            if cj is not None:
                self._write_card(tx, attempt_id, cj)
        if compact:
            self.compact(attempt_id)
        self.seal(attempt_id)
        return self.attempt(attempt_id)

    def seal(self, attempt_id: int) -> str:
        """Store the checksum of a closed attempt's content (what the centre's sync verifies)."""
        checksum = attempt_checksum(self.raw_attempt(attempt_id))
        with self._tx() as tx:
            tx.run("UPDATE attempts SET checksum = ?, synced_at = '' WHERE id = ?", (checksum, int(attempt_id)))
        return checksum

    def _write_card(self, tx, attempt_id: int, cj: dict) -> None:
        tx.run("UPDATE attempts SET score = ?, passed = ?, pass_mark = ?, score_card_json = ? WHERE id = ?",
               (float(cj.get("score", 0.0)), int(bool(cj.get("passed"))), cj.get("pass_mark"), _dumps(cj),
                attempt_id))

    def set_score(self, attempt_id: int, card) -> None:
        with self._tx() as tx:
            self._counts(tx, attempt_id)
            self._write_card(tx, attempt_id, _card_json(card))
            tx.run("UPDATE attempts SET synced_at = '' WHERE id = ?", (attempt_id,))  # the new card goes out

    def touch(self, attempt_id: int) -> None:
        with self._tx() as tx:
            tx.run("UPDATE attempts SET updated_at = ? WHERE id = ? AND status = 'live'", (now_iso(), int(attempt_id)))

    def set_status(self, attempt_id: int, status: str) -> None:
        if status not in STATUSES:
            raise RecordsError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        with self._tx() as tx:
            self._counts(tx, attempt_id)
            tx.run("UPDATE attempts SET status = ?, updated_at = ? WHERE id = ?", (status, now_iso(), attempt_id))

    def compact(self, attempt_id: int, per_row: int = COMPACT_SAMPLES) -> None:
        """Rewrite an attempt's sample rows as rows of `per_row` samples (smaller, faster to load)."""
        with self._tx() as tx:
            sizes = [int(r[0]) for r in tx.all("SELECT n FROM sample_chunks WHERE attempt_id = ? ORDER BY first_index",
                                                (attempt_id,))]
            if len(sizes) <= 1 or all(n >= per_row for n in sizes[:-1]):
                return
            rows = tx.all("SELECT first_index, n, codec, data FROM sample_chunks WHERE attempt_id = ? "
                          "ORDER BY first_index", (attempt_id,))
            s = concat_samples(self._decode_chunks(attempt_id, rows))
            n = len(s["time_s"])
            tx.run("DELETE FROM sample_chunks WHERE attempt_id = ?", (attempt_id,))
            new = []
            for a in range(0, n, per_row):
                part = slice_samples(s, a, min(n, a + per_row))
                new.append((attempt_id, a, len(part["time_s"]), float(part["time_s"][0]), float(part["time_s"][-1]),
                            SAMPLE_CODEC, encode_samples(part)))
            tx.many("INSERT INTO sample_chunks (attempt_id, first_index, n, t0, t1, codec, data) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", new)

    # -- attempts: reading ---------------------------------------------------------------
    def list_attempts(self, trainee: str | None = None, scenario: str | None = None,
                      status: str | Iterable[str] | None = None) -> list[AttemptInfo]:
        where, params = [], []
        if trainee is not None:
            where.append("a.trainee = ?")
            params.append(trainee)
        if scenario is not None:
            where.append("a.scenario_id = ?")
            params.append(scenario)
        if status is not None:
            sts = [status] if isinstance(status, str) else list(status)
            where.append("a.status IN (" + ", ".join("?" * len(sts)) + ")")
            params += sts
        sql = f"SELECT {ATTEMPT_COLUMNS} FROM {ATTEMPT_FROM}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY a.started_at, a.id"
        with self._tx() as tx:
            rows = tx.all(sql, params)
        return [_info(r) for r in rows]

    def attempt(self, attempt_id: int) -> AttemptInfo:
        with self._tx() as tx:
            row = tx.one(f"SELECT {ATTEMPT_COLUMNS} FROM {ATTEMPT_FROM} WHERE a.id = ?", (int(attempt_id),))
        if row is None:
            raise self._missing(attempt_id)
        return _info(row)

    def attempt_by_uuid(self, uuid: str) -> AttemptInfo | None:
        with self._tx() as tx:
            row = tx.one(f"SELECT {ATTEMPT_COLUMNS} FROM {ATTEMPT_FROM} WHERE a.uuid = ?", (str(uuid),))
        return None if row is None else _info(row)

    def score_card(self, attempt_id: int) -> dict | None:
        with self._tx() as tx:
            row = tx.one("SELECT score_card_json FROM attempts WHERE id = ?", (int(attempt_id),))
        if row is None:
            raise self._missing(attempt_id)
        return None if row[0] is None else json.loads(row[0])

    def score_cards(self, attempt_ids: Sequence[int]) -> dict[int, dict]:
        """Score cards of many attempts at once (those that have one)."""
        out: dict[int, dict] = {}
        ids = [int(a) for a in attempt_ids]
        with self._tx() as tx:
            for k in range(0, len(ids), 500):
                part = ids[k:k + 500]
                rows = tx.all("SELECT id, score_card_json FROM attempts WHERE score_card_json IS NOT NULL AND id IN ("
                              + ", ".join("?" * len(part)) + ")", part)
                out.update({int(r[0]): json.loads(r[1]) for r in rows})
        return out

    def images(self, attempt_id: int) -> dict[str, bytes]:
        with self._tx() as tx:
            rows = tx.all("SELECT name, data FROM images WHERE attempt_id = ? ORDER BY name", (int(attempt_id),))
        return {str(r[0]): bytes(r[1]) for r in rows}

    def _decode_chunks(self, attempt_id: int, rows) -> list[dict]:
        parts, expect = [], 0
        for first, n, codec, data in rows:
            if codec != SAMPLE_CODEC:
                raise RecordsError(f"attempt {attempt_id}: samples stored with unknown codec {codec!r}")
            if int(first) != expect:
                raise RecordsError(f"attempt {attempt_id}: samples {expect}..{int(first) - 1} are missing")
            try:
                parts.append(decode_samples(data, int(n)))
            except CodecError as e:
                raise RecordsError(f"attempt {attempt_id}: damaged samples at {first}: {e}") from None
            expect += int(n)
        return parts

    def load_attempt(self, attempt_id: int, *, inputs: bool = True) -> Recording:
        """The attempt as a Recording: samples bit for bit (including the newest, provisional
        sample of a live attempt), inputs, events and meta. `inputs=False` leaves the input log
        out (what a replay viewer needs loads faster; rescoring needs the inputs)."""
        aid = int(attempt_id)
        with self._tx() as tx:
            row = tx.one("SELECT meta_json, trainee, tail_index, tail_data, n_samples FROM attempts WHERE id = ?",
                         (aid,))
            if row is None:
                raise self._missing(attempt_id)
            chunks = tx.all("SELECT first_index, n, codec, data FROM sample_chunks WHERE attempt_id = ? "
                            "ORDER BY first_index", (aid,))
            in_rows = tx.all("SELECT first_index, n, codec, data FROM input_chunks WHERE attempt_id = ? "
                             "ORDER BY first_index", (aid,)) if inputs else []
            ev_rows = tx.all("SELECT seq, time_s, kind, message, data_json FROM events WHERE attempt_id = ? "
                             "ORDER BY seq", (aid,))
        meta_json, trainee, tail_index, tail_data, n_samples = row
        parts = self._decode_chunks(aid, chunks)
        n = sum(len(p["time_s"]) for p in parts)
        if tail_data is not None and tail_index is not None and int(tail_index) == n:
            parts.append(decode_samples(tail_data, 1))
        input_log: list[InputRecord] = []
        for first, k, codec, data in in_rows:
            if codec != INPUT_CODEC:
                raise RecordsError(f"attempt {attempt_id}: inputs stored with unknown codec {codec!r}")
            if int(first) != len(input_log):
                raise RecordsError(f"attempt {attempt_id}: inputs {len(input_log)}..{int(first) - 1} are missing")
            try:
                input_log += decode_inputs(data, int(k))
            except CodecError as e:
                raise RecordsError(f"attempt {attempt_id}: damaged inputs at {first}: {e}") from None
        try:
            meta = json.loads(meta_json)
            events = [Event.from_json({"time_s": r[1], "kind": r[2], "message": r[3], "data": json.loads(r[4])})
                      for r in ev_rows]
            meta["samples"] = concat_samples(parts)
            rec = Recording.from_json_dict(meta, source=f"attempt {attempt_id}")
        except (ValueError, KeyError, TypeError, RecordingError) as e:
            raise RecordsError(f"attempt {attempt_id}: damaged record ({e})") from None
        rec.inputs = input_log
        rec.events = events
        return rec

    # -- deleting and copying ------------------------------------------------------------
    def delete_attempt(self, attempt_id: int) -> None:
        aid = int(attempt_id)
        with self._tx() as tx:
            self._counts(tx, aid)
            for table in ("sample_chunks", "input_chunks", "events", "images"):
                tx.run(f"DELETE FROM {table} WHERE attempt_id = ?", (aid,))
            tx.run("DELETE FROM attempts WHERE id = ?", (aid,))

    def delete_trainee(self, name: str) -> int:
        """Delete a trainee and all their attempts; the number of attempts deleted."""
        attempts = self.list_attempts(trainee=name)
        for a in attempts:
            self.delete_attempt(a.id)
        with self._tx() as tx:
            tx.run("DELETE FROM trainees WHERE name = ?", (name,))
        return len(attempts)

    def raw_attempt(self, attempt_id: int) -> dict:
        """Every stored row of an attempt, undecoded (for copying between stores)."""
        with self._tx() as tx:
            return self._raw(tx, int(attempt_id))

    def _raw(self, tx, aid: int) -> dict:
        cols = ("uuid", "trainee", "scenario_id", "scenario_version", "anatomy_ref", "anatomy_hash", "mode",
                "status", "started_at", "ended_at", "updated_at", "owner", "first_time_s", "last_time_s", "n_samples",
                "n_events", "n_inputs", "score", "passed", "pass_mark", "score_card_json", "meta_json",
                "tail_index", "tail_data")
        row = tx.one(f"SELECT {', '.join(cols)} FROM attempts WHERE id = ?", (aid,))
        if row is None:
            raise self._missing(aid)
        att = dict(zip(cols, row))
        if att["tail_data"] is not None:
            att["tail_data"] = bytes(att["tail_data"])
        trainee = tx.one("SELECT name, full_name, created_at FROM trainees WHERE name = ?", (att["trainee"],))
        scen = tx.one("SELECT id, version, title, scenario_json FROM scenarios WHERE id = ? AND version = ?",
                      (att["scenario_id"], att["scenario_version"]))
        samples = [(r[0], r[1], r[2], r[3], r[4], bytes(r[5])) for r in tx.all(
            "SELECT first_index, n, t0, t1, codec, data FROM sample_chunks WHERE attempt_id = ? "
            "ORDER BY first_index", (aid,))]
        inputs = [(r[0], r[1], r[2], bytes(r[3])) for r in tx.all(
            "SELECT first_index, n, codec, data FROM input_chunks WHERE attempt_id = ? ORDER BY first_index",
            (aid,))]
        events = [tuple(r) for r in tx.all(
            "SELECT seq, time_s, kind, message, data_json FROM events WHERE attempt_id = ? ORDER BY seq", (aid,))]
        images = [(r[0], r[1], bytes(r[2])) for r in tx.all(
            "SELECT name, mime, data FROM images WHERE attempt_id = ?", (aid,))]
        return {"attempt": att, "trainee": tuple(trainee) if trainee else (att["trainee"], "", ""),
                "scenario": tuple(scen) if scen else (att["scenario_id"], att["scenario_version"], "", None),
                "samples": samples, "inputs": inputs, "events": events, "images": images}

    def copy_attempt(self, source: RecordStore, attempt_id: int) -> int | None:
        """Copy one attempt from another store; None (nothing copied) when an attempt with the same
        UUID is already here."""
        raw = source.raw_attempt(attempt_id)
        if self.attempt_by_uuid(raw["attempt"]["uuid"]) is not None:
            return None
        with self._tx() as tx:
            aid = self._insert_raw(tx, raw)
        if raw["attempt"]["status"] != "live":
            self.seal(aid)
        return aid

    def stored_checksum(self, attempt_id: int) -> str:
        """The checksum sealed when the attempt was closed ('' when it never was)."""
        with self._tx() as tx:
            row = tx.one("SELECT checksum FROM attempts WHERE id = ?", (int(attempt_id),))
        if row is None:
            raise self._missing(attempt_id)
        return str(row[0] or "")

    def merge_raw(self, raws: Sequence[dict], trainees: Sequence[tuple[str, str]] = ()) -> list[int | None]:
        """Add attempts given as `raw_attempt` gives them (with their trainees and scenarios) and the
        trainees named (name, full name), in ONE transaction: all of them or, when anything fails,
        none. An attempt whose UUID is already here is skipped (None in the result); the others are
        sealed. Their new ids."""
        out: list[int | None] = []
        with self._tx() as tx:
            for raw in raws:
                if tx.one("SELECT id FROM attempts WHERE uuid = ?", (str(raw["attempt"]["uuid"]),)) is not None:
                    out.append(None)
                    continue
                aid = self._insert_raw(tx, raw)
                if raw["attempt"]["status"] != "live":
                    tx.run("UPDATE attempts SET checksum = ?, synced_at = '' WHERE id = ?",
                           (attempt_checksum(self._raw(tx, aid)), aid))
                out.append(aid)
            for name, full_name in trainees:
                self._ensure_trainee(tx, name, full_name)
                if full_name:
                    tx.run("UPDATE trainees SET full_name = ?, synced_at = '' WHERE name = ? AND full_name <> ?",
                           (full_name, name, full_name))
        return out

    def _insert_raw(self, tx, raw: dict, extra: dict | None = None) -> int:
        """Insert an attempt given as `raw_attempt` gives it (its trainee and scenario too); its id."""
        att = dict(raw["attempt"], **(extra or {}))
        name, full, created = raw["trainee"]
        self._ensure_trainee(tx, name, full, created, login=raw.get("login", ""))
        sid, sver, title, sjson = raw["scenario"]
        self._ensure_scenario(tx, None, sid, sver, title, sjson)
        cols = [k for k in att]
        row = tx.one(f"INSERT INTO attempts ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
                     "RETURNING id", [att[k] for k in cols])
        aid = int(row[0])
        tx.many("INSERT INTO sample_chunks (attempt_id, first_index, n, t0, t1, codec, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", [(aid, *r) for r in raw["samples"]])
        tx.many("INSERT INTO input_chunks (attempt_id, first_index, n, codec, data) VALUES (?, ?, ?, ?, ?)",
                [(aid, *r) for r in raw["inputs"]])
        tx.many("INSERT INTO events (attempt_id, seq, time_s, kind, message, data_json) VALUES (?, ?, ?, ?, ?, ?)",
                [(aid, *r) for r in raw["events"]])
        tx.many("INSERT INTO images (attempt_id, name, mime, data) VALUES (?, ?, ?, ?)",
                [(aid, *r) for r in raw["images"]])
        return aid


def _mime(data: bytes) -> str:
    b = bytes(data[:8])
    if b.startswith(b"\x89PNG"):
        return "image/png"
    if b.startswith(b"\xff\xd8"):
        return "image/jpeg"
    return "application/octet-stream"
