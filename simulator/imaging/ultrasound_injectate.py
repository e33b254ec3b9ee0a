"""The injectate in the acoustic model: from the procedure's spreads (the same deposits the
fluoroscopy draws as iodine) to fields the B-mode kernels sample.

Model (documented for instructors):
- What shows: each bolus's volume present at the frame's time (`Spread.present_ml`: it grows at
  the injection rate from the tip outwards in the spread's fill order, then slowly resorbs).
- Where it goes: the spread's voxels. In loose tissue (fat, loose connective tissue, gel) and in
  an organ the liquid collects as a pocket - anechoic, sharp-edged, with posterior enhancement
  (its attenuation is water's). In dense tissue (muscle, skin) it infiltrates between the fibres:
  the tissue darkens diffusely (`INFIL_DARKENING` of its backscatter) without an edge. Injected
  air (`Spread.air_ml`, given first, at the tip) is a bright gas pocket with a dirty shadow.
  Intravascular boluses leave no pocket (the blood carries them away; Doppler shows a turbulent
  jet for a few seconds), intrathecal ones none visible through bone, nor intraosseous ones.
  A bolus given inside a nerve (the tip in a nerve the simulator knows: a scenario's nerve
  target or a segmented nerve) swells it: up to `INTRANEURAL_FILL` of the nerve's volume within
  `INTRANEURAL_REACH_MM` of the tip is infiltrated, the rest spreads around it.
- Displacement: the fluid is new volume. Neighbouring tissue is pushed away by the field of a
  volume source, u(x) = k / (4 pi) * integral rho(y) (x - y) / |x - y|^3 dy (rho: the density of
  injectate, 1 = a voxel full), the small-strain solution of an incompressible medium around an
  inflating source. A thin sheet of fluid opens its plane by its thickness (each side moves by
  half), a ball pushes its surroundings radially - the pleura under an intercostal injection is
  pushed down, the fascia over it lifted. Half the given volume fills the loose tissue it
  replaces (the pocket's core) and the displacement (k = 1) brings the visible pocket to about the
  given volume.
The fields live on small boxes around each group of boluses (1 mm cells or so): densities
(pocket, gas, infiltration; Gaussian-smoothed for round edges) and the displacement (computed by
FFT convolution on cells twice as large, then interpolated), packed for the kernels
(`ultrasound_kernels_contact`). A field is rebuilt when a bolus's present volume changes by a few
per cent (growth is shown in steps of `GROWTH_STEP`), tens of milliseconds each.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from simulator.core.tissue import Tissue
from simulator.imaging.ultrasound_kernels_contact import M_DENS, M_DHI, M_DISP, M_DLO, M_N, M_OFF, M_SCALE, N_META

POCKET, GAS, INFIL = 0, 1, 2
DISPLACING_SHARE = 1.0  # k: the displacement field's strength (see the module notes)
CORE_SHARE = 1.0 / (1.0 + DISPLACING_SHARE)
GROWTH_STEP = 0.08  # the field follows a bolus's present volume in steps of this share (or 0.02 ml)
INTRANEURAL_FILL = 1.0
INTRANEURAL_REACH_MM = 12.0
MAX_CELLS = 64  # per axis, fine grid
LOOSE = {int(Tissue.FAT), int(Tissue.SOFT_TISSUE), int(Tissue.GEL), int(Tissue.FLUID), int(Tissue.AIR)}
TURBULENCE_S = 4.0  # the jet of an intravascular bolus on colour Doppler
TURBULENCE_RADIUS_MM = 12.0
TURBULENCE_M_S = 0.9


@dataclass
class Deposit:
    """Injectate at points: world centres (N, 3), volumes (N,) mm^3, kind (N,) POCKET/GAS/INFIL,
    the source voxels' size (3,) mm (each point is spread over its voxel)."""

    points_mm: np.ndarray
    volume_mm3: np.ndarray
    kind: np.ndarray
    voxel_mm: np.ndarray


@dataclass
class InjectateField:
    """Packed fields for the kernels: meta (G, N_META) float64, disp and dens flat float32
    ((n0, n1, n2, 3) each per group); `volume_ml` shown; `boxes` (G, 2, 3) world mm."""

    meta: np.ndarray
    disp: np.ndarray
    dens: np.ndarray
    volume_ml: float
    boxes: np.ndarray

    @classmethod
    def empty(cls) -> "InjectateField":
        return cls(np.zeros((0, N_META)), np.zeros(1, np.float32), np.zeros(1, np.float32), 0.0, np.zeros((0, 2, 3)))


# --------------------------------------------------------------------------------------------
# Spreads -> deposits
# --------------------------------------------------------------------------------------------
def _sim_voxel(sim, pts_mm: np.ndarray) -> np.ndarray:
    ijk = np.rint((np.atleast_2d(pts_mm) - sim.origin) / sim.spacing).astype(np.int64)
    return np.clip(ijk, 0, np.array(sim.codes.shape) - 1)


