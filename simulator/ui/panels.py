"""Panels of the main window: scenario picker and instructions, display controls and the titled
panes the imaging views fill (the procedure panel is simulator/ui/procedure_panel.py).

Panels hold widgets and emit requests; the main window owns the state and wires them up.
"""
from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFrame,
    QGridLayout,
    QGroupBox,
    QLabel,
    QSizePolicy,
    QSlider,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from simulator.render.camera import CAMERA_PRESETS, PRESET_LABELS

PATH_ROLE = Qt.ItemDataRole.UserRole + 1
ERROR_ROLE = Qt.ItemDataRole.UserRole + 2
ID_ROLE = Qt.ItemDataRole.UserRole + 3

#: Keyboard keys of the camera presets (View menu), in CAMERA_PRESETS order.
PRESET_KEYS = {name: str(i + 1) for i, name in enumerate(CAMERA_PRESETS)}


def _value(x) -> str:
    return str(getattr(x, "value", x))


def _human(x) -> str:
    return _value(x).replace("_", " ")


# --------------------------------------------------------------------------------------------
#: Condition groups of the picker, in order: a scenario goes under its first indication's group.
CONDITION_GROUPS = (
    ("cancer_pain", "Cancer pain", ("cancer_pain", "chronic_pancreatitis")),
    ("crps", "CRPS", ("crps",)),
    ("entrapment", "Entrapment / neuropathic", ("nerve_entrapment", "neuropathic_pain")),
    ("spasticity", "Spasticity", ("spasticity",)),
    ("training", "Training (phantoms)", ("training",)),
)
GUIDANCE_ORDER = ("fluoroscopy", "ultrasound", "both")


def condition_group(indications) -> tuple[int, str]:
    """(order, label) of the picker group of a scenario with these indications (the first decides)."""
    first = str(indications[0]) if indications else "training"
    for i, (_key, label, members) in enumerate(CONDITION_GROUPS):
        if first in members:
            return i, label
    return len(CONDITION_GROUPS), "Other"


def group_entries(entries) -> list[tuple[str, list]]:
    """[(heading, entries)] by condition, then guidance (fluoroscopy, ultrasound, both); the
    scenarios that do not validate last, under "Invalid files"."""
    groups: dict[tuple, list] = {}
    invalid = []
    for e in entries:
        if getattr(e, "error", None) is not None:
            invalid.append(e)
            continue
        order, label = condition_group(getattr(e, "indication", ()) or ())
        mod = str(getattr(e, "modality", "") or "")
        g = GUIDANCE_ORDER.index(mod) if mod in GUIDANCE_ORDER else len(GUIDANCE_ORDER)
        groups.setdefault((order, g, f"{label} \u2014 {mod or 'other'}"), []).append(e)
    out = [(key[2], items) for key, items in sorted(groups.items(), key=lambda kv: kv[0][:2])]
    if invalid:
        out.append(("Invalid files", invalid))
    return out


def hosting_rows(scenario, patients) -> list[tuple[str, str, bool, str]]:
    """[(patient ref, its title, can host, why not)] for the patient picker: the scenario's own
    patient first, then every available patient (see `simulator.core.fitting.host_check`)."""
    from simulator.core.fitting import host_check

    rows = [(scenario.anatomy, "as written", True, "")]
    for p in patients:
        if p.ref == scenario.anatomy:
            rows[0] = (p.ref, f"{p.title}, as written", True, "")
            continue
        check = host_check(scenario, p.ref, p.names)
        rows.append((p.ref, p.title, check.ok, "" if check.ok else check.summary))
    return rows


