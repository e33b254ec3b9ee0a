"""The editor's forms: targets, structures to avoid, the plan (entry zone, trajectory, tunnel
preview, plan check), steps and agent limits, imaging, rubric, instructions and references, and
the scenario's metadata. Every widget edits the document through `fields.Binder` (undoable) and
shows the validator's message for its field.
"""
from __future__ import annotations

import re
from typing import get_args

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from simulator.core import scenario_model as M
from simulator.core.tissue import Tissue
from simulator.ui.editor.fields import (
    Binder,
    CheckField,
    ChecklistField,
    ComboField,
    LineField,
    SpinField,
    TextField,
    form,
    format_value,
    set_enabled,
    set_text,
)


def _enum_choices(enum_cls) -> list[tuple[str, str]]:
    return [(e.value, e.value.replace("_", " ")) for e in enum_cls]


def _literal_choices(lit) -> list:
    return [(v, str(v).replace("_", " ")) for v in get_args(lit)]


def _field_literal(model, name):
    return model.model_fields[name].annotation


_SPINE_REGIONS = {"C": 0, "T": 1, "L": 2, "S": 3}


def structure_order(name: str):
    """Sort key of a structure name as an anatomist reads the list: numbers in order (rib 2 before
    rib 10), vertebrae from the neck down (C7, T1 ... T12, L1)."""
    parts = re.split(r"(\d+)", name)
    key = []
    for i, part in enumerate(parts):
        if i % 2:
            key.append((1, int(part), ""))
        elif i + 1 < len(parts) and part[-1:] in _SPINE_REGIONS and part[:-1].endswith("_"):
            key.append((0, 0, part[:-1]))
            key.append((1, _SPINE_REGIONS[part[-1]], ""))
        else:
            key.append((0, 0, part.lower()))
    return key


def scroll(widget: QWidget) -> QScrollArea:
    s = QScrollArea()
    s.setWidgetResizable(True)
    s.setWidget(widget)
    s.setFrameShape(QScrollArea.Shape.NoFrame)
    return s


def fmt_point(p) -> str:
    if p is None:
        return "(not set)"
    try:
        r, a, s = (float(x) for x in p)
    except (TypeError, ValueError):
        return str(p)
    return f"R {r:.1f}, A {a:.1f}, S {s:.1f} mm"


