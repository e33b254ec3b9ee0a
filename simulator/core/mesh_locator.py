"""Closed surfaces: `MeshLocator` answers the two questions Perk Tutor asks of its Tissue model:
- `contains(points)`: inside a closed surface, by ray parity (a vertical ray, with a tie-break
  rule on triangle edges and vertices so that a ray through an edge or vertex is counted once);
- `first_intersection(p0, p1)`: the first point where the segment p0 -> p1 meets the surface.
Both run over a uniform grid of triangle buckets; the segment query skips empty space with a
conservative distance field (sphere tracing) and walks the occupied cells in order (a 3D DDA), so
thousands of segments are answered in one vectorised call. `locator_for(mesh)` caches one per mesh.
"""
from __future__ import annotations

import math
import weakref

import numpy as np

from simulator.core.anatomy import TriMesh
from simulator.core.mesh_locator_point import PointQueries



def _expand_ranges(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows with `counts[i]` items starting at `starts[i]`: (row index, item index) of all items."""
    counts = counts.astype(np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows = np.repeat(np.arange(len(counts)), counts)
    offsets = np.cumsum(counts) - counts
    within = np.arange(total) - np.repeat(offsets, counts)
    return rows, np.repeat(starts.astype(np.int64), counts) + within


class MeshLocator(PointQueries):
    """Fast inside and segment queries on one triangle mesh (ideally closed and watertight).

    The inside test is orientation-free ray parity along +Z: each triangle is projected on the XY
    plane and made counter-clockwise; a point on a shared edge or vertex belongs to exactly one
    projected triangle (the top-left rule of rasterisation, with each edge evaluated in one
    canonical direction so that both of its triangles see the same number). A ray grazing a
    silhouette fold therefore crosses 0 or 2 times, and a closed surface gives the exact answer
    (the same as VTK's vtkSelectEnclosedPoints away from the surface itself)."""

    def __init__(self, vertices, faces, cell_mm: float | None = None):
        v = np.asarray(vertices, dtype=np.float64)
        f = np.asarray(faces, dtype=np.int64)
        if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
            raise ValueError("MeshLocator needs vertices (N, 3) and faces (M, 3)")
        if len(f) == 0:
            raise ValueError("MeshLocator needs at least one triangle")
        tri = v[f]  # (M, 3, 3)
        self.triangles = tri
        self.n_triangles = len(tri)
        self._a = tri[:, 0]
        self._e1 = tri[:, 1] - tri[:, 0]
        self._e2 = tri[:, 2] - tri[:, 0]
        lo = tri.min(axis=(0, 1))
        hi = tri.max(axis=(0, 1))
        ext = np.maximum(hi - lo, 1e-6)
        pad = 1e-6 * float(ext.max()) + 1e-9
        self.lo = lo - pad
        self.hi = hi + pad
        if cell_mm is None:
            edge = float(np.mean(np.linalg.norm(self._e1, axis=1)))
            # About two triangles across a cell, but at most ~2 M cells.
            # About two triangles across a cell, at least ~24 cells along the longest side (so
            # large flat faces leave empty cells inside and outside), at most ~2 M cells.
            cell_mm = min(1.5 * edge, float(np.max(self.hi - self.lo)) / 24.0)
            cell_mm = max(cell_mm, float(np.cbrt(np.prod(self.hi - self.lo) / 2.0e6)), 1e-3)
        self.cell = float(cell_mm)
        self.dims = np.maximum(np.ceil((self.hi - self.lo) / self.cell).astype(np.int64), 1)
        self._build_columns(tri)
        self._build_grid3(tri)

    # -- construction -------------------------------------------------------------------
    def _cells_of_boxes(self, bmin, bmax, ndim):
        dims = self.dims[:ndim]
        i0 = np.clip(np.floor((bmin[:, :ndim] - self.lo[:ndim]) / self.cell).astype(np.int64), 0, dims - 1)
        i1 = np.clip(np.floor((bmax[:, :ndim] - self.lo[:ndim]) / self.cell).astype(np.int64), 0, dims - 1)
        n = i1 - i0 + 1
        counts = np.prod(n, axis=1)
        tri_idx = np.repeat(np.arange(len(bmin)), counts)
        local = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        nn = n[tri_idx]
        coords = np.empty((len(tri_idx), ndim), np.int64)
        rem = local
        for d in range(ndim - 1, -1, -1):
            coords[:, d] = rem % nn[:, d]
            rem = rem // nn[:, d]
        coords += i0[tri_idx]
        cell_id = coords[:, 0]
        for d in range(1, ndim):
            cell_id = cell_id * dims[d] + coords[:, d]
        return cell_id, tri_idx

    @staticmethod
    def _csr(cell_id, tri_idx, n_cells):
        order = np.argsort(cell_id, kind="stable")
        tris = tri_idx[order].astype(np.int64)
        counts = np.bincount(cell_id, minlength=n_cells).astype(np.int64)
        starts = np.cumsum(counts) - counts
        return starts, counts, tris

    def _build_grid3(self, tri):
        eps = 1e-9 * self.cell
        bmin = tri.min(axis=1) - eps
        bmax = tri.max(axis=1) + eps
        n_cells = int(np.prod(self.dims))
        cell_id, tri_idx = self._cells_of_boxes(bmin, bmax, 3)
        self._g_start, self._g_count, self._g_tris = self._csr(cell_id, tri_idx, n_cells)
        occupied = (self._g_count > 0).reshape(tuple(self.dims))
        # Triangle data as separate contiguous components (structure of arrays: fast gathers).
        a, e1, e2 = self._a, self._e1, self._e2
        self._soa = tuple(np.ascontiguousarray(x) for x in (a[:, 0], a[:, 1], a[:, 2], e1[:, 0], e1[:, 1], e1[:, 2],
                                                             e2[:, 0], e2[:, 1], e2[:, 2]))
        from scipy import ndimage

        # Conservative clearance of each cell: no triangle lies closer than this to any point of it.
        if occupied.any():
            d = ndimage.distance_transform_edt(~occupied) * self.cell
            self._clear = np.maximum(d - math.sqrt(3.0) * self.cell, 0.0).ravel()
        else:
            self._clear = np.full(n_cells, np.inf)
        # Empty cells split into face-connected regions that the surface cannot cross: each region
        # is wholly inside or wholly outside, so one exact test per region classifies its cells.
        labels, n_regions = ndimage.label(~occupied)
        self._cell_state = np.full(n_cells, -1, dtype=np.int8)  # -1 occupied, 0 outside, 1 inside
        if n_regions:
            flat = labels.ravel()
            first = np.full(n_regions + 1, -1, dtype=np.int64)
            order = np.nonzero(flat)[0]
            # first cell (lowest index) of each region
            first_idx = np.unique(flat[order], return_index=True)[1]
            reps = order[first_idx]
            ijk = np.stack(np.unravel_index(reps, tuple(self.dims)), axis=1)
            centres = self.lo + (ijk + 0.5) * self.cell
            state = self._contains_exact(centres).astype(np.int8)
            first[1:] = state
            self._cell_state = np.where(flat > 0, first[flat], -1).astype(np.int8)
        # For each cell and each axis direction, the index (along that axis) of the first empty,
        # classified cell from it (-1 or dims[a] when there is none): inside tests cast their ray
        # the shortest way to a cell whose side is known.
        self._next_empty = []
        for a in range(3):
            da = int(self.dims[a])
            shape = [1, 1, 1]
            shape[a] = da
            k = np.arange(da).reshape(shape)
            up = np.where(occupied, da, k)
            up = np.flip(np.minimum.accumulate(np.flip(up, axis=a), axis=a), axis=a)
            down = np.where(occupied, -1, k)
            down = np.maximum.accumulate(down, axis=a)
            self._next_empty.append((up.astype(np.int32).ravel(), down.astype(np.int32).ravel()))

    @staticmethod
    def _projection(tri: np.ndarray, a: int) -> dict:
        """Triangles projected along axis a on the plane of the other two axes (u, v), made
        counter-clockwise there; zero-area projections dropped. For each directed edge u->v the
        canonical endpoint order and sign (so both triangles of an edge compute the same number)
        and the top-left inclusion flag; and the plane's coordinate w along a at (u, v)."""
        b, c = (a + 1) % 3, (a + 2) % 3
        t3 = tri[:, :, [b, c, a]]  # (u, v, w)
        au, av = t3[:, 0, 0], t3[:, 0, 1]
        orient = (t3[:, 1, 0] - au) * (t3[:, 2, 1] - av) - (t3[:, 1, 1] - av) * (t3[:, 2, 0] - au)
        keep = np.nonzero(orient != 0.0)[0]
        t = t3[keep].copy()
        cw = orient[keep] < 0
        t[cw, 1], t[cw, 2] = t3[keep][cw, 2], t3[keep][cw, 1]
        proj_of = np.full(len(tri), -1, dtype=np.int64)
        proj_of[keep] = np.arange(len(keep))
        us = t[:, [0, 1, 2], :2]
        vs = t[:, [1, 2, 0], :2]
        swap = (us[..., 0] > vs[..., 0]) | ((us[..., 0] == vs[..., 0]) & (us[..., 1] > vs[..., 1]))
        p0 = np.where(swap[..., None], vs, us)
        q0 = np.where(swap[..., None], us, vs)
        d = vs - us
        # Top-left rule: a point on an edge belongs to the triangle when the CCW edge runs towards
        # -v, or exactly along -u (a fixed infinitesimal shift of the query point, so shared edges
        # and vertices are decided consistently).
        incl = (d[..., 1] < 0) | ((d[..., 1] == 0) & (d[..., 0] < 0))
        sign = np.where(swap, -1.0, 1.0)
        edges = [tuple(np.ascontiguousarray(x) for x in (p0[:, e, 0], p0[:, e, 1], q0[:, e, 0] - p0[:, e, 0],
                                                          q0[:, e, 1] - p0[:, e, 1], sign[:, e], incl[:, e]))
                 for e in range(3)]
        o = t[:, 0]
        e1 = t[:, 1] - o
        e2 = t[:, 2] - o
        det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
        plane = tuple(np.ascontiguousarray(x) for x in (o[:, 0], o[:, 1], o[:, 2], e1[:, 0], e1[:, 1], e1[:, 2],
                                                         e2[:, 0], e2[:, 1], e2[:, 2], det))
        return {"axes": (b, c, a), "proj_of": proj_of, "edges": edges, "plane": plane, "t": t,
                "wmax": np.ascontiguousarray(t[:, :, 2].max(axis=1)),
                "wmin": np.ascontiguousarray(t[:, :, 2].min(axis=1))}

    def _build_columns(self, tri):
        self._proj = [self._projection(tri, a) for a in range(3)]
        pz = self._proj[2]
        # The +Z column index (used to classify the empty regions while the grid is built).
        self._c_edges, self._c_plane, self._c_zmax = pz["edges"], pz["plane"], pz["wmax"]
        t = pz["t"]
        bmin = t.min(axis=1) - 1e-9 * self.cell
        bmax = t.max(axis=1) + 1e-9 * self.cell
        n_cols = int(self.dims[0] * self.dims[1])
        cell_id, idx = self._cells_of_boxes(bmin, bmax, 2)
        self._col_start, self._col_count, self._col_tris = self._csr(cell_id, idx, n_cols)
        del pz["t"], self._proj[0]["t"], self._proj[1]["t"]

    # -- inside test --------------------------------------------------------------------
    def contains(self, points, chunk: int = 16384) -> np.ndarray:
        """Boolean (N,): is each point inside the closed surface."""
        pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
        if len(pts) > chunk:
            return np.concatenate([self.contains(pts[i:i + chunk]) for i in range(0, len(pts), chunk)])
        out = np.zeros(len(pts), dtype=bool)
        inb = np.all((pts >= self.lo) & (pts <= self.hi), axis=1)
        idx = np.nonzero(inb)[0]
        if len(idx) == 0:
            return out
        p = pts[idx]
        ijk = np.minimum(np.floor((p - self.lo) / self.cell).astype(np.int64), self.dims - 1)
        cid = (ijk[:, 0] * self.dims[1] + ijk[:, 1]) * self.dims[2] + ijk[:, 2]
        state = self._cell_state[cid]
        out[idx] = state == 1
        near = np.nonzero(state < 0)[0]
        if len(near):
            out[idx[near]] = self._contains_exact(p[near])
        return out

    def _contains_exact(self, p: np.ndarray) -> np.ndarray:
        """Ray parity for points inside the grid box, each ray cast along the axis direction
        (+-X, +-Y, +-Z) that reaches an empty cell soonest.

        The ray only needs to reach that empty cell, whose side is known: inside = its side XOR
        (odd number of crossings between the point and it). Each crossing is counted in the one
        cell whose range along the ray holds it, so a triangle binned in several cells counts
        once. With no empty cell that way, the ray runs out of the grid (outside)."""
        n = len(p)
        if n == 0:
            return np.zeros(0, dtype=bool)
        if not hasattr(self, "_next_empty"):
            return self._contains_column(p)
        dims = self.dims
        ijk = np.clip(np.floor((p - self.lo) / self.cell).astype(np.int64), 0, dims - 1)
        cid0 = (ijk[:, 0] * dims[1] + ijk[:, 1]) * dims[2] + ijk[:, 2]
        big = int(dims.sum()) + 1
        cost = np.empty((6, n), dtype=np.int64)
        for a in range(3):
            up, down = self._next_empty[a]
            nu = up[cid0].astype(np.int64)
            nd = down[cid0].astype(np.int64)
            k = ijk[:, a]
            cost[2 * a] = np.where(nu < dims[a], nu - k, dims[a] - k + big)
            cost[2 * a + 1] = np.where(nd >= 0, k - nd, k + 1 + big)
        choice = np.argmin(cost, axis=0)
        out = np.zeros(n, dtype=bool)
        for ch in np.unique(choice):
            sel = np.nonzero(choice == ch)[0]
            out[sel] = self._parity_along(p[sel], ijk[sel], cid0[sel], int(ch) // 2, 1 if ch % 2 == 0 else -1)
        return out

    def _parity_along(self, p, ijk, cid0, a: int, sg: int) -> np.ndarray:
        n = len(p)
        dims = self.dims
        da = int(dims[a])
        stride = (int(dims[1] * dims[2]), int(dims[2]), 1)[a]
        P = self._proj[a]
        bu, bv, _ = P["axes"]
        up, down = self._next_empty[a]
        k0 = ijk[:, a]
        if sg > 0:
            nxt = up[cid0].astype(np.int64)
            has_end = nxt < da
            ncell = np.where(has_end, nxt, da) - k0
        else:
            nxt = down[cid0].astype(np.int64)
            has_end = nxt >= 0
            ncell = k0 - np.where(has_end, nxt, -1)
        state = np.zeros(n, dtype=bool)
        state[has_end] = self._cell_state[cid0[has_end] + (nxt[has_end] - k0[has_end]) * stride] == 1
        rows, j = _expand_ranges(np.zeros(n, np.int64), ncell)
        if len(rows) == 0:
            return state
        kk = k0[rows] + sg * j
        cid = cid0[rows] + (kk - k0[rows]) * stride
        prow, items = _expand_ranges(self._g_start[cid], self._g_count[cid])
        if len(prow) == 0:
            return state
        k = P["proj_of"][self._g_tris[items]]
        pt = rows[prow]
        kc = kk[prow]
        ok = k >= 0
        k, pt, kc = k[ok], pt[ok], kc[ok]
        pa = p[pt, a]
        wlo = np.where(kc == 0, -np.inf, self.lo[a] + kc * self.cell)
        whi = np.where(kc == da - 1, np.inf, self.lo[a] + (kc + 1) * self.cell)
        if sg > 0:
            ok = P["wmax"][k] > pa
        else:
            ok = P["wmin"][k] < pa
        k, pt, pa, wlo, whi = k[ok], pt[ok], pa[ok], wlo[ok], whi[ok]
        pu = p[pt, bu]
        pv = p[pt, bv]
        inside = np.ones(len(k), dtype=bool)
        for P0, P1, DU, DV, S, INC in P["edges"]:
            val = S[k] * (DU[k] * (pv - P1[k]) - DV[k] * (pu - P0[k]))
            inside &= (val > 0) | ((val == 0) & INC[k])
        k, pt, pa, wlo, whi, pu, pv = k[inside], pt[inside], pa[inside], wlo[inside], whi[inside], pu[inside], pv[inside]
        ou, ov, ow, e1u, e1v, e1w, e2u, e2v, e2w, det = (c[k] for c in P["plane"])
        du = pu - ou
        dv = pv - ov
        x = (du * e2v - dv * e2u) / det
        y = (e1u * dv - e1v * du) / det
        w = ow + x * e1w + y * e2w
        ahead = (w > pa) if sg > 0 else (w < pa)
        count = ahead & (w >= wlo) & (w < whi)
        crossings = np.bincount(pt[count], minlength=n)
        return state ^ ((crossings % 2) == 1)

    def _contains_column(self, p: np.ndarray) -> np.ndarray:
        """Ray parity along +Z over whole columns (used while the grid is being built)."""
        n = len(p)
        ij = np.minimum(np.floor((p[:, :2] - self.lo[:2]) / self.cell).astype(np.int64), self.dims[:2] - 1)
        ij = np.maximum(ij, 0)
        col = ij[:, 0] * self.dims[1] + ij[:, 1]
        rows, items = _expand_ranges(self._col_start[col], self._col_count[col])
        if len(rows) == 0:
            return np.zeros(n, dtype=bool)
        k = self._col_tris[items]
        pz = p[rows, 2]
        ok = self._c_zmax[k] > pz
        rows, k = rows[ok], k[ok]
        px = p[rows, 0]
        py = p[rows, 1]
        inside = np.ones(len(k), dtype=bool)
        for P0, P1, DX, DY, S, INC in self._c_edges:
            p0 = P0[k]
            p1 = P1[k]
            val = S[k] * (DX[k] * (py - p1) - DY[k] * (px - p0))
            inside &= (val > 0) | ((val == 0) & INC[k])
        rows, k, px, py = rows[inside], k[inside], px[inside], py[inside]
        ax, ay, az, e1x, e1y, e1z, e2x, e2y, e2z, det = (c[k] for c in self._c_plane)
        dx = px - ax
        dy = py - ay
        u = (dx * e2y - dy * e2x) / det
        v = (e1x * dy - e1y * dx) / det
        z = az + u * e1z + v * e2z
        above = z > p[rows, 2]
        crossings = np.bincount(rows[above], minlength=n)
        return (crossings % 2) == 1

    # -- segment intersection -----------------------------------------------------------
    def _ray_triangles(self, ox, oy, oz, dx, dy, dz, tris, tol=1e-12):
        """Moller-Trumbore on pairs: parameter t along unit direction d from o, inf if no hit."""
        ax, ay, az, e1x, e1y, e1z, e2x, e2y, e2z = (c[tris] for c in self._soa)
        px = dy * e2z - dz * e2y
        py = dz * e2x - dx * e2z
        pz = dx * e2y - dy * e2x
        det = e1x * px + e1y * py + e1z * pz
        good = det != 0.0
        inv = 1.0 / np.where(good, det, 1.0)
        tx = ox - ax
        ty = oy - ay
        tz = oz - az
        u = (tx * px + ty * py + tz * pz) * inv
        qx = ty * e1z - tz * e1y
        qy = tz * e1x - tx * e1z
        qz = tx * e1y - ty * e1x
        v = (dx * qx + dy * qy + dz * qz) * inv
        t = (e2x * qx + e2y * qy + e2z * qz) * inv
        hit = good & (u >= -tol) & (v >= -tol) & (u + v <= 1 + tol)
        return np.where(hit, t, np.inf)

    def _segment_triangles(self, o, d, tris, tol=1e-12):
        return self._ray_triangles(o[:, 0], o[:, 1], o[:, 2], d[:, 0], d[:, 1], d[:, 2], tris, tol)

    def first_intersection(self, p0, p1, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """First surface point on each segment p0[i] -> p1[i] (see `_first_intersection`), in chunks
        small enough to stay in the processor's cache."""
        a = np.atleast_2d(np.asarray(p0, dtype=np.float64))
        b = np.atleast_2d(np.asarray(p1, dtype=np.float64))
        if len(a) <= chunk:
            return self._first_intersection(a, b)
        parts = [self._first_intersection(a[i:i + chunk], b[i:i + chunk]) for i in range(0, len(a), chunk)]
        return tuple(np.concatenate(x) for x in zip(*parts))

    def _first_intersection(self, p0, p1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """First surface point on each segment p0[i] -> p1[i].

        Returns (hit (N,) bool, fraction (N,) in [0, 1] along the segment (inf if no hit),
        point (N, 3), NaN where there is no hit).

        Free space is crossed by sphere tracing on the cells' clearance; near the surface the ray
        walks cell by cell (3D DDA) and tests the triangles of each cell, accepting a hit only
        inside the cell it is walking, so the first hit found is the first along the segment."""
        a = np.atleast_2d(np.asarray(p0, dtype=np.float64))
        b = np.atleast_2d(np.asarray(p1, dtype=np.float64))
        n = len(a)
        frac = np.full(n, np.inf)
        point = np.full((n, 3), np.nan)
        seg = b - a
        # |seg| summed x, y, z in that order, as the scalar query does (bit-identical results)
        length = np.sqrt(seg[:, 0] * seg[:, 0] + seg[:, 1] * seg[:, 1] + seg[:, 2] * seg[:, 2])
        nz = length > 0
        u = np.zeros_like(seg)
        u[nz] = seg[nz] / length[nz, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = np.where(u != 0, 1.0 / np.where(u != 0, u, 1.0), np.inf)
            t_lo = (self.lo - a) * inv
            t_hi = (self.hi - a) * inv
        inside_slab = (a >= self.lo) & (a <= self.hi)
        t_near = np.where(u != 0, np.minimum(t_lo, t_hi), np.where(inside_slab, -np.inf, np.inf))
        t_far = np.where(u != 0, np.maximum(t_lo, t_hi), np.where(inside_slab, np.inf, -np.inf))
        s_in = np.maximum(np.max(t_near, axis=1), 0.0)
        s_end = np.minimum(np.min(t_far, axis=1), length)
        act = np.nonzero(nz & (s_in <= s_end))[0]
        if len(act) == 0:
            return np.zeros(n, bool), frac, point
        cell = self.cell
        lo0, lo1, lo2 = (float(x) for x in self.lo)
        d0, d1, d2 = (int(x) for x in self.dims)
        eps = 1e-9 * cell
        # Per active segment, component arrays.
        ox, oy, oz = a[act, 0].copy(), a[act, 1].copy(), a[act, 2].copy()
        ux, uy, uz = u[act, 0].copy(), u[act, 1].copy(), u[act, 2].copy()
        ix_, iy_, iz_ = inv[act, 0].copy(), inv[act, 1].copy(), inv[act, 2].copy()
        s = s_in[act].copy()
        se = s_end[act].copy()
        gid = act.copy()

        def cells_at(ss, ox, oy, oz, ux, uy, uz):
            ci = np.clip(np.floor((ox + ss * ux - lo0) / cell).astype(np.int64), 0, d0 - 1)
            cj = np.clip(np.floor((oy + ss * uy - lo1) / cell).astype(np.int64), 0, d1 - 1)
            ck = np.clip(np.floor((oz + ss * uz - lo2) / cell).astype(np.int64), 0, d2 - 1)
            return ci, cj, ck

        ci, cj, ck = cells_at(s, ox, oy, oz, ux, uy, uz)
        best = np.full(n, np.inf)
        for _ in range(int(6 * self.dims.sum()) + 64):
            if len(gid) == 0:
                break
            cid = (ci * d1 + cj) * d2 + ck
            clear = self._clear[cid]
            # Jump through free space when the clearance is at least a cell; closer to the surface
            # walking cell by cell is faster (empty cells cost no triangle test).
            jump = clear >= cell
            done = np.zeros(len(gid), dtype=bool)
            if jump.any():
                j = np.nonzero(jump)[0]
                s[j] += clear[j]
                ci[j], cj[j], ck[j] = cells_at(s[j], ox[j], oy[j], oz[j], ux[j], uy[j], uz[j])
            w = np.nonzero(~jump)[0]
            if len(w):
                wi, wj, wk = ci[w], cj[w], ck[w]
                # Exit parameter of the current cell along each axis.
                with np.errstate(invalid="ignore"):
                    tx = np.where(ux[w] != 0, (lo0 + (wi + (ux[w] > 0)) * cell - ox[w]) * ix_[w], np.inf)
                    ty = np.where(uy[w] != 0, (lo1 + (wj + (uy[w] > 0)) * cell - oy[w]) * iy_[w], np.inf)
                    tz = np.where(uz[w] != 0, (lo2 + (wk + (uz[w] > 0)) * cell - oz[w]) * iz_[w], np.inf)
                s_exit = np.minimum(np.minimum(tx, ty), tz)
                cw = cid[w]
                cnt = self._g_count[cw]
                occ = np.nonzero(cnt)[0]
                if len(occ):
                    rows, items = _expand_ranges(self._g_start[cw[occ]], cnt[occ])
                    tris = self._g_tris[items]
                    r = w[occ[rows]]
                    th = self._ray_triangles(ox[r], oy[r], oz[r], ux[r], uy[r], uz[r], tris)
                    lim = np.minimum(s_exit[occ[rows]], se[r]) + eps
                    th = np.where((th >= -eps) & (th <= lim), th, np.inf)
                    tmin = np.full(len(w), np.inf)
                    np.minimum.at(tmin, occ[rows], th)
                    found = np.isfinite(tmin)
                    if found.any():
                        best[gid[w[found]]] = np.maximum(tmin[found], 0.0)
                        done[w[found]] = True
                # Step into the next cell along the exit axis.
                ax_x = (tx <= ty) & (tx <= tz)
                ax_y = ~ax_x & (ty <= tz)
                ax_z = ~ax_x & ~ax_y
                wi = wi + np.where(ax_x, np.where(ux[w] > 0, 1, -1), 0)
                wj = wj + np.where(ax_y, np.where(uy[w] > 0, 1, -1), 0)
                wk = wk + np.where(ax_z, np.where(uz[w] > 0, 1, -1), 0)
                ci[w], cj[w], ck[w] = wi, wj, wk
                s[w] = np.maximum(s[w], s_exit)
                done[w] |= (wi < 0) | (wi >= d0) | (wj < 0) | (wj >= d1) | (wk < 0) | (wk >= d2)
            done |= s > se
            if done.any():
                keep = ~done
                ox, oy, oz, ux, uy, uz = ox[keep], oy[keep], oz[keep], ux[keep], uy[keep], uz[keep]
                ix_, iy_, iz_, s, se, gid = ix_[keep], iy_[keep], iz_[keep], s[keep], se[keep], gid[keep]
                ci, cj, ck = ci[keep], cj[keep], ck[keep]
        hit = np.isfinite(best)
        frac[hit] = best[hit] / length[hit]
        point[hit] = a[hit] + best[hit, None] * u[hit]
        return hit, frac, point

    def first_intersection_brute(self, p0, p1):
        """Reference implementation: every segment against every triangle (for tests)."""
        a = np.atleast_2d(np.asarray(p0, dtype=np.float64))
        b = np.atleast_2d(np.asarray(p1, dtype=np.float64))
        n = len(a)
        frac = np.full(n, np.inf)
        point = np.full((n, 3), np.nan)
        allt = np.arange(self.n_triangles)
        m = self.n_triangles
        for i in range(n):
            seg = b[i] - a[i]
            length = float(np.linalg.norm(seg))
            if length == 0:
                continue
            u = seg / length
            th = self._ray_triangles(np.full(m, a[i, 0]), np.full(m, a[i, 1]), np.full(m, a[i, 2]),
                                     np.full(m, u[0]), np.full(m, u[1]), np.full(m, u[2]), allt)
            th = th[(th >= 0) & (th <= length)]
            if len(th):
                t = float(th.min())
                frac[i] = t / length
                point[i] = a[i] + t * u
        return np.isfinite(frac), frac, point


_LOCATORS: dict[int, MeshLocator] = {}


def locator_for(mesh: TriMesh) -> MeshLocator:
    """A cached MeshLocator for a TriMesh (built once per mesh object)."""
    key = id(mesh)
    loc = _LOCATORS.get(key)
    if loc is None:
        loc = MeshLocator(mesh.vertices, mesh.faces)
        _LOCATORS[key] = loc
        weakref.finalize(mesh, _LOCATORS.pop, key, None)
    return loc
