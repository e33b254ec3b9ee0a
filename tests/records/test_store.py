"""The record store: round trips bit for bit, attempts and trainees, errors naming what is wrong,
and SQL that goes through the dialect (so another DB-API database can take it)."""
import json
import re
import sqlite3
import struct

import numpy as np
import pytest

from simulator.core.events import Event, EventKind
from simulator.core.procedure import Procedure
from simulator.core.recording import InputRecord, Recording
from simulator.core.scoring import score_attempt
from simulator.records.codec import decode_inputs, decode_samples, encode_inputs, encode_samples, empty_samples
from simulator.records.store import (
    POSTGRESQL,
    SQLITE,
    SQLiteRecordStore,
    SQLRecordStore,
    RecordsError,
    UnknownAttempt,
)


def _canon(card) -> str:
    return json.dumps(card.to_json() if hasattr(card, "to_json") else card, sort_keys=True)


def test_round_trip_identical_samples_events_inputs_and_score(store, expert, scenario, block):
    proc, card = expert
    rec = proc.recording
    aid = store.save_recording(rec, card, scenario=scenario)
    back = store.load_attempt(aid)
    assert back.same_as(rec)  # samples bit for bit, events, inputs
    assert back.meta_dict() == rec.meta_dict()
    for k, v in rec.samples.arrays().items():
        assert back.samples.arrays()[k].dtype == v.dtype and np.array_equal(back.samples.arrays()[k], v,
                                                                             equal_nan=True), k
    # the score of the loaded recording, and the stored card, equal the original to the last digit
    assert _canon(score_attempt(back, scenario, block)) == _canon(card)
    assert _canon(store.score_card(aid)) == _canon(card)
    info = store.attempt(aid)
    assert (info.trainee, info.scenario_id, info.status, info.passed) == ("ann", scenario.id, "finished", True)
    assert info.score == card.score and info.pass_mark == 70.0
    assert info.n_samples == rec.n_samples and info.n_events == len(rec.events) and info.n_inputs == len(rec.inputs)
    assert info.duration_s == pytest.approx(rec.duration_s)
    assert info.scenario_title == scenario.title and info.anatomy_hash == "test_block_v1"
    # the scenario is kept exactly as it was (rescoring uses it)
    assert json.loads(store.scenario_json(scenario.id, rec.scenario_version)) == json.loads(scenario.model_dump_json())


def test_loading_without_inputs_gives_the_same_samples(store, expert):
    proc, card = expert
    aid = store.save_recording(proc.recording, card)
    light = store.load_attempt(aid, inputs=False)
    assert light.inputs == [] and len(light.events) == len(proc.recording.events)
    a, b = light.samples.arrays(), proc.recording.samples.arrays()
    assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)


def test_trainees_attempts_filters_and_order(store, expert, novice, scenario):
    a1 = store.save_recording(expert[0].recording, expert[1], scenario=scenario)
    a2 = store.save_recording(novice[0].recording, novice[1], scenario=scenario)
    bob = Recording.from_json_dict(expert[0].recording.to_json_dict())
    bob.trainee = "bob"
    a3 = store.save_recording(bob, None, status="abandoned")
    store.add_trainee("cleo", "Dr Cleo Example")
    names = {t.name: t for t in store.list_trainees()}
    assert set(names) == {"ann", "bob", "cleo"}
    assert names["ann"].attempts == 2 and names["cleo"].attempts == 0 and names["cleo"].full_name == "Dr Cleo Example"
    assert [a.id for a in store.list_attempts(trainee="ann")] == [a2, a1]  # by start time: the novice's first
    assert [a.id for a in store.list_attempts(status="abandoned")] == [a3]
    assert [a.id for a in store.list_attempts(scenario="no_such_scenario")] == []
    assert store.attempt(a3).score is None and store.score_card(a3) is None
    assert store.attempt(a2).passed is False