class ListEditor(QWidget):
    """A list of mappings in the document (targets, rubric items, ...): the list, Add and Delete
    buttons, and a detail form whose fields follow the selected item."""

    selection_changed = Signal(int)

    def __init__(self, binder: Binder, list_path: tuple, describe, name: str, parent=None):
        super().__init__(parent)
        self.binder = binder
        self.list_path = tuple(list_path)
        self.describe = describe
        self.index = -1
        self.list = QListWidget()
        self.list.setObjectName(f"{name}_list")
        self.list.setMaximumHeight(150)
        self.list.currentRowChanged.connect(self._row_changed)
        self.buttons = QHBoxLayout()
        self.delete_button = QPushButton("Delete")
        self.delete_button.setObjectName(f"{name}_delete")
        self.delete_button.clicked.connect(self.delete_selected)
        self.detail_rows: list = []
        self.on_delete = None  # callable(doc, item): more edits in the deletion's undo step
        self.lay = QVBoxLayout(self)
        self.lay.setContentsMargins(0, 0, 0, 0)
        self.lay.addWidget(self.list)
        self.lay.addLayout(self.buttons)
        self.buttons.addStretch(1)
        self.buttons.addWidget(self.delete_button)

    def add_button(self, button: QPushButton) -> QPushButton:
        self.buttons.insertWidget(self.buttons.count() - 2, button)
        return button

    def item_path(self, key=None):
        """Path of the selected item (or of one of its keys); None when nothing is selected."""
        if self.index < 0:
            return None
        return self.list_path + (self.index,) + ((key,) if key is not None else ())

    def detail(self, rows: list) -> QWidget:
        w = form(self.binder, rows)
        self.lay.addWidget(w)
        return w

    def items(self) -> list:
        doc = self.binder.doc
        v = doc.get(self.list_path) if doc is not None else None
        return v if isinstance(v, list) else []

    def refresh(self) -> None:
        from simulator.ui.editor.fields import errors_under

        items = self.items()
        errs = self.binder.errors
        rows = [(self.describe(i, it), bool(errors_under(errs, self.list_path + (i,)))) for i, it in enumerate(items)]
        if self.index >= len(items):
            self.index = len(items) - 1
        if rows != getattr(self, "_rows", None):
            self._rows = rows
            self.list.blockSignals(True)
            self.list.clear()
            for text, bad in rows:
                it = QListWidgetItem(text, self.list)
                if bad:
                    it.setForeground(Qt.GlobalColor.red)
            self.list.blockSignals(False)
        if self.list.currentRow() != self.index:
            self.list.blockSignals(True)
            self.list.setCurrentRow(self.index)
            self.list.blockSignals(False)
        set_enabled(self.delete_button, self.index >= 0)

    def select(self, index: int) -> None:
        self.binder.flush()
        self.index = index
        self.list.setCurrentRow(index)
        self.binder.refresh()
        self.selection_changed.emit(index)

    def _row_changed(self, row: int) -> None:
        self.binder.flush()
        self.index = row
        self.delete_button.setEnabled(row >= 0)
        self.binder.end_merge()
        self.binder.refresh()
        self.selection_changed.emit(row)

    def delete_selected(self) -> None:
        self.binder.flush()
        doc = self.binder.doc
        if doc is None or self.index < 0:
            return
        i = self.index
        item = self.items()[i]
        what = self.describe(i, item).split(" \u2014 ")[0]
        with doc.batch(f"Delete {what}"):
            doc.remove(self.list_path, i)
            if self.on_delete is not None:
                self.on_delete(doc, item)
        self.index = min(i, len(self.items()) - 1)
        self.binder.refresh()


# ------------------------------------------------------------------------------------------
# targets
# ------------------------------------------------------------------------------------------
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
            ("Kind", ComboField(lambda: p("kind"), _literal_choices(_field_literal(M.Target, "kind")))),
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


# ------------------------------------------------------------------------------------------
# structures to avoid
# ------------------------------------------------------------------------------------------
class CriticalPanel(QWidget):
    def __init__(self, binder: Binder, parent=None):
        super().__init__(parent)
        self.binder = binder
        lay = QVBoxLayout(self)
        intro = QLabel("Structures to avoid: touching one is an event of its severity (critical = "
                       "automatic fail when the rubric lists critical_contact). Pick a structure of this "
                       "anatomy or a whole tissue class.")
        intro.setWordWrap(True)
        lay.addWidget(intro)
        add = QGroupBox("Add a structure to avoid")
        g = QVBoxLayout(add)
        self.choice = QComboBox()
        self.choice.setObjectName("critical_choice")
        self.choice.setEditable(False)
        self.severity = QComboBox()
        self.severity.setObjectName("critical_severity")
        for s in M.Severity:
            self.severity.addItem(s.value, s.value)
        self.severity.setCurrentText("critical")
        self.message = QLineEdit()
        self.message.setObjectName("critical_message")
        self.message.setPlaceholderText("what the trainee is told on contact (optional)")
        self.add_button = QPushButton("Add")
        self.add_button.setObjectName("critical_add")
        self.add_button.clicked.connect(self.add_selected)
        row = QHBoxLayout()
        row.addWidget(self.choice, 2)
        row.addWidget(self.severity, 1)
        g.addLayout(row)
        row2 = QHBoxLayout()
        row2.addWidget(self.message, 1)
        row2.addWidget(self.add_button)
        g.addLayout(row2)
        lay.addWidget(add)
        self.editor = ListEditor(binder, ("critical_structures",), self._describe, "critical")
        lay.addWidget(self.editor)
        p = self.editor.item_path
        self.structure_field = ComboField(lambda: p("structure"), [], optional=True)
        self.editor.detail([
            ("Structure", self.structure_field),
            ("Tissue", ComboField(lambda: p("tissue"), [(t.name.lower(), t.name.lower().replace("_", " ")) for t in Tissue],
                                  optional=True)),
            ("Severity", ComboField(lambda: p("severity"), _enum_choices(M.Severity))),
            ("Message", LineField(lambda: p("message"), optional=True)),
        ])
        lay.addStretch(1)

    @staticmethod
    def _describe(i, c) -> str:
        if not isinstance(c, dict):
            return f"{i + 1}: ?"
        what = c.get("structure") or (f"tissue {c.get('tissue')}" if c.get("tissue") else "?")
        return f"{what} \u2014 {c.get('severity', 'major')}"

    def set_anatomy(self, anatomy) -> None:
        self.choice.clear()
        names = sorted((s.name for s in anatomy.structures.values()), key=structure_order)
        for n in names:
            self.choice.addItem(n.replace("_", " "), f"structure:{n}")
        for t in Tissue:
            if t == Tissue.AIR:
                continue
            self.choice.addItem(f"tissue: {t.name.lower().replace('_', ' ')}", f"tissue:{t.name.lower()}")
        self.structure_field.set_choices([(n, n.replace("_", " ")) for n in names])

    def select_choice(self, kind: str, name: str) -> bool:
        i = self.choice.findData(f"{kind}:{name}")
        if i >= 0:
            self.choice.setCurrentIndex(i)
        return i >= 0

    def add_selected(self) -> None:
        from simulator.core.scenario_doc import add_critical_structure

        doc = self.binder.doc
        data = self.choice.currentData()
        if doc is None or data is None:
            return
        kind, name = str(data).split(":", 1)
        msg = self.message.text().strip() or None
        i = add_critical_structure(doc, **{kind: name}, severity=self.severity.currentData(), message=msg)
        self.message.clear()
        self.editor.select(i)

    def refresh(self) -> None:
        self.editor.refresh()


