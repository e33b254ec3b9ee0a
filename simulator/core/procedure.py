"""One attempt: the single owner of its mutable state (the needle, the steps, the imaging events).

Inputs (each takes an optional `time_s`; without it the injected clock gives the time):
    set_entry(point_mm, direction, roll_deg=None)   aim the needle at the skin (not yet inserted)
    advance(mm) / withdraw(mm=None)                 along the needle axis (withdraw() = out to the skin)
    set_direction(direction=None, azimuth_deg=None, elevation_deg=None)
                                                    turn the needle: about its tip on the skin, about
                                                    the skin entry once inserted (see needle.py)
    set_needle_tip_to_world(matrix)                 tracked input: the pose as measured, no constraint
    local_anaesthetic(volume_ml=5, agent, concentration_pct, point_mm=None)
    aspirate()                                      -> "blood" | "csf" | "air" | "bowel contents" | "nothing"
    inject(kind, agent, concentration_pct, volume_ml)   kind: contrast | test_dose | neurolytic -> Spread
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

Imaging rules (advances without imaging), per the scenario's modality:
- fluoroscopy: the needle's movement in tissue (forward along its axis plus sideways, not
  withdrawal) since the last fluoroscopy exposure; past `rubric.advance_without_imaging_mm` one
  `advance_without_imaging` event, then none until the next exposure.
- ultrasound: forward advance in tissue while the view reports the tip out of the image plane;
  past 2 mm one event, then none until the tip is seen again.
- both: an advance counts when neither holds (unseen on ultrasound and unimaged on fluoroscopy).
"""
from __future__ import annotations

import functools
import inspect
import math
import time as _time
from typing import Callable

import numpy as np

from simulator.core.anatomy import Anatomy
from simulator.core.events import Event, EventKind, Signal
from simulator.core.geometry import (
    angle_between_deg,
    direction_from_angles,
    is_rigid,
    normalize,
    pose_from_tip_axis,
    rotation_between,
)
from simulator.core.metrics import (
    NERVE_CONTACT_MM,
    OFF_TARGET_MARGIN_MM,
    PerkAccumulator,
    TargetGeometry,
    body_surface,
    resolve_targets,
)
from simulator.core.needle import (
    PARK_MM,
    PROPER_WITHDRAW_DEPTH_MM,
    PROPER_WITHDRAW_FRACTION,
    REDIRECT_DEG,
    NeedleSpec,
    NeedleState,
    TissueProbe,
)
from simulator.core.recording import CARM_DIM, Recording
from simulator.core.spread import Spread, compute_spread
from simulator.core.tissue import BONE, ORGAN, VESSEL, Tissue

US_UNSEEN_ADVANCE_MM = 2.0
_COS_REDIRECT = math.cos(math.radians(REDIRECT_DEG)) + 1e-12  # cheap pre-check of the redirection angle
ASPIRATION_VALID_MM = 2.0
INJECTION_KINDS = ("contrast", "test_dose", "neurolytic")
STEP_NAMES = ("local_anaesthetic", "insertion", "target", "aspiration", "contrast", "test_dose", "neurolytic", "end")


class ProcedureError(ValueError):
    """An input the procedure cannot take (the message says why, for the trainee or the caller)."""


def _input(fn):
    """Mark a method as an input: time-stamped, recorded after success, followed by a sample."""
    sig = inspect.signature(fn)
    name = fn.__name__
    params = [(p.name, p.default) for p in list(sig.parameters.values())[1:]]
    names = {p for p, _ in params}

    def bind(args, kwargs) -> dict:
        if len(args) > len(params):
            raise TypeError(f"{name}() takes {len(params)} arguments, got {len(args)}")
        call = {}
        for (pname, _), value in zip(params, args):
            call[pname] = value
        for key in kwargs:
            if key not in names or key in call:
                raise TypeError(f"{name}() got an unexpected or repeated argument {key!r}")
        for pname, default in params[len(args):]:
            if pname in kwargs:
                call[pname] = kwargs[pname]
            elif default is inspect.Parameter.empty:
                raise TypeError(f"{name}() missing argument {pname!r}")
            else:
                call[pname] = default
        return call

    @functools.wraps(fn)
    def wrapper(self, *args, time_s: float | None = None, **kwargs):
        if self._ended:
            raise ProcedureError(f"the attempt has ended; {name} is not possible")
        call = bind(args, kwargs)
        t = self._resolve_time(time_s)
        self._now = t
        self._pose_dirty = False
        result = fn(self, **call)
        self.recording.add_input(t, name, call)
        self._last_time = t
        self._after_input(steps=name != "tick")  # a sample alone cannot change a step
        return result

    wrapper._is_input = True
    return wrapper


