"""The patient in the trainer, driven as a trainee would: the case screen before the attempt, the
time-out, consent, skin preparation, drape and the prognostic block (keys and buttons), the
neurolytic refused until the block is done, a deferral ending the attempt, and the debrief judging
the decisions. Gel phantom (fast), with a scenario of its own carrying a vignette."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QPushButton, QTabWidget, QTableWidget

from simulator.core.events import EventKind
from simulator.ui.driver import SHIFT, WindowDriver, process, wait_until
from tests.ui.windows import close_window, open_window

CASE = """\
vignette:
  age_years: 58
  sex: male
  diagnosis: "Rib metastasis of a lung carcinoma, right 7th rib"
  pain_history: "Three months of sharp chest-wall pain along the 7th rib, NRS 7/10 on morphine."
  pain_nrs: 7
  pain_side: right
  medications: ["Apixaban 5 mg twice daily for atrial fibrillation, last dose 10 hours ago"]
  anticoagulation: {drug: "apixaban 5 mg twice daily", last_dose_hours: 10, inr: 1.2, platelets_per_nl: 190}
  other_facts: ["Skin over the rib intact"]
  contraindications:
    - kind: coagulopathy
      finding: "apixaban last taken 10 hours ago"
      action: defer
      why: "Apixaban is stopped 72 hours before a deep block: bleeding around the nerve."
  consent_items: ["Pneumothorax (about 1 in 70 per nerve)", "Numbness along the rib"]
prognostic_block:
  required: true
  agent: bupivacaine
  concentration_pct: 0.25
  min_ml: 2
  max_ml: 5
  positive: true
  relief_pct: 80
  duration_hours: 6
outcome:
  parameters: intercostal
