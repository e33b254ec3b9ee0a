"""import-anatomy --ct DICOM_FOLDER: a CT series written by pydicom in the test (slices out of order,
LPS coordinates, rescale slope/intercept), read back to the same HU at the same RAS places; gaps,
uneven spacing, doubled slices, several series and a missing pydicom refused with the files named."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from simulator.anatomy import load_anatomy
from simulator.anatomy.dicom_io import read_dicom_series
from simulator.anatomy.importer import ImportError_, import_anatomy, read_inputs
from simulator.anatomy.volume_io import VolumeError, to_ras_grid

from tests.anatomy import synthetic as syn
from tests.anatomy.dicom_series import read_back, write_series
from tests.anatomy.test_importer import check_anatomy, save_nifti, write_mask_folder

SMALL = (slice(30, 62), slice(40, 64), slice(10, 22))  # 32 x 24 x 12 voxels of the synthetic CT
SMALL_ORIGIN = syn.ORIGIN + syn.SPACING * np.array([s.start for s in SMALL])


@pytest.fixture(scope="module")
def volumes():
    return syn.make_synthetic()


@pytest.fixture(scope="module")
def small_series(volumes, tmp_path_factory):
    """A 12-slice series of a part of the synthetic CT, and that part."""
    hu = volumes["hu"][SMALL]
    folder = tmp_path_factory.mktemp("dicom_small")
    return folder, write_series(folder, hu, origin=SMALL_ORIGIN), hu


def test_series_reads_back_the_hu_at_their_ras_places(small_series):
    folder, _, hu = small_series
    (folder / "README.txt").write_text("exported by the PACS")  # not DICOM: skipped
    arr, aff, notes = read_dicom_series(folder)
    ras, spacing, origin = to_ras_grid(arr, aff, 1, "ct")
    assert ras.dtype == np.int16 and np.array_equal(ras, hu)  # intercept -1024 undone exactly
    assert np.allclose(spacing, syn.SPACING)
    assert np.allclose(origin, SMALL_ORIGIN, atol=1e-3)
    assert any("12 slices of 24 x 32" in n for n in notes)


def test_rescale_slope_gives_float_hu(volumes, tmp_path):
    hu = volumes["hu"][SMALL]
    write_series(tmp_path, hu, slope=0.5)
    arr, aff, _ = read_dicom_series(tmp_path)
    ras, _, _ = to_ras_grid(arr, aff, 1, "ct")
    assert ras.dtype == np.float32 and np.allclose(ras, hu, atol=0.25)


def test_gantry_tilt_is_kept_in_the_affine(volumes, tmp_path):
    hu = volumes["hu"][SMALL]
    write_series(tmp_path, hu, tilt_mm_per_slice=0.5)
    _, aff, _ = read_dicom_series(tmp_path)
    # k steps 2 mm up (S) and 0.5 mm along LPS +y = RAS -y
    assert np.allclose(aff[:3, 2], [0.0, 0.5, 2.0])


def test_import_dicom_ct_with_nifti_masks(volumes, tmp_path, monkeypatch):
    """The whole import from a DICOM folder, the masks in NIfTI on the same grid stored LAS (as
    TotalSegmentator writes them for a DICOM input): the anatomy is the NIfTI import's."""
    monkeypatch.setenv("NEUROLYSIS_DATA", str(tmp_path / "data"))
    write_series(tmp_path / "dicom", volumes["hu"])
    masks = write_mask_folder(volumes, tmp_path / "seg")
    report = import_anatomy(tmp_path / "dicom", masks, name="fromdicom")
    assert "DICOM series" in report and "40 slices of 120 x 120" in report
    check_anatomy(load_anatomy("user:fromdicom"))
    assert "already imported" in import_anatomy(tmp_path / "dicom", masks, name="fromdicom")


def _message(excinfo) -> str:
    return str(excinfo.value)


def test_missing_slice_is_refused_naming_its_neighbours(volumes, tmp_path):
    files = write_series(tmp_path, volumes["hu"][SMALL])
    files[5].unlink()
    with pytest.raises(VolumeError) as e:
        read_dicom_series(tmp_path)
    msg = _message(e)
    assert "missing slice" in msg and files[4].name in msg and files[6].name in msg and "4.000 mm apart" in msg


