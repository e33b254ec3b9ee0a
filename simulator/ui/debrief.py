"""The debrief: the patient's course after the attempt (an educational model), and the decisions.

`DebriefWidget(course, decisions)` shows
- the label "Educational model - not a prediction for a real patient";
- the course in words (chance of lasting relief and why, this patient's onset, return of pain, the
  week a repeat would be offered, what happened to them);
- the timeline (pyqtgraph): pain score 0-10 against weeks, the median of N virtual patients with
  10-90 % and 25-75 % bands, this patient's line, markers for side effects (orange), complications
  (red), the start of relief, the point where pain returns and the repeat offer;
- the side effects and complications with their likelihood after this attempt and the figure
  behind it (published source or assumption);
- the decisions (time-out, consent, asepsis, prognostic block, agent, volume, level and side,
  approach) with a verdict and why;
- the figures that drive the model, the assumptions marked for an instructor to review;
- "Repeat in N months" (the repeat offer of this patient's course): emits `repeat_requested(course)`;
  the trainer starts a follow-up attempt on the same patient with this attempt's history.
Without a course (no outcome parameters) it says why. Object names for tests: debrief_label,
debrief_reason, debrief_summary, debrief_plot, debrief_effects, debrief_decisions, debrief_figures,
debrief_repeat.
"""
from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

MARKER_COLOURS = {"side_effect": "#e08a1e", "complication": "#d02828", "relief": "#2a8a3e", "return": "#7b3fa0",
                  "repeat": "#1f5fa8"}
VERDICT_COLOURS = {"good": "#1f9d3a", "acceptable": "#b58a00", "poor": "#d02828"}


def _cell(text: str, colour: str | None = None) -> QTableWidgetItem:
    c = QTableWidgetItem(text)
    c.setFlags(Qt.ItemFlag.ItemIsEnabled)
    c.setToolTip(text)
    if colour:
        c.setForeground(QBrush(QColor(colour)))
    return c


def _table(name: str, head: list[str], rows: list[list[tuple[str, str | None]]]) -> QTableWidget:
    t = QTableWidget(len(rows), len(head))
    t.setObjectName(name)
    t.setHorizontalHeaderLabels(head)
    for r, row in enumerate(rows):
        for c, (text, colour) in enumerate(row):
            t.setItem(r, c, _cell(text, colour))
    t.verticalHeader().hide()
    hh = t.horizontalHeader()
    for c in range(len(head)):
        hh.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
    hh.setSectionResizeMode(len(head) - 1, QHeaderView.ResizeMode.Stretch)
    return t


