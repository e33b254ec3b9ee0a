"""The procedure panel's tissue band: the tissues along the shaft from the skin to the tip."""
from __future__ import annotations

from simulator.core.tissue import TISSUE_INFO, Tissue
from simulator.ui.procedure_panel import ProcedurePanel


def test_the_tissue_band_is_updated_in_place_as_the_needle_goes_deeper(qtbot):
    """A needle streaming in: the band's bars follow the tissues along the shaft (widths in mm, one
    colour per tissue, the long runs named) with the same items throughout; hidden when the needle
    is out."""
    panel = ProcedurePanel()
    qtbot.addWidget(panel)
    panel.resize(420, 700)
    panel.show()
    panel.build_plots()
    runs = []
    panel.band_runs = lambda: list(runs)
    runs[:] = [(0.0, 3.0, Tissue.SKIN, "skin"), (3.0, 30.0, Tissue.MUSCLE, "erector_spinae")]
    panel._draw_band()
    band = panel.band_item
    assert band.isVisible() and list(band.opts["x0"]) == [0.0, 3.0] and list(band.opts["width"]) == [3.0, 27.0]
    assert band.opts["brushes"][1].color().getRgb()[:3] == tuple(int(255 * c) for c in TISSUE_INFO[Tissue.MUSCLE].color)
    named = [t.textItem.toPlainText() for t in panel.band_texts if t.isVisible()]
    assert named == ["erector spinae"]  # the 3 mm of skin is too short to name on a 30 mm band
    runs[:] = runs + [(30.0, 42.0, Tissue.FAT, None), (42.0, 80.0, Tissue.MUSCLE, "psoas")]
    panel._draw_band()
    assert panel.band_item is band and list(band.opts["x0"]) == [0.0, 3.0, 30.0, 42.0]
    named = [t.textItem.toPlainText() for t in panel.band_texts if t.isVisible()]
    assert named == ["erector spinae", TISSUE_INFO[Tissue.FAT].label.replace("_", " "), "psoas"]
    assert abs(panel.band_plot.viewRange()[0][1] - 80.0) < 3.0
    runs[:] = []  # withdrawn
    panel._draw_band()
    assert panel.band_item is band and not band.isVisible() and not any(t.isVisible() for t in panel.band_texts)


def test_while_poses_stream_the_time_plot_moves_its_range_in_steps(qtbot):
    """A tracked attempt: the time plot's range is the next 10 s / 20 mm step past the data, so it
    stays put between steps (no axes and grid repainted with every redraw); auto-range again after."""
    from simulator.ui.procedure_notes import PLOT_STEP_MM, PLOT_STEP_S, stepped_box

    assert stepped_box(0.0) == (PLOT_STEP_S, 0.0, PLOT_STEP_MM)
    assert stepped_box(12.5, [0.0, 31.0], [float("nan"), 55.0]) == (20.0, 0.0, 60.0)
    assert stepped_box(30.0, [-3.0, 40.0]) == (40.0, -20.0, 60.0)

    class State:
        def __init__(self, t, depth, dist):
            self.time_s, self.depth_mm, self.inserted, self.target_distances_mm = t, depth, True, {"a": dist}

    panel = ProcedurePanel()
    qtbot.addWidget(panel)
    panel.resize(420, 700)
    panel.show()
    panel.build_plots()
    panel.set_streaming(True)
    vb = panel.time_plot.getViewBox()
    for i in range(300):  # 5 s at 60 Hz, 30 mm deep, 90 -> 60 mm from the target
        panel.note_series(State(i / 60, i / 10, 90 - i / 10))
    panel._redraw_plots()
    (x0, x1), (y0, y1) = vb.viewRange()
    assert vb.state["autoRange"] == [False, False]
    assert abs(x0) < 0.5 and abs(x1 - 10.0) < 0.5 and abs(y0) < 2.5 and abs(y1 - 100.0) < 2.5
    before = vb.viewRange()
    for i in range(300, 540):  # to 9 s, 54 mm deep: within the step
        panel.note_series(State(i / 60, i / 10, 90 - i / 10))
    panel._redraw_plots()
    assert vb.viewRange() == before
    for i in range(540, 700):  # past 10 s: the next step
        panel.note_series(State(i / 60, i / 10, 90 - i / 10))
    panel._redraw_plots()
    assert abs(vb.viewRange()[0][1] - 20.0) < 0.5
    panel.set_streaming(False)
    assert vb.state["autoRange"][0] and vb.state["autoRange"][1]
