"""The scenario editor on the bundled patient (CT with TotalSegmentator labels): targets from
the label-based proposals, structures from the anatomy's list, the plan check naming the aorta.
A module of its own: loading the patient into the window (meshes for the 3D view) is most of its
time. Needs the bundled patient's cache (`make test` builds it)."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from simulator.ui.driver import WindowDriver, wait_until
from tests.ui.editor.helpers import CTRL, click_slice, close_window, editor_of, open_gel_window, tab
from tests.ui.windows import WORK_TIMEOUT_S


def _bundled_ready() -> bool:
    from simulator.anatomy import bundled

    return bundled.cache_is_valid()


@pytest.mark.skipif(not _bundled_ready(), reason="the bundled patient is not built (make test builds it)")
def test_bundled_patient_proposals_structures_and_the_plan_check(qapp, tmp_path_factory):
    """On the bundled CT (a new scenario from the celiac template, made from the gel window: the
    editor loads the patient itself): a target from the label-based proposals, a structure from the
    anatomy's list, and the plan check warning when the planned tip is moved into the aorta.
    Leaving puts the trainer's gel phantom back in the 3D view."""
    w, mp = open_gel_window(tmp_path_factory, "editor_bundled")
    try:
        _proposals_structures_plan_check(w, editor_of(w))
    finally:
        close_window(w, mp)


def _proposals_structures_plan_check(w, ed) -> None:
    from simulator.core.proposals import propose

    gel = w.anatomy
    d = WindowDriver(w)
    w.answers = {"editor_unsaved": "discard"}
    assert ed.new_scenario(template="celiac_plexus_posterior", anatomy="bundled", scenario_id="celiac_copy",
                           title="Celiac copy")
    wait_until(lambda: ed.anatomy is not None and ed.anatomy_ref == "bundled", WORK_TIMEOUT_S, "the bundled patient")
    an = ed.anatomy
    doc = ed.doc
    assert w.view3d.scene.anatomy is an and ed.slices.views["axial"].anatomy is an
    assert doc.errors() == [] and ed.plan_problems == []  # the library's plan is clean
    wait_until(lambda: ed.targets_panel.add_proposal.isEnabled(), WORK_TIMEOUT_S, "the proposals")
    tab(ed, "Targets")
    combo = ed.targets_panel.proposals
    names = [combo.itemData(i) for i in range(combo.count())]
    assert {"celiac_plexus_left", "splanchnic_left", "sympathetic_chain_right"} <= set(names)
    assert any(n.startswith("intercostal_") for n in names)
    combo.setCurrentIndex(names.index("splanchnic_left"))
    n0 = len(doc.get(("targets",)))
    QTest.mouseClick(ed.targets_panel.add_proposal, Qt.MouseButton.LeftButton)
    t = doc.get(("targets",))[-1]
    p = propose(an, "splanchnic_left")
    assert len(doc.get(("targets",))) == n0 + 1 and t["proposal"] == "splanchnic_left" and t["kind"] == "polyline"
    assert np.allclose(t["points_mm"], p.points_mm, atol=0.051) and t["side"] == "left"
    # a structure of the anatomy's list
    tab(ed, "Avoid")
    cp = ed.critical_panel
    assert cp.choice.findData("structure:vertebrae_L1") >= 0 and cp.choice.findData("structure:aorta") >= 0
    # read as an anatomist reads it: T12 before L1, the 2nd rib before the 10th
    order = [cp.choice.itemData(i) for i in range(cp.choice.count())]
    assert order.index("structure:vertebrae_T12") < order.index("structure:vertebrae_L1")
    assert order.index("structure:vertebrae_T2") < order.index("structure:vertebrae_T10")
    assert order.index("structure:rib_left_2") < order.index("structure:rib_left_10") < order.index("structure:rib_right_1")
    assert cp.select_choice("structure", "kidney_left")
    cp.severity.setCurrentText("minor")
    QTest.mouseClick(cp.add_button, Qt.MouseButton.LeftButton)
    assert doc.get(("critical_structures",))[-1] == {"structure": "kidney_left", "severity": "minor"}
    # the planned tip clicked into the aorta: the banner names it
    aorta = an.structure_by_name("aorta")
    idx = np.argwhere(an.labels[:, :, 26:29] == aorta.id) + [0, 0, 26]
    pts = an.origin_mm + idx * an.spacing_mm
    centre = pts[np.abs(pts[:, 2] + 275.0) < 1.3].mean(axis=0)
    tab(ed, "Plan")
    ed.slices.set_cursor(centre)
    QTest.mouseClick(ed.plan_panel.target_button, Qt.MouseButton.LeftButton)
    click_slice(ed, "axial", centre)
    assert np.allclose(doc.get(("planned_trajectory", "target_mm")), centre, atol=1.0)
    assert ed.slices.banner.isVisible() and "aorta" in ed.slices.banner.text()
    assert any(pr.what == "aorta" and pr.severity == "critical" for pr in ed.plan_problems)
    d.key(Qt.Key.Key_Z, CTRL)
    assert ed.plan_problems == [] and not ed.slices.banner.isVisible()
    assert ed.leave()
    assert w.view3d.scene.anatomy is gel and w.anatomy is gel
