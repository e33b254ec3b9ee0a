"""ScenarioDocument: round-trip editing of scenario YAML with undo, validation as `validate` does it."""
from __future__ import annotations

import difflib
import io

import pytest

from simulator.core import paths
from simulator.core.scenario import ScenarioError, load_scenario, validate_files
from simulator.core.scenario_doc import ScenarioDocError, ScenarioDocument, field_name
from simulator.core.scenario_edits import add_critical_structure, add_target, set_planned_trajectory

LIBRARY = sorted(paths.SCENARIOS_DIR.glob("*.yaml"))
CELIAC = paths.SCENARIOS_DIR / "celiac_plexus_posterior.yaml"


def changed_lines(a: str, b: str) -> list[tuple[str, str]]:
    """(old line, new line) pairs of a line-by-line edit; raises if lines were added or removed."""
    sm = difflib.SequenceMatcher(None, a.splitlines(), b.splitlines(), autojunk=False)
    out = []
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            continue
        assert tag == "replace" and i2 - i1 == j2 - j1, (tag, a.splitlines()[i1:i2], b.splitlines()[j1:j2])
        out += list(zip(a.splitlines()[i1:i2], b.splitlines()[j1:j2]))
    return out


@pytest.fixture(scope="module")
def celiac_text() -> str:
    return CELIAC.read_text(encoding="utf-8")


@pytest.fixture
def doc(celiac_text) -> ScenarioDocument:
    return ScenarioDocument.from_text(celiac_text, str(CELIAC))


@pytest.mark.parametrize("path", LIBRARY, ids=[p.stem for p in LIBRARY])
def test_library_scenario_opens_unchanged_and_valid(path):
    d = ScenarioDocument.open(path)
    assert d.text() == path.read_text(encoding="utf-8")
    assert d.path == path and not d.dirty and not d.can_undo
    assert d.errors() == []
    assert d.scenario() == load_scenario(path)


OWN = [p for p in LIBRARY if "\nbased_on:" not in p.read_text(encoding="utf-8")]  # variants: below


@pytest.mark.parametrize("path", OWN, ids=[p.stem for p in OWN])
def test_setting_a_field_changes_only_its_line(path):
    d = ScenarioDocument.open(path)
    before = d.text()
    d.set(("targets", 0, "tolerance_mm"), 1.5)
    (old, new), = changed_lines(before, d.text())
    assert old.strip().startswith("tolerance_mm:") and new.split("#")[0].strip() == "tolerance_mm: 1.5"
    if "#" in old:  # the comment at the end of that line is kept
        assert old[old.index("#"):] == new[new.index("#"):]
    assert d.get(("targets", 0, "tolerance_mm")) == 1.5
    assert d.scenario().targets[0].tolerance_mm == 1.5


def test_a_variant_shows_its_base_and_an_edit_makes_the_field_its_own():
    path = paths.SCENARIOS_DIR / "splanchnic_t11_t12_aneurysm.yaml"
    base = load_scenario(paths.SCENARIOS_DIR / "splanchnic_t11_t12.yaml")
    d = ScenarioDocument.open(path)
    assert d.get(("targets", 0, "tolerance_mm")) == base.targets[0].tolerance_mm  # read from the base
    assert "\ntargets:" not in d.text()
    d.set(("targets", 0, "tolerance_mm"), 3.5)
    assert "\ntargets:" in d.text() and d.errors() == []
    sc = d.scenario()
    assert sc.targets[0].tolerance_mm == 3.5 and sc.targets[1] == base.targets[1]  # the base's list, now its own
    assert sc.vignette.contraindications[0].kind == "aortic_aneurysm"
    d.undo()
    assert "\ntargets:" not in d.text()


