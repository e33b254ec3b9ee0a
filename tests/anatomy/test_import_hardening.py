"""import-anatomy never ends in a traceback: every failure is one line naming the file (unreadable
inputs, malformed NRRD fields, singular affines, a damaged saved anatomy, whatever a library raises),
and NIfTI / NRRD / DICOM files with mutated headers (hypothesis) give that error or a sound volume."""
from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.anatomy import AnatomyNotFound, load_anatomy
from simulator.anatomy import importer
from simulator.anatomy.dicom_io import read_dicom_series
from simulator.anatomy.importer import ImportError_, import_anatomy, read_inputs
from simulator.anatomy.volume_io import VolumeError

from tests.anatomy import synthetic as syn
from tests.anatomy.dicom_series import write_series
from tests.mutations import fuzz_settings, mutated_bytes, mutated_text, read_damaged

PART = (slice(36, 60), slice(40, 60), slice(14, 24))  # 24 x 20 x 10 voxels around the vertebra
PART_ORIGIN = syn.ORIGIN + syn.SPACING * np.array([s.start for s in PART])
FUZZ = fuzz_settings(30)


def part_affine() -> np.ndarray:
    aff = syn.ras_affine()
    aff[:3, 3] = PART_ORIGIN
    return aff


@pytest.fixture(scope="module")
def part():
    v = syn.make_synthetic()
    return v["hu"][PART], v["labels"][PART].astype(np.uint8)


@pytest.fixture(scope="module")
def files(part, tmp_path_factory):
    """The part as NIfTI (.nii, .nii.gz), NRRD (raw, LPS) and a DICOM series, with its label map."""
    hu, labels = part
    d = tmp_path_factory.mktemp("part")
    nib.save(nib.Nifti1Image(hu, part_affine()), str(d / "ct.nii"))
    nib.save(nib.Nifti1Image(hu, part_affine()), str(d / "ct.nii.gz"))
    nib.save(nib.Nifti1Image(labels, part_affine()), str(d / "seg.nii.gz"))
    lps = {"space": "left-posterior-superior", "encoding": "raw",
           "space directions": np.diag([-syn.SPACING[0], -syn.SPACING[1], syn.SPACING[2]]),
           "space origin": PART_ORIGIN * np.array([-1.0, -1.0, 1.0])}
    nrrd.write(str(d / "ct.nrrd"), hu, lps, index_order="F")
    write_series(d / "dicom", hu, origin=PART_ORIGIN)
    return d


def test_the_part_reads(files, part):
    for ct in ("ct.nii", "ct.nii.gz", "ct.nrrd", "dicom"):
        v = read_inputs(files / ct, files / "seg.nii.gz", label_table="v1")
        assert np.array_equal(v.hu, part[0]) and np.allclose(v.origin_mm, PART_ORIGIN), ct


def _one_line(msg: str, *names: str) -> None:
    assert "\n" not in msg and "Traceback" not in msg
    assert any(n in msg for n in names), msg


def test_malformed_nrrd_origin_and_directions_name_the_field(files, tmp_path):
    text = (files / "ct.nrrd").read_bytes()
    head, _, body = text.partition(b"\n\n")
    for field, bad in ((b"space origin", b"space origin: (1,2)"), (b"space origin", b"space origin: (a,b,c)"),
                       (b"space directions", b"space directions: (1,0,0) (0,1,0) none")):
        lines = [bad if ln.startswith(field) else ln for ln in head.split(b"\n")]
        p = tmp_path / "bad.nrrd"
        p.write_bytes(b"\n".join(lines) + b"\n\n" + body)
        with pytest.raises(ImportError_) as e:
            read_inputs(p, files / "seg.nii.gz", label_table="v1")
        _one_line(str(e.value), "bad.nrrd")


def test_singular_affine_is_refused_naming_the_file(part, files, tmp_path):
    aff = part_affine()
    aff[:3, 2] = aff[:3, 0]  # two voxel axes the same: no volume
    nib.save(nib.Nifti1Image(part[0], aff), str(tmp_path / "flat.nii.gz"))
    with pytest.raises(ImportError_, match=r"flat.nii.gz: the voxel-to-world matrix is singular or absurd"):
        read_inputs(tmp_path / "flat.nii.gz", files / "seg.nii.gz", label_table="v1")


