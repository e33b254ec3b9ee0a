"""Import a user's patient: a CT plus a TotalSegmentator segmentation -> anatomies_dir()/NAME.

    python main.py import-anatomy --ct CT --labels FOLDER_OR_FILE [--label-table v1|v2|CSV] --name NAME

- CT: NIfTI (.nii, .nii.gz) or NRRD (.nrrd, .nhdr), in HU. (DICOM series: convert first, e.g. with
  dcm2niix; pydicom is not one of the project's packages.)
- Labels: TotalSegmentator's output folder of per-structure masks (`aorta.nii.gz`, ...; the file
  name is the structure name), or one multi-label file with a table: `v1` / `v2` (built-in
  TotalSegmentator ids) or a CSV of id,name (header optional).
- Every label volume must be on the CT's grid (same shape and voxel-to-world matrix).
- Unknown structure names are kept (as soft tissue) and reported.
- The result is keyed by a hash of the inputs: importing the same files again does nothing.
Scenarios use the result as `anatomy: user:NAME`.
"""
from __future__ import annotations

import csv
import hashlib
import io
import shutil
import time
from pathlib import Path

import numpy as np

from simulator.anatomy import valid_user_name
from simulator.anatomy.build import BUILDER_VERSION, TREATMENT_VERSION, build_anatomy
from simulator.anatomy.label_tables import TABLES
from simulator.anatomy.volume_io import VolumeError, read_volume, to_ras_grid
from simulator.core.paths import anatomies_dir

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr")
AFFINE_TOLERANCE_MM = 0.01
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
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    for b in extra:
        h.update(b)
    return h.hexdigest()


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        return read_volume(path)
    except VolumeError as e:
        raise ImportError_(str(e)) from None


def _check_same_grid(ct_path: Path, ct_shape, ct_aff, path: Path, shape, aff) -> None:
    if tuple(shape) != tuple(ct_shape):
        raise ImportError_(
            f"{path}: shape {tuple(shape)} does not match the CT {ct_path} shape {tuple(ct_shape)}; "
            f"the segmentation must be on the CT's grid"
        )
    if not np.allclose(aff, ct_aff, atol=AFFINE_TOLERANCE_MM, rtol=0):
        raise ImportError_(
            f"{path}: voxel-to-world matrix {np.round(aff, 3).tolist()} does not match the CT {ct_path} "
            f"({np.round(ct_aff, 3).tolist()}); the segmentation must be on the CT's grid"
        )


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


