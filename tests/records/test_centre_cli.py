"""`main.py centre ...` from the command line: sync, status, roles, live view, xAPI export, and
one-line errors naming what failed (exit status 1, never a traceback)."""
from __future__ import annotations

import json

import pytest

from simulator.cli import main
from simulator.records.centre.schedules import synthetic_recording
from simulator.records.store import SQLiteRecordStore


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_init_users_sync_status_whoami_live(tmp_path, capsys, monkeypatch, pg_cluster):
    db = pg_cluster.create_database("nt_cli_centre")
    admin_conn = pg_cluster.conninfo(db)
    rc, out, _ = _run(capsys, "centre", "--server", admin_conn, "init")
    assert rc == 0 and "roles nt_trainee / nt_instructor / nt_admin ready" in out and "PostgreSQL 1" in out
    assert _run(capsys, "centre", "--server", admin_conn, "add-user", "zoe", "--role", "trainee")[0] == 0
    assert _run(capsys, "centre", "--server", admin_conn, "add-cohort", "autumn")[0] == 0
    assert _run(capsys, "centre", "--server", admin_conn, "add-member", "autumn", "zoe")[0] == 0
    rc, _, err = _run(capsys, "centre", "--server", admin_conn, "add-member", "autumn", "nobody")
    assert rc == 1 and "no trainee 'nobody'" in err
    local = SQLiteRecordStore(tmp_path / "ws.sqlite")
    local.save_recording(synthetic_recording("zoe", 30, 1), {"score": 75.0, "passed": True, "metrics": {}})
    local.close()
    monkeypatch.setenv("NEUROLYSIS_CENTRE", pg_cluster.conninfo(db, user="zoe"))
    rc, out, _ = _run(capsys, "centre", "status", "--db", str(tmp_path / "ws.sqlite"))
    assert rc == 0 and "1 closed attempts not yet on the server" in out
    rc, out, _ = _run(capsys, "centre", "sync", "--db", str(tmp_path / "ws.sqlite"))
    assert rc == 0 and "online: 1 sent, 0 already there" in out and "0 waiting" in out
    rc, out, _ = _run(capsys, "centre", "sync", "--db", str(tmp_path / "ws.sqlite"))
    assert rc == 0 and "0 sent" in out
    rc, out, _ = _run(capsys, "centre", "whoami")
    assert rc == 0 and json.loads(out)["roles"] == ["trainee"]
    rc, out, _ = _run(capsys, "centre", "live", "--json")
    assert rc == 0 and json.loads(out) == []


def test_xapi_export_from_a_workstation_file(tmp_path, capsys):
    from jsonschema import Draft7Validator

    from simulator.records.xapi import load_schema

    st = SQLiteRecordStore(tmp_path / "ws.sqlite")
    aid = st.save_recording(synthetic_recording("zoe", 30, 1), {"score": 40.0, "passed": False, "metrics": {}})
    uuid = st.attempt(aid).uuid
    st.close()
    out_file = tmp_path / "a.xapi.json"
    rc, out, _ = _run(capsys, "centre", "xapi", uuid[:8], "--db", str(tmp_path / "ws.sqlite"), "--out", str(out_file),
                      "--homepage", "https://lrs.example.org/")
    assert rc == 0 and "xAPI statements" in out
    sts = json.loads(out_file.read_text())
    v = Draft7Validator(load_schema())
    assert all(v.is_valid(s) for s in sts) and sts[-2]["verb"]["id"].endswith("/failed")


@pytest.mark.parametrize("argv, message", [
    (("centre", "whoami"), "no centre server: pass --server"),
    (("centre", "--server", "host=127.0.0.1 dbname=x password=hunter2", "whoami"),
     "a password in the server connection settings is refused"),
    (("centre", "--server", "host=127.0.0.1 port=1 dbname=x user=zoe", "whoami"),
     "postgresql://zoe@127.0.0.1:1/x: server unreachable"),
])
def test_errors_are_one_line(capsys, monkeypatch, argv, message):
    monkeypatch.delenv("NEUROLYSIS_CENTRE", raising=False)
    rc, out, err = _run(capsys, *argv)
    assert rc == 1 and message in err and "Traceback" not in err and err.count("\n") == 1