def test_uneven_spacing_and_doubled_slices_are_refused(volumes, tmp_path):
    hu = volumes["hu"][SMALL]
    z = [float(k) * 2.0 for k in range(hu.shape[2])]
    z[7] += 0.6
    files = write_series(tmp_path / "uneven", hu, z_mm=z)
    with pytest.raises(VolumeError, match="uneven slice spacing") as e:
        read_dicom_series(tmp_path / "uneven")
    assert files[6].name in _message(e) and files[7].name in _message(e)
    z = [float(k) * 2.0 for k in range(hu.shape[2])]
    z[3] = z[2]
    files = write_series(tmp_path / "doubled", hu, z_mm=z)
    with pytest.raises(VolumeError, match="two slices at one position") as e:
        read_dicom_series(tmp_path / "doubled")
    assert files[2].name in _message(e) or files[3].name in _message(e)


def test_several_series_need_a_choice(volumes, tmp_path):
    hu = volumes["hu"][SMALL]
    write_series(tmp_path / "a", hu, series_number=3)
    write_series(tmp_path / "b", hu[:, :, :6], series_number=4)
    with pytest.raises(VolumeError, match=r"holds 2 CT series; choose one with --series.*number 3.*12 slices"):
        read_dicom_series(tmp_path)
    arr, _, _ = read_dicom_series(tmp_path, series="4")
    assert arr.shape[2] == 6
    with pytest.raises(VolumeError, match="no CT series matches --series '9'"):
        read_dicom_series(tmp_path, series="9")


def test_not_a_ct_is_refused(volumes, tmp_path):
    write_series(tmp_path, volumes["hu"][SMALL], modality="MR")
    with pytest.raises(VolumeError, match="no CT image slices.*other DICOM objects skipped: 12 MR"):
        read_dicom_series(tmp_path)


def test_compressed_pixel_data_without_a_decoder_says_so(small_series, tmp_path):
    from pydicom.uid import JPEG2000Lossless

    folder, files, _ = small_series
    ds = read_back(files[0])
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = b"\xff\x4f\xff\x51" + bytes(60)  # a J2K start, nothing a decoder can use
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    from pydicom.encaps import encapsulate

    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(60)])
    out = tmp_path / "one"
    out.mkdir()
    for f in files[1:]:
        (out / f.name).write_bytes(f.read_bytes())
    ds.save_as(out / files[0].name, enforce_file_format=True)
    with pytest.raises(VolumeError) as e:
        read_dicom_series(out)
    assert files[0].name in _message(e) and "pixel data" in _message(e)


def test_missing_pydicom_names_the_extra(small_series, monkeypatch, tmp_path):
    folder, _, _ = small_series
    monkeypatch.setitem(sys.modules, "pydicom", None)  # import pydicom -> ImportError
    with pytest.raises(VolumeError, match=r"needs pydicom, the optional extra \[dicom\]: "
                                          r"pip install 'neurolysis-trainer\[dicom\]'"):
        read_dicom_series(folder)
    seg = save_nifti(np.zeros(syn.SHAPE, np.uint8), tmp_path / "seg.nii.gz")
    with pytest.raises(ImportError_, match=rf"{folder}.*\[dicom\]"):
        read_inputs(folder, seg, label_table="v2")


def test_import_errors_are_one_line_naming_the_folder(small_series, tmp_path):
    folder, _, _ = small_series
    seg = save_nifti(np.zeros(syn.SHAPE, np.uint8), tmp_path / "seg.nii.gz", las=False)
    with pytest.raises(ImportError_) as e:  # the masks are on the whole grid, the series on a part
        read_inputs(folder, seg, label_table="v2")
    assert "seg.nii.gz" in _message(e) and str(folder) in _message(e) and "\n" not in _message(e)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImportError_, match="empty folder"):
        import_anatomy(empty, seg, label_table="v2", name="x")
    with pytest.raises(ImportError_, match="--series '3': only for a DICOM folder"):
        import_anatomy(seg, seg, label_table="v2", name="x", series="3")
