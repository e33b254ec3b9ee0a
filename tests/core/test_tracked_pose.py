"""The tracker's entry point: one frame (needle and probe) is one input and one sample."""
import numpy as np
import pytest

from simulator.benchmarks.scoring import TARGET
from simulator.core.geometry import pose_from_tip_axis
from simulator.core.procedure import Procedure, ProcedureError, replay


def _probe(x):
    m = np.eye(4)
    m[:3, 3] = [x, -80.0, 20.0]
    return m


def test_a_frame_is_one_input_and_one_sample_like_the_two_separate_inputs(scenario, block):
    a = Procedure(scenario, block, clock=lambda: 0.0)
    b = Procedure(scenario, block, clock=lambda: 0.0)
    tips = [np.array(TARGET) - [0, d, 0] for d in (120.0, 60.0, 10.0, 0.0)]
    for i, tip in enumerate(tips):
        n, p = pose_from_tip_axis(tip, [0, 1, 0]), _probe(i)
        a.set_tracked_pose(n, p, time_s=0.5 * i)
        b.set_probe_to_world(p, time_s=0.5 * i)
        b.set_needle_tip_to_world(n, time_s=0.5 * i)
    assert len(a.recording.inputs) == 4 and len(b.recording.inputs) == 8
    sa, sb = a.recording.samples.arrays(), b.recording.samples.arrays()
    for k in sa:
        assert np.array_equal(sa[k], sb[k], equal_nan=True), k
    assert [e.to_json() for e in a.events] == [e.to_json() for e in b.events]
    assert a.state.inserted and a.state.target_distances_mm == b.state.target_distances_mm
    assert replay(a.recording, scenario, block, silent=True).recording.same_as(a.recording)


def test_a_probe_only_frame_moves_the_probe_and_a_bad_pose_changes_nothing(scenario, block):
    proc = Procedure(scenario, block, clock=lambda: 0.0)
    proc.set_tracked_pose(pose_from_tip_axis(np.array(TARGET) - [0, 150, 0], [0, 1, 0]), time_s=0.0)
    proc.set_tracked_pose(probe_to_world=_probe(5.0), time_s=0.1)
    assert np.array_equal(proc.recording.samples.probe_to_world[-1], _probe(5.0))
    before = proc.recording.samples.arrays()
    scaled = np.diag([2.0, 1.0, 1.0, 1.0])
    nan = np.full((4, 4), np.nan)
    for kw in ({"needle_tip_to_world": scaled}, {"needle_tip_to_world": nan}, {"probe_to_world": scaled},
               {"needle_tip_to_world": np.eye(4), "probe_to_world": nan}, {}):
        with pytest.raises(ProcedureError):
            proc.set_tracked_pose(**kw, time_s=0.2)
    after = proc.recording.samples.arrays()
    assert all(np.array_equal(before[k], after[k], equal_nan=True) for k in before)
    assert len(proc.recording.inputs) == 2
