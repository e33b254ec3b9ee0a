"""The scenario editor's tools: the click modes on the slices and the skin (point and nerve targets,
proposals, the entry point and tip of each planned needle, the entry zone, the probe), and the
tunnel-view preview.
"""
from __future__ import annotations

import math
import time

import numpy as np
from PySide6.QtCore import Qt



MODE_HINTS = {
    "": "Click a slice to move the crosshair; wheel: next slice (Shift: 5), Ctrl+wheel: zoom, drag: pan.",
    "point_target": "Click a slice where the target is (a point target).",
    "polyline": "Click the nerve's points one after another on the slices; Enter or double-click finishes, "
                "Backspace removes the last point, Escape cancels.",
    "move_point": "Click a slice: the selected target's point (a nerve: its nearest point) moves there.",
    "entry": "Click the skin in the 3D view (or a slice) where the needle enters.",
    "target": "Click a slice where the needle's tip should end.",
    "zone": "Click the skin in the 3D view (or a slice) at the centre of the entry zone.",
    "probe": "Click the skin in the 3D view (or a slice) where the ultrasound probe sits: it looks towards "
             "the planned tip (else the selected target).",
}
PROBE_MARGIN_MM = 15.0  # image depth beyond the point the probe looks at
ZONE_RADIUS_MM = 15.0
NEW_POLYLINE_RADIUS_MM = 2.0
NEW_POLYLINE_TOLERANCE_MM = 3.0
NEW_POINT_TOLERANCE_MM = 5.0


