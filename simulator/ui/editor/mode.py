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

Where each job lives (`EditorMode` combines them; this module enters and leaves the editor):
`layout` (dock, tabs, slice views, menu), `document_io` (new, open, save, undo, YAML, practice),
`overlays` (the anatomy, what is drawn on the slices and in 3D, problems and the plan check),
`tools` (the click modes, proposals, plan and probe tools, the tunnel preview).
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import QApplication, QLineEdit, QWidget, QAbstractSpinBox, QTextEdit

from simulator.ui.editor.document_io import DocumentMixin
from simulator.ui.editor.fields import Binder
from simulator.ui.editor.layout import LayoutMixin
from simulator.ui.editor.overlays import OverlaysMixin
from simulator.ui.editor.tools import ToolsMixin


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


class EditorMode(LayoutMixin, DocumentMixin, OverlaysMixin, ToolsMixin, QObject):
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
    # entering and leaving
    # ------------------------------------------------------------------------------------
    def enter(self) -> bool:
        """Show the editor layout (the document must be set)."""
        if self.active:
            return True
        w = self.window
        answer = w.ask_keep_attempt("editor")
        if answer == "cancel":
            return False
        if answer == "keep":
            w.keep_attempt()
        restart = answer == "discard"  # the attempt starts again when the editor is left
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

    def shutdown(self) -> None:
        if self._tunnel_worker is not None:
            self._tunnel_worker.stop()
