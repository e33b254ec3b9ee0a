"""The scenario editor: an editor mode of the trainer's main window.

`EditorMode(window)` adds the "Scenario editor" menu. Entering the editor swaps the layout: the
left (Scenario) and right (Procedure) docks are hidden, an "Scenario editor" dock with the forms
takes the right side, and the slice views replace the fluoroscopy/ultrasound panes beside the 3D
view; the trainee's menus (needle, procedure, imaging) are disabled. Leaving restores exactly what
was there (docks, splitter, actions, 3D scene, camera).

The document (`simulator.core.scenario_doc.ScenarioDocument`) is the single state: the forms,
the slice overlays, the 3D overlays, the plan check and the error list all redraw from it after
every change, undo and redo. Clicks:
- slice views: the crosshair moves there; in a placing mode the point becomes a target, a point
  of the nerve being drawn, the entry, the tip position or the entry zone's centre;
- 3D view: a click on the skin sets the entry (or the zone centre) in those modes; otherwise the
  slices move to the point clicked.
Questions (unsaved changes) go through `window.ask`, files through `choose_file` when set (tests).
"""
from __future__ import annotations

import math
import re
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
    QAbstractSpinBox,
    QTextEdit,
)

from simulator.core.proposals import target_points
from simulator.core.tissue import Tissue
from simulator.ui.editor.fields import Binder
from simulator.ui.editor.panels import (
    CriticalPanel,
    ImagingPanel,
    MetaPanel,
    PlanPanel,
    RubricPanel,
    StepsPanel,
    TargetsPanel,
    TextPanel,
    scroll,
)
from simulator.ui.editor.slices import SliceOverlays, SlicePanel, label_lut

MODE_HINTS = {
    "": "Click a slice to move the crosshair; wheel: next slice (Shift: 5), Ctrl+wheel: zoom, drag: pan.",
    "point_target": "Click a slice where the target is (a point target).",
    "polyline": "Click the nerve's points one after another on the slices; Enter or double-click finishes, "
                "Backspace removes the last point, Escape cancels.",
    "move_point": "Click a slice: the selected target's point (a nerve: its nearest point) moves there.",
    "entry": "Click the skin in the 3D view (or a slice) where the needle enters.",
    "target": "Click a slice where the needle's tip should end.",
    "zone": "Click the skin in the 3D view (or a slice) at the centre of the entry zone.",
    "probe": "Click the skin in the 3D view (or a slice) where the ultrasound probe sits: it looks towards "
             "the planned tip (else the selected target).",
}
PROBE_MARGIN_MM = 15.0  # image depth beyond the point the probe looks at
ZONE_RADIUS_MM = 15.0
NEW_POLYLINE_RADIUS_MM = 2.0
NEW_POLYLINE_TOLERANCE_MM = 3.0
NEW_POINT_TOLERANCE_MM = 5.0
# top-level scenario fields -> the tab that edits them (the error list jumps there)
FIELD_TABS = {
    "targets": "Targets", "critical_structures": "Avoid", "skin_entry_zone": "Plan", "planned_trajectory": "Plan",
    "additional_trajectories": "Plan", "steps": "Steps", "imaging": "Imaging", "rubric": "Rubric",
    "instructions": "Text", "references": "Text",
}
TEXT_KEYS = {"name", "message", "reason", "citation", "used_for", "required", "somatic"}
SEVERITY_RANK = {"critical": 0, "fatal": 0, "major": 1, "minor": 2}
BANNER_LINES = 2  # plan problems written on the banner over the slices (all of them: Plan tab, tooltip)
SHAPE_PATHS = {"targets", "critical_structures", "skin_entry_zone", "planned_trajectory", "additional_trajectories",
               "anatomy", "patient_position", "imaging"}


def _value(x) -> str:
    return str(getattr(x, "value", x))


def needle_words(message: str) -> str:
    """A plan-check message as the Plan tab names the needles: "planned_trajectory: ..." ->
    "Needle 1: ...", "additional_trajectories[0]: ..." -> "Needle 2: ..." (the file's field names
    mean nothing to an instructor who never opened the YAML)."""
    if message.startswith("planned_trajectory: "):
        return "Needle 1: " + message[len("planned_trajectory: "):]
    m = re.match(r"additional_trajectories\[(\d+)\]: ", message)
    if m:
        return f"Needle {int(m.group(1)) + 2}: " + message[m.end():]
    return message


class NewScenarioDialog(QDialog):
    """Template, anatomy, id and title of a new scenario."""

    def __init__(self, parent=None):
        super().__init__(parent)
        from simulator.core.scenario import list_scenarios

        self.setObjectName("new_scenario_dialog")
        self.setWindowTitle("New scenario from a template")
        lay = QVBoxLayout(self)
        f = QFormLayout()
        self.template = QComboBox()
        self.template.setObjectName("template_choice")
        for e in list_scenarios():
            if e.ok:
                self.template.addItem(f"{e.title} ({e.id})", str(e.path))
        self.anatomy = QComboBox()
        self.anatomy.setObjectName("anatomy_choice")
        for ref, text in self.anatomies():
            self.anatomy.addItem(text, ref)
        self.scenario_id = QLineEdit()
        self.scenario_id.setObjectName("new_id")
        self.scenario_id.setPlaceholderText("e.g. celiac_left_only")
        self.title = QLineEdit()
        self.title.setObjectName("new_title")
        f.addRow("Template", self.template)
        f.addRow("Anatomy", self.anatomy)
        f.addRow("Id", self.scenario_id)
        f.addRow("Title", self.title)
        lay.addLayout(f)
        note = QLabel("On the template's own anatomy its targets and plan are kept; on another anatomy "
                      "they are removed (targets named by a proposal keep it) and you place them anew.")
        note.setWordWrap(True)
        lay.addWidget(note)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)

    @staticmethod
    def anatomies() -> list[tuple[str, str]]:
        out = [("bundled", "bundled patient (CT, labelled)")]
        try:
            from simulator.anatomy.phantoms import PHANTOMS

            out += [(f"phantom:{n}", f"phantom: {n.replace('_', ' ')}") for n in PHANTOMS]
        except ImportError:
            pass
        try:
            from simulator.core.paths import anatomies_dir

            for d in sorted(anatomies_dir().iterdir()):
                if (d / "anatomy.json").exists():
                    out.append((f"user:{d.name}", f"imported: {d.name}"))
        except OSError:
            pass
        return out

    def choose(self, combo: QComboBox, data: str) -> bool:
        i = combo.findData(data)
        if i < 0:
            for j in range(combo.count()):
                if str(combo.itemData(j)).endswith(f"/{data}.yaml"):
                    i = j
        if i >= 0:
            combo.setCurrentIndex(i)
        return i >= 0


class _EditorFilter(QObject):
    """While the editor is shown: Space is not the fluoroscopy pedal, and closing the window
    first leaves the editor (asking about unsaved changes)."""

    def __init__(self, mode: "EditorMode"):
        super().__init__(mode)
        self.mode = mode

    def eventFilter(self, obj, event):  # noqa: N802 (Qt API)
        m = self.mode
        t = event.type()
        if obj is m.window and t == QEvent.Type.Close and m.active:
            if not m.leave(ask=True):
                event.ignore()
                return True
            return False
        if t in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease) and m.active and event.key() == Qt.Key.Key_Space:
            if not isinstance(obj, QWidget) or obj.window() is not m.window:
                return False
            if isinstance(obj, (QLineEdit, QAbstractSpinBox, QTextEdit)):
                return False  # the window's pedal filter lets these type
            if m.dock.isAncestorOf(obj):
                # the editor's own widgets (plain text, check lists, buttons): Space is theirs, not
                # the fluoroscopy pedal's, so deliver it here, past the window's pedal filter
                obj.event(event)
                return True
            return True  # slice views, 3D view: no pedal in the editor
        return False


