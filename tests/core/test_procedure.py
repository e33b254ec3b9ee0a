"""Procedure-step rules, tissue events, imaging rules, signals and the input contract."""
import numpy as np
import pytest

from simulator.benchmarks.scoring import AORTA, CANAL, ENTRY, TARGET, synthetic_block_anatomy, synthetic_scenario
from simulator.core.events import EventKind
from simulator.core.geometry import pose_from_tip_axis
from simulator.core.metrics import attempt_metrics
from simulator.core.procedure import Procedure, ProcedureError, input_names, replay


def new(scenario, block, **kw):
    return Procedure(scenario, block, clock=lambda: 0.0, **kw)


def kinds(proc, kind):
    return [e for e in proc.events if e.kind == kind]


def place(proc, tip, axis=(0, 1, 0), t=1.0):
    """Tracked placement of the tip (straight in from the back along +y)."""
    tip = np.asarray(tip, float)
    proc.set_needle_tip_to_world(pose_from_tip_axis(tip - 200 * np.asarray(axis, float), axis), time_s=t - 0.5)
    return proc.set_needle_tip_to_world(pose_from_tip_axis(tip, axis), time_s=t)


@pytest.mark.parametrize(
    "tip, result",
    [
        ((AORTA[0][0], AORTA[0][1], 0.0), "blood"),
        ((CANAL[0][0], CANAL[0][1], 0.0), "csf"),
        ((-45.0, 0.0, 50.0), "air"),  # lung base
        (TARGET, "nothing"),  # retroperitoneal fat
    ],
)
def test_aspiration_returns_what_the_tip_is_in(scenario, block, tip, result):
    proc = new(scenario, block)
    place(proc, tip)
    assert proc.aspirate(time_s=2.0) == result
    ev = kinds(proc, EventKind.aspiration)[-1]
    assert ev.data["result"] == result


def test_outside_the_body_aspiration_gives_nothing(scenario, block):
    proc = new(scenario, block)
    proc.set_entry(ENTRY, [0, 1, 0], time_s=0.0)
    assert proc.aspirate(time_s=1.0) == "nothing"


def test_tissue_events_along_the_path(scenario, block):
    proc = new(scenario, block)
    (ax, ay), ar = AORTA
    proc.set_entry([ax, -70, 0], [0, 1, 0], time_s=0.0)
    proc.advance(ay + 70 + 0.5, time_s=1.0)  # to the aortic centre in one push
    ks = [e.kind for e in proc.events]
    assert ks.index(EventKind.skin_puncture) < ks.index(EventKind.vessel_puncture)
    crit = kinds(proc, EventKind.critical_contact)
    assert len(crit) == 1 and crit[0].data["severity"] == "critical" and crit[0].message == "aorta punctured"
    assert kinds(proc, EventKind.vessel_puncture)[0].data["vessel"] == "artery"
    assert proc.state.structure == "aorta"
    # through and out of the far wall: leave event, no second contact while still in it
    proc.advance(2.0, time_s=2.0)
    assert len(kinds(proc, EventKind.critical_contact)) == 1
    proc.advance(ar + 2.0, time_s=3.0)
    assert kinds(proc, EventKind.leave_structure)[-1].data["structure"] == "aorta"


def test_dural_and_pleural_events(scenario, block):
    proc = new(scenario, block)
    place(proc, (CANAL[0][0], CANAL[0][1], 0.0))
    assert kinds(proc, EventKind.dural_puncture)
    assert any(e.data.get("critical") == "csf" for e in kinds(proc, EventKind.critical_contact))
    proc2 = new(scenario, block)
    place(proc2, (-45.0, 0.0, 50.0))
    assert kinds(proc2, EventKind.pleural_breach)
    proc3 = new(scenario, block)
    place(proc3, (-52.0, 8.0, 0.0))
    org = kinds(proc3, EventKind.organ_puncture)
    assert org and org[0].data["structure"] == "kidney_left"
    assert kinds(proc3, EventKind.critical_contact)[0].data["severity"] == "major"


