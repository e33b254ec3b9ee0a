"""import-anatomy: per-structure folder, multi-label file with v2 / CSV tables, NRRD, errors."""
from __future__ import annotations

import nibabel as nib
import nrrd
import numpy as np
import pytest

from simulator.anatomy import AnatomyNotFound, load_anatomy
from simulator.anatomy.importer import ImportError_, import_anatomy, read_label_csv
from simulator.anatomy.label_tables import V1, V2
from simulator.core.tissue import Tissue

from tests.anatomy import synthetic as syn

V2_IDS = {name: i for i, name in V2.items()}


@pytest.fixture()
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROLYSIS_DATA", str(tmp_path / "data"))
    return tmp_path


@pytest.fixture(scope="module")
def volumes():
    return syn.make_synthetic()


def save_nifti(arr, path, las=True):
    if las:
        data, aff = syn.las_version(arr)
    else:
        data, aff = arr, syn.ras_affine()
    nib.save(nib.Nifti1Image(data, aff), str(path))
    return path


def write_mask_folder(volumes, folder, las=True):
    folder.mkdir()
    for sid, name in volumes["names"].items():
        save_nifti((volumes["labels"] == sid).astype(np.uint8), folder / f"{name}.nii.gz", las)
    # TotalSegmentator writes every class; absent ones are empty masks
    save_nifti(np.zeros(syn.SHAPE, np.uint8), folder / "liver.nii.gz", las)
    return folder


def v2_multilabel(volumes):
    """The synthetic label map renumbered with TotalSegmentator v2 ids (mystery_blob -> 200)."""
    out = np.zeros(syn.SHAPE, np.uint16)
    for sid, name in volumes["names"].items():
        out[volumes["labels"] == sid] = V2_IDS.get(name, 200)
    return out


def check_anatomy(a):
    assert a.structure_by_name("vertebrae_L1").tissue == Tissue.CANCELLOUS_BONE
    assert a.structure_by_name("aorta").tissue == Tissue.ARTERY
    # world positions survive the LAS -> RAS reorientation
    (kx, ky, kz), r = syn.KIDNEY
    assert a.structure_at([kx, ky, kz]).name == "kidney_left"
    assert a.structure_at([kx + r - 2, ky, kz]).name == "kidney_left"
    assert a.structure_at([kx + r + 2, ky, kz]) is None
    (ax, ay), _ = syn.AORTA
    assert a.structure_at([ax, ay, 0.0]).name == "aorta"
    assert a.contrast_enhanced is True  # the synthetic aorta is at ~300 HU
    assert a.structure_by_name("spinal_canal") is not None
    assert all(m.is_watertight() for m in a.meshes.values())


def test_import_per_structure_folder(data_dir, volumes):
    ct = save_nifti(volumes["hu"], data_dir / "ct.nii.gz")
    masks = write_mask_folder(volumes, data_dir / "seg")
    report = import_anatomy(ct, masks, name="pat1")
    assert "mystery_blob" in report and "unknown structures kept" in report
    assert "liver" in report  # the empty mask is reported as skipped
    assert "user:pat1" in report and str(data_dir / "data" / "anatomies" / "pat1") in report
    a = load_anatomy("user:pat1")
    check_anatomy(a)
    assert a.unknown_structures == ["mystery_blob"]
    assert a.structure_by_name("liver") is None
    assert a.structure_by_name("aorta").id == V2_IDS["aorta"]  # folder masks get the familiar v2 ids
    # same inputs again: nothing to do
    again = import_anatomy(ct, masks, name="pat1")
    assert "already imported" in again


def test_import_multilabel_with_v2_table(data_dir, volumes):
    ct = save_nifti(volumes["hu"], data_dir / "ct.nii.gz")
    seg = save_nifti(v2_multilabel(volumes), data_dir / "seg.nii.gz")
    report = import_anatomy(ct, seg, label_table="v2", name="pat2")
    assert "label_200" in report  # value missing from the table: kept and reported
    a = load_anatomy("user:pat2")
    check_anatomy(a)
    assert "label_200" in a.unknown_structures


