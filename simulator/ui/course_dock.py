"""The patient's course in the replay: a dock beside the procedure panel while an attempt replays.

`CourseDock` (object name `dock_course`, title "Patient's course") shows the debrief of the
replayed attempt - the course after it (the pyqtgraph timeline of N virtual patients with this
patient's line and the markers of what happened, side effects and complications, the figures and
assumptions) and the decisions - computed from the stored recording (the whole attempt, as it was
scored), so a trainee and an instructor reviewing an attempt see what followed it without
rescoring. "Repeat in N months" starts a follow-up from the replayed attempt (`repeat_requested`).
The main window tabs it with the Procedure dock (which stays in front: the replayed steps) when a
replay starts and takes it down when the replay ends; `clear()` takes the plot down (deleted by the
event loop - its Repeat button may be the caller - never left for Qt at exit).
"""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDockWidget, QLabel, QVBoxLayout, QWidget


class CourseDock(QDockWidget):
    repeat_requested = Signal(object)  # the course (see DebriefWidget)

    def __init__(self, parent=None):
        super().__init__("Patient's course", parent)
        self.setObjectName("dock_course")
        self.holder = QWidget()
        lay = QVBoxLayout(self.holder)
        lay.setContentsMargins(2, 2, 2, 2)
        self.placeholder = QLabel("The course after a replayed attempt is shown here.")
        self.placeholder.setWordWrap(True)
        lay.addWidget(self.placeholder)
        self.setWidget(self.holder)
        self.debrief = None
        self.recording = None  # the replayed attempt (whole), for a follow-up

    def show_attempt(self, recording, scenario, targets=None) -> None:
        """The debrief of `recording` (the whole stored attempt)."""
        from simulator.ui.debrief import DebriefWidget, debrief_data

        self.clear()
        self.recording = recording
        course, decisions = debrief_data(recording, scenario, targets)
        self.debrief = DebriefWidget(course, decisions)
        self.debrief.repeat_requested.connect(self.repeat_requested)
        self.placeholder.hide()
        self.holder.layout().addWidget(self.debrief, 1)

    def clear(self) -> None:
        w, self.debrief, self.recording = self.debrief, None, None
        if w is not None:  # kept in the dock until Qt deletes it: its Repeat button may be the caller
            w.hide()
            self.holder.layout().removeWidget(w)
            w.deleteLater()
        self.placeholder.show()


__all__ = ["CourseDock"]
