"""mask_to_mesh, mesh repair and STL I/O."""
from __future__ import annotations

import io

import numpy as np
import pytest

from simulator.anatomy.meshing import (clean_mesh, mask_to_mesh, orient_outward, repair_mesh,
                                       split_nonmanifold_vertices)
from simulator.anatomy.phantoms import box_mesh
from simulator.core.meshes import read_stl, write_stl
from simulator.core.anatomy import TriMesh


def ball(shape, spacing, centre_mm, r_mm, origin=(0.0, 0.0, 0.0)):
    axes = [origin[a] + spacing[a] * np.arange(shape[a]) for a in range(3)]
    X, Y, Z = np.meshgrid(*axes, indexing="ij")
    return (X - centre_mm[0]) ** 2 + (Y - centre_mm[1]) ** 2 + (Z - centre_mm[2]) ** 2 <= r_mm ** 2


@pytest.mark.parametrize("factor", [1, 2])
def test_sphere_mesh_closed_outward_and_accurate(factor):
    sp = np.array([0.7, 0.7, 1.5])
    m = ball((80, 80, 40), sp, (28.0, 28.0, 30.0), 20.0, origin=(0.0, 0.0, 0.0))
    mesh = mask_to_mesh(m, sp, (0.0, 0.0, 0.0), target_triangles=3000, inplane_factor=factor)
    assert mesh.is_watertight()
    vol = 4 / 3 * np.pi * 20.0 ** 3
    assert mesh.signed_volume_mm3() == pytest.approx(vol, rel=0.03)
    assert mesh.n_triangles <= 3000 * 1.6
    r = np.linalg.norm(mesh.vertices - np.array([28.0, 28.0, 30.0]), axis=1)
    assert np.mean(r) == pytest.approx(20.0, abs=0.5)


def test_separate_components_all_closed_and_a_mask_touching_the_grid_edge():
    sp = np.array([1.0, 1.0, 1.0])
    m = ball((40, 30, 30), sp, (10, 15, 15), 6) | ball((40, 30, 30), sp, (30, 15, 15), 6)
    m[:, :, 0] |= ball((40, 30, 30), sp, (20, 15, 0), 5)[:, :, 0]  # touches the k = 0 face
    mesh = mask_to_mesh(m, sp, (0, 0, 0), target_triangles=800)
    assert mesh.is_watertight() and mesh.signed_volume_mm3() > 0
    xs = mesh.vertices[:, 0]
    assert (xs < 17).any() and (xs > 23).any()
    assert mesh.vertices[:, 2].min() < 0.0  # closed half a voxel beyond the grid


def test_empty_mask_gives_empty_mesh():
    mesh = mask_to_mesh(np.zeros((5, 5, 5), bool), (1, 1, 1), (0, 0, 0), 100)
    assert mesh.n_triangles == 0


def test_orientation_flip_and_clean():
    box = box_mesh((0, 0, 0), (2, 3, 4))
    inward = TriMesh(box.vertices, box.faces[:, ::-1])
    assert inward.signed_volume_mm3() < 0
    assert orient_outward(inward).signed_volume_mm3() == pytest.approx(24.0)
    degenerate = TriMesh(np.vstack([box.vertices, [[9, 9, 9]]]), np.vstack([box.faces, [[0, 0, 1]]]))
    cleaned = clean_mesh(degenerate)
    assert cleaned.n_triangles == 12 and len(cleaned.vertices) == 8 and cleaned.is_watertight()


def test_repair_removes_two_sided_pocket_and_splits_touching_sheets():
    a = box_mesh((0, 0, 0), (1, 1, 1))
    pocket = TriMesh(a.vertices, np.vstack([a.faces, [[0, 1, 6], [0, 6, 1]]]))
    assert not pocket.is_watertight()
    fixed = repair_mesh(pocket)
    assert fixed is not None and fixed.is_watertight() and fixed.signed_volume_mm3() == pytest.approx(1.0)
    # two boxes sharing one corner vertex: closed, split into a proper manifold
    b = box_mesh((1, 1, 1), (2, 2, 2))
    va, vb = a.vertices, b.vertices
    shared = np.where(np.all(vb == [1, 1, 1], axis=1))[0][0]
    corner_a = np.where(np.all(va == [1, 1, 1], axis=1))[0][0]
    remap = np.arange(len(vb)) + len(va)
    remap[shared] = corner_a
    both = TriMesh(np.vstack([va, vb]), np.vstack([a.faces, remap[b.faces]]))
    split = split_nonmanifold_vertices(clean_mesh(both))
    assert split is not None and split.is_watertight() and len(split.vertices) == 16
    # a hole cannot be fixed
    assert repair_mesh(TriMesh(a.vertices, a.faces[1:])) is None


def test_stl_round_trip_keeps_topology(tmp_path):
    sp = np.array([1.0, 1.0, 1.0])
    mesh = mask_to_mesh(ball((20, 20, 20), sp, (10, 10, 10), 6), sp, (0, 0, 0), 400)
    path = tmp_path / "m.stl"
    write_stl(path, mesh)
    assert path.stat().st_size == 84 + 50 * mesh.n_triangles
    back = read_stl(path)
    assert back.is_watertight()
    assert back.signed_volume_mm3() == pytest.approx(mesh.signed_volume_mm3(), rel=1e-5)
    buf = io.BytesIO()
    write_stl(buf, mesh)
    assert buf.getvalue() == path.read_bytes()


def test_read_stl_rejects_truncated_file(tmp_path):
    p = tmp_path / "bad.stl"
    p.write_bytes(b"x" * 80 + (5).to_bytes(4, "little") + b"y" * 10)
    with pytest.raises(ValueError, match="bad.stl"):
        read_stl(p)


def test_helper_process_meshes_like_this_process():
    from simulator.anatomy.mesh_worker import run_jobs

    sp = np.array([1.0, 1.0, 1.0])
    jobs = [(f"ball{r}", ball((30, 30, 30), sp, (15, 15, 15), r), np.zeros(3), 300, 1) for r in (4, 6, 8, 10, 12)]
    seen = []
    here = run_jobs(jobs, sp, lambda f, m: seen.append(f), workers=1)
    both = run_jobs(jobs, sp, lambda f, m: seen.append(f), workers=2)
    assert set(here) == set(both) == {j[0] for j in jobs}
    for name in here:
        assert np.array_equal(here[name].faces, both[name].faces)
        assert np.allclose(here[name].vertices, both[name].vertices)
        assert both[name].is_watertight()
    assert seen[-1] == 1.0
