"""The C-arm: projection geometry of a cone-beam fluoroscope, and the dose it gives.

Pure numpy: no Qt, no VTK. The fluoroscopy image kernels (`simulator.imaging.fluoroscopy`) take
their rays from a `CArmPose`; the workstation shows `DoseTracker.summary()` and hands it to the score.

Conventions (all in patient RAS millimetres: +x patient's Right, +y Anterior, +z Superior)
------------------------------------------------------------------------------------------
Patient position and the "AP" view (lao_deg = cranial_deg = 0).
    The X-ray tube sits under the table and the detector (flat panel or image intensifier) above the
    patient, as on a mobile C-arm in a pain clinic.
    - prone (the default: celiac plexus, splanchnic, lumbar sympathetic blocks): the tube is below
      the patient's front, the detector above the back. The beam enters anteriorly and leaves
      posteriorly (anterior -> posterior, beam direction -y).
    - supine: tube below the back, detector above the front; the beam goes posterior -> anterior (+y).
    - lateral_left / lateral_right (decubitus, lying on that side): the tube is under the side lying
      on the table, the detector above the other side.

Orbital angle lao_deg: the C-arm turns about the patient's long (S) axis through the isocentre.
    Positive values move the DETECTOR towards the patient's LEFT (for a supine patient this is a
    left anterior oblique, LAO, exactly as on an angiography console; for a prone patient it is the
    left "ipsilateral oblique" of pain-medicine texts - by the detector-side naming rule it would be
    an LPO). Negative values move the detector towards the patient's right (RAO side).
    +90 puts the detector at the patient's left (a lateral view), -90 at the right.
    For the lateral decubitus positions positive values turn the detector towards the patient's front.

Tilt cranial_deg: after the orbital turn the detector tilts towards the patient's HEAD (+, cranial)
    or feet (-, caudal), as in cardiology: the beam then runs from caudal (source) to cranial (detector).

The displayed image is the patient as seen FROM THE DETECTOR looking towards the source, with the
    patient's head at the top of the screen. That is what the operator standing by the table and
    looking down at the patient sees:
    - prone, AP: the back is seen from behind: the patient's LEFT appears on the LEFT of the screen;
    - supine, AP: the front is seen: the patient's left appears on the RIGHT of the screen (the usual
      radiograph display);
    - lateral (lao_deg = +90, detector at the left): anterior on the left, posterior on the right.
    `flip_horizontal` mirrors the display (the image-reverse key of a real C-arm);
    `orientation_labels()` gives the patient direction at each screen edge for an on-screen marker.

Pixels: (u, v) = (column, row), pixel centres at integers, (0, 0) is the top-left pixel; images
    are numpy arrays indexed [row, column] = [v, u]. The detector u axis points to the screen's right,
    the v axis to the screen's bottom.

Table offset: moving the table by `table_offset_mm` (RAS) moves the patient relative to the C-arm,
    so the beam's isocentre in patient coordinates is `isocenter_mm - table_offset_mm`.

Magnification modes select a smaller central field of the detector shown at the same matrix size
(`MAGNIFICATION_FIELD_FRACTIONS`); the automatic exposure control raises the dose per pulse for a
smaller field (see the dose model below).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable

import numpy as np

PATIENT_POSITIONS = ("prone", "supine", "lateral_left", "lateral_right")
# Named imaging programmes of the image chain (`simulator.imaging.fluoroscopy_presets` defines them).
IMAGING_PRESETS = ("flat_panel", "image_intensifier", "bone_detail")
KVP_LIMITS = (40.0, 125.0)  # tube voltages a fluoroscope offers (and the spectra table covers)
# Mass attenuation (cm2/g) of aluminium and copper, NIST XCOM, for the filtration check below.
_FILTER_E_KEV = (30.0, 40.0, 50.0, 60.0, 80.0, 100.0, 150.0)
_FILTER_MU_RHO = {"Al": (1.128, 0.5685, 0.3681, 0.2778, 0.2018, 0.1704, 0.1378),
                  "Cu": (10.49, 4.862, 2.613, 1.593, 0.7630, 0.4584, 0.2217)}
_FILTER_DENSITY = {"Al": 2.699, "Cu": 8.96}


def filter_transmission(kvp: float, al_mm: float, cu_mm: float) -> float:
    """Transmission of the filtration for the beam's most penetrating photons (0.8 x kVp): below
    1e-3 the filters leave practically no photons for an image."""
    e = math.log(max(0.8 * float(kvp), _FILTER_E_KEV[0]))
    xs = [math.log(x) for x in _FILTER_E_KEV]
    out = 0.0
    for el, t in (("Al", al_mm), ("Cu", cu_mm)):
        mu = math.exp(float(np.interp(e, xs, [math.log(v) for v in _FILTER_MU_RHO[el]])))
        out += mu * _FILTER_DENSITY[el] * float(t) / 10.0
    return math.exp(-out)
FIELD_SHAPES = ("circle", "square")
# Field of view of each magnification mode as a fraction of the full detector (about 30, 21, 15 cm
# for a 30 cm detector: the 12"/9"/6" fields of an image intensifier).
MAGNIFICATION_FIELD_FRACTIONS = (1.0, 0.7, 0.5)
PULSE_RATES_PPS = (3.75, 7.5, 15.0, 30.0)

_RIGHT = np.array([1.0, 0.0, 0.0])
_LEFT = -_RIGHT
_ANTERIOR = np.array([0.0, 1.0, 0.0])
_POSTERIOR = -_ANTERIOR
_SUPERIOR = np.array([0.0, 0.0, 1.0])
# per patient position: (isocentre -> detector at zero angles, where a positive orbital angle turns it)
_POSITION_AXES = {
    "prone": (_POSTERIOR, _LEFT),
    "supine": (_ANTERIOR, _LEFT),
    "lateral_left": (_RIGHT, _ANTERIOR),  # lying on the left side: detector above the right side
    "lateral_right": (_LEFT, _ANTERIOR),
}


def _vec3(value, name: str) -> tuple[float, float, float]:
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(3)
    except (TypeError, ValueError):
        raise ValueError(f"CArmPose.{name}: expected three numbers (RAS mm), got {value!r}") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"CArmPose.{name}: not finite: {value!r}")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


@dataclass(frozen=True)
class CArmPose:
    """Where the C-arm is and how it is set. Immutable and hashable; change it with `replace(...)`."""

    lao_deg: float = 0.0  # + detector towards the patient's left (LAO), - towards the right (RAO)
    cranial_deg: float = 0.0  # + detector towards the head (cranial), - towards the feet (caudal)
    isocenter_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)  # RAS point the C-arm turns about
    table_offset_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)  # table (patient) translation, RAS
    patient_position: str = "prone"
    source_to_isocenter_mm: float = 600.0
    source_to_detector_mm: float = 1000.0
    detector_size_mm: float = 300.0  # side of the square detector (full field)
    detector_pixels: int = 512  # displayed matrix (square)
    # Collimator shutters: fraction of the displayed field closed from each screen side.
    collimation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # left, right, top, bottom
    magnification: int = 0  # index into MAGNIFICATION_FIELD_FRACTIONS
    field_shape: str = "circle"  # "circle" (image intensifier look) or "square" (flat panel)
    flip_horizontal: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "isocenter_mm", _vec3(self.isocenter_mm, "isocenter_mm"))
        object.__setattr__(self, "table_offset_mm", _vec3(self.table_offset_mm, "table_offset_mm"))
        for name in ("lao_deg", "cranial_deg", "source_to_isocenter_mm", "source_to_detector_mm", "detector_size_mm"):
            v = getattr(self, name)
            if not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(float(v)):
                raise ValueError(f"CArmPose.{name}: expected a finite number, got {v!r}")
            object.__setattr__(self, name, float(v))
        if not -180.0 <= self.lao_deg <= 180.0:
            raise ValueError(f"CArmPose.lao_deg: {self.lao_deg} outside [-180, 180]")
        if not -60.0 <= self.cranial_deg <= 60.0:
            raise ValueError(f"CArmPose.cranial_deg: {self.cranial_deg} outside [-60, 60]")
        object.__setattr__(self, "patient_position", str(getattr(self.patient_position, "value", self.patient_position)))
        if self.patient_position not in PATIENT_POSITIONS:
            raise ValueError(
                f"CArmPose.patient_position: {self.patient_position!r} is not one of {', '.join(PATIENT_POSITIONS)}"
            )
        if self.source_to_isocenter_mm <= 0:
            raise ValueError(f"CArmPose.source_to_isocenter_mm: {self.source_to_isocenter_mm} must be > 0")
        if self.source_to_detector_mm <= self.source_to_isocenter_mm:
            raise ValueError(
                f"CArmPose.source_to_detector_mm: {self.source_to_detector_mm} must exceed "
                f"source_to_isocenter_mm ({self.source_to_isocenter_mm})"
            )
        if self.detector_size_mm <= 0:
            raise ValueError(f"CArmPose.detector_size_mm: {self.detector_size_mm} must be > 0")
        if int(self.detector_pixels) != self.detector_pixels or not 16 <= int(self.detector_pixels) <= 4096:
            raise ValueError(f"CArmPose.detector_pixels: {self.detector_pixels!r} must be an integer in [16, 4096]")
        object.__setattr__(self, "detector_pixels", int(self.detector_pixels))
        try:
            coll = tuple(float(c) for c in self.collimation)
        except (TypeError, ValueError):
            raise ValueError(f"CArmPose.collimation: expected four fractions, got {self.collimation!r}") from None
        if len(coll) != 4 or not all(0.0 <= c <= 0.45 for c in coll):
            raise ValueError(
                f"CArmPose.collimation: {self.collimation!r} must be four fractions (left, right, top, bottom) in [0, 0.45]"
            )
        object.__setattr__(self, "collimation", coll)
        if self.magnification not in range(len(MAGNIFICATION_FIELD_FRACTIONS)):
            raise ValueError(
                f"CArmPose.magnification: {self.magnification!r} must be 0..{len(MAGNIFICATION_FIELD_FRACTIONS) - 1}"
            )
        if self.field_shape not in FIELD_SHAPES:
            raise ValueError(f"CArmPose.field_shape: {self.field_shape!r} is not one of {', '.join(FIELD_SHAPES)}")

    # ---- construction helpers ---------------------------------------------------------------
    def replace(self, **changes) -> "CArmPose":
        return replace(self, **changes)

    @classmethod
    def from_settings(cls, settings, isocenter_mm=(0.0, 0.0, 0.0), patient_position: str = "prone",
                      **overrides) -> "CArmPose":
        """From a scenario's `FluoroscopySettings` (lao_deg, cranial_deg, field_mm, isocenter_mm; the
        given `isocenter_mm` when the settings have none). Positions the C-arm cannot take (sitting)
        fall back to prone."""
        iso = getattr(settings, "isocenter_mm", None)
        if iso is None:
            iso = isocenter_mm
        position = str(getattr(patient_position, "value", patient_position))
        kw = dict(
            lao_deg=float(settings.lao_deg),
            cranial_deg=float(settings.cranial_deg),
            isocenter_mm=tuple(iso),
            patient_position=position if position in PATIENT_POSITIONS else "prone",
            detector_size_mm=float(getattr(settings, "field_mm", 300.0)),
        )
        kw.update(overrides)
        return cls(**kw)

    def aimed_along(self, direction) -> "CArmPose":
        """This pose turned so that the beam runs along `direction` (RAS; either sense): the tunnel
        (coaxial, "down the needle") view, in which a needle on that line shows as a dot. The beam
        keeps the detector on the side away from the table; raises ValueError if the angles needed
        exceed the C-arm's range (|cranial_deg| > 60)."""
        b = np.asarray(direction, dtype=np.float64).reshape(3)
        nb = np.linalg.norm(b)
        if not np.isfinite(nb) or nb < 1e-9:
            raise ValueError(f"CArmPose.aimed_along direction: not a direction: {direction!r}")
        b = b / nb
        d0, toward = _POSITION_AXES[self.patient_position]
        if b @ d0 < 0:
            b = -b
        c = math.degrees(math.asin(max(-1.0, min(1.0, float(b @ _SUPERIOR)))))
        a = math.degrees(math.atan2(float(b @ toward), float(b @ d0)))
        if abs(c) > 60.0:
            raise ValueError(f"CArmPose.aimed_along: the direction needs cranial_deg {c:.1f}, beyond +/-60")
        return self.replace(lao_deg=a, cranial_deg=c)

    def oblique(self, side: str, angle_deg: float) -> "CArmPose":
        """An oblique view with the detector turned `angle_deg` towards the patient's `side`
        ('left' or 'right'); for a prone patient the ipsilateral oblique of a left-sided block is
        oblique('left', 20-35)."""
        if side not in ("left", "right"):
            raise ValueError(f"CArmPose.oblique side: {side!r} is not 'left' or 'right'")
        return self.replace(lao_deg=abs(angle_deg) if side == "left" else -abs(angle_deg))

    # ---- frame --------------------------------------------------------------------------------
    @property
    def effective_isocenter_mm(self) -> np.ndarray:
        """The isocentre in patient coordinates, table translation included."""
        return np.asarray(self.isocenter_mm) - np.asarray(self.table_offset_mm)

    def _frame(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(beam direction source->detector, screen-right axis, screen-down axis), unit vectors."""
        cached = self.__dict__.get("_frame_cache")
        if cached is None:
            cached = self._compute_frame()
            for v in cached:
                v.flags.writeable = False
            object.__setattr__(self, "_frame_cache", cached)
        return cached

    def _compute_frame(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = math.radians(self.lao_deg)
        c = math.radians(self.cranial_deg)
        d0, toward = _POSITION_AXES[self.patient_position]
        d_orb = math.cos(a) * d0 + math.sin(a) * toward
        beam = math.cos(c) * d_orb + math.sin(c) * _SUPERIOR
        up = math.cos(c) * _SUPERIOR - math.sin(c) * d_orb
        right = np.cross(-beam, up)  # seen from the detector looking at the source, head up
        if self.flip_horizontal:
            right = -right
        return beam, right, -up

    @property
    def beam_direction(self) -> np.ndarray:
        """Unit vector of the central ray, from the source to the detector."""
        return self._frame()[0]

    @property
    def detector_u_axis(self) -> np.ndarray:
        """Unit vector along increasing pixel column (screen right), in patient RAS."""
        return self._frame()[1]

    @property
    def detector_v_axis(self) -> np.ndarray:
        """Unit vector along increasing pixel row (screen down), in patient RAS."""
        return self._frame()[2]

    @property
    def source_mm(self) -> np.ndarray:
        return self.effective_isocenter_mm - self.source_to_isocenter_mm * self.beam_direction

    @property
    def detector_center_mm(self) -> np.ndarray:
        return self.effective_isocenter_mm + (self.source_to_detector_mm - self.source_to_isocenter_mm) * self.beam_direction

    @property
    def field_mm(self) -> float:
        """Side of the displayed field on the detector (mm), after the magnification mode."""
        return self.detector_size_mm * MAGNIFICATION_FIELD_FRACTIONS[self.magnification]

    @property
    def pixel_pitch_mm(self) -> float:
        """Size of one displayed pixel on the detector (mm)."""
        return self.field_mm / self.detector_pixels

    @property
    def isocenter_pixel_mm(self) -> float:
        """Size of one pixel projected back to the isocentre (mm)."""
        return self.pixel_pitch_mm * self.source_to_isocenter_mm / self.source_to_detector_mm

    def geometry_key(self) -> tuple:
        """Everything that changes the rays (not the collimation): a key for image caches."""
        return (
            round(self.lao_deg, 4),
            round(self.cranial_deg, 4),
            tuple(round(float(x), 3) for x in self.effective_isocenter_mm),
            self.patient_position,
            self.source_to_isocenter_mm,
            self.source_to_detector_mm,
            self.detector_size_mm,
            self.detector_pixels,
            self.magnification,
            self.flip_horizontal,
        )

    def detector_pixel_grid(self, pixels: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(centre of pixel (0, 0), step along u, step along v) in RAS mm for a `pixels`-square
        matrix covering the same field (default: `detector_pixels`)."""
        n = self.detector_pixels if pixels is None else int(pixels)
        pitch = self.field_mm / n
        _, u, v = self._frame()
        origin = self.detector_center_mm - 0.5 * (n - 1) * pitch * (u + v)
        return origin, pitch * u, pitch * v

    # ---- projection ---------------------------------------------------------------------------
    def world_to_pixel(self, points_mm) -> tuple[np.ndarray, np.ndarray]:
        """Project RAS points to continuous pixel coordinates (u = column, v = row).

        Points at or behind the source plane give NaN."""
        p = np.atleast_2d(np.asarray(points_mm, dtype=np.float64))
        beam, u_ax, v_ax = self._frame()
        w = p - self.source_mm
        depth = w @ beam
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(depth > 1e-9, self.source_to_detector_mm / depth, np.nan)
        n = self.detector_pixels
        pitch = self.pixel_pitch_mm
        u = (w @ u_ax) * scale / pitch + 0.5 * (n - 1)
        v = (w @ v_ax) * scale / pitch + 0.5 * (n - 1)
        return u, v

    def magnification_at(self, points_mm) -> np.ndarray:
        """Geometric magnification (source-to-detector over source-to-object distance along the beam)."""
        p = np.atleast_2d(np.asarray(points_mm, dtype=np.float64))
        depth = (p - self.source_mm) @ self.beam_direction
        with np.errstate(divide="ignore"):
            return np.where(depth > 1e-9, self.source_to_detector_mm / depth, np.nan)

    def pixel_to_detector_mm(self, u, v) -> np.ndarray:
        """RAS position on the detector of continuous pixel coordinates."""
        origin, du, dv = self.detector_pixel_grid()
        u = np.asarray(u, dtype=np.float64)[..., None]
        v = np.asarray(v, dtype=np.float64)[..., None]
        return origin + u * du + v * dv

    def pixel_rays(self, pixels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Rays through every pixel centre: origins (H, W, 3) = the source, directions (H, W, 3) unit."""
        origin, du, dv = self.detector_pixel_grid(pixels)
        n = self.detector_pixels if pixels is None else int(pixels)
        idx = np.arange(n, dtype=np.float64)
        pts = origin + idx[None, :, None] * du + idx[:, None, None] * dv
        d = pts - self.source_mm
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        return np.broadcast_to(self.source_mm, d.shape).copy(), d

    # ---- display helpers ----------------------------------------------------------------------
    def orientation_labels(self) -> dict[str, str]:
        """The patient direction towards each screen edge: {'left': 'L', 'right': 'R', 'top': 'H',
        'bottom': 'F'} style (R/L, A/P, H(ead)/F(eet)); the dominant one when oblique."""
        _, u, v = self._frame()
        names = (("R", "L"), ("A", "P"), ("H", "F"))

        def label(vec):
            k = int(np.argmax(np.abs(vec)))
            return names[k][0] if vec[k] > 0 else names[k][1]

        return {"right": label(u), "left": label(-u), "bottom": label(v), "top": label(-v)}

    def exposed_mask(self, pixels: int | None = None) -> np.ndarray:
        """Boolean (H, W): pixels reached by the beam (inside the field shape and the shutters)."""
        n = self.detector_pixels if pixels is None else int(pixels)
        c = (np.arange(n) + 0.5) / n  # pixel centres as a fraction of the field, 0..1
        left, right, top, bottom = self.collimation
        cols = (c >= left) & (c <= 1.0 - right)
        rows = (c >= top) & (c <= 1.0 - bottom)
        mask = rows[:, None] & cols[None, :]
        if self.field_shape == "circle":
            r2 = (c[:, None] - 0.5) ** 2 + (c[None, :] - 0.5) ** 2
            mask &= r2 <= 0.25
        return mask

    def field_mask(self, pixels: int | None = None) -> np.ndarray:
        """Boolean (H, W): inside the field shape (circle or square), shutters ignored."""
        return self.replace(collimation=(0.0, 0.0, 0.0, 0.0)).exposed_mask(pixels)

    def exposed_area_detector_mm2(self) -> float:
        """Area of the collimated beam at the detector plane (mm^2), computed analytically."""
        left, right, top, bottom = self.collimation
        f = self.field_mm
        if self.field_shape == "square":
            return (1.0 - left - right) * (1.0 - top - bottom) * f * f
        # circle of radius f/2 intersected with the shutter rectangle
        x0, x1 = (left - 0.5) * f, (0.5 - right) * f
        y0, y1 = (top - 0.5) * f, (0.5 - bottom) * f
        return _circle_rect_area(0.5 * f, x0, x1, y0, y1)

    def exposed_area_at_mm2(self, distance_from_source_mm: float) -> float:
        """Area of the beam's cross-section at a distance from the source (mm^2)."""
        s = distance_from_source_mm / self.source_to_detector_mm
        return self.exposed_area_detector_mm2() * s * s


def _circle_rect_area(r: float, x0: float, x1: float, y0: float, y1: float) -> float:
    """Area of the disc of radius r at the origin inside the rectangle [x0, x1] x [y0, y1]."""
    if x1 <= x0 or y1 <= y0:
        return 0.0

    def prim(x: float, y: float) -> float:
        # integral over [0, x] x [0, y] (x, y >= 0 quadrant-signed) of the disc indicator
        sx, sy = math.copysign(1.0, x), math.copysign(1.0, y)
        x, y = min(abs(x), r), min(abs(y), r)
        # area of {0<=s<=x, 0<=t<=y, s^2+t^2<=r^2}
        xc = math.sqrt(max(r * r - y * y, 0.0))  # where the circle crosses t = y
        if x <= xc:
            a = x * y
        else:
            def f(s):  # integral of sqrt(r^2 - s^2)
                s = min(max(s, -r), r)
                return 0.5 * (s * math.sqrt(max(r * r - s * s, 0.0)) + r * r * math.asin(s / r))

            a = xc * y + (f(x) - f(xc))
        return sx * sy * a

    return prim(x1, y1) - prim(x0, y1) - prim(x1, y0) + prim(x0, y0)


def orbit_poses(lao_degs: Iterable[float], cranial_degs: Iterable[float], **kw) -> list[CArmPose]:
    """All combinations of angles (for tests and sweeps)."""
    return [CArmPose(lao_deg=a, cranial_deg=c, **kw) for a in lao_degs for c in cranial_degs]


# ======================================================================================
# Dose
# ======================================================================================
DOSE_MODEL = """Dose model (documented constants; deliberately simple, tuned to published figures)

- Automatic exposure control (AEC) holds the air kerma per pulse at the detector entrance at
  AEC_DETECTOR_KERMA_NGY (60 nGy per pulse, a usual flat-panel fluoroscopy setting), times
  (full field / magnified field) in a magnification mode and LOW_DOSE_FACTOR in low-dose mode.
- The patient's transmission of the beam (primary plus the scatter reaching the AEC behind the
  grid) for a water-equivalent thickness t: T = SCATTER_BUILDUP * exp(-mu_eff(kVp) * t), with
  mu_eff = 0.019 /mm at 80 kVp scaled by (80 / kVp)^0.6 (broad-beam, filtered spectrum).
- Air kerma per pulse at the interventional reference point (IRP, 150 mm from the isocentre
  towards the source; 21 CFR 1020.32 / IEC 60601-2-43): K_irp = K_det * (SID / d_irp)^2 / T.
  The rate is capped at AIR_KERMA_RATE_LIMIT_MGY_MIN (88 mGy/min, the US limit without
  high-level control); when capped, the detector gets less and the image is noisier.
- Tube charge per pulse: mAs = K_irp / (Y(kVp) (1000 / d_irp)^2), Y = TUBE_OUTPUT_80KVP
  (0.045 mGy/mAs at 1 m at 80 kVp) * (kVp / 80)^2.
- Dose-area product: DAP = K_irp * (area of the collimated field at the IRP). DAP is the same at
  every distance from the source.
- Image quanta: the detector kerma gives QUANTA_PER_NGY_MM2 (34.2 photons per nGy per mm^2 at
  60 keV: the fluence-to-kerma factor from the air energy-absorption coefficient 0.0304 cm^2/g)
  times the pixel area times DETECTOR_DQE (0.6) detected quanta per pixel and pulse.
- Fluoroscopy time is beam-on time: one pulse period (1 / pulse rate) per live pulse; a single shot
  (a tap of the pedal: the AEC settles, the last image is held) counts SINGLE_SHOT_S of exposure at the
  current pulse rate.
Check: prone lumbar procedure, 220 mm of water-equivalent tissue, 15 pulses/s, full 30 cm circular
field, 34 s of screening -> about 5 mGy at the IRP and 0.7 Gy cm^2 (Hanu-Cernat 2012: 34 +/- 27 s,
1.18 +/- 1.08 Gy cm^2); oblique views through the thicker body raise it.
"""

AEC_DETECTOR_KERMA_NGY = 60.0
LOW_DOSE_FACTOR = 0.45
SCATTER_BUILDUP = 2.0
MU_EFF_WATER_80KVP_PER_MM = 0.019
TUBE_OUTPUT_80KVP_MGY_PER_MAS = 0.045
IRP_FROM_ISOCENTER_MM = 150.0
AIR_KERMA_RATE_LIMIT_MGY_MIN = 88.0
QUANTA_PER_NGY_MM2 = 34.2
DETECTOR_DQE = 0.6
SINGLE_SHOT_S = 0.2
MIN_THICKNESS_MM = 20.0


@dataclass(frozen=True)
class Exposure:
    """The figures of one pulse (or one shot's pulses), as the AEC sets them."""

    kvp: float
    pulse_rate_pps: float
    water_thickness_mm: float
    transmission: float
    detector_kerma_ngy: float  # per pulse, at the detector
    air_kerma_irp_mgy: float  # per pulse, at the interventional reference point
    mas: float  # tube charge per pulse
    dap_gycm2: float  # per pulse
    field_area_irp_cm2: float
    rate_capped: bool
    quanta_per_pixel: float  # detected quanta per displayed pixel per pulse behind the AEC region
    ma: float = 0.0  # tube current during the pulse (0: not modelled)

    @property
    def air_kerma_rate_mgy_min(self) -> float:
        return self.air_kerma_irp_mgy * self.pulse_rate_pps * 60.0


def effective_mu_water_per_mm(kvp: float) -> float:
    return MU_EFF_WATER_80KVP_PER_MM * (80.0 / kvp) ** 0.6


def tube_output_mgy_per_mas(kvp: float) -> float:
    """Air kerma per mAs at 1 m from the focal spot."""
    return TUBE_OUTPUT_80KVP_MGY_PER_MAS * (kvp / 80.0) ** 2


def compute_exposure(
    pose: CArmPose,
    water_thickness_mm: float,
    kvp: float = 80.0,
    pulse_rate_pps: float = 15.0,
    dose_mode: str = "normal",
) -> Exposure:
    """Per-pulse exposure chosen by the AEC for this pose and patient thickness (see the model above)."""
    if not 40.0 <= kvp <= 150.0:
        raise ValueError(f"exposure kvp: {kvp} outside [40, 150]")
    if pulse_rate_pps <= 0:
        raise ValueError(f"exposure pulse_rate_pps: {pulse_rate_pps} must be > 0")
    if dose_mode not in ("normal", "low"):
        raise ValueError(f"exposure dose_mode: {dose_mode!r} is not 'normal' or 'low'")
    t = max(float(water_thickness_mm), MIN_THICKNESS_MM)
    k_det = AEC_DETECTOR_KERMA_NGY * (pose.detector_size_mm / pose.field_mm)
    if dose_mode == "low":
        k_det *= LOW_DOSE_FACTOR
    transmission = min(1.0, SCATTER_BUILDUP * math.exp(-effective_mu_water_per_mm(kvp) * t))
    d_irp = pose.source_to_isocenter_mm - IRP_FROM_ISOCENTER_MM
    k_irp = k_det * 1e-6 * (pose.source_to_detector_mm / d_irp) ** 2 / transmission  # mGy
    cap = AIR_KERMA_RATE_LIMIT_MGY_MIN / 60.0 / pulse_rate_pps
    capped = k_irp > cap
    if capped:
        k_det *= cap / k_irp
        k_irp = cap
    mas = k_irp / (tube_output_mgy_per_mas(kvp) * (1000.0 / d_irp) ** 2)
    area_cm2 = pose.exposed_area_at_mm2(d_irp) / 100.0
    pixel_area = pose.pixel_pitch_mm**2
    return Exposure(
        kvp=float(kvp),
        pulse_rate_pps=float(pulse_rate_pps),
        water_thickness_mm=t,
        transmission=transmission,
        detector_kerma_ngy=k_det,
        air_kerma_irp_mgy=k_irp,
        mas=mas,
        dap_gycm2=k_irp * 1e-3 * area_cm2,
        field_area_irp_cm2=area_cm2,
        rate_capped=capped,
        quanta_per_pixel=k_det * QUANTA_PER_NGY_MM2 * pixel_area * DETECTOR_DQE,
    )


def body_thickness_mm(tissue_at, pose: CArmPose, step_mm: float = 2.0, air_code: int = 0) -> float:
    """Length of the central ray inside the body: `tissue_at(points)` gives tissue codes (for
    example `Anatomy.tissue_at`); samples every `step_mm` over 1.5 m from the source."""
    n = int(1500.0 / step_mm)
    t = (np.arange(n) + 0.5) * step_mm
    pts = pose.source_mm + t[:, None] * pose.beam_direction
    codes = np.asarray(tissue_at(pts))
    return float(np.count_nonzero(codes != air_code) * step_mm)


@dataclass
class DoseEvent:
    kind: str  # "shot" or "live"
    start_s: float
    pulses: int
    beam_on_s: float
    air_kerma_mgy: float
    dap_gycm2: float
    lao_deg: float
    cranial_deg: float


@dataclass
class DoseTracker:
    """Counts every exposure: shots, fluoroscopy time, air kerma at the IRP and dose-area product.

    Live fluoroscopy: `begin_live(t)`, then `pulse(pose, thickness)` for every pulse the pedal
    makes, then `end_live()`; or `record_live(pose, duration_s, thickness)` for a whole run. A
    single shot: `record_shot(pose, thickness)`. `summary()` gives the figures for the score.
    """

    kvp: float = 80.0
    pulse_rate_pps: float = 15.0
    dose_mode: str = "normal"
    single_shots: int = 0
    live_runs: int = 0
    images: int = 0
    fluoro_time_s: float = 0.0
    air_kerma_mgy: float = 0.0
    dap_gycm2: float = 0.0
    last_exposure: Exposure | None = None
    events: list[DoseEvent] = field(default_factory=list)
    _live: DoseEvent | None = field(default=None, repr=False)
    # the exposure of a pose: (pose, water_thickness_mm, pulse_rate_pps, dose_mode) -> Exposure; None:
    # `compute_exposure` at `kvp` (the fluoroscopy session sets the spectral AEC of `simulator.imaging`)
    exposure_model: Callable | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if float(self.pulse_rate_pps) not in PULSE_RATES_PPS:
            raise ValueError(
                f"DoseTracker.pulse_rate_pps: {self.pulse_rate_pps} is not one of {PULSE_RATES_PPS}"
            )
        if self.dose_mode not in ("normal", "low"):
            raise ValueError(f"DoseTracker.dose_mode: {self.dose_mode!r} is not 'normal' or 'low'")

    def exposure(self, pose: CArmPose, water_thickness_mm: float, pulse_rate_pps: float | None = None) -> Exposure:
        if self.exposure_model is not None:
            return self.exposure_model(pose, water_thickness_mm, pulse_rate_pps or self.pulse_rate_pps, self.dose_mode)
        return compute_exposure(
            pose, water_thickness_mm, self.kvp, pulse_rate_pps or self.pulse_rate_pps, self.dose_mode
        )

    def _add(self, exp: Exposure, pulses: int, beam_on_s: float) -> None:
        self.images += pulses
        self.fluoro_time_s += beam_on_s
        self.air_kerma_mgy += exp.air_kerma_irp_mgy * pulses
        self.dap_gycm2 += exp.dap_gycm2 * pulses
        self.last_exposure = exp

    def record_shot(self, pose: CArmPose, water_thickness_mm: float, time_s: float = 0.0) -> Exposure:
        """One tap of the pedal: SINGLE_SHOT_S of pulses at the current rate, last image held."""
        exp = self.exposure(pose, water_thickness_mm)
        pulses = max(1, int(round(SINGLE_SHOT_S * self.pulse_rate_pps)))
        beam_on = pulses / self.pulse_rate_pps
        self._add(exp, pulses, beam_on)
        self.single_shots += 1
        self.events.append(
            DoseEvent("shot", time_s, pulses, beam_on, exp.air_kerma_irp_mgy * pulses, exp.dap_gycm2 * pulses,
                      pose.lao_deg, pose.cranial_deg)
        )
        return exp

    def begin_live(self, pose: CArmPose, time_s: float = 0.0) -> None:
        if self._live is not None:
            self.end_live()
        self.live_runs += 1
        self._live = DoseEvent("live", time_s, 0, 0.0, 0.0, 0.0, pose.lao_deg, pose.cranial_deg)
        self.events.append(self._live)

    def pulse(self, pose: CArmPose, water_thickness_mm: float) -> Exposure:
        """One pulse of live fluoroscopy (call `begin_live` first; starts a run if none is open)."""
        if self._live is None:
            self.begin_live(pose)
        exp = self.exposure(pose, water_thickness_mm)
        beam_on = 1.0 / self.pulse_rate_pps
        self._add(exp, 1, beam_on)
        ev = self._live
        ev.pulses += 1
        ev.beam_on_s += beam_on
        ev.air_kerma_mgy += exp.air_kerma_irp_mgy
        ev.dap_gycm2 += exp.dap_gycm2
        return exp

    def end_live(self) -> None:
        self._live = None

    @property
    def live(self) -> bool:
        return self._live is not None

    def record_live(self, pose: CArmPose, duration_s: float, water_thickness_mm: float, time_s: float = 0.0) -> Exposure:
        """A whole live run of `duration_s` at the current pulse rate (whole pulses)."""
        if duration_s < 0:
            raise ValueError(f"DoseTracker.record_live duration_s: {duration_s} must be >= 0")
        self.begin_live(pose, time_s)
        exp = self.exposure(pose, water_thickness_mm)
        for _ in range(int(round(duration_s * self.pulse_rate_pps))):
            self.pulse(pose, water_thickness_mm)
        self.end_live()
        return exp

    @property
    def shots(self) -> int:
        """Pedal presses: single shots plus live runs."""
        return self.single_shots + self.live_runs

    def summary(self) -> dict:
        """Figures for the on-screen dose read-out and the score."""
        rate = self.last_exposure.air_kerma_rate_mgy_min if self.last_exposure else 0.0
        return {
            "shots": self.shots,
            "single_shots": self.single_shots,
            "live_runs": self.live_runs,
            "images": self.images,
            "fluoro_time_s": round(self.fluoro_time_s, 4),
            "air_kerma_mgy": self.air_kerma_mgy,
            "dap_gycm2": self.dap_gycm2,
            "air_kerma_rate_mgy_min": rate,
            "kvp": self.last_exposure.kvp if self.last_exposure else float(self.kvp),
            "ma": self.last_exposure.ma if self.last_exposure else 0.0,
        }

    def reset(self) -> None:
        self.single_shots = self.live_runs = self.images = 0
        self.fluoro_time_s = self.air_kerma_mgy = self.dap_gycm2 = 0.0
        self.last_exposure = None
        self.events.clear()
        self._live = None
