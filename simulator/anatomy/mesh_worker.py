"""Meshing in a helper process, so that a build uses both cores.

`run_jobs` splits (name, mask, origin, target, inplane_factor) jobs between this process and one
child process (`python -m simulator.anatomy.mesh_worker JOBFILE`), started as a plain subprocess:
no multiprocessing, so nothing depends on how the program's main module was started. The child
reads its jobs from an .npz file and writes one result .npz per job; anything it fails to deliver
is meshed here.
"""
from __future__ import annotations

import os
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from simulator.core.anatomy import TriMesh


def _mesh(mask, spacing, origin, target, factor) -> TriMesh:
    from simulator.anatomy.meshing import mask_to_mesh

    return mask_to_mesh(mask, spacing, origin, int(target) if target > 0 else None, int(factor))


def _cost(job) -> float:
    _, mask, _, _, factor = job
    return float(mask.size) / (factor * factor) + 2e4


def _write_jobs(path: Path, jobs, spacing) -> None:
    arrays = {"spacing": np.asarray(spacing, np.float64), "count": np.array(len(jobs))}
    for i, (name, mask, origin, target, factor) in enumerate(jobs):
        arrays[f"name{i}"] = np.array(name)
        arrays[f"shape{i}"] = np.array(mask.shape)
        arrays[f"mask{i}"] = np.packbits(mask.ravel())
        arrays[f"origin{i}"] = np.asarray(origin, np.float64)
        arrays[f"meta{i}"] = np.array([int(target or 0), int(factor)])
    np.savez(path, **arrays)


def _split(jobs, parts: int):
    """Longest-processing-time-first split of jobs into `parts` lists."""
    loads = [0.0] * parts
    out: list[list] = [[] for _ in range(parts)]
    for job in sorted(jobs, key=_cost, reverse=True):
        i = int(np.argmin(loads))
        out[i].append(job)
        loads[i] += _cost(job)
    return out


def run_jobs(jobs, spacing, progress: Callable[[float, str], None], workers: int = 2) -> dict[str, TriMesh]:
    """Mesh all jobs (name, mask, origin, target, inplane_factor); returns name -> TriMesh."""
    total = len(jobs)
    done: dict[str, TriMesh] = {}
    if total == 0:
        return done

    def report(name: str) -> None:
        progress(len(done) / total, f"meshed {name}")

    if workers <= 1 or total < 4:
        for name, mask, origin, target, factor in sorted(jobs, key=_cost, reverse=True):
            done[name] = _mesh(mask, spacing, origin, target, factor)
            report(name)
        return done

    mine, theirs = _split(jobs, 2)
    with tempfile.TemporaryDirectory(prefix="neurolysis-mesh-") as tmp:
        tmpdir = Path(tmp)
        jobfile = tmpdir / "jobs.npz"
        _write_jobs(jobfile, theirs, spacing)
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            child = subprocess.Popen([sys.executable, "-m", "simulator.anatomy.mesh_worker", str(jobfile)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=root)
        except OSError:
            child = None
        sel = selectors.DefaultSelector()
        if child is not None:
            os.set_blocking(child.stdout.fileno(), False)
            sel.register(child.stdout, selectors.EVENT_READ)
        buffer = b""
        their_names = {j[0]: i for i, j in enumerate(theirs)}

        def collect(timeout: float) -> None:
            nonlocal buffer
            if child is None:
                return
            for key, _ in sel.select(timeout):
                chunk = key.fileobj.read()
                if chunk:
                    buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                name = line.decode("utf-8", "replace").strip()
                if name in their_names and name not in done:
                    res = tmpdir / f"result{their_names[name]}.npz"
                    try:
                        with np.load(res) as z:
                            done[name] = TriMesh(z["vertices"], z["faces"])
                        report(name)
                    except (OSError, KeyError, ValueError):
                        pass

        t_start = time.perf_counter()
        for name, mask, origin, target, factor in mine:
            done[name] = _mesh(mask, spacing, origin, target, factor)
            report(name)
            collect(0.0)
        if child is not None:
            # the child's share is about as big as ours: give it ample time, then do its rest here
            deadline = time.perf_counter() + max(60.0, 3.0 * (time.perf_counter() - t_start))
            while child.poll() is None and time.perf_counter() < deadline:
                collect(0.2)
            if child.poll() is None:
                child.kill()
                child.wait()
            collect(0.0)
            sel.close()
            child.stdout.close()
        # whatever the child did not deliver is meshed here
        for name, mask, origin, target, factor in theirs:
            if name not in done:
                done[name] = _mesh(mask, spacing, origin, target, factor)
                report(name)
    return done


def main(argv: list[str]) -> int:
    jobfile = Path(argv[0])
    out_dir = jobfile.parent
    with np.load(jobfile) as z:
        spacing = z["spacing"]
        count = int(z["count"])
        for i in range(count):
            name = str(z[f"name{i}"])
            shape = tuple(int(s) for s in z[f"shape{i}"])
            mask = np.unpackbits(z[f"mask{i}"], count=int(np.prod(shape))).reshape(shape).astype(bool)
            target, factor = (int(v) for v in z[f"meta{i}"])
            mesh = _mesh(mask, spacing, z[f"origin{i}"], target, factor)
            tmp = out_dir / f"result{i}.tmp.npz"
            np.savez(tmp, vertices=mesh.vertices, faces=mesh.faces)
            tmp.replace(out_dir / f"result{i}.npz")
            sys.stdout.write(name + "\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
