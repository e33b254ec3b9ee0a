"""Blood-flow velocity fields for colour Doppler, precomputed once per anatomy.

For every labelled artery or vein: the flow runs along the vessel, with a parabolic profile
v = v_max (1 - (r/R)^2) across it. The direction comes from a geodesic distance inside the vessel
measured from a seed: the voxels touching the heart when the anatomy has a heart label, else the
end of the vessel's principal axis nearer the heart (carotids, subclavian, renal vessels...), and
without a heart the vessel's upper end (superior; anterior or right for a horizontal vessel). Arteries flow down that distance (away from the heart, or towards the feet), veins up it
(towards the heart, or towards the head). The geodesic distance follows curved
vessels (the aortic arch, iliac bifurcation) where a single principal axis could not. The flow
runs along the centreline: the vessel is cut into geodesic slabs 3 mm thick, each slab's connected
pieces (one per branch) linked to the pieces they touch, the direction the tangent through the
pieces' centroids (the distance's own gradient would point away from the seed across a wide
lumen, a flow across the vessel that colours a transverse view). The local radius R is the
largest wall distance in the same slab; r = R - wall distance.

Unlabelled vessel voxels (label 0) get no flow (no colour).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from simulator.core.anatomy import Anatomy
from simulator.core.tissue import Tissue

ARTERY_SPEED_M_S = 0.6  # centreline speed of a typical artery
VEIN_SPEED_M_S = 0.2
SLAB_MM = 3.0  # geodesic slab thickness: local radius and centreline pieces


@dataclass
class FlowFields:
    """Packed per-vessel velocity fields (m/s, world RAS components) for the Doppler kernel."""

    index: np.ndarray  # int32 [max_label + 1] -> field number or -1
    origin: np.ndarray  # int64 [n, 3] voxel index of each field's corner
    shape: np.ndarray  # int64 [n, 3]
    offset: np.ndarray  # int64 [n] start in data
    data: np.ndarray  # float32 flat (x, y, z) triplets
    names: list[str]
    pulsatile: np.ndarray = None  # bool [n]: an artery's field (beats with the heart); veins flow steadily

    @classmethod
    def empty(cls, max_label: int = 0) -> "FlowFields":
        return cls(
            np.full(max_label + 1, -1, np.int32),
            np.zeros((1, 3), np.int64),
            np.zeros((1, 3), np.int64),
            np.zeros(1, np.int64),
            np.zeros(3, np.float32),
            [],
            np.zeros(1, bool),
        )


def _geodesic_distance(mask: np.ndarray, seeds: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Shortest-path length (mm) inside `mask` from the seed voxels, 26-connected."""
    idx = -np.ones(mask.shape, np.int64)
    pts = np.argwhere(mask)
    idx[tuple(pts.T)] = np.arange(len(pts))
    rows, cols, wts = [], [], []
    for di in (0, 1):
        for dj in (-1, 0, 1):
            for dk in (-1, 0, 1):
                if (di, dj, dk) <= (0, 0, 0):
                    continue  # each undirected edge once
                q = pts + np.array([di, dj, dk])
                ok = np.all((q >= 0) & (q < np.array(mask.shape)), axis=1)
                p2, q2 = pts[ok], q[ok]
                nb = idx[tuple(q2.T)]
                good = nb >= 0
                rows.append(idx[tuple(p2[good].T)])
                cols.append(nb[good])
                wts.append(np.full(good.sum(), math.sqrt((di * spacing[0]) ** 2 + (dj * spacing[1]) ** 2 + (dk * spacing[2]) ** 2)))
    n = len(pts)
    g = coo_matrix((np.concatenate(wts), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)).tocsr()
    seed_ids = idx[tuple(seeds.T)]
    seed_ids = seed_ids[seed_ids >= 0]
    d = dijkstra(g, directed=False, indices=seed_ids, min_only=True)
    out = np.full(mask.shape, np.inf)
    out[tuple(pts.T)] = d
    return out