# ------------------------------------------------------------------------------------------
# plan: entry zone, trajectory, tunnel view, plan check
# ------------------------------------------------------------------------------------------
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


# ------------------------------------------------------------------------------------------
# steps and agents, imaging, rubric, text, metadata
# ------------------------------------------------------------------------------------------
AGENTS = _literal_choices(_field_literal(M.AgentOption, "agent"))


class OptionalSection(QGroupBox):
    """A group for an optional mapping (steps.contrast, steps.test_dose, ...): checked = present."""

    def __init__(self, binder: Binder, path: tuple, title: str, default: dict, rows: list):
        super().__init__(title)
        self.binder = binder
        self.path = path
        self.default = default
        self.setCheckable(True)
        self.setObjectName("section_" + "_".join(str(p) for p in path))
        lay = QVBoxLayout(self)
        self.body = form(binder, rows)
        lay.addWidget(self.body)
        self.toggled.connect(self._toggled)
        self._updating = False

    def _toggled(self, on: bool) -> None:
        if self._updating or self.binder.doc is None:
            return
        self.binder.doc.set(self.path, dict(self.default) if on else None,
                            label=f"{'Add' if on else 'Remove'} {'.'.join(map(str, self.path))}")

    def refresh(self) -> None:
        doc = self.binder.doc
        present = doc is not None and isinstance(doc.get(self.path), dict)
        if self.isChecked() != present:
            self._updating = True
            self.setChecked(present)
            self._updating = False
        if self.body.isVisibleTo(self) != present:
            self.body.setVisible(present)


def agent_rows(path) -> list:
    """Agent, concentrations and volumes of the agent at `path` (a tuple, or a callable giving
    the path of the item chosen in a list)."""
    def at(*keys):
        if callable(path):
            return lambda: (None if path() is None else path() + keys)
        return path + keys

    return [
        ("Agent", ComboField(at("agent"), AGENTS)),
        ("Concentrations (%)", LineField(at("concentrations_pct"), kind="numbers",
                                          tip="allowed concentrations, comma-separated")),
        ("Volume min (ml)", LineField(at("volume_ml", "min_ml"), kind="number")),
        ("Volume max (ml)", LineField(at("volume_ml", "max_ml"), kind="number")),
    ]