def test_set_keeps_comments_quotes_and_flow_lists(doc, celiac_text):
    doc.set(("needle", "gauge"), 20)
    doc.set(("title",), "Celiac plexus, edited")
    doc.set(("imaging", "fluoroscopy", "isocenter_mm"), [-31.04, -4.06, -275.0])
    pairs = changed_lines(celiac_text, doc.text())
    assert pairs == [
        ('title: "Celiac plexus neurolysis, bilateral posterior approach (fluoroscopy)"',
         'title: "Celiac plexus, edited"'),
        ("  gauge: 22                      # 20-22 G, 15 cm, with a stylet [ref 2]",
         "  gauge: 20                      # 20-22 G, 15 cm, with a stylet [ref 2]"),
        ("    isocenter_mm: [-30.0, -4.0, -275.0]   # in front of the aorta, between the two targets",
         "    isocenter_mm: [-31.0, -4.1, -275.0]   # in front of the aorta, between the two targets"),
    ]


def test_adding_and_removing_keeps_comments_and_blank_lines_in_place(doc, celiac_text):
    add_target(doc, id="extra", name="Extra", points_mm=[1, 2, 3])
    assert "    proposal: celiac_plexus_right\n  - id: extra\n" in doc.text()
    assert "    side: midline\n\ncritical_structures:\n" in doc.text()
    doc.undo()
    doc.remove(("targets",), 1)
    assert "    proposal: celiac_plexus_left\n\ncritical_structures:\n" in doc.text()
    doc.undo()
    doc.set(("additional_trajectories",), [])
    assert "#   liver/duodenum 12 mm; IVC 5 mm and aorta 8 mm only at the tip.\nadditional_trajectories: []\n\ntargets:\n" in doc.text()
    doc.undo()
    doc.unset(("planned_trajectory", "target_id"))
    assert "  target_mm: [-43.0, -4.0, -275.0]\n\n# Right needle:" in doc.text()
    doc.undo()
    doc.move(("targets",), 1, 0)  # the moved target keeps its comment lines and quotes
    moved = doc.text()
    assert moved.index("  - id: celiac_plexus_right") < moved.index("  - id: celiac_plexus_left")
    assert '    name: "Celiac plexus, right (between the aorta and the IVC)"\n    kind: point\n    # right anterolateral' in moved
    assert "    proposal: celiac_plexus_left\n\ncritical_structures:\n" in moved
    assert doc.undo_label == "Move targets[1]"
    doc.undo()
    assert doc.text() == celiac_text


def test_a_null_becomes_a_mapping_under_its_comment_and_back():
    gel = ScenarioDocument.open(paths.SCENARIOS_DIR / "needle_basics_gel.yaml")
    gel.set(("steps", "contrast"), {"min_ml": 1, "max_ml": 2})
    assert ("  contrast:                     # ultrasound only\n    min_ml: 1\n    max_ml: 2\n"
            "  # The only injection:") in gel.text()
    celiac = ScenarioDocument.open(CELIAC)
    celiac.set(("steps", "contrast"), None)
    assert "  contrast: null                   # per needle, checked in AP and lateral" in celiac.text()
    assert celiac.get(("steps", "contrast"), "absent") is None
    assert [e.field for e in celiac.errors()] == ["rubric.automatic_fails[5]"]  # agent_without_contrast needs it


def test_coordinates_are_rounded_to_a_tenth_of_a_mm_in_flow_lists(doc):
    import numpy as np

    doc.set(("targets", 1, "points_mm"), np.array([[-16.04, 1.06, -274.96]]))
    doc.set(("skin_entry_zone",), {"center_mm": (1, 2, 3), "radius_mm": 12})
    text = doc.text()
    assert "    points_mm: [[-16.0, 1.1, -275.0]]\n" in text
    assert "  center_mm: [1.0, 2.0, 3.0]\n  radius_mm: 12\n" in text
    doc.set(("targets", 0, "kind"), "polyline")
    doc.set(("targets", 0, "points_mm"), [[1, 2, 3], [4, 5, 6], [7.77, 8, 9]])
    assert "    points_mm:\n      - [1.0, 2.0, 3.0]\n      - [4.0, 5.0, 6.0]\n      - [7.8, 8.0, 9.0]\n" in doc.text()
    assert doc.errors() == []


