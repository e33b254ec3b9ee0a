"""The 3D anatomy scene: VTK only, no Qt; renders on screen (inside a Qt widget) or offscreen.

`AnatomyScene` hides VTK behind a small API (MNE-style): give it an `Anatomy`, toggle structure
groups, choose a camera preset for the patient's position, show targets / critical structures /
the planned trajectory (instructor mode), place the needle, pick a point on a surface, take a
screenshot. The Qt layer (`simulator.ui.view3d`) owns the render window's widget and coalesces
render requests; this class never renders by itself except in `render()` and `screenshot()`.

Conventions
- World frame: patient RAS millimetres (+x patient's right, +y anterior, +z superior).
- Needle (Perk Tutor's convention): +Z of `needle_tip_to_world` is the direction of insertion
  (from hub to tip); the origin is the tip; the shaft runs from the tip back along -Z to the hub
  at `tip - length_mm * Z`.
- Camera presets are named by where the camera stands, as radiographic views are named by where
  the beam enters: "AP" looks from the patient's front to the back (so the patient's right is on
  the viewer's left), "PA" from the back to the front, "lateral_left" from the patient's left
  side, "oblique_left" from the working side (front for a supine patient, back for a prone one)
  turned 35 degrees towards the patient's left, "axial" from the feet. AP, PA and obliques keep
  the head up in the view; lateral and axial views keep the room's ceiling up (the patient's back
  for a prone patient, the front for a supine one), as the operator sees the patient on the table.
- `screenshot()` returns rows top to bottom (row 0 is the top of the view); in the moving frame,
  the reduced image scaled up as the window shows it.
- Two kinds of frame: the still frame (full meshes, full resolution) and the moving frame drawn
  while something moves (`set_lod(True)`: a large anatomy's decimated copies, merged per opaque
  group, and the image at 1/`image_reduction` of the pixels per side, scaled up onto the window
  before the buffers swap). Picking and `world_to_display` always use the full meshes and the
  full-size display coordinates.
- Between them, for a large anatomy, the medium still frame (`set_detail("medium")`): full
  resolution, each mesh decimated to about a quarter of its triangles (MEDIUM_TARGET_TRIANGLES in
  all). The Qt view draws it first when the input pauses and the full meshes only after a longer
  idle, so that a key pressed just after a pause does not wait for the full meshes' render.
"""
from __future__ import annotations

import hashlib
import math
import os
import sys
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import vtkmodules.vtkInteractionStyle  # noqa: F401  (registers the interactor styles)
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (registers the OpenGL back end)
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData, vtkStaticCellLocator
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkCommonTransforms import vtkTransform
from vtkmodules.vtkFiltersCore import vtkAppendPolyData, vtkQuadricDecimation, vtkTubeFilter
from vtkmodules.vtkFiltersGeneral import vtkTransformFilter
from vtkmodules.vtkFiltersSources import (
    vtkConeSource,
    vtkCylinderSource,
    vtkRegularPolygonSource,
    vtkSphereSource,
)
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkCellPicker,
    vtkLightKit,
    vtkPolyDataMapper,
    vtkRenderer,
    vtkRenderWindow,
    vtkWindowToImageFilter,
)

from simulator.core.anatomy import Anatomy, TriMesh
from simulator.core.tissue import TISSUE_INFO, Tissue, structure_group, tissue_for_structure

# --------------------------------------------------------------------------------------------
# Display defaults
# --------------------------------------------------------------------------------------------
#: Order of the structure groups in menus and panels (unknown groups follow, sorted).
GROUP_ORDER = (
    "skin", "spine", "ribs", "bone", "vessels", "organs", "bowel", "lungs", "nervous",
    "muscle", "fat", "soft tissue", "phantom", "other",
)
#: Opacity a group starts with; the rest are opaque. The skin and the bulky groups that hide the
#: spine and the retroperitoneum (lungs, back muscles) start translucent.
DEFAULT_GROUP_OPACITY = {
    "skin": 0.22, "lungs": 0.30, "muscle": 0.40, "fat": 0.25, "soft tissue": 0.40, "phantom": 0.25,
    "bowel": 0.85,
}
DEFAULT_GROUP_VISIBLE = {"fat": False, "soft tissue": False}

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

#: Outer diameter (mm) of the needle gauges scenarios use.
GAUGE_DIAMETER_MM = {18: 1.27, 20: 0.91, 21: 0.82, 22: 0.72, 23: 0.64, 25: 0.51}
#: ISO 6009 hub colours.
GAUGE_HUB_COLOUR = {
    18: (0.95, 0.55, 0.70), 20: (1.0, 0.85, 0.10), 21: (0.20, 0.65, 0.25),
    22: (0.15, 0.15, 0.15), 23: (0.15, 0.35, 0.85), 25: (0.95, 0.50, 0.10),
}

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

# OpenGL enums for the moving frame's scaled blit
_GL_READ_FRAMEBUFFER = 0x8CA8
_GL_DRAW_FRAMEBUFFER = 0x8CA9
_GL_COLOR_BUFFER_BIT = 0x4000
_GL_LINEAR = 0x2601
_GL_BACK_LEFT = 0x0402
_GL_FRONT_LEFT = 0x0400


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


# --------------------------------------------------------------------------------------------
# numpy -> VTK
# --------------------------------------------------------------------------------------------
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


# Polydata built once per anatomy object (the UI keeps anatomies cached by ref, and switching
# back to a scenario must not rebuild half a million triangles).
_POLY_CACHE: dict[int, tuple[weakref.ref, dict[str, vtkPolyData], dict[str, vtkPolyData] | None]] = {}

# The moving frame (while the needle, the probe or the camera moves; the still frame follows
# ~0.25 s after the input stops). Measured on this 2-core machine with Mesa's llvmpipe (bundled
# patient, 410k triangles in 92 meshes, a 356x904 view): a still frame costs ~120-150 ms, about
# half per-triangle work (vertex shading and triangle setup run on one thread) and half per-pixel
# work (Phong shading of ~4 layers: the opaque organs, the translucent lungs, muscles and skin,
# plus the full-size clears and blits). So the moving frame cuts both: decimated copies of the
# meshes (quadric decimation, ~30k triangles in all) and an image drawn at 1/2 x 1/2 of the
# view's pixels and scaled up (what ParaView calls the image reduction factor).

