"""Ultrasound probe: transducer specification, pose on the skin, image geometry, needle visibility.

Pure numpy (no Qt, no VTK, no numba): the imaging kernels, the score and the views all use it.

Frames (all in millimetres; transforms named as in PLUS / OpenIGTLink / Slicer: `image_to_probe`,
`probe_to_world`):

- **World**: patient RAS mm.
- **Probe**: origin at the centre of the probe face (on the skin); +x = lateral axis towards the
  orientation marker (`ProbePose.marker`); +y = depth axis into the patient
  (`ProbePose.direction`); +z = elevation = x cross y (right-handed), the slice-thickness axis.
  The image plane is z = 0. For the curvilinear probe the virtual apex of the fan is at
  (0, -radius_mm, 0) and each scan line leaves the face arc radially.
- **Image**: pixel (column u, row v); row 0 is the top (shallowest), rows grow with depth. Pixels are
  square (`ImageGeometry.spacing_mm`). By default the orientation marker is shown on the screen's
  LEFT (the regional-anaesthesia convention, `marker_left=True`): column u grows away from the
  marker, i.e. probe x decreases with u. `image_to_probe` maps (u, v, 0, 1) to probe mm.

Beam space: the simulation runs on scan lines (`BeamGrid`): line l, sample s. Linear probe: lines
are parallel to +y at x = -aperture/2 + (l + 0.5) * pitch, samples at y = (s + 0.5) * dr.
Curvilinear: lines at angle theta_l = -sector/2 + (l + 0.5) * dtheta (positive towards +x), samples
at range rho = (s + 0.5) * dr beyond the face arc.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple

import numpy as np

from simulator.core.geometry import rotation_about_axis

SPEED_OF_SOUND_MM_US = 1.540  # soft-tissue average c used by scanners for beamforming (mm/us)
_LN10 = math.log(10.0)


# --------------------------------------------------------------------------------------------
# Transducer specification
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProbeSpec:
    """A transducer model. Beam sizes follow simple Gaussian-beam formulas (documented per method)."""

    kind: Literal["linear", "curvilinear"]
    name: str
    aperture_mm: float  # linear: width of the footprint; curvilinear: chord of the face arc
    radius_mm: float  # curvilinear: radius of curvature of the face (0 for linear)
    sector_deg: float  # curvilinear: field-of-view angle (0 for linear)
    frequency_range_mhz: tuple[float, float]
    default_frequency_mhz: float
    default_depth_mm: float
    max_depth_mm: float
    f_number: float  # lateral F-number (transmit/receive) at the focus
    axial_fwhm_wavelengths: float  # two-way pulse envelope FWHM, in wavelengths
    elevation_focus_mm: float  # depth of the elevation lens focus
    elevation_fwhm_mm: float  # elevation beam FWHM at the lens focus at the default frequency
    n_lines: int  # scan lines simulated across the field of view
    face_elevation_mm: float = 10.0  # probe face size in elevation (for drawing)
    # How far the face is pressed into the skin (at its centre): the trainer's default and the
    # firmest plausible (a convex face must press in for its ends to touch a flat skin).
    default_press_mm: float = 2.0
    max_press_mm: float = 12.0

    # --- constructors ----------------------------------------------------------------------
    @classmethod
    def linear(cls, **overrides) -> "ProbeSpec":
        """A high-frequency linear array: 38 mm footprint, 6-13 MHz."""
        spec = cls(
            kind="linear",
            name="linear 38 mm 6-13 MHz",
            aperture_mm=38.0,
            radius_mm=0.0,
            sector_deg=0.0,
            frequency_range_mhz=(6.0, 13.0),
            default_frequency_mhz=10.0,
            default_depth_mm=40.0,
            max_depth_mm=90.0,
            f_number=2.5,
            axial_fwhm_wavelengths=1.5,
            elevation_focus_mm=18.0,
            elevation_fwhm_mm=1.2,
            n_lines=256,
            face_elevation_mm=10.0,
        )
        return replace(spec, **overrides) if overrides else spec

    @classmethod
    def curvilinear(cls, **overrides) -> "ProbeSpec":
        """A low-frequency convex array: 60 mm radius, 60 degree sector, 2-5 MHz."""
        spec = cls(
            kind="curvilinear",
            name="curvilinear R60 60 deg 2-5 MHz",
            aperture_mm=2 * 60.0 * math.sin(math.radians(30.0)),
            radius_mm=60.0,
            sector_deg=60.0,
            frequency_range_mhz=(2.0, 5.0),
            default_frequency_mhz=3.5,
            default_depth_mm=120.0,
            max_depth_mm=250.0,
            f_number=3.5,
            axial_fwhm_wavelengths=1.5,
            elevation_focus_mm=65.0,
            elevation_fwhm_mm=3.5,
            n_lines=192,
            face_elevation_mm=16.0,
            default_press_mm=8.0,
            max_press_mm=30.0,
        )
        return replace(spec, **overrides) if overrides else spec

    @classmethod
    def named(cls, kind: str) -> "ProbeSpec":
        if kind == "linear":
            return cls.linear()
        if kind == "curvilinear":
            return cls.curvilinear()
        raise ValueError(f"ProbeSpec: field 'kind' must be 'linear' or 'curvilinear', got {kind!r}")

    # --- validation ------------------------------------------------------------------------
    def check_frequency(self, frequency_mhz: float, where: str = "settings") -> float:
        lo, hi = self.frequency_range_mhz
        if not (lo - 1e-9 <= frequency_mhz <= hi + 1e-9):
            raise ValueError(
                f"{where}: field 'frequency_mhz' = {frequency_mhz} is outside the {self.name} "
                f"probe's range {lo}-{hi} MHz"
            )
        return float(frequency_mhz)

    def check_depth(self, depth_mm: float, where: str = "settings") -> float:
        if not (5.0 <= depth_mm <= self.max_depth_mm):
            raise ValueError(
                f"{where}: field 'depth_mm' = {depth_mm} is outside 5-{self.max_depth_mm} mm for the {self.name} probe"
            )
        return float(depth_mm)

    # --- beam model ------------------------------------------------------------------------
    @property
    def is_curvilinear(self) -> bool:
        return self.kind == "curvilinear"

    @property
    def half_sector_rad(self) -> float:
        return math.radians(self.sector_deg) / 2.0

    @staticmethod
    def wavelength_mm(frequency_mhz: float) -> float:
        return SPEED_OF_SOUND_MM_US / frequency_mhz

    def axial_fwhm_mm(self, frequency_mhz: float) -> float:
        """Envelope FWHM of the two-way pulse along the beam."""
        return self.axial_fwhm_wavelengths * self.wavelength_mm(frequency_mhz)

    def lateral_fwhm_mm(self, depth_mm, frequency_mhz: float, focus_mm: float):
        """Lateral beam FWHM: lambda * F# at the transmit focus, widening away from it like a
        Gaussian beam whose depth of field is 14 lambda F#^2 (dynamic receive focusing keeps it
        wider than the transmit-only depth of field)."""
        lam = self.wavelength_mm(frequency_mhz)
        w0 = lam * self.f_number
        dof = 14.0 * lam * self.f_number**2
        d = np.asarray(depth_mm, dtype=np.float64)
        return w0 * np.sqrt(1.0 + ((d - focus_mm) / dof) ** 2)

    def elevation_fwhm_at(self, depth_mm, frequency_mhz: float | None = None):
        """Elevation (slice) FWHM of the two-way amplitude profile at a depth: narrowest at the
        lens focus, scaling with wavelength, widening linearly-quadratically away from it."""
        f = self.default_frequency_mhz if frequency_mhz is None else frequency_mhz
        w0 = self.elevation_fwhm_mm * (self.default_frequency_mhz / f)
        zr = 0.55 * self.elevation_focus_mm
        d = np.asarray(depth_mm, dtype=np.float64)
        return w0 * np.sqrt(1.0 + ((d - self.elevation_focus_mm) / zr) ** 2)

    def elevation_sigma_mm(self, depth_mm, frequency_mhz: float | None = None):
        """Gaussian sigma of the elevation amplitude profile p(z) = exp(-z^2 / (2 sigma^2))."""
        return self.elevation_fwhm_at(depth_mm, frequency_mhz) / (2.0 * math.sqrt(2.0 * math.log(2.0)))

    def slice_half_width_mm(self, depth_mm, frequency_mhz: float | None = None):
        """Elevation distance at which the amplitude profile has fallen to -20 dB. Reflectors
        beyond it are not imaged (the profile is cut to zero there)."""
        return self.elevation_sigma_mm(depth_mm, frequency_mhz) * math.sqrt(2.0 * _LN10)

    def slice_thickness_mm(self, depth_mm, frequency_mhz: float | None = None):
        """Full slice thickness (-20 dB) at a depth."""
        return 2.0 * self.slice_half_width_mm(depth_mm, frequency_mhz)

    def elevation_profile(self, elevation_mm, depth_mm, frequency_mhz: float | None = None):
        """Two-way amplitude weight of a reflector at `elevation_mm` off the image plane (1 in
        plane, Gaussian, 0 beyond the -20 dB half-width)."""
        z = np.asarray(elevation_mm, dtype=np.float64)
        sig = self.elevation_sigma_mm(depth_mm, frequency_mhz)
        p = np.exp(-0.5 * (z / sig) ** 2)
        return np.where(np.abs(z) <= sig * math.sqrt(2.0 * _LN10) * (1 + 1e-9), p, 0.0)

    # --- field of view (probe frame) --------------------------------------------------------
    def fov_contains(self, points_probe, depth_mm: float) -> np.ndarray:
        """Whether probe-frame points lie in the imaged sector (ignoring elevation)."""
        p = np.atleast_2d(np.asarray(points_probe, dtype=np.float64))
        x, y = p[:, 0], p[:, 1]
        if self.is_curvilinear:
            r = np.hypot(x, y + self.radius_mm)
            th = np.arctan2(x, y + self.radius_mm)
            return (np.abs(th) <= self.half_sector_rad) & (r >= self.radius_mm) & (r <= self.radius_mm + depth_mm)
        return (np.abs(x) <= self.aperture_mm / 2) & (y >= 0) & (y <= depth_mm)

    def depth_of(self, points_probe) -> np.ndarray:
        """Depth along the scan line (linear: y; curvilinear: range beyond the face arc)."""
        p = np.atleast_2d(np.asarray(points_probe, dtype=np.float64))
        if self.is_curvilinear:
            return np.hypot(p[:, 0], p[:, 1] + self.radius_mm) - self.radius_mm
        return p[:, 1].copy()


# --------------------------------------------------------------------------------------------
# Pose
# --------------------------------------------------------------------------------------------
def _unit(v, name: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if a.shape != (3,) or not np.all(np.isfinite(a)):
        raise ValueError(f"ProbePose: field {name!r} must be 3 finite numbers, got {v!r}")
    n = float(np.linalg.norm(a))
    if n < 1e-9:
        raise ValueError(f"ProbePose: field {name!r} must not be the zero vector, got {v!r}")
    return a / n


@dataclass(frozen=True, eq=False)
class ProbePose:
    """Where the probe is: face centre on the skin, depth axis, lateral (marker) axis.

    Construct with `ProbePose.from_vectors(center, direction, marker)`: the marker is made exactly
    perpendicular to the direction. Helpers return new poses (the pose is immutable):
    `rotated` (turn on the skin about the depth axis, e.g. transverse <-> longitudinal),
    `tilted` (fan the plane in elevation about the lateral axis), `rocked` (heel-toe, in plane,
    about the elevation axis), `slid` (move along the skin), `translated` (world vector).
    Angles are right-handed about the named axis, in degrees.
    """

    center_mm: np.ndarray
    direction: np.ndarray
    marker: np.ndarray

    @classmethod
    def from_vectors(cls, center_mm, direction, marker) -> "ProbePose":
        c = np.asarray(center_mm, dtype=np.float64).reshape(-1)
        if c.shape != (3,) or not np.all(np.isfinite(c)):
            raise ValueError(f"ProbePose: field 'center_mm' must be 3 finite numbers, got {center_mm!r}")
        d = _unit(direction, "direction")
        m = _unit(marker, "marker")
        m = m - d * float(m @ d)
        n = float(np.linalg.norm(m))
        if n < 1e-6:
            raise ValueError(
                f"ProbePose: field 'marker' {marker!r} is parallel to 'direction' {direction!r}; "
                "the lateral axis must cross the depth axis"
            )
        return cls(c.copy(), d, m / n)

    @classmethod
    def from_matrix(cls, probe_to_world: np.ndarray) -> "ProbePose":
        m = np.asarray(probe_to_world, dtype=np.float64)
        return cls.from_vectors(m[:3, 3], m[:3, 1], m[:3, 0])

    def __post_init__(self) -> None:
        m, d = self.marker, self.direction
        e = np.array([m[1] * d[2] - m[2] * d[1], m[2] * d[0] - m[0] * d[2], m[0] * d[1] - m[1] * d[0]])
        object.__setattr__(self, "_rot", np.stack([m, d, e], axis=1))  # columns: probe axes in world

    @property
    def elevation(self) -> np.ndarray:
        """+z of the probe frame: marker x direction."""
        return self._rot[:, 2].copy()

    @property
    def rotation(self) -> np.ndarray:
        """3x3 whose columns are the marker, direction and elevation axes (probe to world)."""
        return self._rot.copy()

    def probe_to_world(self) -> np.ndarray:
        """4x4: probe-frame mm (x lateral, y depth, z elevation) to world RAS mm."""
        m = np.eye(4)
        m[:3, :3] = self._rot
        m[:3, 3] = self.center_mm
        return m

    def world_to_probe(self) -> np.ndarray:
        r = self.probe_to_world()
        inv = np.eye(4)
        inv[:3, :3] = r[:3, :3].T
        inv[:3, 3] = -r[:3, :3].T @ r[:3, 3]
        return inv

    def points_to_probe(self, points_world) -> np.ndarray:
        p = np.atleast_2d(np.asarray(points_world, dtype=np.float64))
        return (p - self.center_mm) @ self._rot

    def points_to_world(self, points_probe) -> np.ndarray:
        p = np.atleast_2d(np.asarray(points_probe, dtype=np.float64))
        return p @ self._rot.T + self.center_mm

    def vectors_to_probe(self, vectors_world) -> np.ndarray:
        return np.atleast_2d(np.asarray(vectors_world, dtype=np.float64)) @ self._rot

    def allclose(self, other: "ProbePose", atol_mm: float = 1e-6) -> bool:
        return (np.allclose(self.center_mm, other.center_mm, atol=atol_mm)
                and np.allclose(self._rot, other._rot, atol=1e-9))

    # --- motion helpers ------------------------------------------------------------------------
    def _rotated_about(self, axis, angle_deg: float) -> "ProbePose":
        r = rotation_about_axis(axis, angle_deg)
        return ProbePose.from_vectors(self.center_mm, r @ self.direction, r @ self.marker)

    def rotated(self, angle_deg: float) -> "ProbePose":
        """Turn the probe on the skin about its depth axis (90 deg: transverse <-> longitudinal)."""
        return self._rotated_about(self.direction, angle_deg)

    def tilted(self, angle_deg: float) -> "ProbePose":
        """Fan the image plane in elevation about the lateral axis through the face centre."""
        return self._rotated_about(self.marker, angle_deg)

    def rocked(self, angle_deg: float) -> "ProbePose":
        """Heel-toe: rotate in the image plane about the elevation axis."""
        return self._rotated_about(self.elevation, angle_deg)

    def slid(self, lateral_mm: float = 0.0, elevation_mm: float = 0.0, depth_mm: float = 0.0) -> "ProbePose":
        """Move along the probe's own axes (depth_mm > 0 presses into the patient)."""
        c = self.center_mm + lateral_mm * self.marker + elevation_mm * self.elevation + depth_mm * self.direction
        return ProbePose(c, self.direction.copy(), self.marker.copy())

    def translated(self, delta_mm) -> "ProbePose":
        return ProbePose(self.center_mm + np.asarray(delta_mm, dtype=np.float64), self.direction.copy(), self.marker.copy())


