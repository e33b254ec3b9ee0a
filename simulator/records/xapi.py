"""An attempt as xAPI 1.0.3 statements, for a centre's learning record store (LRS).

    statements = attempt_statements(store, attempt_id, homepage="https://lrs.centre.example/")
    Path("attempt.xapi.json").write_text(json.dumps(statements, indent=1))

Per attempt, in time order (each statement's `timestamp` is when it happened in the attempt):

- initialized: the trainee started the scenario (the activity: the scenario, its version in the
  context);
- completed / failed, one per procedure step the scenario requires (local anaesthetic, insertion,
  target, aspiration, contrast, test dose, neurolytic): when the step was done, or that it was
  not (result.completion false);
- interacted: each event of the attempt with its kind, structure, severity and the tip position
  as result extensions (a critical contact, a vessel puncture, bone contact, each fluoroscopy
  shot, injection ...);
- scored: one per rubric item with its points of its share and the measured value;
- passed or failed: the score (scaled 0..1, raw 0..100), success, duration;
- terminated: the attempt ended (finished, recovered or abandoned).

The registration is the attempt's UUID; statement ids are derived from it (UUID 5), so sending
the same attempt twice to an LRS stores it once. The actor is the trainee as an account on the
centre's `homepage`. `xapi_statement.schema.json` beside this file is the statement schema the
tests validate every statement against.
"""
from __future__ import annotations

import json
import uuid as uuidlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

from simulator.records.centre.feed import STEP_LABELS

SCHEMA_PATH = Path(__file__).with_name("xapi_statement.schema.json")
VERSION = "1.0.3"
ADL = "http://adlnet.gov/expapi/verbs/"
VERBS = {v: (ADL + v, v) for v in ("initialized", "completed", "failed", "passed", "terminated", "interacted",
                                   "scored")}
NAMESPACE = uuidlib.UUID("6f1c1b1e-3b8e-5d0a-9a51-4e6e2b7f0c11")
DEFAULT_HOMEPAGE = "https://neurolysis-trainer.local/"
ACTIVITY_TYPE = {"scenario": "http://adlnet.gov/expapi/activities/simulation",
                 "step": "http://adlnet.gov/expapi/activities/interaction",
                 "metric": "http://adlnet.gov/expapi/activities/objective"}

def _iri(homepage: str, *parts: str) -> str:
    base = homepage if homepage.endswith("/") else homepage + "/"
    from urllib.parse import quote

    return base + "/".join(quote(str(p), safe="") for p in parts)


def _ext(homepage: str, name: str) -> str:
    return _iri(homepage, "xapi", "extensions", name)


def iso_duration(seconds: float) -> str:
    return f"PT{max(0.0, float(seconds)):.2f}S"


def _when(started_at: str, t_s: float) -> str:
    try:
        t0 = datetime.fromisoformat(started_at)
    except (TypeError, ValueError):
        t0 = datetime(1970, 1, 1, tzinfo=timezone.utc)
    if t0.tzinfo is None:
        t0 = t0.replace(tzinfo=timezone.utc)
    return (t0 + timedelta(seconds=max(0.0, float(t_s)))).isoformat(timespec="milliseconds")


def _steps_done(recording, scenario_json: dict | None) -> list[tuple[str, bool, float | None]]:
    """(step, done, time it was done) for each step the scenario requires, from the events."""
    from simulator.core.events import EventKind

    steps = (scenario_json or {}).get("steps") or {}
    t0 = recording.samples.time_s[0] if len(recording.samples) else 0.0
    first: dict[str, float] = {}

    def mark(step: str, t: float) -> None:
        first.setdefault(step, float(t) - float(t0))

    for e in recording.events:
        if e.kind == EventKind.local_anaesthetic:
            mark("local_anaesthetic", e.time_s)
        elif e.kind == EventKind.skin_puncture:
            mark("insertion", e.time_s)
        elif e.kind == EventKind.target_reached:
            mark("target", e.time_s)
        elif e.kind == EventKind.aspiration:
            mark("aspiration", e.time_s)
        elif e.kind == EventKind.injection:
            kind = str(e.data.get("kind", ""))
            mark({"contrast": "contrast", "test_dose": "test_dose"}.get(kind, "neurolytic"), e.time_s)
        elif e.kind == EventKind.end:
            mark("end", e.time_s)
    required = ["insertion", "target"]
    if steps.get("local_anaesthetic", True):
        required.insert(0, "local_anaesthetic")
    if steps.get("aspiration_before_injection", True):
        required.append("aspiration")
    for k in ("contrast", "test_dose"):
        if steps.get(k) is not None:
            required.append(k)
    if steps.get("neurolytic") is not None or steps.get("neurolytic_options"):
        required.append("neurolytic")
    return [(s, s in first, first.get(s)) for s in required]


