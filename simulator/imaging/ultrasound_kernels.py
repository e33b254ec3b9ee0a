"""Numba kernels of the B-mode simulator: pure functions of arrays (no Python objects).

Beam-space arrays are (n_lines, n_samples), C order, so each scan line is contiguous. The stages:

A `_sample_line`    acoustic code volume (tissue classes with gas and calcification from HU, see
                    `ultrasound.acoustic_codes`) -> code per sample on the central plane
                    (`_classify_line`: smooth cubic-B-spline boundaries) and backscatter amplitude
                    (3 Gaussian-weighted elevation planes, structure textures for muscle/fat/nerve).
  `splat`           needle / point reflectors into a point-signal array (bilinear).
B `_propagate_line` along depth: scatter signal = backscatter x tissue-fixed speckle (evaluated
                    only where it can show) + point signal; two-way attenuation; interface echoes
                    (specular lobe around the smoothed 3-D boundary normal + diffuse part);
                    transmission product (shadowing); gas: total reflection, A-lines, lung haze.
                    Written transposed, (n_samples, n_lines).
  `beam_lines`      A then B for every line (one parallel region).
C `psf_envelope`    axial Gaussian and depth-dependent lateral Gaussian PSF, electronic noise,
                    envelope |.| and dB (log compression with TGC and gain), row by row.
D `scan_convert`    precomputed bilinear gather of the dB image to the display grid, dynamic range,
                    grey map, 8-bit display.
E `doppler_beam` / `doppler_image`  colour-flow velocities in vessels and their RGBA overlay.

The speckle is complex Gaussian (random phase), so the envelope of the PSF-filtered field is
Rayleigh. `ultrasound_reference` is the same model in plain numpy (baseline and cross-check).
"""
from __future__ import annotations

import math
import os

# Threads that wait for work sleep instead of spinning: on a busy 2-core machine (the GUI thread,
# the 3-D view, other imaging) spinning workers steal the core the frame is waiting for. Set
# before numba starts its OpenMP pool; an explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

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
    c0 = tissue[i0, j0, k0]
    c1 = tissue[i0, j0, k0 + 1]
    c2 = tissue[i0, j0 + 1, k0]
    c3 = tissue[i0, j0 + 1, k0 + 1]
    c4 = tissue[i0 + 1, j0, k0]
    c5 = tissue[i0 + 1, j0, k0 + 1]
    c6 = tissue[i0 + 1, j0 + 1, k0]
    c7 = tissue[i0 + 1, j0 + 1, k0 + 1]
    if c0 == c1 and c0 == c2 and c0 == c3 and c0 == c4 and c0 == c5 and c0 == c6 and c0 == c7:
        return int(c0)
    fx = x - i0
    fy = y - j0
    fz = z - k0
    w0 = (1 - fx) * (1 - fy) * (1 - fz)
    w1 = (1 - fx) * (1 - fy) * fz
    w2 = (1 - fx) * fy * (1 - fz)
    w3 = (1 - fx) * fy * fz
    w4 = fx * (1 - fy) * (1 - fz)
    w5 = fx * (1 - fy) * fz
    w6 = fx * fy * (1 - fz)
    w7 = fx * fy * fz
    codes = (c0, c1, c2, c3, c4, c5, c6, c7)
    ws = (w0, w1, w2, w3, w4, w5, w6, w7)
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
def _classify_line(l, tissue, o_vox, d_vox, out_code):
    """The acoustic code of every sample of line l. Inside a class: that class. In a boundary
    cell (the 8 voxels around the sample differ): of the classes among those 8, the one with the
    largest cubic-B-spline-weighted share of the 4x4x4 neighbourhood - a smooth, rounded boundary
    (about a 0.6-voxel Gaussian) rather than a voxel staircase or trilinear facets; it rounds thin
    bones (ribs) cut by thick CT slices. Consecutive samples share a voxel cell, so each cell's
    classes and neighbourhood bit patterns are gathered once. Within one voxel of the volume's
    edge: trilinear class voting; outside: OUTSIDE_CODE."""
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
        x = o_vox[l, 0] + s * d_vox[l, 0]
        y = o_vox[l, 1] + s * d_vox[l, 1]
        z = o_vox[l, 2] + s * d_vox[l, 2]
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
                c0 = tissue[i0, j0, k0]
                c1 = tissue[i0, j0, k0 + 1]
                c2 = tissue[i0, j0 + 1, k0]
                c3 = tissue[i0, j0 + 1, k0 + 1]
                c4 = tissue[i0 + 1, j0, k0]
                c5 = tissue[i0 + 1, j0, k0 + 1]
                c6 = tissue[i0 + 1, j0 + 1, k0]
                c7 = tissue[i0 + 1, j0 + 1, k0 + 1]
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


