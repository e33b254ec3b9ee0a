"""The editor's Patient tab: who the patient is and what follows the procedure.

- the case steps the trainee must do (time-out, consent, asepsis: `steps.*`);
- the vignette (`vignette`): age, sex, diagnosis, pain and its history, treatments, drugs,
  anticoagulation (drug, last dose, INR, platelets), allergies, other facts, the risks to discuss
  at consent, and the instructor's key: the contraindications the trainee must notice, each with
  what a careful physician does and why (shown in the debrief, never before);
- the prognostic block (`prognostic_block`): required or offered, agent, strength, volumes, and
  this patient's answer (relief, hours, side effects);
- the course model (`outcome`): a parameter set of the shared file, the celiac origin for a model
  that counts quadrants, the number of virtual patients;
- a follow-up (`follows`) and a variant (`based_on`): the scenario this one repeats months later,
  the scenario whose fields it takes.
Lists of text are edited one item a line. Every field goes through the document (undoable) and
shows the validator's message for its path.
"""
from __future__ import annotations

from PySide6.QtWidgets import QGroupBox, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from simulator.core import scenario_case as C
from simulator.ui.editor.fields import Binder, CheckField, ComboField, Field, LineField, form
from simulator.ui.editor.panels.common import ListEditor, field_literal, literal_choices
from simulator.ui.editor.panels.steps import OptionalSection

VIGNETTE_DEFAULT = {"age_years": 60, "sex": "female", "diagnosis": "the diagnosis",
                    "pain_history": "where the pain is, since when, what it is like", "pain_nrs": 7}
BLOCK_DEFAULT = {"required": True, "agent": "bupivacaine", "concentration_pct": 0.25, "min_ml": 5, "max_ml": 10}


class LinesField(Field):
    """A list of texts, one item a line (empty: the key is removed when optional)."""

    typed = True

    def __init__(self, path, **kw):
        w = QPlainTextEdit()
        w.setTabChangesFocus(True)
        w.setMaximumHeight(80)
        super().__init__(path, w, optional=True, **kw)
        w.textChanged.connect(self._changed)

    def _changed(self) -> None:
        if self._updating:
            return
        items = [ln.strip() for ln in self.widget.toPlainText().splitlines() if ln.strip()]
        if items:
            self.commit(items)
        else:
            self.commit(None, unset=True)

    def show_value(self, value) -> None:
        text = "\n".join(str(v) for v in value) if isinstance(value, list) else ("" if value is None else str(value))
        if self.widget.toPlainText() != text:
            self.widget.setPlainText(text)


def _outcome_sets() -> list:
    try:
        from simulator.core.outcome_library import shared_library

        return [(name, f"{name} \u2014 {cp.title}") for name, cp in shared_library().sets.items()]
    except Exception:  # noqa: BLE001 - the shared file is broken: the validator says so
        return []


def _scenario_ids() -> list:
    from simulator.core.scenario import list_scenarios

    return [(e.id, f"{e.id} \u2014 {e.title}") for e in list_scenarios() if e.ok]


