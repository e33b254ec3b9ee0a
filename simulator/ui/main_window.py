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
"""
from __future__ import annotations

import getpass
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QDialog,
    QLineEdit,
    QTextEdit,
    QDockWidget,
    QFileDialog,
    QInputDialog,
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
from simulator.ui.attempt import AttemptController
from simulator.ui.fluoro_view import FluoroscopyView
from simulator.ui.loader import AnatomyLoader
from simulator.ui.panels import PRESET_KEYS, DisplayPanel, ImagingPane, ScenarioPanel
from simulator.ui.procedure_panel import ProcedurePanel
from simulator.ui.us_view import UltrasoundView
from simulator.ui.view3d import View3D

ORGANISATION = "NeurolysisTrainer"
APPLICATION = "Trainer"
SETTINGS_VERSION = 1
NEEDLE_STANDOFF_MM = 10.0  # the needle waits this far outside the planned entry point
FINE_MM, COARSE_MM = 1.0, 5.0  # needle steps
FINE_DEG, COARSE_DEG = 1.0, 5.0  # needle angle steps
DRAG_DEG_PER_PX = 0.2  # Ctrl+drag in the 3D view


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


def default_trainee() -> str:
    """The OS user name (the trainee until one is chosen)."""
    try:
        return getpass.getuser() or "trainee"
    except (KeyError, OSError):
        return "trainee"


def png_bytes(image) -> bytes:
    """PNG bytes of an 8-bit greyscale (H, W) or RGB (H, W, 3) image."""
    from PySide6.QtCore import QBuffer, QIODevice
    from PySide6.QtGui import QImage

    arr = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = arr.shape[:2]
    if arr.ndim == 2:
        img = QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_Grayscale8)
    else:
        arr = np.ascontiguousarray(arr[..., :3])
        img = QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_RGB888)
    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    img.save(buf, "PNG")
    return bytes(buf.data())


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
                 load_anatomy=None, show_dialogs: bool = True, store=None, parent=None):
        super().__init__(parent)
        from simulator.ui.app import guard_bool_refcounts

        guard_bool_refcounts()  # only with PySide6 6.12.0 (leaks references to True/None), see app.py
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
        self._build_menus()
        self._wire_attempt()
        self._default_geometry()
        self._restore_settings()
        from simulator.ui.editor import install_editor

        self.editor = install_editor(self)  # the scenario editor mode (its own menu, before Help)
        self._pedal_filter = _PedalFilter(self)
        QApplication.instance().installEventFilter(self._pedal_filter)
        QTimer.singleShot(0, self, self.procedure_panel.build_plots)

        self.refresh_scenarios()
        QTimer.singleShot(0, self, lambda: self._open_initial(scenario))
        QTimer.singleShot(0, self, self.offer_recovery)

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
        """One method per menu (a new menu: a method and a line here)."""
        mb = self.menuBar()
        self._build_file_menu(mb)
        self._build_view_menu(mb)
        self._build_needle_menu(mb)
        self._build_procedure_menu(mb)
        self._build_fluoroscopy_menu(mb)
        self._build_ultrasound_menu(mb)
        self._build_records_menu(mb)
        self._build_help_menu(mb)

    def _build_file_menu(self, mb) -> None:
        m = self.file_menu = mb.addMenu("&File")
        self.act_open = self._action(m, "&Open scenario\u2026", self.open_scenario_dialog, QKeySequence.StandardKey.Open)
        self.act_reload = self._action(m, "&Reload scenario", self.reload_scenario, "F5",
                                       tip="Read the scenario file again (after editing it)")
        self.act_rescan = self._action(m, "Re&scan scenario library", self.refresh_scenarios)
        m.addSeparator()
        self.act_trainee = self._action(m, "&Trainee\u2026", self.choose_trainee, "Ctrl+T",
                                        tip="Who is training: attempts are stored under this name")
        m.addSeparator()
        self.act_quit = self._action(m, "&Quit", self.close, QKeySequence.StandardKey.Quit)

    def _build_view_menu(self, mb) -> None:
        v = self.view_menu = mb.addMenu("&View")
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

    def _build_needle_menu(self, mb) -> None:
        n = self.needle_menu = mb.addMenu("&Needle")
        self.act_advance = self._action(n, "Advance 1 mm", lambda: self.advance(FINE_MM), "W",
                                        tip="Push the needle 1 mm (the wheel: 1 mm a notch)")
        self.act_advance_coarse = self._action(n, "Advance 5 mm", lambda: self.advance(COARSE_MM), "Shift+W")
        self.act_withdraw = self._action(n, "Withdraw 1 mm", lambda: self.advance(-FINE_MM), "S")
        self.act_withdraw_coarse = self._action(n, "Withdraw 5 mm", lambda: self.advance(-COARSE_MM), "Shift+S")
        self.act_withdraw_out = self._action(n, "Withdraw out of the skin", self.withdraw_out, "X",
                                             tip="Then click the skin to choose a new entry point")
        n.addSeparator()
        self.steer_actions = {}
        for key, label in (("Left", "left"), ("Right", "right"), ("Up", "up"), ("Down", "down")):
            self.steer_actions[(label, False)] = self._action(
                n, f"Angle the tip {label} 1\u00b0", lambda _=False, d=label: self.steer(d, FINE_DEG), key)
            self.steer_actions[(label, True)] = self._action(
                n, f"Angle the tip {label} 5\u00b0", lambda _=False, d=label: self.steer(d, COARSE_DEG), f"Shift+{key}")
        n.addSeparator()
        self.act_aim_hint = QAction("Entry point: click the skin in the 3D view", self)
        self.act_aim_hint.setEnabled(False)
        n.addAction(self.act_aim_hint)

    def _build_procedure_menu(self, mb) -> None:
        pm = self.procedure_menu = mb.addMenu("&Procedure")
        self.act_local = self._action(pm, "Local anaesthetic", self.procedure_panel.request_local_anaesthetic, "F2")
        self.act_aspirate = self._action(pm, "Aspirate", self.aspirate, "F3")
        self.act_contrast = self._action(pm, "Inject contrast", lambda: self.procedure_panel.request_inject("contrast"), "F4")
        self.act_test_dose = self._action(pm, "Give the test dose", lambda: self.procedure_panel.request_inject("test_dose"), "F6")
        self.act_agent = self._action(pm, "Inject the neurolytic agent", lambda: self.procedure_panel.request_inject("neurolytic"), "F7")
        pm.addSeparator()
        self.act_end = self._action(pm, "End attempt (score card)", self.end_attempt, "Ctrl+E")
        self.act_new = self._action(pm, "New attempt", self.new_attempt, "Ctrl+N")

    def _build_fluoroscopy_menu(self, mb) -> None:
        fm = self.fluoroscopy_menu = mb.addMenu("F&luoroscopy")
        self.act_shot = self._action(fm, "Single shot (tap Space; hold Space for live)", self.fluoro_view.single_shot)
        self._action(fm, "C-arm towards LAO 5\u00b0", lambda: self.fluoro_view.nudge(d_lao=5.0), "Alt+Left")
        self._action(fm, "C-arm towards RAO 5\u00b0", lambda: self.fluoro_view.nudge(d_lao=-5.0), "Alt+Right")
        self._action(fm, "C-arm cranial 5\u00b0", lambda: self.fluoro_view.nudge(d_cranial=5.0), "Alt+Up")
        self._action(fm, "C-arm caudal 5\u00b0", lambda: self.fluoro_view.nudge(d_cranial=-5.0), "Alt+Down")
        self.act_tunnel = self._action(fm, "Tunnel view", self.fluoro_view.tunnel_view, "Alt+T")
        self.carm_preset_menu = fm.addMenu("C-arm views")
        self.carm_preset_actions: list[QAction] = []

    def _build_ultrasound_menu(self, mb) -> None:
        um = self.ultrasound_menu = mb.addMenu("&Ultrasound")
        self._action(um, "Slide the probe towards the marker", lambda: self.us_view.slide(lateral_mm=1.0), "L")
        self._action(um, "Slide the probe away from the marker", lambda: self.us_view.slide(lateral_mm=-1.0), "J")
        self._action(um, "Slide the probe forwards (out of plane)", lambda: self.us_view.slide(elevation_mm=1.0), "I")
        self._action(um, "Slide the probe backwards (out of plane)", lambda: self.us_view.slide(elevation_mm=-1.0), "K")
        self._action(um, "Slide 5 mm towards the marker", lambda: self.us_view.slide(lateral_mm=5.0), "Shift+L")
        self._action(um, "Slide 5 mm away from the marker", lambda: self.us_view.slide(lateral_mm=-5.0), "Shift+J")
        self._action(um, "Rotate the probe clockwise 5\u00b0", lambda: self.us_view.rotate(5.0), "O")
        self._action(um, "Rotate the probe anticlockwise 5\u00b0", lambda: self.us_view.rotate(-5.0), "U")
        self._action(um, "Tilt the probe 2\u00b0", lambda: self.us_view.tilt(2.0), "M")
        self._action(um, "Tilt the probe back 2\u00b0", lambda: self.us_view.tilt(-2.0), "N")
        um.addSeparator()
        self._action(um, "Deeper", lambda: self.us_view.change_depth(5.0), "Ctrl+Down")
        self._action(um, "Shallower", lambda: self.us_view.change_depth(-5.0), "Ctrl+Up")
        self._action(um, "More gain", lambda: self.us_view.change_gain(2.0), "Ctrl+Right")
        self._action(um, "Less gain", lambda: self.us_view.change_gain(-2.0), "Ctrl+Left")
        self._action(um, "Colour Doppler on/off", lambda: self.us_view.doppler_box.toggle(), "Ctrl+D")

    def _build_records_menu(self, mb) -> None:
        r = self.records_menu = mb.addMenu("&Records")
        self.act_replay = self._action(r, "&Replay attempt\u2026", self.replay_attempt_dialog, "Ctrl+R",
                                       tip="Replay a stored attempt with a timeline")
        self.act_replay_last = self._action(r, "Replay the &last attempt", self.replay_last_attempt, "Ctrl+Shift+R")
        self.act_history = self._action(r, "&History and learning curves\u2026", self.show_history, "Ctrl+H",
                                        tip="Your attempts per scenario, scores and learning curves")
        self.act_overview = self._action(r, "&Instructor overview\u2026", lambda: self.show_history(overview=True),
                                         "Ctrl+Shift+H", tip="All trainees and scenarios")
        r.addSeparator()
        self.act_play = self._action(r, "Replay: play / pause", self._replay_toggle, "P")
        self.act_replay_start = self._action(r, "Replay: back to the start", self._replay_to_start, "Home")
        self.act_replay_faster = self._action(r, "Replay: faster", lambda: self._replay_speed_step(1), "]")
        self.act_replay_slower = self._action(r, "Replay: slower", lambda: self._replay_speed_step(-1), "[")
        self.act_stop_replay = self._action(r, "Stop replay", self.stop_replay, "Esc")
        self._update_replay_actions()

    def _build_help_menu(self, mb) -> None:
        h = self.help_menu = mb.addMenu("&Help")
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

        if not self._settle_attempt("switch"):
            self.scenario_panel.select_path(self.scenario_path)
            return False
        self._replay_request = None
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

    def _load_finished(self) -> None:
        """No anatomy loads any more (whoever asked: a scenario, the editor, a recovery): no progress shown."""
        if self.loader.is_loading():
            return
        self.progress_bar.hide()
        if self.statusBar().currentMessage().startswith("Loading anatomy"):
            self.statusBar().clearMessage()

    def _on_anatomy_loaded(self, ref: str, anatomy) -> None:
        if self._closing:
            return
        self._load_finished()
        for attempt_id in self._recover_queue.pop(ref, []):  # recoveries waiting for this anatomy
            self.recover_attempt(attempt_id)
        if self._pending is None:
            return
        scenario, path = self._pending
        if scenario.anatomy != ref:
            return  # an older request; it stays cached
        self._show(scenario, path, anatomy)

    def _on_anatomy_failed(self, ref: str, message: str) -> None:
        if self._closing:
            return
        self._load_finished()
        for attempt_id in self._recover_queue.pop(ref, []):
            self.report_error("Cannot recover the attempt", f"attempt {attempt_id}: its anatomy {ref!r}: {message}")
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
            scene.set_exam_view(False)
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
        self.view3d.pick_structures = ["skin"] if "skin" in scene.structures else None
        self._start_attempt()
        self._apply_exam_view()
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
        if self._replay_request is not None and self._replay_request[2] is scenario:
            self._begin_replay()

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
        for a in self.group_actions.values():  # the old anatomy's groups: their shortcuts go too
            self.removeAction(a)
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
        self.fluoro_view.set_instructor(on)
        self._apply_exam_view()
        self._update_mode_label()
        proc = self.controller.procedure
        if on and proc is not None and not proc.ended and proc.recording.mode == "exam":
            proc.recording.mode = "practice"  # the hints were shown: no longer an exam attempt
            self.statusBar().showMessage("Hints shown: this attempt now counts as practice", 8000)

    def _apply_exam_view(self) -> None:
        """Exam mode: the 3D view shows only the skin, the needle and the probe (see the scene)."""
        exam = not self.instructor_mode
        scene = self.view3d.scene
        scene.set_exam_view(exam)
        scene.set_probe_plane_visible(not exam)
        self.display_panel.groups_box.setEnabled(not exam)
        for a in self.group_actions.values():
            a.setEnabled(not exam)
        self._place_needle()
        self.view3d.request_render()

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
        if self.controller.state is not None:
            self._show_needle(self.controller.state)
            return
        if not self.instructor_mode:
            scene.hide_needle()
            return
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
        c = self.controller
        if c.active and (c.state is None or not c.state.inserted):
            cam = self.view3d.scene.renderer.GetActiveCamera()
            direction = np.asarray(point, float) - np.asarray(cam.GetPosition(), float)
            c.stamp_event("click")
            if c.place_entry(point, direction / np.linalg.norm(direction)) is not None:
                self.statusBar().showMessage(
                    "Needle on the skin: angle it (arrow keys, Ctrl+drag), then advance (W, wheel); "
                    "local anaesthetic first (F2)", 8000)
            return
        self.statusBar().showMessage(
            f"{name.replace('_', ' ')} at R {point[0]:.1f}, A {point[1]:.1f}, S {point[2]:.1f} mm", 8000
        )

    # ----------------------------------------------------------------------------------------
    # the attempt
    # ----------------------------------------------------------------------------------------
    def _wire_attempt(self) -> None:
        c = self.controller
        p = self.procedure_panel
        c.needle_changed.connect(self._on_needle_changed)
        c.event_added.connect(self._on_event)
        c.step_changed.connect(p.on_step_changed)
        c.spread_added.connect(p.on_spread)
        c.spread_added.connect(lambda _sp: self.fluoro_view.canvas.update())
        c.input_refused.connect(lambda msg: self.statusBar().showMessage(msg, 8000))
        c.ended.connect(self._on_ended)
        c.input_done.connect(self._on_input_done)
        self.fluoro_view.frame_shown.connect(self._on_fluoro_frame)
        self.us_view.frame_shown.connect(self._on_us_frame)
        p.local_anaesthetic_requested.connect(self.local_anaesthetic)
        p.aspirate_requested.connect(self.aspirate)
        p.inject_requested.connect(self.inject)
        p.end_requested.connect(self.end_attempt)
        p.new_requested.connect(self.new_attempt)
        self.view3d.wheel_steps.connect(self._on_wheel)
        self.view3d.needle_dragged.connect(self._on_needle_drag)
        self.fluoro_view.canvas.wheel_steps.connect(self._on_wheel)
        self.us_view.canvas.wheel_steps.connect(self._on_wheel)
        self.fluoro_view.message.connect(lambda m: self.statusBar().showMessage(m, 6000))
        self.us_view.message.connect(lambda m: self.statusBar().showMessage(m, 6000))
        self.us_view.probe_moved.connect(self._on_probe_moved)
        self._drag_timer = QTimer(self)
        self._drag_timer.setSingleShot(True)
        self._drag_timer.setInterval(30)
        self._drag_timer.timeout.connect(self._apply_drag)

    @property
    def modality(self) -> str:
        return _value(self.scenario.modality) if self.scenario is not None else ""

    def _start_attempt(self, replay_proc=None) -> None:
        """A new attempt on the current scenario and anatomy (or host a replayed one)."""
        sc, an = self.scenario, self.anatomy
        self._drop_recorder()
        self._fluoro_images = 0
        self._us_image_pending = None
        if replay_proc is None:
            if self.player is not None:
                self._close_replay()
            mode = "practice" if self.instructor_mode else "exam"
            proc = self.controller.start(sc, an, mode=mode, trainee=self._trainee)
        else:
            proc = self.controller.attach_replay(replay_proc)
        self._update_replay_actions()
        if self.score_dialog is not None:
            self.score_dialog.close()
            self.score_dialog = None
        self.procedure_panel.attach(proc)
        modality = self.modality
        if modality in ("fluoroscopy", "both"):
            self.fluoro_view.set_context(self.controller, sc, an, self.targets, self.instructor_mode)
            self._fill_carm_presets()
        if modality in ("ultrasound", "both"):
            self.us_view.set_context(self.controller, sc, an, self.targets)
        else:
            self.view3d.scene.hide_probe()
        self._place_needle()
        self.view3d.request_render()

    def _fill_carm_presets(self) -> None:
        for a in self.carm_preset_actions:
            self.removeAction(a)
        self.carm_preset_menu.clear()
        self.carm_preset_actions = []
        for i, name in enumerate(self.fluoro_view.presets):
            a = self._action(self.carm_preset_menu, name.replace("_", " "),
                             lambda _=False, n=name: self.fluoro_view.apply_preset(n),
                             f"Alt+{i + 1}" if i < 9 else None)
            self.carm_preset_actions.append(a)

    def new_attempt(self) -> None:
        if self.scenario is None or self.anatomy is None:
            return
        if not self._settle_attempt("new"):
            return
        self._start_attempt()
        self.statusBar().showMessage("New attempt: click the skin to choose the entry point", 6000)

    def end_attempt(self):
        """End the attempt and show the score card."""
        if not self.controller.active:
            return self.controller.card
        self.fluoro_view.pedal_release()
        return self.controller.end()

    def _on_ended(self, card) -> None:
        self.procedure_panel.on_ended(card)
        self._finish_recorder(card)
        if card is None:
            return
        from simulator.ui.scorecard import ScoreCardDialog

        if self.score_dialog is not None:
            self.score_dialog.close()
        dlg = ScoreCardDialog(card, self.scenario.title if self.scenario is not None else "", self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.destroyed.connect(lambda *_: setattr(self, "score_dialog", None))
        self.score_dialog = dlg
        if not self._closing:
            dlg.show()
        self.statusBar().showMessage(card.text().splitlines()[0], 15000)

    # --- questions -----------------------------------------------------------------------------
    def ask(self, key: str, text: str, choices: dict[str, str], default: str) -> str:
        """Ask the user; `choices` maps answers to button texts. `question_answer(key, text)`
        answers instead when set (tests, scripts)."""
        if self.question_answer is not None:
            answer = self.question_answer(key, text)
            return answer if answer in choices else default
        box = QMessageBox(QMessageBox.Icon.Question, "Neurolysis Trainer", text, QMessageBox.StandardButton.NoButton, self)
        buttons = {}
        roles = {"keep": QMessageBox.ButtonRole.AcceptRole, "discard": QMessageBox.ButtonRole.DestructiveRole,
                 "cancel": QMessageBox.ButtonRole.RejectRole}
        for answer, label in choices.items():
            buttons[box.addButton(label, roles.get(answer, QMessageBox.ButtonRole.ActionRole))] = answer
        box.exec()
        return buttons.get(box.clickedButton(), default)

    def _settle_attempt(self, why: str) -> bool:
        """Before the attempt is dropped: ask whether to keep it. False: the user cancelled."""
        c = self.controller
        if not c.in_progress:
            return True
        what = {"close": "closing the trainer", "switch": "changing the scenario", "new": "starting a new attempt",
                "replay": "replaying a recorded attempt"}[why]
        answer = self.ask("keep_attempt", f"An attempt is in progress. Keep it before {what}?\n\n"
                          "Keep: end it, score it and save its recording. Discard: drop it.",
                          {"keep": "Keep", "discard": "Discard", "cancel": "Cancel"}, "cancel")
        if answer == "cancel":
            return False
        if answer == "keep":
            self.keep_attempt()
        else:
            self.discard_attempt()
        return True

    def keep_attempt(self) -> Path | None:
        """End (and score) the attempt if it runs, and save its recording."""
        from simulator.core.paths import user_data_dir

        proc = self.controller.procedure
        if proc is None or self.controller.replaying:
            return None
        if not proc.ended:
            self.end_attempt()
        folder = user_data_dir() / "recordings"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = folder / f"{self.scenario.id}_{stamp}_{len(self.kept_recordings) + 1}.nlrec.npz"
        try:
            saved = proc.recording.save(path)
        except (OSError, ValueError) as e:
            self.report_error("Cannot save the attempt", f"{path}: {e}")
            return None
        self.kept_recordings.append(Path(saved))
        where = f" (records: attempt {self.last_attempt_id})" if self.last_attempt_id is not None else ""
        self.statusBar().showMessage(f"Attempt saved: {saved}{where}", 10000)
        return Path(saved)

    def discard_attempt(self) -> None:
        """Drop the attempt in progress: its live record is deleted from the store."""
        rec = self.recorder
        self.recorder = None
        if rec is None:
            return
        try:
            rec.stop()
            rec.store.delete_attempt(rec.attempt_id)
        except Exception as e:  # noqa: BLE001 - the store is not essential to training
            self.report_error("Records", f"Cannot delete the discarded attempt {rec.attempt_id} from "
                                         f"{rec.store.location}: {e}")
        self.statusBar().showMessage("Attempt discarded", 6000)

    # --- needle inputs -----------------------------------------------------------------------------
    def advance(self, mm: float) -> None:
        self.controller.stamp_event("advance" if mm > 0 else "withdraw")
        if mm >= 0:
            self.controller.advance(mm)
        else:
            self.controller.withdraw(-mm)

    def withdraw_out(self) -> None:
        self.controller.stamp_event("withdraw")
        self.controller.withdraw(None)

    def camera_axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(forward, right, up) of the 3D camera, unit vectors (world)."""
        cam = self.view3d.scene.renderer.GetActiveCamera()
        f = np.asarray(cam.GetFocalPoint(), float) - np.asarray(cam.GetPosition(), float)
        f /= np.linalg.norm(f)
        up = np.asarray(cam.GetViewUp(), float)
        up = up - (up @ f) * f
        up /= np.linalg.norm(up)
        return f, np.cross(f, up), up

    def steer(self, direction: str, degrees: float) -> None:
        """Angle the needle so its tip moves `direction` (left/right/up/down) on the 3D view."""
        _, right, up = self.camera_axes()
        axis, sign = {"left": (up, 1.0), "right": (up, -1.0), "up": (right, 1.0), "down": (right, -1.0)}[direction]
        self.controller.stamp_event("steer")
        self.controller.steer(axis, sign * degrees)

    def _on_needle_drag(self, dx: float, dy: float) -> None:
        self._drag += (dx, dy)
        if not self._drag_timer.isActive():
            self._drag_timer.start()

    def _apply_drag(self) -> None:
        dx, dy = self._drag
        self._drag = np.zeros(2)
        if self.controller.state is None or (dx == 0 and dy == 0):
            return
        _, right, up = self.camera_axes()
        from simulator.ui.attempt import rotate

        d = rotate(self.controller.state.axis, up, -dx * DRAG_DEG_PER_PX)
        d = rotate(d, right, -dy * DRAG_DEG_PER_PX)
        self.controller.stamp_event("steer")
        self.controller.set_direction(d)

    def _on_wheel(self, steps: float, modifiers) -> None:
        coarse = bool(modifiers & Qt.KeyboardModifier.ShiftModifier)
        self.advance(steps * (COARSE_MM if coarse else FINE_MM))

    def local_anaesthetic(self, volume_ml: float) -> None:
        if self.controller.local_anaesthetic(volume_ml) is not None:
            self.statusBar().showMessage(f"Local anaesthetic: {volume_ml:g} ml lidocaine 1 % at the entry point", 6000)

    def aspirate(self) -> None:
        self.controller.stamp_event("aspirate")
        self.controller.aspirate()

    def inject(self, kind: str, agent: str, concentration_pct: float, volume_ml: float) -> None:
        self.controller.stamp_event("inject")
        self.controller.inject(kind, agent, concentration_pct, volume_ml)

    # --- the views follow the attempt ---------------------------------------------------------------
    def _on_needle_changed(self, state) -> None:
        if self.player is not None and self.player.seeking:  # the views follow once the seek is done
            self.procedure_panel.on_needle_changed(state)
            return
        self._views_follow_needle(state)
        self.procedure_panel.on_needle_changed(state)

    def _views_follow_needle(self, state) -> None:
        self._show_needle(state)
        self.fluoro_view.note_needle(state)
        if self.modality in ("ultrasound", "both"):
            self.us_view.note_needle(state)

    def _show_needle(self, state) -> None:
        sc = self.scenario
        self.view3d.scene.set_needle(state.needle_tip_to_world, length_mm=sc.needle.length_mm,
                                     diameter_mm=diameter_for_gauge(sc.needle.gauge),
                                     hub_colour=hub_colour_for_gauge(sc.needle.gauge))
        self.view3d.request_render(interactive=True)

    def _on_event(self, ev) -> None:
        self.procedure_panel.on_event(ev)
        from simulator.core.events import HARMFUL, EventKind

        if ev.kind == EventKind.injection and self.recorder is not None:
            self._keep_ultrasound_image(f"ultrasound_{ev.data.get('kind', 'injection')}_{ev.time_s:.0f}s")

        if self.instructor_mode and ev.kind in HARMFUL:
            self.statusBar().showMessage(ev.message, 10000)

    def _on_probe_moved(self, pose) -> None:
        spec = self.us_view.spec
        if spec is None or self.modality not in ("ultrasound", "both"):
            return
        self.view3d.scene.set_probe(pose.probe_to_world(), spec.aperture_mm, float(self.us_view.depth_spin.value()),
                                    spec.radius_mm, spec.sector_deg, spec.face_elevation_mm)
        self.view3d.scene.set_probe_plane_visible(self.instructor_mode)
        self.view3d.request_render(interactive=True)

    # ----------------------------------------------------------------------------------------
    # records: the store, the trainee, live recording, recovery
    # ----------------------------------------------------------------------------------------
    @property
    def store(self):
        """The record store (opened on first use); None if it cannot be opened (reported once)."""
        if self._store is None and not self._store_failed:
            from simulator.records import open_store

            try:
                self._store = open_store()
            except Exception as e:  # noqa: BLE001 - training goes on without records
                self._store_failed = True
                self.report_error("Records", f"Cannot open the record store: {e}\n"
                                             "Attempts are not recorded in this session.")
        return self._store

    @property
    def trainee(self) -> str:
        return self._trainee

    def set_trainee(self, name: str) -> bool:
        """Who is training (remembered in the settings); the attempt not yet stored becomes theirs."""
        name = " ".join(str(name or "").split())
        if not name:
            self.statusBar().showMessage("A trainee needs a name", 6000)
            return False
        self._trainee = name
        self.settings.setValue("trainee", name)
        self.trainee_label.setText(f"Trainee: {name}")
        proc = self.controller.procedure
        if proc is not None and self.recorder is None and not self.controller.replaying and not proc.ended:
            proc.recording.trainee = name
        if self.history_window is not None:
            self.history_window.set_trainee(name)
        self.statusBar().showMessage(f"Trainee: {name}", 5000)
        return True

    def choose_trainee(self) -> None:
        """File > Trainee: pick a known trainee or type a new name."""
        if self.question_answer is not None:
            answer = self.question_answer("trainee", "Who is training?")
            if isinstance(answer, str) and answer not in ("", "cancel"):
                self.set_trainee(answer)
            return
        names = []
        st = self.store
        if st is not None:
            try:
                names = [t.name for t in st.list_trainees()]
            except Exception:  # noqa: BLE001 - the list is a convenience
                names = []
        if self._trainee not in names:
            names.insert(0, self._trainee)
        name, ok = QInputDialog.getItem(self, "Trainee", "Who is training? (attempts are stored under this name)",
                                        names, names.index(self._trainee), True)
        if ok:
            self.set_trainee(name)

    def choose_path(self, key: str, title: str, filters: str, save: bool = True, suggested: str = "") -> str | None:
        """A file name from the user (`path_answer(key, title)` answers instead when set)."""
        if self.path_answer is not None:
            answer = self.path_answer(key, title)
            return str(answer) if answer else None
        fn = QFileDialog.getSaveFileName if save else QFileDialog.getOpenFileName
        path, _ = fn(self, title, suggested, filters)
        return path or None

    def _on_input_done(self, _stamp) -> None:
        if self.recorder is None and self.controller.in_progress:
            self._start_recorder()

    def _start_recorder(self) -> None:
        st = self.store
        proc = self.controller.procedure
        if st is None or proc is None:
            return
        from simulator.records import LiveRecorder

        try:
            rec = LiveRecorder(st, proc, scenario=self.scenario, trainee=self._trainee)
            rec.start()
        except Exception as e:  # noqa: BLE001 - training goes on without records
            self.report_error("Records", f"Cannot record the attempt in {st.location}: {e}")
            return
        self.recorder = rec

    def _finish_recorder(self, card, status: str = "finished"):
        rec = self.recorder
        self.recorder = None
        if rec is None:
            return None
        try:
            info = rec.finish(card, status=status)
        except Exception as e:  # noqa: BLE001
            self.report_error("Records", f"Cannot store attempt {rec.attempt_id} in {rec.store.location}: {e}")
            return None
        self.last_attempt_id = info.id
        if self.history_window is not None:
            self.history_window.refresh()
        return info

    def _drop_recorder(self) -> None:
        """The attempt is replaced without being settled (nothing was asked): drop its record."""
        if self.recorder is not None:
            self.discard_attempt()

    def _on_fluoro_frame(self, res: dict) -> None:
        """Fluoroscopy shots are key images of the attempt's report."""
        if self.recorder is None or res.get("kind") != "shot" or res.get("frame") is None:
            return
        self._fluoro_images += 1
        try:
            self.recorder.add_image(f"fluoro_{self._fluoro_images:02d}", png_bytes(res["frame"].image))
        except Exception as e:  # noqa: BLE001 - an image less in the report
            self.statusBar().showMessage(f"The fluoroscopy image was not kept for the report: {e}", 6000)

    def _keep_ultrasound_image(self, name: str) -> None:
        """The ultrasound frame at an injection: the one on screen now, replaced by the next one
        (which shows the state after the injection)."""
        if self.modality not in ("ultrasound", "both"):
            return
        res = self.us_view.last_result
        if res is not None:
            self._add_us_image(name, res)
        # the next frame submitted from now on (one already in flight shows the state before)
        self._us_image_pending = (name, self.us_view.frames_requested)
        self.us_view.request_frame()

    def _on_us_frame(self, res: dict) -> None:
        pending = self._us_image_pending
        if pending is None or res.get("req", 0) <= pending[1]:
            return
        self._us_image_pending = None
        if self.recorder is not None:
            self._add_us_image(pending[0], res)

    def _add_us_image(self, name: str, res: dict) -> None:
        try:
            self.recorder.add_image(name, png_bytes(res["image"]))
        except Exception as e:  # noqa: BLE001 - an image less in the report
            self.statusBar().showMessage(f"The ultrasound image was not kept for the report: {e}", 6000)

    def offer_recovery(self) -> list[int]:
        """Attempts a crash left "live" in the store: ask whether to recover them (replayed,
        ended, scored and kept as "recovered"), delete them or ask again at the next start.
        Returns the ids recovered or deleted."""
        st = self.store
        if st is None or self._closing:
            return []
        try:
            orphans = st.recoverable_attempts()
        except Exception as e:  # noqa: BLE001
            self.report_error("Records", f"Cannot look for interrupted attempts in {st.location}: {e}")
            return []
        if not orphans:
            return []
        lines = [f"\u2022 {a.trainee}: {a.scenario_title or a.scenario_id}, started "
                 f"{a.started_at[:16].replace('T', ' ')} ({a.n_inputs} inputs)" for a in orphans[:8]]
        what = "an attempt" if len(orphans) == 1 else f"{len(orphans)} attempts"
        text = (f"The trainer stopped while recording {what}:\n" + "\n".join(lines) + "\n\n"
                "Recover: replay what was recorded (all but at most the last second), end and score it, and keep "
                "it in the records. Delete: remove it. Later: ask again at the next start.")
        answer = self.ask("recover_attempt", text, {"recover": "Recover", "delete": "Delete", "later": "Later"}, "later")
        done = []
        for a in orphans:
            if answer == "recover":
                if self.recover_attempt(a.id) is not None:
                    done.append(a.id)
            elif answer == "delete":
                try:
                    st.delete_attempt(a.id)
                    done.append(a.id)
                except Exception as e:  # noqa: BLE001
                    self.report_error("Records", f"Cannot delete attempt {a.id}: {e}")
        if done and self.history_window is not None:
            self.history_window.refresh()
        return done

    def recover_attempt(self, attempt_id: int):
        """Rebuild an interrupted attempt from its record, end it, score it, keep it ("recovered")."""
        from simulator.core.procedure import replay
        from simulator.core.scoring import score_attempt
        from simulator.records import LiveRecorder
        from simulator.records.rescore import anatomy_for, scenario_for

        st = self.store
        try:
            info = st.attempt(attempt_id)
            rec = st.load_attempt(attempt_id)
            sc, _notes = scenario_for(st, info)
            ref = sc.anatomy
            if ref not in self.loader.cache:
                # an anatomy takes seconds to load: off the GUI thread, the recovery follows it
                self._recover_queue.setdefault(ref, []).append(int(attempt_id))
                self.loader.request(ref)
                self.statusBar().showMessage(f"Recovering attempt {attempt_id} once its anatomy ({ref}) is loaded\u2026")
                return info
            self.statusBar().showMessage(f"Recovering attempt {attempt_id}\u2026")
            an = self.loader.cache[ref] if ref in self.loader.cache else anatomy_for(ref)
            proc = replay(rec, sc, an, silent=True)
            recorder = LiveRecorder.resume(st, proc, attempt_id, thread=False)
            if not proc.ended:
                proc.end()
            card = score_attempt(proc.recording, sc, an)
            done = recorder.finish(card, status="recovered")
        except Exception as e:  # noqa: BLE001 - reported by name, the others go on
            self.report_error("Cannot recover the attempt", f"attempt {attempt_id}: {e}")
            return None
        self.last_attempt_id = done.id
        self.statusBar().showMessage(f"Recovered attempt {done.id} ({done.scenario_title}): score {card.score:.1f}",
                                     10000)
        return done

    # ----------------------------------------------------------------------------------------
    # records: replay with a timeline
    # ----------------------------------------------------------------------------------------
    def replay_attempt_dialog(self) -> None:
        """Records > Replay attempt: a list of the stored attempts to choose from."""
        st = self.store
        if st is None:
            return
        from simulator.ui.replay import AttemptPicker

        if self.attempt_picker is not None:
            self.attempt_picker.close()
        dlg = AttemptPicker(st, parent=self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.accepted.connect(lambda: dlg.chosen is not None and self.replay_attempt(dlg.chosen))
        dlg.destroyed.connect(lambda *_: setattr(self, "attempt_picker", None))
        self.attempt_picker = dlg
        dlg.open()

    def replay_last_attempt(self) -> None:
        if self.last_attempt_id is None:
            self.statusBar().showMessage("No attempt stored in this session yet (Records > Replay attempt)", 6000)
            return
        self.replay_attempt(self.last_attempt_id)

    def replay_attempt(self, attempt_id: int) -> bool:
        """Replay a stored attempt: its scenario (the version it was recorded on) and anatomy, then
        the timeline. False if it cannot be replayed (reported) or the user cancelled."""
        st = self.store
        if st is None or self._closing:
            return False
        if not self._settle_attempt("replay"):
            return False
        from simulator.core.scenario import find_scenario
        from simulator.records.rescore import scenario_for

        try:
            info = st.attempt(int(attempt_id))
            rec = st.load_attempt(info.id)
            sc, notes = scenario_for(st, info)
        except Exception as e:  # noqa: BLE001
            self.report_error("Cannot replay the attempt", f"attempt {attempt_id}: {e}")
            return False
        if not rec.inputs:
            self.report_error("Cannot replay the attempt", f"attempt {info.id} has no recorded inputs")
            return False
        try:
            path = str(find_scenario(sc.id))
        except Exception:  # noqa: BLE001 - a scenario only the store knows
            path = ""
        self._replay_request = (info, rec, sc, st.score_card(info.id), notes)
        self._pending = (sc, path)
        if sc.anatomy in self.loader.cache:
            self._show(sc, path, self.loader.cache[sc.anatomy])
        else:
            self.statusBar().showMessage(f"Loading anatomy {sc.anatomy}\u2026")
            self.progress_bar.setValue(0)
            self.progress_bar.setFormat(f"{sc.anatomy} %p%")
            self.progress_bar.show()
            self.loader.request(sc.anatomy)
        return True

    def _begin_replay(self) -> None:
        from simulator.core.recording import anatomy_hash
        from simulator.ui.replay import ReplayPlayer, TimelineDock, fmt_clock

        info, rec, sc, card, notes = self._replay_request
        self._replay_request = None
        if self.timeline is None:
            self.timeline = TimelineDock(self)
            self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.timeline)
            self.timeline.rescore_requested.connect(self.rescore_replay)
            self.timeline.stop_requested.connect(self.stop_replay)
        player = ReplayPlayer(rec, sc, self.anatomy, attempt_id=info.id, stored_card=card, parent=self)
        player.rebuilt.connect(self._on_replay_rebuilt)
        player.input_applied.connect(self._on_replay_input)
        player.seek_started.connect(self._on_replay_seek_started)
        player.seek_done.connect(self._on_replay_seek_done)
        player.position_changed.connect(self._on_replay_position)
        player.failed.connect(lambda m: self.report_error("Replay", m))
        self.player = player
        self.replay_info = info
        self.replay_card = None
        self.replay_identical = None
        score = "" if info.score is None else f", score {info.score:.1f}"
        self.timeline.set_player(player, f"<b>Replay</b> of attempt {info.id}: {info.trainee}, "
                                         f"{info.scenario_title or info.scenario_id}, "
                                         f"{info.started_at[:16].replace('T', ' ')}{score} "
                                         f"({fmt_clock(player.duration_s)})")
        self.timeline.show()
        player.start()
        self.setWindowTitle(f"Neurolysis Trainer \u2014 replay of attempt {info.id}")
        if rec.anatomy_hash and rec.anatomy_hash != anatomy_hash(self.anatomy):
            notes = [*notes, f"recorded on another build of anatomy {rec.anatomy_ref!r}"]
        self.statusBar().showMessage("Replay: play (P), scrub with the slider; inputs are off"
                                     + (f" ({'; '.join(notes)})" if notes else ""), 10000)
        self._update_replay_actions()

    def _on_replay_rebuilt(self, proc) -> None:
        if not self.controller.replaying:  # the first build: the views take the replayed attempt
            self._start_attempt(replay_proc=proc)
        else:  # a seek backwards: the same views, a fresh procedure
            self.controller.attach_replay(proc)
            self.procedure_panel.attach(proc)
            self.procedure_panel.status.setText("Replay")
            self._place_needle()
        self.controller.replay_time_s = 0.0

    def _on_replay_input(self, inp) -> None:
        if self.player is None or self.player.seeking:
            return
        self.controller.replay_time_s = inp.time_s
        self._replay_imaging(inp)

    def _replay_imaging(self, inp) -> None:
        """The imaging views follow the recorded probe, C-arm and exposures."""
        name, a = inp.name, inp.args
        if name == "set_probe_to_world" and self.modality in ("ultrasound", "both"):
            from simulator.core.probe import ProbePose

            self.us_view.set_pose(ProbePose.from_matrix(np.asarray(a["matrix"], float)))
        elif name == "set_carm_pose" and self.modality in ("fluoroscopy", "both"):
            self.fluoro_view.set_angles(float(a["lao_deg"]), float(a["cranial_deg"]), exact=True)
        elif name == "record_fluoro_shot" and self.modality in ("fluoroscopy", "both"):
            if a.get("lao_deg") is not None and a.get("cranial_deg") is not None:
                self.fluoro_view.set_angles(float(a["lao_deg"]), float(a["cranial_deg"]), exact=True)
            self.fluoro_view.single_shot()

    def _on_replay_seek_started(self, proc) -> None:
        """While seeking, the procedure panel takes the plots' data and the events directly; the
        views and the labels follow once, at the end."""
        self.controller.detach_signals()
        panel = self.procedure_panel
        proc.needle_changed.subscribe(panel.note_series)
        proc.event_added.subscribe(panel.on_event)
        proc.spread_added.subscribe(panel.on_spread)

    def _on_replay_seek_done(self, proc) -> None:
        panel = self.procedure_panel
        proc.needle_changed.unsubscribe(panel.note_series)
        proc.event_added.unsubscribe(panel.on_event)
        proc.spread_added.unsubscribe(panel.on_spread)
        self.controller.reattach_signals()
        p = self.player
        self.controller.replay_time_s = p.time_s
        applied = p.inputs[:p.index]
        for name in ("set_probe_to_world", "set_carm_pose"):
            last = next((i for i in reversed(applied) if i.name == name), None)
            if last is not None:
                self._replay_imaging(last)
        self._replay_last_shot(proc, applied)
        st = proc.state
        if st is not None:
            self._views_follow_needle(st)
            panel.show_state(st)
        else:
            self._place_needle()
        panel._fill_steps()
        panel._schedule_plots()
        self.fluoro_view.canvas.update()
        self.view3d.request_render()

    def _replay_last_shot(self, proc, applied) -> None:
        """After a jump: the fluoroscopy screen holds the last image taken before that moment (its
        C-arm angles, the needle where it was then), as the trainee saw it."""
        if self.modality not in ("fluoroscopy", "both"):
            return
        shot = next((i for i in reversed(applied) if i.name == "record_fluoro_shot"), None)
        if shot is None:
            return
        a = shot.args
        if a.get("lao_deg") is not None and a.get("cranial_deg") is not None:
            self.fluoro_view.set_angles(float(a["lao_deg"]), float(a["cranial_deg"]), exact=True)
        samples = proc.recording.samples
        k = int(np.searchsorted(samples.time_s, shot.time_s, side="right")) - 1
        self.fluoro_view.single_shot(samples.needle_tip_to_world[k] if k >= 0 else None)

    def _on_replay_position(self, t: float) -> None:
        self.controller.replay_time_s = float(t)

    def rescore_replay(self):
        """Score the replayed attempt (to its end) and show the card beside the stored score."""
        p = self.player
        if p is None or p.procedure is None:
            return None
        if not p.at_end:
            p.seek(p.duration_s)
        from simulator.core.scoring import score_attempt
        from simulator.ui.replay import canonical_card
        from simulator.ui.scorecard import ScoreCardDialog

        try:
            card = score_attempt(p.procedure.recording, p.scenario, p.anatomy)
        except Exception as e:  # noqa: BLE001
            self.report_error("Rescore", f"attempt {p.attempt_id}: the score could not be computed: {e}")
            return None
        self.replay_card = card
        stored = p.stored_card
        self.replay_identical = stored is not None and canonical_card(card) == canonical_card(stored)
        if stored is None:
            note = "No stored score to compare with."
        elif self.replay_identical:
            note = f"Identical to the stored score card ({stored.get('score'):.1f}), to the last digit."
        else:
            note = f"Differs from the stored score card (stored {stored.get('score')}, now {card.score})."
        if self.score_dialog is not None:
            self.score_dialog.close()
        dlg = ScoreCardDialog(card, f"Rescored: {p.scenario.title}", self, note=note)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.destroyed.connect(lambda *_: setattr(self, "score_dialog", None))
        self.score_dialog = dlg
        dlg.show()
        return card

    def stop_replay(self) -> None:
        """Leave the replay: a new live attempt on the same scenario."""
        if self.player is None:
            return
        self._close_replay()
        if self.scenario is not None and self.anatomy is not None:
            self._start_attempt()
            self.setWindowTitle(f"Neurolysis Trainer \u2014 {self.scenario.title}")
        self.statusBar().showMessage("Replay stopped: a new attempt", 6000)

    def _close_replay(self) -> None:
        p, self.player = self.player, None
        if p is not None:
            p.stop()
            p.deleteLater()
        if self.timeline is not None:
            self.timeline.player = None
            self.timeline.hide()
        self.controller.stop()
        self._update_replay_actions()

    def _update_replay_actions(self) -> None:
        on = self.player is not None
        for a in (self.act_play, self.act_replay_start, self.act_replay_faster, self.act_replay_slower,
                  self.act_stop_replay):
            a.setEnabled(on)

    def _replay_toggle(self) -> None:
        if self.player is not None:
            self.player.toggle()

    def _replay_to_start(self) -> None:
        if self.player is not None:
            self.player.pause()
            self.player.seek(0.0)

    def _replay_speed_step(self, step: int) -> None:
        if self.player is None or self.timeline is None:
            return
        combo = self.timeline.speed_combo
        combo.setCurrentIndex(min(max(combo.currentIndex() + step, 0), combo.count() - 1))

    # ----------------------------------------------------------------------------------------
    # records: history, learning curves, the instructor's overview
    # ----------------------------------------------------------------------------------------
    def show_history(self, overview: bool = False):
        st = self.store
        if st is None:
            return None
        from simulator.ui.history import HistoryWindow

        if self.history_window is None:
            hw = HistoryWindow(st, trainee=self._trainee, parent=self, choose_path=self.choose_path)
            hw.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            hw.replay_requested.connect(self.replay_attempt)
            hw.destroyed.connect(lambda *_: setattr(self, "history_window", None))
            self.history_window = hw
        hw = self.history_window
        hw.refresh()
        hw.show_tab("overview" if overview else "trainee")
        hw.show()
        hw.raise_()
        return hw

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
            ("Space (tap / hold)", "Fluoroscopy pedal: one image / live fluoroscopy while held"),
            ("Left click on the skin", "Choose the needle's entry point (it aims along your line of sight)"),
            ("Wheel / Shift+wheel", "Advance or withdraw the needle 1 mm / 5 mm a notch"),
            ("Ctrl+left drag (3D view)", "Angle the needle"),
            ("Left drag (3D view)", "Rotate the 3D view"),
            ("Right drag / Ctrl+wheel", "Zoom the 3D view"),
            ("Middle drag / Shift+left drag", "Pan the 3D view"),
            ("Drag on the ultrasound image", "Slide the probe; Ctrl+drag rotates and tilts it"),
            ("Double-click a saved image", "Review it on the fluoroscopy screen"),
            ("Drag the replay slider", "Replay: go to that moment of the recorded attempt (all views follow)"),
            ("Double-click an attempt (history)", "Replay it"),
            ("Click a slice view (editor)", "Place the point being edited: a target, a nerve point, the needle's tip"),
            ("Wheel / Page Up, Down (editor slices)", "Move through the slices; Ctrl+wheel zooms"),
            ("Enter / double-click (editor)", "Finish the nerve being drawn; Backspace removes its last point"),
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
        if not self._closing and not self._settle_attempt("close"):
            event.ignore()
            return
        self._closing = True
        if self.player is not None:
            self.player.stop()
        if self.recorder is not None:  # ended attempts are finished already: nothing in progress here
            self._finish_recorder(None, status="abandoned")
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
