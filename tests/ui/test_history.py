"""The history window on a record store with known attempts (the scripted expert and novice on the
synthetic test block, scored headlessly): the attempts and scores listed, the learning curves with
the rubric's thresholds, the instructor's overview, and the buttons (replay, report, export, a
trainee's export and import) clicked as a user would, file names answered by `choose_path`."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from simulator.benchmarks.scoring import expert_attempt, novice_attempt, synthetic_block_anatomy, synthetic_scenario
from simulator.core.procedure import Procedure
from simulator.core.scoring import score_attempt
from simulator.records.store import SQLiteRecordStore
from simulator.ui.history import HistoryWindow


@pytest.fixture(scope="module")
def attempts():
    sc, an = synthetic_scenario(), synthetic_block_anatomy()
    out = []
    for who, fn, day in (("ann", novice_attempt, 5), ("ann", expert_attempt, 6), ("ben", expert_attempt, 7)):
        proc = fn(Procedure(sc, an, clock=lambda: 0.0, trainee=who))
        proc.recording.started_at = f"2026-01-0{day}T10:00:00+00:00"
        out.append((proc.recording, score_attempt(proc.recording, sc, an)))
    return sc, out


@pytest.fixture
def history(qtbot, tmp_path, attempts):
    sc, done = attempts
    store = SQLiteRecordStore(tmp_path / "records.sqlite")
    ids = [store.save_recording(rec, card, scenario=sc) for rec, card in done]
    answers = {}
    hw = HistoryWindow(store, trainee="ann", choose_path=lambda key, *a, **k: answers.get(key))
    qtbot.addWidget(hw)
    hw.show()
    qtbot.waitExposed(hw)
    hw.answers, hw.ids, hw.cards = answers, ids, [c for _, c in done]
    yield hw
    store.close()


def click(widget) -> None:
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


def test_history_lists_the_attempts_and_draws_the_learning_curves_with_thresholds(history):
    hw = history
    novice, expert = hw.cards[0], hw.cards[1]
    assert not novice.passed and expert.passed
    assert hw.attempt_ids() == [hw.ids[1], hw.ids[0]]  # newest first
    assert hw.row_texts(0)[6:] == [f"{expert.score:.1f}", "PASSED", ""]
    assert hw.row_texts(1)[6:8] == [f"{novice.score:.1f}", "FAILED"]
    # why the novice failed, in the list (all the reasons in the tooltip)
    why = hw.row_texts(1)[8]
    fails = novice.automatic_fails
    assert (fails[0]["reason"] in why) if fails else (why == f"score below the pass mark {novice.pass_mark:g}")
    assert novice.reasons[0] in hw.table.item(1, 7).toolTip()
    # the curves' points: red for the failed attempt, green for the passed one
    assert hw.point_colours("score") == ["failed", "passed"]
    assert hw.point_colours("elapsed_time_s") == ["failed", "passed"]
    # the score on its whole scale (0 to 100), the units as printed
    assert hw.plots["score"].viewRange()[1] == [0.0, 105.0]
    assert "mm\u00b2" in hw.plots["tissue_damage_mm2"].titleLabel.text
    x, y = hw.curve_data("score")
    assert list(x) == [1.0, 2.0] and list(y) == [novice.score, expert.score]
    rubric = hw.curve.thresholds
    assert hw.threshold_values("score") == {"pass mark": float(synthetic_scenario().rubric.pass_mark)}
    for metric in ("elapsed_time_s", "tissue_damage_mm2", "advances_without_imaging"):
        x, y = hw.curve_data(metric)
        assert list(y) == pytest.approx([novice.metrics[metric], expert.metrics[metric]]), metric
        if metric in rubric:
            assert hw.threshold_values(metric) == {"full marks": rubric[metric].good, "no marks": rubric[metric].bad}
    assert hw.threshold_values("tissue_damage_mm2")  # the test scenario's rubric scores it
    # another trainee: their attempts only
    hw.trainee_combo.setCurrentIndex(hw.trainee_combo.findData("ben"))
    assert hw.attempt_ids() == [hw.ids[2]]
    assert list(hw.curve_data("score")[1]) == [hw.cards[2].score]


def test_overview_lists_every_trainee_and_opens_their_curves(qtbot, history):
    hw = history
    click_tab = hw.tabs.tabBar().tabRect(1).center()
    QTest.mouseClick(hw.tabs.tabBar(), Qt.MouseButton.LeftButton, pos=click_tab)
    assert hw.tabs.currentIndex() == 1
    rows = hw.overview_rows()
    sid = synthetic_scenario().id
    top = next(texts for s, t, texts in rows if t is None)
    assert top[1:4] == ["2", "3", f"{max(c.score for c in hw.cards):.1f}"]
    ben = next(texts for s, t, texts in rows if t == "ben")
    assert ben[2] == "1" and ben[5] == "100 %"
    ann = next(texts for s, t, texts in rows if t == "ann")
    assert ann[2] == "2" and ann[5] == "50 %"
    # the plot below compares the scenario's trainees: one score curve each, and the pass mark
    assert hw.compare_scenario_id == sid and hw.compare.isVisible()
    data = hw.comparison_data()
    assert sorted(data) == ["ann", "ben"]
    assert list(data["ann"][0]) == [1.0, 2.0] and list(data["ann"][1]) == [hw.cards[0].score, hw.cards[1].score]
    assert list(data["ben"][1]) == [hw.cards[2].score]
    assert hw.compare_items["__pass_mark__"].value() == float(synthetic_scenario().rubric.pass_mark)
    # double-click ben: his curves
    item = hw.tree.topLevelItem(0).child([t for s, t, _ in rows if t][:2].index("ben"))
    rect = hw.tree.visualItemRect(item)
    QTest.mouseClick(hw.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    QTest.mouseDClick(hw.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert hw.tabs.currentIndex() == 0 and hw.trainee == "ben" and hw.scenario_combo.currentData() == sid
    assert hw.attempt_ids() == [hw.ids[2]]


def test_buttons_replay_report_export_and_move_a_trainee(qtbot, tmp_path, history):
    from simulator.records.exchange import read_samples_csv
    from simulator.records.report import pdf_text

    hw = history
    expert_id = hw.ids[1]
    assert hw.selected_id() == expert_id
    with qtbot.waitSignal(hw.replay_requested) as sig:
        click(hw.replay_button)
    assert sig.args == [expert_id]
    # report, HTML and PDF
    hw.answers["report"] = str(tmp_path / "r.html")
    click(hw.report_button)
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert f"{hw.cards[1].score:.1f}" in html and "PASSED" in html
    hw.answers["report"] = str(tmp_path / "r.pdf")
    click(hw.report_button)
    assert f"{hw.cards[1].score:.1f}" in pdf_text(tmp_path / "r.pdf")
    # exports
    rec = hw.store.load_attempt(expert_id)
    for name in ("a.igs.mha", "a.csv", "a.json"):
        hw.answers["export"] = str(tmp_path / name)
        click(hw.export_button)
        assert (tmp_path / name).stat().st_size > 0, name
    csv = read_samples_csv(tmp_path / "a.csv")
    np.testing.assert_array_equal(csv["time_s"], rec.samples.time_s)
    assert json.loads((tmp_path / "a.json").read_text())["attempt"]["uuid"] == hw.store.attempt(expert_id).uuid
    assert "exported" in hw.message_label.text()
    # a trainee's records to another workstation, and back without duplicates
    hw.answers["export_trainee"] = str(tmp_path / "ann.ntrecords")
    click(hw.export_trainee_button)
    assert "2 attempt(s) of ann" in hw.message_label.text()
    other = SQLiteRecordStore(tmp_path / "other.sqlite")
    hw2 = HistoryWindow(other, trainee="", choose_path=lambda key, *a, **k: str(tmp_path / "ann.ntrecords"))
    qtbot.addWidget(hw2)
    click(hw2.import_button)
    assert "2 attempt(s) added" in hw2.message_label.text()
    assert hw2.trainee == "ann" and len(hw2.attempt_ids()) == 2
    click(hw2.import_button)
    assert "0 attempt(s) added, 2 already present" in hw2.message_label.text()
    other.close()
    # a bad file: said plainly, with its name
    hw.answers["export"] = str(tmp_path / "a.txt")
    click(hw.export_button)
    assert "a.txt" in hw.message_label.text() and "failed" in hw.message_label.text()
