"""The attempt controller: the input adapter between the trainee's mouse and keyboard and the
`Procedure` (the one owner of the attempt's state).

    controller = AttemptController(parent)
    controller.start(scenario, anatomy, mode="practice")      # a new Procedure with a real clock
    controller.place_entry(point_mm, direction)               # a click on the skin
    controller.advance(1.0); controller.withdraw(5.0); controller.steer(right, up, degrees)
    controller.aspirate(); controller.inject("contrast", "iohexol", 0.0, 4.0)
    controller.end()                                          # -> score card (`ended` signal)
    controller.attach_replay(procedure)                       # host a replayed attempt (read-only)

During a replay (`replaying`) the controller hosts a Procedure that `simulator.ui.replay` feeds
with the recorded inputs; the views follow its signals exactly as in a live attempt, and every
live input is refused (`input_refused`), so nothing the trainee presses changes the replay.

The Procedure's own signals (plain observer lists, called synchronously on the GUI thread where
every input is made) are forwarded as Qt signals, so views connect to them the Qt way and never
write back. A bad input raises `ProcedureError` inside the Procedure; the controller turns it into
`input_refused(message)` (the status bar shows it) and the attempt goes on.

Timing for the workstation benchmark: `last_input` holds (sequence number, perf_counter at the
input event, perf_counter after the Procedure and every synchronous subscriber returned).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal

from simulator.core.geometry import rotate
from simulator.core.procedure import Procedure, ProcedureError

#: the simulation rate: while a live attempt runs with the needle placed, the procedure records a
#: sample of the needle, probe and C-arm poses this often even when nothing moves (as a tracker does)
SAMPLE_RATE_HZ = 60.0
#: the Procedure's signals the controller forwards as Qt signals of the same names
FORWARDED = ("needle_changed", "event_added", "step_changed", "sample_added", "spread_added")
#: how often a live attempt is checked for error behaviours (only when an input or event came in)
BEHAVIOUR_CHECK_MS = 250


@dataclass
class InputStamp:
    seq: int
    name: str
    t_event: float  # perf_counter when the input event arrived
    t_done: float = float("nan")  # perf_counter when the Procedure and its synchronous subscribers returned


class AttemptController(QObject):
    """Creates the Procedure of an attempt and feeds it the trainee's inputs (see the module notes)."""

    started = Signal(object)  # Procedure
    ended = Signal(object)  # ScoreCard (None if it could not be computed)
    needle_changed = Signal(object)  # NeedleState
    event_added = Signal(object)  # Event
    step_changed = Signal(str)
    sample_added = Signal(int)
    spread_added = Signal(object)  # Spread
    input_refused = Signal(str)  # a message for the trainee
    input_done = Signal(object)  # InputStamp, after every successful input
    behaviour_detected = Signal(object, str)  # Behaviour, what it costs ("fails the attempt", "-3 points")

    def __init__(self, parent=None, clock=None):
        super().__init__(parent)
        self.procedure: Procedure | None = None
        self.scenario = None
        self.anatomy = None
        self.mode = "practice"
        self.card = None
        self._clock = clock
        self._seq = 0
        self.last_input: InputStamp | None = None
        self._pending_stamp: InputStamp | None = None
        self.replaying = False
        #: the replay's clock (seconds of the recorded attempt) while replaying
        self.replay_time_s = 0.0
        #: callables run before every needle motion input (the fluoroscopy view flushes a live run
        #: there, so movement under live fluoroscopy counts as imaged)
        self.before_needle_motion: list = []
        #: callable(input name) -> why it is refused now, or None (a tracked attempt: the needle is the
        #: tracker's; a paused one takes nothing until the poses return)
        self.refuse = None
        self._sampler = QTimer(self)
        self._sampler.setTimerType(Qt.TimerType.PreciseTimer)
        self._sampler.setInterval(int(1000.0 / SAMPLE_RATE_HZ))  # 16 ms: 62.5 samples per second
        self._sampler.timeout.connect(self._sample)
        self.behaviours = None  # core.behaviours_live.LiveBehaviours of the live attempt
        self._behaviour_timer = QTimer(self)
        self._behaviour_timer.setInterval(BEHAVIOUR_CHECK_MS)
        self._behaviour_timer.timeout.connect(self.check_behaviours)

    # ------------------------------------------------------------------------------------
    # lifetime
    # ------------------------------------------------------------------------------------
    def start(self, scenario, anatomy, mode: str = "practice", trainee: str = "", clock=None,
              sampled: bool = True) -> Procedure:
        """A new attempt (the previous one, if any, is dropped: ask the user before). A tracked
        attempt passes the tracker's `clock` and `sampled=False`: the tracker's frames are its samples."""
        self._disconnect()
        self.scenario, self.anatomy, self.mode, self.card = scenario, anatomy, mode, None
        proc = Procedure(scenario, anatomy, clock=clock or self._clock, trainee=trainee, mode=mode)
        self.replaying = False
        self._connect(proc)
        from simulator.core.behaviours_live import LiveBehaviours

        self.behaviours = LiveBehaviours(proc)
        self._behaviour_timer.start()
        if sampled:
            self._sampler.start()
        else:
            self._sampler.stop()
        return proc

    def attach_replay(self, proc: Procedure) -> Procedure:
        """Host a replayed attempt: the views follow `proc` as if it were live; inputs are refused."""
        self._disconnect()
        self.scenario, self.anatomy, self.mode, self.card = proc.scenario, proc.anatomy, proc.recording.mode, None
        self.replaying = True
        self.replay_time_s = 0.0
        self._sampler.stop()
        self._behaviour_timer.stop()
        self.behaviours = None
        self._connect(proc)
        return proc

    def _connect(self, proc: Procedure) -> None:
        self.procedure = proc
        self.reattach_signals()
        self.started.emit(proc)

    def _disconnect(self) -> None:
        proc = self.procedure
        if proc is None:
            return
        for name in FORWARDED:
            getattr(proc, name).unsubscribe(getattr(self, name).emit)

    def detach_signals(self) -> None:
        """Stop forwarding the procedure's signals (a replay seek: the window follows once, at the end)."""
        self._disconnect()

    def reattach_signals(self) -> None:
        proc = self.procedure
        if proc is None:
            return
        for name in FORWARDED:
            getattr(proc, name).subscribe(getattr(self, name).emit)

    @contextlib.contextmanager
    def coalesced_needle(self):
        """Within it the needle's moves reach the views once, at the end, with the last state: a
        batch of tracker frames is recorded frame by frame and the views draw the newest."""
        proc = self.procedure
        if proc is None:
            yield
            return
        last: list = []
        proc.needle_changed.unsubscribe(self.needle_changed.emit)
        proc.needle_changed.subscribe(last.append)
        try:
            yield
        finally:
            proc.needle_changed.unsubscribe(last.append)
            if self.procedure is proc:
                proc.needle_changed.subscribe(self.needle_changed.emit)
                if last:
                    self.needle_changed.emit(last[-1])

    def stop(self) -> None:
        """Forget the attempt (the window closes or the scenario changes)."""
        self._sampler.stop()
        self._behaviour_timer.stop()
        self.behaviours = None
        self._disconnect()
        self.procedure = None
        self.replaying = False

    @property
    def active(self) -> bool:
        """A live attempt is running (created, not ended, not a replay)."""
        return self.procedure is not None and not self.procedure.ended and not self.replaying

    @property
    def in_progress(self) -> bool:
        """An attempt the trainee has done something in and not ended (worth asking about)."""
        p = self.procedure
        return p is not None and not p.ended and not self.replaying and any(i.name not in ("set_probe_to_world", "set_carm_pose")
                                                      for i in p.recording.inputs)

    @property
    def state(self):
        return None if self.procedure is None else self.procedure.state

    def now(self) -> float:
        """The attempt's clock (seconds since it started; the replay's position while replaying)."""
        if self.replaying:
            return self.replay_time_s
        return self.procedure._clock() if self.procedure is not None else 0.0

    # ------------------------------------------------------------------------------------
    # the one way in
    # ------------------------------------------------------------------------------------
    def stamp_event(self, name: str, t_event: float | None = None) -> None:
        """Note when the input event behind the next call arrived (for the latency figures)."""
        self._pending_stamp = InputStamp(self._seq + 1, name, time.perf_counter() if t_event is None else t_event)

    def call(self, name: str, *args, **kwargs):
        """Call a Procedure input; a refused input becomes `input_refused` and returns None."""
        proc = self.procedure
        if proc is None:
            self.input_refused.emit("No attempt: open a scenario first")
            return None
        if self.replaying:
            self.input_refused.emit("Replaying a recorded attempt: inputs are off (stop the replay to train)")
            return None
        if proc.ended:
            self.input_refused.emit("The attempt has ended: start a new one (Attempt menu, Ctrl+N)")
            return None
        why = self.refuse(name) if self.refuse is not None else None
        if why:
            self._pending_stamp = None
            self.input_refused.emit(why)
            return None
        stamp = self._pending_stamp or InputStamp(self._seq + 1, name, time.perf_counter())
        self._pending_stamp = None
        try:
            result = getattr(proc, name)(*args, **kwargs)
        except ProcedureError as e:
            self.input_refused.emit(str(e))
            return None
        self._seq += 1
        stamp.seq, stamp.name, stamp.t_done = self._seq, name, time.perf_counter()
        self.last_input = stamp
        self.input_done.emit(stamp)
        return result

    def _sample(self) -> None:
        """The simulation clock: a sample of the current poses (the `tick` input) once the needle is
        placed; nothing before (an untouched attempt stays empty) and nothing after the end."""
        proc = self.procedure
        if proc is None or self.replaying or proc.ended:
            self._sampler.stop()
            return
        if proc.state is None:
            return
        try:
            proc.tick()
        except ProcedureError:
            self._sampler.stop()

    def check_behaviours(self) -> None:
        """Tell the error behaviours detected since the last check (`behaviour_detected`); a
        detector that fails is logged and the attempt goes on (the card re-detects at the end)."""
        watch = self.behaviours
        if watch is None or self.replaying:
            self._behaviour_timer.stop()
            return
        try:
            new = watch.check()
        except Exception:  # noqa: BLE001 - a live hint must never break the attempt
            import logging

            logging.getLogger(__name__).exception("live behaviour check failed")
            return
        for b in new:
            self.behaviour_detected.emit(b, watch.cost(b))
        if self.procedure is None or self.procedure.ended:
            self._behaviour_timer.stop()

    def _motion(self) -> None:
        for fn in list(self.before_needle_motion):
            fn()

    # ------------------------------------------------------------------------------------
    # needle
    # ------------------------------------------------------------------------------------
    def place_entry(self, point_mm, direction):
        """Rest the needle on the skin where the line through `point_mm` along `direction` enters."""
        st = self.state
        if st is not None and st.inserted:
            self.input_refused.emit("Withdraw the needle out of the skin (X) before choosing a new entry point")
            return None
        return self.call("set_entry", np.asarray(point_mm, float), np.asarray(direction, float))

    def advance(self, mm: float):
        if self.state is None:
            self.input_refused.emit("Click the skin in the 3D view to choose the entry point first")
            return None
        self._motion()
        return self.call("advance", float(mm))

    def withdraw(self, mm: float | None = None):
        if self.state is None:
            self.input_refused.emit("The needle is not placed yet")
            return None
        self._motion()
        return self.call("withdraw", None if mm is None else float(mm))

    def steer(self, axis, angle_deg: float):
        """Turn the needle by `angle_deg` about `axis` (world; right-handed): about its tip on the
        skin, about the skin entry once inserted."""
        st = self.state
        if st is None:
            self.input_refused.emit("Click the skin in the 3D view to choose the entry point first")
            return None
        d = rotate(st.axis, axis, angle_deg)
        self._motion()
        return self.call("set_direction", d / np.linalg.norm(d))

    def set_direction(self, direction):
        if self.state is None:
            self.input_refused.emit("Click the skin in the 3D view to choose the entry point first")
            return None
        self._motion()
        return self.call("set_direction", np.asarray(direction, float))

    # ------------------------------------------------------------------------------------
    # procedure steps
    # ------------------------------------------------------------------------------------
    def local_anaesthetic(self, volume_ml: float = 5.0, agent: str = "lidocaine", concentration_pct: float = 1.0):
        return self.call("local_anaesthetic", float(volume_ml), agent, float(concentration_pct))

    def aspirate(self):
        return self.call("aspirate")

    def inject(self, kind: str, agent: str, concentration_pct: float, volume_ml: float, air_ml: float = 0.0):
        if air_ml:
            return self.call("inject", kind, agent, float(concentration_pct), float(volume_ml), air_ml=float(air_ml))
        return self.call("inject", kind, agent, float(concentration_pct), float(volume_ml))

    # imaging inputs (from the views)
    def record_fluoro_shot(self, **kw):
        return self.call("record_fluoro_shot", **kw)

    def set_tip_visible(self, visible: bool, distance_to_plane_mm: float | None = None):
        return self.call("set_tip_visible", bool(visible), None if distance_to_plane_mm is None else float(distance_to_plane_mm))

    def set_probe_to_world(self, matrix):
        return self.call("set_probe_to_world", np.asarray(matrix, float))

    def set_carm_pose(self, lao_deg: float, cranial_deg: float, isocenter_mm=None):
        return self.call("set_carm_pose", float(lao_deg), float(cranial_deg),
                         None if isocenter_mm is None else [float(x) for x in isocenter_mm])

    # ------------------------------------------------------------------------------------
    def end(self):
        """End the attempt and score it; `ended(card)` follows."""
        proc = self.procedure
        if proc is None or proc.ended or self.replaying:
            return self.card
        if self.call("end") is None and not proc.ended:
            return None
        self.check_behaviours()  # the last ones are told before the card
        from simulator.core.scoring import score_attempt

        try:
            self.card = score_attempt(proc.recording, self.scenario, self.anatomy, targets=proc.targets,
                                      surface=proc.surface)
        except Exception as e:  # noqa: BLE001 - the trainee still gets told
            self.card = None
            self.input_refused.emit(f"The score could not be computed: {e}")
        self.ended.emit(self.card)
        return self.card
