"""Error behaviours on an attempt's timeline (Sites 2007's quality-compromising behaviours, and
the fluoroscopy ones): a pure function of the recording, its scenario and anatomy.

Each `Behaviour` has a key, a time, a message a trainee can read and the data behind it. What a
behaviour costs is the rubric's (`Rubric.behaviours`, else `DEFAULT_CONSEQUENCES`): an automatic
fail, or points off per occurrence up to a cap.

Detected (key: rule):
- advance_unseen: the procedure's `advance_without_imaging` events (fluoroscopy: movement in
  tissue past `rubric.advance_without_imaging_mm` since the last image; ultrasound: advance past
  2 mm with the tip out of the plane) - a lapse, points off.
- advance_blind: one unbroken stretch of such movement (no image, the tip never seen again, the
  needle not out) longer than `rubric.blind_advance_mm` (default: three allowances under
  fluoroscopy, `BLIND_US_MM` under ultrasound) - the needle driven on blind, an automatic fail.
- probe_moved_while_advancing: the probe moved (> 1 mm or > 2 deg between samples) while the
  needle was advancing - a needle advance within 0.25 s before and after the probe's move.
- injection_without_aspiration: an injection not preceded by an aspiration at that tip position
  (when the scenario asks for aspiration).
- injection_against_resistance: an injection with the tip inside a somatic nerve (intraneural,
  within its radius, or in nerve tissue) or in bone: high opening pressure.
- intravascular_ignored: an injection at the place (within 3 mm) where aspiration gave blood or
  CSF, or where an earlier injection went into a vessel or the dural sac.
- neurolytic_before_test_dose: a neurolytic injection without a test dose before it in the same
  pass (scenarios with a test dose).
- wrong_level / wrong_side: an injection farther than its tolerance from its target, nearer another
  vertebra (or rib) than the target's, or on the other side of the midline (more than 5 mm).
- injection_into_muscle: an injection in muscle farther than its tolerance from its target.
- bone_pushed: after bone contact, the needle pushed on (an advance) before it was withdrawn or
  redirected; or a tracked needle driven more than 2 mm on into the bone.
- too_many_redirections: each redirection past `rubric.redirections_allowed`.
- live_fluoro_too_long: a live fluoroscopy run longer than `rubric.live_fluoro_max_s`.
- pleura_touched / dura_touched: the tip in the lung or the spinal canal (the procedure's events).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulator.core.events import EventKind
from simulator.core.levels import level_centroids, level_name, level_of, midline_x

BEHAVIOURS: dict[str, str] = {
    "advance_unseen": "needle advanced with the tip unseen / without an image",
    "advance_blind": "needle driven on blind (a long stretch without any image of the tip)",
    "probe_moved_while_advancing": "probe moved while the needle was advanced",
    "injection_without_aspiration": "injection without aspiration",
    "injection_against_resistance": "injection against high pressure (intraneural or into bone)",
    "intravascular_ignored": "vascular or intrathecal sign ignored",
    "neurolytic_before_test_dose": "neurolytic before the test dose",
    "wrong_level": "wrong vertebral level",
    "wrong_side": "wrong side",
    "injection_into_muscle": "injection into muscle instead of the target plane",
    "bone_pushed": "needle pushed on past bone contact without redirection",
    "too_many_redirections": "too many redirections",
    "live_fluoro_too_long": "live fluoroscopy held too long",
    "pleura_touched": "pleura touched",
    "dura_touched": "dura touched",
}

#: What each behaviour costs when the rubric does not say: "fail", or (points per occurrence, cap).
DEFAULT_CONSEQUENCES: dict[str, object] = {
    "advance_unseen": (3.0, 15.0),
    "advance_blind": "fail",
    "probe_moved_while_advancing": (3.0, 15.0),
    "injection_without_aspiration": "fail",
    "injection_against_resistance": "fail",
    "intravascular_ignored": "fail",
    "neurolytic_before_test_dose": "fail",
    "wrong_level": "fail",
    "wrong_side": "fail",
    "injection_into_muscle": "fail",
    "bone_pushed": (3.0, 9.0),
    "too_many_redirections": (5.0, 30.0),
    "live_fluoro_too_long": (3.0, 6.0),
    "pleura_touched": "fail",
    "dura_touched": "fail",
}

PROBE_MOVE_MM = 1.0
PROBE_TURN_DEG = 2.0
WHILE_S = 0.25
SAME_PLACE_MM = 3.0
SIDE_MARGIN_MM = 5.0
ASPIRATION_SAME_MM = 2.0
BLIND_FLUORO_ALLOWANCES = 3.0
BLIND_US_MM = 10.0


@dataclass
class Behaviour:
    key: str
    time_s: float
    message: str
    data: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"key": self.key, "time_s": self.time_s, "message": self.message, "data": self.data}


def consequence(rubric, key: str):
    """The rubric's consequence of a behaviour: "fail", (points, cap) or None (ignored)."""
    own = dict(getattr(rubric, "behaviours", None) or {})
    if key in own:
        v = own[key]
        if v == "fail" or v is None:
            return v
        if v == "ignore":
            return None
        pts = float(v)
        cap = max(pts, float(DEFAULT_CONSEQUENCES[key][1]) if isinstance(DEFAULT_CONSEQUENCES[key], tuple) else pts)
        return (pts, cap)
    return DEFAULT_CONSEQUENCES.get(key)


