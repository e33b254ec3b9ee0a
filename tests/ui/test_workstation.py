"""The trainee's workstation driven as a user would (clicks and keys through Qt's test events, via
`simulator.ui.driver.WindowDriver`): whole attempts on the celiac scenario (bundled patient; needs
its cache, which `make test` builds), the gel ultrasound scenario, the questions, rapid input.

The celiac window is shared by the tests of this module (one load of the patient); each test
starts its own attempt with "New attempt" (Ctrl+N), as a trainee would.
"""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from simulator.core.events import EventKind
from simulator.ui.driver import SHIFT, WindowDriver, process, wait_until
from simulator.ui.fluoro_view import needle_pixels
from simulator.ui.main_window import MainWindow

from .windows import WORK_TIMEOUT_S, close_window, open_window


def _bundled_ready() -> bool:
    from simulator.anatomy import bundled

    return bundled.cache_is_valid()


needs_bundled = pytest.mark.skipif(not _bundled_ready(), reason="the bundled patient is not built (make test builds it)")


@pytest.fixture(scope="module")
def celiac(qapp, tmp_path_factory):
    if not _bundled_ready():
        pytest.skip("the bundled patient is not built (make test builds it)")
    mp = pytest.MonkeyPatch()
    from simulator.core.paths import link_shared_data

    data = link_shared_data(tmp_path_factory.mktemp("data"))  # records of its own; the built patient shared
    mp.setenv("NEUROLYSIS_DATA", str(data))
    try:
        w = open_window("celiac_plexus_posterior", data / "settings.ini")
        try:
            wait_until(lambda: w.fluoro_view.ready, WORK_TIMEOUT_S, "the fluoroscopy engine")
            yield w
        finally:
            close_window(w)
    finally:
        mp.undo()


