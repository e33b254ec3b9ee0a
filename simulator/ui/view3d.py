"""The 3D view: an `AnatomyScene` inside a QVTKRenderWindowInteractor (composed, not inherited).

- Renders are requested with `request_render()` and coalesced by a zero-delay single-shot timer:
  a burst of changes already queued (a slider drag, a stream of needle poses) costs one render,
  and renders begin at most about once per display frame (the screen's refresh period) on average:
  RATE_FRAMES frames take at least RATE_FRAMES * RATE_PERIODS periods, one at least MIN_GAP_PERIODS;
  a full period after a frame that drew several poses of a stream (`note_stream_inputs`: a tracker
  faster than the frames). See `_frame_wait_ms`.
- While `hold_moving()` says a tracker streams poses, the view stays on its moving frame (no
  still frame between poses) and draws it a little coarser (`AnatomyScene.streaming`);
  `before_render` callables run just before each render (the poses that came meanwhile are applied
  then and drawn by it).
- While something moves (the needle, the probe, a slider, a camera drag) the view draws the
  scene's moving frame (decimated meshes, an image at half the pixels per side, scaled up); once
  the input has paused for STILL_DELAY_MS the medium still frame follows (full resolution, a large
  anatomy's medium copies: about half the full frame's render time), and the full meshes
  only once nothing has been input for FULL_DELAY_MS: a key pressed just after a pause waits
  for a medium render at most, and the full render, the only long one, comes when the trainee has
  stopped. Any input to the application (keys, mouse buttons, wheel, drags: an application event
  filter keeps the time of the last one) postpones the full frame again; one render per level
  for the whole pause.
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

import collections
import math
import threading
import time

import numpy as np
import vtkmodules.qt

vtkmodules.qt.PyQtImpl = "PySide6"

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QSize, Qt, QTimer, Signal  # noqa: E402
from PySide6.QtWidgets import QVBoxLayout, QWidget  # noqa: E402
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor  # noqa: E402
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera  # noqa: E402

import simulator.render.lod as lod_mod  # noqa: E402
from simulator.render.lod import anatomy_coarse_polydata, anatomy_medium_polydata  # noqa: E402
from simulator.render.scene import AnatomyScene  # noqa: E402

CLICK_SLOP_PX = 4
#: A render request waits for the events already queued (a burst of changes makes one render),
#: then renders: no fixed delay on top of the render itself ...
RENDER_COALESCE_MS = 0
#: ... but at most about one render per display frame (the screen's refresh period, this when it
#: does not tell) on average, so that a stream of changes faster than the screen (a 120 Hz
#: tracker) does not draw frames nobody sees: a render begins at least RATE_FRAMES * RATE_PERIODS
#: periods after the RATE_FRAMES-th last one began (at most ~1.1 renders per display frame), and at
#: least MIN_GAP_PERIODS after the last one. Not a full period after the last one: a stream at the
#: screen's rate (a 60 Hz tracker) would then stay phase-locked behind its renders - once a frame is
#: late (a pose late, a busy moment), every later pose would wait as long before its render, until
#: two poses fall into one frame (a model of the 60 Hz stream with 14 ms renders: median latency
#: 20.5 -> 17 ms, p95 30 -> 26); this way the next frame catches up at once. After a frame that drew
#: several poses of a stream (faster than the frames: 120, 240 Hz) the next waits the full period,
#: one render per display frame (renders back to back would leave the GUI thread no time between).
DISPLAY_HZ_DEFAULT = 60.0
MIN_GAP_PERIODS = 0.5
RATE_FRAMES = 4
RATE_PERIODS = 0.9
STILL_DELAY_MS = 250  # after the last interactive change, the medium still frame
FULL_DELAY_MS = 2000  # after the last input of any kind, the full meshes

_INPUT_EVENTS = frozenset({
    QEvent.Type.KeyPress, QEvent.Type.KeyRelease, QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonRelease,
    QEvent.Type.MouseButtonDblClick, QEvent.Type.Wheel,
})


class _InputClock(QObject):
    """An application event filter keeping the time (perf_counter) of the last user input."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.last_input = 0.0

    def eventFilter(self, obj, event):  # noqa: N802 (Qt API)
        t = event.type()
        if t in _INPUT_EVENTS or (t == QEvent.Type.MouseMove and event.buttons() != Qt.MouseButton.NoButton):
            self.last_input = time.perf_counter()
        return False


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
    _medium_built = Signal(object)  # anatomy whose medium copies a worker thread has built
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
        self._starts: collections.deque[float] = collections.deque(maxlen=RATE_FRAMES)  # the last renders' starts
        self._stream_inputs = self._drawn_inputs = 0  # poses for the next frame / drawn by the last one
        self.last_render_ms = float("nan")
        self.render_count = 0
        self.pick_structures: list[str] | None = None  # None: any visible structure
        self.wheel_advances = True  # the wheel drives the needle; Ctrl+wheel zooms
        self.last_render_end = 0.0  # perf_counter at the end of the last render
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(RENDER_COALESCE_MS)
        self._timer.timeout.connect(self._render_now)
        self._still_timer = QTimer(self)
        self._still_timer.setSingleShot(True)
        self._still_timer.setInterval(STILL_DELAY_MS)
        self._still_timer.timeout.connect(self._render_still)
        self._full_timer = QTimer(self)
        self._full_timer.setSingleShot(True)
        self._full_timer.setInterval(FULL_DELAY_MS)
        self._full_timer.timeout.connect(self._render_full)
        self.input_clock = _InputClock(self)
        self._last_move = 0.0  # perf_counter of the last interactive change (a move, a drag's end)
        app = QCoreApplication.instance()
        if app is not None:
            app.installEventFilter(self.input_clock)
        self._interacting = False
        self._lod_built.connect(self._attach_lod)
        self._medium_built.connect(self._attach_medium)
        self._style.AddObserver("StartInteractionEvent", self._on_interaction_start)
        self._style.AddObserver("EndInteractionEvent", self._on_interaction_end)
        self._lod_pending = None  # an anatomy whose copies are built after the first frame
        self._closed = False
        #: callable() -> True while a stream of poses (a tracker) is live: no still frames meanwhile
        self.hold_moving = None
        #: callables run just before each render the view begins (a tracker's poses that arrived
        #: during the previous frame are applied then, so this frame shows them: no extra frame of lag)
        self.before_render: list = []

    # --- rendering ----------------------------------------------------------------------------
    def request_render(self, interactive: bool = False) -> None:
        """Ask for a render soon; many requests within a timer period make one render.
        `interactive=True` (a stream of changes: the needle moving, a slider dragged) draws the
        moving frame now (decimated meshes, reduced image: see `AnatomyScene.set_lod`), the
        medium still frame once the stream has paused for STILL_DELAY_MS and the full one after
        FULL_DELAY_MS without input."""
        if self._closed:
            return
        if interactive:
            self._last_move = time.perf_counter()
            self.scene.set_detail("moving")
            self._full_timer.stop()
            self._still_timer.start()
        if not self._timer.isActive():
            self._timer.start(self._frame_wait_ms())

    def frame_period_ms(self) -> float:
        """One refresh period of the screen showing the view (ms)."""
        screen = self.screen()
        hz = float(screen.refreshRate()) if screen is not None else 0.0
        return 1000.0 / (hz if 20.0 <= hz <= 500.0 else DISPLAY_HZ_DEFAULT)

    def _frame_wait_ms(self) -> int:
        """Milliseconds until a render may begin: 0, or until MIN_GAP_PERIODS of a refresh period
        have passed since the last render began and RATE_FRAMES * RATE_PERIODS since the
        RATE_FRAMES-th last (about one render per display frame on average, without phase-locking
        a stream at the screen's rate)."""
        if not self._t0:
            return RENDER_COALESCE_MS
        period, now = self.frame_period_ms(), time.perf_counter()
        if self._drawn_inputs > 1:  # the last frame drew several poses: the stream outpaces the frames
            return max(RENDER_COALESCE_MS, int(math.ceil(period - 1000.0 * (now - self._t0))))
        rest = MIN_GAP_PERIODS * period - 1000.0 * (now - self._t0)
        if len(self._starts) == RATE_FRAMES:
            rest = max(rest, RATE_FRAMES * RATE_PERIODS * period - 1000.0 * (now - self._starts[0]))
        return max(RENDER_COALESCE_MS, int(math.ceil(rest)))

    def render_if_due(self) -> bool:
        """Render now if a render is asked for and may begin now (`_frame_wait_ms` 0): a stream's
        pump draws its poses at once, before the repaints the same batch queued for other widgets
        (they follow the 3D frame instead of delaying it). True if it rendered."""
        if self._closed or not self._timer.isActive() or self._frame_wait_ms() > 0:
            return False
        self._render_now()
        return True

    def note_stream_inputs(self, n: int) -> None:
        """`n` poses of a stream (a tracker's frames) were applied for the next frame to draw; a frame
        that draws several keeps the next one a full refresh period after it (`_frame_wait_ms`)."""
        self._stream_inputs += int(n)

    def render_now(self) -> None:
        """Render at once (full meshes)."""
        self._timer.stop()
        self._still_timer.stop()
        self._full_timer.stop()
        if not self._closed:
            self.scene.set_detail("full")
        self._render_now()

    def set_anatomy(self, anatomy, patient_position=None) -> None:
        """Show an anatomy; its decimated copies for the moving frame (large anatomies) are built
        (or read from their cache) on a worker thread and attached when ready, so the full meshes
        appear without waiting for them."""
        self.scene.set_anatomy(anatomy, patient_position, build_lod=False)
        self._lod_pending = None
        n = self.scene.triangle_count() if anatomy is not None else 0
        if anatomy is not None and ((not self.scene.has_lod() and n > lod_mod.LOD_MIN_TRIANGLES)
                                    or (not self.scene.has_medium() and n > lod_mod.MEDIUM_MIN_TRIANGLES)):
            if self.render_count > 0:
                self._start_lod(anatomy)
            else:  # after the first frame: the window comes up without sharing the CPU with it
                self._lod_pending = anatomy

    def _start_lod(self, anatomy) -> None:
        threading.Thread(target=self._build_lod, args=(anatomy,), name="build-lod", daemon=True).start()

    def _build_lod(self, anatomy) -> None:
        for build, signal_name in ((anatomy_coarse_polydata, "_lod_built"), (anatomy_medium_polydata, "_medium_built")):
            try:
                build(anatomy)
            except Exception:  # noqa: BLE001 - without the copies the view is only slower
                continue
            if self._closed:
                return
            try:
                getattr(self, signal_name).emit(anatomy)
            except RuntimeError:  # the widget is gone
                return

    def _attach_lod(self, anatomy) -> None:
        if not self._closed:
            self.scene.attach_lod(anatomy)

    def _attach_medium(self, anatomy) -> None:
        if not self._closed:
            self.scene.attach_medium(anatomy)  # used from the next pause on

    def _on_interaction_start(self, *_):
        self._interacting = True
        self._still_timer.stop()
        self._full_timer.stop()
        if self.scene.set_detail("moving"):
            self.scene.render()  # the style renders the drag itself; this draws the coarse meshes now

    def _on_interaction_end(self, *_):
        self._interacting = False
        self._last_move = time.perf_counter()
        self._still_timer.start()

    def _render_still(self) -> None:
        """The pause after a move: the medium still frame now, the full one after FULL_DELAY_MS.
        While `hold_moving()` says a stream of poses is live, the view stays on the moving frame
        (a still render would hold the next poses up for its whole, long, render)."""
        if self._closed or self._interacting:
            return
        if self.streaming():
            self._still_timer.start()
            return
        medium = self.scene.has_medium()  # else (a small anatomy) the full frame at once
        if self.scene.set_detail("medium" if medium else "full"):
            self._render_now()
        if medium:
            self._start_full_timer()

    def _start_full_timer(self) -> None:
        """The full frame FULL_DELAY_MS after the last input (of any kind)."""
        self._full_timer.start(max(1, int(math.ceil(FULL_DELAY_MS - self._idle_ms()))))

    def _idle_ms(self) -> float:
        """Milliseconds since the last input to the application or the last move shown here."""
        return 1000.0 * (time.perf_counter() - max(self.input_clock.last_input, self._last_move))

    def _render_full(self) -> None:
        """The full still frame, unless something was input meanwhile (then later)."""
        if self._closed or self._interacting or self.scene.detail != "medium":
            return
        if self._idle_ms() < FULL_DELAY_MS:
            self._start_full_timer()
            return
        if self.scene.set_detail("full"):
            self._render_now()

    def _render_now(self) -> None:
        if self._closed or not self.isVisible():
            return
        for fn in list(self.before_render):  # the newest input first (a tracker's poses): drawn by this frame
            fn()
        self._timer.stop()  # what they asked for is drawn now
        self.scene.streaming = self.streaming()  # its moving frames a little coarser (see lod)
        self.scene.render()

    def streaming(self) -> bool:
        """A stream of poses is live (`hold_moving`)."""
        return self.hold_moving is not None and bool(self.hold_moving())

    @property
    def render_started(self) -> float:
        """perf_counter at the start of the last (or current) render."""
        return self._t0

    def _on_render_start(self, *_):
        self._t0 = time.perf_counter()
        self._starts.append(self._t0)
        self._drawn_inputs, self._stream_inputs = self._stream_inputs, 0

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
        self._full_timer.stop()
        app = QCoreApplication.instance()
        if app is not None:
            app.removeEventFilter(self.input_clock)
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
