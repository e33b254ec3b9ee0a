"""`main.py records ...` as an instructor runs it: subprocesses on a database in tmp_path."""
import json
import socket
import subprocess
import sys

import pytest

from simulator.core.paths import PROJECT_ROOT
from simulator.core.recording import Recording
from simulator.records.report import pdf_text
from simulator.records.store import SQLiteRecordStore

MAIN = str(PROJECT_ROOT / "main.py")


def records(*args):
    r = subprocess.run([sys.executable, MAIN, "records", *map(str, args)], capture_output=True, text=True,
                       timeout=120, cwd=PROJECT_ROOT)
    assert "Traceback" not in r.stderr, r.stderr
    return r


@pytest.fixture
def course(tmp_path, expert, novice, scenario):
    db = tmp_path / "course.sqlite"
    st = SQLiteRecordStore(db)
    ids = [st.save_recording(expert[0].recording, expert[1], scenario=scenario),
           st.save_recording(novice[0].recording, novice[1], scenario=scenario)]
    bob = Recording.from_json_dict(expert[0].recording.to_json_dict())
    bob.trainee = "bob"
    ids.append(st.save_recording(bob, expert[1], scenario=scenario))
    uuids = [st.attempt(i).uuid for i in ids]
    st.close()
    yaml_path = tmp_path / "test_block_celiac.yaml"
    yaml_path.write_text(json.dumps(scenario.model_dump(mode="json"), indent=2))  # JSON is YAML
    return db, ids, uuids, yaml_path


def test_listing_and_showing(course, expert, novice):
    db, ids, uuids, _ = course
    r = records("--db", db, "trainees")
    assert r.returncode == 0 and "ann" in r.stdout and "bob" in r.stdout
    r = records("attempts", "--trainee", "ann", "--db", db, "--json")
    listed = json.loads(r.stdout)
    assert [a["id"] for a in listed] == [ids[1], ids[0]]  # by start time: the novice attempt came first
    assert [a["passed"] for a in listed] == [False, True]
    r = records("attempts", "--db", db)
    assert r.returncode == 0 and uuids[2][:8] in r.stdout and "test_block_celiac" in r.stdout
    r = records("show", uuids[1][:8], "--db", db)
    assert r.returncode == 0 and f"score {novice[1].score:.1f} / 100" in r.stdout and "FAILED" in r.stdout
    assert "- aorta punctured at 00:06 - automatic fail" in r.stdout
    r = records("progress", "ann", "--db", db, "--json")
    curve = json.loads(r.stdout)["test_block_celiac"]
    assert [p["score"] for p in curve["points"]] == [novice[1].score, expert[1].score] and curve["pass_mark"] == 70
    r = records("overview", "--db", db, "--json")
    (ov,) = json.loads(r.stdout)
    assert ov["trainees"] == 2 and ov["attempts"] == 3 and ov["pass_rate"] == pytest.approx(2 / 3)


def test_export_import_report_rescore(tmp_path, course, expert, novice):
    db, ids, uuids, yaml_path = course
    mha, csv_path, js = tmp_path / "a.igs.mha", tmp_path / "a.csv", tmp_path / "a.json"
    for out in (mha, csv_path, js):
        r = records("export", ids[0], "--out", out, "--db", db)
        assert r.returncode == 0, r.stderr
        assert out.stat().st_size > 0
    assert mha.read_text().startswith("ObjectType = Image\nNDims = 3\n")
    assert len(csv_path.read_text().splitlines()) == expert[0].recording.n_samples + 1
    assert json.loads(js.read_text())["attempt"]["uuid"] == uuids[0]

    other = tmp_path / "other.sqlite"
    r = records("import-attempt", mha, "--scenario", yaml_path, "--trainee", "visitor", "--db", other)
    assert r.returncode == 0, r.stderr
    assert "attempt 1" in r.stdout and "no neurolytic agent was injected" in r.stdout
    r = records("import-attempt", js, "--db", other)
    assert r.returncode == 0 and "attempt 2 added" in r.stdout
    r = records("import-attempt", js, "--db", other)
    assert r.returncode == 0 and "already stored" in r.stdout

    r = records("report", ids[1], "--out", tmp_path / "r.html", "--db", db)
    assert r.returncode == 0, r.stderr
    said = f"Score {novice[1].score:.1f} / 100"  # the novice's card (fails: the aorta, no aspiration ...)
    assert not novice[1].passed and novice[1].score < 50 and said in (tmp_path / "r.html").read_text()
    r = records("report", ids[1], "--out", tmp_path / "r.pdf", "--db", db)
    assert r.returncode == 0, r.stderr
    pdf = tmp_path / "r.pdf"
    assert pdf.read_bytes()[:4] == b"%PDF" and said in pdf_text(pdf)

    r = records("rescore", ids[0], "--db", db)
    assert r.returncode == 0 and "identical to the stored score card, to the last digit" in r.stdout


