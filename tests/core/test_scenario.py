"""Scenario files: loading, errors that name the file, the line and the field, the library listing,
the `validate` command and the exported JSON Schema."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.core import paths
from simulator.core.scenario import (
    DEFAULT_SCENARIO_ID,
    NO_VALUE,
    SCHEMA_FILE_NAME,
    FieldError,
    ScenarioError,
    ScenarioNotFoundError,
    find_scenario,
    json_schema,
    list_scenarios,
    load_scenario,
    parse_scenario_text,
    validate_files,
)
from simulator.core.scenario_model import Modality, Scenario, Severity

LIBRARY = ("needle_basics_gel", "celiac_plexus_posterior", "intercostal_ultrasound", "splanchnic_t11_t12",
           "lumbar_sympathetic_l3", "lumbar_sympathetic_l2_l4", "superior_hypogastric_l5_s1", "ganglion_impar_transcoccygeal",
           "thoracic_sympathetic_t2_t3", "stellate_ganglion_c7_ultrasound", "celiac_transaortic",
           "suprascapular_notch_ultrasound", "suprascapular_notch_fluoroscopy",
           "celiac_plexus_repeat", "splanchnic_t11_t12_aneurysm")  # the last two: variants (based_on)
PROJECT = paths.PROJECT_ROOT

# A small valid scenario; the broken cases below each change one thing in it.
BASE = """\
# a minimal scenario for the tests
schema_version: 1
id: test_case
title: "Test scenario"
procedure: celiac_plexus
indication: [cancer_pain]
difficulty: 2
anatomy: bundled
patient_position: prone
modality: fluoroscopy
needle:
  gauge: 22
  length_mm: 150
imaging:
  fluoroscopy:
    presets:
      AP: [0, 0]
targets:
  - id: left
    name: "Left target"
    points_mm: [[-43.0, -4.0, -275.0]]
    tolerance_mm: 5
  - id: right
    name: "Right target"
    points_mm: [[-17.0, -3.0, -275.0]]
critical_structures:
  - structure: aorta
    severity: critical
steps:
  contrast: {min_ml: 3, max_ml: 5}
rubric:
  items:
    - metric: final_distance_mm
      weight: 100
      good: 2
      bad: 10
  automatic_fails: [critical_contact]
instructions: "Reach both targets without touching the aorta."
"""


def write(tmp_path: Path, text: str, name: str = "case.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def line_of(text: str, fragment: str, occurrence: int = 1) -> int:
    """1-based line of the n-th line containing `fragment`."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if fragment in line]
    assert len(hits) >= occurrence, f"{fragment!r} not in the test text"
    return hits[occurrence - 1]


def errors_of(path: Path) -> list[FieldError]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.file == path
    return info.value.errors


# ---------------------------------------------------------------------------------------------
# the library


@pytest.mark.parametrize("scenario_id", LIBRARY)
def test_library_file_validates(scenario_id):
    path = paths.SCENARIOS_DIR / f"{scenario_id}.yaml"
    scenario = load_scenario(path)
    assert isinstance(scenario, Scenario)
    assert scenario.id == scenario_id == path.stem
    assert scenario.references, "values must be cited"
    assert abs(scenario.rubric.total_weight - 100.0) < 1e-9
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    assert first_line == "# yaml-language-server: $schema=scenario.schema.json"


def test_default_scenario_is_the_celiac_block():
    assert DEFAULT_SCENARIO_ID == "celiac_plexus_posterior"
    scenario = load_scenario(find_scenario(DEFAULT_SCENARIO_ID))
    assert scenario.modality == Modality.fluoroscopy
    assert scenario.anatomy == "bundled"


def test_base_text_is_valid(tmp_path):
    scenario = load_scenario(write(tmp_path, BASE))
    assert [t.id for t in scenario.targets] == ["left", "right"]
    assert scenario.imaging.fluoroscopy.presets == {"AP": (0.0, 0.0)}
    assert scenario.critical_structures[0].severity == Severity.critical


