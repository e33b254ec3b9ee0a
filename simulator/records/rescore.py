"""Scenario and anatomy of a stored attempt, and rescoring by replay.

`rescore(store, attempt_id)` loads the attempt, rebuilds it by feeding its recorded inputs
through the procedure again (`simulator.core.procedure.replay`) on the scenario version it was
recorded with (kept in the store) and its anatomy, and scores the result. On the same scenario
and anatomy the score card equals the stored one to the last digit.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from simulator.records.store import RecordsError, RecordStore

_ANATOMIES: dict[str, object] = {}


def load_scenario_ref(ref: str):
    """A scenario by id (library or user folder) or YAML file; errors name what was asked for."""
    from simulator.core.scenario import ScenarioError, find_scenario, load_scenario

    try:
        return load_scenario(find_scenario(ref))
    except ScenarioError as e:
        raise RecordsError(str(e).strip()) from None


def stored_scenario(store: RecordStore, scenario_id: str, version: str):
    """The scenario exactly as it was when the attempt was recorded (None if the store does not
    hold its text)."""
    from pydantic import ValidationError

    from simulator.core.scenario_model import Scenario

    text = store.scenario_json(scenario_id, version)
    if not text:
        return None
    try:
        return Scenario.model_validate_json(text)
    except ValidationError as e:
        raise RecordsError(f"scenario {scenario_id!r} version {version} in {store.location} no longer validates "
                           f"({e.error_count()} errors); rescore with --scenario") from None


def scenario_for(store: RecordStore, info, override=None) -> tuple[object, list[str]]:
    """The scenario to score an attempt with, and warnings: `override` (an id, a file or a
    Scenario) if given, else the stored version, else the library's current one."""
    from simulator.core.recording import scenario_version

    notes: list[str] = []
    if override is not None:
        sc = load_scenario_ref(override) if isinstance(override, str) else override
    else:
        sc = stored_scenario(store, info.scenario_id, info.scenario_version)
        if sc is None:
            sc = load_scenario_ref(info.scenario_id)
    if scenario_version(sc) != info.scenario_version:
        notes.append(f"attempt {info.id} was recorded on another version of scenario {info.scenario_id!r} "
                     f"({info.scenario_version}); scoring with version {scenario_version(sc)}")
    return sc, notes


def anatomy_for(ref: str):
    """The anatomy a scenario names (cached in this process)."""
    if ref not in _ANATOMIES:
        from simulator.anatomy import load_anatomy

        try:
            _ANATOMIES[ref] = load_anatomy(ref)
        except Exception as e:  # noqa: BLE001 - AnatomyNotFound and friends: reported by name
            raise RecordsError(f"anatomy {ref!r}: {e}") from None
    return _ANATOMIES[ref]


def canonical(card_json: dict | None) -> str:
    """A score card as canonical JSON text (for comparing to the last digit)."""
    return json.dumps(card_json, sort_keys=True)


@dataclass
class RescoreResult:
    attempt_id: int
    card: object  # ScoreCard
    stored: dict | None
    identical: bool  # the new card equals the stored one to the last digit
    replay_identical: bool  # the replayed samples, events and inputs equal the stored ones
    differences: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"attempt_id": self.attempt_id, "score": self.card.score, "passed": self.card.passed,
                "stored_score": None if self.stored is None else self.stored.get("score"),
                "stored_passed": None if self.stored is None else self.stored.get("passed"),
                "identical": self.identical, "replay_identical": self.replay_identical,
                "differences": self.differences, "warnings": self.warnings, "card": self.card.to_json()}


def _differences(old: dict | None, new: dict) -> list[str]:
    if old is None:
        return ["no stored score card"]
    out = []
    for key in ("score", "passed", "pass_mark"):
        if canonical(old.get(key)) != canonical(new.get(key)):
            out.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    for key in sorted(set(old.get("metrics", {})) | set(new.get("metrics", {}))):
        a, b = old.get("metrics", {}).get(key), new.get("metrics", {}).get(key)
        if canonical(a) != canonical(b):
            out.append(f"metrics.{key}: {a!r} -> {b!r}")
    if old.get("reasons") != new.get("reasons"):
        out.append("reasons differ")
    if not out and canonical(old) != canonical(new):
        out.append("other fields of the score card differ")
    return out


def rescore(store: RecordStore, attempt_id: int, *, scenario=None, anatomy=None, save: bool = False) -> RescoreResult:
    """Replay a stored attempt's inputs and score it again (see the module notes). `save` stores
    the new card."""
    from simulator.core.procedure import ProcedureError, replay
    from simulator.core.recording import anatomy_hash
    from simulator.core.scoring import score_attempt

    info = store.attempt(attempt_id)
    rec = store.load_attempt(attempt_id)
    sc, notes = scenario_for(store, info, scenario)
    an = anatomy if anatomy is not None else anatomy_for(rec.anatomy_ref or sc.anatomy)
    if rec.anatomy_hash and rec.anatomy_hash != anatomy_hash(an):
        notes.append(f"attempt {info.id} was recorded on another build of anatomy {rec.anatomy_ref!r} "
                     f"(hash {rec.anatomy_hash}, now {anatomy_hash(an)})")
    if not rec.inputs:
        raise RecordsError(f"attempt {info.id} has no recorded inputs to replay")
    try:
        proc = replay(rec, sc, an, silent=True)
    except (ProcedureError, ValueError, TypeError) as e:
        raise RecordsError(f"attempt {info.id}: the replay failed ({e})") from None
    card = score_attempt(proc.recording, sc, an)
    new = json.loads(json.dumps(card.to_json()))
    stored = store.score_card(attempt_id)
    diffs = _differences(stored, new)
    result = RescoreResult(info.id, card, stored, not diffs, proc.recording.same_as(rec), diffs, notes)
    if save:
        store.set_score(attempt_id, card)
    return result
