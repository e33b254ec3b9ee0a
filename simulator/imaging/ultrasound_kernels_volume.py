"""Numba kernels of the B-mode simulator, volume lookups: acoustic codes at fractional voxel
positions with smooth (cubic B-spline) boundaries, boundary normals, trilinear interpolation of
small float grids (the injectate fields). Pure functions of arrays.
"""
from __future__ import annotations

import math
import os

# Threads that wait for work sleep instead of spinning: on a busy 2-core machine (the GUI thread,
# the 3-D view, other imaging) spinning workers steal the core the frame is waiting for. Set
# before numba starts its OpenMP pool; an explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402


def _drop_stale_caches() -> None:
    """numba keys the on-disk cache of a compiled function on its own source file only: a kernel
    calling helpers from a sibling module would keep running the old helpers after that module
    changed (an update, an edit). So the caches of all the ultrasound kernel modules are dropped
    together whenever any of their sources differs from the stamp left beside the caches."""
    import glob
    import hashlib

    here = os.path.dirname(os.path.abspath(__file__))
    sources = sorted(glob.glob(os.path.join(here, "ultrasound_kernels*.py")))
    digest = hashlib.sha1()
    for f in sources:
        with open(f, "rb") as fh:
            digest.update(fh.read())
    stamp = digest.hexdigest()
    from numba.core import config

    cache_dir = config.CACHE_DIR or os.path.join(here, "__pycache__")
    mark = os.path.join(cache_dir, "ultrasound_kernels.stamp")
    try:
        with open(mark) as fh:
            if fh.read().strip() == stamp:
                return
    except OSError:
        pass
    try:
        for f in glob.glob(os.path.join(cache_dir, "**", "ultrasound_kernels*.nb[ic]"), recursive=True):
            os.remove(f)
        os.makedirs(cache_dir, exist_ok=True)
        with open(mark, "w") as fh:
            fh.write(stamp)
    except OSError:
        pass  # a read-only install: numba then caches elsewhere or not at all


_drop_stale_caches()

_OPTS = dict(cache=True, nogil=True, fastmath=True, error_model="numpy")
AIR_CODE = 0
GAS_CODE = 40
CALC_CODE = 41
COUPLING_CODE = 42
OUTSIDE_CODE = 43
LN10_OVER_10 = math.log(10.0) / 10.0
LN10_OVER_20 = math.log(10.0) / 20.0
NO_FLOW = 1.0e30  # velocity sentinel: no colour
ELEV_STEP = 4  # samples between lookups of the side elevation planes' classes
INJ_FLUID_CODE = 44
INJ_GAS_CODE = 45

# --------------------------------------------------------------------------------------------
# Volume and texture lookups
# --------------------------------------------------------------------------------------------
@njit(inline="always", **_OPTS)
def _nearest_code(tissue, x, y, z):
    i = int(math.floor(x + 0.5))
    j = int(math.floor(y + 0.5))
    k = int(math.floor(z + 0.5))
    if i < 0 or j < 0 or k < 0 or i >= tissue.shape[0] or j >= tissue.shape[1] or k >= tissue.shape[2]:
        return OUTSIDE_CODE
    return int(tissue[i, j, k])


@njit(inline="always", **_OPTS)
def _nearest_index(shape0, shape1, shape2, x, y, z):
    i = int(math.floor(x + 0.5))
    j = int(math.floor(y + 0.5))
    k = int(math.floor(z + 0.5))
    if i < 0 or j < 0 or k < 0 or i >= shape0 or j >= shape1 or k >= shape2:
        return -1, 0, 0
    return i, j, k


@njit(inline="always", **_OPTS)
def _bspline(f):
    """Cubic B-spline weights of the 4 nodes at offsets -1, 0, 1, 2 for a fraction f in [0, 1)."""
    g = 1.0 - f
    f2 = f * f
    f3 = f2 * f
    return g * g * g / 6.0, (3.0 * f3 - 6.0 * f2 + 4.0) / 6.0, (-3.0 * f3 + 3.0 * f2 + 3.0 * f + 1.0) / 6.0, f3 / 6.0


@njit(inline="always", **_OPTS)
def _bspline_d(f):
    """Derivatives of the cubic B-spline weights with respect to the position."""
    g = 1.0 - f
    return -0.5 * g * g, 0.5 * (3.0 * f * f - 4.0 * f), 0.5 * (-3.0 * f * f + 2.0 * f + 1.0), 0.5 * f * f


