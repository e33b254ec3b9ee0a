"""Inputs and outputs of the B-mode simulator: scanner settings (with their ranges: refused by
`resolve`, clamped with a message by `clamped`), the needle, the frame, and the model's constants."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from simulator.core.probe import BeamGrid, ImageGeometry, NeedleVisibility, ProbePose, ProbeSpec

MIN_DEPTH_MM = 10.0
GAIN_RANGE_DB = (-30.0, 30.0)


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

    def clamped(self, spec: ProbeSpec) -> tuple["ScannerSettings", list[str]]:
        """The nearest settings the probe accepts, and a message per knob moved back into its
        range (the trainer shows them: a scanner's knob stops at its end)."""
        notes = []
        changes = {}
        lo, hi = spec.frequency_range_mhz
        f = spec.default_frequency_mhz if self.frequency_mhz is None else self.frequency_mhz
        if not math.isfinite(f) or not (lo <= f <= hi):
            changes["frequency_mhz"] = min(max(f, lo), hi) if math.isfinite(f) else spec.default_frequency_mhz
            notes.append(f"frequency {f:g} MHz is outside the {spec.name} probe's {lo:g}-{hi:g} MHz: "
                         f"set to {changes['frequency_mhz']:g} MHz")
        d = spec.default_depth_mm if self.depth_mm is None else self.depth_mm
        d_lo, d_hi = MIN_DEPTH_MM, spec.max_depth_mm
        if not math.isfinite(d) or not (d_lo <= d <= d_hi):
            changes["depth_mm"] = min(max(d, d_lo), d_hi) if math.isfinite(d) else spec.default_depth_mm
            notes.append(f"depth {d:g} mm is outside {d_lo:g}-{d_hi:g} mm for the {spec.name} probe: "
                         f"set to {changes['depth_mm']:g} mm")
        g = self.gain_db
        if not math.isfinite(g) or not (GAIN_RANGE_DB[0] <= g <= GAIN_RANGE_DB[1]):
            changes["gain_db"] = min(max(g, GAIN_RANGE_DB[0]), GAIN_RANGE_DB[1]) if math.isfinite(g) else 0.0
            notes.append(f"gain {g:+g} dB is outside {GAIN_RANGE_DB[0]:+g}..{GAIN_RANGE_DB[1]:+g} dB: "
                         f"set to {changes['gain_db']:+g} dB")
        depth = changes.get("depth_mm", d)
        if self.focus_mm is not None and (not math.isfinite(self.focus_mm) or not (0 < self.focus_mm <= depth)):
            changes["focus_mm"] = None
            notes.append(f"focus {self.focus_mm:g} mm is outside the image (0-{depth:g} mm): set to half the depth")
        return (replace(self, **changes) if changes else self), notes

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
    contact: np.ndarray | None = None  # (n_lines,) uint8: the line's face touches the skin (or gel bridges it)
    skin_mm: np.ndarray | None = None  # (n_lines,) skin below (+) or above (-, pressed in) the face
    stress: np.ndarray | None = None  # (n_lines,) compression of the tissue column (0..ModelParams.sigma_max)
    animated: bool = False  # the image changes with time (lung sliding, a growing pocket, pulsatile flow)
    alive: np.ndarray | None = None  # (n_lines,) uint8: the line shows something

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

    @property
    def contact_fraction(self) -> float:
        """Share of the scan lines whose face is coupled to the skin."""
        return 1.0 if self.contact is None else float(np.mean(self.contact))


# --------------------------------------------------------------------------------------------
# Model constants (documented choices)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelParams:
    specular_lobe_deg: float = 12.0  # tissue interfaces: Gaussian specular lobe sigma
    interface_coherent: float = 0.6  # interface echo = coherent part + random (rough) part
    interface_random: float = 0.6
    # Probe contact: a gel film bridges a gap up to gel_mm between the face and the skin; the skin
    # is looked for up to contact_search_mm above the face (a face pressed in that deep at most);
    # the compressed column reaches column_mm below the skin; its stress is capped at sigma_max
    # (fat then shortens by 60 %: the firmest plausible pressure).
    gel_mm: float = 1.0
    contact_search_mm: float = 25.0
    column_mm: float = 40.0
    sigma_max: float = 0.6
    probe_face_reflection: float = 0.12  # for A-line reverberation
    n_alines: int = 6
    # Breathing: the visceral pleura slides along the chest wall by up to sliding_mm (craniocaudal)
    # over a breath of breath_period_s.
    breath_period_s: float = 4.0
    sliding_mm: float = 6.0
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
    septum_wave_mm: float = 2.0  # lateral undulation of the septa along the fibres
