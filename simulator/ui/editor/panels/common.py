"""What the editor's forms share: choices from the schema, the anatomist's order of structure names,
a scroll area, point formatting and `ListEditor` (a list of items with add/remove and a form).
"""
from __future__ import annotations

import re
from typing import get_args

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from simulator.ui.editor.fields import Binder, form, set_enabled


def enum_choices(enum_cls) -> list[tuple[str, str]]:
    return [(e.value, e.value.replace("_", " ")) for e in enum_cls]


def literal_choices(lit) -> list:
    return [(v, str(v).replace("_", " ")) for v in get_args(lit)]


def field_literal(model, name):
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

    def delete_label(self, i: int, item) -> str:
        """The deletion's undo step: `Delete` and the item's list text up to its dash."""
        return "Delete " + self.describe(i, item).split(" \u2014 ")[0]

    def delete_selected(self) -> None:
        self.binder.flush()
        doc = self.binder.doc
        if doc is None or self.index < 0:
            return
        i = self.index
        item = self.items()[i]
        with doc.batch(self.delete_label(i, item)):
            doc.remove(self.list_path, i)
            if self.on_delete is not None:
                self.on_delete(doc, item)
        self.index = min(i, len(self.items()) - 1)
        self.binder.refresh()