@njit(**_OPTS)
def _smooth_votes(tissue, x, y, z, ca, cb):
    """Cubic-B-spline-weighted fractions of classes ca and cb over the 4x4x4 neighbourhood, or
    (-1, -1) near the volume's edge."""
    i0 = int(math.floor(x))
    j0 = int(math.floor(y))
    k0 = int(math.floor(z))
    if i0 < 1 or j0 < 1 or k0 < 1 or i0 + 2 >= tissue.shape[0] or j0 + 2 >= tissue.shape[1] or k0 + 2 >= tissue.shape[2]:
        return -1.0, -1.0
    wx = _bspline(x - i0)
    wy = _bspline(y - j0)
    wz = _bspline(z - k0)
    fa = 0.0
    fb = 0.0
    for a in range(4):
        for b in range(4):
            wab = wx[a] * wy[b]
            for c in range(4):
                v = tissue[i0 - 1 + a, j0 - 1 + b, k0 - 1 + c]
                if v == ca:
                    fa += wab * wz[c]
                elif v == cb:
                    fb += wab * wz[c]
    return fa, fb


@njit(inline="always", **_OPTS)
def _trilinear_weights(fx, fy, fz):
    """The 8 trilinear weights of a cell's corners (i, j, k order: 000, 001, 010, ... 111) at the
    fractions (fx, fy, fz) inside it."""
    return ((1 - fx) * (1 - fy) * (1 - fz), (1 - fx) * (1 - fy) * fz, (1 - fx) * fy * (1 - fz),
            (1 - fx) * fy * fz, fx * (1 - fy) * (1 - fz), fx * (1 - fy) * fz, fx * fy * (1 - fz),
            fx * fy * fz)


@njit(inline="always", **_OPTS)
def _corners(tissue, i0, j0, k0):
    """The 8 codes of the voxel cell at (i0, j0, k0)."""
    return (tissue[i0, j0, k0], tissue[i0, j0, k0 + 1], tissue[i0, j0 + 1, k0], tissue[i0, j0 + 1, k0 + 1],
            tissue[i0 + 1, j0, k0], tissue[i0 + 1, j0, k0 + 1], tissue[i0 + 1, j0 + 1, k0],
            tissue[i0 + 1, j0 + 1, k0 + 1])


@njit(**_OPTS)
def _interp_code(tissue, x, y, z):
    """Tissue code at a fractional voxel position. Inside a class: that class. At a boundary:
    of the two classes with the largest trilinear weight among the 8 surrounding voxels, the one
    with the larger cubic-B-spline-weighted share of the 4x4x4 neighbourhood - a smooth, rounded
    boundary (about a 0.6-voxel Gaussian) instead of a voxel staircase or the facets of
    trilinear class voting; it rounds thin bones (ribs) cut by thick CT slices."""
    i0 = int(math.floor(x))
    j0 = int(math.floor(y))
    k0 = int(math.floor(z))
    if i0 < 0 or j0 < 0 or k0 < 0 or i0 + 1 >= tissue.shape[0] or j0 + 1 >= tissue.shape[1] or k0 + 1 >= tissue.shape[2]:
        return _nearest_code(tissue, x, y, z)
    c0, c1, c2, c3, c4, c5, c6, c7 = _corners(tissue, i0, j0, k0)
    if c0 == c1 and c0 == c2 and c0 == c3 and c0 == c4 and c0 == c5 and c0 == c6 and c0 == c7:
        return int(c0)
    codes = (c0, c1, c2, c3, c4, c5, c6, c7)
    ws = _trilinear_weights(x - i0, y - j0, z - k0)
    best = -1
    best_w = -1.0
    second = -1
    second_w = -1.0
    for a in range(8):
        ca = int(codes[a])
        if ca == best or ca == second:
            continue
        tot = 0.0
        for b in range(8):
            if codes[b] == ca:
                tot += ws[b]
        if tot > best_w:
            second = best
            second_w = best_w
            best_w = tot
            best = ca
        elif tot > second_w:
            second_w = tot
            second = ca
    if second < 0:
        return best
    fa, fb = _smooth_votes(tissue, x, y, z, best, second)
    if fb > fa:
        return second
    return best


