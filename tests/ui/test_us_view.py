"""The ultrasound view's verdicts on the needle tip, through the real window on the gel phantom:
the attempt's first verdict arrives with the needle, not with the first frame that shows it."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt

from simulator.core.events import EventKind
from simulator.core.probe import needle_visibility
from simulator.ui.driver import SHIFT, WindowDriver, process, wait_until
from simulator.ui.main_window import MainWindow

from .windows import WORK_TIMEOUT_S


@pytest.fixture
def gel(qapp, tmp_path, monkeypatch):
    from PySide6.QtCore import QCoreApplication, QEvent

    monkeypatch.setenv("NEUROLYSIS_DATA", str(tmp_path / "data"))
    w = MainWindow(scenario="needle_basics_gel", settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    w.question_answer = lambda key, text: "discard"
    w.resize(1500, 950)
    w.show()
    try:
        wait_until(lambda: w.scenario is not None and w.anatomy is not None and w.us_view.pose is not None,
                   WORK_TIMEOUT_S, "the gel")
        yield w
    finally:
        w.close()
        w.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        process(50)


def _unseen_events(w):
    return [e for e in w.controller.procedure.events if e.kind == EventKind.advance_without_imaging]


def _expected(w):
    uv, st = w.us_view, w.controller.state
    s = uv.settings().resolve(uv.spec)
    return needle_visibility(st.tip_mm, st.axis, uv.pose, uv.spec, None, depth_mm=s.depth_mm,
                             frequency_mhz=s.frequency_mhz, shaft_length_mm=float(st.spec.length_mm))


def _enter_and_advance(w, d, mm: float) -> list[bool]:
    """Entry click, aim at the target, then 1 mm advances: keys sent without running the event loop,
    so no ultrasound frame can come back in between. The geometric verdict after each key."""
    plan = w.scenario.planned_trajectory
    d.click_world(plan.entry_mm)  # the needle appears on the skin, synchronously
    assert w.controller.state is not None
    d.aim_at(plan.target_mm)  # arrow keys: the event loop does not run either
    seen = []
    for _ in range(int(mm)):
        d.key(Qt.Key.Key_W)
        vis = _expected(w)
        assert w.controller.procedure.state.tip_visible is bool(vis.tip_in_plane)  # sent with the move
        seen.append(bool(vis.tip_in_plane))
    return seen


def test_advances_are_judged_by_the_scanner_not_by_when_frames_come_back(gel):
    """The in-plane path: unseen for the first millimetres (the tip beside the probe's end), then
    in the slice; no frame has come back yet, and no more unseen events follow once it shows."""
    w = gel
    d = WindowDriver(w)
    frames = w.us_view.frames_shown
    seen = _enter_and_advance(w, d, 30)
    assert w.us_view.frames_shown == frames  # no frame was shown during the advances
    first = seen.index(True)
    assert all(seen[first:])  # in the slice from there on
    n_unseen = len(_unseen_events(w))
    assert n_unseen <= max(0, first) // 2 + 1  # at most one per 2 mm advanced unseen, before it showed
    for _ in range(5):  # further in plane: nothing more
        d.key(Qt.Key.Key_W)
    assert len(_unseen_events(w)) == n_unseen
    # frames come back later and agree
    uv = w.us_view
    wait_until(lambda: uv.last_result is not None and uv.last_result["needle_seq"] == uv._needle_seq, WORK_TIMEOUT_S,
               "the frame with the needle")
    assert bool(uv.last_result["frame"].needle_visibility.tip_in_plane) is True


def test_a_needle_out_of_the_plane_is_unseen_from_the_first_advance(gel):
    w = gel
    d = WindowDriver(w)
    for _ in range(12):  # the probe 12 mm out of plane: the path is no longer imaged
        d.key(Qt.Key.Key_I)
    seen = _enter_and_advance(w, d, 7)
    assert not any(seen)
    events = _unseen_events(w)
    # one per US_UNSEEN_ADVANCE_MM (2 mm) of unseen advance: 7 mm make 2 or 3 (1 mm steps in floats)
    assert 2 <= len(events) <= 3 and all("out of the ultrasound plane" in e.message for e in events)
    # the probe back over the needle: the tip shows, the verdict follows the probe at once
    for _ in range(12):
        d.key(Qt.Key.Key_K)
    assert w.controller.procedure.state.tip_visible is bool(_expected(w).tip_in_plane)


def test_the_scanner_screen_shows_the_injection_contact_and_its_annotations(gel):
    """As a user would: the frame carries the depth scale, focus and settings; pressing too hard and
    lifting the probe say so on the screen; a test dose at the tip shows as an anechoic pocket in
    the next frames; frames keep coming while it grows."""
    from simulator.imaging.ultrasound_tissue import INJECTATE

    w = gel
    uv = w.us_view
    d = WindowDriver(w)
    wait_until(lambda: uv.last_result is not None, 120, "a first frame")
    f = uv.last_result["frame"]
    h, wd = f.display.shape
    g = f.geometry
    assert abs(wd * g.spacing_mm - uv.spec.aperture_mm) < 2 * g.spacing_mm  # the field of view's own aspect
    assert abs(h * g.spacing_mm - f.settings.depth_mm) < 2 * g.spacing_mm
    assert uv.canvas.scale[0] == f.settings.depth_mm and uv.canvas.scale[1] == f.settings.focus_mm
    text = " ".join(uv.canvas.corner_text.values())
    assert "MHz" in text and "cm" in text and "dB" in text and "Press" in text
    # Pressing beyond the firmest plausible press: clamped, with a notice on the screen.
    messages = []
    uv.message.connect(messages.append)
    for _ in range(40):
        d.key(Qt.Key.Key_B)
    assert uv.press_mm == uv.spec.max_press_mm
    assert "firmest" in uv.canvas.notice and any("firmest" in m for m in messages)
    # Lifted off the skin: no contact, said on the screen.
    uv.press_mm = 0.0
    for _ in range(8):
        d.key(Qt.Key.Key_G)
    assert uv.press_mm == -3.0  # lifted 3 mm: beyond the gel film
    wait_until(lambda: uv.last_result is not None and uv.last_result["frame"].pose.allclose(uv.pose), 120,
               "the lifted frame")
    assert not uv.last_result["frame"].contact.any()
    assert "No contact" in uv.canvas.notice
    for _ in range(8 + 4):
        d.key(Qt.Key.Key_B)
    # A test dose at the target: the pocket appears in the frames after it.
    plan = w.scenario.planned_trajectory
    d.click_world(plan.entry_mm)
    d.aim_at(plan.target_mm)
    depth = float(np.linalg.norm(np.subtract(plan.target_mm, plan.entry_mm)))
    for _ in range(int(depth) - 2):
        d.key(Qt.Key.Key_W)
    w.controller.aspirate()
    w.controller.inject("test_dose", "lidocaine", 1.0, 2.0)
    n = uv.frames_requested
    wait_until(lambda: uv.last_result is not None and uv.last_result["req"] > n
               and (uv.last_result["frame"].tissue_beam == INJECTATE).sum() > 200, 120, "the pocket on screen")
    assert uv.last_result["frame"].animated  # still growing: more frames follow without input
    k = uv.frames_shown
    wait_until(lambda: uv.frames_shown > k + 2, 60, "live frames while the pocket grows")


def test_m_mode_sweeps_the_central_line_beside_the_image(gel):
    """Ctrl+M as a user would: the screen becomes B-mode and M-mode side by side, frames keep
    coming over the still gel, and the sweep fills the strip with the central line (the gel's flat
    layers: flat lines); Ctrl+M again: the B-mode alone."""
    from simulator.imaging.ultrasound_mmode import m_line

    w = gel
    uv = w.us_view
    d = WindowDriver(w)
    wait_until(lambda: uv.last_result is not None, 120, "a first frame")
    h, wd = uv.last_result["image"].shape[:2]
    d.key(Qt.Key.Key_M, Qt.KeyboardModifier.ControlModifier)
    assert uv.mmode_box.isChecked()
    k = uv.frames_shown
    wait_until(lambda: uv.frames_shown > k + 6, 60, "frames sweeping the M-mode over a still image")
    arr = uv.canvas._array
    assert arr.shape[:2] == (h, 2 * wd + 3)
    strip = arr[:, wd + 3:].astype(float)
    filled = (strip.max(axis=0) > 0).sum()
    assert filled >= 4  # several lines swept so far
    line = m_line(uv.last_result["image"]).astype(float)
    cols = strip[:, strip.max(axis=0) > 0]
    assert np.abs(cols - line[:, None]).mean() < 3.0  # the still gel: every column the same line
    d.key(Qt.Key.Key_M, Qt.KeyboardModifier.ControlModifier)
    assert not uv.mmode_box.isChecked()
    k = uv.frames_shown
    uv.request_frame()
    wait_until(lambda: uv.frames_shown > k, 60, "a B-mode frame")
    assert uv.canvas._array.shape[:2] == (h, wd)
