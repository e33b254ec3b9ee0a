"""xAPI export: every statement of an attempt validates against the xAPI 1.0.3 statement schema
kept in the repository, and says what happened (started, each step done or not, each event, each
rubric item, passed or failed with the score, ended)."""
from __future__ import annotations

import copy

import pytest
from jsonschema import Draft7Validator

from simulator.records.store import SQLiteRecordStore
from simulator.records.xapi import ADL, attempt_statements, load_schema


@pytest.fixture(scope="module")
def validator():
    schema = load_schema()
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def _verbs(statements):
    return [s["verb"]["id"].removeprefix(ADL) for s in statements]


def test_passed_and_failed_attempts_as_valid_statements(store, expert, novice, scenario, validator):
    good = store.save_recording(expert[0].recording, expert[1], scenario=scenario)
    bad = store.save_recording(novice[0].recording, novice[1], scenario=scenario)
    for aid, card in ((good, expert[1]), (bad, novice[1])):
        sts = attempt_statements(store, aid, homepage="https://lrs.centre.example/")
        for s in sts:
            errors = sorted(validator.iter_errors(s), key=str)
            assert errors == [], (s["verb"]["id"], [e.message for e in errors])
        info = store.attempt(aid)
        verbs = _verbs(sts)
        assert verbs[0] == "initialized" and verbs[-1] == "terminated"
        final = sts[-2]
        assert final["verb"]["id"] == ADL + ("passed" if card.passed else "failed")
        assert final["result"]["score"]["scaled"] == pytest.approx(card.score / 100.0, abs=5e-7)  # 6 decimals
        assert final["result"]["success"] is card.passed and final["object"]["id"].endswith(f"/scenarios/{scenario.id}")
        assert {s["context"]["registration"] for s in sts} == {info.uuid}
        assert len({s["id"] for s in sts}) == len(sts)
        assert [s["id"] for s in attempt_statements(store, aid, homepage="https://lrs.centre.example/")] == \
            [s["id"] for s in sts]  # the same ids again: an LRS stores a re-sent attempt once
        stamps = [s["timestamp"] for s in sts]
        assert stamps == sorted(stamps)
        scored = [s for s in sts if s["verb"]["id"] == ADL + "scored"]
        assert len(scored) == sum(1 for i in card.items if i.applicable)
        for s in scored:
            sc = s["result"]["score"]
            assert sc["min"] <= sc["raw"] <= sc["max"] + 1e-9
        events = [s for s in sts if s["verb"]["id"] == ADL + "interacted"]
        assert len(events) == len(store.load_attempt(aid).events)
    # the novice: harmful contacts named with their structure, and the aspiration step not done
    sts = attempt_statements(store, bad)
    harmful = [s for s in sts if s["verb"]["id"] == ADL + "interacted"
               and s["result"]["extensions"]["https://neurolysis-trainer.local/xapi/extensions/harmful"]]
    assert harmful and any("aorta" in s["result"]["response"].lower() for s in harmful)
    steps = {s["object"]["id"].rsplit("/", 1)[1]: s for s in sts if "/steps/" in s["object"]["id"]}
    assert steps["aspiration"]["verb"]["id"] == ADL + "failed" and steps["aspiration"]["result"]["completion"] is False
    assert steps["insertion"]["verb"]["id"] == ADL + "completed"
    good_steps = {s["object"]["id"].rsplit("/", 1)[1]: s for s in attempt_statements(store, good)
                  if "/steps/" in s["object"]["id"]}
    assert all(s["verb"]["id"] == ADL + "completed" for s in good_steps.values())


@pytest.mark.parametrize("break_it, where", [
    (lambda s: s.pop("verb"), "verb"),
    (lambda s: s["actor"].update(mbox="mailto:ann@centre.example"), "two identifiers for one agent"),
    (lambda s: s.update(result={"score": {"scaled": 1.5}}), "scaled above 1"),
    (lambda s: s["context"].update(registration="not-a-uuid"), "registration"),
    (lambda s: s.update(result={"duration": "12s"}), "duration"),
    (lambda s: s["verb"].update(id="initialized"), "verb id not an IRI"),
    (lambda s: s.update(timestamp="yesterday"), "timestamp"),
    (lambda s: s["object"]["definition"].update(name={"en": 3}), "language map"),
])
def test_the_schema_refuses_broken_statements(tmp_path, expert, scenario, validator, break_it, where):
    store = SQLiteRecordStore(tmp_path / "r.sqlite")
    aid = store.save_recording(expert[0].recording, expert[1], scenario=scenario)
    s = copy.deepcopy(attempt_statements(store, aid)[0])
    store.close()
    assert validator.is_valid(s)
    break_it(s)
    assert not validator.is_valid(s), where
