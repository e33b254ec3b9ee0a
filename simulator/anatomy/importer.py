"""Import a user's patient: a CT plus a TotalSegmentator segmentation -> anatomies_dir()/NAME.

    python main.py import-anatomy --ct CT --labels FOLDER_OR_FILE [--label-table v1|v2|CSV] --name NAME

- CT: NIfTI (.nii, .nii.gz) or NRRD (.nrrd, .nhdr), in HU, or a folder holding a DICOM CT series
  (read with pydicom, the optional extra `[dicom]`; see `dicom_io`; `--series` picks one of several).
- Labels: TotalSegmentator's output folder of per-structure masks (`aorta.nii.gz`, ...; the file
  name is the structure name), or one multi-label file with a table: `v1` / `v2` (built-in
  TotalSegmentator ids) or a CSV of id,name (header optional).
- Every label volume must be on the CT's grid: the same voxels in space (its axes may be stored in
  another order or direction, as dcm2niix / TotalSegmentator write a DICOM CT's masks).
- Unknown structure names are kept (as soft tissue) and reported.
- The result is keyed by a hash of the inputs: importing the same files again does nothing (unless
  the saved result is damaged: then it is built again).
- Every failure is one `ImportError_` whose message names the file (and field/value) at fault.
Scenarios use the result as `anatomy: user:NAME`.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simulator.anatomy import valid_user_name
from simulator.anatomy.build import BUILDER_VERSION, TREATMENT_VERSION, build_anatomy
from simulator.anatomy.label_tables import TABLES
from simulator.anatomy.dicom_io import read_dicom_series, series_files
from simulator.anatomy.volume_io import VolumeError, read_volume, to_ras_grid
from simulator.core.paths import anatomies_dir

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr")
GRID_TOLERANCE_MM = 0.05  # voxel centres of the label volume and the CT this close: the same grid
CONTRAST_AORTA_HU = 130.0  # median aortic HU above this: a contrast-enhanced CT


class ImportError_(Exception):
    """An import failed; the message names the file (and field/value) at fault."""


def _noop(fraction: float, message: str) -> None:
    return None


def _is_volume_file(p: Path) -> bool:
    return p.is_file() and p.name.lower().endswith(VOLUME_SUFFIXES)


def _stem(p: Path) -> str:
    name = p.name
    for suf in VOLUME_SUFFIXES:
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return p.stem


def read_label_csv(path: Path) -> dict[int, str]:
    """id,name rows (a header row is skipped); errors name the file and line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise ImportError_(f"{path}: cannot read the label table ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise ImportError_(f"{path}: the label table is not UTF-8 text (byte {e.start})") from None
    table: dict[int, str] = {}
    rows = list(csv.reader(io.StringIO(text)))
    for n, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row]
        if not cells or all(c == "" for c in cells) or cells[0].startswith("#"):
            continue
        if len(cells) < 2:
            raise ImportError_(f"{path}: line {n}: expected 'id,name', got {','.join(row)!r}")
        try:
            sid = int(cells[0])
        except ValueError:
            if not table and n == 1:
                continue  # header
            raise ImportError_(f"{path}: line {n}: field 'id' is {cells[0]!r}, expected an integer") from None
        if sid <= 0 or sid > 65535:
            raise ImportError_(f"{path}: line {n}: field 'id' is {sid}, expected 1..65535")
        if not cells[1]:
            raise ImportError_(f"{path}: line {n}: field 'name' is empty")
        if sid in table and table[sid] != cells[1]:
            raise ImportError_(f"{path}: line {n}: id {sid} is listed twice ({table[sid]!r} and {cells[1]!r})")
        table[sid] = cells[1]
    if not table:
        raise ImportError_(f"{path}: no 'id,name' rows found")
    return table