def import_anatomy(ct, labels, label_table: str | None = None, name: str = "imported", progress=None) -> str:
    """Build and save an anatomy from a CT and a TotalSegmentator segmentation; returns a report."""
    progress = progress or _noop
    t0 = time.perf_counter()
    if not valid_user_name(str(name)):
        raise ImportError_(f"--name {name!r}: use letters, digits, '_', '-' or '.' (up to 64 characters)")
    ct_path = Path(ct).expanduser()
    labels_path = Path(labels).expanduser()
    if not ct_path.exists():
        raise ImportError_(f"{ct_path}: CT file not found")
    if ct_path.is_dir():
        raise ImportError_(
            f"{ct_path}: is a folder; DICOM series are not read directly - convert it to NIfTI first "
            f"(for example `dcm2niix -z y -o OUT {ct_path}`) and pass the .nii.gz"
        )
    if not ct_path.name.lower().endswith(VOLUME_SUFFIXES):
        raise ImportError_(f"{ct_path}: unsupported CT file type (use NIfTI .nii/.nii.gz or NRRD .nrrd/.nhdr)")
    if not labels_path.exists():
        raise ImportError_(f"{labels_path}: segmentation not found (a folder of masks or a multi-label file)")

    # inputs and their hash ------------------------------------------------------------------
    notes: list[str] = []
    if labels_path.is_dir():
        mask_files = sorted(p for p in labels_path.iterdir() if _is_volume_file(p))
        if not mask_files:
            raise ImportError_(f"{labels_path}: no mask files (.nii.gz, .nii, .nrrd) in this folder")
        if label_table:
            notes.append(f"--label-table {label_table!r} ignored: {labels_path} is a folder of per-structure masks")
        files = [ct_path, *mask_files]
        extra: list[bytes] = [b"folder"]
        table_desc = f"per-structure masks in {labels_path}"
    else:
        if not _is_volume_file(labels_path):
            raise ImportError_(f"{labels_path}: unsupported segmentation file type (NIfTI or NRRD, or a folder)")
        table, table_desc, table_bytes = _resolve_table(label_table, labels_path)
        files = [ct_path, labels_path]
        extra = [b"multilabel", table_bytes]
    progress(0.01, "hashing the inputs")
    input_hash = _hash_files(files, extra)
    folder = anatomies_dir() / str(name)
    meta_file = folder / "anatomy.json"
    if meta_file.exists():
        import json

        try:
            old = json.loads(meta_file.read_text())
        except (OSError, ValueError):
            old = {}
        if (old.get("source") or {}).get("input_hash") == input_hash:
            progress(1.0, "already imported")
            return (f"Anatomy {name!r} is already imported from these files (unchanged): {folder}\n"
                    f"Scenarios use it as  anatomy: user:{name}")

    # read -------------------------------------------------------------------------------------
    progress(0.03, f"reading {ct_path.name}")
    ct_arr, ct_aff = _read(ct_path)
    if ct_arr.dtype.kind not in "iuf":
        raise ImportError_(f"{ct_path}: CT voxels must be numbers (got {ct_arr.dtype})")
    names: dict[int, str] = {}
    empty: list[str] = []
    if labels_path.is_dir():
        mask_names = [_stem(p) for p in mask_files]
        dupes = sorted({n for n in mask_names if mask_names.count(n) > 1})
        if dupes:
            raise ImportError_(f"{labels_path}: several files for the same structure: {', '.join(dupes)}")
        ids = _ids_for_masks(mask_names)
        lab = np.zeros(ct_arr.shape, np.uint16)
        overlaps = 0
        for n, (p, sname) in enumerate(zip(mask_files, mask_names)):
            progress(0.05 + 0.15 * n / len(mask_files), f"reading {p.name}")
            arr, aff = _read(p)
            _check_same_grid(ct_path, ct_arr.shape, ct_aff, p, arr.shape, aff)
            m = arr > 0.5 if arr.dtype.kind == "f" else arr > 0
            if not m.any():
                empty.append(sname)
                continue
            overlaps += int(np.count_nonzero(lab[m]))
            lab[m] = ids[sname]
            names[ids[sname]] = sname
        if not names:
            raise ImportError_(f"{labels_path}: every mask is empty")
        if overlaps:
            notes.append(f"{overlaps} voxels belonged to two masks; the alphabetically later structure kept them")
    else:
        progress(0.05, f"reading {labels_path.name}")
        arr, aff = _read(labels_path)
        _check_same_grid(ct_path, ct_arr.shape, ct_aff, labels_path, arr.shape, aff)
        lab = _as_labels(arr, labels_path)
        present = [int(v) for v in np.nonzero(np.bincount(lab.ravel()))[0] if v != 0]
        if not present:
            raise ImportError_(f"{labels_path}: the label map is empty (all zeros)")
        missing = [v for v in present if v not in table]
        if missing:
            notes.append(f"label values not in the table (kept as label_<id>): {', '.join(map(str, missing))}")
        names = {v: table[v] for v in present if v in table}

    # reorient ----------------------------------------------------------------------------------
    progress(0.22, "reorienting to RAS")
    try:
        hu, spacing, origin = to_ras_grid(ct_arr, ct_aff, 1, str(ct_path), fill=-1000)
        lab, _, _ = to_ras_grid(lab, ct_aff, 0, str(labels_path))
    except VolumeError as e:
        raise ImportError_(str(e)) from None
    del ct_arr

    # contrast -----------------------------------------------------------------------------------
    contrast = False
    aorta_ids = [i for i, n in names.items() if n == "aorta"]
    if aorta_ids:
        vals = hu[lab == aorta_ids[0]]
        if vals.size:
            contrast = bool(np.median(vals) > CONTRAST_AORTA_HU)

    # build ------------------------------------------------------------------------------------
    def sub(fraction: float, message: str) -> None:
        progress(0.25 + 0.68 * fraction, message)

    source = {
        "kind": "user",
        "ct": str(ct_path.resolve()),
        "labels": str(labels_path.resolve()),
        "label_table": table_desc,
        "input_hash": input_hash,
    }
    try:
        anatomy = build_anatomy(str(name), hu, lab, spacing, origin, names, source, progress=sub,
                                contrast_enhanced=contrast)
    except ValueError as e:
        raise ImportError_(f"{ct_path}: {e}") from None
    progress(0.94, "saving")
    _save_replacing(anatomy, folder)
    progress(0.97, "target proposals")
    try:
        from simulator.core.proposals import propose_targets

        proposals = sorted(propose_targets(anatomy))
    except Exception as e:  # noqa: BLE001 - proposals are a convenience; report, don't fail
        proposals = []
        notes.append(f"target proposals failed: {e}")
    progress(1.0, "imported")

    # report -----------------------------------------------------------------------------------
    known = sorted(s.name for s in anatomy.structures.values() if s.known)
    synthesized = [n for n in ("spinal_canal", "other_vessels") if anatomy.structure_by_name(n) is not None]
    tri = sum(m.n_triangles for m in anatomy.meshes.values())
    lines = [
        f"Imported anatomy {name!r} into {folder}",
        f"  CT: {ct_path} -> grid {anatomy.shape} voxels of {np.round(anatomy.spacing_mm, 3).tolist()} mm "
        f"(cropped to the body){'; contrast-enhanced (iodine removed from the vessels for fluoroscopy)' if contrast else ''}",
        f"  labels: {table_desc}",
        f"  structures found ({len(known)}): {', '.join(known)}",
    ]
    if anatomy.unknown_structures:
        lines.append(f"  unknown structures kept as soft tissue ({len(anatomy.unknown_structures)}): "
                     f"{', '.join(anatomy.unknown_structures)}")
    else:
        lines.append("  unknown structures: none")
    if synthesized:
        lines.append(f"  added: {', '.join(synthesized)}")
    if empty:
        lines.append(f"  empty masks skipped ({len(empty)}): {', '.join(empty)}")
    lines.append(f"  meshes: {len(anatomy.meshes)} ({tri} triangles)")
    lines.append(f"  target proposals: {', '.join(proposals) if proposals else 'none'}")
    for n in notes:
        lines.append(f"  note: {n}")
    lines.append(f"  took {time.perf_counter() - t0:.1f} s. Scenarios use it as  anatomy: user:{name}")
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
