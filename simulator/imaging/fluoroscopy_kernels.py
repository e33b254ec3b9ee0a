"""Numba kernels of the simulated fluoroscopy: line integrals through a voxel volume, through
steel cylinders and through Gaussian contrast blobs, and the detector/display step.

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


# ---------------------------------------------------------------------------------------------
# Steel cylinders (needle shaft, hub) and Gaussian blobs: analytic line integrals
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# Image operations
# ---------------------------------------------------------------------------------------------
@njit(**_JIT)
def upsample_bilinear(src_stack, out_stack):
    """Bilinear resampling of a stack of square-field images (C, h, w) -> (C, H, W), pixel-centre
    aligned over the same field (edges clamped)."""
    nch, h, w = src_stack.shape
    _, H, W = out_stack.shape
    x0 = np.empty(W, dtype=np.int64)
    x1 = np.empty(W, dtype=np.int64)
    fx = np.empty(W, dtype=np.float32)
    for c in range(W):
        x = (c + 0.5) * w / W - 0.5
        x = min(max(x, 0.0), w - 1.0)
        i = min(int(x), max(w - 2, 0))
        x0[c] = i
        x1[c] = min(i + 1, w - 1)
        fx[c] = x - i
    for ch in range(nch):
        for r in range(H):
            y = (r + 0.5) * h / H - 0.5
            y = min(max(y, 0.0), h - 1.0)
            y0 = min(int(y), max(h - 2, 0))
            y1 = min(y0 + 1, h - 1)
            fy = np.float32(y - y0)
            ra = src_stack[ch, y0]
            rb = src_stack[ch, y1]
            o = out_stack[ch, r]
            for c in range(W):
                a = ra[x0[c]] + (ra[x1[c]] - ra[x0[c]]) * fx[c]
                b = rb[x0[c]] + (rb[x1[c]] - rb[x0[c]]) * fx[c]
                o[c] = a + (b - a) * fy


@njit(**_JIT)
def _convolve_rows(img, kernel, out):
    h, w = img.shape
    k = kernel.shape[0] // 2
    pad = np.empty(w + 2 * k, dtype=np.float32)
    for r in range(h):
        for c in range(w):
            pad[c + k] = img[r, c]
        for c in range(k):
            pad[c] = img[r, 0]
            pad[w + k + c] = img[r, w - 1]
        for c in range(w):
            out[r, c] = 0.0
        for t in range(2 * k + 1):
            kt = kernel[t]
            for c in range(w):
                out[r, c] += kt * pad[c + t]


@njit(**_JIT)
def _convolve_cols(img, kernel, out):
    h, w = img.shape
    k = kernel.shape[0] // 2
    for r in range(h):
        for c in range(w):
            out[r, c] = 0.0
        for t in range(-k, k + 1):
            rr = min(max(r + t, 0), h - 1)
            kt = kernel[t + k]
            for c in range(w):
                out[r, c] += kt * img[rr, c]


def gaussian_kernel(sigma_px: float) -> np.ndarray:
    k = max(1, int(math.ceil(3.0 * sigma_px)))
    x = np.arange(-k, k + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / max(sigma_px, 1e-6)) ** 2)
    return (g / g.sum()).astype(np.float32)


def gaussian_blur(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Separable Gaussian blur (edges clamped); float32 in, float32 out."""
    img = np.ascontiguousarray(img, dtype=np.float32)
    if sigma_px <= 0.05:
        return img.copy()
    k = gaussian_kernel(sigma_px)
    tmp = np.empty_like(img)
    out = np.empty_like(img)
    _convolve_rows(img, k, tmp)
    _convolve_cols(tmp, k, out)
    return out


@njit(**_JIT)
def _map_at(m, ch, y0, y1, fy, x0, x1, fx):
    a = m[ch, y0, x0] + (m[ch, y0, x1] - m[ch, y0, x0]) * fx
    b = m[ch, y1, x0] + (m[ch, y1, x1] - m[ch, y1, x0]) * fx
    return a + (b - a) * fy


