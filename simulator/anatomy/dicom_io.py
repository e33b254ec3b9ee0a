"""A CT straight from a DICOM series: a folder of single-frame CT slices -> (HU array, voxel->RAS affine).

pydicom is an optional extra (`pip install 'neurolysis-trainer[dicom]'`); without it the reader says
so. What is read:

- every file below the folder (sub-folders too; DICOMDIR and hidden files are left out). Files that
  are not DICOM at all are skipped and reported; a DICOM file that cannot be read is an error
  naming it.
- the CT image slices (Modality CT, SOP class CT Image Storage), localizer (scout) images left out.
  Several CT series in the folder: choose one with `series` (its SeriesInstanceUID or SeriesNumber).
- slices sorted along the slice normal (the cross product of ImageOrientationPatient's row and
  column directions) by ImagePositionPatient; every slice must share Rows, Columns, PixelSpacing
  and ImageOrientationPatient. Two slices at one position, a missing slice (a gap wider than the
  series' spacing) or uneven spacing are refused with the files named (the volume would be
  distorted). A gantry tilt (slices shifted along the table) is kept in the affine.
- voxel values: RescaleSlope * stored value + RescaleIntercept, slice by slice (HU).
- DICOM's patient coordinates are LPS; the affine is returned in RAS (x and y negated). Voxel
  index i runs along a row (ImageOrientationPatient[:3], PixelSpacing[1] apart), j down the
  columns (ImageOrientationPatient[3:], PixelSpacing[0] apart), k along the sorted slices.
"""
from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simulator.anatomy.volume_io import VolumeError, checked_affine, shown

DICOM_EXTRA_HINT = "pip install 'neurolysis-trainer[dicom]' (or pip install pydicom)"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
ORIENTATION_TOLERANCE = 1e-3  # direction cosines
SPACING_TOLERANCE_MM = 1e-3
MIN_POSITION_TOLERANCE_MM = 0.02  # DICOM positions are decimal strings of limited precision
POSITION_TOLERANCE_FRACTION = 0.05  # of the slice spacing
NOT_DICOM_SUFFIXES = (".txt", ".json", ".xml", ".csv", ".md", ".html", ".pdf", ".nii", ".gz", ".nrrd", ".zip")


@dataclass
class DicomSeries:
    """One CT series found in a folder (headers only)."""
    uid: str
    number: str
    description: str
    slices: list = field(default_factory=list)  # (path, dataset)


def _pydicom(folder: Path):
    try:
        import pydicom
    except ImportError:
        raise VolumeError(f"{folder}: reading a DICOM series needs pydicom, the optional extra [dicom]: "
                          f"{DICOM_EXTRA_HINT}") from None
    return pydicom


def series_files(folder: str | Path) -> list[Path]:
    """The files that may belong to a series, sorted (also what the importer hashes)."""
    folder = Path(folder)
    try:
        paths = sorted(p for p in folder.rglob("*") if p.is_file())
    except OSError as e:
        raise VolumeError(f"{folder}: cannot list the folder ({e.strerror or e})") from None
    return [p for p in paths if not any(part.startswith(".") for part in p.relative_to(folder).parts)
            and p.name.upper() != "DICOMDIR" and not p.name.lower().endswith(NOT_DICOM_SUFFIXES)]


def _read_header(pydicom, path: Path):
    """The dataset (pixel data deferred), or None when the file is not DICOM at all."""
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(str(path), defer_size="1 KB")
    except InvalidDicomError:
        pass  # no 'DICM' preamble: old files without it are read by force, anything else is skipped
    except OSError as e:
        raise VolumeError(f"{path}: cannot read ({e.strerror or e})") from None
    except Exception as e:  # noqa: BLE001 - pydicom raises many kinds for a damaged file
        raise VolumeError(f"{path}: not a readable DICOM file ({type(e).__name__}: {e})") from None
    try:
        ds = pydicom.dcmread(str(path), defer_size="1 KB", force=True)
        if "SOPClassUID" in ds and "ImagePositionPatient" in ds:
            return ds
    except Exception:  # noqa: BLE001 - not DICOM
        pass
    return None


def _text(ds, name: str) -> str:
    try:
        v = ds.get(name, "")
    except Exception:  # noqa: BLE001 - a damaged element
        return ""
    return "" if v is None else str(v).strip()


