"""Numba kernels of the fluoroscopy overlays drawn per frame: line integrals through steel
cylinders (needle shaft, hub) and through Gaussian contrast blobs.

Pure functions of arrays; geometry as in `fluoroscopy_kernels` (`src` the focal spot, `det_origin`
the centre of pixel (row 0, column 0), `du`, `dv` the pixel steps, RAS mm). Compiled with
`cache=True` and `nogil=True`.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

_JIT = dict(cache=True, nogil=True, fastmath=True)


@njit(**_JIT)
def _cylinder_chord(sx, sy, sz, dx, dy, dz, ax_, ay_, az_, wx, wy, wz, h, radius):
    """Length of the ray s + t d (d unit, t >= 0) inside the closed cylinder of axis a + s w,
    0 <= s <= h (w unit), radius `radius`."""
    if radius <= 0.0:
        return 0.0
    mx = sx - ax_
    my = sy - ay_
    mz = sz - az_
    dw = dx * wx + dy * wy + dz * wz
    mw = mx * wx + my * wy + mz * wz
    # perpendicular parts
    dpx = dx - dw * wx
    dpy = dy - dw * wy
    dpz = dz - dw * wz
    mpx = mx - mw * wx
    mpy = my - mw * wy
    mpz = mz - mw * wz
    a = dpx * dpx + dpy * dpy + dpz * dpz
    b = 2.0 * (mpx * dpx + mpy * dpy + mpz * dpz)
    c = mpx * mpx + mpy * mpy + mpz * mpz - radius * radius
    if a < 1e-14:
        if c > 0.0:
            return 0.0
        t1 = -1e30
        t2 = 1e30
    else:
        disc = b * b - 4.0 * a * c
        if disc <= 0.0:
            return 0.0
        sq = math.sqrt(disc)
        t1 = (-b - sq) / (2.0 * a)
        t2 = (-b + sq) / (2.0 * a)
    if abs(dw) > 1e-14:
        s0 = (0.0 - mw) / dw
        s1 = (h - mw) / dw
        if s0 > s1:
            s0, s1 = s1, s0
    else:
        if mw < 0.0 or mw > h:
            return 0.0
        s0 = -1e30
        s1 = 1e30
    lo = max(t1, s0, 0.0)
    hi = min(t2, s1)
    if hi <= lo:
        return 0.0
    return hi - lo


@njit(**_JIT)
def add_cylinders(out, src, det_origin, du, dv, starts, axes, lengths, r_outer, r_inner, mus,
                  seg_uv, reach_px, bboxes, supersample):
    """Add mu * chord of hollow capped cylinders (annulus r_inner..r_outer; r_inner = 0: solid).

    starts (n, 3) one end, axes (n, 3) unit axis, lengths (n,), radii (n,), mus (n,) 1/mm;
    seg_uv (n, 4) the projected axis end points (u0, v0, u1, v1) and reach_px (n,) the largest
    projected radius in pixels: pixels farther from the projected segment are skipped; bboxes (n, 4)
    (r0, r1, c0, c1). Each pixel is supersampled `supersample`^2 times (box detector element)."""
    n = starts.shape[0]
    ss = supersample
    inv = 1.0 / (ss * ss)
    for q in range(n):
        r0 = bboxes[q, 0]
        r1 = bboxes[q, 1]
        c0 = bboxes[q, 2]
        c1 = bboxes[q, 3]
        u0 = seg_uv[q, 0]
        v0 = seg_uv[q, 1]
        eu = seg_uv[q, 2] - u0
        ev = seg_uv[q, 3] - v0
        el2 = eu * eu + ev * ev
        reach = reach_px[q] + 1.5
        for r in range(r0, r1):
            for c in range(c0, c1):
                # distance from the pixel centre to the projected segment
                if el2 > 1e-12:
                    t = ((c - u0) * eu + (r - v0) * ev) / el2
                    t = min(max(t, 0.0), 1.0)
                else:
                    t = 0.0
                du_ = c - (u0 + t * eu)
                dv_ = r - (v0 + t * ev)
                if du_ * du_ + dv_ * dv_ > reach * reach:
                    continue
                acc = 0.0
                for a in range(ss):
                    for b in range(ss):
                        cu = c + (a + 0.5) / ss - 0.5
                        rv = r + (b + 0.5) / ss - 0.5
                        px = det_origin[0] + cu * du[0] + rv * dv[0] - src[0]
                        py = det_origin[1] + cu * du[1] + rv * dv[1] - src[1]
                        pz = det_origin[2] + cu * du[2] + rv * dv[2] - src[2]
                        ln = math.sqrt(px * px + py * py + pz * pz)
                        px /= ln
                        py /= ln
                        pz /= ln
                        ch = _cylinder_chord(src[0], src[1], src[2], px, py, pz,
                                             starts[q, 0], starts[q, 1], starts[q, 2],
                                             axes[q, 0], axes[q, 1], axes[q, 2], lengths[q], r_outer[q])
                        if r_inner[q] > 0.0 and ch > 0.0:
                            ch -= _cylinder_chord(src[0], src[1], src[2], px, py, pz,
                                                  starts[q, 0], starts[q, 1], starts[q, 2],
                                                  axes[q, 0], axes[q, 1], axes[q, 2], lengths[q], r_inner[q])
                        acc += ch
                out[r, c] += mus[q] * acc * inv


_POW2_NEG = np.array([2.0 ** -k for k in range(64)])


@njit(**_JIT)
def _exp_neg(x):
    """exp(-x) for 0 <= x < 60 to a relative 3e-5: 2^-n from a table, 2^-f by a
    polynomial (twice as fast as math.exp; plenty for a display)."""
    if x < 0.0:
        return math.exp(-x)
    y = x * 1.4426950408889634
    n = int(y)
    t = (y - n) * 0.6931471805599453
    p = 1.0 - t * (1.0 - t * (0.5 - t * (0.16666666666666666 - t * (0.041666666666666664 - t * (
        0.008333333333333333 - t * 0.001388888888888889)))))
    return p * _POW2_NEG[n]


@njit(**_JIT)
def _mat3_vec(m, x, y, z):
    """m (3, 3) times (x, y, z), written out: numba would call BLAS for `@`, whose worker threads
    then spin and steal the second core."""
    out = np.empty(3)
    for i in range(3):
        out[i] = m[i, 0] * x + m[i, 1] * y + m[i, 2] * z
    return out


@njit(**_JIT)
def add_gaussian_blobs(out, src, det_origin, du, dv, centers, precisions, peaks, bboxes):
    """Add the line integral of anisotropic Gaussian blobs peak * exp(-1/2 (x-c)^T Q (x-c)).

    centers (n, 3) mm, precisions (n, 3, 3) = inverse covariance (1/mm^2), peaks (n,) in 1/mm
    (attenuation at the centre), bboxes (n, 4) (r0, r1, c0, c1). Along the ray s + t D (D from
    the source to the pixel, not normalised), w = s - c, a = D'QD, b = D'Qw, k = w'Qw:
    integral = peak |D| sqrt(2 pi / a) exp(-1/2 (k - b^2 / a)); the factor |D| sqrt(2 pi / a) is
    taken on the ray through the blob's centre (it changes by far less than 0.1 % over the blob).
    Pixels where the exponent passes 7 (0.1 % of the peak) are skipped."""
    n = centers.shape[0]
    e0 = det_origin - src
    two_pi = 2.0 * math.pi
    for q in range(n):
        # |D| / sqrt(D'QD) hardly changes over a blob's footprint: take it on the ray to its centre
        cx = centers[q, 0] - src[0]
        cy = centers[q, 1] - src[1]
        cz = centers[q, 2] - src[2]
        Qc = _mat3_vec(precisions[q], cx, cy, cz)
        norm_c = math.sqrt(two_pi * (cx * cx + cy * cy + cz * cz) / (cx * Qc[0] + cy * Qc[1] + cz * Qc[2]))
        Q = precisions[q]
        wx = src[0] - centers[q, 0]
        wy = src[1] - centers[q, 1]
        wz = src[2] - centers[q, 2]
        qw = _mat3_vec(Q, wx, wy, wz)
        wqw = wx * qw[0] + wy * qw[1] + wz * qw[2]
        qe0 = _mat3_vec(Q, e0[0], e0[1], e0[2])
        qdu = _mat3_vec(Q, du[0], du[1], du[2])
        qdv = _mat3_vec(Q, dv[0], dv[1], dv[2])
        pk = peaks[q] * norm_c
        c0 = bboxes[q, 2]
        for r in range(bboxes[q, 0], bboxes[q, 1]):
            # D and QD at the row's first pixel, then stepped along the row
            dx = e0[0] + c0 * du[0] + r * dv[0]
            dy = e0[1] + c0 * du[1] + r * dv[1]
            dz = e0[2] + c0 * du[2] + r * dv[2]
            qx = qe0[0] + c0 * qdu[0] + r * qdv[0]
            qy = qe0[1] + c0 * qdu[1] + r * qdv[1]
            qz = qe0[2] + c0 * qdu[2] + r * qdv[2]
            row = out[r]
            for c in range(c0, bboxes[q, 3]):
                a = dx * qx + dy * qy + dz * qz
                b = dx * qw[0] + dy * qw[1] + dz * qw[2]
                e = 0.5 * (wqw - b * b / a)
                if e < 7.0:
                    row[c] += pk * _exp_neg(e)
                dx += du[0]
                dy += du[1]
                dz += du[2]
                qx += qdu[0]
                qy += qdu[1]
                qz += qdu[2]
