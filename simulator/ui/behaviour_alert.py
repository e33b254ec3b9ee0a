"""Error behaviours named the moment they are detected (the trainee's side of
`core.behaviours_live`): a line over the events list with the latest one - red when it fails the
attempt, amber when it costs points - and a row in the events list at its time, in the score
card's words ("⚠ 00:42 needle advanced with the tip unseen: needle moved 16 mm since the last
fluoroscopy image (-3 points)").
"""
from __future__ import annotations

import html

from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QLabel, QListWidgetItem

from simulator.core.behaviours import BEHAVIOURS
from simulator.core.events import format_time

FAIL_COLOUR = "#ff5050"
POINTS_COLOUR = "#ffb040"
WARN = "\u26a0"


def _colour(cost: str) -> str:
    return FAIL_COLOUR if cost.startswith("fails") else POINTS_COLOUR


def behaviour_text(behaviour, cost: str) -> str:
    """One line: when, what (the card's name of the behaviour), the detail, what it costs."""
    name = BEHAVIOURS.get(behaviour.key, behaviour.key)
    tail = f" ({cost})" if cost else ""
    return f"{WARN} {format_time(behaviour.time_s)}  {name}: {behaviour.message}{tail}"


def behaviour_row(behaviour, cost: str) -> QListWidgetItem:
    """The events list's row of a behaviour."""
    item = QListWidgetItem(behaviour_text(behaviour, cost))
    item.setForeground(QBrush(QColor(_colour(cost))))
    return item


def merged_rows(events, behaviours):
    """Events and (behaviour, cost) pairs in time order (an event before a behaviour it caused):
    [(is_behaviour, item)]."""
    rows = [(e.time_s, 0, e) for e in events] + [(b.time_s, 1, (b, c)) for b, c in behaviours]
    rows.sort(key=lambda r: (r[0], r[1]))
    return [(k == 1, x) for _t, k, x in rows]


class BehaviourAlert(QLabel):
    """The latest error behaviour of the attempt (hidden until there is one)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("behaviour_alert")
        self.setWordWrap(True)
        self.found: list = []  # (behaviour, cost) of the attempt so far
        self.setVisible(False)

    def show_behaviour(self, behaviour, cost: str) -> None:
        self.found.append((behaviour, cost))
        colour = _colour(cost)
        n = len(self.found)
        more = f"  <span style='color:#aaa'>({n} so far)</span>" if n > 1 else ""
        self.setText(f"<b style='color:{colour}'>{html.escape(behaviour_text(behaviour, cost))}</b>{more}")
        self.setStyleSheet(f"border: 1px solid {colour}; padding: 3px;")
        self.setVisible(True)

    def clear(self) -> None:
        self.found = []
        self.setText("")
        self.setVisible(False)


__all__ = ["BehaviourAlert", "behaviour_row", "behaviour_text", "merged_rows"]
