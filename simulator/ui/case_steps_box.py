"""The steps before (and around) the needle, in the procedure panel: the patient, the time-out,
consent, skin preparation, the drape and the prognostic block.

`CaseStepsBox` (a group box of the procedure panel, object name `case_steps_box`) shows buttons
for what the scenario's case asks for and emits requests the main window passes to the controller
(the panel never changes the attempt itself):
- `case_requested()`: the case screen again (F8);
- `time_out_requested()`: the window opens `TimeOutDialog` (F9): a tick for every kind of
  contraindication the trainee noticed in the vignette and the decision, Proceed or Defer;
- `consent_requested()`: `ConsentDialog` (F10): the risks discussed with the patient, ticked;
- `skin_prep_requested()` (F11) / `drape_requested()` (F12);
- `prognostic_requested(agent, concentration_pct, volume_ml)` (Shift+F7): the local-anaesthetic
  block at the needle's tip, with the scenario's agent and volume range.
Each button shows a tick once its step is in the attempt's events (`on_event`), and the result of
the prognostic block (relief, how long, side effects) is shown under it.

The dialogs list only what a physician sees: the time-out offers every kind of contraindication
(the key of which apply is the scenario's, never shown before the debrief); consent offers the
scenario's risks to discuss (or, without them, the side effects and complications of its course
model), none ticked.
"""
from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
)

from simulator.core.events import EventKind
from simulator.core.scenario_case import CONTRAINDICATION_KINDS, CONTRAINDICATION_TEXT

TICK = "\u2714 "


def consent_choices(scenario) -> list[str]:
    """The risks the consent dialog offers: the vignette's, else the course model's effects."""
    v = getattr(scenario, "vignette", None)
    if v is not None and v.consent_items:
        return list(v.consent_items)
    try:
        from simulator.core.outcome_library import parameters_for

        found = parameters_for(scenario)
    except Exception:  # noqa: BLE001 - a broken parameter file: no suggestions
        found = None
    if found is None:
        return []
    names = []
    for e in found[0].effects:
        if e.name not in names:
            names.append(e.name)
    return names


def has_case_steps(scenario) -> bool:
    s = scenario.steps
    return (getattr(scenario, "vignette", None) is not None or getattr(scenario, "prognostic_block", None) is not None
            or any(bool(getattr(s, k, False)) for k in ("time_out", "consent", "asepsis")))


class TimeOutDialog(QDialog):
    """The time-out before the needle: contraindications noticed, then Proceed or Defer."""

    answered = Signal(list, str)  # contraindication kinds, "proceed" | "defer"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("time_out_dialog")
        self.setWindowTitle("Time-out")
        lay = QVBoxLayout(self)
        head = QLabel("<b>Time-out before the needle.</b> Right patient, right procedure, right side - and is there "
                      "any reason not to go ahead today? Tick what you found in the case:")
        head.setWordWrap(True)
        lay.addWidget(head)
        self.boxes: dict[str, QCheckBox] = {}
        for kind in CONTRAINDICATION_KINDS:
            b = QCheckBox(CONTRAINDICATION_TEXT[kind][0].upper() + CONTRAINDICATION_TEXT[kind][1:])
            b.setObjectName(f"time_out_{kind}")
            self.boxes[kind] = b
            lay.addWidget(b)
        row = QHBoxLayout()
        self.proceed = QPushButton("Proceed with the procedure")
        self.proceed.setObjectName("time_out_proceed")
        self.proceed.clicked.connect(lambda: self._answer("proceed"))
        self.defer = QPushButton("Defer the procedure")
        self.defer.setObjectName("time_out_defer")
        self.defer.clicked.connect(lambda: self._answer("defer"))
        row.addWidget(self.proceed)
        row.addWidget(self.defer)
        lay.addLayout(row)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

    def noticed(self) -> list[str]:
        return [k for k, b in self.boxes.items() if b.isChecked()]

    def _answer(self, decision: str) -> None:
        self.answered.emit(self.noticed(), decision)
        self.close()


class ConsentDialog(QDialog):
    """Consent: the risks discussed with the patient."""

    taken = Signal(list)

    def __init__(self, choices: list[str], parent=None):
        super().__init__(parent)
        self.setObjectName("consent_dialog")
        self.setWindowTitle("Consent")
        lay = QVBoxLayout(self)
        head = QLabel("<b>Consent.</b> Tick the risks and expectations you discussed with the patient:")
        head.setWordWrap(True)
        lay.addWidget(head)
        self.boxes: list[QCheckBox] = []
        for i, text in enumerate(choices):
            b = QCheckBox(text)
            b.setObjectName(f"consent_item_{i}")
            self.boxes.append(b)
            lay.addWidget(b)
        if not choices:
            lay.addWidget(QLabel("(this scenario names no risks: consent is recorded as taken)"))
        self.take = QPushButton("Consent taken")
        self.take.setObjectName("consent_take")
        self.take.clicked.connect(self._take)
        lay.addWidget(self.take)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

    def discussed(self) -> list[str]:
        return [b.text() for b in self.boxes if b.isChecked()]

    def _take(self) -> None:
        self.taken.emit(self.discussed())
        self.close()


