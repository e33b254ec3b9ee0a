"""Bone surfaces fit for a radiograph: the segmentation's meshes refined against the CT.

The anatomy's bone meshes are iso-surfaces of a label map with 2.5-3 mm slices, smoothed and
decimated to about 3 mm edges. Decimation keeps the flat terraces a slice staircase leaves on
nearly axial surfaces (the end plates) as large planar facets, and on a radiograph every facet seen
edge-on draws a straight line: an end plate becomes three or four parallel lines, a vertebral body
a faceted blob. Here each bone surface is

1. subdivided (each triangle into four) until its median edge is at most `TARGET_EDGE_MM`;
2. moved onto the CT's own bone boundary: along each vertex normal the CT numbers (slightly
   smoothed in-plane, interpolated trilinearly, so partial volume places an end plate between two
   slices) are sampled over +-`REACH_MM`; the boundary is where the profile falls to half-way
   between the bone's peak and the lowest value outside it (the half-maximum rule used to measure
   cortical bone on CT); vertices without a clear edge (contrast under `MIN_EDGE_HU`) keep their
   place, and the moves are averaged over each vertex's neighbours;
3. de-terraced: the half-maximum of slices 2.5 mm apart still puts nearly axial surfaces at the
   slices' boundaries, so a tilted end plate stays a staircase of flat treads, each drawing a
   horizontal line on an AP view. The heights of vertices on upward/downward-facing surfaces are
   diffused along the surface (`smooth_terraces`), which turns the staircase into the slope it
   samples, and leaves the walls and the outline in x and y alone;
4. smoothed by Taubin's lambda/mu filter (a low-pass without shrinkage).

The result stays a closed, outward mesh with the same connectivity pattern (the signed-distance
path lengths of `xray_mesh_kernels` stay valid). Pure numpy/scipy: no VTK in the imaging layer.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy import sparse

TARGET_EDGE_MM = 1.6  # subdivide until the median edge is at most this
REACH_MM = 2.0  # how far along the normal the CT's edge is looked for
STEP_MM = 0.25
MIN_EDGE_HU = 100.0  # a boundary needs at least this step between bone and outside
TAUBIN_ITERATIONS = 8
TERRACE_ITERATIONS = 60  # diffusion of the heights over about 8 mm: a 2.5 mm step on a 15 deg end plate
TAUBIN_LAMBDA, TAUBIN_MU = 0.5, -0.53
CT_SMOOTH_MM = 0.5  # in-plane Gaussian on the CT before the profiles are read


def subdivide(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each triangle into four at its edges' midpoints (shared edges share their midpoint)."""
    f = np.asarray(faces, dtype=np.int64)
    nv = len(vertices)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    key = np.sort(e, axis=1)
    uniq, inv = np.unique(key, axis=0, return_inverse=True)
    inv = inv.ravel()
    mids = 0.5 * (vertices[uniq[:, 0]] + vertices[uniq[:, 1]])
    m = nv + inv.reshape(3, -1)  # midpoint of edge (0,1), (1,2), (2,0) per face
    a, b, c = f[:, 0], f[:, 1], f[:, 2]
    ab, bc, ca = m[0], m[1], m[2]
    new_f = np.concatenate([np.stack([a, ab, ca], 1), np.stack([ab, b, bc], 1), np.stack([ca, bc, c], 1),
                            np.stack([ab, bc, ca], 1)])
    return np.concatenate([vertices, mids]), new_f


def median_edge_mm(vertices: np.ndarray, faces: np.ndarray) -> float:
    t = vertices[faces]
    return float(np.median(np.linalg.norm(t[:, [1, 2, 0]] - t, axis=2)))


def neighbour_mean_operator(faces: np.ndarray, n: int) -> sparse.csr_matrix:
    """Row-normalised vertex adjacency: (A @ x)[i] is the mean of x over i's neighbours."""
    f = np.asarray(faces, dtype=np.int64)
    i = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0]])
    j = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2]])
    a = sparse.csr_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    a.data[:] = 1.0  # duplicates (each edge seen from both faces) count once
    deg = np.asarray(a.sum(axis=1)).ravel()
    return sparse.diags(1.0 / np.maximum(deg, 1.0)) @ a


