"""One attempt: the single owner of its mutable state (the needle, the steps, the imaging events).

Inputs (each takes an optional `time_s`; without it the injected clock gives the time):
    set_entry(point_mm, direction, roll_deg=None)   aim the needle at the skin (not yet inserted)
    advance(mm) / withdraw(mm=None)                 along the needle axis (withdraw() = out to the skin)
    set_direction(direction=None, azimuth_deg=None, elevation_deg=None)
                                                    turn the needle: about its tip on the skin, about
                                                    the skin entry once inserted (see needle.py)
    set_needle_tip_to_world(matrix)                 tracked input: the pose as measured, no constraint
    set_tracked_pose(needle_tip_to_world=None, probe_to_world=None)
                                                    one tracker frame (OpenIGTLink): needle and/or
                                                    probe as measured, one input, one sample
    local_anaesthetic(volume_ml=5, agent, concentration_pct, point_mm=None)
    time_out(contraindications, decision)           contraindications noticed (case_steps), proceed | defer
    consent(items) / skin_preparation(agent) / drape()   the case steps before the needle
    aspirate()                                      -> "blood" | "csf" | "air" | "bowel contents" | "nothing"
    inject(kind, agent, concentration_pct, volume_ml)   kind: contrast | test_dose | prognostic | neurolytic -> Spread
    record_fluoro_shot(dap_gycm2, duration_s, ...)  from the fluoroscopy view (one per exposure)
    set_tip_visible(visible, distance_to_plane_mm)  from the ultrasound view (per frame)
    record_imaging(kind, **data)                    either of the two above by name
    set_probe_to_world(matrix) / set_carm_pose(lao_deg, cranial_deg, isocenter_mm=None)
    tick()                                          record a sample now (the recorder's clock)
    end()

Each input is appended to `self.recording` (name, time, arguments) after it succeeds, then a sample
of the state is recorded; `replay()` feeds a recording's inputs back through these same methods and
rebuilds the attempt bit for bit. Invalid inputs raise `ProcedureError` and change nothing.

Signals (`simulator.core.events.Signal`; subscribe with `proc.needle_changed.subscribe(fn)`):
    needle_changed(NeedleState)   event_added(Event)   step_changed(str)
    sample_added(int)             spread_added(Spread)
Views only read: they never write the state back.

Imaging rules (advances without imaging): see needle_motion.py.

The inputs live by job in mixins: needle_motion.py (needle inputs, the tip's path, imaging
allowance), procedure_steps.py (local anaesthetic, aspiration, injections), procedure_case.py
(time-out, consent, asepsis), procedure_imaging.py
(fluoroscopy, ultrasound visibility, probe and C-arm poses); procedure_input.py has the decorator
that records them. This module holds the state, the clock, the samples and `replay`.
"""
from __future__ import annotations

import math
import time as _time
from typing import Callable

import numpy as np

from simulator.core.anatomy import Anatomy
from simulator.core.events import Event, EventKind, Signal
from simulator.core.perk import PerkAccumulator, body_surface
from simulator.core.needle import NeedleSpec, NeedleState, TissueProbe
from simulator.core.needle_motion import US_UNSEEN_ADVANCE_MM, NeedleMotion
from simulator.core.procedure_case import CaseSteps
from simulator.core.procedure_imaging import ImagingInputs
from simulator.core.procedure_input import ProcedureError, recorded_input
from simulator.core.procedure_steps import ASPIRATION_VALID_MM, INJECTION_KINDS, ProcedureSteps
from simulator.core.recording import Recording
from simulator.core.spread import Spread
from simulator.core.targets import TargetGeometry, resolve_targets, targets_from_recording
from simulator.core.tissue import Tissue

__all__ = ["ASPIRATION_VALID_MM", "INJECTION_KINDS", "STEP_NAMES", "US_UNSEEN_ADVANCE_MM", "Procedure",
           "ProcedureError", "input_names", "replay"]

STEP_NAMES = ("time_out", "consent", "asepsis", "local_anaesthetic", "insertion", "target", "aspiration", "contrast",
              "prognostic", "test_dose", "neurolytic", "end")
CASE_STEPS = frozenset({"time_out", "consent", "asepsis", "prognostic"})  # listed only when the scenario asks


