"""Tracked needles and probes in the main window (hybrid simulation): the Tracking dock, tracked
attempts, the fiducial registration and pivot calibration, and the OpenIGTLink stream out.

- Poses arrive on the client's thread, which wakes the GUI thread once per batch (a queued Qt
  signal that starts a zero timer, so pumps and the 3D view's renders take turns; and just before
  each 3D render, so the poses that came during the previous frame are in the next one); the GUI
  thread applies every pose in order (`TrackingSession.pump`: each frame recorded)
  and the views follow once per batch with the newest state (`coalesced_needle`); the 3D view
  draws the batch at once when it may begin a frame (`View3D.render_if_due`: before the repaints
  the batch queued for the panels), else at its next turn, coalesces its renders and stays on
  its moving level of detail while poses stream, so a 60 Hz
  stream draws the newest pose in each frame and never queues frames. `poses_to_views` keeps, per
  pose, its arrival and the end of the first 3D render begun after it was applied. A 10 Hz timer pumps too (the
  state: stale, lost) and refreshes the panel 4 times a second.
- A tracked attempt ("Drive the attempt from the tracker"): the Procedure's clock is the tracker's
  (`TrackingSession.clock`), the controller's 60 Hz sampler is off (the tracker's frames are the
  samples), the keyboard no longer moves the needle (nor the probe when it is tracked), and while
  the tracking is stale or lost the attempt is paused: every input but End is refused with the
  reason, the needle stays where it was, and it goes on when poses return.
- The session's settings (host, port, device names, registration, calibration, offsets) are kept in
  the window's settings (`tracking/config`, JSON); a broken entry is reported and the defaults used.
"""
from __future__ import annotations

import json
import time

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QDockWidget, QScrollArea

from simulator.tracking.session import TrackingConfig, TrackingSession
from simulator.ui.tracking_panel import TrackingPanel

PUMP_MS = 100
PANEL_EVERY = 3  # panel refresh every 3rd timer tick
PIVOT_SECONDS = 8.0
NEEDLE_INPUTS = ("set_entry", "advance", "withdraw", "set_direction", "set_needle_tip_to_world")


def _log_to_file() -> None:
    """The tracking notices also go to logs/tracking.log in the user data folder."""
    import logging
    import logging.handlers

    from simulator.core.paths import user_data_dir

    log = logging.getLogger("simulator.tracking")
    path = user_data_dir() / "logs" / "tracking.log"
    for old in [h for h in log.handlers if getattr(h, "_tracking_log", False)]:
        if old.baseFilename == str(path.absolute()):
            return
        log.removeHandler(old)  # the data folder changed (tests, benchmarks): the log follows it
        old.close()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        h = logging.handlers.RotatingFileHandler(path, maxBytes=1_000_000, backupCount=3, encoding="utf-8")
    except OSError:
        return  # the panel still shows them
    h._tracking_log = True
    h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(h)
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)


class _Wake(QObject):
    """Carries the client thread's wake-up to the GUI thread (a queued signal)."""

    poses = Signal()


