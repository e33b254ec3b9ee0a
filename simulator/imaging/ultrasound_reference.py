"""The B-mode model in plain numpy: every pixel and beam sample as whole-array operations.

The same model as the numba kernels of `ultrasound_kernels` (same inputs, same tables, same
formulae), written for clarity rather than speed. The probe-contact stage (`contact_lines`, a
per-line search and column solve) is shared with the simulator. It serves as the benchmark's baseline and as an
independent check of the kernels (`tests/imaging/test_ultrasound_reference.py`).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from simulator.imaging import ultrasound_kernels as K
from simulator.imaging import ultrasound_kernels_contact as C
from simulator.imaging.ultrasound import _GREY_LUT, ScannerSettings

M32 = np.int64(0xFFFFFFFF)


# --------------------------------------------------------------------------------------------
# Lookups
# --------------------------------------------------------------------------------------------
def nearest_code(vol: np.ndarray, x: np.ndarray, outside: int = K.OUTSIDE_CODE) -> np.ndarray:
    """Nearest voxel value at fractional voxel positions (..., 3); `outside` beyond the volume."""
    ijk = np.floor(x + 0.5).astype(np.int64)
    inside = np.all((ijk >= 0) & (ijk < np.array(vol.shape)), axis=-1)
    out = np.full(x.shape[:-1], outside, np.int64)
    q = ijk[inside]
    out[inside] = vol[q[:, 0], q[:, 1], q[:, 2]]
    return out


def _bspline(f):
    g = 1.0 - f
    return [g**3 / 6, (3 * f**3 - 6 * f**2 + 4) / 6, (-3 * f**3 + 3 * f**2 + 3 * f + 1) / 6, f**3 / 6]


def _bspline_d(f):
    g = 1.0 - f
    return [-0.5 * g * g, 0.5 * (3 * f * f - 4 * f), 0.5 * (-3 * f * f + 2 * f + 1), 0.5 * f * f]


def _neighbourhood(vol, x):
    """The 4x4x4 codes around points (n, 3) and the B-spline bases; ok=False near the edge."""
    i0 = np.floor(x).astype(np.int64)
    f = x - i0
    ok = np.all((i0 >= 1) & (i0 + 2 < np.array(vol.shape)), axis=1)
    i0 = np.where(ok[:, None], i0, 1)
    off = np.arange(-1, 3)
    ii = i0[:, 0, None, None, None] + off[None, :, None, None]
    jj = i0[:, 1, None, None, None] + off[None, None, :, None]
    kk = i0[:, 2, None, None, None] + off[None, None, None, :]
    return vol[ii, jj, kk].astype(np.int64), f, ok


def smooth_votes(vol, x, ca, cb):
    nb, f, ok = _neighbourhood(vol, x)
    wx, wy, wz = (np.stack(_bspline(f[:, a]), 1) for a in range(3))
    w = wx[:, :, None, None] * wy[:, None, :, None] * wz[:, None, None, :]
    fa = (w * (nb == ca[:, None, None, None])).sum((1, 2, 3))
    fb = (w * (nb == cb[:, None, None, None])).sum((1, 2, 3))
    return fa, fb, ok


def smooth_gradient(vol, x, code):
    nb, f, ok = _neighbourhood(vol, x)
    w = [np.stack(_bspline(f[:, a]), 1) for a in range(3)]
    d = [np.stack(_bspline_d(f[:, a]), 1) for a in range(3)]
    ind = nb == code[:, None, None, None]
    gx = (d[0][:, :, None, None] * w[1][:, None, :, None] * w[2][:, None, None, :] * ind).sum((1, 2, 3))
    gy = (w[0][:, :, None, None] * d[1][:, None, :, None] * w[2][:, None, None, :] * ind).sum((1, 2, 3))
    gz = (w[0][:, :, None, None] * w[1][:, None, :, None] * d[2][:, None, None, :] * ind).sum((1, 2, 3))
    g = np.stack([gx, gy, gz], 1)
    return np.where(ok[:, None], g, 0.0)


def interp_code(vol: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Inside a class: that class; at a boundary, of the two classes with the largest trilinear
    weight, the one with the larger cubic-B-spline share of the 4x4x4 neighbourhood."""
    flat = x.reshape(-1, 3)
    i0 = np.floor(flat).astype(np.int64)
    f = flat - i0
    shape = np.array(vol.shape)
    ok = np.all((i0 >= 0) & (i0 + 1 < shape), axis=1)
    out = nearest_code(vol, flat)
    i0o, fo = i0[ok], f[ok]
    codes, weights = [], []
    for di in (0, 1):
        for dj in (0, 1):
            for dk in (0, 1):
                codes.append(vol[i0o[:, 0] + di, i0o[:, 1] + dj, i0o[:, 2] + dk].astype(np.int64))
                weights.append((fo[:, 0] if di else 1 - fo[:, 0]) * (fo[:, 1] if dj else 1 - fo[:, 1])
                               * (fo[:, 2] if dk else 1 - fo[:, 2]))
    c = np.stack(codes, 1)
    w = np.stack(weights, 1)
    tot = ((c[:, :, None] == c[:, None, :]) * w[:, None, :]).sum(-1)  # weight of each corner's class
    # Mask later repeats of a class, then take the first maximum and the first runner-up (the
    # kernel scans corners in order with strict comparisons).
    first = np.ones_like(c, dtype=bool)
    for a in range(1, 8):
        first[:, a] = ~(c[:, :a] == c[:, a : a + 1]).any(axis=1)
    t1 = np.where(first, tot, -1.0)
    rows = np.arange(len(c))
    ia = np.argmax(t1 >= t1.max(axis=1, keepdims=True), axis=1)
    best = c[rows, ia]
    t2 = t1.copy()
    t2[rows, ia] = -1.0
    t2[c == best[:, None]] = -1.0
    ib = np.argmax(t2 >= t2.max(axis=1, keepdims=True), axis=1)
    has2 = t2.max(axis=1) >= 0.0
    second = c[rows, ib]
    res = best.copy()
    if has2.any():
        # Boundary cells away from the volume's edge: B-spline votes of every corner class.
        pts = flat[ok][has2]
        cc = c[has2]
        ff = np.full(cc.shape, -1.0)
        okn = None
        for a in range(8):
            fa, _, okn = smooth_votes(vol, pts, cc[:, a], cc[:, a])
            fa = np.where(first[has2][:, a], fa, -1.0)
            ff[:, a] = fa
        pick = cc[np.arange(len(cc)), np.argmax(ff >= ff.max(axis=1, keepdims=True), axis=1)]
        res[has2] = np.where(okn, pick, best[has2])
    out[ok] = res
    return out.reshape(x.shape[:-1])