def taubin(vertices: np.ndarray, mean_op, iterations: int = TAUBIN_ITERATIONS,
           lam: float = TAUBIN_LAMBDA, mu: float = TAUBIN_MU) -> np.ndarray:
    """Taubin's smoothing: alternate steps of +lam and mu towards the neighbours' mean."""
    v = np.array(vertices, dtype=np.float64, copy=True)
    for _ in range(int(iterations)):
        v += lam * (mean_op @ v - v)
        v += mu * (mean_op @ v - v)
    return v


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals of an outward mesh."""
    t = vertices[faces]
    fn = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
    vn = np.zeros_like(vertices, dtype=np.float64)
    for k in range(3):
        np.add.at(vn, faces[:, k], fn)
    return vn / np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)


def edge_offsets(vertices: np.ndarray, normals: np.ndarray, hu: np.ndarray, origin_mm, spacing_mm,
                 reach_mm: float = REACH_MM, step_mm: float = STEP_MM, min_edge_hu: float = MIN_EDGE_HU
                 ) -> tuple[np.ndarray, np.ndarray]:
    """For each vertex, the signed distance along its normal (outwards +) to the CT's half-maximum
    bone boundary within +-reach_mm, and whether one was found. `hu`: CT numbers (float) on a grid
    with voxel (0, 0, 0) at origin_mm."""
    s = np.arange(-reach_mm - 1.0, reach_mm + 1.0 + 1e-9, step_mm)
    pts = vertices[:, None, :] + s[None, :, None] * normals[:, None, :]
    idx = (pts - np.asarray(origin_mm)) / np.asarray(spacing_mm)
    prof = ndi.map_coordinates(hu, idx.reshape(-1, 3).T, order=1, mode="nearest").reshape(len(vertices), len(s))
    # the bone's peak within reach (inside, or just outside where the mesh sits too deep)
    search = s <= reach_mm
    peak_i = np.argmax(np.where(search[None, :], prof, -np.inf), axis=1)
    rows = np.arange(len(vertices))
    peak = prof[rows, peak_i]
    after = np.arange(len(s))[None, :] >= peak_i[:, None]
    outside = np.where(after, prof, np.inf).min(axis=1)
    level = 0.5 * (peak + outside)
    below = after & (prof < level[:, None])
    found = below.any(axis=1) & (peak - outside >= min_edge_hu)
    k = np.where(found, below.argmax(axis=1), 0)
    k = np.maximum(k, 1)
    p0, p1 = prof[rows, k - 1], prof[rows, k]
    frac = np.clip((p0 - level) / np.maximum(p0 - p1, 1e-6), 0.0, 1.0)
    d = s[k - 1] + frac * step_mm
    found &= np.abs(d) <= reach_mm
    return np.where(found, d, 0.0), found


def smooth_terraces(vertices: np.ndarray, faces: np.ndarray, mean_op, iterations: int = TERRACE_ITERATIONS,
                    lam: float = 0.5) -> np.ndarray:
    """The slice staircase on nearly axial surfaces (end plates) turned into the slope it stands
    for: the heights (z) of vertices on surfaces facing up or down (|n_z| above 0.5, fully from
    0.9) diffuse towards their neighbours' mean; x and y, and the walls, stay."""
    v = np.array(vertices, dtype=np.float64, copy=True)
    for i in range(int(iterations)):
        if i % 10 == 0:
            nz = np.abs(vertex_normals(v, faces)[:, 2])
            w = lam * np.clip((nz - 0.5) / 0.4, 0.0, 1.0)
        v[:, 2] += w * (mean_op @ v[:, 2] - v[:, 2])
    return v


def refine_bone_surface(vertices: np.ndarray, faces: np.ndarray, hu: np.ndarray, origin_mm, spacing_mm,
                        snap: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A bone mesh subdivided, moved onto the CT's edge and smoothed (see the module doc).
    `hu`: the CT numbers of a box around the bone (voxel (0, 0, 0) at origin_mm)."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    for _ in range(2):
        if median_edge_mm(v, f) <= TARGET_EDGE_MM:
            break
        v, f = subdivide(v, f)
    op = neighbour_mean_operator(f, len(v))
    v = taubin(v, op, 4)  # the terraces' flat facets first
    if snap:
        sp = np.asarray(spacing_mm, dtype=np.float64)
        sigma = [CT_SMOOTH_MM / sp[0], CT_SMOOTH_MM / sp[1], 0.0]
        ct = ndi.gaussian_filter(np.asarray(hu, dtype=np.float32), sigma)
        d, found = edge_offsets(v, vertex_normals(v, f), ct, origin_mm, sp)
        w = found.astype(np.float64)
        for _ in range(2):  # average the moves over the neighbours (those with an edge found)
            num = op @ (d * w) + d * w
            den = op @ w + w
            d = np.where(den > 0, num / np.maximum(den, 1e-9), 0.0)
            w = np.minimum(den, 1.0)
        v = v + (d * w)[:, None] * vertex_normals(v, f)
    v = smooth_terraces(v, f, op)
    v = taubin(v, op, TAUBIN_ITERATIONS)
    return v, f
