"""Analytic phantoms for the fluoroscopy engine: exact answers for tests, and a CT-like torso.

- `ellipsoid_mu_volume`: a uniform ellipsoid voxelised with its partial-volume fraction, and
  `ellipsoid_chords`: the exact chord length of rays through it (line integral = mu * chord).
- `sphere_markers_volume`: small dense spheres at known positions (projection geometry tests).
- `synthetic_torso_anatomy`: a CT-like upper abdomen of the bundled patient's size (512 x 512 x 133
  at 0.703 x 0.703 x 2.5 mm, T5 to L2) with vertebrae (bodies, cortex, discs, pedicles, laminae,
  spinous and transverse processes), ribs, lungs, aorta, IVC, kidneys, liver, psoas, bowel gas,
  built from simple solids. The benchmark uses it when the bundled patient is not built.
"""
from __future__ import annotations

import numpy as np

from simulator.core.anatomy import Anatomy, Structure
from simulator.core.tissue import TISSUE_INFO, Tissue


# ---------------------------------------------------------------------------------------------
# Uniform ellipsoid: voxelisation with partial volume, exact chords
# ---------------------------------------------------------------------------------------------
def ellipsoid_mu_volume(
    shape_xyz: tuple[int, int, int],
    spacing_mm,
    origin_mm,
    center_mm,
    semi_axes_mm,
    mu_per_mm: float,
    supersample: int = 4,
) -> np.ndarray:
    """(I, J, K) float32 volume of mu * (fraction of each voxel inside the axis-aligned ellipsoid)."""
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    origin = np.asarray(origin_mm, dtype=np.float64)
    c = np.asarray(center_mm, dtype=np.float64)
    a = np.asarray(semi_axes_mm, dtype=np.float64)
    nx, ny, nz = shape_xyz
    out = np.zeros((nx, ny, nz), dtype=np.float32)
    s = int(supersample)
    offs = (np.arange(s) + 0.5) / s - 0.5
    x = origin[0] + np.arange(nx) * spacing[0]
    y = origin[1] + np.arange(ny) * spacing[1]
    for k in range(nz):
        z = origin[2] + k * spacing[2]
        # quick test at the voxel centre with a margin: skip far voxels
        q = ((x[:, None] - c[0]) / a[0]) ** 2 + ((y[None, :] - c[1]) / a[1]) ** 2 + ((z - c[2]) / a[2]) ** 2
        if q.min() > 1.5 + 4 * (spacing.max() / a.min()):
            continue
        frac = np.zeros((nx, ny), dtype=np.float64)
        for ox in offs:
            xs = (x + ox * spacing[0] - c[0]) / a[0]
            for oy in offs:
                ys = (y + oy * spacing[1] - c[1]) / a[1]
                r2 = xs[:, None] ** 2 + ys[None, :] ** 2
                for oz in offs:
                    zs = (z + oz * spacing[2] - c[2]) / a[2]
                    frac += r2 + zs * zs <= 1.0
        out[:, :, k] = (frac / s**3 * mu_per_mm).astype(np.float32)
    return out


def ellipsoid_chords(origins, directions, center_mm, semi_axes_mm) -> np.ndarray:
    """Exact chord lengths (mm) of rays (unit directions) through an axis-aligned ellipsoid."""
    o = np.asarray(origins, dtype=np.float64).reshape(-1, 3)
    d = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    a = np.asarray(semi_axes_mm, dtype=np.float64)
    p = (o - np.asarray(center_mm)) / a
    q = d / a
    A = np.einsum("ij,ij->i", q, q)
    B = 2 * np.einsum("ij,ij->i", p, q)
    C = np.einsum("ij,ij->i", p, p) - 1.0
    disc = B * B - 4 * A * C
    out = np.zeros(len(o))
    ok = disc > 0
    out[ok] = np.sqrt(disc[ok]) / A[ok]
    return out


