"""The score card of an ended attempt: score, pass or fail, the reasons, each target's result,
the error behaviours with their times, the rubric items.

A non-modal dialog (the trainee can look at the images and the events beside it). Its widgets
have object names the tests read: `score_verdict`, `score_value`, `score_reasons`, `score_targets`
(target, needle, injection, distance, coverage), `score_behaviours` (time, behaviour, cost; a
double-click on a row emits `jump_requested(time_s)`: the replay jumps there), `score_items`,
and `score_note` (a line under the score, e.g. how a rescore compares with the stored score).
"""
from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QListWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)


from simulator.core.events import format_time

TARGET_COLUMNS = ("Target", "Needle", "Injection", "Distance", "Coverage")
BEHAVIOUR_COLUMNS = ("Time", "Error behaviour", "Cost")


def _cell(text: str, tip: str = "") -> QTableWidgetItem:
    c = QTableWidgetItem(text)
    c.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
    if tip:
        c.setToolTip(tip)
    return c


def _table(name: str, columns, rows) -> QTableWidget:
    t = QTableWidget(len(rows), len(columns))
    t.setObjectName(name)
    t.setHorizontalHeaderLabels(list(columns))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            t.setItem(r, c, _cell(text, row[1] if c == 1 else ""))
    t.horizontalHeader().setSectionResizeMode(1 if name == "score_behaviours" else 0, QHeaderView.ResizeMode.Stretch)
    t.verticalHeader().hide()
    return t


def target_rows(card) -> list[list[str]]:
    out = []
    for t in card.targets:
        needle = "placed" if t.get("placed", t.get("reached")) else "none"
        if t.get("needs_injection", True):
            inj = "given" if t.get("injected", True) else "none"
        else:
            inj = "-"
        shown = t.get("injected", True) or not t.get("needs_injection", True)
        dist = f"{t['final_distance_mm']:.1f} mm (tol. {t['tolerance_mm']:g})" if shown else "-"
        cov = f"{100.0 * t['coverage']:.0f} %" if shown and t.get("needs_injection", True) else "-"
        name = t["name"] + ("" if t.get("required", True) else " (optional)")
        out.append([name, needle, inj, dist, cov])
    return out


def behaviour_rows(card) -> list[list[str]]:
    t0 = float((card.extra or {}).get("start_time_s", 0.0))
    cost = {"fail": "automatic fail", "none": "-"}
    return [[format_time(b["time_s"] - t0), b["message"],
             cost.get(b["consequence"], f"-{b['points']:g} points" if b["points"] else "0 (cap reached)")]
            for b in card.behaviours]


class ScoreCardDialog(QDialog):
    jump_requested = Signal(float)  # a behaviour's time (s): the replay may jump there

    def __init__(self, card, scenario_title: str = "", parent=None, note: str = ""):
        super().__init__(parent)
        self.setObjectName("score_card")
        self.setWindowTitle("Score card")
        self.card = card
        lay = QVBoxLayout(self)
        if scenario_title:
            t = QLabel(f"<b>{html.escape(scenario_title)}</b>")
            t.setWordWrap(True)
            lay.addWidget(t)
        self.verdict = QLabel("PASSED" if card.passed else "FAILED")
        self.verdict.setObjectName("score_verdict")
        colour = "#1f9d3a" if card.passed else "#d02828"
        self.verdict.setStyleSheet(f"font-size: 28px; font-weight: bold; color: {colour};")
        self.verdict.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(self.verdict)
        self.value = QLabel(f"Score {card.score:.1f} / 100 (pass mark {card.pass_mark:g})")
        self.value.setObjectName("score_value")
        self.value.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(self.value)
        self.note = QLabel(html.escape(note))
        self.note.setObjectName("score_note")
        self.note.setWordWrap(True)
        self.note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.note.setVisible(bool(note))
        lay.addWidget(self.note)
        lay.addWidget(QLabel("Why:"))
        self.reasons = QListWidget()
        self.reasons.setObjectName("score_reasons")
        self.reasons.setWordWrap(True)
        for r in card.reasons or ["Every item at full marks."]:
            self.reasons.addItem(r)
        lay.addWidget(self.reasons, 2)
        self.targets = _table("score_targets", TARGET_COLUMNS, target_rows(card))
        self.targets.setMaximumHeight(34 + 26 * max(1, len(card.targets)))
        lay.addWidget(self.targets)
        behaviours = list(getattr(card, "behaviours", []) or [])
        lay.addWidget(QLabel(f"Error behaviours on the timeline: {len(behaviours)}"
                             + (" (double-click one to see that moment in a replay)" if behaviours else "")))
        self.behaviours = _table("score_behaviours", BEHAVIOUR_COLUMNS, behaviour_rows(card))
        self.behaviours.setVisible(bool(behaviours))
        self.behaviours.cellDoubleClicked.connect(lambda row, _c: self.jump_requested.emit(float(behaviours[row]["time_s"])))
        lay.addWidget(self.behaviours, 1)
        items = [i for i in card.items if i.applicable]
        self.items = QTableWidget(len(items), 3)
        self.items.setObjectName("score_items")
        self.items.setHorizontalHeaderLabels(["Item", "Value", "Points"])
        for row, it in enumerate(items):
            value = "" if it.value is None else (f"{it.value:g}" if float(it.value).is_integer() else f"{it.value:.1f}")
            for col, text in enumerate((it.label, value, f"{it.points:.1f} / {it.share:.1f}")):
                cell = QTableWidgetItem(text)
                cell.setFlags(Qt.ItemFlag.ItemIsEnabled)
                self.items.setItem(row, col, cell)
        self.items.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.items.verticalHeader().hide()
        lay.addWidget(self.items, 2)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        buttons.accepted.connect(self.close)
        lay.addWidget(buttons)
        self.resize(640, 760)

    def table_texts(self, name: str) -> list[list[str]]:
        t = self.targets if name == "targets" else self.behaviours
        return [[t.item(r, c).text() for c in range(t.columnCount())] for r in range(t.rowCount())]

    def reason_texts(self) -> list[str]:
        return [self.reasons.item(i).text() for i in range(self.reasons.count())]