class TrackingMixin:
    """Part of `MainWindow` (simulator.ui.main_window)."""

    def _build_tracking(self) -> None:
        _log_to_file()
        self.tracking = TrackingSession(self._load_tracking_config())
        self.tracked_mode = False
        self.streamer = None
        self.fiducials = None
        self.registration = None
        self._fiducial_pick = False
        self._pivot_poses: list | None = None
        self._pivot_end = 0.0
        self._tick_n = 0
        self.poses_to_views: list[tuple[float, float]] = []  # (arrival, views updated) per pose, for the bench
        self._shown_pending: list[tuple[float, float]] = []  # (arrival, applied) not yet on screen
        self._pumping = False
        self._wake = _Wake(self)
        self._wake.poses.connect(self._on_wake, Qt.ConnectionType.QueuedConnection)
        # the pump runs from a zero timer, as the 3D view's render does: the two take turns (a steady
        # stream of posted wake-ups would otherwise keep the render's timer waiting)
        self._pump_timer = QTimer(self)
        self._pump_timer.setSingleShot(True)
        self._pump_timer.setInterval(0)
        self._pump_timer.timeout.connect(self._pump_tracking)
        self.tracking_panel = TrackingPanel()
        self.tracking_panel.show_config(self.tracking.config)
        p = self.tracking_panel
        p.connect_requested.connect(self.connect_tracker)
        p.disconnect_requested.connect(self.disconnect_tracker)
        p.devices_chosen.connect(self._on_devices_chosen)
        p.offset_changed.connect(self._on_offset_changed)
        p.tracked_mode_changed.connect(self.set_tracked_mode)
        p.touch_requested.connect(self.touch_fiducial)
        p.pick_requested.connect(self._arm_fiducial_pick)
        p.remove_point_requested.connect(lambda: self._edit_fiducials("remove"))
        p.clear_points_requested.connect(lambda: self._edit_fiducials("clear"))
        p.register_requested.connect(self.register_tracker)
        p.calibrate_requested.connect(self.start_pivot_calibration)
        p.server_start_requested.connect(self.start_stream_server)
        p.server_stop_requested.connect(self.stop_stream_server)
        self.tracking.state_changed.subscribe(self._on_tracking_state)
        self.tracking.poses_seen.subscribe(self._on_poses_seen)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(p)
        self.tracking_dock = QDockWidget("Tracking", self)
        self.tracking_dock.setObjectName("dock_tracking")
        self.tracking_dock.setWidget(scroll)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.tracking_dock)
        self.tabifyDockWidget(self.right_dock, self.tracking_dock)
        self.right_dock.raise_()
        self._tracking_timer = QTimer(self)
        self._tracking_timer.setInterval(PUMP_MS)
        self._tracking_timer.timeout.connect(self._tracking_tick)
        self.view3d.rendered.connect(self._on_render_for_poses)
        self.view3d.hold_moving = self._stream_live
        self.view3d.before_render.append(self._pump_before_render)
        c = self.controller
        c.needle_changed.connect(self._stream_needle)
        self.us_view.probe_moved.connect(self._stream_probe)
        self.us_view.frame_shown.connect(self._stream_ultrasound)
        self.fluoro_view.frame_shown.connect(self._stream_fluoro)

    # ------------------------------------------------------------------------------------------
    # settings
    # ------------------------------------------------------------------------------------------
    def _load_tracking_config(self) -> TrackingConfig:
        text = self.settings.value("tracking/config", "", str)
        if not text:
            return TrackingConfig()
        try:
            return TrackingConfig.from_json(json.loads(text))
        except (ValueError, TypeError) as e:
            self.report_error("Tracking settings", f"The saved tracking settings cannot be used ({e}); the defaults are.")
            return TrackingConfig()

    def _save_tracking_config(self) -> None:
        self.settings.setValue("tracking/config", json.dumps(self.tracking.config.to_json()))

    # ------------------------------------------------------------------------------------------
    # connection and pumping
    # ------------------------------------------------------------------------------------------
    def connect_tracker(self, host: str | None = None, port: int | None = None) -> None:
        self.tracking.connect(host, port, on_data=self._wake.poses.emit)
        self._tracking_timer.start()
        self._save_tracking_config()
        self._refresh_tracking_panel()

    def disconnect_tracker(self) -> None:
        self.tracking.disconnect()
        if self.streamer is None:
            self._tracking_timer.stop()
        self._refresh_tracking_panel()

    def _on_wake(self) -> None:
        if not self._pump_timer.isActive():
            self._pump_timer.start()

    def _pump_tracking(self, render: bool = True) -> None:
        """Apply what has arrived: every frame to the attempt, the views once with the newest (the
        3D view's frame at once when it may begin now, `View3D.render_if_due`)."""
        if self._closing or self._pumping:
            return
        self._pumping = True
        t_recv: list[float] = []
        self.tracking.frames_applied.subscribe(t_recv.extend)
        try:
            with self.controller.coalesced_needle():
                self.tracking.pump()
        except Exception as e:  # noqa: BLE001 - a bug here must never end the trainee's attempt
            self.report_error("Tracking", f"Poses could not be applied ({type(e).__name__}: {e}); the attempt is kept")
        finally:
            self.tracking.frames_applied.unsubscribe(t_recv.extend)
            self._pumping = False
        if t_recv:
            now = time.perf_counter()
            self._shown_pending.extend((a, now) for a in t_recv)
            self.view3d.note_stream_inputs(len(t_recv))
            if render:
                self.view3d.render_if_due()

    def _pump_before_render(self) -> None:
        """Just before a 3D render: the poses that came during the last frame, so it shows them."""
        if self.tracking.client is not None and self.tracking.procedure is not None:
            self._pump_tracking(render=False)  # (the render follows)

    def _on_render_for_poses(self, _ms: float) -> None:
        """A 3D render has finished: the poses applied before it began are on screen (views updated)."""
        if not self._shown_pending:
            return
        start, end = self.view3d.render_started, self.view3d.last_render_end
        keep = []
        for arrival, applied in self._shown_pending:
            if applied <= start:
                self.poses_to_views.append((arrival, end))
            else:
                keep.append((arrival, applied))
        self._shown_pending = keep
        del self.poses_to_views[:-20000]

    def _stream_live(self) -> bool:
        """A tracked attempt whose poses are arriving (the 3D view stays on its moving frame)."""
        return self.tracking.procedure is not None and self.tracking.state()[0] == "connected"

    def _tracking_tick(self) -> None:
        if self._closing:
            return
        self._pump_tracking()
        if self._pivot_poses is not None and time.perf_counter() >= self._pivot_end:
            self._finish_pivot_calibration()
        self._tick_n += 1
        if self._tick_n % PANEL_EVERY == 0 and self.tracking_dock.isVisible():
            self._refresh_tracking_panel()

    def _refresh_tracking_panel(self) -> None:
        p = self.tracking_panel
        p.show_state(*self.tracking.state())
        p.show_devices(self.tracking.devices())
        p.show_problems(self.tracking.notices())
        s = self.streamer
        if s is not None and s.running:
            clients = s.server.clients()
            p.server_label.setText(f"Streaming on port {s.server.port} to {len(clients)} client(s): "
                                   f"{', '.join(c.address for c in clients) or 'waiting for 3D Slicer'}; "
                                   f"ultrasound {s.image_rate_hz():.0f} frames/s")

    def _on_tracking_state(self, state: str, text: str) -> None:
        self.tracking_panel.show_state(state, text)
        if self.controller.procedure is not None and self.tracking.procedure is self.controller.procedure:
            if state in ("stale", "lost"):
                self.statusBar().showMessage(f"Tracking {state}: {text}", 10000)
            elif state == "connected":
                self.statusBar().showMessage("Tracking: poses arriving, the attempt goes on", 5000)

    def _on_devices_chosen(self, needle: str, probe: str) -> None:
        cfg = self.tracking.config
        cfg.needle_device, cfg.probe_device = needle or cfg.needle_device, probe
        self._save_tracking_config()

    def _on_offset_changed(self, device: str, seconds: float) -> None:
        offs = self.tracking.config.time_offsets_s
        if seconds:
            offs[device] = float(seconds)
        else:
            offs.pop(device, None)
        self._save_tracking_config()

    # ------------------------------------------------------------------------------------------
    # tracked attempts
    # ------------------------------------------------------------------------------------------
    def set_tracked_mode(self, on: bool) -> None:
        """Make attempts tracked (a new one starts now) or keyboard-driven again."""
        if bool(on) == self.tracked_mode:
            return
        if self.scenario is not None and self.anatomy is not None and not self._settle_attempt("new"):
            self.tracking_panel.tracked_box.blockSignals(True)
            self.tracking_panel.tracked_box.setChecked(self.tracked_mode)
            self.tracking_panel.tracked_box.blockSignals(False)
            return
        self.tracked_mode = bool(on)
        self.tracking_panel.tracked_box.blockSignals(True)
        self.tracking_panel.tracked_box.setChecked(self.tracked_mode)
        self.tracking_panel.tracked_box.blockSignals(False)
        if self.scenario is not None and self.anatomy is not None:
            self._start_attempt()
            self.statusBar().showMessage("Tracked attempt: move the tracked needle" if on else
                                         "Keyboard attempt: click the skin to choose the entry point", 8000)
        if self.tracked_mode and self.tracking.client is None:
            self.tracking_panel.connect_button.setChecked(True)  # connects

    def attempt_clock(self) -> dict:
        """Keyword arguments of `AttemptController.start` for a new live attempt."""
        if self.tracked_mode:
            return {"clock": self.tracking.clock, "sampled": False}
        return {}

    def _attempt_started(self, proc) -> None:
        """Called by `_start_attempt` once the new live attempt exists (None: a replay is hosted)."""
        self.procedure_panel.set_streaming(self.tracked_mode and proc is not None)
        if self.tracked_mode and proc is not None:
            self.tracking.attach(proc, 0.0, apply=self._apply_tracked)
            self.controller.refuse = self._tracked_refusal
            self.us_view.probe_tracked = False  # until the tracker's first probe pose (else a virtual probe)
        else:
            self.tracking.detach()
            self.controller.refuse = None
            self.us_view.probe_tracked = False

    def _apply_tracked(self, needle, probe, time_s) -> bool:
        proc = self.controller.procedure
        n = len(proc.recording.inputs) if proc is not None else 0
        if needle is not None:
            for fn in list(self.controller.before_needle_motion):  # a live fluoroscopy run is flushed
                fn()
        self.controller.call("set_tracked_pose", needle, probe, time_s=time_s)
        return proc is not None and len(proc.recording.inputs) > n

    def _tracked_refusal(self, name: str) -> str | None:
        if name == "set_tracked_pose" or name == "end":
            return None
        if name in NEEDLE_INPUTS:
            return "The needle is tracked: move the real needle (untick 'Drive the attempt from the tracker' to use the keyboard)"
        if name == "set_probe_to_world" and self.us_view.probe_tracked:
            return "The probe is tracked: move the real probe"
        state, text = self.tracking.state()
        if state in ("stale", "lost"):
            return f"Tracking {state}: the attempt is paused until the poses return ({text})"
        return None

    def _on_poses_seen(self, seen: dict) -> None:
        if self._pivot_poses is not None:
            raw = self.tracking.latest_raw.get(self.tracking.config.needle_device)
            if raw is not None:
                self._pivot_poses.append(raw.copy())
        if "probe" in seen and self.tracking.procedure is not None and self.modality in ("ultrasound", "both"):
            from simulator.core.probe import ProbePose

            self.us_view.probe_tracked = True
            self.us_view.set_pose(ProbePose.from_matrix(seen["probe"]), tracked=True)

    # ------------------------------------------------------------------------------------------
    # registration and calibration
    # ------------------------------------------------------------------------------------------
    def _fiducials(self):
        if self.fiducials is None:
            from simulator.tracking.registration import FiducialPairs

            self.fiducials = FiducialPairs()
        return self.fiducials

    def touch_fiducial(self) -> None:
        """The needle tip's position now, in the tracker's reference frame (calibration applied)."""
        raw = self.tracking.latest_raw.get(self.tracking.config.needle_device)
        if raw is None:
            self.statusBar().showMessage(f"No {self.tracking.config.needle_device} pose yet: connect the tracker", 8000)
            return
        tip = (raw @ self.tracking.config.needle_tip_to_device)[:3, 3]
        n = self._fiducials().add_tracker(tip)
        self.tracking_panel.show_fiducials(self._fiducials().rows())
        self.statusBar().showMessage(f"Point {n} touched: now pick the same point on the patient (Pick)", 8000)

    def _arm_fiducial_pick(self) -> None:
        self._fiducial_pick = True
        self.statusBar().showMessage("Click the point on the patient in the 3D view", 8000)

    def fiducial_pick(self, point, name: str) -> bool:
        """A surface pick while Pick is armed: a patient point (True: the pick is used)."""
        if not self._fiducial_pick:
            return False
        self._fiducial_pick = False
        n = self._fiducials().add_world(np.asarray(point, float))
        self.tracking_panel.show_fiducials(self._fiducials().rows())
        self.statusBar().showMessage(f"Patient point {n}: {name.replace('_', ' ')}", 6000)
        return True

    def _edit_fiducials(self, what: str) -> None:
        f = self._fiducials()
        f.remove_last() if what == "remove" else f.clear()
        self.tracking_panel.show_fiducials(f.rows())

    def register_tracker(self):
        from simulator.tracking.registration import RegistrationError

        f = self._fiducials()
        try:
            reg = f.register()
        except RegistrationError as e:
            self.tracking_panel.registration_label.setText(f"Cannot register: {e}")
            return None
        self.registration = reg
        cfg = self.tracking.config
        cfg.reference_to_world, cfg.fre_mm = reg.reference_to_world, reg.fre_mm
        self._save_tracking_config()
        target = ""
        if self.targets:
            tre = reg.tre_mm(self.targets[0].centre_mm)
            if np.isfinite(tre):
                target = f"; expected error at the target {tre:.1f} mm"
        self.tracking_panel.registration_label.setText(
            f"Registered with {reg.n_points} points: FRE {reg.fre_mm:.2f} mm{target}")
        self.tracking_panel.show_fiducials(f.rows(), reg.residuals_mm)
        return reg

    def start_pivot_calibration(self) -> None:
        if self.tracking.client is None:
            self.tracking_panel.calibration_label.setText("Connect the tracker first")
            return
        self._pivot_poses = []
        self._pivot_end = time.perf_counter() + PIVOT_SECONDS
        self.tracking_panel.calibration_label.setText(
            f"Recording for {PIVOT_SECONDS:g} s: keep the tip in the divot and pivot the needle about it")

    def _finish_pivot_calibration(self):
        from simulator.tracking.calibration import CalibrationError, pivot_calibration

        poses, self._pivot_poses = self._pivot_poses, None
        try:
            cal = pivot_calibration(np.array(poses).reshape(-1, 4, 4))
        except CalibrationError as e:
            self.tracking_panel.calibration_label.setText(f"Calibration failed: {e}")
            return None
        self.tracking.config.needle_tip_to_device = cal.needle_tip_to_tool()
        self._save_tracking_config()
        self.tracking_panel.calibration_label.setText(
            f"Needle tip {np.linalg.norm(cal.tip_in_tool_mm):.1f} mm from the sensor; RMS {cal.rms_mm:.2f} mm "
            f"({len(poses)} poses, {cal.rotation_range_deg:.0f} degrees)")
        return cal

    # ------------------------------------------------------------------------------------------
    # stream out
    # ------------------------------------------------------------------------------------------
    def start_stream_server(self, port: int) -> bool:
        from simulator.tracking.server import ServerError, TrackingServer
        from simulator.tracking.streamer import SessionStreamer

        self.stop_stream_server()
        server = TrackingServer("0.0.0.0", int(port))
        try:
            server.start()
        except ServerError as e:
            self.tracking_panel.set_server_running(False)
            self.tracking_panel.server_label.setText(f"Cannot stream: {e}")
            self.report_error("Stream out", str(e))
            return False
        self.streamer = SessionStreamer(server)
        self._tracking_timer.start()
        self.tracking_panel.set_server_running(True, server.port)
        self._refresh_tracking_panel()
        return True

    def stop_stream_server(self) -> None:
        if self.streamer is not None:
            self.streamer.server.stop()
            self.streamer = None
        self.tracking_panel.set_server_running(False)
        self.tracking_panel.server_label.setText("Not streaming")

    def _stream_needle(self, state) -> None:
        if self.streamer is not None:
            self.streamer.needle(state.needle_tip_to_world)

    def _stream_probe(self, pose) -> None:
        if self.streamer is not None and pose is not None:
            self.streamer.probe(pose.probe_to_world())

    def _stream_ultrasound(self, res: dict) -> None:
        if self.streamer is not None:
            f = res["frame"]
            self.streamer.ultrasound(res["image"], f.geometry.image_to_world(f.pose))

    def _stream_fluoro(self, res: dict) -> None:
        if self.streamer is not None and res.get("frame") is not None:
            f = res["frame"]
            self.streamer.fluoroscopy(f.image, f.pose)

    def shutdown_tracking(self) -> None:
        self._tracking_timer.stop()
        self._pump_timer.stop()
        self.stop_stream_server()
        self.tracking.disconnect()
        self._save_tracking_config()
