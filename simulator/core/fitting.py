"""A scenario on a patient it was not written for: which patients can host it, and the scenario
fitted to one.

A library scenario is written on one patient (its `anatomy`) with coordinates, and names each target
by anatomical rule (`Target.proposal`, e.g. `lumbar_sympathetic_l3_left`: "anterolateral L3 body,
left"). On another patient - the other bundled one, or an instructor's imported CT with its
TotalSegmentator labels - `fit_scenario` makes the same exercise on that patient:

- the patient must have every structure the scenario asks for (`required_structures`: what each
  target's rule needs, `proposal_needs`, and every critical structure named by structure); else it
  is refused with the list (`NotHostable.missing`);
- targets: the rule's points on this patient (a target with coordinates only cannot move);
- planned needles: the clear straight path nearest to the authored approach (`path_search`: the
  authored entry-to-tip direction, within 21 deg, 2 mm clear of bone until its last 25 mm if it can
  be (a narrow bony window may not allow it); a longer
  usual needle when the patient is deeper), to the target's new point (a polyline target: the
  point at the same fraction of its length); structures the scenario lists as minor and its needle
  crosses on purpose (the aorta of a transaortic block) are crossed again;
- imaging: the C-arm's isocentre moves with the first target; the oblique and tunnel presets follow
  the new needles' angles; the ultrasound probe keeps its pose relative to its needle (rotated with
  it) and is put back on the skin; the skin entry zone is centred on the new entry; any other
  coordinate (the celiac origin of the course model) moves with the first target.

Everything else - steps, agents, rubric, critical structures, instructions - is the scenario's own.
`host_check` answers quickly from the patient's structure names (the picker shows it);
`fit_scenario` computes the rest and raises NotHostable when no clear path exists.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulator.core.path_search import NoClearPath, find_path, skin_entry
from simulator.core.proposals import propose, proposal_needs

MAX_DEVIATION_DEG = 21.0
BONE_CLEARANCE_MM = 2.0  # a fitted needle keeps this far from bone until near its tip


class NotHostable(ValueError):
    """The patient cannot host the scenario: `missing` structures, `reasons` sentences."""

    def __init__(self, scenario_id: str, patient: str, missing: list[str], reasons: list[str]):
        self.scenario_id, self.patient, self.missing, self.reasons = scenario_id, patient, list(missing), list(reasons)
        what = f"missing structures: {', '.join(missing)}" if missing else "; ".join(reasons)
        super().__init__(f"scenario {scenario_id!r} cannot run on patient {patient!r}: {what}")


@dataclass
class HostCheck:
    patient: str
    ok: bool
    missing: list[str] = field(default_factory=list)  # structures the patient lacks (alternatives joined by "|")
    reasons: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        if self.ok:
            return "can host it"
        return f"missing {', '.join(self.missing)}" if self.missing else "; ".join(self.reasons)


def required_structures(scenario) -> dict[str, list[str]]:
    """Structure (or "a|b" alternatives) -> why the scenario needs it (optional targets, which a
    patient may lack, excluded)."""
    out: dict[str, list[str]] = {}
    for t in scenario.targets:
        if t.proposal and t.required:
            for need in proposal_needs(t.proposal) or ():
                out.setdefault(need, []).append(f"target {t.id} ({t.proposal})")
    for c in scenario.critical_structures:
        if c.structure:
            out.setdefault(c.structure, []).append("critical structure")
    return out


def host_check(scenario, patient: str, names) -> HostCheck:
    """Can the patient `patient` (a scenario anatomy reference) with structures `names` host the
    scenario? From the names alone (no volumes); the scenario's own patient always can."""
    if patient == scenario.anatomy:
        return HostCheck(patient, True)
    if scenario.anatomy.startswith("phantom:") or patient.startswith("phantom:"):
        return HostCheck(patient, False, reasons=["a phantom exercise runs on its phantom only"])
    names = set(names)
    reasons = [f"target {t.id} has coordinates only, no anatomical rule (proposal)"
               for t in scenario.targets if not t.proposal and t.required]
    reasons += [f"target {t.id}: no rule for the proposal {t.proposal!r}"
                for t in scenario.targets if t.proposal and t.required and proposal_needs(t.proposal) is None]
    missing = [need for need in required_structures(scenario) if not any(n in names for n in need.split("|"))]
    return HostCheck(patient, not missing and not reasons, missing, reasons)


