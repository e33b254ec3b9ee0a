"""Offline-first sync with a real PostgreSQL server: idempotent by UUID, checked by checksum, and
nothing lost or doubled whatever is killed when (random schedules, hypothesis; and real kill -9
of a sync process in mid-transfer)."""
from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.records.centre.sync import CentreSync
from simulator.records.store import SQLiteRecordStore
from simulator.records.store.postgres import PostgresRecordStore
from simulator.records.centre.schedules import (
    KILL_POINTS,
    ReusedServer,
    Workstation,
    run_schedule,
    steps_to_ops,
    synthetic_recording,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_tags = itertools.count(1)


@pytest.fixture
def server(pg_cluster, pg_database):
    conninfo = pg_cluster.conninfo(pg_database)
    return lambda: PostgresRecordStore(conninfo, migrate=False)


@pytest.fixture
def shared_server(pg_cluster, pg_database):
    shared = ReusedServer(pg_cluster.conninfo(pg_database))
    yield shared
    shared.shutdown()


def _server_count(open_server, where: str = "", params=()) -> int:
    s = open_server()
    try:
        with s._tx() as tx:
            return int(tx.one("SELECT COUNT(*) FROM attempts" + where, params)[0])
    finally:
        s.close()


def test_push_is_idempotent_and_the_server_copy_is_the_attempt(tmp_path, server):
    w = Workstation(tmp_path, "ws", server, "ann")
    uuids = [w.record(40 + k, seed=k) for k in range(3)]
    r = w.sync_round()
    assert sorted(r.pushed) == sorted(uuids) and r.ok and w.sync.pending() == []
    s = server()
    for u in uuids:
        here, there = w.store.attempt_by_uuid(u), s.attempt_by_uuid(u)
        assert s.load_attempt(there.id).same_as(w.store.load_attempt(here.id))
        assert s.score_card(there.id) == w.store.score_card(here.id)
    s.close()
    # sent again (the local marks lost): recognised by UUID and checksum, stored once
    with w.store._tx() as tx:
        tx.run("UPDATE attempts SET synced_at = ''")
    r = w.sync_round()
    assert sorted(r.already) == sorted(uuids) and r.pushed == []
    assert _server_count(server) == 3
    # a rescore here is sent as a new score card for the same attempt
    aid = w.store.attempt_by_uuid(uuids[0]).id
    w.store.set_score(aid, {"score": 12.5, "passed": False, "pass_mark": 50.0, "metrics": {}})
    r = w.sync_round()
    assert r.rescored == [uuids[0]]
    s = server()
    assert s.attempt_by_uuid(uuids[0]).score == 12.5 and _server_count(server) == 3
    s.close()
    w.close()


def test_trainees_and_history_follow_a_trainee_to_another_workstation(tmp_path, server):
    a = Workstation(tmp_path, "a", server, "ann")
    a.store.add_trainee("ann", "Dr Ann Example")
    u = a.record(30, seed=5)
    r = a.sync_round()
    assert "ann" in r.trainees_pushed and r.pushed == [u]
    b = Workstation(tmp_path, "b", server, "ann")
    b.sync.pull_history = lambda: ["ann"]
    r = b.sync_round()
    assert r.pulled == [u] and b.sync.pending() == []
    assert {t.name: t.full_name for t in b.store.list_trainees()}["ann"] == "Dr Ann Example"
    assert b.store.load_attempt(b.store.attempt_by_uuid(u).id).same_as(a.store.load_attempt(1))
    assert b.sync_round().pulled == []  # once
    a.close()
    b.close()


def test_offline_recording_is_untouched_and_sent_when_the_server_is_back(tmp_path, server):
    from simulator.records.centre.cluster import _free_port

    port = _free_port()  # nothing listens there
    down = CentreSync(SQLiteRecordStore(tmp_path / "ws.sqlite"),
                      lambda: PostgresRecordStore(f"host=127.0.0.1 port={port} dbname=x user=ann", connect_timeout_s=2))
    down.local.save_recording(synthetic_recording("ann", 20, 1), {"score": 80.0, "passed": True, "metrics": {}})
    before = down.local.raw_attempt(1)
    r = down.sync_once()
    assert down.state == "offline" and f"127.0.0.1:{port}" in r.error and "server unreachable" in r.error
    assert down.local.raw_attempt(1) == before and len(down.pending()) == 1
    down.open_server = server
    assert down.sync_once().pushed == [before["attempt"]["uuid"]] and down.state == "online"
    down.local.close()


def test_a_record_failing_its_checksum_is_not_sent_and_left_as_it_is(tmp_path, server):
    w = Workstation(tmp_path, "ws", server, "ann")
    good = w.record(30, seed=1)
    bad = w.record(30, seed=2)
    aid = w.store.attempt_by_uuid(bad).id
    with w.store._tx() as tx:  # a damaged disk: one byte of a sample row changed after it was closed
        data = bytearray(tx.one("SELECT data FROM sample_chunks WHERE attempt_id = ?", (aid,))[0])
        data[10] ^= 0x01
        tx.run("UPDATE sample_chunks SET data = ? WHERE attempt_id = ?", (bytes(data), aid))
    damaged = w.store.raw_attempt(aid)
    r = w.sync_round()
    assert r.pushed == [good] and list(r.failed) == [bad]
    assert f"attempt {bad} (#{aid} in {w.store.location}) fails its checksum" in r.failed[bad]
    assert w.store.raw_attempt(aid) == damaged and [p[1] for p in w.sync.pending()] == [bad]
    assert _server_count(server, " WHERE uuid = %s", (bad,)) == 0
    w.close()


def test_a_copy_damaged_on_the_way_is_not_kept_on_the_server(tmp_path, server, monkeypatch):
    from simulator.records.store.sql import SQLRecordStore

    w = Workstation(tmp_path, "ws", server, "ann")
    u = w.record(30, seed=3)
    original = SQLRecordStore._insert_raw

    def damaging(self, tx, raw, extra=None):
        raw = dict(raw, events=[(s, t + 1e-9, k, m, d) for s, t, k, m, d in raw["events"]])
        return original(self, tx, raw, extra)

    monkeypatch.setattr(SQLRecordStore, "_insert_raw", damaging)
    r = w.sync_round()
    assert "does not match its checksum" in r.failed[u] and "nothing was kept there" in r.failed[u]
    assert _server_count(server) == 0
    monkeypatch.setattr(SQLRecordStore, "_insert_raw", original)
    assert w.sync_round().pushed == [u]
    w.close()


STEPS = st.lists(st.tuples(
    st.integers(0, 1),  # the workstation
    st.booleans(),  # the network up
    st.lists(st.tuples(st.integers(5, 60), st.booleans()), max_size=2),  # attempts: samples, finished
    st.booleans(),  # the trainer restarted (recovering attempts its dead recorder left open)
    st.sampled_from((None,) + KILL_POINTS),  # where its sync is killed
), min_size=1, max_size=5)


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=STEPS)
def test_random_schedules_of_outages_and_kills_lose_and_double_nothing(shared_server, steps):
    """>= 200 random schedules: two workstations record (or die mid-attempt), go offline and
    online, restart, and their syncs are killed at every kill point (mid-transfer included). When
    the network is back and the workstations restarted, every closed attempt is on the server
    exactly once, with the content it was sealed with."""
    tag = f"s{os.getpid()}x{next(_tags):05d}"
    assert run_schedule(shared_server, steps_to_ops(steps), tag) == (0, 0)


