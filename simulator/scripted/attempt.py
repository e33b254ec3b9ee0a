"""The scripted operator: drives a `Procedure` through its own inputs, needle by needle.

Per needle plan (`plan.NeedlePlan`): C-arm to the side's oblique view (fluoroscopy) or the probe
in plane with the planned path (ultrasound); the needle on the skin at the planned entry (off by
the hand's jitter); local anaesthetic; then movements of a few millimetres, each recorded as the
inputs of a moving hand (`Hand.dt` apart), with a fluoroscopy image before the allowance of
unimaged movement runs out, or the ultrasound view's verdict after every step (the probe re-aimed
when the tip leaves the plane). The hand steers back to the line from the skin entry to the goal
when it drifts; bone on the way is walked off (withdraw, turn). Techniques that touch bone first
(`plan.TOUCH_BONE_FIRST`) aim at the vertebral body, note the depth at contact, withdraw half
way and turn to the target. At the target: lateral image, aspiration (blood, CSF or air: withdraw
2 mm and aspirate again), contrast with an image, aspiration and test dose, aspiration and
neurolytic - each step only when the scenario has it (a required prognostic block before the first
neurolytic). Then the needle comes out, and after the last needle the attempt ends. Before the
first needle, the case steps the scenario asks for (`before_the_needle`: time-out on the vignette's
key - a contraindication that says defer ends the attempt there - consent, skin preparation, drape).
"""
from __future__ import annotations

import math

import numpy as np

from simulator.core.geometry import angle_between_deg, normalize
from simulator.core.levels import midline_x, neighbour_level
from simulator.core.tissue import BONE, VESSEL, Tissue
from simulator.scripted.faults import FaultNotApplicable
from simulator.scripted.hand import Hand
from simulator.scripted.plan import NeedlePlan, bone_aim, clear_line, reachable_point, tissue_points

SHOT_DAP_GYCM2 = 0.05
SHOT_S = 0.2
REDIRECT_WITHDRAW_DEG = 4.0  # a turn larger than this is made after withdrawing towards the skin
BAD_ASPIRATE = ("blood", "csf", "air")


def clear_aim(proc, entry, goal, start_mm: float = 0.0, max_mm: float = 4.0):
    """The goal, or the nearest point on rings around it (across the path, 0.75 mm apart) whose
    line from `entry` meets no bone before its end; None if none within `max_mm`."""
    entry = np.asarray(entry, dtype=np.float64)
    goal = np.asarray(goal, dtype=np.float64)
    d = normalize(goal - entry)
    u = normalize(np.cross(d, [0.0, 0.0, 1.0]) if abs(d[2]) < 0.9 else np.cross(d, [1.0, 0.0, 0.0]))
    v = np.cross(d, u)
    r = start_mm
    while r <= max_mm + 1e-9:
        n = 1 if r == 0 else max(6, int(2 * math.pi * r / 0.75))
        for k in range(n):
            a = 2 * math.pi * k / n
            p = goal + r * (math.cos(a) * u + math.sin(a) * v)
            if clear_line(proc.probe_tissue, entry, p, critical=proc.is_critical):
                return p
        r += 0.75
    return None


def slerp(a, b, f: float) -> np.ndarray:
    """The unit vector a fraction `f` of the way from a to b (on the great circle)."""
    a, b = normalize(a), normalize(b)
    ang = math.acos(max(-1.0, min(1.0, float(a @ b))))
    if ang < 1e-9:
        return b
    return normalize((math.sin((1 - f) * ang) * a + math.sin(f * ang) * b) / math.sin(ang))


def _mid(lo: float, hi: float) -> float:
    return round(0.5 * (lo + hi), 1)


