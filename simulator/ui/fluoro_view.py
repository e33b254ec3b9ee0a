"""The fluoroscopy view: the C-arm's monitor and its controls, in the main window's Fluoroscopy pane.

What it does, as on a real C-arm:
- No image without an exposure: the screen stays dark until the first shot; afterwards the last
  image is held until the next one (last image hold). Moving the needle or the C-arm does not
  change the held image.
- The pedal (Space, or the Pedal button): a tap (released within `TAP_S`) takes one image; held
  longer, pulsed live fluoroscopy runs at the scenario's pulse rate until it is released.
- C-arm: orbital angle (LAO + / RAO -), tilt (cranial + / caudal -), the scenario's named views,
  AP and lateral, the tunnel view (along the planned trajectory in instructor mode, along the
  needle in exam mode), collimation and magnification.
- Every exposure is counted (shots, fluoroscopy time, air kerma, DAP: the read-out under the
  image) and recorded in the attempt with `record_fluoro_shot(...)`, so the score sees it. A live
  run is recorded when the pedal is released, and in pieces while the needle moves under it
  (every `LIVE_FLUSH_MM` of needle motion), so motion under live fluoroscopy counts as imaged.
- Saved images: every shot (and the last frame of each live run) lands in the strip of thumbnails
  under the image; a double click shows it again (REVIEW) until the next exposure.
- Injected contrast (the procedure's contrast spreads) shows in every new image.

The engine (`simulator.imaging.fluoroscopy*`) runs on a worker thread: the renderer is built once
per anatomy, the full-quality anatomy image of a C-arm pose is computed when the C-arm stops
(`STILL_MS`), and exposures render there; results come back to the GUI thread by signal.
"""
from __future__ import annotations

import dataclasses

import time
import weakref

import numpy as np
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from simulator.ui.exposure_spool import ExposureSpool
from simulator.ui.canvas import ImageCanvas, qimage_from_array
from simulator.ui.workers import SerialWorker

TAP_S = 0.25  # a pedal press shorter than this is a single shot
STILL_MS = 150  # the C-arm is still this long: compute the full image, record the pose
LIVE_FLUSH_MM = 5.0
ORBIT_STEP_DEG = 5.0
TILT_STEP_DEG = 5.0

_RENDERERS: dict[int, tuple[weakref.ref, object]] = {}  # id(anatomy) -> renderer (worker thread only)


def _renderer_for(anatomy):
    from simulator.imaging.fluoroscopy import FluoroscopyRenderer

    hit = _RENDERERS.get(id(anatomy))
    if hit is not None and hit[0]() is anatomy:
        return hit[1]
    r = FluoroscopyRenderer(anatomy)
    r.prepare()
    key = id(anatomy)
    _RENDERERS[key] = (weakref.ref(anatomy, lambda _r, k=key: _RENDERERS.pop(k, None)), r)
    return r


def carm_angle_text(lao_deg: float, cranial_deg: float) -> str:
    a = f"LAO {lao_deg:.0f}\u00b0" if lao_deg >= 0 else f"RAO {-lao_deg:.0f}\u00b0"
    c = f"CRAN {cranial_deg:.0f}\u00b0" if cranial_deg >= 0 else f"CAUD {-cranial_deg:.0f}\u00b0"
    return f"{a}\n{c}"


def dose_text(summary: dict) -> str:
    t = summary.get("fluoro_time_s", 0.0)
    m, s = divmod(t, 60.0)
    return (f"Shots {summary.get('shots', 0)}   Fluoro {int(m)}:{s:04.1f}   "
            f"Air kerma {summary.get('air_kerma_mgy', 0.0):.2f} mGy   DAP {summary.get('dap_gycm2', 0.0):.3f} Gy\u00b7cm\u00b2")


