"""Formats of the field and our own: .igs.mha (3D Slicer / Perk Tutor), CSV, JSON, and a trainee's
records moved between workstations."""
import json

import numpy as np
import pytest

from simulator.benchmarks.scoring import ENTRY, expert_attempt, synthetic_scenario
from simulator.core.geometry import pose_from_tip_axis
from simulator.core.meshes import write_stl
from simulator.core.metrics import body_surface, perk_core_metrics
from simulator.core.procedure import Procedure, replay
from simulator.core.recording import Recording
from simulator.core.trackfiles import read_sequence_metafile, read_tracked
from simulator.records.exchange import (
    CSV_COLUMNS,
    NEEDLE_TRANSFORM,
    PROBE_TRANSFORM,
    export_attempt,
    export_csv,
    export_igs_mha,
    export_trainee,
    import_json,
    import_trainee,
    import_tracked,
    read_samples_csv,
)
from simulator.records.store import RecordsError, SQLiteRecordStore


def test_igs_mha_follows_the_plus_format(tmp_path, expert):
    rec = expert[0].recording
    path = export_igs_mha(rec, tmp_path / "attempt.igs.mha")
    text = path.read_bytes().decode("ascii")
    lines = text.splitlines()
    assert lines[0] == "ObjectType = Image" and lines[1] == "NDims = 3" and lines[-1] == "ElementDataFile = LOCAL"
    assert f"DimSize = 0 0 {rec.n_samples}" in lines and "Kinds = domain domain list" in lines
    assert "Seq_Frame0000_NeedleTipToReferenceTransform = " in text and "Seq_Frame0000_Timestamp = " in text
    assert f"Seq_Frame{rec.n_samples - 1:04d}_Timestamp = {rec.samples.time_s[-1]:.6f}" in lines
    assert text.endswith("ElementDataFile = LOCAL\n")  # tracking only: no pixel bytes
    tracked = read_sequence_metafile(path)
    assert list(tracked.sequences) == [NEEDLE_TRANSFORM]  # no probe in a fluoroscopy attempt
    seq = tracked.sequences[NEEDLE_TRANSFORM]
    assert np.array_equal(seq.time_s, rec.samples.time_s)
    assert np.array_equal(seq.matrices, rec.samples.needle_tip_to_world) and seq.valid.all()
    plus = export_igs_mha(rec, tmp_path / "plus.igs.mha", style="plus")
    assert plus.read_bytes().endswith(b"ElementDataFile = LOCAL\n" + bytes(rec.n_samples))
    assert np.array_equal(read_tracked(plus).sequences[NEEDLE_TRANSFORM].matrices, rec.samples.needle_tip_to_world)


def test_export_import_keeps_perk_tutor_metrics_identical(tmp_path, store, expert, scenario, block):
    """export .igs.mha -> import (through the procedure, as tracked poses) -> the same Perk Tutor
    core metrics to the last digit; and the `score` command's metrics of the file with the skin
    as the Tissue model are the same numbers."""
    proc, card = expert
    path = export_igs_mha(proc.recording, tmp_path / "attempt.igs.mha")
    aid, imported = import_tracked(store, path, scenario, block, trainee="visitor")
    assert imported.perk == card.perk
    for key in ("elapsed_time_s", "path_length_mm", "path_in_tissue_mm", "time_in_tissue_s", "tissue_damage_mm2"):
        assert imported.metrics[key] == card.metrics[key], key
    back = store.load_attempt(aid)
    assert np.array_equal(back.samples.time_s, proc.recording.samples.time_s)
    assert np.array_equal(back.samples.needle_tip_to_world, proc.recording.samples.needle_tip_to_world)
    info = store.attempt(aid)
    assert info.trainee == "visitor" and info.mode == "imported" and back.meta["imported_from"] == "attempt.igs.mha"
    # the import is a recording like any other: its inputs replay to the same samples and events
    assert replay(back, scenario, block, silent=True).recording.same_as(back)
    # an imported tracked file has poses only: the steps (local anaesthetic, injections) and the
    # images are missing - the whole path is an advance without an image
    assert not imported.passed
    assert [f["key"] for f in imported.automatic_fails] == ["no_agent_injected", "required_target_missed",
                                                            "advance_blind"]
    assert imported.targets[0]["placed"] and not imported.targets[0]["injected"]
    # the score command's --tissue mode on the same file
    from simulator.commands.score import tracked_metrics

    stl = tmp_path / "skin.stl"
    write_stl(stl, block.meshes["skin"])
    out = tracked_metrics(path, stl, NEEDLE_TRANSFORM)
    for key in ("elapsed_time_s", "path_in_tissue_mm", "time_in_tissue_s", "tissue_damage_mm2"):
        assert out[key] == pytest.approx(card.perk[key], rel=1e-12, abs=1e-9), key
    assert out["path_length_mm"][NEEDLE_TRANSFORM] == pytest.approx(card.perk["path_length_mm"], rel=1e-12)