class ScenarioPanel(QWidget):
    """Scenario picker (library + user scenarios, grouped by condition and guidance), the patient
    to run it on (the scenario's own, or another patient that can host it), summary and
    instructions."""

    scenario_chosen = Signal(str)  # path of the chosen scenario file
    patient_chosen = Signal(str)  # the patient (anatomy reference) to run the current scenario on

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.model = QStandardItemModel(self)
        self.picker = self._combo("scenario_picker", self.model, self._on_activated, layout)
        self.picker.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.picker.setMinimumContentsLength(24)
        self.patient_model = QStandardItemModel(self)
        self.patient_picker = self._combo("patient_picker", self.patient_model, self._on_patient_activated, layout)
        self.patient_picker.setToolTip("The patient to run the scenario on: its own, or another patient whose labels "
                                       "have what it needs (targets placed by their anatomical rules)")
        self.hosting = self._rich_label("scenario_hosting", layout)
        self.summary = self._rich_label("scenario_summary", layout)
        self.instructions = QTextBrowser()
        self.instructions.setObjectName("scenario_instructions")
        self.instructions.setOpenExternalLinks(False)
        self.instructions.setMinimumHeight(120)
        layout.addWidget(self.instructions, 1)
        self.patients: list = []

    def _combo(self, name: str, model, on_activated, layout) -> QComboBox:
        box = QComboBox()
        box.setObjectName(name)
        box.setModel(model)
        box.activated.connect(on_activated)
        layout.addWidget(box)
        return box

    @staticmethod
    def _rich_label(name: str, layout) -> QLabel:
        label = QLabel()
        label.setObjectName(name)
        label.setWordWrap(True)
        label.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(label)
        return label

    def set_entries(self, entries, patients=None) -> None:
        """`entries`: ScenarioEntry-like objects (path, id, title, procedure, modality, difficulty,
        indication, error, scenario); `patients`: PatientInfo-like (ref, title, names) for the
        hosting shown in each scenario's tooltip and the patient picker."""
        current = self.current_path()
        if patients is not None:
            self.patients = list(patients)
        self.model.clear()
        for heading, items in group_entries(entries):
            head = QStandardItem(heading)
            head.setEnabled(False)
            head.setSelectable(False)
            font = head.font()
            font.setBold(True)
            head.setFont(font)
            self.model.appendRow(head)
            for e in items:
                self.model.appendRow(self._item(e))
        if current:
            self.select_path(current)

    def _item(self, e) -> QStandardItem:
        title = getattr(e, "title", None) or getattr(e, "id", None) or str(e.path)
        if getattr(e, "source", "library") == "user":
            title = f"{title}  [mine]"
        item = QStandardItem(title if e.error is None else f"\u26a0 {title} (invalid)")
        item.setData(str(e.path), PATH_ROLE)
        item.setData(getattr(e, "id", ""), ID_ROLE)
        item.setData(e.error, ERROR_ROLE)
        if e.error is not None:
            item.setForeground(QBrush(QColor(140, 140, 140)))
            item.setToolTip(f"{e.path}\n\n{e.error}")
            return item
        bits = [b for b in (_human(getattr(e, "procedure", "")), _human(getattr(e, "modality", ""))) if b]
        tier = getattr(e, "difficulty", None)
        if tier:
            bits.append(f"tier {tier}")
        lines = [f"{e.id}: {', '.join(bits)}", str(e.path)]
        sc = getattr(e, "scenario", None)
        if sc is not None and self.patients:
            for ref, ptitle, ok, why in hosting_rows(sc, self.patients):
                mark = "\u2713" if ok else "\u2717"
                lines.append(f"{mark} {ref} ({ptitle})" + (f": {why}" if why else ""))
        item.setToolTip("\n".join(lines))
        return item

    def show_hosting(self, scenario, patient: str | None = None) -> None:
        """Fill the patient picker for `scenario` (the patients that cannot host it greyed, with
        why) and select `patient` (default its own)."""
        self.patient_model.clear()
        if scenario is None:
            self.hosting.setText("")
            return
        patient = patient or scenario.anatomy
        rows = hosting_rows(scenario, self.patients)
        for ref, title, ok, why in rows:
            item = QStandardItem(f"Patient: {ref} ({title})" if ok else f"Patient: {ref} \u2014 cannot host it")
            item.setData(ref, PATH_ROLE)
            item.setEnabled(ok)
            item.setToolTip(title if ok else f"{title}: {why}")
            self.patient_model.appendRow(item)
        refs = [r[0] for r in rows]
        self.patient_picker.blockSignals(True)
        self.patient_picker.setCurrentIndex(refs.index(patient) if patient in refs else 0)
        self.patient_picker.blockSignals(False)
        can = [r[0] for r in rows if r[2]]
        cannot = [f"{html.escape(r[0])} ({html.escape(r[3])})" for r in rows if not r[2]]
        text = f"Runs on: {html.escape(', '.join(can))}"
        if cannot:
            text += f"<br><i>Cannot run on:</i> {'; '.join(cannot)}"
        self.hosting.setText(text)

    def current_patient(self) -> str | None:
        item = self.patient_model.item(self.patient_picker.currentIndex()) if self.patient_picker.currentIndex() >= 0 else None
        return item.data(PATH_ROLE) if item is not None else None

    def _on_patient_activated(self, row: int) -> None:
        item = self.patient_model.item(row) if row >= 0 else None
        if item is not None and item.isEnabled():
            self.patient_chosen.emit(item.data(PATH_ROLE))

    def _on_activated(self, row: int) -> None:
        path = self.model.item(row).data(PATH_ROLE) if row >= 0 else None
        if path:
            self.scenario_chosen.emit(path)

    def current_path(self) -> str | None:
        row = self.picker.currentIndex()
        item = self.model.item(row) if row >= 0 else None
        return item.data(PATH_ROLE) if item is not None else None

    def row_of(self, path: str) -> int:
        from pathlib import Path

        target = str(Path(path).resolve())
        for row in range(self.model.rowCount()):
            p = self.model.item(row).data(PATH_ROLE)
            if p and str(Path(p).resolve()) == target:
                return row
        return -1

    def select_path(self, path: str | None) -> None:
        row = self.row_of(path) if path else -1
        self.picker.blockSignals(True)
        self.picker.setCurrentIndex(row)
        self.picker.blockSignals(False)

    def show_scenario(self, scenario, written=None) -> None:
        """`scenario` as it runs (fitted to its patient); `written`: the scenario as its file
        has it, when it runs on another patient (the patient picker lists from it)."""
        patient = scenario.anatomy if scenario is not None else None
        self.show_hosting(written or scenario, patient)
        if scenario is None:
            self.summary.setText("")
            self.instructions.setPlainText("")
            return
        needle = scenario.needle
        rows = [
            ("Procedure", _human(scenario.procedure)),
            ("Guidance", _human(scenario.modality)),
            ("Patient", f"{_human(scenario.patient_position)}, {scenario.anatomy}"),
            ("Needle", f"{needle.gauge} G, {needle.length_mm:g} mm"),
            ("Tier", str(scenario.difficulty)),
        ]
        self.summary.setText(
            f"<b>{html.escape(scenario.title)}</b><table>"
            + "".join(f"<tr><td><i>{k}</i>&nbsp;</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
            + "</table>"
        )
        self.instructions.setMarkdown(scenario.instructions)


# --------------------------------------------------------------------------------------------
class DisplayPanel(QWidget):
    """Structure groups (visibility, opacity), camera presets, instructor mode."""

    group_visibility_changed = Signal(str, bool)
    group_opacity_changed = Signal(str, float)
    preset_requested = Signal(str)
    reset_camera_requested = Signal()
    instructor_mode_changed = Signal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)

        self.instructor = QCheckBox("Instructor mode: show targets, plan and critical structures")
        self.instructor.setObjectName("instructor_mode")
        self.instructor.setToolTip("Practice with hints (Ctrl+I). Unchecked = exam mode: only what a real procedure shows.")
        self.instructor.toggled.connect(self.instructor_mode_changed)
        layout.addWidget(self.instructor)

        self.groups_box = QGroupBox("Structures")
        self.groups_grid = QGridLayout(self.groups_box)
        self.groups_grid.setColumnStretch(1, 1)
        self.group_checks: dict[str, QCheckBox] = {}
        self.group_sliders: dict[str, QSlider] = {}
        layout.addWidget(self.groups_box)

        cam = QGroupBox("Camera")
        grid = QGridLayout(cam)
        self.preset_buttons: dict[str, QToolButton] = {}
        for i, name in enumerate(CAMERA_PRESETS):
            b = QToolButton()
            b.setText(PRESET_LABELS[name].split(" (")[0])
            b.setToolTip(f"{PRESET_LABELS[name]}  [{PRESET_KEYS[name]}]")
            b.setObjectName(f"preset_{name}")
            b.setCheckable(True)
            b.setAutoExclusive(True)
            b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            b.clicked.connect(lambda _=False, n=name: self.preset_requested.emit(n))
            grid.addWidget(b, i // 2, i % 2)
            self.preset_buttons[name] = b
        reset = QToolButton()
        reset.setText("Reset")
        reset.setToolTip("Back to the view from above the table [0]")
        reset.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        reset.clicked.connect(self.reset_camera_requested)
        grid.addWidget(reset, len(CAMERA_PRESETS) // 2, 1)
        layout.addWidget(cam)
        layout.addStretch(1)

    def set_groups(self, groups: list[str], visible: dict[str, bool], opacity: dict[str, float],
                   counts: dict[str, int] | None = None) -> None:
        while self.groups_grid.count():
            w = self.groups_grid.takeAt(0).widget()
            if w is not None:  # gone from the screen now, not only at the next deferred delete
                w.hide()
                w.setParent(None)
                w.deleteLater()
        self.group_checks.clear()
        self.group_sliders.clear()
        for row, g in enumerate(groups):
            cb = QCheckBox(g.capitalize())
            cb.setObjectName(f"group_{g}")
            cb.setChecked(visible.get(g, True))
            if counts and g in counts:
                cb.setToolTip(f"{counts[g]} structure(s)")
            cb.toggled.connect(lambda on, gg=g: self.group_visibility_changed.emit(gg, on))
            sl = QSlider(Qt.Orientation.Horizontal)
            sl.setObjectName(f"opacity_{g}")
            sl.setRange(0, 100)
            sl.setValue(int(round(100 * opacity.get(g, 1.0))))
            sl.setToolTip(f"{g} opacity")
            sl.valueChanged.connect(lambda v, gg=g: self.group_opacity_changed.emit(gg, v / 100.0))
            self.groups_grid.addWidget(cb, row, 0)
            self.groups_grid.addWidget(sl, row, 1)
            self.group_checks[g] = cb
            self.group_sliders[g] = sl

    def set_group_checked(self, group: str, on: bool) -> None:
        cb = self.group_checks.get(group)
        if cb is not None and cb.isChecked() != on:
            cb.setChecked(on)

    def mark_preset(self, name: str) -> None:
        b = self.preset_buttons.get(name)
        if b is not None:
            b.setChecked(True)


# --------------------------------------------------------------------------------------------
class ImagingPane(QFrame):
    """A titled pane for an imaging view; `set_content` puts the real view in (later issues)."""

    def __init__(self, title: str, placeholder: str, parent=None):
        super().__init__(parent)
        self.setObjectName(f"pane_{title.lower()}")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setMinimumSize(200, 150)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        self.title = QLabel(f"<b>{html.escape(title)}</b>")
        layout.addWidget(self.title)
        self.placeholder = QLabel(placeholder)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.placeholder.setStyleSheet("color: #888; background: #111;")
        self.placeholder.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        layout.addWidget(self.placeholder, 1)
        self.content: QWidget = self.placeholder

    def set_content(self, widget: QWidget) -> None:
        layout = self.layout()
        layout.replaceWidget(self.content, widget)
        self.content.setParent(None)
        self.content = widget
