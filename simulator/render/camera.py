"""Camera presets of the 3D scene (named by where the camera stands, as radiographic views are
named by where the beam enters; see `simulator.render.scene`), fitting the view to the anatomy,
and the orientation cube in the corner.
"""
from __future__ import annotations

import math

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper, vtkRenderer


from simulator.core.anatomy import TriMesh
from simulator.anatomy.vtk_mesh import polydata_from_mesh

CAMERA_PRESETS = ("AP", "PA", "lateral_left", "lateral_right", "oblique_left", "oblique_right", "axial")
PRESET_LABELS = {
    "AP": "AP (from the front)",
    "PA": "PA (from the back)",
    "lateral_left": "Left lateral",
    "lateral_right": "Right lateral",
    "oblique_left": "Left oblique",
    "oblique_right": "Right oblique",
    "axial": "Axial (from the feet)",
}
OBLIQUE_DEG = 35.0

_R, _A, _S = np.eye(3)

def _position_name(patient_position) -> str:
    return str(getattr(patient_position, "value", patient_position) or "supine")


def ceiling_direction(patient_position) -> np.ndarray:
    """The patient-frame direction that points at the room's ceiling in this position."""
    pos = _position_name(patient_position)
    return {
        "supine": _A,
        "prone": -_A,
        "lateral_left": _R,  # lying on the left side: the right side is up
        "lateral_right": -_R,
        "sitting": _S,
    }.get(pos, _A).copy()


def default_preset(patient_position) -> str:
    """The preset an operator starts with: the view from above the table."""
    return {
        "supine": "AP",
        "prone": "PA",
        "lateral_left": "lateral_right",
        "lateral_right": "lateral_left",
        "sitting": "PA",
    }.get(_position_name(patient_position), "AP")


def camera_preset_vectors(name: str, patient_position="supine") -> tuple[np.ndarray, np.ndarray]:
    """(direction from the focal point to the camera, view-up) in patient RAS for a preset."""
    if name not in CAMERA_PRESETS:
        raise ValueError(f"camera preset {name!r}: expected one of {', '.join(CAMERA_PRESETS)}")
    ceiling = ceiling_direction(patient_position)
    # The working side: the side of the trunk the operator faces (front if supine, else back).
    working = _A if _position_name(patient_position) == "supine" else -_A
    t = math.radians(OBLIQUE_DEG)
    to_camera = {
        "AP": _A,
        "PA": -_A,
        "lateral_left": -_R,
        "lateral_right": _R,
        "oblique_left": math.cos(t) * working - math.sin(t) * _R,
        "oblique_right": math.cos(t) * working + math.sin(t) * _R,
        "axial": -_S,
    }[name]
    if name == "axial" and abs(float(np.dot(ceiling, _S))) > 0.9:  # sitting: look down from above
        to_camera = _S
    if name in ("lateral_left", "lateral_right", "axial"):
        up = ceiling
        if abs(float(np.dot(up, to_camera))) > 0.9:
            up = _S if name != "axial" else _A
    else:
        up = _S
    up = up - np.dot(up, to_camera) * to_camera
    return to_camera / np.linalg.norm(to_camera), up / np.linalg.norm(up)