# usual strengths of the neurolytic agents offered when an alternative is added
AGENT_DEFAULTS = {
    "phenol": {"concentrations_pct": [6, 10], "volume_ml": {"min_ml": 5, "max_ml": 15}},
    "alcohol": {"concentrations_pct": [50, 100], "volume_ml": {"min_ml": 10, "max_ml": 25}},
    "glycerol": {"concentrations_pct": [100], "volume_ml": {"min_ml": 1, "max_ml": 5}},
}


class AgentOptionsEditor(ListEditor):
    """steps.neurolytic_options: the alternative neurolytic agents, each with its limits."""

    def __init__(self, binder: Binder, parent=None):
        super().__init__(binder, ("steps", "neurolytic_options"), self._describe, "agent_options", parent)
        self.add = self.add_button(QPushButton("Add an alternative agent"))
        self.add.setObjectName("agent_option_add")
        self.add.clicked.connect(self.add_option)
        self.detail(agent_rows(self.item_path))

    @staticmethod
    def _describe(i, it) -> str:
        if not isinstance(it, dict):
            return f"{i + 1}: ?"
        pct = ", ".join(format_value(c) for c in (it.get("concentrations_pct") or []))
        vol = it.get("volume_ml") if isinstance(it.get("volume_ml"), dict) else {}
        return (f"{it.get('agent', '?')} {pct} % \u2014 {format_value(vol.get('min_ml'))} to "
                f"{format_value(vol.get('max_ml'))} ml")

    def add_option(self) -> None:
        """A neurolytic agent not offered yet, at its usual strength."""
        doc = self.binder.doc
        if doc is None:
            return
        self.binder.flush()
        main = doc.get(("steps", "neurolytic"))
        used = {main.get("agent")} if isinstance(main, dict) else set()
        used |= {it.get("agent") for it in self.items() if isinstance(it, dict)}
        agent = next((a for a in AGENT_DEFAULTS if a not in used), "phenol")
        doc.insert(self.list_path, -1, {"agent": agent, **AGENT_DEFAULTS[agent]},
                   label=f"Add the alternative agent {agent}")
        self.select(len(self.items()) - 1)

    def delete_selected(self) -> None:
        """The last alternative removed takes the empty list with it (the file stays as it was)."""
        self.binder.flush()
        doc = self.binder.doc
        if doc is None or self.index < 0:
            return
        i = self.index
        agent = self.items()[i].get("agent", "?") if isinstance(self.items()[i], dict) else "?"
        with doc.batch(f"Delete the alternative agent {agent}"):
            doc.remove(self.list_path, i)
            if not self.items():
                doc.unset(self.list_path)
        self.index = min(i, len(self.items()) - 1)
        self.binder.refresh()

    def refresh(self) -> None:
        super().refresh()
        doc = self.binder.doc
        has_main = doc is not None and isinstance(doc.get(("steps", "neurolytic")), dict)
        set_enabled(self.add, has_main)
        self.add.setToolTip("" if has_main else "Give the neurolytic agent first: the alternatives are offered beside it")


