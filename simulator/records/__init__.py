"""Trainees' records: every attempt stored, replayable, rescorable, exportable and reported.

- `store`: the record store (`RecordStore` interface; SQLite by default, portable DB-API SQL)
- `live`: `LiveRecorder`, crash-safe recording of an attempt while it happens
- `exchange`: .igs.mha (3D Slicer / Perk Tutor), CSV and JSON exports and imports; a trainee's
  records in one file, merged by attempt UUID
- `rescore`: replay an attempt's inputs and score it again
- `progress`: learning curves and the instructor's overview, as plain data
- `report`, `plots`: HTML and PDF reports of an attempt

Nothing here imports Qt except the PDF writer (on demand).
"""
from simulator.records.live import LiveRecorder
from simulator.records.store import (
    AttemptInfo,
    RecordsError,
    RecordStore,
    SQLiteRecordStore,
    SQLRecordStore,
    Trainee,
    UnknownAttempt,
    default_db_path,
    open_store,
)

__all__ = ["AttemptInfo", "LiveRecorder", "RecordStore", "RecordsError", "SQLRecordStore", "SQLiteRecordStore",
           "Trainee", "UnknownAttempt", "default_db_path", "open_store"]