class FluoroscopyView(QWidget):
    frame_shown = Signal(object)  # the result dict of the exposure now on screen
    carm_moved = Signal(object)  # CArmPose
    message = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("fluoroscopy_view")
        self.controller = None
        self.scenario = None
        self.anatomy = None
        self.instructor = True
        self.pose = None
        self.settings = None
        self.presets: dict[str, tuple[float, float]] = {}
        self._gen = 0
        self._ready = False
        self._closed = False
        self._shot_seq = 0
        self._pedal_t0: float | None = None
        self._live = False
        self._recorded = {"dap_gycm2": 0.0, "fluoro_time_s": 0.0, "images": 0}
        self._dose = {}
        self._live_moved_mm = 0.0
        self._last_tip = None
        self._contrast_cache: dict[int, object] = {}
        self.last_result: dict | None = None
        self.saved: list[dict] = []  # label and pose; the image itself is in the spool
        self._spool = ExposureSpool()
        self.reviewing: int | None = None
        self.frames_shown = 0
        self._w = {"gen": -1, "session": None}  # the worker thread's state
        self._worker = SerialWorker("fluoroscopy", self._work, self)
        self._worker.result.connect(self._on_result)
        self._worker.failed.connect(lambda m: self.message.emit(f"Fluoroscopy: {m.splitlines()[0]}"))
        self._build()
        self._still = QTimer(self)
        self._still.setSingleShot(True)
        self._still.setInterval(STILL_MS)
        self._still.timeout.connect(self._carm_still)
        self._hold = QTimer(self)
        self._hold.setSingleShot(True)
        self._hold.setInterval(int(TAP_S * 1000))
        self._hold.timeout.connect(self._start_live)
        self._pulse = QTimer(self)
        self._pulse.timeout.connect(self._tick)

    # ------------------------------------------------------------------------------------
    # widgets
    # ------------------------------------------------------------------------------------
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(3)
        self.canvas = ImageCanvas("No image yet.\nTap Space (the pedal) for a single shot,\nhold it for live fluoroscopy.")
        self.canvas.setObjectName("fluoro_canvas")
        lay.addWidget(self.canvas, 1)
        self.dose_label = QLabel(dose_text({}))
        self.dose_label.setObjectName("fluoro_dose")
        self.dose_label.setStyleSheet("font-family: monospace;")
        lay.addWidget(self.dose_label)

        grid = QGridLayout()
        grid.setContentsMargins(2, 0, 2, 0)
        grid.setHorizontalSpacing(4)
        grid.setVerticalSpacing(2)
        self.lao_spin = QDoubleSpinBox()
        self.lao_spin.setObjectName("carm_lao")
        self.lao_spin.setRange(-120.0, 120.0)
        self.lao_spin.setDecimals(0)
        self.lao_spin.setSingleStep(ORBIT_STEP_DEG)
        self.lao_spin.setSuffix("\u00b0")
        self.lao_spin.setToolTip("Orbital angle: + LAO (detector towards the patient's left), - RAO  [Alt+Left/Right]")
        self.cran_spin = QDoubleSpinBox()
        self.cran_spin.setObjectName("carm_cranial")
        self.cran_spin.setRange(-45.0, 45.0)
        self.cran_spin.setDecimals(0)
        self.cran_spin.setSingleStep(TILT_STEP_DEG)
        self.cran_spin.setSuffix("\u00b0")
        self.cran_spin.setToolTip("Tilt: + cranial (detector towards the head), - caudal  [Alt+Up/Down]")
        for sp in (self.lao_spin, self.cran_spin):
            sp.setKeyboardTracking(False)
            sp.valueChanged.connect(self._angles_edited)
        self.preset_combo = QComboBox()
        self.preset_combo.setObjectName("carm_presets")
        self.preset_combo.setToolTip("Named C-arm views  [Alt+1...]")
        self.preset_combo.activated.connect(lambda i: self.apply_preset(self.preset_combo.itemData(i)))
        self.tunnel_button = QPushButton("Tunnel")
        self.tunnel_button.setObjectName("carm_tunnel")
        self.tunnel_button.setToolTip("Beam along the planned trajectory (instructor) or the needle (exam)  [Alt+T]")
        self.tunnel_button.clicked.connect(self.tunnel_view)
        grid.addWidget(QLabel("LAO+/RAO\u2212"), 0, 0)
        grid.addWidget(self.lao_spin, 0, 1)
        grid.addWidget(QLabel("CRAN+/CAUD\u2212"), 0, 2)
        grid.addWidget(self.cran_spin, 0, 3)
        grid.addWidget(self.preset_combo, 0, 4)
        grid.addWidget(self.tunnel_button, 0, 5)

        self.pedal_button = QPushButton("Pedal (Space)")
        self.pedal_button.setObjectName("fluoro_pedal")
        self.pedal_button.setToolTip("Tap: one image. Hold: live fluoroscopy at the scenario's pulse rate.")
        self.pedal_button.pressed.connect(self.pedal_press)
        self.pedal_button.released.connect(self.pedal_release)
        self.pedal_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.collimation = QSlider(Qt.Orientation.Horizontal)
        self.collimation.setObjectName("carm_collimation")
        self.collimation.setRange(0, 40)
        self.collimation.setToolTip("Collimation: close the shutters (less dose, smaller field)")
        self.collimation.valueChanged.connect(lambda _v: self._pose_edited())
        self.mag_combo = QComboBox()
        self.mag_combo.setObjectName("carm_magnification")
        self.mag_combo.addItems(["Field 30 cm", "Mag 1 (21 cm)", "Mag 2 (15 cm)"])
        self.mag_combo.currentIndexChanged.connect(lambda _i: self._pose_edited())
        grid.addWidget(self.pedal_button, 1, 0, 1, 2)
        grid.addWidget(QLabel("Collimation"), 1, 2)
        grid.addWidget(self.collimation, 1, 3)
        grid.addWidget(self.mag_combo, 1, 4, 1, 2)
        lay.addLayout(grid)

        self.strip = QListWidget()
        self.strip.setObjectName("fluoro_saved")
        self.strip.setViewMode(QListView.ViewMode.IconMode)
        self.strip.setFlow(QListView.Flow.LeftToRight)
        self.strip.setWrapping(False)
        self.strip.setIconSize(QSize(56, 56))
        self.strip.setFixedHeight(84)
        self.strip.setMovement(QListView.Movement.Static)
        self.strip.setToolTip("Saved images: double-click to review")
        self.strip.itemDoubleClicked.connect(lambda it: self.review(self.strip.row(it)))
        lay.addWidget(self.strip)

    def sizeHint(self):  # noqa: N802 (Qt API)
        return QSize(520, 640)

    # ------------------------------------------------------------------------------------
    # context
    # ------------------------------------------------------------------------------------
    def set_context(self, controller, scenario, anatomy, targets=(), instructor: bool = True) -> None:
        """A new scenario (or a new attempt): reset the C-arm, the dose and the screen."""
        from simulator.core.carm import CArmPose

        self.controller = controller
        self.scenario = scenario
        self.anatomy = anatomy
        self.instructor = instructor
        self._gen += 1
        self._ready = False
        self._stop_live(record=False)
        self.settings = scenario.imaging.fluoroscopy
        s = self.settings
        iso = None
        if s is not None and s.isocenter_mm is not None:
            iso = tuple(s.isocenter_mm)
        elif targets:
            iso = tuple(np.asarray(targets[0].points_mm, float).reshape(-1, 3).mean(axis=0))
        elif scenario.trajectories:
            iso = tuple(scenario.trajectories[0].target_mm)
        else:
            iso = tuple(anatomy.origin_mm + 0.5 * (np.asarray(anatomy.shape) - 1) * anatomy.spacing_mm)
        if s is None:
            from simulator.core.scenario_model import FluoroscopySettings

            s = self.settings = FluoroscopySettings()
        self.pose = CArmPose.from_settings(s, isocenter_mm=iso, patient_position=scenario.patient_position,
                                           detector_pixels=512)
        self.presets = {"AP": (0.0, 0.0)}
        for name, (lao, cran) in s.presets.items():
            self.presets[name] = (float(lao), float(cran))
        if not any(abs(abs(a) - 90) < 1e-6 for a, _ in self.presets.values()):
            self.presets["lateral"] = (90.0, 0.0)
        self.preset_combo.blockSignals(True)
        self.preset_combo.clear()
        self.preset_combo.addItem("Views\u2026", None)
        for i, (name, (lao, cran)) in enumerate(self.presets.items()):
            label = name.replace("_", " ")
            self.preset_combo.addItem(f"{label} ({carm_angle_text(lao, cran).replace(chr(10), ', ')})", name)
        self.preset_combo.blockSignals(False)
        self._show_angles()
        self.collimation.blockSignals(True)
        self.collimation.setValue(0)
        self.collimation.blockSignals(False)
        self.mag_combo.blockSignals(True)
        self.mag_combo.setCurrentIndex(0)
        self.mag_combo.blockSignals(False)
        self._recorded = {"dap_gycm2": 0.0, "fluoro_time_s": 0.0, "images": 0}
        self._dose = {}
        self.dose_label.setText(dose_text({}))
        self.last_result = None
        self.saved.clear()
        self._spool.clear()
        self.strip.clear()
        self.reviewing = None
        self._contrast_cache.clear()
        self.canvas.banner = ""
        self.canvas.set_image(None)
        self.canvas.corner_text = {}
        self.canvas.edge_labels = {}
        self._worker.submit(("setup", self._gen, anatomy, self.pose, float(s.pulse_rate_pps), float(s.kvp),
                             (float(s.filtration_mm_al), float(s.filtration_mm_cu), str(s.imaging_preset))))
        if controller is not None and self._flush_before_motion not in controller.before_needle_motion:
            controller.before_needle_motion.append(self._flush_before_motion)
        self.carm_moved.emit(self.pose)

    def set_instructor(self, on: bool) -> None:
        self.instructor = bool(on)

    @property
    def ready(self) -> bool:
        """The engine is built for this anatomy (a shot renders at once)."""
        return self._ready

    def busy(self) -> bool:
        return not self._worker.idle()

    # ------------------------------------------------------------------------------------
    # the C-arm
    # ------------------------------------------------------------------------------------
    def _show_angles(self) -> None:
        for sp, v in ((self.lao_spin, self.pose.lao_deg), (self.cran_spin, self.pose.cranial_deg)):
            sp.blockSignals(True)
            sp.setValue(round(v))
            sp.blockSignals(False)

    def set_angles(self, lao_deg: float, cranial_deg: float, exact: bool = False) -> None:
        if self.pose is None:
            return
        lao = float(np.clip(lao_deg, -120.0, 120.0))
        cran = float(np.clip(cranial_deg, -45.0 if not exact else -60.0, 45.0 if not exact else 60.0))
        self._set_pose(self.pose.replace(lao_deg=lao, cranial_deg=cran))
        self._show_angles()

    def nudge(self, d_lao: float = 0.0, d_cranial: float = 0.0) -> None:
        if self.pose is not None:
            self.set_angles(self.pose.lao_deg + d_lao, self.pose.cranial_deg + d_cranial)

    def apply_preset(self, name) -> None:
        if name is None or name not in self.presets:
            return
        lao, cran = self.presets[name]
        self.set_angles(lao, cran)
        self.preset_combo.setCurrentIndex(0)
        self.message.emit(f"C-arm: {name.replace('_', ' ')}")

    def tunnel_view(self) -> None:
        """Beam along the planned trajectory (instructor mode) or along the needle (exam mode)."""
        if self.pose is None:
            return
        direction = None
        what = ""
        st = self.controller.state if self.controller is not None else None
        if not self.instructor and st is not None:
            direction, what = st.axis, "the needle"
        elif self.instructor and self.scenario is not None and self.scenario.trajectories:
            side = 0
            if st is not None and len(self.scenario.trajectories) > 1:  # the plan nearest the needle
                tip = st.tip_mm
                side = int(np.argmin([np.linalg.norm(np.asarray(t.entry_mm) - tip) for t in self.scenario.trajectories]))
            tr = self.scenario.trajectories[side]
            direction, what = np.asarray(tr.target_mm) - np.asarray(tr.entry_mm), "the planned trajectory"
        elif st is not None:
            direction, what = st.axis, "the needle"
        if direction is None:
            self.message.emit("Tunnel view: place the needle first")
            return
        try:
            p = self.pose.aimed_along(direction)
        except ValueError as e:
            self.message.emit(f"Tunnel view not possible: {e}")
            return
        self._set_pose(p)
        self._show_angles()
        self.message.emit(f"C-arm: tunnel view along {what}")

    def _angles_edited(self) -> None:
        if self.pose is not None:
            self._set_pose(self.pose.replace(lao_deg=float(self.lao_spin.value()), cranial_deg=float(self.cran_spin.value())))

    def _pose_edited(self) -> None:
        if self.pose is None:
            return
        c = self.collimation.value() / 100.0
        self._set_pose(self.pose.replace(collimation=(c, c, c, c), magnification=int(self.mag_combo.currentIndex())))

    def _set_pose(self, pose) -> None:
        if pose == self.pose:
            return
        self.pose = pose
        self._worker.submit(("pose", self._gen, pose), key="pose")
        self._still.start()
        self.carm_moved.emit(pose)

    def _carm_still(self) -> None:
        if self._closed or self.pose is None:
            return
        self._worker.submit(("refine", self._gen), key="refine")
        if self.controller is not None and self.controller.active:
            self.controller.set_carm_pose(self.pose.lao_deg, self.pose.cranial_deg, self.pose.isocenter_mm)

    # ------------------------------------------------------------------------------------
    # the pedal
    # ------------------------------------------------------------------------------------
    def pedal_press(self) -> None:
        if self._closed or self._pedal_t0 is not None or self.pose is None:
            return
        self._pedal_t0 = time.perf_counter()
        self._hold.start()

    def pedal_release(self) -> None:
        if self._pedal_t0 is None:
            return
        self._pedal_t0 = None
        if self._hold.isActive():
            self._hold.stop()
            self.single_shot()
        else:
            self._stop_live(record=True)

    @property
    def live(self) -> bool:
        return self._live

    def _scene_inputs(self):
        """(needles, contrast) to draw now."""
        from simulator.imaging.fluoroscopy import ContrastGrid, ContrastScene, NeedleModel

        needles = []
        st = self.controller.state if self.controller is not None else None
        if st is not None:
            needles.append(NeedleModel.from_state(st))
        grids = []
        proc = self.controller.procedure if self.controller is not None else None
        if proc is not None:
            for sp in proc.spreads:
                if getattr(sp, "kind", "") != "contrast" or not len(sp.indices):
                    continue
                g = self._contrast_cache.get(id(sp))
                if g is None:
                    g = self._contrast_cache[id(sp)] = ContrastGrid.from_spread(sp)
                grids.append(g)
        return needles, ContrastScene(grids=grids)

    def _now(self) -> float:
        return self.controller.now() if self.controller is not None else 0.0

    def single_shot(self, needle_tip_to_world=None) -> None:
        """One image (a tap of the pedal). `needle_tip_to_world`: draw the needle there instead of
        where it is now (a replay shows the last image taken before the moment it jumped to)."""
        if self._closed or self.pose is None or self._live:
            return
        needles, contrast = self._scene_inputs()
        if needle_tip_to_world is not None and needles:
            m = np.asarray(needle_tip_to_world, dtype=np.float64)
            n0 = needles[0]
            length = float(np.linalg.norm(np.subtract(n0.tip_mm, n0.hub_mm)))
            tip = m[:3, 3]
            needles = [dataclasses.replace(n0, tip_mm=tuple(float(x) for x in tip),
                                           hub_mm=tuple(float(x) for x in tip - m[:3, 2] * length))]
        self._shot_seq += 1
        self._worker.submit(("shot", self._gen, self._now(), needles, contrast, self._shot_seq, time.perf_counter()))

    def _start_live(self) -> None:
        if self._closed or self.pose is None or self._live:
            return
        self._live = True
        self._live_moved_mm = 0.0
        self._worker.submit(("down", self._gen, self._now()))
        period = 1000.0 / float(self.settings.pulse_rate_pps)
        self._pulse.start(max(15, int(round(period))))
        self.canvas.banner = "\u2622 LIVE"
        self._tick()

    def _tick(self) -> None:
        if not self._live:
            return
        needles, contrast = self._scene_inputs()
        self._worker.submit(("tick", self._gen, self._now(), needles, contrast, time.perf_counter()), key="tick")

    def _stop_live(self, record: bool) -> None:
        self._hold.stop()
        self._pedal_t0 = None
        if not self._live:
            return
        self._live = False
        self._pulse.stop()
        self.canvas.banner = ""
        self.canvas.update()
        self._worker.submit(("up", self._gen, self._now(), record))

    def _flush_before_motion(self) -> None:
        """Before a needle motion under live fluoroscopy: record the run so far once the needle
        has moved LIVE_FLUSH_MM under it (the motion was imaged)."""
        if self._live and self._live_moved_mm >= LIVE_FLUSH_MM:
            self._record(live=True)
            self._live_moved_mm = 0.0

    def note_needle(self, state) -> None:
        """The needle moved (from the controller's needle_changed): under live fluoroscopy the
        movement counts towards the next flush. The held image does not change."""
        if state is None:
            return
        tip = state.tip_mm
        if self._live and self._last_tip is not None:
            self._live_moved_mm += float(np.linalg.norm(tip - self._last_tip))
        self._last_tip = tip

    def _record(self, live: bool) -> None:
        """Record the exposure since the last record in the attempt."""
        d = self._dose
        if not d or self.controller is None or not self.controller.active:
            return
        frames = int(d.get("images", 0) - self._recorded["images"])
        if frames <= 0:
            return
        dap = float(d.get("dap_gycm2", 0.0) - self._recorded["dap_gycm2"])
        dur = float(d.get("fluoro_time_s", 0.0) - self._recorded["fluoro_time_s"])
        self._recorded = {"dap_gycm2": d.get("dap_gycm2", 0.0), "fluoro_time_s": d.get("fluoro_time_s", 0.0),
                          "images": d.get("images", 0)}
        self.controller.record_fluoro_shot(dap_gycm2=max(dap, 0.0), duration_s=max(dur, 0.0),
                                          kvp=float(self.settings.kvp), lao_deg=float(self.pose.lao_deg),
                                          cranial_deg=float(self.pose.cranial_deg), live=bool(live), frames=frames)

    # ------------------------------------------------------------------------------------
    # the worker (its own thread: the session lives there)
    # ------------------------------------------------------------------------------------
    def _work(self, job):
        kind, gen = job[0], job[1]
        w = self._w
        if kind == "setup":
            from simulator.core.carm import DoseTracker
            from simulator.imaging.fluoroscopy_session import FluoroscopySession

            _, gen, anatomy, pose, pps, kvp, (al_mm, cu_mm, preset) = job
            renderer = _renderer_for(anatomy)
            w["gen"] = gen
            w["session"] = FluoroscopySession(renderer, pose, DoseTracker(kvp=kvp, pulse_rate_pps=pps), preset=preset,
                                              al_mm=al_mm, cu_mm=cu_mm)
            w["session"].refine_pending()
            return {"kind": "ready", "gen": gen}
        if gen != w["gen"] or w["session"] is None:
            return None
        ses = w["session"]
        if kind == "pose":
            ses.set_pose(job[2])
            return None
        if kind == "refine":
            ses.refine_pending()
            return None
        if kind == "shot":
            _, _, t, needles, contrast, seq, t_req = job
            frame = ses.shot(needles, contrast, t)
            return {"kind": "shot", "gen": gen, "frame": frame, "dose": ses.dose.summary(), "seq": seq,
                    "t_request": t_req, "t_done": time.perf_counter(), "live": False}
        if kind == "down":
            ses.pedal_down(job[2])
            return None
        if kind == "tick":
            _, _, t, needles, contrast, t_req = job
            frame = ses.tick(t, needles, contrast)
            if frame is None:
                return None
            return {"kind": "live", "gen": gen, "frame": frame, "dose": ses.dose.summary(), "t_request": t_req,
                    "t_done": time.perf_counter(), "live": True}
        if kind == "up":
            ses.pedal_up(job[2])
            return {"kind": "live_end", "gen": gen, "frame": ses.last_image, "dose": ses.dose.summary(),
                    "record": job[3], "live": True}
        return None

    def _on_result(self, res: dict) -> None:
        if self._closed or res.get("gen") != self._gen:
            return
        kind = res["kind"]
        if kind == "ready":
            self._ready = True
            return
        self._dose = res["dose"]
        self.dose_label.setText(dose_text(self._dose))
        frame = res.get("frame")
        if kind == "shot":
            self._record(live=False)
            self._show(res)
            self._save(res)
        elif kind == "live":
            self._show(res)
        elif kind == "live_end":
            if res.get("record"):
                self._record(live=True)
            if frame is not None:
                self._save(res)

    def _show(self, res: dict) -> None:
        frame = res["frame"]
        self.reviewing = None
        self.last_result = res
        self.frames_shown += 1
        pose = frame.pose
        self.canvas.edge_labels = pose.orientation_labels()
        self.canvas.corner_text = {
            "tl": carm_angle_text(pose.lao_deg, pose.cranial_deg),
            "tr": f"{float(self.settings.pulse_rate_pps):g} p/s  {float(res['dose'].get('kvp', self.settings.kvp)):.0f} kV"
                  f"  {float(res['dose'].get('ma', 0.0)):.1f} mA",
            "bl": "" if frame.quality == "full" else "preview",
        }
        self.canvas.banner = "\u2622 LIVE" if self._live else ""
        self.canvas.set_image(frame.image, self.frames_shown)
        self.frame_shown.emit(res)

    def _save(self, res: dict) -> None:
        frame = res["frame"]
        label = f"{len(self.saved) + 1}: {carm_angle_text(frame.pose.lao_deg, frame.pose.cranial_deg).replace(chr(10), ' ')}"
        self.saved.append({"pose": frame.pose, "label": label, "spool": self._spool.put(frame.image)})
        img, arr = qimage_from_array(frame.image)
        icon = QIcon(QPixmap.fromImage(img.scaled(112, 112, Qt.AspectRatioMode.KeepAspectRatio,
                                                  Qt.TransformationMode.SmoothTransformation)))
        it = QListWidgetItem(icon, str(len(self.saved)))
        it.setToolTip(label)
        self.strip.addItem(it)
        self.strip.scrollToBottom()

    def saved_image(self, index: int) -> np.ndarray | None:
        """A saved image, read back from the spool."""
        if not 0 <= index < len(self.saved):
            return None
        return self._spool.get(self.saved[index]["spool"])

    def review(self, index: int) -> None:
        """Show a saved image again (until the next exposure)."""
        image = self.saved_image(index)
        if image is None:
            return
        self.reviewing = index
        pose = self.saved[index]["pose"]
        self.canvas.banner = f"REVIEW {index + 1}"
        self.canvas.corner_text = {"tl": carm_angle_text(pose.lao_deg, pose.cranial_deg)}
        self.canvas.edge_labels = pose.orientation_labels()
        self.canvas.set_image(image, -1 - index)

    # ------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._spool.close()
        for t in (self._still, self._hold, self._pulse):
            t.stop()
        self._worker.stop()

    def closeEvent(self, event):  # noqa: N802 (Qt API)
        self.shutdown()
        super().closeEvent(event)


def needle_pixels(pose, state, n: int = 40) -> np.ndarray:
    """Detector pixels (u, v) along the needle's shaft inside the image (for checks and tests)."""
    tip, hub = state.tip_mm, state.hub_mm
    pts = hub[None] + np.linspace(0.05, 1.0, n)[:, None] * (tip - hub)[None]
    u, v = pose.world_to_pixel(pts)
    keep = np.isfinite(u) & (u >= 0) & (v >= 0) & (u < pose.detector_pixels) & (v < pose.detector_pixels)
    return np.stack([u[keep], v[keep]], axis=1)


__all__ = ["FluoroscopyView", "carm_angle_text", "dose_text", "needle_pixels"]