def test_import_multilabel_with_csv_table(data_dir, volumes):
    ct = save_nifti(volumes["hu"], data_dir / "ct.nii.gz")
    seg = save_nifti(volumes["labels"], data_dir / "seg.nii.gz")
    table = data_dir / "table.csv"
    table.write_text("id,name\n" + "".join(f"{i},{n}\n" for i, n in volumes["names"].items()))
    import_anatomy(ct, seg, label_table=str(table), name="pat3")
    a = load_anatomy("user:pat3")
    check_anatomy(a)
    assert a.unknown_structures == ["mystery_blob"]
    # a CSV without header reads the same
    bare = data_dir / "bare.csv"
    bare.write_text("".join(f"{i}, {n}\n" for i, n in volumes["names"].items()))
    assert read_label_csv(bare) == volumes["names"]


def test_import_nrrd_lps(data_dir, volumes):
    """NRRD in LPS space (as 3D Slicer writes it) lands at the same RAS positions."""
    lps = {"space": "left-posterior-superior",
           "space directions": np.diag([-syn.SPACING[0], -syn.SPACING[1], syn.SPACING[2]]),
           "space origin": np.array([-syn.ORIGIN[0], -syn.ORIGIN[1], syn.ORIGIN[2]])}
    ct = data_dir / "ct.nrrd"
    nrrd.write(str(ct), volumes["hu"], dict(lps), index_order="F")
    seg = data_dir / "seg.nrrd"
    nrrd.write(str(seg), volumes["labels"].astype(np.uint8), dict(lps), index_order="F")
    table = data_dir / "t.csv"
    table.write_text("".join(f"{i},{n}\n" for i, n in volumes["names"].items()))
    import_anatomy(ct, seg, label_table=str(table), name="pat4")
    check_anatomy(load_anatomy("user:pat4"))


def test_errors_name_the_file(data_dir, volumes):
    ct = save_nifti(volumes["hu"], data_dir / "ct.nii.gz")
    small = save_nifti(volumes["labels"][:, :, :20], data_dir / "small.nii.gz", las=False)
    with pytest.raises(ImportError_) as e:
        import_anatomy(ct, small, label_table="v2", name="bad")
    msg = str(e.value)
    assert "small.nii.gz" in msg and "ct.nii.gz" in msg and "(120, 120, 20)" in msg and "(120, 120, 40)" in msg

    shifted = data_dir / "shifted.nii.gz"
    aff = syn.ras_affine()
    aff[2, 3] += 10.0
    nib.save(nib.Nifti1Image(volumes["labels"], aff), str(shifted))
    with pytest.raises(ImportError_, match="shifted.nii.gz.*voxel-to-world"):
        import_anatomy(ct, shifted, label_table="v2", name="bad")

    seg = save_nifti(volumes["labels"], data_dir / "seg.nii.gz")
    with pytest.raises(ImportError_, match="'v3'"):
        import_anatomy(ct, seg, label_table="v3", name="bad")
    with pytest.raises(ImportError_, match="seg.nii.gz.*--label-table"):
        import_anatomy(ct, seg, name="bad")
    with pytest.raises(ImportError_, match="missing_ct.nii.gz"):
        import_anatomy(data_dir / "missing_ct.nii.gz", seg, label_table="v2", name="bad")
    with pytest.raises(ImportError_, match="nowhere"):
        import_anatomy(ct, data_dir / "nowhere", name="bad")
    broken = data_dir / "broken.csv"
    broken.write_text("id,name\n1,aorta\nseven,kidney_left\n")
    with pytest.raises(ImportError_, match=r"broken.csv: line 3: field 'id' is 'seven'"):
        import_anatomy(ct, seg, label_table=str(broken), name="bad")
    junk = data_dir / "junk.nii.gz"
    junk.write_bytes(b"not a nifti at all")
    with pytest.raises(ImportError_, match="junk.nii.gz"):
        import_anatomy(junk, seg, label_table="v2", name="bad")
    with pytest.raises(ImportError_, match="--name"):
        import_anatomy(ct, seg, label_table="v2", name="../escape")
    assert not (data_dir / "data" / "anatomies" / "bad").exists()


def test_load_user_anatomy_not_imported_says_how(data_dir):
    with pytest.raises(AnatomyNotFound, match="import-anatomy .*--name someone"):
        load_anatomy("user:someone")


def test_builtin_tables_match_totalsegmentator_ids():
    assert len(V2) == 117 and len(V1) == 104
    assert V2[31] == "vertebrae_L1" and V2[52] == "aorta" and V2[63] == "inferior_vena_cava"
    assert V2[79] == "spinal_cord" and V2[117] == "costal_cartilages"
    assert V1[7] == "aorta" and V1[22] == "vertebrae_L1" and V1[104] == "urinary_bladder"
