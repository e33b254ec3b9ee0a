"""Numba kernels of the mesh projector: the path length of every detector ray through closed
triangle meshes, from signed ray-triangle distances (no sorting, no depth peeling).

For a closed, outward-oriented mesh and a ray from the source S along d (not normalised, from S to
the pixel's centre on the detector), every triangle the ray crosses contributes its crossing
parameter lambda = n.(a - S) / n.d with a sign: + where the ray leaves (n.d > 0), - where it enters.
Their sum times |d| is the length of the ray inside the mesh (gVirtualXRay's formulation). Both
cases reduce to num / |n.d| with num = n.(a - S), so a pixel costs one division per triangle
that covers it.

Triangles are rasterised on the detector with edge functions evaluated in a canonical vertex order
(the lower vertex index first), so two triangles sharing an edge get exactly opposite values, and a
top-left rule for pixel centres exactly on an edge: every pixel centre is covered by exactly one of
the triangles around it (no cracks, no double counts along shared edges).

Pure functions of arrays; geometry as in `fluoroscopy_kernels`: `src` the focal spot, `det_origin`
the centre of pixel (row 0, column 0), `du`/`dv` the steps along a row / down a column (RAS mm).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

_JIT = dict(cache=True, nogil=True, fastmath=False)


@njit(**_JIT)
def project_vertices(verts, src, det_origin, du, dv, beam, sid_mm, uv):
    """Detector coordinates (column u, row v; pixel centres at integers) of each vertex; NaN for
    vertices not in front of the source. verts (V, 3) float64, uv (V, 2) float64 out."""
    du2 = du[0] * du[0] + du[1] * du[1] + du[2] * du[2]
    dv2 = dv[0] * dv[0] + dv[1] * dv[1] + dv[2] * dv[2]
    for i in range(verts.shape[0]):
        dx = verts[i, 0] - src[0]
        dy = verts[i, 1] - src[1]
        dz = verts[i, 2] - src[2]
        db = dx * beam[0] + dy * beam[1] + dz * beam[2]
        if db <= 1e-6:
            uv[i, 0] = np.nan
            uv[i, 1] = np.nan
            continue
        lam = sid_mm / db
        px = src[0] + lam * dx - det_origin[0]
        py = src[1] + lam * dy - det_origin[1]
        pz = src[2] + lam * dz - det_origin[2]
        uv[i, 0] = (px * du[0] + py * du[1] + pz * du[2]) / du2
        uv[i, 1] = (px * dv[0] + py * dv[1] + pz * dv[2]) / dv2


@njit(**_JIT)
def _edge_setup(ia, ib, uv, sgn):
    """Constants of the triangle edge ia -> ib (orientation sign sgn) for `_edge_span`: the edge
    function is e(x, y) = s (k + ex y + q x) with ex, q, k from the canonical vertex order (the
    lower index first), so the neighbouring triangle's edge ib -> ia gets bit-identical constants
    and the opposite sign; returns (ex, q, k, inv_q, s, tie_in)."""
    if ia < ib:
        i0 = ia
        i1 = ib
        s = sgn
    else:
        i0 = ib
        i1 = ia
        s = -sgn
    xa = uv[i0, 0]
    ya = uv[i0, 1]
    ex = uv[i1, 0] - xa
    ey = uv[i1, 1] - ya
    q = -ey
    k = ey * xa - ex * ya
    inv_q = 1.0 / q if q != 0.0 else 0.0
    ox = s * ex
    oy = s * ey
    # a pixel centre exactly on the edge belongs to the side for which the oriented edge points
    # down, or right when horizontal (a top-left rule): each centre is covered exactly once
    tie_in = oy > 0.0 or (oy == 0.0 and ox > 0.0)
    return ex, q, k, inv_q, s, tie_in


@njit(**_JIT)
def _edge_span(ex, q, k, inv_q, s, tie_in, y, lo, hi):
    """Narrow the column interval [lo, hi] of row y to the inner side of one edge; (lo, hi)."""
    p = k + ex * y
    if q == 0.0:
        v = s * p
        if v > 0.0 or (v == 0.0 and tie_in):
            return lo, hi
        return 1.0, 0.0
    x0 = -p * inv_q
    if s * q > 0.0:  # inside for x > x0
        m = math.floor(x0) + 1.0
        if tie_in and m - 1.0 == x0:
            m = x0
        if m > lo:
            lo = m
    else:  # inside for x < x0
        m = math.ceil(x0) - 1.0
        if tie_in and m + 1.0 == x0:
            m = x0
        if m < hi:
            hi = m
    return lo, hi


@njit(**_JIT)
def _corners(uv, ia, ib, ic):
    return uv[ia, 0], uv[ia, 1], uv[ib, 0], uv[ib, 1], uv[ic, 0], uv[ic, 1]


@njit(**_JIT)
def _triangle_box(faces, q, uv, r0, h, c0, w):
    """Face q on the pixel grid: (vertex indices, orientation sign, column and row range within
    rows [r0, r0 + h) and columns [c0, c0 + w)); sign 0 when it covers no pixel centre there."""
    ia = faces[q, 0]
    ib = faces[q, 1]
    ic = faces[q, 2]
    xa, ya, xb, yb, xc, yc = _corners(uv, ia, ib, ic)
    none = (ia, ib, ic, 0.0, 1.0, 0.0, 1, 0)
    if not (math.isfinite(xa) and math.isfinite(xb) and math.isfinite(xc)):
        return none
    area = (xb - xa) * (yc - ya) - (yb - ya) * (xc - xa)
    if area == 0.0:
        return none
    cmin = float(max(math.ceil(min(xa, xb, xc)), c0))
    cmax = float(min(math.floor(max(xa, xb, xc)), c0 + w - 1))
    rmin = max(int(math.ceil(min(ya, yb, yc))), r0)
    rmax = min(int(math.floor(max(ya, yb, yc))), r0 + h - 1)
    if cmin > cmax or rmin > rmax:
        return none
    return ia, ib, ic, (1.0 if area > 0.0 else -1.0), cmin, cmax, rmin, rmax


@njit(**_JIT)
def _edges3(ia, ib, ic, uv, sgn):
    return _edge_setup(ia, ib, uv, sgn), _edge_setup(ib, ic, uv, sgn), _edge_setup(ic, ia, uv, sgn)


@njit(**_JIT)
def _span3(edges, y, lo, hi):
    """The covered column interval of row y inside a triangle's three edges."""
    for e in edges:
        lo, hi = _edge_span(e[0], e[1], e[2], e[3], e[4], e[5], y, lo, hi)
    return lo, hi


