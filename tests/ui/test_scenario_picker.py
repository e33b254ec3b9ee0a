"""The scenario picker: the library grouped by condition and guidance, which patients can host the
chosen scenario and why the others cannot, and running a scenario on another patient."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings, Qt

from simulator.core import paths
from simulator.core.patients import PatientInfo
from simulator.core.scenario import list_scenarios, load_scenario
from simulator.ui.panels import ID_ROLE, ScenarioPanel, group_entries

CHEST = PatientInfo("bundled", "chest and upper abdomen", frozenset(
    {"vertebrae_C7", "vertebrae_T2", "vertebrae_T3", "vertebrae_L2", "vertebrae_L3", "iliopsoas_left", "aorta",
     "inferior_vena_cava", "spinal_canal", "spinal_cord", "kidney_left", "esophagus", "trachea", "thyroid_gland",
     "common_carotid_artery_right", "scapula_right", "subclavian_artery_right"}))
PELVIS = PatientInfo("bundled:lumbopelvic", "lumbar spine and pelvis", frozenset(
    {"vertebrae_L2", "vertebrae_L3", "vertebrae_L4", "vertebrae_L5", "iliopsoas_left", "aorta", "inferior_vena_cava",
     "spinal_canal", "spinal_cord", "kidney_left", "sacrum", "sacrococcygeal_joint", "urinary_bladder",
     "iliac_artery_left", "iliac_artery_right", "iliac_vena_left", "iliac_vena_right"}))


def rows(panel):
    m = panel.model
    return [(m.item(r).text(), m.item(r).data(ID_ROLE), m.item(r).isEnabled()) for r in range(m.rowCount())]


def test_library_grouped_by_condition_then_guidance(qtbot):
    panel = ScenarioPanel()
    qtbot.addWidget(panel)
    entries = [e for e in list_scenarios() if e.source == "library"]
    panel.set_entries(entries, [CHEST, PELVIS])
    headings = [text for text, sid, enabled in rows(panel) if sid is None]
    assert headings == ["Cancer pain \u2014 fluoroscopy", "Cancer pain \u2014 ultrasound", "CRPS \u2014 fluoroscopy",
                        "CRPS \u2014 ultrasound", "Entrapment / neuropathic \u2014 fluoroscopy",
                        "Entrapment / neuropathic \u2014 ultrasound", "Training (phantoms) \u2014 ultrasound"]
    under, heading = {}, None
    for text, sid, enabled in rows(panel):
        if sid is None:
            heading = text
            assert not enabled, "a heading cannot be chosen"
        else:
            under[sid] = heading
    assert under["lumbar_sympathetic_l3"] == under["thoracic_sympathetic_t2_t3"] == "CRPS \u2014 fluoroscopy"
    assert under["lumbar_sympathetic_l2_l4"] == "CRPS \u2014 fluoroscopy"
    assert under["stellate_ganglion_c7_ultrasound"] == "CRPS \u2014 ultrasound"
    assert under["ganglion_impar_transcoccygeal"] == under["celiac_transaortic"] == "Cancer pain \u2014 fluoroscopy"
    assert under["suprascapular_notch_ultrasound"] == "Entrapment / neuropathic \u2014 ultrasound"
    assert under["needle_basics_gel"] == "Training (phantoms) \u2014 ultrasound"
    assert len(under) == len(entries)
    # each scenario's tooltip says which patient can host it and why another cannot
    row = [r for r, (_t, sid, _e) in enumerate(rows(panel)) if sid == "stellate_ganglion_c7_ultrasound"][0]
    tip = panel.model.item(row).toolTip()
    assert "\u2713 bundled" in tip and "\u2717 bundled:lumbopelvic" in tip and "missing vertebrae_C7" in tip
    groups = group_entries(entries)
    assert sum(len(items) for _h, items in groups) == len(entries)


def test_patient_picker_shows_who_can_host_and_why_not(qtbot):
    panel = ScenarioPanel()
    qtbot.addWidget(panel)
    panel.set_entries([e for e in list_scenarios() if e.source == "library"], [CHEST, PELVIS])
    lsb = load_scenario(paths.SCENARIOS_DIR / "lumbar_sympathetic_l3.yaml")
    panel.show_scenario(lsb)
    m = panel.patient_model
    items = [(m.item(r).data(Qt.ItemDataRole.UserRole + 1), m.item(r).isEnabled()) for r in range(m.rowCount())]
    assert items == [("bundled:lumbopelvic", True), ("bundled", True)]
    assert panel.current_patient() == "bundled:lumbopelvic"
    impar = load_scenario(paths.SCENARIOS_DIR / "ganglion_impar_transcoccygeal.yaml")
    panel.show_scenario(impar)
    assert not m.item(1).isEnabled() and "missing sacrum, sacrococcygeal_joint, urinary_bladder" in m.item(1).toolTip()
    assert "Cannot run on:" in panel.hosting.text() and "bundled (missing sacrum" in panel.hosting.text()
    chosen = []
    panel.patient_chosen.connect(chosen.append)
    panel.show_scenario(lsb)
    panel._on_patient_activated(1)
    assert chosen == ["bundled"]


def _caches_built() -> bool:
    from simulator.anatomy import bundled, lumbopelvic

    return bundled.cache_is_valid() and lumbopelvic.cache_is_valid()


@pytest.mark.skipif(not _caches_built(), reason="the bundled patients are not built (make test builds them)")
def test_the_window_runs_a_scenario_on_another_patient_and_refuses_one_that_cannot(qtbot, tmp_path, monkeypatch,
                                                                                     qsettings_file):
    """The lumbar sympathetic block (written on the lumbopelvic patient) run on the chest patient
    from the patient picker: the window shows it fitted there; the stellate block asked on the
    lumbopelvic patient is refused with the structures it lacks, and the current scenario stays."""
    from simulator.core.paths import link_shared_data
    from simulator.core.proposals import propose
    from simulator.ui.main_window import MainWindow

    real = paths.user_data_dir()
    monkeypatch.setenv("NEUROLYSIS_DATA", str(link_shared_data(tmp_path / "data", real)))
    w = MainWindow(scenario="lumbar_sympathetic_l3", settings=QSettings(str(qsettings_file), QSettings.Format.IniFormat))
    w.question_answer = lambda key, text: "discard"
    qtbot.addWidget(w, before_close_func=lambda _w: None)
    with qtbot.waitSignal(w.anatomy_shown, timeout=120_000):
        w.show()
    assert w.scenario.anatomy == "bundled:lumbopelvic"
    panel = w.scenario_panel
    refs = [panel.patient_model.item(r).data(Qt.ItemDataRole.UserRole + 1) for r in range(panel.patient_model.rowCount())]
    assert refs[0] == "bundled:lumbopelvic" and "bundled" in refs
    with qtbot.waitSignal(w.anatomy_shown, timeout=180_000):
        panel.patient_picker.setCurrentIndex(refs.index("bundled"))
        panel._on_patient_activated(refs.index("bundled"))
    assert w.scenario.anatomy == "bundled" and w.anatomy_ref == "bundled"
    assert [t.id for t in w.scenario.targets] == ["lumbar_sympathetic_l3_left"]
    assert list(w.targets[0].points_mm[0]) == pytest.approx(list(propose(w.anatomy, "lumbar_sympathetic_l3_left").points_mm[0]), abs=0.01)
    assert panel.current_patient() == "bundled" and "Patient" in panel.summary.text() and "bundled" in panel.summary.text()
    n_errors = len(w.errors)
    assert not w.open_scenario("stellate_ganglion_c7_ultrasound", patient="bundled:lumbopelvic")
    assert len(w.errors) == n_errors + 1 and "missing vertebrae_C7" in w.errors[-1]
    assert w.scenario.id == "lumbar_sympathetic_l3" and w.scenario.anatomy == "bundled"