@njit(**_OPTS)
def _classify_line(l, tissue, pos, out_code):
    """The acoustic code of every sample of line l. Inside a class: that class. In a boundary
    cell (the 8 voxels around the sample differ): of the classes among those 8, the one with the
    largest cubic-B-spline-weighted share of the 4x4x4 neighbourhood - a smooth, rounded boundary
    (about a 0.6-voxel Gaussian) rather than a voxel staircase or trilinear facets; it rounds thin
    bones (ribs) cut by thick CT slices. `pos` (ns, 3): the line's sample positions in voxel
    units (the tissue each sample shows, after the probe's compression and the injectate's
    displacement). Consecutive samples share a voxel cell, so each cell's classes and
    neighbourhood bit patterns are gathered once. Within one voxel of the volume's edge: trilinear
    class voting; outside: OUTSIDE_CODE."""
    ns = out_code.shape[1]
    n0, n1, n2 = tissue.shape
    cls = np.empty(8, np.int64)
    pat = np.zeros((8, 16), np.int64)
    tz = np.empty(16)
    ci = -(1 << 40)
    cj = 0
    ck = 0
    mode = 0
    ucode = 0
    ncls = 0
    for s in range(ns):
        x = pos[s, 0]
        y = pos[s, 1]
        z = pos[s, 2]
        fi = math.floor(x)
        fj = math.floor(y)
        fk = math.floor(z)
        i0 = int(fi)
        j0 = int(fj)
        k0 = int(fk)
        if i0 != ci or j0 != cj or k0 != ck:
            ci = i0
            cj = j0
            ck = k0
            if i0 < 0 or j0 < 0 or k0 < 0 or i0 + 1 >= n0 or j0 + 1 >= n1 or k0 + 1 >= n2:
                mode = 3
            else:
                c0, c1, c2, c3, c4, c5, c6, c7 = _corners(tissue, i0, j0, k0)
                if c0 == c1 and c0 == c2 and c0 == c3 and c0 == c4 and c0 == c5 and c0 == c6 and c0 == c7:
                    mode = 0
                    ucode = int(c0)
                elif i0 < 1 or j0 < 1 or k0 < 1 or i0 + 2 >= n0 or j0 + 2 >= n1 or k0 + 2 >= n2:
                    mode = 2
                else:
                    mode = 1
                    corners = (c0, c1, c2, c3, c4, c5, c6, c7)
                    ncls = 0
                    for a in range(8):
                        ca = int(corners[a])
                        new = True
                        for q in range(ncls):
                            if cls[q] == ca:
                                new = False
                        if new:
                            cls[ncls] = ca
                            ncls += 1
                    for q in range(ncls):
                        for ab in range(16):
                            pat[q, ab] = 0
                    for a in range(4):
                        for b in range(4):
                            for c in range(4):
                                v = tissue[i0 - 1 + a, j0 - 1 + b, k0 - 1 + c]
                                for q in range(ncls):
                                    if v == cls[q]:
                                        pat[q, a * 4 + b] |= 1 << c
                                        break
        if mode == 0:
            out_code[l, s] = ucode
        elif mode == 3:
            out_code[l, s] = _nearest_code(tissue, x, y, z)
        elif mode == 2:
            out_code[l, s] = _interp_code(tissue, x, y, z)
        else:
            wx0, wx1, wx2, wx3 = _bspline(x - fi)
            wy0, wy1, wy2, wy3 = _bspline(y - fj)
            wz0, wz1, wz2, wz3 = _bspline(z - fk)
            for m in range(16):
                tz[m] = (wz0 * (m & 1) + wz1 * ((m >> 1) & 1) + wz2 * ((m >> 2) & 1) + wz3 * ((m >> 3) & 1))
            best = -1
            best_f = -1.0
            for q in range(ncls):
                f = (wx0 * (wy0 * tz[pat[q, 0]] + wy1 * tz[pat[q, 1]] + wy2 * tz[pat[q, 2]] + wy3 * tz[pat[q, 3]])
                     + wx1 * (wy0 * tz[pat[q, 4]] + wy1 * tz[pat[q, 5]] + wy2 * tz[pat[q, 6]] + wy3 * tz[pat[q, 7]])
                     + wx2 * (wy0 * tz[pat[q, 8]] + wy1 * tz[pat[q, 9]] + wy2 * tz[pat[q, 10]] + wy3 * tz[pat[q, 11]])
                     + wx3 * (wy0 * tz[pat[q, 12]] + wy1 * tz[pat[q, 13]] + wy2 * tz[pat[q, 14]] + wy3 * tz[pat[q, 15]]))
                if f > best_f:
                    best_f = f
                    best = cls[q]
            out_code[l, s] = best


