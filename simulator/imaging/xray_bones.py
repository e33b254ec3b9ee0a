"""Bones drawn from their closed surface meshes: a cortical shell over a cancellous core, at the
detector's resolution (the hybrid of mesh and CT that gVirtualXRay and DeepDRR 1.2 use).

Why: a CT with 0.7 x 0.7 x 2.5 mm voxels smears a 1-2 mm cortex (1.9 g/cm3) into a few hundred HU
over several voxels, so a projection of the CT alone shows no sharp end plates, pedicles or rib
outlines. The segmentation's smooth closed meshes (built by `simulator.anatomy`) keep the bones'
shapes; the spine's and the pelvis's are first refined against the CT (`xray_bone_surface`:
subdivided, moved onto the CT's half-maximum bone edge, the slice staircase of the end plates
smoothed into their slope). Each bone gets

- an outer surface (its mesh) and an inner surface (the mesh moved inwards along its vertex normals
  by the cortical thickness of that bone, `CORTEX_MM`, never more than 0.9 times the local
  half-thickness measured on the label map's distance transform, so thin plates are cortex
  throughout and the inner surface does not cross itself);
- per pixel the path lengths L_out, L_in through both (signed ray-triangle distances,
  `xray_mesh_kernels`), the shell L_out - L_in and the core L_in;
- densities calibrated against the CT: the bone's mass above marrow (`FILL_HU`) in the CT (its voxels and a
  one-voxel ring around them, where partial volume spreads it) equals shell_weight * V_shell +
  core_weight * V_core in millimetres of cortical bone replacing water; the shell is cortical
  bone (weight 1) and the core's weight (its cortical-bone volume fraction) is solved for.

The bone map of a pose is the cortical-bone-equivalent path B (mm): along the ray, B mm of
cortical bone (1.92 g/cm3) replace the same length of water. The CT supplies everything else,
with the model itself taken out of it as the CT sees it (`model_on_grid`: each voxel's share of
shell and core, exact along z and 3 x 3 rays in-plane, blurred by the CT's point spread) - not the
label voxels, whose 2.5 mm slice boundaries would leave straight lines across every vertebra. What
the model misses (denser or lighter bone, osteophytes) stays in the CT, so the hybrid and the CT
agree when both are blurred to the CT's resolution. A bone whose mesh is missing or not closed is
listed in `BoneModel.rejected` with the reason and stays in the CT.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from simulator.core.tissue import BONE, Tissue
from simulator.imaging import xray_mesh_kernels as MK
from simulator.imaging.xray_bone_surface import REACH_MM, refine_bone_surface

# CT number of cortical bone (1.92 g/cm3, ICRU-46) at a 120 kVp scanner's effective energy (about
# 70 keV): mu_bone / mu_water = 0.502 / 0.194 (NIST XCOM) -> 1588 HU. A voxel at h HU (h > 0)
# holds h / 1588 of its volume as cortical bone replacing water.
CORTICAL_BONE_HU = 1588.0
# Cortical thickness (mm) by bone, from published micro-CT and radiographic measurements: vertebral
# body shell and end plates 0.4-1.5 mm (Silva 1994; Edwards 2001; Zhao 2009: end plates 0.5-1.2 mm),
# pedicle and lamina walls 1-2.5 mm (Kothe 1996) -> 1.2 mm; rib cortices 0.5-1.0 mm (Holcombe 2019:
# mean 0.7-0.9 mm); sternum, scapula, clavicle, pelvis 0.8-1.5 mm; long-bone shafts 2-5 mm.
CORTEX_MM: tuple[tuple[str, float], ...] = (
    (r"^vertebrae_", 1.2),
    (r"^rib_", 0.6),
    (r"^sternum", 1.0),
    (r"^(scapula|clavicula|hip|sacrum)", 1.2),
    (r"^(humerus|femur)", 2.5),
    (r".*", 1.0),
)
# Cancellous bone as a fraction of cortical bone (its bone volume fraction BV/TV): lumbar and
# thoracic vertebral bodies 0.08-0.20 (Mosekilde 1988; Hildebrand 1999: 0.08-0.15 in the elderly);
# ribs 0.10-0.20; other flat bones similar. The shell's density takes the rest of the CT's mass.
CORE_PRIOR: tuple[tuple[str, float], ...] = ((r"^vertebrae_", 0.13), (r"^rib_", 0.08), (r".*", 0.12))
REFINED = r"^(vertebrae_|sacrum|hip_|femur_)"  # meshes refined against the CT (the spine, the pelvis)
# A light bone (osteoporotic, or a coarse scan whose label is generous) keeps a real cortex: the
# modelled shell (1.2 mm on a vertebra) at half cortical density is a 0.6 mm full-density cortex,
# the thin end of the measured range (Silva 1994; Edwards 2001); the core gives mass first, down to
# a bone volume fraction of 0.04 (severe osteoporosis: BV/TV 0.05-0.08, Mosekilde 1988), and only
# then does the shell get lighter still.
MIN_SHELL_WEIGHT = 0.5
MIN_CORE_WEIGHT = 0.04
RING_MM = 1.5  # partial-volume ring around a bone's label (mm; at least one voxel along each axis)
# What fills a bone besides its bone: marrow, red (about +30 HU) turning yellow (fat, about -100 HU)
# with age, 30-70 % fat in adult vertebrae and the sacrum (Kugel 2001; Griffith 2005): -50 HU. A
# voxel at h HU holds (h - FILL_HU) / (CORTICAL_BONE_HU - FILL_HU) of its volume as cortical bone.
FILL_HU = -50.0
RING_CAP_HU = 30.0  # the ring's bone: what it holds above soft tissue
# The CT's point spread (standard deviations, mm): in-plane a standard body kernel at 0.7 mm pixels
# (FWHM about 1 mm); along z what the slice profile adds to the slab of a 2.5 mm slice
CT_PSF_SIGMA_MM = (0.45, 0.6)


def ct_psf_sigma_mm(anatomy) -> tuple[float, float]:
    """The point spread (in-plane, z) of this anatomy's CT: CT_PSF_SIGMA_MM scaled to the voxels
    it was scanned with (a coarse scan blurs more), plus, when its grid was refined before the build
    (`source['grid_refined_from_mm']`), the trilinear interpolation's triangle (sigma = voxel /
    sqrt(6)) and the thicker slab along z, in quadrature. The bundled chest CT (0.7 x 0.7 x 2.5 mm)
    gets CT_PSF_SIGMA_MM itself."""
    sp = np.asarray(anatomy.spacing_mm, dtype=np.float64)
    orig = (getattr(anatomy, "source", None) or {}).get("grid_refined_from_mm")
    if not orig or len(orig) != 3:
        return CT_PSF_SIGMA_MM
    o = np.maximum(np.asarray(orig, dtype=np.float64), sp)
    xy = CT_PSF_SIGMA_MM[0] / 0.703125 * float(o[:2].mean())
    z = CT_PSF_SIGMA_MM[1] / 2.5 * float(o[2])
    xy = math.hypot(xy, float(o[:2].mean()) / math.sqrt(6.0))
    z = math.sqrt(z * z + float(o[2]) ** 2 / 6.0 + max(float(o[2]) ** 2 - float(sp[2]) ** 2, 0.0) / 12.0)
    return (xy, z)


def core_prior(name: str) -> float:
    for pattern, f in CORE_PRIOR:
        if re.match(pattern, name):
            return f
    return 0.12


def cortex_mm(name: str) -> float:
    for pattern, t in CORTEX_MM:
        if re.match(pattern, name):
            return t
    return 1.0


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals of an outward mesh."""
    v = vertices.astype(np.float64)
    t = v[faces]
    fn = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])  # length = 2 x area
    vn = np.zeros_like(v)
    for k in range(3):
        for d in range(3):
            vn[:, d] += np.bincount(faces[:, k], weights=fn[:, d], minlength=len(v))
    norm = np.linalg.norm(vn, axis=1, keepdims=True)
    return vn / np.maximum(norm, 1e-12)


