"""records import-trainee checks every attempt before it merges, and merges in one transaction: a
damaged records file (rows retyped, chunks cut, bytes flipped - hypothesis) is refused naming the
file and the attempt, and the receiving store is left exactly as it was."""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.records.exchange import export_trainee, import_trainee
from simulator.records.store import RecordsError, SQLiteRecordStore

from tests.mutations import assert_names_file, damaged_file, fuzz_settings, mutated_bytes


@pytest.fixture(scope="module")
def records_file(expert, novice, scenario, tmp_path_factory):
    """ann's two attempts (expert, novice, with a picture) exported to one file."""
    d = tmp_path_factory.mktemp("trainee")
    a = SQLiteRecordStore(d / "a.sqlite")
    a.save_recording(expert[0].recording, expert[1], scenario=scenario)
    a.save_recording(novice[0].recording, novice[1], scenario=scenario, images={"us": b"\x89PNG\r\n\x1a\nus"})
    a.add_trainee("ann", "Dr Ann Example")
    export_trainee(a, "ann", d / "ann.records")
    a.close()
    return d / "ann.records"


@pytest.fixture()
def receiving(tmp_path, expert):
    """A workstation's store that already holds one attempt of someone else."""
    s = SQLiteRecordStore(tmp_path / "ws.sqlite")
    s.save_recording(expert[0].recording, expert[1])
    yield s
    s.close()


def snapshot(store) -> tuple:
    """What a merge could change: attempts (uuid, trainee, status, checksum), trainees, scenarios."""
    return ([(a.uuid, a.trainee, a.status, store.stored_checksum(a.id)) for a in store.list_attempts()],
            [(t.name, t.full_name) for t in store.list_trainees()], store.list_scenarios())


def damaged_copy(records_file, tmp_path, sql: str, params=()) -> Path:
    p = tmp_path / "damaged.records"
    shutil.copy(records_file, p)
    con = sqlite3.connect(p)
    con.execute(sql, params)
    con.commit()
    con.close()
    return p


def test_a_good_file_merges_and_is_sealed(records_file, receiving):
    s = import_trainee(receiving, records_file)
    assert len(s.added) == 2 and s.trainees == ["ann"]
    for aid in s.added:
        assert receiving.stored_checksum(aid).startswith("sha256:")
        assert receiving.load_attempt(aid).n_samples > 0


@pytest.mark.parametrize("sql, params, says", [
    ("UPDATE sample_chunks SET data = substr(data, 1, 40) WHERE attempt_id = 2", (), "damaged samples"),
    ("UPDATE attempts SET n_events = n_events + 1 WHERE id = 2", (), "it holds"),
    ("UPDATE attempts SET meta_json = '{\"scenario' WHERE id = 2", (), "damaged record"),
    ("UPDATE attempts SET uuid = '' WHERE id = 2", (), "its uuid is ''"),
    ("UPDATE attempts SET n_samples = 'many' WHERE id = 2", (), "the list of attempts cannot be read"),
    ("UPDATE attempts SET n_inputs = -3 WHERE id = 2", (), "its counts"),
    ("UPDATE events SET data_json = '[' WHERE attempt_id = 2", (), "attempt 2"),
    ("UPDATE events SET message = 'edited afterwards' WHERE attempt_id = 2 AND seq = 0", (),
     "does not match the checksum"),
    ("UPDATE attempts SET score_card_json = '[1, 2]' WHERE id = 2", (), "score card is not a JSON object"),
    ("DELETE FROM input_chunks WHERE attempt_id = 2", (), "it holds"),
    ("UPDATE attempts SET status = 'perhaps' WHERE id = 2", (), "its status is 'perhaps'"),
])
def test_a_damaged_attempt_refuses_the_whole_file(records_file, receiving, tmp_path, sql, params, says):
    before = snapshot(receiving)
    bad = damaged_copy(records_file, tmp_path, sql, params)
    with pytest.raises(RecordsError) as e:
        import_trainee(receiving, bad)
    msg = str(e.value)
    assert msg.startswith(f"{bad}: ") and says in msg and "nothing was imported" in msg, msg
    assert "\n" not in msg
    assert snapshot(receiving) == before  # attempt 1 was sound but did not come in either


def test_a_failure_inside_the_merge_rolls_everything_back(records_file, receiving, monkeypatch):
    before = snapshot(receiving)
    real = SQLiteRecordStore._insert_raw
    calls = []

    def second_fails(self, tx, raw, extra=None):
        calls.append(raw["attempt"]["uuid"])
        if len(calls) == 2:
            raise sqlite3.OperationalError("disk I/O error")
        return real(self, tx, raw, extra)

    monkeypatch.setattr(SQLiteRecordStore, "_insert_raw", second_fails)
    with pytest.raises(RecordsError) as e:
        import_trainee(receiving, records_file)
    monkeypatch.undo()
    assert len(calls) == 2 and snapshot(receiving) == before  # the first attempt went in, then out again
    msg = str(e.value)
    assert msg.startswith(f"{records_file}: merging into {receiving.location} failed (OperationalError: disk I/O")
    assert msg.endswith("nothing was imported") and "\n" not in msg
    s = import_trainee(receiving, records_file)  # the same file once the disk is well: all of it comes in
    assert len(s.added) == 2 and len(snapshot(receiving)[0]) == len(before[0]) + 2


@fuzz_settings(25)
@given(data=st.data())
def test_mutated_records_files_give_our_error_and_change_nothing(records_file, expert, data):
    raw = records_file.read_bytes()
    bad = data.draw(mutated_bytes(raw, max_ops=3))
    with damaged_file(bad, "ann.records") as p:
        store = SQLiteRecordStore(p.with_name("ws.sqlite"))
        try:
            store.save_recording(expert[0].recording, expert[1])
            before = snapshot(store)
            try:
                import_trainee(store, p)
            except RecordsError as e:
                assert_names_file(e, p)
                assert snapshot(store) == before
        finally:
            store.close()
