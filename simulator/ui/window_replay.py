"""Replay of a stored attempt in the main window: choosing it, the timeline, the views following the
recorded inputs, seeks, rescoring and leaving the replay.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt



class ReplayMixin:
    """Part of `MainWindow` (simulator.ui.main_window)."""

    def replay_attempt_dialog(self) -> None:
        """Records > Replay attempt: a list of the stored attempts to choose from."""
        st = self.store
        if st is None:
            return
        from simulator.ui.replay import AttemptPicker

        if self.attempt_picker is not None:
            self.attempt_picker.close()
        dlg = AttemptPicker(st, parent=self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.accepted.connect(lambda: dlg.chosen is not None and self.replay_attempt(dlg.chosen))
        dlg.destroyed.connect(lambda *_: setattr(self, "attempt_picker", None))
        self.attempt_picker = dlg
        dlg.open()

    def replay_last_attempt(self) -> None:
        if self.last_attempt_id is None:
            self.statusBar().showMessage("No attempt stored in this session yet (Records > Replay attempt)", 6000)
            return
        self.replay_attempt(self.last_attempt_id)

    def replay_attempt(self, attempt_id: int) -> bool:
        """Replay a stored attempt: its scenario (the version it was recorded on) and anatomy, then
        the timeline. False if it cannot be replayed (reported) or the user cancelled."""
        st = self.store
        if st is None or self._closing:
            return False
        if not self._settle_attempt("replay"):
            return False
        from simulator.core.scenario import find_scenario
        from simulator.records.rescore import scenario_for

        try:
            info = st.attempt(int(attempt_id))
            rec = st.load_attempt(info.id)
            sc, notes = scenario_for(st, info)
        except Exception as e:  # noqa: BLE001
            self.report_error("Cannot replay the attempt", f"attempt {attempt_id}: {e}")
            return False
        if not rec.inputs:
            self.report_error("Cannot replay the attempt", f"attempt {info.id} has no recorded inputs")
            return False
        try:
            path = str(find_scenario(sc.id))
        except Exception:  # noqa: BLE001 - a scenario only the store knows
            path = ""
        self._replay_request = (info, rec, sc, st.score_card(info.id), notes)
        self._show_when_loaded(sc, path)
        return True

    def _begin_replay(self) -> None:
        from simulator.core.recording import anatomy_hash
        from simulator.ui.replay import ReplayPlayer, TimelineDock, fmt_clock

        info, rec, sc, card, notes = self._replay_request
        self._replay_request = None
        if self.timeline is None:
            self.timeline = TimelineDock(self)
            self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.timeline)
            self.timeline.rescore_requested.connect(self.rescore_replay)
            self.timeline.stop_requested.connect(self.stop_replay)
        player = ReplayPlayer(rec, sc, self.anatomy, attempt_id=info.id, stored_card=card, parent=self)
        player.rebuilt.connect(self._on_replay_rebuilt)
        player.input_applied.connect(self._on_replay_input)
        player.seek_started.connect(self._on_replay_seek_started)
        player.seek_done.connect(self._on_replay_seek_done)
        player.position_changed.connect(self._on_replay_position)
        player.failed.connect(lambda m: self.report_error("Replay", m))
        self.player = player
        self.replay_info = info
        self.replay_card = None
        self.replay_identical = None
        score = "" if info.score is None else f", score {info.score:.1f}"
        self.timeline.set_player(player, f"<b>Replay</b> of attempt {info.id}: {info.trainee}, "
                                         f"{info.scenario_title or info.scenario_id}, "
                                         f"{info.started_at[:16].replace('T', ' ')}{score} "
                                         f"({fmt_clock(player.duration_s)})")
        self.timeline.show()
        self._show_course(rec, sc)
        player.start()
        self.setWindowTitle(f"Neurolysis Trainer \u2014 replay of attempt {info.id}")
        if rec.anatomy_hash and rec.anatomy_hash != anatomy_hash(self.anatomy):
            notes = [*notes, f"recorded on another build of anatomy {rec.anatomy_ref!r}"]
        self.statusBar().showMessage("Replay: play (P), scrub with the slider; inputs are off"
                                     + (f" ({'; '.join(notes)})" if notes else ""), 10000)
        self._update_replay_actions()

    def _show_course(self, rec, sc) -> None:
        """The patient's course after the replayed attempt (the whole stored recording), in a dock
        tabbed with the Procedure dock."""
        from simulator.ui.course_dock import CourseDock

        if self.course_dock is None:
            self.course_dock = CourseDock(self)
            self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.course_dock)
            self.tabifyDockWidget(self.right_dock, self.course_dock)
            self.course_dock.repeat_requested.connect(
                lambda course: self.start_follow_up(course, recording=self.course_dock.recording))
        self.course_dock.show_attempt(rec, sc)
        self.course_dock.show()
        self.right_dock.raise_()

    def _on_replay_rebuilt(self, proc) -> None:
        if not self.controller.replaying:  # the first build: the views take the replayed attempt
            self._start_attempt(replay_proc=proc)
        else:  # a seek backwards: the same views, a fresh procedure
            self.controller.attach_replay(proc)
            self.procedure_panel.attach(proc)
            self.procedure_panel.status.setText("Replay")
            self._place_needle()
        self.controller.replay_time_s = 0.0

    def _on_replay_input(self, inp) -> None:
        if self.player is None or self.player.seeking:
            return
        self.controller.replay_time_s = inp.time_s
        self._replay_imaging(inp)

    def _replay_imaging(self, inp) -> None:
        """The imaging views follow the recorded probe, C-arm and exposures."""
        name, a = inp.name, inp.args
        probe = a.get("matrix") if name == "set_probe_to_world" else a.get("probe_to_world") if name == "set_tracked_pose" else None
        if probe is not None and self.modality in ("ultrasound", "both"):
            from simulator.core.probe import ProbePose

            self.us_view.set_pose(ProbePose.from_matrix(np.asarray(probe, float)), tracked=name == "set_tracked_pose")
        elif name == "set_carm_pose" and self.modality in ("fluoroscopy", "both"):
            self.fluoro_view.set_angles(float(a["lao_deg"]), float(a["cranial_deg"]), exact=True)
        elif name == "record_fluoro_shot" and self.modality in ("fluoroscopy", "both"):
            if a.get("lao_deg") is not None and a.get("cranial_deg") is not None:
                self.fluoro_view.set_angles(float(a["lao_deg"]), float(a["cranial_deg"]), exact=True)
            self.fluoro_view.single_shot()

    def _on_replay_seek_started(self, proc) -> None:
        """While seeking, the procedure panel takes the plots' data and the events directly; the
        views and the labels follow once, at the end."""
        self.controller.detach_signals()
        panel = self.procedure_panel
        proc.needle_changed.subscribe(panel.note_series)
        proc.event_added.subscribe(panel.on_event)
        proc.spread_added.subscribe(panel.on_spread)

    def _on_replay_seek_done(self, proc) -> None:
        panel = self.procedure_panel
        proc.needle_changed.unsubscribe(panel.note_series)
        proc.event_added.unsubscribe(panel.on_event)
        proc.spread_added.unsubscribe(panel.on_spread)
        self.controller.reattach_signals()
        p = self.player
        self.controller.replay_time_s = p.time_s
        applied = p.inputs[:p.index]
        last_probe = next((i for i in reversed(applied) if i.name == "set_probe_to_world" or (
            i.name == "set_tracked_pose" and i.args.get("probe_to_world") is not None)), None)
        last_carm = next((i for i in reversed(applied) if i.name == "set_carm_pose"), None)
        for last in (last_probe, last_carm):
            if last is not None:
                self._replay_imaging(last)
        self._replay_last_shot(proc, applied)
        st = proc.state
        if st is not None:
            self._views_follow_needle(st)
            panel.show_state(st)
        else:
            self._place_needle()
        panel._fill_steps()
        panel._schedule_plots()
        self.fluoro_view.canvas.update()
        self.view3d.request_render()

    def _replay_last_shot(self, proc, applied) -> None:
        """After a jump: the fluoroscopy screen holds the last image taken before that moment (its
        C-arm angles, the needle where it was then), as the trainee saw it."""
        if self.modality not in ("fluoroscopy", "both"):
            return
        shot = next((i for i in reversed(applied) if i.name == "record_fluoro_shot"), None)
        if shot is None:
            return
        a = shot.args
        if a.get("lao_deg") is not None and a.get("cranial_deg") is not None:
            self.fluoro_view.set_angles(float(a["lao_deg"]), float(a["cranial_deg"]), exact=True)
        samples = proc.recording.samples
        k = int(np.searchsorted(samples.time_s, shot.time_s, side="right")) - 1
        self.fluoro_view.single_shot(samples.needle_tip_to_world[k] if k >= 0 else None)

    def _on_replay_position(self, t: float) -> None:
        self.controller.replay_time_s = float(t)

    def rescore_replay(self):
        """Score the replayed attempt (to its end) and show the card beside the stored score."""
        p = self.player
        if p is None or p.procedure is None:
            return None
        if not p.at_end:
            p.seek(p.duration_s)
        from simulator.core.scoring import score_attempt
        from simulator.ui.replay import canonical_card
        from simulator.ui.scorecard import ScoreCardDialog

        try:
            card = score_attempt(p.procedure.recording, p.scenario, p.anatomy)
        except Exception as e:  # noqa: BLE001
            self.report_error("Rescore", f"attempt {p.attempt_id}: the score could not be computed: {e}")
            return None
        self.replay_card = card
        stored = p.stored_card
        self.replay_identical = stored is not None and canonical_card(card) == canonical_card(stored)
        if stored is None:
            note = "No stored score to compare with."
        elif self.replay_identical:
            note = f"Identical to the stored score card ({stored.get('score'):.1f}), to the last digit."
        else:
            note = f"Differs from the stored score card (stored {stored.get('score')}, now {card.score})."
        if self.score_dialog is not None:
            self.score_dialog.close()
        dlg = ScoreCardDialog(card, f"Rescored: {p.scenario.title}", self, note=note)
        if self.timeline is not None:  # a behaviour double-clicked on the card: the replay jumps there
            dlg.jump_requested.connect(lambda t: self.timeline.jump_to_ms(int(round(t * 1000))))
        from simulator.ui.debrief import attach_debrief

        attach_debrief(dlg, p.procedure.recording, p.scenario).repeat_requested.connect(self.start_follow_up)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.destroyed.connect(lambda *_: setattr(self, "score_dialog", None))
        self.score_dialog = dlg
        dlg.show()
        return card

    def stop_replay(self) -> None:
        """Leave the replay: a new live attempt on the same scenario."""
        if self.player is None:
            return
        self._close_replay()
        if self.scenario is not None and self.anatomy is not None:
            self._start_attempt()
            self.setWindowTitle(f"Neurolysis Trainer \u2014 {self.scenario.title}")
        self.statusBar().showMessage("Replay stopped: a new attempt", 6000)

    def _close_replay(self) -> None:
        p, self.player = self.player, None
        if p is not None:
            p.stop()
            p.deleteLater()
        if self.timeline is not None:
            self.timeline.player = None
            self.timeline.hide()
        if self.course_dock is not None:
            self.course_dock.clear()
            self.course_dock.hide()
        self.controller.stop()
        self._update_replay_actions()

    def _update_replay_actions(self) -> None:
        on = self.player is not None
        for a in (self.act_play, self.act_replay_start, self.act_replay_faster, self.act_replay_slower,
                  self.act_stop_replay):
            a.setEnabled(on)

    def _replay_toggle(self) -> None:
        if self.player is not None:
            self.player.toggle()

    def _replay_to_start(self) -> None:
        if self.player is not None:
            self.player.pause()
            self.player.seek(0.0)

    def _replay_speed_step(self, step: int) -> None:
        if self.player is None or self.timeline is None:
            return
        combo = self.timeline.speed_combo
        combo.setCurrentIndex(min(max(combo.currentIndex() + step, 0), combo.count() - 1))
