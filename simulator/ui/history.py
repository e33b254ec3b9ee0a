"""A trainee's history and the instructor's overview, from the record store.

`HistoryWindow(store, trainee)`: a window of its own (Records > History, Ctrl+H; Records >
Instructor overview, Ctrl+Shift+H) with two tabs:

- "Attempts and learning curves": the trainee's attempts (all scenarios, or one), newest first,
  with their scores; beside them the learning curves of the chosen scenario (pyqtgraph): the score
  with the pass mark, and the key metrics (time taken, potential tissue damage, fluoroscopy
  images, advances without imaging), each with the scenario's thresholds from its rubric drawn as
  lines (green: full marks at or better; red: no marks at or worse).
  The points are green for a passed attempt, red for a failed one; the list says why an attempt
  failed (its first automatic fail, or a score below the pass mark; all reasons in the tooltip).
- "Instructor overview": every scenario with its trainees (attempts, best and last score, pass
  rate); below, the chosen scenario's score curves of all its trainees on one plot with the pass
  mark, to compare them; double-click a trainee to open their curves.
- "Validity": an expert and a novice group of trainees: per metric and the total score, the
  expert-vs-novice AUC with its 95 % interval and the pass/fail agreement (`ui/validity_panel.py`).

Buttons act on the selected attempt: replay it in the trainer (`replay_requested`), a report
(HTML or PDF, `simulator.records.report`), an export (.igs.mha for 3D Slicer / Perk Tutor, CSV,
JSON); and on the trainee: export their records to one file, import records from such a file
(merged by attempt UUID, never duplicated).

The data come from `simulator.records.progress` (`learning_curve`, `instructor_overview`); file
names from `choose_path(key, title, filters, save)` (the main window's, so tests can answer).
"""
from __future__ import annotations

import math
from html import escape

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from simulator.core.paths import file_stem
from simulator.records.progress import instructor_overview, learning_curve

#: what the curves show: the score, then the key metrics (issue 7)
CURVE_METRICS = ("score", "elapsed_time_s", "tissue_damage_mm2", "fluoro_shots", "advances_without_imaging")
ATTEMPT_COLUMNS = ("#", "Date", "Scenario", "Mode", "Status", "Duration", "Score", "Result", "Why (first reason)")
OVERVIEW_COLUMNS = ("Scenario / trainee", "Trainees", "Attempts", "Best", "Last / mean", "Pass rate", "Last attempt")
GOOD_COLOUR = (40, 170, 70)
BAD_COLOUR = (210, 50, 50)
PASS_COLOUR = (230, 140, 0)
LINE_COLOUR = (30, 90, 200)
PASSED_COLOUR = (30, 150, 60)  # the points of the curves: a passed attempt
FAILED_COLOUR = (215, 40, 40)  # a failed one


#: the trainees' lines on the overview plot (neither the points' green/red nor the pass mark's orange)
TRAINEE_COLOURS = ((30, 90, 200), (140, 60, 170), (0, 140, 150), (90, 90, 90), (160, 100, 40), (200, 60, 150))


def _hex(rgb) -> str:
    return "#%02x%02x%02x" % tuple(rgb)


def _fmt(x, nd: int = 1) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "\u2013"
    return f"{x:.{nd}f}"


def _pct(x) -> str:
    return "\u2013" if x is None else f"{100.0 * x:.0f} %"


def fail_reason(card: dict | None) -> str:
    """Why an attempt failed, in a few words: its first automatic fail, else "below the pass mark"
    ("" for a pass or an unscored attempt)."""
    if not card or card.get("passed", True):
        return ""
    fails = card.get("automatic_fails") or []
    if fails:
        text = str(fails[0].get("reason", "")).strip() or str(fails[0].get("key", ""))
        return f"{text} (automatic fail)" if "automatic" not in text else text
    return f"score below the pass mark {float(card.get('pass_mark', 0)):g}"


def _clock(t: float) -> str:
    m, s = divmod(max(float(t or 0.0), 0.0), 60.0)
    return f"{int(m)}:{s:04.1f}"


def _default_chooser(parent):
    def choose(key: str, title: str, filters: str, save: bool = True, suggested: str = ""):
        fn = QFileDialog.getSaveFileName if save else QFileDialog.getOpenFileName
        path, _ = fn(parent, title, suggested, filters)
        return path or None

    return choose


