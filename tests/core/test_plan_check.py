"""plan_check: a straight planned path on an analytic phantom, and the library on the bundled patient.

The phantom (0.5 mm voxels, RAS mm): air everywhere, a body of fat |x|, |y|, |z| <= 25; inside it a
sphere of radius 8 at (0, 5, 0) labelled `aorta` (artery), a bone slab `vertebrae_l1` at
x in [10, 25], y in [-12, -8], z in [-10, 10], and a lung box `lung_left` at x in [-25, -15],
y in [-5, 20]. Entries lie on the posterior surface y = -25.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.core import paths
from simulator.core.anatomy import Anatomy, Structure
from simulator.core.plan_check import PathProblem, check_plan, check_trajectory, distance_to_target_mm, worst
from simulator.core.scenario import load_scenario, parse_scenario_text
from simulator.core.scenario_doc import ScenarioDocument
from simulator.core.tissue import Tissue

SPACING = 0.5
HALF = 30.0
SPHERE_C = np.array([0.0, 5.0, 0.0])
SPHERE_R = 8.0


@pytest.fixture(scope="module")
def phantom() -> Anatomy:
    ax = np.arange(-HALF, HALF + 1e-9, SPACING)
    x, y, z = np.meshgrid(ax, ax, ax, indexing="ij")
    tissue = np.zeros(x.shape, np.uint8)
    labels = np.zeros(x.shape, np.uint16)
    body = (np.abs(x) <= 25) & (np.abs(y) <= 25) & (np.abs(z) <= 25)
    tissue[body] = Tissue.FAT
    sphere = (x - SPHERE_C[0]) ** 2 + (y - SPHERE_C[1]) ** 2 + (z - SPHERE_C[2]) ** 2 <= SPHERE_R**2
    tissue[sphere], labels[sphere] = Tissue.ARTERY, 1
    slab = (x >= 10) & (x <= 25) & (y >= -12) & (y <= -8) & (np.abs(z) <= 10)
    tissue[slab], labels[slab] = Tissue.CANCELLOUS_BONE, 2
    lung = (x >= -25) & (x <= -15) & (y >= -5) & (y <= 20) & (np.abs(z) <= 25)
    tissue[lung], labels[lung] = Tissue.LUNG, 3
    hu = np.where(tissue == 0, -1000, 0).astype(np.int16)
    structures = {
        1: Structure(1, "aorta", Tissue.ARTERY, "vessels"),
        2: Structure(2, "vertebrae_l1", Tissue.CANCELLOUS_BONE, "spine"),
        3: Structure(3, "lung_left", Tissue.LUNG, "lungs"),
    }
    return Anatomy("test_box", hu, tissue, labels, np.full(3, SPACING), np.full(3, -HALF), structures)


SCENARIO_YAML = """
id: box_test
title: Box test
procedure: needle_basics
indication: [training]
difficulty: 1
anatomy: "phantom:gel_block"
patient_position: prone
modality: fluoroscopy
needle: {length_mm: %(needle)s}
targets:
  - id: front
    name: In front of the aorta
    points_mm: [[0.0, 20.0, 0.0]]
  - id: clear
    name: Clear of everything
    points_mm: [[-5.0, 0.0, 15.0]]
  - id: behind_bone
    name: Behind the slab
    points_mm: [[15.0, 0.0, 0.0]]
critical_structures:
  - structure: aorta
    severity: critical
    message: "Aortic puncture."
rubric:
  items: [{metric: final_distance_mm, weight: 1, good: 1, bad: 10}]
