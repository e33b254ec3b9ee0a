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

The attempt: when a scenario is shown, an `AttemptController` creates its `Procedure` (real
clock). Inputs (see the Needle, Procedure, Fluoroscopy and Ultrasound menus and F1) go through the
controller; the 3D view, the imaging views and the procedure panel follow its Qt signals and never
write the needle back. Renders are coalesced (3D: a timer; ultrasound: a timer and a worker
thread; fluoroscopy: exposures only, on a worker thread).

Questions (keep an attempt when the window closes or the scenario changes, exam to practice,
recover an attempt a crash interrupted) go through `ask(key, text, choices)`: a modal message box,
or `question_answer(key, text)` when set (tests answer programmatically). File names likewise go
through `choose_path(key, title, filters, save)`, or `path_answer(key, title)` when set.

Records (issue 7): every attempt is recorded live into the record store (`simulator.records`,
`user_data_dir()/records.sqlite`) by a `LiveRecorder` started with the attempt's first real input
(a crash loses at most the last half second); the trainee's name is chosen in File > Trainee
(remembered in the settings; the OS user name by default). Ending an attempt (Ctrl+E) or keeping
it stores it finished with its score card; Discard deletes it. At start the window offers to
recover attempts a crash left behind (they are replayed, ended, scored and kept as "recovered").
The Records menu replays a stored attempt with a timeline (`simulator.ui.replay`: the recorded
inputs go through the Procedure's own inputs, the views follow as in a live attempt, live input is
refused) and opens the history with learning curves and the instructor's overview
(`simulator.ui.history`).

Where each job lives (`MainWindow` combines them; this module builds the window and its docks,
keeps the settings, reports errors and closes down):
- `window_scenarios`: the scenario library, opening a scenario, loading its anatomy, its targets;
- `window_display`: structure groups, camera presets, instructor/exam mode, overlays;
- `window_attempt`: the live attempt, its questions, needle and procedure inputs;
- `window_case`: the patient: the case screen, time-out, consent, asepsis, prognostic block, follow-ups;
- `window_records`: the record store, the trainee, live recording, recovery, history;
- `window_replay`: replaying a stored attempt with its timeline;
- `window_menus`: the menus, their shortcuts, Help;
- `window_tracking`: tracked needles and probes over OpenIGTLink (the Tracking dock), the stream
  out to 3D Slicer.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QTextEdit,
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from simulator.render.lod import anatomy_polydata
from simulator.ui.attempt import AttemptController
from simulator.ui.fluoro_view import FluoroscopyView
from simulator.ui.loader import AnatomyLoader
from simulator.ui.panels import DisplayPanel, ImagingPane, ScenarioPanel
from simulator.ui.procedure_panel import ProcedurePanel
from simulator.ui.us_view import UltrasoundView
from simulator.ui.view3d import View3D
from simulator.ui.window_attempt import AttemptMixin
from simulator.ui.window_case import CaseMixin
from simulator.ui.window_centre import CentreMixin
from simulator.ui.window_display import DisplayMixin
from simulator.ui.window_menus import MenusMixin
from simulator.ui.window_records import RecordsMixin, default_trainee, png_bytes
from simulator.ui.window_replay import ReplayMixin
from simulator.ui.window_scenarios import ScenarioLoadingMixin, resolve_targets
from simulator.ui.window_tracking import TrackingMixin

__all__ = ["APPLICATION", "ORGANISATION", "MainWindow", "default_trainee", "png_bytes", "resolve_targets"]

ORGANISATION = "NeurolysisTrainer"
APPLICATION = "Trainer"
SETTINGS_VERSION = 1