class Procedure:
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
        required = {
            "local_anaesthetic": bool(s.local_anaesthetic),
            "insertion": True,
            "target": True,
            "aspiration": bool(s.aspiration_before_injection),
            "contrast": s.contrast is not None,
            "test_dose": s.test_dose is not None,
            "neurolytic": bool(options),
            "end": True,
        }
        return [{"step": k, "required": required[k], "done": self._done[k]} for k in STEP_NAMES]

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

    # ------------------------------------------------------------------------------------
    # needle geometry
    # ------------------------------------------------------------------------------------
    def _require_placed(self, what: str) -> None:
        if self._pose is None:
            raise ProcedureError(f"{what}: place the needle on the skin first (set_entry)")

    def _depth_along(self, tip: np.ndarray, axis: np.ndarray) -> float:
        if self._entry is None:
            return 0.0
        return float(np.dot(tip - self._entry, axis))

    def _apply(self, new_pose: np.ndarray, *, path_from: np.ndarray | None, kinematic: bool) -> None:
        """Take a new pose: events along the tip's path, insertion state, targets, imaging."""
        old_pose = self._pose
        old_tip = None if old_pose is None else old_pose[:3, 3].copy()
        old_axis = None if old_pose is None else old_pose[:3, 2].copy()
        was_inserted = self._inserted
        self._pose = new_pose
        self._pose_dirty = True
        tip = new_pose[:3, 3]
        axis = new_pose[:3, 2]
        hub = tip - self.spec.length_mm * axis
        # insertion and the skin entry
        if kinematic and self._entry is not None and self._depth_along(tip, axis) > 0:
            entry = self._entry
        else:
            entry = self.probe_tissue.skin_entry(hub, tip)
            if entry is not None and float(np.dot(tip - entry, axis)) <= 0:
                entry = None
        self._entry = entry
        self._inserted = entry is not None
        # events along the path
        punctured = False
        if path_from is not None:
            punctured = self._path_events(path_from, tip, was_inserted)
        else:
            tis, lab = self.probe_tissue.tissue_label_at(tip[None])
            self._transition(int(tis[0]), int(lab[0]), tip, was_inserted and True)
        if self._inserted and not was_inserted:
            if not punctured:
                self._skin_puncture(entry)
        if was_inserted and not self._inserted:
            self._emit(EventKind.needle_out, "needle withdrawn out of the skin", position_mm=tip)
            self._bone_contact = False
            self._ref_dir = None
        # redirections and depth
        depth = self._depth_along(tip, axis) if self._inserted else 0.0
        if self._inserted:
            if self._ref_dir is None:
                self._ref_dir = axis.copy()
                self._max_depth = depth
            elif float(np.dot(axis, self._ref_dir)) < _COS_REDIRECT:
                ang = float(angle_between_deg(axis, self._ref_dir))
                if ang > REDIRECT_DEG:
                    withdrawn = self._max_depth - depth
                    proper = withdrawn >= PROPER_WITHDRAW_FRACTION * self._max_depth or depth <= PROPER_WITHDRAW_DEPTH_MM
                    msg = (f"needle redirected {ang:.0f} degrees" +
                           ("" if proper else f" at {depth:.0f} mm depth without withdrawing first"))
                    self._emit(EventKind.redirection, msg, angle_deg=ang, depth_mm=depth,
                               withdrawn_mm=withdrawn, proper=bool(proper))
                    self._ref_dir = axis.copy()
                    self._max_depth = depth
            self._max_depth = max(self._max_depth, depth)
            self._ever_inserted = True
            self._done["insertion"] = True
        # imaging accumulators
        if old_tip is not None and self._inserted:
            d = tip - old_tip
            along = float(np.dot(d, old_axis))
            lateral = float(np.linalg.norm(d - along * old_axis))
            self._note_motion(max(along, 0.0) + lateral, max(along, 0.0))
        # targets
        dists = {}
        for tg in self.targets:
            dd = float(tg.distance(tip)[0])
            dists[tg.id] = dd
            within = dd <= tg.tolerance_mm
            if within and not self._in_target[tg.id]:
                self._emit(EventKind.target_reached, f"tip at the {tg.name} ({dd:.1f} mm)", target=tg.id, distance_mm=dd)
                self._ever_target = True
                self._done["target"] = True
            elif not within and self._in_target[tg.id]:
                self._emit(EventKind.target_left, f"tip left the {tg.name} ({dd:.1f} mm)", target=tg.id, distance_mm=dd)
            self._in_target[tg.id] = within
            if tg.is_nerve:
                if dd <= NERVE_CONTACT_MM and self._nerve_armed[tg.id]:
                    self._emit(EventKind.nerve_contact, f"paraesthesia: the tip touches the {tg.name}", target=tg.id,
                               distance_mm=dd)
                    self._nerve_armed[tg.id] = False
                elif dd > 2 * NERVE_CONTACT_MM:
                    self._nerve_armed[tg.id] = True
        tis, lab = self._tip_key
        profile = None
        if self._inserted:
            probe, e0, t0 = self.probe_tissue, entry.copy(), tip.copy()
            profile = lambda: probe.shaft_profile(e0, t0)  # noqa: E731 - computed when first read
        self._state = NeedleState(
            time_s=self._now, needle_tip_to_world=new_pose.copy(), spec=self.spec, inserted=self._inserted,
            skin_entry_mm=None if entry is None else entry.copy(), depth_mm=depth, tissue=Tissue(tis),
            structure=self.probe_tissue.name_of(lab), bone_contact=self._bone_contact, target_distances_mm=dists,
            tip_visible=self._tip_visible, profile=profile,
        )

    def _skin_puncture(self, position) -> None:
        self._pass_index += 1
        self._emit(EventKind.skin_puncture, "skin punctured", position_mm=position, pass_index=self._pass_index)

    def _path_events(self, a: np.ndarray, b: np.ndarray, was_inserted: bool) -> bool:
        """Events for the tissues the tip passes from a to b; True if the skin was punctured."""
        punctured = False
        length = float(np.linalg.norm(b - a))
        if length == 0:
            tis, lab = self.probe_tissue.tissue_label_at(b[None])
            self._transition(int(tis[0]), int(lab[0]), b, was_inserted)
            return False
        for t, tis, lab in self.probe_tissue.runs(a, b, include_start=False):
            pos = a + t * (b - a)
            if (not was_inserted and not punctured and self._tip_key[0] == int(Tissue.AIR)
                    and tis != int(Tissue.AIR) and self._inserted):
                self._skin_puncture(pos)
                punctured = True
            self._transition(tis, lab, pos, was_inserted or punctured)
        return punctured

    def _critical_matches(self, tis: int, lab: int) -> set[int]:
        name = self.probe_tissue.name_of(lab)
        out = set()
        for i, (c, ct) in enumerate(self._crit):
            if (c.structure is not None and c.structure == name) or (ct is not None and int(ct) == tis):
                out.add(i)
        return out

    def _transition(self, tis: int, lab: int, pos: np.ndarray, in_body: bool) -> None:
        old_t, old_l = self._tip_key
        if (tis, lab) == (old_t, old_l):
            return
        self._tip_key = (tis, lab)
        name_old = self.probe_tissue.name_of(old_l)
        name = self.probe_tissue.name_of(lab)
        if old_l != lab and name_old:
            self._emit(EventKind.leave_structure, f"tip left the {name_old.replace('_', ' ')}", structure=name_old,
                       position_mm=pos)
        t = Tissue(tis)
        label_txt = (name or t.name.lower()).replace("_", " ")
        if old_l != lab and name:
            self._emit(EventKind.enter_structure, f"tip entered the {label_txt}", structure=name,
                       tissue=t.name.lower(), position_mm=pos)
        changed_class = tis != old_t or lab != old_l
        if changed_class:
            if t in VESSEL:
                kind = "artery" if t == Tissue.ARTERY else ("vein" if t == Tissue.VEIN else "heart")
                self._emit(EventKind.vessel_puncture, f"vessel punctured ({label_txt})", structure=name, vessel=kind,
                           position_mm=pos)
            elif t == Tissue.LUNG:
                self._emit(EventKind.pleural_breach, "pleura breached: the tip is in the lung", structure=name,
                           position_mm=pos)
            elif t in (Tissue.CSF, Tissue.SPINAL_CORD):
                self._emit(EventKind.dural_puncture, "dura punctured: the tip is in the spinal canal", structure=name,
                           tissue=t.name.lower(), position_mm=pos)
            elif t in ORGAN:
                self._emit(EventKind.organ_puncture, f"{label_txt} punctured", structure=name, tissue=t.name.lower(),
                           position_mm=pos)
            elif t in BONE and not self._bone_contact:
                near = name or self.probe_tissue.structure_near(pos)
                self._emit(EventKind.bone_contact, f"bone contact ({(near or 'bone').replace('_', ' ')})",
                           structure=near, position_mm=pos,
                           depth_mm=self._depth_along(pos, self._pose[:3, 2]) if self._entry is not None else 0.0)
            elif t == Tissue.NERVE:
                self._emit(EventKind.nerve_contact, f"paraesthesia: the tip touches a nerve ({label_txt})",
                           structure=name, position_mm=pos)
        now = self._critical_matches(tis, lab)
        for i in sorted(now - self._crit_in):
            c, _ = self._crit[i]
            what = c.structure or str(c.tissue)
            sev = str(getattr(c.severity, "value", c.severity))
            msg = c.message or f"{what.replace('_', ' ')} punctured"
            self._emit(EventKind.critical_contact, msg, structure=name, tissue=t.name.lower(), critical=what,
                       severity=sev, position_mm=pos)
        self._crit_in = now

    def _note_motion(self, moved_mm: float, forward_mm: float) -> None:
        """Count movement made without imaging; one event per allowance of unimaged movement."""
        fluoro = self._modality in ("fluoroscopy", "both")
        us = self._modality in ("ultrasound", "both")
        limit = float(self.scenario.rubric.advance_without_imaging_mm)
        if fluoro:
            self._unimaged_mm += moved_mm
        if us and self._tip_visible is not True:
            self._us_unseen_mm += forward_mm
        # "more than" the allowance: sums of 1 mm steps must not count 2.0000000000000004 as more than 2
        limit += 1e-6
        us_limit = US_UNSEEN_ADVANCE_MM + 1e-6
        if self._modality == "fluoroscopy":
            unimaged = self._unimaged_mm > limit
            amount = self._unimaged_mm
        elif self._modality == "ultrasound":
            unimaged = self._us_unseen_mm > us_limit
            amount = self._us_unseen_mm
        else:
            unimaged = self._unimaged_mm > limit and self._us_unseen_mm > us_limit
            amount = min(self._unimaged_mm, self._us_unseen_mm)
        if unimaged:
            what = {"fluoroscopy": "since the last fluoroscopy image", "ultrasound": "with the tip out of the ultrasound plane",
                    "both": "without seeing the tip"}[self._modality]
            self._emit(EventKind.advance_without_imaging, f"needle moved {amount:.0f} mm {what}", moved_mm=amount)
            self._unimaged_mm = 0.0
            self._us_unseen_mm = 0.0

    # ------------------------------------------------------------------------------------
    # needle inputs
    # ------------------------------------------------------------------------------------
    @_input
    def set_entry(self, point_mm, direction, roll_deg: float | None = None) -> NeedleState:
        """Aim the needle along `direction` at the skin where the line through `point_mm` enters the
        body; the tip rests just outside the skin there (PARK_MM)."""
        if self._inserted:
            raise ProcedureError("withdraw the needle out of the skin before choosing a new entry point")
        try:
            d = normalize(np.asarray(direction, dtype=np.float64).reshape(3))
            p = np.asarray(point_mm, dtype=np.float64).reshape(3)
        except (ValueError, TypeError) as e:
            raise ProcedureError(f"set_entry: bad point or direction ({e})") from None
        if not np.all(np.isfinite(p)):
            raise ProcedureError(f"set_entry: point_mm must be finite, got {p.tolist()}")
        skin = self.probe_tissue.body_entry_on_line(p, d)
        if skin is None:
            raise ProcedureError("set_entry: the line through that point along that direction never meets the body")
        roll = self.spec.bevel_direction_deg if roll_deg is None else float(roll_deg)
        pose = pose_from_tip_axis(skin - PARK_MM * d, d, roll)
        self._bone_contact = False
        self._apply(pose, path_from=None, kinematic=True)
        return self._state

    @_input
    def advance(self, mm: float) -> float:
        """Push the needle `mm` along its axis (negative: withdraw). Bone stops it, and the hub
        stops at the skin (depth at most the needle's length). Returns the distance moved."""
        self._require_placed("advance")
        mm = float(mm)
        if not math.isfinite(mm):
            raise ProcedureError(f"advance: mm must be finite, got {mm!r}")
        if mm < 0:
            return -self._withdraw(-mm)
        tip = self._pose[:3, 3].copy()
        axis = self._pose[:3, 2].copy()
        if self._inserted:
            # the hub stops at the skin: the needle goes in no deeper than its length
            mm = max(0.0, min(mm, self.spec.length_mm - self._depth_along(tip, axis)))
        target = tip + mm * axis
        fb = self.probe_tissue.first_bone(tip, target) if mm > 0 else None
        hit_bone = fb is not None
        if hit_bone:
            target, first, label = fb
        pose = self._pose.copy()
        pose[:3, 3] = target
        was_contact = self._bone_contact
        self._bone_contact = hit_bone
        self._apply(pose, path_from=tip, kinematic=True)
        if hit_bone and not was_contact:
            name = self.probe_tissue.name_of(label) or self.probe_tissue.structure_near(first)
            self._emit(EventKind.bone_contact, f"bone contact ({(name or 'bone').replace('_', ' ')}) at "
                       f"{self._state.depth_mm:.0f} mm", structure=name, position_mm=first, depth_mm=self._state.depth_mm)
            self._state = _replace_state(self._state, bone_contact=True)
        return float(np.linalg.norm(target - tip))

    def _withdraw(self, mm: float | None) -> float:
        tip = self._pose[:3, 3].copy()
        axis = self._pose[:3, 2].copy()
        if mm is None:
            if not self._inserted or self._entry is None:
                return 0.0
            mm = self._depth_along(tip, axis) + PARK_MM
        new_tip = tip - float(mm) * axis
        pose = self._pose.copy()
        pose[:3, 3] = new_tip
        self._bone_contact = False
        self._apply(pose, path_from=tip, kinematic=True)
        return float(mm)

    @_input
    def withdraw(self, mm: float | None = None) -> float:
        """Pull the needle back `mm` along its axis; without `mm`, out to just above the skin."""
        self._require_placed("withdraw")
        if mm is not None:
            mm = float(mm)
            if not (math.isfinite(mm) and mm >= 0):
                raise ProcedureError(f"withdraw: mm must be a non-negative number, got {mm!r}")
        return self._withdraw(mm)

    @_input
    def set_direction(self, direction=None, azimuth_deg: float | None = None,
                      elevation_deg: float | None = None) -> NeedleState:
        """Turn the needle to `direction` (or the angles of `geometry.direction_from_angles`): about
        its tip before the skin is punctured, about the skin entry once it is."""
        self._require_placed("set_direction")
        if direction is None:
            if azimuth_deg is None or elevation_deg is None:
                raise ProcedureError("set_direction: give a direction or both azimuth_deg and elevation_deg")
            d = direction_from_angles(float(azimuth_deg), float(elevation_deg))
        else:
            try:
                d = normalize(np.asarray(direction, dtype=np.float64).reshape(3))
            except (ValueError, TypeError) as e:
                raise ProcedureError(f"set_direction: bad direction ({e})") from None
        old = self._pose
        tip = old[:3, 3].copy()
        rot = rotation_between(old[:3, 2], d) @ old[:3, :3]
        rot[:, 2] = d  # exactly the requested axis
        pose = np.eye(4)
        pose[:3, :3] = rot
        if self._inserted and self._entry is not None:
            depth = self._depth_along(tip, old[:3, 2])
            new_tip = self._entry + depth * d
            fb = self.probe_tissue.first_bone(self._entry, new_tip)
            hit_bone = fb is not None
            if hit_bone:
                new_tip, first, label = fb
            pose[:3, 3] = new_tip
            was_contact = self._bone_contact
            self._bone_contact = hit_bone
            self._apply(pose, path_from=tip, kinematic=True)
            if hit_bone and not was_contact:
                name = self.probe_tissue.name_of(label) or self.probe_tissue.structure_near(first)
                self._emit(EventKind.bone_contact, f"bone contact ({(name or 'bone').replace('_', ' ')})",
                           structure=name, position_mm=first, depth_mm=self._state.depth_mm)
                self._state = _replace_state(self._state, bone_contact=True)
        else:
            pose[:3, 3] = tip
            self._apply(pose, path_from=None, kinematic=True)
        return self._state

    @_input
    def set_needle_tip_to_world(self, matrix) -> NeedleState:
        """A tracked pose, taken as measured (no kinematic constraint)."""
        m = np.asarray(matrix, dtype=np.float64)
        if m.shape != (4, 4) or not is_rigid(m, tol=1e-3):
            raise ProcedureError("set_needle_tip_to_world: expected a rigid 4x4 transform (rotation + translation)")
        old_tip = None if self._pose is None else self._pose[:3, 3].copy()
        self._bone_contact = False
        self._apply(m.copy(), path_from=old_tip, kinematic=False)
        return self._state

    # ------------------------------------------------------------------------------------
    # procedure steps
    # ------------------------------------------------------------------------------------
    @_input
    def local_anaesthetic(self, volume_ml: float = 5.0, agent: str = "lidocaine", concentration_pct: float = 1.0,
                          point_mm=None) -> Event:
        """Infiltrate the skin and track at `point_mm`, or at the needle's entry point."""
        v = float(volume_ml)
        if not (v > 0 and math.isfinite(v)):
            raise ProcedureError(f"local_anaesthetic: volume_ml must be positive, got {volume_ml!r}")
        if point_mm is not None:
            site = np.asarray(point_mm, dtype=np.float64).reshape(3)
        elif self._pose is None:
            raise ProcedureError("local_anaesthetic: place the needle at the entry point first, or give point_mm")
        elif self._inserted and self._entry is not None:
            site = self._entry.copy()
        else:
            site = self._pose[:3, 3] + PARK_MM * self._pose[:3, 2]
        before = not self._inserted
        ev = self._emit(EventKind.local_anaesthetic, f"local anaesthetic: {v:g} ml {agent} {float(concentration_pct):g} %"
                        + ("" if before else " (after the needle was in)"),
                        site_mm=site, volume_ml=v, agent=str(agent), concentration_pct=float(concentration_pct),
                        before_insertion=before)
        self._done["local_anaesthetic"] = True
        return ev

    def _aspirate_result(self) -> str:
        if self._pose is None or not self._inserted:
            return "nothing"
        t = Tissue(self._tip_key[0])
        if t in VESSEL:
            return "blood"
        if t in (Tissue.CSF, Tissue.SPINAL_CORD):
            return "csf"
        if t in (Tissue.LUNG, Tissue.AIRWAY):
            return "air"
        if t in (Tissue.STOMACH, Tissue.BOWEL, Tissue.ESOPHAGUS):
            return "bowel contents"
        if t == Tissue.AIR:
            return "air"
        return "nothing"

    @_input
    def aspirate(self) -> str:
        """Pull back on the syringe: blood, csf, air, bowel contents or nothing."""
        self._require_placed("aspirate")
        res = self._aspirate_result()
        text = {"blood": "blood - the tip is in a vessel", "csf": "clear fluid (CSF)", "air": "air",
                "bowel contents": "bowel contents", "nothing": "negative (nothing)"}[res]
        self._emit(EventKind.aspiration, f"aspiration: {text}", result=res, tip_mm=self._pose[:3, 3],
                   tissue=Tissue(self._tip_key[0]).name.lower(), structure=self.probe_tissue.name_of(self._tip_key[1]))
        self._aspiration_tip = self._pose[:3, 3].copy()
        if self._ever_target:
            self._done["aspiration"] = True
        return res

    @_input
    def inject(self, kind: str, agent: str, concentration_pct: float, volume_ml: float) -> Spread:
        """Inject through the needle. kind: contrast | test_dose | neurolytic. Returns the spread."""
        self._require_placed("inject")
        if kind not in INJECTION_KINDS:
            raise ProcedureError(f"inject: kind must be one of {', '.join(INJECTION_KINDS)}, got {kind!r}")
        v = float(volume_ml)
        c = float(concentration_pct)
        if not (v > 0 and math.isfinite(v)):
            raise ProcedureError(f"inject: volume_ml must be positive, got {volume_ml!r}")
        if not (0 <= c <= 100):
            raise ProcedureError(f"inject: concentration_pct must be in [0, 100], got {concentration_pct!r}")
        tip = self._pose[:3, 3].copy()
        aspirated = self._aspiration_tip is not None and float(np.linalg.norm(tip - self._aspiration_tip)) <= ASPIRATION_VALID_MM
        sp = compute_spread(self.anatomy, tip, v)
        sp.time_s = self._now
        sp.kind = kind
        sp.agent = str(agent)
        sp.concentration_pct = c
        coverage = {}
        pts = sp.points_mm() if len(sp.indices) else np.zeros((0, 3))
        for tg in self.targets:
            samples, radius = tg.coverage_samples()
            coverage[tg.id] = sp.coverage_of(samples, radius)
        sp.coverage = coverage
        if sp.mode in ("intravascular", "intrathecal", "outside"):
            off = v
        elif len(pts) and self.targets:
            dmin = np.full(len(pts), np.inf)
            for tg in self.targets:
                dmin = np.minimum(dmin, tg.distance(pts) - tg.tolerance_mm)
            far = dmin > OFF_TARGET_MARGIN_MM
            off = float(sp.fraction[far].astype(np.float64).sum() * sp.voxel_volume_mm3 / 1000.0)
        else:
            off = 0.0
        dists = {tg.id: float(tg.distance(tip)[0]) for tg in self.targets}
        where = {"tissue": "", "intravascular": " - into a blood vessel (it washes away)",
                 "intrathecal": " - into the dural sac (intrathecal)", "intra_organ": f" - into the {sp.tip_tissue.name.lower()}",
                 "intraosseous": " - into bone", "outside": " - outside the body"}[sp.mode]
        label = {"contrast": "contrast", "test_dose": "test dose", "neurolytic": "neurolytic"}[kind]
        self._emit(EventKind.injection, f"{label}: {v:g} ml {agent} {c:g} %{where}", kind=kind, agent=str(agent),
                        concentration_pct=c, volume_ml=v, tip_mm=tip, mode=sp.mode, aspirated=bool(aspirated),
                        pass_index=self._pass_index, coverage=coverage, off_target_ml=off, target_distances_mm=dists,
                        tissue=sp.tip_tissue.name.lower(), structure=sp.tip_structure, spread=sp.summary())
        self._injection_warnings(kind, str(agent), aspirated, sp)
        self._aspiration_tip = None
        self.spreads.append(sp)
        self._done[kind] = True
        self.spread_added.emit(sp)
        return sp

    def _injection_warnings(self, kind: str, agent: str, aspirated: bool, sp: Spread) -> None:
        steps = self.scenario.steps
        if steps.aspiration_before_injection and not aspirated:
            self._emit(EventKind.step_warning, f"{kind.replace('_', ' ')} injected without aspirating first",
                       key="no_aspiration")
        if kind != "neurolytic":
            return
        ev = self.recording.events
        punct = [e for e in ev if e.kind == EventKind.skin_puncture]
        start = punct[-1].time_s if punct else -math.inf
        in_pass = [e for e in ev if e.kind == EventKind.injection and e.time_s >= start]
        if steps.local_anaesthetic and not any(e.kind == EventKind.local_anaesthetic for e in ev):
            self._emit(EventKind.step_warning, "neurolytic given without local anaesthetic", key="no_local_anaesthetic")
        if steps.contrast is not None and not any(e.data.get("kind") == "contrast" for e in in_pass):
            self._emit(EventKind.step_warning, "neurolytic given before contrast confirmed the spread", key="no_contrast")
        if steps.test_dose is not None and not any(e.data.get("kind") == "test_dose" for e in in_pass):
            self._emit(EventKind.step_warning, "neurolytic given without a test dose", key="no_test_dose")
        if sp.intravascular:
            self._emit(EventKind.step_warning, f"{agent} went into a blood vessel", key="intravascular")
        if sp.intrathecal:
            self._emit(EventKind.step_warning, f"{agent} went into the dural sac", key="intrathecal")

    # ------------------------------------------------------------------------------------
    # imaging inputs
    # ------------------------------------------------------------------------------------
    def _fluoro_shot(self, dap_gycm2: float, duration_s: float, kvp, lao_deg, cranial_deg, live: bool, frames: int):
        self._emit(EventKind.fluoro_shot, "fluoroscopy" + (" (live)" if live else " image"),
                   dap_gycm2=float(dap_gycm2), duration_s=float(duration_s), kvp=kvp, lao_deg=lao_deg,
                   cranial_deg=cranial_deg, live=bool(live), frames=int(frames))
        self._unimaged_mm = 0.0

    def _set_visible(self, visible: bool, distance_to_plane_mm) -> None:
        v = bool(visible)
        changed = v != self._tip_visible
        self._tip_visible = v
        self._distance_to_plane = None if distance_to_plane_mm is None else float(distance_to_plane_mm)
        if v:
            self._us_unseen_mm = 0.0
            if self._modality == "both":
                self._unimaged_mm = 0.0
        if changed:
            self._emit(EventKind.ultrasound_view, "needle tip " + ("in" if v else "out of") + " the ultrasound plane",
                       visible=v, distance_to_plane_mm=self._distance_to_plane)
        if self._state is not None:
            self._state = _replace_state(self._state, tip_visible=v)

    @_input
    def record_fluoro_shot(self, dap_gycm2: float = 0.0, duration_s: float = 0.0, kvp: float | None = None,
                           lao_deg: float | None = None, cranial_deg: float | None = None, live: bool = False,
                           frames: int = 1) -> None:
        """A fluoroscopy exposure (from the fluoroscopy view)."""
        self._fluoro_shot(dap_gycm2, duration_s, kvp, lao_deg, cranial_deg, live, frames)

    @_input
    def set_tip_visible(self, visible: bool, distance_to_plane_mm: float | None = None) -> None:
        """The ultrasound view's verdict for the current frame."""
        self._set_visible(visible, distance_to_plane_mm)

    @_input
    def record_imaging(self, kind: str, data: dict | None = None) -> None:
        """kind 'fluoroscopy' (data as record_fluoro_shot) or 'ultrasound' (visible, distance_to_plane_mm)."""
        data = dict(data or {})
        if kind == "fluoroscopy":
            self._fluoro_shot(data.get("dap_gycm2", 0.0), data.get("duration_s", 0.0), data.get("kvp"),
                              data.get("lao_deg"), data.get("cranial_deg"), data.get("live", False), data.get("frames", 1))
        elif kind == "ultrasound":
            if "visible" not in data:
                raise ProcedureError("record_imaging('ultrasound'): data needs 'visible'")
            self._set_visible(data["visible"], data.get("distance_to_plane_mm"))
        else:
            raise ProcedureError(f"record_imaging: kind must be 'fluoroscopy' or 'ultrasound', got {kind!r}")

    @_input
    def set_probe_to_world(self, matrix) -> None:
        m = np.asarray(matrix, dtype=np.float64)
        if m.shape != (4, 4) or not np.all(np.isfinite(m)):
            raise ProcedureError("set_probe_to_world: expected a finite 4x4 matrix")
        self._probe = m.copy()

    @_input
    def set_carm_pose(self, lao_deg: float, cranial_deg: float, isocenter_mm=None) -> None:
        iso = [math.nan] * 3 if isocenter_mm is None else [float(x) for x in isocenter_mm]
        v = np.array([float(lao_deg), float(cranial_deg), *iso])
        if v.shape != (CARM_DIM,):
            raise ProcedureError("set_carm_pose: isocenter_mm needs three numbers")
        self._carm = v

    @_input
    def tick(self) -> None:
        """Record a sample of the current state now."""

    @_input
    def end(self) -> None:
        """Finish the attempt (further inputs are refused)."""
        self._emit(EventKind.end, "attempt ended")
        self._ended = True
        self._done["end"] = True


def _replace_state(state: NeedleState, **changes) -> NeedleState:
    from dataclasses import replace

    return replace(state, **changes)


def input_names() -> list[str]:
    """The names of the Procedure's recorded inputs."""
    return [n for n, f in vars(Procedure).items() if getattr(f, "_is_input", False)]


def replay(recording: Recording, scenario, anatomy: Anatomy, *, targets: list[TargetGeometry] | None = None,
           silent: bool = False) -> Procedure:
    """Rebuild an attempt by feeding its recorded inputs through the same entry points.

    The result's recording equals the original (samples bit for bit, events, inputs) when the
    scenario and anatomy are the ones it was recorded with."""
    if targets is None:
        saved = (recording.meta or {}).get("targets")
        if saved:
            from simulator.core.metrics import TargetGeometry as _TG

            targets = [_TG(id=d["id"], name=d["name"], kind=d["kind"], points_mm=np.asarray(d["points_mm"], float),
                           radius_mm=float(d["radius_mm"]), tolerance_mm=float(d["tolerance_mm"]),
                           required=bool(d["required"]), side=d.get("side", "midline")) for d in saved]
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
