"""Analytic phantoms: exact geometry, committed assets, load_anatomy('phantom:...')."""
from __future__ import annotations


import numpy as np
import pytest

from simulator.anatomy import AnatomyNotFound, load_anatomy
from simulator.anatomy.phantoms import (PHANTOMS, VOXEL_MM, Box, CylinderZ, analytic_meshes, make_phantom,
                                        phantom_asset_files, read_phantom_meshes)
from simulator.core.tissue import TISSUE_INFO, Tissue


@pytest.fixture(scope="module", params=list(PHANTOMS))
def phantom(request):
    return request.param, make_phantom(request.param)


def test_voxel_counts_match_analytic_volumes(phantom):
    name, a = phantom
    spec = PHANTOMS[name]
    voxel = VOXEL_MM ** 3
    # paint order: a structure's voxels are its shape minus the later parts that overlap it
    later_overlap = {"muscle": ["nerve"], "gel": ["vessel", "nerve"]}
    for part in spec.parts:
        s = a.structure_by_name(part.structure)
        assert s is not None and s.tissue == part.tissue
        expected = part.shape.volume_mm3() - sum(spec.part(o).shape.volume_mm3()
                                                 for o in later_overlap.get(part.structure, []))
        got = s.voxels * voxel
        if isinstance(part.shape, CylinderZ) or part.structure in later_overlap:
            assert got == pytest.approx(expected, rel=0.04), part.structure
        else:
            assert got == pytest.approx(expected, abs=1e-6), part.structure  # box faces on voxel faces


def test_meshes_exact_closed_outward(phantom):
    name, a = phantom
    spec = PHANTOMS[name]
    assert set(a.meshes) == {"skin", *[p.structure for p in spec.parts if p.structure != "skin"]}
    for mesh_name, mesh in a.meshes.items():
        assert mesh.is_watertight(), mesh_name
        expected = spec.block.volume_mm3() if mesh_name == "skin" else spec.part(mesh_name).shape.volume_mm3()
        assert mesh.signed_volume_mm3() == pytest.approx(expected, rel=1e-5), mesh_name


def test_tissue_hu_and_outside_air(phantom):
    name, a = phantom
    spec = PHANTOMS[name]
    rng = np.random.default_rng(1)
    lo, hi = a.bounds_mm()
    pts = rng.uniform(lo + 0.3, hi - 0.3, size=(4000, 3))
    # away from any boundary by more than half a voxel diagonal, voxels agree with the exact shapes
    exact = spec.tissue_at(pts)
    shifted = [spec.tissue_at(pts + d) for d in np.array([[1, 1, 1], [-1, -1, -1], [1, -1, 0], [-1, 1, 0]]) * 0.45]
    clear = np.all([s == exact for s in shifted], axis=0)
    assert clear.sum() > 3000
    assert np.array_equal(a.tissue_at(pts[clear]), exact[clear])
    for t in np.unique(a.tissue):
        assert np.all(a.hu[a.tissue == t] == round(TISSUE_INFO[Tissue(int(t))].hu))
    assert a.tissue_at(np.array([[0.0, 2.0, 0.0]]))[0] == Tissue.AIR  # above the probe surface


def test_gel_block_geometry():
    a = make_phantom("gel_block")
    assert Tissue(a.tissue_at(np.array([[-8.0, -20.0, 0.0]]))[0]) == Tissue.ARTERY
    assert Tissue(a.tissue_at(np.array([[-8.0, -20.0 + 3.7, 10.0]]))[0]) == Tissue.ARTERY
    assert Tissue(a.tissue_at(np.array([[-8.0, -20.0 + 4.3, 10.0]]))[0]) == Tissue.GEL
    assert Tissue(a.tissue_at(np.array([[7.0, -20.0, -30.0]]))[0]) == Tissue.NERVE
    assert Tissue(a.tissue_at(np.array([[7.0 + 2.8, -20.0, 0.0]]))[0]) == Tissue.GEL
    assert Tissue(a.tissue_at(np.array([[0.0, -49.8, 0.0]]))[0]) == Tissue.GEL
    assert Tissue(a.tissue_at(np.array([[0.0, -50.3, 0.0]]))[0]) == Tissue.AIR
    assert a.structure_by_name("vessel").group == "vessels"


def test_layered_block_geometry():
    a = make_phantom("layered_block")
    depth = {-1.0: Tissue.SKIN, -5.0: Tissue.FAT, -20.0: Tissue.MUSCLE, -34.5: Tissue.CORTICAL_BONE,
             -30.0: Tissue.NERVE, -45.0: Tissue.MUSCLE}
    for y, t in depth.items():
        assert Tissue(a.tissue_at(np.array([[0.0, y, 0.0]]))[0]) == t, y
    assert Tissue(a.tissue_at(np.array([[35.0, -34.5, 0.0]]))[0]) == Tissue.MUSCLE  # beside the plate
    assert Tissue(a.tissue_at(np.array([[0.0, -34.5, 45.0]]))[0]) == Tissue.MUSCLE
    nerve = PHANTOMS["layered_block"].part("nerve").shape
    plate = PHANTOMS["layered_block"].part("bone_plate").shape
    assert isinstance(plate, Box) and nerve.center_xy_mm[1] - nerve.radius_mm == plate.hi_mm[1]  # on the plate


def test_committed_assets_match_the_generator():
    for name in PHANTOMS:
        for path, data in phantom_asset_files(name).items():
            assert path.exists(), f"{path} missing: run `python -m simulator.anatomy.phantoms`"
            assert path.read_bytes() == data, f"{path} differs from the generator: rerun it and commit"
        committed = read_phantom_meshes(name)
        for k, m in analytic_meshes(name).items():
            assert committed[k].is_watertight()
            assert committed[k].signed_volume_mm3() == pytest.approx(m.signed_volume_mm3(), rel=1e-6)


def test_load_anatomy_phantoms_and_errors():
    a = load_anatomy("phantom:gel_block")
    assert a.source["kind"] == "phantom" and a.name == "phantom:gel_block"
    with pytest.raises(AnatomyNotFound, match="phantom:layered_block"):
        load_anatomy("phantom:nope")
    with pytest.raises(AnatomyNotFound, match="bundled"):
        load_anatomy("somewhere")