@njit(**_OPTS)
def _smooth_gradient(tissue, x, y, z, code):
    """Gradient (per voxel) of the cubic-B-spline-smoothed indicator (class == code); zeros near
    the volume's edge."""
    i0 = int(math.floor(x))
    j0 = int(math.floor(y))
    k0 = int(math.floor(z))
    if i0 < 1 or j0 < 1 or k0 < 1 or i0 + 2 >= tissue.shape[0] or j0 + 2 >= tissue.shape[1] or k0 + 2 >= tissue.shape[2]:
        return 0.0, 0.0, 0.0
    fx = x - i0
    fy = y - j0
    fz = z - k0
    wx = _bspline(fx)
    wy = _bspline(fy)
    wz = _bspline(fz)
    dx = _bspline_d(fx)
    dy = _bspline_d(fy)
    dz = _bspline_d(fz)
    gx = 0.0
    gy = 0.0
    gz = 0.0
    for a in range(4):
        for b in range(4):
            for c in range(4):
                if tissue[i0 - 1 + a, j0 - 1 + b, k0 - 1 + c] == code:
                    gx += dx[a] * wy[b] * wz[c]
                    gy += wx[a] * dy[b] * wz[c]
                    gz += wx[a] * wy[b] * dz[c]
    return gx, gy, gz



@njit(inline="always", **_OPTS)
def _cell(n0, n1, n2, gx, gy, gz):
    """The grid cell (i, j, k) holding grid coordinates inside [0, n - 1] and the fractions in it."""
    i = min(int(gx), n0 - 2)
    j = min(int(gy), n1 - 2)
    k = min(int(gz), n2 - 2)
    return i, j, k, gx - i, gy - j, gz - k


@njit(inline="always", **_OPTS)
def _trilinear(data, off, n0, n1, n2, nc, c, gx, gy, gz):
    """Channel c of a (n0, n1, n2, nc) float grid stored flat from `off`, trilinear at grid
    coordinates (gx, gy, gz); 0 outside [0, n - 1] on any axis."""
    if gx < 0.0 or gy < 0.0 or gz < 0.0 or gx > n0 - 1.0 or gy > n1 - 1.0 or gz > n2 - 1.0:
        return 0.0
    i, j, k, fx, fy, fz = _cell(n0, n1, n2, gx, gy, gz)
    s1 = nc
    s0 = n2 * nc
    b = off + ((i * n1 + j) * n2 + k) * nc + c
    c00 = data[b] * (1 - fz) + data[b + s1] * fz
    c01 = data[b + s0] * (1 - fz) + data[b + s0 + s1] * fz
    c10 = data[b + n1 * s0] * (1 - fz) + data[b + n1 * s0 + s1] * fz
    c11 = data[b + n1 * s0 + s0] * (1 - fz) + data[b + n1 * s0 + s0 + s1] * fz
    return (c00 * (1 - fy) + c01 * fy) * (1 - fx) + (c10 * (1 - fy) + c11 * fy) * fx


@njit(inline="always", **_OPTS)
def _trilinear3(data, off, n0, n1, n2, gx, gy, gz):
    """The 3 channels of a (n0, n1, n2, 3) float grid stored flat from `off`, trilinear at grid
    coordinates inside [0, n - 1] (the caller checks)."""
    i, j, k, fx, fy, fz = _cell(n0, n1, n2, gx, gy, gz)
    s0 = n2 * 3
    s1 = n1 * s0
    b = off + ((i * n1 + j) * n2 + k) * 3
    w000, w001, w010, w011, w100, w101, w110, w111 = _trilinear_weights(fx, fy, fz)
    out0 = 0.0
    out1 = 0.0
    out2 = 0.0
    for c in range(3):
        q = b + c
        v = (w000 * data[q] + w001 * data[q + 3] + w010 * data[q + s0] + w011 * data[q + s0 + 3]
             + w100 * data[q + s1] + w101 * data[q + s1 + 3] + w110 * data[q + s1 + s0] + w111 * data[q + s1 + s0 + 3])
        if c == 0:
            out0 = v
        elif c == 1:
            out1 = v
        else:
            out2 = v
    return out0, out1, out2
