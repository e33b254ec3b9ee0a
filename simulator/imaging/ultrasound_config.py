"""Per-configuration tables of the B-mode simulator (one probe, depth, frequency, focus and image
size): beam grid, axial and depth-dependent lateral PSF kernels, elevation planes, the
scan-conversion gather, electronic noise, the speckle's per-depth calibration and scratch buffers.
Built once per configuration (`build_config`), cached by the simulator."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulator.core.probe import BeamGrid, ImageGeometry, ProbePose, ProbeSpec
from simulator.imaging import ultrasound_kernels as K
from simulator.imaging.ultrasound_kernels_image import psf_envelope
from simulator.imaging.ultrasound_settings import ScannerSettings

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


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
    tex_a: np.ndarray = None  # (3, 3) voxel position -> speckle lattice (with tex_b)
    tex_b: np.ndarray = None


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




def build_config(sim, spec: ProbeSpec, s: ScannerSettings) -> _Config:
    """The per-configuration tables of a simulator (beam grid, PSF kernels, gather tables, speckle
    calibration), for resolved settings."""
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
    rng = np.random.default_rng(sim.seed + 7)
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
        "y0": np.zeros((nl, ns), np.float64),
        "contact": np.zeros(nl, np.uint8),
        "stress": np.zeros(nl, np.float64),
        "skin": np.zeros(nl, np.float64),
    }
    cfg = _Config(
        spec, s, grid, geom, sim.params.speckle_cell_wavelengths * spec.wavelength_mm(f), axial,
        lat_weights, half_width, lat_weights[kl].copy(), lat_sigma_mm, elev_z, weights.astype(np.float32),
        np.ones(ns, np.float32), idx, fl, fs, noise_re, noise_im, buffers,
    )
    cfg.speckle_stride = 2 if cfg.cell_mm >= 1.4 * grid.dr_mm else 1
    cfg.line_order = K.block_interleaved_order(nl)
    spacing = grid.lateral_spacing_mm()
    cfg.sub_n = np.clip(np.ceil(spacing / (sim.params.speckle_lateral_cells * cfg.cell_mm) - 0.05), 1, 4).astype(np.int64)
    cfg.sub_step = (spacing / cfg.sub_n).astype(np.float64)
    # Speckle across the slice: planes one lattice cell apart, Gaussian-weighted by the
    # elevation profile (the field then decorrelates over ~3 cells of elevational motion).
    n_sp = sim.params.speckle_planes
    zk = (np.arange(n_sp) - 0.5 * (n_sp - 1)) * cfg.cell_mm
    sig = np.maximum(spec.elevation_sigma_mm(depths, f), 1e-3)
    wz = np.exp(-0.5 * (zk[:, None] / sig[None, :]) ** 2)
    cfg.spk_z = np.ascontiguousarray(np.broadcast_to(zk[:, None], wz.shape), dtype=np.float64)
    cfg.spk_w = np.ascontiguousarray(wz / wz.sum(axis=0, keepdims=True))
    cfg.spk_scale = calibrate_speckle(sim, cfg)
    # Voxel position -> speckle lattice: (origin + p * spacing) @ rotation / cell.
    lat = sim.textures.speckle_rotation
    cfg.tex_a = np.ascontiguousarray(sim.spacing[:, None] * lat / cfg.cell_mm)
    cfg.tex_b = np.ascontiguousarray(sim.origin @ lat / cfg.cell_mm)
    return cfg


def texture_lines(sim, cfg: _Config, pose: ProbePose):
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
    lat = sim.textures.speckle_rotation
    o_t = (o_w @ lat) / cfg.cell_mm
    d_t = (d_w @ lat) / cfg.cell_mm
    lat_t = ((lat_p @ rot.T) @ lat) / cfg.cell_mm
    elev_t = np.ascontiguousarray((pose.elevation @ lat) / cfg.cell_mm)
    return (o_w, d_w, beam_w, np.ascontiguousarray(o_t), np.ascontiguousarray(d_t), np.ascontiguousarray(lat_t),
            elev_t)


def calibrate_speckle(sim, cfg: _Config) -> np.ndarray:
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
        _, _, _, o_t, d_t, lat_t, elev_t = texture_lines(sim, cfg, pose)
        K.speckle_beam(o_t, d_t, lat_t, cfg.sub_n, cfg.sub_step, elev_t, cfg.spk_z, cfg.spk_w, sim.textures.speckle, sim.textures.speckle_seed, cfg.speckle_stride, b["xre"], b["xim"])
        K.transpose(b["xre"], b["xim"], b["ore"], b["oim"])
        psf_envelope(b["ore"], b["oim"], cfg.axial_kernel, cfg.lat_weights, cfg.lat_half, zeros, zeros, 0.0, tgc0, env, db)
        acc += (env[:, keep].astype(np.float64) ** 2).mean(axis=1)
    inten = acc / n_pose
    x = (np.arange(ns) + 0.5) / ns * 2 - 1
    coef = np.polynomial.polynomial.polyfit(x, np.log(inten), 8)
    fit = np.exp(np.polynomial.polynomial.polyval(x, coef))
    return (1.0 / np.sqrt(fit)).astype(np.float32)

