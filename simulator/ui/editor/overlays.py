"""What the scenario editor draws: its anatomy (loaded like the trainer's), the targets with their
points (their own, else their proposal's), the plan, the entry zone and the probe on the slices and
in 3D; the problems of the document and of the plan (checked against the anatomy), and jumping
to the field of a problem.
"""
from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
from PySide6.QtCore import Qt, QTimer

from simulator.core.proposals import target_points
from simulator.core.tissue import Tissue
from simulator.ui.editor.slices import SliceOverlays, label_lut
from simulator.ui.editor.tools import MODE_HINTS


# top-level scenario fields -> the tab that edits them (the error list jumps there)
FIELD_TABS = {
    "targets": "Targets", "critical_structures": "Avoid", "skin_entry_zone": "Plan", "planned_trajectory": "Plan",
    "additional_trajectories": "Plan", "steps": "Steps", "imaging": "Imaging", "rubric": "Rubric",
    "instructions": "Text", "references": "Text", "vignette": "Patient", "prognostic_block": "Patient",
    "outcome": "Patient", "follows": "Patient", "based_on": "Patient",
}
TEXT_KEYS = {"name", "message", "reason", "citation", "used_for", "required", "somatic"}
SEVERITY_RANK = {"critical": 0, "fatal": 0, "major": 1, "minor": 2}
BANNER_LINES = 2  # plan problems written on the banner over the slices (all of them: Plan tab, tooltip)
SHAPE_PATHS = {"targets", "critical_structures", "skin_entry_zone", "planned_trajectory", "additional_trajectories",
               "anatomy", "patient_position", "imaging"}

def needle_words(message: str) -> str:
    """A plan-check message as the Plan tab names the needles: "planned_trajectory: ..." ->
    "Needle 1: ...", "additional_trajectories[0]: ..." -> "Needle 2: ..." (the file's field names
    mean nothing to an instructor who never opened the YAML)."""
    if message.startswith("planned_trajectory: "):
        return "Needle 1: " + message[len("planned_trajectory: "):]
    m = re.match(r"additional_trajectories\[(\d+)\]: ", message)
    if m:
        return f"Needle {int(m.group(1)) + 2}: " + message[m.end():]
    return message