class MainWindow(ScenarioLoadingMixin, DisplayMixin, AttemptMixin, CaseMixin, RecordsMixin, CentreMixin, ReplayMixin,
                 MenusMixin, TrackingMixin, QMainWindow):
    scenario_changed = Signal(object)  # the Scenario now current
    anatomy_shown = Signal(str)  # anatomy ref now in the 3D view
    error_reported = Signal(str)

    def __init__(self, scenario: str | None = None, settings: QSettings | None = None,
                 load_anatomy=None, show_dialogs: bool = True, store=None, parent=None, patient: str | None = None):
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
        self.question_answer = None  # callable(key, text) -> answer, for tests and scripts
        self.kept_recordings: list[Path] = []
        self.score_dialog = None
        self.controller = AttemptController(self)
        self._drag = np.zeros(2)
        # records
        self._store = store  # opened on first use (user_data_dir()/records.sqlite) unless given
        self._store_failed = False
        self.recorder = None  # LiveRecorder of the current live attempt (from its first real input)
        self.last_attempt_id: int | None = None  # the attempt last stored (kept or ended)
        self.path_answer = None  # callable(key, title) -> path, for tests and scripts
        self.player = None  # ReplayPlayer while replaying
        self.timeline = None  # TimelineDock (created for the first replay)
        self.course_dock = None  # CourseDock: the replayed attempt's course (created for the first replay)
        self.replay_info = None  # AttemptInfo of the attempt replayed
        self.replay_card = None  # the rescored card (Rescore)
        self.replay_identical: bool | None = None
        self._replay_request = None  # (player args) waiting for the anatomy
        self.history_window = None
        self.attempt_picker = None
        self._fluoro_images = 0
        self._recover_queue: dict[str, list[int]] = {}  # anatomy ref -> interrupted attempts waiting for it
        self._us_image_pending: tuple[str, int] | None = None  # (name, frames requested before): an injection's image from the next frame
        self._trainee = str(self.settings.value("trainee", "", str) or "") or default_trainee()

        self.loader = AnatomyLoader(load_fn=load_anatomy, prepare_fn=anatomy_polydata, parent=self)
        self.loader.progress.connect(self._on_progress)
        self.loader.loaded.connect(self._on_anatomy_loaded)
        self.loader.failed.connect(self._on_anatomy_failed)

        self._build_central()
        self._build_docks()
        self._build_status_bar()
        self._wire_case()
        self._build_menus()
        self._wire_attempt()
        self._build_tracking()
        self._default_geometry()
        self._restore_settings()
        from simulator.ui.editor import install_editor

        self.editor = install_editor(self)  # the scenario editor mode (its own menu, before Help)
        self._pedal_filter = _PedalFilter(self)
        QApplication.instance().installEventFilter(self._pedal_filter)
        QTimer.singleShot(0, self, self.procedure_panel.build_plots)

        self.refresh_scenarios()
        QTimer.singleShot(0, self, lambda: self._open_initial(scenario, patient))
        QTimer.singleShot(0, self, self.offer_recovery)

    def _open_initial(self, scenario: str | None, patient: str | None = None) -> None:
        """The requested scenario (on the requested patient), else the default one (also when the
        requested one fails)."""
        from simulator.core.scenario import DEFAULT_SCENARIO_ID

        if (scenario is not None or patient is not None) and self.open_scenario(scenario or DEFAULT_SCENARIO_ID,
                                                                                  patient=patient):
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
        self.fluoro_view = FluoroscopyView()
        self.fluoroscopy_pane.set_content(self.fluoro_view)
        self.us_view = UltrasoundView()
        self.ultrasound_pane.set_content(self.us_view)
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
        left, right = 270, 370
        self.resizeDocks([self.left_dock, self.right_dock], [left, right], Qt.Orientation.Horizontal)
        rest = max(400, w - left - right)
        self.central_splitter.setSizes([int(0.45 * rest), int(0.55 * rest)])

    def _build_docks(self) -> None:
        self.scenario_panel = ScenarioPanel()
        self.scenario_panel.scenario_chosen.connect(self.open_scenario)
        self.scenario_panel.patient_chosen.connect(self.open_on_patient)
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
        self.left_dock.setMinimumWidth(250)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.left_dock)

        self.procedure_panel = ProcedurePanel()
        self.right_dock = QDockWidget("Procedure", self)
        self.right_dock.setObjectName("dock_procedure")
        self.right_dock.setWidget(self.procedure_panel)
        self.right_dock.setMinimumWidth(330)
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
        self.trainee_label = QLabel("")
        self.trainee_label.setObjectName("trainee_label")
        self.render_label = QLabel("")
        self.render_label.setToolTip("Time the last 3D frame took to render")
        self.view3d.rendered.connect(lambda ms: self.render_label.setText(f"3D {ms:.0f} ms"))
        sb.addPermanentWidget(self.progress_bar)
        sb.addPermanentWidget(self.anatomy_label)
        sb.addPermanentWidget(self.render_label)
        sb.addPermanentWidget(self.trainee_label)
        sb.addPermanentWidget(self.mode_label)
        self.trainee_label.setText(f"Trainee: {self._trainee}")

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
    # messages
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

    # ----------------------------------------------------------------------------------------
    # lifetime
    # ----------------------------------------------------------------------------------------
    def closeEvent(self, event):  # noqa: N802 (Qt API)
        if not self._closing and not self._settle_attempt("close"):
            event.ignore()
            return
        self._closing = True
        if self.player is not None:
            self.player.stop()
        if self.recorder is not None:  # ended attempts are finished already: nothing in progress here
            self._finish_recorder(None, status="abandoned")
        self.stop_centre()
        if self.history_window is not None:
            self.history_window.close()
        self.loader.stop()
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self._pedal_filter)
        try:
            self.save_settings()
        finally:
            if self.error_box is not None:
                self.error_box.close()
            if self.score_dialog is not None:
                self.score_dialog.close()
            self.fluoro_view.shutdown()
            self.us_view.shutdown()
            self.procedure_panel.release_plots()
            if self.course_dock is not None:
                self.course_dock.clear()
            self.shutdown_tracking()
            self.controller.stop()
            self.view3d.shutdown()
        super().closeEvent(event)


_TEXT_INPUTS = (QLineEdit, QAbstractSpinBox, QTextEdit)


class _PedalFilter(QObject):
    """Space is the fluoroscopy pedal anywhere in the window (press and release, no auto-repeat),
    except while typing in a text or number field."""

    def __init__(self, window: MainWindow):
        super().__init__(window)
        self.window = window

    def eventFilter(self, obj, event):  # noqa: N802 (Qt API)
        t = event.type()
        if t not in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease) or event.key() != Qt.Key.Key_Space:
            return False
        w = self.window
        if not isinstance(obj, QWidget) or obj.window() is not w or w._closing:
            return False
        if isinstance(obj, _TEXT_INPUTS) or (isinstance(obj, QComboBox) and obj.isEditable()):
            return False
        if event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            return False
        if event.isAutoRepeat():
            return True
        if self.window.modality not in ("fluoroscopy", "both"):
            return True
        if t == QEvent.Type.KeyPress:
            w.fluoro_view.pedal_press()
        else:
            w.fluoro_view.pedal_release()
        return True
