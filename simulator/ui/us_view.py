"""The ultrasound view: the scanner's screen and its knobs, in the main window's Ultrasound pane.

- Live B-mode of the probe's pose, re-rendered whenever the probe, the needle or a setting
  changes: requests are coalesced by a short timer (at most one frame per `FRAME_MS`) and rendered
  on a worker thread (the latest request wins: a burst of moves never queues up frames).
- Knobs: depth, gain, frequency (within the probe's range), colour Doppler. The orientation
  marker is the blue dot on the screen's left, the side of the probe's marker.
- The probe moves with the mouse on the image (drag: slide along the skin, in-plane left/right and
  out of plane up/down; Ctrl+drag: rotate and tilt) and with the keys of the Probe menu; it stays
  on the skin (its face is put back where its depth axis meets the body after each move).
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

from simulator.ui.canvas import ImageCanvas
from simulator.ui.workers import SerialWorker

FRAME_MS = 16  # at most ~60 requests a second; the engine sets the real rate
PROBE_RECORD_MS = 100
SLIDE_STEP_MM = 1.0
TURN_STEP_DEG = 5.0
TILT_STEP_DEG = 2.0

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

    # ------------------------------------------------------------------------------------
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(3)
        self.canvas = ImageCanvas("Ultrasound: waiting for the probe\u2026")
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
        lay.addLayout(grid)
        self.help_label = QLabel("Drag the image: slide the probe \u00b7 Ctrl+drag: rotate/tilt \u00b7 keys J/L I/K U/O N/M")
        self.help_label.setStyleSheet("color: #888;")
        self.help_label.setWordWrap(True)
        lay.addWidget(self.help_label)

    def sizeHint(self):  # noqa: N802 (Qt API)
        return QSize(520, 600)

    # ------------------------------------------------------------------------------------
    def set_context(self, controller, scenario, anatomy, targets=()) -> None:
        from simulator.core.needle import TissueProbe
        from simulator.core.probe import ProbeSpec

        self.controller = controller
        self.scenario = scenario
        self.anatomy = anatomy
        self._gen += 1
        us = scenario.imaging.ultrasound
        kind = us.probe if us is not None else "linear"
        self.spec = ProbeSpec.named(kind)
        self._probe_tissue = TissueProbe(anatomy)
        self.pose = default_probe_pose(scenario, anatomy, targets)
        lo, hi = self.spec.frequency_range_mhz
        widgets = (self.depth_spin, self.freq_spin, self.gain_slider, self.doppler_box)
        for w in widgets:
            w.blockSignals(True)
        self.depth_spin.setRange(10.0, float(self.spec.max_depth_mm))
        self.depth_spin.setValue(float(us.depth_mm) if us is not None else float(self.spec.default_depth_mm))
        self.freq_spin.setRange(lo, hi)
        f = float(us.frequency_mhz) if us is not None else self.spec.default_frequency_mhz
        self.freq_spin.setValue(min(max(f, lo), hi))
        self.gain_slider.setValue(int(round(us.gain_db)) if us is not None else 0)
        self.doppler_box.setChecked(bool(us.doppler) if us is not None else False)
        for w in widgets:
            w.blockSignals(False)
        self._focus_mm = us.focus_mm if us is not None else None
        self.last_result = None
        self.canvas.set_image(None)
        self.probe_moved.emit(self.pose)
        self._probe_timer.start()
        self.request_frame()

    def settings(self):
        from simulator.imaging.ultrasound import ScannerSettings

        depth = float(self.depth_spin.value())
        focus = self._focus_mm if self._focus_mm is not None and self._focus_mm <= depth else None
        return ScannerSettings(depth_mm=depth, frequency_mhz=float(self.freq_spin.value()),
                               gain_db=float(self.gain_slider.value()), focus_mm=focus,
                               doppler=self.doppler_box.isChecked())

    # ------------------------------------------------------------------------------------
    # the probe
    # ------------------------------------------------------------------------------------
    def _on_skin(self, pose):
        from simulator.core.probe import ProbePose

        if self._probe_tissue is None:
            return pose
        skin = self._probe_tissue.body_entry_on_line(pose.center_mm, pose.direction, reach_mm=80.0)
        if skin is None or np.linalg.norm(skin - pose.center_mm) > 60.0:
            return pose
        return ProbePose(skin, pose.direction.copy(), pose.marker.copy())

    def set_pose(self, pose, tracked: bool = False) -> None:
        if self.probe_tracked and not tracked:
            self.message.emit("The probe is tracked: move the real probe")
            return
        self.pose = pose if tracked else self._on_skin(pose)
        self.probe_moved.emit(self.pose)
        if not tracked:
            self._probe_timer.start()
        self.request_frame()

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
        if mods & Qt.KeyboardModifier.ControlModifier:
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
        if self.controller is not None and self.controller.procedure is not None:
            if settings.doppler:  # arterial pulsatility follows the attempt's clock
                settings = dataclasses.replace(settings, time_s=self.controller.now())
        self._req += 1
        self._worker.submit(("frame", self._gen, self.anatomy, self.spec, self.pose, settings, needle, self._needle_seq,
                             self._req, time.perf_counter()), key="frame")

    def _work(self, job):
        _, gen, anatomy, spec, pose, settings, needle, needle_seq, req, t_req = job
        sim = _simulator_for(anatomy, spec)
        frame = sim.render(pose, settings, needle)
        grey = frame.display
        if frame.doppler_rgba is not None:
            a = frame.doppler_rgba[..., 3:4].astype(np.float32) / 255.0
            img = (grey[..., None].astype(np.float32) * (1.0 - a) + frame.doppler_rgba[..., :3].astype(np.float32) * a)
            img = np.clip(img + 0.5, 0, 255).astype(np.uint8)
        else:
            img = grey
        return {"gen": gen, "frame": frame, "image": img, "needle_seq": needle_seq, "req": req,
                "t_request": t_req, "t_done": time.perf_counter()}

    def _on_result(self, res: dict) -> None:
        if self._closed or res["gen"] != self._gen:
            return
        frame = res["frame"]
        self.last_result = res
        self.frames_shown += 1
        s = frame.settings
        self.canvas.marker_dot = "left" if s.marker_left else "right"
        self.canvas.corner_text = {
            "tl": f"{self.spec.kind.capitalize()}  {s.frequency_mhz:.1f} MHz",
            "tr": f"D {s.depth_mm:.0f} mm\nG {s.gain_db:+.0f} dB" + ("\nCF" if s.doppler else ""),
        }
        self.canvas.edge_labels = {}
        self.canvas.set_image(res["image"], self.frames_shown)
        self.frame_shown.emit(res)

    def busy(self) -> bool:
        return self._frame_timer.isActive() or not self._worker.idle()

    # ------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._frame_timer.stop()
        self._probe_timer.stop()
        self._worker.stop()

    def closeEvent(self, event):  # noqa: N802 (Qt API)
        self.shutdown()
        super().closeEvent(event)
