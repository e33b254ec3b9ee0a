"""The tracked attempt: poses over OpenIGTLink drive the same Procedure, score and recording as the
keyboard; a replayed .igs.mha scores exactly as the file; bad poses and lost connections never move
the needle, never lose the attempt, never raise."""
import math

import numpy as np
import pytest

from simulator.core.metrics import body_surface, perk_core_metrics
from simulator.core.procedure import Procedure, replay
from simulator.core.scoring import score_attempt
from simulator.core.trackfiles import read_tracked, resample, write_sequence_metafile
from simulator.records.exchange import procedure_from_tracked
from simulator.tracking import protocol as P
from simulator.tracking.server import TrackingServer
from simulator.tracking.session import TrackingConfig, TrackingSession
from simulator.tracking.simtracker import SimulatedTracker
from tests.tracking.conftest import pump_until, wait_for

PERK = ("elapsed_time_s", "path_length_mm", "path_in_tissue_mm", "time_in_tissue_s", "tissue_damage_mm2")


def tracked_attempt(source, scenario, block, *, exact=True, speed=0.0, config=None, before_end=None):
    """Stream `source` with the simulated tracker into a new tracked attempt; the ended procedure."""
    tracker = SimulatedTracker(source, port=0, speed=speed, exact=exact)
    tracker.start()
    session = TrackingSession(config or TrackingConfig())
    try:
        proc = Procedure(scenario, block, clock=session.clock)
        session.attach(proc)  # before connecting: poses that come before an attempt are not part of it
        session.connect("127.0.0.1", tracker.port)
        assert tracker.wait_done(30)
        n = tracker.n_frames
        pump_until(session, lambda: session.counts["needle_poses"] + session.counts["repeated"] >= n, 20, "every frame")
        if before_end is not None:
            before_end(proc)
        proc.end()
        return proc, session
    finally:
        session.disconnect()
        tracker.stop()


def test_a_tracked_attempt_scores_exactly_as_the_file_it_came_from(pass_file, scenario, block):
    def other_inputs(proc):  # the views' verdicts and the steps join the last frame: no sample added
        n = len(proc.recording.samples)
        proc.set_tip_visible(True, 0.4)
        proc.aspirate()
        assert len(proc.recording.samples) == n

    proc, session = tracked_attempt(pass_file, scenario, block, before_end=other_inputs)
    ref = procedure_from_tracked(pass_file, scenario, block)  # the file imported directly
    a, b = proc.recording.samples, ref.recording.samples
    assert len(a) == len(b) == len(read_tracked(pass_file).master)  # no pose dropped
    assert np.all(np.diff(a.time_s) > 0)  # none reordered
    assert np.array_equal(a.time_s, b.time_s) and np.array_equal(a.needle_tip_to_world, b.needle_tip_to_world)
    assert np.array_equal(a.probe_to_world, b.probe_to_world) and a.tip_visible[-1] == 1
    card, ref_card = score_attempt(proc.recording, scenario, block), score_attempt(ref.recording, scenario, block)
    assert card.perk == ref_card.perk  # Perk Tutor's core metrics, to the last digit
    t, m = resample(read_tracked(pass_file))
    direct = perk_core_metrics(t, m["NeedleTipToReference"], body_surface(block))
    for k in PERK:
        assert card.perk[k] == direct[k], k
    assert card.perk["path_in_tissue_mm"] > 20 and card.perk["tissue_damage_mm2"] > 0  # it did go in
    skip = ("end", "ultrasound_view", "aspiration")
    assert [e.to_json() for e in proc.events if e.kind.value not in skip] == [
        e.to_json() for e in ref.events if e.kind.value not in skip]
    # and the recording replays through the same entry point to the same attempt
    assert replay(proc.recording, scenario, block, silent=True).recording.same_as(proc.recording)
    assert session.counts["rejected"] == session.counts["reordered"] == 0


