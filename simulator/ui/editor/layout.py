"""The scenario editor's layout: its dock with the form tabs, the slice views, the YAML view and the
problems list, its menu and the actions' enabled states.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QListWidget,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from simulator.ui.editor.panels import (
    CriticalPanel,
    ImagingPanel,
    MetaPanel,
    PatientPanel,
    PlanPanel,
    RubricPanel,
    StepsPanel,
    TargetsPanel,
    TextPanel,
    scroll,
)
from simulator.ui.editor.slices import SlicePanel
from simulator.ui.editor.tools import MODE_HINTS


class LayoutMixin:
    """Part of `EditorMode` (simulator.ui.editor.mode)."""

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
        self.patient_panel = PatientPanel(b)
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
        for panel, name in ((self.meta_panel, "Scenario"), (self.patient_panel, "Patient"), (self.targets_panel, "Targets"),
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
