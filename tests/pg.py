"""A throw-away PostgreSQL server for the tests (one per session, initdb + pg_ctl in a temp folder).

Fixtures (imported by tests/conftest.py): `pg_cluster`, the running server; `pg_template`, a
database migrated to the current schema; `pg_database`, a fresh copy of it for one test (a clone
takes ~0.1 s). Without Debian's postgresql package these tests skip with a message naming it,
except under CI (CI=true), where .ci/run installs it and a missing server is a failure.
"""
from __future__ import annotations

import itertools
import os

import pytest

_counter = itertools.count(1)


@pytest.fixture(scope="session")
def pg_cluster():
    from simulator.records.centre.cluster import PACKAGE_HINT, LocalCluster, find_bindir

    if find_bindir() is None:
        message = f"PostgreSQL server programs (initdb, pg_ctl) not found: {PACKAGE_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message + " (.ci/run installs it)")
        pytest.skip(message)
    cluster = LocalCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def pg_template(pg_cluster):
    from simulator.records.store.postgres import PostgresRecordStore

    pg_cluster.create_database("nt_template")
    PostgresRecordStore(pg_cluster.conninfo("nt_template")).close()
    return "nt_template"


@pytest.fixture
def pg_database(pg_cluster, pg_template):
    """The name of a fresh database at the current schema (left for the cluster's removal at the
    end of the session: dropping one waits for a checkpoint)."""
    name = f"nt_test_{os.getpid()}_{next(_counter)}"
    pg_cluster.create_database(name, template=pg_template)
    return name