"""


def case_scenario() -> str:
    from simulator.core import paths

    text = (paths.SCENARIOS_DIR / "needle_basics_gel.yaml").read_text(encoding="utf-8")
    text = text.replace("id: needle_basics_gel", "id: ui_case").replace(
        "  neurolytic: null", "  neurolytic: {agent: phenol, concentrations_pct: [6], volume_ml: {min_ml: 1, max_ml: 4}}\n"
        "  time_out: true\n  consent: true\n  asepsis: true")
    # a 10 mm stretch of the nerve: one injection bathes it (the whole 70 mm tube it does not)
    text = text.replace("points_mm: [[7.0, -20.0, -35.0], [7.0, -20.0, 35.0]]", "points_mm: [[7.0, -20.0, -5.0], [7.0, -20.0, 5.0]]")
    assert "id: ui_case" in text and "agent: phenol" in text and "[7.0, -20.0, -5.0]" in text
    return text + CASE


@pytest.fixture(scope="module")
def trainer(qapp, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    data = tmp_path_factory.mktemp("case_data")
    (data / "scenarios").mkdir()
    (data / "scenarios" / "ui_case.yaml").write_text(case_scenario(), encoding="utf-8")
    mp.setenv("NEUROLYSIS_DATA", str(data))
    w = open_window("ui_case", data / "settings.ini", {"keep_attempt": "discard"})
    yield w
    close_window(w)
    mp.undo()


def events_of(w, kind):
    return [e for e in w.controller.procedure.events if e.kind == kind]


def test_the_case_screen_comes_first_and_comes_back_with_f8(trainer):
    w = trainer
    wait_until(lambda: w.case_dialog is not None and w.case_dialog.isVisible(), 10, "the case screen")
    text = w.case_dialog.plain_text()
    for fact in ("58-year-old man", "Rib metastasis", "7/10", "apixaban 5 mg twice daily", "last dose 10 hours ago",
                 "INR 1.2", "Prognostic block", "required before the neurolytic"):
        assert fact in text, fact
    assert "Apixaban is stopped 72 hours" not in text  # the key is not shown before the debrief
    w.case_dialog.findChild(QPushButton, "case_begin").click()
    wait_until(lambda: w.case_dialog is None, 5, "the case screen to close")
    d = WindowDriver(w)
    d.key(Qt.Key.Key_F8)
    wait_until(lambda: w.case_dialog is not None and w.case_dialog.isVisible(), 5, "the case screen again")
    w.case_dialog.close()
    process(20)


def test_the_steps_before_the_needle_with_keys_and_buttons(trainer):
    w = trainer
    d = WindowDriver(w)
    box = w.procedure_panel.case_box
    assert box.isVisible() and box.prognostic_button.isVisible()
    steps = "\n".join(w.procedure_panel.steps.item(i).text() for i in range(w.procedure_panel.steps.count()))
    assert "Time-out" in steps and "Consent" in steps and "Skin prepared" in steps and "Prognostic block" in steps
    d.key(Qt.Key.Key_F9)  # the time-out: coagulopathy noticed, yet proceed (the key says defer)
    wait_until(lambda: w.time_out_dialog is not None and w.time_out_dialog.isVisible(), 5, "the time-out")
    w.time_out_dialog.findChild(QCheckBox, "time_out_coagulopathy").click()
    w.time_out_dialog.findChild(QPushButton, "time_out_proceed").click()
    [ev] = events_of(w, EventKind.time_out)
    assert ev.data["contraindications"] == ["coagulopathy"] and ev.data["decision"] == "proceed"
    assert box.time_out_button.text().startswith("\u2714")
    d.activate()
    d.key(Qt.Key.Key_F10)  # consent: one of the two risks discussed
    wait_until(lambda: w.consent_dialog is not None and w.consent_dialog.isVisible(), 5, "the consent dialog")
    item = w.consent_dialog.findChild(QCheckBox, "consent_item_0")
    assert item.text().startswith("Pneumothorax")
    item.click()
    w.consent_dialog.findChild(QPushButton, "consent_take").click()
    assert events_of(w, EventKind.consent)[0].data["items"] == ["Pneumothorax (about 1 in 70 per nerve)"]
    d.activate()
    box.skin_prep_button.click()
    d.key(Qt.Key.Key_F12)  # drape
    assert {e.data["what"] for e in events_of(w, EventKind.asepsis)} == {"skin_prep", "drape"}
    done = [s["step"] for s in w.controller.procedure.steps_status() if s["done"]]
    assert {"time_out", "consent", "asepsis"} <= set(done)
    # the needle to the nerve, then the neurolytic first: refused until the prognostic block
    plan = w.scenario.planned_trajectory
    d.click_skin(plan.entry_mm)
    d.key(Qt.Key.Key_F2)
    d.aim_at(plan.target_mm)
    d.advance_to(plan.target_mm, stop_mm=3.0)
    d.key(Qt.Key.Key_F3)
    d.key(Qt.Key.Key_F7)
    assert not [e for e in events_of(w, EventKind.injection) if e.data["kind"] == "neurolytic"]
    assert "prognostic" in w.statusBar().currentMessage()
    d.key(Qt.Key.Key_F7, SHIFT)  # the prognostic block at the nerve
    [res] = events_of(w, EventKind.prognostic_result)
    assert res.data["reached"] and res.data["positive"]
    assert "positive" in box.result.text() and box.prognostic_button.text().startswith("\u2714")
    d.key(Qt.Key.Key_F3)
    d.key(Qt.Key.Key_F7)
    assert [e for e in events_of(w, EventKind.injection) if e.data["kind"] == "neurolytic"]
    d.key(Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    wait_until(lambda: w.score_dialog is not None, 10, "the score card")
    deb = w.score_dialog.debrief
    verdict = {dd.topic: dd.verdict for dd in deb.decisions}
    assert verdict["time-out"] == "poor"  # noticed, but went ahead on apixaban
    assert verdict["asepsis"] == "good" and verdict["prognostic block"] == "good"
    assert verdict["consent"] == "acceptable"  # one risk not discussed
    table = deb.findChild(QTableWidget, "debrief_decisions")
    whys = [table.item(r, 3).text() for r in range(table.rowCount())]
    assert any("72 hours" in x for x in whys)
    w.first = {"recording": w.controller.procedure.recording, "course": deb.course}


def test_repeat_in_n_months_starts_a_follow_up_with_the_history(trainer):
    w = trainer
    first, course = w.first["recording"], w.first["course"]
    button = w.score_dialog.debrief.findChild(QPushButton, "debrief_repeat")
    # this patient's own repeat offer (None: relief outlasted the weeks shown)
    months = None if course.index_repeat_day is None else max(1.0, round(2 * course.index_repeat_day / 30.44) / 2)
    assert button.isEnabled() and button.text().startswith(f"Repeat in {months:g} month" if months else "Repeat later")
    button.click()
    wait_until(lambda: w.controller.active and w.controller.procedure.recording is not first, 10, "the follow-up")
    hist = w.controller.procedure.recording.meta["follows"]
    assert hist["scenario_id"] == "ui_case" and hist["months_before"] == months
    [site] = hist["sites"]  # the phenol at the nerve, carried over
    assert site["agent"] == "phenol" and site["targets"] == ["nerve"] and site["target_names"] == ["Nerve (gel phantom)"]
    wait_until(lambda: w.case_dialog is not None, 5, "the case screen of the follow-up")
    text = w.case_dialog.plain_text()
    assert "Earlier procedure on this patient" in text and "phenol 6 %" in text
    assert (f"{months:g} months ago" in text) if months else ("months ago" not in text)
    w.case_dialog.close()
    d = WindowDriver(w)
    d.key(Qt.Key.Key_F11)  # one input: the follow-up is recorded live with its history
    d.key(Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    wait_until(lambda: w.score_dialog is not None, 10, "the score card")
    second = w.score_dialog.debrief.course
    assert any(n.startswith("A repeat procedure") for n in second.notes)
    assert second.baseline_nrs == hist["pain_nrs_now"]
    stored = w.store.load_attempt(w.last_attempt_id)
    assert stored.meta["follows"] == hist  # the link persists in the records
    w.score_dialog.close()


def test_deferring_at_the_time_out_ends_the_attempt(trainer):
    w = trainer
    d = WindowDriver(w)
    d.key(Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    wait_until(lambda: w.controller.active, 5, "a new attempt")
    wait_until(lambda: w.case_dialog is not None, 5, "the case screen")
    w.case_dialog.findChild(QCheckBox, "case_show_each").click()  # not before every attempt any more
    w.case_dialog.findChild(QPushButton, "case_begin").click()
    assert w.settings.value("showCaseScreen", True, bool) is False
    d.activate()
    d.key(Qt.Key.Key_F9)
    wait_until(lambda: w.time_out_dialog is not None, 5, "the time-out")
    w.time_out_dialog.findChild(QCheckBox, "time_out_coagulopathy").click()
    w.time_out_dialog.findChild(QPushButton, "time_out_defer").click()
    wait_until(lambda: w.score_dialog is not None, 10, "the score card")
    assert w.controller.procedure.ended
    deb = w.score_dialog.debrief
    assert {dd.topic: dd.verdict for dd in deb.decisions}["time-out"] == "good"
    assert any("deferred" in line for line in deb.course.summary_lines())
    tabs = w.score_dialog.findChild(QTabWidget, "score_tabs")
    assert tabs.count() == 2
    w.score_dialog.close()
    d.key(Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)  # no case screen now
    process(100)
    assert w.case_dialog is None
