"""Simulated B-mode ultrasound (and colour Doppler) of an `Anatomy`.

    sim = UltrasoundSimulator(anatomy, ProbeSpec.linear())       # per anatomy, ~1-2 s: off the GUI thread
    frame = sim.render(pose, ScannerSettings(depth_mm=40, frequency_mhz=10), needle=NeedleGeometry(...))
    frame.display        # (H, W) uint8 B-mode for the screen (orientation marker on the left)
    frame.bmode_db       # (H, W) float32 echo level in dB incl. gain and TGC (before quantisation)
    frame.doppler_rgba   # (H, W, 4) uint8 colour-flow overlay (alpha 0 where no colour), or None
    frame.doppler_velocity_m_s  # (H, W) float32 velocity towards the probe, NaN where no colour
    frame.pixel_to_world([[u, v]]), frame.world_to_pixel(points), frame.image_to_world (4x4)
    frame.needle_visibility  # (tip_in_plane, tip_distance_to_plane_mm, shaft_fraction_in_plane)
    frame.tip_visible, frame.fov_mask(), frame.geometry (ImageGeometry), frame.grid (BeamGrid)

Frames, poses and pixel mapping: `simulator.core.probe` (ImageToProbe / ProbeToWorld as in PLUS).
`ScannerSettings` holds the knobs (depth, frequency, gain, TGC sliders, focus, dynamic range,
Doppler PRF/steer/box); `ScannerSettings.from_scenario(scenario.imaging.ultrasound)` converts the
scenario schema. `render(..., spec=ProbeSpec.curvilinear())` switches the probe per frame.

The model, per scan line (numba kernels in `ultrasound_kernels`, the same model in plain numpy in
`ultrasound_reference`): tissue classes sampled on the image plane with smooth (B-spline) boundaries
and 3 Gaussian-weighted elevation planes; per-tissue acoustic table (`ultrasound_tissue`: Z, alpha,
backscatter, structure textures - muscle and fat septa as angle-dependent sheets, nerve fascicles);
tissue-fixed complex speckle hashed from world position, integrated across the line width and the
slice; two-way attenuation; interface echoes R(theta) with a specular lobe around the 3-D boundary
normal plus a diffuse part; transmission product (bone and gas shadows); gas total reflection
with A-line reverberation and lung haze; the needle as a specular line reflector (brightest at
right angles to the beam, fading when steep) with reverberation tail and a faint bevel echo,
weighted by the elevation profile (an out-of-plane needle is a dot); point-spread function
(Gaussian axial, depth-dependent lateral); electronic noise; log compression with gain, TGC
(automatic soft-tissue compensation by default) and dynamic range; linear or curvilinear scan
conversion by a precomputed gather; colour Doppler from per-vessel flow fields (parabolic profile,
direction from the geodesic distance to the heart), wall filter, aliasing above PRF/2.

Precomputed once per anatomy: the acoustic code volume (CT gas / calcification), per-label fibre
axes, tissue textures (cached on disk), a twice-finer copy of small coarse phantoms
(`refine_small_anatomy`); per probe configuration: beam grid, PSF kernels, speckle calibration,
gather tables; per vessel on first Doppler use (or `prepare_doppler()`): its flow field.
Echo amplitudes are relative to a perfect specular reflector at normal incidence (0 dB). A
`render` call is thread-safe (one frame at a time per simulator; numba releases the GIL); the
returned arrays belong to the caller.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field, replace

import numpy as np

from simulator.core.anatomy import Anatomy
from simulator.core.tissue import Tissue
from simulator.core.probe import (
    BeamGrid,
    ImageGeometry,
    NeedleVisibility,
    ProbePose,
    ProbeSpec,
    needle_visibility,
)
from simulator.imaging import ultrasound_kernels as K
from simulator.imaging.ultrasound_tissue import (
    CALCIFICATION,
    GAS,
    TEX_FAT,
    TEX_MUSCLE,
    TEX_NERVE,
    Acoustic,
    AcousticTable,
    Textures,
    calcification_hu_thresholds,
    gas_hu_codes,
    make_textures,
)

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
GAS_HU = -400.0  # below this, gut / soft-tissue voxels hold gas


def refine_small_anatomy(anatomy: Anatomy, max_voxels: int = 40_000_000, sigma_voxels: float = 1.0) -> Anatomy:
    """A twice-finer copy of a small, isotropic, coarsely voxelised anatomy (an analytic phantom
    at 0.5 mm) with smooth region boundaries: each (structure, tissue) region's indicator is
    Gaussian-smoothed on the original grid and, near boundaries, the finer voxels take the region
    whose smoothed indicator is largest there. A cylinder of 8 voxels radius then stays round in
    the image instead of showing the facets of its digitisation. Other anatomies (a CT) are
    returned unchanged. The copy keeps the structures; its HU volume is a zero view (the acoustic
    codes are derived before refining, from the original)."""
    sp = np.asarray(anatomy.spacing_mm, dtype=np.float64)
    if anatomy.hu.size * 8 > max_voxels or sp.min() < 0.4 or sp.max() > 1.1 * sp.min():
        return anatomy
    from scipy import ndimage

    labels = np.asarray(anatomy.labels)
    tis = np.asarray(anatomy.tissue)
    present = np.zeros((int(labels.max()) + 1, 256), dtype=bool)
    for lab_id in np.unique(labels):
        present[lab_id, np.unique(tis[labels == lab_id])] = True
    pl, pt = np.nonzero(present)
    if len(pl) > 64:
        return anatomy
    lut = np.zeros(present.shape, np.uint8)
    lut[pl, pt] = np.arange(len(pl))
    region = lut[labels, tis]
    fine = region.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    band = ndimage.maximum_filter(region, size=3) != ndimage.minimum_filter(region, size=3)
    idx = np.argwhere(band)
    if len(idx):
        off = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)])
        fidx = (idx[:, None, :] * 2 + off[None, :, :]).reshape(-1, 3)
        coords = (fidx / 2.0 - 0.25).T  # fine voxel centres in coarse index units
        best = np.full(len(fidx), -1.0, np.float32)
        arg = fine[tuple(fidx.T)].copy()
        pad = int(math.ceil(3 * sigma_voxels)) + 2
        for r in np.unique(region[tuple(idx.T)]):
            mask = region == r
            near = ndimage.maximum_filter(mask, size=3)[tuple(idx.T)]  # band voxels touching r
            if not near.any():
                continue
            sel = np.repeat(near, 8)
            own = idx[near]
            lo = np.maximum(own.min(0) - pad, 0)
            hi = np.minimum(own.max(0) + pad + 1, region.shape)
            box = tuple(slice(a, b) for a, b in zip(lo, hi))
            sm = ndimage.gaussian_filter(mask[box].astype(np.float32), sigma_voxels, truncate=3.0)
            v = ndimage.map_coordinates(sm, coords[:, sel] - lo[:, None], order=1, mode="nearest")
            cur = best[sel]
            better = v > cur
            where = np.flatnonzero(sel)[better]
            best[where] = v[better]
            arg[where] = r
        fine[tuple(fidx.T)] = arg
    tissue = pt.astype(np.uint8)[fine]
    lab = pl.astype(np.uint16)[fine]
    return Anatomy(
        anatomy.name, np.broadcast_to(np.int16(0), tissue.shape), tissue, lab, sp / 2.0, anatomy.origin_mm - sp / 4.0,
        structures=anatomy.structures, meshes=anatomy.meshes, source=dict(anatomy.source, refined_for_ultrasound=2),
        unknown_structures=anatomy.unknown_structures, contrast_enhanced=anatomy.contrast_enhanced,
    )


def acoustic_codes(tissue: np.ndarray, hu: np.ndarray) -> np.ndarray:
    """The acoustic code volume: tissue classes, with gas (bowel gas, air pockets: HU below
    GAS_HU in gut and soft-tissue classes) and calcification (HU above a per-class threshold
    outside bone) taken from the CT numbers. uint8, same shape."""
    t = np.asarray(tissue, dtype=np.uint8)
    codes = np.array(t, dtype=np.uint8, order="C", copy=True)
    h = np.asarray(hu)
    gas = gas_hu_codes()[t].astype(bool)
    gas &= h < GAS_HU
    codes[gas] = GAS
    calc = h > calcification_hu_thresholds()[t]
    codes[calc & ~gas] = CALCIFICATION
    return codes


# --------------------------------------------------------------------------------------------
# Settings, needle, frame
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScannerSettings:
    """Knobs of the scanner. None means the probe's default (resolved by `resolve`)."""

    depth_mm: float | None = None
    frequency_mhz: float | None = None
    gain_db: float = 0.0
    focus_mm: float | None = None  # transmit focus depth (default: half the depth)
    dynamic_range_db: float = 60.0
    tgc_db: tuple[float, ...] = ()  # slider values (dB) at equally spaced depths, top to bottom
    tgc_alpha_db_cm_mhz: float | None = None  # depth compensation: None automatic, 0 off
    image_shape: tuple[int, int] = (512, 512)
    marker_left: bool = True
    elevation_planes: int = 3  # 1, 3 or 5 Gaussian-weighted planes across the slice
    beam_lines: int | None = None  # default: the probe's n_lines
    beam_samples: int | None = None  # default: ~2.4 per axial FWHM, at most the image height
    doppler: bool = False
    doppler_frequency_mhz: float | None = None  # default: 0.6 x B-mode frequency (within range)
    prf_hz: float = 6000.0
    wall_filter_m_s: float | None = None  # default: 6 % of the Nyquist velocity
    doppler_steer_deg: float = 0.0  # linear probes: steer the colour lines in plane
    doppler_box_mm: tuple[float, float, float, float] | None = None  # (x_min, x_max, depth_min, depth_max), probe frame
    time_s: float | None = None  # arterial pulsatility when given; constant flow otherwise
    noise_db: float = -140.0  # electronic noise level before TGC

    @classmethod
    def from_scenario(cls, us, **overrides) -> "ScannerSettings":
        """From the scenario schema's `UltrasoundSettings` (probe pose fields are not settings)."""
        kw = dict(
            depth_mm=us.depth_mm,
            frequency_mhz=us.frequency_mhz,
            gain_db=us.gain_db,
            focus_mm=us.focus_mm,
            doppler=us.doppler,
        )
        kw.update(overrides)
        return cls(**kw)

    def resolve(self, spec: ProbeSpec, where: str = "ScannerSettings") -> "ScannerSettings":
        depth = spec.check_depth(spec.default_depth_mm if self.depth_mm is None else self.depth_mm, where)
        f = spec.check_frequency(spec.default_frequency_mhz if self.frequency_mhz is None else self.frequency_mhz, where)
        focus = 0.5 * depth if self.focus_mm is None else float(self.focus_mm)
        if not (0 < focus <= spec.max_depth_mm):
            raise ValueError(f"{where}: field 'focus_mm' = {self.focus_mm} must be within 0-{spec.max_depth_mm} mm")
        if not (10.0 <= self.dynamic_range_db <= 120.0):
            raise ValueError(f"{where}: field 'dynamic_range_db' = {self.dynamic_range_db} must be within 10-120 dB")
        if self.elevation_planes not in (1, 3, 5):
            raise ValueError(f"{where}: field 'elevation_planes' = {self.elevation_planes} must be 1, 3 or 5")
        if not all(math.isfinite(float(x)) for x in self.tgc_db):
            raise ValueError(f"{where}: field 'tgc_db' = {self.tgc_db!r} must hold finite numbers")
        if self.prf_hz <= 0:
            raise ValueError(f"{where}: field 'prf_hz' = {self.prf_hz} must be positive")
        fd = self.doppler_frequency_mhz
        if fd is None:
            lo, hi = spec.frequency_range_mhz
            fd = min(max(0.6 * f, lo), hi)
        h, w = (int(self.image_shape[0]), int(self.image_shape[1]))
        if h < 16 or w < 16 or h > 4096 or w > 4096:
            raise ValueError(f"{where}: field 'image_shape' = {self.image_shape!r} must be 16-4096 pixels each way")
        return replace(self, depth_mm=depth, frequency_mhz=f, focus_mm=focus, doppler_frequency_mhz=float(fd), image_shape=(h, w))

    def nyquist_velocity_m_s(self) -> float:
        """Highest unaliased velocity: PRF c / (4 f0)."""
        f0 = (self.doppler_frequency_mhz or 5.0) * 1e6
        return self.prf_hz * 1540.0 / (4.0 * f0)