def sphere_markers_volume(shape_xyz, spacing_mm, origin_mm, centers_mm, radius_mm: float, mu_per_mm: float,
                          supersample: int = 3) -> np.ndarray:
    """(I, J, K) float32 volume with small uniform spheres (partial-volume voxelised)."""
    vol = np.zeros(shape_xyz, dtype=np.float32)
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    origin = np.asarray(origin_mm, dtype=np.float64)
    s = int(supersample)
    offs = (np.arange(s) + 0.5) / s - 0.5
    for c in np.atleast_2d(np.asarray(centers_mm, dtype=np.float64)):
        lo = np.floor((c - radius_mm - origin) / spacing).astype(int) - 1
        hi = np.ceil((c + radius_mm - origin) / spacing).astype(int) + 2
        lo = np.maximum(lo, 0)
        hi = np.minimum(hi, np.asarray(shape_xyz))
        if np.any(hi <= lo):
            continue
        ii, jj, kk = [np.arange(lo[d], hi[d]) for d in range(3)]
        X, Y, Z = np.meshgrid(origin[0] + ii * spacing[0], origin[1] + jj * spacing[1],
                              origin[2] + kk * spacing[2], indexing="ij")
        frac = np.zeros(X.shape)
        for ox in offs:
            for oy in offs:
                for oz in offs:
                    r2 = ((X + ox * spacing[0] - c[0]) ** 2 + (Y + oy * spacing[1] - c[1]) ** 2
                          + (Z + oz * spacing[2] - c[2]) ** 2)
                    frac += r2 <= radius_mm**2
        vol[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] += (frac / s**3 * mu_per_mm).astype(np.float32)
    return vol


# ---------------------------------------------------------------------------------------------
# A CT-like torso (T5 to L2) on the bundled patient's grid
# ---------------------------------------------------------------------------------------------
VERTEBRA_NAMES = ["T5", "T6", "T7", "T8", "T9", "T10", "T11", "T12", "L1", "L2"]