def test_resolve_by_number_or_uuid_prefix_and_clear_errors(store, expert):
    aid = store.save_recording(expert[0].recording, expert[1])
    info = store.attempt(aid)
    assert store.resolve(str(aid)) == aid
    assert store.resolve(info.uuid) == aid and store.resolve(info.uuid[:6]) == aid
    with pytest.raises(UnknownAttempt, match=r"no attempt 99 in " + re.escape(store.location)):
        store.resolve("99")
    with pytest.raises(UnknownAttempt, match="'nonsense'"):
        store.resolve("nonsense")
    with pytest.raises(UnknownAttempt, match="no attempt 42"):
        store.load_attempt(42)


def test_ambiguous_uuid_prefix_is_refused(store, expert):
    a = store.save_recording(expert[0].recording, expert[1], uuid="abcd1234-0000-4000-8000-000000000001")
    b = store.save_recording(expert[0].recording, expert[1], uuid="abcd1234-0000-4000-8000-000000000002")
    with pytest.raises(UnknownAttempt, match="ambiguous"):
        store.resolve("abcd1234")
    assert store.resolve("abcd1234-0000-4000-8000-000000000002") == b != a


def test_uuid_is_unique(store, expert):
    store.save_recording(expert[0].recording, expert[1], uuid="11111111-2222-4333-8444-555555555555")
    with pytest.raises(RecordsError, match="attempt 11111111-2222-4333-8444-555555555555 is already in"):
        store.save_recording(expert[0].recording, expert[1], uuid="11111111-2222-4333-8444-555555555555")
    assert len(store.list_attempts()) == 1


def test_finishing_stores_the_mode_the_attempt_ended_in(store, scenario, block):
    from simulator.benchmarks.scoring import expert_attempt
    from simulator.core.procedure import Procedure

    proc = Procedure(scenario, block, clock=lambda: 0.0, trainee="ann", mode="exam")
    aid = store.start_attempt(proc.recording, scenario)
    assert store.attempt(aid).mode == "exam"
    expert_attempt(proc, t0=1.0)
    proc.recording.mode = "practice"  # the trainee showed the hints mid-attempt
    store.append(aid, samples=proc.recording.samples.arrays(), inputs=proc.recording.inputs,
                 events=proc.recording.events)
    store.finish_attempt(aid, None, recording=proc.recording)
    assert store.attempt(aid).mode == "practice" and store.load_attempt(aid).mode == "practice"


def test_finished_attempts_take_no_more_samples(store, expert):
    aid = store.save_recording(expert[0].recording, expert[1])
    with pytest.raises(RecordsError, match=f"attempt {aid} is finished"):
        store.append(aid, events=[Event(1.0, EventKind.end, "x")])


def test_chunked_appends_with_a_tail_then_compaction(store, scenario, block):
    """Samples appended in many small runs (as the live recorder does), a provisional newest
    sample kept aside, rows compacted at the end: the loaded samples never change."""
    proc = Procedure(scenario, block, clock=lambda: 0.0, trainee="ann")
    proc.set_entry([-56.0, -70.0, 0.0], [0.3, 0.95, 0.0], time_s=0.0)
    for i in range(1, 300):
        proc.advance(0.1, time_s=i / 60.0) if i % 3 else proc.tick(time_s=i / 60.0)
    rec = proc.recording
    aid = store.start_attempt(rec, scenario)
    arrays = rec.samples.arrays()
    n = rec.n_samples
    done = 0
    for stop in list(range(7, n - 1, 13)) + [n - 1]:
        tail = {k: v[stop:stop + 1] for k, v in arrays.items()}
        store.append(aid, samples={k: v[done:stop] for k, v in arrays.items()}, tail=tail)
        done = stop
        live = store.load_attempt(aid)
        assert live.n_samples == stop + 1  # the final ones and the tail
        assert np.array_equal(live.samples.time_s, arrays["time_s"][:stop + 1])
    store.append(aid, samples={k: v[done:] for k, v in arrays.items()}, inputs=rec.inputs, events=rec.events)
    info = store.finish_attempt(aid)
    assert info.n_samples == n
    with store._tx() as tx:
        rows = tx.all("SELECT n FROM sample_chunks WHERE attempt_id = ? ORDER BY first_index", (aid,))
    assert [r[0] for r in rows] == [n]  # compacted into one row (n < COMPACT_SAMPLES)
    assert store.load_attempt(aid).same_as(rec)


