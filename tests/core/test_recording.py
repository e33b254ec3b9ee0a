"""Recordings: content, file round trip, malformed files, replay."""
import json
import zipfile

import numpy as np
import pytest

from simulator.benchmarks.scoring import expert_attempt
from simulator.core.events import EventKind
from simulator.core.procedure import Procedure, replay
from simulator.core.recording import CARM_FIELDS, FORMAT_VERSION, Recording, RecordingError, scenario_version


@pytest.fixture(scope="module")
def attempt(scenario, block):
    proc = Procedure(scenario, block, clock=lambda: 0.0, trainee="dr_test", mode="exam")
    proc.set_carm_pose(20.0, -5.0, [1.0, 2.0, 3.0], time_s=0.5)
    return expert_attempt(proc, t0=1.0)


def test_recording_holds_meta_inputs_samples_and_events(attempt, scenario, block):
    rec = attempt.recording
    assert rec.scenario_id == scenario.id and rec.scenario_version == scenario_version(scenario)
    assert rec.anatomy_ref == "phantom:test_block" and rec.anatomy_hash == "test_block_v1"
    assert rec.trainee == "dr_test" and rec.mode == "exam" and rec.format_version == FORMAT_VERSION
    assert rec.inputs[0].name == "set_carm_pose" and rec.inputs[1].name == "set_entry"
    n = rec.n_samples
    assert n == len(rec.inputs) - 1  # one sample per input once the needle is placed
    s = rec.samples
    assert s.needle_tip_to_world.shape == (n, 4, 4) and s.probe_to_world.shape == (n, 4, 4)
    assert np.isnan(s.probe_to_world).all()  # no probe in this attempt
    assert s.carm_pose.shape == (n, len(CARM_FIELDS)) and np.allclose(s.carm_pose[0], [20, -5, 1, 2, 3])
    assert np.all(s.tip_visible == -1)
    assert np.all(np.diff(s.time_s) > 0)
    assert rec.events_of(EventKind.injection)[-1].data["kind"] == "neurolytic"
    assert rec.duration_s == pytest.approx(s.time_s[-1] - s.time_s[0])
    assert len(rec.meta["targets"]) == 1


def test_file_round_trip_is_exact(attempt, tmp_path):
    rec = attempt.recording
    path = rec.save(tmp_path / "attempt.nlrec.npz")
    back = Recording.load(path)
    assert back.same_as(rec)
    assert back.meta_dict() == rec.meta_dict()
    # JSON form (for a database) round trips too
    js = json.loads(json.dumps(rec.to_json_dict()))
    assert Recording.from_json_dict(js).same_as(rec)


def test_malformed_recordings_name_the_file(tmp_path):
    missing = tmp_path / "missing.nlrec.npz"
    with pytest.raises(RecordingError, match="missing.nlrec.npz"):
        Recording.load(missing)
    junk = tmp_path / "junk.nlrec.npz"
    junk.write_bytes(b"this is not a zip file")
    with pytest.raises(RecordingError, match="junk.nlrec.npz"):
        Recording.load(junk)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.arange(3))
    with pytest.raises(RecordingError, match="not a Neurolysis Trainer recording"):
        Recording.load(other)
    future = tmp_path / "future.nlrec.npz"
    np.savez(future, meta_json=np.array(json.dumps({"format_version": 99})), time_s=np.zeros(1),
             needle_tip_to_world=np.eye(4)[None])
    with pytest.raises(RecordingError, match="format_version 99"):
        Recording.load(future)
    with zipfile.ZipFile(tmp_path / "bad.nlrec.npz", "w") as z:
        z.writestr("meta_json.npy", b"garbage")
    with pytest.raises(RecordingError, match="bad.nlrec.npz"):
        Recording.load(tmp_path / "bad.nlrec.npz")


def test_replay_reproduces_every_sample_and_event(attempt, scenario, block):
    again = replay(attempt.recording, scenario, block)
    a, b = attempt.recording.samples.arrays(), again.recording.samples.arrays()
    for k in a:
        assert np.array_equal(a[k], b[k], equal_nan=True), k
    assert [e.to_json() for e in again.events] == [e.to_json() for e in attempt.events]
    assert again.recording.trainee == "dr_test" and again.recording.mode == "exam"


def test_replay_refuses_unknown_inputs(attempt, scenario, block):
    rec = Recording.from_json_dict(attempt.recording.to_json_dict())
    rec.add_input(99.0, "delete_everything", {})
    with pytest.raises(ValueError, match="delete_everything"):
        replay(rec, scenario, block)
