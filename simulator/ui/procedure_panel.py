"""The procedure panel (right dock): the steps the scenario requires, the buttons to do them, what
happened, and the live plots.

- Steps: ticked off from `Procedure.steps_status()` as the attempt goes; the current one is marked.
- Buttons with the scenario's choices only: local anaesthetic (volume), aspirate, contrast (volume
  within the scenario's range), test dose (its agent, concentrations and volume range), the
  neurolytic agent (the scenario's agents, each with its concentrations and volume range).
- What happened: the last aspiration (blood, CSF, air, bowel contents or nothing, in colour), the
  contrast pattern, paraesthesia, and the events with their times.
- Live plots (pyqtgraph, created once the window is up: importing it takes about a second): the
  tip-to-target distance and the depth against time, and the tissue layers along the shaft from
  the skin to the tip as coloured bands (read like the feel of the needle).
- Exam mode hides what a real procedure does not show: the targets, the distances, the tissue
  names, the hints; the events list keeps what the operator would notice (skin puncture, bone
  contact, paraesthesia, aspiration, injections).

The panel only reads the attempt; buttons emit requests the main window passes to the controller.
Plots are redrawn at most every `PLOT_MS` (a burst of needle moves costs one redraw).
"""
from __future__ import annotations

import html
import time

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from simulator.core.events import EventKind, HARMFUL, format_time
from simulator.core.procedure import CASE_STEPS
from simulator.core.tissue import TISSUE_INFO, Tissue
from simulator.ui.behaviour_alert import BehaviourAlert, behaviour_row, merged_rows
from simulator.ui.case_steps_box import CaseStepsBox
from simulator.ui.procedure_notes import ASPIRATION_STYLE, PlotSeries, contrast_note, human as _human, stepped_box

PLOT_MS = 60
#: While a tracker streams poses (a tracked attempt) the plots and the status line follow 3 times a
#: second, and not while the panel is hidden: each redraw and its repaints cost the GUI thread
#: ~20-30 ms, which the 3D view and the next poses need more.
PLOT_STREAM_MS = 330
#: Rows the event list keeps; older ones fold into its first row (the attempt keeps every event).
MAX_EVENT_ROWS = 400
AIR_IN_LINE_ML = 0.3  # an unpurged syringe and extension line
#: Events a trainee in exam mode still learns of (what the operator feels or sees).
EXAM_EVENTS = frozenset({
    EventKind.skin_puncture, EventKind.needle_out, EventKind.bone_contact, EventKind.nerve_contact,
    EventKind.aspiration, EventKind.injection, EventKind.local_anaesthetic, EventKind.end,
    EventKind.time_out, EventKind.consent, EventKind.asepsis, EventKind.prognostic_result,
})
STEP_LABELS = {
    "time_out": "Time-out: contraindications checked",
    "consent": "Consent taken",
    "asepsis": "Skin prepared and draped",
    "prognostic": "Prognostic block (local anaesthetic) first",
    "local_anaesthetic": "Local anaesthetic at the entry point",
    "insertion": "Insert the needle",
    "target": "Reach the target",
    "aspiration": "Aspirate before injecting",
    "contrast": "Contrast: check the spread",
    "test_dose": "Test dose",
    "neurolytic": "Neurolytic agent",
    "end": "End the attempt (score card)",
}


class _VolumeSpin(QDoubleSpinBox):
    def __init__(self, lo: float, hi: float, value: float, name: str):
        super().__init__()
        self.setObjectName(name)
        self.setDecimals(1)
        self.setSingleStep(0.5)
        self.setRange(lo, hi)
        self.setValue(min(max(value, lo), hi))
        self.setSuffix(" ml")
        self.setKeyboardTracking(False)