class HistoryWindow(QWidget):
    """See the module notes. Object names for tests: `history_trainee`, `history_scenario`,
    `history_attempts`, `history_overview`, `history_replay`, `history_report`, `history_export`,
    `history_export_trainee`, `history_import`, `history_message`."""

    replay_requested = Signal(int)  # attempt id
    message = Signal(str)

    def __init__(self, store, trainee: str = "", parent=None, choose_path=None):
        super().__init__(parent, Qt.WindowType.Window)
        self.setObjectName("history_window")
        self.setWindowTitle("Records: history and learning curves")
        self.store = store
        self.trainee = trainee
        self.choose_path = choose_path or _default_chooser(self)
        self.curve = None  # LearningCurve on show
        self.overview = []  # [ScenarioOverview]
        self.plots: dict[str, object] = {}
        self.plot_items: dict[str, object] = {}
        self.threshold_lines: dict[str, list] = {}
        self.plot_notes: dict[str, object] = {}
        self._filling = False
        self._build()
        self.resize(1250, 760)
        self.refresh()

    # ------------------------------------------------------------------------------------
    def _build(self) -> None:
        import pyqtgraph as pg

        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(QLabel("Trainee:"))
        self.trainee_combo = QComboBox()
        self.trainee_combo.setObjectName("history_trainee")
        self.trainee_combo.setMinimumWidth(180)
        top.addWidget(self.trainee_combo)
        top.addSpacing(12)
        top.addWidget(QLabel("Scenario:"))
        self.scenario_combo = QComboBox()
        self.scenario_combo.setObjectName("history_scenario")
        self.scenario_combo.setMinimumWidth(320)
        top.addWidget(self.scenario_combo, 1)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setObjectName("history_refresh")
        top.addWidget(self.refresh_button)
        lay.addLayout(top)

        self.tabs = QTabWidget()
        self.tabs.setObjectName("history_tabs")
        # -- the trainee's attempts and curves
        page = QWidget()
        pl = QHBoxLayout(page)
        pl.setContentsMargins(0, 0, 0, 0)
        split = QSplitter(Qt.Orientation.Horizontal)
        self.table = QTableWidget(0, len(ATTEMPT_COLUMNS))
        self.table.setObjectName("history_attempts")
        self.table.setHorizontalHeaderLabels(ATTEMPT_COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.doubleClicked.connect(lambda _i: self.replay_selected())
        self.table.itemSelectionChanged.connect(self._update_buttons)
        split.addWidget(self.table)
        self.curves = pg.GraphicsLayoutWidget()
        self.curves.setObjectName("history_curves")
        self.curves.setBackground("w")
        self.curve_title = QLabel("")
        self.curve_title.setObjectName("history_curve_title")
        self.curve_title.setWordWrap(True)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.curve_title)
        rl.addWidget(self.curves, 1)
        split.addWidget(right)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setSizes([520, 720])
        self.splitter = split
        pl.addWidget(split)
        self.tabs.addTab(page, "Attempts and learning curves")
        for i, metric in enumerate(CURVE_METRICS):
            p = self.curves.addPlot(row=i // 2, col=i % 2)
            p.showGrid(x=True, y=True, alpha=0.25)
            p.setLabel("bottom", "attempt")
            p.setMouseEnabled(x=False, y=False)
            p.hideButtons()
            self.plots[metric] = p
            self.plot_items[metric] = p.plot([], [], pen=pg.mkPen((30, 90, 200), width=2), symbol="o",
                                             symbolSize=7, symbolBrush=(30, 90, 200))
            self.threshold_lines[metric] = []
            note = pg.TextItem("", color=(120, 120, 120), anchor=(0.5, 0.5))
            p.addItem(note, ignoreBounds=True)
            self.plot_notes[metric] = note
        # -- the instructor's overview
        self.tree = QTreeWidget()
        self.tree.setObjectName("history_overview")
        self.tree.setColumnCount(len(OVERVIEW_COLUMNS))
        self.tree.setHeaderLabels(OVERVIEW_COLUMNS)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tree.itemDoubleClicked.connect(self._overview_open)
        self.tree.currentItemChanged.connect(lambda item, _prev: item is not None and self.compare_scenario(
            item.data(0, Qt.ItemDataRole.UserRole)[0]))
        self.compare = pg.PlotWidget()
        self.compare.setObjectName("history_compare")
        self.compare.setBackground("w")
        cp = self.compare.getPlotItem()
        cp.showGrid(x=True, y=True, alpha=0.25)
        cp.setLabel("bottom", "attempt")
        cp.setLabel("left", "score (/ 100)")
        cp.setMouseEnabled(x=False, y=False)
        cp.hideButtons()
        self.compare_legend = cp.addLegend(offset=(-10, 10))
        self.compare_scenario_id: str | None = None
        self.compare_items: dict[str, object] = {}
        osplit = QSplitter(Qt.Orientation.Vertical)
        osplit.addWidget(self.tree)
        osplit.addWidget(self.compare)
        osplit.setSizes([300, 420])
        self.tabs.addTab(osplit, "Instructor overview")
        from simulator.ui.validity_panel import ValidityPanel

        self.validity = ValidityPanel(self.store)
        self.tabs.addTab(self.validity, "Validity")
        lay.addWidget(self.tabs, 1)

        buttons = QHBoxLayout()
        self.replay_button = QPushButton("Replay selected")
        self.replay_button.setObjectName("history_replay")
        self.report_button = QPushButton("Report\u2026")
        self.report_button.setObjectName("history_report")
        self.report_button.setToolTip("The attempt's report: score card, metrics, plots, key images (HTML or PDF)")
        self.export_button = QPushButton("Export attempt\u2026")
        self.export_button.setObjectName("history_export")
        self.export_button.setToolTip(".igs.mha (3D Slicer, Perk Tutor), CSV or JSON")
        self.export_trainee_button = QPushButton("Export trainee\u2026")
        self.export_trainee_button.setObjectName("history_export_trainee")
        self.export_trainee_button.setToolTip("All of this trainee's attempts in one file (to move to another workstation)")
        self.import_button = QPushButton("Import records\u2026")
        self.import_button.setObjectName("history_import")
        self.import_button.setToolTip("Merge a trainee's records file (or one attempt's JSON) into these records")
        for b in (self.replay_button, self.report_button, self.export_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        for b in (self.export_trainee_button, self.import_button):
            buttons.addWidget(b)
        lay.addLayout(buttons)
        self.message_label = QLabel("")
        self.message_label.setObjectName("history_message")
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.message_label)

        self.trainee_combo.currentIndexChanged.connect(self._trainee_changed)
        self.scenario_combo.currentIndexChanged.connect(self._scenario_changed)
        self.refresh_button.clicked.connect(self.refresh)
        self.replay_button.clicked.connect(self.replay_selected)
        self.report_button.clicked.connect(lambda: self.report_selected())
        self.export_button.clicked.connect(lambda: self.export_selected())
        self.export_trainee_button.clicked.connect(lambda: self.export_trainee())
        self.import_button.clicked.connect(lambda: self.import_records())

    # ------------------------------------------------------------------------------------
    # data
    # ------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the store again (trainees, scenarios, attempts, curves, overview)."""
        self._filling = True
        try:
            names = [t.name for t in self.store.list_trainees()]
            if self.trainee and self.trainee not in names:
                names.insert(0, self.trainee)
            self.trainee_combo.clear()
            for n in names:
                self.trainee_combo.addItem(n, n)
            i = self.trainee_combo.findData(self.trainee)
            if i < 0 and names:
                i = 0
                self.trainee = names[0]
            self.trainee_combo.setCurrentIndex(i)
        finally:
            self._filling = False
        self._fill_scenarios()
        self._fill_overview()
        self.validity.refresh()

    def set_trainee(self, name: str) -> None:
        self.trainee = name
        self.refresh()

    def _trainee_changed(self, _i: int) -> None:
        if self._filling:
            return
        self.trainee = self.trainee_combo.currentData() or ""
        self._fill_scenarios()

    def _fill_scenarios(self) -> None:
        keep = self.scenario_combo.currentData()
        attempts = self._attempts(None)
        seen: dict[str, str] = {}
        for a in attempts:
            seen.setdefault(a.scenario_id, a.scenario_title or a.scenario_id)
        self._filling = True
        try:
            self.scenario_combo.clear()
            self.scenario_combo.addItem("All scenarios", None)
            for sid, title in seen.items():
                self.scenario_combo.addItem(f"{title} ({sid})", sid)
            i = self.scenario_combo.findData(keep) if keep is not None else -1
            if i < 0 and len(seen) == 1:
                i = 1
            self.scenario_combo.setCurrentIndex(max(i, 0))
        finally:
            self._filling = False
        self._scenario_changed(self.scenario_combo.currentIndex())

    def select_scenario(self, scenario_id: str | None) -> None:
        i = self.scenario_combo.findData(scenario_id)
        self.scenario_combo.setCurrentIndex(max(i, 0))

    def _scenario_changed(self, _i: int) -> None:
        if self._filling:
            return
        self._fill_table()
        self._fill_curves()

    def _attempts(self, scenario_id):
        if not self.trainee:
            return []
        return [a for a in self.store.list_attempts(trainee=self.trainee, scenario=scenario_id) if a.status != "live"]

    def _fill_table(self) -> None:
        sid = self.scenario_combo.currentData()
        rows = list(reversed(self._attempts(sid)))
        try:
            cards = self.store.score_cards([a.id for a in rows if a.score is not None])
        except Exception:  # noqa: BLE001 - the reasons are a help, the list still shows
            cards = {}
        self.table.setColumnHidden(2, sid is not None)  # one scenario: its name is in the combo
        self.table.setRowCount(len(rows))
        for r, a in enumerate(rows):
            result = "" if a.passed is None else ("PASSED" if a.passed else "FAILED")
            card = cards.get(a.id)
            why = fail_reason(card)
            cells = (str(a.id), a.started_at.replace("T", " ")[:16], a.scenario_title or a.scenario_id, a.mode,
                     a.status, _clock(a.duration_s), _fmt(a.score), result, why)
            tip = "\n".join(f"\u2022 {x}" for x in (card or {}).get("reasons", [])[:12])
            for c, text in enumerate(cells):
                it = QTableWidgetItem(text)
                it.setData(Qt.ItemDataRole.UserRole, a.id)
                if c in (7, 8) and a.passed is not None:
                    it.setForeground(Qt.GlobalColor.darkGreen if a.passed else Qt.GlobalColor.red)
                if tip and c >= 6:
                    it.setToolTip(tip)
                self.table.setItem(r, c, it)
        self.table.resizeColumnsToContents()
        self.table.setColumnWidth(8, min(self.table.columnWidth(8), 320))
        if rows:
            self.table.selectRow(0)
        self._update_buttons()

    def attempt_ids(self) -> list[int]:
        """The attempts listed, as shown (newest first)."""
        return [self.table.item(r, 0).data(Qt.ItemDataRole.UserRole) for r in range(self.table.rowCount())]

    def row_texts(self, row: int) -> list[str]:
        return [self.table.item(row, c).text() for c in range(self.table.columnCount())]

    def select_attempt(self, attempt_id: int) -> bool:
        ids = self.attempt_ids()
        if attempt_id not in ids:
            return False
        self.table.selectRow(ids.index(attempt_id))
        return True

    def selected_id(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return self.table.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole)

    def _update_buttons(self) -> None:
        on = self.selected_id() is not None
        for b in (self.replay_button, self.report_button, self.export_button):
            b.setEnabled(on)
        self.export_trainee_button.setEnabled(bool(self.trainee))

    # ------------------------------------------------------------------------------------
    # curves
    # ------------------------------------------------------------------------------------
    def _curve_scenario(self) -> str | None:
        sid = self.scenario_combo.currentData()
        if sid is not None:
            return sid
        ids = [self.scenario_combo.itemData(i) for i in range(1, self.scenario_combo.count())]
        return ids[0] if ids else None

    def _fill_curves(self) -> None:
        import pyqtgraph as pg

        sid = self._curve_scenario()
        self.curve = learning_curve(self.store, self.trainee, sid) if (sid and self.trainee) else None
        c = self.curve
        if c is None:
            self.curve_title.setText("No scored attempts yet.")
        else:
            best = _fmt(c.best_score)
            self.curve_title.setText(
                f"<b>{c.scenario_title}</b> \u2014 {self.trainee}: {c.attempts} scored attempt(s), best {best}, "
                f"last {_fmt(c.last_score)}, pass rate {_pct(c.pass_rate)} "
                f"&nbsp; <span style='color:{_hex(PASSED_COLOUR)}'>\u25cf passed</span> "
                f"<span style='color:{_hex(FAILED_COLOUR)}'>\u25cf failed</span>")
        for metric in CURVE_METRICS:
            p = self.plots[metric]
            for line in self.threshold_lines[metric]:
                p.removeItem(line)
            self.threshold_lines[metric] = []
            if metric == "score":
                label, unit = "Score", "/ 100"
            elif c is not None:
                label, unit = c.metric_labels.get(metric, (metric.replace("_", " "), ""))
            else:
                label, unit = metric.replace("_", " "), ""
            unit = {"mm2": "mm\u00b2", "Gy cm2": "Gy\u00b7cm\u00b2"}.get(unit, unit)
            p.setTitle(f"{label} ({unit})" if unit else label, size="9pt")
            note = self.plot_notes[metric]
            if c is None or not c.points:
                self.plot_items[metric].setData([], [])
                note.setText("no scored attempts")
                note.setPos(0.5, 0.5)
                continue
            x, y = c.x, c.series(metric)
            ok = np.isfinite(y)
            passed = c.series("passed")[ok]
            brushes = [pg.mkBrush(PASSED_COLOUR if v == 1.0 else FAILED_COLOUR if v == 0.0 else LINE_COLOUR)
                       for v in passed]
            self.plot_items[metric].setData(x[ok], y[ok], symbolBrush=brushes)
            n = int(x.max())
            step = max(1, int(np.ceil(n / 8)))
            p.getAxis("bottom").setTickSpacing(step, step)
            note.setText("" if ok.any() else "not applicable to this scenario")
            note.setPos(0.5 * (1 + n), 0.5)
            lines = []
            if metric == "score" and c.pass_mark is not None:
                lines.append(("pass mark", c.pass_mark, PASS_COLOUR))
            th = c.thresholds.get(metric)
            if th is not None:
                lines.append(("full marks", th.good, GOOD_COLOUR))
                lines.append(("no marks", th.bad, BAD_COLOUR))
            for name, value, colour in lines:
                line = pg.InfiniteLine(pos=float(value), angle=0,
                                       pen=pg.mkPen(colour, width=1.5, style=Qt.PenStyle.DashLine),
                                       label=f"{name} {value:g}",
                                       labelOpts={"color": colour, "position": 0.98, "anchors": [(1, 1), (1, 1)]})
                line.threshold_name = name
                line.threshold_value = float(value)
                p.addItem(line)
                self.threshold_lines[metric].append(line)
            ys = [float(v) for v in y[ok]] + [v for _, v, _ in lines]
            if not ok.any():
                p.setYRange(0.0, 1.0, padding=0)
            elif metric == "score":  # the whole scale: a 0.8-point step must not look like a leap
                p.setYRange(0.0, 105.0, padding=0)
            elif ys:
                lo, hi = min(ys), max(ys)
                pad = 0.16 * (hi - lo) if hi > lo else 1.0  # room for the line labels
                p.setYRange(lo - pad, hi + pad, padding=0)
            p.setXRange(0.5, max(float(x.max()), 1.0) + 0.5, padding=0)

    def threshold_values(self, metric: str) -> dict[str, float]:
        """The lines drawn on a metric's plot: {"pass mark" | "full marks" | "no marks": value}."""
        return {ln.threshold_name: ln.threshold_value for ln in self.threshold_lines.get(metric, [])}

    def point_colours(self, metric: str) -> list[str]:
        """"passed" / "failed" / "" per point drawn on a metric's curve (the points' colours)."""
        names = {PASSED_COLOUR: "passed", FAILED_COLOUR: "failed"}
        brushes = self.plot_items[metric].opts.get("symbolBrush")
        if not isinstance(brushes, list):
            return []
        return [names.get(tuple(b.color().getRgb()[:3]), "") for b in brushes]

    def curve_data(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.plot_items[metric].getData()
        return (np.asarray([] if x is None else x, float), np.asarray([] if y is None else y, float))

    # ------------------------------------------------------------------------------------
    # overview
    # ------------------------------------------------------------------------------------
    def _fill_overview(self) -> None:
        self.overview = instructor_overview(self.store)
        self.tree.clear()
        for sc in self.overview:
            top = QTreeWidgetItem([f"{sc.scenario_title or sc.scenario_id}", str(sc.trainees), str(sc.attempts),
                                   _fmt(sc.best_score), _fmt(sc.mean_score), _pct(sc.pass_rate), ""])
            top.setData(0, Qt.ItemDataRole.UserRole, (sc.scenario_id, None))
            top.setToolTip(0, f"{sc.scenario_id}; pass mark {_fmt(sc.pass_mark, 0)}"
                              + (f"; {sc.unscored} unscored" if sc.unscored else ""))
            for row in sc.rows:
                it = QTreeWidgetItem([row.trainee, "", str(row.attempts), _fmt(row.best_score), _fmt(row.last_score),
                                      _pct(row.pass_rate), row.last_at.replace("T", " ")[:16]])
                it.setData(0, Qt.ItemDataRole.UserRole, (sc.scenario_id, row.trainee))
                top.addChild(it)
            self.tree.addTopLevelItem(top)
            top.setExpanded(True)
        for c in range(1, len(OVERVIEW_COLUMNS)):
            self.tree.resizeColumnToContents(c)
        ids = [o.scenario_id for o in self.overview]
        keep = self.compare_scenario_id if self.compare_scenario_id in ids else (ids[0] if ids else None)
        self.compare_scenario(keep)

    def compare_scenario(self, scenario_id: str | None) -> None:
        """The overview's plot: every trainee's score curve on one scenario, with the pass mark, so
        an instructor compares trainees (who improves, who is stuck below the mark)."""
        import pyqtgraph as pg

        cp = self.compare.getPlotItem()
        for item in list(self.compare_items.values()):
            cp.removeItem(item)
        self.compare_items = {}
        self.compare_legend.clear()
        self.compare_scenario_id = scenario_id
        ov = next((o for o in self.overview if o.scenario_id == scenario_id), None)
        if ov is None:
            cp.setTitle("Choose a scenario to compare its trainees", size="9pt")
            return
        cp.setTitle(f"{ov.scenario_title or ov.scenario_id}: score per attempt, by trainee", size="9pt")
        top = 1.0
        for i, row in enumerate(ov.rows):
            c = learning_curve(self.store, row.trainee, scenario_id)
            if c is None or not c.points:
                continue
            x, y = c.x, c.series("score")
            ok = np.isfinite(y)
            colour = TRAINEE_COLOURS[i % len(TRAINEE_COLOURS)]
            brushes = [pg.mkBrush(PASSED_COLOUR if v == 1.0 else FAILED_COLOUR) for v in c.series("passed")[ok]]
            item = cp.plot(x[ok], y[ok], pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=8,
                           symbolPen=pg.mkPen(colour, width=2), symbolBrush=brushes,
                           name=f"{row.trainee} ({c.attempts}, best {_fmt(c.best_score)})")
            self.compare_items[row.trainee] = item
            if ok.any():
                top = max(top, float(x[ok].max()))
        if ov.pass_mark is not None:
            line = pg.InfiniteLine(pos=float(ov.pass_mark), angle=0,
                                   pen=pg.mkPen(PASS_COLOUR, width=1.5, style=Qt.PenStyle.DashLine),
                                   label=f"pass mark {float(ov.pass_mark):g}",
                                   labelOpts={"color": PASS_COLOUR, "position": 0.02, "anchors": [(0, 1), (0, 1)]})
            cp.addItem(line)
            self.compare_items["__pass_mark__"] = line
        cp.setYRange(0.0, 105.0, padding=0)
        cp.setXRange(0.5, top + 0.5, padding=0)
        step = max(1, int(np.ceil(top / 10)))
        cp.getAxis("bottom").setTickSpacing(step, step)

    def comparison_data(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The overview plot's curves: trainee -> (attempt numbers, scores)."""
        out = {}
        for name, item in self.compare_items.items():
            if name != "__pass_mark__":
                x, y = item.getData()
                out[name] = (np.asarray(x, float), np.asarray(y, float))
        return out

    def overview_rows(self) -> list[tuple[str, str | None, list[str]]]:
        """(scenario id, trainee or None, the texts of the row) of every row of the overview."""
        out = []
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            items = [top] + [top.child(k) for k in range(top.childCount())]
            for it in items:
                sid, trainee = it.data(0, Qt.ItemDataRole.UserRole)
                out.append((sid, trainee, [it.text(c) for c in range(len(OVERVIEW_COLUMNS))]))
        return out

    def _overview_open(self, item, _col=0) -> None:
        sid, trainee = item.data(0, Qt.ItemDataRole.UserRole)
        if trainee:
            self.set_trainee(trainee)
        self.select_scenario(sid)
        self.show_tab("trainee")

    def show_tab(self, name: str) -> None:
        self.tabs.setCurrentIndex({"overview": 1, "validity": 2}.get(name, 0))

    # ------------------------------------------------------------------------------------
    # actions
    # ------------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        self.message_label.setText(text)
        self.message.emit(text)

    def replay_selected(self) -> None:
        aid = self.selected_id()
        if aid is not None:
            self.replay_requested.emit(int(aid))

    def report_selected(self, path: str | None = None):
        """A report of the selected attempt (HTML or PDF, by the file's suffix)."""
        from simulator.records.report import build_report, write_report

        aid = self.selected_id()
        if aid is None:
            return None
        path = path or self.choose_path("report", f"Report of attempt {aid}",
                                        "HTML report (*.html);;PDF report (*.pdf)", True, f"attempt_{aid}.html")
        if not path:
            return None
        try:
            out = write_report(build_report(self.store, aid), path)
        except Exception as e:  # noqa: BLE001 - shown to the user with the file name
            self.say(f"<span style='color:#d02828'>Report not written: {escape(str(e))}</span>")
            return None
        self.say(f"Report of attempt {aid} written: {escape(str(out))}")
        return out

    def export_selected(self, path: str | None = None):
        """The selected attempt as .igs.mha (3D Slicer / Perk Tutor), CSV or JSON (by the suffix)."""
        from simulator.records.exchange import export_attempt

        aid = self.selected_id()
        if aid is None:
            return None
        path = path or self.choose_path(
            "export", f"Export attempt {aid}",
            "Tracked sequence for 3D Slicer / Perk Tutor (*.igs.mha);;CSV samples (*.csv);;JSON (*.json)", True,
            f"attempt_{aid}.igs.mha")
        if not path:
            return None
        try:
            out = export_attempt(self.store, aid, path)
        except Exception as e:  # noqa: BLE001
            self.say(f"<span style='color:#d02828'>Export failed: {escape(str(e))}</span>")
            return None
        self.say(f"Attempt {aid} exported: {escape(str(out))}")
        return out

    def export_trainee(self, path: str | None = None):
        from simulator.records.exchange import export_trainee

        if not self.trainee:
            return None
        path = path or self.choose_path("export_trainee", f"Export the records of {self.trainee}",
                                        "Trainee records (*.ntrecords)", True, f"{file_stem(self.trainee)}.ntrecords")
        if not path:
            return None
        try:
            n = export_trainee(self.store, self.trainee, path)
        except Exception as e:  # noqa: BLE001
            self.say(f"<span style='color:#d02828'>Export failed: {escape(str(e))}</span>")
            return None
        self.say(f"{n} attempt(s) of {escape(self.trainee)} exported to {escape(str(path))}")
        return n

    def import_records(self, path: str | None = None):
        """Merge a trainee's records file (or one attempt's JSON export) into the store."""
        from simulator.records.exchange import import_json, import_trainee

        path = path or self.choose_path("import", "Import records",
                                        "Trainee records (*.ntrecords *.sqlite);;Attempt JSON (*.json)", False)
        if not path:
            return None
        try:
            if str(path).lower().endswith(".json"):
                aid, added = import_json(self.store, path)
                text = f"attempt {aid} {'added' if added else 'already present'}"
            else:
                text = import_trainee(self.store, path).text()
        except Exception as e:  # noqa: BLE001
            self.say(f"<span style='color:#d02828'>Import failed: {escape(str(e))}</span>")
            return None
        self.refresh()
        self.say(f"Imported from {escape(str(path))}: {escape(str(text))}")
        return text


__all__ = ["CURVE_METRICS", "HistoryWindow"]
