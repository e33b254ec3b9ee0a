"""Geometry with known answers: distances, areas, inside tests, segment hits, swept areas, STL."""
import math

import numpy as np
import pytest

from simulator.core.anatomy import TriMesh
from simulator.core.geometry import (
    angle_between_deg,
    angles_from_direction,
    direction_from_angles,
    frame_from_axis,
    heron_area,
    invert_pose,
    is_rigid,
    point_polyline_distance,
    point_segment_distance,
    pose_from_tip_axis,
    rotation_about_axis,
    rotation_between,
    sphere_distance,
    triangle_area,
    tube_distance,
)
from simulator.core.mesh_locator import MeshLocator
from simulator.core.meshes import MeshFileError, box_mesh, icosphere, read_stl, subdivided_box_mesh, write_stl
from simulator.core.metrics import PerkAccumulator, perk_core_metrics


def test_point_segment_distance_known_values():
    a, b = np.array([0.0, 0, 0]), np.array([10.0, 0, 0])
    pts = np.array([[5, 3, 4], [-3, 4, 0], [13, 0, 4], [0, 0, 0]], dtype=float)
    assert np.allclose(point_segment_distance(pts, a, b), [5.0, 5.0, 5.0, 0.0])
    # degenerate segment: distance to the point
    assert np.allclose(point_segment_distance([[3, 4, 0]], a, a), [5.0])


def test_polyline_tube_and_sphere_distances():
    line = np.array([[0, 0, 0], [10, 0, 0], [10, 10, 0]], dtype=float)
    pts = np.array([[5, 2, 0], [12, 5, 0], [10, 13, 0], [20, 0, 0]], dtype=float)
    assert np.allclose(point_polyline_distance(pts, line), [2.0, 2.0, 3.0, math.hypot(10, 0)])
    # a nerve of radius 1.5: 0 inside, surface distance outside
    assert np.allclose(tube_distance(pts, line, 1.5), [0.5, 0.5, 1.5, 8.5])
    assert tube_distance([[5, 1, 0]], line, 1.5)[0] == 0.0
    assert np.allclose(sphere_distance([[0, 0, 7], [0, 1, 0]], [0, 0, 0], 5.0), [2.0, 0.0])


def test_heron_matches_cross_product_and_degenerate_is_zero():
    rng = np.random.default_rng(3)
    p, q, r = rng.normal(size=(3, 50, 3)) * 20
    assert np.allclose(heron_area(p, q, r), triangle_area(p, q, r), rtol=1e-9, atol=1e-9)
    # 3-4-5 right triangle
    assert heron_area([0, 0, 0], [3, 0, 0], [0, 4, 0]) == pytest.approx(6.0)
    # collinear points: zero, never NaN
    col = heron_area([0, 0, 0], [1e-3, 1e-3, 1e-3], [7.3, 7.3, 7.3])
    assert col == pytest.approx(0.0, abs=1e-6) and np.isfinite(col)


def test_poses_and_angles():
    d = direction_from_angles(90.0, 0.0)
    assert np.allclose(d, [0, 1, 0])
    assert np.allclose(angles_from_direction(direction_from_angles(30.0, -15.0)), (30.0, -15.0))
    f = frame_from_axis([0.3, 0.9, 0.1], roll_deg=20)
    assert np.allclose(f.T @ f, np.eye(3)) and np.linalg.det(f) == pytest.approx(1.0)
    assert np.allclose(f[:, 2], np.array([0.3, 0.9, 0.1]) / np.linalg.norm([0.3, 0.9, 0.1]))
    m = pose_from_tip_axis([1, 2, 3], [0, 0, -1])
    assert is_rigid(m) and np.allclose(invert_pose(m) @ m, np.eye(4))
    r = rotation_between([1, 0, 0], [0, 1, 0])
    assert np.allclose(r @ [1, 0, 0], [0, 1, 0])
    assert np.allclose(rotation_between([1, 0, 0], [-1, 0, 0]) @ [1, 0, 0], [-1, 0, 0])
    assert angle_between_deg([1, 0, 0], rotation_about_axis([0, 0, 1], 37.0) @ [1, 0, 0]) == pytest.approx(37.0)
    assert angle_between_deg([1, 0, 0], [1, 1e-9, 0]) == pytest.approx(math.degrees(1e-9), rel=1e-6)


