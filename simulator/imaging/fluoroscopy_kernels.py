"""Numba kernels of the simulated fluoroscopy's volume projector: line integrals through a voxel
volume (Joseph's method, and the perspective shear-warp used per C-arm pose), and the CT-to-
attenuation conversion. The overlays (needle, contrast) are in `fluoroscopy_overlay_kernels`, the
detector and display in `fluoroscopy_image_kernels`, the mesh projector in `xray_mesh_kernels`.

Pure functions of arrays. Every kernel takes the projection geometry as plain arrays:
`src` (3,) the focal spot, `det_origin` (3,) the centre of pixel (row 0, column 0), `du`, `dv` (3,)
the step from one pixel to the next along a row (column +1) and down a column (row +1), all in
patient RAS mm. Line integrals are dimensionless (mu in 1/mm times mm).

Kernels are compiled with `cache=True` (the compiled code is stored beside this file) and
`nogil=True`, so a worker thread can render while the GUI thread runs.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

_JIT = dict(cache=True, nogil=True, fastmath=True)


# ---------------------------------------------------------------------------------------------
# Volume projection (Joseph's method: one bilinear sample per crossed slice of the dominant axis)
# ---------------------------------------------------------------------------------------------
@njit(**_JIT)
def _ray_integral(vol, nx, ny, nz, sx_idx, sy_idx, sz_idx, dx, dy, dz, length_mm):
    """Integral along the ray from source index-point s to s + d (d = detector pixel - source, in
    index units). Volume flat in (z, y, x) order, x fastest. Returns the integral in mm * value."""
    ax = abs(dx)
    ay = abs(dy)
    az = abs(dz)
    # strides of x, y, z in the flat array
    if ax >= ay and ax >= az:
        da, db, dc = dx, dy, dz
        sa, sb, sc = sx_idx, sy_idx, sz_idx
        na, nb, nc = nx, ny, nz
        st_a, st_b, st_c = 1, nx, nx * ny
    elif ay >= az:
        da, db, dc = dy, dx, dz
        sa, sb, sc = sy_idx, sx_idx, sz_idx
        na, nb, nc = ny, nx, nz
        st_a, st_b, st_c = nx, 1, nx * ny
    else:
        da, db, dc = dz, dx, dy
        sa, sb, sc = sz_idx, sx_idx, sy_idx
        na, nb, nc = nz, nx, ny
        st_a, st_b, st_c = nx * ny, 1, nx
    if da == 0.0:
        return 0.0
    bb = db / da
    bc = dc / da
    ab = sb - bb * sa
    ac = sc - bc * sa
    # m range where 0 <= a <= na-1, 0 <= b <= nb-1, 0 <= c <= nc-1 and in front of the source
    lo = 0.0
    hi = na - 1.0
    if da > 0.0:
        lo = max(lo, sa)
    else:
        hi = min(hi, sa)
    if bb != 0.0:
        m1 = (0.0 - ab) / bb
        m2 = (nb - 1.0 - ab) / bb
        if m1 > m2:
            m1, m2 = m2, m1
        lo = max(lo, m1)
        hi = min(hi, m2)
    elif ab < 0.0 or ab > nb - 1.0:
        return 0.0
    if bc != 0.0:
        m1 = (0.0 - ac) / bc
        m2 = (nc - 1.0 - ac) / bc
        if m1 > m2:
            m1, m2 = m2, m1
        lo = max(lo, m1)
        hi = min(hi, m2)
    elif ac < 0.0 or ac > nc - 1.0:
        return 0.0
    if hi < lo:
        return 0.0
    m0 = int(math.ceil(lo))
    m1i = int(math.floor(hi))
    acc = 0.0
    nb2 = nb - 2
    nc2 = nc - 2
    for m in range(m0, m1i + 1):
        fb = ab + bb * m
        fc = ac + bc * m
        ib = int(fb)
        ic = int(fc)
        if ib > nb2:
            ib = nb2
        if ib < 0:
            ib = 0
        if ic > nc2:
            ic = nc2
        if ic < 0:
            ic = 0
        wb = fb - ib
        wc = fc - ic
        base = m * st_a + ib * st_b + ic * st_c
        v0 = vol[base] + (vol[base + st_b] - vol[base]) * wb
        v1 = vol[base + st_c] + (vol[base + st_c + st_b] - vol[base + st_c]) * wb
        acc += v0 + (v1 - v0) * wc
    return acc * length_mm / abs(da)


@njit(parallel=True, **_JIT)
def project_volume(vol, nx, ny, nz, origin, spacing, src, det_origin, du, dv, out, r0, r1, c0, c1, accumulate):
    """Line integrals through a voxel volume for pixels [r0, r1) x [c0, c1) of `out`.

    `vol` is the flat (z, y, x)-ordered array (x fastest) of shape nz*ny*nx; voxel (i, j, k) centre
    is at origin + (i, j, k) * spacing (RAS mm); the volume is trilinear between voxel centres and
    zero outside them (give it a zero border). Joseph's method: the ray is sampled once per slice
    across its dominant axis with bilinear interpolation in the slice. Writes (or adds to, when
    `accumulate`) out[r, c]."""
    sxi = (src[0] - origin[0]) / spacing[0]
    syi = (src[1] - origin[1]) / spacing[1]
    szi = (src[2] - origin[2]) / spacing[2]
    for r in prange(r0, r1):
        for c in range(c0, c1):
            px = det_origin[0] + c * du[0] + r * dv[0]
            py = det_origin[1] + c * du[1] + r * dv[1]
            pz = det_origin[2] + c * du[2] + r * dv[2]
            wx = px - src[0]
            wy = py - src[1]
            wz = pz - src[2]
            length = math.sqrt(wx * wx + wy * wy + wz * wz)
            val = _ray_integral(vol, nx, ny, nz, sxi, syi, szi,
                                wx / spacing[0], wy / spacing[1], wz / spacing[2], length)
            if accumulate:
                out[r, c] += val
            else:
                out[r, c] = val


def numba_threads() -> int:
    return numba.get_num_threads()


# ---------------------------------------------------------------------------------------------
# Fast volume projection: perspective shear-warp (separable per-slice sampling + final warp)
# ---------------------------------------------------------------------------------------------
def _shear_project(vol, s_m, s_r, s_c, n_m, n_r, n_c, o_m, o_r, o_c, sp_m, sp_r, sp_c,
                  src_m, src_r, src_c, p_ref, c0, d_a, r0, d_b, acc, block):
    """Line integrals (per unit of the principal axis, in index units) of the rays from the source
    through an intermediate grid on the plane `p_ref` (world coordinate along the principal axis m):
    ray (b, a) passes through (r0 + b d_b, c0 + a d_a) there. Each ray is sampled once per slice of
    the principal axis with bilinear interpolation in the slice (Joseph's method); because every
    ray goes through the source, the column position depends only on (slice, a) and the row
    position only on (slice, b), so each slice is first interpolated along its columns for the
    rows that a block of rays needs, then along its rows.

    vol: flat volume with element (m, r, c) at m*s_m + r*s_r + c*s_c, zero on its border.
    acc (nb, na) float32 receives the sum of samples (multiply by the path length per slice)."""
    nb, na = acc.shape
    nblocks = (nb + block - 1) // block
    for bi in prange(nblocks):
        b0 = bi * block
        b1 = min(b0 + block, nb)
        ic = np.empty(na, dtype=np.int64)
        wc = np.empty(na, dtype=np.float32)
        X = np.empty((block + 3, na), dtype=np.float32)
        for b in range(b0, b1):
            for a in range(na):
                acc[b, a] = 0.0
        for m in range(1, n_m - 1):
            pm = o_m + m * sp_m
            den = p_ref - src_m
            t = (pm - src_m) / den
            if t <= 0.0:
                continue
            # columns
            al_c = (src_c + t * (c0 - src_c) - o_c) / sp_c
            be_c = t * d_a / sp_c
            # rows of this block
            al_r = (src_r + t * (r0 - src_r) - o_r) / sp_r
            be_r = t * d_b / sp_r
            f_lo = al_r + be_r * b0
            f_hi = al_r + be_r * (b1 - 1)
            if f_hi < 0.0 or f_lo > n_r - 1.0:
                continue
            k_lo = int(max(f_lo, 0.0))
            k_hi = int(min(f_hi, n_r - 1.0)) + 1
            if k_lo > n_r - 2:
                k_lo = n_r - 2
            if k_hi > n_r - 1:
                k_hi = n_r - 1
            if k_hi - k_lo + 1 > block + 3:
                k_hi = k_lo + block + 2
            # column weights (clamped onto the zero border outside)
            any_c = False
            for a in range(na):
                f = al_c + be_c * a
                if f <= 0.0:
                    ic[a] = 0
                    wc[a] = 0.0
                elif f >= n_c - 1.0:
                    ic[a] = n_c - 2
                    wc[a] = 1.0
                else:
                    i = int(f)
                    ic[a] = i
                    wc[a] = f - i
                    any_c = True
            if not any_c:
                continue
            base_m = m * s_m
            for k in range(k_lo, k_hi + 1):
                row = X[k - k_lo]
                base = base_m + k * s_r
                for a in range(na):
                    p0 = base + ic[a] * s_c
                    v0 = vol[p0]
                    row[a] = v0 + (vol[p0 + s_c] - v0) * wc[a]
            for b in range(b0, b1):
                f = al_r + be_r * b
                if f <= 0.0 or f >= n_r - 1.0:
                    continue  # on or beyond the zero border
                kk = int(f)
                w = np.float32(f - kk)
                j = kk - k_lo
                if j < 0 or j + 1 > k_hi - k_lo:
                    continue
                x0 = X[j]
                x1 = X[j + 1]
                out = acc[b]
                for a in range(na):
                    out[a] += x0[a] + (x1[a] - x0[a]) * w


shear_project = njit(parallel=True, **_JIT)(_shear_project)
shear_project_serial = njit(**_JIT)(_shear_project)


@njit(**_JIT)
def warp_to_detector(acc, axis_m, axis_r, axis_c, p_ref, c0, d_a, r0, d_b, sp_m, src, det_origin, du, dv,
                     out, r_lo, r_hi, c_lo, c_hi, accumulate):
    """Resample the intermediate ray sums `acc` (from `shear_project`) onto detector pixels
    [r_lo, r_hi) x [c_lo, c_hi): the pixel's ray meets the plane p_ref at (b, a); the value is the
    bilinear interpolation of the neighbouring rays times the path length per slice,
    sp_m |d| / |d_m|."""
    nb, na = acc.shape
    e0 = det_origin - src
    sm = src[axis_m]
    sr = src[axis_r]
    sc = src[axis_c]
    for r in range(r_lo, r_hi):
        for c in range(c_lo, c_hi):
            dx = e0[0] + c * du[0] + r * dv[0]
            dy = e0[1] + c * du[1] + r * dv[1]
            dz = e0[2] + c * du[2] + r * dv[2]
            if axis_m == 0:
                dm = dx
            elif axis_m == 1:
                dm = dy
            else:
                dm = dz
            if axis_r == 0:
                dr = dx
            elif axis_r == 1:
                dr = dy
            else:
                dr = dz
            if axis_c == 0:
                dc = dx
            elif axis_c == 1:
                dc = dy
            else:
                dc = dz
            val = 0.0
            if abs(dm) > 1e-9:
                t = (p_ref - sm) / dm
                qa = (sc + t * dc - c0) / d_a
                qb = (sr + t * dr - r0) / d_b
                if qa >= 0.0 and qb >= 0.0 and qa < na - 1 and qb < nb - 1:
                    a0 = int(qa)
                    b0 = int(qb)
                    fa = qa - a0
                    fb = qb - b0
                    v00 = acc[b0, a0]
                    v01 = acc[b0, a0 + 1]
                    v10 = acc[b0 + 1, a0]
                    v11 = acc[b0 + 1, a0 + 1]
                    v0 = v00 + (v01 - v00) * fa
                    v1 = v10 + (v11 - v10) * fa
                    ln = math.sqrt(dx * dx + dy * dy + dz * dz)
                    val = (v0 + (v1 - v0) * fb) * sp_m * ln / abs(dm)
            if accumulate:
                out[r, c] += val
            else:
                out[r, c] = val


@njit(**_JIT)
def ct_to_mu_zyx(hu, tissue, cap_lut, tissue_mu_lut, use_tissue, mu_water, bone_slope, air_hu, air_code,
                 i0, i1, j0, j1, k0, k1, out, k_off):
    """Attenuation (1/mm) of the box [i0, i1) x [j0, j1) x [k0, k1) of (I, J, K) volumes, written
    transposed into out[k - k0 + k_off, j - j0 + 1, i - i0 + 1] (a one-voxel border left free).

    CT numbers (use_tissue False): HU capped per tissue by cap_lut (contrast removal; a large value
    means no cap); mu = mu_water (1 + HU/1000) below 0 HU, mu_water (1 + bone_slope HU/1000) above;
    HU <= air_hu is air. Tissue classes (use_tissue True): mu = tissue_mu_lut[tissue]. Air tissue: 0."""
    T = 32  # tiles over (i, k): the transpose reads along k and writes along i
    for j in range(j0, j1):
        for ib in range(i0, i1, T):
            for kb in range(k0, k1, T):
                for i in range(ib, min(ib + T, i1)):
                    for k in range(kb, min(kb + T, k1)):
                        t = tissue[i, j, k]
                        if t == air_code:
                            v = 0.0
                        elif use_tissue:
                            v = tissue_mu_lut[t]
                        else:
                            h = float(hu[i, j, k])
                            cap = cap_lut[t]
                            if h > cap:
                                h = cap
                            if h <= air_hu:
                                v = 0.0
                            elif h > 0.0:
                                v = mu_water * (1.0 + bone_slope * h / 1000.0)
                            else:
                                v = mu_water * (1.0 + h / 1000.0)
                        out[k - k0 + k_off, j - j0 + 1, i - i0 + 1] = v


@njit(**_JIT)
def block_mean_3d(vol, fz, fy, fx, out):
    """Mean over fz x fy x fx blocks of a (Z, Y, X) volume; partial blocks at the far edges count
    their missing voxels as zero. out: (ceil(Z/fz), ceil(Y/fy), ceil(X/fx))."""
    Z, Y, X = vol.shape
    inv = 1.0 / (fz * fy * fx)
    for a in range(out.shape[0]):
        for b in range(out.shape[1]):
            for c in range(out.shape[2]):
                out[a, b, c] = 0.0
    for z in range(Z):
        a = z // fz
        for y in range(Y):
            b = y // fy
            row = out[a, b]
            src = vol[z, y]
            for x in range(X):
                row[x // fx] += src[x]
    for a in range(out.shape[0]):
        for b in range(out.shape[1]):
            for c in range(out.shape[2]):
                out[a, b, c] *= inv
