"""Roles on a real PostgreSQL server: a trainee reads and writes only their own attempts, an
instructor reads their cohorts', the admin everything (row-level security); credentials come from
libpq's own places only; every refusal names what failed and leaves nothing half-written."""
from __future__ import annotations

import pytest

from simulator.core.recording import Recording
from simulator.records.centre import admin
from simulator.records.centre.sync import CentreSync
from simulator.records.progress import instructor_overview
from simulator.records.store import SQLiteRecordStore, UnknownAttempt
from simulator.records.store.postgres import PostgresRecordStore, ServerError
from simulator.records.centre.schedules import synthetic_recording


def _as(cluster, db, login, **kw):
    return PostgresRecordStore(cluster.conninfo(db, user=login), migrate=False, **kw)


@pytest.fixture
def centre(pg_cluster, pg_database, expert, novice, scenario):
    """ann and bob (trainees, cohorts c1 and c2), lee teaches c1, max teaches c2; one attempt each."""
    su = PostgresRecordStore(pg_cluster.conninfo(pg_database))
    for login, role in (("ann", "trainee"), ("bob", "trainee"), ("lee", "instructor"), ("max", "instructor"),
                        ("ada", "admin")):
        admin.add_user(su, login, role)
    for cohort, trainee, teacher in (("c1", "ann", "lee"), ("c2", "bob", "max")):
        admin.add_cohort(su, cohort)
        admin.add_member(su, cohort, trainee)
        admin.add_instructor(su, cohort, teacher)
    ann = su.save_recording(expert[0].recording, expert[1], scenario=scenario)
    bob_rec = Recording.from_json_dict(novice[0].recording.to_json_dict())
    bob_rec.trainee = "bob"
    bob = su.save_recording(bob_rec, novice[1], scenario=scenario)
    ids = {"ann": su.attempt(ann).uuid, "bob": su.attempt(bob).uuid}
    yield su, ids
    su.close()


def _counts(su) -> tuple:
    with su._tx() as tx:
        return tuple(tx.one(f"SELECT COUNT(*) FROM {t}")[0] for t in
                     ("trainees", "attempts", "sample_chunks", "input_chunks", "events", "images"))


def test_a_trainee_sees_only_their_own_attempts(pg_cluster, pg_database, centre):
    su, ids = centre
    ann = _as(pg_cluster, pg_database, "ann")
    assert [a.uuid for a in ann.list_attempts()] == [ids["ann"]]
    assert [t.name for t in ann.list_trainees()] == ["ann"]
    assert ann.attempt_by_uuid(ids["bob"]) is None
    bob_id = su.attempt_by_uuid(ids["bob"]).id
    with pytest.raises(UnknownAttempt, match=f"no attempt {bob_id} in postgresql://ann@.* that role ann may read "
                                             r"\(a trainee reads only its own attempts"):
        ann.load_attempt(bob_id)
    with pytest.raises(UnknownAttempt, match=f"no attempt '{ids['bob']}' in postgresql://ann@"):
        ann.resolve(ids["bob"])
    # not even the raw rows: row-level security on every table of an attempt
    with ann._tx() as tx:
        assert tx.one("SELECT COUNT(*) FROM sample_chunks WHERE attempt_id = %s", (bob_id,))[0] == 0
        assert tx.one("SELECT COUNT(DISTINCT attempt_id) FROM events")[0] == 1
    own = ann.attempt_by_uuid(ids["ann"])
    assert ann.load_attempt(own.id).same_as(su.load_attempt(own.id))
    ann.close()


def test_a_trainee_cannot_write_anothers_records_or_change_what_was_recorded(pg_cluster, pg_database, centre):
    su, ids = centre
    before = _counts(su)
    ann = _as(pg_cluster, pg_database, "ann")
    with pytest.raises(ServerError, match="role ann may not do this") as e:
        ann.save_recording(synthetic_recording("bob", 20, 1))
    assert e.value.kind == "denied"
    own = ann.attempt_by_uuid(ids["ann"]).id
    with pytest.raises(ServerError, match="role ann may not do this.*permission denied"):
        with ann._tx() as tx:
            tx.run("UPDATE attempts SET n_samples = 0 WHERE id = %s", (own,))
    with pytest.raises(ServerError, match="permission denied"):
        ann.delete_attempt(own)
    assert _counts(su) == before  # nothing half-written
    ann.close()


