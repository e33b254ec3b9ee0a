"""The main window under Xvfb, driven through its widgets as a user would.

Scenarios for these tests are written to a temporary user data folder ($NEUROLYSIS_DATA) and use
the analytic phantoms (fast); one test opens the default celiac scenario on the bundled patient
when its cache has been built (`make test` builds it first).
"""
from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication, QCheckBox, QMessageBox

from simulator.ui.main_window import MainWindow
from tests.conftest import make_synthetic_anatomy

SCENARIO = """\
schema_version: 1
id: {id}
title: "{title}"
procedure: needle_basics
indication: [training]
difficulty: 1
anatomy: "{anatomy}"
patient_position: {position}
modality: {modality}
needle: {{gauge: 22, length_mm: 50}}
planned_trajectory:
  entry_mm: [20.0, 10.0, 0.0]
  target_mm: [0.0, -15.0, 0.0]
targets:
  - id: target
    name: "Test target"
    kind: point
    points_mm: [[0.0, -15.0, 0.0]]
    tolerance_mm: 3
critical_structures:
  - tissue: artery
    severity: critical
rubric:
  items:
    - {{metric: final_distance_mm, weight: 1, good: 1, bad: 5}}
instructions: "{title}: reach the target without touching the vessel."
"""

_ANATOMIES: dict = {}
_LOAD_CALLS: list[str] = []


def cached_load_anatomy(ref, progress=None):
    """The real loader, memoised for the session (each phantom is built once)."""
    _LOAD_CALLS.append(ref)
    if ref not in _ANATOMIES:
        from simulator.anatomy import load_anatomy

        _ANATOMIES[ref] = load_anatomy(ref, progress=progress)
    return _ANATOMIES[ref]


@pytest.fixture
def user_data(tmp_path, monkeypatch):
    data = tmp_path / "data"
    folder = data / "scenarios"
    folder.mkdir(parents=True)
    monkeypatch.setenv("NEUROLYSIS_DATA", str(data))
    (folder / "ui_layered.yaml").write_text(SCENARIO.format(
        id="ui_layered", title="UI test, layered block", anatomy="phantom:layered_block", position="prone",
        modality="fluoroscopy"))
    (folder / "ui_gel.yaml").write_text(SCENARIO.format(
        id="ui_gel", title="UI test, gel block", anatomy="phantom:gel_block", position="supine",
        modality="ultrasound"))
    (folder / "ui_missing_anatomy.yaml").write_text(SCENARIO.format(
        id="ui_missing_anatomy", title="UI test, missing patient", anatomy="user:nobody_imported_this",
        position="supine", modality="both"))
    broken = SCENARIO.format(id="ui_broken", title="UI test, broken", anatomy="phantom:gel_block",
                             position="supine", modality="ultrasound").replace("difficulty: 1", "difficulty: 9")
    (folder / "ui_broken.yaml").write_text(broken)
    return data


def make_window(qtbot, settings_file, scenario="ui_layered", load=cached_load_anatomy, wait=True) -> MainWindow:
    w = MainWindow(scenario=scenario, settings=QSettings(str(settings_file), QSettings.Format.IniFormat),
                   load_anatomy=load)
    qtbot.addWidget(w, before_close_func=lambda _w: None)
    if wait:
        with qtbot.waitSignal(w.anatomy_shown, timeout=120_000):
            w.show()
        qtbot.waitExposed(w)
        w.view3d.render_now()
    else:
        w.show()
        qtbot.waitExposed(w)
    return w


@pytest.fixture
def window(qtbot, user_data, qsettings_file):
    return make_window(qtbot, qsettings_file)


def anatomy_mask(img: np.ndarray) -> np.ndarray:
    """Pixels that are not the (vertically graded) background: compare with each row's first pixel."""
    return np.linalg.norm(img.astype(float) - img[:, :1].astype(float), axis=2) > 30


