"""The editor's Rubric tab: the scored items and their weights.
"""
from __future__ import annotations

from typing import get_args

from PySide6.QtWidgets import QGroupBox, QLabel, QPushButton, QVBoxLayout, QWidget

from simulator.core import scenario_model as M
from simulator.ui.editor.fields import (
    Binder,
    ChecklistField,
    ComboField,
    LineField,
    form,
    format_value,
    set_text,
)
from simulator.ui.editor.panels.common import ListEditor, literal_choices


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
            ("Metric", ComboField(lambda: p("metric"), literal_choices(M.MetricName))),
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
                                                                        literal_choices(M.AutoFail)))]))
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