def half_thickness_mm(vertices: np.ndarray, normals: np.ndarray, mask: np.ndarray, origin_mm, spacing_mm,
                      reach_mm: float = 12.0, step_mm: float = 0.35) -> np.ndarray:
    """Local half-thickness at each surface vertex: half the distance along the inward normal to
    where the (trilinearly interpolated) mask is left again; `reach_mm` / 2 where it is not left
    within `reach_mm`."""
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    field = np.pad(mask.astype(np.float32), 1)
    origin = np.asarray(origin_mm, dtype=np.float64) - spacing
    steps = np.arange(step_mm, reach_mm + 1e-9, step_mm)
    pts = vertices[:, None, :] - steps[None, :, None] * normals[:, None, :]
    idx = (pts - origin) / spacing
    vals = ndi.map_coordinates(field, idx.reshape(-1, 3).T, order=1, mode="constant", cval=0.0)
    outside = vals.reshape(len(vertices), len(steps)) < 0.5
    first = np.where(outside.any(axis=1), outside.argmax(axis=1), len(steps) - 1)
    return 0.5 * steps[first]


def inner_surface(vertices: np.ndarray, faces: np.ndarray, cortex: float, half_thickness: np.ndarray) -> np.ndarray:
    """Vertices of the cancellous (inner) surface: moved inwards by the cortex, at most 0.9 times
    the local half-thickness (smoothed over each vertex's neighbours)."""
    normals = vertex_normals(vertices, faces)
    h = half_thickness.astype(np.float64)
    # one pass of neighbour averaging (min with the average) keeps the offset smooth along the surface
    acc = np.zeros(len(vertices))
    cnt = np.zeros(len(vertices))
    for a, b in ((0, 1), (1, 2), (2, 0)):
        acc += np.bincount(faces[:, a], weights=h[faces[:, b]], minlength=len(vertices))
        cnt += np.bincount(faces[:, a], minlength=len(vertices))
    h = np.minimum(h, acc / np.maximum(cnt, 1.0))
    offset = np.minimum(cortex, 0.9 * h)
    return vertices - offset[:, None] * normals


