"""Colour Doppler of the B-mode simulator: per-vessel flow fields (built on first use, see
`ultrasound_flow`) projected on the (steered) Doppler beam, the arteries pulsatile with the heart
beat when a time is given (the veins steady), wall filter, aliasing above PRF/2, and the turbulent jet of an intravascular
injection."""
from __future__ import annotations

import math

import numpy as np

from simulator.core.probe import ProbePose
from simulator.imaging.ultrasound_kernels_image import doppler_beam, doppler_image
from simulator.imaging.ultrasound_kernels_volume import NO_FLOW
from simulator.imaging.ultrasound_settings import ScannerSettings


def doppler(sim, cfg, s: ScannerSettings, pose: ProbePose, o_vox, d_vox, beam_w, turb=None):
    """Colour-flow velocities (H, W) and their RGBA overlay for a frame whose B-mode buffers
    (codes, compression y0, alive lines) are filled; `turb` (k, 6) turbulent jets (see
    `doppler_beam`)."""
    grid = cfg.grid
    # Vessels in view (flow-coded samples): make sure their fields exist.
    code = cfg.buffers["code"]
    ls = np.nonzero(sim.table.flow[code] != 0)
    if len(ls[0]):
        y0 = cfg.buffers["y0"]
        pts = o_vox[ls[0]] + y0[ls[0], ls[1]][:, None] * d_vox[ls[0]]
        ijk = np.clip(np.rint(pts).astype(np.int64), 0, np.array(sim.labels.shape) - 1)
        sim._flow_cache().ensure(np.unique(sim.labels[ijk[:, 0], ijk[:, 1], ijk[:, 2]]))
    ff = sim._flow_cache().packed()
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
    scale = np.ones(max(len(ff.names), 1), np.float64)  # per field: arteries beat, veins flow steadily
    if s.time_s is not None:
        ph = (s.time_s % 0.9) / 0.9  # 67 beats per minute
        scale[: len(ff.names)][ff.pulsatile[: len(ff.names)]] = 0.55 + 1.1 * math.exp(-0.5 * ((ph - 0.15) / 0.07) ** 2)
    vel = np.empty((ns, nl), np.float32)
    if turb is None or len(turb) == 0:
        turb = np.zeros((0, 6))
    doppler_beam(
        cfg.buffers["code"], sim.labels, o_vox, d_vox, cfg.buffers["y0"], np.ascontiguousarray(dirs), sim.table.flow,
        ff.index, ff.origin, ff.shape, ff.offset, ff.data,
        scale, v_nyq, v_wall, l_range, s_range, cfg.buffers["alive"], cfg.line_order,
        sim.origin, sim.spacing, np.ascontiguousarray(turb, dtype=np.float64), vel,
    )
    h, w = s.image_shape
    out_v = np.empty((h, w), np.float32)
    rgba = np.empty((h, w, 4), np.uint8)
    doppler_image(vel, cfg.g_idx, cfg.g_fl, cfg.g_fs, v_nyq, out_v, rgba)
    out_v[out_v >= NO_FLOW] = np.nan
    return out_v, rgba