class Procedure(NeedleMotion, ProcedureSteps, CaseSteps, ImagingInputs):
    """The attempt's state machine. See the module notes for inputs, signals and rules."""

    def __init__(self, scenario, anatomy: Anatomy, *, clock: Callable[[], float] | None = None, trainee: str = "",
                 mode: str = "practice", targets: list[TargetGeometry] | None = None,
                 target_points: dict | None = None):
        self.scenario = scenario
        self.anatomy = anatomy
        self.spec = NeedleSpec.from_scenario(scenario.needle)
        self.probe_tissue = TissueProbe(anatomy)
        self.targets = targets if targets is not None else resolve_targets(scenario, anatomy, target_points)
        self.surface = body_surface(anatomy)
        self.live = PerkAccumulator(self.surface)
        self.recording = Recording.new(scenario, anatomy, trainee=trainee, mode=mode,
                                       targets=[t.to_json() for t in self.targets])
        t0 = _time.monotonic()
        self._clock = clock or (lambda: _time.monotonic() - t0)
        self._modality = str(getattr(scenario.modality, "value", scenario.modality))
        self._crit = [(c, None if c.tissue is None else Tissue[str(c.tissue).upper()]) for c in scenario.critical_structures]
        # signals
        self.needle_changed = Signal("needle_changed")
        self.event_added = Signal("event_added")
        self.step_changed = Signal("step_changed")
        self.sample_added = Signal("sample_added")
        self.spread_added = Signal("spread_added")
        # state
        self._now = 0.0
        self._last_time: float | None = None
        self._ended = False
        self._pose: np.ndarray | None = None
        self._state: NeedleState | None = None
        self._entry: np.ndarray | None = None
        self._inserted = False
        self._bone_contact = False
        self._tip_key = (int(Tissue.AIR), 0)
        self._crit_in: set[int] = set()
        self._ref_dir: np.ndarray | None = None
        self._max_depth = 0.0
        self._pass_index = 0
        self._in_target = {t.id: False for t in self.targets}
        self._nerve_armed = {t.id: True for t in self.targets}
        self._probe: np.ndarray | None = None
        self._carm: np.ndarray | None = None
        self._tip_visible: bool | None = None
        self._distance_to_plane: float | None = None
        self._unimaged_mm = 0.0
        self._us_unseen_mm = 0.0
        self._aspiration_tip: np.ndarray | None = None
        self._ever_inserted = False
        self._ever_target = False
        self._done: dict[str, bool] = dict.fromkeys(STEP_NAMES, False)
        self._step = self.current_step()
        self._live_snapshot = None
        self._live_index = -1
        self.spreads: list[Spread] = []
        self._pose_dirty = False

    # ------------------------------------------------------------------------------------
    # time, events, samples
    # ------------------------------------------------------------------------------------
    def _resolve_time(self, time_s: float | None) -> float:
        t = float(self._clock() if time_s is None else time_s)
        if not math.isfinite(t):
            raise ProcedureError(f"time_s must be a finite number of seconds, got {time_s!r}")
        if self._last_time is not None and t < self._last_time:
            t = self._last_time
        return t

    @property
    def time_s(self) -> float:
        return self._now

    def _emit(self, kind: EventKind, message: str, /, **data) -> Event:
        ev = Event(self._now, kind, message, data)
        self.recording.add_event(ev)
        self.event_added.emit(ev)
        return ev

    def _after_input(self, steps: bool = True) -> None:
        if self._pose is not None:
            vis = self._tip_visible
            idx = self.recording.add_sample(self._now, self._pose, self._probe, self._carm, vis)
            if idx == self._live_index and self._live_snapshot is not None:
                self._restore_live(self._live_snapshot)
            else:
                self._live_index = idx
            self._live_snapshot = self._snapshot_live()
            self.live.add(self.recording.samples.time_s[idx], self._pose)
            self.sample_added.emit(idx)
        if self._pose_dirty and self._state is not None:
            self.needle_changed.emit(self._state)
        if steps:
            self._update_steps()

    def _snapshot_live(self):
        return dict(self.live.__dict__)

    def _restore_live(self, snap) -> None:
        self.live.__dict__.update(snap)

    # ------------------------------------------------------------------------------------
    # read-only views
    # ------------------------------------------------------------------------------------
    @property
    def state(self) -> NeedleState | None:
        """The needle now (None before it is placed)."""
        return self._state

    @property
    def needle_tip_to_world(self) -> np.ndarray | None:
        return None if self._pose is None else self._pose.copy()

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def events(self) -> list[Event]:
        return self.recording.events

    def live_metrics(self) -> dict:
        """The running numbers for the score panel (cheap: updated per sample)."""
        v = self.live.values()
        st = self._state
        v["target_distances_mm"] = {} if st is None else dict(st.target_distances_mm)
        v["depth_mm"] = 0.0 if st is None else st.depth_mm
        ev = self.recording.events
        v["redirections"] = sum(1 for e in ev if e.kind == EventKind.redirection)
        v["critical_contacts"] = sum(1 for e in ev if e.kind == EventKind.critical_contact)
        v["advances_without_imaging"] = sum(1 for e in ev if e.kind == EventKind.advance_without_imaging)
        v["fluoro_shots"] = sum(1 for e in ev if e.kind == EventKind.fluoro_shot)
        return v

    def steps_status(self) -> list[dict]:
        """The scenario's steps in order: name, required, done."""
        s = self.scenario.steps
        options = list(s.agent_options()) if hasattr(s, "agent_options") else (
            ([s.neurolytic] if s.neurolytic else []) + list(s.neurolytic_options))
        pb = getattr(self.scenario, "prognostic_block", None)
        required = {
            "time_out": bool(getattr(s, "time_out", False)),
            "consent": bool(getattr(s, "consent", False)),
            "asepsis": bool(getattr(s, "asepsis", False)),
            "prognostic": pb is not None and pb.required,
            "local_anaesthetic": bool(s.local_anaesthetic),
            "insertion": True,
            "target": True,
            "aspiration": bool(s.aspiration_before_injection),
            "contrast": s.contrast is not None,
            "test_dose": s.test_dose is not None,
            "neurolytic": bool(options),
            "end": True,
        }
        return [{"step": k, "required": required[k], "done": self._done[k]} for k in STEP_NAMES
                if required[k] or k not in CASE_STEPS]

    def current_step(self) -> str:
        for s in self.steps_status():
            if s["required"] and not s["done"]:
                return s["step"]
        return "end"

    def _update_steps(self) -> None:
        step = self.current_step()
        if step != self._step:
            self._step = step
            self.step_changed.emit(step)


    @recorded_input
    def tick(self) -> None:
        """Record a sample of the current state now."""

    @recorded_input
    def end(self) -> None:
        """Finish the attempt (further inputs are refused)."""
        self._emit(EventKind.end, "attempt ended")
        self._ended = True
        self._done["end"] = True



