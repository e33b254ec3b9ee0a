"""numpy <-> VTK meshes, the one place for both directions: a `TriMesh` as vtkPolyData (with
area-weighted vertex normals) for the 3D scene and the mesh filters, and vtkPolyData back as a
`TriMesh` (triangulated when needed) after meshing, smoothing or decimation.
"""
from __future__ import annotations

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkTriangleFilter

from simulator.core.anatomy import TriMesh


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (float32) of an outward-oriented triangle mesh."""
    v = vertices.astype(np.float64)
    f = faces.astype(np.int64)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])  # length = 2 * area
    n = np.zeros_like(v)
    idx = f.ravel()
    for c in range(3):
        w = np.repeat(fn[:, c], 3)
        n[:, c] = np.bincount(idx, weights=w, minlength=len(v))
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    norm[norm == 0] = 1.0
    return (n / norm).astype(np.float32)


def polydata_from_mesh(mesh: TriMesh, normals: bool = True) -> vtkPolyData:
    """A vtkPolyData (deep copies) of a TriMesh, with point normals."""
    pd = vtkPolyData()
    pts = vtkPoints()
    pts.SetData(numpy_to_vtk(np.ascontiguousarray(mesh.vertices, dtype=np.float32), deep=True))
    pd.SetPoints(pts)
    faces = np.ascontiguousarray(mesh.faces, dtype=np.int64)
    offsets = np.arange(0, 3 * len(faces) + 1, 3, dtype=np.int64)
    cells = vtkCellArray()
    cells.SetData(numpy_to_vtkIdTypeArray(offsets, deep=True), numpy_to_vtkIdTypeArray(faces.ravel(), deep=True))
    pd.SetPolys(cells)
    if normals and len(faces):
        arr = numpy_to_vtk(vertex_normals(mesh.vertices, mesh.faces), deep=True)
        arr.SetName("Normals")
        pd.GetPointData().SetNormals(arr)
    return pd


def polydata_to_trimesh(poly: vtkPolyData) -> TriMesh:
    """A TriMesh (copies) of a vtkPolyData's polygons, triangulated when they are not all triangles."""
    if poly.GetNumberOfPoints() == 0 or poly.GetNumberOfPolys() == 0:
        return TriMesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32))
    pts = vtk_to_numpy(poly.GetPoints().GetData())
    polys = poly.GetPolys()
    offsets = vtk_to_numpy(polys.GetOffsetsArray())
    conn = vtk_to_numpy(polys.GetConnectivityArray())
    if np.any(np.diff(offsets) != 3):
        tri = vtkTriangleFilter()
        tri.SetInputData(poly)
        tri.Update()
        return polydata_to_trimesh(tri.GetOutput())
    return TriMesh(pts.copy(), conn.reshape(-1, 3).copy())