def _intraneural(sim, spread, volume_mm3: float):
    """(points, volumes) of the share of a bolus that goes into the nerve at the tip, or None."""
    ijk = _sim_voxel(sim, spread.origin_mm)[0]
    if int(sim.codes[tuple(ijk)]) != int(Tissue.NERVE):
        return None
    lab = int(sim.labels[tuple(ijk)])
    r = np.ceil(INTRANEURAL_REACH_MM / sim.spacing).astype(int)
    lo = np.maximum(ijk - r, 0)
    hi = np.minimum(ijk + r + 1, np.array(sim.codes.shape))
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    mask = sim.codes[box] == int(Tissue.NERVE)
    if lab:
        mask &= sim.labels[box] == lab
    idx = np.argwhere(mask) + lo
    pts = sim.origin + idx * sim.spacing
    d = np.linalg.norm(pts - spread.origin_mm, axis=1)
    keep = d <= INTRANEURAL_REACH_MM
    pts, d = pts[keep], d[keep]
    if len(pts) == 0:
        return None
    order = np.argsort(d, kind="stable")
    each = INTRANEURAL_FILL * float(np.prod(sim.spacing))
    n = int(min(len(order), math.ceil(volume_mm3 / each)))
    vols = np.full(n, each)
    vols[-1] = volume_mm3 - each * (n - 1)
    return pts[order[:n]], np.clip(vols, 0.0, None)


def deposits_of(sim, spread, time_s: float | None) -> list[Deposit]:
    """What of one bolus shows on B-mode at `time_s` (see the module notes)."""
    if spread.mode in ("intravascular", "intrathecal", "outside", "intraosseous"):
        return []
    present = spread.present_ml(time_s)
    if present <= 1e-6 or len(spread.indices) == 0:
        return []
    total = max(float(spread.volume_ml), 1e-9)
    core_mm3 = present * 1000.0 * CORE_SHARE
    out = []
    nerve = _intraneural(sim, spread, core_mm3)
    if nerve is not None:
        pts, vols = nerve
        out.append(Deposit(pts, vols, np.full(len(pts), INFIL, np.int8), sim.spacing.copy()))
        core_mm3 -= float(vols.sum())
    if core_mm3 <= 1e-3:
        return out
    idx, frac = spread.fill_prefix(core_mm3 / 1000.0)
    pts = spread.grid_origin_mm + idx.astype(np.float64) * spread.spacing_mm
    vols = frac.astype(np.float64) * spread.voxel_volume_mm3
    host = sim.codes[tuple(_sim_voxel(sim, pts).T)]
    pocket = np.isin(host, list(LOOSE)) | (spread.mode == "intra_organ")
    kind = np.where(pocket, POCKET, INFIL).astype(np.int8)
    air_mm3 = min(core_mm3, float(spread.air_ml) * present / total * 1000.0 * CORE_SHARE)
    if air_mm3 > 0:
        kind[np.cumsum(vols) - vols < air_mm3] = GAS
    out.append(Deposit(pts, vols, kind, np.asarray(spread.spacing_mm, float)))
    return out


def turbulence(spreads, time_s: float | None) -> np.ndarray:
    """(k, 6) turbulent jets of intravascular boluses at `time_s` (world x, y, z, radius mm,
    velocity amplitude m/s, frame seed) for colour Doppler."""
    rows = []
    if time_s is None:
        return np.zeros((0, 6))
    for sp in spreads:
        if sp.mode != "intravascular":
            continue
        age = time_s - sp.time_s
        if 0.0 <= age <= sp.duration_s + TURBULENCE_S:
            fade = 1.0 if age <= sp.duration_s else 1.0 - (age - sp.duration_s) / TURBULENCE_S
            o = np.asarray(sp.origin_mm, float)
            rows.append([o[0], o[1], o[2], TURBULENCE_RADIUS_MM, TURBULENCE_M_S * fade, int(time_s * 30.0) % 100003])
    return np.array(rows, float).reshape(-1, 6)


def field_key(spreads, time_s: float | None) -> tuple:
    """What the field depends on: each bolus's present volume, in growth steps."""
    key = []
    for sp in spreads:
        v = sp.present_ml(time_s)
        step = max(0.02, GROWTH_STEP * float(sp.volume_ml))
        key.append((id(sp), int(round(v / step))))
    return tuple(key)


def growing(spreads, time_s: float | None) -> bool:
    """Whether a bolus is still being given at `time_s` (its image changes)."""
    if time_s is None:
        return False
    return any(sp.time_s <= time_s < sp.time_s + sp.duration_s for sp in spreads if sp.mode != "intravascular") or (
        len(turbulence(spreads, time_s)) > 0)