def test_injection_needs_a_fresh_aspiration(scenario, block):
    proc = new(scenario, block)
    place(proc, TARGET)
    sp = proc.inject("contrast", "iohexol", 0.0, 3.0, time_s=2.0)
    ev = kinds(proc, EventKind.injection)[-1]
    assert ev.data["aspirated"] is False
    assert kinds(proc, EventKind.step_warning)[-1].data["key"] == "no_aspiration"
    assert sp.deposited_ml == pytest.approx(3.0, rel=1e-6)
    proc.aspirate(time_s=3.0)
    proc.inject("contrast", "iohexol", 0.0, 1.0, time_s=4.0)
    assert kinds(proc, EventKind.injection)[-1].data["aspirated"] is True
    # an aspiration is spent by the injection, and moving away invalidates it
    proc.aspirate(time_s=5.0)
    proc.set_needle_tip_to_world(pose_from_tip_axis(np.array(TARGET) + [0, 3, 0], [0, 1, 0]), time_s=6.0)
    proc.inject("test_dose", "lidocaine", 1.0, 2.0, time_s=7.0)
    assert kinds(proc, EventKind.injection)[-1].data["aspirated"] is False


def test_neurolytic_warnings_name_the_missing_steps(scenario, block):
    proc = new(scenario, block)
    place(proc, TARGET)
    proc.aspirate(time_s=2.0)
    proc.inject("neurolytic", "alcohol", 100.0, 10.0, time_s=3.0)
    keys = {e.data["key"] for e in kinds(proc, EventKind.step_warning)}
    assert {"no_local_anaesthetic", "no_contrast", "no_test_dose"} <= keys
    assert "no_aspiration" not in keys


def test_local_anaesthetic_site_and_order(scenario, block):
    proc = new(scenario, block)
    with pytest.raises(ProcedureError):
        proc.local_anaesthetic(5.0, time_s=0.0)  # nowhere to infiltrate yet
    proc.set_entry(ENTRY, [0, 1, 0], time_s=1.0)
    proc.local_anaesthetic(5.0, time_s=2.0)
    la = kinds(proc, EventKind.local_anaesthetic)[0]
    assert la.data["before_insertion"] is True
    assert np.allclose(la.data["site_mm"], ENTRY, atol=0.01)
    proc.advance(20, time_s=3.0)
    proc.local_anaesthetic(2.0, time_s=4.0)
    assert kinds(proc, EventKind.local_anaesthetic)[1].data["before_insertion"] is False


def test_invalid_inputs_are_refused_and_not_recorded(scenario, block):
    proc = new(scenario, block)
    with pytest.raises(ProcedureError):
        proc.advance(5.0, time_s=0.0)  # not placed
    proc.set_entry(ENTRY, [0, 1, 0], time_s=1.0)
    proc.advance(10.0, time_s=2.0)
    n_inputs = len(proc.recording.inputs)
    with pytest.raises(ProcedureError):
        proc.set_entry(ENTRY, [0, 1, 0], time_s=3.0)  # must withdraw first
    with pytest.raises(ProcedureError):
        proc.inject("saline", "x", 0, 1.0, time_s=3.0)
    with pytest.raises(ProcedureError):
        proc.inject("contrast", "iohexol", 0, -1.0, time_s=3.0)
    with pytest.raises(ProcedureError):
        proc.set_needle_tip_to_world(np.ones((4, 4)), time_s=3.0)
    with pytest.raises(ProcedureError):
        proc.withdraw(-2.0, time_s=3.0)
    assert len(proc.recording.inputs) == n_inputs
    proc.withdraw(time_s=4.0)
    assert not proc.state.inserted
    assert kinds(proc, EventKind.needle_out)
    proc.set_entry(np.array(ENTRY) + [10, 0, 0], [0, 1, 0], time_s=5.0)  # now allowed
    proc.end(time_s=6.0)
    with pytest.raises(ProcedureError):
        proc.advance(1.0, time_s=7.0)


