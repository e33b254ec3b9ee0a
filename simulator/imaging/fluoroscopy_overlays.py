"""What is drawn over the anatomy per frame: needles (steel shaft, plastic hub: exact chords of
capped cylinders) and injected contrast (Gaussian blobs with closed-form line integrals, and voxel
grids of iodine concentration from the spread model), as line integrals on the detector's pixels,
touching only their projected bounding boxes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from simulator.core.carm import CArmPose
from simulator.imaging import fluoroscopy_overlay_kernels as OK
from simulator.imaging.fluoroscopy_volume import (
    BLOB_REACH_SIGMAS,
    MU_PLASTIC_60KEV_PER_MM,
    MU_STEEL_60KEV_PER_MM,
    NEEDLE_OUTER_DIAMETER_MM,
    AttenuationVolume,
    iodine_mu_per_mm,
)

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
    OK.add_cylinders(out, pose.source_mm, det_origin, du, dv, starts, axes, lengths, r_out, r_in, mus,
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
        OK.add_gaussian_blobs(out, pose.source_mm, det_origin, du, dv, centers, prec, peaks, bboxes)
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