@dataclass(frozen=True)
class NeedleGeometry:
    """A straight needle for imaging: tip, unit axis pointing towards the tip (direction of
    advance), shaft length behind the tip, outer diameter (22 G = 0.72 mm), optional bevel normal
    (the direction the bevel opening faces; a bevel facing the probe makes the tip brighter)."""

    tip_mm: np.ndarray
    axis: np.ndarray
    length_mm: float = 150.0
    diameter_mm: float = 0.72
    bevel_normal: np.ndarray | None = None

    def __post_init__(self):
        a = np.asarray(self.axis, dtype=np.float64).reshape(3)
        n = float(np.linalg.norm(a))
        if n < 1e-9:
            raise ValueError(f"NeedleGeometry: field 'axis' must not be the zero vector, got {self.axis!r}")
        object.__setattr__(self, "axis", a / n)
        object.__setattr__(self, "tip_mm", np.asarray(self.tip_mm, dtype=np.float64).reshape(3))
        if self.diameter_mm <= 0 or self.length_mm <= 0:
            raise ValueError(
                f"NeedleGeometry: fields 'diameter_mm' ({self.diameter_mm}) and 'length_mm' ({self.length_mm}) must be positive"
            )

    @classmethod
    def from_points(cls, hub_mm, tip_mm, diameter_mm: float = 0.72, bevel_normal=None) -> "NeedleGeometry":
        hub = np.asarray(hub_mm, dtype=np.float64)
        tip = np.asarray(tip_mm, dtype=np.float64)
        return cls(tip, tip - hub, float(np.linalg.norm(tip - hub)), diameter_mm, bevel_normal)