def test_probe_exported_and_imported(tmp_path, store, block):
    sc = synthetic_scenario(modality="ultrasound")
    proc = Procedure(sc, block, clock=lambda: 0.0, trainee="ann")
    proc.set_entry(ENTRY, [0.0, 1.0, 0.0], time_s=1.0)
    probe = pose_from_tip_axis([-40.0, -71.0, 0.0], [0.0, 1.0, 0.0])
    for k in range(5):
        probe = probe.copy()
        probe[0, 3] += 1.0
        proc.set_probe_to_world(probe, time_s=2.0 + k)
        proc.advance(3.0, time_s=2.5 + k)
    rec = proc.recording
    path = export_igs_mha(rec, tmp_path / "us.igs.mha")
    tracked = read_tracked(path)
    assert list(tracked.sequences) == [NEEDLE_TRANSFORM, PROBE_TRANSFORM]
    ps = tracked.sequences[PROBE_TRANSFORM]
    assert not ps.valid[0] and ps.valid[1:].all()  # no probe at the first sample: INVALID
    assert np.array_equal(ps.matrices[1:], rec.samples.probe_to_world[1:])
    aid, card = import_tracked(store, path, sc, block)
    back = store.load_attempt(aid)
    assert np.array_equal(back.samples.probe_to_world[1:], rec.samples.probe_to_world[1:])
    assert np.isnan(back.samples.probe_to_world[0]).all()
    assert back.meta["probe_transform"] == PROBE_TRANSFORM


def test_csv_has_one_exact_row_per_sample(tmp_path, expert, block):
    proc = Procedure(synthetic_scenario(), block, clock=lambda: 0.0)
    proc.set_carm_pose(20.0, -5.0, [1.0, 2.0, 3.0], time_s=0.5)
    expert_attempt(proc, t0=1.0)
    rec = proc.recording
    path = export_csv(rec, tmp_path / "attempt.csv")
    lines = path.read_text().splitlines()
    assert lines[0].split(",") == CSV_COLUMNS and len(lines) == rec.n_samples + 1
    first = dict(zip(CSV_COLUMNS, lines[1].split(",")))
    tip = rec.samples.needle_tip_to_world[0, :3, 3]
    assert float(first["tip_r_mm"]) == tip[0] and float(first["tip_a_mm"]) == tip[1]
    assert first["probe_to_world_00"] == "" and first["tip_visible"] == "" and float(first["carm_lao_deg"]) == 20.0
    back = read_samples_csv(path)
    for k, v in rec.samples.arrays().items():
        assert np.array_equal(back[k], v, equal_nan=True), k
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(RecordsError, match="bad.csv:1"):
        read_samples_csv(bad)


def test_json_export_is_strict_and_imports_once(tmp_path, store, expert, scenario):
    proc, card = expert
    aid = store.save_recording(proc.recording, card, scenario=scenario, images={"fluoro_1": b"\x89PNG\r\n\x1a\nx"})
    path = export_attempt(store, aid, tmp_path / "attempt.json")
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text  # strict JSON (missing probe poses are null)
    d = json.loads(text)
    assert d["format"] == "neurolysis-trainer-attempt" and d["score_card"]["score"] == card.score
    assert d["attempt"]["uuid"] == store.attempt(aid).uuid and d["scenario"]["id"] == scenario.id
    other = SQLiteRecordStore(tmp_path / "other.sqlite")
    new, added = import_json(other, path)
    assert added
    back = other.load_attempt(new)
    assert back.same_as(proc.recording)
    assert json.dumps(other.score_card(new), sort_keys=True) == json.dumps(card.to_json(), sort_keys=True)
    assert other.images(new) == {"fluoro_1": b"\x89PNG\r\n\x1a\nx"}
    assert other.attempt(new).uuid == store.attempt(aid).uuid
    assert import_json(other, path) == (new, False)  # the same UUID is not added twice
    assert len(other.list_attempts()) == 1
    other.close()
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"hello": 1}')
    with pytest.raises(RecordsError, match="wrong.json: not an attempt exported by this program"):
        import_json(store, wrong)


