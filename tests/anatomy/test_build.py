"""build_anatomy on a synthetic CT with known geometry (see synthetic.py)."""
from __future__ import annotations

import numpy as np
import pytest

from simulator.anatomy.build import build_anatomy
from simulator.core.anatomy import Anatomy
from simulator.core.tissue import Tissue

from tests.anatomy import synthetic as syn


@pytest.fixture(scope="module")
def built() -> Anatomy:
    d = syn.make_synthetic()
    calls = []
    a = build_anatomy("synthetic", d["hu"], d["labels"], d["spacing"], d["origin"], d["names"], {"kind": "test"},
                      progress=lambda f, m: calls.append((f, m)), contrast_enhanced=True)
    a.source["_progress_calls"] = calls
    return a


def analytic_volumes() -> dict[str, float]:
    lo, hi = syn.VERTEBRA_BOX
    (_, r_cord), (_, r_aorta) = syn.CORD, syn.AORTA
    z_len = syn.SHAPE[2] * syn.SPACING[2]  # cylinders run through the whole scan
    return {
        "vertebrae_L1": float(np.prod(np.subtract(hi, lo))),
        "spinal_cord": np.pi * r_cord ** 2 * z_len,
        "aorta": np.pi * r_aorta ** 2 * z_len,
        "kidney_left": 4.0 / 3.0 * np.pi * syn.KIDNEY[1] ** 3,
        "mystery_blob": 4.0 / 3.0 * np.pi * syn.BLOB[1] ** 3,
    }


def tissue_name(a: Anatomy, p) -> str:
    return Tissue(int(a.tissue_at(np.array([p], dtype=float))[0])).name


def test_voxel_volumes_match_analytic(built):
    voxel = float(np.prod(built.spacing_mm))
    for name, vol in analytic_volumes().items():
        s = built.structure_by_name(name)
        assert s is not None, name
        assert s.voxels * voxel == pytest.approx(vol, rel=0.03), name
    # the box has its faces between voxel centres: exact
    assert built.structure_by_name("vertebrae_L1").voxels * voxel == pytest.approx(analytic_volumes()["vertebrae_L1"])


def test_meshes_closed_outward_and_of_the_right_volume(built):
    for name, vol in analytic_volumes().items():
        m = built.meshes[name]
        assert m.is_watertight(), name
        assert m.signed_volume_mm3() > 0, name
        assert m.signed_volume_mm3() == pytest.approx(vol, rel=0.06), name
    skin = built.meshes["skin"]
    assert skin.is_watertight() and skin.signed_volume_mm3() > 0
    a, b = syn.BODY_AXES
    body_volume = np.pi * a * b * syn.SHAPE[2] * syn.SPACING[2]
    assert skin.signed_volume_mm3() == pytest.approx(body_volume, rel=0.05)
    for name, m in built.meshes.items():
        assert m.is_watertight() and m.signed_volume_mm3() > 0, name


def test_mesh_surfaces_lie_on_the_analytic_surfaces(built):
    (kx, ky, kz), r = syn.KIDNEY
    v = built.meshes["kidney_left"].vertices.astype(float)
    d = np.linalg.norm(v - [kx, ky, kz], axis=1)
    assert np.all(np.abs(d - r) < 2.0)  # within a z voxel (2 mm)
    assert np.mean(d) == pytest.approx(r, abs=0.6)
    (ax, ay), ra = syn.AORTA
    v = built.meshes["aorta"].vertices.astype(float)
    side = (v[:, 2] > v[:, 2].min() + 3) & (v[:, 2] < v[:, 2].max() - 3)
    assert np.mean(np.hypot(v[side, 0] - ax, v[side, 1] - ay)) == pytest.approx(ra, abs=0.5)