def timeline_plot(course, parent=None):
    """The pyqtgraph timeline of a course (see the module notes)."""
    import numpy as np
    import pyqtgraph as pg

    w = pg.PlotWidget(parent=parent, background="w")
    w.setObjectName("debrief_plot")
    pi = w.getPlotItem()
    pi.setTitle(f"Pain after the procedure - {course.n_patients} virtual patients (educational model)", color="#222")
    pi.setLabel("bottom", "weeks after the procedure")
    pi.setLabel("left", "pain score (NRS 0-10)")
    pi.showGrid(x=True, y=True, alpha=0.25)
    for ax in ("left", "bottom"):
        pi.getAxis(ax).enableAutoSIPrefix(False)
        pi.getAxis(ax).setTextPen("#333")
    legend = pi.addLegend(offset=(70, 1), labelTextColor="#222", colCount=4)  # one row above the 0-10 scale
    wk = course.weeks
    for lo, hi, alpha, name in ((course.p10, course.p90, 45, "10-90 % of patients"),
                                (course.p25, course.p75, 90, "25-75 % of patients")):
        a = pg.PlotCurveItem(wk, lo, pen=pg.mkPen((31, 95, 168, alpha), width=1))
        b = pg.PlotCurveItem(wk, hi, pen=pg.mkPen((31, 95, 168, alpha), width=1))
        fill = pg.FillBetweenItem(a, b, brush=pg.mkBrush(31, 95, 168, alpha))
        pi.addItem(a)
        pi.addItem(b)
        pi.addItem(fill)
        legend.addItem(pg.PlotDataItem(pen=pg.mkPen((31, 95, 168, alpha + 40), width=9)), name)  # a swatch
    pi.plot(wk, course.median, pen=pg.mkPen("#1f5fa8", width=2), name="median")
    pi.plot(wk, course.index, pen=pg.mkPen("#222222", width=2, style=Qt.PenStyle.DashLine), name="this patient")
    for k, m in enumerate(course.markers()):
        colour = MARKER_COLOURS.get(m["kind"], "#555")
        x = m["day"] / 7.0
        line = pg.InfiniteLine(pos=x, angle=90, pen=pg.mkPen(colour, width=1, style=Qt.PenStyle.DotLine),
                               label=m["label"], labelOpts={"position": 0.86 - 0.06 * (k % 4), "color": colour})
        line.setToolTip(f"week {x:.1f}: {m['label']}")
        pi.addItem(line)
        pt = pg.ScatterPlotItem([x], [course.pain_at(m["day"])], symbol="o" if m["kind"] != "repeat" else "t",
                                size=9, brush=pg.mkBrush(colour), pen=pg.mkPen("w"))
        pi.addItem(pt)
    pi.setYRange(0, 11.3, padding=0)
    pi.getAxis("left").setTicks([[(v, str(v)) for v in range(0, 11, 2)]])
    pi.setXRange(0, float(wk[-1]) if len(wk) else 1.0, padding=0.01)
    pi.setMouseEnabled(x=True, y=False)
    w.setMinimumHeight(260)
    _ = np  # arrays come from the course
    return w