#: Anatomies above this many triangles get decimated copies for the moving frame.
LOD_MIN_TRIANGLES = 60_000
#: Triangles in the moving frame's copies of a large anatomy (in all).
LOD_TARGET_TRIANGLES = 30_000
#: A structure keeps at least this many triangles in its copy (small ones stay recognisable).
LOD_MIN_MESH_TRIANGLES = 160
#: Pixels per side drawn as one while moving (1: full resolution).
MOVING_IMAGE_REDUCTION = 2
#: The needle's shaft is drawn at least this many pixels wide (of the image drawn: the moving
#: frame's pixels are bigger), so that a 0.7 mm needle stays visible when the view shows the trunk.
NEEDLE_MIN_WIDTH_PX = 1.6
#: Decimated copies kept in the cache folder (the most recently written).
LOD_CACHE_KEEP = 12
#: Bump when the decimation changes: cached copies of older versions are not used.
_LOD_VERSION = 1
# The medium still frame. On this machine (bundled patient, 356x904 view, llvmpipe, load ~2.5,
# interleaved renders, median/min ms): the moving frame 20-27/17-23, 150k triangles at full
# resolution 60-93/58-80, the full 410k 100-147/96-143, 100k triangles about half the full frame.
# The full meshes drawn at half resolution save about half: per-triangle and per-pixel work
# (shading several translucent layers) both count, and the moving frame cuts both. At full
# resolution 100k triangles look like the full meshes (quadric decimation keeps the silhouettes;
# compared side by side on PNGs of the AP, PA and oblique views).
#: Anatomies above this many triangles get medium copies for the first still frame.
MEDIUM_MIN_TRIANGLES = 200_000
#: Triangles in the medium copies of a large anatomy (in all).
MEDIUM_TARGET_TRIANGLES = 100_000
#: A structure keeps at least this many triangles in its medium copy.
MEDIUM_MIN_MESH_TRIANGLES = 400
#: The levels of detail, cheapest first.
DETAILS = ("moving", "medium", "full")


def decimated_mesh(mesh: TriMesh, target_triangles: int) -> TriMesh:
    """A copy of `mesh` with about `target_triangles` triangles (quadric decimation, volume
    preserving; orientation kept). The mesh itself when it has no more than that."""
    n = mesh.n_triangles
    if n <= target_triangles or n == 0:
        return mesh
    q = vtkQuadricDecimation()
    q.SetInputData(polydata_from_mesh(mesh, normals=False))
    q.SetTargetReduction(1.0 - float(target_triangles) / n)
    q.VolumePreservationOn()
    q.Update()
    out = q.GetOutput()
    if out.GetNumberOfCells() == 0:
        return mesh
    verts = vtk_to_numpy(out.GetPoints().GetData()).astype(np.float32)
    conn = vtk_to_numpy(out.GetPolys().GetConnectivityArray())
    offsets = vtk_to_numpy(out.GetPolys().GetOffsetsArray())
    if len(conn) != 3 * (len(offsets) - 1):  # not all triangles: keep the full mesh
        return mesh
    return TriMesh(verts, conn.reshape(-1, 3).astype(np.int32))


def lod_targets(meshes: dict[str, TriMesh], total: int | None = None, floor: int | None = None) -> dict[str, int]:
    """Triangles per mesh in the moving frame: the same fraction of every mesh, so that the
    copies hold about `total` triangles, but no fewer than LOD_MIN_MESH_TRIANGLES (`floor`) each."""
    total = LOD_TARGET_TRIANGLES if total is None else int(total)
    floor = LOD_MIN_MESH_TRIANGLES if floor is None else int(floor)
    n_all = sum(m.n_triangles for m in meshes.values())
    ratio = min(1.0, total / max(n_all, 1))
    return {name: max(floor, int(round(m.n_triangles * ratio))) for name, m in meshes.items()}


def _meshes_key(meshes: dict[str, TriMesh], targets: dict[str, int]) -> str:
    h = hashlib.sha1(f"lod v{_LOD_VERSION}".encode())
    for name in sorted(meshes):
        m = meshes[name]
        h.update(f"|{name}|{m.vertices.shape}|{m.faces.shape}|{targets[name]}".encode())
        h.update(m.vertices.tobytes())
        h.update(m.faces.tobytes())
    return h.hexdigest()[:24]


def lod_cache_dir() -> Path:
    """Where decimated copies are kept between runs (keyed by the meshes' content)."""
    from simulator.core.paths import user_data_dir

    return user_data_dir() / "cache" / "display-lod"


def anatomy_lod_meshes(anatomy: Anatomy, cache: bool = True, level: str = "moving") -> dict[str, TriMesh]:
    """Decimated copies of the anatomy's meshes for the moving frame ({} for small anatomies),
    or with `level="medium"` for the medium still frame ({} below MEDIUM_MIN_TRIANGLES).
    Read from the cache folder when this exact anatomy was decimated before, else decimated
    (a few seconds for the bundled patient) and saved there. Safe on a worker thread."""
    meshes = {name: m for name, m in anatomy.meshes.items() if m.n_triangles}
    n_all = sum(m.n_triangles for m in meshes.values())
    if level == "medium":
        if n_all <= MEDIUM_MIN_TRIANGLES:
            return {}
        targets = lod_targets(meshes, MEDIUM_TARGET_TRIANGLES, MEDIUM_MIN_MESH_TRIANGLES)
    elif level == "moving":
        if n_all <= LOD_MIN_TRIANGLES:
            return {}
        targets = lod_targets(meshes)
    else:
        raise ValueError(f"anatomy_lod_meshes: level {level!r} is neither 'moving' nor 'medium'")
    path = lod_cache_dir() / f"{_meshes_key(meshes, targets)}.npz" if cache else None
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                names = [str(s) for s in z["names"]]
                out = {name: TriMesh(z[f"v{i}"], z[f"f{i}"]) for i, name in enumerate(names)}
            if set(out) == set(meshes):
                return out
        except (OSError, ValueError, KeyError):  # a damaged cache file: decimate again
            pass
    out = {name: decimated_mesh(m, targets[name]) for name, m in meshes.items()}
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            names = sorted(out)
            arrays = {"names": np.array(names)}
            for i, name in enumerate(names):
                arrays[f"v{i}"] = out[name].vertices
                arrays[f"f{i}"] = out[name].faces
            tmp = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npz")
            np.savez(tmp, **arrays)
            os.replace(tmp, path)
            old = sorted(path.parent.glob("*.npz"), key=lambda p: p.stat().st_mtime)[:-LOD_CACHE_KEEP]
            for stale in old:  # copies of anatomies (or decimation settings) not seen for a while
                stale.unlink(missing_ok=True)
        except OSError:  # a read-only data folder: decimate again next time
            pass
    return out