def test_trainee_records_move_between_workstations_without_duplicates(tmp_path, expert, novice, scenario):
    a = SQLiteRecordStore(tmp_path / "a.sqlite")
    b = SQLiteRecordStore(tmp_path / "b.sqlite")
    ann1 = a.save_recording(expert[0].recording, expert[1], scenario=scenario)
    ann2 = a.save_recording(novice[0].recording, novice[1], scenario=scenario, images={"us": b"\x89PNG\r\n\x1a\nus"})
    bob = Recording.from_json_dict(expert[0].recording.to_json_dict())
    bob.trainee = "bob"
    a.save_recording(bob, expert[1])
    a.add_trainee("ann", "Dr Ann Example")
    live = a.start_attempt(expert[0].recording)  # in progress: not exported
    assert export_trainee(a, "ann", tmp_path / "ann.records") == 2
    assert (tmp_path / "ann.records").read_bytes()[:16] == b"SQLite format 3\x00"
    assert not (tmp_path / "ann.records-wal").exists()  # one self-contained file

    s1 = import_trainee(b, tmp_path / "ann.records")
    assert len(s1.added) == 2 and s1.skipped == 0 and s1.trainees == ["ann"]
    assert {t.name: t.full_name for t in b.list_trainees()} == {"ann": "Dr Ann Example"}
    uuids = {a.attempt(ann1).uuid, a.attempt(ann2).uuid}
    assert {x.uuid for x in b.list_attempts()} == uuids
    for x in b.list_attempts():
        src = a.attempt_by_uuid(x.uuid)
        assert b.load_attempt(x.id).same_as(a.load_attempt(src.id))
        assert b.score_card(x.id) == a.score_card(src.id) and b.images(x.id) == a.images(src.id)
        assert (x.score, x.passed, x.status, x.started_at) == (src.score, src.passed, src.status, src.started_at)
    assert b.scenario_json(scenario.id, expert[0].recording.scenario_version) is not None

    s2 = import_trainee(b, tmp_path / "ann.records")  # again: nothing new
    assert s2.added == [] and s2.skipped == 2 and len(b.list_attempts()) == 2
    # ann trains on workstation b, then brings her records back to a: only the new attempt comes
    b.save_recording(expert[0].recording, expert[1])
    export_trainee(b, "ann", tmp_path / "ann_back.records")
    s3 = import_trainee(a, tmp_path / "ann_back.records")
    assert len(s3.added) == 1 and s3.skipped == 2
    assert len(a.list_attempts(trainee="ann")) == 4  # 3 finished + the live one never left a
    assert a.attempt(live).status == "live"
    with pytest.raises(RecordsError, match="no trainee 'zoe'"):
        export_trainee(a, "zoe", tmp_path / "zoe.records")
    a.close()
    b.close()


def test_bad_files_are_named(tmp_path, store, scenario, block):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(RecordsError, match="notes.txt: not a records database"):
        import_trainee(store, text)
    mha = tmp_path / "broken.igs.mha"
    mha.write_text("ObjectType = Image\nNDims = 3\nSeq_Frame0000_NeedleTipToReferenceTransform = 1 2 3\n"
                   "Seq_Frame0000_Timestamp = 0\nElementDataFile = LOCAL\n")
    with pytest.raises(RecordsError, match=r"broken.igs.mha:3: a transform needs 16 numbers"):
        import_tracked(store, mha, scenario, block)
    skew = tmp_path / "skew.igs.mha"
    m = np.eye(4)
    m[0, 0] = 2.0  # a scaling: not a rigid pose
    from simulator.core.trackfiles import write_sequence_metafile

    write_sequence_metafile(skew, {"NeedleTipToReference": (np.array([0.0, 1.0]), np.stack([np.eye(4), m]))})
    with pytest.raises(RecordsError, match=r"skew.igs.mha: frame 1 \(time 1.000 s\), NeedleTipToReference"):
        import_tracked(store, skew, scenario, block)
    two = tmp_path / "two.igs.mha"
    one = (np.array([0.0]), np.eye(4)[None])
    write_sequence_metafile(two, {"AToB": one, "CToD": one})
    with pytest.raises(RecordsError, match="which transform is the needle"):
        import_tracked(store, two, scenario, block)
    assert store.list_attempts() == []