def find_series(folder: str | Path) -> tuple[dict[str, DicomSeries], list[Path], list[str]]:
    """The CT series of a folder by SeriesInstanceUID; the files that are not DICOM; notes."""
    folder = Path(folder)
    pydicom = _pydicom(folder)
    found: dict[str, DicomSeries] = {}
    not_dicom: list[Path] = []
    other: dict[str, int] = {}
    localizers = 0
    for path in series_files(folder):
        ds = _read_header(pydicom, path)
        if ds is None:
            not_dicom.append(path)
            continue
        sop = _text(ds, "SOPClassUID")
        modality = _text(ds, "Modality")
        if sop == ENHANCED_CT_STORAGE or (modality == "CT" and int(_num(ds, "NumberOfFrames", path, 1, 1)[0]) > 1):
            raise VolumeError(f"{path}: a multi-frame (enhanced) CT; export the series as single-frame CT "
                              f"slices (CT Image Storage)")
        if modality != "CT" or (sop and sop != CT_IMAGE_STORAGE) or "PixelData" not in ds:
            key = modality or sop or "no modality"
            other[key] = other.get(key, 0) + 1
            continue
        if "LOCALIZER" in _text(ds, "ImageType").upper():
            localizers += 1
            continue
        uid = _text(ds, "SeriesInstanceUID") or "(no SeriesInstanceUID)"
        s = found.setdefault(uid, DicomSeries(uid, _text(ds, "SeriesNumber"), _text(ds, "SeriesDescription")))
        s.slices.append((path, ds))
    notes = []
    if not_dicom:
        notes.append(f"{len(not_dicom)} file(s) that are not DICOM skipped: "
                     + ", ".join(p.name for p in not_dicom[:5]) + (" ..." if len(not_dicom) > 5 else ""))
    if other:
        notes.append("other DICOM objects skipped: " + ", ".join(f"{n} {k}" for k, n in sorted(other.items())))
    if localizers:
        notes.append(f"{localizers} localizer (scout) image(s) skipped")
    return found, not_dicom, notes