# --------------------------------------------------------------------------------------------
# Deposits -> fields
# --------------------------------------------------------------------------------------------
def _groups(deps: list[Deposit], margin_mm: float) -> list[list[Deposit]]:
    boxes = [(d.points_mm.min(0) - margin_mm, d.points_mm.max(0) + margin_mm) for d in deps]
    parent = list(range(len(deps)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(deps)):
        for j in range(i + 1, len(deps)):
            if np.all(boxes[i][0] <= boxes[j][1]) and np.all(boxes[j][0] <= boxes[i][1]):
                parent[find(i)] = find(j)
    out: dict[int, list] = {}
    for i, d in enumerate(deps):
        out.setdefault(find(i), []).append(d)
    return list(out.values())


def _splat(grid: np.ndarray, g: np.ndarray, w: np.ndarray) -> None:
    """Add weights w at fractional grid coordinates g (N, 3) with trilinear weights."""
    i0 = np.floor(g).astype(np.int64)
    f = g - i0
    n = np.array(grid.shape)
    acc = np.zeros(grid.size)
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                ii = i0 + np.array([dx, dy, dz])
                ww = w * (f[:, 0] if dx else 1 - f[:, 0]) * (f[:, 1] if dy else 1 - f[:, 1]) * (f[:, 2] if dz else 1 - f[:, 2])
                ok = np.all((ii >= 0) & (ii < n), axis=1)
                flat = (ii[ok, 0] * n[1] + ii[ok, 1]) * n[2] + ii[ok, 2]
                acc += np.bincount(flat, ww[ok], minlength=grid.size)
    grid += acc.reshape(grid.shape).astype(grid.dtype)


_KERNELS: dict = {}


def _source_kernel_fft(shape: tuple, h: float):
    """FFTs of the three components of x / (4 pi |x|^3) h^3 on a (2n)^3 circular grid (offsets
    -n..n-1, zero at the origin): the displacement of a unit volume source, for convolution."""
    key = (shape, round(h, 6))
    hit = _KERNELS.get(key)
    if hit is not None:
        return hit
    axes = [np.fft.fftfreq(2 * n, 1.0 / (2 * n)) * h for n in shape]  # signed offsets in mm
    X, Y, Z = np.meshgrid(*axes, indexing="ij")
    r3 = (X * X + Y * Y + Z * Z) ** 1.5
    r3[0, 0, 0] = np.inf
    c = h**3 / (4.0 * math.pi)
    out = tuple(sfft.rfftn((c * comp / r3).astype(np.float32)) for comp in (X, Y, Z))
    if len(_KERNELS) > 8:
        _KERNELS.pop(next(iter(_KERNELS)))
    _KERNELS[key] = out
    return out


def _displacement(rho: np.ndarray, h: float) -> np.ndarray:
    """(n0, n1, n2, 3) mm: the volume-source field of density rho on a grid of spacing h,
    computed on a grid of 2h cells and interpolated back."""
    n = np.array(rho.shape)
    nc = tuple(int(x) for x in (n + 1) // 2)
    pad = np.zeros(tuple(2 * x for x in nc), np.float32)
    sl = tuple(slice(0, x) for x in n)
    pad[sl] = rho
    coarse = pad.reshape(nc[0], 2, nc[1], 2, nc[2], 2).sum(axis=(1, 3, 5)) / 8.0
    big = np.zeros(tuple(2 * x for x in nc), np.float32)
    big[: nc[0], : nc[1], : nc[2]] = coarse
    fr = sfft.rfftn(big)
    kers = _source_kernel_fft(nc, 2.0 * h)
    out = np.empty(tuple(n) + (3,), np.float32)
    for a in range(3):
        u = sfft.irfftn(fr * kers[a], s=big.shape)[: nc[0], : nc[1], : nc[2]]
        for ax in range(3):
            u = _upsample2(u, ax)
        out[..., a] = u[: n[0], : n[1], : n[2]]
    return out * DISPLACING_SHARE


def _upsample2(u: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation to twice the cells along an axis: coarse cell c covers fine cells 2c
    and 2c + 1, its centre between them (edges held)."""
    u = np.moveaxis(u, axis, 0)
    lo = np.concatenate([u[:1], u[:-1]])
    hi = np.concatenate([u[1:], u[-1:]])
    out = np.empty((2 * len(u),) + u.shape[1:], u.dtype)
    out[0::2] = 0.75 * u + 0.25 * lo
    out[1::2] = 0.75 * u + 0.25 * hi
    return np.moveaxis(out, 0, axis)


def _taper(shape, margin_cells: np.ndarray) -> np.ndarray:
    """1 inside, falling smoothly to 0 over the outer part of the margin (no jump at the box)."""
    w = np.ones(shape)
    for a, n in enumerate(shape):
        x = np.arange(n, dtype=np.float64)
        d = np.minimum(x, n - 1 - x) / max(0.6 * margin_cells[a], 1.0)
        t = np.clip(d, 0.0, 1.0)
        s = t * t * (3 - 2 * t)
        shp = [1, 1, 1]
        shp[a] = n
        w = w * s.reshape(shp)
    return w


def build_field(sim, deposits: list[Deposit]) -> InjectateField:
    """Pack the deposits into the kernels' fields (see the module notes)."""
    deps = [d for d in deposits if len(d.points_mm) and float(np.sum(d.volume_mm3)) > 0]
    if not deps:
        return InjectateField.empty()
    metas, disps, denss, boxes = [], [], [], []
    off_disp = off_dens = 0
    total = 0.0
    for group in _groups(deps, 12.0):
        pts = np.concatenate([d.points_mm for d in group])
        vol = np.concatenate([d.volume_mm3 for d in group])
        kind = np.concatenate([d.kind for d in group])
        vox = np.max([d.voxel_mm for d in group], axis=0)
        v = float(vol.sum())
        total += v
        r_eq = (3.0 * v / (4.0 * math.pi)) ** (1.0 / 3.0)
        margin = max(8.0, 1.3 * r_eq + 4.0)
        lo = pts.min(0) - 0.5 * vox - margin
        hi = pts.max(0) + 0.5 * vox + margin
        h = max(0.5, float(np.max(hi - lo)) / (MAX_CELLS - 1))
        n = np.maximum(np.ceil((hi - lo) / h).astype(int) + 1, 4)
        dens = np.zeros((3,) + tuple(n), np.float32)
        # Each point spread over its voxel: sub-points at most h apart.
        sub = np.clip(np.ceil(vox / h).astype(int), 1, 4)
        offs = np.stack(np.meshgrid(*[(np.arange(k) + 0.5) / k - 0.5 for k in sub], indexing="ij"), -1).reshape(-1, 3)
        g = ((pts[:, None, :] + offs[None, :, :] * vox - lo) / h).reshape(-1, 3)
        w = np.repeat(vol / len(offs), len(offs)) / h**3
        kk = np.repeat(kind, len(offs))
        for ch in (POCKET, GAS, INFIL):
            sel = kk == ch
            if np.any(sel):
                _splat(dens[ch], g[sel], w[sel])
        for ch, sigma_mm in ((POCKET, 0.6), (GAS, 0.6), (INFIL, 0.8)):
            if dens[ch].any():
                dens[ch] = ndimage.gaussian_filter(dens[ch], sigma_mm / h, mode="constant", truncate=3.0)
        u = _displacement(dens.sum(axis=0), h) * _taper(tuple(n), np.full(3, margin / h))[..., None]
        u_vox = (u / sim.spacing).astype(np.float32)
        meta = np.zeros(N_META)
        meta[M_SCALE:M_SCALE + 3] = sim.spacing / h
        meta[M_OFF:M_OFF + 3] = (sim.origin - lo) / h
        meta[M_N:M_N + 3] = n
        meta[M_DISP] = off_disp
        meta[M_DENS] = off_dens
        nz = np.argwhere(dens.max(axis=0) > 1e-4)
        if len(nz):
            meta[M_DLO:M_DLO + 3] = nz.min(axis=0) - 1.0
            meta[M_DHI:M_DHI + 3] = nz.max(axis=0) + 1.0
        else:
            meta[M_DLO:M_DLO + 3] = 1.0
            meta[M_DHI:M_DHI + 3] = -1.0
        metas.append(meta)
        disps.append(u_vox.reshape(-1))
        denss.append(np.moveaxis(dens, 0, -1).astype(np.float32).reshape(-1))
        off_disp += disps[-1].size
        off_dens += denss[-1].size
        boxes.append(np.stack([lo, lo + (n - 1) * h]))
    return InjectateField(np.array(metas), np.concatenate(disps), np.concatenate(denss), total / 1000.0 / CORE_SHARE,
                          np.array(boxes))


class InjectateCache:
    """The field of the boluses present at a time, rebuilt when one of them has grown or shrunk by
    a growth step (see `field_key`)."""

    def __init__(self, sim):
        self.sim = sim
        self._key = None
        self._field = InjectateField.empty()
        self.builds = 0

    def field(self, spreads, time_s: float | None) -> InjectateField:
        spreads = [sp for sp in spreads if sp is not None]
        if not spreads:
            return InjectateField.empty()
        key = field_key(spreads, time_s)
        if key != self._key:
            deps = []
            for sp in spreads:
                deps += deposits_of(self.sim, sp, time_s)
            self._field = build_field(self.sim, deps)
            self._key = key
            self.builds += 1
        return self._field