def test_inside_a_cube_including_grid_points_on_face_edge_and_vertex_lines():
    box = box_mesh((0, 0, 0), (10, 10, 10))
    assert box.is_watertight() and box.signed_volume_mm3() == pytest.approx(1000.0)
    loc = MeshLocator(box.vertices, box.faces)
    g = np.stack(np.meshgrid(*[np.arange(-1.0, 11.5, 0.5)] * 3, indexing="ij"), -1).reshape(-1, 3)
    on_surface = np.any((g == 0) | (g == 10), axis=1) & np.all((g >= 0) & (g <= 10), axis=1)
    expected = np.all((g > 0) & (g < 10), axis=1)
    got = loc.contains(g)
    # vertical rays through the cube's edges and corners (x or y on 0/10) must still count once
    assert np.array_equal(got[~on_surface], expected[~on_surface])
    # a finer, subdivided cube whose triangle edges meet the query grid everywhere
    sb = subdivided_box_mesh((0, 0, 0), (10, 10, 10), 5)
    assert sb.is_watertight() and sb.signed_volume_mm3() == pytest.approx(1000.0)
    got2 = MeshLocator(sb.vertices, sb.faces, cell_mm=1.3).contains(g)
    assert np.array_equal(got2[~on_surface], expected[~on_surface])


def test_inside_a_sphere_mesh():
    mesh = icosphere((1, 2, 3), 40.0, 3)
    assert mesh.is_watertight() and mesh.signed_volume_mm3() > 0
    loc = MeshLocator(mesh.vertices, mesh.faces)
    rng = np.random.default_rng(0)
    pts = rng.uniform(-50, 50, (20000, 3)) + [1, 2, 3]
    r = np.linalg.norm(pts - [1, 2, 3], axis=1)
    ins = loc.contains(pts)
    # the polyhedron lies between the inscribed and the circumscribed sphere
    r_in = 40.0 * math.cos(math.radians(6.0))
    assert not np.any(ins & (r > 40.0))
    assert np.all(ins[r < r_in])
    # orientation does not matter (ray parity): flip every face
    flipped = MeshLocator(mesh.vertices, mesh.faces[:, ::-1])
    assert np.array_equal(flipped.contains(pts), ins)


def test_one_point_inside_test_equals_the_vectorised_one_on_and_near_the_surface():
    """`contains_point` (plain floats, the live samples) answers as `contains` does, including
    points on vertices, on edges and a hair off the surface, where the rounding decides."""
    mesh = icosphere((1.5, -2.0, 0.5), 40.0, 4)
    loc = MeshLocator(mesh.vertices, mesh.faces)
    v, f = mesh.vertices, mesh.faces
    rng = np.random.default_rng(7)
    pts = np.concatenate([v[rng.integers(0, len(v), 600)] + rng.normal(scale=0.3, size=(600, 3)),
                          v[:300], 0.5 * (v[f[:300, 0]] + v[f[:300, 1]]),
                          (v[f[:300, 0]] + v[f[:300, 1]] + v[f[:300, 2]]) / 3.0 * (1 + 1e-12)])
    cells = np.minimum(np.floor((pts - loc.lo) / loc.cell).astype(int), loc.dims - 1)
    near = loc._cell_state[(cells[:, 0] * loc.dims[1] + cells[:, 1]) * loc.dims[2] + cells[:, 2]] < 0
    assert near.mean() > 0.9  # the exact path is what is compared
    got = np.array([loc.contains_point(p) for p in pts])
    assert np.array_equal(got, loc.contains(pts))
    assert 0.2 < got.mean() < 0.8