def test_instructors_see_their_cohorts_and_the_admin_sees_all(pg_cluster, pg_database, centre):
    su, ids = centre
    lee, mx, ada = (_as(pg_cluster, pg_database, u) for u in ("lee", "max", "ada"))
    assert [a.uuid for a in lee.list_attempts()] == [ids["ann"]]
    assert [a.uuid for a in mx.list_attempts()] == [ids["bob"]]
    assert sorted(a.uuid for a in ada.list_attempts()) == sorted(ids.values())
    rows = instructor_overview(lee)[0].rows
    assert [r.trainee for r in rows] == ["ann"]
    assert admin.whoami(lee) == {"login": "lee", "roles": ["instructor"], "teaches": ["c1"]}
    assert admin.cohorts(lee) == {"c1": ["ann"], "c2": []}
    for s in (lee, mx, ada):
        s.close()


def test_a_trainees_sync_sends_their_attempts_and_refuses_anothers_by_name(tmp_path, pg_cluster, pg_database,
                                                                           centre):
    su, ids = centre
    local = SQLiteRecordStore(tmp_path / "ws.sqlite")
    mine = local.save_recording(synthetic_recording("ann", 30, 2))
    theirs = local.save_recording(synthetic_recording("bob", 30, 3))
    before = _counts(su)
    sync = CentreSync(local, lambda: _as(pg_cluster, pg_database, "ann"))
    r = sync.sync_once()
    assert r.pushed == [local.attempt(mine).uuid]
    bob_uuid = local.attempt(theirs).uuid
    assert "role ann may not do this" in r.failed[bob_uuid] and "row-level security" in r.failed[bob_uuid]
    assert [p[1] for p in sync.pending()] == [bob_uuid]  # stays here, untouched
    after = _counts(su)
    assert after[1] == before[1] + 1 and su.attempt_by_uuid(bob_uuid) is None
    sync.stop()
    local.close()


def test_credentials_only_from_libpq_places(tmp_path, pg_cluster, pg_database, monkeypatch, centre):
    su, _ = centre
    admin.add_user(su, "cleo", "trainee", password="right-horse-battery")
    tcp = pg_cluster.conninfo(pg_database, user="cleo", tcp=True)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    with pytest.raises(ServerError, match="asks for a password and none was found") as e:
        PostgresRecordStore(tcp, migrate=False)
    assert e.value.kind == "auth"
    monkeypatch.setenv("PGPASSWORD", "wrong")
    with pytest.raises(ServerError, match=f"postgresql://cleo@127.0.0.1:{pg_cluster.port}/{pg_database}: wrong "
                                          "password .*check ~/.pgpass or PGPASSWORD") as e:
        PostgresRecordStore(tcp, migrate=False)
    assert e.value.kind == "auth"
    monkeypatch.delenv("PGPASSWORD")
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{pg_cluster.port}:{pg_database}:cleo:right-horse-battery\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    s = PostgresRecordStore(tcp, migrate=False)
    assert s.role == "cleo" and s.list_attempts() == []
    s.close()
    service = tmp_path / "pg_service.conf"
    service.write_text(f"[centre]\nhost=127.0.0.1\nport={pg_cluster.port}\ndbname={pg_database}\nuser=cleo\n")
    monkeypatch.setenv("PGSERVICEFILE", str(service))
    s = PostgresRecordStore("service=centre", migrate=False)
    assert s.role == "cleo"
    s.close()
    with pytest.raises(ServerError, match="a password in the server connection settings is refused"):
        PostgresRecordStore(tcp + " password=right-horse-battery")


def test_a_trainee_cannot_upgrade_the_server_schema(pg_cluster, centre):
    name = pg_cluster.create_database("nt_empty_for_a_trainee")
    with pytest.raises(ServerError, match="role ann may not change it: the centre's admin brings it up to date"):
        PostgresRecordStore(pg_cluster.conninfo(name, user="ann"))