# --------------------------------------------------------------------------------------------
# Image geometry (pixels <-> probe <-> world)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageGeometry:
    """The displayed image: H x W square pixels covering the probe's field of view.

    Linear: the image spans the footprint laterally and [0, depth] in depth; curvilinear: the
    bounding box of the fan. Pixel size is the larger of the two fits so the whole field of view
    is shown with square pixels; the rest is blank (outside `fov_mask`). Use
    `ImageGeometry.for_probe(spec, depth_mm, (H, W))`.
    """

    spec: ProbeSpec
    depth_mm: float
    height: int
    width: int
    spacing_mm: float
    x_first_mm: float  # probe x of column 0's centre
    y_first_mm: float  # probe y of row 0's centre
    marker_left: bool = True

    @classmethod
    def for_probe(cls, spec: ProbeSpec, depth_mm: float, shape=(512, 512), marker_left: bool = True) -> "ImageGeometry":
        h, w = int(shape[0]), int(shape[1])
        if h < 8 or w < 8:
            raise ValueError(f"ImageGeometry: field 'shape' must be at least 8x8 pixels, got {shape!r}")
        if spec.is_curvilinear:
            hs = spec.half_sector_rad
            width_mm = 2.0 * (spec.radius_mm + depth_mm) * math.sin(hs)
            y_top = -spec.radius_mm * (1.0 - math.cos(hs))
            height_mm = depth_mm - y_top
        else:
            width_mm = spec.aperture_mm
            y_top = 0.0
            height_mm = depth_mm
        s = max(width_mm / w, height_mm / h)
        # Column centres symmetric about x = 0; the top row's upper edge at y_top.
        x_span = (w - 1) * s
        x_first = x_span / 2.0 if marker_left else -x_span / 2.0
        return cls(spec, float(depth_mm), h, w, float(s), float(x_first), float(y_top + 0.5 * s), marker_left)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @staticmethod
    def true_aspect_shape(spec: "ProbeSpec", depth_mm: float, long_side: int = 512) -> tuple[int, int]:
        """(H, W) pixels with the field of view's own aspect (no blank margins): the longer
        side `long_side` pixels."""
        if spec.is_curvilinear:
            hs = spec.half_sector_rad
            width_mm = 2.0 * (spec.radius_mm + depth_mm) * math.sin(hs)
            height_mm = depth_mm + spec.radius_mm * (1.0 - math.cos(hs))
        else:
            width_mm, height_mm = spec.aperture_mm, depth_mm
        if height_mm >= width_mm:
            return int(long_side), max(16, int(round(long_side * width_mm / height_mm)))
        return max(16, int(round(long_side * height_mm / width_mm))), int(long_side)

    @property
    def _sx(self) -> float:
        return -self.spacing_mm if self.marker_left else self.spacing_mm

    def image_to_probe(self) -> np.ndarray:
        """4x4: pixel (u = column, v = row, 0, 1) to probe mm."""
        m = np.eye(4)
        m[0, 0] = self._sx
        m[1, 1] = self.spacing_mm
        m[2, 2] = self.spacing_mm
        m[0, 3] = self.x_first_mm
        m[1, 3] = self.y_first_mm
        return m

    def pixel_to_probe(self, uv) -> np.ndarray:
        q = np.atleast_2d(np.asarray(uv, dtype=np.float64))
        out = np.zeros((len(q), 3))
        out[:, 0] = self.x_first_mm + q[:, 0] * self._sx
        out[:, 1] = self.y_first_mm + q[:, 1] * self.spacing_mm
        return out

    def probe_to_pixel(self, points_probe) -> np.ndarray:
        """(N, 3): column u, row v (fractional) and the elevation offset in mm."""
        p = np.atleast_2d(np.asarray(points_probe, dtype=np.float64))
        out = np.empty((len(p), 3))
        out[:, 0] = (p[:, 0] - self.x_first_mm) / self._sx
        out[:, 1] = (p[:, 1] - self.y_first_mm) / self.spacing_mm
        out[:, 2] = p[:, 2]
        return out

    def pixel_to_world(self, uv, pose: ProbePose) -> np.ndarray:
        return pose.points_to_world(self.pixel_to_probe(uv))

    def world_to_pixel(self, points_world, pose: ProbePose) -> np.ndarray:
        """(N, 3): column u, row v, signed elevation distance to the image plane (mm)."""
        return self.probe_to_pixel(pose.points_to_probe(points_world))

    def image_to_world(self, pose: ProbePose) -> np.ndarray:
        return image_to_world(pose, self)

    def fov_mask(self) -> np.ndarray:
        """(H, W) bool: pixels inside the imaged sector."""
        v, u = np.mgrid[0 : self.height, 0 : self.width]
        p = self.pixel_to_probe(np.stack([u.ravel(), v.ravel()], axis=1))
        return self.spec.fov_contains(p, self.depth_mm).reshape(self.height, self.width)


