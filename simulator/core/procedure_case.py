"""The case-step inputs of the Procedure (a mixin of `procedure.Procedure`): the time-out on the
vignette's contraindications, consent, skin preparation and drape. What they mean for the patient
(the prognostic block's result, the refusal of a neurolytic before it) is in `case_steps.py`.
"""
from __future__ import annotations

from simulator.core import case_steps
from simulator.core.events import Event, EventKind
from simulator.core.procedure_input import ProcedureError, recorded_input


class CaseSteps:
    """Case-step inputs (state lives in `Procedure.__init__`)."""

    @recorded_input
    def time_out(self, contraindications=(), decision: str = "proceed") -> Event:
        """The check before the needle: the contraindications the trainee found in the vignette
        (names from `scenario_case.CONTRAINDICATION_KINDS`) and the decision (proceed | defer)."""
        try:
            items, decision = case_steps.check_time_out(contraindications, decision)
        except ValueError as e:
            raise ProcedureError(str(e)) from None
        found = ", ".join(i.replace("_", " ") for i in items) or "none"
        ev = self._emit(EventKind.time_out, f"time-out: contraindications noticed: {found}; decision: {decision}",
                        contraindications=items, decision=decision, before_insertion=not self._ever_inserted)
        self._done["time_out"] = True
        return ev

    @recorded_input
    def consent(self, items=()) -> Event:
        """Consent taken, with the risks discussed (free text, usually the vignette's consent items)."""
        listed = [str(i) for i in (items or [])]
        ev = self._emit(EventKind.consent, f"consent taken ({len(listed)} risk(s) discussed)", items=listed,
                        before_insertion=not self._ever_inserted)
        self._done["consent"] = True
        return ev

    @recorded_input
    def skin_preparation(self, agent: str = case_steps.DEFAULT_PREP) -> Event:
        """Skin disinfected at the entry site."""
        return self._asepsis("skin_prep", f"skin prepared ({agent})", agent=str(agent))

    @recorded_input
    def drape(self) -> Event:
        """Sterile drape placed."""
        return self._asepsis("drape", "sterile drape placed")

    def _asepsis(self, what: str, message: str, **data) -> Event:
        ev = self._emit(EventKind.asepsis, message + ("" if not self._ever_inserted else " (after the needle was in)"),
                        what=what, before_insertion=not self._ever_inserted, **data)
        kinds = {e.data.get("what") for e in self.recording.events if e.kind == EventKind.asepsis}
        if {"skin_prep", "drape"} <= kinds:
            self._done["asepsis"] = True
        return ev
