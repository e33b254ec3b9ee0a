"""The editor as an instructor found it (R1's session), on the gel phantom: what went wrong and
stays right now.

- A click on a mark already drawn on a slice (a target's dot, the entry) is a click on the slice:
  the tip set exactly on the nerve's dot lands there (pyqtgraph's scatter used to swallow it).
- Moving the mouse over the slices writes what lies under it without resizing the views (the
  image used to shift under the mouse, so a click landed millimetres away).
- The plan banner over the slices names at most two problems and counts the rest.
- Alternative neurolytic agents (steps.neurolytic_options) have a form: add, type, choose, delete.
- Typing into a field is one undo step per visit (ScenarioDocument's merge_key).
- A new scenario on an imported patient chosen in the dialog (user:NAME).

Known geometry (needle_basics_gel.yaml, simulator.anatomy.phantoms): gel x in [-40, 40],
y in [-50, 0] (surface y = 0), z in [-40, 40]; artery along z through (x -8, y -20), r 4; nerve
along z through (x 7, y -20), r 2.5.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QDialogButtonBox, QPushButton

from simulator.ui.driver import WindowDriver, process, wait_until
from simulator.ui.editor import EditorMode
from tests.ui.editor.helpers import CTRL, SHIFT, click_slice, close_window, editor_of, field_of, open_gel_window, retype, tab

NERVE = np.array([7.0, -20.0, 0.0])


@pytest.fixture(scope="module")
def win(qapp, tmp_path_factory):
    w, mp = open_gel_window(tmp_path_factory, "editor_instructor")
    yield w
    close_window(w, mp)


@pytest.fixture(scope="module")
def editor(win) -> EditorMode:
    ed = editor_of(win)
    WindowDriver(win).key(Qt.Key.Key_E, CTRL | SHIFT)  # Scenario editor > Edit current scenario
    assert ed.active and ed.doc.path.name == "needle_basics_gel.yaml"
    win.answers = {"editor_unsaved": "discard"}
    return ed


def test_a_click_on_a_drawn_mark_is_a_click_on_the_slice(win, editor):
    ed, doc = editor, editor.doc
    tab(ed, "Plan")
    ed.slices.set_cursor(NERVE)
    ed._draw_slices()
    ax = ed.slices.views["axial"]
    # the nerve's crossing is drawn as a dot exactly where the instructor clicks
    assert any(np.allclose(s["pos"], NERVE[:2], atol=0.01) for s in ax._spots)
    QTest.mouseClick(ed.plan_panel.target_button, Qt.MouseButton.LeftButton)
    assert ed.mode == "target"
    click_slice(ed, "axial", NERVE)
    assert np.allclose(doc.get(("planned_trajectory", "target_mm")), NERVE, atol=0.5) and ed.mode == ""
    # the entry clicked on its own mark (the entry zone's centre) takes too
    entry = np.array(doc.get(("planned_trajectory", "entry_mm")), float)
    ed.slices.set_cursor(entry)
    ed._draw_slices()
    QTest.mouseClick(ed.plan_panel.entry_button, Qt.MouseButton.LeftButton)
    moved = entry + [1.0, 0.0, 0.0]
    click_slice(ed, "axial", moved)
    assert np.allclose(doc.get(("planned_trajectory", "entry_mm")), moved, atol=0.5)
    doc.undo()
    doc.undo()
    assert not doc.dirty


def _shows(text: str, p) -> bool:
    m = re.match(r"R (-?[\d.]+)  A (-?[\d.]+)  S (-?[\d.]+) mm", text)
    return m is not None and np.allclose([float(x) for x in m.groups()][:2], p[:2], atol=0.5)


def test_hovering_writes_the_structure_without_moving_the_views(win, editor):
    ed = editor
    ax = ed.slices.views["axial"]
    geom = {n: v.geometry() for n, v in ed.slices.views.items()}
    sizes = win.central_splitter.sizes()
    ed.slices.status.setText("")
    process(0)
    seen = []
    for p in ([-8.0, -20.0, 0.0], [7.0, -20.0, 0.0], [39.0, -49.0, 0.0], [-30.0, 3.0, 0.0]):
        QTest.mouseMove(ax.viewport(), ax.widget_point(p))
        wait_until(lambda: _shows(ed.slices.status.text(), p), 5, f"the point under the mouse {p}")
        seen.append(ed.slices.status.text())
        process(0)
        assert {n: v.geometry() for n, v in ed.slices.views.items()} == geom
        assert win.central_splitter.sizes() == sizes
    assert "[artery" in seen[0] and "[air, -1000 HU]" in seen[3] and "-0.0" not in seen[3]


def test_the_banner_names_two_problems_and_counts_the_rest(win, editor):
    """Entry 20 mm above the gel, through the artery, tip 12 mm beside the nerve: three problems."""
    ed, doc = editor, editor.doc
    doc.set(("planned_trajectory", "entry_mm"), [-8.0, 20.0, 0.0])
    doc.set(("planned_trajectory", "target_mm"), [-8.0, -30.0, 0.0])
    kinds = {p.kind for p in ed.plan_problems}
    assert {"entry_off_skin", "critical", "misses_target"} <= kinds and len(ed.plan_problems) >= 3
    b = ed.slices.banner
    assert b.isVisibleTo(ed.slices)
    text = b.text()
    assert text.count("\u2022") == 2 and f"and {len(ed.plan_problems) - 2} more (Plan tab)" in text
    # the needles named as on the Plan tab, not by the file's field names
    assert all(p.message.startswith("planned_trajectory: ") for p in ed.plan_problems)
    assert text.startswith("\u26a0 Plan check: Needle 1: ") and "planned_trajectory" not in text
    assert all(p.message.replace("planned_trajectory: ", "Needle 1: ") in b.toolTip() for p in ed.plan_problems)
    assert ed.plan_panel.problems.item(0).text().startswith("Needle 1: ")
    assert ed.plan_panel.problems.count() == len(ed.plan_problems)
    doc.undo()
    doc.undo()
    assert not doc.dirty and not b.isVisibleTo(ed.slices)


def test_alternative_neurolytic_agents_have_a_form(win, editor):
    ed, doc = editor, editor.doc
    tab(ed, "Steps")
    opts = ed.steps_panel.options
    process(0)
    assert not opts.add.isEnabled() and "neurolytic agent first" in opts.add.toolTip()  # the gel has none
    # the neurolytic section ticked: alcohol by default; then an alternative, phenol at its usual strength
    section = next(s for s in ed.steps_panel.sections if s.path == ("steps", "neurolytic"))
    section.setChecked(True)
    assert doc.get(("steps", "neurolytic", "agent")) == "alcohol" and opts.add.isEnabled()
    QTest.mouseClick(opts.add, Qt.MouseButton.LeftButton)
    assert doc.get(("steps", "neurolytic_options")) == [
        {"agent": "phenol", "concentrations_pct": [6, 10], "volume_ml": {"min_ml": 5, "max_ml": 15}}]
    assert opts.list.count() == 1 and opts.list.item(0).text().startswith("phenol 6, 10 %")
    # typed as the instructor would: concentrations, a wrong volume with the validator's message
    path = ("steps", "neurolytic_options", 0)
    retype(ed, field_of(ed, path + ("concentrations_pct",)).widget, "5, 7")
    assert doc.get(path + ("concentrations_pct",)) == [5, 7]
    retype(ed, field_of(ed, path + ("volume_ml", "max_ml")).widget, "2")
    errs = [e for e in doc.formatted_errors() if "neurolytic_options[0].volume_ml" in e]
    assert errs and "min_ml 5.0 is above max_ml 2.0" in errs[0]
    assert "is above max_ml" in field_of(ed, path + ("volume_ml", "min_ml")).error.text()
    assert opts.list.item(0).foreground().color() == Qt.GlobalColor.red
    retype(ed, field_of(ed, path + ("volume_ml", "max_ml")).widget, "12")
    assert not [e for e in doc.formatted_errors() if "neurolytic_options" in e]
    # another agent chosen with the keyboard in its list
    combo = field_of(ed, path + ("agent",)).widget
    combo.setFocus()
    QTest.keyClick(combo, Qt.Key.Key_Down)
    QTest.keyClick(combo, Qt.Key.Key_Down)  # phenol -> alcohol -> glycerol
    assert doc.get(path + ("agent",)) == combo.currentData() == "glycerol"
    # a second alternative is an agent not offered yet; deleting both removes the key
    QTest.mouseClick(opts.add, Qt.MouseButton.LeftButton)
    agents = [o["agent"] for o in doc.get(("steps", "neurolytic_options"))]
    assert agents == ["glycerol", "phenol"] and opts.index == 1
    QTest.mouseClick(opts.delete_button, Qt.MouseButton.LeftButton)
    QTest.mouseClick(opts.delete_button, Qt.MouseButton.LeftButton)
    assert not doc.has(("steps", "neurolytic_options")) and opts.list.count() == 0
    assert doc.undo_label.startswith("Delete the alternative agent")
    assert doc.errors() == []
    while doc.dirty and doc.can_undo:
        doc.undo()
    assert not doc.dirty


def test_typing_into_a_field_is_one_undo_step(win, editor):
    ed, doc = editor, editor.doc
    tab(ed, "Scenario")
    title = field_of(ed, ("title",)).widget
    old = doc.get(("title",))
    title.setFocus()
    QTest.keyClick(title, Qt.Key.Key_End)
    for ch in " (copy)":  # a pause after each keystroke: each reaches the document on its own
        QTest.keyClick(title, ch)
        wait_until(lambda: not ed.binder.pending, 5, "the keystroke to reach the document")
    assert doc.get(("title",)) == old + " (copy)"
    d = WindowDriver(win)
    d.key(Qt.Key.Key_Z, CTRL)  # one undo: the whole visit (the document is back to the file)
    assert doc.get(("title",)) == old and not doc.dirty
    assert title.text() == old
    d.key(Qt.Key.Key_Z, CTRL | SHIFT)
    assert doc.get(("title",)) == old + " (copy)"
    doc.undo()


def test_a_new_scenario_on_an_imported_patient(win, editor, tmp_path):
    """An anatomy imported under the data folder (here the gel phantom saved as user:gel_copy) is
    offered in the dialog; the new scenario opens on it, the template's targets to place again."""
    from simulator.anatomy.phantoms import make_phantom
    from simulator.core.paths import anatomies_dir

    ed = editor
    make_phantom("gel_block").save(anatomies_dir() / "gel_copy")
    d = WindowDriver(win)
    d.key(Qt.Key.Key_N, CTRL | SHIFT)
    dlg = ed.new_dialog
    refs = [dlg.anatomy.itemData(i) for i in range(dlg.anatomy.count())]
    assert refs[:3] == ["bundled", "phantom:gel_block", "phantom:layered_block"] and "user:gel_copy" in refs
    assert dlg.anatomy.itemText(refs.index("user:gel_copy")) == "imported: gel_copy"
    assert dlg.choose(dlg.template, "needle_basics_gel")
    dlg.anatomy.setFocus()
    while dlg.anatomy.currentData() != "user:gel_copy":
        QTest.keyClick(dlg.anatomy, Qt.Key.Key_Down)
    QTest.keyClicks(dlg.scenario_id, "gel_on_import")
    QTest.keyClicks(dlg.title, "Gel on the imported copy")
    QTest.mouseClick(dlg.buttons.button(QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)
    wait_until(lambda: ed.anatomy_ref == "user:gel_copy", 30, "the imported anatomy")
    doc = ed.doc
    assert doc.get(("anatomy",)) == "user:gel_copy" and doc.path is None
    assert ed.slices.views["axial"].anatomy is ed.anatomy and ed.anatomy.shape == win.anatomy.shape
    assert ed.slices.hint.text().startswith("Click a slice")  # not "Loading ..."
    assert doc.get(("targets",)) == [] and any("targets" in e for e in doc.formatted_errors())
    assert ed.error_list.count() == len(doc.errors())
    # a target by a click on the imported copy: where it was clicked
    tab(ed, "Targets")
    QTest.mouseClick(ed.targets_panel.add_point, Qt.MouseButton.LeftButton)
    ed.slices.set_cursor(NERVE)
    click_slice(ed, "axial", NERVE + [3.5, 0.0, 0.0])
    assert np.allclose(doc.get(("targets", 0, "points_mm")), [NERVE + [3.5, 0.0, 0.0]], atol=0.5)


def test_the_ultrasound_probe_is_placed_by_a_click_and_turned(win, editor):
    """Imaging tab: "Place the probe", a click on the gel's surface at x -5: the probe sits there,
    looking at the planned tip (10, -20, 0): depth axis (0.6, -0.8, 0); the old marker (+x) kept
    perpendicular: (0.8, 0.6, 0), a transverse view. Turned 90 degrees: marker to the head."""
    ed, doc = editor, editor.doc
    if doc.path is None or doc.path.name != "needle_basics_gel.yaml":
        assert ed.open_file(win.scenario_path)
        doc = ed.doc
    tab(ed, "Imaging")
    u = ("imaging", "ultrasound")
    ip = ed.imaging_panel
    assert "transverse, marker towards the patient's right" in ip.probe_label.text()
    ed.slices.set_cursor([0.0, -20.0, 0.0])
    QTest.mouseClick(ip.probe_button, Qt.MouseButton.LeftButton)
    assert ed.mode == "probe" and ip.probe_button.isChecked()
    click_slice(ed, "axial", [-5.0, 0.0, 0.0])
    c = np.array(doc.get(u + ("center_mm",)))
    assert np.allclose(c, [-5.0, 0.0, 0.0], atol=0.5) and ed.mode == "" and not ip.probe_button.isChecked()
    d = np.array(doc.get(u + ("direction",)))
    aim = np.array([10.0, -20.0, 0.0])
    assert np.allclose(d, (aim - c) / np.linalg.norm(aim - c), atol=0.005), (d, c, doc.get(("planned_trajectory",)))
    assert np.allclose(doc.get(u + ("marker",)), [0.8, 0.6, 0.0], atol=0.02)
    assert doc.get(u + ("depth_mm",)) == 40 and doc.undo_label == "Place the ultrasound probe"
    assert "transverse, marker towards the patient's right" in ip.probe_label.text()
    # drawn on the axial slice: the 38 mm face from c - 19 m to c + 19 m (orange)
    from simulator.ui.editor.slices import PROBE_COLOUR

    us_, vs_ = next(v for k, v in ed.slices.views["axial"]._curves_data.items() if k[0] == PROBE_COLOUR and k[1] == 4)
    m = np.array([0.8, 0.6])
    assert np.allclose([us_[0], vs_[0]], c[:2] - 19 * m, atol=0.3) and np.allclose([us_[1], vs_[1]], c[:2] + 19 * m, atol=0.3)
    QTest.mouseClick(ip.turn_button, Qt.MouseButton.LeftButton)
    assert np.allclose(doc.get(u + ("marker",)), [0.0, 0.0, 1.0], atol=0.02)
    assert "long axis (sagittal), marker towards the head" in ip.probe_label.text()
    assert doc.errors() == []
    # deeper than the image: the depth grows to show the point the probe looks at
    doc.set(u + ("depth_mm",), 20)
    QTest.mouseClick(ip.probe_button, Qt.MouseButton.LeftButton)
    click_slice(ed, "axial", [-5.0, 0.0, 0.0])
    assert doc.get(u + ("depth_mm",)) == 40
    for _ in range(4):
        doc.undo()
    assert not doc.dirty


def test_a_new_scenario_on_the_same_patient_shows_its_plan(win, editor):
    """The slices go to the new scenario's planned tip even when the patient is already loaded."""
    ed = editor
    ed.slices.set_cursor([30.0, -45.0, 30.0])
    win.answers = {"editor_unsaved": "discard"}
    assert ed.new_scenario(template="needle_basics_gel", anatomy="phantom:gel_block", scenario_id="gel_again",
                           title="Gel again")
    assert ed.anatomy_ref == "phantom:gel_block"
    assert np.allclose(ed.slices.cursor_mm, [10.0, -20.0, 0.0], atol=0.5)
    assert abs(ed.slices.views["axial"].plane_mm()) <= 0.5


def test_absent_settings_show_the_schema_defaults(win, editor):
    """Fields left out of the file show what the trainer will use: the pulse rate list shows 15 (not
    the first entry, 3.75), empty number fields say their default; choosing writes, nothing else does."""
    ed, doc = editor, editor.doc
    tab(ed, "Imaging")
    f = ("imaging", "fluoroscopy")
    assert not doc.has(f + ("pulse_rate_pps",))
    assert field_of(ed, f + ("pulse_rate_pps",)).widget.currentText() == "15"
    assert field_of(ed, f + ("kvp",)).widget.placeholderText() == "80 (default)"
    assert field_of(ed, f + ("kvp",)).widget.text() == ""
    assert field_of(ed, ("imaging", "ultrasound", "focus_mm")).widget.placeholderText() == "half the depth (default)"
    assert not doc.has(f)
    combo = field_of(ed, f + ("pulse_rate_pps",)).widget
    combo.setFocus()
    QTest.keyClick(combo, Qt.Key.Key_Down)
    assert doc.get(f + ("pulse_rate_pps",)) == 30 and doc.errors() == []
    doc.undo()
    assert not doc.has(f + ("pulse_rate_pps",)) and combo.currentText() == "15"


def test_structures_are_listed_in_anatomical_order():
    from simulator.ui.editor.panels import structure_order

    names = ["rib_left_10", "vertebrae_L1", "rib_left_2", "aorta", "vertebrae_T12", "vertebrae_C7", "rib_left_1",
             "vertebrae_T2", "vertebrae_S1", "Kidney_left"]
    assert sorted(names, key=structure_order) == [
        "aorta", "Kidney_left", "rib_left_1", "rib_left_2", "rib_left_10", "vertebrae_C7", "vertebrae_T2",
        "vertebrae_T12", "vertebrae_L1", "vertebrae_S1"]


def test_deleting_a_target_leaves_no_needle_leading_to_it(win, editor):
    """The nerve deleted: the planned needle stays, without its target_id (no error naming a target
    that is gone); one undo brings both back."""
    ed = editor
    win.answers = {"editor_unsaved": "discard"}
    assert ed.open_file(win.scenario_path)
    doc = ed.doc
    assert doc.get(("planned_trajectory", "target_id")) == "nerve"
    tab(ed, "Targets")
    ed.targets_panel.editor.select(0)
    QTest.mouseClick(ed.targets_panel.editor.delete_button, Qt.MouseButton.LeftButton)
    assert doc.get(("targets",)) == [] and isinstance(doc.get(("planned_trajectory",)), dict)
    assert not doc.has(("planned_trajectory", "target_id"))
    assert not [e for e in doc.formatted_errors() if "target_id" in e]
    assert doc.undo_label == "Delete nerve"
    doc.undo()
    assert doc.get(("planned_trajectory", "target_id")) == "nerve" and not doc.dirty


def test_plan_messages_name_the_needles_as_the_plan_tab_does():
    from simulator.ui.editor.overlays import needle_words

    assert needle_words("planned_trajectory: Crosses the aorta.") == "Needle 1: Crosses the aorta."
    assert needle_words("additional_trajectories[0]: Bone.") == "Needle 2: Bone."
    assert needle_words("additional_trajectories[11]: x") == "Needle 13: x"
    assert needle_words("Target t point lies inside bone.") == "Target t point lies inside bone."


def test_labels_of_targets_close_together_do_not_overlap(win, editor):
    """Two point targets 2 mm apart on the axial slice: their names are drawn a line apart."""
    from simulator.core.scenario_edits import add_target

    ed = editor
    win.answers = {"editor_unsaved": "discard"}
    assert ed.open_file(win.scenario_path)
    doc = ed.doc
    with doc.batch("two targets"):
        add_target(doc, id="near_a", name="A", points_mm=[[20.0, -30.0, 0.0]])
        add_target(doc, id="near_b", name="B", points_mm=[[22.0, -30.5, 0.0]])
    ed.slices.set_cursor([20.0, -30.0, 0.0])
    ed._draw_slices()
    ax = ed.slices.views["axial"]
    pos = {t.textItem.toPlainText(): t.pos() for t in ax._labels if t.textItem.toPlainText()}
    a, b = pos["near_a"], pos["near_b"]
    sy = abs(ax.box.viewPixelSize()[1])
    assert abs(a.y() - b.y()) / sy >= 15.9  # a line apart on screen
    assert a.x() == pytest.approx(20.0) and b.x() == pytest.approx(22.0)  # each still at its target
    doc.undo()
    assert not doc.dirty


def test_the_patient_tab_edits_the_vignette_block_and_key(win, editor):
    """The Patient tab as an instructor uses it: the vignette ticked in with its defaults, typed
    fields (a wrong age named by the validator), lists one item a line, a contraindication added
    to the key, the prognostic block, a follow-up; all undoable."""
    from PySide6.QtWidgets import QPlainTextEdit

    ed, doc = editor, editor.doc
    tab(ed, "Patient")
    panel = ed.patient_panel
    assert not panel.vignette.isChecked() and doc.get(("vignette",)) is None  # the gel has no patient
    panel.vignette.setChecked(True)
    assert doc.get(("vignette", "diagnosis")) == "the diagnosis" and doc.errors() == []
    age = field_of(ed, ("vignette", "age_years")).widget
    retype(ed, age, "130")
    assert "less than or equal to 120" in field_of(ed, ("vignette", "age_years")).error.text()
    retype(ed, age, "67")
    assert doc.get(("vignette", "age_years")) == 67 and not field_of(ed, ("vignette", "age_years")).error.text()
    meds = field_of(ed, ("vignette", "medications")).widget
    assert isinstance(meds, QPlainTextEdit)
    meds.setFocus()
    QTest.keyClicks(meds, "Warfarin 5 mg daily")
    QTest.keyClick(meds, Qt.Key.Key_Return)
    QTest.keyClicks(meds, "Paracetamol 1 g")
    wait_until(lambda: not ed.binder.pending, 5, "the typing to reach the document")
    assert doc.get(("vignette", "medications")) == ["Warfarin 5 mg daily", "Paracetamol 1 g"]
    retype(ed, field_of(ed, ("vignette", "anticoagulation", "inr")).widget, "2.8")
    assert doc.get(("vignette", "anticoagulation", "inr")) == 2.8
    # the key: a contraindication the trainee must notice at the time-out
    QTest.mouseClick(panel.findChild(QPushButton, "contraindication_add"), Qt.MouseButton.LeftButton)
    assert doc.get(("vignette", "contraindications", 0, "kind")) == "coagulopathy" and panel.key.list.count() == 1
    retype(ed, field_of(ed, ("vignette", "contraindications", 0, "finding")).widget, "INR 2.8 on warfarin")
    assert "INR 2.8 on warfarin" in panel.key.list.item(0).text()
    # the prognostic block: required by default; a relief above 100 % is refused by the validator
    panel.block.setChecked(True)
    assert doc.get(("prognostic_block", "required")) is True
    retype(ed, field_of(ed, ("prognostic_block", "relief_pct")).widget, "150")
    assert [e for e in doc.formatted_errors() if "prognostic_block.relief_pct" in e]
    retype(ed, field_of(ed, ("prognostic_block", "relief_pct")).widget, "70")
    # a follow-up of another library scenario, chosen in its list
    follows = field_of(ed, ("follows",)).widget
    i = follows.findData("celiac_plexus_posterior")
    assert i > 0 and follows.findData("needle_basics_gel") < 0  # not itself
    follows.setFocus()
    QTest.keyClicks(follows, "celiac_plexus_p")  # typed in the closed list, as a keyboard user picks
    assert doc.get(("follows",)) == "celiac_plexus_posterior" and doc.errors() == []
    while doc.dirty and doc.can_undo:
        doc.undo()
    assert not doc.dirty and doc.get(("vignette",)) is None and not panel.vignette.isChecked()
