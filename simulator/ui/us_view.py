"""The ultrasound view: the scanner's screen and its knobs, in the main window's Ultrasound pane.

- Live B-mode of the probe's pose, re-rendered whenever the probe, the needle or a setting
  changes: requests are coalesced by a short timer (at most one frame per `FRAME_MS`) and rendered
  on a worker thread (the latest request wins: a burst of moves never queues up frames).
- Knobs: depth, gain, frequency (within the probe's range), colour Doppler, M-mode (B/M: the
  central scan line swept over time beside the image, `imaging.ultrasound_mmode`). On the screen, as
  scanners show them: the orientation marker (blue dot, the side of the probe's marker), a depth
  scale in cm with the focus marker beside it, probe / frequency / depth / gain / pressure in the
  corners. The image has the field of view's own aspect (no blank letterbox). Settings outside
  the probe's range (a scenario written for another probe) are clamped, with a message on the
  screen and in the status bar.
- The probe moves with the mouse on the image (drag: slide along the skin, in-plane left/right and
  out of plane up/down; Ctrl+drag: rotate and tilt; Shift+drag: press in or lift (up/down) and
  rock heel-toe (left/right)) and with the keys of the Probe menu; it stays on the skin: its face
  is put back where its depth axis meets the body, pressed in by the current pressure, after each
  move. A rocked or lifted probe loses the image on the side that leaves the skin; pressing
  harder compresses the tissue under the face (veins collapse).
- The attempt's moment goes with each frame: the injected boluses (they grow while given and
  then resorb), local anaesthetic wheals, breathing (lung sliding) and a pneumothorax after a
  pleural breach. While the image moves (sliding lung, a growing pocket, pulsatile colour flow)
  frames keep coming at `LIVE_MS`.
- The verdict on the tip (in the imaged slice or not, distance to the plane) goes to the attempt
  with `set_tip_visible(...)`, so the score knows whether the needle advanced unseen. It is the
  geometry the frame's own verdict comes from (`needle_visibility` of the needle, the probe's pose
  and the settings of the frame to come), sent at once when the needle moves (and when a probe
  move changes it), not when the frame is back: a scanner shows the tip in real time, and an
  advance made while a frame is still being computed (the first one compiles its kernels) is
  judged by what the scanner shows, not counted unseen for want of a verdict. The probe pose is recorded with
  `set_probe_to_world(...)` once it has been still for `PROBE_RECORD_MS`.
"""
from __future__ import annotations

import dataclasses
import time
import weakref

import numpy as np
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QGridLayout,
    QLabel,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from simulator.imaging.ultrasound_mmode import MModeSweep, m_line, side_by_side
from simulator.ui.canvas import ImageCanvas
from simulator.ui.workers import SerialWorker

FRAME_MS = 16  # at most ~60 requests a second; the engine sets the real rate
LIVE_MS = 80  # a moving image (sliding lung, growing pocket, pulsing flow): ~12 frames a second
PROBE_RECORD_MS = 100
NOTICE_S = 5.0
SLIDE_STEP_MM = 1.0
TURN_STEP_DEG = 5.0
TILT_STEP_DEG = 2.0
PRESS_STEP_MM = 0.5

_SIMULATORS: dict[tuple, tuple[weakref.ref, object]] = {}  # (id(anatomy), spec) -> simulator (worker thread)


def _simulator_for(anatomy, spec):
    from simulator.imaging.ultrasound import UltrasoundSimulator

    key = (id(anatomy), spec)
    hit = _SIMULATORS.get(key)
    if hit is not None and hit[0]() is anatomy:
        return hit[1]
    sim = UltrasoundSimulator(anatomy, spec)
    _SIMULATORS[key] = (weakref.ref(anatomy, lambda _r, k=key: _SIMULATORS.pop(k, None)), sim)
    return sim