# ---------------------------------------------------------------------------------------------
# broken files: each error names its field and the line of that field


def _replace(old: str, new: str):
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return edit


BROKEN = {
    # name: (edit, field, fragment on the expected line (occurrence), words in the message)
    "wrong_type": (_replace("difficulty: 2", "difficulty: hard"), "difficulty", ("difficulty: hard", 1), "integer"),
    "unknown_field": (_replace("    tolerance_mm: 5", "    tolerence_mm: 5"), "targets[0].tolerence_mm",
                      ("tolerence_mm", 1), "did you mean 'tolerance_mm'"),
    "missing_field": (_replace('instructions: "Reach both targets without touching the aorta."\n', ""),
                      "instructions", ("schema_version", 1), "required"),
    "missing_nested": (_replace("      weight: 100\n", ""), "rubric.items[0].weight", ("- metric: final", 1), "required"),
    "bad_enum": (_replace("modality: fluoroscopy", "modality: xray"), "modality", ("modality: xray", 1), "'ultrasound'"),
    "bad_tissue": (_replace("  - structure: aorta", "  - tissue: aortic"), "critical_structures[0].tissue",
                   ("tissue: aortic", 1), "'artery'"),
    "out_of_range": (_replace("  length_mm: 150", "  length_mm: 900"), "needle.length_mm", ("length_mm: 900", 1), "250"),
    "negative_volume": (_replace("{min_ml: 3, max_ml: 5}", "{min_ml: 6, max_ml: 5}"), "steps.contrast.min_ml",
                        ("contrast:", 1), "above max_ml"),
    "path_escape": (_replace("anatomy: bundled", "anatomy: user:../../../../etc"), "anatomy",
                    ("anatomy: user:", 1), "outside"),
    "path_escape_sibling": (_replace("anatomy: bundled", "anatomy: user:../scenarios"), "anatomy",
                            ("anatomy: user:", 1), "anatomies folder"),
    "duplicate_target_id": (_replace("  - id: right", "  - id: left"), "targets[1].id", ("- id: left", 2), "already used"),
    "point_count": (_replace("points_mm: [[-43.0, -4.0, -275.0]]", "points_mm: [[-43.0, -4.0, -275.0], [1, 2, 3]]"),
                    "targets[0].points_mm", ("points_mm: [[-43.0", 1), "exactly one point"),
    "coordinate_count": (_replace("points_mm: [[-17.0, -3.0, -275.0]]", "points_mm: [[-17.0, -3.0]]"),
                         "targets[1].points_mm[0]", ("points_mm: [[-17.0", 1), "expected 3 numbers"),
    "too_many_coordinates": (_replace("points_mm: [[-17.0, -3.0, -275.0]]", "points_mm: [[-17.0, -3.0, -275.0, 4]]"),
                             "targets[1].points_mm[0]", ("points_mm: [[-17.0", 1), "exactly 3 numbers"),
    "duplicate_key": (_replace("difficulty: 2\n", "difficulty: 2\ndifficulty: 3\n"), "difficulty",
                      ("difficulty: 3", 1), "given twice"),
    "not_finite": (_replace("tolerance_mm: 5", "tolerance_mm: .nan"), "targets[0].tolerance_mm",
                   ("tolerance_mm: .nan", 1), "finite"),
    "bad_preset": (_replace("AP: [0, 0]", "AP: [0, 80]"), "imaging.fluoroscopy.presets.AP[1]", ("AP: [0, 80]", 1),
                   "not in [-45, 45]"),
    "fail_rule_without_its_step": (
        _replace("automatic_fails: [critical_contact]", "automatic_fails: [critical_contact, agent_without_test_dose]"),
        "rubric.automatic_fails[1]", ("automatic_fails:", 1), "needs steps.test_dose"),
    "section_not_a_mapping": (_replace("needle:\n  gauge: 22\n  length_mm: 150\n", "needle: 5\n"), "needle",
                              ("needle: 5", 1), "mapping"),
    "list_expected": (_replace("indication: [cancer_pain]", "indication: cancer_pain"), "indication",
                      ("indication:", 1), "expected a list"),
    "id_pattern": (_replace("id: test_case", "id: Test Case"), "id", ("id: Test Case", 1), "lower-case"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_file_names_field_and_line(tmp_path, name):
    edit, field, (fragment, occurrence), words = BROKEN[name]
    text = edit(BASE)
    path = write(tmp_path, text, f"{name}.yaml")
    errors = errors_of(path)
    matching = [e for e in errors if e.field == field]
    assert matching, f"no error for {field}: {[(e.field, e.message) for e in errors]}"
    err = matching[0]
    assert err.line == line_of(text, fragment, occurrence), (err, text)
    assert words in err.message
    # the formatted error names the file, the line and the field
    assert f"{path}:{err.line}: {field}: " in str(ScenarioError(path, errors))


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    text = BASE.replace("  gauge: 22", "  gauge: [22")
    path = write(tmp_path, text)
    (err,) = errors_of(path)
    assert err.line == line_of(text, "length_mm: 150")  # where the scanner gives up
    assert "YAML syntax error" in err.message
    assert str(ScenarioError(path, [err])).startswith(f"{path}:{err.line}: YAML syntax error")


def test_tab_indentation_is_a_syntax_error(tmp_path):
    text = BASE.replace("  gauge: 22", "\tgauge: 22")
    (err,) = errors_of(write(tmp_path, text))
    assert err.line == line_of(text, "\tgauge")
    assert "YAML syntax error" in err.message


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path, text):
    (err,) = errors_of(write(tmp_path, text))
    assert err.line == 1
    assert "empty" in err.message


@pytest.mark.parametrize("text,kind", [("- a\n- b\n", "a list"), ("just text\n", "a single text value"),
                                       ("42\n", "a single int value")])
def test_top_level_must_be_a_mapping(tmp_path, text, kind):
    (err,) = errors_of(write(tmp_path, text))
    assert err.line == 1
    assert "mapping" in err.message and kind in err.message


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    (err,) = errors_of(path)
    assert err.message == "file not found"
    assert str(ScenarioError(path, [err])) == f"{path}: file not found"


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(BASE.replace("Test scenario", "Test sc\xe9nario").encode("latin-1"))
    (err,) = errors_of(path)
    assert "UTF-8" in err.message
    assert err.line == line_of(BASE, "title:")


def test_python_tags_are_refused_and_never_run(tmp_path):
    marker = tmp_path / "EXECUTED"
    text = BASE.replace('title: "Test scenario"',
                        f'title: !!python/object/apply:os.system ["touch {marker}"]')
    (err,) = errors_of(write(tmp_path, text))
    assert not marker.exists()
    assert err.line == line_of(text, "title:")
    assert "not allowed" in err.message


def test_alias_bomb_is_refused_quickly(tmp_path):
    rows = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for prev, name in zip("abcdefg", "bcdefgh"):
        rows.append(f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]")
    (err,) = errors_of(write(tmp_path, "\n".join(rows) + "\n"))
    assert "anchors and aliases" in err.message


def test_all_errors_are_reported_in_line_order(tmp_path):
    text = BASE.replace("difficulty: 2", "difficulty: 7").replace("  length_mm: 150", "  length_mm: 0") \
        .replace("modality: fluoroscopy", "modality: xray")
    errors = errors_of(write(tmp_path, text))
    assert [e.field for e in errors] == ["difficulty", "modality", "needle.length_mm"]
    assert [e.line for e in errors] == sorted(e.line for e in errors)


def test_error_format_shows_the_value(tmp_path):
    path = write(tmp_path, BASE.replace("difficulty: 2", "difficulty: 7"))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    line = line_of(BASE, "difficulty: 2")
    assert str(info.value) == f"{path}:{line}: difficulty: must be less than or equal to 4 (got 7)"
    assert FieldError("procedure", 3, "required field is missing").value is NO_VALUE
    assert FieldError("x", None, "m", None).format("f.yaml") == "f.yaml: x: m (got null)"


def test_parse_text_names_the_given_file():
    with pytest.raises(ScenarioError) as info:
        parse_scenario_text(BASE.replace("difficulty: 2", "difficulty: 0"), "editor-buffer")
    assert str(info.value).startswith("editor-buffer:")


def test_user_anatomy_inside_the_anatomies_folder_is_accepted(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROLYSIS_DATA", str(tmp_path))
    scenario = load_scenario(write(tmp_path, BASE.replace("anatomy: bundled", "anatomy: user:hospital/patient_1")))
    assert scenario.user_anatomy_name == "hospital/patient_1"


def test_user_anatomy_symlink_out_of_the_data_folders_is_refused(tmp_path, monkeypatch):
    data = tmp_path / "data"
    (data / "anatomies").mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (data / "anatomies" / "sneaky").symlink_to(outside)
    monkeypatch.setenv("NEUROLYSIS_DATA", str(data))
    text = BASE.replace("anatomy: bundled", "anatomy: user:sneaky")
    errors = errors_of(write(tmp_path, text))
    assert errors[0].field == "anatomy" and "outside" in errors[0].message
    assert errors[0].line == line_of(text, "anatomy:")


# ---------------------------------------------------------------------------------------------
# the validate command


def _run_validate(*files) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PROJECT / "main.py"), "validate", *map(str, files)],
                          capture_output=True, text=True, cwd=PROJECT, timeout=120)


