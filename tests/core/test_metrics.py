"""Perk Tutor's core metrics computed by hand on small trajectories; vectorised == per-sample loop."""
import math

import numpy as np
import pytest

from simulator.core.geometry import pose_from_tip_axis
from simulator.core.mesh_locator import MeshLocator
from simulator.core.meshes import box_mesh, icosphere
from simulator.core.metrics import (
    CORE_KEYS,
    PerkAccumulator,
    TargetGeometry,
    needle_base,
    parse_axis,
    perk_core_metrics,
    perk_core_metrics_loop,
    sample_sequence_at,
)
from simulator.core.recording import SampleBuffer

BODY = MeshLocator(*(lambda m: (m.vertices, m.faces))(box_mesh((-400, -400, -300), (400, 400, 0))))  # skin z = 0


def frames():
    down = [0.0, 0.0, -1.0]
    tips = [(0, 0, 5), (0, 0, -10), (0, 0, -20), (12, 0, -16), (0, 0, 3)]
    axes = [down, down, down, [0.6, 0.0, -0.8], down]
    times = [0.0, 0.5, 1.5, 2.0, 2.25]
    return np.array(times), np.array([pose_from_tip_axis(p, a) for p, a in zip(tips, axes)])


def test_core_metrics_by_hand():
    t, m = frames()
    out = perk_core_metrics(t, m, BODY)
    assert out["elapsed_time_s"] == pytest.approx(2.25)
    assert out["path_length_mm"] == pytest.approx(15 + 10 + math.sqrt(160) + math.sqrt(505))
    # frames 1, 2, 3 end inside: their steps count
    assert out["path_in_tissue_mm"] == pytest.approx(15 + 10 + math.sqrt(160))
    assert out["time_in_tissue_s"] == pytest.approx(0.5 + 1.0 + 0.5)
    # insertion along the line sweeps nothing; the pivot about the entry (the origin) sweeps the
    # triangle origin - (0,0,-20) - (12,0,-16): half of |(12,0,-16) x (0,0,-20)| = 120
    assert out["tissue_damage_mm2"] == pytest.approx(120.0)
    assert out["tissue_punctures"] == 1


def test_loop_gives_the_same_numbers():
    t, m = frames()
    a = perk_core_metrics(t, m, BODY)
    b = perk_core_metrics_loop(t, m, BODY)
    for k in CORE_KEYS:
        assert a[k] == pytest.approx(b[k], abs=1e-9)


def test_no_skin_intersection_uses_the_origin_as_perk_tutor_does():
    """A needle buried deeper than Perk Tutor's 300 mm base: its tip-to-base segment never meets
    the surface, and Perk Tutor leaves the entry point at (0, 0, 0)."""
    deep = MeshLocator(*(lambda mm: (mm.vertices, mm.faces))(box_mesh((-2000, -2000, -2000), (2000, 2000, 0))))
    down = [0, 0, -1]
    m = np.array([pose_from_tip_axis((100, 0, -500), down), pose_from_tip_axis((110, 0, -500), down)])
    out = perk_core_metrics([0.0, 1.0], m, deep)
    # triangle (110,0,-500), (100,0,-500), origin: 0.5 * |p1 x p0| = 2500; the second is degenerate
    assert out["tissue_damage_mm2"] == pytest.approx(2500.0)
    assert perk_core_metrics_loop([0.0, 1.0], m, deep)["tissue_damage_mm2"] == pytest.approx(2500.0)


def test_punctures_need_tip_and_both_neighbours_inside_and_reset_when_all_out():
    down = [0, 0, -1]
    # tip just under the skin (0.5 mm): the point 1 mm behind it is outside -> no puncture yet
    z = [5, -0.5, -10, -0.5, 5, -10, 5]
    m = np.array([pose_from_tip_axis((0, 0, zz), down) for zz in z])
    out = perk_core_metrics(np.arange(len(z), dtype=float), m, BODY)
    # -10 punctures (1); -0.5 is undecided (stays in); 5 resets; -10 punctures again (2)
    assert out["tissue_punctures"] == 2
    assert perk_core_metrics_loop(np.arange(len(z), dtype=float), m, BODY)["tissue_punctures"] == 2


def test_random_trajectory_vectorised_equals_loop_to_1e9():
    sphere = icosphere((0, 0, 0), 60.0, 3)
    loc = MeshLocator(sphere.vertices, sphere.faces)
    rng = np.random.default_rng(7)
    n = 400
    tips = np.cumsum(rng.normal(scale=3.0, size=(n, 3)), axis=0) * 0.5 + [0, 0, 40]
    dirs = np.cumsum(rng.normal(scale=0.05, size=(n, 3)), axis=0) + [0, 0, -1]
    m = np.array([pose_from_tip_axis(p, d) for p, d in zip(tips, dirs)])
    m[100:130] = m[100]  # a pause: repeated poses
    t = np.cumsum(rng.uniform(0.001, 0.05, n))
    a = perk_core_metrics(t, m, loc)
    b = perk_core_metrics_loop(t, m, loc)
    assert a["path_in_tissue_mm"] > 0 and a["tissue_damage_mm2"] > 0
    for k in CORE_KEYS:
        assert abs(a[k] - b[k]) <= 1e-9 * max(1.0, abs(a[k])), k