def new_attempt(w: MainWindow) -> WindowDriver:
    d = WindowDriver(w)
    if w.score_dialog is not None:
        w.score_dialog.close()
    d.key(Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert w.controller.active and w.controller.state is None
    if not w.instructor_mode:
        w.set_instructor_mode(True)
    return d


def expert_side(d: WindowDriver, entry, target) -> None:
    """One needle: entry click, local anaesthetic, aim, advance under images, aspirate, contrast,
    image, aspirate, test dose, aspirate, agent, withdraw."""
    d.click_skin(entry)
    d.key(Qt.Key.Key_F2)
    assert d.aim_at(target) < 0.8
    d.shot()
    d.advance_to(target, shot_every_mm=9.0)
    d.shot()
    for key in (Qt.Key.Key_F3, Qt.Key.Key_F4):
        d.key(key)
    d.shot()
    for key in (Qt.Key.Key_F3, Qt.Key.Key_F6, Qt.Key.Key_F3, Qt.Key.Key_F7):
        d.key(key)
    d.key(Qt.Key.Key_X)


def before_the_needle(w: MainWindow, d: WindowDriver) -> None:
    """The case steps the celiac scenario asks for: the case read, time-out (nothing stops it:
    proceed), consent with every risk discussed, skin preparation and drape (F8-F12)."""
    from PySide6.QtWidgets import QCheckBox, QPushButton

    wait_until(lambda: w.case_dialog is not None, 5, "the case screen")
    w.case_dialog.findChild(QPushButton, "case_begin").click()
    d.activate()
    d.key(Qt.Key.Key_F9)
    wait_until(lambda: w.time_out_dialog is not None, 5, "the time-out")
    w.time_out_dialog.findChild(QPushButton, "time_out_proceed").click()
    d.activate()
    d.key(Qt.Key.Key_F10)
    wait_until(lambda: w.consent_dialog is not None, 5, "the consent dialog")
    for box in w.consent_dialog.findChildren(QCheckBox):
        box.click()
    w.consent_dialog.findChild(QPushButton, "consent_take").click()
    d.activate()
    d.key(Qt.Key.Key_F11)
    d.key(Qt.Key.Key_F12)


@needs_bundled
def test_expert_celiac_attempt_passes_and_the_score_card_says_so(celiac):
    w = celiac
    d = new_attempt(w)
    sc = w.scenario
    before_the_needle(w, d)
    for plan in sc.trajectories:
        expert_side(d, plan.entry_mm, plan.target_mm)
    proc = w.controller.procedure
    kinds = [e.kind for e in proc.events]
    assert EventKind.critical_contact not in kinds, [e.message for e in proc.events if e.kind == EventKind.critical_contact]
    assert [e.data["result"] for e in proc.events if e.kind == EventKind.aspiration] == ["nothing"] * 6
    shots = [e for e in proc.events if e.kind == EventKind.fluoro_shot]
    assert len(shots) == w.fluoro_view.frames_shown and all(e.data["dap_gycm2"] > 0 for e in shots)
    d.key(Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    wait_until(lambda: w.score_dialog is not None, WORK_TIMEOUT_S, "the score card")
    card = w.controller.card
    assert card.passed, card.text()
    assert card.metrics["advances_without_imaging"] == 0
    dlg = w.score_dialog
    assert dlg.verdict.text() == "PASSED" and dlg.isVisible()
    assert f"{card.score:.1f}" in dlg.value.text()
    assert "PASSED" in w.procedure_panel.status.text()
    # the panel followed: steps ticked, the aspiration result shown, the plots hold the attempt
    assert "Negative" in w.procedure_panel.aspiration_label.text()
    assert all(w.procedure_panel.steps.item(i).text().startswith("\u2714") for i in range(w.procedure_panel.steps.count() - 1))
    assert {dd.topic: dd.verdict for dd in dlg.debrief.decisions}["time-out"] == "good"
    t, depth = (np.asarray(w.procedure_panel._series[k], float) for k in ("t", "depth"))
    assert len(t) > 20 and np.nanmax(depth) > 100.0
    # saved images: one thumbnail per exposure
    assert w.fluoro_view.strip.count() == len(shots)


@needs_bundled
def test_advancing_into_the_aorta_fails_with_that_reason(celiac):
    w = celiac
    d = new_attempt(w)
    an = w.anatomy
    plan = w.scenario.planned_trajectory
    target = np.asarray(plan.target_mm, float)
    aorta = an.structure_by_name("aorta")
    idx = np.argwhere(an.labels == aorta.id)
    pts = an.origin_mm + idx * an.spacing_mm
    aim = pts[np.abs(pts[:, 2] - target[2]) < 2.6].mean(axis=0)
    d.click_skin(plan.entry_mm)
    for attempt in range(4):  # touching the vertebral body: back out, aim a little more to the left
        assert d.aim_at(aim) < 1.0  # 1-degree keys: within 2 mm at this depth (the aorta is 25 mm wide)
        beyond = aim + 30.0 * w.controller.state.axis
        d.advance_to(beyond, shot_every_mm=1e9, stop_if=lambda st: st.structure == "aorta")
        if w.controller.state.structure == "aorta":
            break
        for _ in range(4):
            d.key(Qt.Key.Key_S, SHIFT)
        aim = aim + np.array([-2.0, 0.0, 0.0])
    st = w.controller.state
    assert st.structure == "aorta", (st.depth_mm, st.bone_contact, st.tissue, [e.message for e in w.controller.procedure.events][-6:])
    d.key(Qt.Key.Key_F3)
    assert "Blood" in w.procedure_panel.aspiration_label.text()
    assert any("aorta" in t.lower() for t in w.procedure_panel.event_texts())
    d.key(Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    wait_until(lambda: w.score_dialog is not None, WORK_TIMEOUT_S, "the score card")
    card = w.controller.card
    assert not card.passed
    reasons = w.score_dialog.reason_texts()
    assert w.score_dialog.verdict.text() == "FAILED"
    assert any("Aortic puncture" in r and "automatic fail" in r for r in reasons), reasons


@needs_bundled
def test_fluoroscopy_shows_the_needle_dark_and_holds_the_last_image(celiac):
    w = celiac
    d = new_attempt(w)
    fv = w.fluoro_view
    assert not fv.canvas.has_image() or fv.frames_shown > 0
    n0 = fv.frames_shown
    d.start_on_plan(advances=12)
    assert fv.frames_shown == n0  # no image without an exposure
    d.shot()
    img = fv.canvas.image_array()
    frame = fv.last_result["frame"]
    assert img.shape == (512, 512) and np.array_equal(img, frame.image)
    st = w.controller.state
    uv = needle_pixels(frame.pose, st)
    assert len(uv) > 10
    # the shaft: darker than the image beside it (perpendicular, 8 pixels off)
    a, b = uv[0], uv[-1]
    normal = np.array([-(b - a)[1], (b - a)[0]]) / np.linalg.norm(b - a)
    on = img[np.rint(uv[:, 1]).astype(int), np.rint(uv[:, 0]).astype(int)].astype(float)
    side = []
    for s in (-8, 8):
        q = np.rint(uv + s * normal).astype(int).clip(0, 511)
        side.append(img[q[:, 1], q[:, 0]].astype(float))
    assert np.median(on) < np.median(np.minimum(*side)) - 25, (np.median(on), np.median(side[0]), np.median(side[1]))
    # bone is dark on the fluoroscopy display (dense = dark): the L1 body darker than the lung base
    pose = frame.pose
    u, v = pose.world_to_pixel(w.anatomy.centroid_mm("vertebrae_L1")[None])
    spine = img[int(v[0]) - 6:int(v[0]) + 6, int(u[0]) - 6:int(u[0]) + 6].astype(float).mean()
    lung = w.anatomy.centroid_mm("lung_lower_lobe_left")
    ul, vl = pose.world_to_pixel(lung[None])
    if 0 <= ul[0] < 512 and 0 <= vl[0] < 512:
        air = img[int(vl[0]) - 6:int(vl[0]) + 6, int(ul[0]) - 6:int(ul[0]) + 6].astype(float).mean()
        assert spine < air - 20, (spine, air)
    # last image hold: the needle moves, the image stays
    d.key(Qt.Key.Key_W)
    process(100)
    assert np.array_equal(fv.canvas.image_array(), img)
    # a held pedal: live fluoroscopy, counted when released
    shots_before = sum(1 for e in w.controller.procedure.events if e.kind == EventKind.fluoro_shot)
    d.press(Qt.Key.Key_Space)
    wait_until(lambda: fv.live, WORK_TIMEOUT_S, "live fluoroscopy")
    n = fv.frames_shown
    wait_until(lambda: fv.frames_shown >= n + 2, WORK_TIMEOUT_S, "live frames")
    d.release(Qt.Key.Key_Space)
    wait_until(lambda: sum(1 for e in w.controller.procedure.events if e.kind == EventKind.fluoro_shot) > shots_before,
               WORK_TIMEOUT_S, "the live run recorded")
    live = [e for e in w.controller.procedure.events if e.kind == EventKind.fluoro_shot][-1]
    assert live.data["live"] and live.data["frames"] >= 2 and live.data["duration_s"] > 0.2
    assert "Shots" in fv.dose_label.text() and "DAP" in fv.dose_label.text()
    # the C-arm turns with the keys; the dose read-out and the image stay until the next shot
    lao = fv.pose.lao_deg
    d.key(Qt.Key.Key_Left, Qt.KeyboardModifier.AltModifier)
    assert fv.pose.lao_deg == pytest.approx(lao + 5.0)


@needs_bundled
def test_exam_mode_hides_the_target_and_the_inside(celiac):
    w = celiac
    new_attempt(w)
    box = w.display_panel.instructor
    box.click()
    assert not w.instructor_mode
    scene = w.view3d.scene
    assert not any(a.GetVisibility() for a in scene._target_actors + scene._plan_actors)
    inner = [n for n, s in scene.structures.items() if s.group != "skin"]
    assert inner and not any(scene.structures[n].actor.GetVisibility() for n in inner)
    assert scene.structures["skin"].actor.GetProperty().GetOpacity() == 1.0
    assert not w.procedure_panel.hints.isVisible() and not w.procedure_panel.band_plot.isVisible()
    assert not w.display_panel.groups_box.isEnabled()
    box.click()
    wait_until(lambda: scene.detail == "full", WORK_TIMEOUT_S, "the full meshes (after the medium frame)")
    assert w.instructor_mode and any(scene.structures[n].actor.GetVisibility() for n in inner)


@needs_bundled
def test_rapid_input_and_resizing_do_not_break_the_window(celiac):
    w = celiac
    d = new_attempt(w)
    plan = w.scenario.planned_trajectory
    d.click_skin(plan.entry_mm)
    keys = [Qt.Key.Key_W] * 30 + [Qt.Key.Key_Left, Qt.Key.Key_Up] * 5 + [Qt.Key.Key_S] * 10 + [Qt.Key.Key_Space] * 3
    for i, k in enumerate(keys):
        d.key(k)
        if i % 9 == 0:
            w.resize(1100 + 40 * (i % 5), 800)
    process(300)
    st = w.controller.state
    assert st is not None and st.inserted
    inputs = [i.name for i in w.controller.procedure.recording.inputs]
    assert inputs.count("advance") == 30 and inputs.count("withdraw") == 10
    wait_until(lambda: not w.fluoro_view.busy(), WORK_TIMEOUT_S, "the fluoroscopy worker")
    assert w.fluoro_view.frames_shown >= 1
    w.resize(1500, 950)


@needs_bundled
def test_switching_scenario_mid_attempt_asks_and_can_cancel(celiac, tmp_path):
    w = celiac
    d = new_attempt(w)
    d.click_skin(w.scenario.planned_trajectory.entry_mm)
    asked = []
    w.question_answer = lambda key, text: asked.append(key) or "cancel"
    assert not w.open_scenario("needle_basics_gel")
    assert asked == ["keep_attempt"] and w.scenario.id == "celiac_plexus_posterior" and w.controller.in_progress
    w.question_answer = lambda key, text: "discard"


# --------------------------------------------------------------------------------------------
# ultrasound on the gel phantom
# --------------------------------------------------------------------------------------------
@pytest.fixture
def gel(qapp, tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROLYSIS_DATA", str(tmp_path / "data"))
    w = open_window("needle_basics_gel", tmp_path / "settings.ini")
    yield w
    close_window(w)


def test_ultrasound_shows_speckle_and_the_needle_in_plane(gel):
    w = gel
    uv_view = w.us_view
    wait_until(lambda: uv_view.frames_shown > 0, WORK_TIMEOUT_S, "the first ultrasound frame")
    assert w.ultrasound_pane.isVisible() and not w.fluoroscopy_pane.isVisible()
    frame = uv_view.last_result["frame"]
    img = uv_view.canvas.image_array().astype(float)
    # speckle in the gel: a textured, non-blank region (Rayleigh-like: std comparable to the mean)
    gel_px = frame.world_to_pixel(np.array([[-2.0, -8.0, 0.0]]))[0]  # gel away from needle and nerve
    patch = img[int(gel_px[1]) - 15:int(gel_px[1]) + 15, int(gel_px[0]) - 15:int(gel_px[0]) + 15]
    assert patch.mean() > 10 and patch.std() > 0.2 * patch.mean()
    # the probe is in the 3D scene
    assert w.view3d.scene.probe_visible()
    d = WindowDriver(w)
    plan = w.scenario.planned_trajectory
    d.click_skin(plan.entry_mm)
    d.key(Qt.Key.Key_F2)
    d.aim_at(plan.target_mm)
    n = uv_view.frames_shown
    d.advance_to(plan.target_mm, stop_mm=3.0)
    # the frame on screen is the one of the needle's last position (not an earlier one still in flight)
    wait_until(lambda: uv_view.frames_shown > n and not uv_view.busy() and uv_view.last_result is not None
               and uv_view.last_result["needle_seq"] == uv_view._needle_seq, WORK_TIMEOUT_S, "a frame with the needle")
    st = w.controller.state
    frame = uv_view.last_result["frame"]
    img = uv_view.canvas.image_array().astype(float)
    shaft = st.tip_mm[None] - np.linspace(2.0, 12.0, 6)[:, None] * st.axis[None]
    px = frame.world_to_pixel(shaft)
    on = np.array([img[int(round(v)), int(round(u))] for u, v, _ in px])
    off = np.array([img[int(round(v)) + 25, int(round(u))] for u, v, _ in px])
    assert np.median(on) > np.median(off) + 30, (on, off)
    # the tip was in the plane: the attempt knows
    assert w.controller.procedure.state.tip_visible is True
    assert uv_view.reported > 0
    # the probe moves with the keys and stays on the gel surface
    y0 = uv_view.pose.center_mm[1]
    d.key(Qt.Key.Key_L)
    assert uv_view.pose.center_mm[0] == pytest.approx(w.scenario.imaging.ultrasound.center_mm[0] + 1.0, abs=1e-6)
    assert abs(uv_view.pose.center_mm[1] - y0) < 1.0


def test_closing_during_an_attempt_asks_and_keeps_it(qapp, tmp_path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("NEUROLYSIS_DATA", str(data))
    w = open_window("needle_basics_gel", tmp_path / "settings.ini")
    d = WindowDriver(w)
    d.click_skin(w.scenario.planned_trajectory.entry_mm)
    d.key(Qt.Key.Key_W, SHIFT)
    asked = []
    w.question_answer = lambda key, text: asked.append(text) or "cancel"
    w.close()
    assert w.isVisible() and len(asked) == 1 and "in progress" in asked[0]
    w.question_answer = lambda key, text: "keep"
    w.close()
    assert not w.isVisible()
    assert len(w.kept_recordings) == 1 and w.kept_recordings[0].exists()
    from simulator.core.recording import Recording

    rec = Recording.load(w.kept_recordings[0])
    names = [i.name for i in rec.inputs if i.name not in ("set_probe_to_world", "set_tip_visible")]
    assert names[:2] == ["set_entry", "advance"]
    assert rec.events[-1].kind == EventKind.end
    # and in the records, finished and scored, identical to the saved recording
    from simulator.records import open_store

    with open_store() as store:
        (info,) = store.list_attempts()
        assert info.status == "finished" and info.score is not None and info.trainee == w.trainee
        assert store.load_attempt(info.id).same_as(rec)
    w.deleteLater()
    process(50)


def test_help_lists_the_workstation_shortcuts(qapp, tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROLYSIS_DATA", str(tmp_path / "data"))
    w = open_window("needle_basics_gel", tmp_path / "settings.ini")
    rows = dict(w.shortcut_rows())
    assert rows["W"] == "Advance 1 mm" and rows["Shift+W"] == "Advance 5 mm"
    assert rows["F3"] == "Aspirate" and rows["Ctrl+E"].startswith("End attempt")
    assert "Fluoroscopy pedal" in rows["Space (tap / hold)"]
    d = WindowDriver(w)
    d.key(Qt.Key.Key_F1)
    wait_until(lambda: getattr(w, "shortcuts_dialog", None) is not None and w.shortcuts_dialog.isVisible(), 5, "help")
    w.shortcuts_dialog.close()
    close_window(w)