@njit(**_JIT)
def raster_signed_depths(verts, faces, f0, f1, uv, src, e0, du, dv, acc, r0, c0, weight=1.0):
    """Add weight * num / |n.d| of faces [f0, f1) to acc (h, w), which holds pixels [r0, r0+h) x
    [c0, c0+w). The sum over a closed mesh, times |d|, is the path length (mm) of each pixel's ray
    inside it."""
    h, w = acc.shape
    for q in range(f0, f1):
        ia, ib, ic, sgn, cmin, cmax, rmin, rmax = _triangle_box(faces, q, uv, r0, h, c0, w)
        if sgn == 0.0:
            continue
        # the triangle's plane, from the source
        ax = verts[ia, 0]
        ay = verts[ia, 1]
        az = verts[ia, 2]
        ux = verts[ib, 0] - ax
        uy = verts[ib, 1] - ay
        uz = verts[ib, 2] - az
        wx = verts[ic, 0] - ax
        wy = verts[ic, 1] - ay
        wz = verts[ic, 2] - az
        nx = uy * wz - uz * wy
        ny = uz * wx - ux * wz
        nz = ux * wy - uy * wx
        num = weight * (nx * (ax - src[0]) + ny * (ay - src[1]) + nz * (az - src[2]))
        A = nx * e0[0] + ny * e0[1] + nz * e0[2]
        B = nx * du[0] + ny * du[1] + nz * du[2]
        C = nx * dv[0] + ny * dv[1] + nz * dv[2]
        edges = _edges3(ia, ib, ic, uv, sgn)
        for r in range(rmin, rmax + 1):
            lo, hi = _span3(edges, float(r), cmin, cmax)
            if lo > hi:
                continue
            row = acc[r - r0]
            base = A + C * r
            for c in range(int(lo), int(hi) + 1):
                den = abs(base + B * c)
                if den > 0.0:
                    row[c - c0] += num / den


@njit(**_JIT)
def bone_path_map(verts, faces, uv, groups, src, e0, du, dv, out, s_out, s_in):
    """The bone map: for each bone group g (rows of `groups`, float64):
    [outer f0, outer f1, inner f0, inner f1, r0, r1, c0, c1, shell weight, core weight],
    path lengths L_out (outer surface) and L_in (inner, cancellous surface; clamped to [0, L_out])
    over the group's pixel box, and out += shell * (L_out - L_in) + core * L_in (mm).
    Groups without an inner surface (a solid bone: the preview's) are summed weighted into one
    image instead, scaled and clamped once at the end (no per-group box to clear and walk).
    s_out, s_in: scratch images of out's shape."""
    n_solid = 0
    for g in range(groups.shape[0]):
        r0 = int(groups[g, 4])
        r1 = int(groups[g, 5])
        c0 = int(groups[g, 6])
        c1 = int(groups[g, 7])
        if r1 <= r0 or c1 <= c0:
            continue
        if groups[g, 3] <= groups[g, 2]:
            if n_solid == 0:
                s_in[:, :] = 0.0
            n_solid += 1
            raster_signed_depths(verts, faces, int(groups[g, 0]), int(groups[g, 1]), uv, src, e0, du, dv,
                                 s_in, 0, 0, groups[g, 8])
            continue
        a = s_out[r0:r1, c0:c1]
        b = s_in[r0:r1, c0:c1] if n_solid == 0 else np.zeros((r1 - r0, c1 - c0))
        a[:, :] = 0.0
        b[:, :] = 0.0
        raster_signed_depths(verts, faces, int(groups[g, 0]), int(groups[g, 1]), uv, src, e0, du, dv, a, r0, c0)
        raster_signed_depths(verts, faces, int(groups[g, 2]), int(groups[g, 3]), uv, src, e0, du, dv, b, r0, c0)
        shell = groups[g, 8]
        core = groups[g, 9]
        for r in range(r0, r1):
            for c in range(c0, c1):
                lo = a[r - r0, c - c0]
                if lo == 0.0:
                    continue
                ln = _ray_length(e0, du, dv, r, c)
                lo *= ln
                if lo < 0.0:
                    lo = 0.0
                li = b[r - r0, c - c0] * ln
                if li < 0.0:
                    li = 0.0
                if li > lo:
                    li = lo
                out[r, c] += shell * (lo - li) + core * li
    if n_solid > 0:
        h, w = out.shape
        for r in range(h):
            for c in range(w):
                v = s_in[r, c]
                if v > 0.0:
                    out[r, c] += v * _ray_length(e0, du, dv, r, c)


