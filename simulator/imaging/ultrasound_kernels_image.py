"""Numba kernels of the B-mode simulator, image stages: point-spread function, envelope and log
compression; scan conversion and display mapping; colour Doppler velocities and their overlay.
Pure functions of arrays.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from simulator.imaging.ultrasound_kernels_speckle import _interleave
from simulator.imaging.ultrasound_kernels_volume import _OPTS, NO_FLOW, _nearest_index

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
@njit(inline="always", **_OPTS)
def _hash01(a, b, c):
    """A uniform value in [0, 1) from three integers (MurmurHash3 finaliser)."""
    h = ((a * 0x8DA6B343) ^ (b * 0xD8163841) ^ (c * 0xCB1AB31F)) & 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h / 4294967296.0


@njit(parallel=True, **_OPTS)
def doppler_beam(
    code_arr, labels, o_vox, d_vox, y0, dop_dir_w, flow_lut,
    field_index, field_origin, field_shape, field_offset, field_data,
    speed_scale, v_nyq, v_wall, l_range, s_range, alive, line_order,
    vox_origin, vox_spacing, turb, out_v,
):
    """Velocity component towards the probe along the (steered) Doppler beam, wrapped into the
    Nyquist interval [-v_nyq, v_nyq) (aliasing); NO_FLOW where there is no colour (a sentinel,
    not NaN: the kernels are compiled with fastmath). Samples lie at o_vox + y0[l, s] d_vox (the
    probe's compression, see `contact_lines`). `turb` (k, 6): turbulent jets (world x, y, z, radius
    mm, velocity amplitude m/s, frame seed) - an intravascular injection - add a random velocity
    fading with the distance to their centre. out_v is (ns, nl)."""
    nl, ns = code_arr.shape
    n_turb = turb.shape[0]
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
            q = y0[l, s]
            x = o_vox[l, 0] + q * d_vox[l, 0]
            y = o_vox[l, 1] + q * d_vox[l, 1]
            z = o_vox[l, 2] + q * d_vox[l, 2]
            i, j, k = _nearest_index(labels.shape[0], labels.shape[1], labels.shape[2], x, y, z)
            if i < 0:
                continue
            lab = int(labels[i, j, k])
            vb = 0.0
            has = False
            if lab < field_index.shape[0]:
                f = field_index[lab]
                if f >= 0:
                    a = i - field_origin[f, 0]
                    b = j - field_origin[f, 1]
                    cc = k - field_origin[f, 2]
                    if (a >= 0 and b >= 0 and cc >= 0 and a < field_shape[f, 0] and b < field_shape[f, 1]
                            and cc < field_shape[f, 2]):
                        p = field_offset[f] + 3 * ((a * field_shape[f, 1] + b) * field_shape[f, 2] + cc)
                        # Towards the probe is positive: minus the component along the beam.
                        vb = -(field_data[p] * dop_dir_w[l, 0] + field_data[p + 1] * dop_dir_w[l, 1]
                               + field_data[p + 2] * dop_dir_w[l, 2]) * speed_scale[f]
                        has = True
            for t in range(n_turb):
                dx = vox_origin[0] + x * vox_spacing[0] - turb[t, 0]
                dy = vox_origin[1] + y * vox_spacing[1] - turb[t, 1]
                dz = vox_origin[2] + z * vox_spacing[2] - turb[t, 2]
                d = math.sqrt(dx * dx + dy * dy + dz * dz)
                if d < turb[t, 3]:
                    u = _hash01(l // 2, s // 3, int(turb[t, 5]))
                    vb += turb[t, 4] * (1.0 - d / turb[t, 3]) * (2.0 * u - 1.0)
                    has = True
            if not has or abs(vb) < v_wall:
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