def default_probe_pose(scenario, anatomy, targets=()):
    """The scenario's probe pose, or one over the first target looking down from the ceiling side."""
    from simulator.core.needle import TissueProbe
    from simulator.core.probe import ProbePose
    from simulator.render.camera import ceiling_direction

    us = scenario.imaging.ultrasound
    direction = np.asarray(us.direction, float) if us is not None and us.direction is not None else -ceiling_direction(scenario.patient_position)
    if us is not None and us.center_mm is not None:
        center = np.asarray(us.center_mm, float)
    else:
        if targets:
            aim = np.asarray(targets[0].points_mm, float).reshape(-1, 3).mean(axis=0)
        elif scenario.trajectories:
            aim = np.asarray(scenario.trajectories[0].target_mm, float)
        else:
            aim = anatomy.origin_mm + 0.5 * (np.asarray(anatomy.shape) - 1) * anatomy.spacing_mm
        skin = TissueProbe(anatomy).body_entry_on_line(aim, direction)
        center = skin if skin is not None else aim
    if us is not None and us.marker is not None:
        marker = np.asarray(us.marker, float)
    else:
        marker = np.array([0.0, 0.0, 1.0]) if abs(direction[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    return ProbePose.from_vectors(center, direction, marker)


class ScannerCanvas(ImageCanvas):
    """The scanner's screen: the image with a depth scale (cm, ticks every 5 mm) and the focus
    marker on its right, and a notice line for clamped settings and lost contact."""

    def __init__(self, placeholder: str = "", parent=None):
        super().__init__(placeholder, parent)
        self.scale = None  # (depth_mm, focus_mm, y_first_mm, spacing_mm per image pixel)
        self.notice = ""
        self.notice_until = 0.0

    SCALE_PX = 30  # room on the image's right for the depth scale

    def image_rect(self):
        """The image fitted beside the depth scale's strip (aspect kept, centred)."""
        from PySide6.QtCore import QRectF

        if not self.has_image():
            return QRectF(0, 0, 0, 0)
        arr = self.image_array()
        ih, iw = arr.shape[:2]
        w = max(1.0, self.width() - self.SCALE_PX)
        h = float(self.height())
        s = min(w / iw, h / ih)
        return QRectF((w - iw * s) / 2, (h - ih * s) / 2, iw * s, ih * s)

    def show_notice(self, text: str, seconds: float = NOTICE_S) -> None:
        self.notice = text
        self.notice_until = time.monotonic() + seconds
        self.update()

    def _paint_overlays(self, p, r) -> None:
        from PySide6.QtCore import QPointF
        from PySide6.QtGui import QColor, QPen, QPolygonF

        super()._paint_overlays(p, r)
        if self.scale is not None and self.has_image():
            depth, focus, y_first, spacing = self.scale
            ih = self.image_array().shape[0]
            s = r.height() / ih

            def y_of(mm):
                return r.top() + ((mm - y_first) / spacing + 0.5) * s

            x0 = r.right() + 2
            p.setPen(QPen(QColor(200, 200, 200), 1))
            fm = p.fontMetrics()
            for mm in range(0, int(depth) + 1, 5):
                y = y_of(float(mm))
                major = mm % 10 == 0
                p.drawLine(QPointF(x0, y), QPointF(x0 + (8 if major else 4), y))
                if major and mm > 0:
                    p.drawText(QPointF(x0 + 10, y + fm.ascent() / 2 - 1), f"{mm // 10}")
            p.drawText(QPointF(x0 + 2, min(r.bottom() + fm.ascent() + 2, self.height() - 2)), "cm")
            if focus is not None:
                y = y_of(float(focus))
                p.setPen(QPen(QColor(255, 210, 80), 1))
                p.setBrush(QColor(255, 210, 80))
                p.drawPolygon(QPolygonF([QPointF(x0 + 1, y), QPointF(x0 + 9, y - 5), QPointF(x0 + 9, y + 5)]))
        if self.notice and time.monotonic() < self.notice_until:
            from PySide6.QtCore import QPointF
            from PySide6.QtGui import QColor

            p.setPen(QColor(255, 200, 60))
            fm = p.fontMetrics()
            p.drawText(QPointF(r.left() + 8, r.bottom() - 8 - fm.height()), self.notice)


class UltrasoundView(QWidget):
    frame_shown = Signal(object)  # result dict of the frame now on screen
    probe_moved = Signal(object)  # ProbePose
    message = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("ultrasound_view")
        self.controller = None
        self.scenario = None
        self.anatomy = None
        self.spec = None
        self.pose = None
        self._probe_tissue = None
        self._gen = 0
        self._needle_seq = 0
        self._req = 0
        self._closed = False
        self.last_result: dict | None = None
        self.frames_shown = 0
        self.reported = 0  # tip-visibility reports sent to the attempt
        #: the probe is a tracked one (a tracked attempt): it follows `set_pose(..., tracked=True)` as
        #: measured, its poses are recorded with the tracker's frames, and the mouse and keys do not move it
        self.probe_tracked = False
        self._verdict_sent = None  # (weakref to the procedure, visible, distance) last sent
        self.press_mm = 2.0
        self._la_cache: dict = {}  # worker thread: local anaesthetic wheals already computed
        self.mmode = MModeSweep()  # the M-mode strip (shown while `mmode_box` is checked)
        self._worker = SerialWorker("ultrasound", self._work, self)
        self._worker.result.connect(self._on_result)
        self._worker.failed.connect(lambda m: self.message.emit(f"Ultrasound: {m.splitlines()[0]}"))
        self._build()
        self._frame_timer = QTimer(self)
        self._frame_timer.setSingleShot(True)
        self._frame_timer.setInterval(FRAME_MS)
        self._frame_timer.timeout.connect(self._submit)
        self._probe_timer = QTimer(self)
        self._probe_timer.setSingleShot(True)
        self._probe_timer.setInterval(PROBE_RECORD_MS)
        self._probe_timer.timeout.connect(self._record_probe)
        self._live_timer = QTimer(self)
        self._live_timer.setSingleShot(True)
        self._live_timer.setInterval(LIVE_MS)
        self._live_timer.timeout.connect(self.request_frame)

    # ------------------------------------------------------------------------------------
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(3)
        self.canvas = ScannerCanvas("Ultrasound: waiting for the probe\u2026")
        self.canvas.setObjectName("us_canvas")
        self.canvas.dragged.connect(self._dragged)
        lay.addWidget(self.canvas, 1)
        grid = QGridLayout()
        grid.setContentsMargins(2, 0, 2, 0)
        grid.setHorizontalSpacing(4)
        self.depth_spin = QDoubleSpinBox()
        self.depth_spin.setObjectName("us_depth")
        self.depth_spin.setDecimals(0)
        self.depth_spin.setSuffix(" mm")
        self.depth_spin.setSingleStep(5.0)
        self.depth_spin.setKeyboardTracking(False)
        self.depth_spin.setToolTip("Imaging depth  [Ctrl+Up / Ctrl+Down]")
        self.gain_slider = QSlider(Qt.Orientation.Horizontal)
        self.gain_slider.setObjectName("us_gain")
        self.gain_slider.setRange(-30, 30)
        self.gain_slider.setToolTip("Overall gain (dB)  [Ctrl+Left / Ctrl+Right]")
        self.freq_spin = QDoubleSpinBox()
        self.freq_spin.setObjectName("us_frequency")
        self.freq_spin.setDecimals(1)
        self.freq_spin.setSuffix(" MHz")
        self.freq_spin.setSingleStep(0.5)
        self.freq_spin.setKeyboardTracking(False)
        self.doppler_box = QCheckBox("Colour Doppler")
        self.doppler_box.setObjectName("us_doppler")
        self.doppler_box.setToolTip("Colour flow in the vessels  [Ctrl+D]")
        self.mmode_box = QCheckBox("M-mode")
        self.mmode_box.setObjectName("us_mmode")
        self.mmode_box.setToolTip("B/M mode: the central scan line over time beside the image - seashore over a "
                                  "sliding lung, flat lines (stratosphere) over a pneumothorax  [Ctrl+M]")
        self.mmode_box.toggled.connect(self._mmode_toggled)
        for w in (self.depth_spin, self.freq_spin):
            w.valueChanged.connect(lambda _v: self.request_frame())
        self.gain_slider.valueChanged.connect(lambda _v: self.request_frame())
        self.doppler_box.toggled.connect(lambda _v: self.request_frame())
        grid.addWidget(QLabel("Depth"), 0, 0)
        grid.addWidget(self.depth_spin, 0, 1)
        grid.addWidget(QLabel("Freq"), 0, 2)
        grid.addWidget(self.freq_spin, 0, 3)
        grid.addWidget(QLabel("Gain"), 1, 0)
        grid.addWidget(self.gain_slider, 1, 1, 1, 2)
        grid.addWidget(self.doppler_box, 1, 3)
        grid.addWidget(self.mmode_box, 1, 4)
        lay.addLayout(grid)
        self.help_label = QLabel("Drag the image: slide the probe \u00b7 Ctrl+drag: rotate/tilt \u00b7 "
                                 "Shift+drag: press/lift, rock \u00b7 keys J/L I/K U/O N/M")
        self.help_label.setStyleSheet("color: #888;")
        self.help_label.setWordWrap(True)
        lay.addWidget(self.help_label)

    def sizeHint(self):  # noqa: N802 (Qt API)
        return QSize(520, 600)

    # ------------------------------------------------------------------------------------
    def set_context(self, controller, scenario, anatomy, targets=()) -> None:
        from simulator.core.needle import TissueProbe
        from simulator.core.probe import ProbeSpec
        from simulator.imaging.ultrasound_settings import ScannerSettings

        self.controller = controller
        self.scenario = scenario
        self.anatomy = anatomy
        self._gen += 1
        self._la_cache = {}
        us = scenario.imaging.ultrasound
        kind = us.probe if us is not None else "linear"
        self.spec = ProbeSpec.named(kind)
        self.press_mm = self.spec.default_press_mm
        self._probe_tissue = TissueProbe(anatomy)
        self.pose = self._on_skin(default_probe_pose(scenario, anatomy, targets))
        lo, hi = self.spec.frequency_range_mhz
        wanted = ScannerSettings.from_scenario(us) if us is not None else ScannerSettings()
        fixed, notes = wanted.clamped(self.spec)
        widgets = (self.depth_spin, self.freq_spin, self.gain_slider, self.doppler_box)
        for w in widgets:
            w.blockSignals(True)
        self.depth_spin.setRange(10.0, float(self.spec.max_depth_mm))
        self.depth_spin.setValue(float(fixed.depth_mm if fixed.depth_mm is not None else self.spec.default_depth_mm))
        self.freq_spin.setRange(lo, hi)
        f = fixed.frequency_mhz if fixed.frequency_mhz is not None else self.spec.default_frequency_mhz
        self.freq_spin.setValue(float(f))
        self.gain_slider.setValue(int(round(fixed.gain_db)))
        self.doppler_box.setChecked(bool(us.doppler) if us is not None else False)
        for w in widgets:
            w.blockSignals(False)
        self._focus_mm = fixed.focus_mm
        self.last_result = None
        self.mmode.clear()
        self.canvas.set_image(None)
        if notes:
            self._notify("Ultrasound: " + "; ".join(notes))
        self.probe_moved.emit(self.pose)
        self._probe_timer.start()
        self.request_frame()

    def _notify(self, text: str) -> None:
        """A message on the scanner's screen and in the status bar."""
        self.canvas.show_notice(text)
        self.message.emit(text)

    def settings(self):
        from simulator.core.probe import ImageGeometry
        from simulator.imaging.ultrasound import ScannerSettings

        depth = float(self.depth_spin.value())
        focus = self._focus_mm if self._focus_mm is not None and self._focus_mm <= depth else None
        shape = ImageGeometry.true_aspect_shape(self.spec, depth) if self.spec is not None else (512, 512)
        return ScannerSettings(depth_mm=depth, frequency_mhz=float(self.freq_spin.value()),
                               gain_db=float(self.gain_slider.value()), focus_mm=focus,
                               doppler=self.doppler_box.isChecked(), image_shape=shape)

    # ------------------------------------------------------------------------------------
    # the probe
    # ------------------------------------------------------------------------------------
    def _on_skin(self, pose):
        """The pose with its face centre where its depth axis meets the body, pressed in by the
        current pressure (unchanged far from the body)."""
        from simulator.core.probe import ProbePose

        if self._probe_tissue is None:
            return pose
        skin = self._probe_tissue.body_entry_on_line(pose.center_mm, pose.direction, reach_mm=80.0)
        if skin is None or np.linalg.norm(skin - pose.center_mm) > 60.0 + self.press_mm:
            return pose
        return ProbePose(skin + self.press_mm * pose.direction, pose.direction.copy(), pose.marker.copy())

    def set_pose(self, pose, tracked: bool = False) -> None:
        if self.probe_tracked and not tracked:
            self.message.emit("The probe is tracked: move the real probe")
            return
        self.pose = pose if tracked else self._on_skin(pose)
        self.probe_moved.emit(self.pose)
        if not tracked:
            self._probe_timer.start()
        self.request_frame()

    def press(self, step_mm: float) -> None:
        """Press the probe in (+) or lift it (-): within 0..the probe's firmest plausible press;
        lifting below zero leaves the skin (the image goes)."""
        if self.spec is None or self.pose is None:
            return
        want = self.press_mm + float(step_mm)
        lo, hi = -3.0, float(self.spec.max_press_mm)
        self.press_mm = min(max(want, lo), hi)
        if want > hi:
            self._notify(f"Probe pressure: {hi:g} mm is the firmest plausible press")
        self.set_pose(self.pose)

    def rock(self, angle_deg: float) -> None:
        """Heel-toe: tilt the probe in its plane (one end of the face lifts off the skin)."""
        if self.pose is not None:
            self.set_pose(self.pose.rocked(angle_deg))

    def slide(self, lateral_mm: float = 0.0, elevation_mm: float = 0.0) -> None:
        if self.pose is not None:
            self.set_pose(self.pose.slid(lateral_mm=lateral_mm, elevation_mm=elevation_mm))

    def rotate(self, angle_deg: float) -> None:
        if self.pose is not None:
            self.set_pose(self.pose.rotated(angle_deg))

    def tilt(self, angle_deg: float) -> None:
        if self.pose is not None:
            self.set_pose(self.pose.tilted(angle_deg))

    def change_depth(self, step_mm: float) -> None:
        self.depth_spin.setValue(self.depth_spin.value() + step_mm)

    def change_gain(self, step_db: float) -> None:
        self.gain_slider.setValue(int(self.gain_slider.value() + step_db))

    def _dragged(self, dx: float, dy: float, mods) -> None:
        if self.pose is None:
            return
        r = self.canvas.image_rect()
        arr = self.canvas.image_array()
        mm_per_px = 0.1
        if arr is not None and r.width() > 0 and self.last_result is not None:
            mm_per_px = self.last_result["frame"].geometry.spacing_mm * arr.shape[1] / r.width()
        if mods & Qt.KeyboardModifier.ShiftModifier:
            self.press_mm = min(max(self.press_mm + 0.05 * dy, -3.0), float(self.spec.max_press_mm))
            self.set_pose(self.pose.rocked(0.25 * dx))
        elif mods & Qt.KeyboardModifier.ControlModifier:
            self.set_pose(self.pose.rotated(0.5 * dx).tilted(0.25 * dy))
        else:  # the probe follows the mouse: screen right is away from the marker (marker left)
            self.set_pose(self.pose.slid(lateral_mm=-dx * mm_per_px, elevation_mm=0.2 * dy))

    def _record_probe(self) -> None:
        if self.controller is not None and self.controller.active and self.pose is not None:
            self.controller.set_probe_to_world(self.pose.probe_to_world())

    # ------------------------------------------------------------------------------------
    # frames
    # ------------------------------------------------------------------------------------
    def note_needle(self, state) -> None:
        """The needle moved: its verdict now, a new frame (coalesced)."""
        self._needle_seq += 1
        self._send_verdict(always=True)
        self.request_frame()

    def current_verdict(self):
        """`NeedleVisibility` of the attempt's needle in the frame to come (None without one)."""
        from simulator.core.probe import needle_visibility

        c = self.controller
        if c is None or c.state is None or self.pose is None or self.spec is None:
            return None
        try:
            s = self.settings().resolve(self.spec)
        except ValueError:
            return None
        st = c.state
        return needle_visibility(st.tip_mm, st.axis, self.pose, self.spec, None, depth_mm=s.depth_mm,
                                 frequency_mhz=s.frequency_mhz, shaft_length_mm=float(st.spec.length_mm))

    def _send_verdict(self, always: bool = False) -> None:
        """Send the verdict to the attempt: `always` (the needle moved: the attempt judges the
        next advance by it) or when it differs from the last one sent to this attempt."""
        c = self.controller
        if c is None or not c.active or c.state is None or c.procedure is None:
            return
        vis = self.current_verdict()
        if vis is None:
            return
        visible, distance = bool(vis.tip_in_plane), round(float(vis.tip_distance_to_plane_mm), 1)
        last = self._verdict_sent
        same = last is not None and last[0]() is c.procedure and last[1] == visible
        if same and not always and abs(last[2] - distance) < 1.0:
            return
        self._verdict_sent = (weakref.ref(c.procedure), visible, distance)
        self.reported += 1
        c.set_tip_visible(visible, float(vis.tip_distance_to_plane_mm))

    @property
    def frames_requested(self) -> int:
        """How many frames have been submitted to the engine (a result's "req" is its number)."""
        return self._req

    def request_frame(self) -> None:
        """A new frame: at once when the worker is free, else the latest request when it is.
        (A probe move or a setting may bring the tip into the slice or out of it: its verdict.)"""
        if self._closed or self.pose is None:
            return
        self._send_verdict()
        if self._worker.idle() and not self._frame_timer.isActive():
            self._submit()
        elif not self._frame_timer.isActive():
            self._frame_timer.start()

    def _submit(self) -> None:
        if self._closed or self.pose is None:
            return
        from simulator.imaging.ultrasound import NeedleGeometry

        needle = None
        st = self.controller.state if self.controller is not None else None
        if st is not None:
            needle = NeedleGeometry(st.tip_mm, st.axis, float(st.spec.length_mm), float(st.spec.outer_diameter_mm))
        try:
            settings = self.settings().resolve(self.spec)
        except ValueError as e:
            self.message.emit(str(e))
            return
        body = None
        proc = self.controller.procedure if self.controller is not None else None
        if proc is not None and self.controller.active:
            now = self.controller.now()
            body = (now, tuple(proc.spreads), tuple(proc.events))
            if settings.doppler:  # arterial pulsatility follows the attempt's clock
                settings = dataclasses.replace(settings, time_s=now)
        self._req += 1
        self._worker.submit(("frame", self._gen, self.anatomy, self.spec, self.pose, settings, needle, self._needle_seq,
                             self._req, time.perf_counter(), body), key="frame")

    def _work(self, job):
        from simulator.imaging.ultrasound_body import BodyState

        _, gen, anatomy, spec, pose, settings, needle, needle_seq, req, t_req, body = job
        sim = _simulator_for(anatomy, spec)
        state = None
        if body is not None:
            state = BodyState.of_attempt(body[1], body[2], body[0], anatomy, self._la_cache)
        frame = sim.render(pose, settings, needle, body=state)
        grey = frame.display
        if frame.doppler_rgba is not None:
            a = frame.doppler_rgba[..., 3:4].astype(np.float32) / 255.0
            img = (grey[..., None].astype(np.float32) * (1.0 - a) + frame.doppler_rgba[..., :3].astype(np.float32) * a)
            img = np.clip(img + 0.5, 0, 255).astype(np.uint8)
        else:
            img = grey
        return {"gen": gen, "frame": frame, "image": img, "needle_seq": needle_seq, "req": req,
                "t_request": t_req, "t_done": time.perf_counter(), "t_body": None if body is None else body[0]}

    def _on_result(self, res: dict) -> None:
        if self._closed or res["gen"] != self._gen:
            return
        frame = res["frame"]
        self.last_result = res
        self.frames_shown += 1
        s = frame.settings
        g = frame.geometry
        self.canvas.marker_dot = "left" if s.marker_left else "right"
        self.canvas.scale = (s.depth_mm, s.focus_mm, g.y_first_mm, g.spacing_mm)
        kind = "L" if not self.spec.is_curvilinear else "C"
        press = f"Press {max(self.press_mm, 0.0):.1f} mm" if self.press_mm >= 0 else "Lifted"
        self.canvas.corner_text = {
            "tl": f"{kind}{self.spec.aperture_mm:.0f}  {s.frequency_mhz:.1f} MHz",
            "tr": f"D {s.depth_mm / 10:.1f} cm\nG {s.gain_db:+.0f} dB" + (f"\nCF PRF {s.prf_hz / 1000:.1f} kHz" if s.doppler else ""),
            "bl": press,
        }
        self.canvas.edge_labels = {}
        self._contact_notice(frame)
        image = res["image"]
        if self.mmode_box.isChecked():
            t = res.get("t_body")
            self.mmode.add(m_line(image), time.perf_counter() if t is None else t)
            image = side_by_side(image, self.mmode.image())
        self.canvas.set_image(image, self.frames_shown)
        self.frame_shown.emit(res)
        # an M-mode keeps sweeping over a still image too (flat lines are its message)
        if (frame.animated or self.mmode_box.isChecked()) and self._live() and not self._live_timer.isActive():
            self._live_timer.start()

    def _mmode_toggled(self, on: bool) -> None:
        self.mmode.clear()
        self.request_frame()

    def _live(self) -> bool:
        """Frames keep coming by themselves only while an attempt runs and the screen shows."""
        c = self.controller
        return bool(c is not None and c.active and c.procedure is not None and self.canvas.isVisible()
                    and self.window().isVisible())

    def _contact_notice(self, frame) -> None:
        """Say when the probe has lost the skin on a side, or presses as hard as it can."""
        from simulator.imaging.ultrasound_settings import ModelParams

        c = frame.contact
        if c is None:
            return
        lost = c == 0
        if lost.all():
            self.canvas.show_notice("No contact: the probe is off the skin", 1.0)
        elif lost.any():
            left = lost[: len(c) // 2].sum() > lost[len(c) // 2:].sum()
            # Line 0 lies away from the marker; the marker is shown on the screen's left.
            screen_left = left != frame.settings.marker_left
            self.canvas.show_notice(f"Contact lost on the {'left' if screen_left else 'right'}: "
                                    "the probe is tilted off the skin", 1.0)
        elif frame.stress is not None and np.median(frame.stress) >= 0.99 * ModelParams().sigma_max:
            self.canvas.show_notice("Probe pressed as firmly as plausible", 1.0)

    def busy(self) -> bool:
        return self._frame_timer.isActive() or not self._worker.idle()

    # ------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._frame_timer.stop()
        self._probe_timer.stop()
        self._live_timer.stop()
        self._worker.stop()

    def closeEvent(self, event):  # noqa: N802 (Qt API)
        self.shutdown()
        super().closeEvent(event)