def choose_in_picker(qtbot, w: MainWindow, scenario_id: str) -> None:
    """Open the picker's list and click the scenario's row."""
    panel = w.scenario_panel
    row = next(r for r in range(panel.model.rowCount()) if panel.model.item(r).data(panel_id_role()) == scenario_id)
    panel.picker.showPopup()
    view = panel.picker.view()
    qtbot.waitUntil(view.isVisible)
    index = panel.model.index(row, 0)
    view.scrollTo(index)
    rect = view.visualRect(index)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def panel_id_role():
    from simulator.ui.panels import ID_ROLE

    return ID_ROLE


# --------------------------------------------------------------------------------------------------
def test_window_opens_with_the_anatomy_in_the_3d_view(window):
    w = window
    assert w.scenario.id == "ui_layered"
    assert w.view3d.scene.structures, "no surfaces in the scene"
    img = w.view3d.screenshot()
    mask = anatomy_mask(img)
    assert mask.mean() > 0.05, "the 3D view looks blank"
    # a non-skin structure projects onto anatomy pixels
    scene = w.view3d.scene
    name = next(n for n, s in scene.structures.items() if s.group != "skin" and s.actor.GetVisibility())
    b = scene.structures[name].actor.GetBounds()
    d = scene.world_to_display(((b[0] + b[1]) / 2, (b[2] + b[3]) / 2, (b[4] + b[5]) / 2))
    assert mask[img.shape[0] - 1 - int(d[1]), int(d[0])]
    assert w.windowTitle().endswith("UI test, layered block")
    assert "Test target" in "\n".join(w.procedure_panel.hints.item(i).text() for i in range(w.procedure_panel.hints.count()))


def test_layout_follows_the_modality(qtbot, window):
    w = window
    assert w.fluoroscopy_pane.isVisible() and not w.ultrasound_pane.isVisible()
    with qtbot.waitSignal(w.anatomy_shown, timeout=60_000):
        choose_in_picker(qtbot, w, "ui_gel")
    assert w.scenario.id == "ui_gel"
    assert w.ultrasound_pane.isVisible() and not w.fluoroscopy_pane.isVisible()
    assert w.view3d.isVisible() and w.procedure_panel.isVisible()


def test_picker_switches_scenario_and_anatomy(qtbot, window):
    w = window
    first = w.anatomy
    with qtbot.waitSignal(w.anatomy_shown, timeout=60_000):
        choose_in_picker(qtbot, w, "ui_gel")
    assert w.scenario.id == "ui_gel" and w.anatomy is not first
    assert w.scenario_panel.picker.currentText() == "UI test, gel block  [mine]"
    assert "UI test, gel block" in w.scenario_panel.instructions.toPlainText()
    # back again: the anatomy comes from the in-memory cache, not the loader
    calls = len(_LOAD_CALLS)
    with qtbot.waitSignal(w.anatomy_shown, timeout=10_000):
        choose_in_picker(qtbot, w, "ui_layered")
    assert w.anatomy is first and len(_LOAD_CALLS) == calls


def test_switching_anatomy_leaves_only_its_groups_and_no_loading_signs(qtbot, window):
    """The structure groups of the new anatomy alone (rows and menu shortcuts), and no progress bar
    or loading message once it is shown."""
    w = window
    with qtbot.waitSignal(w.anatomy_shown, timeout=60_000):
        choose_in_picker(qtbot, w, "ui_gel")
    process_events = QApplication.processEvents
    process_events()
    groups = w.view3d.scene.groups()
    panel = w.display_panel
    shown = sorted(cb.text().lower() for cb in panel.findChildren(QCheckBox)
                   if cb.objectName().startswith("group_") and cb.isVisibleTo(panel))
    assert shown == sorted(groups)
    ctrl1 = [a for a in w.actions() if a.shortcut().toString() == "Ctrl+1"]
    assert len(ctrl1) == 1 and ctrl1[0].text().lower() == groups[0]
    assert not w.progress_bar.isVisible()
    assert not w.statusBar().currentMessage().startswith("Loading anatomy")
    # rebuilt twice before the event loop runs (the editor hands the scene back, then the scenario
    # opens): the first set of rows is gone from the screen at once, not at the next deferred delete
    w._rebuild_group_controls()
    panel.set_groups(["bone", "gel"], {}, {})
    process_events()  # the new rows are shown by the layout; deferred deletes wait for the event loop
    shown = sorted(cb.text().lower() for cb in panel.findChildren(QCheckBox)
                   if cb.objectName().startswith("group_") and cb.isVisibleTo(panel))
    assert shown == ["bone", "gel"]