def test_labels_on_another_grid_but_the_same_voxels_are_accepted(part, files, tmp_path):
    """The masks stored with flipped and swapped axes (as dcm2niix may write them) are the CT's voxels."""
    flipped = part[1][::-1, :, ::-1].transpose(2, 1, 0)
    aff = part_affine()
    n = np.array(part[1].shape) - 1
    lin = np.zeros((3, 3))
    lin[0, 2], lin[1, 1], lin[2, 0] = -syn.SPACING[0], syn.SPACING[1], -syn.SPACING[2]
    new = np.eye(4)
    new[:3, :3] = lin
    new[:3, 3] = aff[:3, 3] + np.array([n[0] * syn.SPACING[0], 0, n[2] * syn.SPACING[2]])
    nib.save(nib.Nifti1Image(np.ascontiguousarray(flipped), new), str(tmp_path / "turned.nii.gz"))
    v = read_inputs(files / "ct.nii.gz", tmp_path / "turned.nii.gz", label_table="v1")
    assert np.array_equal(v.labels, part[1])


def test_unreadable_input_and_unexpected_failures_are_one_line(files, monkeypatch, tmp_path):
    monkeypatch.setenv("NEUROLYSIS_DATA", str(tmp_path / "data"))
    real_open = open

    def no_read(path, *a, **k):
        if str(path).endswith("seg.nii.gz"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *a, **k)

    monkeypatch.setattr(importer, "open", no_read, raising=False)
    with pytest.raises(ImportError_, match=r"seg.nii.gz: cannot read \(Permission denied\)"):
        import_anatomy(files / "ct.nii.gz", files / "seg.nii.gz", label_table="v1", name="x")
    monkeypatch.undo()
    monkeypatch.setenv("NEUROLYSIS_DATA", str(tmp_path / "data"))

    def boom(*a, **k):
        raise RuntimeError("the mesher\nfell over")

    monkeypatch.setattr(importer, "build_anatomy", boom)
    with pytest.raises(ImportError_) as e:
        import_anatomy(files / "ct.nii.gz", files / "seg.nii.gz", label_table="v1", name="x")
    assert str(e.value) == f"{files / 'ct.nii.gz'}: cannot be imported (RuntimeError: the mesher fell over)"


