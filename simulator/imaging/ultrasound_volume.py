"""The acoustic volume of an anatomy for the B-mode simulator: acoustic codes (tissue classes with
gas and calcification from the CT numbers), a finer copy of small coarse phantoms, and each
structure's fibre axes (for the muscle, fat and nerve textures)."""
from __future__ import annotations

import math

import numpy as np

from simulator.core.anatomy import Anatomy
from simulator.imaging.ultrasound_tissue import (
    CALCIFICATION,
    GAS,
    TEX_FAT,
    TEX_MUSCLE,
    TEX_NERVE,
    calcification_hu_thresholds,
    gas_hu_codes,
)

GAS_HU = -400.0  # below this, gut / soft-tissue voxels hold gas


def refine_small_anatomy(anatomy: Anatomy, max_voxels: int = 40_000_000, sigma_voxels: float = 1.0) -> Anatomy:
    """A twice-finer copy of a small, isotropic, coarsely voxelised anatomy (an analytic phantom
    at 0.5 mm) with smooth region boundaries: each (structure, tissue) region's indicator is
    Gaussian-smoothed on the original grid and, near boundaries, the finer voxels take the region
    whose smoothed indicator is largest there. A cylinder of 8 voxels radius then stays round in
    the image instead of showing the facets of its digitisation. Other anatomies (a CT) are
    returned unchanged. The copy keeps the structures; its HU volume is a zero view (the acoustic
    codes are derived before refining, from the original)."""
    sp = np.asarray(anatomy.spacing_mm, dtype=np.float64)
    if anatomy.hu.size * 8 > max_voxels or sp.min() < 0.4 or sp.max() > 1.1 * sp.min():
        return anatomy
    from scipy import ndimage

    labels = np.asarray(anatomy.labels)
    tis = np.asarray(anatomy.tissue)
    present = np.zeros((int(labels.max()) + 1, 256), dtype=bool)
    for lab_id in np.unique(labels):
        present[lab_id, np.unique(tis[labels == lab_id])] = True
    pl, pt = np.nonzero(present)
    if len(pl) > 64:
        return anatomy
    lut = np.zeros(present.shape, np.uint8)
    lut[pl, pt] = np.arange(len(pl))
    region = lut[labels, tis]
    fine = region.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    band = ndimage.maximum_filter(region, size=3) != ndimage.minimum_filter(region, size=3)
    idx = np.argwhere(band)
    if len(idx):
        off = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)])
        fidx = (idx[:, None, :] * 2 + off[None, :, :]).reshape(-1, 3)
        coords = (fidx / 2.0 - 0.25).T  # fine voxel centres in coarse index units
        best = np.full(len(fidx), -1.0, np.float32)
        arg = fine[tuple(fidx.T)].copy()
        pad = int(math.ceil(3 * sigma_voxels)) + 2
        for r in np.unique(region[tuple(idx.T)]):
            mask = region == r
            near = ndimage.maximum_filter(mask, size=3)[tuple(idx.T)]  # band voxels touching r
            if not near.any():
                continue
            sel = np.repeat(near, 8)
            own = idx[near]
            lo = np.maximum(own.min(0) - pad, 0)
            hi = np.minimum(own.max(0) + pad + 1, region.shape)
            box = tuple(slice(a, b) for a, b in zip(lo, hi))
            sm = ndimage.gaussian_filter(mask[box].astype(np.float32), sigma_voxels, truncate=3.0)
            v = ndimage.map_coordinates(sm, coords[:, sel] - lo[:, None], order=1, mode="nearest")
            cur = best[sel]
            better = v > cur
            where = np.flatnonzero(sel)[better]
            best[where] = v[better]
            arg[where] = r
        fine[tuple(fidx.T)] = arg
    tissue = pt.astype(np.uint8)[fine]
    lab = pl.astype(np.uint16)[fine]
    return Anatomy(
        anatomy.name, np.broadcast_to(np.int16(0), tissue.shape), tissue, lab, sp / 2.0, anatomy.origin_mm - sp / 4.0,
        structures=anatomy.structures, meshes=anatomy.meshes, source=dict(anatomy.source, refined_for_ultrasound=2),
        unknown_structures=anatomy.unknown_structures, contrast_enhanced=anatomy.contrast_enhanced,
    )


def acoustic_codes(tissue: np.ndarray, hu: np.ndarray) -> np.ndarray:
    """The acoustic code volume: tissue classes, with gas (bowel gas, air pockets: HU below
    GAS_HU in gut and soft-tissue classes) and calcification (HU above a per-class threshold
    outside bone) taken from the CT numbers. uint8, same shape."""
    t = np.asarray(tissue, dtype=np.uint8)
    codes = np.array(t, dtype=np.uint8, order="C", copy=True)
    h = np.asarray(hu)
    gas = gas_hu_codes()[t].astype(bool)
    gas &= h < GAS_HU
    codes[gas] = GAS
    calc = h > calcification_hu_thresholds()[t]
    codes[calc & ~gas] = CALCIFICATION
    return codes


def label_axes(anatomy: Anatomy, labels: np.ndarray, spacing: np.ndarray, texture: np.ndarray) -> np.ndarray:
    """Per label: two unit vectors perpendicular to the fibre / nerve axis (the structure's
    principal axis); label 0 and other structures use the superior-inferior axis."""
    from scipy import ndimage

    n = int(max(anatomy.structures.keys(), default=0)) + 1
    axes = np.zeros((n, 6))
    axes[:, 0] = 1.0  # e1 = x
    axes[:, 4] = 1.0  # e2 = y  (fibres along z)
    wanted = [s for s in anatomy.structures.values() if texture[int(s.tissue)] in (TEX_MUSCLE, TEX_NERVE, TEX_FAT)]
    if not wanted:
        return axes
    objs = ndimage.find_objects(labels)
    for s in wanted:
        if s.id - 1 >= len(objs) or objs[s.id - 1] is None:
            continue
        sl = objs[s.id - 1]
        pts = np.argwhere(labels[sl] == s.id)
        if len(pts) < 10:
            continue
        if len(pts) > 200000:
            pts = pts[np.random.default_rng(0).choice(len(pts), 200000, replace=False)]
        xyz = (pts + np.array([x.start for x in sl])) * spacing
        cov = np.cov((xyz - xyz.mean(0)).T)
        evals, evecs = np.linalg.eigh(cov)
        a = evecs[:, -1]
        if evals[-1] < 1.5 * evals[-2]:
            a = np.array([0.0, 0.0, 1.0])  # no clear long axis
        axes[s.id] = perpendicular_axes(a)
    return axes


def perpendicular_axes(axis) -> np.ndarray:
    """Two unit vectors (6 numbers) perpendicular to `axis` and to each other, right-handed with it."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / max(float(np.linalg.norm(a)), 1e-12)
    ref = np.array([1.0, 0.0, 0.0]) if abs(a[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(a, ref)
    e1 /= np.linalg.norm(e1)
    return np.r_[e1, np.cross(a, e1)]