def test_time_comes_from_the_clock_and_never_runs_backwards(scenario, block):
    now = [10.0]
    proc = Procedure(scenario, block, clock=lambda: now[0])
    proc.set_entry(ENTRY, [0, 1, 0])
    assert proc.recording.inputs[0].time_s == 10.0
    now[0] = 12.5
    proc.advance(3.0)
    proc.advance(1.0, time_s=11.0)  # earlier than the last input: clamped
    assert [i.time_s for i in proc.recording.inputs] == [10.0, 12.5, 12.5]
    assert proc.recording.samples.time_s.tolist() == [10.0, 12.5]  # same millisecond: one sample


def test_signals(scenario, block):
    proc = new(scenario, block)
    got = {"needle": [], "event": [], "step": [], "sample": [], "spread": []}
    proc.needle_changed.subscribe(lambda s: got["needle"].append(s))
    proc.event_added.subscribe(lambda e: got["event"].append(e.kind))
    proc.step_changed.subscribe(lambda s: got["step"].append(s))
    proc.sample_added.subscribe(lambda i: got["sample"].append(i))
    fn = proc.spread_added.subscribe(lambda sp: got["spread"].append(sp))
    assert proc.current_step() == "local_anaesthetic"
    proc.set_entry(ENTRY, [0, 1, 0], time_s=1.0)
    proc.local_anaesthetic(time_s=2.0)
    proc.advance(10.0, time_s=3.0)
    proc.aspirate(time_s=4.0)
    proc.inject("contrast", "iohexol", 0, 2.0, time_s=5.0)
    proc.spread_added.unsubscribe(fn)
    proc.inject("contrast", "iohexol", 0, 2.0, time_s=6.0)
    assert len(got["needle"]) == 2 and got["needle"][-1].inserted
    assert EventKind.skin_puncture in got["event"]
    assert got["step"][:2] == ["insertion", "target"]
    assert got["sample"] == [0, 1, 2, 3, 4, 5]
    assert len(got["spread"]) == 1
    names = [s["step"] for s in proc.steps_status()]
    assert names[0] == "local_anaesthetic" and names[-1] == "end"


def test_advances_without_fluoroscopy_are_counted_per_allowance(scenario, block):
    proc = new(scenario, block)  # allowance 10 mm
    proc.set_entry(ENTRY, [0, 1, 0], time_s=0.0)
    proc.record_fluoro_shot(dap_gycm2=0.1, duration_s=0.2, time_s=1.0)
    proc.advance(8.5, time_s=2.0)  # 8 mm in tissue
    assert kinds(proc, EventKind.advance_without_imaging) == []
    proc.record_fluoro_shot(time_s=3.0)
    for i in range(6):
        proc.advance(5.0, time_s=4.0 + i)  # 30 mm without an image: one event past 10 mm, again 10 mm later
    assert len(kinds(proc, EventKind.advance_without_imaging)) == 2
    proc.withdraw(15.0, time_s=10.0)  # withdrawing is not advancing
    assert len(kinds(proc, EventKind.advance_without_imaging)) == 2
    proc.record_imaging("fluoroscopy", {"dap_gycm2": 0.2, "duration_s": 0.5}, time_s=11.0)
    am = attempt_metrics(proc.recording, scenario, block)
    assert am.values["fluoro_shots"] == 3 and am.values["dap_gycm2"] == pytest.approx(0.3)
    assert am.values["fluoro_time_s"] == pytest.approx(0.7)
    assert am.values["advances_without_imaging"] == 2


