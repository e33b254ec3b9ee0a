"""Shared by the editor tests: a trainer window on the gel phantom with the editor installed,
and the instructor's gestures (clicks on the slice views, typing over a field)."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtTest import QTest

from simulator.core.paths import link_shared_data
from simulator.ui.driver import process, wait_until
from simulator.ui.editor import EditorMode, install_editor
from simulator.ui.main_window import MainWindow
from tests.ui.windows import WORK_TIMEOUT_S

CTRL = Qt.KeyboardModifier.ControlModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier
NO_MOD = Qt.KeyboardModifier.NoModifier


def open_gel_window(tmp_path_factory, name: str):
    """(window, monkeypatch): the gel scenario in a window with its own data folder; questions
    are answered from `window.answers` (default "discard") and recorded in `window.asked`."""
    mp = pytest.MonkeyPatch()
    data = link_shared_data(tmp_path_factory.mktemp(name))  # files of its own; built patients shared
    mp.setenv("NEUROLYSIS_DATA", str(data))
    w = MainWindow(scenario="needle_basics_gel", settings=QSettings(str(data / "settings.ini"), QSettings.Format.IniFormat))
    w.asked = []
    w.answers = {}
    w.question_answer = lambda key, text: w.asked.append(key) or w.answers.get(key, "discard")
    w.resize(1500, 950)
    w.show()
    try:
        wait_until(lambda: w.scenario is not None and w.anatomy is not None, WORK_TIMEOUT_S, "the gel scenario")
        w.view3d.render_now()
    except BaseException:
        close_window(w, mp)  # no window outlives its test
        raise
    w.data_dir = data
    return w, mp


def close_window(w, mp) -> None:
    from PySide6.QtCore import QCoreApplication, QEvent

    w.answers = {}
    w.close()
    w.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    process(50)
    mp.undo()


def editor_of(w) -> EditorMode:
    return install_editor(w)


def click_slice(ed: EditorMode, view: str, ras, double: bool = False) -> None:
    v = ed.slices.views[view]
    pt = v.widget_point(ras)
    if double:
        QTest.mouseDClick(v.viewport(), Qt.MouseButton.LeftButton, NO_MOD, pt)
    else:
        QTest.mouseClick(v.viewport(), Qt.MouseButton.LeftButton, NO_MOD, pt)
    process(0)


def retype(ed: EditorMode, widget, text: str) -> None:
    """Select the field's text and type over it; then pause (the typing goes into the document
    after a short pause, as the instructor sees it validated)."""
    widget.setFocus()
    QTest.keyClick(widget, Qt.Key.Key_A, CTRL)
    QTest.keyClicks(widget, text)
    assert ed.binder.pending  # not yet: typing is not slowed by validation
    wait_until(lambda: not ed.binder.pending, 5, "the typing to reach the document")


def tab(ed: EditorMode, name: str) -> None:
    ed.tabs.setCurrentIndex(ed._tab_index(name))


def field_of(ed: EditorMode, path):
    for f in ed.binder.fields:
        if f.path == tuple(path):
            return f
    raise LookupError(path)


