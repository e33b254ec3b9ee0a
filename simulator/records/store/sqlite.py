"""`SQLiteRecordStore`: the default store, one SQLite file per workstation."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from simulator.records.store.model import RecordsError
from simulator.records.store.migrations import SCHEMA_VERSION
from simulator.records.store.schema import SQLITE
from simulator.records.store.sql import SQLRecordStore

DB_FILE_NAME = "records.sqlite"


class SQLiteRecordStore(SQLRecordStore):
    """The default store: one SQLite file, WAL mode (readers never wait for the recorder)."""

    def __init__(self, path: str | os.PathLike | None = None, *, wal: bool = True, read_only: bool = False):
        """`read_only`: open an existing file without changing it (importing records from it)."""
        self.path = Path(path) if path is not None else default_db_path()
        self.wal = wal
        self.read_only = read_only
        if read_only and not self.path.is_file():
            raise RecordsError(f"{self.path}: no such file")
        if self.path.is_file():
            _check_sqlite_file(self.path)
        elif self.path.exists():
            raise RecordsError(f"{self.path}: is not a file")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            super().__init__(self._open, SQLITE, location=str(self.path))
        except sqlite3.DatabaseError as e:
            self.close()
            raise RecordsError(f"{self.path}: not a records database ({e})") from None

    def _open(self):
        if self.read_only:
            uri = self.path.resolve().as_uri() + "?mode=ro"
            return sqlite3.connect(uri, uri=True, timeout=30.0, check_same_thread=True)
        return sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=True)

    def _create_schema(self) -> None:
        if not self.read_only:
            super()._create_schema()
            return
        with self._tx() as tx:
            tables = {r[0] for r in tx.all("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"nt_schema", "attempts", "sample_chunks"} <= tables:
                raise RecordsError(f"{self.path}: not a records file of this program (no attempts tables)")
            row = tx.one("SELECT value FROM nt_schema WHERE key = ?", ("schema_version",))
            if row is None or int(row[0]) > SCHEMA_VERSION:
                raise RecordsError(f"{self.path}: records schema {row[0] if row else 'unknown'}; this version "
                                   f"reads {SCHEMA_VERSION}")

    def _setup_connection(self, conn) -> None:
        conn.execute("PRAGMA busy_timeout = 30000")
        if self.read_only:
            return
        if self.wal:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # in WAL: durable against a killed process
        else:
            conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA foreign_keys = ON")

    def checkpoint(self) -> None:
        """Move the WAL into the main file (for measuring or copying the file)."""
        if self.wal:
            self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def size_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                total += p.stat().st_size
        return total


def _check_sqlite_file(path: Path) -> None:
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise RecordsError(f"{path}: cannot open ({e.strerror or e})") from None
    if head and head != b"SQLite format 3\x00":
        raise RecordsError(f"{path}: not a records database (not an SQLite file)")


def default_db_path() -> Path:
    from simulator.core.paths import user_data_dir

    return user_data_dir() / DB_FILE_NAME


def open_store(path: str | os.PathLike | None = None) -> SQLiteRecordStore:
    """The record store at `path` (default: the user's records.sqlite)."""
    return SQLiteRecordStore(path)
