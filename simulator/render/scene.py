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

Where each job lives (`AnatomyScene` combines them; this module holds the scene itself: the
anatomy's actors, groups, the exam view, picking, output and draw order):
- `camera`: camera presets, fitting the view, the orientation cube;
- `lod`: the moving and medium frames (decimated copies, cached on disk; the reduced image);
- `overlays`: targets, the plan, critical structures; the needle and the ultrasound probe;
- `glyphs`: needle, probe, sphere and tube polydata, gauge sizes and colours;
- `structures`: group order and defaults, `StructureInfo`;
- numpy <-> VTK meshes: `simulator.anatomy.vtk_mesh`.
"""
from __future__ import annotations

import sys
from typing import Iterable

import numpy as np
import vtkmodules.vtkInteractionStyle  # noqa: F401  (registers the interactor styles)
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (registers the OpenGL back end)
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkCommonDataModel import vtkStaticCellLocator
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkCellPicker,
    vtkLightKit,
    vtkPolyDataMapper,
    vtkRenderer,
    vtkRenderWindow,
    vtkWindowToImageFilter,
)

from simulator.core.anatomy import Anatomy
from simulator.core.display import x_display_available
from simulator.core.tissue import TISSUE_INFO, Tissue, structure_group, tissue_for_structure
from simulator.render.camera import CameraMixin, _position_name, default_preset
from simulator.render.glyphs import _set_colour
from simulator.render.lod import (
    MOVING_IMAGE_REDUCTION,
    LodMixin,
    _scale_image,
    anatomy_polydata,
    coarse_polydata_ready,
    medium_polydata_ready,
)
from simulator.render.overlays import OverlaysMixin
from simulator.render.structures import DEFAULT_GROUP_OPACITY, DEFAULT_GROUP_VISIBLE, GROUP_ORDER, StructureInfo

def make_render_window(size=(800, 600), offscreen: bool = True) -> vtkRenderWindow:
    """A render window; offscreen without a display uses EGL directly (no X warning)."""
    if offscreen and sys.platform.startswith("linux") and not x_display_available():
        from vtkmodules.vtkRenderingOpenGL2 import vtkEGLRenderWindow

        rw = vtkEGLRenderWindow()
    else:
        rw = vtkRenderWindow()
    rw.SetOffScreenRendering(bool(offscreen))
    rw.SetSize(int(size[0]), int(size[1]))
    rw.SetMultiSamples(0)
    return rw


# --------------------------------------------------------------------------------------------
# The scene
# --------------------------------------------------------------------------------------------
class AnatomyScene(LodMixin, CameraMixin, OverlaysMixin):
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
        #: A tracker streams poses (set by the Qt view): moving frames at STREAM_IMAGE_REDUCTION.
        self.streaming = False
        self._frame_reduction = 1  # of the frame being drawn
        self._shown_reduction = 1  # of the last frame drawn
        self._reduced_size = (0, 0)  # its pixels
        self._fit_points: np.ndarray | None = None
        self._last_order: list[int] = []
        self._order_key: tuple | None = None  # camera position and the actors' modification times
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
        cam_pos = self.renderer.GetActiveCamera().GetPosition()
        key = (cam_pos, tuple((id(a), a.GetMTime()) for info in self.structures.values()
                              for a in (info.actor, info.lod_actor, info.mid_actor) if a is not None))
        if key == self._order_key:
            return  # nothing moved, shown, hidden or faded since the last frame (a stream of needle poses)
        self._order_key = key
        pos = np.array(cam_pos)
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