def anatomy_polydata(anatomy: Anatomy) -> dict[str, vtkPolyData]:
    """Polydata per mesh name, built once per anatomy object. Safe to call from a worker thread
    (no rendering), to prepare a scene off the GUI thread."""
    key = id(anatomy)
    hit = _POLY_CACHE.get(key)
    if hit is not None and hit[0]() is anatomy:
        return hit[1]
    polys = {name: polydata_from_mesh(mesh) for name, mesh in anatomy.meshes.items() if mesh.n_triangles}
    _POLY_CACHE[key] = (weakref.ref(anatomy, lambda _r, k=key: _POLY_CACHE.pop(k, None)), polys, None)
    return polys


def anatomy_coarse_polydata(anatomy: Anatomy) -> dict[str, vtkPolyData]:
    """Polydata of the moving frame's decimated copies per mesh name ({} below
    LOD_MIN_TRIANGLES); built once per anatomy object; safe to call from a worker thread."""
    polys = anatomy_polydata(anatomy)
    ref, full, coarse = _POLY_CACHE[id(anatomy)]
    if coarse is None:
        lod = anatomy_lod_meshes(anatomy)
        coarse = {name: (polydata_from_mesh(m) if m is not anatomy.meshes[name] else polys[name])
                  for name, m in lod.items()}
        _POLY_CACHE[id(anatomy)] = (ref, full, coarse)
    return coarse


def coarse_polydata_ready(anatomy: Anatomy) -> bool:
    hit = _POLY_CACHE.get(id(anatomy))
    return hit is not None and hit[0]() is anatomy and hit[2] is not None


_MEDIUM_CACHE: dict[int, tuple[weakref.ref, dict[str, vtkPolyData]]] = {}


def anatomy_medium_polydata(anatomy: Anatomy) -> dict[str, vtkPolyData]:
    """Polydata of the medium still frame's copies per mesh name ({} below MEDIUM_MIN_TRIANGLES;
    meshes the decimation left whole are not in it); built once per anatomy object; safe to call
    from a worker thread."""
    key = id(anatomy)
    hit = _MEDIUM_CACHE.get(key)
    if hit is not None and hit[0]() is anatomy:
        return hit[1]
    mid = anatomy_lod_meshes(anatomy, level="medium")
    polys = {name: polydata_from_mesh(m) for name, m in mid.items() if m is not anatomy.meshes[name]}
    _MEDIUM_CACHE[key] = (weakref.ref(anatomy, lambda _r, k=key: _MEDIUM_CACHE.pop(k, None)), polys)
    return polys


def medium_polydata_ready(anatomy: Anatomy) -> bool:
    hit = _MEDIUM_CACHE.get(id(anatomy))
    return hit is not None and hit[0]() is anatomy


def make_render_window(size=(800, 600), offscreen: bool = True) -> vtkRenderWindow:
    """A render window; offscreen without a display uses EGL directly (no X warning)."""
    if offscreen and sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        from vtkmodules.vtkRenderingOpenGL2 import vtkEGLRenderWindow

        rw = vtkEGLRenderWindow()
    else:
        rw = vtkRenderWindow()
    rw.SetOffScreenRendering(bool(offscreen))
    rw.SetSize(int(size[0]), int(size[1]))
    rw.SetMultiSamples(0)
    return rw


@dataclass
class StructureInfo:
    name: str
    group: str
    tissue: Tissue
    colour: tuple[float, float, float]
    actor: vtkActor
    triangles: int
    #: The moving frame's actor: for an opaque group, the decimated copies of the group's
    #: structures merged into one mesh (one draw call per group), coloured per vertex; for a
    #: translucent group, the structure's own (translucent surfaces blend in draw order, which
    #: follows each structure's distance as in the still frame).
    lod_actor: vtkActor | None = None
    lod_key: str = ""  # the structure's group, or its own name
    lod_triangles: int = 0  # triangles of this structure's decimated copy
    lod_points: tuple[int, int] = (0, 0)  # its points in the group mesh
    #: The medium still frame's actor (a decimated copy; shares the full actor's property, so
    #: colour, opacity and tint follow by themselves), None when the mesh is drawn whole.
    mid_actor: vtkActor | None = None
    mid_triangles: int = 0


