"""Course parameter files and the case fields of scenarios: bad input refused with file, line and
field; mutated real files give the project's own error, never a traceback."""
import io
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.core import outcome_library
from simulator.core.scenario import ScenarioError, parse_model_text, parse_scenario_text, validate_files
from simulator.core.outcome_params import CourseLibrary

REAL = outcome_library.library_path().read_text(encoding="utf-8")
CELIAC = (outcome_library.library_path().parents[1] / "celiac_plexus_posterior.yaml").read_text(encoding="utf-8")


def errors_of(text: str, model=CourseLibrary) -> str:
    with pytest.raises(ScenarioError) as e:
        parse_model_text(text, model, "params.yaml")
    return str(e.value)


@pytest.mark.parametrize("old, new, field, words, line_has", [
    ("p: {p: 0.44, source: eisenberg1995", "p: {p: 1.44, source: eisenberg1995",
     "sets.celiac_plexus.effects[1].p.p", "less than or equal to 1", "p: {p: 1.44"),
    ("partial_days: {unit: days, median: 7, low: 2, high: 14, assumption: true}",
     "partial_days: {unit: days, median: -7, assumption: true}", "sets.celiac_plexus.relief.partial_days.median",
     "greater than or equal to 0", "median: -7"),
    ("    agents:\n      alcohol:", "    agents:\n      ethanol:", "sets.celiac_plexus.agents.ethanol", "unknown name",
     "ethanol:"),
    ("source: shanti2001", "source: shanti2002", "sets.intercostal.effects[0].p.source", "not one of the sources",
     "shanti2002"),
    ("{k: 5, n: 12, low: 0.15", "{k: 15, n: 12, low: 0.15", "by_quadrants[1].relief.k", "more than n", "k: 15"),
    ("      min_ml:\n        value: 0.5\n        unit: ml\n        assumption: true",
     "      min_ml:\n        value: 0.5\n        unit: ml", "sets.celiac_plexus.celiac_area.min_ml.source",
     "or mark it `assumption: true`", "min_ml:"),
])
def test_out_of_range_parameters_are_refused_with_file_line_and_field(old, new, field, words, line_has):
    assert old in REAL
    text = REAL.replace(old, new, 1)
    msg = errors_of(text)
    m = re.search(r"params\.yaml:(\d+): (\S+): (.*)", msg)
    assert m, msg
    assert field in m.group(2) and words in m.group(3), msg
    assert line_has in text.splitlines()[int(m.group(1)) - 1], msg


@pytest.mark.parametrize("old, new, field", [
    ("  pain_nrs: 8\n", "  pain_nrs: 12\n", "vignette.pain_nrs"),
    ("  duration_hours: 8\n", "  duration_hours: -1\n", "prognostic_block.duration_hours"),
    ("  agent: bupivacaine\n  concentration_pct: 0.25", "  agent: alcohol\n  concentration_pct: 0.25", "prognostic_block.agent"),
    ("  parameters: celiac_plexus\n", "  parameters: celiac_plexsu\n", "outcome.parameters"),
    ("  celiac_origin_mm: [-31.0, 2.0, -280.0]", "  n_patients: 100", "outcome.celiac_origin_mm"),
    ("  contraindications: []", "  contraindications: [{kind: bleeding, finding: x, why: y}]",
     "vignette.contraindications[0].kind"),
])
def test_bad_case_fields_in_a_scenario(old, new, field):
    assert old in CELIAC
    with pytest.raises(ScenarioError) as e:
        parse_scenario_text(CELIAC.replace(old, new, 1), "celiac.yaml")
    assert any(err.field.startswith(field) and err.line is not None for err in e.value.errors), str(e.value)


def test_validate_names_the_parameter_file(tmp_path):
    bad = tmp_path / "outcome"
    bad.mkdir()
    (bad / "course_parameters.yaml").write_text(REAL.replace("p: {p: 0.96,", "p: {p: 9.6,", 1), encoding="utf-8")
    out = io.StringIO()
    assert validate_files([bad / "course_parameters.yaml"], out) == 1
    assert "course_parameters.yaml:" in out.getvalue() and ".p.p: must be less than or equal to 1" in out.getvalue()