class ToolsMixin:
    """Part of `EditorMode` (simulator.ui.editor.mode)."""

    def set_mode(self, mode: str) -> None:
        if mode != "polyline" and self.pending:
            self.pending = []
        self.mode = mode
        self.targets_panel.set_mode(mode)
        self.plan_panel.set_mode(mode)
        self.imaging_panel.set_mode(mode)
        self.slices.hint.setText(MODE_HINTS.get(mode, ""))
        self.slices.hint.setStyleSheet("background: %s; color: white; padding: 3px;" % ("#1f6b2a" if mode else "#24425e"))
        self._draw_slices()

    def _side_of(self, p) -> str:
        an = self.anatomy
        skin = an.meshes.get("skin") if an is not None else None
        if skin is not None and len(skin.vertices):
            mid = 0.5 * (float(skin.vertices[:, 0].min()) + float(skin.vertices[:, 0].max()))
        else:
            lo, hi = an.bounds_mm()
            mid = 0.5 * (lo[0] + hi[0])
        dx = float(p[0]) - mid
        return "midline" if abs(dx) < 5.0 else ("right" if dx > 0 else "left")

    def _new_id(self, base: str) -> str:
        ids = {t.get("id") for t in (self.doc.get(("targets",)) or []) if isinstance(t, dict)}
        n = 1
        while f"{base}_{n}" in ids:
            n += 1
        return f"{base}_{n}"

    def _on_slice_click(self, ras, view: str, double: bool) -> None:
        doc = self.doc
        if doc is None:
            return
        p = np.asarray(ras, float)
        mode = self.mode
        if mode == "point_target":
            self.add_point_target(p)
        elif mode == "polyline":
            if double:
                self.finish_polyline()
            else:
                self.pending.append(p)
                self.slices.hint.setText(f"{len(self.pending)} point(s): click the next, Enter or double-click finishes")
                self._draw_slices()
        elif mode == "move_point":
            self.move_target_point(p)
        elif mode == "entry":
            self.set_entry(p)
        elif mode == "target":
            self.set_plan_target(p)
        elif mode == "zone":
            self.set_zone_centre(p)
        elif mode == "probe":
            self.set_probe(p)

    def _on_surface_picked(self, point, name: str) -> None:
        p = np.asarray(point, float)
        if self.anatomy is not None:  # the slices go through the point clicked
            self.slices.set_cursor(p)
            self.slices.show_point_info(p)
        if self.mode == "entry":
            self.set_entry(p)
        elif self.mode == "zone":
            self.set_zone_centre(p)
        elif self.mode == "probe":
            self.set_probe(p)
        self._draw_slices()
        self.window.statusBar().showMessage(
            f"{name.replace('_', ' ')} at R {p[0]:.1f}, A {p[1]:.1f}, S {p[2]:.1f} mm", 8000)

    def _on_key(self, key: int) -> None:
        if key in (int(Qt.Key.Key_Return), int(Qt.Key.Key_Enter)):
            if self.mode == "polyline":
                self.finish_polyline()
        elif key == int(Qt.Key.Key_Escape):
            self.pending_entry = self.pending_target = None
            self.set_mode("")
            self.plan_panel.refresh(None)
        elif key == int(Qt.Key.Key_Backspace) and self.pending:
            self.pending.pop()
            self._draw_slices()

    def add_point_target(self, p) -> int:
        from simulator.core.scenario_edits import add_target

        tid = self._new_id("target")
        i = add_target(self.doc, id=tid, name=f"Target {tid.rsplit('_', 1)[1]}", kind="point", points_mm=[p],
                       tolerance_mm=NEW_POINT_TOLERANCE_MM, side=self._side_of(p))
        self.set_mode("")
        self.targets_panel.editor.select(i)
        return i

    def move_target_point(self, p) -> None:
        """The selected target's point (a polyline: the point nearest the click) moves to `p`."""
        i = self.targets_panel.editor.index
        pts = self.doc.get(("targets", i, "points_mm")) if i >= 0 else None
        if not pts:
            self.window.statusBar().showMessage("Select a target with points first (Targets tab)", 6000)
            return
        k = int(np.argmin(np.linalg.norm(np.asarray(pts, float).reshape(-1, 3) - p, axis=1)))
        tid = self.doc.get(("targets", i, "id"))
        self.doc.set(("targets", i, "points_mm", k), [float(x) for x in p], label=f"Move a point of {tid}")
        self.set_mode("")

    def finish_polyline(self) -> int | None:
        from simulator.core.scenario_edits import add_target

        pts = self.pending
        if len(pts) < 2:
            self.slices.hint.setText("A nerve needs at least two points: click more, or Escape to cancel")
            return None
        tid = self._new_id("nerve")
        mid = np.mean(np.asarray(pts), axis=0)
        i = add_target(self.doc, id=tid, name=f"Nerve {tid.rsplit('_', 1)[1]}", kind="polyline", points_mm=list(pts),
                       radius_mm=NEW_POLYLINE_RADIUS_MM, tolerance_mm=NEW_POLYLINE_TOLERANCE_MM, side=self._side_of(mid))
        self.pending = []
        self.set_mode("")
        self.targets_panel.editor.select(i)
        return i

    def add_proposal(self, name: str) -> int | None:
        from simulator.core.scenario_doc import ScenarioDocError
        from simulator.core.scenario_edits import target_from_proposal

        if not name or self.doc is None or self.anatomy is None:
            return None
        try:
            i = target_from_proposal(self.doc, self.anatomy, name)
        except ScenarioDocError as e:
            self.window.report_error("No such proposal", str(e))
            return None
        self.targets_panel.editor.select(i)
        t = self._resolved_targets()
        if 0 <= i < len(t):
            self.slices.set_cursor(t[i].points_mm[0])
            self._draw_slices()
        return i

    def _nearest_target_id(self, p, within_mm: float = 15.0):
        best, best_d = None, within_mm
        for t in self._resolved_targets():
            pts = t.points_mm
            if t.kind == "polyline" and len(pts) > 1:
                a, b = pts[:-1], pts[1:]
                ab = b - a
                s = np.clip(np.einsum("ij,ij->i", p - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12), 0, 1)
                d = float(np.min(np.linalg.norm(a + s[:, None] * ab - p, axis=1))) - t.radius_mm
            else:
                d = float(np.min(np.linalg.norm(pts - p, axis=1)))
            if d <= best_d:
                best, best_d = t.id, d
        return best

    def _write_trajectory(self, entry, target, target_id, label: str) -> None:
        """Entry and tip of the chosen needle (planned_trajectory or an additional one)."""
        from simulator.core.scenario_edits import set_planned_trajectory

        doc = self.doc
        i = self.plan_panel.index
        if i == 0:
            set_planned_trajectory(doc, entry, target, target_id=target_id)
            return
        traj = {"entry_mm": [round(float(x), 1) for x in entry], "target_mm": [round(float(x), 1) for x in target]}
        if target_id is not None:
            traj["target_id"] = target_id
        n = len(doc.get(("additional_trajectories",)) or [])
        if i - 1 < n:
            doc.set(("additional_trajectories", i - 1), traj, label=label)
        else:
            doc.insert(("additional_trajectories",), -1, traj, label=label)
            self.plan_panel.index = n + 1

    def set_entry(self, p) -> None:
        doc = self.doc
        p = np.asarray(p, float)
        first = self.plan_panel.index == 0
        traj = doc.get(self.plan_panel.plan_path())
        target = self.pending_target
        if isinstance(traj, dict) and traj.get("target_mm") is not None:
            target = traj["target_mm"]
        old_entry = traj.get("entry_mm") if isinstance(traj, dict) else None
        zc, _ = self._zone()
        with doc.batch("Set the entry point"):
            if target is not None:
                tid = traj.get("target_id") if isinstance(traj, dict) else self._nearest_target_id(np.asarray(target, float))
                self._write_trajectory(p, target, tid, "Set the entry point")
            if first and zc is None:
                doc.set(("skin_entry_zone",), {"center_mm": [float(x) for x in p], "radius_mm": ZONE_RADIUS_MM})
            elif first and old_entry is not None and np.linalg.norm(zc - np.asarray(old_entry, float)) < 0.2:
                doc.set(("skin_entry_zone", "center_mm"), [float(x) for x in p])  # the zone follows the entry
        if target is None:
            self.pending_entry = p
            self.set_mode("target")
            self.plan_panel.refresh(p)
            self._draw_slices()
        else:
            self.pending_entry = self.pending_target = None
            self.set_mode("")
            self.plan_panel.refresh()
        self.window.statusBar().showMessage(f"Entry point: R {p[0]:.1f}, A {p[1]:.1f}, S {p[2]:.1f} mm", 6000)

    def set_plan_target(self, p) -> None:
        doc = self.doc
        p = np.asarray(p, float)
        traj = doc.get(self.plan_panel.plan_path())
        entry = self.pending_entry
        if isinstance(traj, dict) and traj.get("entry_mm") is not None:
            entry = traj["entry_mm"]
        if entry is None:
            self.pending_target = p
            self.set_mode("entry")
            return
        if self.plan_panel.index > 0 and self.plan_panel.needle_count() == 0:
            self.plan_panel.index = 0  # the first needle is planned_trajectory
        self._write_trajectory(entry, p, self._nearest_target_id(p), "Set the needle's tip")
        self.pending_entry = self.pending_target = None
        self.set_mode("")
        self.plan_panel.refresh()

    def _needle_changed(self, index: int) -> None:
        """Another needle chosen on the Plan tab: the slices go to its tip."""
        self.pending_entry = self.pending_target = None
        trajs = self._trajectories()
        if index < len(trajs) and self.anatomy is not None:
            self.slices.set_cursor(trajs[index][1])
        self._draw_slices()

    def plan_to_selected_target(self) -> None:
        i = self.targets_panel.editor.index
        ts = self._resolved_targets()
        if not 0 <= i < len(ts):
            self.window.statusBar().showMessage("Select a target first (Targets tab)", 6000)
            return
        t = ts[i]
        pts = np.asarray(t.points_mm, float).reshape(-1, 3)
        tip = pts[len(pts) // 2]
        traj = self.doc.get(self.plan_panel.plan_path())
        entry = traj.get("entry_mm") if isinstance(traj, dict) else self.pending_entry
        if t.kind == "polyline" and entry is not None and len(pts) > 1:
            # the point of the nerve nearest the entry: the needle's shortest way to it
            e = np.asarray(entry, float)
            a, b = pts[:-1], pts[1:]
            ab = b - a
            s = np.clip(np.einsum("ij,ij->i", e - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12), 0, 1)
            q = a + s[:, None] * ab
            tip = q[int(np.argmin(np.linalg.norm(q - e, axis=1)))]
        elif t.kind != "polyline":
            tip = pts[0]
        self.set_plan_target(tip)
        if self.anatomy is not None:  # the slices go to the new tip
            self.slices.set_cursor(tip)
            self._draw_slices()

    def set_zone_centre(self, p) -> None:
        doc = self.doc
        zc, zr = self._zone()
        if zc is None:
            doc.set(("skin_entry_zone",), {"center_mm": [float(x) for x in p], "radius_mm": ZONE_RADIUS_MM},
                    label="Set the entry zone")
        else:
            doc.set(("skin_entry_zone", "center_mm"), [float(x) for x in p], label="Move the entry zone")
        self.set_mode("")

    def _probe_aim(self):
        """What the probe looks at: the chosen needle's tip, else the selected target's middle."""
        trajs = self._trajectories()
        if trajs:
            return np.asarray(trajs[min(self.plan_panel.index, len(trajs) - 1)][1], float)
        ts = self._resolved_targets()
        i = self.targets_panel.editor.index
        if ts:
            pts = np.asarray(ts[i if 0 <= i < len(ts) else 0].points_mm, float).reshape(-1, 3)
            return pts[len(pts) // 2]
        return None

    def set_probe(self, p) -> None:
        """The initial probe on the skin at `p`, its depth axis towards the planned tip (else the
        selected target, else the middle of the anatomy), marker towards the head (or the marker
        it had, kept perpendicular), deep enough to show that point."""
        doc = self.doc
        p = np.asarray(p, float)
        aim = self._probe_aim()
        if aim is None or np.linalg.norm(aim - p) < 1.0:
            lo, hi = self.anatomy.bounds_mm()
            aim = 0.5 * (np.asarray(lo, float) + np.asarray(hi, float))
            aim[2] = p[2]
        d = (aim - p) / max(float(np.linalg.norm(aim - p)), 1e-9)
        old = doc.get(("imaging", "ultrasound", "marker"))
        m = np.asarray(old, float) if isinstance(old, list) and len(old) == 3 else np.array([0.0, 0.0, 1.0])
        m = m - d * float(m @ d)
        if np.linalg.norm(m) < 1e-3:
            m = np.array([1.0, 0.0, 0.0]) - d * d[0]
        m /= np.linalg.norm(m)
        u = ("imaging", "ultrasound")
        depth = doc.get(u + ("depth_mm",))
        need = float(np.linalg.norm(aim - p)) + PROBE_MARGIN_MM
        with doc.batch("Place the ultrasound probe"):
            doc.set(u + ("center_mm",), [float(x) for x in p])
            doc.set(u + ("direction",), [round(float(x), 3) for x in d])
            doc.set(u + ("marker",), [round(float(x), 3) for x in m])
            if not isinstance(depth, (int, float)) or depth < need - 0.5:  # half a mm: a click's rounding
                doc.set(u + ("depth_mm",), float(min(250, 10 * math.ceil((need - 0.5) / 10))))
        self.set_mode("")
        self.window.statusBar().showMessage(
            f"Probe at R {p[0]:.1f}, A {p[1]:.1f}, S {p[2]:.1f} mm, looking {np.linalg.norm(aim - p):.0f} mm "
            "deep to the point it aims at", 8000)

    def turn_probe(self) -> None:
        """The probe turned 90 degrees about its depth axis (long axis <-> transverse)."""
        u = ("imaging", "ultrasound")
        doc = self.doc
        d, m = doc.get(u + ("direction",)), doc.get(u + ("marker",))
        if not isinstance(d, list):
            return
        d = np.asarray(d, float) / np.linalg.norm(d)
        m = np.asarray(m, float) if isinstance(m, list) else np.array([0.0, 0.0, 1.0])
        t = np.cross(d, m)
        if np.linalg.norm(t) < 1e-6:
            return
        t /= np.linalg.norm(t)
        doc.set(u + ("marker",), [round(float(x), 3) for x in t], label="Turn the probe 90\u00b0")

    def _clear_plan_part(self, what: str) -> None:
        doc = self.doc
        if doc is None:
            return
        if what == "zone":
            doc.unset(("skin_entry_zone",), label="Remove the entry zone")
        else:
            i = self.plan_panel.index
            more = list(doc.get(("additional_trajectories",)) or [])
            with doc.batch("Remove a planned needle"):
                if i > 0:
                    if len(more) == 1 and i == 1:
                        doc.unset(("additional_trajectories",))
                    elif i - 1 < len(more):
                        doc.remove(("additional_trajectories",), i - 1)
                elif more:  # the second needle becomes the first
                    doc.set(("planned_trajectory",), more[0])
                    doc.remove(("additional_trajectories",), 0)
                    if len(more) == 1:
                        doc.unset(("additional_trajectories",))
                else:
                    doc.unset(("additional_trajectories",))
                    doc.unset(("planned_trajectory",))
            self.plan_panel.index = max(0, min(i, self.plan_panel.needle_count() - 1))
            self.pending_entry = self.pending_target = None
            self.plan_panel.refresh()

    def preview_tunnel(self) -> bool:
        """Render the fluoroscopy image with the beam along the planned trajectory (the C-arm's
        tunnel view; `CArmPose.aimed_along`), a needle lying on the plan. Off the GUI thread."""
        from simulator.core.carm import CArmPose
        from simulator.core.scenario_model import FluoroscopySettings

        trajs = self._trajectories()
        info = self.plan_panel.tunnel_info
        if not trajs or self.anatomy is None:
            info.setText("Set a planned trajectory first (entry and tip).")
            return False
        entry, target = trajs[min(self.plan_panel.index, len(trajs) - 1)]
        doc = self.doc
        try:
            settings = FluoroscopySettings(**(doc.get(("imaging", "fluoroscopy")) or {}))
        except Exception:  # noqa: BLE001 - fields still being typed: the defaults
            settings = FluoroscopySettings()
        pos = doc.get(("patient_position",)) or "prone"
        try:
            pose = CArmPose.from_settings(settings, patient_position=pos, isocenter_mm=tuple(target),
                                          detector_pixels=384)
            pose = pose.replace(isocenter_mm=tuple(float(x) for x in target)).aimed_along(target - entry)
        except ValueError as e:
            info.setText(f"No tunnel view: {e}")
            return False
        gauge = doc.get(("needle", "gauge")) or 22
        length = doc.get(("needle", "length_mm")) or 150.0
        if self._tunnel_worker is None:
            from simulator.ui.workers import SerialWorker

            self._tunnel_worker = SerialWorker("editor-tunnel", self._render_tunnel, self)
            self._tunnel_worker.result.connect(self._on_tunnel)
            self._tunnel_worker.failed.connect(lambda m: info.setText(f"Tunnel view failed: {m.splitlines()[0]}"))
        info.setText("Rendering the tunnel view\u2026")
        self.tunnel_frame = None
        self._tunnel_worker.submit((self.anatomy, pose, target, target - entry, int(gauge), float(length)), key="tunnel")
        return True

    @staticmethod
    def _render_tunnel(job):
        anatomy, pose, tip, direction, gauge, length = job
        try:
            from simulator.ui.fluoro_view import _renderer_for

            renderer = _renderer_for(anatomy)
        except ImportError:
            from simulator.imaging.fluoroscopy import FluoroscopyRenderer

            renderer = FluoroscopyRenderer(anatomy)
            renderer.prepare()
        from simulator.imaging.fluoroscopy import NeedleModel

        try:
            needle = NeedleModel.from_gauge(gauge, tip, direction=direction, length_mm=length)
            needles = [needle]
        except ValueError:
            needles = []
        t0 = time.perf_counter()
        frame = renderer.render(pose, needles, quality="full")
        return {"frame": frame, "ms": 1000.0 * (time.perf_counter() - t0)}

    def _on_tunnel(self, res) -> None:
        from simulator.ui.fluoro_view import carm_angle_text

        frame = res["frame"]
        self.tunnel_frame = frame
        c = self.plan_panel.tunnel
        c.edge_labels = frame.pose.orientation_labels()
        c.corner_text = {"tl": carm_angle_text(frame.pose.lao_deg, frame.pose.cranial_deg)}
        c.set_image(frame.image)
        self.plan_panel.tunnel_info.setText(
            f"C-arm {carm_angle_text(frame.pose.lao_deg, frame.pose.cranial_deg).replace(chr(10), ', ')}: the beam runs "
            "down the planned needle (shown as a dot at the target). Set these angles as a named view in "
            "imaging.fluoroscopy.presets to offer it to the trainee.")
