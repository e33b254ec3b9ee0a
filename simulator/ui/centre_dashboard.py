"""The instructor's live dashboard of a simulation centre (a window of its own).

`CentreDashboard(open_server)`: above, every workstation of the centre that the connected role
may see: who trains there, on which scenario, the current step, the distance from the needle tip
to the nearest target, the time into the attempt, the newest event (red when harmful: a critical
contact, a vessel, pleura or dura punctured) and how fresh the row is. Refreshed from the server
every second (the workstations send every half second), so what happens at a workstation is on
screen within 2 s. Below, the cohort's learning curves on a scenario from the central store: one
score curve per trainee with the pass mark, green points passed, red failed.

All server reads run on a worker thread; the window only draws what arrives (a server that does
not answer shows as a message, never a frozen window). Open it with Records > Centre dashboard, or
`python main.py centre dashboard`.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from simulator.records.centre.background import close_quietly
from simulator.records.centre.feed import STEP_LABELS, read_live

COLUMNS = ("Workstation", "Trainee", "Scenario", "Current step", "Tip to target", "Time", "Latest event", "Updated")
HARM = QColor(255, 214, 214)
STALE = QColor(120, 120, 120)
STALE_S = 10.0
WARN = "\u26a0 "
PASSED, FAILED = (40, 160, 70), (210, 50, 50)
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (148, 103, 189), (140, 86, 75), (227, 119, 194),
           (127, 127, 127), (188, 189, 34), (23, 190, 207), (214, 39, 40)]


def _mmss(seconds) -> str:
    if seconds is None:
        return "-"
    s = int(max(0.0, float(seconds)))
    return f"{s // 60:02d}:{s % 60:02d}"


class CentreDashboard(QWidget):
    """See the module notes. `open_server()` returns a record store on the centre's server."""

    fetched = Signal(object)

    def __init__(self, open_server, *, refresh_ms: int = 1000, curves_every_s: float = 10.0, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Simulation centre - live")
        self.open_server = open_server
        self.curves_every_s = float(curves_every_s)
        self.store = None
        self.rows = []
        self.curves: dict = {}
        self.scenarios: list[tuple[str, str]] = []
        self.error = ""
        self.refreshed_at = 0.0  # time.time() of the last server read shown
        self._busy = False
        self._curves_at = -1e18
        self._want_scenario = ""
        self._closing = False

        self.header = QLabel("Connecting to the centre's server\u2026")
        self.header.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(6, QHeaderView.ResizeMode.Stretch)
        self.scenario_box = QComboBox()
        self.scenario_box.currentIndexChanged.connect(self._scenario_chosen)
        self.plot = pg.PlotWidget()
        self.plot.setBackground("w")
        self.plot.setLabel("bottom", "attempt number")
        self.plot.setLabel("left", "score (0-100)")
        self.plot.setYRange(0, 100)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.getAxis("bottom").setTickSpacing(1, 1)  # attempt numbers are whole
        self.legend = self.plot.addLegend(offset=(10, 10))

        lower = QWidget()
        lv = QVBoxLayout(lower)
        row = QHBoxLayout()
        row.addWidget(QLabel("Cohort learning curves on"))
        row.addWidget(self.scenario_box, 1)
        lv.addLayout(row)
        lv.addWidget(self.plot, 1)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(lower)
        split.setSizes([320, 420])
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addWidget(split, 1)
        self.resize(1100, 780)

        self.fetched.connect(self._apply)
        self._kick = threading.Event()
        self._job = ("", False)
        self._worker = threading.Thread(target=self._work, daemon=True, name="CentreDashboard")
        self._worker.start()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(int(refresh_ms))
        self.refresh()

    # -- reading the server (worker thread) --------------------------------------------------
    def refresh(self) -> None:
        if self._busy or self._closing:
            return
        self._busy = True
        self._job = (self._want_scenario, time.monotonic() - self._curves_at >= self.curves_every_s)
        self._kick.set()

    def _work(self) -> None:
        """The worker thread: one server connection, a read whenever `refresh` asks."""
        while True:
            self._kick.wait()
            self._kick.clear()
            if self._closing:
                break
            scenario, want_curves = self._job
            self._fetch(want_curves, scenario)
        close_quietly(self.store)
        self.store = None

    def _fetch(self, want_curves: bool, scenario: str) -> None:
        from simulator.records.centre.cohort import cohort_curves, scenarios_seen

        out = {"error": "", "at": time.time()}
        try:
            if self.store is None:
                self.store = self.open_server()
            out["rows"] = read_live(self.store)
            if want_curves:
                out["scenarios"] = scenarios_seen(self.store)
                sid = scenario or (out["scenarios"][0][0] if out["scenarios"] else "")
                out["scenario"] = sid
                out["curves"] = cohort_curves(self.store, sid) if sid else {}
            out["where"] = self.store.location
        except Exception as e:  # noqa: BLE001 - shown in the window, tried again next second
            out["error"] = str(e)
            store, self.store = self.store, None
            close_quietly(store)
        if not self._closing:
            self.fetched.emit(out)

    # -- drawing (GUI thread) ---------------------------------------------------------------
    def _apply(self, out: dict) -> None:
        self._busy = False
        self.error = out["error"]
        if self.error:
            self.header.setText(f"<b>Server not reachable</b> - {self.error} (trying again every second)")
            self.header.setStyleSheet("color: #a00;")
            return
        self.refreshed_at = out["at"]
        self.header.setStyleSheet("")
        self.rows = out["rows"]
        n_live = sum(1 for r in self.rows if r.state == "live" and r.age_s < STALE_S)
        self.header.setText(f"{out['where']} - {len(self.rows)} workstations, {n_live} training now - "
                            f"updated {time.strftime('%H:%M:%S', time.localtime(out['at']))}")
        self._fill_table()
        if "curves" in out:
            self._curves_at = time.monotonic()
            self._set_scenarios(out["scenarios"], out["scenario"])
            self.curves = out["curves"]
            self._draw_curves()

    def _fill_table(self) -> None:
        t = self.table
        t.setRowCount(len(self.rows))
        for i, r in enumerate(self.rows):
            last = r.events[-1] if r.events else None
            harm = r.harmful
            step = "attempt ended" if r.state == "ended" else STEP_LABELS.get(r.step, r.step)
            cells = (r.workstation, r.trainee, r.scenario_title or r.scenario_id, step,
                     "-" if r.distance_mm is None else f"{r.distance_mm:.1f} mm", _mmss(r.elapsed_s),
                     (f"{WARN if last.get('harmful') else ''}{_mmss(last.get('t'))} {last.get('message', '')}"
                      if last else "-"), f"{r.age_s:.0f} s ago")
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if harm:
                    item.setBackground(QBrush(HARM))
                if r.age_s >= STALE_S:
                    item.setForeground(QBrush(STALE))
                if j == 6 and r.events:
                    item.setToolTip("\n".join(f"{_mmss(e.get('t'))} {e.get('message', '')}" for e in r.events))
                t.setItem(i, j, item)

    def _set_scenarios(self, scenarios, current: str) -> None:
        self.scenarios = list(scenarios)
        box = self.scenario_box
        box.blockSignals(True)
        box.clear()
        for sid, title in self.scenarios:
            box.addItem(title or sid, sid)
        k = box.findData(current)
        if k >= 0:
            box.setCurrentIndex(k)
        box.blockSignals(False)

    def _scenario_chosen(self, index: int) -> None:
        self._want_scenario = self.scenario_box.itemData(index) or ""
        self._curves_at = -1e18  # fetch the curves of the new choice with the next refresh

    def _draw_curves(self) -> None:
        p = self.plot
        p.clear()
        self.legend.clear()
        mark = None
        for k, (trainee, curve) in enumerate(sorted(self.curves.items())):
            x, y = curve.x, curve.series("score")
            ok = ~np.isnan(y)
            if not ok.any():
                continue
            colour = PALETTE[k % len(PALETTE)]
            brushes = [pg.mkBrush(PASSED if v == 1.0 else FAILED) for v in curve.series("passed")[ok]]
            p.plot(x[ok], y[ok], pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=8,
                   symbolPen=pg.mkPen(colour, width=2), symbolBrush=brushes, name=trainee)
            mark = curve.pass_mark if curve.pass_mark is not None else mark
        if mark is not None:
            p.addItem(pg.InfiniteLine(pos=float(mark), angle=0, label=f"pass mark {mark:g}",
                                      pen=pg.mkPen((90, 90, 90), width=1.5, style=Qt.PenStyle.DashLine)))
        p.setYRange(0, 100)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop refreshing and close the server connection (the worker thread ends)."""
        if self._closing:
            return
        self._closing = True
        self.timer.stop()
        self._kick.set()
        self._worker.join(10)
