"""Numba kernels of the B-mode simulator, tissue geometry under the probe: where each image sample's
tissue comes from.

- `contact_lines`: the probe face against the skin, per scan line. The skin is found along the
  line (first sample that is not air, with the smooth boundary of `_interp_code`); a gap up to the
  gel's reach is bridged by coupling gel; a larger gap is a line out of contact (no image); a face
  pressed into the skin compresses the tissue column under it. The column (from the skin down to
  the first rigid tissue - bone, gas - or `col_mm`) is a stack of runs of one tissue each; under a
  common stress sigma each run shortens by min(sigma * compliance, strain_max) of its thickness
  (fat a lot, a vein until it collapses, an artery hardly), sigma chosen so the shortening equals
  the indentation (bisection; capped at sigma_max - beyond it the whole column is pushed). The
  result `y0[l, s]` is the material position (in samples along the line) that image sample s
  shows: a deformation of the tissue columns, not a crop.
- `_injectate_line`: the injectate's displacement field (tissue pushed away from a fluid pocket)
  and its densities (pocket, gas, infiltration), packed per group of boluses (see
  `ultrasound_injectate`): each sample's position moves to the material point that ends up there,
  and samples inside a pocket take the injectate's code.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from simulator.imaging.ultrasound_kernels_volume import (
    _OPTS,
    INJ_FLUID_CODE,
    INJ_GAS_CODE,
    _interp_code,
    _nearest_code,
    _trilinear,
    _trilinear3,
)

MAX_RUNS = 48
INJ_STEP = 4  # samples between evaluations of the injectate's fields along a line
# meta columns of a packed injectate group: grid coordinates g = voxel position * scale + off;
# grid size; offsets of its displacement and density grids in the flat arrays; the box (grid
# coordinates) outside which every density is 0.
M_OFF, M_SCALE, M_N, M_DISP, M_DENS, M_DLO, M_DHI = 0, 3, 6, 9, 10, 11, 14
N_META = 17


@njit(inline="always", **_OPTS)
def _is_air(tissue, air_lut, x, y, z):
    return air_lut[_nearest_code(tissue, x, y, z)] != 0


@njit(**_OPTS)
def find_skin(tissue, air_lut, ox, oy, oz, dx, dy, dz, q_from, q_to, step):
    """Along the line o + q d from q_from to q_to (voxel units per q): the first crossing from
    air (outside the body) into tissue, refined on the smooth boundary of `_interp_code`.
    Returns (1, q_skin, code under the skin), (0, q_to, 0) if there is none, (-1, q_from, 0) if
    q_from already lies in the body."""
    if not _is_air(tissue, air_lut, ox + q_from * dx, oy + q_from * dy, oz + q_from * dz):
        return -1, q_from, 0
    q_air = q_from
    q_tis = q_to + 1.0
    n = int((q_to - q_from) / step) + 2
    for k in range(1, n):
        q = q_from + k * step
        if q > q_to:
            break
        if not _is_air(tissue, air_lut, ox + q * dx, oy + q * dy, oz + q * dz):
            q_tis = q
            break
        q_air = q
    if q_tis > q_to:
        return 0, q_to, 0
    c_skin = _nearest_code(tissue, ox + q_tis * dx, oy + q_tis * dy, oz + q_tis * dz)
    for _ in range(10):  # the smooth boundary between the last air and the first tissue point
        qm = 0.5 * (q_air + q_tis)
        c = _interp_code(tissue, ox + qm * dx, oy + qm * dy, oz + qm * dz)
        if air_lut[c] != 0:
            q_air = qm
        else:
            q_tis = qm
            c_skin = c
    return 1, 0.5 * (q_air + q_tis), c_skin


@njit(parallel=True, **_OPTS)
def contact_lines(tissue, air_lut, o_vox, d_vox, dr_mm, gel_mm, search_mm, col_mm,
                  compliance, strain_max, rigid, sigma_max, y0, contact, stress, skin_mm):
    """Per line: skin position relative to the face (skin_mm, + below the face), contact flag,
    the column's stress (0..sigma_max) and the material position y0[l, s] of each image sample
    (samples along the line; identity without compression). Sample s lies at o + s d; the face
    is at s = -0.5."""
    nl, ns = y0.shape
    face = -0.5
    step = max(1.0, 0.5 / dr_mm)
    reach = gel_mm / dr_mm
    col_step = max(1.0, 0.25 / dr_mm)
    n_col = int(col_mm / dr_mm / col_step) + 1
    for l in prange(nl):
        ox = o_vox[l, 0]
        oy = o_vox[l, 1]
        oz = o_vox[l, 2]
        dx = d_vox[l, 0]
        dy = d_vox[l, 1]
        dz = d_vox[l, 2]
        for s in range(ns):
            y0[l, s] = s
        stress[l] = 0.0
        # Skin: march from `search_mm` above the face to the gel's reach below it.
        found, q_skin, c_skin = find_skin(tissue, air_lut, ox, oy, oz, dx, dy, dz, face - search_mm / dr_mm,
                                          face + reach + step, step)
        if found < 0:
            # The face is deeper in the body than the search reaches: as deep as it goes.
            contact[l] = 1
            skin_mm[l] = -search_mm
            stress[l] = sigma_max
            continue
        if found == 0:
            contact[l] = 0
            skin_mm[l] = (reach + step) * dr_mm
            continue
        h = q_skin - face
        skin_mm[l] = h * dr_mm
        if h > reach:
            contact[l] = 0
            continue
        contact[l] = 1
        if h >= 0.0:
            continue  # gel between the face and the skin
        delta = -h
        # The column under the skin as runs of one tissue each.
        run_c = np.empty(MAX_RUNS, np.int64)
        run_t = np.zeros(MAX_RUNS)
        nr = 0
        for k in range(n_col):
            q = q_skin + (k + 0.5) * col_step
            c = _nearest_code(tissue, ox + q * dx, oy + q * dy, oz + q * dz)
            if air_lut[c] != 0 and (k + 1) * col_step * dr_mm <= 2.0:
                c = c_skin  # the voxel staircase of the skin, not air under it
            if rigid[c] != 0 or air_lut[c] != 0:
                break
            if nr > 0 and run_c[nr - 1] == c:
                run_t[nr - 1] += col_step
            elif nr < MAX_RUNS:
                run_c[nr] = c
                run_t[nr] = col_step
                nr += 1
            else:
                run_t[nr - 1] += col_step
        # Stress: shortening(sigma) = indentation (monotone in sigma: bisection).
        cap = 0.0
        for r in range(nr):
            cap += run_t[r] * min(sigma_max * compliance[run_c[r]], strain_max[run_c[r]])
        if cap <= delta:
            sig = sigma_max  # the column cannot take more: the tissue below is pushed too
        else:
            lo = 0.0
            hi = sigma_max
            for _ in range(40):
                mid = 0.5 * (lo + hi)
                tot = 0.0
                for r in range(nr):
                    tot += run_t[r] * min(mid * compliance[run_c[r]], strain_max[run_c[r]])
                if tot < delta:
                    lo = mid
                else:
                    hi = mid
            sig = 0.5 * (lo + hi)
        stress[l] = sig
        # Image sample s (depth y below the face) -> material position.
        r = 0
        d_top = 0.0  # deformed depth of the run's top below the face
        m_top = 0.0  # its material depth below the skin
        eps = 0.0
        if nr > 0:
            eps = min(sig * compliance[run_c[0]], strain_max[run_c[0]])
        for s in range(ns):
            y = s - face
            while r < nr and y >= d_top + run_t[r] * (1.0 - eps):
                d_top += run_t[r] * (1.0 - eps)
                m_top += run_t[r]
                r += 1
                if r < nr:
                    eps = min(sig * compliance[run_c[r]], strain_max[run_c[r]])
            if r < nr:
                y0[l, s] = q_skin + m_top + (y - d_top) / (1.0 - eps)
            else:
                y0[l, s] = q_skin + m_top + (y - d_top)  # below the column (moved down if it is full)


@njit(inline="always", **_OPTS)
def _in_group(meta, g, x, y, z):
    gx = x * meta[g, M_SCALE] + meta[g, M_OFF]
    gy = y * meta[g, M_SCALE + 1] + meta[g, M_OFF + 1]
    gz = z * meta[g, M_SCALE + 2] + meta[g, M_OFF + 2]
    ok = (gx >= 0.0 and gy >= 0.0 and gz >= 0.0 and gx <= meta[g, M_N] - 1.0 and gy <= meta[g, M_N + 1] - 1.0
          and gz <= meta[g, M_N + 2] - 1.0)
    return ok, gx, gy, gz


@njit(inline="always", **_OPTS)
def _in_dens_box(meta, g, gx, gy, gz):
    return (meta[g, M_DLO] <= gx <= meta[g, M_DHI] and meta[g, M_DLO + 1] <= gy <= meta[g, M_DHI + 1]
            and meta[g, M_DLO + 2] <= gz <= meta[g, M_DHI + 2])


@njit(**_OPTS)
def injectate_densities(meta, dens, x, y, z):
    """(pocket, gas, infiltration) at a voxel position: the largest over the groups holding it
    (0 outside every group)."""
    p0 = 0.0
    p1 = 0.0
    p2 = 0.0
    for g in range(meta.shape[0]):
        ok, gx, gy, gz = _in_group(meta, g, x, y, z)
        if ok and _in_dens_box(meta, g, gx, gy, gz):
            a, b, c = _trilinear3(dens, int(meta[g, M_DENS]), int(meta[g, M_N]), int(meta[g, M_N + 1]),
                                  int(meta[g, M_N + 2]), gx, gy, gz)
            p0 = max(p0, a)
            p1 = max(p1, b)
            p2 = max(p2, c)
    return p0, p1, p2


@njit(**_OPTS)
def injectate_density(meta, dens, ch, x, y, z):
    """Density channel ch (0 pocket, 1 gas, 2 infiltration) at a voxel position."""
    best = 0.0
    for g in range(meta.shape[0]):
        ok, gx, gy, gz = _in_group(meta, g, x, y, z)
        if ok and _in_dens_box(meta, g, gx, gy, gz):
            v = _trilinear(dens, int(meta[g, M_DENS]), int(meta[g, M_N]), int(meta[g, M_N + 1]), int(meta[g, M_N + 2]),
                           3, ch, gx, gy, gz)
            if v > best:
                best = v
    return best


@njit(inline="always", **_OPTS)
def _code_of(pocket, gas):
    if gas >= 0.5:
        return INJ_GAS_CODE
    if pocket >= 0.5:
        return INJ_FLUID_CODE
    return -1


@njit(**_OPTS)
def injectate_code(meta, dens, x, y, z):
    """The injectate's acoustic code at a voxel position, or -1 (no pocket there)."""
    if meta.shape[0] == 0:
        return -1
    p0, p1, _ = injectate_densities(meta, dens, x, y, z)
    return _code_of(p0, p1)