class OverlaysMixin:
    """Part of `EditorMode` (simulator.ui.editor.mode)."""

    def _ensure_anatomy(self) -> None:
        ref = self.doc.get(("anatomy",)) if self.doc is not None else None
        if not isinstance(ref, str) or not ref or ref == self.anatomy_ref:
            return
        w = self.window
        self._wanted_ref = ref
        if ref == w.anatomy_ref and w.anatomy is not None:
            self._set_anatomy(ref, w.anatomy)
        elif ref in w.loader.cache:
            self._set_anatomy(ref, w.loader.cache[ref])
        else:
            self.slices.hint.setText(f"Loading the anatomy {ref}\u2026")
            w.loader.request(ref)

    def _on_loaded(self, ref: str, anatomy) -> None:
        if ref == self._wanted_ref and ref != self.anatomy_ref:
            self._set_anatomy(ref, anatomy)

    def _on_load_failed(self, ref: str, message: str) -> None:
        if ref == self._wanted_ref:
            self._wanted_ref = None
            self.window.report_error("Cannot load the anatomy", f"{self.doc.file_label if self.doc else ''}: "
                                     f"field 'anatomy': {ref!r} could not be loaded:\n{message}")

    def _set_anatomy(self, ref: str, anatomy) -> None:
        self.anatomy_ref = ref
        self.anatomy = anatomy
        self.slices.hint.setText(MODE_HINTS.get(self.mode, ""))
        self.slices.set_anatomy(anatomy, self._lut())
        self.critical_panel.set_anatomy(anatomy)
        self.targets_panel.set_proposals([])
        self._proposals_for = None
        QTimer.singleShot(0, self, self._fill_proposals)
        self._centre_on_plan()
        if self.active:
            self._show_anatomy_3d()
        self.refresh_all()
        self.anatomy_ready.emit(anatomy)

    def _fill_proposals(self) -> None:
        an = self.anatomy
        if an is None or self._proposals_for is an:
            return
        try:
            from simulator.core.proposals import propose_targets

            names = list(propose_targets(an))
        except Exception as e:  # noqa: BLE001 - a label map the proposals cannot read: none offered
            names = []
            self.window.statusBar().showMessage(f"No target proposals for this anatomy: {e}", 8000)
        self._proposals_for = an
        self.targets_panel.set_proposals(names)

    def _show_anatomy_3d(self) -> None:
        w = self.window
        scene = w.view3d.scene
        pos = self.doc.get(("patient_position",)) if self.doc is not None else None
        if scene.anatomy is not self.anatomy:
            w.view3d.set_anatomy(self.anatomy, pos if isinstance(pos, str) else None)
            from simulator.render.camera import default_preset

            scene.set_camera_preset(default_preset(pos if isinstance(pos, str) else "supine"), pos)
        self._scene_anatomy = self.anatomy
        scene.set_exam_view(False)
        scene.hide_needle()
        self._pick_skin()
        self._draw_3d()

    def _centre_on_plan(self) -> None:
        """The crosshair on the planned tip, else the first target's middle point."""
        trajs = self._trajectories()
        if trajs:
            self.slices.set_cursor(trajs[0][1])
            return
        pts = self._resolved_targets()
        if pts:
            p = np.asarray(pts[0].points_mm, float).reshape(-1, 3)
            self.slices.set_cursor(p[len(p) // 2] if len(p) > 2 else p.mean(axis=0))

    def _lut(self):
        crit_labels, crit_tissues = {}, {}
        an = self.anatomy
        for c in (self.doc.get(("critical_structures",)) or []) if self.doc is not None else []:
            if not isinstance(c, dict):
                continue
            sev = str(c.get("severity", "major"))
            if c.get("structure"):
                s = an.structure_by_name(str(c["structure"]))
                if s is not None:
                    crit_labels[s.id] = sev
            elif c.get("tissue"):
                try:
                    crit_tissues[int(Tissue[str(c["tissue"]).upper()])] = sev
                except KeyError:
                    pass
        return label_lut(an, crit_labels, crit_tissues)

    def _on_doc_change(self, paths: list) -> None:
        tops = {p[0] if p else "" for p in paths}
        if "" in tops or "anatomy" in tops:
            self._ensure_anatomy()
        words = all(len(p) > 1 and p[-1] in TEXT_KEYS for p in paths)  # a name or message: nothing to redraw
        self.refresh_all(shapes=not words and ("" in tops or bool(tops & SHAPE_PATHS)))
        self.document_changed.emit()

    def refresh_all(self, shapes: bool = True) -> None:
        doc = self.doc
        self.binder.refresh()
        for p in (self.targets_panel, self.critical_panel, self.steps_panel, self.rubric_panel, self.text_panel,
                  self.patient_panel):
            p.refresh()
        self.meta_panel.refresh(doc)
        self.imaging_panel.refresh()
        self.plan_panel.refresh(self.pending_entry)
        self._show_errors()
        self._show_yaml()
        self._update_actions()
        if shapes:
            if self.anatomy is not None and doc is not None:
                self.slices.set_lut(self._lut())
            self._redraw()
            self.check_plan()

    def _redraw(self) -> None:
        self._draw_slices()
        if self.active and self.anatomy is not None and self._scene_anatomy is self.anatomy:
            self._draw_3d()

    def _resolved_targets(self) -> list:
        """The document's targets with their points (their own, else their proposal's)."""
        out = []
        doc, an = self.doc, self.anatomy
        if doc is None:
            return out
        sel = self.targets_panel.editor.index
        for i, t in enumerate(doc.get(("targets",)) or []):
            if not isinstance(t, dict):
                continue
            try:
                pts = target_points(an, t.get("points_mm"), t.get("proposal"))
            except Exception:  # noqa: BLE001 - unresolved: not drawn
                pts = None
            try:
                arr = np.asarray(pts, float).reshape(-1, 3)
            except (TypeError, ValueError):
                continue
            if not len(arr):
                continue

            def num(key, default):
                try:
                    return float(t.get(key, default))
                except (TypeError, ValueError):
                    return default

            out.append(SimpleNamespace(id=str(t.get("id", "?")), kind=str(t.get("kind", "point")), points_mm=arr,
                                       radius_mm=num("radius_mm", 0.0), tolerance_mm=num("tolerance_mm", 5.0),
                                       selected=i == sel))
        return out

    def _trajectories(self) -> list:
        doc = self.doc
        out = []
        if doc is None:
            return out
        items = [doc.get(("planned_trajectory",))] + list(doc.get(("additional_trajectories",)) or [])
        for t in items:
            if not isinstance(t, dict):
                continue
            try:
                e = np.asarray(t["entry_mm"], float).reshape(3)
                g = np.asarray(t["target_mm"], float).reshape(3)
            except (KeyError, TypeError, ValueError):
                continue
            out.append((e, g))
        return out

    def _zone(self):
        z = self.doc.get(("skin_entry_zone",)) if self.doc is not None else None
        if not isinstance(z, dict):
            return None, 0.0
        try:
            c = np.asarray(z["center_mm"], float).reshape(3)
        except (KeyError, TypeError, ValueError):
            return None, 0.0
        try:
            r = float(z.get("radius_mm", 30.0))
        except (TypeError, ValueError):
            r = 0.0
        return c, r

    def _draw_slices(self) -> None:
        if self.anatomy is None:
            return
        trajs = self._trajectories()
        zc, zr = self._zone()
        targets = [dict(id=t.id, kind=t.kind, points_mm=t.points_mm, radius_mm=t.radius_mm,
                        tolerance_mm=t.tolerance_mm, selected=t.selected) for t in self._resolved_targets()]
        pending = list(self.pending)
        if self.pending_entry is not None:
            pending = pending or [self.pending_entry]
        self.slices.draw_overlays(SliceOverlays(targets=targets, trajectories=trajs, zone_center_mm=zc,
                                                zone_radius_mm=zr, pending=pending, probe=self._probe_pose()))

    def _probe_pose(self) -> dict | None:
        """The initial ultrasound probe for the slices (None without a complete, sane pose)."""
        us = self.doc.get(("imaging", "ultrasound")) if self.doc is not None else None
        if not isinstance(us, dict):
            return None
        try:
            c = np.asarray(us["center_mm"], float).reshape(3)
            d = np.asarray(us["direction"], float).reshape(3)
            m = np.asarray(us.get("marker") or [0.0, 0.0, 1.0], float).reshape(3)
            depth = float(us.get("depth_mm", 40.0))
        except (KeyError, TypeError, ValueError):
            return None
        if not np.linalg.norm(d) > 1e-6:
            return None
        d = d / np.linalg.norm(d)
        m = m - d * float(m @ d)
        if not np.linalg.norm(m) > 1e-6:
            return None
        from simulator.core.probe import ProbeSpec

        spec = ProbeSpec.curvilinear() if us.get("probe") == "curvilinear" else ProbeSpec.linear()
        return {"center_mm": c, "direction": d, "marker": m / np.linalg.norm(m), "width_mm": spec.aperture_mm,
                "depth_mm": depth}

    def _draw_3d(self) -> None:
        doc = self.doc
        scene = self.window.view3d.scene
        if doc is None:
            return
        scene.show_targets(self._resolved_targets(), True)
        crit = [SimpleNamespace(structure=c.get("structure"), tissue=c.get("tissue"), severity=str(c.get("severity", "major")))
                for c in (doc.get(("critical_structures",)) or []) if isinstance(c, dict)]
        scene.show_critical(crit, True)
        zc, zr = self._zone()
        scene.show_plan([(e, g) for e, g in self._trajectories()], zc, zr if zc is not None else None, visible=True)
        self.window.view3d.request_render()

    def _show_errors(self) -> None:
        doc = self.doc
        errs = doc.errors() if doc is not None else []
        lines = doc.formatted_errors() if doc is not None else []
        if (lines, doc is None) == getattr(self, "_errors_shown", None):
            return
        self._errors_shown = (lines, doc is None)
        self.error_list.clear()
        for line, e in zip(lines, errs):
            self.error_list.addItem(line)
            it = self.error_list.item(self.error_list.count() - 1)
            it.setData(Qt.ItemDataRole.UserRole, e.field)
            it.setForeground(Qt.GlobalColor.red)
        if doc is None:
            self.error_title.setText("")
            return
        self.error_title.setText(f"{len(lines)} problem(s) to fix before saving:" if lines else
                                 "No errors: the scenario validates.")
        self.error_title.setStyleSheet("color: #c0161a; font-weight: bold;" if lines else "color: #1a7a1a;")

    def _tab_of(self, field: str) -> str:
        top = field.split(".")[0].split("[")[0]
        return FIELD_TABS.get(top, "Scenario")

    def _tab_index(self, name: str) -> int:
        for i in range(self.tabs.count()):
            if self.tabs.tabText(i) == name:
                return i
        return 0

    def _jump_to_error(self, item) -> None:
        field = item.data(Qt.ItemDataRole.UserRole) or ""
        self.tabs.setCurrentIndex(self._tab_index(self._tab_of(field)))
        import re

        m = re.match(r"^(targets|critical_structures|rubric\.items|references|vignette\.contraindications)\[(\d+)\]", field)
        if m:
            ed = {"targets": self.targets_panel.editor, "critical_structures": self.critical_panel.editor,
                  "rubric.items": self.rubric_panel.editor, "references": self.text_panel.editor,
                  "vignette.contraindications": self.patient_panel.key}[m.group(1)]
            ed.select(int(m.group(2)))

    def check_plan(self) -> list:
        """Run the plan check on the document's trajectories; show the problems (banner, list)."""
        problems: list = []
        doc, an = self.doc, self.anatomy
        plan_check = None
        if doc is not None and an is not None:
            try:
                from simulator.core import plan_check
            except ImportError:
                plan_check = None
            if plan_check is not None:
                try:
                    problems = list(plan_check.check_plan(an, doc))
                except Exception as ex:  # noqa: BLE001 - an incomplete document: say why, do not crash
                    problems = [SimpleNamespace(kind="check", message=f"The plan could not be checked: {ex}",
                                                severity="minor")]
        self.plan_problems = problems
        lines = [needle_words(getattr(p, "message", str(p))) for p in problems]
        has_plan = bool(self._trajectories())
        if plan_check is None and has_plan:
            ok = "(The plan check is not available in this version.)"
        elif has_plan:
            ok = "The planned trajectory reaches its target and crosses no structure to avoid."
        else:
            ok = "No planned trajectory yet."
        self.plan_panel.show_problems(lines, ok)
        b = self.slices.banner
        if lines:
            worst = min((SEVERITY_RANK.get(str(getattr(p, "severity", "minor")), 2) for p in problems), default=2)
            colour = ("#8b0d0d", "#a85400", "#7a6a00")[worst]
            b.setStyleSheet(f"background: {colour}; color: white; font-weight: bold; padding: 4px;")
            shown = lines[:BANNER_LINES]
            more = len(lines) - len(shown)
            b.setText("\u26a0 Plan check: " + "  \u2022  ".join(shown)
                      + (f"  \u2022  and {more} more (Plan tab)" if more else ""))
            b.setToolTip("\n".join(lines))
            b.show()
        else:
            b.hide()
            b.setText("")
        return problems
