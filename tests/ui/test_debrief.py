"""The debrief widget and its place in the score dialog (offscreen Qt, synthetic attempts)."""

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QTableWidget, QTabWidget

from simulator.benchmarks.scoring import synthetic_scenario
from simulator.core import outcome_library
from simulator.core.decisions import Decision
from simulator.core.outcome import CaseInfo, compute_course, unavailable
from simulator.core.outcome_facts import QUADRANTS, AttemptFacts, Dose
from simulator.core.scoring import score_attempt
from simulator.ui.debrief import DebriefWidget, attach_debrief
from simulator.ui.scorecard import ScoreCardDialog
from tests.attempts import neurolysis_on_block


def _course(quadrants=4, seed=5, **facts):
    qm = {q: (1.5 if i < quadrants else 0.0) for i, q in enumerate(QUADRANTS)}
    f = AttemptFacts(neurolytic=[Dose(0.0, "alcohol", 100.0, 15.0, "tissue", quadrant_ml=qm)], skin_punctures=1,
                     seed=seed, **facts)
    return compute_course(f, outcome_library.shared_library().sets["celiac_plexus"], CaseInfo(block_truth=True))


def test_timeline_band_markers_and_tables(qtbot):
    c = _course(pleural_breaches=1)
    w = DebriefWidget(c, [Decision("agent", "alcohol 100 %", "good", "as planned"),
                          Decision("asepsis", "missing: drape", "poor", "infection risk")])
    qtbot.addWidget(w)
    w.resize(900, 700)
    w.show()
    assert "Educational model" in w.findChild(QLabel, "debrief_label").text()
    plot = w.findChild(pg.PlotWidget, "debrief_plot")
    items = plot.getPlotItem().items
    assert sum(isinstance(i, pg.FillBetweenItem) for i in items) == 2  # the 10-90 % and 25-75 % bands
    lines = [i for i in items if isinstance(i, pg.InfiniteLine)]
    assert len(lines) == len(c.markers()) >= 1
    curves = [i for i in items if isinstance(i, pg.PlotDataItem)]
    y = [np.asarray(i.yData) for i in curves if i.yData is not None and len(i.yData) == len(c.days)]
    assert any(np.allclose(v, c.index) for v in y) and any(np.allclose(v, c.median) for v in y)
    rows = w.effect_rows()
    pneumo = next(r for r in rows if r[0] == "Pneumothorax")
    assert pneumo[2] == "30.0 %" and "assumption" in pneumo[4]  # triggered by the pleural breach
    assert any(r[0] == "Diarrhoea" and "eisenberg1995" in r[4] for r in rows)
    dec = w.findChild(QTableWidget, "debrief_decisions")
    assert dec.rowCount() == 2 and dec.item(1, 2).text() == "poor"
    assert w.findChild(object, "debrief_figures").count() == len(c.figures)


def test_without_outcome_parameters_it_says_why(qtbot):
    w = DebriefWidget(unavailable("This scenario has no outcome parameters (no `outcome:` in its file)."))
    qtbot.addWidget(w)
    assert "no outcome parameters" in w.findChild(QLabel, "debrief_reason").text()
    assert w.findChild(pg.PlotWidget, "debrief_plot") is None


def _celiac_attempt():
    """(scenario, anatomy, ended procedure): a celiac-like neurolysis on the synthetic block."""
    sc = synthetic_scenario(outcome={"parameters": "celiac_plexus", "celiac_origin_mm": [-20.0, 27.0, 0.0]})
    block, proc = neurolysis_on_block(sc)
    return sc, block, proc


def test_the_course_dock_shows_a_replayed_attempt_and_offers_the_repeat(qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QPushButton

    from simulator.ui.course_dock import CourseDock

    sc, _block, proc = _celiac_attempt()
    dock = CourseDock()
    qtbot.addWidget(dock)
    dock.show()
    assert dock.placeholder.isVisible() and dock.debrief is None
    dock.show_attempt(proc.recording, sc)
    assert dock.debrief.course.available and dock.recording is proc.recording and not dock.placeholder.isVisible()
    assert dock.debrief.findChild(pg.PlotWidget, "debrief_plot") is not None
    wanted = []
    dock.repeat_requested.connect(wanted.append)
    qtbot.mouseClick(dock.debrief.findChild(QPushButton, "debrief_repeat"), Qt.MouseButton.LeftButton)
    assert wanted == [dock.debrief.course]
    dock.clear()
    assert dock.debrief is None and dock.recording is None and dock.placeholder.isVisible()


def test_the_score_dialog_gets_a_debrief_tab(qtbot):
    sc, block, proc = _celiac_attempt()
    card = score_attempt(proc.recording, sc, block)
    dlg = ScoreCardDialog(card, sc.title)
    qtbot.addWidget(dlg)
    deb = attach_debrief(dlg, proc.recording, sc)
    tabs = dlg.findChild(QTabWidget, "score_tabs")
    assert tabs.count() == 2 and tabs.widget(1) is deb
    assert deb.course.available and deb.course.coverage["quadrants"] >= 1
    assert dlg.findChild(QTableWidget, "score_items") is not None  # the score card is still there
    topics = {d.topic for d in deb.decisions}
    assert {"agent", "volume", "level and side"} <= topics