@dataclass
class UltrasoundFrame:
    bmode_db: np.ndarray  # (H, W) float32, 20 log10(envelope) + gain + TGC; `floor_db` outside the sector
    display: np.ndarray  # (H, W) uint8
    doppler_rgba: np.ndarray | None  # (H, W, 4) uint8, alpha 0 where no colour
    doppler_velocity_m_s: np.ndarray | None  # (H, W) float32, NaN where no colour; + = towards the probe
    envelope_beam: np.ndarray  # (n_lines, n_samples) float32 linear envelope before TGC
    tissue_beam: np.ndarray  # (n_lines, n_samples) uint8 acoustic code on the central plane
    geometry: ImageGeometry
    grid: BeamGrid
    pose: ProbePose
    settings: ScannerSettings  # resolved
    needle_visibility: NeedleVisibility | None
    tgc_db: np.ndarray  # (n_samples,) gain + TGC + depth compensation applied
    timings_ms: dict = field(default_factory=dict)
    floor_db: float = -300.0

    @property
    def image_to_world(self) -> np.ndarray:
        return self.pose.probe_to_world() @ self.geometry.image_to_probe()

    def pixel_to_world(self, uv) -> np.ndarray:
        return self.geometry.pixel_to_world(uv, self.pose)

    def world_to_pixel(self, points_world) -> np.ndarray:
        """(N, 3): column, row, signed elevation distance (mm) from the image plane."""
        return self.geometry.world_to_pixel(points_world, self.pose)

    def fov_mask(self) -> np.ndarray:
        return self.geometry.fov_mask()

    @property
    def tip_visible(self) -> bool | None:
        return None if self.needle_visibility is None else bool(self.needle_visibility.tip_in_plane)


# --------------------------------------------------------------------------------------------
# Model constants (documented choices)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelParams:
    specular_lobe_deg: float = 12.0  # tissue interfaces: Gaussian specular lobe sigma
    interface_coherent: float = 0.6  # interface echo = coherent part + random (rough) part
    interface_random: float = 0.6
    coupling_mm: float = 3.0  # air within this depth under a linear face counts as coupling gel
    coupling_convex_mm: float = 10.0  # the same for a convex face, pressed into the skin

    def coupling_for(self, spec: ProbeSpec) -> float:
        return self.coupling_convex_mm if spec.is_curvilinear else self.coupling_mm
    probe_face_reflection: float = 0.12  # for A-line reverberation
    n_alines: int = 6
    lung_haze: float = 0.002  # relative level of the reverberant haze below the pleura
    lung_haze_decay_mm: float = 15.0
    needle_lobe_deg: float = 22.0  # needle specular lobe sigma (angle off perpendicular incidence)
    needle_diffuse: float = 0.02  # angle-independent part of the shaft echo
    needle_level: float = 0.12  # echo of the shaft at perpendicular incidence (a thin cylinder
    # returns far less than a plane: its reflection spreads cylindrically)
    needle_reverb: float = 0.25  # amplitude ratio of successive reverberation echoes
    needle_reverb_count: int = 5
    needle_tip_level: float = 0.03  # bevel/tip echo relative to a perfect reflector
    white_db: float = -18.0  # echo level shown white at 0 dB gain
    speckle_cell_wavelengths: float = 1.0  # texture lattice cell in wavelengths
    speckle_planes: int = 2  # speckle evaluations across the slice
    speckle_lateral_cells: float = 1.6  # lattice cells one speckle evaluation covers across a line
    soft_alpha_default: float = 0.7  # for automatic TGC under bone / gas
    septum_diffuse: float = 0.3  # muscle / fat septa: angle-independent part of their brightness


# --------------------------------------------------------------------------------------------
# Per-configuration precomputation
# --------------------------------------------------------------------------------------------
@dataclass
class _Config:
    spec: ProbeSpec
    settings: ScannerSettings
    grid: BeamGrid
    geometry: ImageGeometry
    cell_mm: float
    axial_kernel: np.ndarray
    lat_weights: np.ndarray  # (2K+1, ns) float32, unit sum per sample
    lat_half: np.ndarray  # (ns,) int64 taps used each side
    lat_peak: np.ndarray  # (ns,) centre weight
    lat_sigma_mm: np.ndarray  # (ns,)
    elev_z: np.ndarray  # (planes, ns) float32 mm
    elev_w: np.ndarray  # (planes,) float32
    spk_scale: np.ndarray  # (ns,) float32
    g_idx: np.ndarray
    g_fl: np.ndarray
    g_fs: np.ndarray
    noise_re: np.ndarray
    noise_im: np.ndarray
    buffers: dict
    speckle_stride: int = 1
    line_order: np.ndarray = None  # thread-balanced order of the lines
    sub_n: np.ndarray = None  # (ns,) lateral speckle sub-samples per beam sample
    sub_step: np.ndarray = None  # (ns,) their spacing, mm
    spk_z: np.ndarray = None  # (planes, ns) elevation offsets of the speckle samples, mm
    spk_w: np.ndarray = None  # (planes, ns) their weights (sum 1)


def _config_key(spec: ProbeSpec, s: ScannerSettings):
    return (spec, s.depth_mm, s.frequency_mhz, s.focus_mm, s.image_shape, s.marker_left, s.elevation_planes,
            s.beam_lines, s.beam_samples)


def _gather_tables(grid: BeamGrid, geom: ImageGeometry):
    """Per pixel: flat index s0 * n_lines + l0 of the top-left beam sample (-1 outside the sector)
    and the bilinear fractions along lines and samples."""
    h, w = geom.shape
    v, u = np.mgrid[0:h, 0:w]
    pp = geom.pixel_to_probe(np.stack([u.ravel(), v.ravel()], axis=1))
    inside = geom.spec.fov_contains(pp, grid.depth_mm)
    ls = grid.probe_to_beam(pp)
    nl, ns = grid.n_lines, grid.n_samples
    lf = np.clip(ls[:, 0], 0.0, nl - 1.0)
    sf = np.clip(ls[:, 1], 0.0, ns - 1.0)
    l0 = np.minimum(np.floor(lf).astype(np.int64), nl - 2)
    s0 = np.minimum(np.floor(sf).astype(np.int64), ns - 2)
    idx = np.where(inside, s0 * nl + l0, -1).astype(np.int64)
    return idx, (lf - l0).astype(np.float32), (sf - s0).astype(np.float32)