class PatientPanel(QWidget):
    def __init__(self, binder: Binder, parent=None):
        super().__init__(parent)
        self.binder = binder
        self._choices_for = None
        lay = QVBoxLayout(self)
        steps = QGroupBox("Before the needle (steps the trainee must do)")
        QVBoxLayout(steps).addWidget(form(binder, [
            ("", CheckField(("steps", "time_out"), "time-out: the vignette's contraindications checked")),
            ("", CheckField(("steps", "consent"), "consent: the vignette's risks discussed")),
            ("", CheckField(("steps", "asepsis"), "asepsis: skin preparation and a sterile drape")),
        ]))
        lay.addWidget(steps)
        v = ("vignette",)
        ac = v + ("anticoagulation",)
        self.vignette = OptionalSection(binder, v, "The patient (vignette, shown before the attempt)", VIGNETTE_DEFAULT, [
            ("Age (years)", LineField(v + ("age_years",), kind="number")),
            ("Sex", ComboField(v + ("sex",), literal_choices(field_literal(C.Vignette, "sex")))),
            ("Diagnosis", LineField(v + ("diagnosis",))),
            ("Pain history", LineField(v + ("pain_history",))),
            ("Pain now (NRS 0-10)", LineField(v + ("pain_nrs",), kind="number")),
            ("Pain side", ComboField(v + ("pain_side",), literal_choices(field_literal(C.Vignette, "pain_side")),
                                     default="bilateral")),
            ("Painful targets", LinesField(v + ("pain_targets",), tip="target ids, one a line (default: the required targets)")),
            ("Treatments so far", LinesField(v + ("prior_treatments",))),
            ("Medications", LinesField(v + ("medications",))),
            ("Anticoagulant", LineField(ac + ("drug",), default="none")),
            ("Last dose (hours ago)", LineField(ac + ("last_dose_hours",), kind="number", optional=True)),
            ("INR", LineField(ac + ("inr",), kind="number", optional=True)),
            ("Platelets (10^9/l)", LineField(ac + ("platelets_per_nl",), kind="number", optional=True)),
            ("Allergies", LinesField(v + ("allergies",))),
            ("Other facts", LinesField(v + ("other_facts",))),
            ("Risks for consent", LinesField(v + ("consent_items",))),
            ("Life expectancy (months)", LineField(v + ("life_expectancy_months",), kind="number", optional=True)),
        ])
        lay.addWidget(self.vignette)
        key = QGroupBox("The key: contraindications the trainee must notice at the time-out (shown in the debrief only)")
        key.setObjectName("section_contraindications")
        self.key = ListEditor(binder, v + ("contraindications",), self._describe_key, "contraindications")
        add = self.key.add_button(QPushButton("Add a contraindication"))
        add.setObjectName("contraindication_add")
        add.clicked.connect(self.add_contraindication)
        p = self.key.item_path
        self.key.detail([
            ("Kind", ComboField(lambda: p("kind"), [(k, C.CONTRAINDICATION_TEXT[k]) for k in C.CONTRAINDICATION_KINDS])),
            ("Finding in the case", LineField(lambda: p("finding"))),
            ("What to do", ComboField(lambda: p("action"), literal_choices(field_literal(C.Contraindication, "action")),
                                      default="defer")),
            ("Why (debrief)", LineField(lambda: p("why"))),
        ])
        QVBoxLayout(key).addWidget(self.key)
        lay.addWidget(key)
        b = ("prognostic_block",)
        self.block = OptionalSection(binder, b, "Prognostic block (local anaesthetic before the neurolytic)", BLOCK_DEFAULT, [
            ("", CheckField(b + ("required",), "required: the neurolytic is refused until it is done", default=True)),
            ("Agent", ComboField(b + ("agent",), literal_choices(field_literal(C.PrognosticBlock, "agent")))),
            ("Concentration (%)", LineField(b + ("concentration_pct",), kind="number")),
            ("Volume min (ml)", LineField(b + ("min_ml",), kind="number")),
            ("Volume max (ml)", LineField(b + ("max_ml",), kind="number")),
            ("This patient's answer", ComboField(b + ("positive",), [(True, "positive (relief)"), (False, "negative")],
                                                 optional=True, tip="none: drawn from the course parameters")),
            ("Relief (%)", LineField(b + ("relief_pct",), kind="number", optional=True)),
            ("Relief (hours)", LineField(b + ("duration_hours",), kind="number", optional=True)),
            ("Side effects", LinesField(b + ("side_effects",))),
        ])
        lay.addWidget(self.block)
        o = ("outcome",)
        self.outcome_sets = ComboField(o + ("parameters",), _outcome_sets())
        self.outcome = OptionalSection(binder, o, "The course after the procedure (debrief)",
                                       {"parameters": (_outcome_sets() or [("celiac_plexus", "")])[0][0]}, [
            ("Course parameters", self.outcome_sets),
            ("Celiac origin (R, A, S mm)", LineField(o + ("celiac_origin_mm",), kind="numbers", optional=True,
                                                     tip="needed by a model that counts quadrants around the celiac artery")),
            ("Virtual patients", LineField(o + ("n_patients",), kind="number", default=200)),
        ])
        lay.addWidget(self.outcome)
        rep = QGroupBox("A follow-up or a variant of another scenario")
        self.follows = ComboField(("follows",), [], optional=True,
                                  tip="this scenario repeats that one months later (the same patient)")
        self.based_on = ComboField(("based_on",), [], optional=True,
                                   tip="this scenario takes that one's fields; its own fields change them")
        QVBoxLayout(rep).addWidget(form(binder, [("Follows", self.follows), ("Based on", self.based_on)]))
        lay.addWidget(rep)
        note = QLabel("The course model's figures and their sources: scenarios/outcome/course_parameters.yaml.")
        note.setWordWrap(True)
        lay.addWidget(note)
        lay.addStretch(1)

    @staticmethod
    def _describe_key(i, it) -> str:
        if not isinstance(it, dict):
            return f"{i + 1}: ?"
        return f"{str(it.get('kind', '?')).replace('_', ' ')} \u2014 {it.get('finding', '')} ({it.get('action', 'defer')})"

    def add_contraindication(self) -> None:
        doc = self.binder.doc
        if doc is None:
            return
        self.binder.flush()
        if not isinstance(doc.get(("vignette",)), dict):
            return
        doc.insert(("vignette", "contraindications"), -1,
                   {"kind": "coagulopathy", "finding": "the fact in the case", "action": "defer", "why": "why it matters"},
                   label="Add a contraindication")
        self.key.select(len(self.key.items()) - 1)

    def refresh(self) -> None:
        self.vignette.refresh()
        self.block.refresh()
        self.outcome.refresh()
        self.key.refresh()
        doc = self.binder.doc
        if doc is not self._choices_for:  # the library is read once per document opened, not per keystroke
            self._choices_for = doc
            own = doc.get(("id",)) if doc is not None else None
            ids = [(i, t) for i, t in _scenario_ids() if i != own]
            self.follows.set_choices(ids)
            self.based_on.set_choices(ids)
            self.outcome_sets.set_choices(_outcome_sets())


__all__ = ["PatientPanel", "LinesField"]
