"""How the scripted operator images (a mixin of `attempt.Operator`): the C-arm views and exposures,
the ultrasound probe and the view's verdict on the tip.

Fluoroscopy, at the decisive moments an experienced operator images (and not every few
millimetres): the entry in the oblique (tunnel) view, a trajectory check once the needle is
engaged (`ENGAGE_MM`), an image before the allowance of unimaged movement runs out
(`rubric.advance_without_imaging_mm` times the hand's `image_fraction`), one short of the expected
bone contact (`NEAR_BONE_MM`), one at the contact, one after the walk-off turn, the lateral view
for the depth `LATERAL_AT_MM` before the target and at it, and the contrast under a short live run.
Less steady hands image more often and take "one more look", step on live fluoroscopy now and then
and, now and then, forget an image that was due (`Hand.lapse_p`).

A single shot is `core.carm.SINGLE_SHOT_S` of pulses at the scenario's pulse rate; its dose-area
product comes from the C-arm's exposure model (`core.carm.compute_exposure`) for the body
thickness along the central ray through the needle's goal, as the trainer's dose read-out counts it.

Ultrasound: the probe in plane with the planned path; every skill follows the tip, a less steady
one only after it has gone on `Hand.lost_mm` unseen, and its probe slips now and then while the
needle advances (`Hand.drift_p`).
"""
from __future__ import annotations

import math

import numpy as np

from simulator.core.carm import SINGLE_SHOT_S, CArmPose, body_thickness_mm, compute_exposure
from simulator.core.geometry import normalize
from simulator.core.tissue import Tissue

ENGAGE_MM = (15.0, 20.0)  # trajectory check once the needle holds in the tissue (depth drawn per needle)
NEAR_BONE_MM = 10.0  # an image this far short of the expected bone contact
LATERAL_AT_MM = 15.0  # the lateral view for the depth this far before the target
CONTRAST_LIVE_S = (1.0, 2.0)  # contrast injected under a short live run (vascular uptake shows at once)
NOVICE_LIVE_S = (1.0, 4.0)  # an image taken by stepping on live fluoroscopy
MIN_LEG_MM = 3.0  # less room than this before the next image is due: image first
CHECK_COVERED_MM = 8.0  # a planned check this close beyond an image just taken is covered by it


def slerp(a, b, f: float) -> np.ndarray:
    """The unit vector a fraction `f` of the way from a to b (on the great circle; f > 1 goes on past b)."""
    a, b = normalize(a), normalize(b)
    ang = math.acos(max(-1.0, min(1.0, float(a @ b))))
    if ang < 1e-9:
        return b
    return normalize((math.sin((1 - f) * ang) * a + math.sin(f * ang) * b) / math.sin(ang))