@njit(**_JIT)
def _ray_length(e0, du, dv, r, c):
    dx = e0[0] + c * du[0] + r * dv[0]
    dy = e0[1] + c * du[1] + r * dv[1]
    dz = e0[2] + c * du[2] + r * dv[2]
    return math.sqrt(dx * dx + dy * dy + dz * dz)


@njit(**_JIT)
def mesh_path_length(verts, faces, uv, src, e0, du, dv, out):
    """Path length (mm) of every pixel's ray through one closed mesh, written into out (n, m)."""
    out[:, :] = 0.0
    raster_signed_depths(verts, faces, 0, faces.shape[0], uv, src, e0, du, dv, out, 0, 0)
    h, w = out.shape
    for r in range(h):
        for c in range(w):
            if out[r, c] != 0.0:
                out[r, c] *= _ray_length(e0, du, dv, r, c)


@njit(**_JIT)
def raster_z_occupancy(verts, faces, f0, f1, uv, ss, zb0, sz, weight, P, S):
    """Voxel occupancy of a closed outward mesh, from its crossings with rays along +z.

    The rays run up through `ss` x `ss` sub-columns per voxel column; `uv` holds each vertex's
    position on that sub-column grid (sub-column centres at integers; column u lies in voxel column
    u // ss). Faces [f0, f1) are rasterised on it (the same exact-once edge rules as the
    perspective raster); at each crossing, at height z, the ray enters (the face looks down) or
    leaves the mesh. With zb0 the bottom of slab 0 and sz the slab thickness, slab t = (z - zb0) / sz
    gets the crossing's sign times the share of the slab above it in P[i, j, floor(t)] and every
    slab above it the whole sign through S[i, j, floor(t) + 1] (a crossing below slab 0 adds to
    S[i, j, 0]); times `weight` (1 / ss^2 for the voxel's mean). The occupancy (fraction of each
    voxel inside the mesh) is then P + cumsum(S, axis=2)."""
    ni, nj, nk = P.shape
    for q in range(f0, f1):
        ia, ib, ic, sgn, cmin, cmax, rmin, rmax = _triangle_box(faces, q, uv, 0, nj * ss, 0, ni * ss)
        if sgn == 0.0:
            continue
        xa, ya, xb, yb, xc, yc = _corners(uv, ia, ib, ic)
        area = (xb - xa) * (yc - ya) - (yb - ya) * (xc - xa)
        # the plane z = z0 + gx (u - xa) + gy (v - ya) on the sub-column grid
        za = verts[ia, 2]
        dzb = verts[ib, 2] - za
        dzc = verts[ic, 2] - za
        gx = (dzb * (yc - ya) - dzc * (yb - ya)) / area
        gy = (dzc * (xb - xa) - dzb * (xc - xa)) / area
        # the normal's z: along +z the ray enters where the face looks down
        ux = verts[ib, 0] - verts[ia, 0]
        uy = verts[ib, 1] - verts[ia, 1]
        wx = verts[ic, 0] - verts[ia, 0]
        wy = verts[ic, 1] - verts[ia, 1]
        nz = ux * wy - uy * wx
        s = weight if nz < 0.0 else -weight
        edges = _edges3(ia, ib, ic, uv, sgn)
        for r in range(rmin, rmax + 1):
            lo, hi = _span3(edges, float(r), cmin, cmax)
            if lo > hi:
                continue
            j = r // ss
            base = za + gy * (r - ya)
            for c in range(int(lo), int(hi) + 1):
                i = c // ss
                t = (base + gx * (c - xa) - zb0) / sz
                if t < 0.0:
                    S[i, j, 0] += s
                    continue
                k = int(t)
                if k >= nk:
                    continue
                P[i, j, k] += s * (1.0 - (t - k))
                if k + 1 < nk:
                    S[i, j, k + 1] += s