def test_segment_hits_cube_face_exactly_and_match_brute_force():
    box = box_mesh((0, 0, 0), (10, 10, 10))
    loc = MeshLocator(box.vertices, box.faces)
    hit, frac, pt = loc.first_intersection([[5, 5, 5], [5, 5, 5], [20, 5, 5]], [[5, 5, -295], [5, -5, 5], [30, 5, 5]])
    assert hit.tolist() == [True, True, False]
    assert np.allclose(pt[0], [5, 5, 0]) and frac[0] == pytest.approx(5 / 300)
    assert np.allclose(pt[1], [5, 0, 5])
    assert np.isnan(pt[2]).all() and np.isinf(frac[2])
    # random segments from inside a sphere: the grid walk finds the same first hit as brute force
    mesh = icosphere((0, 0, 0), 30.0, 3)
    loc = MeshLocator(mesh.vertices, mesh.faces)
    rng = np.random.default_rng(1)
    a = rng.uniform(-20, 20, (400, 3))
    a = a[np.linalg.norm(a, axis=1) < 28][:300]
    d = rng.normal(size=(len(a), 3))
    b = a - 300 * d / np.linalg.norm(d, axis=1, keepdims=True)
    h1, f1, p1 = loc.first_intersection(a, b)
    h2, f2, p2 = loc.first_intersection_brute(a, b)
    assert h1.all() and np.array_equal(h1, h2)
    assert np.allclose(p1, p2, atol=1e-9)
    # from outside through the sphere: the near side is the first hit
    h, f, p = loc.first_intersection([[0, 0, -100]], [[0, 0, 100]])
    assert h[0] and p[0, 2] < -29


def test_swept_area_of_a_needle_pivoting_about_the_skin_entry():
    """A needle pivoting about its skin entry by theta, tip at depth d, in n equal steps: Perk
    Tutor's triangles sum to n * d^2 / 2 * sin(theta / n) (the sector theta d^2 / 2 in the limit)."""
    # skin: the top face (z = 0) of a big box; the body is z < 0
    box = box_mesh((-500, -500, -400), (500, 500, 0))
    loc = MeshLocator(box.vertices, box.faces)
    d, theta, n = 80.0, math.radians(30.0), 30
    entry = np.array([0.0, 0.0, 0.0])
    times, mats = [], []
    for i in range(n + 1):
        a = theta * i / n
        axis = np.array([math.sin(a), 0.0, -math.cos(a)])  # into the body, turning towards +x
        mats.append(pose_from_tip_axis(entry + d * axis, axis))
        times.append(0.1 * i)
    out = perk_core_metrics(times, np.array(mats), loc)
    expected = n * d * d / 2 * math.sin(theta / n)
    assert out["tissue_damage_mm2"] == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(theta * d * d / 2, rel=1e-3)
    # the tip moves on the arc: path length is n chords
    assert out["path_length_mm"] == pytest.approx(n * 2 * d * math.sin(theta / (2 * n)), rel=1e-12)
    acc = PerkAccumulator(loc)
    for t, m in zip(times, mats):
        acc.add(t, m)
    assert acc.tissue_damage_mm2 == pytest.approx(out["tissue_damage_mm2"], rel=1e-12)
    # pure insertion along a fixed line sweeps nothing
    mats2 = [pose_from_tip_axis([0, 0, -z], [0, 0, -1]) for z in np.linspace(5, 60, 12)]
    assert perk_core_metrics(np.arange(12.0), np.array(mats2), loc)["tissue_damage_mm2"] == pytest.approx(0.0, abs=1e-9)


def test_stl_round_trip_binary_and_ascii(tmp_path):
    mesh = icosphere((5, -3, 2), 12.0, 2)
    for binary in (True, False):
        f = tmp_path / f"s_{binary}.stl"
        write_stl(f, mesh, binary=binary)
        back = read_stl(f)
        assert back.n_triangles == mesh.n_triangles and back.is_watertight()
        assert back.signed_volume_mm3() == pytest.approx(mesh.signed_volume_mm3(), rel=1e-5)


def test_malformed_stl_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.stl"
    bad.write_text("solid x\n facet normal 0 0 1\n  outer loop\n   vertex 0 0 zero\n")
    with pytest.raises(MeshFileError) as e:
        read_stl(bad)
    assert "bad.stl:4" in str(e.value)
    junk = tmp_path / "junk.stl"
    junk.write_bytes(b"\x00\x01\x02" * 40)
    with pytest.raises(MeshFileError) as e:
        read_stl(junk)
    assert "junk.stl" in str(e.value)
    with pytest.raises(MeshFileError):
        read_stl(tmp_path / "missing.stl")


def test_locator_rejects_empty_mesh():
    with pytest.raises(ValueError):
        MeshLocator(np.zeros((0, 3)), np.zeros((0, 3), int))
    assert isinstance(box_mesh((0, 0, 0), (1, 1, 1)), TriMesh)