@njit(**_OPTS)
def injectate_gradient(meta, dens, ch, x, y, z):
    """Gradient (per voxel) of a density channel, by central differences of half a voxel."""
    h = 0.5
    gx = injectate_density(meta, dens, ch, x + h, y, z) - injectate_density(meta, dens, ch, x - h, y, z)
    gy = injectate_density(meta, dens, ch, x, y + h, z) - injectate_density(meta, dens, ch, x, y - h, z)
    gz = injectate_density(meta, dens, ch, x, y, z + h) - injectate_density(meta, dens, ch, x, y, z - h)
    return gx / (2 * h), gy / (2 * h), gz / (2 * h)


@njit(inline="always", **_OPTS)
def _displacement(meta, disp, x, y, z):
    ux = 0.0
    uy = 0.0
    uz = 0.0
    for g in range(meta.shape[0]):
        ok, gx, gy, gz = _in_group(meta, g, x, y, z)
        if ok:
            a, b, c = _trilinear3(disp, int(meta[g, M_DISP]), int(meta[g, M_N]), int(meta[g, M_N + 1]),
                                  int(meta[g, M_N + 2]), gx, gy, gz)
            ux += a
            uy += b
            uz += c
    return ux, uy, uz


@njit(**_OPTS)
def _injectate_line(pos, meta, disp, dens, inj_code, infil):
    """Move each sample position (voxel units) to the material point the injectate's
    displacement brings there (p = m + u(m), solved by two fixed-point steps: m1 = p - u(p),
    m = p - u(m1)) and mark the samples in a pocket (inj_code: INJ_FLUID_CODE / INJ_GAS_CODE,
    else 0) and the infiltrated share (densities looked up at m1); displacement and densities at
    every INJ_STEP-th sample, linear in between."""
    ns = pos.shape[0]
    for s in range(ns):
        inj_code[s] = 0
        infil[s] = 0.0
    ng = meta.shape[0]
    if ng == 0:
        return
    # Quick rejection: the line's segment against each group's box (voxel units).
    hit = False
    for g in range(ng):
        inside = True
        for a in range(3):
            lo = (0.0 - meta[g, M_OFF + a]) / meta[g, M_SCALE + a]
            hi = (meta[g, M_N + a] - 1.0 - meta[g, M_OFF + a]) / meta[g, M_SCALE + a]
            if min(pos[0, a], pos[ns - 1, a]) > hi or max(pos[0, a], pos[ns - 1, a]) < lo:
                inside = False
        if inside:
            hit = True
    if not hit:
        return
    # The fields are smooth over a millimetre (their cells) and samples lie a tenth of that apart:
    # they are evaluated every INJ_STEP samples (and at the last) and interpolated in between.
    nk = (ns - 1) // INJ_STEP + 2
    key = np.empty((nk, 6))
    ks = np.empty(nk, np.int64)
    n = 0
    for s in range(0, ns + INJ_STEP - 1, INJ_STEP):
        s = min(s, ns - 1)
        ks[n] = s
        x = pos[s, 0]
        y = pos[s, 1]
        z = pos[s, 2]
        ux, uy, uz = _displacement(meta, disp, x, y, z)
        if ux == 0.0 and uy == 0.0 and uz == 0.0:
            key[n, 0] = 0.0
            key[n, 1] = 0.0
            key[n, 2] = 0.0
            key[n, 3] = 0.0
            key[n, 4] = 0.0
            key[n, 5] = 0.0
        else:
            m1x = x - ux
            m1y = y - uy
            m1z = z - uz
            vx, vy, vz = _displacement(meta, disp, m1x, m1y, m1z)
            key[n, 0] = vx
            key[n, 1] = vy
            key[n, 2] = vz
            key[n, 3], key[n, 4], key[n, 5] = injectate_densities(meta, dens, m1x, m1y, m1z)
        n += 1
        if s == ns - 1:
            break
    j = 0
    for s in range(ns):
        while j + 1 < n - 1 and ks[j + 1] <= s:
            j += 1
        s0 = ks[j]
        s1 = ks[j + 1] if j + 1 < n else s0
        t = 0.0 if s1 == s0 else (s - s0) / (s1 - s0)
        if t < 0.0:
            t = 0.0
        elif t > 1.0:
            t = 1.0
        v0 = key[j]
        v1 = key[j + 1] if j + 1 < n else key[j]
        pos[s, 0] -= (1 - t) * v0[0] + t * v1[0]
        pos[s, 1] -= (1 - t) * v0[1] + t * v1[1]
        pos[s, 2] -= (1 - t) * v0[2] + t * v1[2]
        c = _code_of((1 - t) * v0[3] + t * v1[3], (1 - t) * v0[4] + t * v1[4])
        if c >= 0:
            inj_code[s] = c
        infil[s] = (1 - t) * v0[5] + t * v1[5]


@njit(**_OPTS)
def line_positions(l, o_vox, d_vox, y0, pos):
    """pos[s] = o + y0[l, s] d (voxel units)."""
    for s in range(pos.shape[0]):
        q = y0[l, s]
        pos[s, 0] = o_vox[l, 0] + q * d_vox[l, 0]
        pos[s, 1] = o_vox[l, 1] + q * d_vox[l, 1]
        pos[s, 2] = o_vox[l, 2] + q * d_vox[l, 2]


@njit(**_OPTS)
def lattice_positions(pos, tex_a, tex_b, tpos):
    """Speckle-lattice coordinates of voxel positions: tpos = pos @ tex_a + tex_b."""
    for s in range(pos.shape[0]):
        for a in range(3):
            tpos[s, a] = pos[s, 0] * tex_a[0, a] + pos[s, 1] * tex_a[1, a] + pos[s, 2] * tex_a[2, a] + tex_b[a]