def test_broken_scenario_is_greyed_and_reports_file_and_field(qtbot, window):
    w = window
    panel = w.scenario_panel
    row = next(r for r in range(panel.model.rowCount()) if panel.model.item(r).data(panel_id_role()) == "ui_broken")
    item = panel.model.item(row)
    assert "ui_broken.yaml" in item.toolTip() and "difficulty" in item.toolTip()
    assert item.foreground().color().red() == item.foreground().color().green() == 140  # grey

    with qtbot.waitSignal(w.error_reported, timeout=5000):
        choose_in_picker(qtbot, w, "ui_broken")
    assert "ui_broken.yaml" in w.last_error and "difficulty" in w.last_error
    box = w.error_box
    assert box is not None and box.isVisible() and "difficulty" in box.text()
    # the app stays on the previous scenario and stays usable
    assert w.scenario.id == "ui_layered"
    assert panel.picker.currentText() == "UI test, layered block  [mine]"
    qtbot.mouseClick(box.button(QMessageBox.StandardButton.Ok), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.error_box is None)
    with qtbot.waitSignal(w.anatomy_shown, timeout=60_000):
        choose_in_picker(qtbot, w, "ui_gel")
    assert w.scenario.id == "ui_gel"


def test_missing_anatomy_reports_and_keeps_the_previous_scenario(qtbot, window):
    w = window
    with qtbot.waitSignal(w.error_reported, timeout=30_000):
        choose_in_picker(qtbot, w, "ui_missing_anatomy")
    assert "ui_missing_anatomy.yaml" in w.last_error and "anatomy" in w.last_error
    assert "nobody_imported_this" in w.last_error
    assert w.scenario.id == "ui_layered"
    assert w.scenario_panel.picker.currentText() == "UI test, layered block  [mine]"
    assert not w.progress_bar.isVisible()
    w.error_box.close()


def test_group_checkbox_hides_the_group(qtbot, window):
    w = window
    scene = w.view3d.scene
    group = next(g for g in scene.groups() if g != "skin" and scene.group_visible(g))
    before = w.view3d.screenshot()
    checkbox = w.display_panel.group_checks[group]
    n = w.view3d.render_count
    qtbot.mouseClick(checkbox, Qt.MouseButton.LeftButton, pos=checkbox.rect().center())
    qtbot.waitUntil(lambda: w.view3d.render_count > n)  # the coalesced render happened
    assert not checkbox.isChecked()
    assert not scene.group_visible(group)
    assert all(not scene.structures[s].actor.GetVisibility() for s in scene.group_structures(group))
    assert not w.group_actions[group].isChecked()  # the View menu agrees
    after = w.view3d.screenshot()
    assert (np.linalg.norm(after.astype(float) - before.astype(float), axis=2) > 30).sum() > 200
    qtbot.mouseClick(checkbox, Qt.MouseButton.LeftButton, pos=checkbox.rect().center())
    assert scene.group_visible(group)
    assert np.abs(w.view3d.screenshot().astype(int) - before.astype(int)).max() <= 3


def test_opacity_slider_changes_the_group_opacity(qtbot, window):
    w = window
    scene = w.view3d.scene
    slider = w.display_panel.group_sliders["skin"]
    slider.setFocus()
    qtbot.keyClick(slider, Qt.Key.Key_End)
    assert slider.value() == 100 and scene.group_opacity("skin") == pytest.approx(1.0)


