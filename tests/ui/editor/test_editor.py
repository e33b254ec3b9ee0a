"""The scenario editor driven as an instructor would (clicks on the slice views and the 3D view,
keys, typing into fields) on the gel phantom: a new scenario from a template, a nerve drawn and a
point target placed by clicks (RAS from the pixel clicked), a structure to avoid, the entry and the
tip by clicks, undo and redo, a wrong value with the validator's message, save (validates, keeps
the template's comments), reload, then "Try in practice mode" and the scripted expert attempt on
it through the window, which passes.

Known geometry (simulator.anatomy.phantoms, needle_basics_gel.yaml): gel x in [-40, 40],
y in [-50, 0] (surface y = 0), z in [-40, 40]; artery along z through (x -8, y -20), r 4; nerve
along z through (x 7, y -20), r 2.5; voxels 0.5 mm.
"""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QDialogButtonBox

from simulator.core.scenario import load_scenario
from simulator.ui.driver import WindowDriver, process, wait_until
from simulator.ui.editor import EditorMode
from tests.ui.editor.helpers import (
    CTRL,
    NO_MOD,
    SHIFT,
    click_slice,
    close_window,
    editor_of,
    field_of,
    open_gel_window,
    retype,
    tab,
)
from tests.ui.windows import WORK_TIMEOUT_S


@pytest.fixture(scope="module")
def win(qapp, tmp_path_factory):
    w, mp = open_gel_window(tmp_path_factory, "editor_data")
    yield w
    close_window(w, mp)


@pytest.fixture(scope="module")
def editor(win) -> EditorMode:
    return editor_of(win)


def advance_watching(w, d: WindowDriver, target_mm) -> None:
    """Advance (Shift+W 5 mm, W 1 mm) towards the target, looking at the ultrasound image after
    every step (the next frame showing the needle), as an expert does in plane."""
    us = w.us_view
    wait_until(lambda: not us.busy(), WORK_TIMEOUT_S, "the ultrasound image")
    for _ in range(100):
        rem = d.remaining_mm(target_mm)
        if rem <= 0.6:
            return
        n = us.reported
        d.key(Qt.Key.Key_W, SHIFT if rem > 5.5 else NO_MOD)
        wait_until(lambda: us.reported > n, WORK_TIMEOUT_S, "the ultrasound image of the needle")


NERVE_X, NERVE_Y, NERVE_R = 7.0, -20.0, 2.5
ARTERY_X = -8.0


def test_entering_and_leaving_restores_the_trainee_layout(win, editor):
    w, ed = win, editor
    d = WindowDriver(w)
    before = (w.left_dock.isVisible(), w.right_dock.isVisible(), w.central_splitter.sizes(),
              w.act_advance.isEnabled(), w.windowTitle())
    assert w.central_splitter.widget(1) is w.imaging_splitter
    d.key(Qt.Key.Key_E, CTRL | SHIFT)  # Scenario editor > Edit current scenario
    assert ed.active and ed.doc.path.name == "needle_basics_gel.yaml"
    assert w.central_splitter.widget(1) is ed.slices and ed.dock.isVisible()
    assert not w.left_dock.isVisible() and not w.right_dock.isVisible()
    assert not w.act_advance.isEnabled()  # the trainee's needle keys are off in the editor
    assert "Scenario editor" in w.windowTitle()
    assert ed.anatomy is w.anatomy
    # the orientation is written on the views (radiological axial)
    assert "patient's right on screen left" in ed.slices.views["axial"].title.text()
    ax = ed.slices.views["axial"]
    assert ax._edge["left"].text() == "R" and ax._edge["right"].text() == "L"
    assert ax.widget_point([30.0, -20.0, 0.0]).x() < ax.widget_point([-30.0, -20.0, 0.0]).x()
    # an edit, then Close editor: unsaved changes -> asked; cancel stays, discard leaves
    retype(ed, field_of(ed, ("title",)).widget, "Changed title")
    assert ed.doc.dirty
    w.answers = {"editor_unsaved": "cancel"}
    d.key(Qt.Key.Key_W, CTRL | SHIFT)
    assert ed.active and w.asked[-1] == "editor_unsaved"
    w.asked.clear()
    w.close()  # closing the window asks too; cancelled, the window and the editor stay
    process(0)
    assert w.isVisible() and ed.active and w.asked == ["editor_unsaved"]
    # the menu sits before Help
    titles = [a.text().replace("&", "") for a in w.menuBar().actions()]
    assert titles.index("Scenario editor") == titles.index("Help") - 1
    w.answers = {"editor_unsaved": "discard"}
    d.key(Qt.Key.Key_W, CTRL | SHIFT)
    assert not ed.active
    process(0)
    after = (w.left_dock.isVisible(), w.right_dock.isVisible(), w.central_splitter.sizes(),
             w.act_advance.isEnabled(), w.windowTitle())
    assert after == before
    assert w.central_splitter.widget(1) is w.imaging_splitter and w.imaging_splitter.isVisible()
    assert load_scenario(w.scenario_path).title.startswith("Needle basics")  # the file was not touched