def _resolve_table(label_table: str | None, labels_file: Path) -> tuple[dict[int, str], str, bytes]:
    """(id -> name, description, bytes for the input hash)."""
    if label_table is None or str(label_table).strip() == "":
        raise ImportError_(
            f"{labels_file}: a multi-label file needs --label-table: v1 or v2 (TotalSegmentator's ids) "
            f"or a CSV of id,name"
        )
    key = str(label_table).strip()
    if key.lower() in TABLES:
        table = TABLES[key.lower()]
        return table, f"built-in TotalSegmentator {key.lower()} table", key.lower().encode()
    path = Path(key).expanduser()
    if not path.exists():
        raise ImportError_(
            f"--label-table {key!r}: not a built-in table (v1, v2) and no such file {path}"
        )
    table = read_label_csv(path)
    return table, f"CSV table {path}", path.read_bytes()


def _hash_files(paths: list[Path], extra: list[bytes]) -> str:
    h = hashlib.sha256()
    h.update(f"builder{BUILDER_VERSION}{TREATMENT_VERSION}".encode())
    for p in paths:
        h.update(p.name.encode())
        try:
            with open(p, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        except OSError as e:
            raise ImportError_(f"{p}: cannot read ({e.strerror or e})") from None
    for b in extra:
        h.update(b)
    return h.hexdigest()


def _read(path: Path, series: str | None = None, notes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(array, voxel->RAS affine) of a volume file or a DICOM folder."""
    try:
        if path.is_dir():
            arr, aff, dicom_notes = read_dicom_series(path, series)
            if notes is not None:
                notes.extend(dicom_notes)
            return arr, aff
        return read_volume(path)
    except VolumeError as e:
        raise ImportError_(str(e)) from None


def _in_ct_order(ct_path: Path, ct_shape, ct_aff, path: Path, arr: np.ndarray, aff) -> np.ndarray:
    """A label volume with its axes in the CT's order and direction; refused unless its voxels are
    the CT's voxels."""
    from nibabel import orientations as no

    try:
        turn = no.ornt_transform(no.io_orientation(aff), no.io_orientation(ct_aff))
        out = no.apply_orientation(arr, turn)
        out_aff = aff @ no.inv_ornt_aff(turn, arr.shape)
    except (ValueError, np.linalg.LinAlgError) as e:
        raise ImportError_(f"{path}: its voxel-to-world matrix cannot be matched to the CT {ct_path}'s ({e})") from None
    if tuple(out.shape) != tuple(ct_shape):
        raise ImportError_(
            f"{path}: shape {tuple(arr.shape)} does not match the CT {ct_path} shape {tuple(ct_shape)}; "
            f"the segmentation must be on the CT's grid"
        )
    corners = np.array([[i, j, k, 1.0] for i in (0, ct_shape[0] - 1) for j in (0, ct_shape[1] - 1)
                        for k in (0, ct_shape[2] - 1)])
    if np.abs(corners @ out_aff.T - corners @ np.asarray(ct_aff).T).max() > GRID_TOLERANCE_MM:
        raise ImportError_(
            f"{path}: voxel-to-world matrix {np.round(aff, 3).tolist()} does not match the CT {ct_path} "
            f"({np.round(ct_aff, 3).tolist()}); the segmentation must be on the CT's grid"
        )
    return out


def _cache_intact(folder: Path) -> bool:
    """Whether a saved anatomy's archives read back whole (a damaged one is built again)."""
    try:
        for name in ("volumes.npz", "meshes.npz"):
            with zipfile.ZipFile(folder / name) as z:
                if z.testzip() is not None:
                    return False
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return False
    return True


def _as_labels(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ImportError_(f"{path}: label values must be finite integers")
        rounded = np.rint(arr)
        if np.any(np.abs(arr - rounded) > 1e-3):
            raise ImportError_(f"{path}: label values must be integers (found fractional values)")
        arr = rounded
    if arr.size and (arr.min() < 0 or arr.max() > 65535):
        raise ImportError_(f"{path}: label values must be in 0..65535 (found {arr.min()}..{arr.max()})")
    return arr.astype(np.uint16)


def _ids_for_masks(names: list[str]) -> dict[str, int]:
    """TotalSegmentator v2 ids for known names, then free ids for the others."""
    by_name = {n: i for i, n in TABLES["v2"].items()}
    ids: dict[str, int] = {}
    used = set()
    for n in names:
        if n in by_name:
            ids[n] = by_name[n]
            used.add(by_name[n])
    nxt = max(TABLES["v2"]) + 1
    for n in names:
        if n not in ids:
            while nxt in used:
                nxt += 1
            ids[n] = nxt
            used.add(nxt)
    return ids


@dataclass
class Sources:
    """The files of an import, checked to exist, and what their hash covers."""
    ct_path: Path
    labels_path: Path
    series: str | None
    mask_files: list[Path]  # per-structure masks (empty for a multi-label file)
    table: dict[int, str]  # a multi-label file's id -> name
    table_desc: str
    hashed: list[Path]
    hash_extra: list[bytes]
    notes: list[str] = field(default_factory=list)


@dataclass
class Volumes:
    """An import's CT and label map on one RAS grid, with the structures' names."""
    hu: np.ndarray
    labels: np.ndarray
    spacing_mm: np.ndarray
    origin_mm: np.ndarray
    names: dict[int, str]
    empty: list[str]
    contrast: bool


@contextmanager
def _one_line_errors(where: list):
    """Whatever fails becomes an ImportError_ naming the file being worked on (`where[0]`)."""
    try:
        yield
    except ImportError_ as e:
        if "\n" in str(e):
            raise ImportError_(str(e).replace("\r", " ").replace("\n", " ")) from None
        raise
    except MemoryError:
        raise ImportError_(f"{where[0]}: not enough memory to import it") from None
    except Exception as e:  # noqa: BLE001 - whatever a library raises on a strange file: one line naming it
        detail = " ".join(str(e).split())[:300]
        raise ImportError_(f"{where[0]}: cannot be imported ({type(e).__name__}: {detail})") from None


def _sources(ct, labels, label_table, series) -> Sources:
    ct_path = Path(ct).expanduser()
    labels_path = Path(labels).expanduser()
    if not ct_path.exists():
        raise ImportError_(f"{ct_path}: CT file not found")
    if not ct_path.is_dir() and not ct_path.name.lower().endswith(VOLUME_SUFFIXES):
        raise ImportError_(f"{ct_path}: unsupported CT file type (use NIfTI .nii/.nii.gz, NRRD .nrrd/.nhdr or "
                           f"a folder holding a DICOM series)")
    if series and not ct_path.is_dir():
        raise ImportError_(f"--series {series!r}: only for a DICOM folder; {ct_path} is a file")
    if not labels_path.exists():
        raise ImportError_(f"{labels_path}: segmentation not found (a folder of masks or a multi-label file)")
    notes: list[str] = []
    mask_files: list[Path] = []
    table: dict[int, str] = {}
    if labels_path.is_dir():
        mask_files = sorted(p for p in labels_path.iterdir() if _is_volume_file(p))
        if not mask_files:
            raise ImportError_(f"{labels_path}: no mask files (.nii.gz, .nii, .nrrd) in this folder")
        if label_table:
            notes.append(f"--label-table {label_table!r} ignored: {labels_path} is a folder of per-structure masks")
        hashed, extra = list(mask_files), [b"folder"]
        table_desc = f"per-structure masks in {labels_path}"
    else:
        if not _is_volume_file(labels_path):
            raise ImportError_(f"{labels_path}: unsupported segmentation file type (NIfTI or NRRD, or a folder)")
        table, table_desc, table_bytes = _resolve_table(label_table, labels_path)
        hashed, extra = [labels_path], [b"multilabel", table_bytes]
    if ct_path.is_dir():
        try:
            ct_files = series_files(ct_path)
        except VolumeError as e:
            raise ImportError_(str(e)) from None
        if not ct_files:
            raise ImportError_(f"{ct_path}: an empty folder (expected the files of a DICOM CT series)")
        extra += [b"dicom", str(series or "").encode()]
    else:
        ct_files = [ct_path]
    return Sources(ct_path, labels_path, series, mask_files, table, table_desc, ct_files + hashed, extra, notes)


def _read_labels(src: Sources, ct_shape, ct_aff, progress, where: list) -> tuple[np.ndarray, dict, list[str]]:
    """The label map in the CT's voxel order, the structures' names, the empty masks."""
    names: dict[int, str] = {}
    empty: list[str] = []
    if not src.mask_files:
        progress(0.05, f"reading {src.labels_path.name}")
        where[0] = src.labels_path
        arr, aff = _read(src.labels_path)
        lab = _as_labels(_in_ct_order(src.ct_path, ct_shape, ct_aff, src.labels_path, arr, aff), src.labels_path)
        present = [int(v) for v in np.nonzero(np.bincount(lab.ravel()))[0] if v != 0]
        if not present:
            raise ImportError_(f"{src.labels_path}: the label map is empty (all zeros)")
        missing = [v for v in present if v not in src.table]
        if missing:
            src.notes.append(f"label values not in the table (kept as label_<id>): {', '.join(map(str, missing))}")
        return lab, {v: src.table[v] for v in present if v in src.table}, empty
    mask_names = [_stem(p) for p in src.mask_files]
    dupes = sorted({n for n in mask_names if mask_names.count(n) > 1})
    if dupes:
        raise ImportError_(f"{src.labels_path}: several files for the same structure: {', '.join(dupes)}")
    ids = _ids_for_masks(mask_names)
    lab = np.zeros(ct_shape, np.uint16)
    overlaps = 0
    for n, (p, sname) in enumerate(zip(src.mask_files, mask_names)):
        progress(0.05 + 0.15 * n / len(src.mask_files), f"reading {p.name}")
        where[0] = p
        arr, aff = _read(p)
        arr = _in_ct_order(src.ct_path, ct_shape, ct_aff, p, arr, aff)
        m = arr > 0.5 if arr.dtype.kind == "f" else arr > 0
        if not m.any():
            empty.append(sname)
            continue
        overlaps += int(np.count_nonzero(lab[m]))
        lab[m] = ids[sname]
        names[ids[sname]] = sname
    if not names:
        raise ImportError_(f"{src.labels_path}: every mask is empty")
    if overlaps:
        src.notes.append(f"{overlaps} voxels belonged to two masks; the alphabetically later structure kept them")
    return lab, names, empty


def _read_volumes(src: Sources, progress, where: list) -> Volumes:
    progress(0.03, f"reading {src.ct_path.name}")
    where[0] = src.ct_path
    ct_arr, ct_aff = _read(src.ct_path, src.series, src.notes)
    if ct_arr.dtype.kind not in "iuf":
        raise ImportError_(f"{src.ct_path}: CT voxels must be numbers (got {ct_arr.dtype})")
    lab, names, empty = _read_labels(src, ct_arr.shape, ct_aff, progress, where)
    progress(0.22, "reorienting to RAS")
    where[0] = src.ct_path
    try:
        hu, spacing, origin = to_ras_grid(ct_arr, ct_aff, 1, str(src.ct_path), fill=-1000)
        lab, _, _ = to_ras_grid(lab, ct_aff, 0, str(src.labels_path))
    except VolumeError as e:
        raise ImportError_(str(e)) from None
    del ct_arr
    contrast = False
    aorta_ids = [i for i, n in names.items() if n == "aorta"]
    if aorta_ids:
        vals = hu[lab == aorta_ids[0]]
        if vals.size:
            contrast = bool(np.median(vals) > CONTRAST_AORTA_HU)
    return Volumes(hu, lab, spacing, origin, names, empty, contrast)


def read_inputs(ct, labels, label_table: str | None = None, series: str | None = None) -> Volumes:
    """An import's volumes, read and checked as `import_anatomy` reads them (nothing is built or
    saved); every failure is one ImportError_ naming the file."""
    where = [Path(str(ct))]
    with _one_line_errors(where):
        return _read_volumes(_sources(ct, labels, label_table, series), _noop, where)


def import_anatomy(ct, labels, label_table: str | None = None, name: str = "imported", progress=None,
                   series: str | None = None) -> str:
    """Build and save an anatomy from a CT and a TotalSegmentator segmentation; returns a report.
    Every failure is one ImportError_ naming the file it happened on."""
    where = [Path(str(ct))]  # the file being worked on, for an unexpected failure's message
    with _one_line_errors(where):
        return _import(ct, labels, label_table, name, progress or _noop, series, where)


def _import(ct, labels, label_table, name, progress, series, where: list) -> str:
    t0 = time.perf_counter()
    if not valid_user_name(str(name)):
        raise ImportError_(f"--name {name!r}: use letters, digits, '_', '-' or '.' (up to 64 characters)")
    src = _sources(ct, labels, label_table, series)
    progress(0.01, "hashing the inputs")
    input_hash = _hash_files(src.hashed, src.hash_extra)
    folder = anatomies_dir() / str(name)
    if _already_imported(folder, input_hash):
        progress(1.0, "already imported")
        return (f"Anatomy {name!r} is already imported from these files (unchanged): {folder}\n"
                f"Scenarios use it as  anatomy: user:{name}")
    vols = _read_volumes(src, progress, where)

    def sub(fraction: float, message: str) -> None:
        progress(0.25 + 0.68 * fraction, message)

    source = {
        "kind": "user",
        "ct": str(src.ct_path.resolve()),
        "labels": str(src.labels_path.resolve()),
        "label_table": src.table_desc,
        "input_hash": input_hash,
    }
    where[0] = src.ct_path
    try:
        anatomy = build_anatomy(str(name), vols.hu, vols.labels, vols.spacing_mm, vols.origin_mm, vols.names, source,
                                progress=sub, contrast_enhanced=vols.contrast)
    except ValueError as e:
        raise ImportError_(f"{src.ct_path}: {e}") from None
    progress(0.94, "saving")
    where[0] = folder
    _save_replacing(anatomy, folder)
    progress(0.97, "target proposals")
    try:
        from simulator.core.proposals import propose_targets

        proposals = sorted(propose_targets(anatomy))
    except Exception as e:  # noqa: BLE001 - proposals are a convenience; report, don't fail
        proposals = []
        src.notes.append(f"target proposals failed: {e}")
    progress(1.0, "imported")
    return _report(name, folder, src, vols, anatomy, proposals, time.perf_counter() - t0)


def _already_imported(folder: Path, input_hash: str) -> bool:
    """The same inputs were imported under this name and their result reads back whole."""
    try:
        old = json.loads((folder / "anatomy.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(old, dict) and (old.get("source") or {}).get("input_hash") == input_hash \
        and _cache_intact(folder)


def _report(name, folder: Path, src: Sources, vols: Volumes, anatomy, proposals: list[str], seconds: float) -> str:
    known = sorted(s.name for s in anatomy.structures.values() if s.known)
    synthesized = [n for n in ("spinal_canal", "other_vessels") if anatomy.structure_by_name(n) is not None]
    tri = sum(m.n_triangles for m in anatomy.meshes.values())
    contrast = "; contrast-enhanced (iodine removed from the vessels for fluoroscopy)" if vols.contrast else ""
    lines = [
        f"Imported anatomy {name!r} into {folder}",
        f"  CT: {src.ct_path} -> grid {anatomy.shape} voxels of {np.round(anatomy.spacing_mm, 3).tolist()} mm "
        f"(cropped to the body){contrast}",
        f"  labels: {src.table_desc}",
        f"  structures found ({len(known)}): {', '.join(known)}",
    ]
    if anatomy.unknown_structures:
        lines.append(f"  unknown structures kept as soft tissue ({len(anatomy.unknown_structures)}): "
                     f"{', '.join(anatomy.unknown_structures)}")
    else:
        lines.append("  unknown structures: none")
    if synthesized:
        lines.append(f"  added: {', '.join(synthesized)}")
    if vols.empty:
        lines.append(f"  empty masks skipped ({len(vols.empty)}): {', '.join(vols.empty)}")
    lines.append(f"  meshes: {len(anatomy.meshes)} ({tri} triangles)")
    lines.append(f"  target proposals: {', '.join(proposals) if proposals else 'none'}")
    for n in src.notes:
        lines.append(f"  note: {n}")
    lines.append(f"  took {seconds:.1f} s. Scenarios use it as  anatomy: user:{name}")
    return "\n".join(lines)


def _save_replacing(anatomy, folder: Path) -> None:
    """Write to NAME.partial, then swap it in place of an older NAME."""
    partial = folder.with_name(folder.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    try:
        anatomy.save(partial)
    except OSError as e:
        raise ImportError_(f"{partial}: cannot write the anatomy ({e.strerror or e})") from None
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        if old.exists():
            shutil.rmtree(old)
        folder.rename(old)
    partial.rename(folder)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
