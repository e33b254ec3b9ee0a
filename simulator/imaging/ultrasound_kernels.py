"""Numba kernels of the B-mode simulator: the per-line stages (pure functions of arrays).

Beam-space arrays are (n_lines, n_samples), C order, so each scan line is contiguous. The stages:

0 `contact_lines`   (ultrasound_kernels_contact) probe contact and compression of the tissue
                    columns: the material position y0[l, s] each image sample shows.
A positions         per line: o + y0 d, then the injectate's displacement (`_injectate_line`):
                    tissue pushed away from a fluid pocket, pocket samples get the injectate's code.
  `_sample_line`    acoustic code volume (tissue classes with gas and calcification from HU, see
                    `ultrasound_volume.acoustic_codes`) -> code per sample on the central plane
                    (`_classify_line`: smooth cubic-B-spline boundaries) and backscatter amplitude
                    (3 Gaussian-weighted elevation planes, structure textures for muscle/fat/nerve,
                    septa broken along the fibres by a tissue-fixed 3-D mask).
  `splat`           needle / point reflectors into a point-signal array (bilinear).
B `_propagate_line` along depth: scatter signal = backscatter x tissue-fixed speckle (evaluated
                    only where it can show) + point signal; two-way attenuation; interface echoes
                    (specular lobe around the smoothed 3-D boundary normal + diffuse part);
                    transmission product (shadowing); gas: total reflection, then per gas class
                    reverberant haze (lung, or the dirty shadow of bowel gas / injected air),
                    A-lines (lung, airway) and lung sliding (the speckle below the pleura moves
                    with the breath, except over a pneumothorax). Written transposed, (ns, nl).
  `beam_lines`      A then B for every line (one parallel region).
C/D/E (ultrasound_kernels_image) PSF and envelope, scan conversion, colour Doppler.

The speckle is complex Gaussian (random phase), so the envelope of the PSF-filtered field is
Rayleigh. `ultrasound_reference` is the same model in plain numpy (baseline and cross-check).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from simulator.imaging.ultrasound_kernels_contact import (
    _injectate_line,
    injectate_code,
    injectate_gradient,
    lattice_positions,
    line_positions,
)
from simulator.imaging.ultrasound_kernels_speckle import (
    _add_speckle,
    _facing,
    _interleave,
    _septum,
    _speckle,
    _tex2,
)
from simulator.imaging.ultrasound_kernels_volume import (  # noqa: F401 (re-exported names)
    _OPTS,
    AIR_CODE,
    CALC_CODE,
    COUPLING_CODE,
    ELEV_STEP,
    GAS_CODE,
    INJ_FLUID_CODE,
    INJ_GAS_CODE,
    LN10_OVER_10,
    LN10_OVER_20,
    NO_FLOW,
    OUTSIDE_CODE,
    _classify_line,
    _nearest_code,
    _nearest_index,
    _smooth_gradient,
)
from simulator.imaging.ultrasound_kernels_speckle import block_interleaved_order, speckle_beam  # noqa: F401, E402

INFIL_DARKENING = 0.8  # share of the backscatter lost where the injectate infiltrates (density >= 0.5)


# --------------------------------------------------------------------------------------------
# A: sampling
# --------------------------------------------------------------------------------------------
@njit(inline="always", **_OPTS)
def _fibre_mask(fmask, inv_u, inv_w, u, v, w):
    """The 3-D septum mask (strength 0..1, and a waviness offset -1..1) at cross-section (u, v)
    and along-fibre w coordinates (mm): trilinear in a periodic uint8 texture."""
    n0 = fmask.shape[0]
    n1 = fmask.shape[1]
    n2 = fmask.shape[2]
    x = u * inv_u
    y = v * inv_u
    z = w * inv_w
    i0 = int(math.floor(x))
    j0 = int(math.floor(y))
    k0 = int(math.floor(z))
    fx = x - i0
    fy = y - j0
    fz = z - k0
    i0 %= n0
    j0 %= n1
    k0 %= n2
    i1 = (i0 + 1) % n0
    j1 = (j0 + 1) % n1
    k1 = (k0 + 1) % n2
    m = 0.0
    o = 0.0
    for c in range(2):
        a = ((fmask[i0, j0, k0, c] * (1 - fz) + fmask[i0, j0, k1, c] * fz) * (1 - fy)
             + (fmask[i0, j1, k0, c] * (1 - fz) + fmask[i0, j1, k1, c] * fz) * fy)
        b = ((fmask[i1, j0, k0, c] * (1 - fz) + fmask[i1, j0, k1, c] * fz) * (1 - fy)
             + (fmask[i1, j1, k0, c] * (1 - fz) + fmask[i1, j1, k1, c] * fz) * fy)
        if c == 0:
            m = (a * (1 - fx) + b * fx) * (1.0 / 255.0)
        else:
            o = (a * (1 - fx) + b * fx) * (2.0 / 255.0) - 1.0
    return m, o


@njit(**_OPTS)
def _sample_line(
    l, pos, inj_code, infil, meta, dens,
    tissue, labels, e_vox, vox_origin, vox_spacing, beam_w,
    elev_z, elev_w,
    b_lo, b_hi, b_mean, tex_kind, gas, septum_diffuse, wave_mm,
    label_axes,
    muscle, muscle_inv, nerve, nerve_inv, fat, fat_inv, fmask, fmask_inv_u, fmask_inv_w,
    out_code, out_b,
):
    """Per sample (at its material position `pos`, voxel units): the acoustic code on the central
    plane and the backscatter amplitude (tissue level, structure texture, elevation planes,
    darkening where injectate infiltrates); 1 for gas (the unit level of the haze below it)."""
    nl, ns = out_code.shape
    n_planes = elev_z.shape[0]
    n_lab = label_axes.shape[0]
    has_inj = meta.shape[0] > 0
    _classify_line(l, tissue, pos, out_code)
    side = np.zeros(max(n_planes, 1), np.int64)
    bx = beam_w[l, 0]
    by = beam_w[l, 1]
    bz = beam_w[l, 2]
    for s in range(ns):
        x = pos[s, 0]
        y = pos[s, 1]
        z = pos[s, 2]
        if inj_code[s] != 0:
            out_code[l, s] = inj_code[s]
        code = int(out_code[l, s])
        kind = tex_kind[code]
        if gas[code] != 0:
            b = 1.0  # unit speckle: used for the haze below a gas interface
        elif kind == 0:
            b = b_lo[code]
        else:
            px = vox_origin[0] + x * vox_spacing[0]
            py = vox_origin[1] + y * vox_spacing[1]
            pz = vox_origin[2] + z * vox_spacing[2]
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
                # Septa are sheets of finite length along the fibres, slightly wavy: a 3-D mask
                # (fixed in the tissue) breaks them, so a long-axis view shows dashes, not rules.
                w = (px * (e1y * e2z - e1z * e2y) + py * (e1z * e2x - e1x * e2z) + pz * (e1x * e2y - e1y * e2x))
                fm, wave = _fibre_mask(fmask, fmask_inv_u, fmask_inv_w, u, v, w)
                u += wave * wave_mm
                if kind == 1:
                    m, nu, nv = _septum(muscle, u * muscle_inv, v * muscle_inv)
                else:
                    m, nu, nv = _septum(fat, u * fat_inv, v * fat_inv)
                cb = (nu * e1x + nv * e2x) * bx + (nu * e1y + nv * e2y) * by + (nu * e1z + nv * e2z) * bz
                m *= _facing(abs(cb), septum_diffuse) * fm
            b = b_lo[code] + (b_hi[code] - b_lo[code]) * m
        if infil[s] > 0.0:
            b *= 1.0 - INFIL_DARKENING * min(1.0, 2.0 * infil[s])
        if n_planes > 1:
            # The side planes' classes are looked up every ELEV_STEP samples (they only shade the
            # backscatter level; partial volume varies over the slice thickness, not per sample).
            if s % ELEV_STEP == 0:
                for q in range(1, n_planes):
                    zz = elev_z[q, s]
                    sx = x + zz * e_vox[0]
                    sy = y + zz * e_vox[1]
                    sz = z + zz * e_vox[2]
                    side[q] = _nearest_code(tissue, sx, sy, sz)
                    if has_inj:
                        ci = injectate_code(meta, dens, sx, sy, sz)
                        if ci >= 0:
                            side[q] = ci
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


@njit(**_OPTS)
def _propagate_line(
    l, pos, tpos, meta, dens,
    code_arr, bsc, extra_re, extra_im, has_extra,
    tissue, beam_w, inv_spacing, vox_origin, vox_spacing,
    lat_t, sub_n, sub_step, elev_t, spk_z, spk_w, spk_scale, stride, spk_thresh,
    speckle, seed,
    z_lut, step_db_lut, half_lut, gas_lut, soft_lut, rough_lut, wall_lut,
    haze_lut, haze_decay_lut, aline_lut, slide_lut,
    contact, soft_step_db,
    lobe_sigma_rad, rough_coherent, rough_random,
    probe_reflect, n_alines, slide_t, ptx,
    out_re, out_im, att_soft, alive,
):
    """Per line along depth. step_db_lut[c]: one-way attenuation (dB) across one sample of
    tissue c at this frequency; half_lut[c] = 10^(-step_db/20), the two-way amplitude factor
    across half a sample. The scatter signal is backscatter (bsc) x tissue-fixed speckle x
    spk_scale, plus point contributions (needle, reflectors) in extra_re/im; the speckle is only
    evaluated where its echo would reach spk_thresh (not in shadows, below gas, or deeper than
    the noise floor). A line out of contact (`contact[l]` 0) shows nothing; before the skin of a
    line in contact lies coupling gel. At a gas interface: haze below it at haze_lut[c] of the
    echo (fading over haze_decay_lut[c] samples), A-lines if aline_lut[c], and if slide_lut[c]
    (lung) the speckle from the interface down is shifted by slide_t (lattice units: the breath's
    sliding) unless the interface lies within ptx[3] mm of ptx[:3] (a pneumothorax: no sliding).
    Outputs (the echo signal before the PSF) are (ns, nl), transposed for the PSF stage."""
    nl, ns = code_arr.shape
    inv2s2 = 0.5 / (lobe_sigma_rad * lobe_sigma_rad)
    sig_re = np.zeros(ns, np.float32)
    sig_im = np.zeros(ns, np.float32)
    gbuf = np.zeros(ns)  # speckle multiplier of each sample (0: the speckle does not show)
    prev = COUPLING_CODE
    tissue_seen = False
    amp_top = 1.0  # two-way amplitude (attenuation x transmission) at the top of sample s
    soft = 0.0
    dead = contact[l] == 0
    gas_s = -1
    gas_c = 0
    gas_amp = 0.0
    gas_soft = 0.0
    line_alive = 1 if contact[l] != 0 else 0
    for s in range(ns):
        c = int(code_arr[l, s])
        if not tissue_seen:
            if c == OUTSIDE_CODE or c == AIR_CODE:
                c = COUPLING_CODE  # gel between the face and the skin (the line is in contact)
            elif c != COUPLING_CODE:
                tissue_seen = True
        step = step_db_lut[c]
        soft += step if soft_lut[c] != 0 else soft_step_db
        att_soft[l, s] = soft
        if c == OUTSIDE_CODE:
            dead = True  # the anatomy's volume ends here: nothing more on this line
        if dead:
            if gas_s >= 0:
                # Haze: faint reverberant noise below the gas, fading with depth faster than the
                # soft-tissue attenuation the TGC compensates.
                hz = gas_amp * haze_lut[gas_c] * math.exp(-(s - gas_s) / haze_decay_lut[gas_c]
                                                         - (soft - gas_soft) * LN10_OVER_10)
                g = hz * spk_scale[s]  # reverberation: its own unit level, whatever tissue lies there
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
                x = pos[s, 0]
                y = pos[s, 1]
                zz = pos[s, 2]
                if c == INJ_GAS_CODE or prev == INJ_GAS_CODE:
                    gx, gy, gz = injectate_gradient(meta, dens, 1, x, y, zz)
                elif c == INJ_FLUID_CODE or prev == INJ_FLUID_CODE:
                    gx, gy, gz = injectate_gradient(meta, dens, 0, x, y, zz)
                else:
                    gx, gy, gz = _smooth_gradient(tissue, x, y, zz, c)
                gx *= inv_spacing[0]
                gy *= inv_spacing[1]
                gz *= inv_spacing[2]
                gn = math.sqrt(gx * gx + gy * gy + gz * gz)
                if gn > 1e-6:
                    cos_t = abs(gx * beam_w[l, 0] + gy * beam_w[l, 1] + gz * beam_w[l, 2]) / gn
                    if cos_t > 1.0:
                        cos_t = 1.0
            if gas_lut[c] != 0 and slide_lut[c] != 0 and prev != COUPLING_CODE:
                slides = True
                if ptx[3] > 0.0:
                    dx = vox_origin[0] + pos[s, 0] * vox_spacing[0] - ptx[0]
                    dy = vox_origin[1] + pos[s, 1] * vox_spacing[1] - ptx[1]
                    dz = vox_origin[2] + pos[s, 2] * vox_spacing[2] - ptx[2]
                    slides = dx * dx + dy * dy + dz * dz > ptx[3] * ptx[3]
                if slides:  # the visceral pleura and the lung below it move with the breath
                    for q in range(s, ns):
                        tpos[q, 0] += slide_t[0]
                        tpos[q, 1] += slide_t[1]
                        tpos[q, 2] += slide_t[2]
            theta = math.acos(cos_t)
            rough = max(rough_lut[c], rough_lut[prev])
            ang = (1.0 - rough) * math.exp(-theta * theta * inv2s2) + rough * cos_t
            refl = abs(r) + wall_lut[c] + wall_lut[prev]
            echo = refl * ang * amp_top
            sr, si = _speckle(speckle, seed, tpos[s, 0], tpos[s, 1], tpos[s, 2])
            vr += echo * (rough_coherent + rough_random * sr)
            vi += echo * (rough_random * si)
            trans_f = 1.0 - r * r
            amp_top *= trans_f
            amp *= trans_f
            if gas_lut[c] != 0:
                if prev == COUPLING_CODE:
                    line_alive = 0  # probe coupled to nothing
                else:
                    gas_s = s
                    gas_c = c
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
    if gas_s >= 0 and aline_lut[gas_c] != 0:
        # A-lines: reverberation between probe face and pleura at multiples of its depth.
        # Each extra round trip multiplies by the probe-face reflection and the pleural echo
        # (which already holds the two-way attenuation and transmission to the pleura).
        g = probe_reflect * gas_amp
        a_k = gas_amp
        for k in range(2, n_alines + 2):
            a_k *= g
            p = k * (gas_s + 0.5) - 0.5
            s0 = int(math.floor(p))
            f = p - s0
            if s0 + 1 >= ns:
                break
            sig_re[s0] += (1 - f) * a_k
            sig_re[s0 + 1] += f * a_k
    _add_speckle(gbuf, sig_re, sig_im, stride, speckle, seed, l, tpos, lat_t, sub_n, sub_step, elev_t, spk_z, spk_w)
    for s in range(ns):
        out_re[s, l] = sig_re[s]
        out_im[s, l] = sig_im[s]


@njit(parallel=True, **_OPTS)
def beam_lines(
    tissue, labels, o_vox, d_vox, y0, contact, meta, disp, dens,
    e_vox, beam_w, inv_spacing, vox_origin, vox_spacing, tex_a, tex_b,
    elev_z, elev_w,
    b_lo, b_hi, b_mean, tex_kind, septum_diffuse, wave_mm,
    label_axes, muscle, muscle_inv, nerve, nerve_inv, fat, fat_inv, fmask, fmask_inv_u, fmask_inv_w,
    extra_re, extra_im, has_extra,
    lat_t, sub_n, sub_step, elev_t, spk_z, spk_w, spk_scale, stride, spk_thresh,
    speckle, seed,
    z_lut, step_db_lut, half_lut, gas_lut, soft_lut, rough_lut, wall_lut,
    haze_lut, haze_decay_lut, aline_lut, slide_lut,
    soft_step_db, lobe_sigma_rad, rough_coherent, rough_random,
    probe_reflect, n_alines, slide_t, ptx,
    line_order, out_code, out_b, out_re, out_im, att_soft, alive,
):
    """Stages A and B for every line, one line per task (one parallel region, line data stays
    in cache). `line_order` (see `block_interleaved_order`) balances the threads without two of
    them writing into the same cache line of the transposed outputs."""
    nl, ns = out_code.shape
    for _k in prange(nl):
        l = line_order[_k]
        pos = np.empty((ns, 3))
        tpos = np.empty((ns, 3))
        inj_code = np.empty(ns, np.uint8)
        infil = np.empty(ns, np.float32)
        line_positions(l, o_vox, d_vox, y0, pos)
        _injectate_line(pos, meta, disp, dens, inj_code, infil)
        _sample_line(l, pos, inj_code, infil, meta, dens, tissue, labels, e_vox, vox_origin, vox_spacing, beam_w,
                     elev_z, elev_w, b_lo, b_hi, b_mean, tex_kind, gas_lut, septum_diffuse, wave_mm, label_axes,
                     muscle, muscle_inv, nerve, nerve_inv, fat, fat_inv, fmask, fmask_inv_u, fmask_inv_w,
                     out_code, out_b)
        lattice_positions(pos, tex_a, tex_b, tpos)
        _propagate_line(l, pos, tpos, meta, dens, out_code, out_b, extra_re, extra_im, has_extra,
                        tissue, beam_w, inv_spacing, vox_origin, vox_spacing,
                        lat_t, sub_n, sub_step, elev_t, spk_z, spk_w, spk_scale, stride, spk_thresh,
                        speckle, seed, z_lut, step_db_lut, half_lut, gas_lut, soft_lut, rough_lut, wall_lut,
                        haze_lut, haze_decay_lut, aline_lut, slide_lut, contact, soft_step_db,
                        lobe_sigma_rad, rough_coherent, rough_random, probe_reflect, n_alines, slide_t, ptx,
                        out_re, out_im, att_soft, alive)
