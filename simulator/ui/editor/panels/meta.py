"""The editor's Scenario tab: the scenario's metadata (id, title, procedure, difficulty, anatomy,
position, modality, needle).
"""
from __future__ import annotations

from typing import get_args

from PySide6.QtWidgets import QGroupBox, QLabel, QVBoxLayout, QWidget

from simulator.core import scenario_model as M
from simulator.ui.editor.fields import (
    Binder,
    ChecklistField,
    ComboField,
    LineField,
    form,
    set_text,
)
from simulator.ui.editor.panels.common import enum_choices, field_literal, literal_choices


class MetaPanel(QWidget):
    def __init__(self, binder: Binder, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        self.anatomy_label = QLabel("")
        self.anatomy_label.setWordWrap(True)
        lay.addWidget(form(binder, [
            ("Id", LineField(("id",), tip="file name and reference: lower-case letters, digits, _ and -")),
            ("Title", LineField(("title",))),
            ("Procedure", ComboField(("procedure",), enum_choices(M.Procedure))),
            ("Indication", ChecklistField(("indication",), enum_choices(M.Indication))),
            ("Difficulty", ComboField(("difficulty",), [(1, "1 beginner"), (2, "2"), (3, "3"), (4, "4 advanced")])),
            ("Anatomy", self.anatomy_label),
            ("Patient position", ComboField(("patient_position",), enum_choices(M.PatientPosition))),
            ("Modality", ComboField(("modality",), enum_choices(M.Modality))),
        ]))
        needle = QGroupBox("Needle")
        QVBoxLayout(needle).addWidget(form(binder, [
            ("Gauge", ComboField(("needle", "gauge"), [(g, f"{g} G") for g in get_args(field_literal(M.NeedleSpec, "gauge"))])),
            ("Length (mm)", LineField(("needle", "length_mm"), kind="number")),
            ("Bevel", ComboField(("needle", "bevel"), literal_choices(field_literal(M.NeedleSpec, "bevel")))),
        ]))
        lay.addWidget(needle)
        lay.addStretch(1)

    def refresh(self, doc) -> None:
        ref = doc.get(("anatomy",)) if doc is not None else ""
        set_text(self.anatomy_label, f"{ref}  (the anatomy is chosen when the scenario is made from a template)")
