"""A small synthetic CT and label map with known geometry (RAS mm), for the builder and importer.

Grid: 1 x 1 x 2 mm voxels, x in [-60, 59], y in [-65, 54], z in [-40, 38] (voxel centres).
- body: elliptic cylinder, semi-axes 50 mm (x) and 45 mm (y), centred on the z axis; soft tissue
  40 HU inside a subcutaneous fat rim (-100 HU, outer 15 % of the ellipse's radius).
- scanner table: a slab y in [-57, -54], x in [-55, 55], 300 HU, 9 mm below the back.
- vertebrae_L1 (label 1): box x [-12.5, 12.5], y [-27.5, -4.5], z [-21, 21], 300 HU (faces between
  voxel centres: its voxel volume is exactly the box's).
- spinal_cord (2): cylinder along z, radius 4, axis (0, -33), 35 HU.
- aorta (3): cylinder along z, radius 8, axis (-15, 12), contrast-filled 300 HU (+/- 20 HU texture).
- kidney_left (4): sphere radius 12 at (-32, -12, 0), 35 HU.
- mystery_blob (5): sphere radius 6 at (25, 15, 10), 60 HU - a name no tissue rule knows.
- bowel gas (unlabelled): sphere radius 5 at (22, -18, -12), -900 HU.
"""
from __future__ import annotations

import numpy as np

SPACING = np.array([1.0, 1.0, 2.0])
ORIGIN = np.array([-60.0, -65.0, -40.0])
SHAPE = (120, 120, 40)

NAMES = {1: "vertebrae_L1", 2: "spinal_cord", 3: "aorta", 4: "kidney_left", 5: "mystery_blob"}

BODY_AXES = (50.0, 45.0)
TABLE = ((-55.0, -57.0), (55.0, -54.0))  # (x0, y0), (x1, y1)
VERTEBRA_BOX = ((-12.5, -27.5, -21.0), (12.5, -4.5, 21.0))
CORD = ((0.0, -33.0), 4.0)
AORTA = ((-15.0, 12.0), 8.0)
KIDNEY = ((-32.0, -12.0, 0.0), 12.0)
BLOB = ((25.0, 15.0, 10.0), 6.0)
GAS = ((22.0, -18.0, -12.0), 5.0)


def grid():
    x = ORIGIN[0] + SPACING[0] * np.arange(SHAPE[0])
    y = ORIGIN[1] + SPACING[1] * np.arange(SHAPE[1])
    z = ORIGIN[2] + SPACING[2] * np.arange(SHAPE[2])
    return np.meshgrid(x, y, z, indexing="ij")


def make_synthetic(seed: int = 0) -> dict:
    X, Y, Z = grid()
    rng = np.random.default_rng(seed)
    hu = np.full(SHAPE, -1000.0)
    labels = np.zeros(SHAPE, np.uint16)
    r_ell = np.sqrt((X / BODY_AXES[0]) ** 2 + (Y / BODY_AXES[1]) ** 2)
    body = r_ell <= 1.0
    hu[body] = 40.0
    hu[body & (r_ell > 0.85)] = -100.0
    (tx0, ty0), (tx1, ty1) = TABLE
    hu[(X >= tx0) & (X <= tx1) & (Y >= ty0) & (Y <= ty1)] = 300.0

    lo, hi = VERTEBRA_BOX
    vert = (X >= lo[0]) & (X <= hi[0]) & (Y >= lo[1]) & (Y <= hi[1]) & (Z >= lo[2]) & (Z <= hi[2])
    hu[vert] = 300.0
    labels[vert] = 1
    (cx, cy), r = CORD
    cord = (X - cx) ** 2 + (Y - cy) ** 2 <= r * r
    hu[cord] = 35.0
    labels[cord] = 2
    (ax, ay), r = AORTA
    aorta = (X - ax) ** 2 + (Y - ay) ** 2 <= r * r
    hu[aorta] = 300.0 + rng.normal(0.0, 20.0, size=int(aorta.sum()))
    labels[aorta] = 3
    (kx, ky, kz), r = KIDNEY
    kidney = (X - kx) ** 2 + (Y - ky) ** 2 + (Z - kz) ** 2 <= r * r
    hu[kidney] = 35.0
    labels[kidney] = 4
    (bx, by, bz), r = BLOB
    blob = (X - bx) ** 2 + (Y - by) ** 2 + (Z - bz) ** 2 <= r * r
    hu[blob] = 60.0
    labels[blob] = 5
    (gx, gy, gz), r = GAS
    gas = (X - gx) ** 2 + (Y - gy) ** 2 + (Z - gz) ** 2 <= r * r
    hu[gas] = -900.0
    return {
        "hu": np.rint(hu).astype(np.int16),
        "labels": labels,
        "spacing": SPACING.copy(),
        "origin": ORIGIN.copy(),
        "names": dict(NAMES),
    }


def ras_affine() -> np.ndarray:
    aff = np.eye(4)
    aff[:3, :3] = np.diag(SPACING)
    aff[:3, 3] = ORIGIN
    return aff


def las_version(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same volume stored with its first axis running right-to-left (LAS), as many scanners do."""
    aff = ras_affine()
    flipped = arr[::-1].copy()
    aff[0, 0] = -SPACING[0]
    aff[0, 3] = ORIGIN[0] + (SHAPE[0] - 1) * SPACING[0]
    return flipped, aff