def test_an_attempt_in_progress_is_asked_about_before_the_editor_opens(win, editor):
    """Cancel stays in the attempt; Discard opens the editor, and a fresh attempt waits when it closes."""
    w, ed = win, editor
    d = WindowDriver(w)
    d.key(Qt.Key.Key_N, CTRL)
    d.click_skin(w.scenario.planned_trajectory.entry_mm)
    assert w.controller.in_progress
    first = w.controller.procedure
    w.asked.clear()
    w.answers = {"keep_attempt": "cancel"}
    d.key(Qt.Key.Key_E, CTRL | SHIFT)
    assert w.asked == ["keep_attempt"] and not ed.active and w.controller.procedure is first
    w.answers = {"keep_attempt": "discard"}
    d.key(Qt.Key.Key_E, CTRL | SHIFT)
    assert ed.active
    d.key(Qt.Key.Key_W, CTRL | SHIFT)
    assert not ed.active
    process(0)
    assert w.controller.procedure is not first and not w.controller.in_progress
    w.answers = {}


def test_build_a_scenario_by_clicks_save_reload_and_pass_it_in_practice(win, editor, tmp_path):
    w, ed = win, editor
    d = WindowDriver(w)
    # --- new from a template (the gel exercise, on the gel phantom) ------------------------------
    d.key(Qt.Key.Key_N, CTRL | SHIFT)
    dlg = ed.new_dialog
    assert dlg.isVisible()
    assert dlg.choose(dlg.template, "needle_basics_gel") and dlg.choose(dlg.anatomy, "phantom:gel_block")
    QTest.keyClicks(dlg.scenario_id, "gel_nerve_by_clicks")
    QTest.keyClicks(dlg.title, "Gel nerve placed in the editor")
    QTest.mouseClick(dlg.buttons.button(QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)
    wait_until(lambda: ed.active and ed.anatomy is not None, WORK_TIMEOUT_S, "the editor on the gel phantom")
    doc = ed.doc
    assert doc.path is None and doc.get(("id",)) == "gel_nerve_by_clicks"
    assert ed.slices.views["axial"].anatomy is ed.anatomy
    # clear the template's target and plan, with the buttons
    tab(ed, "Targets")
    QTest.mouseClick(ed.targets_panel.editor.delete_button, Qt.MouseButton.LeftButton)
    tab(ed, "Plan")
    rm = [b for b in ed.plan_panel.findChildren(type(ed.plan_panel.entry_button))
          if b.text() == "Remove this needle's trajectory"][0]
    QTest.mouseClick(rm, Qt.MouseButton.LeftButton)
    assert doc.get(("targets",)) == [] and doc.get(("planned_trajectory",)) is None
    assert any(e.startswith("<new>") and "targets" in e for e in doc.formatted_errors())
    assert ed.error_list.count() == len(doc.errors()) and "targets" in ed.error_list.item(0).text()

    ax, cor = ed.slices.views["axial"], ed.slices.views["coronal"]
    z0 = ax.plane_mm()

    # --- a point target at a known pixel: its RAS to 0.5 mm; undo / redo with the keys -------------
    tab(ed, "Targets")
    QTest.mouseClick(ed.targets_panel.add_point, Qt.MouseButton.LeftButton)
    assert ed.mode == "point_target"
    want = np.array([12.0, -30.0, z0])
    click_slice(ed, "axial", want)
    t = doc.get(("targets",))
    assert len(t) == 1 and t[0]["kind"] == "point" and t[0]["side"] == "right"  # +x: the patient's right
    assert np.allclose(t[0]["points_mm"][0], want, atol=0.5)
    d.key(Qt.Key.Key_Z, CTRL)
    assert doc.get(("targets",)) == []
    d.key(Qt.Key.Key_Z, CTRL | SHIFT)
    assert len(doc.get(("targets",))) == 1
    d.key(Qt.Key.Key_Z, CTRL)
    assert doc.get(("targets",)) == []

    # --- a click on the axial view at the nerve's centre: the crosshair, the structure named -------
    click_slice(ed, "axial", [NERVE_X, NERVE_Y, z0])
    assert "nerve" in ed.slices.status.text()
    assert abs(cor.plane_mm() - NERVE_Y) <= 0.25 + 1e-6  # the coronal view now passes through it

    # --- the nerve as a polyline on the coronal view: two clicks and Enter --------------------------
    QTest.mouseClick(ed.targets_panel.draw_line, Qt.MouseButton.LeftButton)
    y_cor = cor.plane_mm()
    p1, p2 = np.array([NERVE_X, y_cor, -30.0]), np.array([NERVE_X, y_cor, 30.0])
    click_slice(ed, "coronal", p1)
    click_slice(ed, "coronal", p2)
    assert len(ed.pending) == 2
    QTest.keyClick(cor, Qt.Key.Key_Return)
    t = doc.get(("targets",))
    assert len(t) == 1 and t[0]["kind"] == "polyline" and t[0]["id"] == "nerve_1"
    assert np.allclose(t[0]["points_mm"], [p1, p2], atol=0.5)
    assert abs(t[0]["points_mm"][0][1] - NERVE_Y) <= 0.3
    # its upper end moved by a click (the nearest point of the selected nerve moves)
    QTest.mouseClick(ed.targets_panel.move_point, Qt.MouseButton.LeftButton)
    p3 = np.array([NERVE_X, y_cor, 35.0])
    click_slice(ed, "coronal", p3)
    assert np.allclose(doc.get(("targets", 0, "points_mm")), [p1, p3], atol=0.5) and ed.mode == ""
    # radius and tolerance in their spin boxes (one undo step each)
    retype(ed, field_of(ed, ("targets", 0, "radius_mm")).widget, "2.5")
    retype(ed, field_of(ed, ("targets", 0, "tolerance_mm")).widget, "2")
    assert doc.get(("targets", 0, "radius_mm")) == 2.5 and doc.get(("targets", 0, "tolerance_mm")) == 2
    assert doc.undo_label == "Edit targets[0].tolerance_mm"
    # the nerve shows on the axial slice (its crossing drawn) and in 3D
    assert ed.slices.views["axial"].overlay_count > 0

    # --- a structure to avoid from the anatomy's list -------------------------------------------------
    tab(ed, "Avoid")
    cp = ed.critical_panel
    assert cp.select_choice("structure", "vessel")
    cp.severity.setCurrentText("critical")
    QTest.keyClicks(cp.message, "The needle entered the vessel.")
    QTest.mouseClick(cp.add_button, Qt.MouseButton.LeftButton)
    crit = doc.get(("critical_structures",))
    assert crit[-1] == {"structure": "vessel", "severity": "critical", "message": "The needle entered the vessel."}

    # --- entry on the skin by a click on the 3D view, the tip by a click on a slice -----------------
    tab(ed, "Plan")
    QTest.mouseClick(ed.plan_panel.entry_button, Qt.MouseButton.LeftButton)
    assert ed.mode == "entry"
    d.click_world([30.0, 0.0, 0.0])
    wait_until(lambda: ed.mode == "target", 5, "the entry")
    assert ed.pending_entry is not None and np.allclose(ed.pending_entry, [30.0, 0.0, 0.0], atol=1.0)
    zone = doc.get(("skin_entry_zone",))
    assert np.allclose(zone["center_mm"], [30.0, 0.0, 0.0], atol=1.0)
    assert abs(ax.plane_mm()) <= 0.5  # the slices moved to the entry point clicked
    z0 = ax.plane_mm()
    # a tip in the artery first: the plan check warns (banner and list), naming the structure
    click_slice(ed, "axial", [ARTERY_X, NERVE_Y, z0])
    plan = doc.get(("planned_trajectory",))
    assert np.allclose(plan["target_mm"], [ARTERY_X, NERVE_Y, z0], atol=0.5)
    assert ed.slices.banner.isVisible() and "vessel" in ed.slices.banner.text()
    assert any(p.kind == "critical" and p.what == "vessel" for p in ed.plan_problems)
    assert ed.plan_panel.problems.count() >= 1
    d.key(Qt.Key.Key_Z, CTRL)  # undo: no trajectory, the entry kept
    assert doc.get(("planned_trajectory",)) is None
    QTest.mouseClick(ed.plan_panel.entry_button, Qt.MouseButton.LeftButton)
    d.click_world([30.0, 0.0, 0.0])
    wait_until(lambda: ed.mode == "target", 5, "the entry")
    tip = np.array([NERVE_X + NERVE_R + 0.5, NERVE_Y, z0])
    click_slice(ed, "axial", tip)
    plan = doc.get(("planned_trajectory",))
    assert np.allclose(plan["target_mm"], tip, atol=0.5) and plan["target_id"] == "nerve_1"
    assert np.allclose(plan["entry_mm"], [30.0, 0.0, 0.0], atol=1.0)
    assert ed.plan_problems == [] and not ed.slices.banner.isVisible()
    # a second needle (as for a bilateral block), from the gel's left face, crosses the artery:
    # the check names that needle; removing it leaves the plan clean
    QTest.mouseClick(ed.plan_panel.add_needle, Qt.MouseButton.LeftButton)
    assert ed.mode == "entry" and ed.plan_panel.index == 1
    side_entry = [-40.0, NERVE_Y, ax.plane_mm()]
    click_slice(ed, "axial", side_entry)  # an entry may be clicked on a slice too
    assert ed.mode == "target"
    click_slice(ed, "axial", [NERVE_X - NERVE_R - 0.5, NERVE_Y, ax.plane_mm()])
    more = doc.get(("additional_trajectories",))
    assert len(more) == 1 and np.allclose(more[0]["entry_mm"], side_entry, atol=0.5)
    assert np.allclose(doc.get(("planned_trajectory", "entry_mm")), [30.0, 0.0, 0.0], atol=1.0)  # the first kept
    assert any(p.message.startswith("additional_trajectories[0]") and p.what == "vessel" for p in ed.plan_problems), [(p.message, p.what) for p in ed.plan_problems]
    assert ed.plan_panel.needle_choice.count() == 2
    rm = [b for b in ed.plan_panel.findChildren(type(ed.plan_panel.entry_button))
          if b.text() == "Remove this needle's trajectory"][0]
    QTest.mouseClick(rm, Qt.MouseButton.LeftButton)
    assert doc.get(("additional_trajectories",)) is None and ed.plan_panel.index == 0
    assert ed.plan_problems == [] and doc.get(("planned_trajectory", "target_id")) == "nerve_1"
    # the tunnel view along the plan (the fluoroscopy engine, off the GUI thread)
    QTest.mouseClick(ed.plan_panel.tunnel_button, Qt.MouseButton.LeftButton)
    wait_until(lambda: ed.tunnel_frame is not None, WORK_TIMEOUT_S, "the tunnel view")
    beam = ed.tunnel_frame.pose
    u, v = beam.world_to_pixel(np.array([plan["entry_mm"], plan["target_mm"]]))
    assert abs(u[0] - u[1]) < 2.0 and abs(v[0] - v[1]) < 2.0  # entry and tip on one pixel: down the needle
    assert ed.plan_panel.tunnel.has_image()

    # --- a wrong value: the field shows the validator's message; fixed, it goes ------------------
    tab(ed, "Rubric")
    pm = field_of(ed, ("rubric", "pass_mark"))
    retype(ed, pm.widget, "150")
    errs = doc.errors_at(("rubric", "pass_mark"))
    assert errs and doc.get(("rubric", "pass_mark")) == 150
    assert pm.error.isVisible() and errs[0].message in pm.error.text()
    line = errs[0].format(doc.file_label)
    assert "rubric.pass_mark" in line and any(ed.error_list.item(i).text() == line for i in range(ed.error_list.count()))
    retype(ed, pm.widget, "abc")
    assert "valid number" in pm.error.text()
    asked_files = []
    ed.choose_file = lambda caption, default, save: asked_files.append(default)
    d.key(Qt.Key.Key_S, CTRL)  # refused: the message names the field; no file asked for
    assert doc.path is None and asked_files == [] and "rubric.pass_mark" in w.last_error
    retype(ed, pm.widget, "70")
    assert not pm.error.isVisible() and doc.get(("rubric", "pass_mark")) == 70 and doc.errors() == []
    assert ed.error_list.count() == 0

    # --- imaging: the probe 12 mm towards the entry, so the whole path lies in the image ------------
    tab(ed, "Imaging")
    retype(ed, field_of(ed, ("imaging", "ultrasound", "center_mm")).widget, "12, 0, 0")
    assert doc.get(("imaging", "ultrasound", "center_mm")) == [12.0, 0.0, 0.0]

    # --- save: refused while invalid, then into the user's scenarios folder ---------------------------
    from simulator.core.paths import user_scenarios_dir

    chosen = []
    ed.choose_file = lambda caption, default, save: chosen.append(default) or str(default)
    d.key(Qt.Key.Key_S, CTRL)
    saved = doc.path
    assert saved is not None and saved.parent == user_scenarios_dir() and saved.name == "gel_nerve_by_clicks.yaml"
    assert not doc.dirty
    sc = load_scenario(saved)
    assert sc.id == "gel_nerve_by_clicks" and sc.targets[0].id == "nerve_1"
    text = saved.read_text()
    assert "# marker towards +x: the nerve side, where the needle enters" in text  # the template's comments
    assert "# artery punctured" in text
    assert "[30.0, 0.0, 0.0]" in text or "entry_mm: [30" in text

    # --- reload in the editor ------------------------------------------------------------------------
    ed.choose_file = lambda caption, default, save: str(saved)
    ed.open_file_dialog()
    assert ed.doc is not doc and ed.doc.text() == text and not ed.doc.dirty
    assert ed.targets_panel.editor.list.count() == 1

    # --- Try in practice mode (F9) and the expert attempt through the window -----------------------
    d.key(Qt.Key.Key_F9)
    assert not ed.active and w.instructor_mode
    wait_until(lambda: w.scenario is not None and w.scenario.id == "gel_nerve_by_clicks" and w.anatomy is not None,
               20, "the scenario in the trainer")
    assert w.central_splitter.widget(1) is w.imaging_splitter
    cards = []
    w.controller.ended.connect(cards.append)
    p = w.scenario.planned_trajectory
    d = WindowDriver(w)
    d.click_skin(p.entry_mm)
    d.key(Qt.Key.Key_F2)
    assert d.aim_at(p.target_mm) < 0.8
    advance_watching(w, d, p.target_mm)
    d.key(Qt.Key.Key_F3)
    d.key(Qt.Key.Key_F6)
    d.key(Qt.Key.Key_E, CTRL)
    wait_until(lambda: cards, WORK_TIMEOUT_S, "the score card")
    card = cards[-1]
    assert card.passed, card.text()
    assert card.metrics["critical_contacts"] == 0
    # back to the editor's document from the trainer
    d.key(Qt.Key.Key_E, CTRL | SHIFT)
    assert ed.active and ed.doc.get(("id",)) == "gel_nerve_by_clicks"
    w.answers = {"editor_unsaved": "discard"}
    assert ed.leave()


def test_yaml_tab_and_scrolling_the_slices(win, editor):
    """The raw text is editable (one undo step); the wheel moves a slice, the crosshair follows."""
    from PySide6.QtCore import QEvent, QPoint, QPointF
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    w, ed = win, editor
    d = WindowDriver(w)
    if not ed.active:
        d.key(Qt.Key.Key_E, CTRL | SHIFT)
    assert ed.active
    doc = ed.doc
    tab(ed, "YAML")
    assert ed.yaml_view.toPlainText() == doc.text()
    text = doc.text()
    old_title = doc.get(("title",))
    ed.yaml_view.setFocus()
    cur = ed.yaml_view.textCursor()
    i = text.index("title:")
    cur.setPosition(i)
    ed.yaml_view.setTextCursor(cur)
    QTest.keyClick(ed.yaml_view, Qt.Key.Key_End)
    line = text[i:].splitlines()[0].rstrip()
    if line.endswith('"'):
        QTest.keyClick(ed.yaml_view, Qt.Key.Key_Left)  # inside the quotes
    QTest.keyClicks(ed.yaml_view, " (edited)")
    assert ed.yaml_apply.isEnabled()
    QTest.mouseClick(ed.yaml_apply, Qt.MouseButton.LeftButton)
    assert doc.get(("title",)) == f"{old_title} (edited)" and doc.undo_label == "Edit the YAML text"
    title_field = field_of(ed, ("title",))
    assert title_field.widget.text() == f"{old_title} (edited)"
    d.key(Qt.Key.Key_Z, CTRL)
    assert doc.text() == text and ed.yaml_view.toPlainText() == text
    # rules across fields: an automatic fail that needs contrast, on an ultrasound scenario
    tab(ed, "Rubric")
    fails = field_of(ed, ("rubric", "automatic_fails")).widget
    row = [fails.item(i).data(Qt.ItemDataRole.UserRole) for i in range(fails.count())].index("agent_without_contrast")
    fails.setFocus()
    fails.setCurrentRow(row)
    QTest.keyClick(fails, Qt.Key.Key_Space)  # Space ticks the box (not the fluoroscopy pedal)
    assert "agent_without_contrast" in doc.get(("rubric", "automatic_fails"))
    fail_field = field_of(ed, ("rubric", "automatic_fails"))
    assert "needs steps.contrast" in fail_field.error.text()
    tab(ed, "Steps")
    contrast = ed.steps_panel.sections[0]
    QTest.mouseClick(contrast, Qt.MouseButton.LeftButton, NO_MOD, contrast.rect().topLeft() + QPoint(8, 8))
    assert doc.get(("steps", "contrast")) == {"min_ml": 2, "max_ml": 5}
    assert "needs fluoroscopy (modality is ultrasound)" in fail_field.error.text()
    assert any("rubric.automatic_fails" in ed.error_list.item(i).text() for i in range(ed.error_list.count()))
    d.key(Qt.Key.Key_Z, CTRL)
    d.key(Qt.Key.Key_Z, CTRL)
    assert doc.text() == text and doc.errors() == [] and not fail_field.error.isVisible()
    # the mouse over the nerve: the status line names it
    from PySide6.QtGui import QMouseEvent

    ax = ed.slices.views["axial"]

    def hover(ras):
        pt = QPointF(ax.widget_point(ras))
        ev = QMouseEvent(QEvent.Type.MouseMove, pt, QPointF(ax.viewport().mapToGlobal(pt.toPoint())),
                         Qt.MouseButton.NoButton, Qt.MouseButton.NoButton, NO_MOD)
        QApplication.sendEvent(ax.viewport(), ev)
        process(0)
        return ed.slices.status.text()

    text = hover([NERVE_X, NERVE_Y, ax.plane_mm()])
    assert "nerve" in text and abs(float(text.split()[1]) - NERVE_X) < 0.3
    text = hover([ARTERY_X, NERVE_Y, ax.plane_mm()])
    assert "vessel" in text and "artery" in text
    # the wheel over the axial view: one slice up per notch, the other views' crosshair follows
    ax = ed.slices.views["axial"]
    k0, z0 = ax.index, ax.plane_mm()
    pos = QPointF(ax.viewport().rect().center())
    for _ in range(3):
        ev = QWheelEvent(pos, QPointF(ax.viewport().mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, 120),
                         Qt.MouseButton.NoButton, NO_MOD, Qt.ScrollPhase.NoScrollPhase, False)
        QApplication.sendEvent(ax.viewport(), ev)
    assert ax.index == k0 + 3 and ax.plane_mm() == pytest.approx(z0 + 3 * 0.5)
    assert ed.slices.cursor_mm[2] == pytest.approx(z0 + 1.5)
    assert ed.slices.views["coronal"].hline.value() == pytest.approx(z0 + 1.5)
    w.answers = {"editor_unsaved": "discard"}
    assert ed.leave()
