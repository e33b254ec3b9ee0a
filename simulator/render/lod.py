"""Levels of detail of the 3D scene: the moving frame (decimated copies merged per structure group,
the image drawn at reduced resolution and scaled up), the medium still frame, and the full
meshes; decimated copies are cached on disk by content. See `simulator.render.scene`.
"""
from __future__ import annotations

import hashlib
import math
import os
import threading
import weakref
from pathlib import Path

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkFiltersCore import vtkAppendPolyData, vtkQuadricDecimation
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

from typing import TYPE_CHECKING

from simulator.core.anatomy import Anatomy, TriMesh
from simulator.anatomy.vtk_mesh import polydata_from_mesh, polydata_to_trimesh

if TYPE_CHECKING:
    from simulator.render.structures import StructureInfo


# OpenGL enums for the moving frame's scaled blit
_GL_READ_FRAMEBUFFER = 0x8CA8
_GL_DRAW_FRAMEBUFFER = 0x8CA9
_GL_COLOR_BUFFER_BIT = 0x4000
_GL_LINEAR = 0x2601
_GL_BACK_LEFT = 0x0402
_GL_FRONT_LEFT = 0x0400

# The moving frame (while the needle, the probe or the camera moves; the still frame follows
# ~0.25 s after the input stops). Measured on this 2-core machine with Mesa's llvmpipe (bundled
# patient, 410k triangles in 92 meshes, a 356x904 view): a still frame costs ~120-150 ms, about
# half per-triangle work (vertex shading and triangle setup run on one thread) and half per-pixel
# work (Phong shading of ~4 layers: the opaque organs, the translucent lungs, muscles and skin,
# plus the full-size clears and blits). So the moving frame cuts both: decimated copies of the
# meshes (quadric decimation, ~30k triangles in all) and an image drawn at 1/2 x 1/2 of the
# view's pixels and scaled up (what ParaView calls the image reduction factor).

# Polydata built once per anatomy object (the UI keeps anatomies cached by ref, and switching
# back to a scenario must not rebuild half a million triangles).
_POLY_CACHE: dict[int, tuple[weakref.ref, dict[str, vtkPolyData], dict[str, vtkPolyData] | None]] = {}

#: Anatomies above this many triangles get decimated copies for the moving frame.
LOD_MIN_TRIANGLES = 60_000
#: Triangles in the moving frame's copies of a large anatomy (in all).
LOD_TARGET_TRIANGLES = 30_000
#: A structure keeps at least this many triangles in its copy (small ones stay recognisable).
LOD_MIN_MESH_TRIANGLES = 160
#: Pixels per side drawn as one while moving (1: full resolution).
MOVING_IMAGE_REDUCTION = 2
#: ... and while a tracker streams poses (`streaming`): every frame is a moving one then, drawn as
#: often as the CPU allows, and 3 x 3 pixels as one cost ~20% less than 2 x 2 (bundled patient,
#: 356x904 view, llvmpipe, process CPU per frame: 26 -> 21.5 ms median, load ~9) while the needle
#: stays at least NEEDLE_MIN_WIDTH_PX wide.
STREAM_IMAGE_REDUCTION = 3
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
    return polydata_to_trimesh(out)


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


class LodMixin:
    """Part of `AnatomyScene` (simulator.render.scene)."""

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
        reduction = self.moving_image_reduction() if coarse and self.structures else 1
        return meshes, reduction

    # --- level of detail ----------------------------------------------------------------------
    def attach_lod(self, anatomy: Anatomy) -> bool:
        """Add the moving frame's actors for `anatomy` (if it is the one shown and is large
        enough): per structure group, the decimated copies of its structures in one mesh - the
        translucent groups too (one opacity per group): the muscles, lungs and bowel in three draw
        calls instead of ~20 (bundled patient: 33 props -> 19, ~0.7 ms less of the GUI thread per
        moving frame). Within a group the structures blend in mesh order rather than back to front;
        same opacity, similar colours: under 0.5% of the pixels differ by more than 10 levels."""
        if anatomy is not self.anatomy or self._closed or self._group_lod:
            return False
        coarse = anatomy_coarse_polydata(anatomy)
        by_group: dict[str, list[StructureInfo]] = {}
        for name, info in self.structures.items():
            if name in coarse:
                info.lod_key = f"group:{info.group}"
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
    def moving_image_reduction(self) -> int:
        """Pixels per side drawn as one in a moving frame now (`image_reduction`, or
        STREAM_IMAGE_REDUCTION when coarser while `streaming`)."""
        f = int(self.image_reduction)
        return max(f, STREAM_IMAGE_REDUCTION) if self.streaming and f > 1 else f

    def _moving_reduction(self) -> int:
        f = self.moving_image_reduction() if self._lod and self.structures else 1
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
