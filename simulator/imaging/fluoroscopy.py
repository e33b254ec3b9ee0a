"""Simulated fluoroscopy: the image a C-arm makes of an anatomy, a needle and injected contrast.

Per C-arm pose (cached), two path maps on the detector's pixels:
- water-equivalent path W (mm): the CT's line integral read as water (`fluoroscopy_volume`: CT
  numbers, the vessels' iodine taken out, the meshed bones taken out), or the tissue classes of a
  phantom;
- cortical-bone path B (mm): the skeleton from its closed meshes, a cortical shell over a
  cancellous core calibrated to the CT's bone mass (`xray_bones`, rasterised by
  `xray_mesh_kernels`); its length replaces water in W.
Physics (`xray_spectrum`): the detected signal's attenuation L(W, B) from a table per beam (`Beam`:
kVp, filtration, anode angle, CsI detector; spekpy spectra, xraydb attenuation): polychromatic,
with beam hardening. Per frame: the needle (steel capped cylinders of the gauge's true diameter,
exact chords, supersampled; a plastic hub) and contrast (iodine Gaussian blobs and voxel grids from
the spread model; intravascular contrast flashes and washes out) as line integrals in their boxes,
turned into extra attenuation on top of (W, B) by 3-D tables.
Detector/display (the image chain, presets in `fluoroscopy_presets`): AEC level from the centre of
the field, scatter as a broad blur of the primary weighted by the tissue it crossed (none from the
direct beam), log, multiscale processing (`fluoroscopy_multiscale`:
halo-free compression of large steps, edge and detail enhancement, harmonisation of the broad
background), quantum noise from the detected quanta of the pulse, window/level with automatic
brightness, dense = dark (`invert` for bone-white), round or square field, collimator shutters.

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
from typing import Sequence

import numpy as np

from simulator.core.carm import CArmPose, compute_exposure
from simulator.imaging import fluoroscopy_image_kernels as IK
from simulator.imaging import xray_spectrum as XS
from simulator.imaging.fluoroscopy_multiscale import multiscale_process
from simulator.imaging.xray_bones import BoneModel
from simulator.imaging.fluoroscopy_overlays import (  # noqa: F401 - the public names of the engine
    ContrastBlob,
    ContrastGrid,
    ContrastScene,
    NeedleModel,
    add_contrast,
    add_needles,
    merge_boxes,
    vascular_washout_fraction,
)
from simulator.imaging.fluoroscopy_volume import (  # noqa: F401
    AIR_HU_THRESHOLD,
    BONE_SLOPE_60KEV,
    IODINE_MASS_ATTENUATION_CM2_PER_G,
    MU_60KEV_PER_CM,
    MU_STEEL_60KEV_PER_MM,
    MU_WATER_60KEV_PER_MM,
    NEEDLE_OUTER_DIAMETER_MM,
    AttenuationVolume,
    denoise_ct_hu,
    hu_to_mu,
    iodine_mu_per_mm,
    tissue_to_mu,
)

# =============================================================================================
# The renderer: per-pose cache, preview and refine, detector and display
# =============================================================================================
# vertex clustering of the bones' preview copy (solid bones while the C-arm moves): the preview's
# pixel is 0.8 mm at the isocentre and its image soft; 6 mm cells look the same there as 3 mm at a
# third of the triangles
PREVIEW_BONE_CELL_MM = 6.0
#: Field masks kept (about five a pose when the scan has cut ends, as many poses as the image cache)
EXPOSED_CACHE_SIZE = 40
DETECTOR_PSF_PX = 0.6  # standard deviation of the detector's blur, in display pixels (CsI light spread)
_PHANTOM_KINDS = ("phantom", "analytic", "mesh-phantom")


# iodine: a line integral p at 60 keV (mu/rho 7.58 cm2/g) is p / (7.58e-3 cm2/mg * 1 mm / 1 cm) mg/cm2
IODINE_MG_CM2_PER_LINE_INTEGRAL = 1.0 / (IODINE_MASS_ATTENUATION_CM2_PER_G * 1e-3)


# Values of interest of the automatic window (apparent attenuation, natural log): the direct beam
# (less than about 25 mm of water) and metal (more than 12x the attenuation at the AEC level)
DIRECT_BEAM_MAX = 0.5
METAL_EXCESS = 2.5


def _ct_anatomy(anatomy) -> bool:
    """A CT-based anatomy (bones from meshes make sense), not an analytic phantom."""
    return str((anatomy.source or {}).get("kind", "")).lower() not in _PHANTOM_KINDS and bool(anatomy.meshes)


@dataclass(frozen=True)
class Beam:
    """The X-ray beam and detector: tube voltage (kVp), total filtration, anode angle, detector."""

    kvp: float = 80.0
    al_mm: float = 3.0
    cu_mm: float = 0.1
    anode_angle_deg: float = 12.0
    detector: XS.Detector = XS.FLAT_PANEL

    def key(self) -> tuple:
        return (round(self.kvp * 2) / 2, self.al_mm, self.cu_mm, self.anode_angle_deg, self.detector)

    def model(self) -> XS.SpectralModel:
        return XS.spectral_model(self.kvp, self.al_mm, self.cu_mm, self.detector, self.anode_angle_deg)


@dataclass(frozen=True)
class DisplaySettings:
    """How the detector signal becomes a picture (the defaults are the flat-panel preset, see
    `fluoroscopy_presets` for the sources of the values)."""

    invert: bool = False  # False: dense = dark (the fluoroscopy display); True: bone white
    window: tuple[float, float] | None = None  # (lo, hi) apparent line integral; None: automatic
    # automatic brightness/contrast: percentiles of the processed image over the exposed field,
    # widened by the margins; after the range compression the whole field fits (lung not clipped)
    auto_percentiles: tuple[float, float] = (0.3, 99.7)
    auto_region: float = 0.5  # radius of the region used, fraction of the field (0.5: all of it)
    auto_margin: tuple[float, float] = (0.03, 0.15)  # widening of the window below / above (dense side: room for the spine)
    min_window: float = 0.8  # narrowest automatic window (line-integral units)
    brightness_region: float = 0.25  # radius of the automatic brightness region (fraction of the field)
    brightness_target: float = 0.45  # its median's displayed brightness when the field does not fit
    max_window_factor: float = 2.6  # widest window, in units of the brightness region's 1-99 % range
    shoulder: float = 1.0  # the display curve runs on past the window's dense end by this many widths
    shoulder_start: float = 0.12  # the share of the window's dense end where the shoulder begins
    gamma: float = 1.3  # applied to the displayed brightness (> 1 lifts bone to mid-grey)
    edge_enhance: float = 5.0  # gain added to the fine bands (cortical outlines, end plates, needle)
    edge_sigma_mm: float = 0.5  # its radius at the isocentre
    detail_enhance: float = 1.0  # gain added to the middle bands (pedicles, processes, rib outlines)
    detail_sigma_mm: float = 2.0
    range_compression: float = 0.7  # fraction of the broad background taken out (harmonisation)
    range_sigma_mm: float = 25.0  # its scale at the isocentre (the bands beyond it and the residual)
    band_compression: float = 0.7  # the part of a step beyond the threshold taken out (local Laplacian filter)
    compression_threshold: float = 0.25  # steps up to this (attenuation) are kept: bone against soft tissue
    scatter_fraction: float = 0.4  # scatter reaching the detector behind the grid, relative to primary
    psf_sigma_px: float = 0.7  # detector blur of the needle and contrast layer
    shutter_level: float = 30.0  # grey level behind the collimator shutters
    frames_averaged: float = 4.0  # pulses averaged into one image (a single shot's pulses; 1 in live mode)

    def processing_key(self) -> tuple:
        """The settings that change the cached per-pose maps."""
        return (self.scatter_fraction, self.edge_enhance, self.edge_sigma_mm, self.detail_enhance,
                self.detail_sigma_mm, self.range_compression,
                self.range_sigma_mm, self.band_compression, self.compression_threshold, tuple(self.auto_percentiles), self.auto_region, tuple(self.auto_margin),
                self.min_window, self.brightness_region, self.brightness_target, self.max_window_factor, self.gamma)


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
    water: np.ndarray | None = None  # water-equivalent path (mm) on the projection grid
    bone: np.ndarray | None = None  # cortical-bone path (mm)
    model: XS.SpectralModel | None = None


class FluoroscopyRenderer:
    """Renders fluoroscopy frames of one anatomy. Thread-safe: `refine` may run in a worker thread.

    The anatomy image is cached per C-arm pose (`CArmPose.geometry_key()`: collimation does not
    invalidate it) and quality; needles and contrast are drawn per frame."""

    def __init__(self, anatomy=None, *, volume: AttenuationVolume | None = None, preview_downsample: int = 3,
                 preview_rays: int | None = None, cache_poses: int = 8,
                 pad_cut_ends_mm: float = 100.0, seed: int | None = None, bones: str | BoneModel | None = "auto"):
        self.bones: BoneModel | None = None
        self.bones_preview: BoneModel | None = None
        if volume is None:
            if anatomy is None:
                raise ValueError("FluoroscopyRenderer: give an anatomy or a volume")
            model = BoneModel.from_anatomy(anatomy) if bones == "auto" and _ct_anatomy(anatomy) else (
                bones if isinstance(bones, BoneModel) else None)
            hu = model.edited_hu(anatomy.hu) if model is not None and model.groups else None
            if _ct_anatomy(anatomy):
                hu = denoise_ct_hu(anatomy.hu if hu is None else hu, anatomy.spacing_mm)
            volume = AttenuationVolume.from_anatomy(anatomy, pad_cut_ends_mm=pad_cut_ends_mm, hu=hu)
            if model is not None and model.groups:
                planes = volume.info.get("mirror_planes_z_mm", {})
                for side, z in planes.items():
                    if z is not None:
                        model = model.with_mirror(z, below=side == "lo", reach_mm=pad_cut_ends_mm)
                self.bones = model
                self.bones_preview = model.coarse(PREVIEW_BONE_CELL_MM)
        self.volume = volume
        self.preview_volume = volume.downsampled(preview_downsample, preview_downsample, 1) if preview_downsample > 1 else volume
        self.preview_rays = preview_rays
        # the preview is small: numba's thread team costs more than it gains on a busy 2-core machine
        self.parallel_preview = False
        self.parallel_full = False
        self._cache: OrderedDict = OrderedDict()  # processed images per (pose, quality, display, beam)
        self._path_cache: OrderedDict = OrderedDict()  # (water, bone) path maps per (pose, quality)
        self._cache_size = int(cache_poses)
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(seed)
        self._noise = self._rng.standard_normal(2 * 1024 * 1024 + 4099).astype(np.float32)
        self._exposed_cache: OrderedDict = OrderedDict()
        self.beam = Beam()

    def prepare(self) -> None:
        """Build everything a first view would otherwise build on demand (the x-major copy of the
        volume used by lateral-ish views); call it from a worker thread at start-up."""
        if self.volume.use_x_major:
            self.volume.x_major()
        if self.preview_volume.use_x_major:
            self.preview_volume.x_major()
        self.beam.model()

    def bone_path(self, pose: CArmPose, n: int, quality: str = "full") -> np.ndarray:
        """The meshed bones' cortical-bone-equivalent path (mm) on an n x n grid, with the
        detector's blur (the scintillator's light spread, `DETECTOR_PSF_PX` of the display matrix);
        the preview uses the bones' coarse copy."""
        model = self.bones_preview if quality == "preview" and self.bones_preview is not None else self.bones
        b = model.project(pose, n).astype(np.float32)
        sigma = DETECTOR_PSF_PX * n / pose.detector_pixels
        return IK.gaussian_blur(b, sigma) if sigma > 0.2 else b

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
    def _get(self, key, cache: OrderedDict | None = None):
        cache = self._cache if cache is None else cache
        with self._lock:
            v = cache.get(key)
            if v is not None:
                cache.move_to_end(key)
            return v

    def _put(self, key, value, cache: OrderedDict | None = None) -> None:
        cache = self._cache if cache is None else cache
        with self._lock:
            cache[key] = value
            cache.move_to_end(key)
            while len(cache) > self._cache_size:
                cache.popitem(last=False)

    def has_full(self, pose: CArmPose, display: DisplaySettings | None = None, beam: Beam | None = None) -> bool:
        """Whether the full-quality image of this pose (display processing, beam) is cached."""
        key = (pose.geometry_key(), "full", (display or DisplaySettings()).processing_key(), (beam or self.beam).key())
        with self._lock:
            return key in self._cache

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()
            self._path_cache.clear()

    def _paths(self, pose: CArmPose, quality: str) -> tuple[np.ndarray, np.ndarray]:
        """(water-equivalent path W, cortical-bone path B) in mm on the pose's ray grid: the CT's
        line integral (bones taken out) read as water, and the meshed bones. Cached per pose."""
        key = (pose.geometry_key(), quality)
        got = self._get(key, self._path_cache)
        if got is not None:
            return got
        if quality == "full":
            n = self.full_rays(pose)
            p = self.volume.project_fast(pose, n, parallel=self.parallel_full)
        elif quality == "preview":
            n = self.preview_rays_for(pose)
            p = self.preview_volume.project_fast(pose, n, parallel=self.parallel_preview, row_factor=1.0)
        else:
            raise ValueError(f"fluoroscopy quality: {quality!r} is not 'preview' or 'full'")
        p *= np.float32(1.0 / MU_WATER_60KEV_PER_MM)
        b = self.bone_path(pose, n, quality) if self.bones is not None else np.zeros_like(p)
        np.subtract(p, b, out=p)  # the bone's length replaces water
        np.maximum(p, 0.0, out=p)
        self._put(key, (p, b), self._path_cache)
        return p, b

    def _pose_image(self, pose: CArmPose, quality: str, display: DisplaySettings, beam: Beam | None = None) -> _PoseImage:
        beam = beam or self.beam
        key = (pose.geometry_key(), quality, display.processing_key(), beam.key())
        img = self._get(key)
        if img is not None:
            return img
        t0 = time.perf_counter()
        water, bone = self._paths(pose, quality)
        model = beam.model()
        p = np.empty_like(water)
        XS.lut2_apply(water.ravel(), bone.ravel(), model.lut, XS.W_MAX_MM, XS.B_MAX_MM, p.reshape(-1))
        img = self._derive(pose, p, quality, display)
        img.water, img.bone, img.model = water, bone, model
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
        sel = np.ix_(central[::step], central[::step])
        region = p[sel][field[sel] > 0.5]  # not beyond the scan's cut end
        p_ref = float(np.median(region)) if region.size else float(np.median(p))
        maps = np.empty((4, n, n), dtype=np.float32)  # l_disp, prim, scatter, 1/sqrt(s)
        masked = np.empty((n, n), dtype=np.float32)
        IK.aec_signal(p, p_ref, field, maps[1], masked)
        pitch = pose.field_mm / n
        # scatter: a broad blur (sigma 30 mm at the detector) of the primary within the field,
        # weighted by the tissue it crossed (none from the direct beam: `IK.aec_signal`)
        scat_blur = blur_fast(masked, 30.0 / pitch)
        norm_blur = self._field_blur(pose, n, 30.0 / pitch)
        L = masked  # reuse the buffer
        IK.log_signal(maps[1], scat_blur, norm_blur, float(display.scatter_fraction), p_ref, maps[2], L, maps[3])
        # image processing of a clinical fluoroscope: dynamic range compression (a fraction of the
        # broad background is taken out), a middle-band (detail) boost and edge enhancement
        iso_px_mm = pitch * pose.source_to_isocenter_mm / pose.source_to_detector_mm
        # the values of interest: the direct beam past the skin and metal (an implant, a screw: far
        # denser than the AEC level) are left out, as a unit's exposure field recognition does, so
        # that neither stretches the compression's range nor the window over the anatomy
        sub = max(1, n // 160)
        ps = p[::sub, ::sub]
        inside = (field[::sub, ::sub] > 0.5) & (ps > DIRECT_BEAM_MAX) & (ps < p_ref + METAL_EXCESS)
        if inside.sum() < 16:
            inside = field[::sub, ::sub] > 0.5
        value_range = tuple(np.percentile(L[::sub, ::sub][inside], (0.1, 99.9))) if inside.sum() >= 16 else None
        maps[0] = multiscale_process(L, p_ref, iso_px_mm, display, value_range)
        L_disp = maps[0]
        # automatic brightness/contrast: percentiles of the central part of the field (where the
        # anatomy of interest is), widened so that the periphery may burn out as on a real C-arm
        cs = c[::sub]
        rr = (cs[:, None] - 0.5) ** 2 + (cs[None, :] - 0.5) ** 2
        Ls = L_disp[::sub, ::sub]
        vals = Ls[inside & (rr <= display.auto_region ** 2)]
        if vals.size < 16:
            vals = Ls.ravel()
        lo, hi = np.percentile(vals, display.auto_percentiles)
        w = max(hi - lo, 1e-3)
        lo, hi = lo - display.auto_margin[0] * w, hi + display.auto_margin[1] * w
        # automatic brightness: when the whole field does not fit a window of at most
        # `max_window_factor` times the centre's own range, the window is centred on the centre
        # (its median at `brightness_target`) and the periphery may burn out, as on a real C-arm
        centre = Ls[inside & (rr <= display.brightness_region ** 2)]
        if centre.size >= 16:
            c_lo, c_hi = np.percentile(centre, (1.0, 99.0))
            w_max = max(display.max_window_factor * (c_hi - c_lo), display.min_window)
            if hi - lo > w_max:
                t = 1.0 - display.brightness_target ** display.gamma
                lo = float(np.median(centre)) - t * w_max
                hi = lo + w_max
        if hi - lo < display.min_window:  # keep a clinical display's contrast: do not over-stretch
            mid = float(np.median(vals))
            lo, hi = mid - 0.55 * display.min_window, mid + 0.45 * display.min_window
        return _PoseImage(p, n, p_ref, (float(lo), float(hi)), maps, 0.0)

    # ---- public --------------------------------------------------------------------------------
    def refine(self, pose: CArmPose, display: DisplaySettings | None = None, beam: Beam | None = None) -> float:
        """Compute (and cache) the full-quality anatomy image of a pose; returns the time taken (ms)."""
        t0 = time.perf_counter()
        self._pose_image(pose, "full", display or DisplaySettings(), beam)
        return 1000.0 * (time.perf_counter() - t0)

    def anatomy_paths(self, pose: CArmPose, quality: str = "full") -> tuple[np.ndarray, np.ndarray]:
        """(water-equivalent path, cortical-bone path) in mm on the pose's ray grid."""
        return self._paths(pose, quality)

    def anatomy_line_integral(self, pose: CArmPose, quality: str = "full") -> np.ndarray:
        """The attenuation of the detected signal, -ln(S / S_open), through the anatomy on the
        pose's ray grid (n x n, n <= detector_pixels), for the renderer's beam."""
        return self._pose_image(pose, quality, DisplaySettings()).p_rays

    def water_thickness_mm(self, pose: CArmPose, quality: str = "auto", beam: Beam | None = None) -> float:
        """Water-equivalent patient thickness behind the AEC region (for the dose model): the water
        that attenuates the detected signal as much as the AEC region's median path does."""
        q = self._choose_quality(pose, quality)
        img = self._pose_image(pose, q, DisplaySettings(), beam)
        return img.model.water_equivalent_mm(img.p_ref)

    def aec_paths(self, pose: CArmPose, quality: str = "auto") -> tuple[float, float]:
        """Median (water, bone) path (mm) over the AEC region (the central 30 % of the field)."""
        w, b = self._paths(pose, self._choose_quality(pose, quality))
        n = w.shape[0]
        c = (np.arange(n) + 0.5) / n
        central = np.flatnonzero(np.abs(c - 0.5) <= 0.15)
        step = max(1, len(central) // 48)
        sel = np.ix_(central[::step], central[::step])
        return float(np.median(w[sel])), float(np.median(b[sel]))

    def _choose_quality(self, pose: CArmPose, quality: str, display: DisplaySettings | None = None,
                        beam: Beam | None = None) -> str:
        if quality == "auto":
            return "full" if self.has_full(pose, display, beam) else "preview"
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

    def _cut_ends(self) -> tuple[float | None, float | None] | None:
        """The scan's cut-end planes (z, RAS mm) past which the volume is mirrored, or None."""
        planes = self.volume.info.get("mirror_planes_z_mm") or {}
        lo, hi = planes.get("lo"), planes.get("hi")
        return None if lo is None and hi is None else (lo, hi)

    def beyond_scan(self, pose: CArmPose, n: int | None = None) -> np.ndarray | None:
        """Boolean (n, n): pixels whose ray crosses the plane through the isocentre (across the
        beam) past a cut end of the scan, where the volume holds only its mirrored continuation
        (`AttenuationVolume.from_anatomy`'s pad_cut_ends_mm). The image shows them behind a shutter:
        no anatomy is made up there (a mirrored clavicle, a second pelvis). None when the scan
        ends in air at both ends (nothing mirrored)."""
        ends = self._cut_ends()
        if ends is None:
            return None
        lo, hi = ends
        n = pose.detector_pixels if n is None else int(n)
        # the detector is parallel to that plane: a pixel's point on it is the pixel's centre scaled
        # towards the source by k, so its z is linear in the pixel's row and column
        origin, du, dv = pose.detector_pixel_grid(n)
        src, beam = pose.source_mm, pose.beam_direction
        k = float((pose.effective_isocenter_mm - src) @ beam) / float((origin - src) @ beam)
        idx = np.arange(n, dtype=np.float64)
        z = (src[2] + k * (origin[2] - src[2])) + k * (idx[:, None] * dv[2] + idx[None, :] * du[2])
        out = np.zeros((n, n), dtype=bool)
        if lo is not None:
            out |= z < lo
        if hi is not None:
            out |= z > hi
        return out

    def _masks(self, key: tuple, pose: CArmPose, make) -> np.ndarray:
        """A field mask of this pose from the cache (bounded), made on a miss by `make()`; with cut
        scan ends the masks depend on the pose's geometry, so it joins the key."""
        key = key + ((pose.geometry_key(),) if self._cut_ends() is not None else ())
        m = self._exposed_cache.get(key)
        if m is None:
            m = make()
            self._exposed_cache[key] = m
            while len(self._exposed_cache) > EXPOSED_CACHE_SIZE:
                self._exposed_cache.popitem(last=False)
        return m

    def _field_float(self, pose: CArmPose, n: int) -> np.ndarray:
        """The field (1 inside, 0 outside) for the AEC, the scatter and the window: its shape, less
        the pixels beyond the scan's cut ends (`beyond_scan`)."""
        def make():
            f = pose.field_mask(n)
            beyond = self.beyond_scan(pose, n)
            return (f if beyond is None else f & ~beyond).astype(np.float32)

        return self._masks(("field", n, pose.field_shape), pose, make)

    def _field_blur(self, pose: CArmPose, n: int, sigma_px: float) -> np.ndarray:
        return self._masks(("field_blur", n, pose.field_shape, round(sigma_px, 3)), pose,
                           lambda: blur_fast(self._field_float(pose, n), sigma_px))

    def _exposed(self, pose: CArmPose) -> np.ndarray:
        """Per display pixel: 2 exposed, 1 behind a shutter (the collimator's, or beyond the scan's
        cut end), 0 outside the field."""
        def make():
            e = np.where(pose.exposed_mask(), 2, np.where(pose.field_mask(), 1, 0)).astype(np.uint8)
            beyond = self.beyond_scan(pose)
            if beyond is not None:
                e[beyond & (e == 2)] = 1
            return e

        return self._masks(("exposed", pose.detector_pixels, pose.collimation, pose.field_shape), pose, make)

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
                sub = IK.gaussian_blur(sub, display.psf_sigma_px)
            if display.edge_enhance > 0:
                # darken edges only (no bright halo around a dense needle): steel beyond a line
                # integral of 6 is black anyway, so the enhancement sees at most that
                capped = np.minimum(sub, np.float32(6.0))
                sub = sub + np.float32(display.edge_enhance) * np.maximum(capped - IK.gaussian_blur(capped, sig_e), 0.0)
            p_add[r0:r1, c0:c1] = sub

    def render(self, pose: CArmPose, needles: Sequence[NeedleModel] = (), contrast: ContrastScene | None = None,
               time_s: float = 0.0, quality: str = "auto", quanta_per_pixel: float | None = None,
               display: DisplaySettings | None = None, rng: np.random.Generator | None = None,
               beam: Beam | None = None) -> FluoroFrame:
        """One fluoroscopy frame.

        quality: "auto" (full if refined for this pose, else the preview), "preview" or "full".
        quanta_per_pixel: detected quanta per pixel per pulse at the AEC level (`Exposure.quanta_per_pixel`);
        None: the default exposure for this pose; 0: no quantum noise."""
        display = display or DisplaySettings()
        timings = {}
        t0 = time.perf_counter()
        q = self._choose_quality(pose, quality, display, beam)
        img = self._pose_image(pose, q, display, beam)
        t1 = time.perf_counter()
        timings["anatomy_ms"] = 1000.0 * (t1 - t0)
        n = pose.detector_pixels
        p_add = np.zeros((n, n), dtype=np.float32)
        # each layer gets the detector blur and edge enhancement on its own boxes (a needle far from
        # the contrast does not make one big box)
        model = img.model
        boxes = add_needles(p_add, pose, needles)
        for b in merge_boxes(boxes, 0, n):  # steel line integrals at 60 keV -> mm of steel -> extra attenuation
            XS.layer_attenuation(p_add, 1.0 / MU_STEEL_60KEV_PER_MM, model.lut_steel, XS.S_MAX_MM, img.water, img.bone, *b)
        self._process_overlay(pose, p_add, boxes, display)
        if contrast:
            p_con = np.zeros((n, n), dtype=np.float32)
            cboxes = add_contrast(p_con, pose, contrast, time_s)
            for b in merge_boxes(cboxes, 0, n):  # iodine line integrals at 60 keV -> mg/cm2
                XS.layer_attenuation(p_con, IODINE_MG_CM2_PER_LINE_INTEGRAL, model.lut_iodine, XS.I_MAX_MG_CM2,
                                     img.water, img.bone, *b)
            self._process_overlay(pose, p_con, cboxes, display)
            for (r0, r1, c0, c1) in merge_boxes(cboxes, int(math.ceil(3 * display.psf_sigma_px)) + 12, n):
                p_add[r0:r1, c0:c1] += p_con[r0:r1, c0:c1]
        t2 = time.perf_counter()
        timings["overlay_ms"] = 1000.0 * (t2 - t1)
        water_mm = img.model.water_equivalent_mm(img.p_ref)
        if quanta_per_pixel is None:
            quanta_per_pixel = compute_exposure(pose, water_mm).quanta_per_pixel
        window = display.window or img.window
        rng = rng or self._rng
        offset = int(rng.integers(0, self._noise.shape[0]))
        quanta = quanta_per_pixel * max(display.frames_averaged, 1.0)
        noise_scale = 1.0 / math.sqrt(quanta) if quanta > 0 else 0.0
        n = pose.detector_pixels
        out = np.empty((n, n), dtype=np.uint8)
        IK.compose_display(img.maps, p_add, self._exposed(pose), self._noise, offset, noise_scale,
                          float(window[0]), float(window[1] + display.shoulder * (window[1] - window[0])),
                          self.display_lut(display), float(display.shutter_level), out)
        timings["display_ms"] = 1000.0 * (time.perf_counter() - t2)
        timings["total_ms"] = 1000.0 * (time.perf_counter() - t0)
        return FluoroFrame(out, q, pose, (float(window[0]), float(window[1])), water_mm, float(quanta_per_pixel), timings)




def blur_fast(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of a float32 image; wide kernels run on a block-averaged copy (a power-of-two
    reduction keeping at least 4 pixels of sigma) and are bilinearly upsampled back. (With fewer
    the bilinear kinks every f pixels are steep enough for the display's detail enhancement to
    turn a smooth scatter field into a ladder of bands.)"""
    img = np.ascontiguousarray(img, dtype=np.float32)
    h, w = img.shape
    f = 1
    while sigma_px / (2 * f) >= 4.0 and h % (2 * f) == 0 and w % (2 * f) == 0 and h // (2 * f) >= 16:
        f *= 2
    if f == 1:
        return IK.gaussian_blur(img, sigma_px)
    small = np.empty((h // f, w // f), dtype=np.float32)
    IK.block_mean(img, f, small)
    small = IK.gaussian_blur(small, sigma_px / f)
    out = np.empty((1, h, w), dtype=np.float32)
    IK.upsample_bilinear(small[None], out)
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
