"""Scenario loading for the main window: the library, opening a scenario by id or file (errors
naming the file and field), its anatomy loaded off the GUI thread, then shown with its targets.
"""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from simulator.render.camera import default_preset


def _value(x) -> str:
    return str(getattr(x, "value", x))



def resolve_targets(scenario, anatomy) -> list:
    """The scenario's targets with their points (their own, else the anatomy's proposal), as
    the scoring sees them (`simulator.core.metrics.resolve_targets`). A target that cannot be
    resolved is left out (and named in the returned list's `unresolved`)."""
    from simulator.core.metrics import resolve_targets as resolve

    try:
        return _Targets(resolve(scenario, anatomy))
    except ValueError:
        pass
    out = _Targets()
    for t in scenario.targets:
        one = scenario.model_copy(update={"targets": [t]})
        try:
            out.extend(resolve(one, anatomy))
        except ValueError:
            out.unresolved.append(t.id)
    return out



class _Targets(list):
    def __init__(self, items=()):
        super().__init__(items)
        self.unresolved: list[str] = []



class ScenarioLoadingMixin:
    """Part of `MainWindow` (simulator.ui.main_window)."""

    def refresh_scenarios(self) -> None:
        from simulator.core.patients import available_patients
        from simulator.core.scenario import list_scenarios

        try:
            entries = list_scenarios()
        except Exception as e:  # noqa: BLE001 - the window must open even with a broken library
            entries = []
            self.report_error("Scenario library", f"Could not list the scenarios: {e}")
        self.scenario_panel.set_entries(entries, available_patients())
        if self.scenario_path:
            self.scenario_panel.select_path(self.scenario_path)

    def open_scenario_dialog(self) -> None:
        from simulator.core.paths import SCENARIOS_DIR

        start = str(Path(self.scenario_path).parent) if self.scenario_path else str(SCENARIOS_DIR)
        path, _ = QFileDialog.getOpenFileName(self, "Open scenario", start, "Scenario files (*.yaml *.yml)")
        if path:
            self.open_scenario(path)

    def reload_scenario(self) -> None:
        if self.scenario_path:
            self.open_scenario(self.scenario_path)

    def open_on_patient(self, patient: str) -> bool:
        """The current scenario again, on `patient` (the picker's patient choice)."""
        path = self.scenario_path
        return bool(path) and self.open_scenario(path, patient=patient)

    def open_scenario(self, id_or_path: str, patient: str | None = None) -> bool:
        """Open a scenario by id or file, on its own patient or on `patient` (an anatomy reference:
        the scenario is fitted to it, `simulator.core.fitting`). On error: a message naming the
        file and field (or the structures the patient lacks); the current scenario stays. Returns
        True when the scenario was read (its anatomy may still be loading)."""
        if self._closing:
            return False
        from simulator.core.scenario import ScenarioError, find_scenario, load_scenario

        if not self._settle_attempt("switch"):
            self.scenario_panel.select_path(self.scenario_path)
            return False
        self._replay_request = None
        try:
            path = find_scenario(id_or_path)
            scenario = load_scenario(path)
        except ScenarioError as e:
            self.report_error("Scenario file has an error", str(e))
            self.scenario_panel.select_path(self.scenario_path)
            return False
        except (FileNotFoundError, LookupError, ValueError, OSError) as e:
            self.report_error("Cannot open scenario", f"{id_or_path}: {e}")
            self.scenario_panel.select_path(self.scenario_path)
            return False
        path = str(path)
        if self.scenario_panel.row_of(path) < 0:  # opened from elsewhere: list it
            self.refresh_scenarios()
        self.scenario_panel.select_path(path)
        ref = patient or scenario.anatomy
        if ref != scenario.anatomy and not self._can_host(scenario, path, ref):
            self.scenario_panel.select_path(self.scenario_path)
            return False
        self._show_when_loaded(scenario, path, ref)
        return True

    def _show_when_loaded(self, scenario, path: str, patient: str | None = None) -> None:
        """Show `scenario` (on `patient`, default its own) now if the patient's anatomy is loaded,
        else once it is (progress in the status bar)."""
        ref = patient or scenario.anatomy
        self._pending = (scenario, path)
        self._pending_patient = (scenario, ref)
        if ref in self.loader.cache:
            self._show_on(scenario, path, ref, self.loader.cache[ref])
        else:
            self.statusBar().showMessage(f"Loading anatomy {ref}\u2026")
            self.progress_bar.setValue(0)
            self.progress_bar.setFormat(f"{ref} %p%")
            self.progress_bar.show()
            self.loader.request(ref)

    def _can_host(self, scenario, path: str, ref: str) -> bool:
        """Refuse, naming what is missing, a patient that cannot host the scenario."""
        from simulator.core.fitting import host_check

        info = {p.ref: p for p in self.scenario_panel.patients}.get(ref)
        if info is None:
            self.report_error("Cannot run the scenario on this patient",
                              f"{path}: patient {ref!r} is not set up (python main.py setup-data, or import-anatomy)")
            return False
        check = host_check(scenario, ref, info.names)
        if not check.ok:
            self.report_error("Cannot run the scenario on this patient",
                              f"{path}: scenario {scenario.id!r} cannot run on patient {ref!r}: {check.summary}")
        return check.ok

    def _target_patient(self, scenario) -> str:
        pending = getattr(self, "_pending_patient", None)
        return pending[1] if pending is not None and pending[0] is scenario else scenario.anatomy

    def _show_on(self, scenario, path: str, ref: str, anatomy) -> None:
        """Show `scenario` on the patient `ref` (fitted to it when it is not its own)."""
        from simulator.core.fitting import NotHostable, fit_scenario

        self.scenario_written = scenario
        if ref != scenario.anatomy:
            self.statusBar().showMessage(f"Placing the scenario's targets and needles on {ref}\u2026")
            try:
                scenario = fit_scenario(scenario, anatomy, ref)
            except NotHostable as e:
                self._pending = None
                self.report_error("Cannot run the scenario on this patient", f"{path}: {e}")
                self.scenario_panel.select_path(self.scenario_path)
                return
        self._show(scenario, path, anatomy)

    def _on_progress(self, fraction: float, message: str) -> None:
        if self._closing:
            return
        self.progress_bar.show()
        self.progress_bar.setValue(int(round(1000 * min(max(fraction, 0.0), 1.0))))
        if message:
            self.statusBar().showMessage(f"Loading anatomy: {message}")

    def _load_finished(self) -> None:
        """No anatomy loads any more (whoever asked: a scenario, the editor, a recovery): no progress shown."""
        if self.loader.is_loading():
            return
        self.progress_bar.hide()
        if self.statusBar().currentMessage().startswith("Loading anatomy"):
            self.statusBar().clearMessage()

    def _on_anatomy_loaded(self, ref: str, anatomy) -> None:
        if self._closing:
            return
        self._load_finished()
        for attempt_id in self._recover_queue.pop(ref, []):  # recoveries waiting for this anatomy
            self.recover_attempt(attempt_id)
        if self._pending is None:
            return
        scenario, path = self._pending
        target = self._target_patient(scenario)
        if target != ref:
            return  # an older request; it stays cached
        self._show_on(scenario, path, ref, anatomy)

    def _on_anatomy_failed(self, ref: str, message: str) -> None:
        if self._closing:
            return
        self._load_finished()
        for attempt_id in self._recover_queue.pop(ref, []):
            self.report_error("Cannot recover the attempt", f"attempt {attempt_id}: its anatomy {ref!r}: {message}")
        pending = self._pending
        if pending is None or self._target_patient(pending[0]) != ref:
            return
        self._pending = None
        self.progress_bar.hide()
        self.report_error(
            "Cannot load the anatomy",
            f"Scenario {pending[1]}: field 'anatomy': {ref!r} could not be loaded:\n{message}",
        )
        self.scenario_panel.select_path(self.scenario_path)

    def _show(self, scenario, path: str, anatomy) -> None:
        """Make `scenario` current with its anatomy (GUI thread)."""
        self._pending = None
        self.progress_bar.hide()
        self.scenario = scenario
        self.scenario_path = path
        self.scenario_panel.select_path(path)
        written = getattr(self, "scenario_written", None)
        self.scenario_panel.show_scenario(scenario, written if written is not None and written.id == scenario.id else None)
        self.procedure_panel.show_scenario(scenario, self.instructor_mode)
        self.setWindowTitle(f"Neurolysis Trainer \u2014 {scenario.title}")
        self._arrange_views(_value(scenario.modality))
        scene = self.view3d.scene
        if anatomy is not self.anatomy:
            scene.set_exam_view(False)
            self.view3d.set_anatomy(anatomy, scenario.patient_position)
            self.anatomy = anatomy
            self._rebuild_group_controls()
        else:
            scene.patient_position = _value(scenario.patient_position)
        self.anatomy_ref = scenario.anatomy
        self.targets = resolve_targets(scenario, anatomy)
        if self.targets.unresolved:
            self.statusBar().showMessage(
                f"No points for target(s) {', '.join(self.targets.unresolved)} on this anatomy", 10000)
        self.view3d.pick_structures = ["skin"] if "skin" in scene.structures else None
        self._start_attempt()
        self._apply_exam_view()
        self._apply_overlays()
        self._place_needle()
        self.set_camera_preset(default_preset(scenario.patient_position))
        n_tri = scene.triangle_count()
        self.anatomy_label.setText(f"{scenario.anatomy}: {len(scene.structures)} surfaces, {n_tri / 1000:.0f}k triangles")
        self.statusBar().showMessage(f"Scenario: {scenario.title}", 5000)
        if self.startup_s is None:
            self.startup_s = time.perf_counter() - self._t_start
        self.scenario_changed.emit(scenario)
        self.anatomy_shown.emit(scenario.anatomy)
        if self._replay_request is not None and self._replay_request[2] is scenario:
            self._begin_replay()

    def _arrange_views(self, modality: str) -> None:
        """Fluoroscopy, ultrasound or both beside the 3D view."""
        self.fluoroscopy_pane.setVisible(modality in ("fluoroscopy", "both"))
        self.ultrasound_pane.setVisible(modality in ("ultrasound", "both"))