instructions: "Reach the target without touching the aorta."
"""


def scenario(needle_mm: float = 150):
    return parse_scenario_text(SCENARIO_YAML % {"needle": needle_mm})


def test_a_path_through_the_sphere_is_critical_at_the_known_depth(phantom):
    entry, tip = (0.0, -25.0, 0.0), (0.0, 20.0, 0.0)
    problems = check_trajectory(phantom, scenario(), entry, tip)
    assert [p.kind for p in problems] == ["critical"]
    (p,) = problems
    # the sphere's surface along y: y = 5 - 8 = -3, i.e. 22 mm from the entry; it ends at y = 13 (38 mm)
    assert p.what == "aorta" and p.severity == "critical" and p.fatal
    assert abs(p.s_mm - 22.0) <= 0.5 and abs(p.end_mm - 38.0) <= 0.5
    assert p.length_mm == pytest.approx(45.0)
    assert "aorta" in p.message and f"at {p.s_mm:.1f} mm of 45.0 mm" in p.message and "Aortic puncture." in p.message


def test_a_path_missing_everything_is_clean(phantom):
    assert check_trajectory(phantom, scenario(), (-5.0, -25.0, 15.0), (-5.0, 0.0, 15.0)) == []
    assert check_trajectory(phantom, None, (-5.0, -25.0, 15.0), (-5.0, 0.0, 15.0)) == []


def test_bone_before_the_target_blocks_the_needle(phantom):
    problems = check_trajectory(phantom, scenario(), (15.0, -25.0, 0.0), (15.0, 0.0, 0.0))
    assert [(p.kind, p.what, p.severity) for p in problems] == [("bone", "vertebrae_l1", "major")]
    assert abs(problems[0].s_mm - 13.0) <= 0.5 and abs(problems[0].end_mm - 17.0) <= 0.5
    # resting on the bone in the last 2 mm is allowed
    assert check_trajectory(phantom, None, (15.0, -25.0, 0.0), (15.0, -11.0, 0.0)) == []


def test_only_the_first_bone_is_reported_named_by_the_labelled_bone_behind_its_cortex(phantom):
    """Cortex voxels without a label (y in [-14, -12.5)) in front of the slab, and a second slab
    (y in [-5, -3]) further on: one problem, where the needle first meets bone (y = -14, 11 mm),
    named after the labelled slab 1.5 mm behind; the second slab is not listed (the needle stopped)."""
    a = Anatomy("bone_runs", phantom.hu.copy(), phantom.tissue.copy(), phantom.labels.copy(), phantom.spacing_mm,
                phantom.origin_mm, dict(phantom.structures))
    ax = np.arange(-HALF, HALF + 1e-9, SPACING)
    x, y, z = np.meshgrid(ax, ax, ax, indexing="ij")
    near = (x >= 10) & (x <= 25) & (np.abs(z) <= 10)
    cortex = near & (y >= -14) & (y < -12.5)
    a.tissue[cortex], a.labels[cortex] = Tissue.CORTICAL_BONE, 0
    second = near & (y >= -5) & (y <= -3)
    a.tissue[second], a.labels[second] = Tissue.CANCELLOUS_BONE, 2
    problems = check_trajectory(a, scenario(), (15.0, -25.0, 0.0), (15.0, 0.0, 0.0))
    assert [(p.kind, p.what) for p in problems] == [("bone", "vertebrae_l1")]
    assert abs(problems[0].s_mm - 11.0) <= 0.5
    assert problems[0].message.startswith("Bone (vertebrae l1) at 11.0 mm of 25.0 mm")
    # cortex alone (no labelled bone within 5 mm): named by its tissue
    a.tissue[near & (y >= -12.5) & (y <= -3)] = Tissue.FAT
    a.labels[near & (y >= -12.5) & (y <= -3)] = 0
    problems = check_trajectory(a, scenario(), (15.0, -25.0, 0.0), (15.0, 0.0, 0.0))
    assert [(p.kind, p.what) for p in problems] == [("bone", "cortical_bone")]


def test_lung_is_forbidden_even_when_the_scenario_does_not_list_it(phantom):
    problems = check_trajectory(phantom, None, (-20.0, -25.0, 0.0), (-20.0, 10.0, 0.0))
    assert [(p.kind, p.what, p.severity) for p in problems] == [("forbidden_tissue", "lung_left", "critical")]
    assert abs(problems[0].s_mm - 20.0) <= 0.5
    assert "pneumothorax" in problems[0].message


def test_leaving_the_body_and_entries_off_the_skin(phantom):
    entry, tip = np.array([-10.0, -25.0, 20.0]), np.array([-10.0, -5.0, 32.0])
    (p,) = check_trajectory(phantom, None, entry, tip)
    v = (tip - entry) / np.linalg.norm(tip - entry)
    exit_s = (5.0 + SPACING / 2) / v[2]  # z = 25 is the top row of body voxels: it ends half a voxel above
    assert p.kind == "leaves_body" and abs(p.s_mm - exit_s) <= 0.1
    # 4 mm above the skin is tolerated, 8 mm is not
    assert check_trajectory(phantom, None, (-5.0, -29.0, 15.0), (-5.0, 0.0, 15.0)) == []
    (p,) = check_trajectory(phantom, None, (-5.0, -33.0, 15.0), (-5.0, 0.0, 15.0))
    assert p.kind == "entry_off_skin" and abs(p.end_mm - 8.0) <= 0.5
    (p,) = check_trajectory(phantom, None, (-5.0, -15.0, 15.0), (-5.0, 0.0, 15.0))
    assert p.kind == "entry_off_skin" and "inside the body" in p.message


def test_needle_length_and_missed_targets(phantom):
    entry, tip = (-5.0, -25.0, 15.0), (-5.0, 0.0, 15.0)
    (p,) = check_trajectory(phantom, scenario(needle_mm=24), entry, tip)
    assert (p.kind, p.severity) == ("too_long", "critical")
    (p,) = check_trajectory(phantom, scenario(needle_mm=30), entry, tip)
    assert (p.kind, p.severity) == ("too_long", "minor")
    (p,) = check_trajectory(phantom, scenario(), (-5.0, -25.0, 15.0), (-5.0, -8.0, 15.0), target_id="clear")
    assert (p.kind, p.target_id, p.severity) == ("misses_target", "clear", "critical")
    assert "8.0 mm from target clear (tolerance 5 mm)" in p.message
    (p,) = check_trajectory(phantom, scenario(), entry, tip, target_id="nope")
    assert p.kind == "misses_target"


def test_check_plan_covers_trajectories_targets_and_structure_names(phantom):
    sc = scenario().model_copy(update={
        "planned_trajectory": None, "additional_trajectories": [],
    })
    assert check_plan(phantom, sc) == []
    doc = ScenarioDocument.from_text(SCENARIO_YAML % {"needle": 150})
    doc.set(("planned_trajectory",), {"entry_mm": [0, -25, 0], "target_mm": [0, 20, 0], "target_id": "front"})
    doc.insert(("additional_trajectories",), -1, {"entry_mm": [-5, -25, 15], "target_mm": [-5, 0, 15],
                                                  "target_id": "clear"})
    doc.insert(("targets",), -1, {"id": "in_aorta", "name": "Inside", "points_mm": [[0, 5, 0]]})
    doc.insert(("targets",), -1, {"id": "far", "name": "Far away", "points_mm": [[0, 0, 90]]})
    doc.insert(("critical_structures",), -1, {"structure": "spinal_canal", "severity": "critical"})
    assert doc.errors() == []
    problems = check_plan(phantom, doc)
    kinds = sorted((p.kind, p.trajectory, p.target_id) for p in problems)
    assert kinds == [("critical", 0, "front"), ("outside_anatomy", None, "far"),
                     ("target_inside", None, "in_aorta"), ("unknown_structure", None, None)]
    crit = next(p for p in problems if p.kind == "critical")
    assert crit.message.startswith("planned_trajectory: ") and abs(crit.s_mm - 22.0) <= 0.5
    assert worst(problems) == "critical" and worst([]) is None
    # the same from the validated model
    assert check_plan(phantom, doc.scenario()) == problems
    # a document with errors elsewhere is still checked from its fields
    doc.set(("rubric", "pass_mark"), 500)
    assert doc.scenario() is None and check_plan(phantom, doc) == problems


def test_distance_to_target_follows_the_schema():
    assert distance_to_target_mm((3, 4, 0), "point", [[0, 0, 0]]) == pytest.approx(5.0)
    assert distance_to_target_mm((3, 4, 0), "sphere", [[0, 0, 0]], 2.0) == pytest.approx(3.0)
    assert distance_to_target_mm((0, 3, 5), "polyline", [[0, 0, 0], [0, 0, 10]], 1.0) == pytest.approx(2.0)
    assert distance_to_target_mm((0, 0.5, 5), "polyline", [[0, 0, 0], [0, 0, 10]], 1.0) == 0.0


# ---------------------------------------------------------------------------------------------
# the library on the built bundled patient


# `bundled`: the built bundled patient (tests/core/conftest.py)


BUNDLED = [p for p in sorted(paths.SCENARIOS_DIR.glob("*.yaml")) if load_scenario(p).anatomy == "bundled"]


@pytest.mark.parametrize("path", BUNDLED, ids=[p.stem for p in BUNDLED])
def test_library_plans_are_clean_on_the_bundled_patient(bundled, path):
    """Clean but for structures a scenario lists as minor and crosses on purpose (the aorta of the
    transaortic celiac block)."""
    sc = load_scenario(path)
    assert sc.trajectories
    assert [p for p in check_plan(bundled, sc) if not (p.kind == "critical" and p.severity == "minor")] == []


def test_a_plan_through_the_aorta_is_flagged_on_the_bundled_patient(bundled):
    sc = load_scenario(paths.SCENARIOS_DIR / "celiac_plexus_posterior.yaml")
    right = sc.additional_trajectories[0]
    # from the right entry straight to the far side of the aorta (the left target)
    problems = check_trajectory(bundled, sc, right.entry_mm, sc.target("celiac_plexus_left").points_mm[0])
    hit = [p for p in problems if p.what == "aorta"]
    assert hit and hit[0].kind == "critical" and hit[0].severity == "critical"
    assert 0 < hit[0].s_mm < hit[0].length_mm
    # the aorta is met where the label map says so along that line
    entry = np.asarray(right.entry_mm, float)
    v = np.subtract(sc.target("celiac_plexus_left").points_mm[0], entry)
    v /= np.linalg.norm(v)
    aorta = bundled.structure_by_name("aorta").id
    s = np.arange(0.0, hit[0].length_mm, 0.05)
    first = s[np.argmax(bundled.label_at(entry + s[:, None] * v) == aorta)]
    assert abs(first - hit[0].s_mm) <= 0.5


def test_path_problem_is_a_frozen_record():
    p = PathProblem("bone", 1.0, 2.0, "rib", "major", "m")
    with pytest.raises(Exception):
        p.s_mm = 3.0  # type: ignore[misc]
    assert not p.fatal and math.isclose(p.length_mm, 2.0)
