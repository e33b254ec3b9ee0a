"""Schema migrations: an older store is brought up to date with its records intact, every step is
all or nothing, a newer store is refused by name, and a server is migrated once however many
workstations open it at the same moment."""
from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from simulator.records.store import SQLiteRecordStore
from simulator.records.store.migrations import MIGRATIONS, SCHEMA_VERSION, Migration, migrate, stored_version
from simulator.records.store.model import RecordsError
from simulator.records.store.schema import SQLITE
from simulator.records.store.sql import SQLRecordStore


def _columns(path) -> dict[str, list[tuple]]:
    con = sqlite3.connect(path)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: [tuple(r[1:]) for r in con.execute(f"PRAGMA table_info({t})")] for t in tables}
    finally:
        con.close()


@pytest.fixture
def v1_path(tmp_path, expert):
    """A records file as the first release wrote it (schema 1) with one finished attempt: its rows
    written with plain SQL into the tables of migration 1."""
    now = SQLiteRecordStore(tmp_path / "now.sqlite")
    raw = now.raw_attempt(now.save_recording(expert[0].recording, expert[1]))
    card = now.score_card(1)
    now.close()
    path = tmp_path / "v1.sqlite"
    con = sqlite3.connect(path)
    for stmt in MIGRATIONS[0].statements_for(SQLITE):
        con.execute(stmt)
    con.execute("INSERT INTO nt_schema VALUES ('schema_version', '1')")
    con.execute("INSERT INTO trainees VALUES (?, ?, ?)", raw["trainee"])
    con.execute("INSERT INTO scenarios VALUES (?, ?, ?, ?, '')", raw["scenario"])
    att = dict(raw["attempt"], score_card_json=json.dumps(card))
    con.execute(f"INSERT INTO attempts ({', '.join(att)}) VALUES ({', '.join('?' * len(att))})", list(att.values()))
    con.executemany("INSERT INTO sample_chunks VALUES (1, ?, ?, ?, ?, ?, ?)", raw["samples"])
    con.executemany("INSERT INTO input_chunks VALUES (1, ?, ?, ?, ?)", raw["inputs"])
    con.executemany("INSERT INTO events VALUES (1, ?, ?, ?, ?, ?)", raw["events"])
    con.commit()
    con.close()
    return path


def test_a_first_release_file_is_migrated_with_its_records_intact(v1_path, tmp_path, expert):
    con = sqlite3.connect(v1_path)
    assert con.execute("SELECT value FROM nt_schema").fetchone()[0] == "1"
    assert "checksum" not in [r[1] for r in con.execute("PRAGMA table_info(attempts)")]
    con.close()
    # read-only (an import source) it is read as it is, unchanged
    ro = SQLiteRecordStore(v1_path, read_only=True)
    assert ro.load_attempt(1).same_as(expert[0].recording)
    ro.close()
    st = SQLiteRecordStore(v1_path)
    with st._tx() as tx:
        assert stored_version(tx) == SCHEMA_VERSION
    assert st.load_attempt(1).same_as(expert[0].recording) and st.score_card(1)["score"] == expert[1].score
    st.close()
    # the migrated file has exactly the tables and columns of a new one
    SQLiteRecordStore(tmp_path / "new.sqlite").close()
    assert _columns(v1_path) == _columns(tmp_path / "new.sqlite")


def test_a_failing_migration_leaves_the_store_at_its_version(v1_path):
    bad = MIGRATIONS[:2] + (Migration(3, "broken", ("CREATE TABLE half_done (x INTEGER)",
                                                   "ALTER TABLE no_such_table ADD COLUMN y INTEGER")),)

    class Partial(SQLRecordStore):
        def _create_schema(self):
            migrate(self, migrations=bad)

    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        Partial(lambda: sqlite3.connect(str(v1_path)), SQLITE, location=str(v1_path))
    con = sqlite3.connect(v1_path)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    version = con.execute("SELECT value FROM nt_schema").fetchone()[0]
    con.close()
    assert version == "2" and "half_done" not in tables and "live_progress" in tables


def test_versions_are_consecutive_and_the_newest_is_current():
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert SCHEMA_VERSION == MIGRATIONS[-1].version
    # PostgreSQL-only steps (roles, row-level security) are versions for SQLite too, with no statements
    assert MIGRATIONS[2].statements_for(SQLITE) == []


def test_a_newer_sqlite_schema_is_refused_by_name(tmp_path):
    path = tmp_path / "future.sqlite"
    SQLiteRecordStore(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE nt_schema SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    con.commit()
    con.close()
    with pytest.raises(RecordsError, match=f"future.sqlite: .*schema {SCHEMA_VERSION + 1}; this version reads up to "
                                           f"{SCHEMA_VERSION}"):
        SQLiteRecordStore(path)


def test_a_newer_server_schema_is_refused_and_nothing_is_written(pg_cluster, pg_database):
    from simulator.records.store.postgres import PostgresRecordStore, ServerError

    with pg_cluster.admin(pg_database) as c:
        c.execute("UPDATE nt_schema SET value = %s WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(ServerError, match=f"postgresql://postgres@.*/{pg_database}.*schema {SCHEMA_VERSION + 1}") as e:
        PostgresRecordStore(pg_cluster.conninfo(pg_database))
    assert e.value.kind == "schema"
    with pg_cluster.admin(pg_database) as c:
        assert c.execute("SELECT value FROM nt_schema WHERE key = 'schema_version'").fetchone()[0] == str(
            SCHEMA_VERSION + 1)
        assert c.execute("SELECT COUNT(*) FROM trainees").fetchone()[0] == 0


def test_ten_workstations_opening_an_empty_server_at_once_migrate_it_once(pg_cluster):
    from simulator.records.store.postgres import PostgresRecordStore

    name = pg_cluster.create_database("nt_empty_for_migration")
    errors, stores = [], []
    go = threading.Barrier(10)

    def open_one():
        try:
            go.wait()
            stores.append(PostgresRecordStore(pg_cluster.conninfo(name)))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(stores) == 10
    stores[0].add_trainee("ann")
    assert [t.name for t in stores[9].list_trainees()] == ["ann"]
    for s in stores:
        s.close()
    with pg_cluster.admin(name) as c:
        assert c.execute("SELECT value FROM nt_schema").fetchall() == [(str(SCHEMA_VERSION),)]
