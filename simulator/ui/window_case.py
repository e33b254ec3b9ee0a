"""The patient in the main window: the case screen before an attempt, the time-out, consent,
asepsis and the prognostic block (buttons of the procedure panel's `CaseStepsBox` and the
Procedure menu), and the follow-up attempt (a repeat procedure on the same patient) the debrief
asks for.

A deferral at the time-out ends the attempt at once (the patient goes home untreated): the score
card and the debrief judge the decision.
"""
from __future__ import annotations

from PySide6.QtCore import QTimer

SHOW_CASE_KEY = "showCaseScreen"


class CaseMixin:
    """Part of `MainWindow` (simulator.ui.main_window)."""

    def _wire_case(self) -> None:
        box = self.procedure_panel.case_box
        box.case_requested.connect(self.show_case_screen)
        box.time_out_requested.connect(self.open_time_out)
        box.consent_requested.connect(self.open_consent)
        box.skin_prep_requested.connect(self.skin_preparation)
        box.drape_requested.connect(self.drape)
        box.prognostic_requested.connect(self._prognostic)
        self.case_dialog = None
        self.time_out_dialog = None
        self.consent_dialog = None
        #: the history a follow-up attempt carries (set by `start_follow_up`, for the next live attempt)
        self.follow_up: dict | None = None

    # ------------------------------------------------------------------------------------
    # the case screen
    # ------------------------------------------------------------------------------------
    def _case_on_start(self) -> None:
        """A live attempt started: show the case (when the scenario has one and the trainee wants it)."""
        sc = self.scenario
        if sc is None or getattr(sc, "vignette", None) is None or not self.show_dialogs or self._closing:
            return
        if not self.settings.value(SHOW_CASE_KEY, True, bool):
            return
        QTimer.singleShot(0, self, lambda: self.show_case_screen() if not self._closing else None)

    def case_history(self) -> dict | None:
        """The earlier procedure on this patient for the attempt now (a follow-up), or None."""
        proc = self.controller.procedure
        if proc is not None:
            return (proc.recording.meta or {}).get("follows")
        return None

    def show_case_screen(self) -> None:
        from simulator.ui.case_screen import CaseDialog

        sc = self.scenario
        if sc is None:
            return
        if self.case_dialog is not None:
            self.case_dialog.close()
        dlg = CaseDialog(sc, self.case_history(), self.settings.value(SHOW_CASE_KEY, True, bool), self)
        dlg.show_each_changed.connect(lambda on: self.settings.setValue(SHOW_CASE_KEY, bool(on)))
        dlg.destroyed.connect(lambda *_: setattr(self, "case_dialog", None))
        self.case_dialog = dlg
        dlg.show()
        dlg.raise_()

    # ------------------------------------------------------------------------------------
    # the steps
    # ------------------------------------------------------------------------------------
    def open_time_out(self) -> None:
        from simulator.ui.case_steps_box import TimeOutDialog

        if not self._case_input_ok():
            return
        if self.time_out_dialog is not None:
            self.time_out_dialog.close()
        dlg = TimeOutDialog(self)
        dlg.answered.connect(self.time_out)
        dlg.destroyed.connect(lambda *_: setattr(self, "time_out_dialog", None))
        self.time_out_dialog = dlg
        dlg.show()

    def time_out(self, contraindications: list, decision: str) -> None:
        if self.controller.call("time_out", list(contraindications), decision) is None:
            return
        if decision == "defer":
            self.statusBar().showMessage("Procedure deferred at the time-out: the attempt ends", 10000)
            self.end_attempt()
        else:
            self.statusBar().showMessage("Time-out done: proceed", 6000)

    def open_consent(self) -> None:
        from simulator.ui.case_steps_box import ConsentDialog, consent_choices

        if not self._case_input_ok():
            return
        if self.consent_dialog is not None:
            self.consent_dialog.close()
        dlg = ConsentDialog(consent_choices(self.scenario), self)
        dlg.taken.connect(self.consent)
        dlg.destroyed.connect(lambda *_: setattr(self, "consent_dialog", None))
        self.consent_dialog = dlg
        dlg.show()

    def consent(self, items: list) -> None:
        if self.controller.call("consent", list(items)) is not None:
            self.statusBar().showMessage(f"Consent taken ({len(items)} risk(s) discussed)", 6000)

    def skin_preparation(self) -> None:
        if self.controller.call("skin_preparation") is not None:
            self.statusBar().showMessage("Skin prepared with chlorhexidine 2 % in alcohol", 6000)

    def drape(self) -> None:
        if self.controller.call("drape") is not None:
            self.statusBar().showMessage("Sterile drape placed", 6000)

    def prognostic_block(self) -> None:
        self.procedure_panel.case_box.request_prognostic()

    def _prognostic(self, agent: str, concentration_pct: float, volume_ml: float) -> None:
        self.controller.stamp_event("inject")
        self.controller.inject("prognostic", agent, concentration_pct, volume_ml)

    def _case_input_ok(self) -> bool:
        """A dialog for a step only while a live attempt can take it (else say why)."""
        c = self.controller
        if c.procedure is None:
            self.statusBar().showMessage("No attempt: open a scenario first", 6000)
            return False
        if c.replaying or c.procedure.ended:
            c.call("tick")  # the controller says why (replay, ended)
            return False
        return True

    # ------------------------------------------------------------------------------------
    # a follow-up: the same patient months later
    # ------------------------------------------------------------------------------------
    def start_follow_up(self, course=None, recording=None) -> None:
        """The debrief's "Repeat in N months": a follow-up attempt on this patient with the ended
        attempt's history (`recording`, default the current attempt's) - on the library scenario
        that `follows` this one when there is one (its vignette tells the story months later), else
        on the same scenario."""
        from simulator.core.repeat import history_from_attempt

        proc, sc = self.controller.procedure, self.scenario
        if proc is None or sc is None:
            return
        rec = recording if recording is not None else proc.recording
        if course is None:
            from simulator.ui.debrief import debrief_data

            course = debrief_data(rec, sc, self.targets)[0]
        attempt_id = self.replay_info.id if self.controller.replaying and self.replay_info is not None else self.last_attempt_id
        history = history_from_attempt(rec, sc, course, attempt_id=attempt_id)
        follower = follower_of(sc.id)
        self.follow_up = {"scenario_id": follower[0] if follower else sc.id, "history": history}
        if self.score_dialog is not None:
            self.score_dialog.close()
        when = f" {history['months_before']:g} months later" if history.get("months_before") else ""
        self.statusBar().showMessage(f"Follow-up{when}: the same patient, with the history of this attempt", 10000)
        if follower is not None:
            self.open_scenario(str(follower[1]))  # its attempt starts once it is shown
        else:
            if self.controller.replaying:
                self.stop_replay()
            self.new_attempt()

    def _take_follow_up(self, scenario) -> dict | None:
        """The history for a live attempt starting now: the follow-up asked for (once), else for a
        scenario that `follows` another, the trainee's latest finished attempt of that one."""
        pending, self.follow_up = self.follow_up, None
        if pending is not None and pending["scenario_id"] == scenario.id:
            return pending["history"]
        if getattr(scenario, "follows", None):
            return self._history_from_records(scenario.follows)
        return None

    def _history_from_records(self, scenario_id: str) -> dict | None:
        st = self.store
        if st is None:
            return None
        try:
            done = [a for a in st.list_attempts(trainee=self._trainee, scenario=scenario_id)
                    if a.status in ("finished", "recovered")]
            if not done:
                return None
            from simulator.core.repeat import history_from_attempt
            from simulator.core.scenario import find_scenario, load_scenario
            from simulator.ui.debrief import debrief_data

            rec = st.load_attempt(done[-1].id)
            earlier = load_scenario(find_scenario(scenario_id))
            course = debrief_data(rec, earlier)[0]
            return history_from_attempt(rec, earlier, course, attempt_id=done[-1].id)
        except Exception as e:  # noqa: BLE001 - the follow-up still runs, from its vignette alone
            self.statusBar().showMessage(f"The earlier attempt could not be read: {e}", 10000)
            return None


def follower_of(scenario_id: str):
    """(id, path) of a library or user scenario that `follows` this one, or None."""
    from simulator.core.scenario import list_scenarios, load_scenario

    for e in list_scenarios():
        if not e.ok or e.id == scenario_id:
            continue
        try:
            if load_scenario(e.path).follows == scenario_id:
                return e.id, e.path
        except Exception:  # noqa: BLE001 - a broken file is no follower
            continue
    return None

