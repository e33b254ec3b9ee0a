"""The editor's Plan tab: the entry zone, the planned needles (entry and tip), the tunnel preview and
the plan check.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from simulator.ui.editor.fields import Binder, ComboField, LineField, form, set_text
from simulator.ui.editor.panels.common import fmt_point


class PlanPanel(QWidget):
    mode_requested = Signal(str)  # "entry" | "target" | "zone" | ""
    tunnel_requested = Signal()
    clear_requested = Signal(str)  # "zone" | "trajectory"
    target_from_selection = Signal()

    def __init__(self, binder: Binder, parent=None):
        super().__init__(parent)
        from simulator.ui.canvas import ImageCanvas

        self.binder = binder
        lay = QVBoxLayout(self)
        zone = QGroupBox("Skin entry zone")
        zl = QVBoxLayout(zone)
        self.zone_button = QPushButton("Set the zone centre (click the skin in 3D, or a slice)")
        self.zone_button.setObjectName("set_zone")
        self.zone_button.setCheckable(True)
        self.zone_button.clicked.connect(lambda on: self.mode_requested.emit("zone" if on else ""))
        zl.addWidget(self.zone_button)
        self.zone_label = QLabel("")
        self.zone_label.setObjectName("zone_label")
        zl.addWidget(self.zone_label)
        zl.addWidget(form(binder, [("Radius (mm)", LineField(("skin_entry_zone", "radius_mm"), kind="number"))]))
        rm = QPushButton("Remove the zone")
        rm.clicked.connect(lambda: self.clear_requested.emit("zone"))
        zl.addWidget(rm)
        lay.addWidget(zone)

        traj = QGroupBox("Planned trajectories (one per needle)")
        tl = QVBoxLayout(traj)
        self.index = 0  # 0: planned_trajectory; i > 0: additional_trajectories[i - 1]
        row = QHBoxLayout()
        self.needle_choice = QComboBox()
        self.needle_choice.setObjectName("needle_choice")
        self.needle_choice.activated.connect(self._needle_chosen)
        self.add_needle = QPushButton("Add a needle")
        self.add_needle.setObjectName("add_needle")
        self.add_needle.setToolTip("A further planned needle, e.g. the other side of a bilateral block: "
                                   "then set its entry and tip")
        self.add_needle.clicked.connect(self._add_needle)
        row.addWidget(self.needle_choice, 1)
        row.addWidget(self.add_needle)
        tl.addLayout(row)
        self.entry_button = QPushButton("Set the entry (click the skin in 3D, or a slice)")
        self.entry_button.setObjectName("set_entry")
        self.entry_button.setCheckable(True)
        self.entry_button.clicked.connect(lambda on: self.mode_requested.emit("entry" if on else ""))
        self.target_button = QPushButton("Set the tip position (click a slice)")
        self.target_button.setObjectName("set_plan_target")
        self.target_button.setCheckable(True)
        self.target_button.clicked.connect(lambda on: self.mode_requested.emit("target" if on else ""))
        self.to_selected = QPushButton("Tip at the selected target")
        self.to_selected.setObjectName("plan_to_selected")
        self.to_selected.clicked.connect(self.target_from_selection)
        tl.addWidget(self.entry_button)
        tl.addWidget(self.target_button)
        tl.addWidget(self.to_selected)
        self.entry_label = QLabel("")
        self.entry_label.setObjectName("entry_label")
        self.target_label = QLabel("")
        self.target_label.setObjectName("plan_target_label")
        self.length_label = QLabel("")
        tl.addWidget(self.entry_label)
        tl.addWidget(self.target_label)
        tl.addWidget(self.length_label)
        self.target_id = ComboField(lambda: self.plan_path("target_id") if self._exists() else None, [], optional=True)
        tl.addWidget(form(binder, [("Leads to target", self.target_id)]))
        rm2 = QPushButton("Remove this needle's trajectory")
        rm2.clicked.connect(lambda: self.clear_requested.emit("trajectory"))
        tl.addWidget(rm2)
        self.more_label = QLabel("")
        self.more_label.setWordWrap(True)
        tl.addWidget(self.more_label)
        lay.addWidget(traj)

        check = QGroupBox("Plan check")
        cl = QVBoxLayout(check)
        self.problems = QListWidget()
        self.problems.setObjectName("plan_problems")
        self.problems.setMaximumHeight(90)
        self.problems.setWordWrap(True)
        cl.addWidget(self.problems)
        lay.addWidget(check)

        tun = QGroupBox("Tunnel view (fluoroscopy along the planned path)")
        ul = QVBoxLayout(tun)
        self.tunnel_button = QPushButton("Preview tunnel view")
        self.tunnel_button.setObjectName("preview_tunnel")
        self.tunnel_button.clicked.connect(self.tunnel_requested)
        ul.addWidget(self.tunnel_button)
        self.tunnel = ImageCanvas("The C-arm turned so that the beam runs down the planned needle:\n"
                                  "a needle on the plan shows as a dot")
        self.tunnel.setObjectName("tunnel_canvas")
        self.tunnel.setMinimumSize(220, 220)
        ul.addWidget(self.tunnel)
        self.tunnel_info = QLabel("")
        self.tunnel_info.setWordWrap(True)
        ul.addWidget(self.tunnel_info)
        lay.addWidget(tun)
        lay.addStretch(1)

    needle_changed = Signal(int)

    def plan_path(self, key=None, index=None) -> tuple:
        """Document path of needle `index` (default: the one chosen) or of one of its keys."""
        i = self.index if index is None else index
        base = ("planned_trajectory",) if i == 0 else ("additional_trajectories", i - 1)
        return base + ((key,) if key is not None else ())

    def needle_count(self) -> int:
        doc = self.binder.doc
        if doc is None or not isinstance(doc.get(("planned_trajectory",)), dict):
            return 0
        return 1 + len(doc.get(("additional_trajectories",)) or [])

    def _exists(self) -> bool:
        doc = self.binder.doc
        return doc is not None and isinstance(doc.get(self.plan_path()), dict)

    def _needle_chosen(self, row: int) -> None:
        self.choose_needle(row)

    def choose_needle(self, index: int) -> None:
        self.binder.flush()
        self.index = max(0, int(index))
        self.binder.refresh()
        self.refresh()
        self.needle_changed.emit(self.index)

    def _add_needle(self) -> None:
        n = self.needle_count()
        if n == 0:  # the first one is planned_trajectory
            self.choose_needle(0)
        else:
            self.choose_needle(n)
        self.mode_requested.emit("entry")

    def set_mode(self, mode: str) -> None:
        self.zone_button.setChecked(mode == "zone")
        self.entry_button.setChecked(mode == "entry")
        self.target_button.setChecked(mode == "target")

    def refresh(self, pending_entry=None) -> None:
        doc = self.binder.doc
        if doc is None:
            return
        z = doc.get(("skin_entry_zone",))
        set_text(self.zone_label, "Centre: " + fmt_point(z.get("center_mm") if isinstance(z, dict) else None))
        n = self.needle_count()
        names = [f"Needle {i + 1}" + (" (planned_trajectory)" if i == 0 else f" (additional_trajectories[{i - 1}])")
                 for i in range(max(n, self.index + 1))]
        if self.index >= n:
            names[self.index] += ": new, set its entry and tip"
        if names != [self.needle_choice.itemText(i) for i in range(self.needle_choice.count())]:
            self.needle_choice.clear()
            self.needle_choice.addItems(names)
        if names and self.needle_choice.currentIndex() != self.index:
            self.needle_choice.setCurrentIndex(self.index)
        t = doc.get(self.plan_path())
        t = t if isinstance(t, dict) else {}
        entry = t.get("entry_mm", pending_entry)
        set_text(self.entry_label, "Entry: " + fmt_point(entry)
                 + ("  (waiting for the tip)" if not t and pending_entry is not None else ""))
        set_text(self.target_label, "Tip: " + fmt_point(t.get("target_mm")))
        try:
            length = float(np.linalg.norm(np.subtract(t["target_mm"], t["entry_mm"])))
            set_text(self.length_label, f"Length {length:.0f} mm")
        except (KeyError, TypeError, ValueError):
            set_text(self.length_label, "")
        ids = [x.get("id") for x in (doc.get(("targets",)) or []) if isinstance(x, dict) and x.get("id")]
        self.target_id.set_choices([(i, i) for i in ids])
        set_text(self.more_label, "The plan check covers every needle." if n > 1 else "")

    def show_problems(self, lines: list[str], ok_text: str) -> None:
        if (lines, ok_text) == getattr(self, "_shown", None):
            return
        self._shown = (lines, ok_text)
        self.problems.clear()
        for line in lines or [ok_text]:
            it = QListWidgetItem(line, self.problems)
            if lines:
                it.setForeground(Qt.GlobalColor.red)
