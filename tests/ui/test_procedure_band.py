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