def test_validate_command_exit_codes(tmp_path):
    good = paths.SCENARIOS_DIR / "celiac_plexus_posterior.yaml"
    bad = write(tmp_path, BASE.replace("modality: fluoroscopy", "modality: xray"), "bad.yaml")
    ok = _run_validate(good)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == f"OK {good}"
    failed = _run_validate(good, bad)
    assert failed.returncode != 0
    out = failed.stdout.splitlines()
    assert out[0] == f"OK {good}"
    assert out[1] == f"{bad}:{line_of(BASE, 'modality:')}: modality: must be 'fluoroscopy', 'ultrasound' or 'both' (got 'xray')"
    missing = _run_validate(tmp_path / "missing.yaml")
    assert missing.returncode != 0
    assert "file not found" in missing.stdout


def test_validate_files_folder_and_counts(tmp_path):
    out = io.StringIO()
    assert validate_files([paths.SCENARIOS_DIR], out) == 0
    lines = out.getvalue().splitlines()
    assert sorted(Path(l.split(" ", 1)[1]).stem for l in lines) == sorted(LIBRARY + ("course_parameters",))  # and the course parameters
    assert all(l.startswith("OK ") for l in lines)
    out = io.StringIO()
    assert validate_files([], out) != 0
    out = io.StringIO()
    assert validate_files([tmp_path], out) != 0  # a folder without scenario files
    assert "no scenario files" in out.getvalue()