def _num(ds, name: str, path: Path, count: int, default=None) -> np.ndarray:
    """`count` numbers of a header field (errors name the file and the field)."""
    try:
        v = ds.get(name)
    except Exception as e:  # noqa: BLE001 - a damaged element
        raise VolumeError(f"{path}: field {name} cannot be read ({e})") from None
    if v is None or (isinstance(v, (str, bytes)) and not str(v).strip()):
        if default is not None:
            return np.full(count, float(default))
        raise VolumeError(f"{path}: field {name} is missing")
    values = [v] if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__") else list(v)
    try:
        out = np.array([float(x) for x in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise VolumeError(f"{path}: field {name} is {shown(v)}, expected {count} number(s)") from None
    if out.shape != (count,) or not np.all(np.isfinite(out)):
        raise VolumeError(f"{path}: field {name} is {shown(v)}, expected {count} finite number(s)")
    return out


def choose_series(folder: Path, found: dict[str, DicomSeries], series: str | None, notes=()) -> DicomSeries:
    if not found:
        seen = "".join(f"; {n}" for n in notes)
        raise VolumeError(f"{folder}: no CT image slices found (single-frame DICOM files of modality CT){seen}")
    listing = "; ".join(f"{s.uid} (number {s.number or '-'}, {s.description or 'no description'}, "
                        f"{len(s.slices)} slices)" for s in found.values())
    if series:
        key = str(series).strip()
        hits = [s for s in found.values() if key in (s.uid, s.number)]
        if len(hits) != 1:
            what = "no" if not hits else "more than one"
            raise VolumeError(f"{folder}: {what} CT series matches --series {key!r}; the folder holds: {listing}")
        return hits[0]
    if len(found) > 1:
        raise VolumeError(f"{folder}: holds {len(found)} CT series; choose one with --series UID_OR_NUMBER: {listing}")
    return next(iter(found.values()))


def _geometry(s: DicomSeries) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
    """Sorted slices, in-plane axes (2 x 3, mm per voxel), the slice step (mm) and the first position."""
    (p0, d0) = s.slices[0]
    rows, cols = int(_num(d0, "Rows", p0, 1)[0]), int(_num(d0, "Columns", p0, 1)[0])
    iop0 = _num(d0, "ImageOrientationPatient", p0, 6)
    ps0 = _num(d0, "PixelSpacing", p0, 2)
    if rows < 1 or cols < 1 or np.any(ps0 <= 0):
        raise VolumeError(f"{p0}: Rows {rows}, Columns {cols}, PixelSpacing {ps0.tolist()}: expected positive values")
    row_dir, col_dir = iop0[:3], iop0[3:]
    if (abs(np.linalg.norm(row_dir) - 1) > ORIENTATION_TOLERANCE or abs(np.linalg.norm(col_dir) - 1)
            > ORIENTATION_TOLERANCE or abs(float(row_dir @ col_dir)) > ORIENTATION_TOLERANCE):
        raise VolumeError(f"{p0}: field ImageOrientationPatient {iop0.tolist()} is not two orthogonal unit vectors")
    normal = np.cross(row_dir, col_dir)
    keyed = []
    for path, ds in s.slices:
        if (int(_num(ds, "Rows", path, 1)[0]), int(_num(ds, "Columns", path, 1)[0])) != (rows, cols):
            raise VolumeError(f"{path}: {int(ds.Rows)} x {int(ds.Columns)} pixels, the series' first slice {p0.name} "
                              f"has {rows} x {cols}")
        if np.abs(_num(ds, "ImageOrientationPatient", path, 6) - iop0).max() > ORIENTATION_TOLERANCE:
            raise VolumeError(f"{path}: field ImageOrientationPatient differs from the series' first slice {p0.name}")
        if np.abs(_num(ds, "PixelSpacing", path, 2) - ps0).max() > SPACING_TOLERANCE_MM:
            raise VolumeError(f"{path}: field PixelSpacing differs from the series' first slice {p0.name}")
        pos = _num(ds, "ImagePositionPatient", path, 3)
        keyed.append((float(pos @ normal), pos, path, ds))
    keyed.sort(key=lambda t: t[0])
    if len(keyed) < 2:
        raise VolumeError(f"{p0}: the series has a single slice; a CT volume needs at least 2")
    z = np.array([k[0] for k in keyed])
    gaps = np.diff(z)
    spacing = float(np.median(gaps))
    tol = max(MIN_POSITION_TOLERANCE_MM, POSITION_TOLERANCE_FRACTION * spacing)
    for i, g in enumerate(gaps):
        a, b = keyed[i][2], keyed[i + 1][2]
        if g < tol:
            raise VolumeError(f"{a} and {b}: two slices at one position ({z[i]:.3f} mm along the slice normal); "
                              f"the folder holds a slice twice or two series mixed")
        if g > 1.5 * spacing:
            raise VolumeError(f"{a} and {b}: missing slice(s) between them: {g:.3f} mm apart where the series' "
                              f"slices are {spacing:.3f} mm apart")
        if abs(g - spacing) > tol:
            raise VolumeError(f"{a} and {b}: uneven slice spacing: {g:.3f} mm apart where the series' slices are "
                              f"{spacing:.3f} mm apart; export the series with even spacing")
    first, last = keyed[0][1], keyed[-1][1]
    step = (last - first) / (len(keyed) - 1)
    for k, (_, pos, path, _) in enumerate(keyed):
        if np.linalg.norm(pos - (first + k * step)) > tol:
            raise VolumeError(f"{path}: field ImagePositionPatient {pos.tolist()} is off the line through the "
                              f"series' other slices")
    axes = np.stack([row_dir * ps0[1], col_dir * ps0[0]])
    return [(path, ds) for _, _, path, ds in keyed], axes, step, first


def _rescale(ds, path: Path) -> tuple[float, float]:
    slope = float(_num(ds, "RescaleSlope", path, 1, 1.0)[0])
    inter = float(_num(ds, "RescaleIntercept", path, 1, 0.0)[0])
    if slope == 0:
        raise VolumeError(f"{path}: field RescaleSlope is 0")
    return slope, inter


def _pixels(ds, path: Path, rows: int, cols: int) -> np.ndarray:
    try:
        px = ds.pixel_array
    except Exception as e:  # noqa: BLE001 - missing decoder, damaged or truncated pixel data
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        try:
            compressed = bool(ts is not None and ts.is_compressed)
        except Exception:  # noqa: BLE001 - not a transfer syntax at all
            compressed = False
        hint = (f"; its pixel data are compressed ({ts.name}): install a pydicom decoder plugin "
                f"(e.g. pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg) or export uncompressed"
                if compressed else "")
        raise VolumeError(f"{path}: cannot read the pixel data ({type(e).__name__}: {e}){hint}") from None
    if px.shape != (rows, cols):
        raise VolumeError(f"{path}: pixel data of shape {px.shape}, expected one {rows} x {cols} grey-level image")
    return px


@contextmanager
def _quiet():
    """pydicom's warnings about odd values stay inside: what matters is said in our errors."""
    log = logging.getLogger("pydicom")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def read_dicom_series(folder: str | Path, series: str | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(HU volume indexed [i, j, k], voxel->RAS affine, notes) of a folder's CT series (see the module notes)."""
    with _quiet():
        return _read_series(Path(folder), series)


def _read_series(folder: Path, series: str | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    found, _, notes = find_series(folder)
    s = choose_series(folder, found, series, notes)
    slices, axes, step, first = _geometry(s)
    rows, cols = int(slices[0][1].Rows), int(slices[0][1].Columns)
    scales = [_rescale(ds, path) for path, ds in slices]
    # whole HU in int16 (as most CTs store them), else float32
    integer = all(slope == 1.0 and inter.is_integer() for slope, inter in scales)
    vol = np.empty((cols, rows, len(slices)), np.int16 if integer else np.float32)
    for k, ((path, ds), (slope, inter)) in enumerate(zip(slices, scales)):
        px = _pixels(ds, path, rows, cols)
        if integer:
            hu = px.astype(np.int32) + int(inter)
            if hu.size and (hu.min() < -32768 or hu.max() > 32767):
                raise VolumeError(f"{path}: HU values {hu.min()}..{hu.max()} beyond the 16-bit range of a CT")
            vol[:, :, k] = hu.T
        else:
            vol[:, :, k] = (px.astype(np.float32) * np.float32(slope) + np.float32(inter)).T
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2], lps[:3, 3] = axes[0], axes[1], step, first
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    notes.append(f"DICOM series {s.uid} ({s.description or 'no description'}): {len(slices)} slices of "
                 f"{rows} x {cols}, {np.linalg.norm(step):.3f} mm apart")
    return vol, checked_affine(affine, str(folder)), notes
