"""The editor's Text tab: instructions and references.
"""
from __future__ import annotations

from PySide6.QtWidgets import QGroupBox, QLabel, QPushButton, QVBoxLayout, QWidget

from simulator.ui.editor.fields import Binder, LineField, TextField
from simulator.ui.editor.panels.common import ListEditor


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