def synthetic_torso_anatomy(shape_xyz=(512, 512, 133), spacing_mm=(0.703125, 0.703125, 2.5),
                            seed: int = 0) -> Anatomy:
    """A CT-like torso from simple solids (HU, tissue and label volumes), patient RAS.

    The grid is centred on x = 0 with the spine at x = 0, y = -40; the lowest slice cuts through the
    middle of L2 as in the bundled scan. Structure names follow TotalSegmentator."""
    nx, ny, nz = shape_xyz
    sp = np.asarray(spacing_mm, dtype=np.float64)
    origin = np.array([-(nx - 1) / 2 * sp[0], -(ny - 1) / 2 * sp[1] - 10.0, -340.0])
    x = origin[0] + np.arange(nx) * sp[0]
    y = origin[1] + np.arange(ny) * sp[1]
    X, Y = np.meshgrid(x, y, indexing="ij")
    z_all = origin[2] + np.arange(nz) * sp[2]
    rng = np.random.default_rng(seed)

    hu = np.full((nx, ny, nz), -1000, dtype=np.int16)
    tissue = np.zeros((nx, ny, nz), dtype=np.uint8)
    labels = np.zeros((nx, ny, nz), dtype=np.uint16)
    names: dict[int, tuple[str, Tissue]] = {}

    def sid(name: str, t: Tissue) -> int:
        for k, (n, _) in names.items():
            if n == name:
                return k
        k = len(names) + 1
        names[k] = (name, t)
        return k

    # vertebral levels: body 24 mm + disc 8 mm = 32 mm per level; L2's middle at the bottom slice
    level_h = 32.0
    body_h = 24.0
    z_l2_mid = z_all[0]
    centers = {name: z_l2_mid + (len(VERTEBRA_NAMES) - 1 - i) * level_h for i, name in enumerate(VERTEBRA_NAMES)}
    spine_y = -40.0
    noise = rng.normal(0.0, 12.0, size=(nx, ny)).astype(np.float32)

    Xf, Yf = X, Y
    # window around the spine for the vertebrae
    ix = np.flatnonzero(np.abs(x) <= 110.0)
    iy = np.flatnonzero((y >= -140.0) & (y <= 0.0))
    SW = (slice(ix[0], ix[-1] + 1), slice(iy[0], iy[-1] + 1))
    Xs, Ys = X[SW], Y[SW]
    # the rib ring (a band inside the body wall) and the angle around it, per side
    rx_, ry_ = 160.0, 112.0
    rr_all = np.sqrt((X / (rx_ - 22)) ** 2 + ((Y + 5.0) / (ry_ - 22)) ** 2)
    ring_ang, ring_i, ring_j = [], [], []
    for sx in (-1, 1):
        m = (np.abs(rr_all - 1.0) * 100.0 <= 5.5) & (sx * X > 10)
        ii, jj = np.nonzero(m)
        ring_i.append(ii)
        ring_j.append(jj)
        ring_ang.append(np.arctan2(Y[ii, jj] + 5.0, sx * X[ii, jj]))
    for k, z in enumerate(z_all):
        h = np.full((nx, ny), -1000.0, dtype=np.float32)
        t = np.zeros((nx, ny), dtype=np.uint8)
        lab = np.zeros((nx, ny), dtype=np.uint16)

        def put(mask, value, tis, name=None, win=(slice(None), slice(None))):
            hv, tv, lv = h[win], t[win], lab[win]
            hv[mask] = value
            tv[mask] = tis
            if name is not None:
                lv[mask] = sid(name, tis)

        # body outline: ellipse, fat layer and muscle
        rx, ry = 160.0, 112.0
        body = ((X / rx) ** 2 + ((Y + 5.0) / ry) ** 2) <= 1.0
        put(body, -100.0, Tissue.FAT)
        inner = ((X / (rx - 16)) ** 2 + ((Y + 5.0) / (ry - 14)) ** 2) <= 1.0
        put(inner, 35.0, Tissue.SOFT_TISSUE)
        skin = body & ~(((X / (rx - 2)) ** 2 + ((Y + 5.0) / (ry - 2)) ** 2) <= 1.0)
        put(skin, 30.0, Tissue.SKIN)
        # back muscles (autochthon) either side of the spinous processes
        for side, sx in (("left", -1), ("right", 1)):
            m = (((X - sx * 38) / 30) ** 2 + ((Y + 85) / 22) ** 2) <= 1.0
            put(m & inner, 50.0, Tissue.MUSCLE, f"autochthon_{side}")
        # lungs: above about T12, posterior recess lowest
        lung_bottom = centers["T12"] + 5.0
        if z > lung_bottom:
            for side, sx in (("left", -1), ("right", 1)):
                grow = min(1.0, (z - lung_bottom) / 60.0)
                m = (((X - sx * 85) / (55 + 20 * grow)) ** 2 + ((Y + 20 - 25 * (1 - grow)) / (60 + 15 * grow)) ** 2) <= 1.0
                put(m & inner, -850.0, Tissue.LUNG, f"lung_lower_lobe_{side}")
        else:
            # liver (right), stomach gas and bowel (left/anterior), kidneys, psoas
            liver = (((X - 70) / 85) ** 2 + ((Y - 15) / 75) ** 2) <= 1.0
            if z > centers["L2"] + 10:
                put(liver & inner, 60.0, Tissue.LIVER, "liver")
            gas = ((((X + 60) / 35) ** 2 + ((Y - 50) / 25) ** 2) <= 1.0) & (z > centers["L1"])
            put(gas & inner, -700.0, Tissue.STOMACH, "stomach")
            for gx, gy, gr in ((-20, 70, 12), (30, 75, 10), (-70, 40, 9), (55, 60, 8)):
                put((((X - gx) ** 2 + (Y - gy) ** 2) <= gr * gr) & inner & (z < centers["L1"] + 20), -800.0, Tissue.BOWEL,
                    "colon")
            for side, sx in (("left", -1), ("right", 1)):
                kz = centers["L1"] - 5 + (8 if sx > 0 else 0)
                kid = (((X - sx * 80) / 30) ** 2 + ((Y + 40) / 26) ** 2 + ((z - kz) / 55) ** 2) <= 1.0
                put(kid, 30.0, Tissue.KIDNEY, f"kidney_{side}")
                if z < centers["T12"]:
                    w = 10 + 8 * (centers["T12"] - z) / 70.0
                    ps = (((X - sx * 33) / w) ** 2 + ((Y + 35) / (w * 0.9)) ** 2) <= 1.0
                    put(ps, 50.0, Tissue.MUSCLE, f"iliopsoas_{side}")
        # aorta and IVC (no contrast)
        put(((X + 18) ** 2 + (Y + 8) ** 2) <= 12.0**2, 40.0, Tissue.ARTERY, "aorta")
        put(((X - 28) ** 2 + (Y + 5) ** 2) <= 11.0**2, 38.0, Tissue.VEIN, "inferior_vena_cava")

        # vertebrae (within a window around the spine)
        X, Y = Xs, Ys
        for name, zc in centers.items():
            dz = z - zc
            if abs(dz) > level_h / 2 + 2:
                continue
            lumbar = name.startswith("L")
            vname = f"vertebrae_{name}"
            bx, by = (24.0, 17.0) if lumbar else (17.0 + (int(name[1:]) - 5) * 0.8, 14.0)
            if abs(dz) <= body_h / 2:
                # body: cortical shell 1.5 mm, cancellous core; concave waist
                waist = 1.0 - 0.08 * (1 - (dz / (body_h / 2)) ** 2)
                r = ((X / (bx * waist)) ** 2 + ((Y - spine_y) / (by * waist)) ** 2)
                outer = r <= 1.0
                core = ((X / (bx * waist - 1.5)) ** 2 + ((Y - spine_y) / (by * waist - 1.5)) ** 2) <= 1.0
                endplate = abs(dz) > body_h / 2 - 1.5
                put(outer, 900.0, Tissue.CORTICAL_BONE, vname, win=SW)
                if not endplate:
                    put(core, 230.0, Tissue.CANCELLOUS_BONE, vname, win=SW)
            elif abs(dz) <= level_h / 2:
                disc = ((X / bx) ** 2 + ((Y - spine_y) / by) ** 2) <= 1.0
                put(disc, 80.0, Tissue.INTERVERTEBRAL_DISC, f"intervertebral_disc_{name}", win=SW)
            # posterior elements (upper two thirds of each level)
            if -6.0 <= dz <= body_h / 2 + 2:
                ped_x = bx * 0.62
                y_back = spine_y - by
                canal_r = 9.5 if lumbar else 8.0
                for sx in (-1, 1):
                    ped = (((X - sx * ped_x) / 5.0) ** 2 + ((Y - (y_back - 8)) / 9.0) ** 2) <= 1.0
                    put(ped, 700.0, Tissue.CORTICAL_BONE, vname, win=SW)
                    # transverse process
                    tp_len = 50.0 if lumbar else 32.0
                    tp_y = y_back - 14 if lumbar else y_back - 20
                    tp = (np.abs(X - sx * (ped_x + tp_len / 2)) <= tp_len / 2) & (np.abs(Y - tp_y) <= 4.0) & (abs(dz) <= 5.0)
                    put(tp, 650.0, Tissue.CORTICAL_BONE, vname, win=SW)
                # lamina arch around the canal and spinous process
                cy = y_back - canal_r - 2
                ring = (((X ** 2 + (Y - cy) ** 2) <= (canal_r + 5) ** 2) & ((X ** 2 + (Y - cy) ** 2) > canal_r**2)
                        & (Y < y_back - 4))
                put(ring, 700.0, Tissue.CORTICAL_BONE, vname, win=SW)
                sp_len = 30.0 if lumbar else 38.0
                spn = (np.abs(X) <= 3.5) & (Y <= cy - canal_r) & (Y >= cy - canal_r - sp_len) & (dz >= -4 + 0.2 * (cy - canal_r - Y) * (0 if lumbar else 1))
                put(spn, 700.0, Tissue.CORTICAL_BONE, vname, win=SW)
        # spinal canal (CSF), all levels
        put(((X ** 2 + (Y - (spine_y - 16 - 11)) ** 2) <= 8.0**2), 10.0, Tissue.CSF, "spinal_cord", win=SW)
        X, Y = Xf, Yf
        # ribs: thoracic levels, one pair per vertebra above L1, sloping down laterally (on the ring)
        for name in VERTEBRA_NAMES:
            if name.startswith("L"):
                continue
            n = int(name[1:])
            for side_i, side in enumerate(("left", "right")):
                ang, ri, rj = ring_ang[side_i], ring_i[side_i], ring_j[side_i]
                zr = centers[name] + 10.0 - 18.0 * (ang + 1.9)
                sel = (np.abs(z - zr) <= 5.0) & (ang > -2.0) & (ang < (0.6 if n < 11 else -0.2))
                if sel.any():
                    h[ri[sel], rj[sel]] = 600.0
                    t[ri[sel], rj[sel]] = Tissue.CORTICAL_BONE
                    lab[ri[sel], rj[sel]] = sid(f"rib_{side}_{n}", Tissue.CORTICAL_BONE)
        # fat and soft tissue noise, outside of air
        inside = t != int(Tissue.AIR)
        h[inside] += noise[inside] * 0.5
        hu[:, :, k] = np.clip(h, -1024, 3000).astype(np.int16)
        tissue[:, :, k] = t
        labels[:, :, k] = lab
        noise = np.roll(noise, 7, axis=0)

    structures = {}
    for k, (name, t) in names.items():
        structures[k] = Structure(id=k, name=name, tissue=t, group=TISSUE_INFO[t].group,
                                  voxels=int(np.count_nonzero(labels == k)))
    return Anatomy(
        name="synthetic-torso",
        hu=hu,
        tissue=tissue,
        labels=labels,
        spacing_mm=sp,
        origin_mm=origin,
        structures=structures,
        source={"kind": "synthetic-ct", "generator": "simulator.imaging.fluoroscopy_phantom"},
        contrast_enhanced=False,
    )


def vertebra_center_mm(anatomy: Anatomy, name: str) -> np.ndarray:
    """Centroid of a vertebra ('L1', 'vertebrae_L1') in the anatomy (RAS mm)."""
    key = name if name.startswith("vertebrae_") else f"vertebrae_{name}"
    c = anatomy.centroid_mm(key)
    if c is None:
        raise KeyError(f"anatomy {anatomy.name!r}: no structure {key!r}")
    return c