def test_codec_is_exact_for_every_bit():
    rng = np.random.default_rng(3)
    n = 50
    s = {"time_s": np.round(np.cumsum(rng.random(n)), 3), "needle_tip_to_world": rng.normal(size=(n, 4, 4)),
         "probe_to_world": np.full((n, 4, 4), np.nan), "carm_pose": rng.normal(size=(n, 5)),
         "tip_visible": rng.integers(-1, 2, n).astype(np.int8)}
    s["needle_tip_to_world"][3, 0, 0] = -0.0
    s["needle_tip_to_world"][4, 1, 1] = np.inf
    odd_nan = struct.unpack("<d", struct.pack("<Q", 0x7FF8DEADBEEF0001))[0]
    s["probe_to_world"][5, 2, 2] = odd_nan
    back = decode_samples(encode_samples(s), n)
    for k in s:
        assert back[k].dtype == np.asarray(s[k]).dtype or k == "tip_visible"
        assert np.asarray(back[k]).tobytes() == np.ascontiguousarray(s[k]).tobytes(), k
    assert decode_samples(encode_samples(empty_samples()), 0)["needle_tip_to_world"].shape == (0, 4, 4)
    ins = [InputRecord(0.1, "set_entry", {"point_mm": [1.0, 2.5, -3.25], "direction": [0.0, 1.0, 0.0]}),
           InputRecord(1 / 3, "tick", {}), InputRecord(2.0, "inject", {"kind": "contrast", "agent": "iohexol\n"})]
    assert [i.to_json() for i in decode_inputs(encode_inputs(ins), 3)] == [i.to_json() for i in ins]


def test_damaged_rows_are_reported_by_attempt(store, expert):
    aid = store.save_recording(expert[0].recording, expert[1])
    with store._tx() as tx:
        tx.run("UPDATE sample_chunks SET data = ? WHERE attempt_id = ?", (b"garbage", aid))
    with pytest.raises(RecordsError, match=f"attempt {aid}: damaged samples"):
        store.load_attempt(aid)


def test_delete_attempt_and_trainee(store, expert, novice):
    a1 = store.save_recording(expert[0].recording, expert[1])
    store.save_recording(novice[0].recording, novice[1])
    store.delete_attempt(a1)
    assert [a.id for a in store.list_attempts()] != [] and a1 not in [a.id for a in store.list_attempts()]
    with store._tx() as tx:
        assert tx.one("SELECT COUNT(*) FROM events WHERE attempt_id = ?", (a1,))[0] == 0
    assert store.delete_trainee("ann") == 1
    assert store.list_attempts() == [] and store.list_trainees() == []


