"""The case screen: the patient behind the scenario, shown before the attempt starts.

`CaseDialog(scenario, history=None)` is a non-modal dialog (object name `case_screen`) with the
scenario's vignette as a page a physician reads before a procedure: who the patient is, the
diagnosis, the pain and its history, what was tried, the drugs (anticoagulation with the last dose,
INR and platelets), allergies and other facts, the prognostic block this scenario asks for, and -
for a follow-up - the history of the earlier procedure on this patient (what was injected where,
how long it helped, what happened after). The instructor's key (which facts are contraindications,
which risks to name at consent) is never shown here: the trainee must notice them at the time-out.

The trainer opens it when a live attempt starts on a scenario with a vignette (unless the trainee
unticked "Show the case before every attempt", kept in the settings) and from Procedure > The
patient (F8). `vignette_html(scenario, history)` is the page (also used by tests and snapshots).
"""
from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QDialog, QHBoxLayout, QPushButton, QTextBrowser, QVBoxLayout

SEX_WORD = {"female": "woman", "male": "man", "other": "patient"}
SIDE_WORD = {"left": "left-sided", "right": "right-sided", "bilateral": "bilateral", "midline": "midline"}


def _e(x) -> str:
    return html.escape(str(x))


def _items(title: str, items) -> str:
    items = [i for i in items if str(i).strip()]
    if not items:
        return ""
    return f"<h3>{_e(title)}</h3><ul>" + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"


def _anticoagulation(ac) -> str:
    bits = [f"<b>{_e(ac.drug)}</b>"]
    if ac.last_dose_hours is not None:
        bits.append(f"last dose {ac.last_dose_hours:g} hours ago")
    if ac.inr is not None:
        bits.append(f"INR {ac.inr:g}")
    if ac.platelets_per_nl is not None:
        bits.append(f"platelets {ac.platelets_per_nl:g} &times;10<sup>9</sup>/l")
    return "<h3>Anticoagulation and clotting</h3><p>" + ", ".join(bits) + "</p>"


def history_lines(history: dict) -> list[str]:
    """The earlier procedure on this patient, in words (see `simulator.core.repeat`)."""
    out = []
    when = history.get("months_before")
    head = history.get("title") or history.get("scenario_id", "an earlier procedure")
    out.append(f"{head}" + (f", {when:g} months ago" if when else "") + ".")
    for s in history.get("sites", []):
        where = ", ".join(s.get("target_names") or []) or s.get("where", "")
        out.append(f"{s.get('agent', '?')} {s.get('concentration_pct', 0):g} %, {s.get('volume_ml', 0):g} ml"
                   + (f" at {where}" if where else "") + (f" ({s['note']})" if s.get("note") else "") + ".")
    if not history.get("sites"):
        out.append("No neurolytic reached the tissue at that procedure.")
    if history.get("relief_weeks") is not None:
        out.append(f"Relief for about {history['relief_weeks']:.0f} weeks, then the pain came back.")
    elif history.get("relieved") is False:
        out.append("It gave no lasting relief.")
    if history.get("effects"):
        out.append("After it: " + ", ".join(history["effects"]) + ".")
    if history.get("pain_nrs_now") is not None:
        out.append(f"Pain now {history['pain_nrs_now']:g}/10.")
    if history.get("spread_note"):
        out.append(history["spread_note"])
    return out


def vignette_html(scenario, history: dict | None = None) -> str:
    """The case page of a scenario (the vignette; the earlier procedure for a follow-up)."""
    v = getattr(scenario, "vignette", None)
    parts = [f"<h2>{_e(scenario.title)}</h2>"]
    if v is None:
        parts.append("<p>This scenario describes no patient (no vignette in its file).</p>")
    else:
        pain_nrs = v.pain_nrs if not (history and history.get("pain_nrs_now") is not None) else history["pain_nrs_now"]
        parts.append(f"<p style='font-size:15px'><b>{v.age_years}-year-old {SEX_WORD.get(v.sex, 'patient')}</b>. "
                     f"{_e(v.diagnosis)}.</p>")
        parts.append(f"<h3>Pain</h3><p>{_e(v.pain_history)}</p>"
                     f"<p>Pain score now <b>{pain_nrs:g}/10</b> ({SIDE_WORD.get(v.pain_side, v.pain_side)}).</p>")
        if history:
            parts.append("<h3>Earlier procedure on this patient</h3><ul>"
                         + "".join(f"<li>{_e(x)}</li>" for x in history_lines(history)) + "</ul>")
        parts.append(_items("Treatments so far", v.prior_treatments))
        parts.append(_items("Medications", v.medications))
        parts.append(_anticoagulation(v.anticoagulation))
        parts.append(_items("Allergies", v.allergies or ["none recorded"]))
        parts.append(_items("Other facts", v.other_facts))
        if v.life_expectancy_months is not None:
            parts.append(f"<p>Expected survival: about {v.life_expectancy_months:g} months.</p>")
    pb = getattr(scenario, "prognostic_block", None)
    if pb is not None:
        need = "required before the neurolytic" if pb.required else "offered before the neurolytic"
        parts.append(f"<h3>Prognostic block</h3><p>A local-anaesthetic block ({_e(pb.agent)} {pb.concentration_pct:g} %, "
                     f"{pb.min_ml:g}-{pb.max_ml:g} ml at the target) is {need}.</p>")
    parts.append("<p style='color:#8a5a00'><i>Before the needle: time-out (any reason not to go ahead?), consent, "
                 "skin preparation and drape - Procedure menu, F9-F12.</i></p>")
    return "".join(p for p in parts if p)


class CaseDialog(QDialog):
    """The case screen (see the module notes). `begin` is emitted when the trainee starts."""

    begin = Signal()
    show_each_changed = Signal(bool)

    def __init__(self, scenario, history: dict | None = None, show_each: bool = True, parent=None):
        super().__init__(parent)
        self.setObjectName("case_screen")
        self.setWindowTitle("The patient")
        self.scenario = scenario
        self.history = history
        lay = QVBoxLayout(self)
        self.text = QTextBrowser()
        self.text.setObjectName("case_text")
        self.text.setOpenLinks(False)
        self.text.setHtml(vignette_html(scenario, history))
        lay.addWidget(self.text, 1)
        row = QHBoxLayout()
        self.show_each = QCheckBox("Show the case before every attempt")
        self.show_each.setObjectName("case_show_each")
        self.show_each.setChecked(bool(show_each))
        self.show_each.toggled.connect(self.show_each_changed)
        row.addWidget(self.show_each)
        row.addStretch(1)
        self.begin_button = QPushButton("Begin")
        self.begin_button.setObjectName("case_begin")
        self.begin_button.setDefault(True)
        self.begin_button.clicked.connect(self._begin)
        row.addWidget(self.begin_button)
        lay.addLayout(row)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.resize(640, 700)

    def _begin(self) -> None:
        self.begin.emit()
        self.close()

    def plain_text(self) -> str:
        return self.text.toPlainText()


__all__ = ["CaseDialog", "vignette_html", "history_lines"]
