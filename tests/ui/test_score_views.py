"""What the examiner sees of the score: the card's per-target results and error behaviours (a
double-click asks the replay to jump there), the behaviours marked on the replay timeline (a click
jumps there), and the History window's validity tab on scripted expert and novice cohorts."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from simulator.benchmarks.scoring import synthetic_block_anatomy, synthetic_scenario
from simulator.core.scoring import score_attempt
from simulator.records.store import SQLiteRecordStore
from simulator.scripted import cohort, run_attempt


@pytest.fixture(scope="module")
def block():
    return synthetic_block_anatomy()


@pytest.fixture(scope="module")
def blind(block):
    """An attempt that advances without images (behaviours on its timeline) and its card."""
    sc = synthetic_scenario()
    proc = run_attempt(sc, block, "expert", seed=2, faults=["no_imaging"], quick=True)
    return sc, proc, score_attempt(proc.recording, sc, block)


def test_the_card_lists_each_target_and_the_behaviours_with_their_times(qtbot, blind):
    from simulator.core.events import format_time
    from simulator.ui.scorecard import ScoreCardDialog

    sc, proc, card = blind
    dlg = ScoreCardDialog(card, sc.title)
    qtbot.addWidget(dlg)
    dlg.show()
    (row,) = dlg.table_texts("targets")
    assert row[0] == "celiac plexus" and row[1:3] == ["placed", "given"] and row[4] == "100 %"
    rows = dlg.table_texts("behaviours")
    assert len(rows) == len(card.behaviours) >= 5
    t0 = proc.recording.samples.time_s[0]
    first = card.behaviours[0]
    assert first["points"] == 3.0  # an advance without an image: 3 points each by default
    assert rows[0] == [format_time(first["time_s"] - t0), first["message"], "-3 points"]
    assert any(r[2] == "0 (cap reached)" for r in rows)  # past the 15-point cap: listed, costs nothing
    with qtbot.waitSignal(dlg.jump_requested) as sig:
        table = dlg.behaviours
        rect = table.visualItemRect(table.item(2, 1))
        QTest.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        QTest.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert sig.args == [card.behaviours[2]["time_s"]]


def test_a_behaviour_mark_on_the_timeline_jumps_the_replay_there(qtbot, blind, block):
    from simulator.ui.replay import ReplayPlayer, TimelineDock

    sc, proc, card = blind
    player = ReplayPlayer(proc.recording, sc, block)
    player.start()
    dock = TimelineDock()
    qtbot.addWidget(dock)
    dock.set_player(player, "test")
    dock.resize(1400, 120)
    dock.show()
    qtbot.waitExposed(dock)
    marks = [m for m in dock.slider.marks if m[3]]
    assert [m[0] for m in marks] == [int(round(b["time_s"] * 1000)) for b in card.behaviours]
    assert all("\u26a0" in m[2] for m in marks)
    target = marks[3]
    # a click in the band above the groove, at the mark
    QTest.mouseClick(dock.slider, Qt.MouseButton.LeftButton, pos=QPoint(dock.slider.x_of(target[0]), 2))
    qtbot.waitUntil(lambda: abs(player.time_s - target[0] / 1000.0) < 1e-6, timeout=3000)
    assert player.state == "paused"


def test_the_validity_tab_compares_the_groups_and_says_what_is_missing(qtbot, tmp_path, block):
    from simulator.ui.history import HistoryWindow

    sc = synthetic_scenario()
    store = SQLiteRecordStore(tmp_path / "records.sqlite")
    passed = {"expert": 0, "novice": 0}
    for skill, names in (("expert", ("eva", "emil")), ("novice", ("nina", "noah"))):
        for seed, _f, proc in cohort(sc, block, skill, n=6, seed0=40, quick=True):
            proc.recording.trainee = names[seed % 2]
            card = score_attempt(proc.recording, sc, block)
            passed[skill] += card.passed
            store.save_recording(proc.recording, card, scenario=sc)
    store.add_trainee("zoe")
    hw = HistoryWindow(store, trainee="eva", choose_path=lambda *a, **k: None)
    qtbot.addWidget(hw)
    hw.show()
    hw.show_tab("validity")
    panel = hw.validity
    assert panel.experts.count() == 5
    panel.tick("expert", ["eva", "emil"])
    panel.tick("novice", ["nina", "noah"])
    QTest.mouseClick(panel.compute_button, Qt.MouseButton.LeftButton)
    agree = (passed["expert"] + 6 - passed["novice"]) / 12  # half the novices are clumsy only: some may pass
    assert passed["expert"] == 6 and f"pass/fail agreement {100 * agree:.0f} %" in panel.message.text()
    rows = panel.table_texts(sc.id)
    assert rows[0][0] == "total score" and float(rows[0][4]) >= 0.95
    assert {"needle translational actions", "error behaviours"} <= {r[0] for r in rows}
    # a trainee ticked as a novice is no longer an expert
    panel.tick("novice", ["eva"])
    assert "eva" not in panel._ticked(panel.experts)
    panel.tick("expert", ["zoe"])
    names = [panel.experts.item(i).text() for i in range(panel.experts.count())]
    panel.experts.item(names.index("emil")).setCheckState(Qt.CheckState.Unchecked)
    QTest.mouseClick(panel.compute_button, Qt.MouseButton.LeftButton)
    assert panel.message.text() == "the expert group (zoe) has no scored attempts"
    assert panel.tables.count() == 0
    store.close()
