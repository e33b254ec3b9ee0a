"""The scripted operator: drives a `Procedure` through its own inputs, needle by needle.

Per needle plan (`plan.NeedlePlan`): C-arm to the side's oblique view (fluoroscopy) or the probe
in plane with the planned path (ultrasound); the needle on the skin at the planned entry (off by
the hand's jitter - moved back towards the mark when the tunnel view shows the bony window shut
from there, `tunnel_entry` - aimed off by its aim error, re-aimed at the skin by a less sure
hand); local anaesthetic; then movements of a few millimetres recorded as the inputs of a moving
hand (`motion.OperatorMotion`), imaged at the decisive moments (`imaging.OperatorImaging`). The
hand steers back to the line from the skin entry to the goal when it drifts; bone on the way is
walked off (withdraw, turn away from the bone; see `motion`). Techniques that touch bone first
(`plan.TOUCH_BONE_FIRST`) aim at the vertebral body, image short of it and at the contact,
withdraw half way and turn to the target.
Near the target: the lateral view for the depth; at it: aspiration (blood, CSF or air: withdraw
2 mm and aspirate again), contrast under a short live run, aspiration and test dose, aspiration
and neurolytic - each step only when the scenario has it (a required prognostic block before the
first neurolytic). Then the needle comes out, and after the last needle the attempt ends. Before the
first needle, the case steps the scenario asks for (`before_the_needle`: time-out on the vignette's
key - a contraindication that says defer ends the attempt there - consent, skin preparation, drape).
"""
from __future__ import annotations

import numpy as np

from simulator.core.decision_scores import must_defer
from simulator.core.geometry import normalize
from simulator.core.levels import midline_x, neighbour_level
from simulator.core.tissue import BONE, VESSEL, Tissue
from simulator.scripted.faults import FaultNotApplicable
from simulator.scripted.hand import Hand
from simulator.scripted.imaging import CONTRAST_LIVE_S, ENGAGE_MM, NEAR_BONE_MM, OperatorImaging
from simulator.scripted.motion import OperatorMotion, clear_aim, window_aim
from simulator.scripted.plan import NeedlePlan, bone_aim, reachable_point, tissue_points

BAD_ASPIRATE = ("blood", "csf", "air")
#: Bone met on the final approach this close to the goal (share of the target's tolerance): the tip
#: is where it should be, resting on the bone beside the target - the hand stops there.
ON_BONE_SHARE = 0.4
TUNNEL_MARGIN_MM = 0.5  # the clearance around the aimed line the tunnel view must show from the entry


def _mid(lo: float, hi: float) -> float:
    return round(0.5 * (lo + hi), 1)


