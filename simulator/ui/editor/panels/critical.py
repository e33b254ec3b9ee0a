"""The editor's Structures to avoid tab: critical structures (anatomy structures or tissue classes)
with their severity and message.
"""
from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from simulator.core import scenario_model as M
from simulator.core.tissue import Tissue
from simulator.ui.editor.fields import Binder, ComboField, LineField
from simulator.ui.editor.panels.common import ListEditor, enum_choices, structure_order


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
            ("Severity", ComboField(lambda: p("severity"), enum_choices(M.Severity))),
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
        from simulator.core.scenario_edits import add_critical_structure

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