def image_to_probe(geometry: ImageGeometry) -> np.ndarray:
    return geometry.image_to_probe()


def probe_to_world(pose: ProbePose) -> np.ndarray:
    return pose.probe_to_world()


def image_to_world(pose: ProbePose, geometry: ImageGeometry) -> np.ndarray:
    """4x4 ImageToWorld = ProbeToWorld @ ImageToProbe (pixel (u, v, 0, 1) -> RAS mm)."""
    return pose.probe_to_world() @ geometry.image_to_probe()


# --------------------------------------------------------------------------------------------
# Beam space
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BeamGrid:
    """Scan lines x samples of one probe at one depth (see module docstring)."""

    spec: ProbeSpec
    depth_mm: float
    n_lines: int
    n_samples: int

    @property
    def dr_mm(self) -> float:
        return self.depth_mm / self.n_samples

    @property
    def line_pitch(self) -> float:
        """mm between lines (linear) or radians (curvilinear)."""
        if self.spec.is_curvilinear:
            return 2.0 * self.spec.half_sector_rad / self.n_lines
        return self.spec.aperture_mm / self.n_lines

    def sample_depths_mm(self) -> np.ndarray:
        return (np.arange(self.n_samples) + 0.5) * self.dr_mm

    def line_positions(self) -> np.ndarray:
        """Linear: x (mm) of each line; curvilinear: angle (rad) of each line."""
        first = -self.spec.half_sector_rad if self.spec.is_curvilinear else -self.spec.aperture_mm / 2
        return first + (np.arange(self.n_lines) + 0.5) * self.line_pitch

    def lines_probe(self) -> tuple[np.ndarray, np.ndarray]:
        """Origins (at depth 0, on the face) and unit directions of every line, probe frame."""
        pos = self.line_positions()
        o = np.zeros((self.n_lines, 3))
        d = np.zeros((self.n_lines, 3))
        if self.spec.is_curvilinear:
            r = self.spec.radius_mm
            d[:, 0] = np.sin(pos)
            d[:, 1] = np.cos(pos)
            o[:, 0] = r * d[:, 0]
            o[:, 1] = r * d[:, 1] - r
        else:
            o[:, 0] = pos
            d[:, 1] = 1.0
        return o, d

    def lateral_spacing_mm(self) -> np.ndarray:
        """Distance between neighbouring lines at each sample depth."""
        if self.spec.is_curvilinear:
            return (self.spec.radius_mm + self.sample_depths_mm()) * self.line_pitch
        return np.full(self.n_samples, self.line_pitch)

    def probe_to_beam(self, points_probe) -> np.ndarray:
        """(N, 2) fractional (line, sample) indices of probe-frame points."""
        p = np.atleast_2d(np.asarray(points_probe, dtype=np.float64))
        if self.spec.is_curvilinear:
            r = self.spec.radius_mm
            th = np.arctan2(p[:, 0], p[:, 1] + r)
            rho = np.hypot(p[:, 0], p[:, 1] + r) - r
            line = (th + self.spec.half_sector_rad) / self.line_pitch - 0.5
        else:
            rho = p[:, 1]
            line = (p[:, 0] + self.spec.aperture_mm / 2) / self.line_pitch - 0.5
        return np.stack([line, rho / self.dr_mm - 0.5], axis=1)

    def beam_to_probe(self, line_sample) -> np.ndarray:
        q = np.atleast_2d(np.asarray(line_sample, dtype=np.float64))
        rho = (q[:, 1] + 0.5) * self.dr_mm
        first = -self.spec.half_sector_rad if self.spec.is_curvilinear else -self.spec.aperture_mm / 2
        pos = first + (q[:, 0] + 0.5) * self.line_pitch
        out = np.zeros((len(q), 3))
        if self.spec.is_curvilinear:
            r = self.spec.radius_mm
            out[:, 0] = (r + rho) * np.sin(pos)
            out[:, 1] = (r + rho) * np.cos(pos) - r
        else:
            out[:, 0] = pos
            out[:, 1] = rho
        return out


