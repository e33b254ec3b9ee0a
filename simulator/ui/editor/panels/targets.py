"""The editor's Targets tab: the nerves or plexus the needle tip must reach (points, nerve polylines,
label-based proposals).
"""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from simulator.core import scenario_model as M
from simulator.ui.editor.fields import (
    Binder,
    CheckField,
    ComboField,
    LineField,
    SpinField,
    set_text,
)
from simulator.ui.editor.panels.common import ListEditor, field_literal, fmt_point, literal_choices


def forget_target(doc, target) -> None:
    """A deleted target's id leaves the planned needles that led to it (they then lead to the
    nearest target), in the same undo step: no dangling target_id for the instructor to chase."""
    tid = target.get("id") if isinstance(target, dict) else None
    if not tid:
        return
    paths = [("planned_trajectory",)] + [("additional_trajectories", i)
                                         for i in range(len(doc.get(("additional_trajectories",)) or []))]
    for p in paths:
        t = doc.get(p)
        if isinstance(t, dict) and t.get("target_id") == tid:
            doc.unset(p + ("target_id",))


class TargetsPanel(QWidget):
    mode_requested = Signal(str)  # "point_target" | "polyline" | ""
    proposal_requested = Signal(str)

    def __init__(self, binder: Binder, parent=None):
        super().__init__(parent)
        self.binder = binder
        lay = QVBoxLayout(self)
        intro = QLabel("Targets: the nerves or plexus the needle tip must reach. Click a slice to place a "
                       "point; draw a nerve as a line of points (Enter or double-click finishes, "
                       "Backspace removes the last point, Escape cancels).")
        intro.setWordWrap(True)
        lay.addWidget(intro)
        self.editor = ListEditor(binder, ("targets",), self._describe, "targets")
        self.editor.on_delete = forget_target
        self.add_point = self.editor.add_button(QPushButton("Add point (click)"))
        self.add_point.setObjectName("add_point_target")
        self.add_point.setCheckable(True)
        self.add_point.clicked.connect(lambda on: self.mode_requested.emit("point_target" if on else ""))
        self.draw_line = self.editor.add_button(QPushButton("Draw nerve (clicks)"))
        self.draw_line.setObjectName("draw_polyline")
        self.draw_line.setCheckable(True)
        self.draw_line.clicked.connect(lambda on: self.mode_requested.emit("polyline" if on else ""))
        self.move_point = self.editor.add_button(QPushButton("Move a point (click)"))
        self.move_point.setObjectName("move_target_point")
        self.move_point.setToolTip("Click a slice: the selected target's point (a nerve: its nearest point) moves there")
        self.move_point.setCheckable(True)
        self.move_point.clicked.connect(lambda on: self.mode_requested.emit("move_point" if on else ""))
        lay.addWidget(self.editor)
        prop = QHBoxLayout()
        self.proposals = QComboBox()
        self.proposals.setObjectName("proposal_choice")
        self.proposals.setToolTip("Targets placed from the anatomy's labels (bones and vessels): celiac plexus, "
                                  "splanchnic nerves, intercostal nerves, lumbar sympathetic chain")
        self.add_proposal = QPushButton("Add from proposal")
        self.add_proposal.setObjectName("add_proposal")
        self.add_proposal.clicked.connect(lambda: self.proposal_requested.emit(self.proposals.currentData() or ""))
        prop.addWidget(self.proposals, 1)
        prop.addWidget(self.add_proposal)
        lay.addLayout(prop)
        p = self.editor.item_path
        self.editor.detail([
            ("Id", LineField(lambda: p("id"), tip="lower-case letters, digits and _ (used by trajectories)")),
            ("Name", LineField(lambda: p("name"))),
            ("Kind", ComboField(lambda: p("kind"), literal_choices(field_literal(M.Target, "kind")))),
            ("Nerve radius", SpinField(lambda: p("radius_mm"), minimum=0.0, maximum=50.0, step=0.5,
                                       tip="polyline: the nerve's radius; sphere: the sphere's radius")),
            ("Tolerance", SpinField(lambda: p("tolerance_mm"), minimum=0.5, maximum=50.0, step=0.5,
                                    tip="the tip counts as at the target within this distance of it")),
            ("Side", ComboField(lambda: p("side"), [("left", "left"), ("right", "right"), ("midline", "midline")])),
            ("Required", CheckField(lambda: p("required"), "must be reached (and covered) to pass", default=True)),
            ("Proposal", LineField(lambda: p("proposal"), optional=True,
                                   tip="the label-based proposal that gives the points on another anatomy")),
        ])
        self.points_label = QLabel("")
        self.points_label.setObjectName("target_points")
        self.points_label.setWordWrap(True)
        lay.addWidget(self.points_label)
        lay.addStretch(1)

    @staticmethod
    def _describe(i, t) -> str:
        if not isinstance(t, dict):
            return f"{i + 1}: (not a target)"
        n = len(t.get("points_mm") or [])
        pts = f"{n} point{'s' if n != 1 else ''}" if n else f"proposal {t.get('proposal')}"
        return f"{t.get('id', '?')} \u2014 {t.get('name', '')} ({t.get('kind', 'point')}, {t.get('side', 'midline')}, {pts})"

    def set_proposals(self, names: list[str]) -> None:
        self.proposals.clear()
        for n in names:
            self.proposals.addItem(n.replace("_", " "), n)
        self.add_proposal.setEnabled(bool(names))
        if not names:
            self.proposals.addItem("(no proposals: the anatomy has no labelled spine/aorta)", None)

    def set_mode(self, mode: str) -> None:
        self.add_point.setChecked(mode == "point_target")
        self.draw_line.setChecked(mode == "polyline")
        self.move_point.setChecked(mode == "move_point")

    def refresh(self) -> None:
        self.editor.refresh()
        doc = self.binder.doc
        path = self.editor.item_path("points_mm")
        pts = doc.get(path) if doc is not None and path is not None else None
        if pts:
            set_text(self.points_label, "Points: " + "; ".join(fmt_point(q) for q in pts[:6]) + (" \u2026" if len(pts) > 6 else ""))
        else:
            set_text(self.points_label, "")