class EditorMode(QObject):
    entered = Signal()
    left = Signal()
    document_changed = Signal()
    anatomy_ready = Signal(object)

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.doc = None
        self.anatomy = None
        self.anatomy_ref: str | None = None
        self._wanted_ref: str | None = None
        self.active = False
        self.mode = ""
        self.pending: list = []  # polyline points being drawn
        self.pending_entry = None
        self.pending_target = None
        self.choose_file = None  # callable(caption, default_path, save: bool) -> str | None (tests)
        self.practice_path: Path | None = None
        self.plan_problems: list = []
        self.tunnel_frame = None
        self._saved: dict | None = None
        self._scene_anatomy = None
        self._proposals_for = None
        self.binder = Binder(self)
        self._filter = _EditorFilter(self)
        self._build_widgets()
        self._build_menu()
        self._tunnel_worker = None
        window.installEventFilter(self._filter)
        window.loader.loaded.connect(self._on_loaded)
        window.loader.failed.connect(self._on_load_failed)

    # ------------------------------------------------------------------------------------
    # construction
    # ------------------------------------------------------------------------------------
    def _build_widgets(self) -> None:
        w = self.window
        self._park = QWidget(w)  # holds whichever of the slice panel / imaging panes is not shown
        self._park.hide()
        self.slices = SlicePanel(self._park)
        self.slices.point_clicked.connect(self._on_slice_click)
        self.slices.key_pressed.connect(self._on_key)
        self.slices.on_slices_moved = self._draw_slices
        self.slices.hint.setText(MODE_HINTS[""])
        b = self.binder
        self.targets_panel = TargetsPanel(b)
        self.targets_panel.mode_requested.connect(self.set_mode)
        self.targets_panel.proposal_requested.connect(self.add_proposal)
        self.targets_panel.editor.selection_changed.connect(lambda _i: self._redraw())
        self.critical_panel = CriticalPanel(b)
        self.plan_panel = PlanPanel(b)
        self.plan_panel.mode_requested.connect(self.set_mode)
        self.plan_panel.tunnel_requested.connect(self.preview_tunnel)
        self.plan_panel.clear_requested.connect(self._clear_plan_part)
        self.plan_panel.target_from_selection.connect(self.plan_to_selected_target)
        self.plan_panel.needle_changed.connect(self._needle_changed)
        self.steps_panel = StepsPanel(b)
        self.imaging_panel = ImagingPanel(b)
        self.imaging_panel.mode_requested.connect(self.set_mode)
        self.imaging_panel.turn_requested.connect(self.turn_probe)
        self.rubric_panel = RubricPanel(b)
        self.text_panel = TextPanel(b)
        self.meta_panel = MetaPanel(b)
        self.yaml_view = QPlainTextEdit()
        self.yaml_view.setObjectName("yaml_view")
        self.yaml_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.yaml_view.modificationChanged.connect(lambda on: self.yaml_apply.setEnabled(on))
        self.yaml_apply = QPushButton("Apply the text (undoable)")
        self.yaml_apply.setObjectName("yaml_apply")
        self.yaml_apply.setEnabled(False)
        self.yaml_apply.clicked.connect(self.apply_yaml)
        yaml_tab = QWidget()
        yl = QVBoxLayout(yaml_tab)
        yl.setContentsMargins(0, 0, 0, 0)
        yl.addWidget(self.yaml_view)
        yl.addWidget(self.yaml_apply)
        self.yaml_tab = yaml_tab
        self.tabs = QTabWidget()
        self.tabs.setObjectName("editor_tabs")
        for panel, name in ((self.meta_panel, "Scenario"), (self.targets_panel, "Targets"),
                            (self.critical_panel, "Avoid"), (self.plan_panel, "Plan"), (self.steps_panel, "Steps"),
                            (self.rubric_panel, "Rubric"), (self.imaging_panel, "Imaging"), (self.text_panel, "Text")):
            self.tabs.addTab(scroll(panel), name)
        self.tabs.addTab(yaml_tab, "YAML")
        self.tabs.currentChanged.connect(lambda _i: self._show_yaml())
        self.error_title = QLabel("")
        self.error_title.setObjectName("error_title")
        self.error_list = QListWidget()
        self.error_list.setObjectName("error_list")
        self.error_list.setWordWrap(True)
        self.error_list.itemActivated.connect(self._jump_to_error)
        self.error_list.itemClicked.connect(self._jump_to_error)
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(self.tabs)
        errs = QWidget()
        el = QVBoxLayout(errs)
        el.setContentsMargins(0, 0, 0, 0)
        el.addWidget(self.error_title)
        el.addWidget(self.error_list)
        body.addWidget(errs)
        body.setStretchFactor(0, 4)
        body.setStretchFactor(1, 1)
        self.dock = QDockWidget("Scenario editor", w)
        self.dock.setObjectName("dock_editor")
        self.dock.setWidget(body)
        self.dock.setMinimumWidth(400)
        self.dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        w.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.dock.hide()

    def _action(self, menu, text, slot, shortcut=None, tip=None) -> QAction:
        a = QAction(text, self.window)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if tip:
            a.setStatusTip(tip)
        a.triggered.connect(lambda _=False: slot())
        menu.addAction(a)
        self.window.addAction(a)
        return a

    def _build_menu(self) -> None:
        mb = self.window.menuBar()
        help_action = next((a for a in mb.actions() if a.text().replace("&", "") == "Help"), None)
        m = QMenu("Scenario &editor", mb)
        if help_action is not None:  # before Help, the last menu by convention
            mb.insertMenu(help_action, m)
        else:
            mb.addMenu(m)
        m.setObjectName("menu_editor")
        self.menu = m
        self.act_new = self._action(m, "&New scenario from template\u2026", self.new_scenario_dialog, "Ctrl+Shift+N")
        self.act_edit = self._action(m, "&Edit current scenario", self.edit_current, "Ctrl+Shift+E",
                                     tip="Open the scenario on screen in the editor")
        self.act_open = self._action(m, "&Open scenario file\u2026", self.open_file_dialog)
        m.addSeparator()
        self.act_save = self._action(m, "&Save", self.save, "Ctrl+S")
        self.act_save_as = self._action(m, "Save &as\u2026", self.save_as, "Ctrl+Shift+S")
        m.addSeparator()
        self.act_undo = self._action(m, "&Undo", self.undo, QKeySequence.StandardKey.Undo)
        self.act_redo = self._action(m, "&Redo", self.redo, "Ctrl+Shift+Z")
        self.act_redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        m.addSeparator()
        self.act_try = self._action(m, "&Try in practice mode", self.try_in_practice, "F9",
                                    tip="Save a copy and open it in the trainer (instructor mode)")
        self.act_close = self._action(m, "&Close editor", self.leave, "Ctrl+Shift+W")
        self.actions = [self.act_new, self.act_edit, self.act_open, self.act_save, self.act_save_as, self.act_undo,
                        self.act_redo, self.act_try, self.act_close]
        self._update_actions()

    # ------------------------------------------------------------------------------------
    # entering and leaving
    # ------------------------------------------------------------------------------------
    def _kept_actions(self) -> set:
        w = self.window
        keep = set(self.actions)
        for name in ("act_quit", "act_shortcuts", "act_about", "act_reset_camera"):
            a = getattr(w, name, None)
            if a is not None:
                keep.add(a)
        keep.update(getattr(w, "preset_actions", {}).values())
        keep.update(getattr(w, "group_actions", {}).values())
        return keep

    def enter(self) -> bool:
        """Show the editor layout (the document must be set)."""
        if self.active:
            return True
        w = self.window
        c = w.controller
        restart = False
        if c.in_progress:
            answer = w.ask("keep_attempt", "An attempt is in progress. Keep it before opening the scenario "
                           "editor?\n\nKeep: end it, score it and save its recording. Discard: drop it.",
                           {"keep": "Keep", "discard": "Discard", "cancel": "Cancel"}, "cancel")
            if answer == "cancel":
                return False
            if answer == "keep":
                w.keep_attempt()
            else:
                restart = True
        cam = w.view3d.scene.renderer.GetActiveCamera()
        self._saved = {
            "left": w.left_dock.isVisible(), "right": w.right_dock.isVisible(),
            "splitter": w.central_splitter.saveState(), "title": w.windowTitle(), "state": w.saveState(),
            "actions": {a: a.isEnabled() for a in w.actions() if a not in self._kept_actions()},
            "camera": (cam.GetPosition(), cam.GetFocalPoint(), cam.GetViewUp(), cam.GetParallelScale(), cam.GetViewAngle()),
            "restart": restart, "exam": not w.instructor_mode,
        }
        w.fluoro_view.pedal_release()
        w.left_dock.hide()
        w.right_dock.hide()
        old = w.central_splitter.replaceWidget(1, self.slices)
        if old is not None:
            old.setParent(self._park)
        self.slices.show()
        self.dock.show()
        w.resizeDocks([self.dock], [460], Qt.Orientation.Horizontal)
        total = sum(w.central_splitter.sizes())
        w.central_splitter.setSizes([int(0.42 * total), total - int(0.42 * total)])
        for a in self._saved["actions"]:
            a.setEnabled(False)
        try:
            w.view3d.surface_picked.disconnect(w._on_surface_picked)
        except (RuntimeError, TypeError):
            pass
        w.view3d.surface_picked.connect(self._on_surface_picked)
        QApplication.instance().installEventFilter(self._filter)
        self.active = True
        scene = w.view3d.scene
        scene.set_exam_view(False)
        scene.hide_needle()
        self._pick_skin()
        if self.anatomy is not None:
            self._show_anatomy_3d()
        self._update_actions()
        self.refresh_all()
        self.entered.emit()
        return True

    def leave(self, ask: bool = True) -> bool:
        """Back to the trainer's layout. With unsaved changes (and `ask`): save, discard or cancel."""
        if not self.active:
            return True
        self.binder.flush()
        w = self.window
        if ask and self.doc is not None and self.doc.dirty:
            answer = w.ask("editor_unsaved", "The scenario has unsaved changes. Save them before leaving the editor?",
                           {"save": "Save", "discard": "Discard", "cancel": "Cancel"}, "cancel")
            if answer == "cancel":
                return False
            if answer == "save" and self.save() is None:
                return False
            if answer == "discard":
                self._drop_document()
        self.set_mode("")
        QApplication.instance().removeEventFilter(self._filter)
        s = self._saved or {}
        self.dock.hide()
        back = w.imaging_splitter
        old = w.central_splitter.replaceWidget(1, back)
        if old is not None:
            old.setParent(self._park)
        back.show()
        if "state" in s:
            w.restoreState(s["state"])
        self.dock.hide()
        w.left_dock.setVisible(s.get("left", True))
        w.right_dock.setVisible(s.get("right", True))
        if "splitter" in s:
            w.central_splitter.restoreState(s["splitter"])
        for a, enabled in s.get("actions", {}).items():
            a.setEnabled(enabled)
        try:
            w.view3d.surface_picked.disconnect(self._on_surface_picked)
        except (RuntimeError, TypeError):
            pass
        w.view3d.surface_picked.connect(w._on_surface_picked)
        self.active = False
        self._restore_scene(s)
        w.setWindowTitle(s.get("title", w.windowTitle()))
        self._update_actions()
        self._saved = None
        self.left.emit()
        return True

    def _restore_scene(self, s: dict) -> None:
        w = self.window
        scene = w.view3d.scene
        self._pick_skin()
        if w.anatomy is not None and self._scene_anatomy is not None and self._scene_anatomy is not w.anatomy:
            w.view3d.set_anatomy(w.anatomy, w.scenario.patient_position if w.scenario is not None else None)
            if hasattr(w, "_rebuild_group_controls"):
                w._rebuild_group_controls()
        self._scene_anatomy = None
        if w.scenario is not None and w.anatomy is not None:
            scene.show_targets(w.targets, w.instructor_mode)
            if hasattr(w, "_apply_exam_view"):
                w._apply_exam_view()
            if hasattr(w, "_apply_overlays"):
                w._apply_overlays()
        else:
            scene.show_targets([], False)
            scene.show_critical([], False)
            scene.show_plan([], None, None, visible=False)
        if s.get("restart") and w.scenario is not None and hasattr(w, "_start_attempt"):
            w._start_attempt()
        cam_state = s.get("camera")
        if cam_state is not None and w.anatomy is scene.anatomy:
            cam = scene.renderer.GetActiveCamera()
            cam.SetPosition(*cam_state[0])
            cam.SetFocalPoint(*cam_state[1])
            cam.SetViewUp(*cam_state[2])
            cam.SetParallelScale(cam_state[3])
            cam.SetViewAngle(cam_state[4])
            scene.renderer.ResetCameraClippingRange()
        w.view3d.request_render()

    def _pick_skin(self) -> None:
        """A click on the 3D view picks the skin (the entry; the trainer does the same)."""
        scene = self.window.view3d.scene
        self.window.view3d.pick_structures = ["skin"] if "skin" in scene.structures else None

    # ------------------------------------------------------------------------------------
    # documents
    # ------------------------------------------------------------------------------------
    def _confirm_replace(self) -> bool:
        """Before another document replaces a changed one."""
        self.binder.flush()
        doc = self.doc
        if doc is None or not doc.dirty:
            return True
        answer = self.window.ask("editor_unsaved", "The scenario in the editor has unsaved changes. Save them first?",
                                 {"save": "Save", "discard": "Discard", "cancel": "Cancel"}, "cancel")
        if answer == "cancel":
            return False
        if answer == "save":
            return self.save() is not None
        return True

    def _drop_document(self) -> None:
        if self.doc is not None:
            self.doc.unsubscribe(self._on_doc_change)
        self.doc = None
        self.practice_path = None
        self.binder.set_document(None)

    def set_document(self, doc) -> None:
        if self.doc is not None and self.doc is not doc:
            self.doc.unsubscribe(self._on_doc_change)
        self.doc = doc
        self.pending = []
        self.pending_entry = self.pending_target = None
        self.plan_panel.index = 0
        self.tunnel_frame = None
        self.plan_panel.tunnel.set_image(None)
        self.plan_panel.tunnel_info.setText("")
        doc.subscribe(self._on_doc_change)
        self.yaml_view.document().setModified(False)
        for ed in (self.targets_panel.editor, self.critical_panel.editor, self.rubric_panel.editor, self.text_panel.editor,
                   self.steps_panel.options):
            ed.index = 0 if doc.get(ed.list_path) else -1
        self.binder.set_document(doc)
        self._ensure_anatomy()
        if self.anatomy is not None and self.anatomy_ref == doc.get(("anatomy",)):
            self._centre_on_plan()  # the same patient: the slices go to this scenario's plan
        self.refresh_all()
        self.document_changed.emit()

    def new_scenario(self, *, template: str, anatomy: str, scenario_id: str, title: str) -> bool:
        from simulator.core.scenario import ScenarioError
        from simulator.core.scenario_doc import ScenarioDocument

        if not self._confirm_replace():
            return False
        try:
            doc = ScenarioDocument.new(scenario_id=scenario_id, title=title, anatomy=anatomy, template=template)
        except (ScenarioError, OSError, LookupError, ValueError) as e:
            self.window.report_error("Cannot make the scenario", f"template {template}: {e}")
            return False
        self.practice_path = None
        self.set_document(doc)
        return self.enter()

    def new_scenario_dialog(self) -> NewScenarioDialog:
        dlg = NewScenarioDialog(self.window)
        if self.window.scenario_path:
            dlg.choose(dlg.template, str(self.window.scenario_path))
        if self.window.anatomy_ref:
            dlg.choose(dlg.anatomy, self.window.anatomy_ref)
        dlg.accepted.connect(lambda: self.new_scenario(
            template=dlg.template.currentData(), anatomy=dlg.anatomy.currentData(),
            scenario_id=dlg.scenario_id.text().strip(), title=dlg.title.text().strip()))
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.new_dialog = dlg
        dlg.open()
        return dlg

    def edit_current(self) -> bool:
        """The scenario on screen in the trainer (back to the editor's document after a try)."""
        from simulator.core.scenario import ScenarioError
        from simulator.core.scenario_doc import ScenarioDocument

        w = self.window
        if self.active:
            return True
        if self.doc is not None and self.practice_path is not None and w.scenario_path is not None \
                and Path(w.scenario_path).resolve() == self.practice_path.resolve():
            return self.enter()
        if not w.scenario_path:
            w.statusBar().showMessage("No scenario to edit: open one, or make a new one from a template", 8000)
            return False
        if not self._confirm_replace():
            return False
        try:
            doc = ScenarioDocument.open(w.scenario_path)
        except (ScenarioError, OSError) as e:
            w.report_error("Cannot open the scenario in the editor", str(e))
            return False
        self.practice_path = None
        self.set_document(doc)
        return self.enter()

    def open_file(self, path) -> bool:
        from simulator.core.scenario import ScenarioError
        from simulator.core.scenario_doc import ScenarioDocument

        if not self._confirm_replace():
            return False
        try:
            doc = ScenarioDocument.open(path)
        except (ScenarioError, OSError) as e:
            self.window.report_error("Cannot open the scenario in the editor", f"{path}: {e}")
            return False
        self.practice_path = None
        self.set_document(doc)
        return self.enter()

    def _ask_file(self, caption: str, default: Path, save: bool) -> str | None:
        if self.choose_file is not None:
            return self.choose_file(caption, default, save)
        filt = "Scenario files (*.yaml *.yml)"
        if save:
            path, _ = QFileDialog.getSaveFileName(self.window, caption, str(default), filt)
        else:
            path, _ = QFileDialog.getOpenFileName(self.window, caption, str(default), filt)
        return path or None

    def open_file_dialog(self) -> bool:
        from simulator.core.paths import user_scenarios_dir

        path = self._ask_file("Open a scenario in the editor", user_scenarios_dir(), save=False)
        return self.open_file(path) if path else False

    @staticmethod
    def _in_library(path: Path) -> bool:
        from simulator.core.paths import SCENARIOS_DIR

        try:
            Path(path).resolve().relative_to(SCENARIOS_DIR.resolve())
            return True
        except ValueError:
            return False

    def save(self) -> Path | None:
        """Save to the document's file; a new scenario, or one of the library's, goes to a file
        chosen in the user's scenarios folder (Save as)."""
        self.binder.flush()
        doc = self.doc
        if doc is None:
            return None
        if doc.path is None or self._in_library(doc.path) or (self.practice_path is not None and doc.path == self.practice_path):
            return self.save_as()
        return self._save_to(doc.path)

    def save_as(self, path=None) -> Path | None:
        self.binder.flush()
        doc = self.doc
        if doc is None:
            return None
        if not self._refuse_invalid("saved"):
            return None
        if path is None:
            path = self._ask_file("Save the scenario as", doc.default_save_path(), save=True)
            if not path:
                return None
        return self._save_to(Path(path))

    def _refuse_invalid(self, what: str) -> bool:
        doc = self.doc
        errs = doc.formatted_errors()
        if errs:
            self.window.report_error(f"The scenario is not {what}: it has errors", "\n".join(errs))
            self.tabs.setCurrentIndex(self._tab_index(self._tab_of(doc.errors()[0].field)))
            return False
        return True

    def _save_to(self, path: Path) -> Path | None:
        from simulator.core.scenario import ScenarioError

        if not self._refuse_invalid("saved"):
            return None
        try:
            saved = self.doc.save(path)
        except (ScenarioError, OSError, ValueError) as e:
            self.window.report_error("The scenario is not saved", f"{path}: {e}")
            return None
        self.window.statusBar().showMessage(f"Scenario saved: {saved}", 8000)
        self.window.refresh_scenarios()
        self.refresh_all()
        return Path(saved)

    def undo(self) -> None:
        if self.doc is not None:
            self.binder.flush()
            self.binder.end_merge()
            self.doc.undo()

    def redo(self) -> None:
        if self.doc is not None:
            self.binder.flush()
            self.binder.end_merge()
            self.doc.redo()

    def try_in_practice(self) -> bool:
        """Save a copy (the user's data folder; the document keeps its own file), leave the
        editor and open the copy in the trainer, instructor (practice) mode. "Edit current
        scenario" comes back to this document."""
        from simulator.core.paths import user_data_dir

        self.binder.flush()
        doc = self.doc
        if doc is None or not self._refuse_invalid("tried"):
            return False
        sid = doc.get(("id",)) or "scenario"
        folder = user_data_dir() / "editor"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{sid}.practice.yaml"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(doc.text(), encoding="utf-8")
        tmp.replace(path)
        self.practice_path = path
        self.leave(ask=False)
        w = self.window
        w.set_instructor_mode(True)
        ok = w.open_scenario(str(path))
        if ok:
            w.statusBar().showMessage("Practice: the scenario from the editor (Scenario editor \u2192 Edit current "
                                      "scenario goes back to it)", 10000)
        return ok

    # ------------------------------------------------------------------------------------
    # the anatomy
    # ------------------------------------------------------------------------------------
    def _ensure_anatomy(self) -> None:
        ref = self.doc.get(("anatomy",)) if self.doc is not None else None
        if not isinstance(ref, str) or not ref or ref == self.anatomy_ref:
            return
        w = self.window
        self._wanted_ref = ref
        if ref == w.anatomy_ref and w.anatomy is not None:
            self._set_anatomy(ref, w.anatomy)
        elif ref in w.loader.cache:
            self._set_anatomy(ref, w.loader.cache[ref])
        else:
            self.slices.hint.setText(f"Loading the anatomy {ref}\u2026")
            w.loader.request(ref)

    def _on_loaded(self, ref: str, anatomy) -> None:
        if ref == self._wanted_ref and ref != self.anatomy_ref:
            self._set_anatomy(ref, anatomy)

    def _on_load_failed(self, ref: str, message: str) -> None:
        if ref == self._wanted_ref:
            self._wanted_ref = None
            self.window.report_error("Cannot load the anatomy", f"{self.doc.file_label if self.doc else ''}: "
                                     f"field 'anatomy': {ref!r} could not be loaded:\n{message}")

    def _set_anatomy(self, ref: str, anatomy) -> None:
        self.anatomy_ref = ref
        self.anatomy = anatomy
        self.slices.hint.setText(MODE_HINTS.get(self.mode, ""))
        self.slices.set_anatomy(anatomy, self._lut())
        self.critical_panel.set_anatomy(anatomy)
        self.targets_panel.set_proposals([])
        self._proposals_for = None
        QTimer.singleShot(0, self, self._fill_proposals)
        self._centre_on_plan()
        if self.active:
            self._show_anatomy_3d()
        self.refresh_all()
        self.anatomy_ready.emit(anatomy)

    def _fill_proposals(self) -> None:
        an = self.anatomy
        if an is None or self._proposals_for is an:
            return
        try:
            from simulator.core.proposals import propose_targets

            names = list(propose_targets(an))
        except Exception as e:  # noqa: BLE001 - a label map the proposals cannot read: none offered
            names = []
            self.window.statusBar().showMessage(f"No target proposals for this anatomy: {e}", 8000)
        self._proposals_for = an
        self.targets_panel.set_proposals(names)

    def _show_anatomy_3d(self) -> None:
        w = self.window
        scene = w.view3d.scene
        pos = self.doc.get(("patient_position",)) if self.doc is not None else None
        if scene.anatomy is not self.anatomy:
            w.view3d.set_anatomy(self.anatomy, pos if isinstance(pos, str) else None)
            from simulator.render.camera import default_preset

            scene.set_camera_preset(default_preset(pos if isinstance(pos, str) else "supine"), pos)
        self._scene_anatomy = self.anatomy
        scene.set_exam_view(False)
        scene.hide_needle()
        self._pick_skin()
        self._draw_3d()

    def _centre_on_plan(self) -> None:
        """The crosshair on the planned tip, else the first target's middle point."""
        trajs = self._trajectories()
        if trajs:
            self.slices.set_cursor(trajs[0][1])
            return
        pts = self._resolved_targets()
        if pts:
            p = np.asarray(pts[0].points_mm, float).reshape(-1, 3)
            self.slices.set_cursor(p[len(p) // 2] if len(p) > 2 else p.mean(axis=0))

    def _lut(self):
        crit_labels, crit_tissues = {}, {}
        an = self.anatomy
        for c in (self.doc.get(("critical_structures",)) or []) if self.doc is not None else []:
            if not isinstance(c, dict):
                continue
            sev = str(c.get("severity", "major"))
            if c.get("structure"):
                s = an.structure_by_name(str(c["structure"]))
                if s is not None:
                    crit_labels[s.id] = sev
            elif c.get("tissue"):
                try:
                    crit_tissues[int(Tissue[str(c["tissue"]).upper()])] = sev
                except KeyError:
                    pass
        return label_lut(an, crit_labels, crit_tissues)

    # ------------------------------------------------------------------------------------
    # refreshing from the document
    # ------------------------------------------------------------------------------------
    def _on_doc_change(self, paths: list) -> None:
        tops = {p[0] if p else "" for p in paths}
        if "" in tops or "anatomy" in tops:
            self._ensure_anatomy()
        words = all(len(p) > 1 and p[-1] in TEXT_KEYS for p in paths)  # a name or message: nothing to redraw
        self.refresh_all(shapes=not words and ("" in tops or bool(tops & SHAPE_PATHS)))
        self.document_changed.emit()

    def refresh_all(self, shapes: bool = True) -> None:
        doc = self.doc
        self.binder.refresh()
        for p in (self.targets_panel, self.critical_panel, self.steps_panel, self.rubric_panel, self.text_panel):
            p.refresh()
        self.meta_panel.refresh(doc)
        self.imaging_panel.refresh()
        self.plan_panel.refresh(self.pending_entry)
        self._show_errors()
        self._show_yaml()
        self._update_actions()
        if shapes:
            if self.anatomy is not None and doc is not None:
                self.slices.set_lut(self._lut())
            self._redraw()
            self.check_plan()

    def _redraw(self) -> None:
        self._draw_slices()
        if self.active and self.anatomy is not None and self._scene_anatomy is self.anatomy:
            self._draw_3d()

    def _resolved_targets(self) -> list:
        """The document's targets with their points (their own, else their proposal's)."""
        out = []
        doc, an = self.doc, self.anatomy
        if doc is None:
            return out
        sel = self.targets_panel.editor.index
        for i, t in enumerate(doc.get(("targets",)) or []):
            if not isinstance(t, dict):
                continue
            try:
                pts = target_points(an, t.get("points_mm"), t.get("proposal"))
            except Exception:  # noqa: BLE001 - unresolved: not drawn
                pts = None
            try:
                arr = np.asarray(pts, float).reshape(-1, 3)
            except (TypeError, ValueError):
                continue
            if not len(arr):
                continue

            def num(key, default):
                try:
                    return float(t.get(key, default))
                except (TypeError, ValueError):
                    return default

            out.append(SimpleNamespace(id=str(t.get("id", "?")), kind=str(t.get("kind", "point")), points_mm=arr,
                                       radius_mm=num("radius_mm", 0.0), tolerance_mm=num("tolerance_mm", 5.0),
                                       selected=i == sel))
        return out

    def _trajectories(self) -> list:
        doc = self.doc
        out = []
        if doc is None:
            return out
        items = [doc.get(("planned_trajectory",))] + list(doc.get(("additional_trajectories",)) or [])
        for t in items:
            if not isinstance(t, dict):
                continue
            try:
                e = np.asarray(t["entry_mm"], float).reshape(3)
                g = np.asarray(t["target_mm"], float).reshape(3)
            except (KeyError, TypeError, ValueError):
                continue
            out.append((e, g))
        return out

    def _zone(self):
        z = self.doc.get(("skin_entry_zone",)) if self.doc is not None else None
        if not isinstance(z, dict):
            return None, 0.0
        try:
            c = np.asarray(z["center_mm"], float).reshape(3)
        except (KeyError, TypeError, ValueError):
            return None, 0.0
        try:
            r = float(z.get("radius_mm", 30.0))
        except (TypeError, ValueError):
            r = 0.0
        return c, r

    def _draw_slices(self) -> None:
        if self.anatomy is None:
            return
        trajs = self._trajectories()
        zc, zr = self._zone()
        targets = [dict(id=t.id, kind=t.kind, points_mm=t.points_mm, radius_mm=t.radius_mm,
                        tolerance_mm=t.tolerance_mm, selected=t.selected) for t in self._resolved_targets()]
        pending = list(self.pending)
        if self.pending_entry is not None:
            pending = pending or [self.pending_entry]
        self.slices.draw_overlays(SliceOverlays(targets=targets, trajectories=trajs, zone_center_mm=zc,
                                                zone_radius_mm=zr, pending=pending, probe=self._probe_pose()))

    def _probe_pose(self) -> dict | None:
        """The initial ultrasound probe for the slices (None without a complete, sane pose)."""
        us = self.doc.get(("imaging", "ultrasound")) if self.doc is not None else None
        if not isinstance(us, dict):
            return None
        try:
            c = np.asarray(us["center_mm"], float).reshape(3)
            d = np.asarray(us["direction"], float).reshape(3)
            m = np.asarray(us.get("marker") or [0.0, 0.0, 1.0], float).reshape(3)
            depth = float(us.get("depth_mm", 40.0))
        except (KeyError, TypeError, ValueError):
            return None
        if not np.linalg.norm(d) > 1e-6:
            return None
        d = d / np.linalg.norm(d)
        m = m - d * float(m @ d)
        if not np.linalg.norm(m) > 1e-6:
            return None
        from simulator.core.probe import ProbeSpec

        spec = ProbeSpec.curvilinear() if us.get("probe") == "curvilinear" else ProbeSpec.linear()
        return {"center_mm": c, "direction": d, "marker": m / np.linalg.norm(m), "width_mm": spec.aperture_mm,
                "depth_mm": depth}

    def _draw_3d(self) -> None:
        doc = self.doc
        scene = self.window.view3d.scene
        if doc is None:
            return
        scene.show_targets(self._resolved_targets(), True)
        crit = [SimpleNamespace(structure=c.get("structure"), tissue=c.get("tissue"), severity=str(c.get("severity", "major")))
                for c in (doc.get(("critical_structures",)) or []) if isinstance(c, dict)]
        scene.show_critical(crit, True)
        zc, zr = self._zone()
        scene.show_plan([(e, g) for e, g in self._trajectories()], zc, zr if zc is not None else None, visible=True)
        self.window.view3d.request_render()

    def _show_errors(self) -> None:
        doc = self.doc
        errs = doc.errors() if doc is not None else []
        lines = doc.formatted_errors() if doc is not None else []
        if (lines, doc is None) == getattr(self, "_errors_shown", None):
            return
        self._errors_shown = (lines, doc is None)
        self.error_list.clear()
        for line, e in zip(lines, errs):
            self.error_list.addItem(line)
            it = self.error_list.item(self.error_list.count() - 1)
            it.setData(Qt.ItemDataRole.UserRole, e.field)
            it.setForeground(Qt.GlobalColor.red)
        if doc is None:
            self.error_title.setText("")
            return
        self.error_title.setText(f"{len(lines)} problem(s) to fix before saving:" if lines else
                                 "No errors: the scenario validates.")
        self.error_title.setStyleSheet("color: #c0161a; font-weight: bold;" if lines else "color: #1a7a1a;")

    def _tab_of(self, field: str) -> str:
        top = field.split(".")[0].split("[")[0]
        return FIELD_TABS.get(top, "Scenario")

    def _tab_index(self, name: str) -> int:
        for i in range(self.tabs.count()):
            if self.tabs.tabText(i) == name:
                return i
        return 0

    def _jump_to_error(self, item) -> None:
        field = item.data(Qt.ItemDataRole.UserRole) or ""
        self.tabs.setCurrentIndex(self._tab_index(self._tab_of(field)))
        import re

        m = re.match(r"^(targets|critical_structures|rubric\.items|references)\[(\d+)\]", field)
        if m:
            ed = {"targets": self.targets_panel.editor, "critical_structures": self.critical_panel.editor,
                  "rubric.items": self.rubric_panel.editor, "references": self.text_panel.editor}[m.group(1)]
            ed.select(int(m.group(2)))

    def _show_yaml(self) -> None:
        """The document's text in the YAML tab (unless the instructor is typing there)."""
        if self.doc is None or self.tabs.currentWidget() is not self.yaml_tab:
            return
        if self.yaml_view.document().isModified():
            return
        if self.yaml_view.toPlainText() != self.doc.text():
            bar = self.yaml_view.verticalScrollBar().value()
            self.yaml_view.setPlainText(self.doc.text())
            self.yaml_view.verticalScrollBar().setValue(bar)
        self.yaml_view.document().setModified(False)

    def apply_yaml(self) -> None:
        """The text typed in the YAML tab becomes the document (one undo step)."""
        if self.doc is None:
            return
        text = self.yaml_view.toPlainText()
        if not text.endswith("\n"):
            text += "\n"
        self.yaml_view.document().setModified(False)
        self.doc.set_text(text, label="Edit the YAML text")
        self.refresh_all()

    def _update_actions(self) -> None:
        doc = self.doc
        has = doc is not None
        states = {self.act_save: has, self.act_save_as: has, self.act_try: has, self.act_close: self.active,
                  self.act_undo: has and doc.can_undo, self.act_redo: has and doc.can_redo}
        for a, on in states.items():
            if a.isEnabled() != bool(on):
                a.setEnabled(bool(on))
        texts = {self.act_undo: f"&Undo {doc.undo_label}" if has and doc.undo_label else "&Undo",
                 self.act_redo: f"&Redo {doc.redo_label}" if has and doc.redo_label else "&Redo",
                 self.act_edit: "&Edit current scenario" if not (has and self.practice_path) else
                 "&Edit current scenario (back to the editor)"}
        for a, text in texts.items():
            if a.text() != text:
                a.setText(text)
        if self.active and has:
            title = doc.get(("title",)) or doc.get(("id",)) or "new scenario"
            where = str(doc.path) if doc.path is not None else "not saved yet"
            text = f"Scenario editor \u2014 {title} ({where}){' *' if doc.dirty else ''}"
            if self.window.windowTitle() != text:
                self.window.setWindowTitle(text)

    # ------------------------------------------------------------------------------------
    # the plan check
    # ------------------------------------------------------------------------------------
    def check_plan(self) -> list:
        """Run the plan check on the document's trajectories; show the problems (banner, list)."""
        problems: list = []
        doc, an = self.doc, self.anatomy
        plan_check = None
        if doc is not None and an is not None:
            try:
                from simulator.core import plan_check
            except ImportError:
                plan_check = None
            if plan_check is not None:
                try:
                    problems = list(plan_check.check_plan(an, doc))
                except Exception as ex:  # noqa: BLE001 - an incomplete document: say why, do not crash
                    problems = [SimpleNamespace(kind="check", message=f"The plan could not be checked: {ex}",
                                                severity="minor")]
        self.plan_problems = problems
        lines = [needle_words(getattr(p, "message", str(p))) for p in problems]
        has_plan = bool(self._trajectories())
        if plan_check is None and has_plan:
            ok = "(The plan check is not available in this version.)"
        elif has_plan:
            ok = "The planned trajectory reaches its target and crosses no structure to avoid."
        else:
            ok = "No planned trajectory yet."
        self.plan_panel.show_problems(lines, ok)
        b = self.slices.banner
        if lines:
            worst = min((SEVERITY_RANK.get(str(getattr(p, "severity", "minor")), 2) for p in problems), default=2)
            colour = ("#8b0d0d", "#a85400", "#7a6a00")[worst]
            b.setStyleSheet(f"background: {colour}; color: white; font-weight: bold; padding: 4px;")
            shown = lines[:BANNER_LINES]
            more = len(lines) - len(shown)
            b.setText("\u26a0 Plan check: " + "  \u2022  ".join(shown)
                      + (f"  \u2022  and {more} more (Plan tab)" if more else ""))
            b.setToolTip("\n".join(lines))
            b.show()
        else:
            b.hide()
            b.setText("")
        return problems

    # ------------------------------------------------------------------------------------
    # clicks and modes
    # ------------------------------------------------------------------------------------
    def set_mode(self, mode: str) -> None:
        if mode != "polyline" and self.pending:
            self.pending = []
        self.mode = mode
        self.targets_panel.set_mode(mode)
        self.plan_panel.set_mode(mode)
        self.imaging_panel.set_mode(mode)
        self.slices.hint.setText(MODE_HINTS.get(mode, ""))
        self.slices.hint.setStyleSheet("background: %s; color: white; padding: 3px;" % ("#1f6b2a" if mode else "#24425e"))
        self._draw_slices()

    def _side_of(self, p) -> str:
        an = self.anatomy
        skin = an.meshes.get("skin") if an is not None else None
        if skin is not None and len(skin.vertices):
            mid = 0.5 * (float(skin.vertices[:, 0].min()) + float(skin.vertices[:, 0].max()))
        else:
            lo, hi = an.bounds_mm()
            mid = 0.5 * (lo[0] + hi[0])
        dx = float(p[0]) - mid
        return "midline" if abs(dx) < 5.0 else ("right" if dx > 0 else "left")

    def _new_id(self, base: str) -> str:
        ids = {t.get("id") for t in (self.doc.get(("targets",)) or []) if isinstance(t, dict)}
        n = 1
        while f"{base}_{n}" in ids:
            n += 1
        return f"{base}_{n}"

    def _on_slice_click(self, ras, view: str, double: bool) -> None:
        doc = self.doc
        if doc is None:
            return
        p = np.asarray(ras, float)
        mode = self.mode
        if mode == "point_target":
            self.add_point_target(p)
        elif mode == "polyline":
            if double:
                self.finish_polyline()
            else:
                self.pending.append(p)
                self.slices.hint.setText(f"{len(self.pending)} point(s): click the next, Enter or double-click finishes")
                self._draw_slices()
        elif mode == "move_point":
            self.move_target_point(p)
        elif mode == "entry":
            self.set_entry(p)
        elif mode == "target":
            self.set_plan_target(p)
        elif mode == "zone":
            self.set_zone_centre(p)
        elif mode == "probe":
            self.set_probe(p)

    def _on_surface_picked(self, point, name: str) -> None:
        p = np.asarray(point, float)
        if self.anatomy is not None:  # the slices go through the point clicked
            self.slices.set_cursor(p)
            self.slices.show_point_info(p)
        if self.mode == "entry":
            self.set_entry(p)
        elif self.mode == "zone":
            self.set_zone_centre(p)
        elif self.mode == "probe":
            self.set_probe(p)
        self._draw_slices()
        self.window.statusBar().showMessage(
            f"{name.replace('_', ' ')} at R {p[0]:.1f}, A {p[1]:.1f}, S {p[2]:.1f} mm", 8000)

    def _on_key(self, key: int) -> None:
        if key in (int(Qt.Key.Key_Return), int(Qt.Key.Key_Enter)):
            if self.mode == "polyline":
                self.finish_polyline()
        elif key == int(Qt.Key.Key_Escape):
            self.pending_entry = self.pending_target = None
            self.set_mode("")
            self.plan_panel.refresh(None)
        elif key == int(Qt.Key.Key_Backspace) and self.pending:
            self.pending.pop()
            self._draw_slices()

    def add_point_target(self, p) -> int:
        from simulator.core.scenario_doc import add_target

        tid = self._new_id("target")
        i = add_target(self.doc, id=tid, name=f"Target {tid.rsplit('_', 1)[1]}", kind="point", points_mm=[p],
                       tolerance_mm=NEW_POINT_TOLERANCE_MM, side=self._side_of(p))
        self.set_mode("")
        self.targets_panel.editor.select(i)
        return i

    def move_target_point(self, p) -> None:
        """The selected target's point (a polyline: the point nearest the click) moves to `p`."""
        i = self.targets_panel.editor.index
        pts = self.doc.get(("targets", i, "points_mm")) if i >= 0 else None
        if not pts:
            self.window.statusBar().showMessage("Select a target with points first (Targets tab)", 6000)
            return
        k = int(np.argmin(np.linalg.norm(np.asarray(pts, float).reshape(-1, 3) - p, axis=1)))
        tid = self.doc.get(("targets", i, "id"))
        self.doc.set(("targets", i, "points_mm", k), [float(x) for x in p], label=f"Move a point of {tid}")
        self.set_mode("")

    def finish_polyline(self) -> int | None:
        from simulator.core.scenario_doc import add_target

        pts = self.pending
        if len(pts) < 2:
            self.slices.hint.setText("A nerve needs at least two points: click more, or Escape to cancel")
            return None
        tid = self._new_id("nerve")
        mid = np.mean(np.asarray(pts), axis=0)
        i = add_target(self.doc, id=tid, name=f"Nerve {tid.rsplit('_', 1)[1]}", kind="polyline", points_mm=list(pts),
                       radius_mm=NEW_POLYLINE_RADIUS_MM, tolerance_mm=NEW_POLYLINE_TOLERANCE_MM, side=self._side_of(mid))
        self.pending = []
        self.set_mode("")
        self.targets_panel.editor.select(i)
        return i

    def add_proposal(self, name: str) -> int | None:
        from simulator.core.scenario_doc import ScenarioDocError, target_from_proposal

        if not name or self.doc is None or self.anatomy is None:
            return None
        try:
            i = target_from_proposal(self.doc, self.anatomy, name)
        except ScenarioDocError as e:
            self.window.report_error("No such proposal", str(e))
            return None
        self.targets_panel.editor.select(i)
        t = self._resolved_targets()
        if 0 <= i < len(t):
            self.slices.set_cursor(t[i].points_mm[0])
            self._draw_slices()
        return i

    def _nearest_target_id(self, p, within_mm: float = 15.0):
        best, best_d = None, within_mm
        for t in self._resolved_targets():
            pts = t.points_mm
            if t.kind == "polyline" and len(pts) > 1:
                a, b = pts[:-1], pts[1:]
                ab = b - a
                s = np.clip(np.einsum("ij,ij->i", p - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12), 0, 1)
                d = float(np.min(np.linalg.norm(a + s[:, None] * ab - p, axis=1))) - t.radius_mm
            else:
                d = float(np.min(np.linalg.norm(pts - p, axis=1)))
            if d <= best_d:
                best, best_d = t.id, d
        return best

    def _write_trajectory(self, entry, target, target_id, label: str) -> None:
        """Entry and tip of the chosen needle (planned_trajectory or an additional one)."""
        from simulator.core.scenario_doc import set_planned_trajectory

        doc = self.doc
        i = self.plan_panel.index
        if i == 0:
            set_planned_trajectory(doc, entry, target, target_id=target_id)
            return
        traj = {"entry_mm": [round(float(x), 1) for x in entry], "target_mm": [round(float(x), 1) for x in target]}
        if target_id is not None:
            traj["target_id"] = target_id
        n = len(doc.get(("additional_trajectories",)) or [])
        if i - 1 < n:
            doc.set(("additional_trajectories", i - 1), traj, label=label)
        else:
            doc.insert(("additional_trajectories",), -1, traj, label=label)
            self.plan_panel.index = n + 1

    def set_entry(self, p) -> None:
        doc = self.doc
        p = np.asarray(p, float)
        first = self.plan_panel.index == 0
        traj = doc.get(self.plan_panel.plan_path())
        target = self.pending_target
        if isinstance(traj, dict) and traj.get("target_mm") is not None:
            target = traj["target_mm"]
        old_entry = traj.get("entry_mm") if isinstance(traj, dict) else None
        zc, _ = self._zone()
        with doc.batch("Set the entry point"):
            if target is not None:
                tid = traj.get("target_id") if isinstance(traj, dict) else self._nearest_target_id(np.asarray(target, float))
                self._write_trajectory(p, target, tid, "Set the entry point")
            if first and zc is None:
                doc.set(("skin_entry_zone",), {"center_mm": [float(x) for x in p], "radius_mm": ZONE_RADIUS_MM})
            elif first and old_entry is not None and np.linalg.norm(zc - np.asarray(old_entry, float)) < 0.2:
                doc.set(("skin_entry_zone", "center_mm"), [float(x) for x in p])  # the zone follows the entry
        if target is None:
            self.pending_entry = p
            self.set_mode("target")
            self.plan_panel.refresh(p)
            self._draw_slices()
        else:
            self.pending_entry = self.pending_target = None
            self.set_mode("")
            self.plan_panel.refresh()
        self.window.statusBar().showMessage(f"Entry point: R {p[0]:.1f}, A {p[1]:.1f}, S {p[2]:.1f} mm", 6000)

    def set_plan_target(self, p) -> None:
        doc = self.doc
        p = np.asarray(p, float)
        traj = doc.get(self.plan_panel.plan_path())
        entry = self.pending_entry
        if isinstance(traj, dict) and traj.get("entry_mm") is not None:
            entry = traj["entry_mm"]
        if entry is None:
            self.pending_target = p
            self.set_mode("entry")
            return
        if self.plan_panel.index > 0 and self.plan_panel.needle_count() == 0:
            self.plan_panel.index = 0  # the first needle is planned_trajectory
        self._write_trajectory(entry, p, self._nearest_target_id(p), "Set the needle's tip")
        self.pending_entry = self.pending_target = None
        self.set_mode("")
        self.plan_panel.refresh()

    def _needle_changed(self, index: int) -> None:
        """Another needle chosen on the Plan tab: the slices go to its tip."""
        self.pending_entry = self.pending_target = None
        trajs = self._trajectories()
        if index < len(trajs) and self.anatomy is not None:
            self.slices.set_cursor(trajs[index][1])
        self._draw_slices()

    def plan_to_selected_target(self) -> None:
        i = self.targets_panel.editor.index
        ts = self._resolved_targets()
        if not 0 <= i < len(ts):
            self.window.statusBar().showMessage("Select a target first (Targets tab)", 6000)
            return
        t = ts[i]
        pts = np.asarray(t.points_mm, float).reshape(-1, 3)
        tip = pts[len(pts) // 2]
        traj = self.doc.get(self.plan_panel.plan_path())
        entry = traj.get("entry_mm") if isinstance(traj, dict) else self.pending_entry
        if t.kind == "polyline" and entry is not None and len(pts) > 1:
            # the point of the nerve nearest the entry: the needle's shortest way to it
            e = np.asarray(entry, float)
            a, b = pts[:-1], pts[1:]
            ab = b - a
            s = np.clip(np.einsum("ij,ij->i", e - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12), 0, 1)
            q = a + s[:, None] * ab
            tip = q[int(np.argmin(np.linalg.norm(q - e, axis=1)))]
        elif t.kind != "polyline":
            tip = pts[0]
        self.set_plan_target(tip)
        if self.anatomy is not None:  # the slices go to the new tip
            self.slices.set_cursor(tip)
            self._draw_slices()

    def set_zone_centre(self, p) -> None:
        doc = self.doc
        zc, zr = self._zone()
        if zc is None:
            doc.set(("skin_entry_zone",), {"center_mm": [float(x) for x in p], "radius_mm": ZONE_RADIUS_MM},
                    label="Set the entry zone")
        else:
            doc.set(("skin_entry_zone", "center_mm"), [float(x) for x in p], label="Move the entry zone")
        self.set_mode("")

    # ------------------------------------------------------------------------------------
    # the ultrasound probe
    # ------------------------------------------------------------------------------------
    def _probe_aim(self):
        """What the probe looks at: the chosen needle's tip, else the selected target's middle."""
        trajs = self._trajectories()
        if trajs:
            return np.asarray(trajs[min(self.plan_panel.index, len(trajs) - 1)][1], float)
        ts = self._resolved_targets()
        i = self.targets_panel.editor.index
        if ts:
            pts = np.asarray(ts[i if 0 <= i < len(ts) else 0].points_mm, float).reshape(-1, 3)
            return pts[len(pts) // 2]
        return None

    def set_probe(self, p) -> None:
        """The initial probe on the skin at `p`, its depth axis towards the planned tip (else the
        selected target, else the middle of the anatomy), marker towards the head (or the marker
        it had, kept perpendicular), deep enough to show that point."""
        doc = self.doc
        p = np.asarray(p, float)
        aim = self._probe_aim()
        if aim is None or np.linalg.norm(aim - p) < 1.0:
            lo, hi = self.anatomy.bounds_mm()
            aim = 0.5 * (np.asarray(lo, float) + np.asarray(hi, float))
            aim[2] = p[2]
        d = (aim - p) / max(float(np.linalg.norm(aim - p)), 1e-9)
        old = doc.get(("imaging", "ultrasound", "marker"))
        m = np.asarray(old, float) if isinstance(old, list) and len(old) == 3 else np.array([0.0, 0.0, 1.0])
        m = m - d * float(m @ d)
        if np.linalg.norm(m) < 1e-3:
            m = np.array([1.0, 0.0, 0.0]) - d * d[0]
        m /= np.linalg.norm(m)
        u = ("imaging", "ultrasound")
        depth = doc.get(u + ("depth_mm",))
        need = float(np.linalg.norm(aim - p)) + PROBE_MARGIN_MM
        with doc.batch("Place the ultrasound probe"):
            doc.set(u + ("center_mm",), [float(x) for x in p])
            doc.set(u + ("direction",), [round(float(x), 3) for x in d])
            doc.set(u + ("marker",), [round(float(x), 3) for x in m])
            if not isinstance(depth, (int, float)) or depth < need - 0.5:  # half a mm: a click's rounding
                doc.set(u + ("depth_mm",), float(min(250, 10 * math.ceil((need - 0.5) / 10))))
        self.set_mode("")
        self.window.statusBar().showMessage(
            f"Probe at R {p[0]:.1f}, A {p[1]:.1f}, S {p[2]:.1f} mm, looking {np.linalg.norm(aim - p):.0f} mm "
            "deep to the point it aims at", 8000)

    def turn_probe(self) -> None:
        """The probe turned 90 degrees about its depth axis (long axis <-> transverse)."""
        u = ("imaging", "ultrasound")
        doc = self.doc
        d, m = doc.get(u + ("direction",)), doc.get(u + ("marker",))
        if not isinstance(d, list):
            return
        d = np.asarray(d, float) / np.linalg.norm(d)
        m = np.asarray(m, float) if isinstance(m, list) else np.array([0.0, 0.0, 1.0])
        t = np.cross(d, m)
        if np.linalg.norm(t) < 1e-6:
            return
        t /= np.linalg.norm(t)
        doc.set(u + ("marker",), [round(float(x), 3) for x in t], label="Turn the probe 90\u00b0")

    def _clear_plan_part(self, what: str) -> None:
        doc = self.doc
        if doc is None:
            return
        if what == "zone":
            doc.unset(("skin_entry_zone",), label="Remove the entry zone")
        else:
            i = self.plan_panel.index
            more = list(doc.get(("additional_trajectories",)) or [])
            with doc.batch("Remove a planned needle"):
                if i > 0:
                    if len(more) == 1 and i == 1:
                        doc.unset(("additional_trajectories",))
                    elif i - 1 < len(more):
                        doc.remove(("additional_trajectories",), i - 1)
                elif more:  # the second needle becomes the first
                    doc.set(("planned_trajectory",), more[0])
                    doc.remove(("additional_trajectories",), 0)
                    if len(more) == 1:
                        doc.unset(("additional_trajectories",))
                else:
                    doc.unset(("additional_trajectories",))
                    doc.unset(("planned_trajectory",))
            self.plan_panel.index = max(0, min(i, self.plan_panel.needle_count() - 1))
            self.pending_entry = self.pending_target = None
            self.plan_panel.refresh()

    # ------------------------------------------------------------------------------------
    # tunnel view
    # ------------------------------------------------------------------------------------
    def preview_tunnel(self) -> bool:
        """Render the fluoroscopy image with the beam along the planned trajectory (the C-arm's
        tunnel view; `CArmPose.aimed_along`), a needle lying on the plan. Off the GUI thread."""
        from simulator.core.carm import CArmPose
        from simulator.core.scenario_model import FluoroscopySettings

        trajs = self._trajectories()
        info = self.plan_panel.tunnel_info
        if not trajs or self.anatomy is None:
            info.setText("Set a planned trajectory first (entry and tip).")
            return False
        entry, target = trajs[min(self.plan_panel.index, len(trajs) - 1)]
        doc = self.doc
        try:
            settings = FluoroscopySettings(**(doc.get(("imaging", "fluoroscopy")) or {}))
        except Exception:  # noqa: BLE001 - fields still being typed: the defaults
            settings = FluoroscopySettings()
        pos = doc.get(("patient_position",)) or "prone"
        try:
            pose = CArmPose.from_settings(settings, patient_position=pos, isocenter_mm=tuple(target),
                                          detector_pixels=384)
            pose = pose.replace(isocenter_mm=tuple(float(x) for x in target)).aimed_along(target - entry)
        except ValueError as e:
            info.setText(f"No tunnel view: {e}")
            return False
        gauge = doc.get(("needle", "gauge")) or 22
        length = doc.get(("needle", "length_mm")) or 150.0
        if self._tunnel_worker is None:
            from simulator.ui.workers import SerialWorker

            self._tunnel_worker = SerialWorker("editor-tunnel", self._render_tunnel, self)
            self._tunnel_worker.result.connect(self._on_tunnel)
            self._tunnel_worker.failed.connect(lambda m: info.setText(f"Tunnel view failed: {m.splitlines()[0]}"))
        info.setText("Rendering the tunnel view\u2026")
        self.tunnel_frame = None
        self._tunnel_worker.submit((self.anatomy, pose, target, target - entry, int(gauge), float(length)), key="tunnel")
        return True

    @staticmethod
    def _render_tunnel(job):
        anatomy, pose, tip, direction, gauge, length = job
        try:
            from simulator.ui.fluoro_view import _renderer_for

            renderer = _renderer_for(anatomy)
        except ImportError:
            from simulator.imaging.fluoroscopy import FluoroscopyRenderer

            renderer = FluoroscopyRenderer(anatomy)
            renderer.prepare()
        from simulator.imaging.fluoroscopy import NeedleModel

        try:
            needle = NeedleModel.from_gauge(gauge, tip, direction=direction, length_mm=length)
            needles = [needle]
        except ValueError:
            needles = []
        t0 = time.perf_counter()
        frame = renderer.render(pose, needles, quality="full")
        return {"frame": frame, "ms": 1000.0 * (time.perf_counter() - t0)}

    def _on_tunnel(self, res) -> None:
        from simulator.ui.fluoro_view import carm_angle_text

        frame = res["frame"]
        self.tunnel_frame = frame
        c = self.plan_panel.tunnel
        c.edge_labels = frame.pose.orientation_labels()
        c.corner_text = {"tl": carm_angle_text(frame.pose.lao_deg, frame.pose.cranial_deg)}
        c.set_image(frame.image)
        self.plan_panel.tunnel_info.setText(
            f"C-arm {carm_angle_text(frame.pose.lao_deg, frame.pose.cranial_deg).replace(chr(10), ', ')}: the beam runs "
            "down the planned needle (shown as a dot at the target). Set these angles as a named view in "
            "imaging.fluoroscopy.presets to offer it to the trainee.")

    def shutdown(self) -> None:
        if self._tunnel_worker is not None:
            self._tunnel_worker.stop()