# --------------------------------------------------------------------------------------------
# Needle visibility (for the score)
# --------------------------------------------------------------------------------------------
class NeedleVisibility(NamedTuple):
    tip_in_plane: bool  # tip inside the imaged slab (elevation within the slice) and the sector
    tip_distance_to_plane_mm: float  # |elevation| of the tip from the image plane
    shaft_fraction_in_plane: float  # of the shaft under the imaged sector, the fraction inside the slab


def needle_visibility(
    tip_mm,
    axis,
    pose: ProbePose,
    spec: ProbeSpec,
    slice_thickness_mm: float | None = None,
    *,
    depth_mm: float | None = None,
    frequency_mhz: float | None = None,
    shaft_length_mm: float | None = None,
    step_mm: float = 0.5,
) -> NeedleVisibility:
    """Is the needle tip in the imaged slice, how far is it from the plane, how much of the shaft
    is in the slice?

    `axis` points along the needle towards the tip (the direction of advance); the shaft runs back
    from the tip for `shaft_length_mm` (default: until it leaves the probe's depth range, i.e. the
    part under the skin plane). `slice_thickness_mm`: full thickness of the imaged slab; None uses
    the probe's depth-dependent -20 dB slice thickness (`ProbeSpec.slice_thickness_mm`), the
    same profile the B-mode uses. The shaft fraction counts only shaft points that project into
    the sector (lateral/depth extent): 1.0 for a needle exactly in plane, near 0 for one crossing
    the plane, 0 when no part of the shaft lies under the sector.
    """
    depth = spec.default_depth_mm if depth_mm is None else float(depth_mm)
    a = np.asarray(axis, dtype=np.float64).reshape(3)
    na = float(np.linalg.norm(a))
    if na < 1e-9:
        raise ValueError(f"needle_visibility: field 'axis' must not be the zero vector, got {axis!r}")
    a = a / na
    tip_p = pose.points_to_probe(np.asarray(tip_mm, dtype=np.float64).reshape(1, 3))[0]
    a_p = pose.vectors_to_probe(a)[0]

    def half_width(points):
        if slice_thickness_mm is not None:
            return 0.5 * float(slice_thickness_mm)
        d = np.maximum(spec.depth_of(points), 0.0)
        return spec.slice_half_width_mm(d, frequency_mhz)

    tip_dist = float(abs(tip_p[2]))
    tip_in = bool(spec.fov_contains(tip_p[None], depth)[0] and tip_dist <= np.max(half_width(tip_p[None])))

    # Shaft: P(t) = tip - t a, t in [0, L]; keep the part below the face plane (y >= 0).
    if shaft_length_mm is None:
        if a_p[1] > 1e-9:  # pointing deeper: the shaft rises back towards the face
            length = max(0.0, tip_p[1] / a_p[1])
        else:
            length = 300.0
        length = min(length, 300.0)
    else:
        length = float(shaft_length_mm)
    n = max(2, int(math.ceil(length / step_mm)) + 1)
    t = np.linspace(0.0, length, n)
    pts = tip_p[None, :] - t[:, None] * a_p[None, :]
    under = spec.fov_contains(pts, depth)
    if not np.any(under):
        frac = 0.0
    else:
        p = pts[under]
        frac = float(np.mean(np.abs(p[:, 2]) <= half_width(p)))
    return NeedleVisibility(tip_in, tip_dist, frac)
