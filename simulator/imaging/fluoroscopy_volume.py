"""The attenuation volume of the simulated fluoroscopy: CT numbers (or tissue classes) to
linear attenuation at 60 keV on an axis-aligned grid, and its projection per C-arm pose (a
perspective shear-warp with Joseph's sampling, `fluoroscopy_kernels`).

Physics (effective energy 60 keV, Beer-Lambert): mu = mu_water (1 + HU / 1000) with mu_water =
0.206 /cm, HU <= -900 is air, a bilinear bone slope above 0 HU (`hu_to_mu`); for a contrast-
enhanced CT the iodine in the vessels (and the enhancement of solid organs) is taken out; for
phantoms without CT numbers mu comes from the tissue class (`MU_60KEV_PER_CM`, NIST XCOM values
for ICRU tissues). The polychromatic model (`xray_spectrum`) reads these line integrals as
water-equivalent path lengths (divided by mu_water at 60 keV).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulator.core.carm import CArmPose
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
    Tissue.METAL: 9.48,  # an implant: stainless steel
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
# The CT's own noise (20-50 HU per voxel) is not anatomy: summed along a ray and stretched over 4-6
# display rows by the 2.5 mm slices, it shows as vertical streaks over the lung and a mottle over
# the abdomen once the display's edge enhancement lifts the fine bands. The CT is smoothed in-plane
# (sigma about one CT pixel, below the display's 0.4 mm pixels at the isocentre), each voxel
# changed by at most a couple of noise standard deviations, so a tissue boundary (hundreds of HU)
# is hardly softened while the noise is averaged out (a sigma filter in its simplest form).
# above the densest bone (cortical bone 0.060 /mm at 60 keV, 3x for dental enamel and noise): metal
METAL_MU_PER_MM = 0.2
CT_DENOISE_SIGMA_MM = 1.0
CT_DENOISE_LIMIT_HU = 100.0


def iodine_mu_per_mm(iodine_mg_per_ml) -> np.ndarray | float:
    """Extra attenuation (1/mm) of iodine at a concentration (mg I per ml) at 60 keV."""
    # mg/ml = 1e-3 g/cm^3; mu = (mu/rho) rho in 1/cm; /10 for 1/mm
    return np.asarray(iodine_mg_per_ml, dtype=np.float64) * 1e-3 * IODINE_MASS_ATTENUATION_CM2_PER_G / 10.0


def _unmirror_metal(slab: np.ndarray) -> None:
    """In a mirrored continuation past the scan's cut end, metal (an implant cut by the scan) is
    soft tissue: a mirrored screw would show as a second, made-up implant."""
    from scipy import ndimage as ndi

    metal = ndi.binary_dilation(slab > METAL_MU_PER_MM, iterations=2) & (slab > MU_WATER_60KEV_PER_MM)
    slab[metal] = np.float32(MU_WATER_60KEV_PER_MM)


def denoise_ct_hu(hu: np.ndarray, spacing_mm, sigma_mm: float = CT_DENOISE_SIGMA_MM,
                  limit_hu: float = CT_DENOISE_LIMIT_HU, chunk: int = 24) -> np.ndarray:
    """A copy of the CT numbers (x, y, z) smoothed in-plane by a Gaussian of `sigma_mm`, each
    voxel changed by at most `limit_hu` (see CT_DENOISE_SIGMA_MM)."""
    from scipy import ndimage as ndi

    out = np.empty_like(hu)
    if sigma_mm <= 0:
        out[...] = hu
        return out
    sig = (sigma_mm / spacing_mm[0], sigma_mm / spacing_mm[1], 0.0)
    lim = np.float32(limit_hu)
    for k0 in range(0, hu.shape[2], chunk):
        h = hu[:, :, k0:k0 + chunk].astype(np.float32)
        d = ndi.gaussian_filter(h, sig, mode="nearest")
        d -= h
        np.clip(d, -lim, lim, out=d)
        h += d
        out[:, :, k0:k0 + chunk] = np.rint(h)
    return out


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
                     chunk: int = 16, hu: np.ndarray | None = None) -> "AttenuationVolume":
        """The attenuation volume of an `Anatomy` at 60 keV.

        source: "hu" (CT numbers), "tissue" (tissue-class table), or "auto" (tissue for phantoms,
        i.e. `anatomy.source['kind']` in ('phantom', 'analytic', 'mesh-phantom'), else hu).
        For a contrast-enhanced CT, vessels and enhancing organs are capped at their plain CT
        number + 30 HU. Outside the body (tissue AIR) is zero, so a scanner table that the builder
        marked as air does not show. crop: keep the body's bounding box only. pad_cut_ends_mm:
        where the scan cuts through the body at its top or bottom slice, the volume is continued by
        its mirror image over this length, so that a field reaching past the end of the scan shows
        plausible anatomy instead of a white band (0 disables); `info['mirror_planes_z_mm']` gives
        the planes ({'lo': z or None, 'hi': z or None}). hu: CT numbers to use instead of the
        anatomy's (the same grid; the hybrid renderer takes the meshed bones out of them)."""
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
        if hu is None:
            hu = anatomy.hu
        if source != "hu":
            hu = np.zeros((1, 1, 1), np.int16)
        K.ct_to_mu_zyx(hu, tissue, cap_lut, tissue_lut, source == "tissue", MU_WATER_60KEV_PER_MM,
                       BONE_SLOPE_60KEV, AIR_HU_THRESHOLD, int(Tissue.AIR), int(i0), int(i1), int(j0), int(j1),
                       int(k0_), int(k1), out, 1 + pad_lo)
        core = slice(1 + pad_lo, 1 + pad_lo + ck)
        if pad_lo:
            out[1:1 + pad_lo] = out[core][:pad_lo][::-1]
            _unmirror_metal(out[1:1 + pad_lo])
        if pad_hi:
            out[1 + pad_lo + ck:1 + pad_lo + ck + pad_hi] = out[core][ck - pad_hi:][::-1]
            _unmirror_metal(out[1 + pad_lo + ck:1 + pad_lo + ck + pad_hi])
        origin = np.asarray(anatomy.origin_mm, dtype=np.float64) + np.array([i0, j0, k0_]) * anatomy.spacing_mm
        origin = origin - anatomy.spacing_mm - np.array([0.0, 0.0, pad_lo * sz])
        z0 = float(anatomy.origin_mm[2]) + k0_ * sz  # centre of the first body slice
        planes = {"lo": z0 - 0.5 * sz if pad_lo else None, "hi": z0 + (ck - 0.5) * sz if pad_hi else None}
        info = {"anatomy": anatomy.name, "source": source, "contrast_removed": enhanced,
                "mirrored_slices": [int(pad_lo), int(pad_hi)], "crop_ijk": [int(i0), int(j0), int(k0_)],
                "mirror_planes_z_mm": planes}
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