def test_needle_axis_option_and_base():
    m = pose_from_tip_axis((1, 2, 3), [0, 1, 0])
    assert np.allclose(needle_base(m), np.array([1, 2, 3]) - 300 * np.array([0, 1, 0]))
    assert parse_axis("-x") == (-1.0, 0.0, 0.0) and parse_axis("Z") == (0.0, 0.0, 1.0)
    with pytest.raises(ValueError):
        parse_axis("+w")
    # the same motion described with the needle along the tip frame's -X axis
    t, mz = frames()
    flip = np.eye(4)
    flip[:3, :3] = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]  # tip-frame -X becomes the old +Z
    mx = mz @ flip
    assert np.allclose(mx[:, :3, :3] @ [-1, 0, 0], mz[:, :3, 2])
    a = perk_core_metrics(t, mz, BODY)
    b = perk_core_metrics(t, mx, BODY, axis="-X")
    for k in CORE_KEYS:
        assert a[k] == pytest.approx(b[k], abs=1e-9)


def test_one_millisecond_rule_for_several_transforms():
    master = np.array([0.0, 1.0, 2.0, 3.0])
    times = np.array([0.0004, 0.9995, 1.5, 2.5])
    vals = np.arange(4)
    # within 1 ms: that sample; otherwise the latest earlier one
    assert sample_sequence_at(master, times, vals).tolist() == [0, 1, 2, 3]
    assert sample_sequence_at(np.array([2.0008]), times, vals).tolist() == [2]
    assert sample_sequence_at(np.array([2.4995]), times, vals).tolist() == [3]  # next one within 1 ms
    # before the first sample: clamped to it
    assert sample_sequence_at(np.array([-5.0]), np.array([0.5, 1.0]), np.array([7, 8])).tolist() == [7]


def test_recording_samples_follow_the_millisecond_rule():
    buf = SampleBuffer()
    eye = np.eye(4)
    moved = np.eye(4)
    moved[:3, 3] = [1, 2, 3]
    assert buf.append(1.0, eye) == 0
    assert buf.append(1.0004, moved) == 0  # same millisecond: replaces
    assert buf.append(1.0016, eye) == 1
    assert len(buf) == 2 and np.allclose(buf.needle_tip_to_world[0], moved)
    assert buf.time_s.tolist() == [1.0, 1.002]


def test_accumulator_reset_and_targets():
    acc = PerkAccumulator(BODY)
    t, m = frames()
    for ti, mi in zip(t, m):
        acc.add(ti, mi)
    assert acc.tissue_punctures == 1
    acc.reset()
    assert acc.values() == dict.fromkeys(CORE_KEYS, 0.0) | {"tissue_punctures": 0}
    nerve = TargetGeometry("n", "nerve", "polyline", np.array([[0, 0, 0], [10, 0, 0]], float), radius_mm=1.0)
    assert nerve.distance([[5, 3, 0]])[0] == pytest.approx(2.0)
    pts, r = nerve.coverage_samples()
    assert len(pts) == 11 and r == 1.0
    ball = TargetGeometry("b", "ball", "sphere", np.array([[0, 0, 0]], float), radius_mm=3.0)
    assert ball.distance([[0, 0, 5], [1, 0, 0]]).tolist() == [2.0, 0.0]
    assert len(ball.coverage_samples()[0]) > 10


def test_only_somatic_nerve_targets_give_paraesthesia():
    from simulator.core.metrics import TargetGeometry

    line = np.array([[0.0, 0, 0], [0, 0, 10]])
    intercostal = TargetGeometry(id="intercostal_left_10", name="intercostal nerve", kind="polyline", points_mm=line)
    chain = TargetGeometry(id="chain_left", name="lumbar sympathetic chain", kind="polyline", points_mm=line)
    forced = TargetGeometry(id="chain_left", name="sympathetic chain", kind="polyline", points_mm=line, somatic=True)
    point = TargetGeometry(id="celiac", name="celiac plexus", kind="point", points_mm=line[:1])
    assert intercostal.is_nerve and not chain.is_nerve and forced.is_nerve and not point.is_nerve
    assert TargetGeometry(**{**intercostal.to_json(), "points_mm": line}).to_json() == intercostal.to_json()