def test_ultrasound_tip_visibility_rules(block):
    sc = synthetic_scenario(modality="ultrasound")
    proc = Procedure(sc, block, clock=lambda: 0.0)
    proc.set_entry(ENTRY, [0, 1, 0], time_s=0.0)
    proc.set_tip_visible(True, 0.3, time_s=1.0)
    proc.advance(10.5, time_s=2.0)  # seen: fine
    assert kinds(proc, EventKind.advance_without_imaging) == []
    proc.set_tip_visible(False, 4.0, time_s=3.0)
    proc.advance(1.5, time_s=4.0)
    assert kinds(proc, EventKind.advance_without_imaging) == []
    proc.advance(1.5, time_s=5.0)  # 3 mm unseen
    assert len(kinds(proc, EventKind.advance_without_imaging)) == 1
    proc.record_imaging("ultrasound", {"visible": True, "distance_to_plane_mm": 0.1}, time_s=6.0)
    proc.advance(6.0, time_s=7.0)
    assert len(kinds(proc, EventKind.advance_without_imaging)) == 1
    am = attempt_metrics(proc.recording, sc, block)
    # 19 mm advanced in tissue, 3 of them unseen
    assert am.values["tip_visible_pct"] == pytest.approx(100 * 16 / 19, abs=0.5)
    assert am.values["fluoro_shots"] is None
    with pytest.raises(ProcedureError):
        proc.record_imaging("mri", {}, time_s=8.0)


def test_replay_rebuilds_the_attempt_bit_for_bit(scenario, block, tmp_path):
    from simulator.benchmarks.scoring import expert_attempt
    from simulator.core.recording import Recording

    proc = new(scenario, block)
    proc.set_probe_to_world(pose_from_tip_axis([0, -70, 0], [0, 1, 0]), time_s=0.0)
    proc.set_carm_pose(25.0, -5.0, [0, 0, 0], time_s=0.0)
    expert_attempt(proc, t0=0.0, dt=0.37)
    rec = proc.recording
    again = replay(rec, scenario, block, silent=True)
    assert again.recording.same_as(rec)
    assert np.array_equal(again.needle_tip_to_world, proc.needle_tip_to_world)
    saved = Recording.load(rec.save(tmp_path / "a.nlrec.npz"))
    assert replay(saved, scenario, block).recording.same_as(rec)
    assert len(again.spreads) == len(proc.spreads)
    assert np.array_equal(again.spreads[-1].indices, proc.spreads[-1].indices)
    assert set(input_names()) >= {"set_entry", "advance", "withdraw", "set_direction", "set_needle_tip_to_world",
                                  "local_anaesthetic", "aspirate", "inject", "record_fluoro_shot", "set_tip_visible",
                                  "record_imaging", "set_probe_to_world", "set_carm_pose", "tick", "end"}


def test_an_anatomy_without_a_skin_mesh_uses_its_voxels(scenario):
    from dataclasses import replace

    from simulator.core.metrics import VoxelBody, perk_core_metrics

    block = synthetic_block_anatomy()
    bare = replace(block, meshes={})
    proc = Procedure(scenario, bare, clock=lambda: 0.0)
    assert isinstance(proc.surface, VoxelBody)
    proc.set_entry(ENTRY, [0, 1, 0], time_s=0.0)
    proc.advance(20.5, time_s=1.0)
    proc.set_direction([0.2, 1.0, 0.0], time_s=2.0)
    proc.withdraw(time_s=3.0)
    live = proc.live.values()
    batch = perk_core_metrics(proc.recording.samples.time_s, proc.recording.samples.needle_tip_to_world, proc.surface)
    assert live["tissue_punctures"] == batch["tissue_punctures"] == 1
    assert live["path_in_tissue_mm"] == pytest.approx(batch["path_in_tissue_mm"])
    # the voxel surface puts the skin where the voxels change, within its 1e-3 mm search tolerance
    assert live["tissue_damage_mm2"] == pytest.approx(batch["tissue_damage_mm2"], rel=1e-3)
    assert batch["tissue_damage_mm2"] > 0
