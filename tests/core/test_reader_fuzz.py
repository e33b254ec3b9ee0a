"""Readers of tracked sequences (.mha / .igs.mha / .seq.nrrd, Perk Tutor XML) and of our recordings
(.nlrec.npz) given mutated real files (hypothesis): our error naming the file, or a sound result -
never a traceback."""
from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.benchmarks.scoring import expert_attempt
from simulator.core.procedure import Procedure
from simulator.core.recording import Recording, RecordingError
from simulator.core.trackfiles import (
    TrackFileError,
    read_tracked,
    recording_sequences,
    resample,
    write_sequence_metafile,
    write_transform_recorder_xml,
)

from tests.mutations import ODD_VALUES, fuzz_settings, mutated_bytes, mutated_text, read_damaged


@pytest.fixture(scope="module")
def recording(scenario, block):
    rec = expert_attempt(Procedure(scenario, block, clock=lambda: 0.0, trainee="ann"), t0=1.0).recording
    return rec


@pytest.fixture(scope="module")
def tracked_files(recording, tmp_path_factory):
    """The expert attempt as a Slicer .igs.mha, a PLUS .mha, a .seq.nrrd and a Perk Tutor XML log
    (a needle and a probe sequence; the first 40 frames, so each example is quick)."""
    d = tmp_path_factory.mktemp("tracked")
    seqs = {k: (v[0][:40], v[1][:40], v[2][:40]) for k, v in recording_sequences(recording).items()}
    seqs["ProbeToWorld"] = (seqs["NeedleTipToWorld"][0], seqs["NeedleTipToWorld"][1],
                                np.arange(40) % 7 != 3)
    write_sequence_metafile(d / "a.igs.mha", seqs)
    write_sequence_metafile(d / "b.mha", seqs, style="plus")
    text = (d / "a.igs.mha").read_text()
    frames = [ln.replace(" = ", ":=", 1) for ln in text.splitlines() if ln.startswith("Seq_Frame")]
    (d / "c.seq.nrrd").write_text("NRRD0004\ntype: unsigned char\ndimension: 3\nsizes: 0 0 40\n"
                                  + "\n".join(frames) + "\n\n")
    write_transform_recorder_xml(d / "d.xml", {k: (v[0], v[1]) for k, v in seqs.items()}, [(0.5, "start")])
    for p in d.iterdir():
        read_tracked(p)  # each reads as it is
    return d


def _read_and_resample(path: Path):
    return resample(read_tracked(path))


def _tracked_ok(bad: bytes, name: str) -> None:
    got = read_damaged(bad, name, _read_and_resample, TrackFileError)
    if got is None:
        return
    times, mats = got
    assert all(m.shape == (len(times), 4, 4) for m in mats.values())
    assert np.all(np.diff(times) > 0)


@fuzz_settings(40)
@given(data=st.data(), name=st.sampled_from(["a.igs.mha", "b.mha", "c.seq.nrrd", "d.xml"]))
def test_mutated_tracked_files_give_our_error(tracked_files, data, name):
    raw = (tracked_files / name).read_bytes()
    if data.draw(st.booleans()):
        bad = data.draw(mutated_text(raw.decode("ascii", "replace"))).encode("utf-8", "surrogateescape")
    else:
        bad = data.draw(mutated_bytes(raw))
    _tracked_ok(bad, name)


@pytest.mark.parametrize("sec", ["nan", "inf", "-1e999"])
def test_a_perk_tutor_log_with_a_non_finite_time_is_refused(tracked_files, tmp_path, sec):
    """Found by the test above: TimeStampSec="nan" was read as a time."""
    text = (tracked_files / "d.xml").read_text()
    first = text.index('TimeStampSec="')
    end = text.index('"', first + len('TimeStampSec="'))
    p = tmp_path / "d.xml"
    p.write_text(text[:first] + f'TimeStampSec="{sec}' + text[end:])
    with pytest.raises(TrackFileError, match=rf"^{p}:\d+: TimeStampSec/TimeStampNSec '{sec}'/'\d+' are not finite$"):
        read_tracked(p)


META_KEYS = ["format_version", "scenario_id", "trainee", "mode", "meta", "inputs", "events", "started_at"]
ODD_JSON = [None, 0, -1, 1e308, "x", [], {}, [1, 2], {"a": 1}, True, "nan"]


def _npz_parts(path: Path) -> tuple[dict, dict]:
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["meta_json"])), {k: z[k] for k in z.files if k != "meta_json"}


def _npz_bytes(meta, arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, meta_json=np.array(json.dumps(meta)), **arrays)
    return buf.getvalue()


def _odd(draw):
    """An odd JSON value, a copy of its own (the shared lists and dicts are never edited)."""
    return copy.deepcopy(draw(st.sampled_from(ODD_JSON)))


@st.composite
def damaged_recording(draw, meta: dict, arrays: dict) -> bytes:
    """Fields removed or retyped in the meta, inputs and events; arrays cut, reshaped, retyped."""
    meta = json.loads(json.dumps(meta))
    arrays = dict(arrays)
    for _ in range(draw(st.integers(1, 3))):
        what = draw(st.sampled_from(["meta", "input", "event", "array"]))
        if what == "meta":
            key = draw(st.sampled_from(META_KEYS))
            if draw(st.booleans()):
                meta.pop(key, None)
            else:
                meta[key] = _odd(draw)
        elif what in ("input", "event"):
            items = meta.get("inputs" if what == "input" else "events")
            if isinstance(items, list) and items:
                i = draw(st.integers(0, len(items) - 1))
                item = items[i]
                if isinstance(item, dict) and item:
                    key = draw(st.sampled_from(sorted(item)))
                    if draw(st.booleans()):
                        del item[key]
                    else:
                        item[key] = _odd(draw)
                else:
                    items[i] = _odd(draw)
        else:
            key = draw(st.sampled_from(sorted(arrays)))
            a = arrays[key]
            op = draw(st.sampled_from(["cut", "drop", "flat", "text", "nan"]))
            if op == "cut":
                arrays[key] = a[: draw(st.integers(0, max(len(a) - 1, 0)))]
            elif op == "drop":
                arrays.pop(key)
            elif op == "flat":
                arrays[key] = a.reshape(-1)[:-1] if a.size else a
            elif op == "text":
                arrays[key] = np.array([draw(st.sampled_from(ODD_VALUES))] * max(len(a), 1))
            elif a.dtype.kind in "fiub":
                b = a.astype(np.float64, copy=True)
                b.reshape(-1)[: draw(st.integers(1, 5))] = np.nan
                arrays[key] = b
    return _npz_bytes(meta, arrays)


@fuzz_settings(40)
@given(data=st.data())
def test_mutated_recordings_give_our_error(recording, tmp_path_factory, data):
    base = tmp_path_factory.getbasetemp() / "rec.nlrec.npz"
    if not base.exists():
        recording.save(base)
    if data.draw(st.booleans()):
        bad = data.draw(damaged_recording(*_npz_parts(base)))
    else:
        bad = data.draw(mutated_bytes(base.read_bytes(), max_ops=2))
    rec = read_damaged(bad, "attempt.nlrec.npz", Recording.load, RecordingError)
    if rec is None:
        return
    n = rec.n_samples
    assert all(len(v) == n for v in rec.samples.arrays().values())
    json.dumps(rec.to_json_dict()["inputs"]), json.dumps([e.to_json() for e in rec.events])
