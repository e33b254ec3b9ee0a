"""The score card of an attempt: 0-100, pass or fail, and reasons a trainee understands.

`score_attempt(recording, scenario, anatomy)` is a pure function of the recording (with the
scenario and anatomy it was made on): the same recording gives the same card, to the last digit.

Rubric (from the scenario):
- Each item scores a metric linearly: full marks at `good` or better, none at `bad` or worse
  (lower is better when good < bad). Weights are normalised to 100 over the items that apply to
  the scenario (a metric that does not apply - tip visibility under fluoroscopy, fluoroscopy dose
  under ultrasound, angle without a planned trajectory - drops out and the others share its weight).
- Automatic fails listed in the rubric fail the attempt whatever the points: a contact with a
  critical structure of severity `critical`, neurolytic into a vessel or the dural sac, agent
  without aspiration / local anaesthetic / contrast / test dose, a required target not reached,
  too much agent, a wrong agent, a pleural breach, no agent at all.
- Every target is scored on its own: a required target without a placed needle and an injection
  meant for it fails the attempt, whatever the rubric lists ("no needle placed and nothing
  injected at the celiac plexus, right (a required target) - automatic fail"). An item with a
  `target` scores its metric at that target only.
- Error behaviours on the timeline (`core.behaviours`) cost what the rubric says (`behaviours`),
  else their defaults: an automatic fail, or points off per occurrence up to a cap, taken from
  the items' total.
- Treatment decisions (a scenario with a vignette; `core.decision_scores`): their metrics can be
  rubric items; a poor or acceptable decision is a reason; going on despite a contraindication the
  key says defer fails the attempt (`contraindication_ignored`, always). A procedure rightly
  deferred at the time-out is scored on its decisions alone (the rubric's decision items, else
  their mean): the needle items and the target fails do not apply.
- Passed = no automatic fail and score >= pass_mark.
Reasons come first for automatic fails ("aorta punctured at 00:42 - automatic fail"), then each
target's result ("Celiac plexus, left: injected 0.5 mm from it (tolerance 5 mm), coverage 100 %"),
then the behaviours that cost points, the items that lost points, then other step problems.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from simulator.core.behaviours import BEHAVIOURS, consequence
from simulator.core.decision_scores import ALL_DECISIONS, DECISION_METRICS, card_decisions, decision_reasons
from simulator.core.events import EventKind, format_time
from simulator.core.metrics import AttemptMetrics, attempt_metrics
from simulator.core.targets import TargetGeometry, resolve_targets, targets_from_recording

LABELS = {
    "final_distance_mm": ("tip-to-target distance at injection", "mm"),
    "min_distance_mm": ("closest approach to the target", "mm"),
    "elapsed_time_s": ("time taken", "s"),
    "path_length_mm": ("needle path length", "mm"),
    "path_in_tissue_mm": ("needle path in tissue", "mm"),
    "time_in_tissue_s": ("time with the needle in tissue", "s"),
    "tissue_damage_mm2": ("potential tissue damage", "mm2"),
    "skin_punctures": ("skin punctures", ""),
    "redirections": ("redirections", ""),
    "angle_to_plan_deg": ("angle to the planned trajectory", "deg"),
    "advances_without_imaging": ("advances without imaging", ""),
    "fluoro_shots": ("fluoroscopy images", ""),
    "fluoro_time_s": ("fluoroscopy time", "s"),
    "dap_gycm2": ("radiation dose (DAP)", "Gy cm2"),
    "target_coverage_pct": ("agent coverage of the targets", "%"),
    "off_target_spread_ml": ("agent off target", "ml"),
    "tip_visible_pct": ("needle tip seen on ultrasound while advancing", "%"),
    "critical_contacts": ("contacts with critical structures", ""),
    "bone_contacts": ("bone contacts", ""),
    "translational_actions": ("needle translational actions", ""),
    "rotational_actions": ("needle rotational actions", ""),
    "probe_translational_actions": ("probe translational actions", ""),
    "probe_rotational_actions": ("probe rotational actions", ""),
    "error_behaviours": ("error behaviours", ""),
    ALL_DECISIONS: ("treatment decisions", "%"),
    **{m: (f"decision: {topic}", "%") for m, topic in DECISION_METRICS.items()},
}
DECISION_ITEMS = frozenset(DECISION_METRICS) | {ALL_DECISIONS}
#: Fails about the needle work, which a rightly deferred procedure never did.
NEEDLE_FAILS = frozenset({"required_target_missed", "target_not_reached", "no_agent_injected"})

AUTO_FAIL_TEXT = {
    "critical_contact": "contact with a critical structure",
    "intravascular_agent": "agent injected into a vessel",
    "intrathecal_agent": "agent injected intrathecally",
    "agent_without_aspiration": "agent given without aspirating first",
    "agent_without_local_anaesthetic": "agent given without local anaesthetic at the entry site",
    "agent_without_contrast": "agent given without contrast first",
    "agent_without_test_dose": "agent given without a test dose first",
    "target_not_reached": "target not reached",
    "agent_volume_exceeded": "too much agent",
    "wrong_agent": "wrong agent or concentration",
    "pleural_breach": "pleural breach",
    "no_agent_injected": "no agent injected",
    "required_target_missed": "a required target without a needle and an injection",
    "contraindication_ignored": "went ahead despite a contraindication",
}


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "":
        return f"{value:g}" if float(value).is_integer() else f"{value:.1f}"
    if unit in ("mm2",):
        return f"{value / 100.0:.1f} cm2"
    if unit == "Gy cm2":
        return f"{value:.2f} {unit}"
    return f"{value:.1f} {unit}"


@dataclass
class ScoreItem:
    metric: str
    label: str
    value: float | None
    good: float
    bad: float
    weight: float  # the rubric's weight
    share: float  # normalised weight out of 100 (0 when not applicable)
    points: float
    applicable: bool
    reason: str

    def to_json(self) -> dict:
        return {"metric": self.metric, "label": self.label, "value": self.value, "good": self.good, "bad": self.bad,
                "weight": self.weight, "share": self.share, "points": self.points, "applicable": self.applicable,
                "reason": self.reason}


@dataclass
class ScoreCard:
    score: float
    passed: bool
    pass_mark: float
    items: list[ScoreItem]
    automatic_fails: list[dict]  # key, time_s, reason
    reasons: list[str]
    metrics: dict
    perk: dict
    targets: list[dict]
    behaviours: list[dict] = field(default_factory=list)  # key, time_s, message, consequence, points
    deductions: float = 0.0  # points taken off for behaviours
    scenario_id: str = ""
    scenario_version: str = ""
    trainee: str = ""
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"score": self.score, "passed": self.passed, "pass_mark": self.pass_mark,
                "items": [i.to_json() for i in self.items], "automatic_fails": self.automatic_fails,
                "reasons": self.reasons, "metrics": self.metrics, "perk": self.perk, "targets": self.targets,
                "behaviours": self.behaviours, "deductions": self.deductions,
                "scenario_id": self.scenario_id, "scenario_version": self.scenario_version, "trainee": self.trainee,
                "extra": self.extra}

    def text(self) -> str:
        head = f"score {self.score:.1f} / 100 (pass mark {self.pass_mark:g}): {'PASSED' if self.passed else 'FAILED'}"
        return "\n".join([head] + [f"- {r}" for r in self.reasons])


def item_fraction(value: float, good: float, bad: float) -> float:
    """1 at good or better, 0 at bad or worse, linear between."""
    f = (value - bad) / (good - bad)
    return min(1.0, max(0.0, f))


def _item_value(it, am: AttemptMetrics):
    if it.target is not None:
        return (am.per_target.get(it.target) or {}).get(it.metric)
    return am.values.get(it.metric)


def _target_line(r) -> str:
    if r.needs_injection and not r.injected:
        head = f"{r.name}: needle placed, nothing injected" if r.placed else f"{r.name}: no needle, no injection"
        return head + ("" if r.required else " (optional)")
    how = "injected" if r.needs_injection else "tip"
    cov = f", coverage {100.0 * r.coverage:.0f} %" if r.needs_injection else ""
    status = "" if r.reached else " - not reached"
    return f"{r.name}: {how} {r.final_distance_mm:.1f} mm from it (tolerance {r.tolerance_mm:g} mm){cov}{status}"


def _behaviour_costs(am: AttemptMetrics, rubric, t0: float) -> tuple[list[dict], list[dict], float]:
    """(the behaviours with their consequence, the automatic fails they cause, points taken off)."""
    rows, fails = [], []
    spent: dict[str, float] = {}
    total = 0.0
    for b in am.behaviours:
        c = consequence(rubric, b.key)
        when = format_time(b.time_s - t0)
        row = {"key": b.key, "time_s": b.time_s, "message": b.message, "consequence": "none", "points": 0.0}
        if c == "fail":
            row["consequence"] = "fail"
            fails.append({"key": b.key, "time_s": b.time_s, "reason": f"{b.message} at {when} - automatic fail"})
        elif c is not None:
            pts, cap = c
            take = max(0.0, min(pts, cap - spent.get(b.key, 0.0)))
            spent[b.key] = spent.get(b.key, 0.0) + take
            total += take
            row.update(consequence="points", points=take)
        rows.append(row)
    return rows, fails, total


MAX_FAILS_PER_KEY = 3
#: A step issue and a behaviour that say the same thing (shown once, as the behaviour).
SAME_AS = {"injection_without_aspiration": "aspiration", "agent_without_aspiration": "aspiration",
           "agent_without_test_dose": "test_dose", "neurolytic_before_test_dose": "test_dose",
           "pleural_breach": "pleura", "pleura_touched": "pleura"}


def _kind(fail: dict) -> tuple[str, str]:
    """What a reason says, its time left out: an artery punctured three times is one kind, the
    pleura punctured after it another (never hidden behind the artery's)."""
    return fail["key"], _AT_TIME.sub("", str(fail.get("reason", "")))


_AT_TIME = re.compile(r" at \d+:\d\d(:\d\d)?")


def _shorten(fails: list[dict]) -> list[dict]:
    """At most three reasons of one kind (`_kind`), the rest counted ("... and 4 more like it")."""
    out, seen = [], {}
    for f in fails:
        k = _kind(f)
        seen[k] = seen.get(k, 0) + 1
        if seen[k] <= MAX_FAILS_PER_KEY:
            out.append(f)
    for k, n in seen.items():
        if n > MAX_FAILS_PER_KEY:
            last = max(i for i, f in enumerate(out) if _kind(f) == k)
            more = dict(out[last])
            more["reason"] = f"... and {n - MAX_FAILS_PER_KEY} more like it"
            more["count"] = n - MAX_FAILS_PER_KEY
            out.insert(last + 1, more)
    return out


def _deduction_lines(behaviours: list[dict], t0: float) -> list[str]:
    """One line per kind of behaviour that cost points: what, when, how much."""
    out = []
    keys = list(dict.fromkeys(b["key"] for b in behaviours if b["consequence"] == "points"))
    for key in keys:
        rows = [b for b in behaviours if b["key"] == key]
        pts = sum(b["points"] for b in rows)
        if pts <= 0:
            continue
        if len(rows) == 1:
            out.append(f"{rows[0]['message']} at {format_time(rows[0]['time_s'] - t0)}: -{pts:g} points")
            continue
        when = ", ".join(format_time(b["time_s"] - t0) for b in rows[:4]) + (" ..." if len(rows) > 4 else "")
        out.append(f"{BEHAVIOURS[key]}: {len(rows)} times (at {when}; first: {rows[0]['message']}): -{pts:g} points")
    return out


def score_metrics(am: AttemptMetrics, scenario, recording=None, decisions: dict | None = None) -> ScoreCard:
    """Turn computed metrics into the score card (the rubric part of `score_attempt`);
    `decisions`: `decision_scores.card_decisions` of the attempt."""
    rubric = scenario.rubric
    t0 = am.start_time_s
    dec = decisions or {}
    deferred = dec.get("deferral") == "right"
    rubric_items = list(rubric.items)
    if deferred and not any(it.metric in DECISION_ITEMS for it in rubric_items):
        from simulator.core.scenario_model import RubricItem

        rubric_items.append(RubricItem(metric=ALL_DECISIONS, weight=1, good=100, bad=0,
                                       reason="the procedure was deferred: the decisions carry the card"))

    def value(it):
        return None if deferred and it.metric not in DECISION_ITEMS else _item_value(it, am)

    items: list[ScoreItem] = []
    applicable = [it for it in rubric_items if value(it) is not None]
    total_w = float(sum(it.weight for it in applicable))
    score = 0.0
    for it in rubric_items:
        v = value(it)
        label, unit = LABELS.get(it.metric, (it.metric, ""))
        if it.target is not None:
            tname = next((r.name for r in am.targets if r.id == it.target), it.target)
            label = f"{label} ({tname})"
        if v is None or total_w == 0:
            items.append(ScoreItem(it.metric, label, None, it.good, it.bad, it.weight, 0.0, 0.0, False,
                                   "not applicable: the procedure was deferred" if deferred else "not applicable to this scenario"))
            continue
        share = 100.0 * it.weight / total_w
        frac = item_fraction(float(v), it.good, it.bad)
        pts = share * frac
        score += pts
        why = f"{label}: {_fmt(float(v), unit)} (full marks at {_fmt(it.good, unit)}, none at {_fmt(it.bad, unit)})"
        if it.reason:
            why += f" - {it.reason}"
        items.append(ScoreItem(it.metric, label, float(v), it.good, it.bad, it.weight, share, pts, True, why))
    behaviours, behaviour_fails, deductions = _behaviour_costs(am, rubric, t0)
    score = min(100.0, max(0.0, score - deductions))

    # automatic fails: the rubric's, the required targets (always), the behaviours that fail
    fails: list[dict] = []
    listed = set(rubric.automatic_fails) | {"required_target_missed"}
    if "critical_contact" in listed:
        for c in am.critical_contacts:
            if c.get("severity") == "critical":
                reason = f"{c['message']} at {format_time(c['time_s'] - t0)} - automatic fail"
                if not any(f["reason"] == reason for f in fails):
                    fails.append({"key": "critical_contact", "time_s": c["time_s"], "reason": reason})
    seen = set()
    for iss in am.issues:
        if iss.key in listed and iss.key != "critical_contact" and not (deferred and iss.key in NEEDLE_FAILS):
            sig = (iss.key, iss.message)
            if sig in seen:
                continue
            seen.add(sig)
            when = f" at {format_time(iss.time_s - t0)}" if iss.time_s > 0 and iss.key not in (
                "target_not_reached", "required_target_missed") else ""
            fails.append({"key": iss.key, "time_s": iss.time_s, "reason": f"{iss.message}{when} - automatic fail"})
    # a behaviour at the moment of a fail already listed (the pleura's critical contact, the agent
    # without aspiration) is that fail: not listed twice
    fails += [f for f in behaviour_fails if not any(abs(f["time_s"] - g["time_s"]) < 1e-6 for g in fails)]
    fails += [{"key": "contraindication_ignored", "time_s": am.start_time_s,
               "reason": f"went ahead despite {c['finding']} - automatic fail. {c['why']}"} for c in dec.get("ignored", [])]
    fails = _shorten(fails)

    reasons: list[str] = [f["reason"] for f in fails]
    if deferred:
        reasons.append("Procedure deferred at the time-out: the right decision for this patient")
    for r in ([] if deferred else am.targets):
        reasons.append(_target_line(r))
    reasons += decision_reasons(dec.get("decisions", []))
    for c in am.critical_contacts:
        if c.get("severity") != "critical" or "critical_contact" not in listed:
            reasons.append(f"{c['message']} at {format_time(c['time_s'] - t0)} ({c.get('severity')} contact)")
    reasons += _deduction_lines(behaviours, t0)
    lost = sorted((i for i in items if i.applicable and i.points < i.share - 1e-9), key=lambda i: i.points - i.share)
    for i in lost:
        reasons.append(f"{i.reason}: {i.points:.1f} of {i.share:.1f} points")
    marked = {(SAME_AS.get(b["key"]), round(b["time_s"], 6)) for b in behaviours}
    for iss in am.issues:
        if iss.key not in listed and (SAME_AS.get(iss.key), round(iss.time_s, 6)) not in marked:
            when = f" at {format_time(iss.time_s - t0)}" if iss.time_s > 0 else ""
            text = f"{iss.message}{when}"
            if text not in reasons:
                reasons.append(text)
    passed = not fails and score >= rubric.pass_mark
    return ScoreCard(
        score=score, passed=passed, pass_mark=float(rubric.pass_mark), items=items, automatic_fails=fails,
        reasons=reasons, metrics=dict(am.values), perk=dict(am.perk), targets=[t.to_json() for t in am.targets],
        behaviours=behaviours, deductions=deductions,
        scenario_id=getattr(scenario, "id", ""), scenario_version=getattr(recording, "scenario_version", "") if recording else "",
        trainee=getattr(recording, "trainee", "") if recording else "",
        extra={"duration_s": am.end_time_s - am.start_time_s, "start_time_s": am.start_time_s,
               "bone_contacts": am.values.get("bone_contacts"),
               "events": len(recording.events) if recording is not None else 0,
               "per_target": am.per_target, "decisions": dec.get("decisions", []), "deferral": dec.get("deferral")},
    )


def score_attempt(recording, scenario, anatomy, targets: list[TargetGeometry] | None = None, surface=None) -> ScoreCard:
    """The score card of a recorded attempt (pure: same recording, same card)."""
    if targets is None:
        targets = targets_from_recording(recording) or resolve_targets(scenario, anatomy)
    am = attempt_metrics(recording, scenario, anatomy, targets=targets, surface=surface)
    dec = None
    if getattr(scenario, "vignette", None) is not None:
        dec = card_decisions(recording, scenario, {t.id for t in targets if getattr(t, "is_nerve", False)})
        am.values.update({k: v for k, v in dec["values"].items() if v is not None})
    card = score_metrics(am, scenario, recording, decisions=dec)
    if not math.isfinite(card.score):
        card.score = 0.0
    return card


def summarize_events(recording) -> list[str]:
    """The attempt's notable events as lines (for reports)."""
    t0 = float(recording.samples.time_s[0]) if recording.n_samples else 0.0
    keep = {EventKind.skin_puncture, EventKind.bone_contact, EventKind.vessel_puncture, EventKind.pleural_breach,
            EventKind.dural_puncture, EventKind.organ_puncture, EventKind.critical_contact, EventKind.target_reached,
            EventKind.aspiration, EventKind.injection, EventKind.local_anaesthetic, EventKind.step_warning,
            EventKind.nerve_contact, EventKind.redirection, EventKind.advance_without_imaging}
    return [f"{format_time(e.time_s - t0)} {e.message}" for e in recording.events if e.kind in keep]
