"""The Qt 3D view under Xvfb: pixels read back, coalesced renders, click picking, keys, shutdown."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PySide6.QtCore import Qt

from simulator.core.tissue import TISSUE_INFO, Tissue
from simulator.ui.view3d import View3D, widget_point_from_display
from tests.conftest import KIDNEY_LEFT_C, KIDNEY_LEFT_R


def test_qt_runs_on_the_virtual_x_display_not_offscreen():
    assert os.environ.get("QT_QPA_PLATFORM", "xcb") == "xcb"
    assert os.environ.get("DISPLAY")


@pytest.fixture
def view(qtbot, synthetic_anatomy):
    v = View3D()
    qtbot.addWidget(v)
    v.resize(480, 360)
    v.show()
    qtbot.waitExposed(v)
    v.scene.set_anatomy(synthetic_anatomy, "supine")
    v.scene.set_group_visible("skin", False)
    v.render_now()
    yield v
    v.shutdown()


def _hue_distance(pixel, tissue):
    p = np.asarray(pixel, float)
    c = np.asarray(TISSUE_INFO[tissue].color, float)
    return np.linalg.norm(p / max(np.linalg.norm(p), 1) - c / np.linalg.norm(c))


def test_view_shows_the_anatomy(view):
    img = view.screenshot()
    w, h = view.render_window.GetSize()
    assert img.shape == (h, w, 3)
    d = view.scene.world_to_display(KIDNEY_LEFT_C + [0, KIDNEY_LEFT_R, 0])
    pixel = img[h - 1 - int(d[1]), int(d[0])]
    assert _hue_distance(pixel, Tissue.KIDNEY) < 0.2, pixel
    background = img[3, w // 2].astype(float)
    assert (np.linalg.norm(img.astype(float) - background, axis=2) > 30).mean() > 0.05


def test_render_requests_are_coalesced(qtbot, view):
    qtbot.waitUntil(lambda: not view._timer.isActive())
    n0 = view.render_count
    for _ in range(25):
        view.request_render()
    qtbot.waitUntil(lambda: view.render_count > n0, timeout=2000)
    qtbot.wait(60)  # several coalescing periods: no more renders may follow
    assert view.render_count == n0 + 1
    assert view.last_render_ms > 0


def test_click_picks_the_surface_under_the_cursor(qtbot, view):
    d = view.scene.world_to_display(KIDNEY_LEFT_C)
    x, y = widget_point_from_display(view, d[0], d[1])
    with qtbot.waitSignal(view.surface_picked, timeout=3000) as blocker:
        qtbot.mousePress(view.vtk_widget, Qt.MouseButton.LeftButton, pos=_qpoint(x, y))
        qtbot.mouseRelease(view.vtk_widget, Qt.MouseButton.LeftButton, pos=_qpoint(x, y))
    point, name = blocker.args
    assert name == "kidney_left"
    assert abs(np.linalg.norm(point - KIDNEY_LEFT_C) - KIDNEY_LEFT_R) < 1.0


def test_keys_do_not_reach_the_vtk_interactor_style(qtbot, view):
    """VTK's style would switch to wireframe on 'w' and to stereo on '3'."""
    view.vtk_widget.setFocus()
    for key in (Qt.Key.Key_W, Qt.Key.Key_3, Qt.Key.Key_E):
        qtbot.keyClick(view.vtk_widget, key)
    view.render_now()
    assert view.scene.structures["kidney_left"].actor.GetProperty().GetRepresentation() == 2  # surface
    assert not view.render_window.GetStereoRender()
    assert not view.closed


def test_shutdown_stops_rendering_and_releases_the_window(qtbot, view):
    rw = view.render_window
    assert rw.GetGenericDisplayId() is not None
    view.shutdown()
    n = view.render_count
    view.request_render()
    view.render_now()
    view.update()
    qtbot.wait(30)
    assert view.render_count == n
    assert view.closed and view.scene.closed
    assert rw.GetGenericDisplayId() is None  # the X/GL resources are gone
    view.shutdown()  # idempotent


def _qpoint(x, y):
    from PySide6.QtCore import QPoint

    return QPoint(int(x), int(y))


def test_interactive_renders_use_the_coarse_meshes_then_the_full_ones(qtbot, monkeypatch):
    import simulator.render.scene as scene_mod
    from tests.conftest import make_synthetic_anatomy

    monkeypatch.setattr(scene_mod, "LOD_MIN_TRIANGLES", 0)
    v = View3D()
    qtbot.addWidget(v)
    v.resize(320, 240)
    v.show()
    qtbot.waitExposed(v)
    v.set_anatomy(make_synthetic_anatomy(), "supine")  # coarse copies built on a worker thread
    qtbot.waitUntil(v.scene.has_lod, timeout=5000)
    v.render_now()
    n = v.render_count
    v.request_render(interactive=True)
    assert v.scene.lod
    qtbot.waitUntil(lambda: v.render_count > n)
    qtbot.waitUntil(lambda: not v.scene.lod, timeout=3000)  # the still render follows the pause
    qtbot.waitUntil(lambda: v.render_count > n + 1)
    # a camera drag: coarse while the button is down, full after
    c = v.vtk_widget.rect().center()
    qtbot.mousePress(v.vtk_widget, Qt.MouseButton.LeftButton, pos=c)
    assert v.scene.lod
    qtbot.mouseRelease(v.vtk_widget, Qt.MouseButton.LeftButton, pos=c)
    qtbot.waitUntil(lambda: not v.scene.lod, timeout=3000)
    v.shutdown()
