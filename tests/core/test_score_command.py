"""`main.py score`: our recordings and tracked files with a tissue model; clear errors, no tracebacks."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from simulator.core.geometry import pose_from_tip_axis
from simulator.core.meshes import box_mesh, icosphere, write_stl
from simulator.core.paths import PROJECT_ROOT
from simulator.core.trackfiles import write_sequence_metafile, write_transform_recorder_xml

MAIN = str(PROJECT_ROOT / "main.py")
KEYS = {"elapsed_time_s", "path_length_mm", "path_in_tissue_mm", "time_in_tissue_s", "tissue_damage_mm2"}


def run(*args):
    return subprocess.run([sys.executable, MAIN, "score", *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """A needle entering a box (skin at z = 0), pivoting 12-16-20 about the entry; a probe moving."""
    d = tmp_path_factory.mktemp("tracked")
    down = [0.0, 0.0, -1.0]
    tips = [(0, 0, 5), (0, 0, -10), (0, 0, -20), (12, 0, -16), (0, 0, 3)]
    axes = [down, down, down, [0.6, 0.0, -0.8], down]
    t = np.array([0.0, 0.5, 1.5, 2.0, 2.25])
    needle = np.array([pose_from_tip_axis(p, a) for p, a in zip(tips, axes)])
    probe = np.repeat(np.eye(4)[None], 5, axis=0)
    probe[:, 0, 3] = [0, 1, 1, 4, 4]  # moves 1 then 3 mm
    write_stl(d / "tissue.stl", box_mesh((-100, -100, -100), (100, 100, 0)))
    write_stl(d / "tissue_ascii.stl", box_mesh((-100, -100, -100), (100, 100, 0)), binary=False)
    seqs = {"NeedleTipToReference": (t, needle), "ProbeToReference": (t, probe)}
    write_sequence_metafile(d / "attempt.igs.mha", seqs, style="plus")
    write_sequence_metafile(d / "attempt.seq.mha", seqs, style="slicer")
    write_transform_recorder_xml(d / "attempt.xml", seqs, [(0.1, "Task 1")])
    return d


EXPECTED = {
    "elapsed_time_s": 2.25,
    "path_in_tissue_mm": 25 + math.sqrt(160),
    "time_in_tissue_s": 2.0,
    "tissue_damage_mm2": 120.0,
}


@pytest.mark.parametrize("name, stl", [("attempt.igs.mha", "tissue.stl"), ("attempt.seq.mha", "tissue_ascii.stl"),
                                       ("attempt.xml", "tissue.stl")])
def test_perk_tutor_metrics_of_a_tracked_file(tracked, name, stl):
    r = run(tracked / name, "--tissue", tracked / stl, "--needle", "NeedleTipToReferenceTransform", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert KEYS <= set(out)
    for k, v in EXPECTED.items():
        assert out[k] == pytest.approx(v, abs=1e-9), k
    assert out["path_length_mm"] == {
        "NeedleTipToReference": pytest.approx(15 + 10 + math.sqrt(160) + math.sqrt(505)),
        "ProbeToReference": pytest.approx(4.0),
    }
    assert out["tissue_punctures"] == 1 and out["needle"] == "NeedleTipToReference"


def test_plain_text_output(tracked):
    r = run(tracked / "attempt.igs.mha", "--tissue", tracked / "tissue.stl", "--needle", "NeedleTipToReference")
    assert r.returncode == 0 and "tissue_damage_mm2" in r.stdout and "ProbeToReference" in r.stdout


@pytest.mark.parametrize(
    "setup, words",
    [
        (lambda d: (d / "bad.igs.mha").write_text("ObjectType = Image\nSeq_Frame0000_NTransform = 1 2 3\n"), "bad.igs.mha:2"),
        (lambda d: (d / "bad.xml").write_text("<TransformRecorderLog><log"), "bad.xml:1"),
        (lambda d: (d / "bad.stl").write_text("solid\n vertex 1 2\n"), "bad.stl:2"),
    ],
)
def test_malformed_inputs_give_a_clear_error(tracked, tmp_path, setup, words):
    setup(tmp_path)
    rec = tmp_path / "bad.igs.mha" if (tmp_path / "bad.igs.mha").exists() else (
        tmp_path / "bad.xml" if (tmp_path / "bad.xml").exists() else tracked / "attempt.igs.mha")
    stl = tmp_path / "bad.stl" if (tmp_path / "bad.stl").exists() else tracked / "tissue.stl"
    r = run(rec, "--tissue", stl, "--needle", "NeedleTipToReference", "--json")
    assert r.returncode == 1
    assert words in r.stderr and "Traceback" not in r.stderr and r.stdout == ""


def test_unknown_needle_lists_the_transforms(tracked):
    r = run(tracked / "attempt.igs.mha", "--tissue", tracked / "tissue.stl", "--needle", "StylusTipToReference")
    assert r.returncode == 1 and "NeedleTipToReference" in r.stderr and "ProbeToReference" in r.stderr
    r = run(tracked / "attempt.igs.mha", "--json")
    assert r.returncode == 1 and "--tissue" in r.stderr and "Traceback" not in r.stderr


def test_score_our_recording_with_its_scenario(tmp_path):
    from simulator.benchmarks.scoring import expert_attempt, synthetic_block_anatomy, synthetic_scenario
    from simulator.core.procedure import Procedure
    from simulator.core.scoring import score_attempt

    sc = synthetic_scenario()
    an = synthetic_block_anatomy()
    proc = expert_attempt(Procedure(sc, an, clock=lambda: 0.0))
    rec_path = proc.recording.save(tmp_path / "expert.nlrec.npz")
    sc_path = tmp_path / "test_block_celiac.yaml"
    sc_path.write_text(json.dumps(json.loads(sc.model_dump_json(exclude_none=True)), indent=2))  # JSON is YAML
    r = run(rec_path, "--scenario", sc_path, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    card = score_attempt(proc.recording, sc, an)
    assert out["score"] == card.score and out["passed"] is True and out["reasons"] == card.reasons
    # the tracked route on our own recording gives the same Perk Tutor numbers
    write_stl(tmp_path / "skin.stl", an.meshes["skin"])
    r2 = run(rec_path, "--tissue", tmp_path / "skin.stl", "--json")
    assert r2.returncode == 0, r2.stderr
    perk = json.loads(r2.stdout)
    for k in ("elapsed_time_s", "path_in_tissue_mm", "time_in_tissue_s", "tissue_damage_mm2"):
        assert perk[k] == pytest.approx(card.perk[k], abs=1e-9)
    assert perk["path_length_mm"]["NeedleTipToWorld"] == pytest.approx(card.perk["path_length_mm"], abs=1e-9)


def test_a_sphere_tissue_model(tmp_path):
    """The tissue can be any closed surface: a ball of radius 50, needle straight in and out."""
    write_stl(tmp_path / "ball.stl", icosphere((0, 0, 0), 50.0, 4))
    t = np.arange(6, dtype=float)
    z = [70, 45, 30, 10, 45, 70]
    m = np.array([pose_from_tip_axis((0, 0, zz), (0, 0, -1)) for zz in z])
    write_sequence_metafile(tmp_path / "ball.igs.mha", {"NeedleTipToRAS": (t, m)})
    r = run(tmp_path / "ball.igs.mha", "--tissue", tmp_path / "ball.stl", "--json")
    out = json.loads(r.stdout)
    assert out["path_in_tissue_mm"] == pytest.approx(25 + 15 + 20 + 35)
    assert out["time_in_tissue_s"] == pytest.approx(4.0)
    assert out["tissue_damage_mm2"] == pytest.approx(0.0, abs=1e-9)