@dataclass
class BoneGroup:
    name: str
    label_id: int
    outer: tuple[int, int]  # face range in the model's faces
    inner: tuple[int, int]
    vertex_range: tuple[int, int]
    cortex_mm: float
    shell_weight: float
    core_weight: float
    ct_excess_mm3: float  # the CT's bone mass above marrow, as mm3 of cortical bone
    shell_mm3: float
    core_mm3: float


@dataclass
class BoneModel:
    """All meshed bones of an anatomy, ready to project (see the module doc)."""

    vertices: np.ndarray  # (V, 3) float64, outer and inner surfaces of every bone
    faces: np.ndarray  # (F, 3) int64
    groups: list[BoneGroup]
    rejected: dict[str, str] = field(default_factory=dict)  # bone name -> why it stays in the CT
    edit_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # flat CT voxel indices
    edit_hu: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))  # their new CT numbers

    @property
    def label_ids(self) -> list[int]:
        return [g.label_id for g in self.groups if g.label_id >= 0]

    @property
    def n_triangles(self) -> int:
        return int(self.faces.shape[0])

    def report(self) -> dict:
        return {
            "bones": len(self.groups),
            "triangles": self.n_triangles,
            "rejected": dict(self.rejected),
            "calibration": {g.name: {"cortex_mm": g.cortex_mm, "shell_weight": round(g.shell_weight, 3),
                                     "core_weight": round(g.core_weight, 3),
                                     "ct_excess_cm3": round(g.ct_excess_mm3 / 1000, 2)}
                            for g in self.groups if g.label_id >= 0},
        }

    @classmethod
    def from_anatomy(cls, anatomy, names: list[str] | None = None, refine: bool = True) -> "BoneModel":
        """Every structure of a bone tissue with a closed mesh (or those in `names`); refine: the
        spine's and the pelvis's meshes refined against the CT first (`xray_bone_surface`)."""
        spacing = np.asarray(anatomy.spacing_mm, dtype=np.float64)
        voxel_mm3 = float(np.prod(spacing))
        objects = ndi.find_objects(anatomy.labels)
        psf = ct_psf_sigma_mm(anatomy)
        verts, faces, groups, rejected, edits, edit_values = [], [], [], {}, [], []
        nv = nf = 0
        for s in sorted(anatomy.structures.values(), key=lambda s: s.id):
            if s.tissue not in BONE or (names is not None and s.name not in names):
                continue
            mesh = anatomy.meshes.get(s.name)
            if mesh is None or mesh.n_triangles == 0:
                rejected[s.name] = "no surface mesh: drawn from the CT"
                continue
            if not mesh.is_watertight():
                rejected[s.name] = "surface mesh not closed: drawn from the CT"
                continue
            if s.id > len(objects) or objects[s.id - 1] is None:
                rejected[s.name] = "no voxels in the label map: drawn from the CT"
                continue
            box = _grown(objects[s.id - 1], anatomy.labels.shape, max(1, int(np.ceil(RING_MM / spacing.min()))))
            labels = anatomy.labels[box]
            mask = labels == s.id
            org = np.asarray(anatomy.origin_mm) + np.array([b.start for b in box]) * spacing
            v = mesh.vertices.astype(np.float64)
            f = mesh.faces.astype(np.int64)
            if refine and re.match(REFINED, s.name):
                v, f = _refined(v, f, anatomy)
            t = cortex_mm(s.name)
            half = half_thickness_mm(v, vertex_normals(v, f), mask, org, spacing)
            vin = inner_surface(v, f, t, half)
            # the CT's bone above marrow: its label voxels and the partial-volume ring around them
            hu = anatomy.hu[box].astype(np.float64)
            ring = _ring(mask, spacing) & ~_other_bone(labels, s.id, anatomy)
            excess = (np.sum(hu[mask] - FILL_HU) + np.sum(np.maximum(hu[ring] - RING_CAP_HU, 0.0))) / (
                CORTICAL_BONE_HU - FILL_HU)
            excess_mm3 = float(excess * voxel_mm3)
            v_out = _volume(v, f)
            v_in = max(min(_volume(vin, f), v_out), 0.0)
            shell, core = v_out - v_in, v_in
            w_core, w_shell = _calibrate(excess_mm3, shell, core, core_prior(s.name))
            # taken out of the CT: the model itself as the CT sees it (partial volume, the CT's blur)
            idx, delta = model_on_grid(v, vin, f, w_shell, w_core, anatomy.origin_mm, spacing, anatomy.labels.shape,
                                       psf)
            edits.append(idx)
            edit_values.append(delta)
            groups.append(BoneGroup(s.name, int(s.id), (nf, nf + len(f)), (nf + len(f), nf + 2 * len(f)),
                                    (nv, nv + 2 * len(v)), t, float(w_shell), float(w_core), excess_mm3,
                                    float(shell), float(core)))
            verts += [v, vin]
            faces += [f + nv, f + nv + len(v)]
            nv += 2 * len(v)
            nf += 2 * len(f)
        if verts:
            V = np.ascontiguousarray(np.concatenate(verts))
            F = np.ascontiguousarray(np.concatenate(faces))
        else:
            V = np.zeros((0, 3))
            F = np.zeros((0, 3), np.int64)
        idx, val = np.zeros(0, np.int64), np.zeros(0, np.int16)
        if edits:
            idx, inv = np.unique(np.concatenate(edits), return_inverse=True)
            delta = np.bincount(inv.ravel(), weights=np.concatenate(edit_values), minlength=len(idx))
            new_hu = np.rint(anatomy.hu.flat[idx].astype(np.float64) - delta)
            val = np.clip(new_hu, -1024, 32767).astype(np.int16)
        return cls(V, F, groups, rejected, idx, val)

    def coarse(self, cell_mm: float, solid: bool = True) -> "BoneModel":
        """A lighter copy for the preview while the C-arm moves: each surface's vertices clustered
        on a grid of `cell_mm` (their mean), faces that collapse dropped. A closed surface stays a
        closed chain of faces, so the signed-distance path length stays valid (only coarser).
        solid: the outer surface only, at the bone's mean density (same mass, no cortical outline:
        the density scaled by the volume the clustering lost)."""
        verts, faces, groups = [], [], []
        nv = nf = 0
        for g in self.groups:
            a, b = g.vertex_range
            v = self.vertices[a:b]
            parts = []
            for (f0, f1) in (g.outer, g.inner):
                f = self.faces[f0:f1] - a
                key = np.floor(v / cell_mm).astype(np.int64)
                used = np.unique(f)
                _, inv = np.unique(key[used], axis=0, return_inverse=True)
                cluster = np.full(len(v), -1, np.int64)
                cluster[used] = inv.ravel()
                k = int(inv.max()) + 1 if len(inv) else 0
                cv = np.zeros((k, 3))
                for d in range(3):
                    cv[:, d] = np.bincount(cluster[used], weights=v[used, d], minlength=k)
                cv /= np.maximum(np.bincount(cluster[used], minlength=k), 1)[:, None]
                cf = cluster[f]
                keep = (cf[:, 0] != cf[:, 1]) & (cf[:, 1] != cf[:, 2]) & (cf[:, 0] != cf[:, 2])
                parts.append((cv, cf[keep]))
            (vo, fo), (vi, fi) = parts
            shell_w = g.shell_weight
            if solid:
                vi, fi = vi[:0], fi[:0]
                total = g.shell_mm3 + g.core_mm3
                shell_w = (g.shell_weight * g.shell_mm3 + g.core_weight * g.core_mm3) / total if total > 0 else 0.0
                # clustering shrinks a convex bone (a rib most): its density rises to keep the mass
                v_coarse = _volume(vo, fo) if len(fo) else 0.0
                if total > 0 and v_coarse > 0.2 * total:
                    shell_w *= total / v_coarse
            groups.append(BoneGroup(g.name, g.label_id, (nf, nf + len(fo)), (nf + len(fo), nf + len(fo) + len(fi)),
                                    (nv, nv + len(vo) + len(vi)), g.cortex_mm, shell_w, g.core_weight,
                                    g.ct_excess_mm3, g.shell_mm3, g.core_mm3))
            verts += [vo, vi]
            faces += [fo + nv, fi + nv + len(vo)]
            nv += len(vo) + len(vi)
            nf += len(fo) + len(fi)
        return BoneModel(np.ascontiguousarray(np.concatenate(verts)), np.ascontiguousarray(np.concatenate(faces)),
                         groups, dict(self.rejected), self.edit_index, self.edit_hu)

    def edited_hu(self, hu: np.ndarray) -> np.ndarray:
        """A copy of the CT numbers with the meshed bones taken out (their voxels water, the
        partial-volume ring around them capped at soft tissue)."""
        out = np.array(hu, copy=True)
        out.flat[self.edit_index] = self.edit_hu
        return out

    def with_mirror(self, plane_z_mm: float, below: bool, reach_mm: float) -> "BoneModel":
        """This model plus the mirror images (across z = plane_z_mm) of the bones within
        `reach_mm` of the plane: where the scan cuts through the body and the CT is continued by
        its mirror image past the cut, the bones are continued the same way. below: the mirror
        images go below the plane (the scan's lower end)."""
        verts, faces, groups = [self.vertices], [self.faces], list(self.groups)
        nv, nf = len(self.vertices), len(self.faces)
        for g in self.groups:
            a, b = g.vertex_range
            v = self.vertices[a:b]
            z = v[:, 2]
            near = (z.min() - plane_z_mm < reach_mm) if below else (plane_z_mm - z.max() < reach_mm)
            if not near:
                continue
            m = v.copy()
            m[:, 2] = 2.0 * plane_z_mm - m[:, 2]
            f = self.faces[g.outer[0]:g.inner[1]][:, ::-1] - a  # reflected: reverse the winding
            k = g.inner[0] - g.outer[0]
            groups.append(BoneGroup(g.name + "_mirror", -1, (nf, nf + k), (nf + k, nf + len(f)), (nv, nv + len(m)),
                                    g.cortex_mm, g.shell_weight, g.core_weight, 0.0, g.shell_mm3, g.core_mm3))
            verts.append(m)
            faces.append(f + nv)
            nv += len(m)
            nf += len(f)
        return BoneModel(np.ascontiguousarray(np.concatenate(verts)), np.ascontiguousarray(np.concatenate(faces)),
                         groups, dict(self.rejected), self.edit_index, self.edit_hu)

    # ---- projection -------------------------------------------------------------------------
    def _table(self, mirrors: bool) -> np.ndarray:
        """Per group [outer f0, f1, inner f0, f1, (pixel box, filled per pose), shell, core]; the
        mirror images' rows zero when `mirrors` is False. Cached (the model does not change)."""
        key = "_table_mirrors" if mirrors else "_table_plain"
        table = self.__dict__.get(key)
        if table is None:
            table = np.zeros((len(self.groups), 10))
            for i, g in enumerate(self.groups):
                if mirrors or g.label_id >= 0:
                    table[i] = (g.outer[0], g.outer[1], g.inner[0], g.inner[1], 0, 0, 0, 0, g.shell_weight, g.core_weight)
            self.__dict__[key] = table
            self.__dict__["_vertex_starts"] = np.array([g.vertex_range[0] for g in self.groups], dtype=np.int64)
        return table

    def project(self, pose, n: int | None = None, out: np.ndarray | None = None, mirrors: bool = True) -> np.ndarray:
        """The cortical-bone-equivalent path B (mm) of every pixel of an n x n detector grid
        (`mirrors` False: without the mirror images past the scan's cut ends)."""
        n = pose.detector_pixels if n is None else int(n)
        if out is None:
            out = np.zeros((n, n), dtype=np.float64)
        if not self.groups:
            return out
        det_origin, du, dv = pose.detector_pixel_grid(n)
        src = np.asarray(pose.source_mm, dtype=np.float64)
        uv = np.empty((len(self.vertices), 2))
        MK.project_vertices(self.vertices, src, det_origin, du, dv, np.asarray(pose.beam_direction, dtype=np.float64),
                            float(pose.source_to_detector_mm), uv)
        table = self._table(mirrors).copy()
        starts = self.__dict__["_vertex_starts"]
        u, w = uv[:, 0], uv[:, 1]
        ok = np.logical_and.reduceat(np.isfinite(u) & np.isfinite(w), starts)
        table[:, 4] = np.maximum(np.floor(np.minimum.reduceat(w, starts)), 0)
        table[:, 5] = np.minimum(np.ceil(np.maximum.reduceat(w, starts)) + 1, n)
        table[:, 6] = np.maximum(np.floor(np.minimum.reduceat(u, starts)), 0)
        table[:, 7] = np.minimum(np.ceil(np.maximum.reduceat(u, starts)) + 1, n)
        table[~ok | (table[:, 1] <= table[:, 0])] = 0.0  # off screen or left out
        s_out = self.__dict__.get("_scratch")
        if s_out is None or s_out.shape[1:] != (n, n):
            s_out = np.zeros((2, n, n))
            self.__dict__["_scratch"] = s_out
        MK.bone_path_map(self.vertices, self.faces, uv, table, src, det_origin - src, du, dv, out, s_out[0], s_out[1])
        return out


