"""The needle inputs of the Procedure (a mixin of `procedure.Procedure`): entry, advance,
withdrawal, turning and tracked poses, and what the tip meets on its way.

Every new pose goes through `_apply`: the skin entry and insertion state, the events along the
tip's path (skin puncture, structures entered and left, vessel, pleura, dura, organ, bone, nerve,
critical structures), redirections, the imaging allowance, target reached/left and nerve contact.

Imaging rules (advances without imaging), per the scenario's modality:
- fluoroscopy: the needle's movement in tissue (forward along its axis plus sideways, not
  withdrawal) since the last fluoroscopy exposure; past `rubric.advance_without_imaging_mm` one
  `advance_without_imaging` event, then none until the next exposure.
- ultrasound: forward advance in tissue while the view reports the tip out of the image plane;
  past 2 mm one event, then none until the tip is seen again.
- both: an advance counts when neither holds (unseen on ultrasound and unimaged on fluoroscopy).
"""
from __future__ import annotations

import math

import numpy as np

from simulator.core.events import EventKind
from simulator.core.geometry import (
    angle_between_deg,
    direction_from_angles,
    is_rigid,
    normalize,
    pose_from_tip_axis,
    rotation_between,
)
from simulator.core.needle import (
    PARK_MM,
    PROPER_WITHDRAW_DEPTH_MM,
    PROPER_WITHDRAW_FRACTION,
    REDIRECT_DEG,
    NeedleState,
)
from simulator.core.procedure_input import ProcedureError, recorded_input, replace_state
from simulator.core.targets import NERVE_CONTACT_MM
from simulator.core.tissue import BONE, ORGAN, VESSEL, Tissue

US_UNSEEN_ADVANCE_MM = 2.0
_COS_REDIRECT = math.cos(math.radians(REDIRECT_DEG)) + 1e-12  # cheap pre-check of the redirection angle


class NeedleMotion:
    """Needle inputs and the tip's path (state lives in `Procedure.__init__`)."""

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

    def is_critical(self, tissue: int, label: int) -> bool:
        """Is a voxel of this tissue code and label one of the scenario's critical structures?"""
        return bool(self._critical_matches(int(tissue), int(label)))

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
    @recorded_input
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

    @recorded_input
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
            self._bone_contact_event(label, first, say_depth=True)
        return float(np.linalg.norm(target - tip))

    def _bone_contact_event(self, label: int, first, say_depth: bool) -> None:
        """The tip stopped at bone: the event (named by the bone's label, or the nearest bone)."""
        name = self.probe_tissue.name_of(label) or self.probe_tissue.structure_near(first)
        depth = self._state.depth_mm
        text = f"bone contact ({(name or 'bone').replace('_', ' ')})" + (f" at {depth:.0f} mm" if say_depth else "")
        self._emit(EventKind.bone_contact, text, structure=name, position_mm=first, depth_mm=depth)
        self._state = replace_state(self._state, bone_contact=True)

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

    @recorded_input
    def withdraw(self, mm: float | None = None) -> float:
        """Pull the needle back `mm` along its axis; without `mm`, out to just above the skin."""
        self._require_placed("withdraw")
        if mm is not None:
            mm = float(mm)
            if not (math.isfinite(mm) and mm >= 0):
                raise ProcedureError(f"withdraw: mm must be a non-negative number, got {mm!r}")
        return self._withdraw(mm)

    @recorded_input
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
                self._bone_contact_event(label, first, say_depth=False)
        else:
            pose[:3, 3] = tip
            self._apply(pose, path_from=None, kinematic=True)
        return self._state

    @recorded_input
    def set_needle_tip_to_world(self, matrix) -> NeedleState:
        """A tracked pose, taken as measured (no kinematic constraint)."""
        m = np.asarray(matrix, dtype=np.float64)
        if m.shape != (4, 4) or not is_rigid(m, tol=1e-3):
            raise ProcedureError("set_needle_tip_to_world: expected a rigid 4x4 transform (rotation + translation)")
        old_tip = None if self._pose is None else self._pose[:3, 3].copy()
        self._bone_contact = False
        self._apply(m.copy(), path_from=old_tip, kinematic=False)
        return self._state

    @recorded_input
    def set_tracked_pose(self, needle_tip_to_world=None, probe_to_world=None) -> NeedleState | None:
        """One frame of a tracker (OpenIGTLink, a tracked file): the needle and/or the probe as
        measured, one input and one sample (as Perk Tutor samples a tracked sequence). Both poses are
        checked (rigid, finite) before either is taken."""
        if needle_tip_to_world is None and probe_to_world is None:
            raise ProcedureError("set_tracked_pose: give the needle pose, the probe pose or both")
        poses = []
        for what, value in (("needle_tip_to_world", needle_tip_to_world), ("probe_to_world", probe_to_world)):
            m = None if value is None else np.asarray(value, dtype=np.float64)
            if m is not None and (m.shape != (4, 4) or not is_rigid(m, tol=1e-3)):
                raise ProcedureError(f"set_tracked_pose: {what} must be a rigid 4x4 transform (rotation + translation)")
            poses.append(m)
        needle, probe = poses
        if probe is not None:
            self._probe = probe.copy()
        if needle is not None:
            old_tip = None if self._pose is None else self._pose[:3, 3].copy()
            self._bone_contact = False
            self._apply(needle.copy(), path_from=old_tip, kinematic=False)
        return self._state
