"""The live attempt in the main window: wiring of the `AttemptController`, starting/ending/keeping
attempts, the questions asked before an attempt is dropped, needle and procedure inputs, and the
views following the needle.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QMessageBox

from simulator.render.glyphs import diameter_for_gauge, hub_colour_for_gauge
from simulator.ui.window_scenarios import _value


FINE_MM, COARSE_MM = 1.0, 5.0  # needle steps
FINE_DEG, COARSE_DEG = 1.0, 5.0  # needle angle steps
DRAG_DEG_PER_PX = 0.2  # Ctrl+drag in the 3D view


class AttemptMixin:
    """Part of `MainWindow` (simulator.ui.main_window)."""

    def _wire_attempt(self) -> None:
        c = self.controller
        p = self.procedure_panel
        c.needle_changed.connect(self._on_needle_changed)
        c.event_added.connect(self._on_event)
        c.step_changed.connect(p.on_step_changed)
        c.behaviour_detected.connect(p.on_behaviour)
        c.behaviour_detected.connect(self._on_behaviour)
        c.spread_added.connect(p.on_spread)
        c.spread_added.connect(lambda _sp: self.fluoro_view.canvas.update())
        c.input_refused.connect(lambda msg: self.statusBar().showMessage(msg, 8000))
        c.ended.connect(self._on_ended)
        c.input_done.connect(self._on_input_done)
        self.fluoro_view.frame_shown.connect(self._on_fluoro_frame)
        self.us_view.frame_shown.connect(self._on_us_frame)
        p.local_anaesthetic_requested.connect(self.local_anaesthetic)
        p.aspirate_requested.connect(self.aspirate)
        p.inject_requested.connect(self.inject)
        p.end_requested.connect(self.end_attempt)
        p.new_requested.connect(self.new_attempt)
        self.view3d.wheel_steps.connect(self._on_wheel)
        self.view3d.needle_dragged.connect(self._on_needle_drag)
        self.fluoro_view.canvas.wheel_steps.connect(self._on_wheel)
        self.us_view.canvas.wheel_steps.connect(self._on_wheel)
        self.fluoro_view.message.connect(lambda m: self.statusBar().showMessage(m, 6000))
        self.us_view.message.connect(lambda m: self.statusBar().showMessage(m, 6000))
        self.us_view.probe_moved.connect(self._on_probe_moved)
        self._drag_timer = QTimer(self)
        self._drag_timer.setSingleShot(True)
        self._drag_timer.setInterval(30)
        self._drag_timer.timeout.connect(self._apply_drag)

    def _on_behaviour(self, behaviour, cost: str) -> None:
        from simulator.ui.behaviour_alert import behaviour_text

        self.statusBar().showMessage(behaviour_text(behaviour, cost), 10000)

    @property
    def modality(self) -> str:
        return _value(self.scenario.modality) if self.scenario is not None else ""

    def _start_attempt(self, replay_proc=None) -> None:
        """A new attempt on the current scenario and anatomy (or host a replayed one)."""
        sc, an = self.scenario, self.anatomy
        self._drop_recorder()
        self._fluoro_images = 0
        self._us_image_pending = None
        if replay_proc is None:
            if self.player is not None:
                self._close_replay()
            mode = "practice" if self.instructor_mode else "exam"
            proc = self.controller.start(sc, an, mode=mode, trainee=self._trainee, **self.attempt_clock())
            history = self._take_follow_up(sc)
            if history is not None:
                proc.recording.meta["follows"] = history  # before the first input: the live record has it
        else:
            proc = self.controller.attach_replay(replay_proc)
        self._attempt_started(proc if replay_proc is None else None)
        self._update_replay_actions()
        if self.score_dialog is not None:
            self.score_dialog.close()
            self.score_dialog = None
        self.procedure_panel.attach(proc)
        modality = self.modality
        if modality in ("fluoroscopy", "both"):
            self.fluoro_view.set_context(self.controller, sc, an, self.targets, self.instructor_mode)
            self._fill_carm_presets()
        if modality in ("ultrasound", "both"):
            self.us_view.set_context(self.controller, sc, an, self.targets)
        else:
            self.view3d.scene.hide_probe()
        self._place_needle()
        self.view3d.request_render()
        if replay_proc is None:
            self._case_on_start()

    def new_attempt(self) -> None:
        if self.scenario is None or self.anatomy is None:
            return
        if not self._settle_attempt("new"):
            return
        self._start_attempt()
        self.statusBar().showMessage("New attempt: click the skin to choose the entry point", 6000)

    def end_attempt(self):
        """End the attempt and show the score card."""
        if not self.controller.active:
            return self.controller.card
        self.fluoro_view.pedal_release()
        return self.controller.end()

    def _on_ended(self, card) -> None:
        self.procedure_panel.on_ended(card)
        self._finish_recorder(card)
        if card is None:
            return
        from simulator.ui.scorecard import ScoreCardDialog

        if self.score_dialog is not None:
            self.score_dialog.close()
        dlg = ScoreCardDialog(card, self.scenario.title if self.scenario is not None else "", self)
        if self.controller.procedure is not None and self.scenario is not None:
            from simulator.ui.debrief import attach_debrief

            deb = attach_debrief(dlg, self.controller.procedure.recording, self.scenario, self.targets)
            deb.repeat_requested.connect(self.start_follow_up)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.destroyed.connect(lambda *_: setattr(self, "score_dialog", None))
        self.score_dialog = dlg
        if not self._closing:
            dlg.show()
        self.statusBar().showMessage(card.text().splitlines()[0], 15000)

    def ask(self, key: str, text: str, choices: dict[str, str], default: str) -> str:
        """Ask the user; `choices` maps answers to button texts. `question_answer(key, text)`
        answers instead when set (tests, scripts)."""
        if self.question_answer is not None:
            answer = self.question_answer(key, text)
            return answer if answer in choices else default
        box = QMessageBox(QMessageBox.Icon.Question, "Neurolysis Trainer", text, QMessageBox.StandardButton.NoButton, self)
        buttons = {}
        roles = {"keep": QMessageBox.ButtonRole.AcceptRole, "discard": QMessageBox.ButtonRole.DestructiveRole,
                 "cancel": QMessageBox.ButtonRole.RejectRole}
        for answer, label in choices.items():
            buttons[box.addButton(label, roles.get(answer, QMessageBox.ButtonRole.ActionRole))] = answer
        box.exec()
        return buttons.get(box.clickedButton(), default)

    def ask_keep_attempt(self, why: str) -> str:
        """The question before the attempt in progress is dropped: "keep", "discard" or "cancel"
        (the user's answer), "none" when no attempt runs."""
        if not self.controller.in_progress:
            return "none"
        what = {"close": "closing the trainer", "switch": "changing the scenario", "new": "starting a new attempt",
                "replay": "replaying a recorded attempt", "editor": "opening the scenario editor"}[why]
        return self.ask("keep_attempt", f"An attempt is in progress. Keep it before {what}?\n\n"
                        "Keep: end it, score it and save its recording. Discard: drop it.",
                        {"keep": "Keep", "discard": "Discard", "cancel": "Cancel"}, "cancel")

    def _settle_attempt(self, why: str) -> bool:
        """Before the attempt is dropped: ask whether to keep it. False: the user cancelled."""
        answer = self.ask_keep_attempt(why)
        if answer == "keep":
            self.keep_attempt()
        elif answer == "discard":
            self.discard_attempt()
        return answer != "cancel"

    def keep_attempt(self) -> Path | None:
        """End (and score) the attempt if it runs, and save its recording."""
        from simulator.core.paths import user_data_dir

        proc = self.controller.procedure
        if proc is None or self.controller.replaying:
            return None
        if not proc.ended:
            self.end_attempt()
        folder = user_data_dir() / "recordings"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = folder / f"{self.scenario.id}_{stamp}_{len(self.kept_recordings) + 1}.nlrec.npz"
        try:
            saved = proc.recording.save(path)
        except (OSError, ValueError) as e:
            self.report_error("Cannot save the attempt", f"{path}: {e}")
            return None
        self.kept_recordings.append(Path(saved))
        where = f" (records: attempt {self.last_attempt_id})" if self.last_attempt_id is not None else ""
        self.statusBar().showMessage(f"Attempt saved: {saved}{where}", 10000)
        return Path(saved)

    def discard_attempt(self) -> None:
        """Drop the attempt in progress: its live record is deleted from the store."""
        rec = self.recorder
        self.recorder = None
        if rec is None:
            return
        try:
            rec.stop()
            rec.store.delete_attempt(rec.attempt_id)
        except Exception as e:  # noqa: BLE001 - the store is not essential to training
            self.report_error("Records", f"Cannot delete the discarded attempt {rec.attempt_id} from "
                                         f"{rec.store.location}: {e}")
        self.statusBar().showMessage("Attempt discarded", 6000)

    def advance(self, mm: float) -> None:
        self.controller.stamp_event("advance" if mm > 0 else "withdraw")
        if mm >= 0:
            self.controller.advance(mm)
        else:
            self.controller.withdraw(-mm)

    def withdraw_out(self) -> None:
        self.controller.stamp_event("withdraw")
        self.controller.withdraw(None)

    def camera_axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(forward, right, up) of the 3D camera, unit vectors (world)."""
        cam = self.view3d.scene.renderer.GetActiveCamera()
        f = np.asarray(cam.GetFocalPoint(), float) - np.asarray(cam.GetPosition(), float)
        f /= np.linalg.norm(f)
        up = np.asarray(cam.GetViewUp(), float)
        up = up - (up @ f) * f
        up /= np.linalg.norm(up)
        return f, np.cross(f, up), up

    def steer(self, direction: str, degrees: float) -> None:
        """Angle the needle so its tip moves `direction` (left/right/up/down) on the 3D view."""
        _, right, up = self.camera_axes()
        axis, sign = {"left": (up, 1.0), "right": (up, -1.0), "up": (right, 1.0), "down": (right, -1.0)}[direction]
        self.controller.stamp_event("steer")
        self.controller.steer(axis, sign * degrees)

    def _on_needle_drag(self, dx: float, dy: float) -> None:
        self._drag += (dx, dy)
        if not self._drag_timer.isActive():
            self._drag_timer.start()

    def _apply_drag(self) -> None:
        dx, dy = self._drag
        self._drag = np.zeros(2)
        if self.controller.state is None or (dx == 0 and dy == 0):
            return
        _, right, up = self.camera_axes()
        from simulator.core.geometry import rotate

        d = rotate(self.controller.state.axis, up, -dx * DRAG_DEG_PER_PX)
        d = rotate(d, right, -dy * DRAG_DEG_PER_PX)
        self.controller.stamp_event("steer")
        self.controller.set_direction(d)

    def _on_wheel(self, steps: float, modifiers) -> None:
        coarse = bool(modifiers & Qt.KeyboardModifier.ShiftModifier)
        self.advance(steps * (COARSE_MM if coarse else FINE_MM))

    def local_anaesthetic(self, volume_ml: float) -> None:
        if self.controller.local_anaesthetic(volume_ml) is not None:
            self.statusBar().showMessage(f"Local anaesthetic: {volume_ml:g} ml lidocaine 1 % at the entry point", 6000)

    def aspirate(self) -> None:
        self.controller.stamp_event("aspirate")
        self.controller.aspirate()

    def inject(self, kind: str, agent: str, concentration_pct: float, volume_ml: float) -> None:
        self.controller.stamp_event("inject")
        self.controller.inject(kind, agent, concentration_pct, volume_ml, air_ml=self.procedure_panel.air_ml())

    def _on_needle_changed(self, state) -> None:
        if self.player is not None and self.player.seeking:  # the views follow once the seek is done
            self.procedure_panel.on_needle_changed(state)
            return
        self._views_follow_needle(state)
        self.procedure_panel.on_needle_changed(state)

    def _views_follow_needle(self, state) -> None:
        self._show_needle(state)
        self.fluoro_view.note_needle(state)
        if self.modality in ("ultrasound", "both"):
            self.us_view.note_needle(state)

    def _show_needle(self, state) -> None:
        sc = self.scenario
        self.view3d.scene.set_needle(state.needle_tip_to_world, length_mm=sc.needle.length_mm,
                                     diameter_mm=diameter_for_gauge(sc.needle.gauge),
                                     hub_colour=hub_colour_for_gauge(sc.needle.gauge))
        self.view3d.request_render(interactive=True)

    def _on_event(self, ev) -> None:
        self.procedure_panel.on_event(ev)
        from simulator.core.events import HARMFUL, EventKind

        if ev.kind == EventKind.injection and self.recorder is not None:
            self._keep_ultrasound_image(f"ultrasound_{ev.data.get('kind', 'injection')}_{ev.time_s:.0f}s")

        if self.instructor_mode and ev.kind in HARMFUL:
            self.statusBar().showMessage(ev.message, 10000)

    def _on_probe_moved(self, pose) -> None:
        spec = self.us_view.spec
        if spec is None or self.modality not in ("ultrasound", "both"):
            return
        self.view3d.scene.set_probe(pose.probe_to_world(), spec.aperture_mm, float(self.us_view.depth_spin.value()),
                                    spec.radius_mm, spec.sector_deg, spec.face_elevation_mm)
        self.view3d.scene.set_probe_plane_visible(self.instructor_mode)
        self.view3d.request_render(interactive=True)