def attempt_statements(store, attempt_id: int, *, homepage: str = DEFAULT_HOMEPAGE,
                       platform: str = "Neurolysis Trainer") -> list[dict]:
    """Every statement of one stored attempt (see the module notes)."""
    from simulator.core.events import HARMFUL

    info = store.attempt(attempt_id)
    rec = store.load_attempt(attempt_id, inputs=False)
    card = store.score_card(attempt_id)
    sjson = store.scenario_json(info.scenario_id, info.scenario_version)
    scenario = json.loads(sjson) if sjson else None
    full_name = next((t.full_name for t in store.list_trainees() if t.name == info.trainee), "")
    t0 = float(rec.samples.time_s[0]) if len(rec.samples) else 0.0
    duration = info.duration_s
    actor = {"objectType": "Agent", "name": full_name or info.trainee,
             "account": {"homePage": homepage, "name": info.trainee}}
    scen = {"objectType": "Activity", "id": _iri(homepage, "scenarios", info.scenario_id),
            "definition": {"name": {"en": info.scenario_title or info.scenario_id},
                           "description": {"en": f"Image-guided chemical neurolysis: {info.scenario_title}"},
                           "type": ACTIVITY_TYPE["scenario"]}}
    context = {"registration": info.uuid, "platform": platform, "language": "en",
               "revision": info.scenario_version,
               "extensions": {_ext(homepage, "attempt-uuid"): info.uuid, _ext(homepage, "mode"): info.mode,
                              _ext(homepage, "anatomy"): info.anatomy_ref,
                              _ext(homepage, "status"): info.status}}
    sub_context = dict(context, contextActivities={"parent": [scen]})
    out: list[dict] = []

    def statement(verb: str, obj: dict, t_s: float, result: dict | None = None, ctx: dict | None = None) -> None:
        iri, word = VERBS[verb]
        s = {"id": str(uuidlib.uuid5(NAMESPACE, f"{info.uuid}/{len(out)}/{verb}")), "actor": actor,
             "verb": {"id": iri, "display": {"en-US": word}}, "object": obj,
             "context": ctx or context, "timestamp": _when(info.started_at, t_s), "version": VERSION}
        if result:
            s["result"] = result
        out.append(s)

    def activity(kind: str, key: str, name: str) -> dict:
        return {"objectType": "Activity", "id": _iri(homepage, "scenarios", info.scenario_id, kind, key),
                "definition": {"name": {"en": name}, "type": ACTIVITY_TYPE["step" if kind == "steps" else "metric"]}}

    statement("initialized", scen, 0.0)
    timeline: list[tuple[float, int, tuple]] = []
    for step, done, t in _steps_done(rec, scenario):
        obj = activity("steps", step, STEP_LABELS.get(step, step))
        res = {"completion": done, "success": done}
        if done:
            res["duration"] = iso_duration(t)
        timeline.append((t if done else duration, 0, ("completed" if done else "failed", obj, res)))
    for k, e in enumerate(rec.events):
        data = e.data or {}
        ext = {_ext(homepage, "event-kind"): e.kind.value, _ext(homepage, "message"): e.message,
               _ext(homepage, "harmful"): e.kind in HARMFUL}
        for key in ("structure", "severity", "position_mm", "volume_ml", "kind", "agent", "dap_gycm2"):
            if key in data:
                ext[_ext(homepage, key.replace("_", "-"))] = data[key]
        obj = activity("events", e.kind.value, e.kind.value.replace("_", " "))
        timeline.append((float(e.time_s) - t0, 1, ("interacted", obj, {"response": e.message, "extensions": ext})))
    for t, _, (verb, obj, res) in sorted(timeline, key=lambda x: (x[0], x[1])):
        statement(verb, obj, t, res, sub_context)
    if card is not None:
        for item in card.get("items", []):
            if not item.get("applicable"):
                continue
            share = float(item.get("share") or 0.0)
            points = float(item.get("points") or 0.0)
            res = {"score": {"raw": points, "min": 0.0, "max": share,
                             "scaled": round(points / share, 6) if share > 0 else 0.0},
                   "response": str(item.get("reason", "")),
                   "extensions": {_ext(homepage, "metric"): item.get("metric"), _ext(homepage, "value"): item.get("value"),
                                  _ext(homepage, "good"): item.get("good"), _ext(homepage, "bad"): item.get("bad")}}
            statement("scored", activity("metrics", str(item.get("metric")), str(item.get("label") or item.get("metric"))),
                      duration, res, sub_context)
        score = float(card.get("score", 0.0))
        statement("passed" if card.get("passed") else "failed", scen, duration,
                  {"score": {"scaled": round(score / 100.0, 6), "raw": score, "min": 0.0, "max": 100.0},
                   "success": bool(card.get("passed")), "completion": info.status == "finished",
                   "duration": iso_duration(duration),
                   "extensions": {_ext(homepage, "pass-mark"): card.get("pass_mark"),
                                  _ext(homepage, "reasons"): list(card.get("reasons", []))}})
    statement("terminated", scen, duration, {"duration": iso_duration(duration),
                                             "completion": info.status == "finished"})
    return out


def load_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())