def test_camera_presets_from_buttons_and_keys(qtbot, window):
    w = window
    cam = w.view3d.scene.renderer.GetActiveCamera()

    def to_camera():
        v = np.array(cam.GetPosition()) - np.array(cam.GetFocalPoint())
        return v / np.linalg.norm(v)

    assert w.scenario.patient_position.value == "prone"
    assert np.allclose(to_camera(), [0, -1, 0], atol=1e-6)  # prone: the view from above the back
    qtbot.mouseClick(w.display_panel.preset_buttons["lateral_left"], Qt.MouseButton.LeftButton)
    assert np.allclose(to_camera(), [-1, 0, 0], atol=1e-6)
    assert np.allclose(cam.GetViewUp(), [0, -1, 0], atol=1e-6)  # prone: the back is up
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
    qtbot.keyClick(w.view3d.vtk_widget, Qt.Key.Key_1)  # AP
    assert np.allclose(to_camera(), [0, 1, 0], atol=1e-6)
    assert w.display_panel.preset_buttons["AP"].isChecked()
    qtbot.keyClick(w.view3d.vtk_widget, Qt.Key.Key_0)  # back to the table view
    assert np.allclose(to_camera(), [0, -1, 0], atol=1e-6)


def test_instructor_mode_shows_and_exam_mode_hides_the_hints(qtbot, window):
    w = window
    scene = w.view3d.scene
    assert w.instructor_mode
    assert scene._target_actors and all(a.GetVisibility() for a in scene._target_actors)
    assert scene._plan_actors and all(a.GetVisibility() for a in scene._plan_actors)
    box = w.display_panel.instructor
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=box.rect().center())
    assert not w.instructor_mode and not w.act_instructor.isChecked()
    assert not any(a.GetVisibility() for a in scene._target_actors + scene._plan_actors)
    assert not w.procedure_panel.hints.isVisible()
    assert w.mode_label.text() == "Exam mode"
    w.act_instructor.trigger()
    assert w.instructor_mode and all(a.GetVisibility() for a in scene._target_actors)


def test_needle_waits_at_the_planned_entry(window):
    scene = window.view3d.scene
    assert scene.needle_visible()
    m = np.array([[scene._needle_matrix.GetElement(i, j) for j in range(4)] for i in range(4)])
    entry, target = np.array([20.0, 10.0, 0.0]), np.array([0.0, -15.0, 0.0])
    direction = (target - entry) / np.linalg.norm(target - entry)
    assert np.allclose(m[:3, 2], direction, atol=1e-9)  # +Z: the direction of insertion
    assert np.allclose(m[:3, 3], entry - 10.0 * direction, atol=1e-6)


def test_loading_shows_progress_and_the_window_stays_responsive(qtbot, user_data, qsettings_file):
    release = threading.Event()
    synthetic = make_synthetic_anatomy()

    def slow_load(ref, progress=None):
        progress(0.5, "meshing the aorta")
        release.wait(20)
        progress(1.0, "done")
        return synthetic

    w = make_window(qtbot, qsettings_file, load=slow_load, wait=False)
    qtbot.waitUntil(lambda: w.progress_bar.isVisible() and w.progress_bar.value() == 500, timeout=5000)
    assert "meshing the aorta" in w.statusBar().currentMessage()
    # the GUI thread is free: a click is handled while the anatomy loads (the load waits for
    # `release`, set only below)
    w.show_shortcuts()
    qtbot.waitUntil(lambda: w.shortcuts_dialog.isVisible(), timeout=15_000)
    assert w.progress_bar.isVisible() and w.anatomy is not synthetic
    w.shortcuts_dialog.close()
    with qtbot.waitSignal(w.anatomy_shown, timeout=10_000):
        release.set()
    assert not w.progress_bar.isVisible()
    assert w.anatomy is synthetic


