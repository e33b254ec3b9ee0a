"""Synthetic DICOM CT series written with pydicom (no downloads): a RAS volume as axial slices.

`write_series(folder, hu)` writes `hu` (indexed [x, y, z] on `synthetic.ras_affine()`'s grid) the
way a scanner does: one CT Image Storage file per slice, rows running posterior (LPS +y), columns
to the patient's left (LPS +x), stored as unsigned values with RescaleIntercept -1024 (and, with
`slope`, RescaleSlope), files named out of order; `origin`: the RAS centre of voxel [0, 0, 0].
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.anatomy import synthetic as syn

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def slice_dataset(pixels: np.ndarray, position, spacing, *, series_uid: str, study_uid: str, number: int,
                  series_number: int = 3, slope: float = 1.0, intercept: float = -1024.0,
                  orientation=(1, 0, 0, 0, 1, 0), modality: str = "CT") -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientName = "Synthetic^Phantom"
    ds.PatientID = "SYN001"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = "abdomen 2 mm"
    ds.InstanceNumber = number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient = [f"{v:.4f}" for v in position]
    ds.ImageOrientationPatient = list(orientation)
    ds.PixelSpacing = [float(spacing[0]), float(spacing[1])]  # row spacing, column spacing
    ds.SliceThickness = 2.0
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.RescaleType = "HU"
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
    return ds


def write_series(folder, hu: np.ndarray, *, origin=syn.ORIGIN, slope: float = 1.0, z_mm=None, series_number: int = 3,
                 tilt_mm_per_slice: float = 0.0, series_uid: str | None = None, modality: str = "CT") -> list[Path]:
    """One file per slice (see the module notes); `z_mm` gives each slice's RAS z instead of the grid's
    (to make gaps), `tilt_mm_per_slice` shifts each slice along y (a gantry tilt). The files, by slice."""
    folder = Path(folder)
    (folder / "series").mkdir(parents=True, exist_ok=True)
    nx, ny, nz = hu.shape
    sx, sy, sz = syn.SPACING
    ox, oy, oz = origin
    series_uid = series_uid or generate_uid()
    study_uid = generate_uid()
    z_mm = [oz + k * sz for k in range(nz)] if z_mm is None else list(z_mm)
    order = np.random.default_rng(1).permutation(nz)  # file names out of slice order
    paths = []
    for k in range(nz):
        # pixel [r, c] is RAS (x, y) = (ox + (nx-1-c) sx, oy + (ny-1-r) sy): LPS +x along a row, +y down
        stored = np.rint((hu[::-1, ::-1, k].T.astype(np.float64) + 1024.0) / slope)
        lps = (-(ox + (nx - 1) * sx), -(oy + (ny - 1) * sy) - k * tilt_mm_per_slice, z_mm[k])
        ds = slice_dataset(stored, lps, (sy, sx), series_uid=series_uid, study_uid=study_uid, number=k + 1,
                           series_number=series_number, slope=slope, modality=modality)
        path = folder / "series" / f"IM{order[k]:04d}"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def read_back(path) -> Dataset:
    return pydicom.dcmread(str(path))