def test_numbers_are_written_so_that_validate_reads_numbers(doc):
    doc.set(("rubric", "items", 5, "good"), 1e-5)  # PyYAML reads "1e-05" as text: written 1.0e-05
    doc.set(("rubric", "items", 5, "bad"), 0.1 + 0.2)
    assert "      good: 1.0e-05\n      bad: 0.3\n" in doc.text()
    assert doc.errors() == []
    assert doc.scenario().rubric.items[5].good == 1e-5
    assert doc.get(("rubric", "items", 5, "bad")) == 0.3


def test_undo_restores_the_exact_text_and_redo_reapplies(doc, celiac_text):
    doc.set(("targets", 0, "tolerance_mm"), 3)
    after_first = doc.text()
    doc.remove(("critical_structures",), 1)
    doc.insert(("rubric", "automatic_fails"), -1, "target_not_reached")
    assert doc.get(("critical_structures", 1, "structure")) == "spinal_canal"
    assert doc.get(("rubric", "automatic_fails"))[-1] == "target_not_reached"
    after_all = doc.text()
    assert doc.undo_label == "Add to rubric.automatic_fails"
    assert doc.undo() and doc.undo()
    assert doc.text() == after_first
    assert doc.undo()
    assert doc.text() == celiac_text and not doc.dirty and not doc.can_undo
    assert doc.undo() is False
    assert doc.redo() and doc.redo() and doc.redo()
    assert doc.text() == after_all and doc.dirty and not doc.can_redo
    assert doc.get(("critical_structures", 1, "structure")) == "spinal_canal"
    doc.undo()
    doc.set(("difficulty",), 3)  # a new edit clears the redo history
    assert not doc.can_redo


def test_batch_is_one_undo_step_and_notifies_once(doc, celiac_text):
    seen = []
    doc.subscribe(seen.append)
    with doc.batch("Move the left target"):
        doc.set(("targets", 0, "points_mm"), [[-44.0, -4.0, -276.0]])
        doc.set(("planned_trajectory", "target_mm"), [-44.0, -4.0, -276.0])
        assert doc.get(("targets", 0, "points_mm")) == [[-44.0, -4.0, -276.0]]  # visible inside the batch
    assert seen == [[("targets", 0, "points_mm"), ("planned_trajectory", "target_mm")]]
    assert doc.undo_label == "Move the left target"
    assert doc.undo()
    assert doc.text() == celiac_text and not doc.can_undo
    assert seen[-1] == [("targets", 0, "points_mm"), ("planned_trajectory", "target_mm")]
    doc.redo()
    assert doc.get(("planned_trajectory", "target_mm")) == [-44.0, -4.0, -276.0]


def test_edits_with_one_merge_key_are_one_undo_step(doc, celiac_text):
    """Typing "Celiac" into the title, one keystroke per edit, with the field's merge key: one
    undo step back to the template's title; another key, end_merge() or an undo start a new step."""
    title0 = doc.get(("title",))
    key = ("title_field", 1)
    for n in range(1, 7):
        doc.set(("title",), "Celiac"[:n], label="Edit title", merge_key=key)
    assert doc.get(("title",)) == "Celiac" and doc.undo_label == "Edit title"
    assert doc.undo() and doc.text() == celiac_text and not doc.can_undo
    assert doc.redo() and doc.get(("title",)) == "Celiac"
    doc.set(("title",), "Celiac 2", merge_key=key)  # after a redo: a step of its own
    assert doc.undo() and doc.get(("title",)) == "Celiac"
    # another field's key between: separate steps
    d0 = doc.get(("difficulty",))
    doc.set(("difficulty",), d0 % 5 + 1, merge_key=("difficulty_field", 1))
    doc.set(("title",), "Celiac 3", merge_key=("title_field", 2))
    doc.set(("title",), "Celiac 33", merge_key=("title_field", 2))
    doc.end_merge()
    doc.set(("title",), "Celiac 333", merge_key=("title_field", 2))
    assert doc.undo() and doc.get(("title",)) == "Celiac 33"
    assert doc.undo() and doc.get(("title",)) == "Celiac"
    assert doc.undo() and doc.get(("difficulty",)) == d0
    # typing back to where the step started leaves no step; unset joins the same step
    doc.set(("title",), "x", merge_key=key)
    doc.set(("title",), "Celiac", merge_key=key)
    assert doc.undo_label != "Set title" and doc.get(("title",)) == "Celiac"
    doc.set(("notes",), "n", merge_key=("notes", 1))
    doc.unset(("notes",), merge_key=("notes", 1))
    assert not doc.has(("notes",)) and doc.undo_label != "Set notes"
    assert doc.undo() and doc.get(("title",)) == title0 and not doc.can_undo