def mesh_occupancy(vertices: np.ndarray, faces: np.ndarray, origin_mm, spacing_mm, lo_ijk, shape,
                   supersample: int = 3) -> np.ndarray:
    """Fraction of each voxel of the box [lo_ijk, lo_ijk + shape) of a grid (voxel (i, j, k) centred
    at origin + (i, j, k) * spacing) inside a closed outward mesh: exact along z (the crossings of
    vertical rays), `supersample` x `supersample` rays per voxel column in-plane."""
    ss = int(supersample)
    sp = np.asarray(spacing_mm, dtype=np.float64)
    lo = np.asarray(origin_mm, dtype=np.float64) + np.asarray(lo_ijk) * sp - 0.5 * sp  # the box's lower corner
    uv = np.empty((len(vertices), 2))
    for a in range(2):
        uv[:, a] = (vertices[:, a] - lo[a]) / (sp[a] / ss) - 0.5
    P = np.zeros(tuple(int(x) for x in shape), np.float64)
    S = np.zeros_like(P)
    MK.raster_z_occupancy(np.ascontiguousarray(vertices, dtype=np.float64), np.ascontiguousarray(faces, dtype=np.int64),
                          0, len(faces), uv, ss, float(lo[2]), float(sp[2]), 1.0 / ss ** 2, P, S)
    P += np.cumsum(S, axis=2)
    return np.clip(P, 0.0, 1.0, out=P)