class CameraMixin:
    """Part of `AnatomyScene` (simulator.render.scene)."""

    # --- camera -------------------------------------------------------------------------------
    def set_camera_preset(self, name: str, patient_position=None, focal_point_mm=None) -> None:
        """Look at the anatomy from a preset direction (see the module docs)."""
        if patient_position is not None:
            self.patient_position = _position_name(patient_position)
        to_camera, up = camera_preset_vectors(name, self.patient_position)
        self.preset = name
        bounds = self._scene_bounds()
        centre = np.array([(bounds[0] + bounds[1]) / 2, (bounds[2] + bounds[3]) / 2, (bounds[4] + bounds[5]) / 2])
        if focal_point_mm is not None:
            centre = np.asarray(focal_point_mm, dtype=float)
        cam = self.renderer.GetActiveCamera()
        cam.SetFocalPoint(*centre)
        cam.SetPosition(*(centre + 1000.0 * to_camera))
        cam.SetViewUp(*up)
        self._fit(bounds, centre, to_camera, up)

    def _fit(self, bounds, centre, to_camera, up, margin: float = 1.06) -> None:
        """Move the camera along its axis so the anatomy just fills the view (perspective-exact
        for a sample of the surface points; the bounding box when there is no anatomy)."""
        cam = self.renderer.GetActiveCamera()
        right = np.cross(up, to_camera)
        pts = self._fit_points
        if pts is None or len(pts) == 0:
            pts = np.array([[x, y, z] for x in bounds[0:2] for y in bounds[2:4] for z in bounds[4:6]])
        p = pts - centre
        w, h = self.render_window.GetSize()
        aspect = (w / h) if w > 0 and h > 0 else 1.0
        tan_v = math.tan(math.radians(cam.GetViewAngle() / 2)) / margin
        tan_h = tan_v * aspect
        depth = p @ to_camera  # towards the camera
        need = np.maximum(np.abs(p @ up) / tan_v, np.abs(p @ right) / tan_h) + depth
        distance = max(float(np.max(need)), float(np.max(depth)) + 1.0)
        cam.SetPosition(*(centre + distance * to_camera))
        self.renderer.ResetCameraClippingRange()

    def _scene_bounds(self) -> list[float]:
        lo = np.full(3, np.inf)
        hi = np.full(3, -np.inf)
        for info in self.structures.values():
            b = info.actor.GetBounds()
            lo = np.minimum(lo, b[0::2])
            hi = np.maximum(hi, b[1::2])
        if not np.all(np.isfinite(lo)):
            return [-100.0, 100.0, -100.0, 100.0, -100.0, 100.0]
        return [float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]), float(lo[2]), float(hi[2])]

    def camera_state(self) -> dict:
        cam = self.renderer.GetActiveCamera()
        return {
            "position": cam.GetPosition(),
            "focal_point": cam.GetFocalPoint(),
            "view_up": cam.GetViewUp(),
            "view_angle": cam.GetViewAngle(),
        }

    # --- orientation cube -------------------------------------------------------------------------
    def _add_orientation_cube(self) -> None:
        """A small R/L/A/P/S/I cube in the lower-left corner that turns with the camera: one
        actor (the faces and the letters in one mesh, coloured per cell), as cheap to draw as the
        smallest structure (vtkAnnotatedCubeActor draws eight actors: ~5 ms a frame in llvmpipe)."""
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(orientation_cube_polydata())
        mapper.SetScalarModeToUseCellData()
        mapper.SetColorModeToDirectScalars()
        cube = vtkActor()
        cube.SetMapper(mapper)
        cube.GetProperty().SetAmbient(0.35)
        cube.GetProperty().SetDiffuse(0.7)
        cube.GetProperty().BackfaceCullingOn()
        cube.PickableOff()
        ren = vtkRenderer()
        ren.SetViewport(0.0, 0.0, 0.16, 0.2)
        ren.SetLayer(1)
        ren.InteractiveOff()
        ren.AddActor(cube)
        self.render_window.SetNumberOfLayers(max(2, self.render_window.GetNumberOfLayers()))
        self.render_window.AddRenderer(ren)
        self._cube_renderer = ren
        self.renderer.AddObserver("StartEvent", self._sync_cube)

    def _sync_cube(self, *_):
        if self._cube_renderer is None:
            return
        w, h = self.render_window.GetSize()
        if w > 0 and h > 0:  # a square of about 90 px in the lower-left corner
            side = min(90, w // 4, h // 4)
            f = self._frame_reduction  # in the moving frame's reduced image: the same size on screen
            self._cube_renderer.SetViewport(0.0, 0.0, side / w / f, side / h / f)
        cam = self.renderer.GetActiveCamera()
        c = self._cube_renderer.GetActiveCamera()
        fp = np.array(cam.GetFocalPoint())
        dop = np.array(cam.GetPosition()) - fp
        n = np.linalg.norm(dop)
        if n == 0:
            return
        c.SetFocalPoint(0.0, 0.0, 0.0)
        c.SetPosition(*(dop / n * 4.0))
        c.SetViewUp(*cam.GetViewUp())
        self._cube_renderer.ResetCameraClippingRange()


#: The orientation cube's faces: (outward normal, the letter's up, letter, letter colour).
_CUBE_FACES = (
    ((1, 0, 0), (0, 0, 1), "R", (0.95, 0.35, 0.35)),
    ((-1, 0, 0), (0, 0, 1), "L", (0.95, 0.35, 0.35)),
    ((0, 1, 0), (0, 0, 1), "A", (0.35, 0.9, 0.45)),
    ((0, -1, 0), (0, 0, 1), "P", (0.35, 0.9, 0.45)),
    ((0, 0, 1), (0, 1, 0), "S", (0.4, 0.6, 1.0)),
    ((0, 0, -1), (0, 1, 0), "I", (0.4, 0.6, 1.0)),
)
_CUBE_COLOUR = (0.55, 0.6, 0.7)

def orientation_cube_polydata(text_scale: float = 0.6) -> vtkPolyData:
    """A unit cube centred at the origin with the patient directions written on its faces
    (R/L on +-x, A/P on +-y, S/I on +-z), legible from outside; RGB cell colours."""
    from vtkmodules.vtkFiltersCore import vtkTriangleFilter
    from vtkmodules.vtkRenderingFreeType import vtkVectorText

    pieces: list[tuple[np.ndarray, np.ndarray, tuple]] = []  # (vertices, triangles, colour)
    for normal, up, letter, colour in _CUBE_FACES:
        n, u = np.array(normal, float), np.array(up, float)
        r = np.cross(u, n)  # the viewer's right, looking at the face from outside
        centre = 0.5 * n
        quad = np.array([centre + sr * 0.5 * r + su * 0.5 * u for sr, su in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
        pieces.append((quad, np.array([[0, 1, 2], [0, 2, 3]]), _CUBE_COLOUR))
        text = vtkVectorText()
        text.SetText(letter)
        tri = vtkTriangleFilter()
        tri.SetInputConnection(text.GetOutputPort())
        tri.Update()
        out = tri.GetOutput()
        pts = vtk_to_numpy(out.GetPoints().GetData()).astype(float)
        faces = vtk_to_numpy(out.GetPolys().GetConnectivityArray()).reshape(-1, 3)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        pts = (pts - 0.5 * (lo + hi)) * (text_scale / max(hi[1] - lo[1], 1e-6))  # glyph height: text_scale
        world = centre + 0.004 * n + pts[:, :1] * r + pts[:, 1:2] * u
        pieces.append((world, faces, colour))
    verts, tris, colours, base = [], [], [], 0
    for v, f, c in pieces:
        verts.append(v)
        tris.append(f + base)
        colours.append(np.tile(np.round(np.array(c) * 255).astype(np.uint8), (len(f), 1)))
        base += len(v)
    poly = polydata_from_mesh(TriMesh(np.vstack(verts), np.vstack(tris)), normals=False)
    arr = numpy_to_vtk(np.vstack(colours), deep=True)
    arr.SetName("Colours")
    poly.GetCellData().SetScalars(arr)
    return poly
