"""How the scripted operator's hand moves the needle (a mixin of `attempt.Operator`): movements and
turns recorded as a tracker sees a hand (`Hand.dt` apart), steering back onto the line to the goal,
walking off bone, and needless redirections.

- A movement goes at the hand's steady speed, or as a quick jab now and then (`Hand.jab_share`),
  the needle wavering by the hand's tremor as it is pushed (`Hand.tremor_deg`, a turn about the
  skin entry: at depth it sweeps tissue - a braced hand no more than at `TISSUE_HOLD_MM`, the
  tissue holds a deep shaft - and the hand steers back when it has drifted);
  it stops early at bone, in a tissue it was told to stop in, or when the ultrasound image has
  lost the tip for longer than the hand tolerates (`Hand.lost_mm`).
- A turn goes at the hand's turning speed; a less steady hand overshoots (`Hand.overshoot`: past
  the wanted direction, then back - deeper than `OVERSHOOT_FREE_MM` no more than
  `OVERSHOOT_TIP_MM` of tip excursion).
- Steering: when the needle is more than `Hand.correct_deg` off the line from the skin entry to
  the goal (a trained eye: also when the tip would miss the goal by more than `MISS_MM_PER_DEG`
  times that - a long path in the tunnel view), the hand turns back onto it - after withdrawing to
  `Hand.withdraw_fraction` of the depth when the turn is larger than `REDIRECT_WITHDRAW_DEG` (an
  expert withdraws well back; a novice barely, sweeping tissue).
- Aiming through a bony window (`window_aim`): the nearest point beside the goal whose line from
  the skin entry keeps `WINDOW_MARGIN_MM` from bone and from the critical structures the needle
  must not cross (less when the window is narrower).
- Bone: met on the way, the hand images, withdraws (`WALK_OFF_BACK_MM` for a small turn deep in
  the body, else half way) and turns to a window beside the goal on the side away from the bone
  (rings around the goal itself, wider each try - never around the last try's point); after
  `WALK_OFF_TRIES` a second pass from the marked entry (`repass`). Met on the final approach
  within `Operator.on_bone_mm` of the goal, the tip is there, resting on the bone beside the target
  (the floor of the suprascapular notch), and the hand stops.
"""
from __future__ import annotations

import math

import numpy as np

from simulator.core.geometry import angle_between_deg, normalize
from simulator.scripted.imaging import slerp
from simulator.scripted.plan import avoided, clear_line

MISS_MM_PER_DEG = 1.25  # a hand that corrects 0.8 deg of misalignment corrects a 1 mm miss at the goal too
REDIRECT_WITHDRAW_DEG = 4.0  # a turn larger than this is made after withdrawing towards the skin
OVERSHOOT_TIP_MM = 3.0  # an overshoot at depth moves the tip at most this far
OVERSHOOT_FREE_MM = 30.0  # shallower than this an overshoot is not held back
#: The hand's tremor turns the needle about the skin entry; a hand braced on the patient (expert,
#: intermediate) holding it near the skin: deeper than this the tissue along the shaft holds it and
#: the tip sways no more than a tremor moves it at this depth. A novice's free hand on the hub
#: turns the whole needle.
TISSUE_HOLD_MM = 50.0
#: Seeking the bone first: no contact this far past the expected depth and the hand stops (the
#: needle has passed beside the body - in front of it lie the aorta, the IVC, the iliac vessels):
#: a clinician takes the lateral view then rather than pushing on blind.
BONE_SEEK_PAST_MM = 4.0
#: The clearance an operator keeps around the aimed line in a narrow bony window (tried in turn).
WINDOW_MARGIN_MM = (1.0, 0.5, 0.0)
#: Walking off bone with a small turn: withdraw this far first (a larger turn withdraws half way).
WALK_OFF_BACK_MM = 10.0
WALK_OFF_DEEP_MM = 60.0  # ... when the tip is at least this deep (a shallow needle withdraws half way)
WALK_OFF_TRIES = 6  # bone met again after this many walk-offs: the hand stops there