def check_on_built_patient(scenario, patient: str) -> HostCheck:
    """`host_check` against the patient `patient` as built in the user's anatomies folder (names from
    its anatomy.json); a patient that is not built cannot host anything (the reason says how to make
    it). Used by the command line before a window opens."""
    from simulator.core.patients import available_patients

    if patient == scenario.anatomy:
        return HostCheck(patient, True)
    info = {p.ref: p for p in available_patients()}.get(patient)
    if info is None:
        return HostCheck(patient, False, reasons=[
            f"patient {patient!r} is not set up (python main.py setup-data, or import-anatomy for user:NAME)"])
    return host_check(scenario, patient, info.names)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _rotation(a, b) -> np.ndarray:
    """The smallest rotation taking unit vector a to unit vector b."""
    a, b = _unit(a), _unit(b)
    v = np.cross(a, b)
    c = float(a @ b)
    if np.linalg.norm(v) < 1e-9:
        if c > 0:
            return np.eye(3)
        axis = _unit(np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0]))
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k * (1.0 / (1.0 + c))


def _arc_fraction(points: np.ndarray, p: np.ndarray) -> float:
    """Where along a polyline (0..1 of its length) the point nearest to p lies."""
    seg = np.diff(points, axis=0)
    lengths = np.linalg.norm(seg, axis=1)
    best, best_s = math.inf, 0.0
    for i, (a, d, L) in enumerate(zip(points[:-1], seg, lengths)):
        t = 0.0 if L == 0 else float(np.clip((p - a) @ d / (L * L), 0.0, 1.0))
        dist = float(np.linalg.norm(a + t * d - p))
        if dist < best:
            best, best_s = dist, float(lengths[:i].sum() + t * L)
    return best_s / max(float(lengths.sum()), 1e-9)


def _at_fraction(points: np.ndarray, f: float) -> np.ndarray:
    seg = np.diff(points, axis=0)
    lengths = np.linalg.norm(seg, axis=1)
    s = f * float(lengths.sum())
    for a, d, L in zip(points[:-1], seg, lengths):
        if s <= L or L == 0:
            return a + d * (s / L if L else 0.0)
        s -= L
    return points[-1].copy()


def _axial_and_tilt(entry, tip) -> tuple[float, float]:
    """(signed lao for a posterior needle: + when it enters on the patient's left, tilt: + when the
    entry is cranial to the tip, in degrees)."""
    v = np.asarray(tip, float) - np.asarray(entry, float)
    axial = math.degrees(math.atan2(abs(v[0]), abs(v[1])))
    lao = axial if v[0] > 0 else -axial
    tilt = math.degrees(math.asin(float(np.clip(-v[2] / np.linalg.norm(v), -1, 1))))
    return lao, tilt


def _r(v) -> list[float]:
    return [round(float(x), 2) for x in v]


NEEDLE_LENGTHS_MM = (90.0, 100.0, 150.0, 200.0, 250.0)  # the usual lengths a larger patient may need


def _path_with_a_needle_that_reaches(anatomy, scenario, goal, outward, target_id, through, sid, patient):
    """(path, needle length): with the scenario's needle if a clear path fits it, else with the
    next usual length that fits (a deeper patient needs a longer needle)."""
    own = float(scenario.needle.length_mm)
    first_error = None
    for length in [own] + [n for n in NEEDLE_LENGTHS_MM if n > own]:
        sc = scenario if length == own else scenario.model_copy(
            update={"needle": scenario.needle.model_copy(update={"length_mm": length})})
        for clearance in (BONE_CLEARANCE_MM, 0.0):  # a narrow window (between the crest and L5) may need 0
            try:
                return find_path(anatomy, sc, goal, outward, target_id=target_id, max_deviation_deg=MAX_DEVIATION_DEG,
                                 through=through, bone_clearance_mm=clearance), length
            except NoClearPath as e:
                first_error = first_error or e
        if not any(p.kind == "too_long" for p in first_error.problems):
            break
    raise NotHostable(sid, patient, [], [str(first_error)]) from None


def _without_unplaceable_optional_targets(scenario, anatomy):
    """The scenario without its optional targets (and their needles) that this patient cannot place."""
    drop = {t.id for t in scenario.targets if not t.required and (not t.proposal or propose(anatomy, t.proposal) is None)}
    if not drop:
        return scenario
    trajs = [t for t in scenario.trajectories if t.target_id not in drop]
    update = {"targets": [t for t in scenario.targets if t.id not in drop],
              "planned_trajectory": trajs[0] if trajs else None, "additional_trajectories": trajs[1:]}
    vignette = getattr(scenario, "vignette", None)
    if vignette is not None and set(vignette.pain_targets) & drop:
        update["vignette"] = vignette.model_copy(update={"pain_targets": [t for t in vignette.pain_targets if t not in drop]})
    return scenario.model_copy(update=update)


