"""Simulated fluoroscopy: the image a C-arm makes of an anatomy, a needle and injected contrast.

Physics (effective energy 60 keV, Beer-Lambert, monochromatic):
- Anatomy attenuation from CT numbers, mu = mu_water (1 + HU / 1000) with mu_water = 0.206 /cm,
  HU <= -900 is air; for a contrast-enhanced CT the iodine in the vessels (and the enhancement of
  solid organs) is taken out (a plain fluoroscopy does not show it); for phantoms without CT numbers,
  mu comes from the tissue class (`MU_60KEV_PER_CM`, NIST XCOM values for ICRU tissues).
- The needle: a steel (mu 9.48 /cm) capped cylinder of the gauge's true outer diameter, its exact
  chord length per detector element (supersampled), so it is foreshortened correctly and a needle
  on the beam is a dot of its width; a plastic hub (hollow cylinder) behind it.
- Contrast: iodine (mass attenuation 7.58 cm^2/g at 60 keV) added on top of the tissue it replaces,
  as Gaussian blobs (closed-form line integrals) and/or small voxel grids of concentration;
  intravascular contrast flashes and washes out (`vascular_washout_fraction`).
- Detector/display: automatic exposure control (AEC) level from the centre of the field, scatter
  as a broad blur of the primary, quantum noise scaled by the dose per pulse, log transform,
  detector blur, edge enhancement, window/level, dense = dark (fluoroscopy display; `invert`
  for bone-white), circular or square field, collimator shutters as dark edges.

Speed (see `simulator/benchmarks/fluoroscopy.py`): the anatomy's line integrals are computed once per
C-arm pose and cached; needle and contrast are added analytically per frame, touching only their
projected bounding boxes. The projector is a perspective shear-warp: rays from the source through
an intermediate grid on the volume's far plane, at the CT's resolution, each sampled once per
slice of the principal axis with bilinear interpolation in the slice (Joseph's method), then
resampled bilinearly onto the detector pixels. While the C-arm moves a coarse preview (a 3x3
in-plane block-averaged volume, 256 x 256) is shown; `refine(pose)` computes the full-quality image
(every CT voxel, 512 x 512) - call it from a worker thread once the C-arm stops (numba releases the
GIL). Kernels run single-threaded by default: on a busy 2-core machine numba's thread team costs
more than it gains, and the other core stays free for the GUI (`parallel_full` to change).
"""
from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from simulator.core.carm import CArmPose, compute_exposure
from simulator.core.tissue import TISSUE_INFO, Tissue
from simulator.imaging import fluoroscopy_kernels as K

# ---- physical constants at 60 keV -------------------------------------------------------------
MU_WATER_60KEV_PER_MM = 0.0206
MU_STEEL_60KEV_PER_MM = 0.948
MU_PLASTIC_60KEV_PER_MM = 0.017  # polypropylene / polycarbonate hub
IODINE_MASS_ATTENUATION_CM2_PER_G = 7.58
AIR_HU_THRESHOLD = -900.0
# (mu_bone / mu_water - 1) at 60 keV over the same at 70 keV (cortical bone, NIST XCOM): see hu_to_mu
BONE_SLOPE_60KEV = (0.604 / 0.206 - 1.0) / (0.502 / 0.194 - 1.0)

# Linear attenuation at 60 keV (1/cm) by tissue class: NIST XCOM mu/rho with ICRU-44/46 compositions.
MU_60KEV_PER_CM: dict[Tissue, float] = {
    Tissue.AIR: 0.0,
    Tissue.SKIN: 0.217,
    Tissue.FAT: 0.187,
    Tissue.MUSCLE: 0.215,
    Tissue.SOFT_TISSUE: 0.217,
    Tissue.CORTICAL_BONE: 0.604,
    Tissue.CANCELLOUS_BONE: 0.281,
    Tissue.CARTILAGE: 0.225,
    Tissue.ARTERY: 0.218,
    Tissue.VEIN: 0.218,
    Tissue.HEART: 0.218,
    Tissue.LUNG: 0.053,
    Tissue.AIRWAY: 0.0,
    Tissue.LIVER: 0.217,
    Tissue.SPLEEN: 0.217,
    Tissue.KIDNEY: 0.217,
    Tissue.PANCREAS: 0.217,
    Tissue.ADRENAL: 0.217,
    Tissue.STOMACH: 0.217,
    Tissue.BOWEL: 0.217,
    Tissue.GALLBLADDER: 0.206,
    Tissue.BLADDER: 0.206,
    Tissue.ESOPHAGUS: 0.217,
    Tissue.THYROID: 0.217,
    Tissue.SPINAL_CORD: 0.217,
    Tissue.CSF: 0.206,
    Tissue.BRAIN: 0.217,
    Tissue.NERVE: 0.217,
    Tissue.FLUID: 0.206,
    Tissue.GEL: 0.206,
    Tissue.PROSTATE: 0.217,
    Tissue.INTERVERTEBRAL_DISC: 0.225,
}

# Needle outer diameters (mm) by gauge (ISO 9626 regular wall).
NEEDLE_OUTER_DIAMETER_MM = {18: 1.27, 20: 0.91, 21: 0.82, 22: 0.72, 23: 0.64, 25: 0.51}

# Tissues whose CT numbers a contrast-enhanced scan raises (capped at their plain value + margin).
_ENHANCING = (
    Tissue.ARTERY, Tissue.VEIN, Tissue.HEART, Tissue.KIDNEY, Tissue.LIVER, Tissue.SPLEEN,
    Tissue.PANCREAS, Tissue.ADRENAL,
)
_ENHANCEMENT_MARGIN_HU = 30.0
BLOB_REACH_SIGMAS = 3.5  # a blob is drawn out to this many standard deviations (0.2 % of its peak)
_PHANTOM_KINDS = ("phantom", "analytic", "mesh-phantom")


def iodine_mu_per_mm(iodine_mg_per_ml) -> np.ndarray | float:
    """Extra attenuation (1/mm) of iodine at a concentration (mg I per ml) at 60 keV."""
    # mg/ml = 1e-3 g/cm^3; mu = (mu/rho) rho in 1/cm; /10 for 1/mm
    return np.asarray(iodine_mg_per_ml, dtype=np.float64) * 1e-3 * IODINE_MASS_ATTENUATION_CM2_PER_G / 10.0


def hu_to_mu(hu: np.ndarray, bone_slope: float | None = None) -> np.ndarray:
    """mu (1/mm, float32) from CT numbers at 60 keV; air (HU <= -900) is zero.

    Below 0 HU (air-water mixtures) mu = mu_water (1 + HU/1000). Above 0 HU (water-bone mixtures)
    the slope is scaled by `bone_slope` (default BONE_SLOPE_60KEV), the usual bilinear conversion:
    CT numbers are measured at the scanner's effective energy (about 70 keV at 120 kVp), where
    cortical bone is 2.59 x water (HU 1588); at 60 keV it is 2.93 x water, so each bone HU counts
    1.216 times more. bone_slope=1 gives the plain mu_water (1 + HU/1000)."""
    slope = BONE_SLOPE_60KEV if bone_slope is None else float(bone_slope)
    h = np.asarray(hu, dtype=np.float32)
    x = h / np.float32(1000.0)
    if slope != 1.0:
        x = np.where(x > 0, x * np.float32(slope), x)
    mu = np.float32(MU_WATER_60KEV_PER_MM) * (1.0 + x)
    mu = np.asarray(mu, dtype=np.float32)
    mu[h <= AIR_HU_THRESHOLD] = 0.0
    np.maximum(mu, 0.0, out=mu)
    return mu


