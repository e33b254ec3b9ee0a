"""Records for the main window: the record store, the trainee, the live recorder (and the key
images it keeps for the report), recovery of attempts a crash interrupted, and the history window.
"""
from __future__ import annotations

import getpass

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QInputDialog



def default_trainee() -> str:
    """The OS user name (the trainee until one is chosen)."""
    try:
        return getpass.getuser() or "trainee"
    except (KeyError, OSError):
        return "trainee"



def png_bytes(image) -> bytes:
    """PNG bytes of an 8-bit greyscale (H, W) or RGB (H, W, 3) image."""
    from PySide6.QtCore import QBuffer, QIODevice
    from PySide6.QtGui import QImage

    arr = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = arr.shape[:2]
    if arr.ndim == 2:
        img = QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_Grayscale8)
    else:
        arr = np.ascontiguousarray(arr[..., :3])
        img = QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_RGB888)
    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    img.save(buf, "PNG")
    return bytes(buf.data())



class RecordsMixin:
    """Part of `MainWindow` (simulator.ui.main_window)."""

    @property
    def store(self):
        """The record store (opened on first use); None if it cannot be opened (reported once)."""
        if self._store is None and not self._store_failed:
            from simulator.records import open_store

            try:
                self._store = open_store()
            except Exception as e:  # noqa: BLE001 - training goes on without records
                self._store_failed = True
                self.report_error("Records", f"Cannot open the record store: {e}\n"
                                             "Attempts are not recorded in this session.")
            self.start_centre()  # a centre's sync and live feed, when one is set
        return self._store

    @property
    def trainee(self) -> str:
        return self._trainee

    def set_trainee(self, name: str) -> bool:
        """Who is training (remembered in the settings); the attempt not yet stored becomes theirs."""
        name = " ".join(str(name or "").split())
        if not name:
            self.statusBar().showMessage("A trainee needs a name", 6000)
            return False
        self._trainee = name
        self.settings.setValue("trainee", name)
        self.trainee_label.setText(f"Trainee: {name}")
        proc = self.controller.procedure
        if proc is not None and self.recorder is None and not self.controller.replaying and not proc.ended:
            proc.recording.trainee = name
        if self.history_window is not None:
            self.history_window.set_trainee(name)
        self.statusBar().showMessage(f"Trainee: {name}", 5000)
        return True

    def choose_trainee(self) -> None:
        """File > Trainee: pick a known trainee or type a new name."""
        if self.question_answer is not None:
            answer = self.question_answer("trainee", "Who is training?")
            if isinstance(answer, str) and answer not in ("", "cancel"):
                self.set_trainee(answer)
            return
        names = []
        st = self.store
        if st is not None:
            try:
                names = [t.name for t in st.list_trainees()]
            except Exception:  # noqa: BLE001 - the list is a convenience
                names = []
        if self._trainee not in names:
            names.insert(0, self._trainee)
        name, ok = QInputDialog.getItem(self, "Trainee", "Who is training? (attempts are stored under this name)",
                                        names, names.index(self._trainee), True)
        if ok:
            self.set_trainee(name)

    def choose_path(self, key: str, title: str, filters: str, save: bool = True, suggested: str = "") -> str | None:
        """A file name from the user (`path_answer(key, title)` answers instead when set)."""
        if self.path_answer is not None:
            answer = self.path_answer(key, title)
            return str(answer) if answer else None
        fn = QFileDialog.getSaveFileName if save else QFileDialog.getOpenFileName
        path, _ = fn(self, title, suggested, filters)
        return path or None

    def _on_input_done(self, _stamp) -> None:
        if self.recorder is None and self.controller.in_progress:
            self._start_recorder()

    def _start_recorder(self) -> None:
        st = self.store
        proc = self.controller.procedure
        if st is None or proc is None:
            return
        from simulator.records import LiveRecorder

        try:
            rec = LiveRecorder(st, proc, scenario=self.scenario, trainee=self._trainee)
            rec.start()
        except Exception as e:  # noqa: BLE001 - training goes on without records
            self.report_error("Records", f"Cannot record the attempt in {st.location}: {e}")
            return
        self.recorder = rec

    def _finish_recorder(self, card, status: str = "finished"):
        rec = self.recorder
        self.recorder = None
        if rec is None:
            return None
        try:
            info = rec.finish(card, status=status)
        except Exception as e:  # noqa: BLE001
            self.report_error("Records", f"Cannot store attempt {rec.attempt_id} in {rec.store.location}: {e}")
            return None
        self.last_attempt_id = info.id
        self.centre_attempt_closed()
        if self.history_window is not None:
            self.history_window.refresh()
        return info

    def _drop_recorder(self) -> None:
        """The attempt is replaced without being settled (nothing was asked): drop its record."""
        if self.recorder is not None:
            self.discard_attempt()

    def _on_fluoro_frame(self, res: dict) -> None:
        """Fluoroscopy shots are key images of the attempt's report."""
        if self.recorder is None or res.get("kind") != "shot" or res.get("frame") is None:
            return
        self._fluoro_images += 1
        try:
            self.recorder.add_image(f"fluoro_{self._fluoro_images:02d}", png_bytes(res["frame"].image))
        except Exception as e:  # noqa: BLE001 - an image less in the report
            self.statusBar().showMessage(f"The fluoroscopy image was not kept for the report: {e}", 6000)

    def _keep_ultrasound_image(self, name: str) -> None:
        """The ultrasound frame at an injection: the one on screen now, replaced by the next one
        (which shows the state after the injection)."""
        if self.modality not in ("ultrasound", "both"):
            return
        res = self.us_view.last_result
        if res is not None:
            self._add_us_image(name, res)
        # the next frame submitted from now on (one already in flight shows the state before)
        self._us_image_pending = (name, self.us_view.frames_requested)
        self.us_view.request_frame()

    def _on_us_frame(self, res: dict) -> None:
        pending = self._us_image_pending
        if pending is None or res.get("req", 0) <= pending[1]:
            return
        self._us_image_pending = None
        if self.recorder is not None:
            self._add_us_image(pending[0], res)

    def _add_us_image(self, name: str, res: dict) -> None:
        try:
            self.recorder.add_image(name, png_bytes(res["image"]))
        except Exception as e:  # noqa: BLE001 - an image less in the report
            self.statusBar().showMessage(f"The ultrasound image was not kept for the report: {e}", 6000)

    def offer_recovery(self) -> list[int]:
        """Attempts a crash left "live" in the store: ask whether to recover them (replayed,
        ended, scored and kept as "recovered"), delete them or ask again at the next start.
        Returns the ids recovered or deleted."""
        st = self.store
        if st is None or self._closing:
            return []
        try:
            orphans = st.recoverable_attempts()
        except Exception as e:  # noqa: BLE001
            self.report_error("Records", f"Cannot look for interrupted attempts in {st.location}: {e}")
            return []
        if not orphans:
            return []
        lines = [f"\u2022 {a.trainee}: {a.scenario_title or a.scenario_id}, started "
                 f"{a.started_at[:16].replace('T', ' ')} ({a.n_inputs} inputs)" for a in orphans[:8]]
        what = "an attempt" if len(orphans) == 1 else f"{len(orphans)} attempts"
        text = (f"The trainer stopped while recording {what}:\n" + "\n".join(lines) + "\n\n"
                "Recover: replay what was recorded (all but at most the last second), end and score it, and keep "
                "it in the records. Delete: remove it. Later: ask again at the next start.")
        answer = self.ask("recover_attempt", text, {"recover": "Recover", "delete": "Delete", "later": "Later"}, "later")
        done = []
        for a in orphans:
            if answer == "recover":
                if self.recover_attempt(a.id) is not None:
                    done.append(a.id)
            elif answer == "delete":
                try:
                    st.delete_attempt(a.id)
                    done.append(a.id)
                except Exception as e:  # noqa: BLE001
                    self.report_error("Records", f"Cannot delete attempt {a.id}: {e}")
        if done and self.history_window is not None:
            self.history_window.refresh()
        return done

    def recover_attempt(self, attempt_id: int):
        """Rebuild an interrupted attempt from its record, end it, score it, keep it ("recovered")."""
        from simulator.core.procedure import replay
        from simulator.core.scoring import score_attempt
        from simulator.records import LiveRecorder
        from simulator.records.rescore import anatomy_for, scenario_for

        st = self.store
        try:
            info = st.attempt(attempt_id)
            rec = st.load_attempt(attempt_id)
            sc, _notes = scenario_for(st, info)
            ref = sc.anatomy
            if ref not in self.loader.cache:
                # an anatomy takes seconds to load: off the GUI thread, the recovery follows it
                self._recover_queue.setdefault(ref, []).append(int(attempt_id))
                self.loader.request(ref)
                self.statusBar().showMessage(f"Recovering attempt {attempt_id} once its anatomy ({ref}) is loaded\u2026")
                return info
            self.statusBar().showMessage(f"Recovering attempt {attempt_id}\u2026")
            an = self.loader.cache[ref] if ref in self.loader.cache else anatomy_for(ref)
            proc = replay(rec, sc, an, silent=True)
            recorder = LiveRecorder.resume(st, proc, attempt_id, thread=False)
            if not proc.ended:
                proc.end()
            card = score_attempt(proc.recording, sc, an)
            done = recorder.finish(card, status="recovered")
        except Exception as e:  # noqa: BLE001 - reported by name, the others go on
            self.report_error("Cannot recover the attempt", f"attempt {attempt_id}: {e}")
            return None
        self.last_attempt_id = done.id
        self.statusBar().showMessage(f"Recovered attempt {done.id} ({done.scenario_title}): score {card.score:.1f}",
                                     10000)
        return done

    def show_history(self, overview: bool = False):
        st = self.store
        if st is None:
            return None
        from simulator.ui.history import HistoryWindow

        if self.history_window is None:
            hw = HistoryWindow(st, trainee=self._trainee, parent=self, choose_path=self.choose_path)
            hw.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            hw.replay_requested.connect(self.replay_attempt)
            hw.destroyed.connect(lambda *_: setattr(self, "history_window", None))
            self.history_window = hw
        hw = self.history_window
        hw.refresh()
        hw.show_tab("overview" if overview else "trainee")
        hw.show()
        hw.raise_()
        return hw