def test_shortcuts_are_listed_in_help(window):
    rows = dict(window.shortcut_rows())
    assert rows["1"].startswith("AP") and rows["7"].startswith("Axial")
    assert "Instructor mode" in rows.values()


def test_records_menu_with_shortcuts_in_help(window):
    w = window
    texts = [a.text().replace("&", "") for a in w.records_menu.actions() if a.text()]
    assert texts[:4] == ["Replay attempt\u2026", "Replay the last attempt", "History and learning curves\u2026",
                         "Instructor overview\u2026"]
    rows = dict(w.shortcut_rows())
    assert rows["Ctrl+R"] == "Replay attempt" and rows["Ctrl+H"] == "History and learning curves"
    assert rows["Ctrl+Shift+H"] == "Instructor overview" and rows["Ctrl+T"] == "Trainee"
    assert rows["P"] == "Replay: play / pause" and "Drag the replay slider" in rows
    # the replay's own keys work only during a replay
    assert not w.act_play.isEnabled() and not w.act_stop_replay.isEnabled()
    # the trainee: the OS user by default, shown in the status bar, remembered
    from simulator.ui.main_window import default_trainee

    assert w.trainee == default_trainee() and w.trainee in w.trainee_label.text()
    assert w.set_trainee("  Dr  Lee ") and w.trainee == "Dr Lee"
    assert w.settings.value("trainee") == "Dr Lee" and not w.set_trainee("  ")


def test_close_saves_the_state_and_releases_the_render_window(qtbot, user_data, qsettings_file):
    w = make_window(qtbot, qsettings_file)
    w.resize(1100, 760)
    w.set_instructor_mode(False)
    rw = w.view3d.render_window
    w.close()
    assert w.view3d.closed
    assert rw.GetGenericDisplayId() is None
    n = w.view3d.render_count
    w.view3d.request_render()
    qtbot.wait(30)
    assert w.view3d.render_count == n  # nothing renders after close

    w2 = make_window(qtbot, qsettings_file)
    assert (w2.width(), w2.height()) == (1100, 760)
    assert not w2.instructor_mode
    w2.close()