class DebriefWidget(QWidget):
    repeat_requested = Signal(object)

    def __init__(self, course, decisions=None, parent=None):
        super().__init__(parent)
        self.setObjectName("debrief")
        self.course = course
        self.decisions = list(decisions or [])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.label = QLabel(html.escape(course.label))
        self.label.setObjectName("debrief_label")
        self.label.setStyleSheet("color: #b05a00; font-weight: bold;")
        lay.addWidget(self.label)
        self.plot = None
        if not course.available:
            self.reason = QLabel(html.escape(course.reason))
            self.reason.setObjectName("debrief_reason")
            self.reason.setWordWrap(True)
            lay.addWidget(self.reason)
            if self.decisions:
                lay.addWidget(self._decisions_table(), 1)
            lay.addStretch(1)
            return
        self.summary = QLabel("<br>".join(html.escape(x) for x in course.summary_lines()))
        self.summary.setObjectName("debrief_summary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        split = QSplitter(Qt.Orientation.Vertical)
        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(self.summary)
        self.plot = timeline_plot(course)
        tl.addWidget(self.plot, 1)
        split.addWidget(top)
        tabs = QTabWidget()
        tabs.setObjectName("debrief_tabs")
        tabs.addTab(self._effects_table(), "Side effects and complications")
        if self.decisions:
            tabs.addTab(self._decisions_table(), "Decisions")
        tabs.addTab(self._figures_list(), f"Figures ({len(course.assumptions)} assumptions)")
        split.addWidget(tabs)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        lay.addWidget(split, 1)
        from simulator.core.repeat import months_until_repeat

        months = months_until_repeat(course)
        self.repeat = QPushButton(f"Repeat in {months:g} month{'' if months == 1 else 's'}: a follow-up attempt on this patient\u2026" if months
                                  else "Repeat later, when the pain returns: a follow-up attempt on this patient\u2026")
        self.repeat.setObjectName("debrief_repeat")
        self.repeat.setToolTip("A follow-up attempt on the same patient when the pain has returned, with this attempt's "
                               "history carried over (what was injected where, how long it helped)")
        self.repeat.clicked.connect(lambda: self.repeat_requested.emit(self.course))
        lay.addWidget(self.repeat)

    def _effects_table(self) -> QTableWidget:
        rows = []
        order = sorted(self.course.effects, key=lambda e: (e.probability == 0, e.kind != "complication", -e.probability))
        for e in order:
            colour = MARKER_COLOURS[e.kind] if e.index_day is not None else None
            happened = "-" if e.index_day is None else (f"day {e.index_day:.0f}" +
                                                         ("" if e.index_days is None else f", {e.index_days:.0f} d")
                                                         if e.index_day >= 1 else "within a day")
            rows.append([(e.name, colour), (e.kind.replace("_", " "), None),
                         (f"{100 * e.probability:.1f} %" if e.probability else "not triggered", None),
                         (happened, colour), (e.figure, None)])
        return _table("debrief_effects", ["Effect", "Kind", "Likelihood now", "This patient", "Figure"], rows)

    def _decisions_table(self) -> QTableWidget:
        rows = [[(d.topic, None), (d.chosen, None), (d.verdict, VERDICT_COLOURS.get(d.verdict)), (d.why, None)]
                for d in self.decisions]
        return _table("debrief_decisions", ["Decision", "Chosen", "Verdict", "Why"], rows)

    def _figures_list(self) -> QListWidget:
        lst = QListWidget()
        lst.setObjectName("debrief_figures")
        lst.setWordWrap(True)
        for f in sorted(self.course.figures, key=lambda f: (not f["assumption"], f["path"])):
            tag = "ASSUMPTION (to review)" if f["assumption"] else "published"
            text = f"[{tag}] {f['path']}: {f['text']}" + (f" - {f['note']}" if f.get("note") else "")
            item = QListWidgetItem(text)
            tip = f.get("citation") or ""
            item.setToolTip(tip or text)
            if f["assumption"]:
                item.setForeground(QBrush(QColor("#b05a00")))
            lst.addItem(item)
        return lst

    # -- for tests and the report ------------------------------------------------------------
    def effect_rows(self) -> list[list[str]]:
        t = self.findChild(QTableWidget, "debrief_effects")
        return [[t.item(r, c).text() for c in range(t.columnCount())] for r in range(t.rowCount())]


def debrief_data(recording, scenario, targets=None):
    """(course, decisions) of an attempt; a failure becomes an unavailable course saying why."""
    from simulator.core.decisions import judge_decisions
    from simulator.core.outcome import case_info, course_for_attempt, unavailable
    from simulator.core.outcome_facts import facts_from_recording

    try:
        course = course_for_attempt(recording, scenario, targets)
    except Exception as e:  # noqa: BLE001 - the score card is shown whatever happens here
        course = unavailable(f"The course could not be computed: {e}")
    try:
        decisions = judge_decisions(facts_from_recording(recording), scenario,
                                    case_info(scenario, recording, targets).somatic_targets)
    except Exception:  # noqa: BLE001
        decisions = []
    return course, decisions


def attach_debrief(dialog, recording, scenario, targets=None) -> DebriefWidget:
    """Put the debrief beside the score card: the dialog's content becomes a "Score" tab and the
    debrief a second tab (the dialog's last layout item, its buttons, stays below both)."""
    course, decisions = debrief_data(recording, scenario, targets)
    lay = dialog.layout()
    page = QWidget()
    pl = QVBoxLayout(page)
    pl.setContentsMargins(0, 0, 0, 0)
    while lay.count() > 1:
        item = lay.takeAt(0)
        if item.widget() is not None:
            pl.addWidget(item.widget(), 1 if isinstance(item.widget(), (QListWidget, QTableWidget)) else 0)
    tabs = QTabWidget()
    tabs.setObjectName("score_tabs")
    tabs.addTab(page, "Score")
    widget = DebriefWidget(course, decisions)
    tabs.addTab(widget, "Debrief: the patient's course")
    lay.insertWidget(0, tabs, 1)
    dialog.debrief = widget
    dialog.resize(max(dialog.width(), 900), max(dialog.height(), 780))
    return widget