def test_a_failing_batch_leaves_the_text_unchanged(doc, celiac_text):
    with pytest.raises(ScenarioDocError):
        with doc.batch("bad"):
            doc.set(("difficulty",), 2)
            doc.set(("targets", 7, "id"), "x")  # there is no target 7
    assert doc.text() == celiac_text and not doc.can_undo
    assert doc.get(("difficulty",)) == 4


def _validate_output(tmp_path, text: str) -> list[str]:
    """What `main.py validate` prints for `text` saved as tmp_path/edited.yaml."""
    f = tmp_path / "edited.yaml"
    f.write_text(text, encoding="utf-8")
    out = io.StringIO()
    assert validate_files([f], out) == 1
    return out.getvalue().splitlines()


@pytest.mark.parametrize("edit, field", [
    (lambda d: d.set(("targets", 0, "tolerance_mm"), -2), "targets[0].tolerance_mm"),
    (lambda d: d.set(("critical_structures", 0, "structure"), "Aorta!"), "critical_structures[0].structure"),
    (lambda d: d.unset(("targets",)), "targets"),
    (lambda d: d.set(("targets", 1, "id"), "celiac_plexus_left"), "targets[1].id"),
    (lambda d: d.unset(("targets", 0, "points_mm")) or d.unset(("targets", 0, "proposal")), "targets[0].points_mm"),
    (lambda d: d.set(("rubric", "items", 0, "bad"), 2), "rubric.items[0].bad"),
])
def test_errors_are_what_validate_reports(tmp_path, celiac_text, edit, field):
    f = tmp_path / "edited.yaml"
    d = ScenarioDocument.from_text(celiac_text, str(f))
    edit(d)
    lines = _validate_output(tmp_path, d.text())
    errs = d.errors()
    assert errs and field in [e.field for e in errs]
    assert [e.format(f) for e in errs] == lines == d.formatted_errors()
    assert d.scenario() is None
    top = field.split(".")[0].split("[")[0]  # the top-level field holding the error
    assert d.errors_at((top,)) and all(e.field.startswith(top) for e in d.errors_at((top,)))
    assert d.errors_at(("references",)) == []


def test_errors_at_selects_the_field_and_below(doc):
    doc.set(("targets", 1, "tolerance_mm"), 0)
    doc.set(("rubric", "pass_mark"), 140)
    assert [e.field for e in doc.errors_at(("targets", 1))] == ["targets[1].tolerance_mm"]
    assert [e.field for e in doc.errors_at(("targets", 1, "tolerance_mm"))] == ["targets[1].tolerance_mm"]
    assert doc.errors_at(("targets", 0)) == []
    assert [e.field for e in doc.errors_at(("rubric",))] == ["rubric.pass_mark"]
    assert len(doc.errors_at(())) == 2
    assert field_name(("targets", 1, "points_mm")) == "targets[1].points_mm"


def test_save_refuses_an_invalid_document_and_writes_a_valid_one(tmp_path, doc):
    doc.set(("targets", 0, "tolerance_mm"), -1)
    target = tmp_path / "out" / "celiac_copy.yaml"
    with pytest.raises(ScenarioError) as e:
        doc.save(target)
    assert [x.field for x in e.value.errors] == ["targets[0].tolerance_mm"]
    assert not target.exists()
    doc.undo()
    doc.set(("id",), "celiac_copy")
    doc.set(("targets", 0, "tolerance_mm"), 4)
    assert doc.dirty
    saved = doc.save(target)
    assert saved == target and doc.path == target and not doc.dirty
    assert target.read_text(encoding="utf-8") == doc.text()
    assert load_scenario(target) == doc.scenario()
    assert [p.name for p in target.parent.iterdir()] == ["celiac_copy.yaml"]  # no temporary left
    doc.undo()
    assert doc.dirty
    doc.redo()
    assert not doc.dirty


