"""Our attempt exports read back from mutated files (hypothesis): the JSON export (fields removed or
retyped, text cut) and the sample CSV give a RecordsError naming the file, never a traceback; a
refused JSON import adds nothing."""
from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.records.exchange import export_csv, export_json, import_json, read_samples_csv
from simulator.records.store import RecordsError, SQLiteRecordStore

from tests.mutations import assert_names_file, damaged_file, fuzz_settings, mutated_bytes, mutated_text, read_damaged

ODD = [None, 0, -1, 1e308, "x", [], {}, [1, 2], {"a": 1}, True]


@pytest.fixture(scope="module")
def exports(expert, scenario, tmp_path_factory):
    d = tmp_path_factory.mktemp("exports")
    s = SQLiteRecordStore(d / "a.sqlite")
    aid = s.save_recording(expert[0].recording, expert[1], scenario=scenario, images={"us": b"\x89PNG\r\n\x1a\nus"})
    export_json(s, aid, d / "attempt.json")
    export_csv(expert[0].recording, d / "samples.csv")
    s.close()
    return d


@st.composite
def retyped_json(draw, doc: dict) -> str:
    doc = json.loads(json.dumps(doc))
    for _ in range(draw(st.integers(1, 3))):
        node, key = doc, None
        for _ in range(draw(st.integers(1, 4))):  # walk down a few levels
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            if not keys:
                break
            key = draw(st.sampled_from(keys[:50]))
            if not isinstance(node[key], (dict, list)) or not node[key] or draw(st.booleans()):
                break
            node, key = node[key], None
        if key is None:
            continue
        if isinstance(node, dict) and draw(st.booleans()):
            node.pop(key)
        else:
            node[key] = copy.deepcopy(draw(st.sampled_from(ODD)))  # never the shared list itself
    return json.dumps(doc)


@fuzz_settings(30)
@given(data=st.data())
def test_mutated_json_exports_give_our_error_and_add_nothing(exports, data):
    text = (exports / "attempt.json").read_text()
    how = data.draw(st.integers(0, 2))
    if how == 0:
        bad = data.draw(retyped_json(json.loads(text))).encode()
    elif how == 1:
        bad = data.draw(mutated_bytes(text.encode(), max_ops=2))
    else:
        bad = data.draw(mutated_text(json.dumps(json.loads(text), indent=1))).encode()
    with damaged_file(bad, "attempt.json") as p:
        store = SQLiteRecordStore(p.with_name("ws.sqlite"))
        try:
            try:
                aid, added = import_json(store, p)
            except RecordsError as e:
                assert_names_file(e, p)
                assert store.list_attempts() == [] and store.list_scenarios() == []
                return
            assert added and store.load_attempt(aid).n_samples == store.attempt(aid).n_samples
        finally:
            store.close()


@fuzz_settings(30)
@given(data=st.data())
def test_mutated_sample_csv_gives_our_error(exports, data):
    raw = (exports / "samples.csv").read_bytes()
    if data.draw(st.booleans()):
        bad = data.draw(mutated_text(raw.decode())).encode()
    else:
        bad = data.draw(mutated_bytes(raw))
    arrays = read_damaged(bad, "samples.csv", read_samples_csv, RecordsError)
    if arrays is None:
        return
    n = len(arrays["time_s"])
    assert all(len(v) == n for v in arrays.values())


@pytest.fixture(scope="module")
def tracked_file(expert, tmp_path_factory):
    """The expert attempt's first 60 frames as a Slicer .igs.mha (each example quick)."""
    from simulator.core.trackfiles import recording_sequences, write_sequence_metafile

    d = tmp_path_factory.mktemp("tracked")
    seqs = {k: (v[0][:60], v[1][:60], v[2][:60]) for k, v in recording_sequences(expert[0].recording).items()}
    return write_sequence_metafile(d / "attempt.igs.mha", seqs)


@fuzz_settings(20)
@given(data=st.data())
def test_mutated_tracked_files_import_with_our_error_and_add_nothing(tracked_file, scenario, block, data):
    """`records import-attempt FILE.igs.mha`: the frames go through a Procedure and are scored; a
    damaged file is a RecordsError naming it, and the store is left as it was."""
    from simulator.records.exchange import import_tracked

    text = tracked_file.read_text()
    if data.draw(st.booleans()):
        bad = data.draw(mutated_text(text)).encode("utf-8", "surrogatepass")
    else:
        bad = data.draw(mutated_bytes(text.encode("utf-8"), max_ops=3))
    with damaged_file(bad, "attempt.igs.mha") as p:
        store = SQLiteRecordStore(p.with_name("ws.sqlite"))
        try:
            try:
                aid, card = import_tracked(store, p, scenario, block)
            except RecordsError as e:
                assert_names_file(e, p)
                assert store.list_attempts() == []
                return
            back = store.load_attempt(aid)
            assert back.n_samples > 0 and card.metrics["elapsed_time_s"] >= 0
        finally:
            store.close()