# ---------------------------------------------------------------------------------------------
# the JSON Schema


def test_schema_file_is_current():
    exported = json.loads((paths.SCENARIOS_DIR / SCHEMA_FILE_NAME).read_text(encoding="utf-8"))
    assert exported == json_schema(), "regenerate it: python main.py schema --out scenarios/scenario.schema.json"


def test_schema_describes_the_scenario():
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] and schema["title"]
    assert schema["additionalProperties"] is False
    assert {"id", "title", "procedure", "anatomy", "targets", "rubric", "instructions"} <= set(schema["required"])
    assert set(schema["properties"]["modality"]["$ref"].split("/")[-1:]) == {"Modality"}
    assert schema["$defs"]["Modality"]["enum"] == ["fluoroscopy", "ultrasound", "both"]


def test_schema_command_writes_the_same_schema(tmp_path):
    out = tmp_path / "schema.json"
    r = subprocess.run([sys.executable, str(PROJECT / "main.py"), "schema", "--out", str(out)],
                       capture_output=True, text=True, cwd=PROJECT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text()) == json_schema()


# ---------------------------------------------------------------------------------------------
# listing and finding scenarios


def test_list_scenarios_reports_broken_user_files(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROLYSIS_DATA", str(tmp_path))
    user = paths.user_scenarios_dir()
    user.mkdir(parents=True)
    write(user, BASE.replace("id: test_case", "id: my_exercise"), "my_exercise.yaml")
    broken_text = BASE.replace("id: test_case", "id: broken_one").replace("difficulty: 2", "difficulty: lots")
    write(user, broken_text, "broken_one.yaml")
    write(user, "title: [unclosed\n", "garbage.yaml")
    (user / "notes.txt").write_text("not a scenario")

    entries = list_scenarios()
    by_id = {e.id: e for e in entries}
    assert set(LIBRARY) <= set(by_id)
    for sid in LIBRARY:
        assert by_id[sid].error is None and by_id[sid].source == "library"
    assert by_id["my_exercise"].error is None and by_id["my_exercise"].source == "user"
    broken = by_id["broken_one"]
    assert broken.source == "user" and broken.title == "Test scenario" and broken.difficulty is None
    assert broken.error.startswith(f"{user / 'broken_one.yaml'}:{line_of(broken_text, 'difficulty:')}: difficulty:")
    garbage = by_id["garbage"]
    assert "YAML syntax error" in garbage.error and garbage.title == "garbage"
    assert len(entries) == len(LIBRARY) + 3  # notes.txt is not listed
    # the library comes first, easiest first
    library = [e for e in entries if e.source == "library"]
    assert [e.difficulty for e in library] == sorted(e.difficulty for e in library)
    assert entries.index(by_id["needle_basics_gel"]) < entries.index(by_id["my_exercise"])


def test_list_scenarios_without_user_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROLYSIS_DATA", str(tmp_path / "does-not-exist"))
    assert sorted(e.id for e in list_scenarios()) == sorted(LIBRARY)


def test_find_scenario(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROLYSIS_DATA", str(tmp_path))
    assert find_scenario("needle_basics_gel") == (paths.SCENARIOS_DIR / "needle_basics_gel.yaml").resolve()
    direct = write(tmp_path, BASE, "anywhere.yaml")
    assert find_scenario(str(direct)) == direct.resolve()
    assert find_scenario(direct) == direct.resolve()
    user = paths.user_scenarios_dir()
    user.mkdir(parents=True)
    write(user, BASE.replace("id: test_case", "id: renamed_inside"), "file_name.yaml")
    assert find_scenario("file_name") == (user / "file_name.yaml").resolve()
    assert find_scenario("renamed_inside") == (user / "file_name.yaml").resolve()
    with pytest.raises(ScenarioNotFoundError) as info:
        find_scenario("celiac_plexus_posterio")
    assert "Did you mean 'celiac_plexus_posterior'" in str(info.value)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ScenarioError)
    with pytest.raises(ScenarioNotFoundError):
        find_scenario(str(tmp_path / "missing.yaml"))


@pytest.mark.parametrize("depth", [5000, 100])
def test_deeply_nested_yaml_is_refused_with_the_file_named(tmp_path, depth):
    """A 5,000-deep [[[...]]] ends in a message naming the file, not in RecursionError."""
    from simulator.core.scenario import ScenarioError, load_scenario

    path = tmp_path / "deep.yaml"
    path.write_text("id: deep\ntargets: " + "[" * depth + "]" * depth + "\n")
    with pytest.raises(ScenarioError) as e:
        load_scenario(path)
    assert "deep.yaml" in str(e.value) and "levels deep" in str(e.value)


@pytest.mark.parametrize("name,stem", [("ann", "ann"), ("../../etc/passwd", "etc_passwd"), ("Dr. Müller / ICU", "Dr._M_ller_ICU"),
                                       ("", "records"), ("...", "records"), ("a\x00b", "a_b")])
def test_user_names_become_safe_file_names(name, stem):
    from simulator.core.paths import file_stem

    assert file_stem(name) == stem