class OperatorImaging:
    """Imaging of the scripted operator (state lives in `Operator.__init__`)."""

    # ------------------------------------------------------------------------------------
    # fluoroscopy
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
        if self.carm == (float(lao), float(cran)):
            return
        self.carm = (float(lao), float(cran))
        self.p.set_carm_pose(float(lao), float(cran), time_s=self.now())

    def dap_per_pulse(self) -> float:
        """Gy cm2 of one pulse in the current view: the exposure model at the body thickness along
        the central ray through the needle's goal (cached per view and goal)."""
        fl = self.sc.imaging.fluoroscopy
        iso = tuple(float(x) for x in (self.goal if self.goal is not None else self.state.tip_mm))
        key = (self.carm, iso)
        if key not in self._dap_cache:
            lao, cran = self.carm or (float(fl.lao_deg), float(fl.cranial_deg))
            pose = CArmPose(lao_deg=lao, cranial_deg=cran, isocenter_mm=iso)
            thick = body_thickness_mm(self.p.anatomy.tissue_at, pose, air_code=int(Tissue.AIR))
            exp = compute_exposure(pose, thick, float(fl.kvp), float(fl.pulse_rate_pps))
            self._dap_cache[key] = float(exp.dap_gycm2)
        return self._dap_cache[key]

    def shot(self, live_s: float = 0.0, *, again: bool = True) -> None:
        """One image: a single shot, or a live run of `live_s` seconds; a less steady hand steps
        on live now and then and takes one more look now and then."""
        if not self.fluoro:
            return
        pps = float(self.sc.imaging.fluoroscopy.pulse_rate_pps)
        if live_s <= 0 and self.h.chance(self.h.live_p):
            live_s = float(self.h.rng.uniform(*NOVICE_LIVE_S))
        live = live_s > 0
        pulses = max(1, int(round((live_s if live else SINGLE_SHOT_S) * pps)))
        self.p.record_fluoro_shot(dap_gycm2=self.dap_per_pulse() * pulses, duration_s=pulses / pps, live=live,
                                  frames=pulses, lao_deg=self.carm[0] if self.carm else None,
                                  cranial_deg=self.carm[1] if self.carm else None, time_s=self.now())
        self.unimaged_mm = 0.0
        if self.checks and self.state is not None:
            depth = self.state.depth_mm if self.state.inserted else 0.0
            self.checks = [c for c in self.checks if c - depth > CHECK_COVERED_MM]
        if again and self.h.chance(self.h.extra_shot_p):
            self.shot(again=False)

    def image_before(self, mm: float, cap: bool = True) -> float:
        """An image before a movement when the hand's share of the allowance is (nearly) used up,
        or at a planned depth of this needle (`checks`: the trajectory check once the needle holds,
        short of the expected bone) - unless the hand forgets it (`Hand.lapse_p`; never twice
        running). Returns the
        movement to make: with `cap`, no further than the allowance left or the next planned depth
        (the operator advances up to the next image, then images)."""
        if not (self.fluoro and self.imaging_on):
            return mm
        depth = self.state.depth_mm if self.state is not None and self.state.inserted else 0.0
        # the tremor as the hand pushes sweeps the tip sideways (depth x angle, up to 3 sd): a hand
        # that images close to the allowance keeps that sway within it too (at most a fifth of the
        # allowance reserved; a hand imaging earlier than that is unchanged)
        sway = min(depth * math.radians(3.0 * self.h.tremor_deg), 0.2 * self.allow_mm)
        limit = min(self.allow_mm * self.h.image_fraction, self.allow_mm - sway)
        room = limit - self.unimaged_mm
        to_check = (self.checks[0] - depth) if (cap and self.checks) else math.inf
        due = room < min(mm, MIN_LEG_MM) or (not cap and mm > room) or to_check < MIN_LEG_MM
        if due:
            while self.checks and self.checks[0] - depth < MIN_LEG_MM:
                self.checks.pop(0)
            if not self.lapsed and self.h.chance(self.h.lapse_p):
                self.lapsed = True
                return mm  # the image that was due, forgotten (the next one is not)
            self.lapsed = False
            self.shot()
            room = limit
            to_check = (self.checks[0] - depth) if (cap and self.checks) else math.inf
        return min(mm, room, to_check) if cap else mm

    def lateral_check(self, remaining_mm: float) -> None:
        """Close to the target: the lateral view and an image for the depth (once per needle)."""
        if self.fluoro and self.imaging_on and not self.lateral_done and remaining_mm <= LATERAL_AT_MM:
            self.lateral_done = True
            self.view("lateral", self.side)
            self.shot()

    # ------------------------------------------------------------------------------------
    # ultrasound
    # ------------------------------------------------------------------------------------
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
        """Bring the probe onto `pose` as the hand scans: an expert slides it 10 mm into place,
        slowly; others sweep it to and fro (20-40 mm, fast: novices more often) and turn it before
        settling."""
        from simulator.core.probe import ProbePose

        rng = self.h.rng
        if self.h.probe_skill == "expert":
            sweeps = [pose.slid(lateral_mm=10.0)]
            speed = 15.0
        else:
            n = int(rng.integers(1, 3)) if self.h.probe_skill == "intermediate" else int(rng.integers(2, 5))
            sweeps = [pose.slid(lateral_mm=float(rng.uniform(-40, 40)), elevation_mm=float(rng.uniform(-10, 10)))
                      .rotated(float(rng.uniform(-25, 25))) for _ in range(n)]
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

    def drift_probe(self, i: int) -> None:
        """The probe slips while the needle advances: the probe fault's wobble on every sub-step,
        or a slip of 1.5 - 3 mm now and then from a less steady hand."""
        if self.pose is None:
            return
        if self.has("probe_moved"):
            wobble = self.pose.slid(lateral_mm=2.0 * (-1) ** i, elevation_mm=0.3 * (-1) ** i)
            self.p.set_probe_to_world(wobble.probe_to_world(), time_s=self.now(0.5 * self.h.dt))
        elif i == 1 and self.h.chance(self.h.drift_p):
            sign = 1.0 if self.h.rng.random() < 0.5 else -1.0
            self.pose = self.pose.slid(elevation_mm=sign * float(self.h.rng.uniform(1.5, 3.0)))
            self.p.set_probe_to_world(self.pose.probe_to_world(), time_s=self.now(0.5 * self.h.dt))

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
        probe to it)? Every hand does (a less steady one later: `Hand.lost_mm`); the probe faults
        and no-imaging do not."""
        return self.us and self.imaging_on and not self.faults & {"probe_off_tip", "probe_moved"}

    def refocus(self, goal) -> None:
        """The tip out of the image: move the probe onto the needle, not the needle."""
        if not self.follows_tip() or self.visible:
            return
        st = self.state
        if not st.inserted:
            return
        self.place_probe(self.probe_pose_for(self.pivot(), st.tip_mm + 15.0 * st.axis), scan=self.h.probe_skill == "novice")
        self.unseen_mm = 0.0