def model_on_grid(outer: np.ndarray, inner: np.ndarray, faces: np.ndarray, shell_weight: float, core_weight: float,
                  origin_mm, spacing_mm, shape, psf_sigma_mm: tuple[float, float] = CT_PSF_SIGMA_MM) -> tuple[np.ndarray, np.ndarray]:
    """A bone's model (cortical shell over cancellous core) as the CT shows it: its cortical-bone
    fraction per voxel (partial volume), blurred by the CT's point spread (`psf_sigma_mm`, `ct_psf_sigma_mm`), in
    CT numbers above marrow. Returns (flat voxel indices, CT numbers to subtract there)."""
    sp = np.asarray(spacing_mm, dtype=np.float64)
    sigma = np.array([psf_sigma_mm[0], psf_sigma_mm[0], psf_sigma_mm[1]]) / sp
    margin = np.ceil(3.0 * sigma).astype(int) + 1
    org = np.asarray(origin_mm, dtype=np.float64)
    lo = np.maximum(np.floor((outer.min(axis=0) - org) / sp).astype(int) - margin, 0)
    hi = np.minimum(np.ceil((outer.max(axis=0) - org) / sp).astype(int) + margin + 1, np.asarray(shape))
    if np.any(hi <= lo):
        return np.zeros(0, np.int64), np.zeros(0)
    box_shape = hi - lo
    occ_out = mesh_occupancy(outer, faces, org, sp, lo, box_shape)
    occ_in = np.minimum(mesh_occupancy(inner, faces, org, sp, lo, box_shape), occ_out)
    frac = shell_weight * (occ_out - occ_in) + core_weight * occ_in
    frac = ndi.gaussian_filter(frac, sigma, mode="constant")
    hu = (CORTICAL_BONE_HU - FILL_HU) * frac
    keep = np.nonzero(hu > 0.5)
    idx = np.ravel_multi_index(tuple(a + b for a, b in zip(keep, lo)), tuple(shape))
    return idx.astype(np.int64), hu[keep]


