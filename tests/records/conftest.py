"""Fixtures for the record store tests: scripted attempts on the test block (fast, exact), and the\nstore on both backends (SQLite, PostgreSQL)."""
from __future__ import annotations

import pytest

from simulator.benchmarks.scoring import expert_attempt, novice_attempt, synthetic_block_anatomy, synthetic_scenario
from simulator.core.procedure import Procedure
from simulator.core.scoring import score_attempt
from simulator.records.store import SQLiteRecordStore


@pytest.fixture(scope="session")
def block():
    return synthetic_block_anatomy()


@pytest.fixture(scope="session")
def scenario():
    return synthetic_scenario()


@pytest.fixture(scope="session")
def expert(scenario, block):
    """The scripted expert attempt (passes) and its score card."""
    proc = expert_attempt(Procedure(scenario, block, clock=lambda: 0.0, trainee="ann"), t0=1.0)
    proc.recording.started_at = "2026-01-05T10:00:00+00:00"  # fixed, so listings have a known order
    return proc, score_attempt(proc.recording, scenario, block)


@pytest.fixture(scope="session")
def novice(scenario, block):
    """The scripted novice attempt (fails: aorta, no aspiration, no local anaesthetic ...)."""
    proc = novice_attempt(Procedure(scenario, block, clock=lambda: 0.0, trainee="ann"))
    proc.recording.started_at = "2026-01-05T09:00:00+00:00"  # an hour before the expert attempt
    return proc, score_attempt(proc.recording, scenario, block)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """The record store every store test runs on: a workstation's SQLite file, and a centre's
    PostgreSQL server (a fresh database on the session's throw-away cluster)."""
    if request.param == "sqlite":
        s = SQLiteRecordStore(tmp_path / "records.sqlite")
    else:
        from simulator.records.store.postgres import PostgresRecordStore

        cluster = request.getfixturevalue("pg_cluster")
        s = PostgresRecordStore(cluster.conninfo(request.getfixturevalue("pg_database")))
    yield s
    s.close()