def test_plain_float32_poses_match_a_file_of_float32_numbers(pass_file, scenario, block, tmp_path):
    """Without the exact metadata (as PLUS sends), poses travel as float32: a file of float32
    numbers (a tracker's) scores identically; a float64 file within float32 precision."""
    seqs = {k: (s.time_s, s.matrices.astype(np.float32).astype(np.float64)) for k, s in read_tracked(pass_file).sequences.items()}
    f32 = write_sequence_metafile(tmp_path / "f32.igs.mha", seqs)
    proc, _ = tracked_attempt(f32, scenario, block, exact=False)
    ref = procedure_from_tracked(f32, scenario, block)
    assert score_attempt(proc.recording, scenario, block).perk == score_attempt(ref.recording, scenario, block).perk
    proc64, _ = tracked_attempt(pass_file, scenario, block, exact=False)
    ref64 = procedure_from_tracked(pass_file, scenario, block)
    p, q = (score_attempt(x.recording, scenario, block).perk for x in (proc64, ref64))
    for k in PERK:
        assert p[k] == pytest.approx(q[k], rel=1e-5, abs=1e-4), k


def test_registration_and_calibration_put_the_tracked_needle_on_the_patient(pass_file, scenario, block, tmp_path):
    """The tracker's reference is somewhere else; the needle sensor sits 100 mm behind the tip: with
    the registration and the pivot calibration the attempt is the same as the file's."""
    from simulator.core.geometry import invert_pose

    ref_to_world = np.eye(4)
    c, s = math.cos(0.4), math.sin(0.4)
    ref_to_world[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    ref_to_world[:3, 3] = [200.0, -50.0, 30.0]
    tip_to_sensor = np.eye(4)
    tip_to_sensor[:3, 3] = [0.0, 0.0, 100.0]
    tracked = read_tracked(pass_file)
    w2r = invert_pose(ref_to_world)
    seqs = {"NeedleToTracker": (tracked.master.time_s, w2r @ tracked.sequences["NeedleTipToReference"].matrices @ invert_pose(tip_to_sensor))}
    moved = write_sequence_metafile(tmp_path / "moved.igs.mha", seqs)
    cfg = TrackingConfig(needle_device="NeedleToTracker", probe_device="", reference_to_world=ref_to_world,
                         needle_tip_to_device=tip_to_sensor)
    proc, _ = tracked_attempt(moved, scenario, block, config=cfg)
    a = proc.recording.samples.needle_tip_to_world
    assert np.allclose(a, tracked.sequences["NeedleTipToReference"].matrices, atol=1e-9)


def _session_on(server, **kw):
    s = TrackingSession(TrackingConfig(stale_after_s=0.2, **kw))
    s.connect("127.0.0.1", server.port)
    wait_for(lambda: server.clients(), 5, what="the session to connect")
    # the server may see the client before the session's own thread has said so
    wait_for(lambda: s.client.connected, 5, what="the session to see its connection")  # (state: waiting, not connecting)
    return s


def _pose(x, y=-100.0):
    m = np.eye(4)
    m[:3, :3] = [[1, 0, 0], [0, 0, 1], [0, -1, 0]]  # +Z along +y: into the block from the back
    m[:3, 3] = [x, y, 0.0]
    return m


def test_bad_poses_and_unknown_devices_never_move_the_needle(scenario, block):
    server = TrackingServer("127.0.0.1", 0)
    server.start()
    s = _session_on(server)
    try:
        proc = Procedure(scenario, block, clock=s.clock)
        s.attach(proc)
        server.send_transform("NeedleTipToReference", _pose(-40.0), 1.0)
        pump_until(s, lambda: proc.state is not None, 5)
        nan = _pose(0.0)
        nan[0, 3] = np.nan
        scaled = _pose(0.0)
        scaled[:3, :3] *= 1.5
        sheared = _pose(0.0)
        sheared[0, 1] = 0.3
        for ts, dev, m in ((1.1, "NeedleTipToReference", nan), (1.2, "NeedleTipToReference", scaled),
                           (1.3, "NeedleTipToReference", sheared), (1.4, "StylusToReference", _pose(5.0)),
                           (1.5, "NeedleTipToReference", _pose(5.0)), (1.5, "NeedleTipToReference", _pose(9.0)),  # a repeat
                           (1.45, "NeedleTipToReference", _pose(7.0))):  # out of order
            server.send_transform(dev, m, ts)
        server.send_bytes(P.encode_transform("NeedleTipToReference", _pose(8.0), 1.6, valid=False))
        pump_until(s, lambda: s.counts["invalid"] == 1, 5, "the invalid pose")
        assert np.array_equal(proc.state.tip_mm, [5.0, -100.0, 0.0])  # only the good pose moved it
        assert s.counts["rejected"] == 3 and s.counts["unused"] == 1 and s.counts["repeated"] == 1
        assert s.counts["reordered"] == 1
        texts = " | ".join(n.text for n in s.notices())
        for words in ("NaN", "not rigid", "'StylusToReference' is not used", "out of order", "invalid"):
            assert words in texts, words
        assert [r["role"] for r in s.devices() if r["name"] == "StylusToReference"] == ["not used"]
        assert s.state()[0] == "stale" and s.paused  # the needle is out of the tracker's view
        assert len(proc.recording.samples) == 2 and not proc.ended  # the attempt goes on
    finally:
        s.disconnect()
        server.stop()


def test_a_lost_connection_pauses_the_attempt_and_it_resumes_where_it_was(scenario, block):
    server = TrackingServer("127.0.0.1", 0)
    server.start()
    port = server.port
    s = _session_on(server)
    assert s.state()[0] == "waiting" and "waiting for NeedleTipToReference" in s.state()[1]
    proc = Procedure(scenario, block, clock=s.clock)
    s.attach(proc)
    try:
        for k in range(5):
            server.send_transform("NeedleTipToReference", _pose(-40.0 + k), 10.0 + k / 60)
        pump_until(s, lambda: s.counts["frames"] == 5, 5)
        assert s.state()[0] == "connected" and not s.paused
        wait_for(lambda: s.state()[0] == "stale", 2, what="stale")  # nothing for 0.2 s
        assert s.paused and "paused" in s.state()[1]
        server.stop()  # the server vanishes mid-attempt
        wait_for(lambda: s.state()[0] == "lost", 5, what="lost")
        assert s.paused and "lost" in s.state()[1] and not proc.ended
        t_lost = s.clock()
        server = TrackingServer("127.0.0.1", port)  # back, with its clock restarted at 0
        server.start()
        wait_for(lambda: server.clients(), 10, what="the reconnection")
        server.send_transform("NeedleTipToReference", _pose(-30.0), 0.5)
        pump_until(s, lambda: s.counts["frames"] == 6, 5)
        assert s.state()[0] == "connected" and not s.paused
        t = proc.recording.samples.time_s
        assert np.all(np.diff(t) > 0) and t[-1] >= t_lost - 0.05  # the attempt's time carried on
        assert np.array_equal(proc.state.tip_mm, [-30.0, -100.0, 0.0])
        assert any("clock jumped" in n.text for n in s.notices())
    finally:
        s.disconnect()
        server.stop()


def test_the_config_reads_back_and_names_what_is_wrong():
    c = TrackingConfig(port=18945, needle_device="StylusTipToReference", time_offsets_s={"ProbeToReference": -0.04})
    assert TrackingConfig.from_json(c.to_json()).to_json() == c.to_json()
    for bad, words in (({"port": 0}, "'port'"), ({"reference_to_world": np.diag([2, 1, 1, 1]).tolist()}, "'reference_to_world'"),
                       ({"stale_after_s": -1}, "'stale_after_s'"), ({"port": "abc"}, "tracking settings")):
        with pytest.raises(ValueError, match=words):
            TrackingConfig.from_json(bad)
