"""Small analytic anatomies for ultrasound tests, benchmarks and demonstrations.

Built directly as `Anatomy` volumes (no meshes): a block of one tissue with boxes, cylinders and
spheres painted in, each optionally a named structure (label). The gel and layered blocks follow the
geometry of the project's analytic phantoms (gel: box x[-40,40] y[-50,0] z[-40,40] with the scanning
surface at y = 0, an artery r = 4 mm along z at x = -8, y = -20 and a nerve r = 2.5 mm at x = +7,
y = -20; layered: skin, fat, muscle and a cortical bone plate y in [-37, -32], x in [-30, 30]) so
that they can stand in when `simulator.anatomy.phantoms` is not available.
"""
from __future__ import annotations

import numpy as np

from simulator.core.anatomy import Anatomy, Structure
from simulator.core.tissue import TISSUE_INFO, Tissue, structure_group


def block(lo_mm, hi_mm, spacing_mm: float, tissue: Tissue = Tissue.GEL, name: str = "phantom") -> Anatomy:
    lo = np.asarray(lo_mm, dtype=np.float64)
    hi = np.asarray(hi_mm, dtype=np.float64)
    shape = tuple(int(round(x)) for x in (hi - lo) / spacing_mm)
    origin = lo + 0.5 * spacing_mm
    t = np.full(shape, int(tissue), np.uint8)
    hu = np.full(shape, int(TISSUE_INFO[tissue].hu), np.int16)
    labels = np.zeros(shape, np.uint16)
    return Anatomy(name, hu, t, labels, np.full(3, spacing_mm), origin, source={"kind": "analytic"})


def _grid(anat: Anatomy):
    axes = [anat.origin_mm[i] + np.arange(anat.shape[i]) * anat.spacing_mm[i] for i in range(3)]
    return axes


def _paint(anat: Anatomy, mask: np.ndarray, tissue: Tissue, name: str | None, hu: float | None = None) -> int:
    anat.tissue[mask] = int(tissue)
    anat.hu[mask] = int(TISSUE_INFO[tissue].hu if hu is None else hu)
    if name is None:
        anat.labels[mask] = 0
        return 0
    existing = anat.structure_by_name(name)
    sid = existing.id if existing else max(anat.structures.keys(), default=0) + 1
    anat.labels[mask] = sid
    anat.structures[sid] = Structure(sid, name, tissue, structure_group(name, tissue), int(mask.sum()))
    return sid


def add_box(anat: Anatomy, lo_mm, hi_mm, tissue: Tissue, name: str | None = None, hu: float | None = None) -> int:
    x, y, z = _grid(anat)
    lo, hi = np.asarray(lo_mm, float), np.asarray(hi_mm, float)
    m = ((x >= lo[0]) & (x < hi[0]))[:, None, None] & ((y >= lo[1]) & (y < hi[1]))[None, :, None] & (
        (z >= lo[2]) & (z < hi[2])
    )[None, None, :]
    return _paint(anat, m, tissue, name, hu)


def add_cylinder(anat: Anatomy, p0_mm, p1_mm, radius_mm: float, tissue: Tissue, name: str | None = None) -> int:
    x, y, z = _grid(anat)
    p0, p1 = np.asarray(p0_mm, float), np.asarray(p1_mm, float)
    d = (p1 - p0) / np.linalg.norm(p1 - p0)
    X, Y, Z = np.meshgrid(x, y, z, indexing="ij", sparse=True)
    vx, vy, vz = X - p0[0], Y - p0[1], Z - p0[2]
    t = vx * d[0] + vy * d[1] + vz * d[2]
    r2 = vx**2 + vy**2 + vz**2 - t**2
    L = float(np.linalg.norm(p1 - p0))
    m = (r2 <= radius_mm**2) & (t >= 0) & (t <= L)
    return _paint(anat, m, tissue, name)


def add_sphere(anat: Anatomy, center_mm, radius_mm: float, tissue: Tissue, name: str | None = None) -> int:
    x, y, z = _grid(anat)
    c = np.asarray(center_mm, float)
    X, Y, Z = np.meshgrid(x - c[0], y - c[1], z - c[2], indexing="ij", sparse=True)
    return _paint(anat, X**2 + Y**2 + Z**2 <= radius_mm**2, tissue, name)


def gel_block(spacing_mm: float = 0.3) -> Anatomy:
    """Gel phantom: artery along z at (x=-8, y=-20), r 4 mm; nerve at (x=+7, y=-20), r 2.5 mm.
    Scan from y = 0 looking towards -y."""
    a = block((-40, -50, -40), (40, 0, 40), spacing_mm, Tissue.GEL, "gel_block")
    add_cylinder(a, (-8, -20, -40), (-8, -20, 40), 4.0, Tissue.ARTERY, "artery")
    add_cylinder(a, (7, -20, -40), (7, -20, 40), 2.5, Tissue.NERVE, "nerve")
    return a


def layered_block(spacing_mm: float = 0.3) -> Anatomy:
    """Skin 0..-2, fat -2..-10, muscle below, cortical bone plate y in [-37, -32], x in [-30, 30]."""
    a = block((-40, -60, -40), (40, 0, 40), spacing_mm, Tissue.MUSCLE, "layered_block")
    add_box(a, (-40, -2, -40), (40, 0, 40), Tissue.SKIN, "skin")
    add_box(a, (-40, -10, -40), (40, -2, 40), Tissue.FAT, "subcutaneous_fat")
    _paint(a, a.tissue == int(Tissue.MUSCLE), Tissue.MUSCLE, "muscle")
    add_box(a, (-30, -37, -40), (30, -32, 40), Tissue.CORTICAL_BONE, "bone_plate")
    return a


def intercostal_block(spacing_mm: float = 0.3) -> Anatomy:
    """A posterior chest wall in sagittal section (x lateral, y depth towards -y, z superior):
    skin, fat, muscle, two ribs (cylinders along x, 12 mm tall, 25 mm apart) with an intercostal
    artery under the lower border of the upper rib, pleura and lung below."""
    a = block((-30, -60, -35), (30, 0, 35), spacing_mm, Tissue.MUSCLE, "intercostal_block")
    add_box(a, (-30, -2, -35), (30, 0, 35), Tissue.SKIN, "skin")
    add_box(a, (-30, -8, -35), (30, -2, 35), Tissue.FAT, "subcutaneous_fat")
    _paint(a, a.tissue == int(Tissue.MUSCLE), Tissue.MUSCLE, "chest_wall_muscle")
    add_box(a, (-30, -60, -35), (30, -24, 35), Tissue.LUNG, "lung_left", hu=-800)
    for zc in (-12.5, 12.5):
        x, y, z = _grid(a)
        Y, Z = np.meshgrid(y, z, indexing="ij")
        ell = ((Y + 18.0) / 4.5) ** 2 + ((Z - zc) / 6.5) ** 2 <= 1.0
        m = np.broadcast_to(ell[None, :, :], a.shape)
        _paint(a, m.copy(), Tissue.CANCELLOUS_BONE, f"rib_left_{7 if zc > 0 else 8}")
    add_cylinder(a, (-30, -21.5, 6.5), (30, -21.5, 6.5), 0.9, Tissue.ARTERY, "intercostal_artery")
    return a
