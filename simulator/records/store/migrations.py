"""Schema migrations: a short list keyed on the schema version, for SQLite and PostgreSQL alike.

The store keeps its schema version in `nt_schema` (key "schema_version"). Opening a store runs
every migration newer than that version, each in its own transaction together with the new
version number, so a store is always at one version or the next, never in between (SQLite and
PostgreSQL both undo DDL with the transaction; PostgreSQL takes an advisory lock first so ten
workstations starting at once migrate a server once). A store whose version is newer than
`SCHEMA_VERSION` is refused with a message naming it: this trainer would misread it.

A migration is plain statements (with `{autoid}`, `{real}`, `{blob}` filled from the dialect),
statements only one dialect runs (PostgreSQL's roles and row-level security), and an optional
Python step for data. Add a migration at the end; never change one that has shipped.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from simulator.records.store.model import RecordsError
from simulator.records.store.schema import SCHEMA


@dataclass(frozen=True)
class Migration:
    version: int
    title: str
    statements: tuple[str, ...] = ()
    only: dict[str, tuple[str, ...]] = field(default_factory=dict)  # dialect name -> statements
    data: Callable | None = None  # data(tx, dialect) after the statements, same transaction

    def statements_for(self, dialect) -> list[str]:
        out = [s.format(autoid=dialect.autoid, real=dialect.real, blob=dialect.blob) for s in self.statements]
        if dialect.text_for_varchar:
            out = [re.sub(r"VARCHAR\(\d+\)", "TEXT", s) for s in out]
        return out + list(self.only.get(dialect.name, ()))


CENTRE_TABLES = (
    # an attempt's content checksum (set when it is finished) and when it reached the server
    "ALTER TABLE attempts ADD COLUMN checksum VARCHAR(80) NOT NULL DEFAULT ''",
    "ALTER TABLE attempts ADD COLUMN synced_at VARCHAR(40) NOT NULL DEFAULT ''",
    "CREATE INDEX IF NOT EXISTS attempts_by_sync ON attempts (synced_at, status)",
    # a trainee's database role on a centre server, and changes not yet sent there
    "ALTER TABLE trainees ADD COLUMN login VARCHAR(200) NOT NULL DEFAULT ''",
    "ALTER TABLE trainees ADD COLUMN synced_at VARCHAR(40) NOT NULL DEFAULT ''",
    """CREATE TABLE IF NOT EXISTS cohorts (
        name VARCHAR(200) PRIMARY KEY,
        title TEXT NOT NULL DEFAULT '')""",
    """CREATE TABLE IF NOT EXISTS cohort_members (
        cohort VARCHAR(200) NOT NULL REFERENCES cohorts (name),
        trainee VARCHAR(200) NOT NULL REFERENCES trainees (name),
        PRIMARY KEY (cohort, trainee))""",
    """CREATE TABLE IF NOT EXISTS cohort_instructors (
        cohort VARCHAR(200) NOT NULL REFERENCES cohorts (name),
        login VARCHAR(200) NOT NULL,
        PRIMARY KEY (cohort, login))""",
    # what each workstation is doing now (the instructor's live dashboard)
    """CREATE TABLE IF NOT EXISTS live_progress (
        workstation VARCHAR(200) NOT NULL,
        trainee VARCHAR(200) NOT NULL,
        attempt_uuid VARCHAR(64) NOT NULL DEFAULT '',
        scenario_id VARCHAR(200) NOT NULL DEFAULT '',
        scenario_title TEXT NOT NULL DEFAULT '',
        state VARCHAR(16) NOT NULL DEFAULT 'live',
        step TEXT NOT NULL DEFAULT '',
        distance_mm {real},
        elapsed_s {real},
        events_json TEXT NOT NULL DEFAULT '[]',
        updated_at VARCHAR(40) NOT NULL DEFAULT '',
        updated_s {real},
        PRIMARY KEY (workstation, trainee))""",
)

# PostgreSQL only: the three roles and what each may see (row-level security). A trainee's rows
# are those of `trainees` whose login is the connected role; an instructor sees the trainees of
# the cohorts they teach; nt_admin sees everything. Attempts, their rows and live progress are
# visible exactly when their trainee is (the policies read `trainees` under its own policy).
ROLES_AND_RLS = (
    """DO $$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'nt_trainee') THEN CREATE ROLE nt_trainee NOLOGIN; END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'nt_instructor') THEN
            CREATE ROLE nt_instructor NOLOGIN; END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'nt_admin') THEN CREATE ROLE nt_admin NOLOGIN; END IF;
    END $$""",
    """CREATE OR REPLACE FUNCTION nt_is_admin() RETURNS boolean LANGUAGE sql STABLE
        AS $$ SELECT pg_has_role(current_user, 'nt_admin', 'MEMBER') $$""",
    """CREATE OR REPLACE FUNCTION nt_is_instructor() RETURNS boolean LANGUAGE sql STABLE
        AS $$ SELECT pg_has_role(current_user, 'nt_instructor', 'MEMBER') $$""",
    "GRANT SELECT ON nt_schema, cohorts, cohort_members, cohort_instructors TO nt_trainee, nt_instructor",
    "GRANT SELECT, INSERT, UPDATE ON scenarios TO nt_trainee, nt_instructor",
    "GRANT SELECT, INSERT ON trainees, attempts, sample_chunks, input_chunks, events, images "
    "TO nt_trainee, nt_instructor",
    "GRANT UPDATE (full_name, login, synced_at) ON trainees TO nt_trainee, nt_instructor",
    # scores may be updated (a rescored attempt); what was recorded may not
    "GRANT UPDATE (score, passed, pass_mark, score_card_json, synced_at) ON attempts TO nt_trainee, nt_instructor",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON live_progress TO nt_trainee, nt_instructor",
    "GRANT ALL ON ALL TABLES IN SCHEMA public TO nt_admin",
    "ALTER TABLE trainees ENABLE ROW LEVEL SECURITY",
    """CREATE POLICY trainees_read ON trainees FOR SELECT USING (
        login = current_user::text OR nt_is_admin() OR name IN (
            SELECT m.trainee FROM cohort_members m JOIN cohort_instructors i ON i.cohort = m.cohort
            WHERE i.login = current_user::text))""",
    "CREATE POLICY trainees_add ON trainees FOR INSERT WITH CHECK (login = current_user::text OR nt_is_admin() "
    "OR nt_is_instructor())",
    "CREATE POLICY trainees_change ON trainees FOR UPDATE USING (login = current_user::text OR nt_is_admin())",
    "CREATE POLICY trainees_remove ON trainees FOR DELETE USING (nt_is_admin())",
    "ALTER TABLE attempts ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY attempts_read ON attempts FOR SELECT USING (trainee IN (SELECT name FROM trainees))",
    "CREATE POLICY attempts_add ON attempts FOR INSERT WITH CHECK (trainee IN (SELECT name FROM trainees))",
    "CREATE POLICY attempts_change ON attempts FOR UPDATE USING (trainee IN (SELECT name FROM trainees))",
    "CREATE POLICY attempts_remove ON attempts FOR DELETE USING (nt_is_admin())",
    *(stmt.format(t=t) for t in ("sample_chunks", "input_chunks", "events", "images") for stmt in (
        "ALTER TABLE {t} ENABLE ROW LEVEL SECURITY",
        "CREATE POLICY {t}_read ON {t} FOR SELECT USING (attempt_id IN (SELECT id FROM attempts))",
        "CREATE POLICY {t}_add ON {t} FOR INSERT WITH CHECK (attempt_id IN (SELECT id FROM attempts))",
        "CREATE POLICY {t}_admin ON {t} FOR ALL USING (nt_is_admin())")),
    "ALTER TABLE live_progress ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY live_progress_own ON live_progress USING (trainee IN (SELECT name FROM trainees))",
)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "trainees, scenarios, attempts and their samples, inputs, events and images", tuple(SCHEMA)),
    Migration(2, "centre: checksums and sync marks, trainee logins, cohorts, live progress", CENTRE_TABLES),
    Migration(3, "centre: roles trainee / instructor / admin and row-level security",
              only={"postgresql": ROLES_AND_RLS}),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


def stored_version(tx) -> int:
    """The schema version a store holds (0: an empty database)."""
    if tx.one(tx.store.dialect.has_table, ("nt_schema",)) is None:
        return 0
    row = tx.one("SELECT value FROM nt_schema WHERE key = ?", ("schema_version",))
    return 0 if row is None else int(row[0])


def _set_version(tx, version: int) -> None:
    tx.run("DELETE FROM nt_schema WHERE key = ?", ("schema_version",))
    tx.run("INSERT INTO nt_schema (key, value) VALUES (?, ?)", ("schema_version", str(version)))


def newer_schema_message(location: str, version: int) -> str:
    return (f"{location}: records written by a newer version of the trainer (schema {version}; this version "
            f"reads up to {SCHEMA_VERSION}): update the trainer on this machine")


def pending(version: int) -> list[Migration]:
    return [m for m in MIGRATIONS if m.version > version]


def migrate(store, *, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Bring `store` (an SQLRecordStore) up to the newest version; the versions applied."""
    newest = migrations[-1].version
    with store._tx() as tx:
        version = stored_version(tx)
    if version > newest:
        raise RecordsError(newer_schema_message(store.location, version))
    applied = []
    for m in migrations:
        if m.version <= version:
            continue
        with store._tx(migration=True) as tx:
            current = stored_version(tx)  # under the lock: another process may have done it
            if current >= m.version:
                continue
            for stmt in m.statements_for(store.dialect):
                tx.run(stmt)
            if m.data is not None:
                m.data(tx, store.dialect)
            _set_version(tx, m.version)
        applied.append(m.version)
    return applied