def _calibrate(excess_mm3: float, shell_mm3: float, core_mm3: float, prior: float) -> tuple[float, float]:
    """(core weight, shell weight) so that shell_w V_shell + core_w V_core = the CT's excess mass:
    the core at its prior bone fraction and the shell taking the rest, the shell capped at
    cortical bone (weight 1: the core takes more) and floored at MIN_SHELL_WEIGHT (the core less,
    down to MIN_CORE_WEIGHT; below that the shell gets lighter)."""
    if shell_mm3 <= 1e-6:
        return (min(max(excess_mm3 / max(core_mm3, 1e-6), 0.0), 1.0), 1.0)
    w_core = prior if core_mm3 > 1e-6 else 0.0
    w_shell = (excess_mm3 - w_core * core_mm3) / shell_mm3
    if MIN_SHELL_WEIGHT <= w_shell <= 1.0:
        return w_core, w_shell
    w_shell = 1.0 if w_shell > 1.0 else MIN_SHELL_WEIGHT
    w_core = (excess_mm3 - w_shell * shell_mm3) / core_mm3 if core_mm3 > 1e-6 else 0.0
    if w_shell < 1.0 and w_core < MIN_CORE_WEIGHT:
        w_core = min(MIN_CORE_WEIGHT, max(excess_mm3, 0.0) / core_mm3) if core_mm3 > 1e-6 else 0.0
        w_shell = max((excess_mm3 - w_core * core_mm3) / shell_mm3, 0.0)
    return float(min(max(w_core, 0.0), 1.0)), float(w_shell)