def test_new_scenario_on_the_templates_anatomy_keeps_its_points():
    d = ScenarioDocument.new(scenario_id="my_celiac", title="My celiac exercise")
    assert d.path is None and d.dirty and not d.can_undo
    assert d.errors() == []
    sc = d.scenario()
    assert (sc.id, sc.title, sc.anatomy) == ("my_celiac", "My celiac exercise", "bundled")
    assert [t.points_mm for t in sc.targets] == [t.points_mm for t in load_scenario(CELIAC).targets]
    assert sc.planned_trajectory is not None and sc.skin_entry_zone is not None
    assert d.text().startswith("# yaml-language-server: $schema=scenario.schema.json\n")
    assert "# My celiac exercise" in d.text() and "Bilateral posterior celiac plexus" not in d.text()[:300]


def test_new_scenario_on_another_anatomy_lists_what_to_fill():
    d = ScenarioDocument.new(scenario_id="gel_try", title="Gel try", anatomy="phantom:gel_block")
    assert d.get(("anatomy",)) == "phantom:gel_block"
    assert d.get(("targets",)) == []
    for key in ("planned_trajectory", "additional_trajectories", "skin_entry_zone"):
        assert not d.has((key,))
    assert not d.has(("imaging", "fluoroscopy", "isocenter_mm"))
    assert [e.field for e in d.errors()] == ["targets"]
    assert d.scenario() is None
    # filling the target makes it valid
    add_target(d, id="nerve", name="Nerve", kind="polyline", points_mm=[[7, -20, -35], [7, -20, 35]], radius_mm=2.5)
    assert d.errors() == []


def test_new_scenario_on_a_user_patient_keeps_proposals_without_points():
    d = ScenarioDocument.new(scenario_id="celiac_p1", title="Celiac on patient 1", anatomy="user:patient_1")
    targets = d.get(("targets",))
    assert [t["proposal"] for t in targets] == ["celiac_plexus_left", "celiac_plexus_right"]
    assert all("points_mm" not in t for t in targets)
    assert d.errors() == []


def test_a_file_that_is_not_yaml_opens_and_can_be_fixed_as_text(tmp_path, celiac_text):
    broken = celiac_text.replace("difficulty: 4", "difficulty: [4", 1)
    f = tmp_path / "edited.yaml"
    f.write_text(broken, encoding="utf-8")
    d = ScenarioDocument.open(f)
    assert d.text() == broken
    assert d.formatted_errors() == _validate_output(tmp_path, broken)
    assert "YAML syntax error" in d.errors()[0].message
    assert d.yaml_error is not None
    with pytest.raises(ScenarioDocError):
        d.set(("difficulty",), 3)
    d.set_text(celiac_text)
    assert d.errors() == [] and d.yaml_error is None
    d.set(("difficulty",), 3)
    assert d.get(("difficulty",)) == 3
    d.undo()
    d.undo()
    assert d.text() == broken


def test_subscribers_hear_every_change_undo_and_redo(doc):
    seen = []
    doc.subscribe(seen.append)
    doc.set(("rubric", "pass_mark"), 75)
    doc.set(("rubric", "pass_mark"), 75)  # no change: no step, no notice
    doc.insert(("references",), 0, {"id": "new", "citation": "A new reference."})
    doc.undo()
    doc.redo()
    assert seen == [[("rubric", "pass_mark")], [("references",)], [("references",)], [("references",)]]
    assert doc.get(("references", 0)) == {"id": "new", "citation": "A new reference."}
    doc.unsubscribe(seen.append)
    doc.undo()
    assert len(seen) == 4