class Operator:
    """One scripted attempt in progress. `run(plans)` drives it to the end."""

    def __init__(self, proc, hand: Hand, faults=(), t0: float = 0.0):
        self.p = proc
        self.h = hand
        self.faults = set(faults)
        self.t = float(t0)
        sc = proc.scenario
        self.sc = sc
        modality = str(getattr(sc.modality, "value", sc.modality))
        self.fluoro = modality in ("fluoroscopy", "both")
        self.us = modality in ("ultrasound", "both")
        self.allow_mm = float(sc.rubric.advance_without_imaging_mm)
        self.unimaged_mm = 0.0
        self.pose = None
        self.visible = None
        self.imaging_on = True
        self.goal = None
        self.prognostic_done = False
        if self.us:
            from simulator.core.probe import ProbeSpec

            self.us_settings = sc.imaging.ultrasound
            self.spec = ProbeSpec.named(self.us_settings.probe)

    # ------------------------------------------------------------------------------------
    # time and small helpers
    # ------------------------------------------------------------------------------------
    def now(self, dt: float | None = None) -> float:
        self.t += self.h.pause() if dt is None else float(dt)
        return self.t

    def has(self, fault: str) -> bool:
        return fault in self.faults

    @property
    def state(self):
        return self.p.state

    def pivot(self) -> np.ndarray:
        st = self.state
        return st.skin_entry_mm if st.inserted and st.skin_entry_mm is not None else st.tip_mm

    # ------------------------------------------------------------------------------------
    # imaging
    # ------------------------------------------------------------------------------------
    def view(self, name: str, side: str = "midline") -> None:
        if not self.fluoro:
            return
        fl = self.sc.imaging.fluoroscopy
        presets = dict(fl.presets or {})
        if name == "lateral":
            lao, cran = presets.get("lateral", (90.0, 0.0))
        else:
            lao, cran = presets.get(f"oblique_{side}", (fl.lao_deg, fl.cranial_deg))
        self.p.set_carm_pose(float(lao), float(cran), time_s=self.now())

    def shot(self, live_s: float = 0.0) -> None:
        if not self.fluoro:
            return
        if live_s > 0:
            frames = max(1, int(live_s * float(self.sc.imaging.fluoroscopy.pulse_rate_pps)))
            self.p.record_fluoro_shot(dap_gycm2=SHOT_DAP_GYCM2 * frames / 4.0, duration_s=live_s, live=True,
                                      frames=frames, time_s=self.now())
        elif self.h.skill == "novice" and self.h.rng.random() < 0.4:  # novices often step on live
            s = float(self.h.rng.uniform(1.0, 4.0))
            self.p.record_fluoro_shot(dap_gycm2=SHOT_DAP_GYCM2 * s / SHOT_S / 3.0, duration_s=s, live=True,
                                      frames=max(1, int(s * 7.5)), time_s=self.now())
        else:
            self.p.record_fluoro_shot(dap_gycm2=SHOT_DAP_GYCM2, duration_s=SHOT_S, time_s=self.now())
        self.unimaged_mm = 0.0

    def probe_pose_for(self, entry, goal):
        """The probe in plane with the line entry -> goal: depth along the scenario's probe
        direction (made perpendicular to nothing: the plane holds both), the far part of the path
        under the footprint."""
        from simulator.core.probe import ProbePose

        d = normalize(np.asarray(goal, float) - np.asarray(entry, float))
        s = self.us_settings
        depth = normalize(np.asarray(s.direction, float)) if s.direction is not None else self.inward(goal, d)
        lateral = d - float(d @ depth) * depth
        if np.linalg.norm(lateral) < 1e-3:  # the needle along the beam: any plane through it
            lateral = np.cross(depth, [0.0, 0.0, 1.0])
            if np.linalg.norm(lateral) < 1e-3:
                lateral = np.cross(depth, [1.0, 0.0, 0.0])
        lateral = normalize(lateral)
        xe = float((np.asarray(entry, float) - goal) @ lateral)
        half = 0.5 * self.spec.aperture_mm - 2.0
        # the probe centre's lateral position relative to the goal: both ends under the footprint
        # when they fit, else the goal near the far edge
        c_lat = 0.5 * xe if abs(xe) <= 2 * half else math.copysign(half, xe)
        guess = np.asarray(goal, float) + c_lat * lateral
        centre = self.p.probe_tissue.body_entry_on_line(guess, depth)
        if centre is None:
            centre = guess - 40.0 * depth
        return ProbePose.from_vectors(centre, depth, lateral)

    def inward(self, goal, d) -> np.ndarray:
        """Into the body, perpendicular to the skin above the goal (the mean direction to the body
        voxels within 6 mm of the skin point there)."""
        probe = self.p.probe_tissue
        skin = probe.body_entry_on_line(np.asarray(goal, float), d)
        if skin is None:
            return d
        g = np.mgrid[-6:7:1.5, -6:7:1.5, -6:7:1.5].reshape(3, -1).T
        g = g[np.linalg.norm(g, axis=1) <= 6.0]
        inside = probe.tissue_at(skin + g) != int(Tissue.AIR)
        v = g[inside].sum(axis=0) if inside.any() else d
        return normalize(v) if np.linalg.norm(v) > 1e-6 else d

    def scan_to(self, pose) -> None:
        """Bring the probe onto `pose` as the hand scans: an expert slides it 10 mm into place, slowly;
        a novice sweeps it to and fro (20-40 mm, fast) and turns it before settling."""
        from simulator.core.probe import ProbePose

        rng = self.h.rng
        if self.h.skill == "expert":
            sweeps = [pose.slid(lateral_mm=10.0)]
            speed = 15.0
        else:
            sweeps = [pose.slid(lateral_mm=float(rng.uniform(-40, 40)), elevation_mm=float(rng.uniform(-10, 10)))
                      .rotated(float(rng.uniform(-25, 25))) for _ in range(int(rng.integers(2, 5)))]
            speed = float(rng.uniform(40.0, 100.0))
        last = sweeps[0]
        self.p.set_probe_to_world(last.probe_to_world(), time_s=self.now())
        for nxt in sweeps[1:] + [pose]:
            dist = float(np.linalg.norm(nxt.center_mm - last.center_mm))
            n = max(1, min(12, int(math.ceil(dist / (speed * self.h.dt)))))
            for k in range(1, n + 1):
                f = k / n
                c = (1 - f) * last.center_mm + f * nxt.center_mm
                d = slerp(last.direction, nxt.direction, f)
                m = slerp(last.marker, nxt.marker, f)
                self.p.set_probe_to_world(ProbePose.from_vectors(c, d, m).probe_to_world(), time_s=self.now(self.h.dt))
            last = nxt

    def place_probe(self, pose, scan: bool = False) -> None:
        if not self.us:
            return
        if scan:
            self.scan_to(pose)
        self.pose = pose
        goal_depth = float(pose.points_to_probe(self.goal[None])[0][1]) if self.goal is not None else 0.0
        self.us_depth = min(self.spec.max_depth_mm, max(float(self.us_settings.depth_mm), goal_depth + 10.0))
        if not scan:
            self.p.set_probe_to_world(pose.probe_to_world(), time_s=self.now())
        self.visible = None
        self.verdict()

    def verdict(self, force: bool = False) -> None:
        """The ultrasound view's verdict on the tip, sent when it changes."""
        if not self.us or self.pose is None or self.state is None:
            return
        from simulator.core.probe import needle_visibility

        st = self.state
        vis = needle_visibility(st.tip_mm, st.axis, self.pose, self.spec, None, depth_mm=self.us_depth,
                                frequency_mhz=self.us_settings.frequency_mhz,
                                shaft_length_mm=float(st.spec.length_mm))
        v = bool(vis.tip_in_plane)
        if force or v != self.visible:
            self.visible = v
            self.p.set_tip_visible(v, float(vis.tip_distance_to_plane_mm), time_s=self.now(self.h.dt))

    def follows_tip(self) -> bool:
        """Does this operator keep the tip in the ultrasound image (stop when it is lost, move the
        probe to it)? Experts do; the probe faults and no-imaging do not."""
        return (self.us and self.imaging_on and self.h.skill == "expert"
                and not self.faults & {"probe_off_tip", "probe_moved"})

    def refocus(self, goal) -> None:
        """Expert habit: the tip out of the image - move the probe onto the needle, not the needle."""
        if not self.follows_tip() or self.visible:
            return
        st = self.state
        if not st.inserted:
            return
        self.place_probe(self.probe_pose_for(self.pivot(), st.tip_mm + 15.0 * st.axis))

    # ------------------------------------------------------------------------------------
    # needle motion
    # ------------------------------------------------------------------------------------
    def _track(self, old_tip, old_axis) -> None:
        st = self.state
        if not st.inserted:
            return
        d = st.tip_mm - old_tip
        along = float(d @ old_axis)
        self.unimaged_mm += max(along, 0.0) + float(np.linalg.norm(d - along * old_axis))

    def turn(self, direction) -> None:
        st = self.state
        if st.inserted:  # the tip sweeps depth x angle: an image first if that passes the allowance
            self.image_before(st.depth_mm * math.radians(float(angle_between_deg(st.axis, direction))), cap=False)
        want = normalize(direction)
        start = st.axis.copy()
        ang = float(angle_between_deg(start, want))
        n = self.h.turn_steps(ang)
        for i in range(1, n + 1):  # a sweep, at the hand's turning speed
            st = self.state
            old_tip, old_axis = st.tip_mm.copy(), st.axis.copy()
            d = want if i == n else slerp(start, want, i / n)
            self.p.set_direction(d, time_s=self.now(self.h.dt))
            self._track(old_tip, old_axis)
            self.verdict()

    def move(self, mm: float, stop_in=()) -> float:
        """One movement of `mm` (negative: back), as the hand's sub-steps (stopping early on bone
        or in a tissue of `stop_in`). Returns the distance."""
        n = self.h.substeps(mm)
        done = 0.0
        self.p.tick(time_s=self.now())  # the recorder's sample of the hand at rest, just before it moves
        for i in range(n):
            st = self.state
            old_tip, old_axis = st.tip_mm.copy(), st.axis.copy()
            if mm > 0:
                done += self.p.advance(mm / n, time_s=self.now(self.h.dt))
            else:
                done += self.p.withdraw(-mm / n, time_s=self.now(self.h.dt))
            self._track(old_tip, old_axis)
            if self.has("probe_moved") and self.pose is not None and mm > 0:
                wobble = self.pose.slid(lateral_mm=2.0 * (-1) ** i, elevation_mm=0.3 * (-1) ** i)
                self.p.set_probe_to_world(wobble.probe_to_world(), time_s=self.now(0.5 * self.h.dt))
            self.verdict()
            if mm > 0 and self.follows_tip() and self.visible is False and self.state.inserted:
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
        if ang <= self.h.correct_deg:
            return
        if st.inserted and ang > REDIRECT_WITHDRAW_DEG and st.depth_mm > 20.0:
            self.withdraw_to(0.4 * st.depth_mm)
            want = normalize(goal - self.pivot())
        self.turn(want)

    def image_before(self, mm: float, cap: bool = True) -> float:
        """Fluoroscopy before a movement that would pass the allowance; returns the movement to make
        (an expert keeps each movement inside the allowance)."""
        if not self.fluoro:
            return mm
        limit = self.allow_mm * self.h.image_fraction
        if cap and self.h.skill == "expert":
            mm = min(mm, limit)
        if self.imaging_on and self.unimaged_mm + mm > limit:
            self.shot()
        return mm

    def advance_to(self, goal, until_bone: bool = False, wiggles: int = 0, stop_in=(), exact: bool = False) -> None:
        """Advance to `goal` (or to bone contact with `until_bone`; or until the tip is in one of
        the tissues `stop_in`), steering on the way."""
        goal = np.asarray(goal, dtype=np.float64)
        stop_short = 0.0 if (until_bone or exact) else self.h.stop_short_mm
        bone_tries = 0
        for _ in range(300):
            st = self.state
            if stop_in and st.tissue in stop_in:
                return
            if st.bone_contact:
                if until_bone:
                    return
                bone_tries += 1
                if bone_tries > 4:
                    return
                aim = self.walk_off_bone(goal, bone_tries)
                if aim is not None:
                    goal = aim  # the clear point beside the goal from now on
                continue
            self.steer(goal)
            self.refocus(goal)
            while wiggles > 0 and self.state.inserted and self.state.depth_mm > 5:
                self.wiggle()
                wiggles -= 1
            remaining = float((goal - self.state.tip_mm) @ self.state.axis)
            if until_bone:
                remaining += 15.0
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
        """Bone in the way: withdraw half way (a proper redirection) and turn to a point beside
        the goal whose line from the skin entry is clear of bone."""
        if self.imaging_on:
            self.shot()
        self.withdraw_to(0.45 * self.state.depth_mm)
        e = self.pivot()
        aim = clear_aim(self.p, e, goal, start_mm=1.5 * attempt)
        self.turn((goal if aim is None else aim) - e)
        return aim

    def wiggle(self) -> None:
        """A needless redirection out and back (8 degrees each way)."""
        st = self.state
        ax = st.axis
        side = normalize(np.cross(ax, [0.0, 0.0, 1.0]) if abs(ax[2]) < 0.9 else np.cross(ax, [1.0, 0.0, 0.0]))
        self.turn(math.cos(math.radians(8)) * ax + math.sin(math.radians(8)) * side)
        self.move(1.0)
        self.turn(ax)

    # ------------------------------------------------------------------------------------
    # one needle
    # ------------------------------------------------------------------------------------
    def goal_of(self, plan: NeedlePlan, entry) -> tuple[np.ndarray, np.ndarray | None]:
        """Where this needle's tip goes (the plan's goal, or the fault's), and a detour point it
        touches first (pleura or dura) or None."""
        p = self.p
        goal = plan.goal_mm.copy()
        if self.has("muscle_injection"):
            return self.muscle_point(plan, entry), None
        if self.has("intravascular"):
            pts = tissue_points(p.anatomy, VESSEL, goal, 40.0)
            hit = reachable_point(p.probe_tissue, entry, pts, goal)
            if hit is None:
                raise FaultNotApplicable("no vessel within 40 mm of the target reachable from the entry")
            return hit + 1.5 * normalize(hit - entry), None
        if self.has("intraneural"):
            tg = next(t for t in p.targets if t.id == plan.target_id)
            if tg.is_nerve:
                pts = tg.points_mm
                from simulator.core.geometry import polyline_samples

                samples = polyline_samples(pts, 0.5)
                goal = samples[int(np.argmin(np.linalg.norm(samples - goal, axis=1)))]
        detour = None
        if self.has("pleura_dura"):
            pts = tissue_points(p.anatomy, (Tissue.LUNG, Tissue.CSF, Tissue.SPINAL_CORD), goal, 80.0)
            hit = reachable_point(p.probe_tissue, entry, pts, goal, tries=200)
            if hit is None:
                raise FaultNotApplicable("no pleura or dura within 80 mm of the target reachable from the entry")
            detour = hit + 3.0 * normalize(hit - entry)
        return goal, detour

    def muscle_point(self, plan: NeedlePlan, entry) -> np.ndarray:
        probe = self.p.probe_tissue
        goal = plan.goal_mm
        length = float(np.linalg.norm(goal - entry))
        s = np.arange(2.0, length, 0.5)
        pts = entry + s[:, None] / length * (goal - entry)
        tis = probe.tissue_at(pts)
        far = np.linalg.norm(pts - goal, axis=1) > plan.tolerance_mm + 8.0
        ok = (tis == int(Tissue.MUSCLE)) & far
        if not ok.any():
            raise FaultNotApplicable("no muscle on the planned path short of the target")
        # the middle of the thickest run of muscle short of the target
        edges = np.diff(np.concatenate([[0], ok.astype(np.int8), [0]]))
        starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
        k = int(np.argmax(ends - starts))
        return pts[(starts[k] + ends[k] - 1) // 2]

    def plan_for_fault(self, plan: NeedlePlan) -> NeedlePlan:
        an = self.p.anatomy
        if self.has("wrong_level"):
            nb = neighbour_level(an, plan.goal_mm)
            if nb is None:
                raise FaultNotApplicable("the target is at no vertebral or rib level the anatomy names")
            return plan.shifted(nb[2])
        if self.has("wrong_side"):
            m = midline_x(an, plan.goal_mm)
            flip = lambda v: np.array([2 * m - v[0], v[1], v[2]])  # noqa: E731
            from dataclasses import replace

            return replace(plan, entry_mm=flip(plan.entry_mm), goal_mm=flip(plan.goal_mm),
                           side={"left": "right", "right": "left"}.get(plan.side, plan.side))
        return plan

    def needle(self, plan: NeedlePlan) -> None:
        p = self.p
        plan = self.plan_for_fault(plan)
        entry = plan.entry_mm + self.h.jitter(plan.direction)
        goal, detour = self.goal_of(plan, entry)
        self.goal = goal
        if detour is None and not self.faults & {"muscle_injection", "intravascular", "intraneural"}:
            clear = clear_aim(p, entry, goal, max_mm=0.4 * plan.tolerance_mm)
            goal = goal if clear is None else clear
        aim = None
        if (plan.touch_bone and not self.has("muscle_injection")) or self.has("bone_pushed"):
            aim = bone_aim(p, entry, goal)
            if aim is None and self.has("bone_pushed"):
                pts = tissue_points(p.anatomy, BONE, goal, 30.0)
                aim = reachable_point(p.probe_tissue, entry, pts, goal)
                if aim is None:
                    raise FaultNotApplicable("no bone near the path to push against")
        first = aim if aim is not None else (detour if detour is not None else goal)
        self.imaging_on = not self.has("no_imaging")
        self.view("oblique", plan.side)
        p.set_entry(entry, self.h.waver(normalize(first - entry)), time_s=self.now())
        if self.us and not self.has("no_imaging"):
            first_part = entry + min(float(np.linalg.norm(goal - entry)), 25.0) * normalize(goal - entry)
            pose = self.probe_pose_for(entry, first_part if self.follows_tip() else goal)
            if self.has("probe_off_tip"):
                pose = pose.slid(elevation_mm=6.0)
            self.place_probe(pose, scan=True)
        if self.sc.steps.local_anaesthetic and not self.has("no_local_anaesthetic"):
            p.local_anaesthetic(5.0, "lidocaine", 1.0, time_s=self.now())
        if self.imaging_on:
            self.shot()
        wiggles = 6 if self.has("excessive_redirections") else 0
        if aim is not None:
            self.advance_to(aim, until_bone=True, wiggles=wiggles)
            wiggles = 0
            if self.state.bone_contact:
                self.shot() if self.imaging_on else None
                if self.has("bone_pushed"):
                    for _ in range(3):
                        self.move(self.h.move_mm)
                self.withdraw_to(0.5 * self.state.depth_mm)
            self.steer(detour if detour is not None else goal)
        if detour is not None:
            self.advance_to(detour, wiggles=wiggles, stop_in=(Tissue.LUNG, Tissue.CSF, Tissue.SPINAL_CORD), exact=True)
            wiggles = 0
            self.shot()
            self.withdraw_to(self.state.depth_mm - 15.0)
        self.advance_to(goal, wiggles=wiggles, stop_in=VESSEL if self.has("intravascular") else (),
                        exact=self.has("intravascular"))
        self.imaging_on = True
        if self.us and self.has("no_imaging"):
            self.place_probe(self.probe_pose_for(self.pivot(), self.state.tip_mm))
        self.at_target(plan)
        p.withdraw(time_s=self.now())
        self.verdict()

    # ------------------------------------------------------------------------------------
    # at the target
    # ------------------------------------------------------------------------------------
    def aspirate(self) -> None:
        """Aspirate; blood, CSF or air: back 2 mm and again (up to three times) - unless the fault
        ignores it."""
        if self.has("no_aspiration"):
            return
        for _ in range(3):
            res = self.p.aspirate(time_s=self.now())
            if res not in BAD_ASPIRATE or self.has("intravascular"):
                return
            self.move(-2.0)

    def at_target(self, plan: NeedlePlan) -> None:
        p = self.p
        steps = self.sc.steps
        self.view("lateral", plan.side)
        self.shot()
        if self.has("live_fluoro"):
            self.shot(live_s=40.0)
        self.aspirate()
        if steps.contrast is not None and self.fluoro:
            p.inject("contrast", "iohexol", 0.0, _mid(steps.contrast.min_ml, steps.contrast.max_ml), time_s=self.now())
            self.shot()
        doses = []
        if steps.test_dose is not None:
            td = steps.test_dose
            doses.append(("test_dose", td.agent, td.concentrations_pct[0], _mid(td.volume_ml.min_ml, td.volume_ml.max_ml)))
        options = steps.agent_options()
        if options:
            o = options[0]
            doses.append(("neurolytic", o.agent, o.concentrations_pct[-1], _mid(o.volume_ml.min_ml, o.volume_ml.max_ml)))
        if self.has("neurolytic_before_test_dose"):
            doses.reverse()
        pb = getattr(self.sc, "prognostic_block", None)
        if pb is not None and pb.required and not self.prognostic_done and options:  # the block first, once
            at = next(i for i, d in enumerate(doses) if d[0] == "neurolytic")
            doses.insert(at, ("prognostic", pb.agent, pb.concentration_pct, _mid(pb.min_ml, pb.max_ml)))
            self.prognostic_done = True
        for kind, agent, pct, ml in doses:
            self.aspirate()
            p.inject(kind, agent, float(pct), float(ml), time_s=self.now())
        self.shot()

    def before_the_needle(self) -> bool:
        """The case steps a scenario asks for: the time-out on the vignette's key (every
        contraindication noticed, deferred when one says so), consent on its risks, skin
        preparation and drape. False: the procedure was deferred (the attempt has ended)."""
        p, sc, steps = self.p, self.sc, self.sc.steps
        v = getattr(sc, "vignette", None)
        if steps.time_out and v is not None:
            key = list(v.contraindications)
            defer = any(c.action in ("defer", "correct_first") for c in key)
            p.time_out([c.kind for c in key], "defer" if defer else "proceed", time_s=self.now())
            if defer:
                p.end(time_s=self.now())
                return False
        if steps.consent:
            p.consent(list(v.consent_items) if v is not None else [], time_s=self.now())
        if steps.asepsis:
            p.skin_preparation(time_s=self.now())
            p.drape(time_s=self.now())
        return True

    def run(self, plans) -> None:
        if not self.before_the_needle():
            return
        if self.has("one_side_only"):
            plans = plans[:1]
        for plan in plans:
            self.needle(plan)
        self.p.end(time_s=self.now())
