"""The main window's display controls: structure groups, camera presets, instructor/exam mode and
the overlays (targets, plan, critical structures), the waiting needle, surface picks.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtGui import QAction, QKeySequence

from simulator.render.camera import default_preset
from simulator.core.geometry import pose_from_tip_axis
from simulator.render.glyphs import diameter_for_gauge, hub_colour_for_gauge


NEEDLE_STANDOFF_MM = 10.0  # the needle waits this far outside the planned entry point


def _trajectories(scenario) -> list:
    paths = getattr(scenario, "trajectories", None)
    if paths is None:
        paths = [scenario.planned_trajectory] if scenario.planned_trajectory is not None else []
    return list(paths)



class DisplayMixin:
    """Part of `MainWindow` (simulator.ui.main_window)."""

    def _rebuild_group_controls(self) -> None:
        scene = self.view3d.scene
        groups = scene.groups()
        visible = {g: scene.group_visible(g) for g in groups}
        opacity = {g: scene.group_opacity(g) for g in groups}
        counts = {g: len(scene.group_structures(g)) for g in groups}
        self.display_panel.set_groups(groups, visible, opacity, counts)
        for a in self.group_actions.values():  # the old anatomy's groups: their shortcuts go too
            self.removeAction(a)
        self.groups_menu.clear()
        self.group_actions.clear()
        for i, g in enumerate(groups):
            a = QAction(g.capitalize(), self)
            a.setCheckable(True)
            a.setChecked(visible[g])
            if i < 9:
                a.setShortcut(QKeySequence(f"Ctrl+{i + 1}"))
            a.toggled.connect(lambda on, gg=g: self.set_group_visible(gg, on))
            self.groups_menu.addAction(a)
            self.addAction(a)
            self.group_actions[g] = a

    def set_group_visible(self, group: str, visible: bool) -> None:
        """Through the panel's checkbox, so the panel, the menu and the scene agree."""
        cb = self.display_panel.group_checks.get(group)
        if cb is not None and cb.isChecked() != visible:
            cb.setChecked(visible)  # emits -> _on_group_visibility
        else:
            self._on_group_visibility(group, visible)

    def _on_group_visibility(self, group: str, visible: bool) -> None:
        self.view3d.scene.set_group_visible(group, visible)
        a = self.group_actions.get(group)
        if a is not None and a.isChecked() != visible:
            a.blockSignals(True)
            a.setChecked(visible)
            a.blockSignals(False)
        self.view3d.request_render()

    def _on_group_opacity(self, group: str, opacity: float) -> None:
        self.view3d.scene.set_group_opacity(group, opacity)
        self.view3d.request_render(interactive=True)  # a slider drag: coarse meshes until it stops

    def set_camera_preset(self, name: str) -> None:
        pos = self.scenario.patient_position if self.scenario is not None else None
        self.view3d.scene.set_camera_preset(name, pos)
        self.display_panel.mark_preset(name)
        self.view3d.request_render()

    def reset_camera(self) -> None:
        pos = self.scenario.patient_position if self.scenario is not None else "supine"
        self.set_camera_preset(default_preset(pos))

    @property
    def instructor_mode(self) -> bool:
        return self.act_instructor.isChecked()

    def set_instructor_mode(self, on: bool) -> None:
        on = bool(on)
        for w in (self.act_instructor, self.display_panel.instructor):
            if w.isChecked() != on:
                w.blockSignals(True)
                w.setChecked(on)
                w.blockSignals(False)
        self._apply_overlays()
        self.procedure_panel.set_instructor(on)
        self.fluoro_view.set_instructor(on)
        self._apply_exam_view()
        self._update_mode_label()
        proc = self.controller.procedure
        if on and proc is not None and not proc.ended and proc.recording.mode == "exam":
            proc.recording.mode = "practice"  # the hints were shown: no longer an exam attempt
            self.statusBar().showMessage("Hints shown: this attempt now counts as practice", 8000)

    def _apply_exam_view(self) -> None:
        """Exam mode: the 3D view shows only the skin, the needle and the probe (see the scene)."""
        exam = not self.instructor_mode
        scene = self.view3d.scene
        scene.set_exam_view(exam)
        scene.set_probe_plane_visible(not exam)
        self.display_panel.groups_box.setEnabled(not exam)
        for a in self.group_actions.values():
            a.setEnabled(not exam)
        self._place_needle()
        self.view3d.request_render()

    def _update_mode_label(self) -> None:
        self.mode_label.setText("Instructor mode" if self.instructor_mode else "Exam mode")

    def _apply_overlays(self) -> None:
        scene = self.view3d.scene
        sc = self.scenario
        on = self.instructor_mode
        if sc is None or self.anatomy is None:
            return
        scene.show_targets(self.targets, on)
        scene.show_critical(sc.critical_structures, on)
        zone = sc.skin_entry_zone
        paths = [(t.entry_mm, t.target_mm) for t in _trajectories(sc)]
        scene.show_plan(paths, zone.center_mm if zone else None, zone.radius_mm if zone else None, visible=on)
        self.view3d.request_render()

    def _place_needle(self) -> None:
        """The needle waits just outside the planned entry point (or the entry zone), aimed at
        the target; the procedure (later issues) moves it."""
        sc = self.scenario
        scene = self.view3d.scene
        if self.controller.state is not None:
            self._show_needle(self.controller.state)
            return
        if not self.instructor_mode:
            scene.hide_needle()
            return
        entry = target = None
        paths = _trajectories(sc)
        if paths:
            entry = np.asarray(paths[0].entry_mm, float)
            target = np.asarray(paths[0].target_mm, float)
        elif sc.skin_entry_zone is not None and self.targets:
            entry = np.asarray(sc.skin_entry_zone.center_mm, float)
            target = np.asarray(self.targets[0].points_mm[0], float)
        if entry is None or np.linalg.norm(target - entry) < 1.0:
            scene.hide_needle()
            return
        direction = (target - entry) / np.linalg.norm(target - entry)
        tip = entry - NEEDLE_STANDOFF_MM * direction
        scene.set_needle(
            pose_from_tip_axis(tip, direction),
            length_mm=sc.needle.length_mm,
            diameter_mm=diameter_for_gauge(sc.needle.gauge),
            hub_colour=hub_colour_for_gauge(sc.needle.gauge),
        )

    def _on_surface_picked(self, point, name: str) -> None:
        if self.fiducial_pick(point, name):  # a registration point (Tracking panel)
            return
        c = self.controller
        if c.active and (c.state is None or not c.state.inserted):
            cam = self.view3d.scene.renderer.GetActiveCamera()
            direction = np.asarray(point, float) - np.asarray(cam.GetPosition(), float)
            c.stamp_event("click")
            if c.place_entry(point, direction / np.linalg.norm(direction)) is not None:
                self.statusBar().showMessage(
                    "Needle on the skin: angle it (arrow keys, Ctrl+drag), then advance (W, wheel); "
                    "local anaesthetic first (F2)", 8000)
            return
        self.statusBar().showMessage(
            f"{name.replace('_', ' ')} at R {point[0]:.1f}, A {point[1]:.1f}, S {point[2]:.1f} mm", 8000
        )
