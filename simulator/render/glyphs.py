"""Glyphs of the 3D scene as polydata: the needle (shaft, bevel, hub coloured by gauge), the
ultrasound probe and its image plane, target spheres and tubes.
"""
from __future__ import annotations

import math

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkCommonTransforms import vtkTransform
from vtkmodules.vtkFiltersCore import vtkAppendPolyData, vtkTubeFilter
from vtkmodules.vtkFiltersGeneral import vtkTransformFilter
from vtkmodules.vtkFiltersSources import vtkConeSource, vtkCylinderSource, vtkSphereSource

from simulator.core.anatomy import TriMesh
from simulator.core.needle import GAUGE_OD_MM
from simulator.anatomy.vtk_mesh import polydata_from_mesh


#: ISO 6009 hub colours.
GAUGE_HUB_COLOUR = {
    18: (0.95, 0.55, 0.70), 20: (1.0, 0.85, 0.10), 21: (0.20, 0.65, 0.25),
    22: (0.15, 0.15, 0.15), 23: (0.15, 0.35, 0.85), 25: (0.95, 0.50, 0.10),
}

def _set_colour(prop, colour) -> None:
    """Ambient and diffuse colour; white specular highlights."""
    prop.SetColor(*colour)
    prop.SetSpecularColor(1.0, 1.0, 1.0)


def _sphere(centre, radius: float, resolution: int = 24) -> vtkPolyData:
    s = vtkSphereSource()
    s.SetCenter(*[float(c) for c in centre])
    s.SetRadius(float(radius))
    s.SetThetaResolution(resolution)
    s.SetPhiResolution(resolution)
    s.Update()
    return s.GetOutput()


def _tube(points: np.ndarray, radius: float, sides: int = 16) -> vtkPolyData:
    pd = vtkPolyData()
    pts = vtkPoints()
    pts.SetData(numpy_to_vtk(np.ascontiguousarray(points, dtype=np.float64), deep=True))
    pd.SetPoints(pts)
    lines = vtkCellArray()
    lines.InsertNextCell(len(points))
    for i in range(len(points)):
        lines.InsertCellPoint(i)
    pd.SetLines(lines)
    tube = vtkTubeFilter()
    tube.SetInputData(pd)
    tube.SetRadius(float(radius))
    tube.SetNumberOfSides(sides)
    tube.CappingOn()
    tube.Update()
    return tube.GetOutput()


def needle_polydata(length_mm: float, diameter_mm: float) -> tuple[vtkPolyData, vtkPolyData]:
    """(shaft, hub) in the needle tip frame: shaft from z=-length to a short bevel at z=0, hub
    behind z=-length. +Z is the direction of insertion."""
    r = 0.5 * float(diameter_mm)
    bevel = min(4.0 * r, 0.25 * length_mm)

    def along_z(source, z_centre: float) -> vtkPolyData:
        t = vtkTransform()
        t.Translate(0.0, 0.0, z_centre)
        t.RotateX(90.0)  # the sources' axis is +Y; turn it onto +Z
        f = vtkTransformFilter()
        f.SetTransform(t)
        f.SetInputConnection(source.GetOutputPort())
        f.Update()
        return f.GetPolyDataOutput()

    shaft = vtkCylinderSource()
    shaft.SetRadius(r)
    shaft.SetHeight(length_mm - bevel)
    shaft.SetResolution(16)
    tip = vtkConeSource()
    tip.SetRadius(r)
    tip.SetHeight(bevel)
    tip.SetResolution(16)
    tip.SetDirection(0.0, 0.0, 1.0)
    tip.SetCenter(0.0, 0.0, -0.5 * bevel)
    tip.Update()
    append = vtkAppendPolyData()
    append.AddInputData(along_z(shaft, -bevel - 0.5 * (length_mm - bevel)))
    append.AddInputData(tip.GetOutput())
    append.Update()
    hub_len = 18.0
    hub = vtkCylinderSource()
    hub.SetRadius(max(3.0, 3 * r))
    hub.SetHeight(hub_len)
    hub.SetResolution(24)
    return append.GetOutput(), along_z(hub, -length_mm - 0.5 * hub_len)


def probe_polydata(aperture_mm: float, depth_mm: float, radius_mm: float = 0.0, sector_deg: float = 0.0,
                   elevation_mm: float = 10.0) -> tuple[vtkPolyData, vtkPolyData, vtkPolyData]:
    """(body, marker, image plane) of an ultrasound probe in its own frame (x lateral towards the
    marker, y depth, z elevation; the face centre at the origin)."""
    from vtkmodules.vtkFiltersSources import vtkCubeSource

    half = 0.5 * float(aperture_mm)
    handle_mm = 55.0
    face_y = 0.0
    if radius_mm > 0:  # the convex face bulges towards +y: its ends sit higher
        face_y = -float(radius_mm) * (1.0 - math.cos(math.radians(0.5 * sector_deg)))
    body = vtkCubeSource()
    body.SetBounds(-half - 2.0, half + 2.0, face_y - handle_mm, face_y, -0.5 * elevation_mm - 1.0, 0.5 * elevation_mm + 1.0)
    body.Update()
    marker = vtkSphereSource()
    marker.SetCenter(half + 3.5, face_y - 12.0, 0.0)
    marker.SetRadius(2.5)
    marker.SetThetaResolution(12)
    marker.SetPhiResolution(12)
    marker.Update()
    # the image plane (z = 0): a rectangle (linear) or a fan (curvilinear)
    if radius_mm > 0:
        n = 48
        th = np.linspace(-0.5 * math.radians(sector_deg), 0.5 * math.radians(sector_deg), n)
        inner = np.stack([radius_mm * np.sin(th), radius_mm * np.cos(th) - radius_mm, np.zeros(n)], axis=1)
        outer = np.stack([(radius_mm + depth_mm) * np.sin(th), (radius_mm + depth_mm) * np.cos(th) - radius_mm,
                          np.zeros(n)], axis=1)
    else:
        inner = np.array([[-half, 0.0, 0.0], [half, 0.0, 0.0]])
        outer = np.array([[-half, depth_mm, 0.0], [half, depth_mm, 0.0]])
        n = 2
    pts = np.vstack([inner, outer])
    tris = []
    for i in range(n - 1):
        tris += [(i, i + 1, n + i + 1), (i, n + i + 1, n + i)]
    plane = polydata_from_mesh(TriMesh(pts.astype(np.float32), np.array(tris, dtype=np.int32)), normals=False)
    return body.GetOutput(), marker.GetOutput(), plane


def hub_colour_for_gauge(gauge: int) -> tuple[float, float, float]:
    return GAUGE_HUB_COLOUR.get(int(gauge), (0.5, 0.5, 0.5))


def diameter_for_gauge(gauge: int) -> float:
    return GAUGE_OD_MM.get(int(gauge), GAUGE_OD_MM[22])