def test_structure_classes_and_unknown_names_kept(built):
    s = {st.name: st for st in built.structures.values()}
    assert s["vertebrae_L1"].tissue == Tissue.CANCELLOUS_BONE and s["vertebrae_L1"].group == "spine"
    assert s["aorta"].tissue == Tissue.ARTERY
    assert s["kidney_left"].tissue == Tissue.KIDNEY
    assert s["spinal_cord"].tissue == Tissue.SPINAL_CORD
    assert s["mystery_blob"].tissue == Tissue.SOFT_TISSUE and s["mystery_blob"].known is False
    assert built.unknown_structures == ["mystery_blob"]
    assert "mystery_blob" in built.meshes
    assert all(st.known for n, st in s.items() if n != "mystery_blob")


def test_bone_is_a_cortical_shell_around_cancellous_bone(built):
    lo, hi = syn.VERTEBRA_BOX
    centre = [0.0, -16.0, 0.0]
    assert tissue_name(built, centre) == "CANCELLOUS_BONE"
    assert tissue_name(built, [0.0, hi[1] - 0.5, 0.0]) == "CORTICAL_BONE"  # anterior face
    assert tissue_name(built, [lo[0] + 0.5, -16.0, 0.0]) == "CORTICAL_BONE"  # lateral face
    assert tissue_name(built, [0.0, -16.0, lo[2] + 1.0]) == "CORTICAL_BONE"  # lower end plate
    assert tissue_name(built, [lo[0] + 2.5, -16.0, 0.0]) == "CANCELLOUS_BONE"  # 3 mm inside
    bone = built.labels == built.structure_by_name("vertebrae_L1").id
    cortical = bone & (built.tissue == Tissue.CORTICAL_BONE)
    assert 0.15 < cortical.sum() / bone.sum() < 0.45


def test_unlabelled_voxels_by_hu_skin_and_gas(built):
    (gx, gy, gz), _ = syn.GAS
    assert tissue_name(built, [gx, gy, gz]) == "AIR"  # bowel gas inside the body
    assert tissue_name(built, [30.0, 0.0, 0.0]) == "MUSCLE"  # 40 HU unlabelled
    assert tissue_name(built, [0.0, 40.0, 0.0]) == "FAT"  # subcutaneous fat rim
    assert tissue_name(built, [0.0, 44.0, 0.0]) == "SKIN"  # within 2 mm of the outline
    assert tissue_name(built, [0.0, 41.0, 0.0]) == "FAT"
    assert tissue_name(built, [0.0, 48.0, 0.0]) == "AIR"  # outside the body
    # the scan's end slices are cuts, not skin
    assert tissue_name(built, [30.0, 0.0, float(syn.ORIGIN[2])]) == "MUSCLE"


def test_table_removed_and_grid_cropped(built):
    (tx0, ty0), (tx1, ty1) = syn.TABLE
    table_pts = np.array([[x, 0.5 * (ty0 + ty1), 0.0] for x in (-40.0, 0.0, 40.0)])
    assert np.all(built.tissue_at(table_pts) == Tissue.AIR)
    assert np.all(built.hu_at(table_pts) == -1000)
    lo, hi = built.bounds_mm()
    assert lo[1] > ty1  # the grid no longer reaches the table
    assert lo[1] < -syn.BODY_AXES[1] and hi[1] > syn.BODY_AXES[1]
    assert built.shape[0] < syn.SHAPE[0] and built.shape[1] < syn.SHAPE[1]


def test_spinal_canal_surrounds_the_cord_and_stays_out_of_bone(built):
    canal = built.structure_by_name("spinal_canal")
    assert canal is not None and canal.tissue == Tissue.CSF
    assert canal.id not in (1, 2, 3, 4, 5)
    (cx, cy), r = syn.CORD
    assert tissue_name(built, [cx, cy - r - 1.5, 0.0]) == "CSF"
    assert tissue_name(built, [cx + r + 1.5, cy, 0.0]) == "CSF"
    assert tissue_name(built, [cx + r + 6.0, cy, 0.0]) != "CSF"
    m = built.labels == canal.id
    assert not np.any(m & (built.labels == built.structure_by_name("vertebrae_L1").id))
    pts = built.origin_mm + np.argwhere(m) * built.spacing_mm
    dist = np.hypot(pts[:, 0] - cx, pts[:, 1] - cy)
    assert dist.min() > r - 0.5 and dist.max() <= r + 3.5 + 1.0
    # its mesh is the dural sac's outline: it encloses the cord
    sac = built.meshes["spinal_canal"].signed_volume_mm3()
    assert sac > built.meshes["spinal_cord"].signed_volume_mm3() * 2


