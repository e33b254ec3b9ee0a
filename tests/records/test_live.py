"""The live recorder: what it writes while an attempt runs, a process killed mid-attempt, recovery
and going on with a recovered attempt."""
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from simulator.core.paths import PROJECT_ROOT
from simulator.core.procedure import Procedure, replay
from simulator.core.recording import Recording
from simulator.core.scoring import score_attempt
from simulator.records.live import LiveRecorder
from simulator.records.store import RecordsError, SQLiteRecordStore
from tests.records import live_child


def _scripted(scenario, block, n_steps: int) -> Procedure:
    proc = Procedure(scenario, block, clock=lambda: 0.0, trainee="crash_test")
    live_child.start(proc)
    for i in range(1, n_steps + 1):
        live_child.step(proc, i)
    return proc


def test_live_recording_of_a_procedure_equals_the_attempt(store, scenario, block):
    proc = Procedure(scenario, block, clock=lambda: 0.0, trainee="ann")
    rec = LiveRecorder(store, proc, interval_s=0.05)
    aid = rec.start()
    assert store.attempt(aid).status == "live"
    assert store.recoverable_attempts() == []  # being recorded: not offered for recovery
    from simulator.benchmarks.scoring import expert_attempt

    expert_attempt(proc, t0=1.0)
    deadline = time.monotonic() + 5
    while rec.pending_samples > 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    mid = store.attempt(aid)
    assert mid.status == "live" and mid.n_samples == proc.recording.n_samples - 1  # the newest is the tail
    assert store.load_attempt(aid).same_as(proc.recording)  # tail included: everything is there already
    card = score_attempt(proc.recording, scenario, block)
    info = rec.finish(card)
    assert info.status == "finished" and info.score == card.score and info.n_samples == proc.recording.n_samples
    assert store.load_attempt(aid).same_as(proc.recording)
    assert store.recoverable_attempts() == []
    assert rec.healthy and rec.stats()["flushes"] >= 2


def test_poll_mode_flushes_on_the_owners_timer(store, scenario, block):
    proc = Procedure(scenario, block, clock=lambda: 0.0)
    rec = LiveRecorder(store, proc, interval_s=0.2, thread=False)
    aid = rec.start()
    live_child.start(proc)
    for i in range(1, 30):
        live_child.step(proc, i)
    assert not rec.poll()  # too early
    assert store.attempt(aid).n_samples == 0
    time.sleep(0.25)
    assert rec.poll()
    assert store.attempt(aid).n_samples == proc.recording.n_samples - 1
    assert rec.flush() == 0  # nothing new
    rec.finish()
    assert store.load_attempt(aid).same_as(proc.recording)


def test_a_recording_without_procedure_and_key_images(store):
    rec = Recording(scenario_id="bare", scenario_version="v0", trainee="ann")
    lr = LiveRecorder(store, rec, thread=False)
    aid = lr.start()
    for i in range(10):
        m = np.eye(4)
        m[0, 3] = i
        rec.add_input(i / 60, "tick", {})
        rec.add_sample(i / 60, m)
    lr.add_image("fluoro_001", b"\x89PNG\r\n\x1a\nfirst")
    lr.flush()
    assert store.images(aid) == {"fluoro_001": b"\x89PNG\r\n\x1a\nfirst"}
    lr.add_image("fluoro_001", b"\x89PNG\r\n\x1a\nsecond")
    lr.add_image("us_at_injection", b"\x89PNG\r\n\x1a\nus")
    info = lr.abandon()
    assert info.status == "abandoned" and info.n_samples == 10
    assert store.images(aid) == {"fluoro_001": b"\x89PNG\r\n\x1a\nsecond", "us_at_injection": b"\x89PNG\r\n\x1a\nus"}


def test_recorder_arguments_are_checked(store):
    with pytest.raises(ValueError, match="interval_s"):
        LiveRecorder(store, Recording(), interval_s=2.0)
    with pytest.raises(TypeError, match="Procedure or a Recording"):
        LiveRecorder(store, object())
    with pytest.raises(RecordsError, match="not started"):
        LiveRecorder(store, Recording()).flush()


