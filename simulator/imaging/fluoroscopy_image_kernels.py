"""Numba kernels of the fluoroscopy image chain: resampling, Gaussian blur, the detector signal
(AEC level, scatter, log), the display processing and the per-frame composition with noise.

Pure functions of arrays, compiled with `cache=True` and `nogil=True`.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

_JIT = dict(cache=True, nogil=True, fastmath=True)


@njit(**_JIT)
def _column_weights(w, W):
    """Pixel-centre aligned bilinear weights from w source columns to W output columns (edges
    clamped): (left index, right index, right weight) per output column."""
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
    return x0, x1, fx


@njit(**_JIT)
def upsample_bilinear(src_stack, out_stack):
    """Bilinear resampling of a stack of square-field images (C, h, w) -> (C, H, W), pixel-centre
    aligned over the same field (edges clamped)."""
    nch, h, w = src_stack.shape
    _, H, W = out_stack.shape
    x0, x1, fx = _column_weights(w, W)
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
    x0a, x1a, fxa = _column_weights(wm, w)
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
    """prim = exp(-(p - p_ref)) (clipped); masked = the scatter source, prim * field * min(p / p_ref, 1).

    Scatter is made in the patient: along a pencil beam through an attenuation p the scattered
    photons leaving the exit side are about prim * p (single scatter, generated along the path and
    attenuated like the primary), so the scatter per detected primary grows with the thickness and
    is nil for the direct beam past the skin (air scatters nothing); the weight is 1 from the AEC
    level on (`scatter_fraction` is the scatter-to-primary ratio there, behind the grid)."""
    h, w = p.shape
    inv_ref = 1.0 / p_ref if p_ref > 1e-6 else 0.0
    for r in range(h):
        for c in range(w):
            x = p[r, c] - p_ref
            if x < -30.0:
                x = -30.0
            if x > 60.0:
                x = 60.0
            v = math.exp(-x)
            prim[r, c] = v
            wt = p[r, c] * inv_ref if inv_ref > 0.0 else 1.0
            wt = min(max(wt, 0.0), 1.0)
            masked[r, c] = v * field[r, c] * wt


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
def _reduce_columns(src, dst):
    """dst (h, ceil(w/2)): src's rows sampled at the centres of column pairs through a
    [1, 3, 3, 1] / 8 kernel (edges clamped)."""
    h, w = src.shape
    W = dst.shape[1]
    for r in range(h):
        for C in range(W):
            c = 2 * C
            dst[r, C] = (src[r, max(c - 1, 0)] + 3.0 * src[r, min(c, w - 1)] + 3.0 * src[r, min(c + 1, w - 1)]
                         + src[r, min(c + 2, w - 1)]) * np.float32(0.125)


@njit(**_JIT)
def smooth121(img, out):
    """out = img through a [1, 2, 1] / 4 kernel along both axes (edges clamped)."""
    h, w = img.shape
    tmp = np.empty((h, w), dtype=np.float32)
    for r in range(h):
        for c in range(w):
            tmp[r, c] = (img[r, max(c - 1, 0)] + 2.0 * img[r, c] + img[r, min(c + 1, w - 1)]) * np.float32(0.25)
    for r in range(h):
        a = tmp[max(r - 1, 0)]
        b = tmp[r]
        d = tmp[min(r + 1, h - 1)]
        for c in range(w):
            out[r, c] = (a[c] + 2.0 * b[c] + d[c]) * np.float32(0.25)


def reduce2(src, dst):
    """One pyramid level down: dst (ceil(h/2), ceil(w/2)) samples src at the centres of its 2 x 2
    blocks through a [1, 3, 3, 1] / 8 kernel per axis (a binomial low-pass; edges clamped)."""
    tmp = np.empty((src.shape[0], dst.shape[1]), dtype=np.float32)
    _reduce_columns(src, tmp)
    out_t = np.empty((dst.shape[1], dst.shape[0]), dtype=np.float32)
    _reduce_columns(np.ascontiguousarray(tmp.T), out_t)
    dst[:, :] = out_t.T


@njit(**_JIT)
def band_transform(fine, up, gain, threshold, compression, out):
    """out = gain * f(fine - up): a band of the Laplacian pyramid, its amplitude compressed,
    f(x) = x (1 + (x / threshold)^2)^(-compression / 2): linear for small details, a power
    |x|^(1 - compression) for large steps (lung against mediastinum, skin against air)."""
    h, w = fine.shape
    inv_t2 = 1.0 / (threshold * threshold) if threshold > 0.0 else 0.0
    half = -0.5 * compression
    for r in range(h):
        for c in range(w):
            x = fine[r, c] - up[r, c]
            if compression != 0.0:
                x = x * (1.0 + x * x * inv_t2) ** half
            out[r, c] = gain * x


@njit(**_JIT)
def remap_edges(L, g, sigma_r, beta, out):
    """The local Laplacian filter's remapping around the level g: differences from g up to sigma_r
    kept, the part beyond sigma_r scaled by beta (large steps compressed, details untouched)."""
    h, w = L.shape
    for r in range(h):
        for c in range(w):
            d = L[r, c] - g
            if d > sigma_r:
                d = sigma_r + beta * (d - sigma_r)
            elif d < -sigma_r:
                d = -sigma_r + beta * (d + sigma_r)
            out[r, c] = g + d


@njit(**_JIT)
def accumulate_band(fine, up, guide, gamma, inv_step, lo, hi, acc):
    """acc += w (fine - up), w = max(0, 1 - |guide - gamma| * inv_step): this reference level's
    Laplacian coefficients where the input's own Gaussian level (clamped to [lo, hi]) lies near
    gamma."""
    h, w = fine.shape
    for r in range(h):
        for c in range(w):
            g = min(max(guide[r, c], lo), hi)
            t = abs(g - gamma) * inv_step
            if t < 1.0:
                acc[r, c] += (1.0 - t) * (fine[r, c] - up[r, c])
