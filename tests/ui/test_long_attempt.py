"""A long attempt keeps the window lean: saved fluoroscopy images leave the heap (thumbnails stay),
the event list folds its oldest rows, and the time plot draws a few points per pixel however
long the attempt."""
from __future__ import annotations

import numpy as np

from simulator.core.events import Event, EventKind
from simulator.ui.exposure_spool import ExposureSpool
from simulator.ui.procedure_panel import MAX_EVENT_ROWS, ProcedurePanel


def test_spooled_images_come_back_exactly_and_leave_no_files(tmp_path):
    spool = ExposureSpool(tmp_path)
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (64, 48), dtype=np.uint8) for _ in range(5)]
    keys = [spool.put(im) for im in images]
    assert keys == list(range(5)) and len(spool) == 5
    for k, im in zip(keys, images):
        assert np.array_equal(spool.get(k), im)
    assert spool.get(5) is None and spool.get(-1) is None
    assert any(tmp_path.rglob("*.npy"))
    spool.clear()
    assert len(spool) == 0 and not any(tmp_path.rglob("*.npy")) and spool.get(0) is None


class _State:
    def __init__(self, t, depth, dist):
        self.time_s, self.depth_mm, self.inserted = t, depth, True
        self.target_distances_mm = {"left": dist}


def test_event_rows_fold_and_the_plot_draws_a_bounded_number_of_points(qtbot):
    panel = ProcedurePanel()
    qtbot.addWidget(panel)
    panel.resize(420, 700)
    panel.show()
    panel.build_plots()
    n_events = MAX_EVENT_ROWS + 250
    for i in range(n_events):
        panel._add_event_row(Event(float(i), EventKind.skin_puncture, f"event {i}"))
    texts = panel.event_texts()
    assert len(texts) <= MAX_EVENT_ROWS + 1
    assert texts[0].startswith("\u2026") and str(n_events - (len(texts) - 1)) in texts[0]
    assert texts[-1].endswith(f"event {n_events - 1}")
    n = 40_000  # 10 minutes of needle moves at 60 a second
    t = np.arange(n) / 60.0
    for i in range(n):
        panel.note_series(_State(t[i], 40 + 10 * np.sin(i / 50.0), 30 - i * 1e-4))
    panel._redraw_plots()
    qtbot.wait(50)
    x, y = panel.depth_curve.getData()  # what is drawn (downsampled to the view's pixels)
    assert len(panel._series["t"]) == n and np.array_equal(panel._series["t"], t)
    assert len(x) < n / 10
    assert y.max() >= 49.9 and y.min() <= 30.1  # peak downsampling keeps the extremes

