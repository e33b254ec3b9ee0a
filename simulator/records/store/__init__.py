"""The record store (a package, one module per job): trainees, scenarios, attempts with their samples, events, inputs and scores.

Interface
---------
`RecordStore` is the storage interface the rest of the program uses (the live recorder, the
exchange formats, the reports, the command line, the GUI):

    add_trainee(name, full_name="")               -> Trainee
    list_trainees()                               -> [Trainee]
    start_attempt(recording, scenario=None, ...)  -> attempt id (status "live")
    append(id, samples=, inputs=, events=, tail=, images=)   one transaction
    finish_attempt(id, card=None, status="finished", recording=None)
    list_attempts(trainee=None, scenario=None, status=None)  -> [AttemptInfo], oldest first
    attempt(id) -> AttemptInfo      score_card(id) -> dict | None      images(id) -> {name: png}
    load_attempt(id) -> Recording   (samples bit for bit, events, inputs, meta)
    recoverable_attempts() -> [AttemptInfo]   recover(id) -> Recording (status "recovered")
    save_recording(recording, card=None, ...) -> id   (a whole attempt at once: imports)
    copy_attempt(other_store, id)  (by UUID, for merging records between stores)
    delete_attempt(id)
    resolve(ref) -> id   (a number, or a UUID or a unique prefix of one, as typed on a command line)

Attempts have a local number (`id`, for people) and a UUID (`uuid`, the identity that survives
moving records between workstations: merging never duplicates an attempt).

Storage
-------
`SQLRecordStore` implements the interface over any DB-API 2 connection with portable SQL (no
SQLAlchemy): plain CREATE TABLE with a small `Dialect` for the few differences (the
auto-numbered key, the floating point and binary column types, the parameter marker), `INSERT ...
RETURNING` and `ON CONFLICT DO NOTHING` (SQLite >= 3.35 and PostgreSQL >= 9.5 both have them).
`SQLiteRecordStore(path)` is the default: one file (`user_data_dir()/records.sqlite`) in WAL
mode, one connection per thread (the live recorder writes from its own thread while the GUI
reads).

Samples are stored in chunks of up to `MAX_CHUNK_SAMPLES` (each flush of the live recorder fills
the newest row up, then starts a new one) encoded by `codec.encode_samples` (exact float64);
inputs likewise in chunks of JSON lines; events one row each (so they can be queried by kind);
images (PNG bytes: fluoroscopy shots, the ultrasound frame at injection) one row each.

A centre's PostgreSQL server is `PostgresRecordStore(conninfo)` (psycopg 3; credentials from
libpq's service file, .pgpass or environment): the same schema and statements run there (`%s`
markers, BIGINT identity key, DOUBLE PRECISION, BYTEA), plus roles and row-level security.
`migrations` brings any store up to the current schema version.

Modules
-------
`model` (Trainee, AttemptInfo, errors), `liveness` (is a live attempt still being recorded),
`interface` (RecordStore), `schema` (tables, Dialect), `migrations` (the schema versions),
`checksum` (an attempt's content hash), `sql` (SQLRecordStore), `sqlite` (SQLiteRecordStore, the
default file), `postgres` (PostgresRecordStore, a centre's server).
"""
from simulator.records.store.interface import RecordStore
from simulator.records.store.liveness import (
    _ACTIVE,
    HEARTBEAT_S,
    STALE_S,
    _pid_running,
    mark_active,
    orphaned,
    this_process,
)
from simulator.records.store.model import STATUSES, AttemptInfo, RecordsError, Trainee, UnknownAttempt, now_iso
from simulator.records.store.schema import (
    ATTEMPT_COLUMNS,
    ATTEMPT_FROM,
    POSTGRESQL,
    SCHEMA,
    SQLITE,
    Dialect,
)
from simulator.records.store.migrations import MIGRATIONS, SCHEMA_VERSION, Migration, migrate
from simulator.records.store.sql import (
    COMPACT_SAMPLES,
    MAX_CHUNK_INPUTS,
    MAX_CHUNK_SAMPLES,
    SQLRecordStore,
)
from simulator.records.store.postgres import PostgresRecordStore, ServerError
from simulator.records.store.sqlite import (
    DB_FILE_NAME,
    SQLiteRecordStore,
    default_db_path,
    open_store,
)

__all__ = ["AttemptInfo", "Dialect", "POSTGRESQL", "PostgresRecordStore", "RecordStore", "ServerError", "RecordsError", "SQLITE", "SQLRecordStore",
           "SQLiteRecordStore", "Trainee", "UnknownAttempt", "default_db_path", "open_store"]