def test_default_scenario_on_the_bundled_patient(qtbot, qsettings_file, tmp_path, monkeypatch):
    """The real default: celiac plexus neurolysis on the bundled patient (needs the built cache)."""
    from simulator.core.paths import link_shared_data

    data = link_shared_data(tmp_path / "data")  # records of its own; the built patient and caches shared
    monkeypatch.setenv("NEUROLYSIS_DATA", str(data))
    from simulator.anatomy import bundled

    if not bundled.cache_is_valid():
        pytest.skip("the bundled patient's cache is not built (run `make test` or `python main.py setup-data`)")
    w = MainWindow(settings=QSettings(str(qsettings_file), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.anatomy_shown, timeout=300_000):  # the start-up time: `bench workstation` startup_s
        w.show()
    assert w.scenario.id == "celiac_plexus_posterior"
    scene = w.view3d.scene
    for name in ("vertebrae_L1", "vertebrae_T12", "aorta", "inferior_vena_cava", "kidney_left", "skin"):
        assert name in scene.structures, name
    img = w.view3d.screenshot()
    assert anatomy_mask(img).mean() > 0.1
    # prone: the view from above the back; the aorta (left of the midline) is on the image left
    d_aorta = scene.world_to_display(w.anatomy.centroid_mm("aorta"))
    d_ivc = scene.world_to_display(w.anatomy.centroid_mm("inferior_vena_cava"))
    assert d_aorta[0] < d_ivc[0]
    assert scene.critical_structures()["aorta"] == "critical"


def test_targets_without_points_are_left_out_and_named(synthetic_anatomy):
    from simulator.core.scenario import parse_scenario_text
    from simulator.ui.main_window import resolve_targets

    text = SCENARIO.format(id="t", title="Targets", anatomy="phantom:gel_block", position="supine",
                           modality="ultrasound")
    text = text.replace("critical_structures:", """  - id: proposed
    name: "From the labels"
    kind: point
    proposal: no_such_proposal
critical_structures:""")
    scenario = parse_scenario_text(text, "targets.yaml")
    targets = resolve_targets(scenario, synthetic_anatomy)
    assert [t.id for t in targets] == ["target"]
    assert np.allclose(targets[0].points_mm, [[0.0, -15.0, 0.0]])
    assert targets.unresolved == ["proposed"]


def test_a_fluoroscopy_attempt_replays_with_its_images_and_c_arm(qtbot, window):
    """Ended with Ctrl+E: stored with its score; Records > Replay the last attempt (Ctrl+Shift+R)
    replays it: the C-arm turns as recorded, each recorded exposure is taken again, and the
    rescore equals the stored score."""
    from simulator.core.events import EventKind
    from simulator.records.rescore import canonical
    from simulator.ui.driver import WindowDriver

    w = window
    qtbot.waitUntil(lambda: w.fluoro_view.ready, timeout=300_000)  # a fresh checkout compiles its kernels
    d = WindowDriver(w)
    plan = w.scenario.planned_trajectory
    d.click_skin(plan.entry_mm)
    d.aim_at(plan.target_mm)
    d.key(Qt.Key.Key_Left, Qt.KeyboardModifier.AltModifier)  # C-arm 5 degrees towards LAO
    qtbot.waitUntil(lambda: any(i.name == "set_carm_pose" for i in w.controller.procedure.recording.inputs), timeout=5000)
    d.shot()
    d.advance_to(plan.target_mm, shot_every_mm=6.0, stop_mm=2.0)
    d.shot()
    shots = sum(1 for e in w.controller.procedure.events if e.kind == EventKind.fluoro_shot)
    d.key(Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: w.score_dialog is not None, timeout=10_000)
    aid = w.last_attempt_id
    info = w.store.attempt(aid)
    assert info.status == "finished" and info.score == w.controller.card.score
    assert len(w.store.images(aid)) == shots  # every exposure kept for the report
    w.score_dialog.close()
    d.key(Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: w.player is not None, timeout=10_000)
    frames = w.fluoro_view.frames_shown
    w.timeline.speed_combo.setCurrentIndex(w.timeline.speed_combo.findData(4.0))
    d.key(Qt.Key.Key_P)  # play
    qtbot.waitUntil(lambda: w.player.state == "ended", timeout=60_000)
    qtbot.waitUntil(lambda: w.fluoro_view.frames_shown >= frames + shots and not w.fluoro_view.busy(), timeout=30_000)
    carm = [i for i in w.store.load_attempt(aid).inputs if i.name == "set_carm_pose"][-1].args
    assert w.fluoro_view.pose.lao_deg == pytest.approx(carm["lao_deg"])
    assert w.controller.procedure.recording.n_samples == info.n_samples
    assert w.timeline.rescore_button.isEnabled()
    # a jump back to just after the first exposure: the screen holds that image again (the needle
    # where it was then, the C-arm at that shot's angles)
    first_shot = next(i for i in w.store.load_attempt(aid).inputs if i.name == "record_fluoro_shot")
    frames = w.fluoro_view.frames_shown
    w.player.seek(first_shot.time_s + 0.01)
    qtbot.waitUntil(lambda: w.fluoro_view.frames_shown > frames and not w.fluoro_view.busy(), timeout=30_000)
    assert w.fluoro_view.pose.lao_deg == pytest.approx(first_shot.args["lao_deg"])
    w.player.seek(w.player.duration_s)
    assert w.timeline.rescore_button.isEnabled()
    w.timeline.rescore_button.click()
    assert w.replay_identical and canonical(w.replay_card.to_json()) == canonical(w.store.score_card(aid))
    d.key(Qt.Key.Key_Escape)  # stop the replay
    assert w.player is None and w.controller.active
