"""Numba kernels of the B-mode simulator, textures: the tissue-fixed complex speckle field (a
hashed lattice, no memory), its integration across a beam sample's width and slice, and the 2-D
structure textures (muscle and fat septa, nerve fascicles). Pure functions of arrays.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from simulator.imaging.ultrasound_kernels_volume import _OPTS

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
def _cell2(n0, n1, u, v):
    """The periodic 2-D texel cell holding (u, v): corner indices and fractions."""
    i0 = int(math.floor(u))
    j0 = int(math.floor(v))
    fx = u - i0
    fy = v - j0
    i0 = i0 % n0
    j0 = j0 % n1
    return i0, j0, (i0 + 1) % n0, (j0 + 1) % n1, fx, fy


@njit(inline="always", **_OPTS)
def _septum(t, u, v):
    """2-D uint8 septum texture: bilinear strength (0..1) and the nearest texel's normal (u, v)."""
    i0, j0, i1, j1, fx, fy = _cell2(t.shape[0], t.shape[1], u, v)
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
    i0, j0, i1, j1, fx, fy = _cell2(t.shape[0], t.shape[1], u, v)
    return (t[i0, j0] * (1 - fy) + t[i0, j1] * fy) * (1 - fx) + (t[i1, j0] * (1 - fy) + t[i1, j1] * fy) * fx


@njit(parallel=True, **_OPTS)
def speckle_beam(o_t, d_t, lat_t, sub_n, sub_step, elev_t, spk_z, spk_w, speckle, seed, stride, out_re, out_im):
    """Unit-amplitude speckle along lines (for calibrating the speckle level)."""
    nl, ns = out_re.shape
    for _k in prange(nl):
        l = _interleave(_k, nl)
        _speckle_line(speckle, seed, o_t[l, 0], o_t[l, 1], o_t[l, 2], d_t[l, 0], d_t[l, 1], d_t[l, 2],
                      lat_t[l, 0], lat_t[l, 1], lat_t[l, 2], sub_n, sub_step, elev_t, spk_z, spk_w, stride, out_re[l], out_im[l])


@njit(inline="always", **_OPTS)
def _spk_eval(s, gtab, seed, l, tpos, lat_t, sub_n, sub_step, elev_t, spk_z, spk_w):
    return _speckle_beam_sample(gtab, seed, tpos[s, 0], tpos[s, 1], tpos[s, 2], lat_t[l, 0], lat_t[l, 1], lat_t[l, 2],
                                sub_n[s], sub_step[s], elev_t[0], elev_t[1], elev_t[2], spk_z, spk_w, s)


@njit(**_OPTS)
def _add_speckle(gbuf, sig_re, sig_im, stride, gtab, seed, l, tpos, lat_t, sub_n, sub_step, elev_t, spk_z, spk_w):
    """sig += gbuf x speckle along line l (lattice coordinates of its samples `tpos` (ns, 3): the
    tissue they show, so the speckle moves with compressed or displaced tissue), evaluating the
    speckle field (as `_speckle_line`) only where gbuf is non-zero: at the samples themselves (stride 1) or at the even samples around
    them, interpolated at odd ones (stride 2)."""
    ns = gbuf.shape[0]
    if stride == 1:
        for s in range(ns):
            if gbuf[s] > 0.0:
                r, i = _spk_eval(s, gtab, seed, l, tpos, lat_t, sub_n, sub_step, elev_t, spk_z, spk_w)
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
        r, i = _spk_eval(s, gtab, seed, l, tpos, lat_t, sub_n, sub_step, elev_t, spk_z, spk_w)
        if gbuf[s] > 0.0:
            sig_re[s] += gbuf[s] * r
            sig_im[s] += gbuf[s] * i
        if s >= 1 and gbuf[s - 1] > 0.0:
            if last_s == s - 2:
                r0 = last_r
                i0 = last_i
            else:
                r0, i0 = _spk_eval(s - 2, gtab, seed, l, tpos, lat_t, sub_n, sub_step, elev_t, spk_z, spk_w)
            sig_re[s - 1] += gbuf[s - 1] * 0.5 * (r0 + r)
            sig_im[s - 1] += gbuf[s - 1] * 0.5 * (i0 + i)
        last_r = r
        last_i = i
        last_s = s
    if ns % 2 == 0 and gbuf[ns - 1] > 0.0:  # the last odd sample has no right neighbour
        r, i = _spk_eval(ns - 1, gtab, seed, l, tpos, lat_t, sub_n, sub_step, elev_t, spk_z, spk_w)
        sig_re[ns - 1] += gbuf[ns - 1] * r
        sig_im[ns - 1] += gbuf[ns - 1] * i