def clear_aim(proc, entry, goal, start_mm: float = 0.0, max_mm: float = 4.0, margin_mm: float = 0.0, prefer=None):
    """The goal, or the nearest point on rings around it (across the path, 0.75 mm apart) whose
    line from `entry` meets no bone (nor a critical structure the needle must not cross) before its
    end - and, with `margin_mm`, neither do the lines to the points that far around it (the middle
    of the window, not its edge); on a ring the points nearest `prefer` first. None if none within
    `max_mm`."""
    entry = np.asarray(entry, dtype=np.float64)
    goal = np.asarray(goal, dtype=np.float64)
    d = normalize(goal - entry)
    u = normalize(np.cross(d, [0.0, 0.0, 1.0]) if abs(d[2]) < 0.9 else np.cross(d, [1.0, 0.0, 0.0]))
    v = np.cross(d, u)
    around = [margin_mm * (math.cos(a) * u + math.sin(a) * v) for a in np.arange(6) * math.pi / 3] if margin_mm > 0 else []
    critical = avoided(proc)

    def clear(p) -> bool:
        return clear_line(proc.probe_tissue, entry, p, critical=critical)

    r = start_mm
    while r <= max_mm + 1e-9:
        n = 1 if r == 0 else max(6, int(2 * math.pi * r / 0.75))
        ring = [goal + r * (math.cos(a) * u + math.sin(a) * v) for a in 2 * math.pi * np.arange(n) / n]
        if prefer is not None:
            ring.sort(key=lambda p: float(np.linalg.norm(p - prefer)))
        for p in ring:
            if clear(p) and all(clear(p + m) for m in around):
                return p
        r += 0.75
    return None


def window_aim(proc, entry, goal, max_mm: float, start_mm: float = 0.0, prefer=None):
    """Where to aim from `entry` for `goal` through a narrow bony window, as the tunnel view shows
    it: the nearest point whose line keeps `WINDOW_MARGIN_MM` from bone and critical structures
    (a hand's sway stays clear), less margin when the window is narrower, else None."""
    for margin in WINDOW_MARGIN_MM:
        aim = clear_aim(proc, entry, goal, start_mm=start_mm, max_mm=max_mm, margin_mm=margin, prefer=prefer)
        if aim is not None:
            return aim
    return None