def block_interleaved_order(n: int, block: int = 16) -> np.ndarray:
    """Lines in blocks of `block` (a cache line of float32 in the transposed arrays): even blocks
    first, then odd ones - each thread's static half gets every other block."""
    idx = np.arange(n)
    return np.concatenate([idx[(idx // block) % 2 == 0], idx[(idx // block) % 2 == 1]]).astype(np.int64)


@njit(inline="always", **_OPTS)
def _interleave(k, n):  # rows: each row is its own cache lines
    """Task k of n -> item: the first half of the tasks take the even items, the second half the
    odd ones. The threads' static halves of a prange then get every other line / row, which
    balances them when the cost varies across the image (shadows, deep rows, the fan's corners)."""
    half = (n + 1) // 2
    if k < half:
        return 2 * k
    return 2 * (k - half) + 1


@njit(inline="always", **_OPTS)
def _fmix(h):
    """32-bit avalanche mix (MurmurHash3 finaliser); h in [0, 2^32)."""
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h


@njit(inline="always", **_OPTS)
def _speckle(gtab, seed, u, v, w):
    """Complex scatterer amplitude at lattice coordinates (u, v, w): a random complex Gaussian
    value per lattice node, interpolated linearly over the Kuhn tetrahedron of the unit cube that
    holds the point (4 nodes instead of trilinear's 8, same continuity). Node values come from a
    hash of the node's integer coordinates (and the seed) indexing a table of Gaussian quantiles:
    the field is fixed in space, unbounded and aperiodic, and costs no memory traffic."""
    fu = math.floor(u)
    fv = math.floor(v)
    fw = math.floor(w)
    fx = u - fu
    fy = v - fv
    fz = w - fw
    i = int(fu)
    j = int(fv)
    k = int(fw)
    # Order the fractions: the tetrahedron runs (0,0,0) -> +e_a -> +e_b -> (1,1,1).
    if fx >= fy:
        if fy >= fz:  # x y z
            i1, j1, k1, i2, j2, k2 = 1, 0, 0, 1, 1, 0
            w1, w2, w3 = fx - fy, fy - fz, fz
            w0 = 1.0 - fx
        elif fx >= fz:  # x z y
            i1, j1, k1, i2, j2, k2 = 1, 0, 0, 1, 0, 1
            w1, w2, w3 = fx - fz, fz - fy, fy
            w0 = 1.0 - fx
        else:  # z x y
            i1, j1, k1, i2, j2, k2 = 0, 0, 1, 1, 0, 1
            w1, w2, w3 = fz - fx, fx - fy, fy
            w0 = 1.0 - fz
    else:
        if fx >= fz:  # y x z
            i1, j1, k1, i2, j2, k2 = 0, 1, 0, 1, 1, 0
            w1, w2, w3 = fy - fx, fx - fz, fz
            w0 = 1.0 - fy
        elif fy >= fz:  # y z x
            i1, j1, k1, i2, j2, k2 = 0, 1, 0, 0, 1, 1
            w1, w2, w3 = fy - fz, fz - fx, fx
            w0 = 1.0 - fy
        else:  # z y x
            i1, j1, k1, i2, j2, k2 = 0, 0, 1, 0, 1, 1
            w1, w2, w3 = fz - fy, fy - fx, fx
            w0 = 1.0 - fz
    a0 = ((i * 0x8DA6B343) ^ seed) & 0xFFFFFFFF
    b0 = (j * 0xD8163841) & 0xFFFFFFFF
    c0 = (k * 0xCB1AB31F) & 0xFFFFFFFF
    h = _fmix(a0 ^ b0 ^ c0)
    re = w0 * gtab[h & 255]
    im = w0 * gtab[(h >> 8) & 255]
    h = _fmix(((((i + i1) * 0x8DA6B343) ^ seed) & 0xFFFFFFFF) ^ (((j + j1) * 0xD8163841) & 0xFFFFFFFF)
              ^ (((k + k1) * 0xCB1AB31F) & 0xFFFFFFFF))
    re += w1 * gtab[h & 255]
    im += w1 * gtab[(h >> 8) & 255]
    h = _fmix(((((i + i2) * 0x8DA6B343) ^ seed) & 0xFFFFFFFF) ^ (((j + j2) * 0xD8163841) & 0xFFFFFFFF)
              ^ (((k + k2) * 0xCB1AB31F) & 0xFFFFFFFF))
    re += w2 * gtab[h & 255]
    im += w2 * gtab[(h >> 8) & 255]
    h = _fmix(((((i + 1) * 0x8DA6B343) ^ seed) & 0xFFFFFFFF) ^ (((j + 1) * 0xD8163841) & 0xFFFFFFFF)
              ^ (((k + 1) * 0xCB1AB31F) & 0xFFFFFFFF))
    re += w3 * gtab[h & 255]
    im += w3 * gtab[(h >> 8) & 255]
    return re, im


@njit(**_OPTS)
def _speckle_beam_sample(gtab, seed, u, v, w, lu, lv, lw, n, step, eu, ev, ew, spk_z, spk_w, s):
    """The scatterer field seen by one beam sample: evaluations spread across the line's lateral
    spacing (n of them, `step` mm apart, lateral lattice vector lu..) and across the slice (offsets
    spk_z[:, s] mm along the elevation lattice vector eu.., weights spk_w[:, s]). The beam
    integrates scatterers over its width and thickness, so the sampled field changes smoothly
    when the probe moves by less than a line or slides in elevation by less than the slice."""
    re = 0.0
    im = 0.0
    nq = spk_z.shape[0]
    if n == 1:
        for q in range(nq):
            z = spk_z[q, s]
            r, i = _speckle(gtab, seed, u + z * eu, v + z * ev, w + z * ew)
            re += spk_w[q, s] * r
            im += spk_w[q, s] * i
        return re, im
    off = -0.5 * (n - 1) * step
    for q in range(nq):
        z = spk_z[q, s]
        uq = u + z * eu
        vq = v + z * ev
        wq = w + z * ew
        wt = spk_w[q, s] / n
        for k in range(n):
            t = off + k * step
            r, i = _speckle(gtab, seed, uq + t * lu, vq + t * lv, wq + t * lw)
            re += wt * r
            im += wt * i
    return re, im


@njit(**_OPTS)
def _speckle_line(gtab, seed, u0, v0, w0, du, dv, dw, lu, lv, lw, sub_n, sub_step, elev_t, spk_z, spk_w,
                  stride, out_re, out_im):
    """The speckle field along one line (lattice start u0.., step du.. per sample, lateral unit
    lu.. per mm, elevation unit elev_t per mm, elevation offsets spk_z[:, s] mm with weights
    spk_w[:, s]). When the lattice cell spans two samples or more (stride 2), the field is
    evaluated at even samples and linearly interpolated in between."""
    ns = out_re.shape[0]
    eu = elev_t[0]
    ev = elev_t[1]
    ew = elev_t[2]
    for s in range(0, ns, stride):
        re, im = _speckle_beam_sample(gtab, seed, u0 + s * du, v0 + s * dv, w0 + s * dw, lu, lv, lw,
                                      sub_n[s], sub_step[s], eu, ev, ew, spk_z, spk_w, s)
        out_re[s] = re
        out_im[s] = im
    if stride == 1:
        return
    for s in range(1, ns, 2):
        if s + 1 < ns:
            out_re[s] = 0.5 * (out_re[s - 1] + out_re[s + 1])
            out_im[s] = 0.5 * (out_im[s - 1] + out_im[s + 1])
        else:
            re, im = _speckle_beam_sample(gtab, seed, u0 + s * du, v0 + s * dv, w0 + s * dw, lu, lv, lw,
                                          sub_n[s], sub_step[s], eu, ev, ew, spk_z, spk_w, s)
            out_re[s] = re
            out_im[s] = im


@njit(inline="always", **_OPTS)
def _septum(t, u, v):
    """2-D uint8 septum texture: bilinear strength (0..1) and the nearest texel's normal (u, v)."""
    n0 = t.shape[0]
    n1 = t.shape[1]
    i0 = int(math.floor(u))
    j0 = int(math.floor(v))
    fx = u - i0
    fy = v - j0
    i0 = i0 % n0
    j0 = j0 % n1
    i1 = (i0 + 1) % n0
    j1 = (j0 + 1) % n1
    m = ((t[i0, j0, 0] * (1 - fy) + t[i0, j1, 0] * fy) * (1 - fx)
         + (t[i1, j0, 0] * (1 - fy) + t[i1, j1, 0] * fy) * fx) * (1.0 / 255.0)
    ii = i1 if fx >= 0.5 else i0
    jj = j1 if fy >= 0.5 else j0
    return m, t[ii, jj, 1] * (1.0 / 127.0) - 1.0, t[ii, jj, 2] * (1.0 / 127.0) - 1.0


@njit(inline="always", **_OPTS)
def _facing(c, diffuse):
    """Angle weight of a specular sheet: diffuse + (1 - diffuse) |cos|^6."""
    c2 = c * c
    return diffuse + (1.0 - diffuse) * c2 * c2 * c2


@njit(inline="always", **_OPTS)
def _tex2(t, u, v):
    n0 = t.shape[0]
    n1 = t.shape[1]
    i0 = int(math.floor(u))
    j0 = int(math.floor(v))
    fx = u - i0
    fy = v - j0
    i0 = i0 % n0
    j0 = j0 % n1
    i1 = (i0 + 1) % n0
    j1 = (j0 + 1) % n1
    return (t[i0, j0] * (1 - fy) + t[i0, j1] * fy) * (1 - fx) + (t[i1, j0] * (1 - fy) + t[i1, j1] * fy) * fx


# --------------------------------------------------------------------------------------------
# A: sampling
# --------------------------------------------------------------------------------------------
@njit(**_OPTS)
def _sample_line(
    l,
    tissue, labels,
    o_vox, d_vox, e_vox,
    o_w, d_w, beam_w,
    elev_z, elev_w,
    b_lo, b_hi, b_mean, tex_kind, gas, septum_diffuse,
    label_axes,
    muscle, muscle_inv, nerve, nerve_inv, fat, fat_inv,
    out_code, out_b,
):
    """Per sample: the acoustic code on the central plane and the backscatter amplitude (tissue
    level, structure texture, elevation planes); 1 for gas (the lung haze's unit level)."""
    nl, ns = out_code.shape
    n_planes = elev_z.shape[0]
    n_lab = label_axes.shape[0]
    _classify_line(l, tissue, o_vox, d_vox, out_code)
    side = np.zeros(max(n_planes, 1), np.int64)
    for s in range(ns):
        x = o_vox[l, 0] + s * d_vox[l, 0]
        y = o_vox[l, 1] + s * d_vox[l, 1]
        z = o_vox[l, 2] + s * d_vox[l, 2]
        code = int(out_code[l, s])
        px = o_w[l, 0] + s * d_w[l, 0]
        py = o_w[l, 1] + s * d_w[l, 1]
        pz = o_w[l, 2] + s * d_w[l, 2]
        kind = tex_kind[code]
        if gas[code] != 0:
            b = 1.0  # unit speckle: used for the lung haze below a gas interface
        elif kind == 0:
            b = b_lo[code]
        else:
            m = 0.0
            bx = beam_w[l, 0]
            by = beam_w[l, 1]
            bz = beam_w[l, 2]
            i, j, k = _nearest_index(labels.shape[0], labels.shape[1], labels.shape[2], x, y, z)
            lab = 0
            if i >= 0:
                lab = int(labels[i, j, k])
            if lab >= n_lab:
                lab = 0
            e1x = label_axes[lab, 0]
            e1y = label_axes[lab, 1]
            e1z = label_axes[lab, 2]
            e2x = label_axes[lab, 3]
            e2y = label_axes[lab, 4]
            e2z = label_axes[lab, 5]
            u = px * e1x + py * e1y + pz * e1z
            v = px * e2x + py * e2y + pz * e2z
            if kind == 2:
                m = _tex2(nerve, u * nerve_inv, v * nerve_inv)
            else:
                if kind == 1:
                    m, nu, nv = _septum(muscle, u * muscle_inv, v * muscle_inv)
                else:
                    m, nu, nv = _septum(fat, u * fat_inv, v * fat_inv)
                cb = (nu * e1x + nv * e2x) * bx + (nu * e1y + nv * e2y) * by + (nu * e1z + nv * e2z) * bz
                m *= _facing(abs(cb), septum_diffuse)
            b = b_lo[code] + (b_hi[code] - b_lo[code]) * m
        if n_planes > 1:
            # The side planes' classes are looked up every ELEV_STEP samples (they only shade the
            # backscatter level; partial volume varies over the slice thickness, not per sample).
            if s % ELEV_STEP == 0:
                for q in range(1, n_planes):
                    zz = elev_z[q, s]
                    side[q] = _nearest_code(tissue, x + zz * e_vox[0], y + zz * e_vox[1], z + zz * e_vox[2])
            if gas[code] == 0:
                acc = elev_w[0] * b
                for q in range(1, n_planes):
                    c2 = side[q]
                    if c2 == code:
                        acc += elev_w[q] * b
                    elif gas[c2] == 0:
                        acc += elev_w[q] * b_mean[c2]
                b = acc
        out_b[l, s] = b


@njit(parallel=True, **_OPTS)
def speckle_beam(o_t, d_t, lat_t, sub_n, sub_step, elev_t, spk_z, spk_w, speckle, seed, stride, out_re, out_im):
    """Unit-amplitude speckle along lines (for calibrating the speckle level)."""
    nl, ns = out_re.shape
    for _k in prange(nl):
        l = _interleave(_k, nl)
        _speckle_line(speckle, seed, o_t[l, 0], o_t[l, 1], o_t[l, 2], d_t[l, 0], d_t[l, 1], d_t[l, 2],
                      lat_t[l, 0], lat_t[l, 1], lat_t[l, 2], sub_n, sub_step, elev_t, spk_z, spk_w, stride, out_re[l], out_im[l])


@njit(**_OPTS)
def splat(line_f, sample_f, amp_re, amp_im, out_re, out_im):
    """Add point contributions with bilinear weights at fractional (line, sample) positions."""
    nl, ns = out_re.shape
    for p in range(line_f.shape[0]):
        lf = line_f[p]
        sf = sample_f[p]
        l0 = int(math.floor(lf))
        s0 = int(math.floor(sf))
        fl = lf - l0
        fs = sf - s0
        for dl in range(2):
            ll = l0 + dl
            if ll < 0 or ll >= nl:
                continue
            wl = fl if dl == 1 else 1.0 - fl
            for ds in range(2):
                ss = s0 + ds
                if ss < 0 or ss >= ns:
                    continue
                w = wl * (fs if ds == 1 else 1.0 - fs)
                out_re[ll, ss] += w * amp_re[p]
                out_im[ll, ss] += w * amp_im[p]


# --------------------------------------------------------------------------------------------
# B: propagation along each line + axial PSF
# --------------------------------------------------------------------------------------------
@njit(parallel=True, **_OPTS)
def transpose(in_re, in_im, out_re, out_im):
    """(nl, ns) -> (ns, nl)."""
    nl, ns = in_re.shape
    for _k in prange(ns):
        s = _interleave(_k, ns)
        for l in range(nl):
            out_re[s, l] = in_re[l, s]
            out_im[s, l] = in_im[l, s]


@njit(inline="always", **_OPTS)
def _spk_eval(s, gtab, seed, l, o_t, d_t, lat_t, sub_n, sub_step, elev_t, spk_z, spk_w):
    return _speckle_beam_sample(gtab, seed, o_t[l, 0] + s * d_t[l, 0], o_t[l, 1] + s * d_t[l, 1],
                                o_t[l, 2] + s * d_t[l, 2], lat_t[l, 0], lat_t[l, 1], lat_t[l, 2],
                                sub_n[s], sub_step[s], elev_t[0], elev_t[1], elev_t[2], spk_z, spk_w, s)


@njit(**_OPTS)
def _add_speckle(gbuf, sig_re, sig_im, stride, gtab, seed, l, o_t, d_t, lat_t, sub_n, sub_step, elev_t, spk_z, spk_w):
    """sig += gbuf x speckle along line l, evaluating the speckle field (as `_speckle_line`) only
    where gbuf is non-zero: at the samples themselves (stride 1) or at the even samples around
    them, interpolated at odd ones (stride 2)."""
    ns = gbuf.shape[0]
    if stride == 1:
        for s in range(ns):
            if gbuf[s] > 0.0:
                r, i = _spk_eval(s, gtab, seed, l, o_t, d_t, lat_t, sub_n, sub_step, elev_t, spk_z, spk_w)
                sig_re[s] += gbuf[s] * r
                sig_im[s] += gbuf[s] * i
        return
    last_r = 0.0
    last_i = 0.0
    last_s = -10
    for s in range(0, ns, 2):
        need = gbuf[s] > 0.0 or (s >= 1 and gbuf[s - 1] > 0.0) or (s + 1 < ns and gbuf[s + 1] > 0.0)
        if not need:
            continue
        r, i = _spk_eval(s, gtab, seed, l, o_t, d_t, lat_t, sub_n, sub_step, elev_t, spk_z, spk_w)
        if gbuf[s] > 0.0:
            sig_re[s] += gbuf[s] * r
            sig_im[s] += gbuf[s] * i
        if s >= 1 and gbuf[s - 1] > 0.0:
            if last_s == s - 2:
                r0 = last_r
                i0 = last_i
            else:
                r0, i0 = _spk_eval(s - 2, gtab, seed, l, o_t, d_t, lat_t, sub_n, sub_step, elev_t, spk_z, spk_w)
            sig_re[s - 1] += gbuf[s - 1] * 0.5 * (r0 + r)
            sig_im[s - 1] += gbuf[s - 1] * 0.5 * (i0 + i)
        last_r = r
        last_i = i
        last_s = s
    if ns % 2 == 0 and gbuf[ns - 1] > 0.0:  # the last odd sample has no right neighbour
        r, i = _spk_eval(ns - 1, gtab, seed, l, o_t, d_t, lat_t, sub_n, sub_step, elev_t, spk_z, spk_w)
        sig_re[ns - 1] += gbuf[ns - 1] * r
        sig_im[ns - 1] += gbuf[ns - 1] * i


@njit(**_OPTS)
def _propagate_line(
    l,
    code_arr, bsc, extra_re, extra_im, has_extra,
    tissue,
    o_vox, d_vox, beam_w, inv_spacing,
    o_t, d_t, lat_t, sub_n, sub_step, elev_t, spk_z, spk_w, spk_scale, stride, spk_thresh,
    speckle, seed,
    z_lut, step_db_lut, half_lut, gas_lut, soft_lut, rough_lut, wall_lut,
    n_coupling, soft_step_db,
    lobe_sigma_rad, rough_coherent, rough_random,
    probe_reflect, n_alines, haze_level, haze_decay_samples,
    out_re, out_im, att_soft, alive,
):
    """Per line along depth. step_db_lut[c]: one-way attenuation (dB) across one sample of
    tissue c at this frequency; half_lut[c] = 10^(-step_db/20), the two-way amplitude factor
    across half a sample. The scatter signal is backscatter (bsc) x tissue-fixed speckle x
    spk_scale, plus point contributions (needle, reflectors) in extra_re/im; the speckle is only
    evaluated where its echo would reach spk_thresh (not in shadows, below gas, or deeper than
    the noise floor). Outputs (the echo signal before the PSF) are (ns, nl), transposed for the
    PSF stage."""
    nl, ns = code_arr.shape
    inv2s2 = 0.5 / (lobe_sigma_rad * lobe_sigma_rad)
    sig_re = np.zeros(ns, np.float32)
    sig_im = np.zeros(ns, np.float32)
    gbuf = np.zeros(ns)  # speckle multiplier of each sample (0: the speckle does not show)
    prev = COUPLING_CODE
    tissue_seen = False
    trans = 1.0  # two-way amplitude transmission through the interfaces above
    amp_top = 1.0  # two-way amplitude (attenuation x transmission) at the top of sample s
    soft = 0.0
    dead = False
    gas_s = -1
    gas_amp = 0.0
    gas_soft = 0.0
    line_alive = 1
    for s in range(ns):
        c = int(code_arr[l, s])
        if not tissue_seen:
            if c == OUTSIDE_CODE:
                c = AIR_CODE  # a face beyond the volume's edge is in air
            if gas_lut[c] != 0 and s < n_coupling:
                c = COUPLING_CODE
            elif gas_lut[c] != 0 and c == AIR_CODE:
                dead = True  # the probe face is in air beyond the coupling gel
                line_alive = 0
            elif c != COUPLING_CODE:
                tissue_seen = True
        step = step_db_lut[c]
        soft += step if soft_lut[c] != 0 else soft_step_db
        att_soft[l, s] = soft
        if c == OUTSIDE_CODE:
            dead = True  # the anatomy's volume ends here: nothing more on this line
        if dead:
            if gas_s >= 0:
                # Lung haze: faint reverberant noise below the pleura, fading with depth
                # faster than the soft-tissue attenuation the TGC compensates.
                hz = gas_amp * haze_level * math.exp(-(s - gas_s) / haze_decay_samples
                                                     - (soft - gas_soft) * LN10_OVER_10)
                g = hz * bsc[l, s] * spk_scale[s]
                if g >= spk_thresh:
                    gbuf[s] = g
                if has_extra:
                    sig_re[s] += hz * extra_re[l, s]
                    sig_im[s] += hz * extra_im[l, s]
            continue
        half = half_lut[c]
        amp = amp_top * half
        vr = 0.0
        vi = 0.0
        if c != COUPLING_CODE:  # gel between face and skin: anechoic
            g = bsc[l, s] * spk_scale[s] * amp
            if g >= spk_thresh:
                gbuf[s] = g
            if has_extra:
                vr += extra_re[l, s] * amp
                vi += extra_im[l, s] * amp
        if c != prev:
            z1 = z_lut[prev]
            z2 = z_lut[c]
            r = (z2 - z1) / (z2 + z1)
            cos_t = 1.0
            if prev != COUPLING_CODE:
                x = o_vox[l, 0] + s * d_vox[l, 0]
                y = o_vox[l, 1] + s * d_vox[l, 1]
                zz = o_vox[l, 2] + s * d_vox[l, 2]
                gx, gy, gz = _smooth_gradient(tissue, x, y, zz, c)
                gx *= inv_spacing[0]
                gy *= inv_spacing[1]
                gz *= inv_spacing[2]
                gn = math.sqrt(gx * gx + gy * gy + gz * gz)
                if gn > 1e-6:
                    cos_t = abs(gx * beam_w[l, 0] + gy * beam_w[l, 1] + gz * beam_w[l, 2]) / gn
                    if cos_t > 1.0:
                        cos_t = 1.0
            theta = math.acos(cos_t)
            rough = max(rough_lut[c], rough_lut[prev])
            ang = (1.0 - rough) * math.exp(-theta * theta * inv2s2) + rough * cos_t
            refl = abs(r) + wall_lut[c] + wall_lut[prev]
            echo = refl * ang * amp_top
            sr, si = _speckle(speckle, seed, o_t[l, 0] + s * d_t[l, 0], o_t[l, 1] + s * d_t[l, 1],
                              o_t[l, 2] + s * d_t[l, 2])
            vr += echo * (rough_coherent + rough_random * sr)
            vi += echo * (rough_random * si)
            trans_f = 1.0 - r * r
            trans *= trans_f
            amp_top *= trans_f
            amp *= trans_f
            if gas_lut[c] != 0:
                if prev == COUPLING_CODE:
                    line_alive = 0  # probe coupled to nothing
                else:
                    gas_s = s
                    gas_amp = echo
                    gas_soft = soft
                dead = True
                sig_re[s] = vr
                sig_im[s] = vi
                continue
            prev = c
        sig_re[s] = vr
        sig_im[s] = vi
        amp_top = amp * half
    alive[l] = line_alive
    if gas_s >= 0:
        # A-lines: reverberation between probe face and pleura at multiples of its depth.
        # Each extra round trip multiplies by the probe-face reflection and the pleural echo
        # (which already holds the two-way attenuation and transmission to the pleura).
        g = probe_reflect * gas_amp
        a_k = gas_amp
        for k in range(2, n_alines + 2):
            a_k *= g
            pos = k * (gas_s + 0.5) - 0.5
            s0 = int(math.floor(pos))
            f = pos - s0
            if s0 + 1 >= ns:
                break
            sig_re[s0] += (1 - f) * a_k
            sig_re[s0 + 1] += f * a_k
    _add_speckle(gbuf, sig_re, sig_im, stride, speckle, seed, l, o_t, d_t, lat_t, sub_n, sub_step, elev_t,
                 spk_z, spk_w)
    for s in range(ns):
        out_re[s, l] = sig_re[s]
        out_im[s, l] = sig_im[s]


@njit(parallel=True, **_OPTS)
def beam_lines(
    tissue, labels,
    o_vox, d_vox, e_vox, o_w, d_w, beam_w, inv_spacing,
    elev_z, elev_w,
    b_lo, b_hi, b_mean, tex_kind, septum_diffuse,
    label_axes, muscle, muscle_inv, nerve, nerve_inv, fat, fat_inv,
    extra_re, extra_im, has_extra,
    o_t, d_t, lat_t, sub_n, sub_step, elev_t, spk_z, spk_w, spk_scale, stride, spk_thresh,
    speckle, seed,
    z_lut, step_db_lut, half_lut, gas_lut, soft_lut, rough_lut, wall_lut,
    n_coupling, soft_step_db,
    lobe_sigma_rad, rough_coherent, rough_random,
    probe_reflect, n_alines, haze_level, haze_decay_samples,
    line_order, out_code, out_b, out_re, out_im, att_soft, alive,
):
    """Stages A and B for every line, one line per task (one parallel region, line data stays
    in cache). `line_order` (see `block_interleaved_order`) balances the threads without two of
    them writing into the same cache line of the transposed outputs."""
    nl = out_code.shape[0]
    for _k in prange(nl):
        l = line_order[_k]
        _sample_line(l, tissue, labels, o_vox, d_vox, e_vox, o_w, d_w, beam_w, elev_z, elev_w,
                     b_lo, b_hi, b_mean, tex_kind, gas_lut, septum_diffuse, label_axes,
                     muscle, muscle_inv, nerve, nerve_inv, fat, fat_inv, out_code, out_b)
        _propagate_line(l, out_code, out_b, extra_re, extra_im, has_extra, tissue,
                        o_vox, d_vox, beam_w, inv_spacing,
                        o_t, d_t, lat_t, sub_n, sub_step, elev_t, spk_z, spk_w, spk_scale, stride, spk_thresh,
                        speckle, seed, z_lut, step_db_lut, half_lut, gas_lut, soft_lut, rough_lut, wall_lut,
                        n_coupling, soft_step_db, lobe_sigma_rad, rough_coherent, rough_random,
                        probe_reflect, n_alines, haze_level, haze_decay_samples,
                        out_re, out_im, att_soft, alive)


# --------------------------------------------------------------------------------------------
# C: lateral PSF + envelope + log compression (on the transposed (ns, nl) layout)
# --------------------------------------------------------------------------------------------
@njit(parallel=True, **_OPTS)
def psf_envelope(in_re, in_im, axial, weights, half_width, noise_re, noise_im, noise_amp, tgc_db, env, db):
    """The point-spread function and the envelope, on the (ns, nl) layout, row by row:
    axial Gaussian across rows, then the depth-dependent lateral Gaussian along the row (zero
    beyond the edges; row s uses taps kl - half_width[s] .. kl + half_width[s]), electronic noise,
    env = |.|, db = 10 log10(env^2) + tgc_db[s]. `db` doubles as scratch for the axial pass."""
    ns, nl = in_re.shape
    nk = weights.shape[0]
    kl = (nk - 1) // 2
    na = axial.shape[0]
    ka = (na - 1) // 2
    for _k in prange(ns):
        s = _interleave(_k, ns)
        ax_re = env[s]  # scratch rows, overwritten by the results below
        ax_im = db[s]
        for l in range(nl):
            ax_re[l] = 0.0
            ax_im[l] = 0.0
        for j in range(na):
            src = s + j - ka
            if src < 0 or src >= ns:
                continue
            w = axial[j]
            for l in range(nl):
                ax_re[l] += w * in_re[src, l]
                ax_im[l] += w * in_im[src, l]
        acc_re = np.zeros(nl, np.float32)
        acc_im = np.zeros(nl, np.float32)
        hw = half_width[s]
        for k in range(kl - hw, kl + hw + 1):
            w = weights[k, s]
            off = k - kl
            l0 = max(0, -off)
            l1 = min(nl, nl - off)
            for l in range(l0, l1):
                acc_re[l] += w * ax_re[l + off]
                acc_im[l] += w * ax_im[l + off]
        t = tgc_db[s]
        for l in range(nl):
            a = acc_re[l] + noise_amp * noise_re[s, l]
            b = acc_im[l] + noise_amp * noise_im[s, l]
            e2 = a * a + b * b
            env[s, l] = math.sqrt(e2)
            acc_re[l] = max(e2, np.float32(1e-30))
        _db_row(acc_re, t, db[s])


@njit(**_OPTS)
def _db_row(inten, offset, out):
    """out = 10 log10(inten) + offset with a vectorisable log2 (exponent bits + polynomial on the
    mantissa; error below 1e-5 dB)."""
    bits = inten.view(np.int32)
    mant = np.empty(inten.shape[0], np.int32)
    for l in range(inten.shape[0]):
        mant[l] = (bits[l] & 0x007FFFFF) | 0x3F800000
    m = mant.view(np.float32)
    for l in range(inten.shape[0]):
        e = np.float32(((bits[l] >> 23) & 255) - 127)
        x = m[l] - np.float32(1.0)
        # log2(1 + x) on [0, 1): minimax-style polynomial.
        p = x * (np.float32(1.44265926) + x * (np.float32(-0.72045839) + x * (np.float32(0.47289385)
            + x * (np.float32(-0.32429639) + x * (np.float32(0.19230958) + x * (np.float32(-0.07835889)
            + x * np.float32(0.01525167)))))))
        out[l] = np.float32(3.0102999566) * (e + p) + offset


# --------------------------------------------------------------------------------------------
# D: scan conversion + display mapping
# --------------------------------------------------------------------------------------------
@njit(parallel=True, **_OPTS)
def scan_convert(db, g_idx, g_fl, g_fs, white_db, dr_db, grey_lut, floor_db, out_db, out_u8):
    """Bilinear gather of the (ns, nl) dB image: g_idx = s0 * nl + l0 (or -1 outside)."""
    h, w = out_db.shape
    nl = db.shape[1]
    flat = db.ravel()
    inv_dr = 1.0 / dr_db
    nlut = grey_lut.shape[0]
    for _k in prange(h):
        v = _interleave(_k, h)
        for u in range(w):
            p = v * w + u
            i = g_idx[p]
            if i < 0:
                out_db[v, u] = floor_db
                out_u8[v, u] = 0
                continue
            fl = g_fl[p]
            fs = g_fs[p]
            d = (flat[i] * (1 - fl) + flat[i + 1] * fl) * (1 - fs) + (flat[i + nl] * (1 - fl) + flat[i + nl + 1] * fl) * fs
            out_db[v, u] = d
            x = (d - white_db) * inv_dr + 1.0
            if x <= 0.0:
                out_u8[v, u] = grey_lut[0]
            elif x >= 1.0:
                out_u8[v, u] = grey_lut[nlut - 1]
            else:
                out_u8[v, u] = grey_lut[int(x * (nlut - 1) + 0.5)]


# --------------------------------------------------------------------------------------------
# E: colour Doppler
# --------------------------------------------------------------------------------------------
@njit(parallel=True, **_OPTS)
def doppler_beam(
    code_arr, labels, o_vox, d_vox, dop_dir_w, flow_lut,
    field_index, field_origin, field_shape, field_offset, field_data,
    speed_scale, v_nyq, v_wall, l_range, s_range, alive, line_order, out_v,
):
    """Velocity component towards the probe along the (steered) Doppler beam, wrapped into the
    Nyquist interval [-v_nyq, v_nyq) (aliasing); NO_FLOW where there is no colour (a sentinel,
    not NaN: the kernels are compiled with fastmath). out_v is (ns, nl)."""
    nl, ns = code_arr.shape
    for _k in prange(nl):
        l = line_order[_k]
        for s in range(ns):
            out_v[s, l] = NO_FLOW
        if l < l_range[0] or l >= l_range[1] or alive[l] == 0:
            continue
        for s in range(s_range[0], s_range[1]):
            c = code_arr[l, s]
            if flow_lut[c] == 0:
                continue
            x = o_vox[l, 0] + s * d_vox[l, 0]
            y = o_vox[l, 1] + s * d_vox[l, 1]
            z = o_vox[l, 2] + s * d_vox[l, 2]
            i, j, k = _nearest_index(labels.shape[0], labels.shape[1], labels.shape[2], x, y, z)
            if i < 0:
                continue
            lab = int(labels[i, j, k])
            if lab >= field_index.shape[0]:
                continue
            f = field_index[lab]
            if f < 0:
                continue
            a = i - field_origin[f, 0]
            b = j - field_origin[f, 1]
            cc = k - field_origin[f, 2]
            if a < 0 or b < 0 or cc < 0 or a >= field_shape[f, 0] or b >= field_shape[f, 1] or cc >= field_shape[f, 2]:
                continue
            q = field_offset[f] + 3 * ((a * field_shape[f, 1] + b) * field_shape[f, 2] + cc)
            vx = field_data[q]
            vy = field_data[q + 1]
            vz = field_data[q + 2]
            # Towards the probe is positive: minus the component along the beam (into the patient).
            vb = -(vx * dop_dir_w[l, 0] + vy * dop_dir_w[l, 1] + vz * dop_dir_w[l, 2]) * speed_scale
            if abs(vb) < v_wall:
                continue
            two = 2.0 * v_nyq
            wrapped = vb - two * math.floor((vb + v_nyq) / two)
            if abs(wrapped) < v_wall:
                continue
            out_v[s, l] = wrapped


@njit(parallel=True, **_OPTS)
def doppler_image(vel, g_idx, g_fl, g_fs, v_nyq, out_v, out_rgba):
    """Nearest-sample gather of the velocity and its colour map: towards the probe red->yellow,
    away blue->cyan, brighter with speed; transparent where there is no colour."""
    h, w = out_v.shape
    nl = vel.shape[1]
    flat = vel.ravel()
    for _k in prange(h):
        v = _interleave(_k, h)
        for u in range(w):
            p = v * w + u
            idx = g_idx[p]
            out_v[v, u] = NO_FLOW
            out_rgba[v, u, 0] = 0
            out_rgba[v, u, 1] = 0
            out_rgba[v, u, 2] = 0
            out_rgba[v, u, 3] = 0
            if idx < 0:
                continue
            if g_fl[p] >= 0.5:
                idx += 1
            if g_fs[p] >= 0.5:
                idx += nl
            x = flat[idx]
            if x >= NO_FLOW:
                continue
            out_v[v, u] = x
            m = abs(x) / v_nyq
            if m > 1.0:
                m = 1.0
            base = 90.0 + 165.0 * min(1.0, 1.6 * m)
            hi = 255.0 * max(0.0, (m - 0.6) / 0.4)
            if x > 0:
                out_rgba[v, u, 0] = np.uint8(base)
                out_rgba[v, u, 1] = np.uint8(hi)
                out_rgba[v, u, 2] = 0
            else:
                out_rgba[v, u, 0] = 0
                out_rgba[v, u, 1] = np.uint8(hi)
                out_rgba[v, u, 2] = np.uint8(base)
            out_rgba[v, u, 3] = 255