class CaseStepsBox(QGroupBox):
    case_requested = Signal()
    time_out_requested = Signal()
    consent_requested = Signal()
    skin_prep_requested = Signal()
    drape_requested = Signal()
    prognostic_requested = Signal(str, float, float)  # agent, concentration_pct, volume_ml

    def __init__(self, parent=None):
        super().__init__("The patient and the steps before the needle", parent)
        self.setObjectName("case_steps_box")
        g = QGridLayout(self)
        g.setVerticalSpacing(3)
        self.case_button = self._button("case_button", "The patient (F8)", self.case_requested)
        self.time_out_button = self._button("time_out_button", "Time-out\u2026 (F9)", self.time_out_requested)
        self.consent_button = self._button("consent_button", "Consent\u2026 (F10)", self.consent_requested)
        self.skin_prep_button = self._button("skin_prep_button", "Skin prep (F11)", self.skin_prep_requested)
        self.drape_button = self._button("drape_button", "Drape (F12)", self.drape_requested)
        g.addWidget(self.case_button, 0, 0)
        g.addWidget(self.time_out_button, 0, 1)
        g.addWidget(self.consent_button, 0, 2)
        g.addWidget(self.skin_prep_button, 1, 0)
        g.addWidget(self.drape_button, 1, 1)
        from simulator.ui.procedure_panel import _VolumeSpin

        self.prognostic_label = QLabel("")
        self.prognostic_volume = _VolumeSpin(0.5, 20.0, 10.0, "prognostic_volume")
        self.prognostic_button = QPushButton("Prognostic block (Shift+F7)")
        self.prognostic_button.setObjectName("prognostic_button")
        self.prognostic_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.prognostic_button.clicked.connect(self.request_prognostic)
        g.addWidget(self.prognostic_label, 2, 0)
        g.addWidget(self.prognostic_volume, 2, 1)
        g.addWidget(self.prognostic_button, 2, 2)
        self.result = QLabel("")
        self.result.setObjectName("prognostic_result")
        self.result.setWordWrap(True)
        self.result.setTextFormat(Qt.TextFormat.RichText)
        g.addWidget(self.result, 3, 0, 1, 3)
        self._labels = {b: b.text() for b in self._step_buttons()}
        self.scenario = None
        self.setVisible(False)

    def _button(self, name: str, text: str, signal) -> QPushButton:
        b = QPushButton(text)
        b.setObjectName(name)
        b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Space stays the pedal
        b.clicked.connect(signal)
        return b

    def _step_buttons(self):
        return (self.time_out_button, self.consent_button, self.skin_prep_button, self.drape_button,
                self.prognostic_button)

    def show_scenario(self, scenario) -> None:
        self.scenario = scenario
        self.setVisible(scenario is not None and has_case_steps(scenario))
        if scenario is None:
            return
        has_v = getattr(scenario, "vignette", None) is not None
        self.case_button.setEnabled(has_v)
        pb = getattr(scenario, "prognostic_block", None)
        for w in (self.prognostic_label, self.prognostic_volume, self.prognostic_button):
            w.setVisible(pb is not None)
        if pb is not None:
            self.prognostic_label.setText(f"{pb.agent} {pb.concentration_pct:g} %")
            self.prognostic_volume.setRange(float(pb.min_ml), float(pb.max_ml))
            self.prognostic_volume.setValue(float(pb.min_ml))
        self.reset()

    def reset(self) -> None:
        """A new attempt: no step done yet."""
        for b, text in self._labels.items():
            b.setText(text)
        self.result.setText("")

    def request_prognostic(self) -> None:
        pb = getattr(self.scenario, "prognostic_block", None) if self.scenario is not None else None
        if pb is None:
            return
        self.prognostic_requested.emit(pb.agent, float(pb.concentration_pct), float(self.prognostic_volume.value()))

    def _done(self, button: QPushButton) -> None:
        text = self._labels[button]
        button.setText(TICK + text)

    def on_event(self, ev) -> None:
        k = ev.kind
        if k == EventKind.time_out:
            self._done(self.time_out_button)
            if ev.data.get("decision") == "defer":
                self.result.setText("<b>Procedure deferred</b> at the time-out.")
        elif k == EventKind.consent:
            self._done(self.consent_button)
        elif k == EventKind.asepsis:
            self._done(self.skin_prep_button if ev.data.get("what") == "skin_prep" else self.drape_button)
        elif k == EventKind.prognostic_result:
            self._done(self.prognostic_button)
            colour = "#60d060" if ev.data.get("positive") else "#ffb040"
            self.result.setText(f"<span style='color:{colour}'>{html.escape(ev.message)}</span>")

    def refill(self, events) -> None:
        """Show the steps already done (a replay, the instructor switching modes)."""
        self.reset()
        for ev in events:
            self.on_event(ev)


__all__ = ["CaseStepsBox", "TimeOutDialog", "ConsentDialog", "consent_choices", "has_case_steps"]
