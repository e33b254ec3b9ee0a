"""One query at a time on a `MeshLocator` (the live updates of a tracked or driven needle): the
same questions as its vectorised `contains` and `first_intersection`, in plain Python floats with
the same arithmetic in the same order, so each answer equals the vectorised one bit for bit while a
single query costs tens of microseconds instead of numpy's fixed overhead per call.
"""
from __future__ import annotations

import math

import numpy as np


def _miss():
    return False, math.inf, np.full(3, np.nan)


class PointQueries:
    """Part of `MeshLocator` (simulator.core.mesh_locator)."""

    def _tri_rows(self):
        if getattr(self, "_tri9", None) is None:
            self._tri9 = np.ascontiguousarray(np.stack(self._soa, axis=1))
        return self._tri9

    def contains_point(self, p) -> bool:
        """`contains` for one point (fast path: the cell's known side)."""
        x, y, z = float(p[0]), float(p[1]), float(p[2])
        lo, hi = self.lo, self.hi
        if not (lo[0] <= x <= hi[0] and lo[1] <= y <= hi[1] and lo[2] <= z <= hi[2]):
            return False
        d = self.dims
        i = min(int(math.floor((x - lo[0]) / self.cell)), int(d[0]) - 1)
        j = min(int(math.floor((y - lo[1]) / self.cell)), int(d[1]) - 1)
        k = min(int(math.floor((z - lo[2]) / self.cell)), int(d[2]) - 1)
        state = int(self._cell_state.item((i * int(d[1]) + j) * int(d[2]) + k))
        if state >= 0:
            return state == 1
        if not hasattr(self, "_next_empty"):
            return bool(self._contains_exact(np.array([[x, y, z]]))[0])
        return self._contains_exact_point((x, y, z), (max(i, 0), max(j, 0), max(k, 0)))

    def _proj_rows(self, a: int) -> np.ndarray:
        """Projection a's per-triangle numbers in one row each (edges, plane, w range), built on
        first use, for the one-point inside test."""
        cache = getattr(self, "_proj_row_cache", None)
        if cache is None:
            cache = self._proj_row_cache = {}
        if a not in cache:
            P = self._proj[a]
            cols = [c for edge in P["edges"] for c in edge] + list(P["plane"]) + [P["wmin"], P["wmax"]]
            # the projected triangle's box (u, v), widened far beyond any rounding: a point outside
            # it cannot pass the edge tests, so most candidates are dropped after four comparisons
            us = np.stack([e[0] for e in P["edges"]] + [e[0] + e[2] for e in P["edges"]], axis=1)
            vs = np.stack([e[1] for e in P["edges"]] + [e[1] + e[3] for e in P["edges"]], axis=1)
            tol = 1e-3 * self.cell
            cols += [us.min(axis=1) - tol, us.max(axis=1) + tol, vs.min(axis=1) - tol, vs.max(axis=1) + tol]
            cache[a] = np.ascontiguousarray(np.stack([np.asarray(c, dtype=np.float64) for c in cols], axis=1))
        return cache[a]

    def _contains_exact_point(self, p: tuple, ijk: tuple) -> bool:
        """`_contains_exact` for one point in plain Python floats: the same ray (the shortest way
        to a classified empty cell, the first of equal ones), the same arithmetic in the same
        order, so the answer is the vectorised one's bit for bit (a live sample costs tens of
        microseconds instead of numpy's fixed overhead of about a millisecond)."""
        dims = [int(v) for v in self.dims]
        i, j, k = ijk
        cid0 = (i * dims[1] + j) * dims[2] + k
        big = sum(dims) + 1
        best = None
        for a in range(3):
            up, down = self._next_empty[a]
            nu, nd, ka = int(up.item(cid0)), int(down.item(cid0)), ijk[a]
            for sg, cost in ((1, nu - ka if nu < dims[a] else dims[a] - ka + big),
                             (-1, ka - nd if nd >= 0 else ka + 1 + big)):
                if best is None or cost < best[0]:
                    best = (cost, a, sg)
        _cost, a, sg = best
        da = dims[a]
        stride = (dims[1] * dims[2], dims[2], 1)[a]
        bu, bv, _ = self._proj[a]["axes"]
        k0 = ijk[a]
        up, down = self._next_empty[a]
        if sg > 0:
            nxt = int(up.item(cid0))
            has_end = nxt < da
            ncell = (nxt if has_end else da) - k0
        else:
            nxt = int(down.item(cid0))
            has_end = nxt >= 0
            ncell = k0 - (nxt if has_end else -1)
        state = has_end and int(self._cell_state.item(cid0 + (nxt - k0) * stride)) == 1
        rows = self._proj_rows(a)
        proj_of = self._proj[a]["proj_of"]
        pa, pu, pv = p[a], p[bu], p[bv]
        lo_a, cell = float(self.lo[a]), self.cell
        crossings = 0
        for jj in range(ncell):
            kk = k0 + sg * jj
            cid = cid0 + (kk - k0) * stride
            n = int(self._g_count.item(cid))
            if not n:
                continue
            b = int(self._g_start.item(cid))
            ks = proj_of[self._g_tris[b:b + n]]
            ks = ks[ks >= 0]
            if not len(ks):
                continue
            wlo = -math.inf if kk == 0 else lo_a + kk * cell
            whi = math.inf if kk == da - 1 else lo_a + (kk + 1) * cell
            for r in rows[ks].tolist():
                if not (r[29] > pa if sg > 0 else r[28] < pa) or not (r[30] <= pu <= r[31] and r[32] <= pv <= r[33]):
                    continue
                inside = True
                for e in (0, 6, 12):
                    val = r[e + 4] * (r[e + 2] * (pv - r[e + 1]) - r[e + 3] * (pu - r[e]))
                    if not (val > 0 or (val == 0 and r[e + 5])):
                        inside = False
                        break
                if not inside:
                    continue
                ou, ov, ow, e1u, e1v, e1w, e2u, e2v, e2w, det = r[18:28]
                du = pu - ou
                dv = pv - ov
                x = (du * e2v - dv * e2u) / det
                y = (e1u * dv - e1v * du) / det
                w = ow + x * e1w + y * e2w
                if (w > pa if sg > 0 else w < pa) and wlo <= w < whi:
                    crossings += 1
        return bool(state) != (crossings % 2 == 1)

    def first_intersection_point(self, p0, p1) -> tuple[bool, float, np.ndarray]:
        """`first_intersection` for one segment, without numpy per step (for live updates).
        Returns (hit, fraction along the segment, point)."""
        ax, ay, az = float(p0[0]), float(p0[1]), float(p0[2])
        dx, dy, dz = float(p1[0]) - ax, float(p1[1]) - ay, float(p1[2]) - az
        length = math.sqrt(dx * dx + dy * dy + dz * dz)
        if length == 0:
            return _miss()
        ux, uy, uz = dx / length, dy / length, dz / length
        lo = [float(v) for v in self.lo]
        hi = [float(v) for v in self.hi]
        o = (ax, ay, az)
        u = (ux, uy, uz)
        inv = [1.0 / c if c != 0 else math.inf for c in u]
        s_in, s_end = 0.0, length
        for a in range(3):
            if u[a] == 0:
                if not lo[a] <= o[a] <= hi[a]:
                    return _miss()
                continue
            t1 = (lo[a] - o[a]) * inv[a]
            t2 = (hi[a] - o[a]) * inv[a]
            if t1 > t2:
                t1, t2 = t2, t1
            s_in = max(s_in, t1)
            s_end = min(s_end, t2)
        if s_in > s_end:
            return _miss()
        cell = self.cell
        d0, d1, d2 = (int(v) for v in self.dims)
        eps = 1e-9 * cell
        clear = self._clear
        count = self._g_count
        start = self._g_start
        rows = self._tri_rows()

        def cell_at(ss):
            ci = min(max(int(math.floor((ax + ss * ux - lo[0]) / cell)), 0), d0 - 1)
            cj = min(max(int(math.floor((ay + ss * uy - lo[1]) / cell)), 0), d1 - 1)
            ck = min(max(int(math.floor((az + ss * uz - lo[2]) / cell)), 0), d2 - 1)
            return ci, cj, ck

        s = s_in
        ci, cj, ck = cell_at(s)
        for _ in range(6 * (d0 + d1 + d2) + 64):
            cid = (ci * d1 + cj) * d2 + ck
            c = clear.item(cid)
            if c >= cell:
                s += c
                if s > s_end:
                    return _miss()
                ci, cj, ck = cell_at(s)
                continue
            tx = (lo[0] + (ci + (ux > 0)) * cell - ax) * inv[0] if ux != 0 else math.inf
            ty = (lo[1] + (cj + (uy > 0)) * cell - ay) * inv[1] if uy != 0 else math.inf
            tz = (lo[2] + (ck + (uz > 0)) * cell - az) * inv[2] if uz != 0 else math.inf
            s_exit = min(tx, ty, tz)
            n = count.item(cid)
            if n:
                b = start.item(cid)
                lim = min(s_exit, s_end) + eps
                best = math.inf
                for (qx, qy, qz, e1x, e1y, e1z, e2x, e2y, e2z) in rows[self._g_tris[b:b + n]].tolist():
                    px = uy * e2z - uz * e2y
                    py = uz * e2x - ux * e2z
                    pz = ux * e2y - uy * e2x
                    det = e1x * px + e1y * py + e1z * pz
                    if det == 0.0:
                        continue
                    iv = 1.0 / det
                    tx_ = ax - qx
                    ty_ = ay - qy
                    tz_ = az - qz
                    uu = (tx_ * px + ty_ * py + tz_ * pz) * iv
                    qx_ = ty_ * e1z - tz_ * e1y
                    qy_ = tz_ * e1x - tx_ * e1z
                    qz_ = tx_ * e1y - ty_ * e1x
                    vv = (ux * qx_ + uy * qy_ + uz * qz_) * iv
                    tt = (e2x * qx_ + e2y * qy_ + e2z * qz_) * iv
                    if uu >= -1e-12 and vv >= -1e-12 and uu + vv <= 1 + 1e-12 and -eps <= tt <= lim and tt < best:
                        best = tt
                if best < math.inf:
                    t = max(best, 0.0)
                    return True, t / length, np.array([ax + t * ux, ay + t * uy, az + t * uz])
            if tx <= ty and tx <= tz:
                ci += 1 if ux > 0 else -1
            elif ty <= tz:
                cj += 1 if uy > 0 else -1
            else:
                ck += 1 if uz > 0 else -1
            s = max(s, s_exit)
            if not (0 <= ci < d0 and 0 <= cj < d1 and 0 <= ck < d2) or s > s_end:
                return _miss()
        return _miss()