def _advancing_times(t: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Times of the samples at which the needle tip moved forward along its axis (> 0.1 mm)."""
    if len(t) < 2:
        return np.zeros(0)
    d = m[1:, :3, 3] - m[:-1, :3, 3]
    fwd = np.einsum("ij,ij->i", d, m[:-1, :3, 2])
    return t[1:][fwd > 0.1]


def _probe_moves(t: np.ndarray, probe: np.ndarray) -> np.ndarray:
    """Times of the samples at which the probe moved (> 1 mm or > 2 degrees since the last sample)."""
    if len(t) < 2:
        return np.zeros(0)
    a, b = probe[:-1], probe[1:]
    ok = np.all(np.isfinite(a.reshape(len(a), 16)), axis=1) & np.all(np.isfinite(b.reshape(len(b), 16)), axis=1)
    moved = np.zeros(len(a), dtype=bool)
    if ok.any():
        dp = np.linalg.norm(b[ok, :3, 3] - a[ok, :3, 3], axis=1)
        rel = np.einsum("nij,nkj->nik", b[ok, :3, :3], a[ok, :3, :3])
        cos = np.clip((np.trace(rel, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
        moved[ok] = (dp > PROBE_MOVE_MM) | (np.degrees(np.arccos(cos)) > PROBE_TURN_DEG)
    return t[1:][moved]


def blind_advance_mm(scenario) -> float:
    """The longest unbroken stretch of unimaged (fluoroscopy) or unseen (ultrasound) advance the
    scenario tolerates before it is a blind advance."""
    rubric = scenario.rubric
    own = getattr(rubric, "blind_advance_mm", None)
    if own is not None:
        return float(own)
    modality = str(getattr(scenario.modality, "value", scenario.modality))
    if modality == "ultrasound":
        return BLIND_US_MM
    return BLIND_FLUORO_ALLOWANCES * float(rubric.advance_without_imaging_mm)


def _blind(events, scenario) -> list[Behaviour]:
    """Unbroken runs of `advance_without_imaging` events (no image between them, the tip not seen
    again, the needle not out) whose movement adds up past `blind_advance_mm`: one behaviour per run,
    at the event that passes it."""
    limit = blind_advance_mm(scenario)
    modality = str(getattr(scenario.modality, "value", scenario.modality))
    out = []
    run, told = 0.0, False
    for e in events:
        k = e.kind
        seen = (k == EventKind.fluoro_shot and modality != "ultrasound") or (
            k == EventKind.ultrasound_view and e.data.get("visible") and modality != "fluoroscopy")
        if seen or k in (EventKind.needle_out, EventKind.skin_puncture):
            run, told = 0.0, False
        elif k == EventKind.advance_without_imaging:
            run += float(e.data.get("moved_mm") or 0.0)
            if run > limit + 1e-6 and not told:
                told = True
                what = "without an image" if modality != "ultrasound" else "with the tip out of the ultrasound plane"
                out.append(Behaviour("advance_blind", e.time_s, f"needle driven on {run:.0f} mm {what} (more than "
                                     f"{limit:g} mm): a blind advance", {"moved_mm": run, "limit_mm": limit}))
    return out


def _probe_while_advancing(t, m, probe) -> list[Behaviour]:
    adv = _advancing_times(t, m)
    out = []
    last = -math.inf
    for tp in _probe_moves(t, probe):
        before = np.any((adv < tp) & (adv >= tp - WHILE_S))
        after = np.any((adv > tp) & (adv <= tp + WHILE_S))
        if before and after and tp - last > 2.0:  # one per episode
            out.append(Behaviour("probe_moved_while_advancing", float(tp),
                                 "probe moved while the needle was being advanced"))
        if before and after:
            last = tp
    return out


def _bone_pushed(recording) -> list[Behaviour]:
    """An advance input after bone contact before any withdraw / turn / new entry."""
    items = [(e.time_s, 0, e) for e in recording.events if e.kind == EventKind.bone_contact]
    items += [(i.time_s, 1, i) for i in recording.inputs
              if i.name in ("advance", "withdraw", "set_direction", "set_entry", "set_needle_tip_to_world")]
    items.sort(key=lambda x: (x[0], x[1]))
    out = []
    contact = None
    for time_s, kind, obj in items:
        if kind == 0:
            contact = obj
            continue
        if contact is None:
            continue
        if obj.name == "advance" and time_s > contact.time_s and float(obj.args.get("mm", 0.0)) > 0:
            where = (contact.data.get("structure") or "bone").replace("_", " ")
            out.append(Behaviour("bone_pushed", float(time_s), f"needle pushed on against the {where} after bone "
                                 "contact instead of withdrawing and redirecting"))
            contact = None
        elif obj.name != "advance" or float(obj.args.get("mm", 0.0)) < 0:
            contact = None
    return out


TRACKED_INPUTS = ("set_needle_tip_to_world", "set_tracked_pose")
INTO_BONE_MM = 2.0


def _tracked_into_bone(recording, anatomy) -> list[Behaviour]:
    """A tracked needle (its pose as measured: bone does not stop it) driven on into the bone past
    the contact: the tip in bone more than 2 mm beyond the contact point along the needle."""
    from simulator.core.tissue import BONE

    if not any(i.name in TRACKED_INPUTS for i in recording.inputs):
        return []
    t = recording.samples.time_s
    m = recording.samples.needle_tip_to_world
    bone = np.isin(anatomy.tissue_at(m[:, :3, 3]), [int(b) for b in BONE]) if len(t) else np.zeros(0, bool)
    out = []
    for e in recording.events:
        if e.kind != EventKind.bone_contact:
            continue
        p = np.asarray(e.data.get("position_mm", [np.nan] * 3), dtype=np.float64)
        after = np.nonzero(t >= e.time_s)[0]
        for i in after:
            if not bone[i]:
                break  # out of the bone again: a new contact starts a new check
            if float((m[i, :3, 3] - p) @ m[i, :3, 2]) > INTO_BONE_MM:
                where = (e.data.get("structure") or "bone").replace("_", " ")
                out.append(Behaviour("bone_pushed", float(t[i]), f"needle driven on into the {where} after bone "
                                     "contact instead of withdrawing and redirecting"))
                break
    return out


def _intended(e, targets) -> int | None:
    d = e.data.get("target_distances_mm") or {}
    best = None
    for k, tg in enumerate(targets):
        v = d.get(tg.id)
        if v is None:
            v = float(tg.distance(np.asarray(e.data["tip_mm"], float))[0])
        if best is None or v < best[0]:
            best = (v, k)
    return None if best is None else best[1]


def _injection_behaviours(recording, scenario, anatomy, targets, intended) -> list[Behaviour]:
    steps = scenario.steps
    events = recording.events
    out = []
    bad_spots: list[tuple[np.ndarray, str]] = []  # (tip, why) of vascular / intrathecal signs
    aspirations = []
    punctures = [e.time_s for e in events if e.kind == EventKind.skin_puncture]
    cents = None  # the anatomy's levels, found when an injection is off its target
    for e in events:
        if e.kind == EventKind.aspiration:
            tip = np.asarray(e.data.get("tip_mm", [np.nan] * 3), float)
            aspirations.append(e)
            if e.data.get("result") in ("blood", "csf"):
                bad_spots.append((tip, f"{'blood' if e.data['result'] == 'blood' else 'CSF'} on aspiration"))
            continue
        if e.kind != EventKind.injection:
            continue
        kind = e.data.get("kind", "")
        label = kind.replace("_", " ")
        tip = np.asarray(e.data.get("tip_mm"), float)
        if steps.aspiration_before_injection and not e.data.get("aspirated", False):
            out.append(Behaviour("injection_without_aspiration", e.time_s, f"{label} injected without aspirating first",
                                 {"kind": kind}))
        for spot, why in bad_spots:
            if np.linalg.norm(tip - spot) <= SAME_PLACE_MM:
                out.append(Behaviour("intravascular_ignored", e.time_s,
                                     f"{label} injected where there was {why}: the needle was not repositioned",
                                     {"kind": kind}))
                break
        mode = e.data.get("mode", "tissue")
        if mode == "intravascular":
            bad_spots.append((tip, "a vascular pattern"))
        elif mode == "intrathecal":
            bad_spots.append((tip, "intrathecal spread"))
        tissue = e.data.get("tissue", "")
        k = intended.get(id(e))
        tg = targets[k] if k is not None else None
        if mode == "intraosseous" or tissue in ("cortical_bone", "cancellous_bone"):
            out.append(Behaviour("injection_against_resistance", e.time_s,
                                 f"{label} injected into bone: against high pressure", {"kind": kind}))
        elif tissue == "nerve" or (tg is not None and tg.is_nerve and tg.kind == "polyline"
                                   and float(tg.centre_distance(tip)[0]) < max(tg.radius_mm, 0.5)):
            out.append(Behaviour("injection_against_resistance", e.time_s,
                                 f"{label} injected with the tip inside the nerve (intraneural): high opening "
                                 "pressure - withdraw before injecting", {"kind": kind}))
        if kind == "neurolytic" and steps.test_dose is not None:
            start = max([p for p in punctures if p <= e.time_s], default=-math.inf)
            before = [x for x in events if x.kind == EventKind.injection and start <= x.time_s < e.time_s
                      and x.data.get("kind") == "test_dose"]
            if not before:
                out.append(Behaviour("neurolytic_before_test_dose", e.time_s,
                                     f"{e.data.get('agent', 'neurolytic')} given before a test dose", {"kind": kind}))
        if tg is None:
            continue
        dist = float(tg.distance(tip)[0])
        if dist <= tg.tolerance_mm:
            continue
        if tissue == "muscle":
            out.append(Behaviour("injection_into_muscle", e.time_s,
                                 f"{label} injected into muscle {dist:.0f} mm from the {tg.name}, not in the target plane",
                                 {"kind": kind, "target": tg.id}))
        if cents is None:
            cents = level_centroids(anatomy) if anatomy is not None else {}
        if cents:
            t_level = level_of(anatomy, tg.centre_mm, None, cents)
            if t_level is not None:
                fam = cents[t_level][0]
                here = level_of(anatomy, tip, fam, cents)
                if here is not None and here != t_level and kind != "contrast":
                    out.append(Behaviour("wrong_level", e.time_s,
                                         f"{label} given at {level_name(here)}; the {tg.name} is at "
                                         f"{level_name(t_level)}", {"kind": kind, "target": tg.id, "level": here}))
        if tg.side in ("left", "right") and anatomy is not None and kind != "contrast":
            mid = midline_x(anatomy, tg.centre_mm) if cents else None
            if mid is not None:
                x = float(tip[0]) - mid  # RAS: +x is the patient's right
                side = "right" if x > SIDE_MARGIN_MM else ("left" if x < -SIDE_MARGIN_MM else "midline")
                if side not in (tg.side, "midline"):
                    out.append(Behaviour("wrong_side", e.time_s, f"{label} given on the {side}; the {tg.name} is on "
                                         f"the {tg.side}", {"kind": kind, "target": tg.id}))
    return out


def detect_behaviours(recording, scenario, anatomy, targets, intended: dict | None = None) -> list[Behaviour]:
    """Every error behaviour of an attempt, in time order (see the module notes). `intended` maps
    id(injection event) -> the index of the target it was meant for (nearest target by default)."""
    events = recording.events
    rubric = scenario.rubric
    samples = recording.samples
    t = samples.time_s
    out: list[Behaviour] = []
    for e in events:
        if e.kind == EventKind.advance_without_imaging:
            out.append(Behaviour("advance_unseen", e.time_s, e.message, {"moved_mm": e.data.get("moved_mm")}))
        elif e.kind == EventKind.pleural_breach:
            out.append(Behaviour("pleura_touched", e.time_s, "pleura breached: the tip entered the lung"))
        elif e.kind == EventKind.dural_puncture:
            out.append(Behaviour("dura_touched", e.time_s, "dura punctured: the tip entered the spinal canal"))
    out += _blind(events, scenario)
    if len(t) > 1:
        out += _probe_while_advancing(t, samples.needle_tip_to_world, samples.probe_to_world)
    out += _bone_pushed(recording)
    if anatomy is not None:
        out += _tracked_into_bone(recording, anatomy)
    if intended is None:
        intended = {id(e): _intended(e, targets) for e in events if e.kind == EventKind.injection}
    out += _injection_behaviours(recording, scenario, anatomy, targets, intended)
    allowed = int(getattr(rubric, "redirections_allowed", 6))
    redirs = [e for e in events if e.kind == EventKind.redirection]
    for n, e in enumerate(redirs[allowed:], start=allowed + 1):
        out.append(Behaviour("too_many_redirections", e.time_s,
                             f"redirection {n} (more than {allowed}): plan the path before advancing",
                             {"redirection": n, "allowed": allowed}))
    live_max = float(getattr(rubric, "live_fluoro_max_s", 10.0))
    for e in events:
        if e.kind == EventKind.fluoro_shot and e.data.get("live") and float(e.data.get("duration_s", 0.0)) > live_max:
            out.append(Behaviour("live_fluoro_too_long", e.time_s,
                                 f"live fluoroscopy held {float(e.data['duration_s']):.0f} s (at most {live_max:g} s)",
                                 {"duration_s": float(e.data["duration_s"])}))
    out.sort(key=lambda b: b.time_s)
    return out


__all__ = ["BEHAVIOURS", "DEFAULT_CONSEQUENCES", "Behaviour", "blind_advance_mm", "consequence", "detect_behaviours"]
