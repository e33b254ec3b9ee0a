"""The score card of an ended attempt: score, pass or fail, the reasons, the rubric items.

A non-modal dialog (the trainee can look at the images and the events beside it). Its widgets
have object names the tests read: `score_verdict`, `score_value`, `score_reasons`, `score_items`,
and `score_note` (a line under the score, e.g. how a rescore compares with the stored score).
"""
from __future__ import annotations

import html

from PySide6.QtCore import Qt
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


class ScoreCardDialog(QDialog):
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
        self.resize(560, 620)

    def reason_texts(self) -> list[str]:
        return [self.reasons.item(i).text() for i in range(self.reasons.count())]
