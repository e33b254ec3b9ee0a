"""Coarse CT grids made finer before an anatomy is built (`refine_coarse_grid`).

TotalSegmentator's fast model works on 3 mm voxels, and so does the lumbopelvic bundled patient. On
such a grid, every look-up that takes the nearest voxel (the needle's tissue, the plan check, the
injectate's spread, the ultrasound's tissue classes) sees 3 mm steps, and a psoas edge or a vertebral
body's front is a staircase. When the in-plane voxel is larger than COARSE_FROM_MM:

- each axis is divided by an integer factor so that the voxel is at most FINE_MM (3 mm -> 1.5 mm);
- CT numbers: trilinear interpolation. The fluoroscopy projector interpolates the CT numbers
  trilinearly as well, so the simulated radiograph is that of the same continuous volume; the
  finer grid only gives the needle, the tissue classes and the bone cortex their finer steps;
- labels, with smooth boundaries: each label's indicator (and the background's) is Gaussian-smoothed
  (SMOOTH_VOXELS of the coarse grid), interpolated onto the fine grid, and every fine voxel takes the
  label whose smoothed indicator is largest there - a rounded outline instead of a staircase. A
  structure that would lose more than LOSS_LIMIT of its volume that way (one or two coarse voxels
  across: a thin vessel, a rib tip) keeps its nearest-neighbour voxels, so nothing disappears.

Everything the builder derives afterwards (body outline, tissue classes, cortex, skin, meshes) works
on the finer grid. The meshes are smoothed surfaces (windowed-sinc, `meshing.py`); the ultrasound's
speckle and tissue textures are generated in world millimetres from the tissue classes
(`simulator/imaging/ultrasound_tissue.py`), so the image shows tissue texture, not the CT's voxels.
A grid with fine in-plane voxels (a clinical CT: 0.6-0.9 mm, slices up to 5 mm) is left as it is.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

COARSE_FROM_MM = 2.0
FINE_MM = 1.5
SMOOTH_VOXELS = 0.6
LOSS_LIMIT = 0.3


def refinement_factors(spacing_mm) -> tuple[int, int, int] | None:
    """Per-axis subdivision of a coarse grid, or None when the grid is fine enough."""
    sp = np.asarray(spacing_mm, dtype=np.float64).reshape(3)
    if min(sp[0], sp[1]) <= COARSE_FROM_MM:
        return None
    f = np.maximum(1, np.ceil(sp / FINE_MM - 1e-6)).astype(int)
    return int(f[0]), int(f[1]), int(f[2])


def _zoom(values: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Linear interpolation onto a grid `factors` times finer whose voxels tile the coarse ones
    (fine centre j sits at coarse index (j + 0.5) / f - 0.5); edges continue the border value."""
    return ndi.zoom(values, factors, order=1, mode="nearest", grid_mode=True, output=np.float32)


def _smooth_labels(labels: np.ndarray, factors: np.ndarray) -> np.ndarray:
    nearest = labels
    for axis, f in enumerate(factors):
        nearest = np.repeat(nearest, f, axis=axis)
    out = nearest.copy()
    best = _zoom(ndi.gaussian_filter((labels == 0).astype(np.float32), SMOOTH_VOXELS), factors)
    pad = int(math.ceil(3 * SMOOTH_VOXELS)) + 1
    objects = ndi.find_objects(labels)
    for i, box in enumerate(objects):
        if box is None:
            continue
        sid = i + 1
        lo = [max(s.start - pad, 0) for s in box]
        hi = [min(s.stop + pad, n) for s, n in zip(box, labels.shape)]
        sm = ndi.gaussian_filter((labels[tuple(slice(a, b) for a, b in zip(lo, hi))] == sid).astype(np.float32),
                                 SMOOTH_VOXELS)
        fine_box = tuple(slice(a * f, b * f) for a, b, f in zip(lo, hi, factors))
        v = _zoom(sm, factors)
        better = v > best[fine_box]
        best[fine_box][better] = v[better]
        out[fine_box][better] = sid
    coarse_counts = np.bincount(labels.ravel())
    fine_counts = np.bincount(out.ravel(), minlength=len(coarse_counts))
    per_voxel = int(np.prod(factors))
    for sid in np.nonzero(coarse_counts)[0]:
        if sid and fine_counts[sid] < (1.0 - LOSS_LIMIT) * per_voxel * coarse_counts[sid]:
            out[nearest == sid] = sid
    return out


def refine_coarse_grid(hu: np.ndarray, labels: np.ndarray, spacing_mm, origin_mm):
    """(hu, labels, spacing, origin, factors) on a finer grid (see the module doc); the inputs
    unchanged and factors None when the grid is fine enough."""
    spacing = np.asarray(spacing_mm, dtype=np.float64).reshape(3)
    origin = np.asarray(origin_mm, dtype=np.float64).reshape(3)
    factors = refinement_factors(spacing)
    if factors is None:
        return hu, labels, spacing, origin, None
    f = np.array(factors)
    fine_hu = np.rint(_zoom(hu.astype(np.float32), f)).astype(hu.dtype)
    fine_labels = _smooth_labels(labels, f)
    return fine_hu, fine_labels, spacing / f, origin + (0.5 / f - 0.5) * spacing, factors
