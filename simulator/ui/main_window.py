"""The trainer's main window: the 3D view, room for the imaging views, scenario and procedure panels.

Layout
- centre: a horizontal splitter with the 3D view and a vertical splitter holding the
  "Fluoroscopy" and "Ultrasound" panes; the panes shown follow the scenario's modality;
- left dock "Scenario": picker, summary, instructions, and the display controls (structure groups,
  camera presets, instructor mode);
- right dock "Procedure": the scenario's steps, targets and structures to avoid (instructor mode);
- status bar: messages, the anatomy loading progress bar, the anatomy shown.

State flows one way: the window owns the current scenario and anatomy; panels emit requests; the
scene is updated and a render is requested (coalesced by the 3D view). Anatomies load on a worker
thread (`AnatomyLoader`); the window stays responsive and shows the previous scenario meanwhile.
Errors (a broken scenario file, a missing anatomy) go to `report_error`: a non-modal message box
naming the file and field, the status bar, and `errors` (which tests read).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QScrollArea,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from simulator import __version__
from simulator.render.scene import (
    CAMERA_PRESETS,
    anatomy_polydata,
    PRESET_LABELS,
    default_preset,
    diameter_for_gauge,
    hub_colour_for_gauge,
    needle_tip_to_world_from,
)
from simulator.ui.loader import AnatomyLoader
from simulator.ui.panels import PRESET_KEYS, DisplayPanel, ImagingPane, ProcedurePanel, ScenarioPanel
from simulator.ui.view3d import View3D

ORGANISATION = "NeurolysisTrainer"
APPLICATION = "Trainer"
SETTINGS_VERSION = 1
NEEDLE_STANDOFF_MM = 10.0  # the needle waits this far outside the planned entry point


def _value(x) -> str:
    return str(getattr(x, "value", x))


def resolve_targets(scenario, anatomy) -> list:
    """The scenario's targets with their points (their own, else the anatomy's proposal), as
    the scoring sees them (`simulator.core.metrics.resolve_targets`). A target that cannot be
    resolved is left out (and named in the returned list's `unresolved`)."""
    from simulator.core.metrics import resolve_targets as resolve

    try:
        return _Targets(resolve(scenario, anatomy))
    except ValueError:
        pass
    out = _Targets()
    for t in scenario.targets:
        one = scenario.model_copy(update={"targets": [t]})
        try:
            out.extend(resolve(one, anatomy))
        except ValueError:
            out.unresolved.append(t.id)
    return out


class _Targets(list):
    def __init__(self, items=()):
        super().__init__(items)
        self.unresolved: list[str] = []


def _trajectories(scenario) -> list:
    paths = getattr(scenario, "trajectories", None)
    if paths is None:
        paths = [scenario.planned_trajectory] if scenario.planned_trajectory is not None else []
    return list(paths)


class MainWindow(QMainWindow):
    scenario_changed = Signal(object)  # the Scenario now current
    anatomy_shown = Signal(str)  # anatomy ref now in the 3D view
    error_reported = Signal(str)

    def __init__(self, scenario: str | None = None, settings: QSettings | None = None,
                 load_anatomy=None, show_dialogs: bool = True, parent=None):
        super().__init__(parent)
        self._t_start = time.perf_counter()
        self.setWindowTitle("Neurolysis Trainer")
        self.setObjectName("main_window")
        self.settings = settings if settings is not None else QSettings(ORGANISATION, APPLICATION)
        self.show_dialogs = show_dialogs
        self.errors: list[str] = []
        self.error_box: QMessageBox | None = None
        self.scenario = None
        self.scenario_path: str | None = None
        self.anatomy = None
        self.anatomy_ref: str | None = None
        self.targets: list = []
        self._pending: tuple | None = None  # (scenario, path) waiting for its anatomy
        self._closing = False
        self.startup_s: float | None = None

        self.loader = AnatomyLoader(load_fn=load_anatomy, prepare_fn=anatomy_polydata, parent=self)
        self.loader.progress.connect(self._on_progress)
        self.loader.loaded.connect(self._on_anatomy_loaded)
        self.loader.failed.connect(self._on_anatomy_failed)

        self._build_central()
        self._build_docks()
        self._build_status_bar()
        self._build_menus()
        self._default_geometry()
        self._restore_settings()

        self.refresh_scenarios()
        QTimer.singleShot(0, self, lambda: self._open_initial(scenario))

    def _open_initial(self, scenario: str | None) -> None:
        """The requested scenario, else the default one (also when the requested one fails)."""
        from simulator.core.scenario import DEFAULT_SCENARIO_ID

        if scenario is not None and self.open_scenario(scenario):
            return
        if scenario != DEFAULT_SCENARIO_ID:
            self.open_scenario(DEFAULT_SCENARIO_ID)

    # ----------------------------------------------------------------------------------------
    # construction
    # ----------------------------------------------------------------------------------------
    def _build_central(self) -> None:
        self.view3d = View3D(self)
        self.view3d.surface_picked.connect(self._on_surface_picked)
        self.fluoroscopy_pane = ImagingPane("Fluoroscopy", "Fluoroscopy image\n(C-arm view)")
        self.ultrasound_pane = ImagingPane("Ultrasound", "Ultrasound image\n(probe view)")
        self.imaging_splitter = QSplitter(Qt.Orientation.Vertical)
        self.imaging_splitter.setObjectName("imaging_splitter")
        self.imaging_splitter.addWidget(self.fluoroscopy_pane)
        self.imaging_splitter.addWidget(self.ultrasound_pane)
        self.central_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.central_splitter.setObjectName("central_splitter")
        self.central_splitter.addWidget(self.view3d)
        self.central_splitter.addWidget(self.imaging_splitter)
        self.central_splitter.setStretchFactor(0, 3)
        self.central_splitter.setStretchFactor(1, 2)
        self.central_splitter.setChildrenCollapsible(False)
        self.setCentralWidget(self.central_splitter)

    def _default_geometry(self) -> None:
        screen = self.screen().availableGeometry() if self.screen() is not None else None
        w, h = 1500, 950
        if screen is not None:
            w, h = min(w, int(0.95 * screen.width())), min(h, int(0.92 * screen.height()))
        self.resize(w, h)
        side = 300 + 260  # the docks
        self.central_splitter.setSizes([int(0.6 * (w - side)), int(0.4 * (w - side))])

    def _build_docks(self) -> None:
        self.scenario_panel = ScenarioPanel()
        self.scenario_panel.scenario_chosen.connect(self.open_scenario)
        self.display_panel = DisplayPanel()
        self.display_panel.group_visibility_changed.connect(self._on_group_visibility)
        self.display_panel.group_opacity_changed.connect(self._on_group_opacity)
        self.display_panel.preset_requested.connect(self.set_camera_preset)
        self.display_panel.reset_camera_requested.connect(self.reset_camera)
        self.display_panel.instructor_mode_changed.connect(self.set_instructor_mode)

        left = QWidget()
        lay = QVBoxLayout(left)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.scenario_panel, 1)
        lay.addWidget(self.display_panel)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(left)
        self.left_dock = QDockWidget("Scenario", self)
        self.left_dock.setObjectName("dock_scenario")
        self.left_dock.setWidget(scroll)
        self.left_dock.setMinimumWidth(300)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.left_dock)

        self.procedure_panel = ProcedurePanel()
        self.right_dock = QDockWidget("Procedure", self)
        self.right_dock.setObjectName("dock_procedure")
        self.right_dock.setWidget(self.procedure_panel)
        self.right_dock.setMinimumWidth(260)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.right_dock)

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("load_progress")
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setMaximumWidth(260)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.hide()
        self.anatomy_label = QLabel("")
        self.anatomy_label.setObjectName("anatomy_label")
        self.mode_label = QLabel("")
        self.render_label = QLabel("")
        self.render_label.setToolTip("Time the last 3D frame took to render")
        self.view3d.rendered.connect(lambda ms: self.render_label.setText(f"3D {ms:.0f} ms"))
        sb.addPermanentWidget(self.progress_bar)
        sb.addPermanentWidget(self.anatomy_label)
        sb.addPermanentWidget(self.render_label)
        sb.addPermanentWidget(self.mode_label)

    def _action(self, menu, text, slot, shortcut=None, checkable=False, tip=None) -> QAction:
        a = QAction(text, self)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        a.setCheckable(checkable)
        if tip:
            a.setStatusTip(tip)
        a.triggered.connect(slot)
        menu.addAction(a)
        self.addAction(a)  # shortcuts work while the menu bar is hidden too
        return a

    def _build_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        self.act_open = self._action(m, "&Open scenario\u2026", self.open_scenario_dialog, QKeySequence.StandardKey.Open)
        self.act_reload = self._action(m, "&Reload scenario", self.reload_scenario, "F5",
                                       tip="Read the scenario file again (after editing it)")
        self.act_rescan = self._action(m, "Re&scan scenario library", self.refresh_scenarios)
        m.addSeparator()
        self.act_quit = self._action(m, "&Quit", self.close, QKeySequence.StandardKey.Quit)

        v = mb.addMenu("&View")
        self.preset_actions: dict[str, QAction] = {}
        cam = v.addMenu("&Camera")
        for name in CAMERA_PRESETS:
            self.preset_actions[name] = self._action(
                cam, PRESET_LABELS[name], lambda _=False, n=name: self.set_camera_preset(n), PRESET_KEYS[name]
            )
        cam.addSeparator()
        self.act_reset_camera = self._action(cam, "Reset to the table view", self.reset_camera, "0")
        self.groups_menu = v.addMenu("Structure &groups")
        self.group_actions: dict[str, QAction] = {}
        v.addSeparator()
        self.act_instructor = self._action(v, "&Instructor mode", self.set_instructor_mode, "Ctrl+I", checkable=True,
                                           tip="Show targets, the plan and critical structures (exam mode hides them)")
        v.addSeparator()
        v.addAction(self.left_dock.toggleViewAction())
        v.addAction(self.right_dock.toggleViewAction())

        h = mb.addMenu("&Help")
        self.act_shortcuts = self._action(h, "&Keyboard shortcuts", self.show_shortcuts, "F1")
        self.act_about = self._action(h, "&About", self.show_about)

    # ----------------------------------------------------------------------------------------
    # settings
    # ----------------------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        s = self.settings
        if s.value("version", 0, int) == SETTINGS_VERSION:
            geom = s.value("geometry")
            if geom is not None:
                self.restoreGeometry(geom)
            state = s.value("windowState")
            if state is not None:
                self.restoreState(state)
            split = s.value("centralSplitter")
            if split is not None:
                self.central_splitter.restoreState(split)
        instructor = s.value("instructorMode", True, bool)
        self.act_instructor.setChecked(instructor)
        self.display_panel.instructor.blockSignals(True)
        self.display_panel.instructor.setChecked(instructor)
        self.display_panel.instructor.blockSignals(False)
        self._update_mode_label()

    def save_settings(self) -> None:
        s = self.settings
        s.setValue("version", SETTINGS_VERSION)
        s.setValue("geometry", self.saveGeometry())
        s.setValue("windowState", self.saveState())
        s.setValue("centralSplitter", self.central_splitter.saveState())
        s.setValue("instructorMode", self.instructor_mode)
        if self.scenario is not None:
            s.setValue("lastScenario", self.scenario_path)
        s.sync()

    # ----------------------------------------------------------------------------------------
    # scenarios
    # ----------------------------------------------------------------------------------------
    def refresh_scenarios(self) -> None:
        from simulator.core.scenario import list_scenarios

        try:
            entries = list_scenarios()
        except Exception as e:  # noqa: BLE001 - the window must open even with a broken library
            entries = []
            self.report_error("Scenario library", f"Could not list the scenarios: {e}")
        self.scenario_panel.set_entries(entries)
        if self.scenario_path:
            self.scenario_panel.select_path(self.scenario_path)

    def open_scenario_dialog(self) -> None:
        from simulator.core.paths import SCENARIOS_DIR

        start = str(Path(self.scenario_path).parent) if self.scenario_path else str(SCENARIOS_DIR)
        path, _ = QFileDialog.getOpenFileName(self, "Open scenario", start, "Scenario files (*.yaml *.yml)")
        if path:
            self.open_scenario(path)

    def reload_scenario(self) -> None:
        if self.scenario_path:
            self.open_scenario(self.scenario_path)

    def open_scenario(self, id_or_path: str) -> bool:
        """Open a scenario by id or file. On error: a message naming the file and field; the
        current scenario stays. Returns True when the scenario was read (its anatomy may still
        be loading)."""
        if self._closing:
            return False
        from simulator.core.scenario import ScenarioError, find_scenario, load_scenario

        try:
            path = find_scenario(id_or_path)
            scenario = load_scenario(path)
        except ScenarioError as e:
            self.report_error("Scenario file has an error", str(e))
            self.scenario_panel.select_path(self.scenario_path)
            return False
        except (FileNotFoundError, LookupError, ValueError, OSError) as e:
            self.report_error("Cannot open scenario", f"{id_or_path}: {e}")
            self.scenario_panel.select_path(self.scenario_path)
            return False
        path = str(path)
        if self.scenario_panel.row_of(path) < 0:  # opened from elsewhere: list it
            self.refresh_scenarios()
        self.scenario_panel.select_path(path)
        self._pending = (scenario, path)
        if scenario.anatomy in self.loader.cache:
            self._show(scenario, path, self.loader.cache[scenario.anatomy])
        else:
            self.statusBar().showMessage(f"Loading anatomy {scenario.anatomy}\u2026")
            self.progress_bar.setValue(0)
            self.progress_bar.setFormat(f"{scenario.anatomy} %p%")
            self.progress_bar.show()
            self.loader.request(scenario.anatomy)
        return True

    def _on_progress(self, fraction: float, message: str) -> None:
        if self._closing:
            return
        self.progress_bar.show()
        self.progress_bar.setValue(int(round(1000 * min(max(fraction, 0.0), 1.0))))
        if message:
            self.statusBar().showMessage(f"Loading anatomy: {message}")

    def _on_anatomy_loaded(self, ref: str, anatomy) -> None:
        if self._closing or self._pending is None:
            return
        scenario, path = self._pending
        if scenario.anatomy != ref:
            return  # an older request; it stays cached
        self._show(scenario, path, anatomy)

    def _on_anatomy_failed(self, ref: str, message: str) -> None:
        if self._closing:
            return
        pending = self._pending
        if pending is None or pending[0].anatomy != ref:
            return
        self._pending = None
        self.progress_bar.hide()
        self.report_error(
            "Cannot load the anatomy",
            f"Scenario {pending[1]}: field 'anatomy': {ref!r} could not be loaded:\n{message}",
        )
        self.scenario_panel.select_path(self.scenario_path)

    def _show(self, scenario, path: str, anatomy) -> None:
        """Make `scenario` current with its anatomy (GUI thread)."""
        self._pending = None
        self.progress_bar.hide()
        self.scenario = scenario
        self.scenario_path = path
        self.scenario_panel.select_path(path)
        self.scenario_panel.show_scenario(scenario)
        self.procedure_panel.show_scenario(scenario, self.instructor_mode)
        self.setWindowTitle(f"Neurolysis Trainer \u2014 {scenario.title}")
        self._arrange_views(_value(scenario.modality))
        scene = self.view3d.scene
        if anatomy is not self.anatomy:
            self.view3d.set_anatomy(anatomy, scenario.patient_position)
            self.anatomy = anatomy
            self._rebuild_group_controls()
        else:
            scene.patient_position = _value(scenario.patient_position)
        self.anatomy_ref = scenario.anatomy
        self.targets = resolve_targets(scenario, anatomy)
        if self.targets.unresolved:
            self.statusBar().showMessage(
                f"No points for target(s) {', '.join(self.targets.unresolved)} on this anatomy", 10000)
        self._apply_overlays()
        self._place_needle()
        self.set_camera_preset(default_preset(scenario.patient_position))
        n_tri = scene.triangle_count()
        self.anatomy_label.setText(f"{scenario.anatomy}: {len(scene.structures)} surfaces, {n_tri / 1000:.0f}k triangles")
        self.statusBar().showMessage(f"Scenario: {scenario.title}", 5000)
        if self.startup_s is None:
            self.startup_s = time.perf_counter() - self._t_start
        self.scenario_changed.emit(scenario)
        self.anatomy_shown.emit(scenario.anatomy)

    def _arrange_views(self, modality: str) -> None:
        """Fluoroscopy, ultrasound or both beside the 3D view."""
        self.fluoroscopy_pane.setVisible(modality in ("fluoroscopy", "both"))
        self.ultrasound_pane.setVisible(modality in ("ultrasound", "both"))

    # ----------------------------------------------------------------------------------------
    # display
    # ----------------------------------------------------------------------------------------
    def _rebuild_group_controls(self) -> None:
        scene = self.view3d.scene
        groups = scene.groups()
        visible = {g: scene.group_visible(g) for g in groups}
        opacity = {g: scene.group_opacity(g) for g in groups}
        counts = {g: len(scene.group_structures(g)) for g in groups}
        self.display_panel.set_groups(groups, visible, opacity, counts)
        self.groups_menu.clear()
        self.group_actions.clear()
        for i, g in enumerate(groups):
            a = QAction(g.capitalize(), self)
            a.setCheckable(True)
            a.setChecked(visible[g])
            if i < 9:
                a.setShortcut(QKeySequence(f"Ctrl+{i + 1}"))
            a.toggled.connect(lambda on, gg=g: self.set_group_visible(gg, on))
            self.groups_menu.addAction(a)
            self.addAction(a)
            self.group_actions[g] = a

    def set_group_visible(self, group: str, visible: bool) -> None:
        """Through the panel's checkbox, so the panel, the menu and the scene agree."""
        cb = self.display_panel.group_checks.get(group)
        if cb is not None and cb.isChecked() != visible:
            cb.setChecked(visible)  # emits -> _on_group_visibility
        else:
            self._on_group_visibility(group, visible)

    def _on_group_visibility(self, group: str, visible: bool) -> None:
        self.view3d.scene.set_group_visible(group, visible)
        a = self.group_actions.get(group)
        if a is not None and a.isChecked() != visible:
            a.blockSignals(True)
            a.setChecked(visible)
            a.blockSignals(False)
        self.view3d.request_render()

    def _on_group_opacity(self, group: str, opacity: float) -> None:
        self.view3d.scene.set_group_opacity(group, opacity)
        self.view3d.request_render(interactive=True)  # a slider drag: coarse meshes until it stops

    def set_camera_preset(self, name: str) -> None:
        pos = self.scenario.patient_position if self.scenario is not None else None
        self.view3d.scene.set_camera_preset(name, pos)
        self.display_panel.mark_preset(name)
        self.view3d.request_render()

    def reset_camera(self) -> None:
        pos = self.scenario.patient_position if self.scenario is not None else "supine"
        self.set_camera_preset(default_preset(pos))

    @property
    def instructor_mode(self) -> bool:
        return self.act_instructor.isChecked()

    def set_instructor_mode(self, on: bool) -> None:
        on = bool(on)
        for w in (self.act_instructor, self.display_panel.instructor):
            if w.isChecked() != on:
                w.blockSignals(True)
                w.setChecked(on)
                w.blockSignals(False)
        self._apply_overlays()
        self.procedure_panel.set_instructor(on)
        self._update_mode_label()

    def _update_mode_label(self) -> None:
        self.mode_label.setText("Instructor mode" if self.instructor_mode else "Exam mode")

    def _apply_overlays(self) -> None:
        scene = self.view3d.scene
        sc = self.scenario
        on = self.instructor_mode
        if sc is None or self.anatomy is None:
            return
        scene.show_targets(self.targets, on)
        scene.show_critical(sc.critical_structures, on)
        zone = sc.skin_entry_zone
        paths = [(t.entry_mm, t.target_mm) for t in _trajectories(sc)]
        scene.show_plan(paths, zone.center_mm if zone else None, zone.radius_mm if zone else None, visible=on)
        self.view3d.request_render()

    def _place_needle(self) -> None:
        """The needle waits just outside the planned entry point (or the entry zone), aimed at
        the target; the procedure (later issues) moves it."""
        sc = self.scenario
        scene = self.view3d.scene
        entry = target = None
        paths = _trajectories(sc)
        if paths:
            entry = np.asarray(paths[0].entry_mm, float)
            target = np.asarray(paths[0].target_mm, float)
        elif sc.skin_entry_zone is not None and self.targets:
            entry = np.asarray(sc.skin_entry_zone.center_mm, float)
            target = np.asarray(self.targets[0].points_mm[0], float)
        if entry is None or np.linalg.norm(target - entry) < 1.0:
            scene.hide_needle()
            return
        direction = (target - entry) / np.linalg.norm(target - entry)
        tip = entry - NEEDLE_STANDOFF_MM * direction
        scene.set_needle(
            needle_tip_to_world_from(tip, direction),
            length_mm=sc.needle.length_mm,
            diameter_mm=diameter_for_gauge(sc.needle.gauge),
            hub_colour=hub_colour_for_gauge(sc.needle.gauge),
        )

    def _on_surface_picked(self, point, name: str) -> None:
        self.statusBar().showMessage(
            f"{name.replace('_', ' ')} at R {point[0]:.1f}, A {point[1]:.1f}, S {point[2]:.1f} mm", 8000
        )

    # ----------------------------------------------------------------------------------------
    # messages and help
    # ----------------------------------------------------------------------------------------
    def report_error(self, title: str, text: str) -> None:
        """A non-modal message box (the app stays usable), the status bar, and `errors`."""
        self.errors.append(text)
        self.statusBar().showMessage(f"{title}: {text.splitlines()[0] if text else ''}", 15000)
        if self.show_dialogs and not self._closing:
            if self.error_box is not None:
                self.error_box.close()
            box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
            box.setObjectName("error_box")
            box.setWindowModality(Qt.WindowModality.NonModal)
            box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.destroyed.connect(lambda *_: setattr(self, "error_box", None))
            self.error_box = box
            box.show()
        self.error_reported.emit(text)

    @property
    def last_error(self) -> str | None:
        return self.errors[-1] if self.errors else None

    def shortcut_rows(self) -> list[tuple[str, str]]:
        rows = []
        for a in self.actions():
            seq = a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            if seq:
                rows.append((seq, a.text().replace("&", "").replace("\u2026", "")))
        rows += [
            ("Left drag", "Rotate the 3D view"),
            ("Right drag / wheel", "Zoom the 3D view"),
            ("Middle drag / Shift+left drag", "Pan the 3D view"),
            ("Left click", "Pick a point on a surface (shown in the status bar)"),
        ]
        return rows

    def show_shortcuts(self) -> None:
        dlg = QDialog(self)
        dlg.setObjectName("shortcuts_dialog")
        dlg.setWindowTitle("Keyboard shortcuts")
        lay = QVBoxLayout(dlg)
        text = QTextBrowser()
        text.setHtml(
            "<table cellpadding=3>"
            + "".join(f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in self.shortcut_rows())
            + "</table>"
        )
        lay.addWidget(text)
        dlg.resize(460, 520)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.show()
        self.shortcuts_dialog = dlg

    def show_about(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, "About Neurolysis Trainer",
                          f"Neurolysis Trainer {__version__}\n\nA simulator for image-guided needle placement "
                          "in chemical neurolysis (fluoroscopy and ultrasound).\n\nFor training only: not for "
                          "clinical use.", QMessageBox.StandardButton.Ok, self)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()

    # ----------------------------------------------------------------------------------------
    # lifetime
    # ----------------------------------------------------------------------------------------
    def closeEvent(self, event):  # noqa: N802 (Qt API)
        self._closing = True
        self.loader.stop()
        try:
            self.save_settings()
        finally:
            if self.error_box is not None:
                self.error_box.close()
            self.view3d.shutdown()
        super().closeEvent(event)
