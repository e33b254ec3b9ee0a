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