def test_helpers_add_targets_trajectories_and_critical_structures(doc):
    i = add_target(doc, id="extra", name="Extra point", points_mm=[-40.04, -5.0, -270.06], tolerance_mm=4)
    assert i == 2
    assert doc.get(("targets", 2)) == {"id": "extra", "name": "Extra point", "kind": "point",
                                       "points_mm": [[-40.0, -5.0, -270.1]], "tolerance_mm": 4, "side": "midline"}
    set_planned_trajectory(doc, (-90.04, -110.0, -300.0), (-40.0, -5.0, -270.1), target_id="extra")
    assert doc.get(("planned_trajectory",)) == {"entry_mm": [-90.0, -110.0, -300.0],
                                                "target_mm": [-40.0, -5.0, -270.1], "target_id": "extra"}
    assert doc.undo_label == "Set the planned trajectory"
    j = add_critical_structure(doc, structure="rib_left_12", severity="minor", message="Rib contact.")
    assert doc.get(("critical_structures", j)) == {"structure": "rib_left_12", "severity": "minor",
                                                   "message": "Rib contact."}
    assert doc.errors() == []
    sc = doc.scenario()
    assert sc.trajectory_for("extra").entry_mm == (-90.0, -110.0, -300.0)


def test_new_keys_go_where_the_schema_puts_them():
    d = ScenarioDocument.new(scenario_id="gel_try", title="Gel try", anatomy="phantom:gel_block")
    set_planned_trajectory(d, (0, 0, 0), (10, -20, 0))
    keys = list(d.get(()).keys())
    assert keys.index("imaging") < keys.index("planned_trajectory") < keys.index("targets")
    d.set(("skin_entry_zone",), {"center_mm": [0, 0, 0], "radius_mm": 8})
    keys = list(d.get(()).keys())
    assert keys.index("imaging") < keys.index("skin_entry_zone") < keys.index("planned_trajectory")


# ---------------------------------------------------------------------------------------------
# targets from the label-based proposals of the built bundled patient


# `bundled`: the built bundled patient (tests/core/conftest.py)


@pytest.mark.parametrize("name", ["celiac_plexus_left", "splanchnic_right", "intercostal_left_10"])
def test_target_from_a_proposal_has_the_proposals_points_rounded(bundled, doc, name):
    import numpy as np

    from simulator.core.proposals import propose
    from simulator.core.scenario_edits import target_from_proposal

    p = propose(bundled, name)
    i = target_from_proposal(doc, bundled, name)
    t = doc.get(("targets", i))
    assert t["proposal"] == name and t["kind"] == p.kind and t["side"] == p.side
    assert t["id"] == (name if name != "celiac_plexus_left" else "celiac_plexus_left_2")  # ids stay unique
    assert t["points_mm"] == np.round(p.points_mm, 1).tolist()
    assert np.abs(np.asarray(t["points_mm"]) - p.points_mm).max() <= 0.05 + 1e-9
    if p.kind == "polyline":
        assert t["radius_mm"] == p.radius_mm
    assert doc.undo_label == f"Add target {t['id']}"
    assert doc.errors() == []
    sc = doc.scenario()
    assert [tuple(x) for x in sc.targets[i].points_mm] == [tuple(x) for x in t["points_mm"]]


def test_target_from_an_unsupported_proposal_names_the_ones_there_are(bundled, doc, celiac_text):
    from simulator.core.scenario_edits import target_from_proposal

    with pytest.raises(ScenarioDocError, match="celiac_plexus_left"):
        target_from_proposal(doc, bundled, "stellate_left")
    assert doc.text() == celiac_text


@pytest.mark.parametrize("word", ["no", "on", "off", "yes", "No", "OFF", "y"])
def test_words_yaml_1_1_reads_as_booleans_come_back_as_text(doc, tmp_path, word):
    """The editor writes YAML 1.2, where `no`, `on` and `off` are plain text (a target named "on"
    is written `name: on`); the scenario reader must read the same YAML, not YAML 1.1 where they
    are booleans."""
    from simulator.core.scenario import load_scenario
    from simulator.core.scenario_edits import add_target

    add_target(doc, id="word", name=word, kind="point", points_mm=[[0.0, 0.0, 0.0]])
    assert f"name: {word}\n" in doc.text()  # written plain
    path = doc.save(tmp_path / "words.yaml")
    assert load_scenario(path).targets[-1].name == word