def fmix(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> 16)
    h = (h * np.int64(0x85EBCA6B)) & M32
    h = h ^ (h >> 13)
    h = (h * np.int64(0xC2B2AE35)) & M32
    return h ^ (h >> 16)


def speckle(gtab: np.ndarray, seed: int, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hashed-lattice complex field at lattice coordinates u (..., 3), interpolated over the Kuhn
    tetrahedron holding each point (see kernels._speckle)."""
    fl = np.floor(u)
    f = u - fl
    i = fl.astype(np.int64)
    seed = np.int64(seed)
    primes = (np.int64(0x8DA6B343), np.int64(0xD8163841), np.int64(0xCB1AB31F))

    def node(di, dj, dk):
        a = (((i[..., 0] + di) * primes[0]) ^ seed) & M32
        b = ((i[..., 1] + dj) * primes[1]) & M32
        c = ((i[..., 2] + dk) * primes[2]) & M32
        h = fmix(a ^ b ^ c)
        return gtab[h & 255], gtab[(h >> 8) & 255]

    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    # The six orderings (as the kernel's branches, ties resolved the same way).
    xy = fx >= fy
    yz = fy >= fz
    xz = fx >= fz
    cases = [
        (xy & yz, (1, 0, 0), (1, 1, 0), fx, fy, fz),
        (xy & ~yz & xz, (1, 0, 0), (1, 0, 1), fx, fz, fy),
        (xy & ~yz & ~xz, (0, 0, 1), (1, 0, 1), fz, fx, fy),
        (~xy & xz, (0, 1, 0), (1, 1, 0), fy, fx, fz),
        (~xy & ~xz & yz, (0, 1, 0), (0, 1, 1), fy, fz, fx),
        (~xy & ~xz & ~yz, (0, 0, 1), (0, 1, 1), fz, fy, fx),
    ]
    r0, q0 = node(0, 0, 0)
    r3, q3 = node(1, 1, 1)
    re = np.zeros(u.shape[:-1])
    im = np.zeros(u.shape[:-1])
    for sel, v1, v2, fa, fb, fc in cases:
        if not sel.any():
            continue
        r1, q1 = node(*v1)
        r2, q2 = node(*v2)
        re = np.where(sel, (1 - fa) * r0 + (fa - fb) * r1 + (fb - fc) * r2 + fc * r3, re)
        im = np.where(sel, (1 - fa) * q0 + (fa - fb) * q1 + (fb - fc) * q2 + fc * q3, im)
    return re, im


def _tex2(t, u, v):
    n0, n1 = t.shape[:2]
    i0 = np.floor(u).astype(np.int64)
    j0 = np.floor(v).astype(np.int64)
    fx, fy = u - i0, v - j0
    i0, j0 = i0 % n0, j0 % n1
    i1, j1 = (i0 + 1) % n0, (j0 + 1) % n1
    return (t[i0, j0] * (1 - fy) + t[i0, j1] * fy) * (1 - fx) + (t[i1, j0] * (1 - fy) + t[i1, j1] * fy) * fx, (i0, i1, j0, j1, fx, fy)


def _septum2(t, u, v):
    m, (i0, i1, j0, j1, fx, fy) = _tex2(t[..., 0].astype(np.float64), u, v)
    ii = np.where(fx >= 0.5, i1, i0)
    jj = np.where(fy >= 0.5, j1, j0)
    return m / 255.0, t[ii, jj, 1] / 127.0 - 1.0, t[ii, jj, 2] / 127.0 - 1.0


def _facing(c, diffuse):
    return diffuse + (1.0 - diffuse) * c**6


def _fibre_mask(t, inv_u, inv_w, u, v, w):
    n0, n1, n2 = t.shape[:3]
    x, y, z = u * inv_u, v * inv_u, w * inv_w
    i0, j0, k0 = (np.floor(a).astype(np.int64) for a in (x, y, z))
    fx, fy, fz = x - i0, y - j0, z - k0
    i0, j0, k0 = i0 % n0, j0 % n1, k0 % n2
    i1, j1, k1 = (i0 + 1) % n0, (j0 + 1) % n1, (k0 + 1) % n2
    out = []
    for c in range(2):
        tc = t[..., c].astype(np.float64)
        a = (tc[i0, j0, k0] * (1 - fz) + tc[i0, j0, k1] * fz) * (1 - fy) + (tc[i0, j1, k0] * (1 - fz) + tc[i0, j1, k1] * fz) * fy
        b = (tc[i1, j0, k0] * (1 - fz) + tc[i1, j0, k1] * fz) * (1 - fy) + (tc[i1, j1, k0] * (1 - fz) + tc[i1, j1, k1] * fz) * fy
        out.append(a * (1 - fx) + b * fx)
    return out[0] / 255.0, out[1] * (2.0 / 255.0) - 1.0


# --------------------------------------------------------------------------------------------
# The injectate's fields (same semantics as the kernels: 0 outside a group's box)
# --------------------------------------------------------------------------------------------
def _group_coords(meta, g, x):
    gc = x * meta[g, C.M_SCALE:C.M_SCALE + 3] + meta[g, C.M_OFF:C.M_OFF + 3]
    n = meta[g, C.M_N:C.M_N + 3]
    ok = np.all((gc >= 0.0) & (gc <= n - 1.0), axis=-1)
    return gc, ok, n.astype(np.int64)


def _trilinear(data, off, n, ch, gc):
    i = np.minimum(gc.astype(np.int64), n - 2)
    f = gc - i
    out = 0.0
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                q = off + (((i[..., 0] + dx) * n[1] + i[..., 1] + dy) * n[2] + i[..., 2] + dz) * 3 + ch
                w = (f[..., 0] if dx else 1 - f[..., 0]) * (f[..., 1] if dy else 1 - f[..., 1]) * (f[..., 2] if dz else 1 - f[..., 2])
                out = out + w * data[q]
    return out


def _inj_disp(field, x):
    u = np.zeros(x.shape)
    for g in range(field.meta.shape[0]):
        gc, ok, n = _group_coords(field.meta, g, x)
        gc = np.where(ok[..., None], gc, 0.0)
        for a in range(3):
            u[..., a] += np.where(ok, _trilinear(field.disp, int(field.meta[g, C.M_DISP]), n, a, gc), 0.0)
    return u


def inj_density(field, ch, x):
    best = np.zeros(x.shape[:-1])
    for g in range(field.meta.shape[0]):
        gc, ok, n = _group_coords(field.meta, g, x)
        m = field.meta[g]
        ok &= np.all((gc >= m[C.M_DLO:C.M_DLO + 3]) & (gc <= m[C.M_DHI:C.M_DHI + 3]), axis=-1)
        gc = np.where(ok[..., None], gc, 0.0)
        best = np.maximum(best, np.where(ok, _trilinear(field.dens, int(field.meta[g, C.M_DENS]), n, ch, gc), 0.0))
    return best


def inj_code(field, x):
    """Injectate code at positions, -1 where there is no pocket."""
    if field.meta.shape[0] == 0:
        return np.full(x.shape[:-1], -1, np.int64)
    gas = inj_density(field, 1, x) >= 0.5
    fluid = inj_density(field, 0, x) >= 0.5
    return np.where(gas, K.INJ_GAS_CODE, np.where(fluid, K.INJ_FLUID_CODE, -1))


def inj_gradient(field, ch, x):
    h = 0.5
    g = []
    for a in range(3):
        e = np.zeros(3)
        e[a] = h
        g.append((inj_density(field, ch, x + e) - inj_density(field, ch, x - e)) / (2 * h))
    return np.stack(g, -1)


def warp(field, X):
    """The kernels' `_injectate_line` on whole arrays: positions moved by the displacement, the
    pocket code (0 none) and the infiltrated share - the fields evaluated every INJ_STEP samples
    (and at the last), linear in between."""
    nl, ns = X.shape[:2]
    code = np.zeros((nl, ns), np.int64)
    infil = np.zeros((nl, ns))
    if field.meta.shape[0] == 0:
        return X, code, infil
    # Lines whose segment misses every box are left alone (the kernel's quick rejection).
    seg_lo = np.minimum(X[:, 0], X[:, -1])
    seg_hi = np.maximum(X[:, 0], X[:, -1])
    hit = np.zeros(nl, bool)
    for g in range(field.meta.shape[0]):
        m = field.meta[g]
        lo = (0.0 - m[C.M_OFF:C.M_OFF + 3]) / m[C.M_SCALE:C.M_SCALE + 3]
        hi = (m[C.M_N:C.M_N + 3] - 1.0 - m[C.M_OFF:C.M_OFF + 3]) / m[C.M_SCALE:C.M_SCALE + 3]
        hit |= np.all((seg_lo <= hi) & (seg_hi >= lo), axis=1)
    ks = np.r_[np.arange(0, ns - 1, C.INJ_STEP), ns - 1]
    ks = np.unique(ks)
    P = X[:, ks]
    u1 = _inj_disp(field, P)
    moved = np.any(u1 != 0.0, axis=-1)
    M1 = P - u1
    key = np.concatenate([_inj_disp(field, M1), np.stack([inj_density(field, ch, M1) for ch in range(3)], -1)], -1)
    key = np.where(moved[..., None], key, 0.0)
    s = np.arange(ns)
    j = np.clip(np.searchsorted(ks, s, side="right") - 1, 0, len(ks) - 2) if len(ks) > 1 else np.zeros(ns, int)
    s0 = ks[j]
    s1 = ks[np.minimum(j + 1, len(ks) - 1)]
    t = np.where(s1 == s0, 0.0, (s - s0) / np.maximum(s1 - s0, 1))
    t = np.clip(t, 0.0, 1.0)
    v = (1 - t)[None, :, None] * key[:, j] + t[None, :, None] * key[:, np.minimum(j + 1, len(ks) - 1)]
    v = np.where(hit[:, None, None], v, 0.0)
    M = X - v[..., :3]
    gas = v[..., 4] >= 0.5
    fluid = v[..., 3] >= 0.5
    code = np.where(gas, K.INJ_GAS_CODE, np.where(fluid, K.INJ_FLUID_CODE, 0))
    infil = v[..., 5]
    return M, code, infil


# --------------------------------------------------------------------------------------------
# The stages
# --------------------------------------------------------------------------------------------
def positions(sim, cfg, lines, y0, field):
    o_vox, d_vox = lines[0], lines[1]
    X = o_vox[:, None, :] + y0[:, :, None] * d_vox[:, None, :]
    return warp(field, X)


def sample_beam(sim, cfg, lines, X, icode, infil, field):
    """Codes and backscatter amplitudes (nl, ns) at the material positions X."""
    o_vox, d_vox, e_vox, o_w, d_w, beam_w, o_t, d_t, lat_t, elev_t = lines
    ns = cfg.grid.n_samples
    tab, tx, p = sim.table, sim.textures, sim.params
    s = np.arange(ns)
    PW = sim.origin + X * sim.spacing
    code = interp_code(sim.codes, X)
    code = np.where(icode != 0, icode, code)
    kind = tab.texture[code]
    gas = tab.gas[code] != 0
    b = tab.b_lo[code].astype(np.float64)
    bw = beam_w[:, None, :]
    tex = (kind > 0) & ~gas
    if tex.any():
        lab = nearest_code(sim.labels, X[tex], outside=0)
        lab[lab >= len(sim.label_axes)] = 0
        e1, e2 = sim.label_axes[lab, :3], sim.label_axes[lab, 3:]
        pw = PW[tex]
        bb = np.broadcast_to(bw, PW.shape)[tex]
        u = (pw * e1).sum(1)
        v = (pw * e2).sum(1)
        w = (pw * np.cross(e1, e2)).sum(1)
        m = np.zeros(len(pw))
        kt = kind[tex]
        for k_id, t, texel in ((1, tx.muscle, tx.muscle_texel_mm), (3, tx.fat, tx.fat_texel_mm)):
            sel = kt == k_id
            if sel.any():
                fm, wave = _fibre_mask(tx.fibre_mask, 1.0 / tx.fibre_mask_texel_mm, 1.0 / tx.fibre_mask_texel_along_mm,
                                       u[sel], v[sel], w[sel])
                mm, nu, nv = _septum2(t, (u[sel] + wave * p.septum_wave_mm) / texel, v[sel] / texel)
                nvec = nu[:, None] * e1[sel] + nv[:, None] * e2[sel]
                m[sel] = mm * _facing(np.abs((nvec * bb[sel]).sum(1)), p.septum_diffuse) * fm
        ner = kt == 2
        if ner.any():
            m[ner] = _tex2(tx.nerve.astype(np.float64), u[ner] / tx.nerve_texel_mm, v[ner] / tx.nerve_texel_mm)[0]
        ct = code[tex]
        b[tex] = tab.b_lo[ct] + (tab.b_hi[ct] - tab.b_lo[ct]) * m
    b = np.where(gas, 1.0, b)
    b = np.where(infil > 0, b * (1.0 - K.INFIL_DARKENING * np.minimum(1.0, 2.0 * infil)), b)
    if cfg.elev_z.shape[0] > 1:
        acc = cfg.elev_w[0] * b
        held = (s // K.ELEV_STEP) * K.ELEV_STEP  # side planes looked up every ELEV_STEP samples
        for q in range(1, cfg.elev_z.shape[0]):
            Xs = X[:, held] + cfg.elev_z[q][None, held, None] * e_vox
            c2 = nearest_code(sim.codes, Xs)
            ci = inj_code(field, Xs)
            c2 = np.where(ci >= 0, ci, c2)
            acc = acc + cfg.elev_w[q] * np.where(c2 == code, b, np.where(tab.gas[c2] == 0, tab.b_mean[c2], 0.0))
        b = np.where(gas, b, acc)
    return code, b


def speckle_field(sim, cfg, lines, T):
    """The beam-integrated speckle (nl, ns) at lattice positions T (nl, ns, 3): lateral
    sub-samples x elevation planes at every `stride`-th sample, interpolated in between."""
    lat_t, elev_t = lines[8], lines[9]
    tx = sim.textures
    nl, ns = T.shape[:2]
    stride = cfg.speckle_stride
    se = np.arange(0, ns, stride)
    if stride == 2 and ns % 2 == 0:
        se = np.r_[se, ns - 1]  # the last odd sample has no right neighbour: evaluated
    U = T[:, se]
    re = np.zeros(U.shape[:2])
    im = np.zeros(U.shape[:2])
    n = cfg.sub_n[se]
    step = cfg.sub_step[se]
    for q in range(cfg.spk_z.shape[0]):
        z = cfg.spk_z[q, se]
        wq = cfg.spk_w[q, se] / n
        for k in range(int(n.max())):
            use = k < n
            t = -0.5 * (n - 1) * step + k * step
            Uq = U + (z[None, :, None] * elev_t[None, None, :]) + t[None, :, None] * lat_t[:, None, :]
            r, i = speckle(tx.speckle, tx.speckle_seed, Uq)
            re += np.where(use, wq, 0.0)[None, :] * r
            im += np.where(use, wq, 0.0)[None, :] * i
    sp_re = np.zeros((nl, ns))
    sp_im = np.zeros((nl, ns))
    sp_re[:, se], sp_im[:, se] = re, im
    if stride == 2:
        odd = np.arange(1, ns, 2)
        inner = odd[odd + 1 < ns]
        sp_re[:, inner] = 0.5 * (sp_re[:, inner - 1] + sp_re[:, inner + 1])
        sp_im[:, inner] = 0.5 * (sp_im[:, inner - 1] + sp_im[:, inner + 1])
    return sp_re, sp_im


def splat(lf, sf, amp, out):
    l0 = np.floor(lf).astype(np.int64)
    s0 = np.floor(sf).astype(np.int64)
    fl, fs = lf - l0, sf - s0
    nl, ns = out.shape
    for dl in (0, 1):
        for ds in (0, 1):
            ll, ss = l0 + dl, s0 + ds
            ok = (ll >= 0) & (ll < nl) & (ss >= 0) & (ss < ns)
            w = (fl if dl else 1 - fl) * (fs if ds else 1 - fs)
            np.add.at(out, (ll[ok], ss[ok]), (w * amp)[ok])


def propagate(sim, cfg, s_set: ScannerSettings, lines, X, contact, code, bsc, xre, xim, field, slide_t, ptx):
    """Along each line: contact, attenuation, interfaces, shadowing, gas (haze, A-lines, sliding)
    and the speckle (vectorised)."""
    thresh = sim.speckle_threshold(s_set)
    g_unit = bsc * cfg.spk_scale[None, :]
    beam_w = lines[5]
    grid = cfg.grid
    nl, ns = grid.n_lines, grid.n_samples
    tab, p, tx = sim.table, sim.params, sim.textures
    f = s_set.frequency_mhz
    step_db = (tab.alpha * (f * grid.dr_mm / 10.0)).astype(np.float32)
    half = (10.0 ** (-step_db / 20.0)).astype(np.float32).astype(np.float64)
    step_db = step_db.astype(np.float64)
    haze_decay = (tab.haze_decay_mm / grid.dr_mm).astype(np.float32).astype(np.float64)
    soft_step = p.soft_alpha_default * f * grid.dr_mm / 10.0
    s_idx = np.arange(ns)
    li = np.arange(nl)
    touch = contact.astype(bool)
    # Before the skin: gel (air and the volume's outside count as gel on a line in contact).
    lead = np.logical_and.accumulate((code == K.AIR_CODE) | (code == K.OUTSIDE_CODE), axis=1)
    c = np.where(lead, K.COUPLING_CODE, code)
    first = np.where(lead.all(axis=1), ns, np.argmin(lead, axis=1))
    att = np.cumsum(np.where(tab.soft[c] != 0, step_db[c], soft_step), axis=1)
    prev = np.concatenate([np.full((nl, 1), K.COUPLING_CODE), c[:, :-1]], axis=1)
    gas_c = tab.gas[c] != 0
    after_first = s_idx[None, :] >= first[:, None]
    omask = after_first & (c == K.OUTSIDE_CODE)  # the volume ends: the line stops there
    o = np.where(omask.any(axis=1), np.argmax(omask, axis=1), ns)
    gmask = gas_c & after_first & (s_idx[None, :] < o[:, None])
    g = np.where(gmask.any(axis=1), np.argmax(gmask, axis=1), ns)
    valid = after_first & (s_idx[None, :] <= g[:, None]) & (s_idx[None, :] < o[:, None]) & touch[:, None]
    iface = valid & (c != prev)
    z1, z2 = tab.z[prev].astype(np.float64), tab.z[c].astype(np.float64)
    r = np.where(iface, (z2 - z1) / (z2 + z1), 0.0)
    trans = 1.0 - r * r
    with np.errstate(divide="ignore"):
        lstep = np.where(valid, 2 * np.log(half[c]) + np.log(trans), 0.0)
    amp_top = np.exp(np.concatenate([np.zeros((nl, 1)), np.cumsum(lstep, axis=1)[:, :-1]], axis=1))
    amp = amp_top * half[c]
    has_gas = (g < ns) & touch
    gs = np.minimum(g, ns - 1)
    coupled_to_gas = has_gas & (prev[li, gs] == K.COUPLING_CODE)
    # Lung sliding: the speckle from a sliding gas interface down moves with the breath.
    T = X @ cfg.tex_a + cfg.tex_b
    cg = c[li, gs]
    slides = has_gas & ~coupled_to_gas & (tab.slides[cg] != 0)
    if ptx[3] > 0:
        d = np.linalg.norm(sim.origin + X[li, gs] * sim.spacing - ptx[:3], axis=1)
        slides &= d > ptx[3]
    T = T + np.where((slides[:, None] & (s_idx[None, :] >= g[:, None]))[..., None], slide_t, 0.0)
    sp_re, sp_im = speckle_field(sim, cfg, lines, T)
    keep = valid & (c != K.COUPLING_CODE)
    gsp = g_unit * amp
    shown = keep & (gsp >= thresh)
    vr = np.where(shown, gsp * sp_re, 0.0) + np.where(keep, xre * amp, 0.0)
    vi = np.where(shown, gsp * sp_im, 0.0) + np.where(keep, xim * amp, 0.0)
    # Interface echoes with the 3-D normal.
    L, S = np.nonzero(iface)
    cc = c[L, S]
    pc = prev[L, S]
    cos_t = np.ones(len(L))
    inner = pc != K.COUPLING_CODE
    if inner.any():
        Xi, ci, pi = X[L, S][inner], cc[inner], pc[inner]
        gvec = smooth_gradient(sim.codes, Xi, ci)
        for code_i, ch in ((K.INJ_FLUID_CODE, 0), (K.INJ_GAS_CODE, 1)):
            sel = (ci == code_i) | (pi == code_i)
            if code_i == K.INJ_FLUID_CODE:
                sel &= (ci != K.INJ_GAS_CODE) & (pi != K.INJ_GAS_CODE)
            if sel.any():
                gvec[sel] = inj_gradient(field, ch, Xi[sel])
        gvec = gvec / sim.spacing
        gn = np.linalg.norm(gvec, axis=1)
        ct = np.abs((gvec * beam_w[L[inner]]).sum(1)) / np.maximum(gn, 1e-300)
        cos_t[inner] = np.where(gn > 1e-6, np.minimum(ct, 1.0), 1.0)
    theta = np.arccos(cos_t)
    rough = np.maximum(tab.roughness[cc], tab.roughness[pc])
    lobe = math.radians(p.specular_lobe_deg)
    ang = (1 - rough) * np.exp(-theta**2 / (2 * lobe**2)) + rough * cos_t
    echo = (np.abs(r[L, S]) + tab.wall[cc] + tab.wall[pc]) * ang * amp_top[L, S]
    sp_r, sp_i = speckle(tx.speckle, tx.speckle_seed, T[L, S])
    vr[L, S] += echo * (p.interface_coherent + p.interface_random * sp_r)
    vi[L, S] += echo * (p.interface_random * sp_i)
    alive = touch & ~coupled_to_gas
    sel = has_gas & ~coupled_to_gas
    hit = {(a, b): k for k, (a, b) in enumerate(zip(L, S))}
    for l in np.nonzero(sel)[0]:
        s0 = g[l]
        gc = cg[l]
        gas_amp = echo[hit[(l, s0)]]
        ss = np.arange(s0 + 1, ns)
        hz = gas_amp * float(tab.haze[gc]) * np.exp(-(ss - s0) / haze_decay[gc] - (att[l, ss] - att[l, s0]) * K.LN10_OVER_10)
        gh = hz * cfg.spk_scale[ss]
        on = gh >= thresh
        vr[l, ss] += np.where(on, gh * sp_re[l, ss], 0.0) + hz * xre[l, ss]
        vi[l, ss] += np.where(on, gh * sp_im[l, ss], 0.0) + hz * xim[l, ss]
        if not tab.a_lines[gc]:
            continue
        gg = p.probe_face_reflection * gas_amp
        a_k = gas_amp
        for k in range(2, p.n_alines + 2):
            a_k *= gg
            pos = k * (s0 + 0.5) - 0.5
            i0 = int(math.floor(pos))
            fr = pos - i0
            if i0 + 1 >= ns:
                break
            vr[l, i0] += (1 - fr) * a_k
            vr[l, i0 + 1] += fr * a_k
    return vr, vi, att, alive.astype(np.uint8)


def psf_envelope(cfg, vr, vi, tgc, noise_amp):
    """(nl, ns) signal -> envelope and dB, both (ns, nl)."""
    a_re = ndimage.convolve1d(vr.T, cfg.axial_kernel.astype(np.float64), axis=0, mode="constant")
    a_im = ndimage.convolve1d(vi.T, cfg.axial_kernel.astype(np.float64), axis=0, mode="constant")
    ns, nl = a_re.shape
    kl = (cfg.lat_weights.shape[0] - 1) // 2
    acc_re = np.zeros_like(a_re)
    acc_im = np.zeros_like(a_im)
    for k in range(cfg.lat_weights.shape[0]):
        off = k - kl
        w = cfg.lat_weights[k][:, None].astype(np.float64)
        lo, hi = max(0, -off), min(nl, nl - off)
        acc_re[:, lo:hi] += w * a_re[:, lo + off : hi + off]
        acc_im[:, lo:hi] += w * a_im[:, lo + off : hi + off]
    er = acc_re + noise_amp * cfg.noise_re
    ei = acc_im + noise_amp * cfg.noise_im
    inten = er * er + ei * ei
    env = np.sqrt(inten)
    db = 10 * np.log10(np.maximum(inten, 1e-30)) + tgc[:, None]
    return env, db


def scan_convert(cfg, db, white_db, dr_db, floor_db=-300.0):
    nl = db.shape[1]
    flat = db.ravel()
    idx = cfg.g_idx
    inside = idx >= 0
    i = np.where(inside, idx, 0)
    fl, fs = cfg.g_fl.astype(np.float64), cfg.g_fs.astype(np.float64)
    d = (flat[i] * (1 - fl) + flat[i + 1] * fl) * (1 - fs) + (flat[i + nl] * (1 - fl) + flat[i + nl + 1] * fl) * fs
    d = np.where(inside, d, floor_db)
    x = np.clip((d - white_db) / dr_db + 1.0, 0.0, 1.0)
    u8 = _GREY_LUT[np.rint(x * (len(_GREY_LUT) - 1)).astype(np.int64)]
    u8 = np.where(inside, u8, 0).astype(np.uint8)
    h, w = cfg.geometry.shape
    return d.reshape(h, w).astype(np.float32), u8.reshape(h, w)


def render_reference(sim, pose, settings: ScannerSettings | None = None, needle=None, points_mm=None,
                     point_amplitudes=1.0, spec=None, body=None):
    """The numpy rendering of one frame: (bmode_db (H, W), display (H, W) uint8, envelope (nl, ns)).
    The probe contact (the compressed columns) comes from the same kernel as the simulator's."""
    from simulator.imaging.ultrasound_body import lung_motion
    from simulator.imaging.ultrasound_config import texture_lines

    spec = spec or sim.spec
    s = (settings or ScannerSettings()).resolve(spec)
    cfg = sim._config(spec, s)
    o_w, d_w, beam_w, o_t, d_t, lat_t, elev_t = texture_lines(sim, cfg, pose)
    o_vox = (o_w - sim.origin) / sim.spacing
    d_vox = d_w / sim.spacing
    e_vox = pose.elevation / sim.spacing
    lines = (o_vox, d_vox, e_vox, o_w, d_w, beam_w, o_t, d_t, lat_t, elev_t)
    sim._contact(cfg, np.ascontiguousarray(o_vox), np.ascontiguousarray(d_vox))
    y0 = cfg.buffers["y0"].copy()
    contact = cfg.buffers["contact"].copy()
    field = sim._injectate.field(body.spreads if body is not None else (), body.time_s if body is not None else None)
    lung = lung_motion(sim.params, body)
    slide_t = (lung.slide_mm @ sim.textures.speckle_rotation) / cfg.cell_mm
    X, icode, infil = positions(sim, cfg, lines, y0, field)
    code, bsc = sample_beam(sim, cfg, lines, X, icode, infil, field)
    xre = np.zeros_like(bsc)
    xim = np.zeros_like(bsc)
    lf, sf, amp = sim.splats(cfg, pose, s, needle, points_mm, point_amplitudes)
    if len(lf):
        splat(lf, sf, amp, xre)
    vr, vi, att, alive = propagate(sim, cfg, s, lines, X, contact, code, bsc, xre, xim, field, slide_t, lung.ptx)
    tgc = sim._tgc_curve(cfg, s, att.astype(np.float32), alive).astype(np.float64)
    env, db = psf_envelope(cfg, vr, vi, tgc, 10 ** (s.noise_db / 20))
    bmode, u8 = scan_convert(cfg, db, sim.params.white_db, s.dynamic_range_db)
    return bmode, u8, env.T