def test_killed_process_loses_at_most_the_last_second(tmp_path, scenario, block):
    """A subprocess records at 60 samples/s in real time and is killed with SIGKILL; the next
    start finds the attempt live, recovers it, and has every sample but the last second's."""
    db = tmp_path / "records.sqlite"
    child = subprocess.Popen([sys.executable, "-m", "tests.records.live_child", str(db)], cwd=PROJECT_ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(line.strip() for line in child.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if child.poll() is not None:
                pytest.fail(f"the recording process ended early: {child.stderr.read()}")
            ints = [s for s in list(seen) if s.isdigit()]
            if ints and int(ints[-1]) >= 170:  # about 2.8 s of attempt
                break
            time.sleep(0.01)
        else:
            pytest.fail("the recording process did not get going")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    reader.join(5)
    assert child.returncode == -signal.SIGKILL
    fed = max(int(s) for s in seen if s.isdigit())  # frames the child completed (and printed)
    n_fed = fed + 1  # plus the sample of set_entry at t = 0

    store = SQLiteRecordStore(db)
    try:
        live = store.recoverable_attempts()
        assert [a.trainee for a in live] == ["crash_test"]
        rec = store.recover(live[0].id)
        assert store.attempt(live[0].id).status == "recovered" and store.recoverable_attempts() == []
    finally:
        store.close()
    n = rec.n_samples
    assert n_fed - 60 <= n <= n_fed + 1, (n, n_fed)  # all but (at most) the last second
    # time stamps: every frame from 0 on, none missing
    assert np.array_equal(rec.samples.time_s, np.round(np.arange(n) / 60.0, 3))
    # the poses, inputs and events are exactly the start of the scripted attempt
    ref = _scripted(scenario, block, n + 1).recording
    assert np.array_equal(rec.samples.needle_tip_to_world, ref.samples.needle_tip_to_world[:n])
    assert [i.to_json() for i in rec.inputs] == [i.to_json() for i in ref.inputs[:len(rec.inputs)]]
    assert len(rec.inputs) >= n - 1
    assert [e.to_json() for e in rec.events] == [e.to_json() for e in ref.events[:len(rec.events)]]
    assert any(e.kind.value == "fluoro_shot" for e in rec.events)  # frame 97 was in the saved part


def test_going_on_with_a_recovered_attempt(tmp_path, scenario, block):
    """Crash (the recorder simply stops), recover, rebuild by replay, resume into the same attempt,
    finish: the stored attempt equals one recorded without a crash."""
    db = tmp_path / "records.sqlite"
    store = SQLiteRecordStore(db)
    proc = Procedure(scenario, block, clock=lambda: 0.0, trainee="ann")
    rec = LiveRecorder(store, proc, thread=False)
    aid = rec.start()
    live_child.start(proc)
    for i in range(1, 120):
        live_child.step(proc, i)
    rec.flush()
    rec.stop()  # the process "dies": the attempt stays live
    store.close()

    store = SQLiteRecordStore(db)
    recovered = store.recover(store.recoverable_attempts()[0].id)
    again = replay(recovered, scenario, block, silent=True)
    assert again.recording.same_as(recovered)
    resumed = LiveRecorder.resume(store, again, aid, thread=False)
    for i in range(120, 200):
        live_child.step(again, i)
    card = score_attempt(again.recording, scenario, block)
    info = resumed.finish(card)
    assert info.status == "finished" and info.id == aid
    full = _scripted(scenario, block, 199).recording
    assert store.load_attempt(aid).same_as(full)
    store.close()


def test_attempts_still_being_recorded_are_not_offered(store, expert):
    """Another trainer on the same database keeps its live attempt until its process is gone or
    it has not written for a minute; this process's own live recorder likewise."""
    import socket

    rec = expert[0].recording
    host = socket.gethostname()
    running = store.start_attempt(rec, owner=f"{host}:{os.getppid()}")  # a live process on this machine
    remote = store.start_attempt(rec, owner="another-workstation:4242")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = store.start_attempt(rec, owner=f"{host}:{int(gone.stdout)}")
    mine = LiveRecorder(store, Recording(), thread=False)
    own = mine.start()
    assert [a.id for a in store.recoverable_attempts()] == [dead]
    with pytest.raises(RecordsError, match=rf"attempt {running} is still being recorded \(by {host}:"):
        store.recover(running)
    with store._tx() as tx:  # nothing written for two minutes: its recorder is gone too
        tx.run("UPDATE attempts SET updated_at = '2020-01-01T00:00:00+00:00' WHERE id IN (?, ?)", (running, remote))
    assert [a.id for a in store.recoverable_attempts()] == [running, remote, dead]
    mine.stop()  # this process no longer records it
    assert own in [a.id for a in store.recoverable_attempts()]
    assert store.recover(own, force=True).n_samples == 0


def test_an_idle_recorder_keeps_its_attempt_alive(store, monkeypatch):
    import simulator.records.live as live_mod

    monkeypatch.setattr(live_mod, "HEARTBEAT_S", 0.0)
    lr = LiveRecorder(store, Recording(), interval_s=0.01, thread=False)
    aid = lr.start()
    with store._tx() as tx:
        tx.run("UPDATE attempts SET updated_at = '2020-01-01T00:00:00+00:00' WHERE id = ?", (aid,))
    time.sleep(0.02)
    assert lr.poll() and lr.flushes == 0  # nothing new to write ...
    assert store.attempt(aid).updated_at != "2020-01-01T00:00:00+00:00"  # ... but it is marked alive
    lr.finish()
