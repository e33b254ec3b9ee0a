"""The editor's Steps tab: the procedure's steps and the agents allowed (concentrations and volume
limits).
"""
from __future__ import annotations

from PySide6.QtWidgets import QGroupBox, QPushButton, QVBoxLayout, QWidget

from simulator.core import scenario_model as M
from simulator.ui.editor.fields import (
    Binder,
    CheckField,
    ComboField,
    LineField,
    form,
    format_value,
    set_enabled,
)
from simulator.ui.editor.panels.common import ListEditor, field_literal, literal_choices


AGENTS = literal_choices(field_literal(M.AgentOption, "agent"))

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
        self.on_delete = self._drop_empty_list

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

    def delete_label(self, i: int, item) -> str:
        return f"Delete the alternative agent {item.get('agent', '?') if isinstance(item, dict) else '?'}"

    def _drop_empty_list(self, doc, item) -> None:
        """The last alternative removed takes the empty list with it (the file stays as it was)."""
        if not self.items():
            doc.unset(self.list_path)

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
