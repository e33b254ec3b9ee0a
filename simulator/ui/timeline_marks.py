"""The replay timeline's marks: the recorded events worth a mark, and the error behaviours (which
the score card lists) as taller marks that jump the replay there when clicked.

`attempt_marks(recording, scenario, anatomy, targets)` -> [Mark]; `MarkedSlider` draws them under
its groove (events) and above it (behaviours) and emits `mark_clicked(ms)` for a click on one.
"""
from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen, QPolygon
from PySide6.QtWidgets import QSlider, QStyle, QStyleOptionSlider

from simulator.core.events import HARMFUL, EventKind, format_time

BEHAVIOUR_COLOUR = "#ff7a00"
CLICK_PX = 5  # a click this close to a mark (horizontally) jumps to it


@dataclass(frozen=True)
class Mark:
    time_s: float
    colour: str
    text: str
    behaviour: bool = False  # an error behaviour (drawn above the groove)


def event_marks(recording) -> list[Mark]:
    """The recorded events worth a mark on the timeline."""
    out = []
    for ev in recording.events:
        if ev.kind in HARMFUL:
            colour = "#e03030"
        elif ev.kind == EventKind.fluoro_shot:
            colour = "#4080ff"
        elif ev.kind in (EventKind.injection, EventKind.local_anaesthetic):
            colour = "#30b050"
        elif ev.kind in (EventKind.aspiration, EventKind.target_reached, EventKind.skin_puncture,
                         EventKind.bone_contact, EventKind.end):
            colour = "#e0a020"
        else:
            continue
        out.append(Mark(float(ev.time_s), colour, f"{format_time(ev.time_s)} {ev.message}"))
    return out


def behaviour_marks(recording, scenario, anatomy, targets) -> list[Mark]:
    """The error behaviours on the attempt's timeline (`core.behaviours`), as marks."""
    from simulator.core.behaviours import detect_behaviours

    t0 = float(recording.samples.time_s[0]) if recording.n_samples else 0.0
    return [Mark(b.time_s, BEHAVIOUR_COLOUR, f"{format_time(b.time_s - t0)} \u26a0 {b.message}", True)
            for b in detect_behaviours(recording, scenario, anatomy, targets)]


class MarkedSlider(QSlider):
    """A horizontal slider (milliseconds) with marks: events under the groove, error behaviours
    (orange, taller) above it. A click on a mark emits `mark_clicked(value)`."""

    mark_clicked = Signal(int)

    def __init__(self, parent=None):
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.marks: list[tuple[int, str, str, bool]] = []  # (value, colour, tooltip, behaviour)
        self.setMinimumHeight(34)

    def set_marks(self, marks) -> None:
        self.marks = [(int(m[0]), m[1], m[2], bool(m[3]) if len(m) > 3 else False) for m in marks]
        shown = [m for m in self.marks if m[3]] + [m for m in self.marks if not m[3]]
        self.setToolTip("\n".join(m[2] for m in shown[:30]))
        self.update()

    def x_of(self, value: int) -> int:
        opt = QStyleOptionSlider()
        self.initStyleOption(opt)
        groove = self.style().subControlRect(QStyle.ComplexControl.CC_Slider, opt,
                                             QStyle.SubControl.SC_SliderGroove, self)
        handle = self.style().subControlRect(QStyle.ComplexControl.CC_Slider, opt,
                                             QStyle.SubControl.SC_SliderHandle, self)
        span = groove.width() - handle.width()
        x0 = groove.x() + handle.width() // 2
        return x0 + QStyle.sliderPositionFromValue(self.minimum(), self.maximum(), value, max(span, 1))

    def mark_at(self, x: int, behaviours_only: bool = False):
        """The mark nearest a click at x (within CLICK_PX; behaviours first), or None."""
        best = None
        for m in self.marks:
            if behaviours_only and not m[3]:
                continue
            d = abs(self.x_of(m[0]) - x)
            if d <= CLICK_PX and (best is None or (m[3], -d) > (best[0][3], -best[1])):
                best = (m, d)
        return None if best is None else best[0]

    def mousePressEvent(self, event):  # noqa: N802 (Qt API)
        y = event.position().y()
        on_marks = y <= 8 or y >= self.height() - 8  # the bands above and under the groove
        m = self.mark_at(int(event.position().x()), behaviours_only=y <= 8) if on_marks else None
        if m is not None and event.button() == Qt.MouseButton.LeftButton:
            self.mark_clicked.emit(m[0])
            event.accept()
            return
        super().mousePressEvent(event)

    def paintEvent(self, event):  # noqa: N802 (Qt API)
        super().paintEvent(event)
        if not self.marks:
            return
        p = QPainter(self)
        h = self.height()
        for value, colour, _, behaviour in self.marks:
            x = self.x_of(value)
            if behaviour:  # a small triangle above the groove, pointing down at the moment
                p.setPen(QPen(QColor(colour), 1))
                p.setBrush(QColor(colour))
                p.drawPolygon(QPolygon([QPoint(x - 4, 0), QPoint(x + 4, 0), QPoint(x, 7)]))
            else:
                p.setPen(QPen(QColor(colour), 2))
                p.drawLine(x, h - 7, x, h - 1)
        p.end()