def _centreline_tangents(reach: np.ndarray, dist: np.ndarray, spacing: np.ndarray, slab_mm: float = SLAB_MM):
    """(X, Y, Z, 3) direction of the vessel's centreline at each voxel, pointing down the
    geodesic distance: the vessel cut into slabs of equal distance, each slab's connected pieces
    (the branches of a bifurcation are separate pieces), each piece's tangent from the centroid of
    the piece two slabs before it (its ancestor through the touching pieces) to its own, or to
    its descendant's for the first pieces. None when the vessel spans fewer than 3 slabs."""
    slab = np.zeros(reach.shape, np.int64)
    slab[reach] = (dist[reach] // slab_mm).astype(np.int64) + 1
    n_slab = int(slab.max())
    if n_slab < 3:
        return None
    piece = np.zeros(reach.shape, np.int64)
    slab_of, cent = [0], [np.zeros(3)]
    for s_i, box in enumerate(ndimage.find_objects(slab), start=1):
        if box is None:
            continue
        lab, n = ndimage.label(slab[box] == s_i, structure=np.ones((3, 3, 3)))
        if n == 0:
            continue
        lo = np.array([b.start for b in box])
        idx = np.argwhere(lab > 0)
        ids = lab[tuple(idx.T)]
        cnt = np.bincount(ids, minlength=n + 1)[1:]
        for a in range(3):
            c_a = np.bincount(ids, weights=(idx[:, a] + lo[a]) * spacing[a], minlength=n + 1)[1:] / cnt
            if a == 0:
                cs = np.zeros((n, 3))
            cs[:, a] = c_a
        base = len(slab_of)
        piece[box][lab > 0] = lab[lab > 0] + base - 1
        slab_of += [s_i] * n
        cent += list(cs)
    cent = np.array(cent)
    n_p = len(slab_of)
    # Parent of each piece: the piece of the previous slab it touches most.
    parent = np.zeros(n_p, np.int64)
    for p_i, box in enumerate(ndimage.find_objects(piece), start=1):
        if box is None:
            continue
        big = tuple(slice(max(b.start - 1, 0), b.stop + 1) for b in box)
        sub = piece[big]
        touch = ndimage.binary_dilation(sub == p_i, structure=np.ones((3, 3, 3))) & (sub > 0)
        cand = sub[touch]
        cand = cand[np.array(slab_of)[cand] == slab_of[p_i] - 1]
        if len(cand):
            parent[p_i] = np.bincount(cand).argmax()
    child = np.zeros(n_p, np.int64)
    for p_i in range(1, n_p):
        if parent[p_i]:
            child[parent[p_i]] = p_i
    tangent = np.zeros((n_p, 3))
    for p_i in range(1, n_p):
        back = parent[p_i] if parent[p_i] else p_i
        back = parent[back] if parent[back] else back
        ahead = p_i
        if back == p_i:  # a first piece: towards its descendants
            for _ in range(2):
                ahead = child[ahead] if child[ahead] else ahead
        tangent[p_i] = cent[ahead] - cent[back]
    return tangent[piece].astype(np.float64)


def vessel_flow_field(
    mask: np.ndarray, spacing: np.ndarray, seeds: np.ndarray, speed_m_s: float, towards_seed: bool
) -> np.ndarray:
    """(X, Y, Z, 3) float32 velocity inside `mask` (zero outside)."""
    dist = _geodesic_distance(mask, seeds, spacing)
    reach = np.isfinite(dist) & mask
    if not np.any(reach):
        return np.zeros(mask.shape + (3,), np.float32)
    dfill = np.where(reach, dist, 0.0)
    # Extend the distance a little outside the vessel so the gradient is defined at the wall.
    near = ndimage.distance_transform_edt(~reach, return_distances=False, return_indices=True)
    dfill = dfill[tuple(near)]
    grad = _centreline_tangents(reach, dist, spacing)
    if grad is None:  # too short for a centreline: the distance's own gradient
        grad = np.stack(np.gradient(dfill, *spacing), axis=-1)
    wsum = ndimage.gaussian_filter(reach.astype(float), 1.0)
    for c in range(3):
        grad[..., c] = ndimage.gaussian_filter(grad[..., c] * reach, 1.0) / np.maximum(wsum, 1e-6)
    norm = np.linalg.norm(grad, axis=-1, keepdims=True)
    direction = np.where(norm > 1e-9, grad / np.maximum(norm, 1e-9), 0.0)
    if towards_seed:
        direction = -direction
    # Distance to the wall: the boundary lies half a voxel beyond the last vessel voxel centre.
    wall = np.clip(ndimage.distance_transform_edt(mask, sampling=spacing) - 0.5 * float(spacing.min()), 0.0, None)
    # Local radius: the largest wall distance within the same 3 mm geodesic slab.
    slab = np.zeros(mask.shape, np.int64)
    slab[reach] = (dist[reach] // SLAB_MM).astype(np.int64)
    radius = np.zeros(slab.max() + 1)
    np.maximum.at(radius, slab[reach], wall[reach])
    r_local = np.where(reach, radius[slab], 1.0)
    u = np.clip(wall / np.maximum(r_local, 1e-6), 0.0, 1.0)
    speed = speed_m_s * (1.0 - (1.0 - u) ** 2)  # = v_max (1 - (r/R)^2) with r = R - wall
    v = direction * (speed * reach)[..., None]
    return v.astype(np.float32)


def _upper_end(voxels: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """The voxels at the vessel's 'upper' end along its principal axis: the superior end, or
    for a horizontal vessel the anterior end, else the right (+x) end."""
    xyz = voxels * spacing
    c = xyz - xyz.mean(axis=0)
    _, vecs = np.linalg.eigh(c.T @ c)
    a = vecs[:, -1]
    for axis in (2, 1, 0):
        if abs(a[axis]) > 0.1:
            a = a * np.sign(a[axis])
            break
    proj = c @ a
    return voxels[proj >= proj.max() - float(spacing.max())]


def _end_nearest(voxels: np.ndarray, spacing: np.ndarray, point_vox: np.ndarray) -> np.ndarray:
    """The voxels at the end of the vessel's principal axis nearer to a point (voxel units)."""
    xyz = voxels * spacing
    c = xyz - xyz.mean(axis=0)
    _, vecs = np.linalg.eigh(c.T @ c)
    a = vecs[:, -1]
    if float((point_vox * spacing - xyz.mean(axis=0)) @ a) < 0:
        a = -a
    proj = c @ a
    return voxels[proj >= proj.max() - float(spacing.max())]


def _seed_every_piece(mask: np.ndarray, seeds: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """The seeds plus, for each separate piece of a label (a vessel segmented in pieces) that
    none of them touches, the end of its principal axis nearer to the seeds' centre."""
    lab, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    if n <= 1 or len(seeds) == 0:
        return seeds
    seeded = set(np.unique(lab[tuple(seeds.T)]).tolist())
    centre = seeds.mean(axis=0)
    extra = [seeds]
    for i in range(1, n + 1):
        if i not in seeded:
            extra.append(_end_nearest(np.argwhere(lab == i), spacing, centre))
    return np.concatenate(extra)


def vessel_ids(anatomy: Anatomy) -> list[int]:
    return sorted(s.id for s in anatomy.structures.values() if s.tissue in (Tissue.ARTERY, Tissue.VEIN))


class FlowFieldCache:
    """Velocity fields built on demand, one vessel at a time (the first Doppler frame that shows
    a vessel pays for it: tens of ms for a small vessel, about a second for the aorta), packed
    for the Doppler kernel."""

    def __init__(self, anatomy: Anatomy, speeds_m_s: dict[str, float] | None = None):
        self.anatomy = anatomy
        self.speeds = speeds_m_s or {}
        self.max_label = int(max(anatomy.structures.keys(), default=0))
        self._fields: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # id -> (origin, field)
        self._objs = None
        self._packed: FlowFields | None = None
        self._heart_ids = [s.id for s in anatomy.structures.values() if s.tissue == Tissue.HEART]

    def ensure(self, ids) -> bool:
        """Build the fields of these vessel ids if missing; True when something was added."""
        todo = [int(i) for i in ids if int(i) in self.anatomy.structures and int(i) not in self._fields
                and self.anatomy.structures[int(i)].tissue in (Tissue.ARTERY, Tissue.VEIN)]
        if not todo:
            return False
        labels = self.anatomy.labels
        if self._objs is None:
            self._objs = ndimage.find_objects(labels)
        spacing = self.anatomy.spacing_mm
        for sid in todo:
            st = self.anatomy.structures[sid]
            self._fields[sid] = (np.zeros(3, np.int64), np.zeros((0, 0, 0, 3), np.float32))
            if sid - 1 >= len(self._objs) or self._objs[sid - 1] is None:
                continue
            sl = self._objs[sid - 1]
            lo = np.array([max(0, x.start - 2) for x in sl])
            hi = np.array([min(n, x.stop + 2) for x, n in zip(sl, labels.shape)])
            box = tuple(slice(a, b) for a, b in zip(lo, hi))
            mask = labels[box] == sid
            if mask.sum() < 8:
                continue
            seeds = np.empty((0, 3), np.int64)
            if self._heart_ids:
                heart = np.isin(labels[box], self._heart_ids)
                if heart.any():
                    seeds = np.argwhere(ndimage.binary_dilation(heart, iterations=2) & mask)
                if len(seeds) == 0:
                    seeds = _end_nearest(np.argwhere(mask), spacing, self._heart_centre() / spacing - lo)
            if len(seeds) == 0:
                seeds = _upper_end(np.argwhere(mask), spacing)
            seeds = _seed_every_piece(mask, seeds, spacing)
            speed = self.speeds.get(st.name, ARTERY_SPEED_M_S if st.tissue == Tissue.ARTERY else VEIN_SPEED_M_S)
            field = vessel_flow_field(mask, spacing, seeds, speed, towards_seed=(st.tissue == Tissue.VEIN))
            self._fields[sid] = (lo, field)
        self._packed = None
        return True

    def _heart_centre(self) -> np.ndarray:
        """Voxel-index centre of the heart labels, times the spacing (mm from the grid origin)."""
        if not hasattr(self, "_heart_c"):
            pts = np.argwhere(np.isin(self.anatomy.labels, self._heart_ids))
            self._heart_c = pts.mean(axis=0) * self.anatomy.spacing_mm
        return self._heart_c

    def packed(self) -> FlowFields:
        if self._packed is None:
            ff = FlowFields.empty(self.max_label)
            origins, shapes, offsets, chunks, names = [], [], [], [], []
            offset = 0
            for sid, (lo, field) in sorted(self._fields.items()):
                if field.size == 0:
                    continue
                ff.index[sid] = len(origins)
                origins.append(lo)
                shapes.append(np.array(field.shape[:3]))
                offsets.append(offset)
                chunks.append(field.reshape(-1))
                offset += field.size
                names.append(self.anatomy.structures[sid].name)
            if origins:
                ff.origin = np.array(origins, np.int64)
                ff.shape = np.array(shapes, np.int64)
                ff.offset = np.array(offsets, np.int64)
                ff.data = np.concatenate(chunks).astype(np.float32)
                ff.names = names
                ff.pulsatile = np.array([self.anatomy.structures[sid].tissue == Tissue.ARTERY
                                         for sid in sorted(self._fields) if self._fields[sid][1].size], bool)
            self._packed = ff
        return self._packed


def build_flow_fields(anatomy: Anatomy, speeds_m_s: dict[str, float] | None = None) -> FlowFields:
    """Velocity fields for every artery and vein structure of an anatomy."""
    cache = FlowFieldCache(anatomy, speeds_m_s)
    cache.ensure(vessel_ids(anatomy))
    return cache.packed()