class StepsPanel(QWidget):
    def __init__(self, binder: Binder, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.addWidget(form(binder, [
            ("", CheckField(("steps", "local_anaesthetic"), "local anaesthetic of skin and track first", default=True)),
            ("", CheckField(("steps", "aspiration_before_injection"), "aspiration before every injection", default=True)),
        ]))
        self.sections = [
            OptionalSection(binder, ("steps", "contrast"), "Contrast required (fluoroscopy)", {"min_ml": 2, "max_ml": 5}, [
                ("Volume min (ml)", LineField(("steps", "contrast", "min_ml"), kind="number")),
                ("Volume max (ml)", LineField(("steps", "contrast", "max_ml"), kind="number")),
            ]),
            OptionalSection(binder, ("steps", "test_dose"), "Test dose (local anaesthetic)",
                            {"agent": "lidocaine", "concentrations_pct": [1], "volume_ml": {"min_ml": 2, "max_ml": 5}},
                            agent_rows(("steps", "test_dose"))),
            OptionalSection(binder, ("steps", "neurolytic"), "Neurolytic agent (limits)",
                            {"agent": "alcohol", "concentrations_pct": [50, 100], "volume_ml": {"min_ml": 10, "max_ml": 25}},
                            agent_rows(("steps", "neurolytic"))),
        ]
        for s in self.sections:
            lay.addWidget(s)
        alt = QGroupBox("Alternative neurolytic agents (the trainee may choose any of them)")
        alt.setObjectName("section_neurolytic_options")
        self.options = AgentOptionsEditor(binder)
        QVBoxLayout(alt).addWidget(self.options)
        lay.addWidget(alt)
        lay.addStretch(1)

    def refresh(self) -> None:
        for s in self.sections:
            s.refresh()
        self.options.refresh()


class ImagingPanel(QWidget):
    """Fluoroscopy's initial C-arm, the ultrasound's initial probe (placed by a click)."""

    mode_requested = Signal(str)  # "probe" | ""
    turn_requested = Signal()

    def __init__(self, binder: Binder, parent=None):
        super().__init__(parent)
        self.binder = binder
        lay = QVBoxLayout(self)
        f = ("imaging", "fluoroscopy")
        fd = _defaults(M.FluoroscopySettings)
        fl = QGroupBox("Fluoroscopy (initial C-arm)")
        QVBoxLayout(fl).addWidget(form(binder, [
            ("Orbit LAO+ / RAO- (\u00b0)", LineField(f + ("lao_deg",), kind="number", default=fd["lao_deg"])),
            ("Cranial+ / caudal- (\u00b0)", LineField(f + ("cranial_deg",), kind="number", default=fd["cranial_deg"])),
            ("Isocentre (R, A, S mm)", LineField(f + ("isocenter_mm",), kind="numbers", optional=True,
                                                 placeholder="the first target (default)",
                                                 tip="empty: centred on the first target")),
            ("Pulse rate (p/s)", ComboField(f + ("pulse_rate_pps",), [(v, f"{v:g}") for v in (3.75, 7.5, 15, 30)],
                                            default=fd["pulse_rate_pps"])),
            ("Field (mm)", LineField(f + ("field_mm",), kind="number", default=fd["field_mm"])),
            ("kV", LineField(f + ("kvp",), kind="number", default=fd["kvp"])),
        ]))
        lay.addWidget(fl)
        u = ("imaging", "ultrasound")
        ud = _defaults(M.UltrasoundSettings)
        ul = QGroupBox("Ultrasound (initial probe)")
        ull = QVBoxLayout(ul)
        self.probe_button = QPushButton("Place the probe (click the skin in 3D, or a slice)")
        self.probe_button.setObjectName("place_probe")
        self.probe_button.setCheckable(True)
        self.probe_button.setToolTip("The probe sits where you click and looks towards the planned tip "
                                     "(else the selected target); its marker points to the head")
        self.probe_button.clicked.connect(lambda on: self.mode_requested.emit("probe" if on else ""))
        self.turn_button = QPushButton("Turn the probe 90\u00b0 (sagittal \u2194 transverse)")
        self.turn_button.setObjectName("turn_probe")
        self.turn_button.clicked.connect(self.turn_requested)
        self.probe_label = QLabel("")
        self.probe_label.setObjectName("probe_label")
        self.probe_label.setWordWrap(True)
        ull.addWidget(self.probe_button)
        ull.addWidget(self.turn_button)
        ull.addWidget(self.probe_label)
        ull.addWidget(form(binder, [
            ("Probe", ComboField(u + ("probe",), [("linear", "linear"), ("curvilinear", "curvilinear")],
                                 default=ud["probe"])),
            ("Centre on the skin (mm)", LineField(u + ("center_mm",), kind="numbers", optional=True)),
            ("Depth axis", LineField(u + ("direction",), kind="numbers", optional=True)),
            ("Marker axis", LineField(u + ("marker",), kind="numbers", optional=True)),
            ("Depth (mm)", LineField(u + ("depth_mm",), kind="number", default=ud["depth_mm"])),
            ("Frequency (MHz)", LineField(u + ("frequency_mhz",), kind="number", default=ud["frequency_mhz"])),
            ("Gain (dB)", LineField(u + ("gain_db",), kind="number", default=ud["gain_db"])),
            ("Focus (mm)", LineField(u + ("focus_mm",), kind="number", optional=True, placeholder="half the depth (default)")),
            ("", CheckField(u + ("doppler",), "colour Doppler on at the start")),
        ]))
        lay.addWidget(ul)
        lay.addStretch(1)

    def set_mode(self, mode: str) -> None:
        self.probe_button.setChecked(mode == "probe")

    def refresh(self) -> None:
        doc = self.binder.doc
        us = doc.get(("imaging", "ultrasound")) if doc is not None else None
        set_text(self.probe_label, _probe_text(us))
        set_enabled(self.turn_button, isinstance(us, dict) and us.get("direction") is not None)


def _defaults(model) -> dict:
    """The schema's defaults of a settings model (field name -> value)."""
    return {name: f.default for name, f in model.model_fields.items()}


def _probe_text(us) -> str:
    if not isinstance(us, dict) or us.get("center_mm") is None:
        return "No initial probe position: the trainee places the probe."
    text = "Centre " + fmt_point(us.get("center_mm"))
    d, m = us.get("direction"), us.get("marker")
    try:
        d = np.asarray(d, float).reshape(3)
        m = np.asarray(m, float).reshape(3)
    except (TypeError, ValueError):
        return text
    d = d / max(float(np.linalg.norm(d)), 1e-9)
    m = m - d * float(m @ d)
    if not np.linalg.norm(m) > 1e-6:
        return text
    m /= np.linalg.norm(m)
    towards = (("the patient's right", "the patient's left")[bool(m[0] < 0)], ("the front", "the back")[bool(m[1] < 0)],
               ("the head", "the feet")[bool(m[2] < 0)])
    k = int(np.argmax(np.abs(m)))
    plane = ("long axis (sagittal)" if k == 2 else "transverse") + f", marker towards {towards[k]}"
    return f"{text}; {plane}"


class RubricPanel(QWidget):
    def __init__(self, binder: Binder, parent=None):
        super().__init__(parent)
        self.binder = binder
        lay = QVBoxLayout(self)
        lay.addWidget(form(binder, [
            ("Pass mark (0-100)", LineField(("rubric", "pass_mark"), kind="number")),
            ("Advance without imaging (mm)", LineField(("rubric", "advance_without_imaging_mm"), kind="number",
                                                       tip="fluoroscopy: the advance allowed per image")),
        ]))
        items = QGroupBox("Scored items: full marks at 'good' or better, none at 'bad' or worse")
        il = QVBoxLayout(items)
        self.editor = ListEditor(binder, ("rubric", "items"), self._describe, "rubric_items")
        add = self.editor.add_button(QPushButton("Add item"))
        add.setObjectName("rubric_add")
        add.clicked.connect(self.add_item)
        p = self.editor.item_path
        self.editor.detail([
            ("Metric", ComboField(lambda: p("metric"), _literal_choices(M.MetricName))),
            ("Weight", LineField(lambda: p("weight"), kind="number")),
            ("Good", LineField(lambda: p("good"), kind="number")),
            ("Bad", LineField(lambda: p("bad"), kind="number")),
            ("Reason", LineField(lambda: p("reason"), optional=True)),
        ])
        il.addWidget(self.editor)
        self.total = QLabel("")
        il.addWidget(self.total)
        lay.addWidget(items)
        fails = QGroupBox("Automatic fails")
        QVBoxLayout(fails).addWidget(form(binder, [(None, ChecklistField(("rubric", "automatic_fails"),
                                                                        _literal_choices(M.AutoFail)))]))
        lay.addWidget(fails)
        lay.addStretch(1)

    @staticmethod
    def _describe(i, it) -> str:
        if not isinstance(it, dict):
            return f"{i + 1}: ?"
        return (f"{it.get('metric', '?')} \u2014 weight {format_value(it.get('weight'))}, "
                f"good {format_value(it.get('good'))}, bad {format_value(it.get('bad'))}")

    def add_item(self) -> None:
        doc = self.binder.doc
        if doc is None:
            return
        used = {it.get("metric") for it in self.editor.items() if isinstance(it, dict)}
        metric = next((m for m in get_args(M.MetricName) if m not in used), "final_distance_mm")
        doc.insert(("rubric", "items"), -1, {"metric": metric, "weight": 10, "good": 0, "bad": 10},
                   label=f"Add rubric item {metric}")
        self.editor.select(len(self.editor.items()) - 1)

    def refresh(self) -> None:
        self.editor.refresh()
        w = 0.0
        for it in self.editor.items():
            try:
                w += float(it.get("weight", 0))
            except (TypeError, ValueError, AttributeError):
                pass
        set_text(self.total, f"Total weight {w:g} (the score is the weighted share, 0-100)")


class TextPanel(QWidget):
    def __init__(self, binder: Binder, parent=None):
        super().__init__(parent)
        self.binder = binder
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Instructions shown to the trainee"))
        self.instructions = TextField(("instructions",))
        binder.add(self.instructions)
        self.instructions.widget.setObjectName("instructions_text")
        lay.addWidget(self.instructions.container(), 2)
        refs = QGroupBox("References")
        rl = QVBoxLayout(refs)
        self.editor = ListEditor(binder, ("references",), lambda i, r: f"{r.get('id', '?')} \u2014 {str(r.get('citation', ''))[:60]}"
                                 if isinstance(r, dict) else "?", "references")
        add = self.editor.add_button(QPushButton("Add reference"))
        add.clicked.connect(self.add_reference)
        p = self.editor.item_path
        self.editor.detail([
            ("Id", LineField(lambda: p("id"))),
            ("Citation", LineField(lambda: p("citation"))),
            ("Used for", LineField(lambda: p("used_for"), optional=True)),
        ])
        rl.addWidget(self.editor)
        lay.addWidget(refs, 1)

    def add_reference(self) -> None:
        doc = self.binder.doc
        if doc is None:
            return
        n = len(self.editor.items()) + 1
        doc.insert(("references",), -1, {"id": f"ref_{n}", "citation": "Author, journal year;volume:page"},
                   label="Add reference")
        self.editor.select(n - 1)

    def refresh(self) -> None:
        self.editor.refresh()


class MetaPanel(QWidget):
    def __init__(self, binder: Binder, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        self.anatomy_label = QLabel("")
        self.anatomy_label.setWordWrap(True)
        lay.addWidget(form(binder, [
            ("Id", LineField(("id",), tip="file name and reference: lower-case letters, digits, _ and -")),
            ("Title", LineField(("title",))),
            ("Procedure", ComboField(("procedure",), _enum_choices(M.Procedure))),
            ("Indication", ChecklistField(("indication",), _enum_choices(M.Indication))),
            ("Difficulty", ComboField(("difficulty",), [(1, "1 beginner"), (2, "2"), (3, "3"), (4, "4 advanced")])),
            ("Anatomy", self.anatomy_label),
            ("Patient position", ComboField(("patient_position",), _enum_choices(M.PatientPosition))),
            ("Modality", ComboField(("modality",), _enum_choices(M.Modality))),
        ]))
        needle = QGroupBox("Needle")
        QVBoxLayout(needle).addWidget(form(binder, [
            ("Gauge", ComboField(("needle", "gauge"), [(g, f"{g} G") for g in get_args(_field_literal(M.NeedleSpec, "gauge"))])),
            ("Length (mm)", LineField(("needle", "length_mm"), kind="number")),
            ("Bevel", ComboField(("needle", "bevel"), _literal_choices(_field_literal(M.NeedleSpec, "bevel")))),
        ]))
        lay.addWidget(needle)
        lay.addStretch(1)

    def refresh(self, doc) -> None:
        ref = doc.get(("anatomy",)) if doc is not None else ""
        set_text(self.anatomy_label, f"{ref}  (the anatomy is chosen when the scenario is made from a template)")
