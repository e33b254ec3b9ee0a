"""Multiscale processing of the fluoroscopy image: the clinical chain's dynamic-range compression
and edge enhancement on a Laplacian pyramid (MUSICA-type processing, Vuylsteke and Schoeters 1994).

The log image (attenuation) is split into band-pass levels, each about twice as coarse as the one
before (0.35, 0.7, 1.4 ... mm at the isocentre for a 512 matrix over a 30 cm detector), and a
coarse residual (about 8 pixels across):

- large steps are compressed without halos by a fast local Laplacian filter (Paris, Hasinoff and
  Kautz 2011; Aubry et al. 2014), run at half the resolution for all but the finest band (whose
  steps are edges, not ranges): the band coefficients are taken from copies of the image
  remapped around a ladder of reference levels, in which differences up to `compression_threshold`
  (a vertebral body against the soft tissue, a rib, an end plate: a few tenths of attenuation) are
  kept and the part beyond it is scaled by 1 - `band_compression` (lung against mediastinum, skin
  against air, the diaphragm). A linear unsharp mask flattens both alike and rings at the steps;
  this keeps the details and compresses only the steps;
- each band then gets its gain: the edge enhancement (fine band, `edge_sigma_mm`) and the detail
  enhancement (middle band, `detail_sigma_mm`); the bands beyond `range_sigma_mm` and the residual
  (the broad background) keep 1 - `range_compression` of their amplitude (harmonisation).
Settings in `DisplaySettings` / `fluoroscopy_presets`.
"""
from __future__ import annotations

import math

import numpy as np

from simulator.imaging import fluoroscopy_image_kernels as IK

MIN_LEVEL_PIXELS = 2
MAX_REFERENCE_LEVELS = 16


def band_gains(n_levels: int, iso_px_mm: float, display) -> list[float]:
    """Gain of each band-pass level (level k spans about iso_px_mm * 2^k at the isocentre): the
    edge and detail enhancement on the fine levels, 1 - range_compression beyond range_sigma_mm."""
    out = []
    for k in range(n_levels):
        s = iso_px_mm * 2.0 ** k
        h_e = 1.0 / (1.0 + (s / max(display.edge_sigma_mm, 1e-6)) ** 2)
        h_d = 1.0 / (1.0 + (s / max(display.detail_sigma_mm, 1e-6)) ** 2)
        g = 1.0 + display.edge_enhance * h_e + display.detail_enhance * max(h_d - h_e, 0.0)
        if s > display.range_sigma_mm:
            g *= 1.0 - display.range_compression
        out.append(g)
    return out


def gaussian_pyramid(L: np.ndarray, n_levels: int) -> list[np.ndarray]:
    levels = [L]
    for _ in range(n_levels - 1):
        g = levels[-1]
        small = np.empty(((g.shape[0] + 1) // 2, (g.shape[1] + 1) // 2), dtype=np.float32)
        IK.reduce2(g, small)
        levels.append(small)
    return levels


def pyramid_depth(shape) -> int:
    """Levels down to about MIN_LEVEL_PIXELS."""
    n, m = 1, min(shape)
    while m > MIN_LEVEL_PIXELS:
        m = (m + 1) // 2
        n += 1
    return n


def multiscale_process(L: np.ndarray, p_ref: float, iso_px_mm: float, display,
                       value_range: tuple[float, float] | None = None) -> np.ndarray:
    """The displayed log image (see the module doc); L float32 (n, m). value_range: the range of
    L that matters (the exposed field's); default its 0.1-99.9 percentiles."""
    L = np.ascontiguousarray(L, dtype=np.float32)
    depth = pyramid_depth(L.shape)
    gauss = gaussian_pyramid(L, depth)
    bands = local_laplacian_bands(L, gauss, display, value_range)
    gains = band_gains(depth - 1, iso_px_mm, display)
    rc = float(display.range_compression)
    out = gauss[-1] * np.float32(1.0 - rc) + np.float32(rc * p_ref)
    for k in range(depth - 2, -1, -1):
        out = _expand(out, gauss[k].shape)
        out += np.float32(gains[k]) * bands[k]
    return out


def local_laplacian_bands(L: np.ndarray, gauss: list[np.ndarray], display,
                          value_range: tuple[float, float] | None = None) -> list[np.ndarray]:
    """The band-pass levels: the finest one plain, the coarser ones from a fast local Laplacian
    filter run on the half-resolution level (steps beyond the threshold compressed by
    1 - band_compression; the reference levels no further apart than the threshold, or the
    threshold widened to MAX_REFERENCE_LEVELS over the range); plain when nothing is compressed."""
    depth = len(gauss)
    plain = [gauss[k] - _expand(gauss[k + 1], gauss[k].shape) for k in range(min(1, depth - 1))]
    beta = 1.0 - float(display.band_compression)
    sigma_r = float(display.compression_threshold)
    if beta >= 1.0 or sigma_r <= 0.0 or depth < 3:
        return plain + [gauss[k] - _expand(gauss[k + 1], gauss[k].shape) for k in range(1, depth - 1)]
    half = gauss[1]
    if value_range is None:
        value_range = tuple(np.percentile(half[::2, ::2], (0.1, 99.9)))
    lo, hi = float(value_range[0]), float(value_range[1])
    n_ref = int(min(max(math.ceil((hi - lo) / sigma_r) + 1, 3), MAX_REFERENCE_LEVELS))
    step = max((hi - lo) / (n_ref - 1), 1e-6)
    sigma_r = max(sigma_r, step)
    bands = [np.zeros_like(g) for g in gauss[1:-1]]
    remapped = np.empty_like(half)
    for j in range(n_ref):
        gamma = np.float32(lo + j * step)
        IK.remap_edges(half, gamma, np.float32(sigma_r), np.float32(beta), remapped)
        pyr = gaussian_pyramid(remapped, depth - 1)
        for k in range(depth - 2):
            IK.accumulate_band(pyr[k], _expand(pyr[k + 1], pyr[k].shape), gauss[k + 1], gamma,
                               np.float32(1.0 / step), np.float32(lo), np.float32(hi), bands[k])
    return plain + bands


def _expand(img: np.ndarray, shape) -> np.ndarray:
    """A level up: bilinear, then a [1, 2, 1] / 4 smoothing at the finer level, so the
    interpolant has no kinks at the coarse samples (with bilinear alone the finer bands carry a
    correction at every coarse sample, which their gains would turn into a ladder of steps
    2^k pixels apart across any smooth slope)."""
    up = np.empty((1,) + tuple(shape), dtype=np.float32)
    IK.upsample_bilinear(img[None], up)
    out = np.empty(tuple(shape), dtype=np.float32)
    IK.smooth121(up[0], out)
    return out