def test_files_that_are_not_record_stores_are_named(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database at all, just text")
    with pytest.raises(RecordsError, match="junk.sqlite: not a records database"):
        SQLiteRecordStore(junk)
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(RecordsError, match="other.sqlite: not a records file"):
        SQLiteRecordStore(other, read_only=True)
    with pytest.raises(RecordsError, match="missing.sqlite: no such file"):
        SQLiteRecordStore(tmp_path / "missing.sqlite", read_only=True)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "future.sqlite"
    SQLiteRecordStore(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE nt_schema SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(RecordsError, match="schema 99"):
        SQLiteRecordStore(path)


def test_wal_mode_and_default_location(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROLYSIS_DATA", str(tmp_path / "data"))
    s = SQLiteRecordStore()
    try:
        assert s.path == tmp_path / "data" / "records.sqlite"
        assert s._conn().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        s.close()


class _FormatCursor:
    """A DB-API cursor with the "format" paramstyle (%s), as PostgreSQL drivers have, over sqlite3:
    any statement that did not go through the dialect (a bare ?) fails."""

    def __init__(self, cur):
        self.cur = cur

    def _sql(self, sql):
        assert "?" not in sql, sql
        return sql.replace("%s", "?")

    def execute(self, sql, params=()):
        self.cur.execute(self._sql(sql), params)
        return self

    def executemany(self, sql, rows):
        self.cur.executemany(self._sql(sql), rows)
        return self

    def fetchone(self):
        return self.cur.fetchone()

    def fetchall(self):
        return self.cur.fetchall()

    def close(self):
        self.cur.close()


class _FormatConnection:
    def __init__(self, path):
        self.con = sqlite3.connect(path)

    def cursor(self):
        return _FormatCursor(self.con.cursor())

    def commit(self):
        self.con.commit()

    def rollback(self):
        self.con.rollback()

    def close(self):
        self.con.close()


def test_every_statement_goes_through_the_dialect(tmp_path, expert, novice, scenario):
    """The generic DB-API store with a %s-style driver: the whole life of attempts works, so the
    SQL is portable to drivers like PostgreSQL's (whose dialect differs only in types)."""
    from dataclasses import replace

    dialect = replace(SQLITE, name="format-test", paramstyle="format")
    st = SQLRecordStore(lambda: _FormatConnection(str(tmp_path / "f.sqlite")), dialect)
    a1 = st.save_recording(expert[0].recording, expert[1], scenario=scenario, images={"shot": b"\x89PNG..."})
    assert st.load_attempt(a1).same_as(expert[0].recording)
    assert [t.name for t in st.list_trainees()] == ["ann"] and st.images(a1) == {"shot": b"\x89PNG..."}
    other = SQLiteRecordStore(tmp_path / "other.sqlite")
    a2 = other.save_recording(novice[0].recording, novice[1])
    copied = st.copy_attempt(other, a2)
    assert st.load_attempt(copied).same_as(novice[0].recording)
    assert st.score_cards([a1, copied]).keys() == {a1, copied}
    st.delete_attempt(a1)
    assert [a.id for a in st.list_attempts()] == [copied]
    other.close()
    st.close()
    assert POSTGRESQL.sql("SELECT x FROM t WHERE a = ? AND b = ?") == "SELECT x FROM t WHERE a = %s AND b = %s"
    assert "IDENTITY" in POSTGRESQL.autoid and POSTGRESQL.blob == "BYTEA"


def test_small_appends_fill_rows_of_fixed_size(store):
    """The live recorder's flushes (about 30 samples each) end up in rows of MAX_CHUNK_SAMPLES."""
    from simulator.records.store import MAX_CHUNK_SAMPLES

    rec = Recording(scenario_id="rows", scenario_version="v")
    n = 2 * MAX_CHUNK_SAMPLES + 200
    for i in range(n):
        m = np.eye(4)
        m[:3, 3] = [i, 0.5 * i, -i]
        rec.add_sample(i / 60.0, m)
    aid = store.start_attempt(rec)
    arrays = rec.samples.arrays()
    for a in range(0, n, 37):
        store.append(aid, samples={k: v[a:a + 37] for k, v in arrays.items()})
    with store._tx() as tx:
        rows = tx.all("SELECT first_index, n, t0, t1 FROM sample_chunks WHERE attempt_id = ? ORDER BY first_index",
                      (aid,))
    assert [(r[0], r[1]) for r in rows] == [(0, MAX_CHUNK_SAMPLES), (MAX_CHUNK_SAMPLES, MAX_CHUNK_SAMPLES),
                                            (2 * MAX_CHUNK_SAMPLES, 200)]
    t = arrays["time_s"]
    assert rows[1][2] == t[MAX_CHUNK_SAMPLES] and rows[1][3] == t[2 * MAX_CHUNK_SAMPLES - 1]
    back = store.load_attempt(aid)
    assert np.array_equal(back.samples.needle_tip_to_world, arrays["needle_tip_to_world"])
    assert np.array_equal(back.samples.time_s, arrays["time_s"])