SMALL = REAL[: REAL.index("\n  splanchnic:")]  # the sources and the celiac set: quicker to parse


@st.composite
def mutated(draw):
    lines = SMALL.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "dup", "number", "text", "indent"]))
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "number":
            lines[i] = re.sub(r"-?\d+(\.\d+)?", str(draw(st.sampled_from([-1, 0, 1.5, 99, 1e9, "x", ".nan"]))), lines[i], count=1)
        elif op == "text":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))] + draw(st.text(max_size=8))
        else:
            lines[i] = "  " + lines[i]
        if not lines:
            break
    return "\n".join(lines)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=False)
@given(mutated())
def test_mutated_parameter_files_give_our_error_never_a_traceback(text):
    try:
        parse_model_text(text, CourseLibrary, "params.yaml")
    except ScenarioError as e:
        assert str(e).startswith("params.yaml")


# --- speed without losing the messages ----------------------------------------------------------

def test_the_yaml_data_cache_changes_no_result_and_no_message(tmp_path, monkeypatch):
    """A text read before comes from the cache (memory, then disk in a new process) and gives the
    same library; a broken text is never cached and keeps its line and field."""
    from simulator.core import yaml_cache

    monkeypatch.setenv("NEUROLYSIS_DATA", str(tmp_path))
    yaml_cache.clear_memory()
    f = tmp_path / "course_parameters.yaml"
    f.write_text(REAL, encoding="utf-8")
    monkeypatch.setattr(outcome_library, "_cache", {})
    first = outcome_library.load_library(f)
    assert len(list((tmp_path / "cache" / "yaml").glob("*.json"))) == 1
    yaml_cache.clear_memory()
    monkeypatch.setattr(outcome_library, "_cache", {})
    import simulator.core.scenario as scenario_io

    monkeypatch.setattr(scenario_io, "_parse_yaml", lambda text: pytest.fail("read by the YAML loader"))
    assert outcome_library.load_library(f) == first  # from the disk cache, validated again
    monkeypatch.undo()
    monkeypatch.setenv("NEUROLYSIS_DATA", str(tmp_path))
    bad = REAL.replace("p: {p: 0.44, source", "p: {p: 4.4, source")
    for _ in range(2):
        with pytest.raises(ScenarioError, match=r"params\.yaml:\d+: sets\.celiac_plexus\.effects\[1\]\.p\.p"):
            parse_model_text(bad, CourseLibrary, "params.yaml")
    assert yaml_cache.get(bad) is None
    (tmp_path / "cache" / "yaml" / "junk.json").write_text("{not json", encoding="utf-8")
    for entry in (tmp_path / "cache" / "yaml").glob("*.json"):  # a damaged entry: read again, no error
        entry.write_text('{"sha256": "x", "data": 1}', encoding="utf-8")
    yaml_cache.clear_memory()
    monkeypatch.setattr(outcome_library, "_cache", {})
    assert outcome_library.load_library(f) == first


def test_the_parameter_file_is_parsed_once_per_content(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROLYSIS_DATA", str(tmp_path))
    calls = []
    real_parse = outcome_library.parse_model_text
    monkeypatch.setattr(outcome_library, "parse_model_text", lambda *a, **k: calls.append(1) or real_parse(*a, **k))
    monkeypatch.setattr(outcome_library, "_cache", {})
    f = tmp_path / "course_parameters.yaml"
    f.write_text(REAL, encoding="utf-8")
    first = outcome_library.load_library(f)
    assert outcome_library.load_library(f) is first and len(calls) == 1
    f.write_text(REAL.replace("horizon_weeks: 26", "horizon_weeks: 30", 1), encoding="utf-8")
    changed = outcome_library.load_library(f)
    assert len(calls) == 2 and changed.sets["celiac_plexus"].horizon_weeks == 30
    f.write_text(REAL.replace("p: {p: 0.44, source", "p: {p: 4.4, source"), encoding="utf-8")
    for _ in range(2):  # an error is never cached: the same message every time
        with pytest.raises(ScenarioError, match=r"course_parameters\.yaml:\d+: sets\.celiac_plexus\.effects\[1\]\.p\.p"):
            outcome_library.load_library(f)
    assert len(calls) == 4
