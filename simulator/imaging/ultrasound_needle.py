"""The needle and point reflectors in the B-mode simulator: point contributions (fractional line,
fractional sample, amplitude) added into the scatter signal before propagation. The shaft is a
specular line reflector (brightest at right angles to the beam, fading when steep) with a
reverberation tail, weighted by the elevation profile (an out-of-plane needle is a dot); the bevel
a faint diffuse point at the tip. They are drawn where they are in the world (the frame's pixel
mapping), whether the probe compresses the tissue around them or not."""
from __future__ import annotations

import math

import numpy as np

from simulator.core.probe import BeamGrid, ProbePose
from simulator.imaging.ultrasound_settings import ModelParams, NeedleGeometry, ScannerSettings


def beam_dirs_probe(grid: BeamGrid, pts_probe: np.ndarray) -> np.ndarray:
    if grid.spec.is_curvilinear:
        v = pts_probe[:, :2] + np.array([0.0, grid.spec.radius_mm])
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)
        return np.column_stack([v, np.zeros(len(v))])
    out = np.zeros((len(pts_probe), 3))
    out[:, 1] = 1.0
    return out

def splats(params: ModelParams, cfg, pose: ProbePose, s: ScannerSettings, needle: NeedleGeometry | None,
           points_mm=None, point_amplitudes=1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point contributions (fractional line, fractional sample, amplitude) of the needle and
    of point reflectors, added into the scatter signal before propagation."""
    parts = []
    if needle is not None:
        parts += _needle_splats(params, cfg, pose, needle, s)
    if points_mm is not None:
        parts += _point_splats(cfg, pose, np.atleast_2d(np.asarray(points_mm, float)), point_amplitudes, s)
    if not parts:
        e = np.zeros(0)
        return e, e, e
    return tuple(np.ascontiguousarray(np.concatenate(x), dtype=np.float64) for x in zip(*parts))

def _needle_splats(params: ModelParams, cfg, pose: ProbePose, needle: NeedleGeometry, s: ScannerSettings) -> list:
    """The shaft as a specular line reflector: per point, angle-dependent amplitude (brightest
    when the beam meets the shaft at right angles), weighted by the elevation profile, with
    reverberation echoes below it; then the bevel as a faint point at the tip."""
    grid = cfg.grid
    spec = grid.spec
    p = params
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
            bdir = beam_dirs_probe(grid, pts)
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
    out += _tip_splat(params, cfg, pose, needle, s, tip)
    return out

def _tip_splat(params: ModelParams, cfg, pose, needle, s, tip) -> list:
    """The bevel: a faint diffuse point echo at the tip (brighter when the bevel faces the probe)."""
    grid = cfg.grid
    spec = grid.spec
    if not spec.fov_contains(tip[None], s.depth_mm)[0]:
        return []
    depth = float(spec.depth_of(tip[None])[0])
    w = float(spec.elevation_profile(tip[2], max(depth, 0.0), s.frequency_mhz))
    if w <= 0:
        return []
    level = params.needle_tip_level
    if needle.bevel_normal is not None:
        bn = pose.vectors_to_probe(np.asarray(needle.bevel_normal, float))[0]
        bn /= max(np.linalg.norm(bn), 1e-9)
        bdir = beam_dirs_probe(grid, tip[None])[0]
        level *= 0.5 + 0.5 * max(0.0, float(-(bn @ bdir)))
    bc = grid.probe_to_beam(tip[None])
    s_idx = int(np.clip(round(bc[0, 1]), 0, grid.n_samples - 1))
    return [(bc[:, 0], bc[:, 1], np.array([level * w / float(cfg.lat_peak[s_idx])]))]

def _point_splats(cfg, pose, pts_w, amplitudes, s) -> list:
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
