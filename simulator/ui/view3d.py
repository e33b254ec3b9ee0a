"""The 3D view: an `AnatomyScene` inside a QVTKRenderWindowInteractor (composed, not inherited).

- Renders are requested with `request_render()` and coalesced by a zero-delay single-shot timer:
  a burst of changes already queued (a slider drag, a stream of needle poses) costs one render.
- While something moves (the needle, the probe, a slider, a camera drag) the view draws the
  scene's moving frame (decimated meshes, an image at half the pixels per side, scaled up); once
  the input has paused for STILL_DELAY_MS the still frame (full meshes, full resolution) follows,
  one render for the whole pause.
- Nothing renders after `shutdown()` (called by the main window's closeEvent): the timer stops,
  the interactor stops rendering and the render window is finalized.
- A left click without a drag picks the visible surface under the cursor and emits
  `surface_picked(point_mm, structure_name)` (the entry point on the skin, later issues).
- Keys are not passed to VTK's interactor style (whose single-letter keys toggle stereo,
  wireframe, quit, ...); the window's actions own the keyboard.
- The wheel drives the needle (`wheel_steps`); Ctrl+wheel zooms the camera. Ctrl+left drag turns
  the needle (`needle_dragged`); a plain left drag turns the camera.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import vtkmodules.qt

vtkmodules.qt.PyQtImpl = "PySide6"

from PySide6.QtCore import QEvent, QObject, QSize, Qt, QTimer, Signal  # noqa: E402
from PySide6.QtWidgets import QVBoxLayout, QWidget  # noqa: E402
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor  # noqa: E402
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera  # noqa: E402

import simulator.render.scene as scene_mod  # noqa: E402
from simulator.render.scene import AnatomyScene, anatomy_coarse_polydata  # noqa: E402

CLICK_SLOP_PX = 4
#: A render request waits for the events already queued (a burst of changes makes one render),
#: then renders: no fixed delay on top of the render itself.
RENDER_COALESCE_MS = 0
STILL_DELAY_MS = 250  # after the last interactive change, the full meshes come back


class _InputFilter(QObject):
    """Sits in front of the VTK widget: keeps key events away from the VTK interactor (window
    shortcuts still fire first) and tells a click from a drag. (VTK observers cannot see the
    button release: the interactor style grabs the focus while a button is down.)"""

    def __init__(self, view: "View3D"):
        super().__init__(view)
        self.view = view
        self.press_pos = None
        self.drag_pos = None  # Ctrl+left drag: turning the needle
        self.wheel_accum = 0.0

    def eventFilter(self, obj, event):  # noqa: N802 (Qt API)
        t = event.type()
        if t in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            event.ignore()
            return True
        ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier) if hasattr(event, "modifiers") else False
        if t == QEvent.Type.Wheel:
            if ctrl or not self.view.wheel_advances:
                return False  # Ctrl+wheel zooms the camera (VTK)
            d = event.angleDelta()
            self.wheel_accum += (d.y() if d.y() != 0 else d.x()) / 120.0
            steps = int(self.wheel_accum) if abs(self.wheel_accum) >= 1 else 0
            if steps:
                self.wheel_accum -= steps
                self.view.wheel_steps.emit(float(steps), event.modifiers())
            return True
        if t == QEvent.Type.MouseButtonPress and event.button() == Qt.MouseButton.LeftButton and ctrl:
            self.drag_pos = event.position()
            return True
        if self.drag_pos is not None:
            if t == QEvent.Type.MouseMove:
                p = event.position()
                self.view.needle_dragged.emit(p.x() - self.drag_pos.x(), p.y() - self.drag_pos.y())
                self.drag_pos = p
                return True
            if t == QEvent.Type.MouseButtonRelease and event.button() == Qt.MouseButton.LeftButton:
                self.drag_pos = None
                return True
        if t == QEvent.Type.MouseButtonPress and event.button() == Qt.MouseButton.LeftButton:
            self.press_pos = event.position()
        elif t == QEvent.Type.MouseButtonRelease and event.button() == Qt.MouseButton.LeftButton:
            p0, self.press_pos = self.press_pos, None
            p1 = event.position()
            if p0 is not None and abs(p1.x() - p0.x()) <= CLICK_SLOP_PX and abs(p1.y() - p0.y()) <= CLICK_SLOP_PX:
                self.view._clicked(p1.x(), p1.y())
        return False


class View3D(QWidget):
    surface_picked = Signal(object, str)  # point_mm (np.ndarray (3,)), structure name
    _lod_built = Signal(object)  # anatomy whose coarse copies a worker thread has built
    rendered = Signal(float)  # milliseconds the last render took
    wheel_steps = Signal(float, object)  # wheel notches (+ away from the user), modifiers: the needle
    needle_dragged = Signal(float, float)  # Ctrl+left drag (widget px): turn the needle

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("view3d")
        self.vtk_widget = QVTKRenderWindowInteractor(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.vtk_widget)
        self.render_window = self.vtk_widget.GetRenderWindow()
        self.render_window.SetMultiSamples(0)
        self.scene = AnatomyScene(render_window=self.render_window)
        self.interactor = self.render_window.GetInteractor()
        self._style = vtkInteractorStyleTrackballCamera()
        self.interactor.SetInteractorStyle(self._style)
        self.interactor.Initialize()
        self._input_filter = _InputFilter(self)
        self.vtk_widget.installEventFilter(self._input_filter)
        # The interactor renders on paint events and camera drags; time those too.
        self.render_window.AddObserver("StartEvent", self._on_render_start)
        self.render_window.AddObserver("EndEvent", self._on_render_end)
        self._t0 = 0.0
        self.last_render_ms = float("nan")
        self.render_count = 0
        self.pick_structures: list[str] | None = None  # None: any visible structure
        self.wheel_advances = True  # the wheel drives the needle; Ctrl+wheel zooms
        self.last_render_end = 0.0  # perf_counter at the end of the last render
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(RENDER_COALESCE_MS)
        self._timer.timeout.connect(self._render_now)
        self._still_timer = QTimer(self)
        self._still_timer.setSingleShot(True)
        self._still_timer.setInterval(STILL_DELAY_MS)
        self._still_timer.timeout.connect(self._render_still)
        self._interacting = False
        self._lod_built.connect(self._attach_lod)
        self._style.AddObserver("StartInteractionEvent", self._on_interaction_start)
        self._style.AddObserver("EndInteractionEvent", self._on_interaction_end)
        self._lod_pending = None  # an anatomy whose copies are built after the first frame
        self._closed = False

    # --- rendering ----------------------------------------------------------------------------
    def request_render(self, interactive: bool = False) -> None:
        """Ask for a render soon; many requests within a timer period make one render.
        `interactive=True` (a stream of changes: the needle moving, a slider dragged) draws the
        moving frame now (decimated meshes, reduced image: see `AnatomyScene.set_lod`) and the
        still frame once the stream has paused for STILL_DELAY_MS."""
        if self._closed:
            return
        if interactive:
            self.scene.set_lod(True)
            self._still_timer.start()
        if not self._timer.isActive():
            self._timer.start()

    def render_now(self) -> None:
        """Render at once (full meshes)."""
        self._timer.stop()
        self._still_timer.stop()
        if not self._closed:
            self.scene.set_lod(False)
        self._render_now()

    def set_anatomy(self, anatomy, patient_position=None) -> None:
        """Show an anatomy; its decimated copies for the moving frame (large anatomies) are built
        (or read from their cache) on a worker thread and attached when ready, so the full meshes
        appear without waiting for them."""
        self.scene.set_anatomy(anatomy, patient_position, build_lod=False)
        self._lod_pending = None
        if anatomy is not None and not self.scene.has_lod() and self.scene.triangle_count() > scene_mod.LOD_MIN_TRIANGLES:
            if self.render_count > 0:
                self._start_lod(anatomy)
            else:  # after the first frame: the window comes up without sharing the CPU with it
                self._lod_pending = anatomy

    def _start_lod(self, anatomy) -> None:
        threading.Thread(target=self._build_lod, args=(anatomy,), name="build-lod", daemon=True).start()

    def _build_lod(self, anatomy) -> None:
        try:
            anatomy_coarse_polydata(anatomy)
        except Exception:  # noqa: BLE001 - without coarse copies the view is only slower
            return
        if not self._closed:
            try:
                self._lod_built.emit(anatomy)
            except RuntimeError:  # the widget is gone
                pass

    def _attach_lod(self, anatomy) -> None:
        if not self._closed:
            self.scene.attach_lod(anatomy)

    def _on_interaction_start(self, *_):
        self._interacting = True
        self._still_timer.stop()
        if self.scene.set_lod(True):
            self.scene.render()  # the style renders the drag itself; this draws the coarse meshes now

    def _on_interaction_end(self, *_):
        self._interacting = False
        self._still_timer.start()

    def _render_still(self) -> None:
        if self._closed or self._interacting:
            return
        if self.scene.set_lod(False):
            self._render_now()

    def _render_now(self) -> None:
        if self._closed or not self.isVisible():
            return
        self.scene.render()

    def _on_render_start(self, *_):
        self._t0 = time.perf_counter()

    def _on_render_end(self, *_):
        self.last_render_end = time.perf_counter()
        self.last_render_ms = 1000.0 * (self.last_render_end - self._t0)
        self.render_count += 1
        if self._lod_pending is not None:
            anatomy, self._lod_pending = self._lod_pending, None
            self._start_lod(anatomy)
        self.rendered.emit(self.last_render_ms)

    def screenshot(self) -> np.ndarray:
        """The 3D view's pixels (H, W, 3) uint8, read back from the render window."""
        return self.scene.screenshot()

    # --- picking --------------------------------------------------------------------------------
    def _clicked(self, x: float, y: float) -> None:
        """A left click (no drag) at widget position (x, y): pick the surface under it."""
        if self._closed:
            return
        dx, dy = display_point_from_widget(self, x, y)
        hit = self.scene.pick_surface(dx, dy, self.pick_structures)
        if hit is not None:
            self.surface_picked.emit(hit[0], hit[1])

    # --- lifetime --------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def shutdown(self) -> None:
        """Stop rendering for good and release the OpenGL window (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._timer.stop()
        self._still_timer.stop()
        self.interactor.EnableRenderOff()
        self.scene.close()
        self.vtk_widget.Finalize()
        # Observers holding Python callables (ours, the scene's and QVTK's own) form reference
        # cycles through C++ that Python's collector cannot see; break them so the render window
        # is destroyed with this widget, while the X display is still there.
        for obj in (self.interactor, self.render_window, self._style):
            obj.RemoveAllObservers()

    def closeEvent(self, event):  # noqa: N802 (Qt API)
        self.shutdown()
        super().closeEvent(event)

    def sizeHint(self):  # noqa: N802 (Qt API)
        return QSize(900, 700)


def display_point_from_widget(view: View3D, x: float, y: float) -> tuple[float, float]:
    """VTK display coordinates (bottom-left origin, device pixels) of a widget position."""
    ratio = view.vtk_widget.devicePixelRatioF()
    return x * ratio, (view.vtk_widget.height() - 1 - y) * ratio


def widget_point_from_display(view: View3D, x: float, y: float) -> tuple[int, int]:
    """Widget position (top-left origin, logical pixels) of VTK display coordinates."""
    ratio = view.vtk_widget.devicePixelRatioF()
    return int(round(x / ratio)), int(round(view.vtk_widget.height() - 1 - y / ratio))


__all__ = ["View3D", "display_point_from_widget", "widget_point_from_display"]