class OperatorMotion:
    """Needle motion of the scripted operator (state lives in `Operator.__init__`)."""

    def _track(self, old_tip, old_axis) -> None:
        st = self.state
        if not st.inserted:
            return
        d = st.tip_mm - old_tip
        along = float(d @ old_axis)
        self.unimaged_mm += max(along, 0.0) + float(np.linalg.norm(d - along * old_axis))

    def _sweep(self, start, want) -> None:
        """Turn from `start` to `want` at the hand's turning speed, one recorded input a sample."""
        ang = float(angle_between_deg(start, want))
        n = self.h.turn_steps(ang)
        for i in range(1, n + 1):
            st = self.state
            old_tip, old_axis = st.tip_mm.copy(), st.axis.copy()
            d = want if i == n else slerp(start, want, i / n)
            self.p.set_direction(d, time_s=self.now(self.h.dt))
            self._track(old_tip, old_axis)
            self.verdict()

    def turn(self, direction, overshoot: bool = True) -> None:
        st = self.state
        if st.inserted:  # the tip sweeps depth x angle: an image first if that passes the allowance
            self.image_before(st.depth_mm * math.radians(float(angle_between_deg(st.axis, direction))), cap=False)
        want = normalize(direction)
        start = self.state.axis.copy()
        ang = float(angle_between_deg(start, want))
        extra = self.h.overshoot * ang if overshoot else 0.0
        st = self.state
        if extra > 0 and st.inserted and st.depth_mm > OVERSHOOT_FREE_MM:
            extra = min(extra, math.degrees(OVERSHOOT_TIP_MM / st.depth_mm))
        if extra > 0.5 and ang > 0.5:
            past = slerp(start, want, 1.0 + extra / ang)
            self._sweep(start, past)
            self._sweep(past, want)
        else:
            self._sweep(start, want)

    def move(self, mm: float, stop_in=()) -> float:
        """One movement of `mm` (negative: back), as the hand's sub-steps (stopping early on bone,
        in a tissue of `stop_in`, or when the image has lost the tip for too long). Returns the
        distance."""
        speed = self.h.movement_speed(mm)
        n = self.h.substeps(mm, speed)
        done = 0.0
        self.p.tick(time_s=self.now())  # the recorder's sample of the hand at rest, just before it moves
        st = self.state
        if mm > 0 and st.inserted and self.h.tremor_deg > 0:  # the hand wavers as it pushes
            # a hand braced on the patient (not a novice's free hand on the hub): deep in the body the
            # tissue holds the shaft and the tip sways as at TISSUE_HOLD_MM, no more
            hold = 1.0 if self.h.skill == "novice" else min(1.0, TISSUE_HOLD_MM / max(st.depth_mm, 1e-6))
            self._sweep(st.axis.copy(), self.h.waver(st.axis, scale=hold))
        for i in range(n):
            st = self.state
            old_tip, old_axis = st.tip_mm.copy(), st.axis.copy()
            if mm > 0:
                done += self.p.advance(mm / n, time_s=self.now(self.h.dt))
            else:
                done += self.p.withdraw(-mm / n, time_s=self.now(self.h.dt))
            self._track(old_tip, old_axis)
            if mm > 0 and self.us:
                self.drift_probe(i)
            self.verdict()
            if mm > 0 and self.follows_tip() and self.visible is False and self.state.inserted:
                self.unseen_mm += abs(mm) / n
                if self.unseen_mm > self.h.lost_mm:
                    break  # the tip is not in the image: stop, find it with the probe
            if mm > 0 and (self.state.bone_contact or (stop_in and self.state.tissue in stop_in)):
                break
        return done

    def withdraw_to(self, depth_mm: float) -> None:
        back = self.state.depth_mm - max(0.0, depth_mm)
        if back > 0.05:
            self.move(-back)

    def steer(self, goal) -> None:
        """Turn back onto the line from the skin entry to the goal when the needle has drifted."""
        st = self.state
        want = normalize(goal - self.pivot())
        ang = float(angle_between_deg(st.axis, want))
        reach = float(np.linalg.norm(goal - self.pivot()))
        # the hand corrects a misalignment of `correct_deg`; a trained eye also a smaller one that
        # would miss the goal by more than MISS_MM_PER_DEG x that (the tunnel view shows the drift)
        limit = self.h.correct_deg
        if self.h.skill != "novice":
            limit = min(limit, math.degrees(MISS_MM_PER_DEG * self.h.correct_deg / max(reach, 1.0)))
        if ang <= limit:
            return
        if st.inserted and ang > REDIRECT_WITHDRAW_DEG and st.depth_mm > 20.0:
            self.withdraw_to(max(20.0, self.h.withdraw_fraction * st.depth_mm))
            want = normalize(goal - self.pivot())
        self.turn(want)

    def advance_to(self, goal, until_bone: bool = False, wiggles: int = 0, stop_in=(), exact: bool = False,
                   final: bool = False) -> None:
        """Advance to `goal` (or to bone contact with `until_bone`; or until the tip is in one of
        the tissues `stop_in`), steering on the way; `final`: the approach to the target (the
        lateral view for the depth on the way)."""
        goal = np.asarray(goal, dtype=np.float64)
        target = goal.copy()
        stop_short = 0.0 if (until_bone or exact) else self.h.stop_short_mm
        bone_tries = 0
        for _ in range(300):
            st = self.state
            if stop_in and st.tissue in stop_in:
                return
            if st.bone_contact:
                if until_bone or (final and float(np.linalg.norm(target - st.tip_mm)) <= self.on_bone_mm):
                    return  # the tip rests on the bone at the target (the floor of a notch, a body's margin)
                bone_tries += 1
                if bone_tries > WALK_OFF_TRIES:
                    if not final or self.repassed or self.plan is None:
                        return
                    goal = self.repass(target)
                    bone_tries = 0
                    continue
                aim = self.walk_off_bone(target, bone_tries)
                if aim is not None:
                    goal = aim  # the clear point beside the goal from now on
                continue
            self.steer(goal)
            self.refocus(goal)
            while wiggles > 0 and self.state.inserted and self.state.depth_mm > 5:
                self.wiggle()
                wiggles -= 1
            remaining = float((goal - self.state.tip_mm) @ self.state.axis)
            if final:
                self.lateral_check(remaining)
            if until_bone:
                remaining += BONE_SEEK_PAST_MM
            remaining -= stop_short
            if remaining < -0.5 and not until_bone:  # past the goal (after a walk-off): back to it
                self.move(remaining)
                continue
            if remaining <= 0.2:
                return
            mm = self.image_before(min(self.h.move_mm, remaining))
            if self.follows_tip() and not self.visible:
                mm = min(mm, 1.5)  # small steps until the tip shows in the image
            if self.move(mm, stop_in) < 1e-3 and not self.state.bone_contact:
                return
            if not until_bone:
                st = self.state
                if float(np.linalg.norm(goal - st.tip_mm)) < 0.3:
                    return

    def walk_off_bone(self, goal, attempt: int):
        """Bone in the way: an image, then a redirection to a point beside the goal whose line from
        the skin entry keeps clear of the bone (`window_aim`; further from the goal on each try).
        A small turn deep in the body is made after withdrawing `WALK_OFF_BACK_MM` (walking off the
        bone), a larger one or a shallow one after withdrawing half way (a proper redirection)."""
        if self.imaging_on:
            self.shot()
        st = self.state
        e = self.pivot()
        away = goal + 10.0 * self.off_bone(st)  # walk off: beside the goal, on the side away from the bone
        aim = window_aim(self.p, e, goal, max_mm=self.walk_off_mm, start_mm=0.75 * (attempt - 1), prefer=away)
        if aim is None:  # no window near the goal: any clear line up to 4 mm beside it
            aim = clear_aim(self.p, e, goal, start_mm=1.5 * attempt)
        want = (goal if aim is None else aim) - e
        if float(angle_between_deg(st.axis, want)) > REDIRECT_WITHDRAW_DEG or st.depth_mm < WALK_OFF_DEEP_MM:
            self.withdraw_to(0.45 * st.depth_mm)
        else:
            self.withdraw_to(st.depth_mm - WALK_OFF_BACK_MM)
        self.turn(want)
        return aim

    def repass(self, goal) -> np.ndarray:
        """Walking off has not found the window from this skin entry: the needle out, and a new
        pass from the marked entry in the tunnel view through the middle of the window (once per
        needle). Returns the new aim."""
        self.repassed = True
        self.withdraw_to(0.0)
        self.p.withdraw(time_s=self.now(self.h.dt))
        entry = self.plan.entry_mm
        aim = window_aim(self.p, entry, goal, max_mm=self.walk_off_mm, prefer=self.plan.target_mm)
        aim = goal if aim is None else aim
        self.view("oblique", self.side)
        self.lateral_done = False
        self.p.set_entry(entry, self.h.waver(normalize(aim - entry)), time_s=self.now())
        if self.imaging_on:
            self.shot()  # the new pass in the tunnel view
        return aim

    def off_bone(self, st) -> np.ndarray:
        """The direction across the needle away from the bone its tip touches (the mean of the
        directions 3 mm around the tip that are not bone; zero when it cannot tell)."""
        from simulator.core.tissue import BONE

        ax = st.axis
        u = normalize(np.cross(ax, [0.0, 0.0, 1.0]) if abs(ax[2]) < 0.9 else np.cross(ax, [1.0, 0.0, 0.0]))
        v = np.cross(ax, u)
        dirs = np.array([math.cos(a) * u + math.sin(a) * v for a in np.arange(12) * math.pi / 6])
        tis = self.p.probe_tissue.tissue_at(st.tip_mm + 1.0 * ax + 3.0 * dirs)
        bone = np.isin(tis, [int(t) for t in BONE])
        w = dirs[~bone].sum(axis=0) - dirs[bone].sum(axis=0)
        n = float(np.linalg.norm(w))
        return w / n if n > 1e-6 and bone.any() and not bone.all() else np.zeros(3)

    def wiggle(self) -> None:
        """A needless redirection out and back (8 degrees each way)."""
        st = self.state
        ax = st.axis
        side = normalize(np.cross(ax, [0.0, 0.0, 1.0]) if abs(ax[2]) < 0.9 else np.cross(ax, [1.0, 0.0, 0.0]))
        self.turn(math.cos(math.radians(8)) * ax + math.sin(math.radians(8)) * side, overshoot=False)
        self.move(1.0)
        self.turn(ax, overshoot=False)

    def reaim_at_skin(self, aim_dir) -> None:
        """Before puncturing: a less sure hand re-aims the needle at the skin (turns of 10 - 25
        degrees away and back), `Hand.skin_reaims` times."""
        from simulator.scripted.hand import REAIM_DEG

        for _ in range(int(self.h.skin_reaims)):
            away = self.h.turned(aim_dir, float(self.h.rng.uniform(*REAIM_DEG)))
            self.now()
            self._sweep(self.state.axis.copy(), away)
            self.now()
            self._sweep(self.state.axis.copy(), normalize(aim_dir))
