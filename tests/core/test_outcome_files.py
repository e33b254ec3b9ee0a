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

@pytest.mark.parametrize("text", [
    REAL.replace("p: {p: 0.44, source: eisenberg1995", "p: {p: 1.44, source: eisenberg1995"),  # a value
    REAL.replace("  celiac_plexus:\n", "  celiac_plexus:\n   bad: [1, 2\n", 1),  # YAML syntax
    REAL.replace("    horizon_weeks: 26\n", "    horizon_weeks: 26\n    horizon_weeks: 27\n", 1),  # key twice
    REAL.replace("kind: course_parameters", "kind: course_parameters\x07"),  # a control character
    REAL.replace("    horizon_weeks: 26\n", "    horizon_weeks:\t26\n", 1),  # a tab
    "sets: !!python/object:os.system x\n",
])
def test_the_libyaml_path_gives_the_pure_python_messages(text, monkeypatch):
    from simulator.core import scenario as scenario_io

    assert scenario_io._FAST_LOADER is not None, "PyYAML without libyaml: the fast path is not tested"
    fast = errors_of(text)
    monkeypatch.setattr(scenario_io, "_FAST_LOADER", None)
    assert errors_of(text) == fast
    assert re.search(r"params\.yaml:\d+", fast), fast  # the line is named


def test_the_libyaml_path_reads_the_real_file_as_the_pure_loader_does(monkeypatch):
    from simulator.core import scenario as scenario_io

    fast = parse_model_text(REAL, CourseLibrary, "p.yaml")
    monkeypatch.setattr(scenario_io, "_FAST_LOADER", None)
    assert parse_model_text(REAL, CourseLibrary, "p.yaml") == fast


def test_the_parameter_file_is_parsed_once_per_content(tmp_path, monkeypatch):
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