class ProcedurePanel(QWidget):
    local_anaesthetic_requested = Signal(float)
    aspirate_requested = Signal()
    inject_requested = Signal(str, str, float, float)  # kind, agent, concentration_pct, volume_ml
    end_requested = Signal()
    new_requested = Signal()
    updated = Signal(float)  # perf_counter after the panel took a change in (labels, lists, plot data)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("procedure_panel")
        self.scenario = None
        self.procedure = None
        self.instructor = True
        self._series = PlotSeries()
        self._t0 = None
        self._dirty_plots = False  # streaming, hidden: redrawn when shown
        self._streaming, self._pending_state, self._plot_box = False, None, None  # streaming: the newest state, the range
        self.plots_ready = False
        self._build()
        self._plot_timer = QTimer(self)
        self._plot_timer.setSingleShot(True)
        self._plot_timer.setInterval(PLOT_MS)
        self._plot_timer.timeout.connect(self._redraw_plots)
        self._scroll_timer = QTimer(self)
        self._scroll_timer.setSingleShot(True)
        self._scroll_timer.setInterval(0)
        self._scroll_timer.timeout.connect(self.events.scrollToBottom)

    # ------------------------------------------------------------------------------------
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(4)
        self.title = QLabel("No scenario")
        self.title.setObjectName("procedure_title")
        self.title.setWordWrap(True)
        lay.addWidget(self.title)
        self.steps = QListWidget()
        self.steps.setObjectName("procedure_steps")
        self.steps.setWordWrap(True)
        self.steps.setMaximumHeight(150)
        self.steps.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        lay.addWidget(self.steps)

        self.case_box = CaseStepsBox()
        lay.addWidget(self.case_box)

        box = QGroupBox("Needle and syringe")
        g = QGridLayout(box)
        g.setVerticalSpacing(3)
        self.la_volume = _VolumeSpin(0.5, 10.0, 5.0, "la_volume")
        self.la_button = QPushButton("Local anaesthetic (F2)")
        self.la_button.setObjectName("la_button")
        self.la_button.clicked.connect(self.request_local_anaesthetic)
        g.addWidget(QLabel("Lidocaine 1 %"), 0, 0)
        g.addWidget(self.la_volume, 0, 1)
        g.addWidget(self.la_button, 0, 2)
        self.aspirate_button = QPushButton("Aspirate (F3)")
        self.aspirate_button.setObjectName("aspirate_button")
        self.aspirate_button.clicked.connect(self.aspirate_requested)
        self.aspiration_label = QLabel("")
        self.aspiration_label.setObjectName("aspiration_result")
        g.addWidget(self.aspirate_button, 1, 0)
        g.addWidget(self.aspiration_label, 1, 1, 1, 2)
        # contrast
        self.contrast_label = QLabel("Contrast")
        self.contrast_volume = _VolumeSpin(0.5, 10.0, 3.0, "contrast_volume")
        self.contrast_button = QPushButton("Inject contrast (F4)")
        self.contrast_button.setObjectName("contrast_button")
        self.contrast_button.clicked.connect(lambda: self.request_inject("contrast"))
        g.addWidget(self.contrast_label, 2, 0)
        g.addWidget(self.contrast_volume, 2, 1)
        g.addWidget(self.contrast_button, 2, 2)
        # test dose
        self.test_agent = QComboBox()
        self.test_agent.setObjectName("test_dose_agent")
        self.test_volume = _VolumeSpin(0.5, 10.0, 3.0, "test_dose_volume")
        self.test_button = QPushButton("Test dose (F6)")
        self.test_button.setObjectName("test_dose_button")
        self.test_button.clicked.connect(lambda: self.request_inject("test_dose"))
        g.addWidget(self.test_agent, 3, 0)
        g.addWidget(self.test_volume, 3, 1)
        g.addWidget(self.test_button, 3, 2)
        # neurolytic
        self.agent_combo = QComboBox()
        self.agent_combo.setObjectName("agent_combo")
        self.agent_combo.currentIndexChanged.connect(self._agent_changed)
        self.agent_conc = QComboBox()
        self.agent_conc.setObjectName("agent_concentration")
        self.agent_volume = _VolumeSpin(0.5, 30.0, 10.0, "agent_volume")
        self.agent_button = QPushButton("Inject agent (F7)")
        self.agent_button.setObjectName("agent_button")
        self.agent_button.clicked.connect(lambda: self.request_inject("neurolytic"))
        agent_row = QHBoxLayout()
        agent_row.addWidget(self.agent_combo)
        agent_row.addWidget(self.agent_conc)
        g.addLayout(agent_row, 4, 0)
        g.addWidget(self.agent_volume, 4, 1)
        g.addWidget(self.agent_button, 4, 2)
        self.air_box = QCheckBox(f"Syringe not purged ({AIR_IN_LINE_ML:g} ml air goes first)")
        self.air_box.setObjectName("air_in_syringe")
        self.air_box.setToolTip("A mistake to practise recognising: injected air is bright on ultrasound and "
                                "shadows everything under it")
        g.addWidget(self.air_box, 5, 0, 1, 3)
        ends = QHBoxLayout()
        self.end_button = QPushButton("End attempt (Ctrl+E)")
        self.end_button.setObjectName("end_button")
        self.end_button.clicked.connect(self.end_requested)
        self.new_button = QPushButton("New attempt (Ctrl+N)")
        self.new_button.setObjectName("new_button")
        self.new_button.clicked.connect(self.new_requested)
        ends.addWidget(self.end_button)
        ends.addWidget(self.new_button)
        g.addLayout(ends, 5, 0, 1, 3)
        for b in (self.la_button, self.aspirate_button, self.contrast_button, self.test_button, self.agent_button,
                  self.end_button, self.new_button):
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Space stays the pedal
        lay.addWidget(box)

        self.status = QLabel("")
        self.status.setObjectName("needle_status")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(self.status)
        self.note = QLabel("")
        self.note.setObjectName("procedure_note")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #e0c060;")
        lay.addWidget(self.note)
        self.alert = BehaviourAlert()  # the latest error behaviour, named when it happens
        lay.addWidget(self.alert)

        self.split = QSplitter(Qt.Orientation.Vertical)
        self.plot_holder = QWidget()
        ph = QVBoxLayout(self.plot_holder)
        ph.setContentsMargins(0, 0, 0, 0)
        self.plot_wait = QLabel("Plots\u2026")
        self.plot_wait.setStyleSheet("color: #888;")
        ph.addWidget(self.plot_wait)
        self.split.addWidget(self.plot_holder)
        hint_box = QWidget()
        hl = QVBoxLayout(hint_box)
        hl.setContentsMargins(0, 0, 0, 0)
        self.hints_label = QLabel("Targets and structures to avoid")
        hl.addWidget(self.hints_label)
        self.hints = QListWidget()
        self.hints.setObjectName("procedure_hints")
        self.hints.setWordWrap(True)
        self.hints.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        hl.addWidget(self.hints)
        self.split.addWidget(hint_box)
        ev_box = QWidget()
        el = QVBoxLayout(ev_box)
        el.setContentsMargins(0, 0, 0, 0)
        self.events_label = QLabel("Events")
        el.addWidget(self.events_label)
        self.events = QListWidget()
        self.events.setObjectName("procedure_events")
        self.events.setWordWrap(True)
        self.events.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        el.addWidget(self.events)
        self.split.addWidget(ev_box)
        self.split.setStretchFactor(0, 3)
        self.split.setStretchFactor(1, 1)
        self.split.setStretchFactor(2, 2)
        lay.addWidget(self.split, 1)

    def build_plots(self) -> None:
        """Create the pyqtgraph plots (deferred: the import costs about a second)."""
        if self.plots_ready:
            return
        import pyqtgraph as pg

        # exitCleanup off: its aboutToQuit hook deletes graphics items the window still owns (a crash
        # when the window is deleted after the event loop ends)
        pg.setConfigOptions(antialias=False, exitCleanup=False)
        ph = self.plot_holder.layout()
        self.plot_wait.hide()
        self.time_plot = pg.PlotWidget(background="#15171c")
        self.time_plot.setObjectName("time_plot")
        self.time_plot.setMinimumHeight(120)
        self.time_plot.setMenuEnabled(False)
        self.time_plot.showGrid(x=True, y=True, alpha=0.25)
        self.time_plot.setLabel("bottom", "time (s)")
        self.time_plot.setLabel("left", "mm")
        for axis in ("bottom", "left"):  # seconds and mm as they are, never "(x0.001)"
            self.time_plot.getAxis(axis).enableAutoSIPrefix(False)
        self.time_plot.addLegend(offset=(5, 5))
        self.depth_curve = self.time_plot.plot([], [], pen=pg.mkPen("#e0e0e0", width=2), name="depth")
        self.dist_curve = self.time_plot.plot([], [], pen=pg.mkPen("#40e070", width=2), name="to target")
        for curve in (self.depth_curve, self.dist_curve):  # a long attempt: a few points per pixel drawn
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)
        self.band_plot = pg.PlotWidget(background="#15171c")
        self.band_plot.setObjectName("tissue_band")
        self.band_plot.setFixedHeight(70)
        self.band_plot.setMenuEnabled(False)
        self.band_plot.hideAxis("left")
        self.band_plot.setLabel("bottom", "depth from the skin (mm)")
        self.band_plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.band_plot.setMouseEnabled(x=False, y=False)
        self.band_plot.setYRange(0, 1, padding=0)
        self.band_item = None
        self.band_texts = []
        self._band_key = None
        ph.addWidget(self.time_plot, 1)
        ph.addWidget(self.band_plot)
        self.plots_ready = True
        self._apply_mode()
        self._redraw_plots()

    def release_plots(self) -> None:
        """Take the plots down while the window still exists (the window's closeEvent). A
        pyqtgraph widget deleted by Qt with its window while Python still references it crashes
        PySide6 at exit; unparented and unreferenced here, Python deletes it at once."""
        if not self.plots_ready:
            return
        import gc

        self.plots_ready = False
        self._plot_timer.stop()
        plots = (self.time_plot, self.band_plot)
        self.time_plot = self.band_plot = self.depth_curve = self.dist_curve = self.band_item = None
        self.band_texts = []
        for pw in plots:
            pw.close()
            pw.setParent(None)
        del plots, pw
        gc.collect()

    # ------------------------------------------------------------------------------------
    # scenario and attempt
    # ------------------------------------------------------------------------------------
    def show_scenario(self, scenario, instructor: bool) -> None:
        self.scenario = scenario
        self.steps.clear()
        self.hints.clear()
        if scenario is None:
            self.title.setText("No scenario")
            return
        self.title.setText(f"<b>{html.escape(scenario.title)}</b>")
        self.case_box.show_scenario(scenario)
        st = scenario.steps
        has_contrast = st.contrast is not None
        for w in (self.contrast_label, self.contrast_volume, self.contrast_button):
            w.setVisible(has_contrast)
        if has_contrast:
            self.contrast_volume.setRange(float(st.contrast.min_ml), float(st.contrast.max_ml))
            self.contrast_volume.setValue(float(st.contrast.min_ml))
        td = st.test_dose
        for w in (self.test_agent, self.test_volume, self.test_button):
            w.setVisible(td is not None)
        self.test_agent.clear()
        if td is not None:
            for c in td.concentrations_pct:
                self.test_agent.addItem(f"{td.agent} {c:g} %", (td.agent, float(c)))
            self.test_volume.setRange(float(td.volume_ml.min_ml), float(td.volume_ml.max_ml))
            self.test_volume.setValue(float(td.volume_ml.min_ml))
        options = list(st.agent_options())
        for w in (self.agent_combo, self.agent_conc, self.agent_volume, self.agent_button):
            w.setVisible(bool(options))
        self.agent_combo.blockSignals(True)
        self.agent_combo.clear()
        for opt in options:
            self.agent_combo.addItem(opt.agent, opt)
        self.agent_combo.blockSignals(False)
        self._agent_changed()
        for t in scenario.targets:
            self.hints.addItem(f"Target: {t.name} (within {t.tolerance_mm:g} mm)")
        for c in scenario.critical_structures:
            what = c.structure or c.tissue
            self.hints.addItem(f"Avoid: {_human(what)} [{_human(c.severity)}]")
        self.set_instructor(instructor)
        self._fill_steps()

    def _agent_changed(self) -> None:
        opt = self.agent_combo.currentData()
        self.agent_conc.clear()
        if opt is None:
            return
        for c in opt.concentrations_pct:
            self.agent_conc.addItem(f"{c:g} %", float(c))
        self.agent_conc.setCurrentIndex(len(opt.concentrations_pct) - 1)
        self.agent_volume.setRange(float(opt.volume_ml.min_ml), float(opt.volume_ml.max_ml))
        self.agent_volume.setValue(float(opt.volume_ml.min_ml))

    def attach(self, procedure) -> None:
        """A new attempt: clear what happened, follow this procedure."""
        self.procedure = procedure
        self._series = PlotSeries()
        self._t0 = None
        self.alert.clear()
        self.events.clear()
        self.aspiration_label.setText("")
        self.note.setText("")
        self.status.setText("Click the skin in the 3D view to choose the entry point.")
        self.end_button.setEnabled(True)
        self.case_box.refill(procedure.events if procedure is not None else [])
        self._fill_steps()
        self._schedule_plots()

    def set_instructor(self, instructor: bool) -> None:
        self.instructor = bool(instructor)
        self.hints.setVisible(self.instructor)
        self.hints_label.setVisible(self.instructor)
        self._apply_mode()
        self._refill_events()

    def _apply_mode(self) -> None:
        if self.plots_ready:
            self.dist_curve.setVisible(self.instructor)
            self.band_plot.setVisible(self.instructor)

    # ------------------------------------------------------------------------------------
    # updates from the attempt (Qt signals of the controller)
    # ------------------------------------------------------------------------------------
    def _fill_steps(self) -> None:
        self.steps.clear()
        if self.scenario is None:
            return
        if self.procedure is not None:
            status = self.procedure.steps_status()
            current = self.procedure.current_step()
        else:
            status, current = [], None
        st = self.scenario.steps
        detail = {
            "contrast": f" {st.contrast.min_ml:g}\u2013{st.contrast.max_ml:g} ml" if st.contrast else "",
            "test_dose": (f" {st.test_dose.agent} {st.test_dose.volume_ml.min_ml:g}\u2013{st.test_dose.volume_ml.max_ml:g} ml"
                          if st.test_dose else ""),
            "neurolytic": "".join(f" {o.agent}" for o in st.agent_options()),
        }
        rows = status or [{"step": k, "required": True, "done": False} for k in STEP_LABELS if k not in CASE_STEPS]
        for s in rows:
            if not s["required"]:
                continue
            name = s["step"]
            mark = "\u2714" if s["done"] else ("\u25b6" if name == current else "\u25cb")
            item = QListWidgetItem(f"{mark} {STEP_LABELS.get(name, name)}{detail.get(name, '')}")
            item.setFlags(Qt.ItemFlag.ItemIsEnabled)
            if s["done"]:
                item.setForeground(QBrush(QColor(120, 200, 120)))
            elif name == current:
                item.setForeground(QBrush(QColor(255, 210, 90)))
            self.steps.addItem(item)

    def on_step_changed(self, _step: str) -> None:
        self._fill_steps()
        self.updated.emit(time.perf_counter())

    def on_needle_changed(self, state) -> None:
        if state is None:
            return
        self.note_series(state)
        if self._streaming:
            self._pending_state = state  # shown with the plots, at their pace
        else:
            self.show_state(state)
        self._schedule_plots()
        self.updated.emit(time.perf_counter())

    def note_series(self, state) -> None:
        """Only the plots' data (a replay seek: the labels follow once, at the end)."""
        if self._t0 is None:
            self._t0 = state.time_s
        dists = state.target_distances_mm or {}
        self._series.append(state.time_s, state.depth_mm if state.inserted else 0.0,
                            min(dists.values()) if dists else float("nan"))

    def show_state(self, state) -> None:
        """The status line: depth, bone contact, where the tip is (instructor mode)."""
        dists = state.target_distances_mm or {}
        dmin = min(dists.values()) if dists else float("nan")
        bits = [f"Depth <b>{state.depth_mm:.1f} mm</b>" if state.inserted else "Needle on the skin (not inserted)"]
        if state.bone_contact:
            bits.append("<span style='color:#ffd060'>bone contact</span>")
        if self.instructor:
            if state.inserted:
                where = (state.structure or state.tissue.name.lower()).replace("_", " ")
                bits.append(f"tip in <b>{html.escape(where)}</b>")
            if dists:
                bits.append(f"target <b>{dmin:.1f} mm</b>")
        self.status.setText(" \u00b7 ".join(bits))

    def on_event(self, ev) -> None:
        self._add_event_row(ev)
        self.case_box.on_event(ev)
        if ev.kind == EventKind.aspiration:
            text, colour = ASPIRATION_STYLE.get(ev.data.get("result", ""), (ev.message, "#ddd"))
            self.aspiration_label.setText(f"<b style='color:{colour}'>{html.escape(text)}</b>")
        elif ev.kind == EventKind.nerve_contact:
            self.note.setText("Paraesthesia: the patient feels a sharp, electric pain. Stop and withdraw slightly.")
        elif ev.kind == EventKind.bone_contact:
            self.note.setText("Bone contact: note the depth; withdraw and redirect to walk off the bone.")
        self.updated.emit(time.perf_counter())

    def on_behaviour(self, behaviour, cost: str) -> None:
        """An error behaviour just detected: named in the alert line and in the events list."""
        self.alert.show_behaviour(behaviour, cost)
        self.events.addItem(behaviour_row(behaviour, cost))
        self._scroll_timer.start()
        self.updated.emit(time.perf_counter())

    def on_spread(self, spread) -> None:
        if getattr(spread, "kind", "") == "contrast":
            self.note.setText(contrast_note(spread))
        elif spread.mode == "intravascular":
            self.note.setText("The injection went into a vessel.")

    def on_ended(self, card) -> None:
        self._flush_state()
        self.end_button.setEnabled(False)
        self._fill_steps()
        if card is not None:
            word = "PASSED" if card.passed else "FAILED"
            colour = "#60d060" if card.passed else "#ff5050"
            self.status.setText(f"<b style='color:{colour}'>{word}</b>: score {card.score:.0f} / 100 "
                                f"(pass mark {card.pass_mark:g})")

    def _visible_event(self, ev) -> bool:
        return self.instructor or ev.kind in EXAM_EVENTS

    def _add_event_row(self, ev) -> None:
        if not self._visible_event(ev):
            return
        if ev.kind == EventKind.fluoro_shot and self.events.count():  # a run of images: one row
            last = self.events.item(self.events.count() - 1)
            n = last.data(Qt.ItemDataRole.UserRole)
            if n:
                last.setData(Qt.ItemDataRole.UserRole, n + 1)
                last.setText(f"{last.text().split('  ')[0]}  fluoroscopy images \u00d7{n + 1}")
                return
        item = QListWidgetItem(f"{format_time(ev.time_s)}  {ev.message}")
        if ev.kind == EventKind.fluoro_shot:
            item.setData(Qt.ItemDataRole.UserRole, 1)
        if ev.kind in HARMFUL or (ev.kind == EventKind.aspiration and ev.data.get("result") not in ("nothing", None)):
            item.setForeground(QBrush(QColor(255, 90, 90)))
        elif ev.kind == EventKind.step_warning:
            item.setForeground(QBrush(QColor(255, 190, 60)))
        elif ev.kind == EventKind.target_reached:
            item.setForeground(QBrush(QColor(100, 220, 120)))
        self.events.addItem(item)
        if self.events.count() > MAX_EVENT_ROWS:
            self._fold_oldest_row()
        if not self._scroll_timer.isActive():  # a burst of events (a replay seek): one scroll
            self._scroll_timer.start()

    def _fold_oldest_row(self) -> None:
        """Drop the oldest event row into the "earlier events" row at the top."""
        first = self.events.item(0)
        if first.data(Qt.ItemDataRole.UserRole + 1) is None:
            head = QListWidgetItem("")
            head.setData(Qt.ItemDataRole.UserRole + 1, 0)
            head.setForeground(QBrush(QColor(150, 150, 150)))
            self.events.insertItem(0, head)
            first = head
        dropped = self.events.takeItem(1)
        n = int(first.data(Qt.ItemDataRole.UserRole + 1)) + max(1, int(dropped.data(Qt.ItemDataRole.UserRole) or 1))
        first.setData(Qt.ItemDataRole.UserRole + 1, n)
        first.setText(f"\u2026 {n} earlier events (all in the score card and the replay)")

    def _refill_events(self) -> None:
        self.events.clear()
        if self.procedure is not None:
            for is_behaviour, x in merged_rows(self.procedure.events, self.alert.found):
                if is_behaviour:
                    self.events.addItem(behaviour_row(*x))
                else:
                    self._add_event_row(x)

    def event_texts(self) -> list[str]:
        return [self.events.item(i).text() for i in range(self.events.count())]

    # ------------------------------------------------------------------------------------
    # plots
    # ------------------------------------------------------------------------------------
    def set_streaming(self, on: bool) -> None:
        """A tracked attempt (poses streaming in) or not: the plots' pace (PLOT_STREAM_MS or PLOT_MS)."""
        self._plot_timer.setInterval(PLOT_STREAM_MS if on else PLOT_MS)
        self._streaming, self._plot_box = bool(on), None
        if not on and self.plots_ready:
            self.time_plot.enableAutoRange()
        self._flush_state()

    def _flush_state(self) -> None:
        state, self._pending_state = self._pending_state, None
        if state is not None:
            self.show_state(state)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt
        super().showEvent(event)
        if self._dirty_plots:
            self._redraw_plots()

    def _schedule_plots(self) -> None:
        if not self._plot_timer.isActive():
            self._plot_timer.start()

    def _redraw_plots(self) -> None:
        self._flush_state()
        if not self.plots_ready:
            return
        self._dirty_plots = self._streaming and not self.isVisible()
        if self._dirty_plots:
            return
        t = self._series["t"]
        t0 = self._t0 if self._t0 is not None else 0.0
        self.depth_curve.setData(t - t0, self._series["depth"])
        d = self._series["dist"]
        ok = np.isfinite(d)
        self.dist_curve.setData((t - t0)[ok], d[ok])
        if self._streaming:  # the range in steps (`stepped_box`), not moving with every redraw
            box = stepped_box(t[-1] - t0 if len(t) else 0.0, self._series["depth"], d[ok])
            if box != self._plot_box:
                self._plot_box = box
                self.time_plot.setRange(xRange=(0.0, box[0]), yRange=box[1:], padding=0.02)  # auto-range off
        self._draw_band()

    def band_runs(self) -> list[tuple[float, float, Tissue, str | None]]:
        """(depth from, depth to, tissue, structure) along the shaft from the skin to the tip."""
        proc = self.procedure
        st = proc.state if proc is not None else None
        if st is None or not st.inserted or st.skin_entry_mm is None:
            return []
        entry, tip = st.skin_entry_mm, st.tip_mm
        length = float(np.linalg.norm(tip - entry))
        if length <= 0:
            return []
        runs = proc.probe_tissue.runs(entry, tip, include_start=True)
        out = []
        for i, (t, tis, lab) in enumerate(runs):
            t1 = runs[i + 1][0] if i + 1 < len(runs) else 1.0
            out.append((t * length, t1 * length, Tissue(tis), proc.probe_tissue.name_of(lab)))
        return out

    def _draw_band(self) -> None:
        """The tissue band, its bars and labels updated in place (a needle streaming in: no items
        made or dropped per redraw)."""
        import pyqtgraph as pg

        runs = self.band_runs() if self.instructor else []
        key = tuple((round(4 * a), round(4 * b), int(tis), name) for a, b, tis, name in runs)  # to 0.25 mm
        if key == self._band_key and (self.band_item is not None and self.band_item.isVisible()) == bool(runs):
            return  # the band as drawn (a needle held still, tremor): no rebuild, no repaint
        self._band_key = key
        total = float(runs[-1][1]) if runs else 0.0
        labels = [(0.5 * (a + b), (name or TISSUE_INFO[tis].label).replace("_", " ")) for a, b, tis, name in runs
                  if b - a >= 0.12 * max(total, 10.0)]
        for k, ti in enumerate(self.band_texts):
            ti.setVisible(k < len(labels))
        if not runs:
            if self.band_item is not None:
                self.band_item.setVisible(False)
            return
        n = len(runs)
        bars = dict(x0=np.array([r[0] for r in runs]), width=np.array([max(r[1] - r[0], 0.05) for r in runs]),
                    y0=np.zeros(n), height=np.ones(n), pens=[pg.mkPen(None)] * n,
                    brushes=[pg.mkBrush(*[int(255 * c) for c in TISSUE_INFO[r[2]].color]) for r in runs])
        if self.band_item is None:
            self.band_item = pg.BarGraphItem(**bars)
            self.band_plot.addItem(self.band_item)
        else:
            self.band_item.setOpts(**bars)
            self.band_item.setVisible(True)
        self.band_plot.setXRange(0, max(total, 10.0), padding=0.02)
        for k, (x, text) in enumerate(labels):
            if k == len(self.band_texts):
                self.band_texts.append(pg.TextItem("", color="k", anchor=(0.5, 0.5)))
                self.band_plot.addItem(self.band_texts[k])
            ti = self.band_texts[k]
            if ti.textItem.toPlainText() != text:
                ti.setText(text)
            ti.setPos(x, 0.5)
            ti.setVisible(True)

    # ------------------------------------------------------------------------------------
    # requests
    # ------------------------------------------------------------------------------------
    def request_local_anaesthetic(self) -> None:
        self.local_anaesthetic_requested.emit(float(self.la_volume.value()))

    def air_ml(self) -> float:
        """Air going in ahead of the next injection (the syringe not purged), once."""
        if not self.air_box.isChecked():
            return 0.0
        self.air_box.setChecked(False)
        return AIR_IN_LINE_ML

    def request_inject(self, kind: str) -> None:
        if kind == "contrast":
            self.inject_requested.emit("contrast", "iohexol", 0.0, float(self.contrast_volume.value()))
        elif kind == "test_dose":
            data = self.test_agent.currentData()
            agent, conc = data if data is not None else ("lidocaine", 1.0)
            self.inject_requested.emit("test_dose", agent, float(conc), float(self.test_volume.value()))
        else:
            opt = self.agent_combo.currentData()
            if opt is None:
                return
            conc = self.agent_conc.currentData()
            self.inject_requested.emit("neurolytic", opt.agent, float(conc if conc is not None else opt.concentrations_pct[-1]),
                                       float(self.agent_volume.value()))


__all__ = ["ProcedurePanel", "contrast_note", "EXAM_EVENTS"]