def tissue_to_mu(tissue: np.ndarray) -> np.ndarray:
    """mu (1/mm, float32) from tissue codes, from `MU_60KEV_PER_CM`."""
    lut = np.zeros(256, dtype=np.float32)
    for t in Tissue:
        lut[int(t)] = MU_60KEV_PER_CM.get(t, 0.217) / 10.0
    return lut[np.asarray(tissue, dtype=np.uint8)]


# =============================================================================================
# The attenuation volume
# =============================================================================================
@dataclass
class AttenuationVolume:
    """mu (1/mm) on an axis-aligned grid, stored (z, y, x) C-ordered (x fastest) with a zero
    border. Voxel (i, j, k) centre = origin_mm + (i, j, k) * spacing_mm (RAS)."""

    mu_zyx: np.ndarray  # (K, J, I) float32
    origin_mm: np.ndarray  # (3,) x, y, z of voxel (0, 0, 0)
    spacing_mm: np.ndarray  # (3,)
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mu_zyx = np.ascontiguousarray(self.mu_zyx, dtype=np.float32)
        self.origin_mm = np.asarray(self.origin_mm, dtype=np.float64).reshape(3)
        self.spacing_mm = np.asarray(self.spacing_mm, dtype=np.float64).reshape(3)
        if self.mu_zyx.ndim != 3 or min(self.mu_zyx.shape) < 2:
            raise ValueError(f"AttenuationVolume.mu_zyx: needs a 3D array at least 2 voxels a side, got {self.mu_zyx.shape}")
        if np.any(self.spacing_mm <= 0):
            raise ValueError(f"AttenuationVolume.spacing_mm: must be positive, got {self.spacing_mm.tolist()}")

    use_x_major: bool = True  # keep an (x, z, y) copy for views whose rays run mostly along x

    def x_major(self) -> np.ndarray:
        """The volume in (x, z, y) order (y fastest), made on first use."""
        xm = self.__dict__.get("_x_major")
        if xm is None:
            xm = np.ascontiguousarray(self.mu_zyx.transpose(2, 0, 1))
            self.__dict__["_x_major"] = xm
        return xm

    @property
    def shape_xyz(self) -> tuple[int, int, int]:
        k, j, i = self.mu_zyx.shape
        return i, j, k

    @property
    def nbytes(self) -> int:
        return int(self.mu_zyx.nbytes)

    def bounds_mm(self) -> tuple[np.ndarray, np.ndarray]:
        return self.origin_mm.copy(), self.origin_mm + (np.array(self.shape_xyz) - 1) * self.spacing_mm

    @classmethod
    def from_xyz(cls, mu_xyz: np.ndarray, origin_mm, spacing_mm, border: bool = True, info: dict | None = None):
        """From an (I, J, K) array in RAS index order (as `Anatomy` volumes are)."""
        mu = np.asarray(mu_xyz, dtype=np.float32)
        origin = np.asarray(origin_mm, dtype=np.float64)
        spacing = np.asarray(spacing_mm, dtype=np.float64)
        zyx = np.ascontiguousarray(mu.transpose(2, 1, 0))
        if border:
            zyx = np.pad(zyx, 1)
            origin = origin - spacing
        return cls(zyx, origin, spacing, info or {})

    @classmethod
    def from_anatomy(cls, anatomy, source: str = "auto", crop: bool = True, pad_cut_ends_mm: float = 100.0,
                     chunk: int = 16) -> "AttenuationVolume":
        """The attenuation volume of an `Anatomy` at 60 keV.

        source: "hu" (CT numbers), "tissue" (tissue-class table), or "auto" (tissue for phantoms,
        i.e. `anatomy.source['kind']` in ('phantom', 'analytic', 'mesh-phantom'), else hu).
        For a contrast-enhanced CT, vessels and enhancing organs are capped at their plain CT
        number + 30 HU. Outside the body (tissue AIR) is zero, so a scanner table that the builder
        marked as air does not show. crop: keep the body's bounding box only. pad_cut_ends_mm:
        where the scan cuts through the body at its top or bottom slice, the volume is continued by
        its mirror image over this length, so that a field reaching past the end of the scan shows
        plausible anatomy instead of a white band (0 disables)."""
        if source == "auto":
            kind = str((anatomy.source or {}).get("kind", "")).lower()
            source = "tissue" if kind in _PHANTOM_KINDS else "hu"
        if source not in ("hu", "tissue"):
            raise ValueError(f"AttenuationVolume.from_anatomy source: {source!r} is not 'auto', 'hu' or 'tissue'")
        nx, ny, nz = anatomy.shape
        tissue = anatomy.tissue
        enhanced = bool(getattr(anatomy, "contrast_enhanced", False)) and source == "hu"
        caps = {int(t): TISSUE_INFO[t].hu + _ENHANCEMENT_MARGIN_HU for t in _ENHANCING}
        # first pass: bounding box of the body, per slice body area (for the cut-end test)
        body_any_k = np.zeros(nz, dtype=np.int64)
        xy_any = np.zeros((nx, ny), dtype=bool)
        for k0 in range(0, nz, chunk):
            t = tissue[:, :, k0:k0 + chunk] != int(Tissue.AIR)
            if source == "hu":
                t &= anatomy.hu[:, :, k0:k0 + chunk] > AIR_HU_THRESHOLD
            body_any_k[k0:k0 + t.shape[2]] = t.sum(axis=(0, 1))
            xy_any |= t.any(axis=2)
        if not body_any_k.any():
            raise ValueError(f"anatomy {anatomy.name!r}: no tissue in its volume (all air)")
        if crop:
            ii = np.flatnonzero(xy_any.any(axis=1))
            jj = np.flatnonzero(xy_any.any(axis=0))
            kk = np.flatnonzero(body_any_k)
            i0, i1, j0, j1, k0_, k1 = ii[0], ii[-1] + 1, jj[0], jj[-1] + 1, kk[0], kk[-1] + 1
        else:
            i0, i1, j0, j1, k0_, k1 = 0, nx, 0, ny, 0, nz
        sz = float(anatomy.spacing_mm[2])
        npad = int(round(pad_cut_ends_mm / sz)) if pad_cut_ends_mm > 0 else 0
        big = body_any_k.max()
        pad_lo = min(npad, k1 - k0_) if (k0_ == 0 and body_any_k[0] > 0.1 * big) else 0
        pad_hi = min(npad, k1 - k0_) if (k1 == nz and body_any_k[nz - 1] > 0.1 * big) else 0
        ci, cj, ck = i1 - i0, j1 - j0, k1 - k0_
        out = np.zeros((ck + pad_lo + pad_hi + 2, cj + 2, ci + 2), dtype=np.float32)
        cap_lut = np.full(256, 1e9, dtype=np.float64)
        if enhanced:
            for code, cap in caps.items():
                cap_lut[code] = cap
        tissue_lut = np.zeros(256, dtype=np.float64)
        for t in Tissue:
            tissue_lut[int(t)] = MU_60KEV_PER_CM.get(t, 0.217) / 10.0
        hu = anatomy.hu if source == "hu" else np.zeros((1, 1, 1), np.int16)
        K.ct_to_mu_zyx(hu, tissue, cap_lut, tissue_lut, source == "tissue", MU_WATER_60KEV_PER_MM,
                       BONE_SLOPE_60KEV, AIR_HU_THRESHOLD, int(Tissue.AIR), int(i0), int(i1), int(j0), int(j1),
                       int(k0_), int(k1), out, 1 + pad_lo)
        core = slice(1 + pad_lo, 1 + pad_lo + ck)
        if pad_lo:
            out[1:1 + pad_lo] = out[core][:pad_lo][::-1]
        if pad_hi:
            out[1 + pad_lo + ck:1 + pad_lo + ck + pad_hi] = out[core][ck - pad_hi:][::-1]
        origin = np.asarray(anatomy.origin_mm, dtype=np.float64) + np.array([i0, j0, k0_]) * anatomy.spacing_mm
        origin = origin - anatomy.spacing_mm - np.array([0.0, 0.0, pad_lo * sz])
        info = {"anatomy": anatomy.name, "source": source, "contrast_removed": enhanced,
                "mirrored_slices": [int(pad_lo), int(pad_hi)], "crop_ijk": [int(i0), int(j0), int(k0_)]}
        return cls(out, origin, np.asarray(anatomy.spacing_mm, dtype=np.float64), info)

    def downsampled(self, fx: int, fy: int, fz: int = 1) -> "AttenuationVolume":
        """Block-averaged copy (mu preserved on average), with a fresh zero border."""
        core = self.mu_zyx[1:-1, 1:-1, 1:-1]
        f = (int(fz), int(fy), int(fx))
        shape = tuple(-(-s // q) for s, q in zip(core.shape, f))
        pooled = np.zeros((shape[0] + 2, shape[1] + 2, shape[2] + 2), dtype=np.float32)
        K.block_mean_3d(core, f[0], f[1], f[2], pooled[1:-1, 1:-1, 1:-1])
        sp_new = self.spacing_mm * np.array([fx, fy, fz])
        first = self.origin_mm + self.spacing_mm  # centre of the first core voxel
        origin = first + 0.5 * (np.array([fx, fy, fz]) - 1) * self.spacing_mm - sp_new
        return AttenuationVolume(pooled, origin, sp_new, dict(self.info, downsampled=[fx, fy, fz]))

    def _shear_setup(self, pose: CArmPose, row_factor: float = 0.5):
        """Principal axis, far plane and intermediate ray grid of the shear-warp projection."""
        sp = self.spacing_mm
        nz, ny, nx = self.mu_zyx.shape
        n = (nx, ny, nz)
        strides = (1, nx, nx * ny)
        beam = pose.beam_direction
        p = int(np.argmax(np.abs(beam) / sp))
        r_ax, c_ax = {0: (2, 1), 1: (2, 0), 2: (1, 0)}[p]
        flat = self.mu_zyx.ravel()
        if p == 0 and self.use_x_major:
            # slices across x are strided in the (z, y, x) layout: use an (x, z, y) copy
            flat = self.x_major().ravel()
            strides = (nz * ny, 1, ny)
        src = pose.source_mm
        lo = self.origin_mm
        hi = self.origin_mm + (np.array(n) - 1) * sp
        p_ref = hi[p] if beam[p] > 0 else lo[p]
        if (p_ref - src[p]) * beam[p] <= 0:
            raise ValueError("fluoroscopy: the X-ray source is inside the volume")

        def to_plane(points):
            d = points - src
            t = (p_ref - src[p]) / d[:, p]
            return src + t[:, None] * d

        # footprint of the detector field on the far plane, and of the volume box
        det_origin, du, dv = pose.detector_pixel_grid()
        m = pose.detector_pixels - 1
        corners = np.array([det_origin + a * du + b * dv for a in (-1, m + 1) for b in (-1, m + 1)])
        fp = to_plane(corners)
        box = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        d_box = box - src
        in_front = d_box @ beam > 0
        vb = to_plane(box[in_front]) if in_front.all() else None
        c_min, c_max = fp[:, c_ax].min(), fp[:, c_ax].max()
        r_min, r_max = fp[:, r_ax].min(), fp[:, r_ax].max()
        if vb is not None:
            c_min, c_max = max(c_min, vb[:, c_ax].min()), min(c_max, vb[:, c_ax].max())
            r_min, r_max = max(r_min, vb[:, r_ax].min()), min(r_max, vb[:, r_ax].max())
        d_a = float(sp[c_ax])
        d_b = float(min(sp[r_ax], max(sp[c_ax], row_factor * sp[r_ax])))
        na = max(2, int(math.ceil((c_max - c_min) / d_a)) + 3)
        nb = max(2, int(math.ceil((r_max - r_min) / d_b)) + 3)
        c0 = c_min - d_a
        r0 = r_min - d_b
        return dict(p=p, r=r_ax, c=c_ax, n=n, strides=strides, p_ref=float(p_ref), c0=float(c0), r0=float(r0),
                    d_a=d_a, d_b=d_b, na=na, nb=nb, src=src, flat=flat)

    def project_fast(self, pose: CArmPose, n_rays: int | None = None, out: np.ndarray | None = None,
                     block: int = 8, parallel: bool = False, bbox=None, accumulate: bool = False,
                     row_factor: float = 0.5) -> np.ndarray:
        """Line integrals on an n x n detector grid by the perspective shear-warp: exact Joseph
        rays through an intermediate grid at the volume's resolution on its far plane, resampled
        bilinearly onto the detector pixels. `bbox` (r0, r1, c0, c1) limits the pixels written;
        `accumulate` adds to `out` instead of overwriting it. `row_factor`: spacing of the
        intermediate rays across the slices' rows, as a fraction of the row voxel size (at most
        one voxel; 0.5 for full quality, 1 for the preview)."""
        if out is not None:
            n_rays = out.shape[0]
        n_out = pose.detector_pixels if n_rays is None else int(n_rays)
        g = self._shear_setup(pose, row_factor)
        sp = self.spacing_mm
        p, r, c = g["p"], g["r"], g["c"]
        st, nn, o, src = g["strides"], g["n"], self.origin_mm, g["src"]
        acc = np.empty((g["nb"], g["na"]), dtype=np.float32)
        kernel = K.shear_project if parallel else K.shear_project_serial
        kernel(g["flat"], st[p], st[r], st[c], nn[p], nn[r], nn[c], o[p], o[r], o[c],
                        sp[p], sp[r], sp[c], src[p], src[r], src[c], g["p_ref"], g["c0"], g["d_a"], g["r0"],
                        g["d_b"], acc, int(block))
        det_origin, du, dv = pose.detector_pixel_grid(n_out)
        if out is None:
            out = np.empty((n_out, n_out), dtype=np.float32)
        r_lo, r_hi, c_lo, c_hi = (0, n_out, 0, n_out) if bbox is None else (int(b) for b in bbox)
        K.warp_to_detector(acc, p, r, c, g["p_ref"], g["c0"], g["d_a"], g["r0"], g["d_b"], float(sp[p]), src,
                           det_origin, du, dv, out, r_lo, r_hi, c_lo, c_hi, bool(accumulate))
        return out

    def project(self, pose: CArmPose, n_rays: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Line integrals (dimensionless) for an n x n grid of rays over the pose's field."""
        n = pose.detector_pixels if n_rays is None else int(n_rays)
        det_origin, du, dv = pose.detector_pixel_grid(n)
        if out is None:
            out = np.empty((n, n), dtype=np.float32)
        nz, ny, nx = self.mu_zyx.shape
        K.project_volume(self.mu_zyx.ravel(), nx, ny, nz, self.origin_mm, self.spacing_mm,
                         pose.source_mm, det_origin, du, dv, out, 0, n, 0, n, False)
        return out


# =============================================================================================
# Needle and contrast
# =============================================================================================
@dataclass(frozen=True)
class NeedleModel:
    """A straight needle: steel shaft from the hub to the tip, a hub behind it (RAS mm)."""

    tip_mm: tuple[float, float, float]
    hub_mm: tuple[float, float, float]  # where the shaft enters the hub
    outer_diameter_mm: float = 0.72
    hub_length_mm: float = 15.0
    hub_outer_diameter_mm: float = 7.0
    hub_inner_diameter_mm: float = 3.0
    hub_mu_per_mm: float = MU_PLASTIC_60KEV_PER_MM
    shaft_into_hub_mm: float = 10.0  # the steel cannula runs on inside the hub
    shaft_mu_per_mm: float = MU_STEEL_60KEV_PER_MM

    @classmethod
    def from_gauge(cls, gauge: int, tip_mm, direction=None, length_mm: float = 150.0, hub_mm=None,
                   **kw) -> "NeedleModel":
        """A needle of a gauge (22 G = 0.72 mm) with its tip at `tip_mm`, pointing along `direction`
        (unit vector, hub -> tip) with shaft length `length_mm`, or with its hub end at `hub_mm`."""
        if gauge not in NEEDLE_OUTER_DIAMETER_MM:
            raise ValueError(f"needle gauge: {gauge!r} not one of {sorted(NEEDLE_OUTER_DIAMETER_MM)}")
        tip = np.asarray(tip_mm, dtype=np.float64).reshape(3)
        if hub_mm is None:
            if direction is None:
                raise ValueError("needle: give direction or hub_mm")
            d = np.asarray(direction, dtype=np.float64).reshape(3)
            nd = np.linalg.norm(d)
            if nd < 1e-9:
                raise ValueError(f"needle direction: zero vector {direction!r}")
            hub = tip - d / nd * float(length_mm)
        else:
            hub = np.asarray(hub_mm, dtype=np.float64).reshape(3)
        return cls(tuple(map(float, tip)), tuple(map(float, hub)), NEEDLE_OUTER_DIAMETER_MM[gauge], **kw)

    @classmethod
    def from_state(cls, state, **kw) -> "NeedleModel":
        """From a `simulator.core.needle.NeedleState` (tip, hub and the spec's gauge)."""
        return cls.from_gauge(int(state.spec.gauge), state.tip_mm, hub_mm=state.hub_mm, **kw)

    @classmethod
    def from_tip_to_world(cls, needle_tip_to_world, gauge: int = 22, length_mm: float = 150.0, **kw) -> "NeedleModel":
        """From a `needle_tip_to_world` transform (origin at the tip, +Z the insertion direction)."""
        m = np.asarray(needle_tip_to_world, dtype=np.float64).reshape(4, 4)
        return cls.from_gauge(gauge, m[:3, 3], direction=m[:3, 2], length_mm=length_mm, **kw)

    @property
    def axis(self) -> np.ndarray:
        """Unit vector from the hub to the tip."""
        v = np.asarray(self.tip_mm) - np.asarray(self.hub_mm)
        return v / max(np.linalg.norm(v), 1e-12)

    @property
    def shaft_length_mm(self) -> float:
        return float(np.linalg.norm(np.asarray(self.tip_mm) - np.asarray(self.hub_mm)))

    def cylinders(self) -> list[tuple[np.ndarray, np.ndarray, float, float, float, float]]:
        """(start, unit axis, length, outer radius, inner radius, mu) of each part."""
        a = self.axis
        hub = np.asarray(self.hub_mm, dtype=np.float64)
        parts = []
        shaft_start = hub - a * self.shaft_into_hub_mm
        parts.append((shaft_start, a, self.shaft_length_mm + self.shaft_into_hub_mm,
                      0.5 * self.outer_diameter_mm, 0.0, self.shaft_mu_per_mm))
        if self.hub_length_mm > 0 and self.hub_mu_per_mm > 0:
            parts.append((hub - a * self.hub_length_mm, a, self.hub_length_mm, 0.5 * self.hub_outer_diameter_mm,
                          0.5 * self.hub_inner_diameter_mm, self.hub_mu_per_mm))
        return parts


def vascular_washout_fraction(t_since_injection_s, washout_s: float = 3.0, rise_s: float = 0.15):
    """Fraction of intravascular contrast still in view: ramps up over `rise_s` while it is
    injected (the flash), then falls exponentially to 1 % at `washout_s`."""
    t = np.asarray(t_since_injection_s, dtype=np.float64)
    tau = max(washout_s - rise_s, 1e-3) / math.log(100.0)
    rise = np.clip(t / max(rise_s, 1e-6), 0.0, 1.0)
    decay = np.exp(-np.clip(t - rise_s, 0.0, None) / tau)
    out = np.where(t < 0, 0.0, rise * decay)
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class ContrastBlob:
    """A Gaussian cloud of iodine: peak concentration at `center_mm`, standard deviation `sigma_mm`
    (one number, or three along `axes` rows: principal directions, unit vectors in RAS).

    intravascular: it flashes at `injected_at_s` and washes out over `washout_s`, carried along
    `flow_mm_s` (a velocity, RAS mm/s) and stretching as it goes. In tissue it stays."""

    center_mm: tuple[float, float, float]
    sigma_mm: float | tuple[float, float, float]
    iodine_mg_per_ml: float
    axes: tuple | None = None
    intravascular: bool = False
    injected_at_s: float = 0.0
    washout_s: float = 3.0
    flow_mm_s: tuple[float, float, float] | None = None

    @classmethod
    def from_volume(cls, center_mm, volume_ml: float, iodine_mg_per_ml: float = 150.0, **kw) -> "ContrastBlob":
        """A round cloud holding `volume_ml` of contrast at `iodine_mg_per_ml`: a Gaussian with that
        peak concentration whose integral (2 pi)^1.5 sigma^3 is the volume."""
        v_mm3 = float(volume_ml) * 1000.0
        sigma = (v_mm3 / (2 * math.pi) ** 1.5) ** (1.0 / 3.0)
        return cls(tuple(map(float, center_mm)), sigma, float(iodine_mg_per_ml), **kw)

    def state_at(self, time_s: float) -> tuple[np.ndarray, np.ndarray, float, float] | None:
        """(centre, precision matrix 1/mm^2, peak mu 1/mm, largest standard deviation mm) at a
        time, or None if nothing shows. Contrast in tissue does not change: computed once."""
        if not self.intravascular:
            st = self.__dict__.get("_state")
            if st is None:
                st = self._state_at(time_s)
                object.__setattr__(self, "_state", st)
            return st
        return self._state_at(time_s)

    def _state_at(self, time_s: float):
        sig = np.broadcast_to(np.asarray(self.sigma_mm, dtype=np.float64), (3,)).astype(np.float64).copy()
        if np.any(sig <= 0):
            raise ValueError(f"ContrastBlob.sigma_mm: must be positive, got {self.sigma_mm!r}")
        R = np.eye(3) if self.axes is None else np.asarray(self.axes, dtype=np.float64).reshape(3, 3)
        R = R / np.linalg.norm(R, axis=1, keepdims=True)
        cov = R.T @ np.diag(sig**2) @ R
        center = np.asarray(self.center_mm, dtype=np.float64)
        peak = float(iodine_mu_per_mm(self.iodine_mg_per_ml))
        if self.intravascular:
            t = float(time_s) - self.injected_at_s
            f = vascular_washout_fraction(t, self.washout_s)
            if f < 1e-4:
                return None
            peak *= f
            if self.flow_mm_s is not None and t > 0:
                v = np.asarray(self.flow_mm_s, dtype=np.float64)
                speed = float(np.linalg.norm(v))
                if speed > 0:
                    e = v / speed
                    stretch = 0.5 * speed * t
                    cov = cov + stretch**2 * np.outer(e, e)
                    center = center + v * t * 0.5
                    # keep the amount of iodine: peak falls as the cloud stretches
                    peak *= math.sqrt(np.linalg.det(R.T @ np.diag(sig**2) @ R) / np.linalg.det(cov))
        if peak <= 0:
            return None
        return center, np.linalg.inv(cov), peak, math.sqrt(float(np.max(np.linalg.eigvalsh(cov))))


@dataclass(frozen=True, eq=False)
class ContrastGrid:
    """A small voxel grid of iodine concentration (mg/ml), (I, J, K) in RAS index order, voxel
    (i, j, k) centre at origin_mm + (i, j, k) * spacing_mm (the spread model's output).

    smooth_mm: a Gaussian blur (standard deviation, mm) applied once, so that a voxel-wise fill
    has the soft edges of contrast mixing with tissue fluid (0: none)."""

    iodine_mg_per_ml: np.ndarray
    origin_mm: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]
    intravascular: bool = False
    injected_at_s: float = 0.0
    washout_s: float = 3.0
    smooth_mm: float = 0.0

    @classmethod
    def from_mask(cls, mask: np.ndarray, origin_mm, spacing_mm, iodine_mg_per_ml: float, **kw) -> "ContrastGrid":
        return cls(np.asarray(mask, dtype=np.float32) * float(iodine_mg_per_ml), tuple(origin_mm), tuple(spacing_mm), **kw)

    @classmethod
    def from_spread(cls, spread, iodine_mg_per_ml: float = 240.0, washout_s: float | None = None,
                    smooth_mm: float = 2.0) -> "ContrastGrid":
        """From a `simulator.core.spread.Spread` of contrast medium: each filled voxel holds its
        filled fraction times the medium's relative concentration there (`Spread.concentration`:
        undiluted at the tip, mixed with tissue fluid towards the front, unevenly in loose tissue)
        times the medium's iodine concentration; an intravascular (washout) spread
        flashes at its injection time (`spread.time_s`) and washes out over `washout_s` (default 2 s)."""
        try:
            values, origin, spacing = spread.subgrid(graded=True)
        except TypeError:  # a spread-like object without graded output
            values, origin, spacing = spread.subgrid()
        wash = bool(getattr(spread, "washout", False))
        return cls(np.asarray(values, dtype=np.float32) * float(iodine_mg_per_ml), tuple(map(float, origin)),
                   tuple(map(float, spacing)), intravascular=wash, injected_at_s=float(getattr(spread, "time_s", 0.0)),
                   washout_s=2.0 if washout_s is None else float(washout_s), smooth_mm=float(smooth_mm))

    def scale_at(self, time_s: float) -> float:
        """Fraction of the iodine in view at a time (1 in tissue; the wash-out curve in a vessel)."""
        if not self.intravascular:
            return 1.0
        return float(vascular_washout_fraction(float(time_s) - self.injected_at_s, self.washout_s))

    def unit_volume(self) -> AttenuationVolume:
        """The iodine's attenuation volume (made once, smoothed if asked)."""
        vol = self.__dict__.get("_unit_volume")
        if vol is None:
            conc = np.asarray(self.iodine_mg_per_ml, dtype=np.float32)
            origin = np.asarray(self.origin_mm, dtype=np.float64)
            spacing = np.asarray(self.spacing_mm, dtype=np.float64)
            if self.smooth_mm > 0:
                from scipy.ndimage import gaussian_filter

                sig = self.smooth_mm / spacing
                pad = np.ceil(3 * sig).astype(int)
                conc = gaussian_filter(np.pad(conc, [(p, p) for p in pad]), sig, mode="constant")
                origin = origin - pad * spacing
            vol = AttenuationVolume.from_xyz(iodine_mu_per_mm(conc).astype(np.float32), origin, spacing, border=True)
            vol.use_x_major = False
            object.__setattr__(self, "_unit_volume", vol)
        return vol

    def volume_at(self, time_s: float) -> AttenuationVolume | None:
        """The attenuation volume at a time (None once washed out)."""
        scale = self.scale_at(time_s)
        if scale < 1e-4:
            return None
        unit = self.unit_volume()
        if scale == 1.0:
            return unit
        return AttenuationVolume(unit.mu_zyx * np.float32(scale), unit.origin_mm, unit.spacing_mm)


@dataclass
class ContrastScene:
    """All injected contrast: Gaussian blobs and voxel grids."""

    blobs: list[ContrastBlob] = field(default_factory=list)
    grids: list[ContrastGrid] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.blobs or self.grids)


# =============================================================================================
# Layers: needle and contrast line integrals on the detector
# =============================================================================================
def _bbox(us, vs, reach: float, n: int) -> np.ndarray:
    r0 = int(max(0, math.floor(np.nanmin(vs) - reach - 1)))
    r1 = int(min(n, math.ceil(np.nanmax(vs) + reach + 2)))
    c0 = int(max(0, math.floor(np.nanmin(us) - reach - 1)))
    c1 = int(min(n, math.ceil(np.nanmax(us) + reach + 2)))
    return np.array([r0, max(r0, r1), c0, max(c0, c1)], dtype=np.int64)


def add_needles(out: np.ndarray, pose: CArmPose, needles: Iterable[NeedleModel], supersample: int = 3) -> list:
    """Add the needles' line integrals to `out` (n x n, the pose's detector); returns the bboxes."""
    parts = [c for nd in needles for c in nd.cylinders()]
    if not parts:
        return []
    n = out.shape[0]
    det_origin, du, dv = pose.detector_pixel_grid(n)
    pitch = pose.field_mm / n
    starts = np.array([p[0] for p in parts], dtype=np.float64)
    axes = np.array([p[1] for p in parts], dtype=np.float64)
    lengths = np.array([p[2] for p in parts], dtype=np.float64)
    r_out = np.array([p[3] for p in parts], dtype=np.float64)
    r_in = np.array([p[4] for p in parts], dtype=np.float64)
    mus = np.array([p[5] for p in parts], dtype=np.float64)
    ends = starts + axes * lengths[:, None]
    seg = np.zeros((len(parts), 4))
    reach = np.zeros(len(parts))
    bboxes = np.zeros((len(parts), 4), dtype=np.int64)
    scale = n / pose.detector_pixels
    for q in range(len(parts)):
        u, v = pose.world_to_pixel(np.stack([starts[q], ends[q]]))
        u = (u + 0.5) * scale - 0.5
        v = (v + 0.5) * scale - 0.5
        if not np.all(np.isfinite(u)):
            bboxes[q] = (0, 0, 0, 0)
            continue
        mag = float(np.nanmax(pose.magnification_at(np.stack([starts[q], ends[q]]))))
        reach[q] = r_out[q] * mag / pitch
        seg[q] = (u[0], v[0], u[1], v[1])
        bboxes[q] = _bbox(u, v, reach[q], n)
    K.add_cylinders(out, pose.source_mm, det_origin, du, dv, starts, axes, lengths, r_out, r_in, mus,
                    seg, reach, bboxes, int(supersample))
    return [tuple(b) for b in bboxes if b[1] > b[0] and b[3] > b[2]]


def add_contrast(out: np.ndarray, pose: CArmPose, contrast: ContrastScene | None, time_s: float = 0.0) -> list:
    """Add the contrast's iodine line integrals to `out` at `time_s`; returns the bboxes touched."""
    if not contrast:
        return []
    n = out.shape[0]
    det_origin, du, dv = pose.detector_pixel_grid(n)
    pitch = pose.field_mm / n
    scale = n / pose.detector_pixels
    boxes = []
    states = [s for s in (b.state_at(time_s) for b in contrast.blobs) if s is not None]
    if states:
        centers = np.array([s[0] for s in states])
        prec = np.array([s[1] for s in states])
        peaks = np.array([s[2] for s in states])
        bboxes = np.zeros((len(states), 4), dtype=np.int64)
        u, v = pose.world_to_pixel(centers)
        u = (u + 0.5) * scale - 0.5
        v = (v + 0.5) * scale - 0.5
        mag = pose.magnification_at(centers)
        for q in range(len(states)):
            sig_max = states[q][3]
            if not np.isfinite(u[q]):
                continue
            bboxes[q] = _bbox(u[q:q + 1], v[q:q + 1], BLOB_REACH_SIGMAS * sig_max * mag[q] / pitch, n)
        K.add_gaussian_blobs(out, pose.source_mm, det_origin, du, dv, centers, prec, peaks, bboxes)
        boxes += [tuple(b) for b in bboxes if b[1] > b[0] and b[3] > b[2]]
    for g in contrast.grids:
        amount = g.scale_at(time_s)
        if amount < 1e-4:
            continue
        vol = g.unit_volume()
        lo, hi = vol.bounds_mm()
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        u, v = pose.world_to_pixel(corners)
        u = (u + 0.5) * scale - 0.5
        v = (v + 0.5) * scale - 0.5
        if not np.all(np.isfinite(u)):
            continue
        b = _bbox(u, v, 1.0, n)
        if b[1] <= b[0] or b[3] <= b[2]:
            continue
        if amount == 1.0:
            vol.project_fast(pose, out=out, bbox=b, accumulate=True)
        else:
            tmp = np.zeros_like(out)
            vol.project_fast(pose, out=tmp, bbox=b)
            out[b[0]:b[1], b[2]:b[3]] += np.float32(amount) * tmp[b[0]:b[1], b[2]:b[3]]
        boxes.append(tuple(b))
    return boxes


# =============================================================================================
# The renderer: per-pose cache, preview and refine, detector and display
# =============================================================================================
@dataclass(frozen=True)
class DisplaySettings:
    """How the detector signal becomes a picture."""

    invert: bool = False  # False: dense = dark (the fluoroscopy display); True: bone white
    window: tuple[float, float] | None = None  # (lo, hi) apparent line integral; None: automatic
    # automatic brightness/contrast: percentiles of the processed image over the whole exposed
    # field; the low one lets the brightest few per cent (lung, gas, skin edge) burn out instead
    # of compressing the rest, the high one keeps the densest bone just short of black
    auto_percentiles: tuple[float, float] = (3.0, 99.8)
    auto_region: float = 0.5  # radius of the region used, fraction of the field (0.5: all of it)
    auto_margin: tuple[float, float] = (0.0, 0.12)  # widening of the window below / above
    min_window: float = 0.8  # narrowest automatic window (line-integral units)
    shoulder: float = 1.0  # the display curve runs on past the window's dense end by this many widths
    shoulder_start: float = 0.2  # the share of the window's dense end where the shoulder begins
    gamma: float = 1.25  # applied to the displayed brightness (> 1 lifts bone to mid-grey)
    edge_enhance: float = 0.9  # unsharp-mask amount, fine band (cortical outlines, endplates)
    edge_sigma_mm: float = 1.5  # its radius at the isocentre
    detail_enhance: float = 1.1  # boost of the middle band (pedicles, vertebral outlines, ribs)
    detail_sigma_mm: float = 5.0
    range_compression: float = 0.8  # fraction of the broad background taken out (thickness)
    range_sigma_mm: float = 45.0  # radius of that background at the isocentre
    scatter_fraction: float = 0.4  # scatter reaching the detector behind the grid, relative to primary
    psf_sigma_px: float = 0.7  # detector blur of the needle and contrast layer
    shutter_level: float = 30.0  # grey level behind the collimator shutters
    frames_averaged: float = 4.0  # temporal (recursive) noise filter: noise as if this many pulses were averaged

    def processing_key(self) -> tuple:
        """The settings that change the cached per-pose maps."""
        return (self.scatter_fraction, self.edge_enhance, self.edge_sigma_mm, self.detail_enhance,
                self.detail_sigma_mm, self.range_compression,
                self.range_sigma_mm, tuple(self.auto_percentiles), self.auto_region, tuple(self.auto_margin),
                self.min_window)


@dataclass
class FluoroFrame:
    image: np.ndarray  # (n, n) uint8, row 0 at the top of the screen
    quality: str  # "preview" or "full"
    pose: CArmPose
    window: tuple[float, float]
    water_thickness_mm: float  # along the AEC region, for the dose model
    quanta_per_pixel: float
    timings_ms: dict = field(default_factory=dict)


@dataclass
class _PoseImage:
    p_rays: np.ndarray  # anatomy line integrals on the ray grid
    n_rays: int
    p_ref: float
    window: tuple[float, float]
    maps: np.ndarray  # (4, n, n): l_disp, prim, scatter, inv_sqrt_s on the projection grid
    compute_ms: float


class FluoroscopyRenderer:
    """Renders fluoroscopy frames of one anatomy. Thread-safe: `refine` may run in a worker thread.

    The anatomy image is cached per C-arm pose (`CArmPose.geometry_key()`: collimation does not
    invalidate it) and quality; needles and contrast are drawn per frame."""

    def __init__(self, anatomy=None, *, volume: AttenuationVolume | None = None, preview_downsample: int = 3,
                 preview_rays: int | None = None, cache_poses: int = 8,
                 pad_cut_ends_mm: float = 100.0, seed: int | None = None):
        if volume is None:
            if anatomy is None:
                raise ValueError("FluoroscopyRenderer: give an anatomy or a volume")
            volume = AttenuationVolume.from_anatomy(anatomy, pad_cut_ends_mm=pad_cut_ends_mm)
        self.volume = volume
        self.preview_volume = volume.downsampled(preview_downsample, preview_downsample, 1) if preview_downsample > 1 else volume
        self.preview_rays = preview_rays
        # the preview is small: numba's thread team costs more than it gains on a busy 2-core machine
        self.parallel_preview = False
        self.parallel_full = False
        self._cache: OrderedDict = OrderedDict()
        self._cache_size = int(cache_poses)
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(seed)
        self._noise = self._rng.standard_normal(2 * 1024 * 1024 + 4099).astype(np.float32)
        self._exposed_cache: OrderedDict = OrderedDict()

    def prepare(self) -> None:
        """Build everything a first view would otherwise build on demand (the x-major copy of the
        volume used by lateral-ish views); call it from a worker thread at start-up."""
        if self.volume.use_x_major:
            self.volume.x_major()
        if self.preview_volume.use_x_major:
            self.preview_volume.x_major()

    # ---- ray grids ------------------------------------------------------------------------------
    def full_rays(self, pose: CArmPose) -> int:
        """Detector grid of the full-quality image: the display matrix (the projector's own ray
        grid is at the volume's resolution, see `AttenuationVolume.project_fast`)."""
        return pose.detector_pixels

    def preview_rays_for(self, pose: CArmPose) -> int:
        """Detector grid of the preview (half the display matrix unless `preview_rays` is set)."""
        if self.preview_rays:
            return int(min(self.preview_rays, pose.detector_pixels))
        return max(32, pose.detector_pixels // 2)

    # ---- cache ---------------------------------------------------------------------------------
    def _get(self, key):
        with self._lock:
            v = self._cache.get(key)
            if v is not None:
                self._cache.move_to_end(key)
            return v

    def _put(self, key, value) -> None:
        with self._lock:
            self._cache[key] = value
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def has_full(self, pose: CArmPose, display: DisplaySettings | None = None) -> bool:
        """Whether the full-quality image of this pose (and display processing) is cached."""
        key = (pose.geometry_key(), "full", (display or DisplaySettings()).processing_key())
        with self._lock:
            return key in self._cache

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def _pose_image(self, pose: CArmPose, quality: str, display: DisplaySettings) -> _PoseImage:
        key = (pose.geometry_key(), quality, display.processing_key())
        img = self._get(key)
        if img is not None:
            return img
        t0 = time.perf_counter()
        if quality == "full":
            n = self.full_rays(pose)
            p = self.volume.project_fast(pose, n, parallel=self.parallel_full)
        elif quality == "preview":
            n = self.preview_rays_for(pose)
            p = self.preview_volume.project_fast(pose, n, parallel=self.parallel_preview, row_factor=1.0)
        else:
            raise ValueError(f"fluoroscopy quality: {quality!r} is not 'preview' or 'full'")
        img = self._derive(pose, p, quality, display)
        img.compute_ms = 1000.0 * (time.perf_counter() - t0)
        self._put(key, img)
        return img

    def _derive(self, pose: CArmPose, p: np.ndarray, quality: str, display: DisplaySettings) -> _PoseImage:
        n = p.shape[0]
        field = self._field_float(pose, n)
        c = (np.arange(n) + 0.5) / n
        # AEC: median line integral in the central 30 % of the field
        central = np.flatnonzero(np.abs(c - 0.5) <= 0.15)
        step = max(1, len(central) // 48)
        region = p[np.ix_(central[::step], central[::step])]
        p_ref = float(np.median(region)) if region.size else float(np.median(p))
        maps = np.empty((4, n, n), dtype=np.float32)  # l_disp, prim, scatter, 1/sqrt(s)
        masked = np.empty((n, n), dtype=np.float32)
        K.aec_signal(p, p_ref, field, maps[1], masked)
        pitch = pose.field_mm / n
        # scatter: a broad blur (sigma 30 mm at the detector) of the primary within the field
        scat_blur = blur_fast(masked, 30.0 / pitch)
        norm_blur = self._field_blur(pose, n, 30.0 / pitch)
        L = masked  # reuse the buffer
        K.log_signal(maps[1], scat_blur, norm_blur, float(display.scatter_fraction), p_ref, maps[2], L, maps[3])
        # image processing of a clinical fluoroscope: dynamic range compression (a fraction of the
        # broad background is taken out), a middle-band (detail) boost and edge enhancement
        iso_to_px = pose.source_to_detector_mm / pose.source_to_isocenter_mm / pitch
        big = blur_fast(L, display.range_sigma_mm * iso_to_px) if display.range_compression > 0 else L
        small = blur_fast(L, display.edge_sigma_mm * iso_to_px) if display.edge_enhance > 0 or display.detail_enhance > 0 else L
        mid = blur_fast(L, display.detail_sigma_mm * iso_to_px) if display.detail_enhance > 0 else small
        K.process_display(L, big, small, mid, p_ref, float(display.range_compression), float(display.edge_enhance),
                          float(display.detail_enhance), maps[0])
        L_disp = maps[0]
        # automatic brightness/contrast: percentiles of the central part of the field (where the
        # anatomy of interest is), widened so that the periphery may burn out as on a real C-arm
        sub = max(1, n // 160)
        cs = c[::sub]
        rr = (cs[:, None] - 0.5) ** 2 + (cs[None, :] - 0.5) ** 2
        Ls = L_disp[::sub, ::sub]
        vals = Ls[(field[::sub, ::sub] > 0.5) & (rr <= display.auto_region ** 2)]
        if vals.size < 16:
            vals = Ls.ravel()
        lo, hi = np.percentile(vals, display.auto_percentiles)
        w = max(hi - lo, 1e-3)
        lo, hi = lo - display.auto_margin[0] * w, hi + display.auto_margin[1] * w
        if hi - lo < display.min_window:  # keep a clinical display's contrast: do not over-stretch
            mid = float(np.median(vals))
            lo, hi = mid - 0.55 * display.min_window, mid + 0.45 * display.min_window
        return _PoseImage(p, n, p_ref, (float(lo), float(hi)), maps, 0.0)

    # ---- public --------------------------------------------------------------------------------
    def refine(self, pose: CArmPose, display: DisplaySettings | None = None) -> float:
        """Compute (and cache) the full-quality anatomy image of a pose; returns the time taken (ms)."""
        t0 = time.perf_counter()
        self._pose_image(pose, "full", display or DisplaySettings())
        return 1000.0 * (time.perf_counter() - t0)

    def anatomy_line_integral(self, pose: CArmPose, quality: str = "full") -> np.ndarray:
        """The anatomy's line integrals on the pose's ray grid (n x n, n <= detector_pixels)."""
        return self._pose_image(pose, quality, DisplaySettings()).p_rays

    def water_thickness_mm(self, pose: CArmPose, quality: str = "auto") -> float:
        """Water-equivalent patient thickness behind the AEC region (for the dose model)."""
        q = self._choose_quality(pose, quality)
        return self._pose_image(pose, q, DisplaySettings()).p_ref / MU_WATER_60KEV_PER_MM

    def _choose_quality(self, pose: CArmPose, quality: str, display: DisplaySettings | None = None) -> str:
        if quality == "auto":
            return "full" if self.has_full(pose, display) else "preview"
        return quality

    def overlay_line_integral(self, pose: CArmPose, needles: Sequence[NeedleModel] = (),
                              contrast: ContrastScene | None = None, time_s: float = 0.0,
                              supersample: int = 3) -> tuple[np.ndarray, list]:
        """Line integrals of needles and contrast on the display matrix, and the boxes touched."""
        n = pose.detector_pixels
        p_add = np.zeros((n, n), dtype=np.float32)
        boxes = add_needles(p_add, pose, needles, supersample)
        boxes += add_contrast(p_add, pose, contrast, time_s)
        return p_add, boxes

    def _field_float(self, pose: CArmPose, n: int) -> np.ndarray:
        key = ("field", n, pose.field_shape)
        f = self._exposed_cache.get(key)
        if f is None:
            f = pose.field_mask(n).astype(np.float32)
            self._exposed_cache[key] = f
        return f

    def _field_blur(self, pose: CArmPose, n: int, sigma_px: float) -> np.ndarray:
        key = ("field_blur", n, pose.field_shape, round(sigma_px, 3))
        f = self._exposed_cache.get(key)
        if f is None:
            f = blur_fast(self._field_float(pose, n), sigma_px)
            self._exposed_cache[key] = f
        return f

    def _exposed(self, pose: CArmPose) -> np.ndarray:
        key = (pose.detector_pixels, pose.collimation, pose.field_shape)
        e = self._exposed_cache.get(key)
        if e is None:
            e = np.where(pose.exposed_mask(), 2, np.where(pose.field_mask(), 1, 0)).astype(np.uint8)
            self._exposed_cache[key] = e
            while len(self._exposed_cache) > 12:
                self._exposed_cache.popitem(last=False)
        return e

    @staticmethod
    def display_lut(display: DisplaySettings, size: int = 4096) -> np.ndarray:
        """Brightness (uint8) over the apparent line integral from lo to lo + (1 + shoulder) (hi - lo):
        linear over the window up to its dense end's last `shoulder_start` share, then a shoulder
        (an exponential with the same slope) that darkens smoothly past the window, as a film's
        or a display curve's toe does, so a dense contrast cloud keeps its gradient instead of
        clipping to a solid black shape; then gamma; inverted for the bone-white display."""
        t = np.linspace(0.0, 1.0 + display.shoulder, size)
        t0 = 1.0 - display.shoulder_start
        b0 = display.shoulder_start
        b = np.where(t <= t0, 1.0 - t, b0 * np.exp(-(t - t0) / max(b0, 1e-6))) if b0 > 0 else np.clip(1.0 - t, 0, 1)
        b = np.clip(b, 0.0, 1.0)
        b = 1.0 - b if display.invert else b
        b = b ** (1.0 / display.gamma) if display.gamma != 1.0 else b
        return np.clip(np.rint(255.0 * b), 0, 255).astype(np.uint8)

    def _process_overlay(self, pose: CArmPose, p_add: np.ndarray, boxes: list, display: DisplaySettings) -> None:
        """Detector blur and the display's edge enhancement on the needle/contrast layer, in place,
        over the merged bounding boxes (the anatomy's processing is cached per pose)."""
        if not boxes:
            return
        n = p_add.shape[0]
        pitch = pose.field_mm / n
        iso_to_px = pose.source_to_detector_mm / pose.source_to_isocenter_mm / pitch
        sig_e = display.edge_sigma_mm * iso_to_px
        margin = int(math.ceil(3 * (display.psf_sigma_px + (sig_e if display.edge_enhance > 0 else 0.0)))) + 1
        for (r0, r1, c0, c1) in merge_boxes(boxes, margin, n):
            sub = p_add[r0:r1, c0:c1]
            if display.psf_sigma_px > 0.05:
                sub = K.gaussian_blur(sub, display.psf_sigma_px)
            if display.edge_enhance > 0:
                # darken edges only (no bright halo around a dense needle): steel beyond a line
                # integral of 6 is black anyway, so the enhancement sees at most that
                capped = np.minimum(sub, np.float32(6.0))
                sub = sub + np.float32(display.edge_enhance) * np.maximum(capped - K.gaussian_blur(capped, sig_e), 0.0)
            p_add[r0:r1, c0:c1] = sub

    def render(self, pose: CArmPose, needles: Sequence[NeedleModel] = (), contrast: ContrastScene | None = None,
               time_s: float = 0.0, quality: str = "auto", quanta_per_pixel: float | None = None,
               display: DisplaySettings | None = None, rng: np.random.Generator | None = None) -> FluoroFrame:
        """One fluoroscopy frame.

        quality: "auto" (full if refined for this pose, else the preview), "preview" or "full".
        quanta_per_pixel: detected quanta per pixel per pulse at the AEC level (`Exposure.quanta_per_pixel`);
        None: the default exposure for this pose; 0: no quantum noise."""
        display = display or DisplaySettings()
        timings = {}
        t0 = time.perf_counter()
        q = self._choose_quality(pose, quality, display)
        img = self._pose_image(pose, q, display)
        t1 = time.perf_counter()
        timings["anatomy_ms"] = 1000.0 * (t1 - t0)
        n = pose.detector_pixels
        p_add = np.zeros((n, n), dtype=np.float32)
        # each layer gets the detector blur and edge enhancement on its own boxes (a needle far from
        # the contrast does not make one big box)
        boxes = add_needles(p_add, pose, needles)
        self._process_overlay(pose, p_add, boxes, display)
        if contrast:
            p_con = np.zeros((n, n), dtype=np.float32)
            cboxes = add_contrast(p_con, pose, contrast, time_s)
            self._process_overlay(pose, p_con, cboxes, display)
            for (r0, r1, c0, c1) in merge_boxes(cboxes, int(math.ceil(3 * display.psf_sigma_px)) + 12, n):
                p_add[r0:r1, c0:c1] += p_con[r0:r1, c0:c1]
        t2 = time.perf_counter()
        timings["overlay_ms"] = 1000.0 * (t2 - t1)
        water_mm = img.p_ref / MU_WATER_60KEV_PER_MM
        if quanta_per_pixel is None:
            quanta_per_pixel = compute_exposure(pose, water_mm).quanta_per_pixel
        window = display.window or img.window
        rng = rng or self._rng
        offset = int(rng.integers(0, self._noise.shape[0]))
        quanta = quanta_per_pixel * max(display.frames_averaged, 1.0)
        noise_scale = 1.0 / math.sqrt(quanta) if quanta > 0 else 0.0
        n = pose.detector_pixels
        out = np.empty((n, n), dtype=np.uint8)
        K.compose_display(img.maps, p_add, self._exposed(pose), self._noise, offset, noise_scale,
                          float(window[0]), float(window[1] + display.shoulder * (window[1] - window[0])),
                          self.display_lut(display), float(display.shutter_level), out)
        timings["display_ms"] = 1000.0 * (time.perf_counter() - t2)
        timings["total_ms"] = 1000.0 * (time.perf_counter() - t0)
        return FluoroFrame(out, q, pose, (float(window[0]), float(window[1])), water_mm, float(quanta_per_pixel), timings)


def merge_boxes(boxes, margin: int, n: int) -> list[tuple[int, int, int, int]]:
    """Boxes (r0, r1, c0, c1) grown by `margin`, clipped to [0, n), and merged until none overlap."""
    out = [[max(0, b[0] - margin), min(n, b[1] + margin), max(0, b[2] - margin), min(n, b[3] + margin)]
           for b in boxes if b[1] > b[0] and b[3] > b[2]]
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                a, b = out[i], out[j]
                if a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]:
                    out[i] = [min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])]
                    del out[j]
                    merged = True
                    break
            if merged:
                break
    return [tuple(b) for b in out]


def blur_fast(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of a float32 image; wide kernels run on a block-averaged copy (a power-of-two
    reduction keeping at least 1.5 pixels of sigma) and are bilinearly upsampled back."""
    img = np.ascontiguousarray(img, dtype=np.float32)
    h, w = img.shape
    f = 1
    while sigma_px / (2 * f) >= 1.5 and h % (2 * f) == 0 and w % (2 * f) == 0 and h // (2 * f) >= 16:
        f *= 2
    if f == 1:
        return K.gaussian_blur(img, sigma_px)
    small = np.empty((h // f, w // f), dtype=np.float32)
    K.block_mean(img, f, small)
    small = K.gaussian_blur(small, sigma_px / f)
    out = np.empty((1, h, w), dtype=np.float32)
    K.upsample_bilinear(small[None], out)
    return out[0]


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 greyscale (H, W) or RGB (H, W, 3) image (zlib, no dependencies)."""
    import struct
    import zlib

    a = np.ascontiguousarray(image, dtype=np.uint8)
    if a.ndim == 2:
        color, rows = 0, a
    elif a.ndim == 3 and a.shape[2] == 3:
        color, rows = 2, a.reshape(a.shape[0], -1)
    else:
        raise ValueError(f"encode_png: expected (H, W) or (H, W, 3) uint8, got shape {a.shape}")
    h, w = a.shape[:2]
    raw = np.hstack([np.zeros((h, 1), dtype=np.uint8), rows]).tobytes()

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