def input_names() -> list[str]:
    """The names of the Procedure's recorded inputs."""
    names = []
    for cls in Procedure.__mro__:
        names += [n for n, f in vars(cls).items() if getattr(f, "_is_input", False) and n not in names]
    return names


def replay(recording: Recording, scenario, anatomy: Anatomy, *, targets: list[TargetGeometry] | None = None,
           silent: bool = False) -> Procedure:
    """Rebuild an attempt by feeding its recorded inputs through the same entry points.

    The result's recording equals the original (samples bit for bit, events, inputs) when the
    scenario and anatomy are the ones it was recorded with."""
    if targets is None:
        targets = targets_from_recording(recording)
    proc = Procedure(scenario, anatomy, trainee=recording.trainee, mode=recording.mode, targets=targets,
                     clock=lambda: 0.0)
    proc.recording.started_at = recording.started_at
    proc.recording.meta = dict(recording.meta)
    names = set(input_names())
    signals = (proc.needle_changed, proc.event_added, proc.step_changed, proc.sample_added, proc.spread_added)
    for inp in recording.inputs:
        if inp.name not in names:
            raise ValueError(f"recording input {inp.name!r} is not a procedure input")
    with _blocked(signals if silent else ()):
        for inp in recording.inputs:
            getattr(proc, inp.name)(**inp.args, time_s=inp.time_s)
    return proc


class _blocked:
    def __init__(self, signals):
        self.ctx = [s.blocked() for s in signals]

    def __enter__(self):
        for c in self.ctx:
            c.__enter__()

    def __exit__(self, *exc):
        for c in self.ctx:
            c.__exit__(*exc)