def test_a_damaged_saved_anatomy_is_reported_and_imported_again(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROLYSIS_DATA", str(tmp_path / "data"))
    folder = tmp_path / "data" / "anatomies" / "pat"
    folder.mkdir(parents=True)
    (folder / "anatomy.json").write_text('{"format_version": 99, "source": {"input_hash": "h"}}')
    (folder / "volumes.npz").write_bytes(b"PK\x03\x04 cut short")
    (folder / "meshes.npz").write_bytes(b"")
    assert not importer._already_imported(folder, "h")  # same inputs, damaged result: built again
    from simulator.core.anatomy import FORMAT_VERSION

    (folder / "anatomy.json").write_text('{"format_version": %d, "meshes": []}' % FORMAT_VERSION)
    with pytest.raises(AnatomyNotFound, match=r"user:pat.*damaged anatomy archive.*import it again"):
        load_anatomy("user:pat")


def _check_fuzzed(read, path: Path, *names: str):
    try:
        v = read()
    except (ImportError_, VolumeError) as e:
        _one_line(str(e), *names)
        return None
    return v


@FUZZ
@given(data=st.data(), which=st.sampled_from(["ct.nii", "ct.nii.gz"]))
def test_mutated_nifti_gives_our_error(files, data, which):
    raw = (files / which).read_bytes()
    bad = data.draw(mutated_bytes(raw, hot=(0, 352) if which == "ct.nii" else None))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / which
        p.write_bytes(bad)
        v = _check_fuzzed(lambda: read_inputs(p, files / "seg.nii.gz", label_table="v1"), p, which)
        if v is not None:
            assert v.hu.shape == v.labels.shape


@FUZZ
@given(data=st.data())
def test_mutated_nrrd_gives_our_error(files, data):
    raw = (files / "ct.nrrd").read_bytes()
    head, _, body = raw.partition(b"\n\n")
    if data.draw(st.booleans()):
        bad = data.draw(mutated_text(head.decode("ascii"))).encode("utf-8") + b"\n" + body
    else:
        bad = data.draw(mutated_bytes(raw, hot=(0, len(head))))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "ct.nrrd"
        p.write_bytes(bad)
        v = _check_fuzzed(lambda: read_inputs(p, files / "seg.nii.gz", label_table="v1"), p, "ct.nrrd")
        if v is not None:
            assert v.hu.shape == v.labels.shape


DICOM_FIELDS = ["ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns",
                "RescaleSlope", "RescaleIntercept", "Modality", "SeriesInstanceUID", "PixelData", "BitsAllocated",
                "SOPClassUID", "NumberOfFrames", "ImageType", "SamplesPerPixel", "PixelRepresentation"]
DICOM_VALUES = [None, "", "abc", "1\\2", "0", "-5", "1e9", "nan", "1\\2\\3\\4\\5\\6\\7", b"\x00\x01"]


def _set_and_save(ds, field: str, value, path: Path) -> None:
    """A header field set to any value (pydicom's complaints about it silenced) and the file written."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        elem = ds[field] if field in ds else None
        if elem is not None:
            elem.value = value
        else:
            setattr(ds, field, value)
        ds.save_as(path, enforce_file_format=True)


@FUZZ
@given(data=st.data())
def test_mutated_dicom_series_gives_our_error(files, data):
    import pydicom
    from pydicom import config

    slices = sorted((files / "dicom" / "series").iterdir())
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "dicom"
        shutil.copytree(files / "dicom", folder)
        victim = folder / "series" / data.draw(st.sampled_from([p.name for p in slices]))
        if data.draw(st.booleans()):
            victim.write_bytes(data.draw(mutated_bytes(victim.read_bytes(), hot=(128, 900))))
        else:
            ds = pydicom.dcmread(str(victim))
            for _ in range(data.draw(st.integers(1, 3))):
                field, value = data.draw(st.sampled_from(DICOM_FIELDS)), data.draw(st.sampled_from(DICOM_VALUES))
                if value is None:
                    if field in ds:
                        del ds[field]
                    continue
                old = config.settings.writing_validation_mode
                config.settings.writing_validation_mode = config.IGNORE
                try:
                    _set_and_save(ds, field, value, victim)
                except Exception:  # noqa: BLE001 - a value pydicom itself will not write: try another damage
                    pass
                finally:
                    config.settings.writing_validation_mode = old
        try:
            arr, aff, _ = read_dicom_series(folder)
        except VolumeError as e:
            _one_line(str(e), str(folder))
            return
        assert arr.ndim == 3 and np.all(np.isfinite(aff))


@FUZZ
@given(data=st.data())
def test_mutated_label_table_gives_our_error(data):
    """--label-table CSV (id,name rows): our error naming the file (and line), or a sound table."""
    good = "id,name\n# TotalSegmentator ids\n" + "".join(f"{i},{n}\n" for i, n in syn.NAMES.items())
    if data.draw(st.booleans()):
        bad = data.draw(mutated_text(good)).encode("utf-8", "surrogatepass")
    else:
        bad = data.draw(mutated_bytes(good.encode("utf-8"), max_ops=2))
    table = read_damaged(bad, "table.csv", importer.read_label_csv, ImportError_)
    if table is None:
        return
    assert table and all(isinstance(k, int) and 1 <= k <= 65535 for k in table)
    assert all(isinstance(n, str) and n and "\n" not in n for n in table.values())


def _bad_inputs(files: Path, d: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (import-anatomy arguments, the file its message must name)."""
    (d / "garbage.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    (d / "dicom").mkdir()
    (d / "dicom" / "IM0001.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 40)
    head, _, body = (files / "ct.nrrd").read_bytes().partition(b"\n\n")
    head = b"\n".join(b"space origin: (1,2)" if ln.startswith(b"space origin") else ln for ln in head.split(b"\n"))
    (d / "origin.nrrd").write_bytes(head + b"\n\n" + body)
    (d / "table.csv").write_bytes(b"id,name\n1,\xff\xfeaorta\n")
    seg = str(files / "seg.nii.gz")
    return {
        "missing": (["--ct", str(d / "none.nii.gz"), "--labels", seg, "--label-table", "v1"], "none.nii.gz"),
        "garbage": (["--ct", str(d / "garbage.nii.gz"), "--labels", seg, "--label-table", "v1"], "garbage.nii.gz"),
        "dicom": (["--ct", str(d / "dicom"), "--labels", seg, "--label-table", "v1"], "dicom"),
        "origin": (["--ct", str(d / "origin.nrrd"), "--labels", seg, "--label-table", "v1"], "origin.nrrd"),
        "table": (["--ct", str(files / "ct.nii.gz"), "--labels", seg, "--label-table", str(d / "table.csv")],
                  "table.csv"),
    }


@pytest.mark.parametrize("case", ["missing", "garbage", "dicom", "origin", "table"])
def test_the_command_says_one_line_naming_the_file(files, tmp_path, monkeypatch, capsys, case):
    """From the command line: exit status 1 and one line `import-anatomy: FILE: what is wrong`
    (progress lines aside), no traceback, nothing saved."""
    from simulator.cli import main

    monkeypatch.setenv("NEUROLYSIS_DATA", str(tmp_path / "data"))
    args, names = _bad_inputs(files, tmp_path)[case]
    assert main(["import-anatomy", *args, "--name", "x"]) == 1
    err = [ln for ln in capsys.readouterr().err.splitlines() if not ln.startswith("[")]
    assert len(err) == 1 and err[0].startswith("import-anatomy: ") and "Traceback" not in err[0], err
    assert names in err[0], err
    assert not (tmp_path / "data" / "anatomies" / "x").exists()