def fit_scenario(scenario, anatomy, patient: str):
    """The scenario on `anatomy` (referred to as `patient`): a new, validated Scenario. Returns the
    scenario itself when `patient` is its own. Raises NotHostable (missing structures, a target
    rule that finds no place, no clear path)."""
    from simulator.core.scenario_model import Scenario

    if patient == scenario.anatomy:
        return scenario
    check = host_check(scenario, patient, (s.name for s in anatomy.structures.values()))
    if not check.ok:
        raise NotHostable(scenario.id, patient, check.missing, check.reasons)
    scenario = _without_unplaceable_optional_targets(scenario, anatomy)
    data = scenario.model_dump(mode="json", exclude_none=True)
    data["anatomy"] = patient
    old_pts, new_pts = {}, {}
    for t, td in zip(scenario.targets, data["targets"]):
        prop = propose(anatomy, t.proposal)
        if prop is None:
            raise NotHostable(scenario.id, patient, [], [f"target {t.id}: the rule {t.proposal!r} finds no place on "
                                                         f"this patient (bone, vessel or organ where it would go)"])
        pts = np.asarray(prop.points_mm, float)
        if t.kind in ("point", "sphere") and len(pts) > 1:
            pts = pts[len(pts) // 2:len(pts) // 2 + 1]  # a rule's line: its middle point (in soft tissue)
        old_pts[t.id] = np.asarray(t.points_mm if t.points_mm else prop.points_mm, float)
        new_pts[t.id] = pts
        td["points_mm"] = [_r(p) for p in pts]
    first = scenario.targets[0].id
    shift = new_pts[first].mean(axis=0) - old_pts[first].mean(axis=0)
    fitted_for_check = Scenario.model_validate(data)
    through = [c.structure for c in scenario.critical_structures
               if c.structure and str(getattr(c.severity, "value", c.severity)) == "minor"]
    paths = []
    for traj in scenario.trajectories:
        tid = traj.target_id or first
        t = scenario.target(tid)
        old, new = old_pts[tid], new_pts[tid]
        goal = _at_fraction(new, _arc_fraction(old, np.asarray(traj.target_mm, float))) if t.kind == "polyline" \
            else new[0]
        outward = np.asarray(traj.entry_mm, float) - np.asarray(traj.target_mm, float)
        crossed = [n for n in through if anatomy.structure_by_name(n) is not None]
        found, length = _path_with_a_needle_that_reaches(anatomy, fitted_for_check, goal, outward, traj.target_id,
                                                          crossed[0] if crossed else None, scenario.id, patient)
        data["needle"]["length_mm"] = max(float(data["needle"]["length_mm"]), length)
        paths.append((traj, found))
    trajs = [{"entry_mm": _r(f.entry_mm), "target_mm": _r(f.target_mm),
              **({"target_id": traj.target_id} if traj.target_id else {})} for traj, f in paths]
    if trajs:
        data["planned_trajectory"] = trajs[0]
        data["additional_trajectories"] = trajs[1:]
    if data.get("skin_entry_zone") and paths:
        data["skin_entry_zone"]["center_mm"] = _r(paths[0][1].entry_mm)
    _fit_imaging(data, scenario, anatomy, paths, shift)
    if (data.get("outcome") or {}).get("celiac_origin_mm") is not None:
        data["outcome"]["celiac_origin_mm"] = _r(np.asarray(data["outcome"]["celiac_origin_mm"]) + shift)
    return Scenario.model_validate(data)


def _fit_imaging(data: dict, scenario, anatomy, paths, shift) -> None:
    fl = (data.get("imaging") or {}).get("fluoroscopy")
    if fl is not None:
        if fl.get("isocenter_mm") is not None:
            fl["isocenter_mm"] = _r(np.asarray(fl["isocenter_mm"], float) + shift)
        presets = fl.get("presets") or {}
        done = set()
        for traj, found in paths:  # each side's views follow the first needle on that side
            lao, tilt = _axial_and_tilt(found.entry_mm, found.target_mm)
            side = "left" if lao > 0 else "right"
            if side in done:
                continue
            done.add(side)
            if f"oblique_{side}" in presets:
                presets[f"oblique_{side}"] = [round(lao), presets[f"oblique_{side}"][1]]
            if f"tunnel_{side}" in presets:
                presets[f"tunnel_{side}"] = [round(lao), round(float(np.clip(tilt, -45, 45)))]
    us = (data.get("imaging") or {}).get("ultrasound")
    if us is not None and us.get("center_mm") is not None and paths:
        traj, found = paths[0]
        old_dir = np.asarray(traj.target_mm, float) - np.asarray(traj.entry_mm, float)
        rot = _rotation(old_dir, found.target_mm - found.entry_mm)
        depth = rot @ _unit(us["direction"])
        centre = found.target_mm + rot @ (np.asarray(us["center_mm"], float) - np.asarray(traj.target_mm, float))
        on_skin = skin_entry(anatomy, centre + 40.0 * depth, -depth, max_mm=120.0)
        us["center_mm"] = _r(on_skin if on_skin is not None else centre)
        us["direction"] = [round(float(x), 4) for x in depth]
        us["marker"] = [round(float(x), 4) for x in rot @ _unit(us["marker"])]