@pytest.mark.parametrize("kill_in", [1, 4])
def test_kill_9_of_a_sync_process_in_mid_transfer(tmp_path, pg_cluster, pg_database, kill_in):
    """A real sync process (`python -m tests.records.sync_child`) sending 6 attempts is killed with
    SIGKILL while the rows of attempt `kill_in` are written on the server but not committed; a new
    sync finishes the job: every attempt on the server once, with its checksum."""
    conninfo = pg_cluster.conninfo(pg_database)
    w = Workstation(tmp_path, "ws", lambda: PostgresRecordStore(conninfo, migrate=False), f"k{kill_in}")
    uuids = [w.record(200, seed=k) for k in range(6)]
    w.store.close()
    child = subprocess.Popen([sys.executable, "-m", "tests.records.sync_child", str(w.path), conninfo],
                             cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        for _ in range(kill_in):
            assert child.stdout.readline().strip() == "writing"
        time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    assert child.returncode == -signal.SIGKILL
    w.store = SQLiteRecordStore(w.path)
    w.sync = w._new_sync()
    partial = _server_count(w.server_factory, " WHERE trainee = %s", (w.trainee,))
    assert partial == kill_in - 1  # the attempt being written was undone by the server
    r = w.sync_round()
    assert w.sync.pending() == [] and len(r.pushed) == 6 - partial and len(r.already) <= 1
    s = w.server_factory()
    with s._tx() as tx:
        rows = tx.all("SELECT uuid, checksum FROM attempts WHERE trainee = %s", (w.trainee,))
    s.close()
    assert sorted(u for u, _ in rows) == sorted(uuids)
    with w.store._tx() as tx:
        local = dict(tx.all("SELECT uuid, checksum FROM attempts"))
    assert dict(rows) == local
    w.close()


def test_a_newer_server_schema_stops_the_sync_by_name_and_touches_nothing(tmp_path, pg_cluster, pg_database):
    from simulator.records.store.migrations import SCHEMA_VERSION

    w = Workstation(tmp_path, "ws", lambda: PostgresRecordStore(pg_cluster.conninfo(pg_database), migrate=False), "ann")
    w.record(30, seed=1)
    before = w.store.raw_attempt(1)
    with pg_cluster.admin(pg_database) as c:
        c.execute("UPDATE nt_schema SET value = %s WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    r = w.sync_round()
    assert f"schema {SCHEMA_VERSION + 1}" in r.error and "update the trainer" in r.error and w.sync.state == "error"
    assert w.store.raw_attempt(1) == before and len(w.sync.pending()) == 1
    with pg_cluster.admin(pg_database) as c:
        assert c.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 0
    w.close()


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=80))
def test_any_server_setting_is_taken_or_refused_by_name(text):
    """The server setting is user input: whatever it holds, a connection string or a ServerError
    naming it, never a traceback; never one with a password."""
    from simulator.records.centre.config import server_conninfo
    from simulator.records.store.postgres import ServerError, conninfo_params, describe

    try:
        got = server_conninfo(text)
    except ServerError as e:
        assert e.kind == "config" and str(e)
        return
    if got is not None:
        assert "password" not in {k.lower() for k in conninfo_params(got)}
        assert describe(got).startswith("postgresql")
