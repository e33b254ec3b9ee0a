"""Instructor overlays of the 3D scene: targets (with their tolerance), the planned trajectories and
entry zone, critical structures tinted by severity; and the instruments: the needle and the
ultrasound probe with its image plane.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkFiltersCore import vtkTubeFilter
from vtkmodules.vtkFiltersSources import vtkRegularPolygonSource
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

from simulator.core.tissue import TISSUE_INFO, Tissue
from simulator.render.camera import ceiling_direction
from simulator.render.glyphs import _set_colour, _sphere, _tube, needle_polydata, probe_polydata


SEVERITY_COLOURS = {
    "critical": (1.0, 0.05, 0.05),
    "major": (1.0, 0.50, 0.0),
    "minor": (1.0, 0.90, 0.10),
}
#: How far a critical structure's colour moves towards its severity colour (keeps the organ's
#: own hue readable for the milder levels).
SEVERITY_TINT = {"critical": 0.5, "major": 0.25, "minor": 0.12}
TARGET_COLOUR = (0.10, 1.0, 0.35)
TOLERANCE_COLOUR = (0.20, 0.90, 0.40)
PLAN_COLOUR = (0.20, 0.85, 1.0)


class OverlaysMixin:
    """Part of `AnatomyScene` (simulator.render.scene)."""

    # --- instructor overlays --------------------------------------------------------------------
    def clear_targets(self) -> None:
        for a in self._target_actors + self._plan_actors:
            self.renderer.RemoveActor(a)
        self._target_actors = []
        self._plan_actors = []

    def show_targets(self, targets: Iterable, visible: bool = True) -> None:
        """Targets (objects with kind, points_mm, radius_mm, tolerance_mm) and tolerance shells.

        Point targets are small spheres inside a translucent sphere of the tolerance radius;
        polylines are tubes (nerve radius) inside a translucent tube of the tolerance radius.
        Targets without resolved points are skipped."""
        for a in self._target_actors:
            self.renderer.RemoveActor(a)
        self._target_actors = []
        for t in targets:
            points = getattr(t, "points_mm", None)
            if points is None or len(points) == 0:
                continue
            pts = np.asarray(points, dtype=float).reshape(-1, 3)
            radius = float(getattr(t, "radius_mm", 0.0) or 0.0)
            tolerance = float(getattr(t, "tolerance_mm", 5.0) or 5.0)
            kind = getattr(t, "kind", "point")
            if kind == "polyline" and len(pts) >= 2:
                core = _tube(pts, max(radius, 1.0))
                shell = _tube(pts, max(radius, 1.0) + tolerance, sides=24)
            else:
                r = radius if kind == "sphere" and radius > 0 else 2.0
                core = _sphere(pts[0], r)
                shell = _sphere(pts[0], (radius if kind == "sphere" else 0.0) + tolerance)
            self._target_actors.append(self._overlay_actor(core, TARGET_COLOUR, 1.0))
            self._target_actors.append(self._overlay_actor(shell, TOLERANCE_COLOUR, 0.25))
        for a in self._target_actors:
            a.SetVisibility(bool(visible))

    def set_targets_visible(self, visible: bool) -> None:
        for a in self._target_actors + self._plan_actors:
            a.SetVisibility(bool(visible))

    def show_plan(self, trajectories=(), entry_zone_center_mm=None, entry_zone_radius_mm=None,
                  visible: bool = True) -> None:
        """Planned needle paths (thin tubes from entry to target; `trajectories` is a list of
        (entry_mm, target_mm) pairs) and the skin entry zone (a ring across the first path)."""
        for a in self._plan_actors:
            self.renderer.RemoveActor(a)
        self._plan_actors = []
        trajectories = [(np.asarray(e, float), np.asarray(t, float)) for e, t in trajectories]
        for entry, target in trajectories:
            if np.linalg.norm(target - entry) < 1e-6:
                continue
            line = _tube(np.array([entry, target]), 0.6, sides=10)
            self._plan_actors.append(self._overlay_actor(line, PLAN_COLOUR, 0.9))
        if entry_zone_center_mm is not None and entry_zone_radius_mm:
            c = np.asarray(entry_zone_center_mm, dtype=float)
            normal = -ceiling_direction(self.patient_position)
            if trajectories and np.linalg.norm(trajectories[0][1] - c) > 1.0:
                normal = trajectories[0][1] - c
            ring = vtkRegularPolygonSource()
            ring.SetNumberOfSides(64)
            ring.SetCenter(*c)
            ring.SetNormal(*(normal / np.linalg.norm(normal)))
            ring.SetRadius(float(entry_zone_radius_mm))
            ring.GeneratePolygonOff()
            ring.GeneratePolylineOn()
            tube = vtkTubeFilter()
            tube.SetInputConnection(ring.GetOutputPort())
            tube.SetRadius(0.8)
            tube.SetNumberOfSides(8)
            tube.Update()
            self._plan_actors.append(self._overlay_actor(tube.GetOutput(), PLAN_COLOUR, 0.9))
        for a in self._plan_actors:
            a.SetVisibility(bool(visible))

    def _overlay_actor(self, poly: vtkPolyData, colour, opacity: float) -> vtkActor:
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(poly)
        mapper.ScalarVisibilityOff()
        actor = vtkActor()
        actor.SetMapper(mapper)
        p = actor.GetProperty()
        p.SetColor(colour)
        p.SetOpacity(opacity)
        p.SetAmbient(0.35)
        actor.PickableOff()
        self.renderer.AddActor(actor)
        return actor

    def resolve_structure_names(self, name: str) -> list[str]:
        """A structure name, or a tissue name (lung, artery, csf, ...) -> the structures shown."""
        if name in self.structures:
            return [name]
        key = name.strip().lower().replace(" ", "_")
        tissue = None
        for t in Tissue:
            if t.name.lower() == key or TISSUE_INFO[t].label.lower().replace(" ", "_") == key:
                tissue = t
                break
        if tissue is None:
            return []
        return sorted(n for n, info in self.structures.items() if info.tissue == tissue)

    def show_critical(self, items: Iterable, visible: bool = True) -> None:
        """Tint critical structures by severity (red critical, orange major, yellow minor).

        `items`: structure or tissue names, or (name, severity) pairs, or objects with
        `structure`/`tissue` and `severity` attributes (the scenario's critical_structures)."""
        for name in list(self._critical):
            self._restore_colour(name)
        self._critical.clear()
        rank = {"minor": 0, "major": 1, "critical": 2}
        for item in items:
            if isinstance(item, str):
                name, severity = item, "critical"
            elif isinstance(item, tuple):
                name, severity = item[0], item[1]
            else:
                name = getattr(item, "structure", None) or getattr(item, "tissue", None) or ""
                severity = getattr(item, "severity", "major")
            severity = str(getattr(severity, "value", severity))
            for s in self.resolve_structure_names(str(name)):
                if rank.get(severity, 1) >= rank.get(self._critical.get(s, "minor"), 0) or s not in self._critical:
                    self._critical[s] = severity
        self.set_critical_visible(visible)

    def set_critical_visible(self, visible: bool) -> None:
        self._critical_visible = bool(visible)
        for name, severity in self._critical.items():
            if visible:
                info = self.structures[name]
                tint = np.array(SEVERITY_COLOURS.get(severity, SEVERITY_COLOURS["major"]))
                w = SEVERITY_TINT.get(severity, 0.4)
                colour = (1.0 - w) * np.array(info.colour) + w * tint
                p = info.actor.GetProperty()
                p.SetColor(*colour)
                p.SetSpecularColor(1.0, 1.0, 1.0)
                if severity == "critical":  # a glow, so the danger reads in the shadows too
                    p.SetAmbientColor(*tint)
                    p.SetAmbient(0.3)
                self._sync_lod_property(info)
            else:
                self._restore_colour(name)

    def critical_structures(self) -> dict[str, str]:
        return dict(self._critical)

    def _restore_colour(self, name: str) -> None:
        info = self.structures.get(name)
        if info is None:
            return
        p = info.actor.GetProperty()
        _set_colour(p, info.colour)
        p.SetAmbient(0.12)
        self._sync_lod_property(info)

    # --- needle -------------------------------------------------------------------------------
    def set_needle(self, needle_tip_to_world, length_mm: float = 150.0, diameter_mm: float = 0.72,
                   hub_colour=(0.15, 0.15, 0.15), visible: bool = True) -> None:
        """Place the needle: tip at the origin of `needle_tip_to_world`, advancing along its +Z."""
        key = (round(float(length_mm), 3), round(float(diameter_mm), 4))
        if key != self._needle_key:
            shaft, hub = needle_polydata(length_mm, diameter_mm)
            self._needle_shaft.GetMapper().SetInputData(shaft)
            self._needle_hub.GetMapper().SetInputData(hub)
            self._needle_key = key
        self._needle_hub.GetProperty().SetColor(*hub_colour)
        self._needle_matrix.DeepCopy(np.asarray(needle_tip_to_world, dtype=np.float64).ravel().tolist())
        self._needle_matrix.Modified()
        for a in (self._needle_shaft, self._needle_hub):
            a.Modified()
            a.SetVisibility(bool(visible))

    def hide_needle(self) -> None:
        self._needle_shaft.VisibilityOff()
        self._needle_hub.VisibilityOff()

    def needle_visible(self) -> bool:
        return bool(self._needle_shaft.GetVisibility())

    # --- ultrasound probe -----------------------------------------------------------------------
    def set_probe(self, probe_to_world, aperture_mm: float = 38.0, depth_mm: float = 40.0, radius_mm: float = 0.0,
                  sector_deg: float = 0.0, elevation_mm: float = 10.0, visible: bool = True) -> None:
        """Show the ultrasound probe and its image plane. `probe_to_world` (4x4): probe frame with
        x lateral (towards the orientation marker), y depth into the patient, z elevation; the
        face centre at the origin. Linear probe: radius_mm = 0 (the plane is a rectangle
        aperture x depth); curvilinear: the fan of `sector_deg` from a face arc of `radius_mm`."""
        key = tuple(round(float(v), 3) for v in (aperture_mm, depth_mm, radius_mm, sector_deg, elevation_mm))
        if key != self._probe_key:
            body, marker, plane = probe_polydata(aperture_mm, depth_mm, radius_mm, sector_deg, elevation_mm)
            self._probe_body.GetMapper().SetInputData(body)
            self._probe_marker.GetMapper().SetInputData(marker)
            self._probe_plane.GetMapper().SetInputData(plane)
            self._probe_key = key
        self._probe_matrix.DeepCopy(np.asarray(probe_to_world, dtype=np.float64).ravel().tolist())
        self._probe_matrix.Modified()
        for a in (self._probe_body, self._probe_marker, self._probe_plane):
            a.Modified()
            a.SetVisibility(bool(visible))

    def hide_probe(self) -> None:
        for a in (self._probe_body, self._probe_marker, self._probe_plane):
            a.VisibilityOff()

    def probe_visible(self) -> bool:
        return bool(self._probe_body.GetVisibility())

    def set_probe_plane_visible(self, visible: bool) -> None:
        """The image plane (a hint: exam mode hides it, the probe body stays)."""
        if self.probe_visible():
            self._probe_plane.SetVisibility(bool(visible))
