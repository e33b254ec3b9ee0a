"""Tracked attempts in the trainer (hybrid simulation), driven through the Tracking panel as a user
would, with the simulated tracker on loopback: the tracked needle and probe drive the same attempt,
score and recording as the keyboard; a stopped tracker pauses the attempt and it resumes; the
session streams out to an OpenIGTLink client as PLUS would."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from simulator.core.scoring import score_attempt
from simulator.core.trackfiles import write_sequence_metafile
from simulator.records.exchange import procedure_from_tracked
from simulator.tracking.client import TrackingClient
from simulator.tracking.hand_motion import needle_pass
from simulator.tracking.simtracker import SimulatedTracker
from simulator.ui.driver import WindowDriver, process, wait_until
from simulator.ui.procedure_panel import PLOT_MS, PLOT_STREAM_MS

from .windows import close_window, open_window

CTRL = Qt.KeyboardModifier.ControlModifier


@pytest.fixture(scope="module")
def trainer(qapp, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    data = tmp_path_factory.mktemp("tracking_data")
    mp.setenv("NEUROLYSIS_DATA", str(data))
    w = open_window("needle_basics_gel", data / "settings.ini", {"keep_attempt": "discard"})
    wait_until(lambda: w.us_view.frames_shown > 0, 120, "the first ultrasound frame")  # its engine is built
    plan = w.scenario.planned_trajectory
    seqs = needle_pass(plan.entry_mm, plan.target_mm, rate_hz=60.0, duration_s=3.0, start_s=5.0, seed=2)
    w.pass_file = write_sequence_metafile(data / "pass.igs.mha", seqs)
    yield w
    close_window(w)
    mp.undo()


def test_a_tracked_attempt_from_the_panel_scores_as_its_file(qtbot, trainer):
    w = trainer
    p = w.tracking_panel
    w.tracking_dock.raise_()
    tracker = SimulatedTracker(w.pass_file, port=0, speed=1.0)
    tracker.start()
    details = []
    allr = []
    w.view3d.rendered.connect(lambda ms: allr.append((w.tracking.state()[0], w.view3d.scene.detail)))
    w.view3d.rendered.connect(lambda ms: details.append(w.view3d.scene.detail) if w._stream_live() else None)
    panel = w.procedure_panel
    moves, shown = [], []
    w.controller.needle_changed.connect(moves.append)
    show_state = panel.show_state
    panel.show_state = lambda st: (shown.append(st), show_state(st))[1]
    try:
        p.port_spin.setValue(tracker.port)
        qtbot.mouseClick(p.tracked_box, Qt.MouseButton.LeftButton)  # a tracked attempt; it connects
        assert w.tracked_mode and w.tracking.procedure is w.controller.procedure
        assert w.procedure_panel._plot_timer.interval() == PLOT_STREAM_MS  # the plots' slower pace
        wait_until(lambda: tracker.wait_done(0), 20, "the tracker to finish")
        # while the poses streamed the 3D view stayed on its moving frame (no still render held them up)
        assert len(details) >= 5 and details.count("moving") == len(details), (allr, w.tracking.counts)
        try:
            wait_until(lambda: w.tracking.counts["needle_poses"] == tracker.n_frames, 10, "every frame applied")
        except TimeoutError:
            raise AssertionError((w.tracking.counts, [n.text for n in w.tracking.notices()][-8:])) from None
        wait_until(lambda: w.tracking.state()[0] == "stale", 3, "the stale state")  # the file has ended
        # the status line followed the stream at the plots' pace, not once per batch of poses, and
        # shows the newest state
        process(PLOT_STREAM_MS + 100)
        del panel.show_state
        assert 3 <= len(shown) <= len(moves) // 3, (len(shown), len(moves))
        assert shown[-1] is moves[-1] and f"{moves[-1].depth_mm:.1f} mm" in panel.status.text()
        # the Procedure dock closed: the plots are not redrawn; shown again they are
        w.right_dock.hide()
        assert not panel.isVisible()
        n = len(panel.depth_curve.getData()[0])
        panel.note_series(moves[-1])
        panel._redraw_plots()
        assert panel._dirty_plots and len(panel.depth_curve.getData()[0]) == n
        w.right_dock.show()
        process(50)
        assert not panel._dirty_plots and len(panel.depth_curve.getData()[0]) == n + 1
        # the needle held still: the tissue band is not rebuilt
        assert w.instructor_mode and panel.instructor
        panel._redraw_plots()
        band = panel.band_item
        assert band is not None and band.isVisible() and panel.band_runs()
        assert any(t.isVisible() and t.textItem.toPlainText() for t in panel.band_texts)  # its tissues named
        redone = []
        band.setOpts = lambda **kw: redone.append(kw)
        panel._redraw_plots()
        del band.setOpts
        assert panel.band_item is band and not redone
        w._refresh_tracking_panel()
        assert "STALE" in p.state_label.text()  # the file has ended: no new pose
        rows = {p.device_table.item(r, 0).text(): p.device_table.item(r, 1).text() for r in range(p.device_table.rowCount())}
        assert rows == {"NeedleTipToReference": "needle", "ProbeToReference": "probe"}
        proc = w.controller.procedure
        last = proc.recording.samples.needle_tip_to_world[-1]
        m = w.view3d.scene._needle_matrix
        shown = np.array([[m.GetElement(i, j) for j in range(4)] for i in range(4)])
        assert np.allclose(shown[:3, 3], last[:3, 3], atol=1e-6)  # the 3D view shows the last pose
        assert np.allclose(w.us_view.pose.probe_to_world(), proc.recording.samples.probe_to_world[-1])
        d = WindowDriver(w)
        d.key(Qt.Key.Key_W)  # the keyboard no longer moves a tracked needle
        assert "needle is tracked" in w.statusBar().currentMessage()
        cards = []
        w.controller.ended.connect(cards.append)
        d.key(Qt.Key.Key_E, CTRL)
        wait_until(lambda: cards, 10, "the score card")
        ref = procedure_from_tracked(w.pass_file, w.scenario, w.anatomy)
        assert np.array_equal(proc.recording.samples.time_s, ref.recording.samples.time_s)
        assert np.array_equal(proc.recording.samples.needle_tip_to_world, ref.recording.samples.needle_tip_to_world)
        assert cards[0].perk == score_attempt(ref.recording, w.scenario, w.anatomy).perk
    finally:
        tracker.stop()
    # stored like any attempt; replayed through the same entry point and rescored to the last digit
    from simulator.records.rescore import canonical

    aid = w.last_attempt_id
    stored = w.store.load_attempt(aid)
    assert stored.same_as(proc.recording) and any(i.name == "set_tracked_pose" for i in stored.inputs)
    assert w.replay_attempt(aid)
    wait_until(lambda: w.player is not None and w.player.attempt_id == aid, 10, "the replay")
    tl = w.timeline
    tl.slider.setFocus()
    QTest.keyClick(tl.slider, Qt.Key.Key_End)
    assert w.player.at_end and w.player.procedure.recording.same_as(stored)
    np.testing.assert_allclose(w.us_view.pose.probe_to_world(), stored.samples.probe_to_world[-1], atol=1e-9)
    QTest.mouseClick(tl.rescore_button, Qt.MouseButton.LeftButton)
    wait_until(lambda: w.score_dialog is not None and w.score_dialog.isVisible(), 5, "the score card")
    assert w.replay_identical is True and canonical(w.replay_card.to_json()) == canonical(w.store.score_card(aid))
    w.score_dialog.close()
    QTest.mouseClick(tl.stop_button, Qt.MouseButton.LeftButton)


def test_a_stopped_tracker_pauses_the_attempt_and_it_resumes(qtbot, trainer):
    w = trainer
    w.new_attempt()
    port = w.tracking.config.port
    first = SimulatedTracker(w.pass_file, port=port, speed=1.0, max_frames=60)
    first.start()
    try:
        wait_until(lambda: w.tracking.counts["frames"] >= 1 and first.wait_done(0), 20, "the first second")
    finally:
        first.stop()  # the server vanishes mid-attempt
    wait_until(lambda: w.tracking.state()[0] in ("stale", "lost"), 5, "the pause")
    assert w.tracking.paused and w.controller.active
    n = len(w.controller.procedure.recording.samples)
    w.aspirate()
    assert "paused" in w.statusBar().currentMessage()
    assert len(w.controller.procedure.recording.samples) == n  # nothing moved, nothing recorded
    again = SimulatedTracker(w.pass_file, port=port, speed=2.0, max_frames=30)  # back, its clock from the start
    again.start()
    try:
        wait_until(lambda: w.tracking.state()[0] == "connected" or again.wait_done(0), 20, "the poses again")
        wait_until(lambda: len(w.controller.procedure.recording.samples) > n, 10, "new samples")
        t = w.controller.procedure.recording.samples.time_s
        assert np.all(np.diff(t) > 0) and w.controller.active
    finally:
        again.stop()


def test_the_session_streams_out_as_plus_would(qtbot, trainer):
    w = trainer
    assert w.start_stream_server(0)
    c = TrackingClient("127.0.0.1", w.streamer.server.port)
    c.start()
    try:
        wait_until(lambda: w.streamer.server.clients(), 5, "the client")
        w.set_tracked_mode(False)  # a keyboard attempt streams the same way
        d = WindowDriver(w)
        plan = w.scenario.planned_trajectory
        d.click_skin(plan.entry_mm)
        d.key(Qt.Key.Key_W)
        wait_until(lambda: w.us_view.frames_shown and w.streamer.sent["Image_Reference"] >= 1, 30, "a frame streamed")
        got = []
        wait_until(lambda: got.extend(c.take()) or {"NeedleTipToReference", "Image_Reference", "ImageToReference"}
                   <= {g.device for g in got}, 10, "the devices")
        # the stream catches up with the needle: its newest pose is the attempt's (the streamer
        # sends at its own pace, so the newest message may still be one from before the key)
        def newest_needle_is_current():
            got.extend(c.take())
            needles = [g for g in got if g.device == "NeedleTipToReference"]
            return bool(needles) and np.allclose(needles[-1].matrix, w.controller.state.needle_tip_to_world, atol=1e-3)

        wait_until(newest_needle_is_current, 10, "the needle's current pose streamed")
        img = [g for g in got if g.device == "Image_Reference"][-1].message
        # the view's latest frame (a new one may be on its way after the needle moved)
        wait_until(lambda: w.us_view.last_result is not None, 10, "the view's frame")
        assert img.image.shape[1:3] == w.us_view.last_result["image"].shape[:2]
        assert img.image.max() > 0
        w._refresh_tracking_panel()
        assert "1 client" in w.tracking_panel.server_label.text()
    finally:
        c.stop()
        w.stop_stream_server()


def test_a_port_in_use_and_a_tracker_that_is_not_there_are_told_not_raised(qtbot, trainer):
    import os

    from simulator.core.paths import user_data_dir
    from simulator.tracking.server import TrackingServer

    w = trainer
    busy = TrackingServer("0.0.0.0", 0)
    busy.start()
    try:
        assert not w.start_stream_server(busy.port)
        assert f"port {busy.port}" in w.tracking_panel.server_label.text() and "in use" in w.last_error
        assert not w.tracking_panel.server_button.isChecked()
    finally:
        busy.stop()
    w.connect_tracker("127.0.0.1", busy.port)  # nobody listens there now
    wait_until(lambda: "cannot connect" in w.tracking.state()[1], 5, "the state")
    w._refresh_tracking_panel()
    assert "WAITING" in w.tracking_panel.state_label.text() and "cannot connect" in w.tracking_panel.problems.toPlainText()
    log = user_data_dir() / "logs" / "tracking.log"
    wait_until(lambda: log.exists() and "cannot connect" in log.read_text(), 5, "the log")
    assert os.path.getsize(log) > 0
    w.disconnect_tracker()


def test_fiducial_registration_from_the_panel(qtbot, trainer):
    """The tracker's reference turned and shifted away from the patient: touch four points of the gel's
    top with the tracked tip, pick the same points in the 3D view, Register: the FRE is small and the
    registration maps the tracker's frame onto the patient's."""
    from simulator.core.geometry import invert_pose
    from simulator.core.geometry import rotation_about_axis as _rot
    from simulator.tracking.server import TrackingServer

    w = trainer
    truth = np.eye(4)
    truth[:3, :3] = _rot([0.2, 1.0, 0.3], 30.0)
    truth[:3, 3] = [40.0, -25.0, 60.0]
    to_tracker = invert_pose(truth)
    server = TrackingServer("127.0.0.1", 0)
    server.start()
    try:
        w.connect_tracker("127.0.0.1", server.port)
        wait_until(lambda: server.clients(), 5, "the connection")
        p = w.tracking_panel
        d = WindowDriver(w)
        e = np.array(w.scenario.planned_trajectory.entry_mm, float)
        points = [e + [-8.0, 0.0, -8.0], e + [-20.0, 0.0, -8.0], e + [-8.0, 0.0, 8.0], e + [-20.0, 0.0, 8.0]]
        for k, pt in enumerate(points):
            pose = np.eye(4)
            pose[:3, 3] = pt
            server.send_transform("NeedleTipToReference", to_tracker @ pose, 100.0 + k)
            wait_until(lambda: "NeedleTipToReference" in w.tracking.latest_raw and np.allclose(
                (truth @ w.tracking.latest_raw["NeedleTipToReference"])[:3, 3], pt, atol=1e-3), 5, "the pose")
            qtbot.mouseClick(_button(p, "Touch"), Qt.MouseButton.LeftButton)
            qtbot.mouseClick(_button(p, "Pick"), Qt.MouseButton.LeftButton)
            d.click_world(pt)
        assert p.fiducial_table.rowCount() == 4
        qtbot.mouseClick(p.register_button, Qt.MouseButton.LeftButton)
        reg = w.registration
        assert reg is not None and reg.fre_mm < 1.5, p.registration_label.text()
        assert f"FRE {reg.fre_mm:.2f} mm" in p.registration_label.text()
        assert np.allclose(reg.reference_to_world[:3, 3], truth[:3, 3], atol=3.0)
        assert np.allclose(w.tracking.config.reference_to_world, reg.reference_to_world)
    finally:
        w.disconnect_tracker()
        server.stop()
        w.tracking.config.reference_to_world = np.eye(4)


def _button(panel, text):
    from PySide6.QtWidgets import QPushButton

    return next(b for b in panel.findChildren(QPushButton) if b.text() == text)