def _refined(v: np.ndarray, f: np.ndarray, anatomy) -> tuple[np.ndarray, np.ndarray]:
    """A bone mesh refined against the CT numbers of a box around it (`refine_bone_surface`)."""
    sp = np.asarray(anatomy.spacing_mm, dtype=np.float64)
    org = np.asarray(anatomy.origin_mm, dtype=np.float64)
    reach = np.ceil((REACH_MM + 2.0) / sp).astype(int)
    lo = np.maximum(np.floor((v.min(axis=0) - org) / sp).astype(int) - reach, 0)
    hi = np.minimum(np.ceil((v.max(axis=0) - org) / sp).astype(int) + reach + 1, np.asarray(anatomy.hu.shape))
    hu = anatomy.hu[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    return refine_bone_surface(v, f, hu, org + lo * sp, sp)


def _grown(sl: tuple[slice, ...], shape, k: int) -> tuple[slice, ...]:
    return tuple(slice(max(s.start - k - 1, 0), min(s.stop + k + 1, d)) for s, d in zip(sl, shape))


def _ring(mask: np.ndarray, spacing) -> np.ndarray:
    """Voxels within RING_MM of the mask (a box of at least one voxel along each axis), not in it."""
    k = [max(1, int(round(RING_MM / s))) for s in spacing]
    grown = ndi.maximum_filter(mask, size=[2 * x + 1 for x in k])
    return grown & ~mask


def _other_bone(labels: np.ndarray, own_id: int, anatomy) -> np.ndarray:
    """Voxels of another bone or of metal (an implant: their mass is theirs, not this bone's ring)."""
    ids = [s.id for s in anatomy.structures.values() if (s.tissue in BONE or s.tissue == Tissue.METAL) and s.id != own_id]
    return np.isin(labels, ids) if ids else np.zeros(labels.shape, bool)


def _volume(v: np.ndarray, f: np.ndarray) -> float:
    t = v[f]
    return float(np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2])).sum() / 6.0)