@njit(**_JIT)
def compose_display(maps, p_add, exposed, noise, noise_offset, noise_scale, lo, hi, lut, shutter_level, out):
    """Detector and display for one frame, into `out` (uint8, (h, w)).

    Per pose (cached) `maps` (4, hm, wm), at the display resolution or coarser (then sampled
    bilinearly): [0] the anatomy's log-domain image ready for display (apparent attenuation,
    processed), [1] its primary transmission relative to the AEC level, [2] the scatter relative
    to the same level, [3] 1 / sqrt(primary + scatter).
    Per frame: `p_add` (h, w) the needle and contrast line integrals; where it is non-zero the
    signal is recomputed exactly: s' = prim exp(-p_add) + scatter, L = l_disp + log(s / s').
    Quantum noise (Poisson, in its Gaussian approximation): the expected quanta N = n_ref s' give
    L += z / sqrt(N) in the log domain (z from the standard-normal bank `noise`, read from
    `noise_offset`; noise_scale = 1 / sqrt(n_ref), 0: no noise); below 25 quanta the noisy count
    N + sqrt(N) z (at least half a quantum) is used instead, so a pixel behind dense steel stays dark.
    Display: t = (L - lo) / (hi - lo) in [0, 1] looked up in `lut` (uint8, window/gamma/invert).
    `exposed`: 0 outside the field (black), 1 behind a collimator shutter (dark grey), 2 exposed."""
    h, w = out.shape
    hm = maps.shape[1]
    wm = maps.shape[2]
    same = hm == h and wm == w
    m = noise.shape[0]
    nl = lut.shape[0]
    span = max(hi - lo, 1e-6)
    scale = (nl - 1) / span
    x0a = np.empty(w, dtype=np.int64)
    x1a = np.empty(w, dtype=np.int64)
    fxa = np.empty(w, dtype=np.float32)
    for c in range(w):
        x = (c + 0.5) * wm / w - 0.5
        x = min(max(x, 0.0), wm - 1.0)
        i = min(int(x), max(wm - 2, 0))
        x0a[c] = i
        x1a[c] = min(i + 1, wm - 1)
        fxa[c] = x - i
    idx = noise_offset % m
    for r in range(h):
        y = (r + 0.5) * hm / h - 0.5
        y = min(max(y, 0.0), hm - 1.0)
        y0 = min(int(y), max(hm - 2, 0))
        y1 = min(y0 + 1, hm - 1)
        fy = np.float32(y - y0)
        for c in range(w):
            e = exposed[r, c]
            idx += 1
            if idx >= m:
                idx = 0
            if e == 0:
                out[r, c] = 0
                continue
            if e == 1:
                g = shutter_level + 2.5 * noise[idx]
                out[r, c] = np.uint8(min(max(g, 0.0), 255.0))
                continue
            if same:
                L = maps[0, r, c]
                isq = maps[3, r, c]
            else:
                L = _map_at(maps, 0, y0, y1, fy, x0a[c], x1a[c], fxa[c])
                isq = _map_at(maps, 3, y0, y1, fy, x0a[c], x1a[c], fxa[c])
            pa = p_add[r, c]
            if pa != 0.0:
                if same:
                    pr = maps[1, r, c]
                    sc = maps[2, r, c]
                else:
                    pr = _map_at(maps, 1, y0, y1, fy, x0a[c], x1a[c], fxa[c])
                    sc = _map_at(maps, 2, y0, y1, fy, x0a[c], x1a[c], fxa[c])
                st = pr * math.exp(-pa) + sc
                if st < 1e-12:
                    st = 1e-12
                L += math.log((pr + sc) / st)
                isq = 1.0 / math.sqrt(st)
            if noise_scale > 0.0:
                sd = isq * noise_scale  # 1 / sqrt(expected quanta)
                if sd < 0.2:
                    L += noise[idx] * sd  # many quanta: first order in the log domain
                else:
                    # few quanta (behind steel, no scatter): noisy count, never below half a quantum
                    nq = 1.0 / (sd * sd)
                    noisy = nq + math.sqrt(nq) * noise[idx]
                    if noisy < 0.5:
                        noisy = 0.5
                    L += math.log(nq / noisy)
            k = int((L - lo) * scale)
            if k < 0:
                k = 0
            if k > nl - 1:
                k = nl - 1
            out[r, c] = lut[k]


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
def block_mean(img, f, out):
    """Mean over f x f blocks: out (h // f, w // f)."""
    H, W = out.shape
    inv = np.float32(1.0 / (f * f))
    for R in range(H):
        o = out[R]
        for C in range(W):
            o[C] = 0.0
        for dr in range(f):
            row = img[R * f + dr]
            for C in range(W):
                acc = np.float32(0.0)
                base = C * f
                for dc in range(f):
                    acc += row[base + dc]
                o[C] += acc
        for C in range(W):
            o[C] *= inv


@njit(**_JIT)
def aec_signal(p, p_ref, field, prim, masked):
    """prim = exp(-(p - p_ref)) (clipped), masked = prim * field."""
    h, w = p.shape
    for r in range(h):
        for c in range(w):
            x = p[r, c] - p_ref
            if x < -30.0:
                x = -30.0
            if x > 60.0:
                x = 60.0
            v = math.exp(-x)
            prim[r, c] = v
            masked[r, c] = v * field[r, c]


@njit(**_JIT)
def log_signal(prim, scat_blur, norm_blur, scatter_fraction, p_ref, scatter, L, inv_sqrt_s):
    """scatter = fraction * blur(prim * field) / blur(field); L = p_ref - log(prim + scatter)."""
    h, w = prim.shape
    for r in range(h):
        for c in range(w):
            nb = norm_blur[r, c]
            sc = scatter_fraction * scat_blur[r, c] / nb if nb > 1e-3 else 0.0
            s = prim[r, c] + sc
            scatter[r, c] = sc
            L[r, c] = p_ref - math.log(s)
            inv_sqrt_s[r, c] = 1.0 / math.sqrt(s)


@njit(**_JIT)
def process_display(L, big, small, mid, p_ref, rc, ee, de, out):
    """out = L - rc (big - p_ref) + ee (L - small) + de (small - mid)."""
    h, w = L.shape
    for r in range(h):
        for c in range(w):
            l = L[r, c]
            out[r, c] = l - rc * (big[r, c] - p_ref) + ee * (l - small[r, c]) + de * (small[r, c] - mid[r, c])


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