class Operator(OperatorImaging, OperatorMotion):
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
        self.on_bone_mm = 0.0
        self.walk_off_mm = 4.0
        self.plan = None  # the needle's plan (a second pass starts from its entry)
        self.repassed = False
        self.prognostic_done = False
        self.side = "midline"
        self.carm = None  # (lao_deg, cranial_deg) of the C-arm once set
        self.checks: list[float] = []  # depths at which this needle is imaged
        self.lateral_done = False
        self.unseen_mm = 0.0  # advance since the ultrasound image lost the tip
        self.lapsed = False  # the last image that was due was forgotten
        self._dap_cache: dict = {}
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

            return replace(plan, entry_mm=flip(plan.entry_mm), goal_mm=flip(plan.goal_mm), target_mm=None,
                           side={"left": "right", "right": "left"}.get(plan.side, plan.side))
        return plan

    def tunnel_entry(self, plan: NeedlePlan, jitter, goal) -> np.ndarray:
        """The skin entry as the tunnel view shows it: where the hand put it, unless the bony window
        to the goal is shut from there (no line with `TUNNEL_MARGIN_MM` of clearance within 0.4 of
        the tolerance) - then an expert or intermediate moves it back towards the marked entry
        (half the error, then none). A novice does not read the window."""
        shares = (1.0,) if self.h.skill == "novice" else (1.0, 0.5, 0.0)
        for share in shares:
            entry = plan.entry_mm + share * jitter
            if clear_aim(self.p, entry, goal, max_mm=0.4 * plan.tolerance_mm, margin_mm=TUNNEL_MARGIN_MM) is not None:
                return entry
        return plan.entry_mm + shares[-1] * jitter

    def needle(self, plan: NeedlePlan) -> None:
        p = self.p
        plan = self.plan_for_fault(plan)
        jitter = self.h.jitter(plan.direction)
        entry = plan.entry_mm + jitter
        goal, detour = self.goal_of(plan, entry)
        self.goal = goal
        self.on_bone_mm = ON_BONE_SHARE * plan.tolerance_mm
        self.walk_off_mm = min(4.0, 0.8 * plan.tolerance_mm)  # how far beside the goal a walk-off may aim
        self.plan, self.repassed = plan, False
        if detour is None and not self.faults & {"muscle_injection", "intravascular", "intraneural"}:
            entry = self.tunnel_entry(plan, jitter, goal)
            clear = window_aim(p, entry, goal, max_mm=0.4 * plan.tolerance_mm, prefer=plan.target_mm)
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
        self.side = plan.side
        self.lateral_done = False
        self.checks = [float(self.h.rng.uniform(*ENGAGE_MM))]
        if aim is not None:
            near_bone = float(np.linalg.norm(aim - entry)) - NEAR_BONE_MM
            if near_bone > self.checks[0] + 5.0:
                self.checks.append(near_bone)
        self.view("oblique", plan.side)
        aim_dir = self.h.waver(self.h.misaim(normalize(first - entry)))
        if self.state is not None:
            p.tick(time_s=self.now())  # the hand at rest before it takes the needle to the next entry
        p.set_entry(entry, aim_dir, time_s=self.now(self.h.dt))
        self.reaim_at_skin(aim_dir)
        if self.us and not self.has("no_imaging"):
            first_part = entry + min(float(np.linalg.norm(goal - entry)), 25.0) * normalize(goal - entry)
            pose = self.probe_pose_for(entry, first_part if self.follows_tip() else goal)
            if self.has("probe_off_tip"):
                pose = pose.slid(elevation_mm=6.0)
            self.place_probe(pose, scan=True)
        if self.sc.steps.local_anaesthetic and not self.has("no_local_anaesthetic"):
            p.local_anaesthetic(5.0, "lidocaine", 1.0, time_s=self.now())
        if self.imaging_on:
            self.shot()  # the entry and the aim in the oblique (tunnel) view
        wiggles = 6 if self.has("excessive_redirections") else 0
        if aim is not None:
            self.advance_to(aim, until_bone=True, wiggles=wiggles)
            wiggles = 0
            if self.state.bone_contact:
                if self.imaging_on:
                    self.shot()  # the contact: where on the body, at what depth
                if self.has("bone_pushed"):
                    for _ in range(3):
                        self.move(self.h.move_mm)
                self.withdraw_to(0.5 * self.state.depth_mm)
                self.steer(detour if detour is not None else goal)
                if self.imaging_on:
                    self.shot()  # the new direction before walking off the body
            else:
                self.steer(detour if detour is not None else goal)
        if detour is not None:
            self.advance_to(detour, wiggles=wiggles, stop_in=(Tissue.LUNG, Tissue.CSF, Tissue.SPINAL_CORD), exact=True)
            wiggles = 0
            self.shot()
            self.withdraw_to(self.state.depth_mm - 15.0)
        self.advance_to(goal, wiggles=wiggles, stop_in=VESSEL if self.has("intravascular") else (),
                        exact=self.has("intravascular"), final=True)
        self.imaging_on = True
        if self.us and self.has("no_imaging"):
            self.place_probe(self.probe_pose_for(self.pivot(), self.state.tip_mm))
        self.at_target(plan)
        self.withdraw_to(0.0)  # out at the hand's withdrawal speed
        p.withdraw(time_s=self.now(self.h.dt))
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
        if self.lateral_done:
            self.shot()  # the final depth in the lateral view
        else:
            self.lateral_check(0.0)
        if self.has("live_fluoro"):
            self.shot(live_s=40.0)
        self.aspirate()
        if steps.contrast is not None and self.fluoro:
            p.inject("contrast", "iohexol", 0.0, _mid(steps.contrast.min_ml, steps.contrast.max_ml), time_s=self.now())
            self.shot(live_s=float(self.h.rng.uniform(*CONTRAST_LIVE_S)))  # the spread, live: vascular uptake shows
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

    def before_the_needle(self) -> bool:
        """The case steps a scenario asks for: the time-out on the vignette's key (every
        contraindication noticed, deferred when one says so), consent on its risks, skin
        preparation and drape. False: the procedure was deferred (the attempt has ended)."""
        p, sc, steps = self.p, self.sc, self.sc.steps
        v = getattr(sc, "vignette", None)
        if steps.time_out and v is not None:
            key = [] if self.has("contraindication_missed") else list(v.contraindications)
            defer = bool(key) and bool(must_defer(sc))
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
