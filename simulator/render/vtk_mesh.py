"""numpy <-> VTK meshes: a `TriMesh` as vtkPolyData (with area-weighted vertex normals).
"""
from __future__ import annotations

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData

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