def test_trainee_export_and_import(tmp_path, course):
    db, ids, uuids, _ = course
    f = tmp_path / "ann.records"
    r = records("export-trainee", "ann", "--out", f, "--db", db)
    assert r.returncode == 0 and "2 attempt(s) of ann" in r.stdout
    ws2 = tmp_path / "ws2.sqlite"
    r = records("import-trainee", f, "--db", ws2)
    assert r.returncode == 0 and "2 attempt(s) added, 0 already present" in r.stdout
    r = records("import-trainee", f, "--db", ws2)
    assert r.returncode == 0 and "0 attempt(s) added, 2 already present" in r.stdout


def test_recover_and_delete(course, expert):
    db, ids, uuids, _ = course
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    st = SQLiteRecordStore(db)  # an attempt left live by a process that is gone
    live = st.start_attempt(expert[0].recording, owner=f"{socket.gethostname()}:{int(gone.stdout)}")
    st.append(live, samples=expert[0].recording.samples.arrays(), inputs=expert[0].recording.inputs)
    st.close()
    r = records("recover", "--db", db)
    assert r.returncode == 0 and f"{live:<3}" in r.stdout and "live" in r.stdout
    r = records("recover", live, "--db", db)
    assert r.returncode == 0 and f"attempt {live} recovered: {expert[0].recording.n_samples} samples" in r.stdout
    r = records("delete", ids[2], "--db", db)
    assert r.returncode == 1 and "--yes" in r.stderr
    r = records("delete", ids[2], "--yes", "--db", db)
    assert r.returncode == 0
    r = records("attempts", "--db", db, "--json")
    assert [a["id"] for a in json.loads(r.stdout)] == [ids[1], ids[0], live]


def test_clear_errors_never_a_traceback(tmp_path, course):
    db, ids, uuids, yaml_path = course
    r = records("show", "99", "--db", db)
    assert r.returncode == 1 and r.stderr.strip() == f"records show: no attempt 99 in {db}"
    r = records("export", "zzzz", "--out", tmp_path / "x.json", "--db", db)
    assert r.returncode == 1 and "no attempt 'zzzz'" in r.stderr
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    r = records("import-trainee", notes, "--db", db)
    assert r.returncode == 1 and "notes.txt: not a records database" in r.stderr
    broken = tmp_path / "broken.igs.mha"
    broken.write_text("ObjectType = Image\nSeq_Frame0000_Timestamp = abc\n")
    r = records("import-attempt", broken, "--scenario", yaml_path, "--db", db)
    assert r.returncode == 1 and "broken.igs.mha:2: timestamp 'abc' is not a number" in r.stderr
    r = records("import-attempt", broken, "--db", db)
    assert r.returncode == 1 and "needs --scenario" in r.stderr
    r = records("report", ids[0], "--out", tmp_path / "r.txt", "--db", db)
    assert r.returncode == 1 and "r.txt: a report is FILE.html or FILE.pdf" in r.stderr
    r = records("export", ids[0], "--out", tmp_path / "x.bin", "--db", db)
    assert r.returncode == 1 and "--format" in r.stderr
    r = records("attempts", "--db", tmp_path / "none.sqlite")
    assert r.returncode == 0 and "no attempts" in r.stdout and not (tmp_path / "none.sqlite").exists()
    r = records("rescore", "1", "--db", tmp_path / "none.sqlite")
    assert r.returncode == 1 and "none.sqlite: no records database there" in r.stderr
    r = records()
    assert r.returncode == 2 and "SUBCOMMAND" in r.stderr