def _elevation_nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    if n == 1:
        return np.zeros(1), np.ones(1)
    x, w = np.polynomial.hermite_e.hermegauss(n)
    order = np.argsort(np.abs(x), kind="stable")
    x, w = x[order], w[order]
    cut = math.sqrt(2.0 * math.log(10.0))  # profile is cut at -20 dB
    x = np.clip(x, -0.98 * cut, 0.98 * cut)
    return x, w / w.sum()


# --------------------------------------------------------------------------------------------
# The simulator
# --------------------------------------------------------------------------------------------
class UltrasoundSimulator:
    """B-mode (and colour Doppler) of one anatomy. See the module docstring."""

    def __init__(
        self,
        anatomy: Anatomy,
        spec: ProbeSpec | None = None,
        *,
        seed: int = 20240611,
        acoustics: dict[int, Acoustic] | None = None,
        flow_speeds_m_s: dict[str, float] | None = None,
        params: ModelParams | None = None,
        refine: bool = True,
    ):
        self.spec = spec or ProbeSpec.linear()
        self.params = params or ModelParams()
        self.seed = seed
        self.table = AcousticTable.build(acoustics)
        codes = acoustic_codes(anatomy.tissue, anatomy.hu)
        refined = refine_small_anatomy(anatomy) if refine else anatomy
        if refined is not anatomy:
            # Codes of the refined grid: the refined tissue, with the gas / calcification
            # substitutions of the original voxel each fine voxel came from kept where the tissue
            # is unchanged.
            coarse = codes.repeat(2, 0).repeat(2, 1).repeat(2, 2)
            coarse_tissue = np.asarray(anatomy.tissue).repeat(2, 0).repeat(2, 1).repeat(2, 2)
            codes = np.where(coarse_tissue == refined.tissue, coarse, refined.tissue).astype(np.uint8)
            del coarse, coarse_tissue
        self.anatomy = refined
        self.codes = np.ascontiguousarray(codes)
        self.labels = np.ascontiguousarray(refined.labels, dtype=np.uint16)
        self.spacing = np.asarray(refined.spacing_mm, dtype=np.float64)
        self.origin = np.asarray(refined.origin_mm, dtype=np.float64)
        self.textures: Textures = make_textures(seed)
        self.label_axes = self._label_axes()
        self._flow = None
        self._flow_speeds = flow_speeds_m_s
        self._configs: dict = {}
        self._lock = threading.Lock()

    # --- per-anatomy tables --------------------------------------------------------------------
    def _label_axes(self) -> np.ndarray:
        """Per label: two unit vectors perpendicular to the fibre / nerve axis (the structure's
        principal axis); label 0 and other structures use the superior-inferior axis."""
        from scipy import ndimage

        n = int(max(self.anatomy.structures.keys(), default=0)) + 1
        axes = np.zeros((n, 6))
        axes[:, 0] = 1.0  # e1 = x
        axes[:, 4] = 1.0  # e2 = y  (fibres along z)
        wanted = [s for s in self.anatomy.structures.values()
                  if self.table.texture[int(s.tissue)] in (TEX_MUSCLE, TEX_NERVE, TEX_FAT)]
        if not wanted:
            return axes
        objs = ndimage.find_objects(self.labels)
        for s in wanted:
            if s.id - 1 >= len(objs) or objs[s.id - 1] is None:
                continue
            sl = objs[s.id - 1]
            pts = np.argwhere(self.labels[sl] == s.id)
            if len(pts) < 10:
                continue
            if len(pts) > 200000:
                pts = pts[np.random.default_rng(0).choice(len(pts), 200000, replace=False)]
            xyz = (pts + np.array([x.start for x in sl])) * self.spacing
            cov = np.cov((xyz - xyz.mean(0)).T)
            evals, evecs = np.linalg.eigh(cov)
            a = evecs[:, -1]
            if evals[-1] < 1.5 * evals[-2]:
                a = np.array([0.0, 0.0, 1.0])  # no clear long axis
            ref = np.array([1.0, 0.0, 0.0]) if abs(a[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
            e1 = np.cross(a, ref)
            e1 /= np.linalg.norm(e1)
            e2 = np.cross(a, e1)
            axes[s.id, :3] = e1
            axes[s.id, 3:] = e2
        return axes

    def add_nerve(self, points_mm, radius_mm: float, name: str = "nerve") -> int:
        """Paint a nerve given as a polyline with a radius (scenario targets: CT segmentations have
        no nerves) into the simulator's tissue, where the anatomy has fat, muscle, soft tissue or
        skin, with its own fibre axis (the polyline's principal direction) so its fascicles run
        along it. Returns the label id used. The anatomy itself is not modified."""
        pts = np.atleast_2d(np.asarray(points_mm, dtype=np.float64))
        if pts.shape[1] != 3 or len(pts) < 2 or not np.all(np.isfinite(pts)):
            raise ValueError(f"add_nerve: field 'points_mm' needs two or more 3-D points, got {points_mm!r}")
        if not (0.0 < radius_mm <= 20.0):
            raise ValueError(f"add_nerve: field 'radius_mm' = {radius_mm} must be within 0-20 mm")
        with self._lock:
            if self.labels is self.anatomy.labels or np.shares_memory(self.labels, self.anatomy.labels):
                self.labels = self.labels.copy()
            lid = len(self.label_axes)
            if lid > np.iinfo(np.uint16).max:
                raise ValueError(f"add_nerve: too many structures to add {name!r}")
            axis = pts[-1] - pts[0]
            if len(pts) > 2:
                c = pts - pts.mean(axis=0)
                axis = np.linalg.eigh(c.T @ c)[1][:, -1]
            axis = axis / max(float(np.linalg.norm(axis)), 1e-9)
            ref = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
            e1 = np.cross(axis, ref)
            e1 /= np.linalg.norm(e1)
            self.label_axes = np.vstack([self.label_axes, np.r_[e1, np.cross(axis, e1)]])
            soft = np.zeros(256, bool)
            for t in (Tissue.FAT, Tissue.MUSCLE, Tissue.SOFT_TISSUE, Tissue.SKIN, Tissue.NERVE, Tissue.GEL):
                soft[int(t)] = True
            for p0, p1 in zip(pts[:-1], pts[1:]):
                lo = np.floor((np.minimum(p0, p1) - radius_mm - self.origin) / self.spacing).astype(int)
                hi = np.ceil((np.maximum(p0, p1) + radius_mm - self.origin) / self.spacing).astype(int) + 1
                lo = np.clip(lo, 0, np.array(self.codes.shape))
                hi = np.clip(hi, 0, np.array(self.codes.shape))
                if np.any(hi <= lo):
                    continue
                g = [self.origin[a] + np.arange(lo[a], hi[a]) * self.spacing[a] for a in range(3)]
                X, Y, Z = np.meshgrid(*g, indexing="ij")
                q = np.stack([X, Y, Z], axis=-1) - p0
                d = p1 - p0
                t = np.clip((q @ d) / max(float(d @ d), 1e-12), 0.0, 1.0)
                dist = np.linalg.norm(q - t[..., None] * d, axis=-1)
                box = tuple(slice(a, b) for a, b in zip(lo, hi))
                m = (dist <= radius_mm) & soft[self.codes[box]]
                self.codes[box][m] = int(Tissue.NERVE)
                self.labels[box][m] = lid
            return lid

    def _flow_cache(self):
        if self._flow is None:
            from simulator.imaging.ultrasound_flow import FlowFieldCache

            self._flow = FlowFieldCache(self.anatomy, self._flow_speeds)
        return self._flow

    def prepare_doppler(self, structure_ids=None) -> None:
        """Build the vessels' flow fields ahead of time (all vessels by default); otherwise each
        is built the first time a Doppler frame shows it. Safe to call from a worker thread."""
        from simulator.imaging.ultrasound_flow import vessel_ids

        with self._lock:
            self._flow_cache().ensure(vessel_ids(self.anatomy) if structure_ids is None else structure_ids)

    def flow_fields(self):
        """The packed flow fields built so far (all vessels after `prepare_doppler()`)."""
        return self._flow_cache().packed()

    # --- per-configuration tables ---------------------------------------------------------------
    def _config(self, spec: ProbeSpec, s: ScannerSettings) -> _Config:
        key = _config_key(spec, s)
        cfg = self._configs.get(key)
        if cfg is not None:
            return cfg
        h, w = s.image_shape
        nl = int(s.beam_lines or spec.n_lines)
        # Beam samples: about 2.4 per axial FWHM (the envelope's Nyquist rate with margin), at most
        # one per image row.
        ns = int(s.beam_samples or min(h, max(256, math.ceil(2.4 * s.depth_mm / spec.axial_fwhm_mm(s.frequency_mhz)))))
        grid = BeamGrid(spec, s.depth_mm, nl, ns)
        geom = ImageGeometry.for_probe(spec, s.depth_mm, (h, w), s.marker_left)
        f = s.frequency_mhz
        dr = grid.dr_mm
        depths = grid.sample_depths_mm()
        # Axial PSF: Gaussian envelope of the configured FWHM (peak 1).
        sig_ax = spec.axial_fwhm_mm(f) / FWHM_PER_SIGMA
        ka = max(1, int(math.ceil(3.0 * sig_ax / dr)))
        j = np.arange(-ka, ka + 1)
        axial = np.exp(-0.5 * (j * dr / sig_ax) ** 2).astype(np.float32)
        # Lateral PSF per depth, in lines; unit sum (a horizontal line target keeps its amplitude).
        lat_sigma_mm = spec.lateral_fwhm_mm(depths, f, s.focus_mm) / FWHM_PER_SIGMA
        sig_lines = lat_sigma_mm / grid.lateral_spacing_mm()
        kl = int(min(32, max(1, math.ceil(3.0 * float(sig_lines.max())))))
        k = np.arange(-kl, kl + 1)[:, None]
        half_width = np.clip(np.ceil(3.0 * sig_lines), 1, kl).astype(np.int64)
        wts = np.exp(-0.5 * (k / np.maximum(sig_lines[None, :], 1e-3)) ** 2)
        wts[np.abs(k) > half_width[None, :]] = 0.0
        wts /= wts.sum(axis=0, keepdims=True)
        lat_weights = np.ascontiguousarray(wts, dtype=np.float32)
        # Elevation planes.
        nodes, weights = _elevation_nodes(s.elevation_planes)
        sig_e = spec.elevation_sigma_mm(depths, f)
        elev_z = (nodes[:, None] * sig_e[None, :]).astype(np.float32)
        idx, fl, fs = _gather_tables(grid, geom)
        rng = np.random.default_rng(self.seed + 7)
        noise_re = rng.normal(size=(ns, nl)).astype(np.float32) / math.sqrt(2)
        noise_im = rng.normal(size=(ns, nl)).astype(np.float32) / math.sqrt(2)
        buffers = {
            "code": np.zeros((nl, ns), np.uint8),
            "bsc": np.zeros((nl, ns), np.float32),
            "xre": np.zeros((nl, ns), np.float32),
            "xim": np.zeros((nl, ns), np.float32),
            "ore": np.zeros((ns, nl), np.float32),
            "oim": np.zeros((ns, nl), np.float32),
            "att": np.zeros((nl, ns), np.float32),
            "alive": np.zeros(nl, np.uint8),
        }
        cfg = _Config(
            spec, s, grid, geom, self.params.speckle_cell_wavelengths * spec.wavelength_mm(f), axial,
            lat_weights, half_width, lat_weights[kl].copy(), lat_sigma_mm, elev_z, weights.astype(np.float32),
            np.ones(ns, np.float32), idx, fl, fs, noise_re, noise_im, buffers,
        )
        cfg.speckle_stride = 2 if cfg.cell_mm >= 1.4 * grid.dr_mm else 1
        cfg.line_order = K.block_interleaved_order(nl)
        spacing = grid.lateral_spacing_mm()
        cfg.sub_n = np.clip(np.ceil(spacing / (self.params.speckle_lateral_cells * cfg.cell_mm) - 0.05), 1, 4).astype(np.int64)
        cfg.sub_step = (spacing / cfg.sub_n).astype(np.float64)
        # Speckle across the slice: planes one lattice cell apart, Gaussian-weighted by the
        # elevation profile (the field then decorrelates over ~3 cells of elevational motion).
        n_sp = self.params.speckle_planes
        zk = (np.arange(n_sp) - 0.5 * (n_sp - 1)) * cfg.cell_mm
        sig = np.maximum(spec.elevation_sigma_mm(depths, f), 1e-3)
        wz = np.exp(-0.5 * (zk[:, None] / sig[None, :]) ** 2)
        cfg.spk_z = np.ascontiguousarray(np.broadcast_to(zk[:, None], wz.shape), dtype=np.float64)
        cfg.spk_w = np.ascontiguousarray(wz / wz.sum(axis=0, keepdims=True))
        cfg.spk_scale = self._calibrate_speckle(cfg)
        if len(self._configs) > 16:
            self._configs.pop(next(iter(self._configs)))
        self._configs[key] = cfg
        return cfg

    def _texture_lines(self, cfg: _Config, pose: ProbePose):
        """Per line: world start + step, texture-lattice start + step, unit beam direction, and
        the lattice vector of 1 mm along the line's lateral direction."""
        grid = cfg.grid
        o_p, d_p = grid.lines_probe()
        start_p = o_p + 0.5 * grid.dr_mm * d_p
        rot = pose.rotation
        o_w = start_p @ rot.T + pose.center_mm
        beam_w = d_p @ rot.T
        d_w = beam_w * grid.dr_mm
        lat_p = np.c_[d_p[:, 1], -d_p[:, 0], np.zeros(len(d_p))]  # in-plane, perpendicular to the line
        lat = self.textures.speckle_rotation
        o_t = (o_w @ lat) / cfg.cell_mm
        d_t = (d_w @ lat) / cfg.cell_mm
        lat_t = ((lat_p @ rot.T) @ lat) / cfg.cell_mm
        elev_t = np.ascontiguousarray((pose.elevation @ lat) / cfg.cell_mm)
        return (o_w, d_w, beam_w, np.ascontiguousarray(o_t), np.ascontiguousarray(d_t), np.ascontiguousarray(lat_t),
                elev_t)

    def _calibrate_speckle(self, cfg: _Config) -> np.ndarray:
        """Per-depth scale making the filtered unit speckle's RMS envelope exactly 1 (so a
        tissue's backscatter level is its RMS echo level at every depth): average intensity of
        the speckle-only pipeline over a few arbitrary probe poses, smoothed in depth."""
        nl, ns = cfg.grid.n_lines, cfg.grid.n_samples
        rng = np.random.default_rng(12345)
        acc = np.zeros(ns)
        kl = (cfg.lat_weights.shape[0] - 1) // 2
        keep = slice(min(kl, nl // 4), nl - min(kl, nl // 4))
        b = cfg.buffers
        zeros = np.zeros((ns, nl), np.float32)
        env = np.zeros((ns, nl), np.float32)
        db = np.zeros((ns, nl), np.float32)
        tgc0 = np.zeros(ns, np.float32)
        n_pose = 4
        for _ in range(n_pose):
            from simulator.core.geometry import rotation_about_axis as rotation_matrix

            r = rotation_matrix(rng.normal(size=3), float(rng.uniform(0, 360)))
            pose = ProbePose.from_vectors(rng.uniform(-500, 500, 3), r[:, 1], r[:, 0])
            _, _, _, o_t, d_t, lat_t, elev_t = self._texture_lines(cfg, pose)
            K.speckle_beam(o_t, d_t, lat_t, cfg.sub_n, cfg.sub_step, elev_t, cfg.spk_z, cfg.spk_w, self.textures.speckle, self.textures.speckle_seed, cfg.speckle_stride, b["xre"], b["xim"])
            K.transpose(b["xre"], b["xim"], b["ore"], b["oim"])
            K.psf_envelope(b["ore"], b["oim"], cfg.axial_kernel, cfg.lat_weights, cfg.lat_half, zeros, zeros, 0.0, tgc0, env, db)
            acc += (env[:, keep].astype(np.float64) ** 2).mean(axis=1)
        inten = acc / n_pose
        x = (np.arange(ns) + 0.5) / ns * 2 - 1
        coef = np.polynomial.polynomial.polyfit(x, np.log(inten), 8)
        fit = np.exp(np.polynomial.polynomial.polyval(x, coef))
        return (1.0 / np.sqrt(fit)).astype(np.float32)

    # --- rendering ----------------------------------------------------------------------------
    def render(
        self,
        pose: ProbePose,
        settings: ScannerSettings | None = None,
        needle: NeedleGeometry | None = None,
        *,
        points_mm: np.ndarray | None = None,
        point_amplitudes: np.ndarray | float = 1.0,
        spec: ProbeSpec | None = None,
    ) -> UltrasoundFrame:
        """One frame. `points_mm`: optional point reflectors (world), each with a peak echo
        amplitude (relative to a perfect reflector, before attenuation) - wire targets."""
        spec = spec or self.spec
        s = (settings or ScannerSettings()).resolve(spec)
        with self._lock:
            return self._render(pose, s, spec, needle, points_mm, point_amplitudes)

    def _render(self, pose, s, spec, needle, points_mm, point_amplitudes) -> UltrasoundFrame:
        t0 = time.perf_counter()
        cfg = self._config(spec, s)
        grid = cfg.grid
        nl, ns = grid.n_lines, grid.n_samples
        b = cfg.buffers
        tab = self.table
        tx = self.textures
        p = self.params
        o_w, d_w, beam_w, o_t, d_t, lat_t, elev_t = self._texture_lines(cfg, pose)
        o_vox = np.ascontiguousarray((o_w - self.origin) / self.spacing)
        d_vox = np.ascontiguousarray(d_w / self.spacing)
        e_vox = np.ascontiguousarray(pose.elevation / self.spacing)
        o_w = np.ascontiguousarray(o_w)
        d_w = np.ascontiguousarray(d_w)
        timings = {}
        t1 = time.perf_counter()
        lf, sf, amp = self.splats(cfg, pose, s, needle, points_mm, point_amplitudes)
        has_extra = len(lf) > 0
        if has_extra:
            b["xre"].fill(0.0)
            b["xim"].fill(0.0)
            K.splat(lf, sf, amp, np.zeros_like(amp), b["xre"], b["xim"])
        t3 = time.perf_counter()
        timings["needle_ms"] = (t3 - t1) * 1e3
        step_db = (tab.alpha * (s.frequency_mhz * grid.dr_mm / 10.0)).astype(np.float32)
        half = (10.0 ** (-step_db / 20.0)).astype(np.float32)
        K.beam_lines(
            self.codes, self.labels,
            o_vox, d_vox, e_vox, o_w, d_w, np.ascontiguousarray(beam_w), 1.0 / self.spacing,
            cfg.elev_z, cfg.elev_w,
            tab.b_lo, tab.b_hi, tab.b_mean, tab.texture, p.septum_diffuse,
            self.label_axes, tx.muscle, 1.0 / tx.muscle_texel_mm, tx.nerve, 1.0 / tx.nerve_texel_mm,
            tx.fat, 1.0 / tx.fat_texel_mm,
            b["xre"], b["xim"], has_extra,
            o_t, d_t, lat_t, cfg.sub_n, cfg.sub_step, elev_t, cfg.spk_z, cfg.spk_w, cfg.spk_scale,
            cfg.speckle_stride, self.speckle_threshold(s),
            tx.speckle, tx.speckle_seed,
            tab.z, step_db, half, tab.gas, tab.soft, tab.roughness, tab.wall,
            int(round(p.coupling_for(spec) / grid.dr_mm)), p.soft_alpha_default * s.frequency_mhz * grid.dr_mm / 10.0,
            math.radians(p.specular_lobe_deg), p.interface_coherent, p.interface_random,
            p.probe_face_reflection, p.n_alines, p.lung_haze, p.lung_haze_decay_mm / grid.dr_mm,
            cfg.line_order, b["code"], b["bsc"], b["ore"], b["oim"], b["att"], b["alive"],
        )
        t4 = time.perf_counter()
        timings["lines_ms"] = (t4 - t3) * 1e3
        tgc = self._tgc_curve(cfg, s, b["att"], b["alive"])
        env = np.empty((ns, nl), np.float32)
        db = np.empty((ns, nl), np.float32)
        K.psf_envelope(b["ore"], b["oim"], cfg.axial_kernel, cfg.lat_weights, cfg.lat_half, cfg.noise_re, cfg.noise_im,
                       10 ** (s.noise_db / 20), tgc, env, db)
        t5 = time.perf_counter()
        timings["psf_ms"] = (t5 - t4) * 1e3
        h, w = s.image_shape
        out_db = np.empty((h, w), np.float32)
        out_u8 = np.empty((h, w), np.uint8)
        floor_db = -300.0
        K.scan_convert(db, cfg.g_idx, cfg.g_fl, cfg.g_fs, p.white_db, s.dynamic_range_db, _GREY_LUT,
                       floor_db, out_db, out_u8)
        t6 = time.perf_counter()
        timings["scan_convert_ms"] = (t6 - t5) * 1e3
        dop_rgba = dop_v = None
        if s.doppler:
            dop_v, dop_rgba = self._doppler(cfg, s, pose, o_vox, d_vox, beam_w)
        vis = None
        if needle is not None:
            vis = needle_visibility(needle.tip_mm, needle.axis, pose, spec, None, depth_mm=s.depth_mm,
                                    frequency_mhz=s.frequency_mhz, shaft_length_mm=needle.length_mm)
        timings["total_ms"] = (time.perf_counter() - t0) * 1e3
        return UltrasoundFrame(
            out_db, out_u8, dop_rgba, dop_v, env.T, b["code"].copy(), cfg.geometry, grid, pose, s, vis, tgc,
            timings, floor_db,
        )

    def speckle_threshold(self, s: ScannerSettings) -> float:
        """Speckle echoes weaker than this (40 dB under the electronic noise) are not computed."""
        return 10.0 ** ((s.noise_db - 40.0) / 20.0)

    def _tgc_curve(self, cfg: _Config, s: ScannerSettings, att: np.ndarray, alive: np.ndarray) -> np.ndarray:
        depths = cfg.grid.sample_depths_mm()
        tgc = np.full(len(depths), float(s.gain_db))
        if len(s.tgc_db):
            xs = np.linspace(0.0, s.depth_mm, len(s.tgc_db)) if len(s.tgc_db) > 1 else np.array([0.0])
            tgc += np.interp(depths, xs, np.asarray(s.tgc_db, dtype=np.float64))
        if s.tgc_alpha_db_cm_mhz is None:
            live = alive.astype(np.float32)
            n_live = float(live.sum())
            if n_live > 0:
                tgc += 2.0 * (live @ att) / n_live  # mean over the coupled lines
            else:
                tgc += 2.0 * self.params.soft_alpha_default * s.frequency_mhz * depths / 10.0
        else:
            tgc += 2.0 * s.tgc_alpha_db_cm_mhz * s.frequency_mhz * depths / 10.0
        return tgc.astype(np.float32)

    # --- needle and point reflectors -------------------------------------------------------------
    def _beam_dirs_probe(self, grid: BeamGrid, pts_probe: np.ndarray) -> np.ndarray:
        if grid.spec.is_curvilinear:
            v = pts_probe[:, :2] + np.array([0.0, grid.spec.radius_mm])
            v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)
            return np.column_stack([v, np.zeros(len(v))])
        out = np.zeros((len(pts_probe), 3))
        out[:, 1] = 1.0
        return out

    def splats(self, cfg: _Config, pose: ProbePose, s: ScannerSettings, needle: NeedleGeometry | None,
               points_mm=None, point_amplitudes=1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Point contributions (fractional line, fractional sample, amplitude) of the needle and
        of point reflectors, added into the scatter signal before propagation."""
        parts = []
        if needle is not None:
            parts += self._needle_splats(cfg, pose, needle, s)
        if points_mm is not None:
            parts += self._point_splats(cfg, pose, np.atleast_2d(np.asarray(points_mm, float)), point_amplitudes, s)
        if not parts:
            e = np.zeros(0)
            return e, e, e
        return tuple(np.ascontiguousarray(np.concatenate(x), dtype=np.float64) for x in zip(*parts))

    def _needle_splats(self, cfg: _Config, pose: ProbePose, needle: NeedleGeometry, s: ScannerSettings) -> list:
        """The shaft as a specular line reflector: per point, angle-dependent amplitude (brightest
        when the beam meets the shaft at right angles), weighted by the elevation profile, with
        reverberation echoes below it; then the bevel as a faint point at the tip."""
        grid = cfg.grid
        spec = grid.spec
        p = self.params
        tip = pose.points_to_probe(needle.tip_mm[None])[0]
        a = pose.vectors_to_probe(needle.axis)[0]
        out = []
        # Shaft samples: from the tip back along the axis, only where it can be imaged.
        step = min(grid.dr_mm, float(grid.lateral_spacing_mm().min()))  # bilinear splats: one per cell
        t_lo, t_hi = 0.0, float(needle.length_mm)
        y_min = -spec.radius_mm - 1.0 if spec.is_curvilinear else -1.0
        y_max = s.depth_mm + 1.0
        if abs(a[1]) > 1e-9:
            ta = (tip[1] - y_min) / a[1]
            tb = (tip[1] - y_max) / a[1]
            t_lo, t_hi = max(t_lo, min(ta, tb)), min(t_hi, max(ta, tb))
        elif not (y_min <= tip[1] <= y_max):
            t_hi = t_lo
        if t_hi > t_lo:
            n = int(min(20000, math.ceil((t_hi - t_lo) / step) + 1))
            t = np.linspace(t_lo, t_hi, n)
            ds = (t_hi - t_lo) / max(n - 1, 1)
            pts = tip[None, :] - t[:, None] * a[None, :]
            depth = spec.depth_of(pts)
            w_el = spec.elevation_profile(pts[:, 2], np.clip(depth, 0, None), s.frequency_mhz)
            keep = spec.fov_contains(pts, s.depth_mm) & (w_el > 0)
            if np.any(keep):
                pts, depth, w_el = pts[keep], depth[keep], w_el[keep]
                bdir = self._beam_dirs_probe(grid, pts)
                psi = np.arcsin(np.clip(np.abs(bdir @ a), 0.0, 1.0))
                lobe = math.radians(p.needle_lobe_deg)
                ang = (1 - p.needle_diffuse) * np.exp(-0.5 * (psi / lobe) ** 2) + p.needle_diffuse
                dx = (spec.radius_mm + depth) * grid.line_pitch if spec.is_curvilinear else grid.line_pitch
                # Line density: each scan line crossed by a flat shaft receives `needle_level`.
                q = p.needle_level * ang * w_el * ds / dx
                bc = grid.probe_to_beam(pts)
                out.append((bc[:, 0], bc[:, 1], q))
                # Reverberation inside the shaft (comet tail): echoes every diameter / cos(psi) below
                # each point. Each bounce must return along the beam, so it carries the specular
                # lobe again: steep shafts lose their tail first.
                d_eff = needle.diameter_mm / np.maximum(np.cos(psi), 0.2)
                q_rev = q * np.exp(-0.5 * (psi / lobe) ** 2)
                for k in range(1, p.needle_reverb_count + 1):
                    out.append((bc[:, 0], bc[:, 1] + k * d_eff / grid.dr_mm, q_rev * p.needle_reverb**k))
        out += self._tip_splat(cfg, pose, needle, s, tip)
        return out

    def _tip_splat(self, cfg, pose, needle, s, tip) -> list:
        """The bevel: a faint diffuse point echo at the tip (brighter when the bevel faces the probe)."""
        grid = cfg.grid
        spec = grid.spec
        if not spec.fov_contains(tip[None], s.depth_mm)[0]:
            return []
        depth = float(spec.depth_of(tip[None])[0])
        w = float(spec.elevation_profile(tip[2], max(depth, 0.0), s.frequency_mhz))
        if w <= 0:
            return []
        level = self.params.needle_tip_level
        if needle.bevel_normal is not None:
            bn = pose.vectors_to_probe(np.asarray(needle.bevel_normal, float))[0]
            bn /= max(np.linalg.norm(bn), 1e-9)
            bdir = self._beam_dirs_probe(grid, tip[None])[0]
            level *= 0.5 + 0.5 * max(0.0, float(-(bn @ bdir)))
        bc = grid.probe_to_beam(tip[None])
        s_idx = int(np.clip(round(bc[0, 1]), 0, grid.n_samples - 1))
        return [(bc[:, 0], bc[:, 1], np.array([level * w / float(cfg.lat_peak[s_idx])]))]

    def _point_splats(self, cfg, pose, pts_w, amplitudes, s) -> list:
        grid = cfg.grid
        spec = grid.spec
        pts = pose.points_to_probe(pts_w)
        amps = np.broadcast_to(np.asarray(amplitudes, dtype=np.float64), (len(pts),)).copy()
        depth = spec.depth_of(pts)
        w = spec.elevation_profile(pts[:, 2], np.clip(depth, 0, None), s.frequency_mhz)
        keep = spec.fov_contains(pts, s.depth_mm) & (w > 0)
        if not np.any(keep):
            return []
        bc = grid.probe_to_beam(pts[keep])
        s_idx = np.clip(np.rint(bc[:, 1]).astype(int), 0, grid.n_samples - 1)
        # Peak amplitude as given: divide by the lateral kernel's centre weight.
        return [(bc[:, 0], bc[:, 1], amps[keep] * w[keep] / cfg.lat_peak[s_idx])]

    # --- colour Doppler ------------------------------------------------------------------------
    def _doppler(self, cfg: _Config, s: ScannerSettings, pose: ProbePose, o_vox, d_vox, beam_w):
        grid = cfg.grid
        # Vessels in view (flow-coded samples): make sure their fields exist.
        code = cfg.buffers["code"]
        ls = np.nonzero(self.table.flow[code] != 0)
        if len(ls[0]):
            pts = o_vox[ls[0]] + ls[1][:, None] * d_vox[ls[0]]
            ijk = np.clip(np.rint(pts).astype(np.int64), 0, np.array(self.labels.shape) - 1)
            self._flow_cache().ensure(np.unique(self.labels[ijk[:, 0], ijk[:, 1], ijk[:, 2]]))
        ff = self._flow_cache().packed()
        nl, ns = grid.n_lines, grid.n_samples
        dirs = beam_w.copy()
        if s.doppler_steer_deg and not grid.spec.is_curvilinear:
            # Steer in plane about the elevation axis (towards +x for positive angles).
            a = math.radians(s.doppler_steer_deg)
            d_p = np.array([math.sin(a), math.cos(a), 0.0])
            dirs[:] = pose.rotation @ d_p
        v_nyq = s.nyquist_velocity_m_s()
        v_wall = s.wall_filter_m_s if s.wall_filter_m_s is not None else 0.06 * v_nyq
        l_range = np.array([0, nl], np.int64)
        s_range = np.array([0, ns], np.int64)
        if s.doppler_box_mm is not None:
            x0, x1, d0, d1 = s.doppler_box_mm
            if grid.spec.is_curvilinear:
                r = grid.spec.radius_mm
                th = np.arctan2(np.array([x0, x1]), r + 0.5 * (d0 + d1))
                lf = (th + grid.spec.half_sector_rad) / grid.line_pitch - 0.5
            else:
                lf = (np.array([x0, x1]) + grid.spec.aperture_mm / 2) / grid.line_pitch - 0.5
            l_range = np.clip(np.array([math.floor(lf.min()), math.ceil(lf.max()) + 1]), 0, nl).astype(np.int64)
            s_range = np.clip(np.array([math.floor(d0 / grid.dr_mm), math.ceil(d1 / grid.dr_mm)]), 0, ns).astype(np.int64)
        scale = 1.0
        if s.time_s is not None:
            ph = (s.time_s % 0.9) / 0.9  # 67 beats per minute
            scale = 0.55 + 1.1 * math.exp(-0.5 * ((ph - 0.15) / 0.07) ** 2)
        vel = np.empty((ns, nl), np.float32)
        K.doppler_beam(
            cfg.buffers["code"], self.labels, o_vox, d_vox, np.ascontiguousarray(dirs), self.table.flow,
            ff.index, ff.origin, ff.shape, ff.offset, ff.data,
            scale, v_nyq, v_wall, l_range, s_range, cfg.buffers["alive"], cfg.line_order, vel,
        )
        h, w = s.image_shape
        out_v = np.empty((h, w), np.float32)
        rgba = np.empty((h, w, 4), np.uint8)
        K.doppler_image(vel, cfg.g_idx, cfg.g_fl, cfg.g_fs, v_nyq, out_v, rgba)
        out_v[out_v >= K.NO_FLOW] = np.nan
        return out_v, rgba


def _grey_lut() -> np.ndarray:
    x = np.linspace(0.0, 1.0, 1024)
    y = x**1.15
    return np.clip(np.rint(255 * y), 0, 255).astype(np.uint8)


_GREY_LUT = _grey_lut()
