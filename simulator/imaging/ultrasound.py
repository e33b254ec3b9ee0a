"""Simulated B-mode ultrasound (and colour Doppler) of an `Anatomy`.

    sim = UltrasoundSimulator(anatomy, ProbeSpec.linear())       # per anatomy, ~1-2 s: off the GUI thread
    pose = sim.place_on_skin(pose, press_mm=2.0)                 # the face pressed 2 mm into the skin
    frame = sim.render(pose, ScannerSettings(depth_mm=40, frequency_mhz=10), needle=NeedleGeometry(...),
                       body=BodyState(time_s=t, spreads=procedure.spreads))
    frame.display        # (H, W) uint8 B-mode for the screen (orientation marker on the left)
    frame.bmode_db       # (H, W) float32 echo level in dB incl. gain and TGC (before quantisation)
    frame.doppler_rgba   # (H, W, 4) uint8 colour-flow overlay (alpha 0 where no colour), or None
    frame.doppler_velocity_m_s  # (H, W) float32 velocity towards the probe, NaN where no colour
    frame.pixel_to_world([[u, v]]), frame.world_to_pixel(points), frame.image_to_world (4x4)
    frame.needle_visibility  # (tip_in_plane, tip_distance_to_plane_mm, shaft_fraction_in_plane)
    frame.contact / frame.skin_mm / frame.stress   # per scan line: coupled?, skin vs face, compression
    frame.tip_visible, frame.fov_mask(), frame.geometry (ImageGeometry), frame.grid (BeamGrid)

Frames, poses and pixel mapping: `simulator.core.probe` (ImageToProbe / ProbeToWorld as in PLUS).
`ScannerSettings` (ultrasound_settings) holds the knobs (depth, frequency, gain, TGC sliders,
focus, dynamic range, Doppler PRF/steer/box); `ScannerSettings.from_scenario(...)` converts the
scenario schema; `clamped(spec)` moves knobs back into the probe's range with a message.
`BodyState` (ultrasound_body): the attempt's moment - injected boluses, breathing, pneumothorax.

The model, per scan line (numba kernels in `ultrasound_kernels*`, the same model in plain numpy
in `ultrasound_reference`): probe contact (a gel film bridges small gaps; a face pressed into the
skin compresses the tissue columns under it, soft layers and veins most; a line whose face is off
the skin shows nothing); the injectate's displacement of the tissue and its pockets
(ultrasound_injectate); tissue classes sampled at those positions with smooth (B-spline)
boundaries and 3 Gaussian-weighted elevation planes; per-tissue acoustic table (ultrasound_tissue:
Z, alpha, backscatter, compliance, structure textures - muscle and fat septa as angle-dependent
sheets broken along the fibres, nerve fascicles); tissue-fixed complex speckle hashed from the
tissue's own position (it moves with compressed or displaced tissue), integrated across the line
width and the slice; two-way attenuation; interface echoes R(theta) with a specular lobe around
the 3-D boundary normal plus a diffuse part; transmission product (bone and gas shadows); gas:
total reflection, then per gas class A-lines (lung), reverberant haze (faint below the lung,
sliding with the breath except over a pneumothorax; a dirty shadow below gut gas and injected
air); the needle as a specular line reflector (ultrasound_needle) with reverberation tail and a
faint bevel echo, weighted by the elevation profile; point-spread function (Gaussian axial,
depth-dependent lateral); electronic noise; log compression with gain, TGC (automatic soft-tissue
compensation by default) and dynamic range; linear or curvilinear scan conversion by a
precomputed gather; colour Doppler (ultrasound_doppler) from per-vessel flow fields, wall filter,
aliasing above PRF/2, the turbulent jet of an intravascular injection.

Precomputed once per anatomy: the acoustic code volume (CT gas / calcification), per-label fibre
axes, tissue textures (cached on disk), a twice-finer copy of small coarse phantoms; per probe
configuration (ultrasound_config): beam grid, PSF kernels, speckle calibration, gather tables; per
vessel on first Doppler use: its flow field; per change of the boluses: the injectate field.
Echo amplitudes are relative to a perfect specular reflector at normal incidence (0 dB). A
`render` call is thread-safe (one frame at a time per simulator; numba releases the GIL); the
returned arrays belong to the caller.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import replace

import numpy as np

from simulator.core.anatomy import Anatomy
from simulator.core.probe import ProbePose, ProbeSpec, needle_visibility
from simulator.core.tissue import Tissue
from simulator.imaging import ultrasound_kernels as K
from simulator.imaging.ultrasound_body import BodyState, lung_motion
from simulator.imaging.ultrasound_config import FWHM_PER_SIGMA, _Config, _config_key, build_config, texture_lines
from simulator.imaging.ultrasound_doppler import doppler
from simulator.imaging.ultrasound_injectate import InjectateCache, growing, turbulence
from simulator.imaging.ultrasound_kernels_contact import contact_lines, find_skin
from simulator.imaging.ultrasound_kernels_image import psf_envelope, scan_convert
from simulator.imaging.ultrasound_needle import splats
from simulator.imaging.ultrasound_settings import (
    ModelParams,
    NeedleGeometry,
    ScannerSettings,
    UltrasoundFrame,
)
from simulator.imaging.ultrasound_tissue import Acoustic, AcousticTable, Textures, make_textures
from simulator.imaging.ultrasound_volume import (
    GAS_HU,
    acoustic_codes,
    label_axes,
    perpendicular_axes,
    refine_small_anatomy,
)

__all__ = [
    "BodyState", "FWHM_PER_SIGMA", "GAS_HU", "ModelParams", "NeedleGeometry", "ScannerSettings",
    "UltrasoundFrame", "UltrasoundSimulator", "acoustic_codes", "refine_small_anatomy",
]


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
        self.label_axes = label_axes(refined, self.labels, self.spacing, self.table.texture)
        self._injectate = InjectateCache(self)
        self._flow = None
        self._flow_speeds = flow_speeds_m_s
        self._configs: dict = {}
        self._lock = threading.Lock()

    # --- per-anatomy tables --------------------------------------------------------------------

    # --- per-anatomy tables --------------------------------------------------------------------
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
            self.label_axes = np.vstack([self.label_axes, perpendicular_axes(axis)])
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
        if cfg is None:
            cfg = build_config(self, spec, s)
            if len(self._configs) > 16:
                self._configs.pop(next(iter(self._configs)))
            self._configs[key] = cfg
        return cfg

    # --- probe contact -----------------------------------------------------------------------------
    def _contact(self, cfg: _Config, o_vox: np.ndarray, d_vox: np.ndarray) -> None:
        b = cfg.buffers
        p = self.params
        contact_lines(self.codes, self.table.outside_body, o_vox, d_vox, cfg.grid.dr_mm, p.gel_mm, p.contact_search_mm,
                      p.column_mm, self.table.compliance, self.table.strain_max, self.table.rigid, p.sigma_max,
                      b["y0"], b["contact"], b["stress"], b["skin"])

    def skin_distance_mm(self, pose: ProbePose, reach_mm: float = 80.0) -> float | None:
        """How far the skin lies below the face centre along the probe's depth axis (negative: the
        face is pressed into it): the air-to-tissue crossing nearest to the face within
        `reach_mm`, found as the contact model finds it; None when there is none."""
        o = (pose.center_mm - self.origin) / self.spacing
        d = pose.direction / self.spacing  # voxel units per mm
        step = 0.5
        best = None
        q_from = -reach_mm
        while q_from < reach_mm:
            found, q, _ = find_skin(self.codes, self.table.outside_body, o[0], o[1], o[2], d[0], d[1], d[2],
                                    q_from, reach_mm, step)
            if found <= 0:
                if found < 0:  # started inside the body: step out of it first
                    q_from += step
                    continue
                break
            if best is None or abs(q) < abs(best):
                best = q
            q_from = q + step
            if q > 0:
                break
        return best

    def place_on_skin(self, pose: ProbePose, press_mm: float = 0.0) -> ProbePose:
        """The pose moved along its depth axis until the face centre touches the skin, then
        `press_mm` further in (the probe's pressure; see `ModelParams.sigma_max` for the firmest
        plausible one). Unchanged when no skin is near."""
        h = self.skin_distance_mm(pose)
        if h is None:
            return pose
        return pose.slid(depth_mm=h + float(press_mm))

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
        body: BodyState | None = None,
    ) -> UltrasoundFrame:
        """One frame. `points_mm`: optional point reflectors (world), each with a peak echo
        amplitude (relative to a perfect reflector, before attenuation) - wire targets. `body`:
        the attempt's moment (injected boluses, breathing, pneumothorax); None: a still image of
        the anatomy as it is."""
        spec = spec or self.spec
        s = (settings or ScannerSettings()).resolve(spec)
        with self._lock:
            return self._render(pose, s, spec, needle, points_mm, point_amplitudes, body)

    def _render(self, pose, s, spec, needle, points_mm, point_amplitudes, body) -> UltrasoundFrame:
        t0 = time.perf_counter()
        cfg = self._config(spec, s)
        grid = cfg.grid
        nl, ns = grid.n_lines, grid.n_samples
        b = cfg.buffers
        tab = self.table
        tx = self.textures
        p = self.params
        o_w, d_w, beam_w, o_t, d_t, lat_t, elev_t = texture_lines(self, cfg, pose)
        o_vox = np.ascontiguousarray((o_w - self.origin) / self.spacing)
        d_vox = np.ascontiguousarray(d_w / self.spacing)
        e_vox = np.ascontiguousarray(pose.elevation / self.spacing)
        timings = {}
        self._contact(cfg, o_vox, d_vox)
        t1 = time.perf_counter()
        timings["contact_ms"] = (t1 - t0) * 1e3
        spreads = body.spreads if body is not None else ()
        t_body = body.time_s if body is not None else None
        inj = self._injectate.field(spreads, t_body)
        lung = lung_motion(p, body)
        slide_t = np.ascontiguousarray((lung.slide_mm @ tx.speckle_rotation) / cfg.cell_mm)
        t2 = time.perf_counter()
        timings["injectate_ms"] = (t2 - t1) * 1e3
        lf, sf, amp = self.splats(cfg, pose, s, needle, points_mm, point_amplitudes)
        has_extra = len(lf) > 0
        if has_extra:  # drawn where they are in the world (the pixel mapping), pressed tissue or not
            b["xre"].fill(0.0)
            b["xim"].fill(0.0)
            K.splat(lf, sf, amp, np.zeros_like(amp), b["xre"], b["xim"])
        t3 = time.perf_counter()
        timings["needle_ms"] = (t3 - t2) * 1e3
        step_db = (tab.alpha * (s.frequency_mhz * grid.dr_mm / 10.0)).astype(np.float32)
        half = (10.0 ** (-step_db / 20.0)).astype(np.float32)
        haze_decay = (tab.haze_decay_mm / grid.dr_mm).astype(np.float32)
        K.beam_lines(
            self.codes, self.labels, o_vox, d_vox, b["y0"], b["contact"], inj.meta, inj.disp, inj.dens,
            e_vox, np.ascontiguousarray(beam_w), 1.0 / self.spacing, self.origin, self.spacing, cfg.tex_a, cfg.tex_b,
            cfg.elev_z, cfg.elev_w,
            tab.b_lo, tab.b_hi, tab.b_mean, tab.texture, p.septum_diffuse, p.septum_wave_mm,
            self.label_axes, tx.muscle, 1.0 / tx.muscle_texel_mm, tx.nerve, 1.0 / tx.nerve_texel_mm,
            tx.fat, 1.0 / tx.fat_texel_mm, tx.fibre_mask, 1.0 / tx.fibre_mask_texel_mm, 1.0 / tx.fibre_mask_texel_along_mm,
            b["xre"], b["xim"], has_extra,
            lat_t, cfg.sub_n, cfg.sub_step, elev_t, cfg.spk_z, cfg.spk_w, cfg.spk_scale,
            cfg.speckle_stride, self.speckle_threshold(s),
            tx.speckle, tx.speckle_seed,
            tab.z, step_db, half, tab.gas, tab.soft, tab.roughness, tab.wall,
            tab.haze, haze_decay, tab.a_lines, tab.slides,
            p.soft_alpha_default * s.frequency_mhz * grid.dr_mm / 10.0,
            math.radians(p.specular_lobe_deg), p.interface_coherent, p.interface_random,
            p.probe_face_reflection, p.n_alines, slide_t, np.ascontiguousarray(lung.ptx, dtype=np.float64),
            cfg.line_order, b["code"], b["bsc"], b["ore"], b["oim"], b["att"], b["alive"],
        )
        t4 = time.perf_counter()
        timings["lines_ms"] = (t4 - t3) * 1e3
        tgc = self._tgc_curve(cfg, s, b["att"], b["alive"])
        env = np.empty((ns, nl), np.float32)
        db = np.empty((ns, nl), np.float32)
        psf_envelope(b["ore"], b["oim"], cfg.axial_kernel, cfg.lat_weights, cfg.lat_half, cfg.noise_re, cfg.noise_im,
                     10 ** (s.noise_db / 20), tgc, env, db)
        t5 = time.perf_counter()
        timings["psf_ms"] = (t5 - t4) * 1e3
        h, w = s.image_shape
        out_db = np.empty((h, w), np.float32)
        out_u8 = np.empty((h, w), np.uint8)
        floor_db = -300.0
        scan_convert(db, cfg.g_idx, cfg.g_fl, cfg.g_fs, p.white_db, s.dynamic_range_db, _GREY_LUT, floor_db, out_db, out_u8)
        t6 = time.perf_counter()
        timings["scan_convert_ms"] = (t6 - t5) * 1e3
        dop_rgba = dop_v = None
        if s.doppler:
            if s.time_s is None and t_body is not None:
                s = replace(s, time_s=t_body)
            dop_v, dop_rgba = doppler(self, cfg, s, pose, o_vox, d_vox, beam_w, turbulence(spreads, t_body))
        vis = None
        if needle is not None:
            vis = needle_visibility(needle.tip_mm, needle.axis, pose, spec, None, depth_mm=s.depth_mm,
                                    frequency_mhz=s.frequency_mhz, shaft_length_mm=needle.length_mm)
        timings["total_ms"] = (time.perf_counter() - t0) * 1e3
        lung_seen = bool(np.any(np.isin(b["code"], np.flatnonzero(tab.slides))))
        animated = bool(t_body is not None and ((lung.moving and lung_seen) or growing(spreads, t_body)
                                                 or (s.doppler and bool(np.any(np.isfinite(dop_v))))))
        return UltrasoundFrame(
            out_db, out_u8, dop_rgba, dop_v, env.T, b["code"].copy(), cfg.geometry, grid, pose, s, vis, tgc,
            timings, floor_db, b["contact"].copy(), b["skin"].copy(), b["stress"].copy(), animated, b["alive"].copy(),
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

    def splats(self, cfg: _Config, pose: ProbePose, s: ScannerSettings, needle: NeedleGeometry | None,
               points_mm=None, point_amplitudes=1.0):
        """Point contributions (fractional line, fractional sample, amplitude) of the needle and
        of point reflectors (see `ultrasound_needle.splats`)."""
        return splats(self.params, cfg, pose, s, needle, points_mm, point_amplitudes)


def _grey_lut() -> np.ndarray:
    x = np.linspace(0.0, 1.0, 1024)
    y = x**1.15
    return np.clip(np.rint(255 * y), 0, 255).astype(np.uint8)


_GREY_LUT = _grey_lut()