def test_contrast_taken_out_of_the_vessels(built):
    assert built.contrast_enhanced is True
    aorta = built.labels == built.structure_by_name("aorta").id
    vals = built.hu[aorta].astype(float)
    assert abs(np.median(vals) - 40.0) < 10.0
    assert vals.max() <= 100
    assert np.std(vals) > 1.0  # texture kept, not a flat fill
    # other structures untouched
    kid = built.labels == built.structure_by_name("kidney_left").id
    assert np.all(built.hu[kid] == 35)


def test_progress_reported(built):
    calls = built.source["_progress_calls"]
    fractions = [f for f, _ in calls]
    assert len(calls) > 10 and fractions[-1] == 1.0
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert any("mesh" in m for _, m in calls)


def test_without_contrast_hu_is_unchanged():
    d = syn.make_synthetic()
    a = build_anatomy("plain", d["hu"], d["labels"], d["spacing"], d["origin"], {1: "aorta"}, {},
                      contrast_enhanced=False)
    assert a.contrast_enhanced is False
    aorta = a.labels == a.structure_by_name("aorta").id
    assert np.median(a.hu[aorta]) > 250
    # ids absent from the table are kept under a generated name and reported
    assert {"label_2", "label_3", "label_4", "label_5"} <= set(a.unknown_structures)


def test_save_and_load_round_trip(built, tmp_path):
    built.save(tmp_path / "a")
    b = Anatomy.load(tmp_path / "a")
    assert np.array_equal(b.tissue, built.tissue) and np.array_equal(b.hu, built.hu)
    assert set(b.meshes) == set(built.meshes)
    assert b.unknown_structures == ["mystery_blob"]
    assert b.structure_by_name("mystery_blob").known is False


def test_the_contrast_rim_outside_a_vessel_label_is_the_vessel_not_bone():
    """A label map drawn a voxel inside the lumen (as segmentations are) leaves a rim of contrast
    (300 HU) unlabelled; by its CT number alone it would be bone round the aorta. The build gives
    it to the aorta (artery, iodine taken out), keeps a calcified plaque (900 HU) in it as bone and
    counts the aorta's voxels after."""
    from scipy import ndimage as ndi

    d = syn.make_synthetic()
    aorta = d["labels"] == 3
    inner = ndi.binary_erosion(aorta, structure=np.ones((3, 3, 1), bool))
    rim = aorta & ~inner
    d["labels"][rim] = 0
    plaque = tuple(np.argwhere(rim)[len(np.argwhere(rim)) // 2])
    d["hu"][plaque] = 900.0
    a = build_anatomy("rim", d["hu"], d["labels"], d["spacing"], d["origin"], d["names"], {"kind": "test"},
                      contrast_enhanced=True)
    aid = a.structure_by_name("aorta").id

    def at(idx):  # the built (cropped) grid's index of an input voxel
        world = np.asarray(d["origin"]) + np.asarray(idx) * np.asarray(d["spacing"])
        return tuple(np.rint((world - a.origin_mm) / a.spacing_mm).astype(int).T)

    given = np.argwhere(rim)
    given = given[np.any(given != np.asarray(plaque), axis=1)]
    assert np.all(a.labels[at(given)] == aid) and np.all(a.tissue[at(given)] == int(Tissue.ARTERY))
    assert a.hu[at(given)].max() <= 100  # the iodine taken out of the rim too
    p = at(np.asarray(plaque))
    assert a.labels[p] == 0 and a.tissue[p] in (int(Tissue.CORTICAL_BONE), int(Tissue.CANCELLOUS_BONE))
    assert a.structure_by_name("aorta").voxels == int((a.labels == aid).sum())
    # nothing beyond the rim: the fat and muscle around the aorta keep their own classes
    assert (a.labels == aid).sum() == aorta.sum() - 1