# --------------------------------------------------------------------------------------------
# The scene
# --------------------------------------------------------------------------------------------
class AnatomyScene:
    """One renderer showing an anatomy, its targets and the needle. See the module docs."""

    def __init__(self, render_window: vtkRenderWindow | None = None, size=(800, 600), orientation_cube=True):
        self.owns_window = render_window is None
        self.render_window = render_window if render_window is not None else make_render_window(size)
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.09, 0.10, 0.13)
        self.renderer.SetBackground2(0.26, 0.29, 0.34)
        self.renderer.GradientBackgroundOn()
        # Translucency without order-independent transparency: OIT's extra passes cost ~40-60 ms
        # a frame in a software renderer. Every anatomy surface is closed and outward-oriented,
        # so with back faces culled each translucent mesh adds one layer; the skin, drawn last,
        # blends over everything inside it. (Overlapping translucent organs blend in draw order.)
        self.renderer.SetUseOIT(False)
        self.render_window.AddRenderer(self.renderer)
        self.renderer.SetLayer(0)
        # Two lights (a key light above the camera and a headlight): enough to read shapes, and
        # each extra light costs per-pixel work in a software renderer.
        self.light_kit = vtkLightKit()
        self.light_kit.SetKeyLightIntensity(0.75)
        self.light_kit.MaintainLuminanceOff()
        self.light_kit.SetKeyToFillRatio(1000.0)
        self.light_kit.SetKeyToHeadRatio(1.6)
        self.light_kit.SetKeyToBackRatio(1000.0)
        self.light_kit.AddLightsToRenderer(self.renderer)
        lights = self.renderer.GetLights()
        lights.InitTraversal()
        keep = []
        for _ in range(lights.GetNumberOfItems()):
            light = lights.GetNextItem()
            if light.GetIntensity() > 0.01:
                keep.append(light)
        self.renderer.RemoveAllLights()
        for light in keep:
            self.renderer.AddLight(light)

        self.anatomy: Anatomy | None = None
        self.patient_position = "supine"
        self.preset = "AP"
        self.structures: dict[str, StructureInfo] = {}
        self._actor_names: dict[int, str] = {}  # id(actor) -> structure name, for picking
        self._group_visible: dict[str, bool] = {}
        self._group_opacity: dict[str, float] = {}
        self._critical: dict[str, str] = {}  # structure name -> severity
        self._critical_visible = False
        self._target_actors: list[vtkActor] = []
        self._plan_actors: list[vtkActor] = []
        self._locators: dict[str, vtkStaticCellLocator] = {}
        self._group_lod: dict[str, tuple[vtkActor, object]] = {}  # lod_key -> (actor, its colour array)
        self._lod = False
        self._detail = "full"  # "moving" (self._lod), "medium" or "full"
        #: Pixels per side drawn as one in the moving frame (see MOVING_IMAGE_REDUCTION).
        self.image_reduction = MOVING_IMAGE_REDUCTION
        self._frame_reduction = 1  # of the frame being drawn
        self._shown_reduction = 1  # of the last frame drawn
        self._reduced_size = (0, 0)  # its pixels
        self._fit_points: np.ndarray | None = None
        self._last_order: list[int] = []
        self._closed = False

        self._needle_matrix = vtkMatrix4x4()
        self._needle_key: tuple | None = None
        self._needle_shaft = vtkActor()
        self._needle_hub = vtkActor()
        self._needle_shaft.SetMapper(vtkPolyDataMapper())
        self._needle_hub.SetMapper(vtkPolyDataMapper())
        sp = self._needle_shaft.GetProperty()
        sp.SetColor(0.82, 0.83, 0.86)
        sp.SetSpecular(0.9)
        sp.SetSpecularPower(60)
        sp.SetAmbient(0.25)
        hp = self._needle_hub.GetProperty()
        hp.SetSpecular(0.3)
        for a in (self._needle_shaft, self._needle_hub):
            a.SetUserMatrix(self._needle_matrix)
            a.PickableOff()
            a.VisibilityOff()
            self.renderer.AddActor(a)

        # the ultrasound probe and its image plane (probe frame: x lateral towards the marker,
        # y depth into the patient, z elevation; placed by `probe_to_world`)
        self._probe_matrix = vtkMatrix4x4()
        self._probe_key: tuple | None = None
        self._probe_body = vtkActor()
        self._probe_marker = vtkActor()
        self._probe_plane = vtkActor()
        for a in (self._probe_body, self._probe_marker, self._probe_plane):
            a.SetMapper(vtkPolyDataMapper())
            a.SetUserMatrix(self._probe_matrix)
            a.PickableOff()
            a.VisibilityOff()
            self.renderer.AddActor(a)
        self._probe_body.GetProperty().SetColor(0.55, 0.58, 0.64)
        self._probe_body.GetProperty().SetSpecular(0.4)
        self._probe_body.GetProperty().SetOpacity(0.7)  # the structures under it stay readable
        self._probe_marker.GetProperty().SetColor(0.15, 0.55, 1.0)
        self._probe_marker.GetProperty().SetAmbient(0.4)
        pp = self._probe_plane.GetProperty()
        pp.SetColor(0.35, 0.85, 1.0)
        pp.SetOpacity(0.30)
        pp.SetAmbient(0.6)
        pp.BackfaceCullingOff()
        pp.LightingOff()
        self._exam_saved: dict | None = None  # group settings kept while the exam view is on

        self._cube_renderer = None
        if orientation_cube:
            self._add_orientation_cube()
        # Before each frame: opaque surfaces front to back (a software renderer then skips the
        # hidden fragments early), translucent ones back to front with the skin last.
        self._order_tag = self.render_window.AddObserver("StartEvent", self._order_props)
        # The moving frame's reduced image: drawn into the lower-left part of the frame buffer and
        # scaled up onto the window before the buffers swap (priority: before anyone else's
        # EndEvent observer, so that a render's end means the image is on screen).
        self._frame_tags = (self.render_window.AddObserver("StartEvent", self._begin_frame, 10.0),
                            self.render_window.AddObserver("EndEvent", self._end_frame, 10.0))

    # --- anatomy ----------------------------------------------------------------------------
    def set_anatomy(self, anatomy: Anatomy | None, patient_position=None, build_lod: bool = True) -> None:
        """Show `anatomy` (one actor per mesh); keeps group settings; resets the camera.
        Large anatomies also get coarse copies for interactive frames: built here when
        `build_lod`, else attached later by `attach_lod` (the UI builds them on a worker thread)."""
        for info in self.structures.values():
            self.renderer.RemoveActor(info.actor)
        for actor, _colours in self._group_lod.values():
            self.renderer.RemoveActor(actor)
        self._group_lod.clear()
        for info in self.structures.values():
            if info.mid_actor is not None:
                self.renderer.RemoveActor(info.mid_actor)
        self.structures.clear()
        self._actor_names.clear()
        self._locators.clear()
        self._critical.clear()
        self.clear_targets()
        self.anatomy = anatomy
        self._fit_points = None
        if patient_position is not None:
            self.patient_position = _position_name(patient_position)
        if anatomy is None:
            return
        polys = anatomy_polydata(anatomy)
        by_name = {s.name: s for s in anatomy.structures.values()}
        # The skin goes last: translucent props render after opaque ones anyway, but a stable
        # order keeps the picking and the tests deterministic.
        names = sorted(polys, key=lambda n: (n == "skin", n))
        for name in names:
            s = by_name.get(name)
            if name == "skin":
                tissue, group = Tissue.SKIN, "skin"
            elif s is not None:
                tissue, group = s.tissue, s.group
            else:
                tissue = tissue_for_structure(name) or Tissue.SOFT_TISSUE
                group = structure_group(name, tissue)
            colour = tuple(float(c) for c in TISSUE_INFO[tissue].color)
            mapper = vtkPolyDataMapper()
            mapper.SetInputData(polys[name])
            mapper.ScalarVisibilityOff()
            mapper.SetResolveCoincidentTopologyToPolygonOffset()
            actor = vtkActor()
            actor.SetMapper(mapper)
            prop = actor.GetProperty()
            _set_colour(prop, colour)
            prop.SetDiffuse(0.85)
            prop.SetAmbient(0.12)
            prop.SetSpecular(0.25 if group not in ("skin", "muscle", "fat") else 0.08)
            prop.SetSpecularPower(20)
            prop.BackfaceCullingOn()  # closed outward meshes: back faces are never seen
            self.renderer.AddActor(actor)
            info = StructureInfo(name, group, tissue, colour, actor, int(polys[name].GetNumberOfCells()))
            self.structures[name] = info
            self._actor_names[id(actor)] = name
            self._group_visible.setdefault(group, DEFAULT_GROUP_VISIBLE.get(group, True))
            self._group_opacity.setdefault(group, DEFAULT_GROUP_OPACITY.get(group, 1.0))
        verts = [m.vertices for m in anatomy.meshes.values() if m.n_triangles]
        allv = np.concatenate(verts) if verts else np.zeros((0, 3), np.float32)
        self._fit_points = allv[:: max(1, len(allv) // 20000)].astype(np.float64)
        if build_lod or coarse_polydata_ready(anatomy):
            self.attach_lod(anatomy)
        if build_lod or medium_polydata_ready(anatomy):
            self.attach_medium(anatomy)
        for group in self.groups():
            self._apply_group(group)
        if patient_position is not None:
            self.preset = default_preset(self.patient_position)
        self.set_camera_preset(self.preset)

    def groups(self) -> list[str]:
        """The structure groups present in the current anatomy, in display order."""
        present = {info.group for info in self.structures.values()}
        known = [g for g in GROUP_ORDER if g in present]
        return known + sorted(present - set(GROUP_ORDER))

    def group_structures(self, group: str) -> list[str]:
        return sorted(n for n, info in self.structures.items() if info.group == group)

    def triangle_count(self) -> int:
        return sum(info.triangles for info in self.structures.values())

    def lod_triangle_count(self) -> int:
        return sum((info.lod_triangles if info.lod_actor is not None else info.triangles)
                   for info in self.structures.values())

    def set_group_visible(self, group: str, visible: bool) -> None:
        self._group_visible[group] = bool(visible)
        self._apply_group(group)

    def group_visible(self, group: str) -> bool:
        return self._group_visible.get(group, DEFAULT_GROUP_VISIBLE.get(group, True))

    def set_group_opacity(self, group: str, opacity: float) -> None:
        self._group_opacity[group] = float(min(max(opacity, 0.0), 1.0))
        self._apply_group(group)

    def group_opacity(self, group: str) -> float:
        return self._group_opacity.get(group, DEFAULT_GROUP_OPACITY.get(group, 1.0))

    def _apply_group(self, group: str) -> None:
        visible = self.group_visible(group) and self.group_opacity(group) > 0.0
        for info in self.structures.values():
            if info.group == group:
                info.actor.GetProperty().SetOpacity(self.group_opacity(group))
                self._sync_lod_property(info)
                self._show_structure(info, visible)

    def _show_structure(self, info: StructureInfo, visible: bool) -> None:
        coarse = self._detail == "moving" and info.lod_actor is not None
        mid = self._detail == "medium" and info.mid_actor is not None
        info.actor.SetVisibility(visible and not coarse and not mid)
        if info.lod_actor is not None:
            info.lod_actor.SetVisibility(visible and coarse)
        if info.mid_actor is not None:
            info.mid_actor.SetVisibility(visible and mid)

    def attach_medium(self, anatomy: Anatomy) -> bool:
        """Add the medium still frame's actors for `anatomy` (if it is the one shown and is large
        enough): one per decimated structure, sharing the full actor's property."""
        if anatomy is not self.anatomy or self._closed or self.has_medium():
            return False
        mid = anatomy_medium_polydata(anatomy)
        for name, poly in mid.items():
            info = self.structures.get(name)
            if info is None:
                continue
            mapper = vtkPolyDataMapper()
            mapper.SetInputData(poly)
            mapper.ScalarVisibilityOff()
            mapper.SetResolveCoincidentTopologyToPolygonOffset()
            actor = vtkActor()
            actor.SetMapper(mapper)
            actor.SetProperty(info.actor.GetProperty())
            actor.PickableOff()
            actor.VisibilityOff()
            self.renderer.AddActor(actor)
            info.mid_actor = actor
            info.mid_triangles = int(poly.GetNumberOfCells())
        if self.has_medium():
            for group in self.groups():
                self._apply_group(group)
        return self.has_medium()

    def has_medium(self) -> bool:
        return any(info.mid_actor is not None for info in self.structures.values())

    def medium_triangle_count(self) -> int:
        """Triangles of the shown anatomy in the medium still frame."""
        return sum((info.mid_triangles if info.mid_actor is not None else info.triangles)
                   for info in self.structures.values() if self._shown(info))

    @property
    def detail(self) -> str:
        """What the next frame draws: "moving", "medium" or "full" (see `set_detail`)."""
        return self._detail

    def set_detail(self, detail: str) -> bool:
        """Draw the moving frame, the medium still frame (its copies when the anatomy has them,
        else the full meshes) or the full still frame. Returns True if this changed what is
        drawn (then a render is due)."""
        if detail not in DETAILS:
            raise ValueError(f"set_detail: detail {detail!r} is not one of {DETAILS}")
        if detail == self._detail:
            return False
        before = self._drawn_key()
        self._detail = detail
        self._lod = detail == "moving"
        for group in self.groups():
            self._apply_group(group)
        return self._drawn_key() != before

    def _drawn_key(self) -> tuple:
        """What a frame at the current detail draws (which meshes, which image reduction)."""
        coarse = self._detail == "moving"
        meshes = ("moving" if coarse and self.has_lod() else
                  "medium" if self._detail == "medium" and self.has_medium() else "full")
        reduction = self.image_reduction if coarse and self.structures else 1
        return meshes, reduction

    # --- level of detail ----------------------------------------------------------------------
    def attach_lod(self, anatomy: Anatomy) -> bool:
        """Add the moving frame's actors for `anatomy` (if it is the one shown and is large
        enough): per structure group, the decimated copies of its structures in one mesh."""
        if anatomy is not self.anatomy or self._closed or self._group_lod:
            return False
        coarse = anatomy_coarse_polydata(anatomy)
        by_group: dict[str, list[StructureInfo]] = {}
        for name, info in self.structures.items():
            if name in coarse:
                merge = DEFAULT_GROUP_OPACITY.get(info.group, 1.0) >= 1.0
                info.lod_key = f"group:{info.group}" if merge else f"structure:{name}"
                by_group.setdefault(info.lod_key, []).append(info)
        for key, infos in by_group.items():
            append = vtkAppendPolyData()
            start = 0
            for info in infos:
                part = vtkPolyData()
                part.ShallowCopy(coarse[info.name])  # the colours go on the merged mesh only
                n = part.GetNumberOfPoints()
                info.lod_points = (start, start + n)
                info.lod_triangles = int(part.GetNumberOfCells())
                start += n
                append.AddInputData(part)
            append.Update()
            merged = vtkPolyData()
            merged.ShallowCopy(append.GetOutput())
            colours = numpy_to_vtk(np.zeros((start, 3), np.uint8), deep=True)
            colours.SetName("Colours")
            merged.GetPointData().SetScalars(colours)
            mapper = vtkPolyDataMapper()
            mapper.SetInputData(merged)
            mapper.ScalarVisibilityOn()
            mapper.SetColorModeToDirectScalars()
            mapper.SetScalarModeToUsePointData()
            actor = vtkActor()
            actor.SetMapper(mapper)
            actor.PickableOff()
            actor.VisibilityOff()
            self.renderer.AddActor(actor)
            self._group_lod[key] = (actor, colours)
            for info in infos:
                info.lod_actor = actor
                self._sync_lod_property(info)
        if by_group:
            for group in self.groups():
                self._apply_group(group)
        return bool(by_group)

    def _sync_lod_property(self, info: StructureInfo) -> None:
        """The moving frame looks like the still one: the group actor takes the structure's
        opacity and lighting, its vertices the structure's colour (a critical structure's tint
        too). Decimation keeps the meshes closed and outward-oriented: back faces are culled as
        on the full meshes."""
        if info.lod_actor is None:
            return
        main = info.actor.GetProperty()
        lod = info.lod_actor.GetProperty()
        lod.SetAmbient(0.12)
        lod.SetDiffuse(main.GetDiffuse())
        lod.SetSpecular(main.GetSpecular())
        lod.SetSpecularPower(main.GetSpecularPower())
        lod.SetSpecularColor(main.GetSpecularColor())
        lod.SetOpacity(main.GetOpacity())
        lod.SetBackfaceCulling(main.GetBackfaceCulling())
        _actor, colours = self._group_lod[info.lod_key]
        rgb = np.clip(np.round(np.array(main.GetDiffuseColor()) * 255.0), 0, 255).astype(np.uint8)
        a, b = info.lod_points
        view = vtk_to_numpy(colours)
        if b > a and not np.array_equal(view[a], rgb):
            view[a:b] = rgb
            colours.Modified()

    def lod_colour(self, name: str) -> tuple[float, float, float]:
        """The colour (0-1) of a structure in the moving frame."""
        info = self.structures[name]
        _actor, colours = self._group_lod[info.lod_key]
        return tuple(float(c) / 255.0 for c in vtk_to_numpy(colours)[info.lod_points[0]])

    def has_lod(self) -> bool:
        return any(info.lod_actor is not None for info in self.structures.values())

    def set_lod(self, coarse: bool) -> bool:
        """Draw the moving frame (the decimated copies of a large anatomy, and the image at
        1/image_reduction of the window's pixels per side) or the full still frame (full meshes,
        full resolution). Returns True if this changed what is drawn (then a render is due)."""
        return self.set_detail("moving" if coarse else "full")

    def _shown(self, info: StructureInfo) -> bool:
        return self.group_visible(info.group) and self.group_opacity(info.group) > 0.0

    def moving_triangle_count(self) -> int:
        """Triangles of the shown anatomy in the moving frame (the decimated copies)."""
        return sum((info.lod_triangles if info.lod_actor is not None else info.triangles)
                   for info in self.structures.values() if self._shown(info))

    def still_triangle_count(self) -> int:
        """Triangles of the shown anatomy in the still frame (the full meshes)."""
        return sum(info.triangles for info in self.structures.values() if self._shown(info))

    def frame_reduction(self) -> int:
        """Pixels per side drawn as one in the last frame (1: full resolution)."""
        return self._shown_reduction

    # --- the moving frame's reduced image ---------------------------------------------------------
    def _moving_reduction(self) -> int:
        f = int(self.image_reduction) if self._lod and self.structures else 1
        w, h = self.render_window.GetSize()
        return f if f > 1 and min(w, h) >= 64 * f else 1

    def _begin_frame(self, *_):
        if self._closed:
            return
        f = self._moving_reduction()
        self._frame_reduction = f
        if f > 1:
            self.renderer.SetViewport(0.0, 0.0, 1.0 / f, 1.0 / f)
            self._reduced_size = tuple(self.renderer.GetSize())
            if not self.render_window.GetOffScreenRendering():
                self.render_window.SwapBuffersOff()  # _end_frame puts the scaled image up and swaps
        self._fit_needle_width(f)

    def needle_width_scale(self) -> float:
        """How much wider than its gauge the shaft was drawn in the last frame (>= 1)."""
        return float(self._needle_shaft.GetScale()[0])

    def _fit_needle_width(self, reduction: int) -> None:
        """Widen the shaft (across its axis only) to NEEDLE_MIN_WIDTH_PX pixels of the image drawn."""
        if not self._needle_shaft.GetVisibility() or self._needle_key is None:
            return
        w, h = self.render_window.GetSize()
        h_px = max(1.0, h / max(1, reduction))
        cam = self.renderer.GetActiveCamera()
        if cam.GetParallelProjection():
            mm_per_px = 2.0 * cam.GetParallelScale() / h_px
        else:
            tip = np.array([self._needle_matrix.GetElement(i, 3) for i in range(3)])
            depth = float(np.dot(tip - np.array(cam.GetPosition()), np.array(cam.GetDirectionOfProjection())))
            mm_per_px = 2.0 * max(depth, 1.0) * math.tan(math.radians(cam.GetViewAngle() / 2.0)) / h_px
        k = max(1.0, NEEDLE_MIN_WIDTH_PX * mm_per_px / max(self._needle_key[1], 1e-3))
        if abs(k - self._needle_shaft.GetScale()[0]) > 1e-3:
            self._needle_shaft.SetScale(k, k, 1.0)

    def _end_frame(self, *_):
        f, self._frame_reduction = self._frame_reduction, 1
        self._shown_reduction = f
        if f <= 1:
            return
        self.renderer.SetViewport(0.0, 0.0, 1.0, 1.0)
        rw = self.render_window
        if rw.GetOffScreenRendering():
            return  # nothing on screen: screenshot() scales the reduced image itself
        w, h = rw.GetSize()
        w2, h2 = self._reduced_size
        state = rw.GetState()
        state.PushFramebufferBindings()
        fb = rw.GetRenderFramebuffer()
        fb.Bind(_GL_READ_FRAMEBUFFER)
        fb.ActivateReadBuffer(0)
        state.vtkglBindFramebuffer(_GL_DRAW_FRAMEBUFFER, 0)  # the window's own buffer
        state.vtkglDrawBuffer(_GL_BACK_LEFT if rw.GetDoubleBuffer() else _GL_FRONT_LEFT)
        state.vtkglViewport(0, 0, w, h)
        state.vtkglScissor(0, 0, w, h)
        state.vtkglBlitFramebuffer(0, 0, w2, h2, 0, 0, w, h, _GL_COLOR_BUFFER_BIT, _GL_LINEAR)
        state.PopFramebufferBindings()
        mode = rw.GetFrameBlitMode()
        rw.SetFrameBlitModeToNoBlit()  # keep the scaled image: Frame() only swaps the buffers
        rw.SwapBuffersOn()
        rw.Frame()
        rw.SetFrameBlitMode(mode)

    @property
    def lod(self) -> bool:
        return self._lod

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

    # --- exam view --------------------------------------------------------------------------------
    def set_exam_view(self, on: bool) -> None:
        """Exam mode: only what the operator sees at the table - the opaque skin, the needle and
        the probe outside it; every inner structure hidden (nothing reveals the target). Off: the
        groups' visibility and opacity as they were."""
        on = bool(on)
        if on == (self._exam_saved is not None):
            return
        if on:
            self._exam_saved = {g: (self.group_visible(g), self.group_opacity(g)) for g in self.groups()}
            for g in self.groups():
                self._group_visible[g] = g == "skin"
                if g == "skin":
                    self._group_opacity[g] = 1.0
                self._apply_group(g)
            if "skin" not in self.groups():  # no skin surface: show the outermost structures opaque
                for g in self.groups():
                    self._group_visible[g] = True
                    self._group_opacity[g] = 1.0
                    self._apply_group(g)
        else:
            saved, self._exam_saved = self._exam_saved, None
            for g, (vis, op) in saved.items():
                self._group_visible[g] = vis
                self._group_opacity[g] = op
                self._apply_group(g)

    @property
    def exam_view(self) -> bool:
        return self._exam_saved is not None

    # --- picking and projection -------------------------------------------------------------------
    def pick_surface(self, display_x: float, display_y: float, structures: Iterable[str] | None = None):
        """The first visible surface under a display point (VTK display coordinates: pixels from the
        bottom-left corner). Returns (point_mm (3,), structure_name) or None.
        `structures` restricts the pick (e.g. ["skin"] to choose an entry point)."""
        names = list(structures) if structures is not None else list(self.structures)
        if self._detail != "full":  # pick on the full meshes (picking is geometry only: no render)
            detail = self._detail
            self.set_detail("full")
            try:
                return self.pick_surface(display_x, display_y, names)
            finally:
                self.set_detail(detail)
        picker = vtkCellPicker()
        picker.SetTolerance(0.0005)
        picker.PickFromListOn()
        n = 0
        for name in names:
            info = self.structures.get(name)
            if info is None or not info.actor.GetVisibility():
                continue
            picker.AddPickList(info.actor)
            picker.AddLocator(self._locator(name))
            n += 1
        if n == 0:
            return None
        if not picker.Pick(float(display_x), float(display_y), 0.0, self.renderer):
            return None
        actor = picker.GetActor()
        name = self._actor_names.get(id(actor)) if actor is not None else None
        if name is None:
            return None
        return np.array(picker.GetPickPosition(), dtype=float), name

    def _locator(self, name: str) -> vtkStaticCellLocator:
        loc = self._locators.get(name)
        if loc is None:
            loc = vtkStaticCellLocator()
            loc.SetDataSet(self.structures[name].actor.GetMapper().GetInput())
            loc.BuildLocator()
            self._locators[name] = loc
        return loc

    def world_to_display(self, point_mm) -> tuple[float, float, float]:
        """Display coordinates (x, y from the bottom-left, depth) of a world point."""
        self.renderer.SetWorldPoint(float(point_mm[0]), float(point_mm[1]), float(point_mm[2]), 1.0)
        self.renderer.WorldToDisplay()
        return tuple(self.renderer.GetDisplayPoint())  # type: ignore[return-value]

    # --- output ---------------------------------------------------------------------------------
    def set_size(self, width: int, height: int) -> None:
        self.render_window.SetSize(int(width), int(height))

    def render(self) -> None:
        if self._closed:
            return
        self.renderer.ResetCameraClippingRange()
        self.render_window.Render()

    def screenshot(self) -> np.ndarray:
        """The current view as an (H, W, 3) uint8 RGB array, row 0 at the top (renders first)."""
        if self._closed:
            raise RuntimeError("screenshot of a closed scene")
        self.render()
        f = vtkWindowToImageFilter()
        f.SetInput(self.render_window)
        f.SetInputBufferTypeToRGB()
        f.ReadFrontBufferOff()
        f.ShouldRerenderOff()
        f.Update()
        img = f.GetOutput()
        w, h, _ = img.GetDimensions()
        arr = vtk_to_numpy(img.GetPointData().GetScalars()).reshape(h, w, -1)[:, :, :3]
        if self._shown_reduction > 1:  # the moving frame: its image scaled up as on screen
            w2, h2 = self._reduced_size
            arr = _scale_image(arr[:h2, :w2], w, h)
        return np.ascontiguousarray(arr[::-1])

    def close(self) -> None:
        """Release the scene; a window this scene created is finalized. Nothing renders after."""
        if self._closed:
            return
        self._closed = True
        self.renderer.RemoveAllViewProps()
        self.renderer.RemoveAllObservers()  # _sync_cube: a Python callable held by C++ (a cycle)
        self.render_window.RemoveObserver(self._order_tag)
        for tag in self._frame_tags:
            self.render_window.RemoveObserver(tag)
        self.render_window.RemoveRenderer(self.renderer)
        if self._cube_renderer is not None:
            self.render_window.RemoveRenderer(self._cube_renderer)
        if self.owns_window:
            self.render_window.Finalize()

    @property
    def closed(self) -> bool:
        return self._closed

    # --- draw order ------------------------------------------------------------------------------
    def _order_props(self, *_):
        if self._closed or not self.structures:
            return
        pos = np.array(self.renderer.GetActiveCamera().GetPosition())
        opaque, translucent = [], []
        seen = set()
        for info in self.structures.values():
            for actor in (info.actor, info.lod_actor, info.mid_actor):
                if actor is None or id(actor) in seen or not actor.GetVisibility():
                    continue
                seen.add(id(actor))
                b = actor.GetBounds()
                centre = np.array([(b[0] + b[1]) / 2, (b[2] + b[3]) / 2, (b[4] + b[5]) / 2])
                d = float(np.linalg.norm(centre - pos))
                if actor.GetProperty().GetOpacity() < 1.0:
                    skin = info.name == "skin" if actor is info.actor else info.group == "skin"
                    translucent.append((skin, -d, id(actor), actor))
                else:
                    opaque.append((d, id(actor), actor))
        order = [a for *_k, a in sorted(opaque)] + [a for *_k, a in sorted(translucent)]
        if [id(a) for a in order] == self._last_order:
            return
        # Reorder the renderer's prop collection itself: vtkRenderer.RemoveActor would release
        # each actor's graphics resources, and every reorder (a camera turn, the switch between
        # the moving and the still frame) would upload all the meshes again.
        props = self.renderer.GetViewProps()
        for a in order:
            props.RemoveItem(a)
        for a in order:
            props.AddItem(a)
        self._last_order = [id(a) for a in order]

    def draw_order(self) -> list[str]:
        """Names of the visible anatomy actors in the order of the last frame (for tests)."""
        names = {id(i.actor): n for n, i in self.structures.items()}
        names.update({id(i.lod_actor): n for n, i in self.structures.items() if i.lod_actor is not None})
        names.update({id(i.mid_actor): n for n, i in self.structures.items() if i.mid_actor is not None})
        return [names[i] for i in self._last_order if i in names]

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


# --------------------------------------------------------------------------------------------
# Geometry helpers
# --------------------------------------------------------------------------------------------
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
    from vtkmodules.vtkFiltersSources import vtkCubeSource
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


def _scale_image(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """(h, w, c) uint8 scaled to (height, width, c) with bilinear interpolation (pixel centres
    aligned, edges clamped), as OpenGL's linear blit does."""
    h, w = img.shape[:2]
    ys = np.clip((np.arange(height) + 0.5) * h / height - 0.5, 0, h - 1)
    xs = np.clip((np.arange(width) + 0.5) * w / width - 0.5, 0, w - 1)
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    y1 = np.minimum(y0 + 1, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    fy = (ys - y0)[:, None, None]
    fx = (xs - x0)[None, :, None]
    a = img.astype(np.float32)
    top = a[y0][:, x0] * (1 - fx) + a[y0][:, x1] * fx
    bottom = a[y1][:, x0] * (1 - fx) + a[y1][:, x1] * fx
    return np.clip(top * (1 - fy) + bottom * fy + 0.5, 0, 255).astype(np.uint8)


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
    return GAUGE_DIAMETER_MM.get(int(gauge), 0.72)


def needle_tip_to_world_from(tip_mm, direction) -> np.ndarray:
    """A needle pose (4x4) with its tip at `tip_mm`, advancing along `direction` (+Z)."""
    z = np.asarray(direction, dtype=float)
    z = z / np.linalg.norm(z)
    helper = _R if abs(z[0]) < 0.9 else _A
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, np.asarray(tip_mm, dtype=float)
    return m
