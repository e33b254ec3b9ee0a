"""Acoustic properties per tissue class and the tissue-fixed textures of the B-mode simulator.

Acoustic values follow the literature ranges in the project's ultrasound reference (speed of sound,
density, impedance Z = rho c, attenuation alpha in dB/cm/MHz). Backscatter is given as the RMS
envelope level of the tissue's speckle in dB relative to a perfect specular reflector at normal
incidence (0 dB); textured tissues have a low level (fascicle, fat lobule, muscle fibre bundle) and
a high level (epineurium, fat septum, perimysium). These echogenicity levels are modelling choices
tuned for a believable picture (hypoechoic fat and muscle with bright septa, honeycomb nerves,
anechoic fluid and blood, bright skin and bone surfaces).

Textures are generated from a seed, in patient (world) millimetres, so they move with the tissue:
- speckle: complex Gaussian values on an unbounded 3-D lattice (a hash of each node's integer
  coordinates picks the value from a table of Gaussian quantiles - no memory, no period; the
  lattice is rotated relative to the world axes), trilinearly interpolated;
- muscle: a 2-D cross-section pattern of fibre-bundle septa extruded along the fibre axis (bright
  dots and streaks in transverse section, parallel striations in longitudinal section);
- nerve: a 2-D fascicle pattern (dark round fascicles in bright epineurium) extruded along the
  nerve axis (honeycomb in transverse, fascicular bands in longitudinal section);
- fat: a 2-D lobule pattern (thin bright septa around dark lobules), extruded like muscle.
Muscle and fat septa are fibrous sheets and reflect specularly: each texel carries the sheet's
normal, and the kernels weight its brightness by the angle to the beam (anisotropy), so sheets
facing the probe are bright and steep ones fade.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from scipy.spatial import cKDTree

from simulator.core.paths import user_data_dir
from simulator.core.tissue import Tissue

# Internal acoustic codes beyond the Tissue enum (derived per sample from HU or context).
GAS = 40  # bowel / stomach / airway gas, air pockets (HU < -300 inside the body)
CALCIFICATION = 41  # calcified soft tissue (HU above a threshold outside bone)
COUPLING = 42  # coupling gel between the probe face and the skin
OUTSIDE = 43  # beyond the anatomy's volume: no data - the line ends there without an echo
INJECTATE = 44  # injected liquid: local anaesthetic, saline, contrast, phenol or alcohol (all alike)
INJECTED_AIR = 45  # air injected by mistake (an unpurged syringe or line)
N_CODES = 64

TEX_NONE, TEX_MUSCLE, TEX_NERVE, TEX_FAT = 0, 1, 2, 3


@dataclass(frozen=True)
class Acoustic:
    c_m_s: float
    rho_kg_m3: float
    alpha_db_cm_mhz: float
    backscatter_db: float  # speckle RMS level (low level for textured tissue)
    texture: int = TEX_NONE
    texture_db: float = 0.0  # level of the bright texture component (septa, epineurium)
    roughness: float = 0.15  # diffuse fraction of an interface echo at this tissue's surface
    gas: bool = False  # total reflector (lung, gas): pleural line, A-lines, no transmission
    flow: int = 0  # 1 artery, -1 vein (colour Doppler), 0 none
    wall: float = 0.0  # extra echo amplitude at this tissue's boundary (vessel wall, epineurium)
    # Under the probe: strain per unit of the common column stress, and the largest strain (a vein
    # collapses, fat squeezes, an artery holds its lumen); compliance 0: rigid (the column ends).
    compliance: float = 0.2
    strain_max: float = 0.4
    # Gas only: reverberant haze below it (level relative to the interface echo, decay length),
    # A-lines (a flat pleura or airway wall) and sliding with the breath (the visceral pleura).
    haze: float = 0.0
    haze_decay_mm: float = 10.0
    a_lines: bool = False
    slides: bool = False

    @property
    def z_mrayl(self) -> float:
        return self.c_m_s * self.rho_kg_m3 * 1e-6


T = Tissue
_SOFT = dict(roughness=0.15)
_ORGAN = dict(roughness=0.15, compliance=0.15, strain_max=0.3)
_RIGID = dict(compliance=0.0, strain_max=0.0)
# Gas: the pleura shows A-lines, a faint haze that slides with the breath; gut gas and injected
# air give a bright echo with a "dirty" shadow (reverberant haze fading over ~1 cm).
_DIRTY = dict(gas=True, haze=0.0008, haze_decay_mm=8.0, **_RIGID)
DEFAULT_ACOUSTICS: dict[int, Acoustic] = {
    T.AIR: Acoustic(343, 1.2, 7.5, -200.0, roughness=0.5, **_DIRTY),
    T.SKIN: Acoustic(1620, 1100, 0.35, -38.0, roughness=0.3, compliance=0.25, strain_max=0.4),
    T.FAT: Acoustic(1475, 940, 0.7, -62.0, TEX_FAT, -44.0, roughness=0.25, compliance=1.0, strain_max=0.6),
    T.MUSCLE: Acoustic(1580, 1050, 1.1, -60.0, TEX_MUSCLE, -38.0, roughness=0.2, compliance=0.2, strain_max=0.35),
    T.SOFT_TISSUE: Acoustic(1560, 1060, 0.8, -52.0, roughness=0.15, compliance=0.6, strain_max=0.5),
    T.CORTICAL_BONE: Acoustic(3600, 1900, 15.0, -28.0, roughness=0.5, **_RIGID),
    T.CANCELLOUS_BONE: Acoustic(3000, 1700, 12.0, -30.0, roughness=0.5, **_RIGID),
    T.CARTILAGE: Acoustic(1660, 1100, 1.5, -66.0, roughness=0.15, **_RIGID),
    T.ARTERY: Acoustic(1570, 1025, 0.16, -88.0, roughness=0.1, flow=1, wall=0.05, compliance=0.03, strain_max=0.1),
    T.VEIN: Acoustic(1570, 1025, 0.16, -88.0, roughness=0.1, flow=-1, wall=0.025, compliance=20.0, strain_max=0.92),
    T.HEART: Acoustic(1575, 1040, 0.3, -78.0, roughness=0.1, compliance=0.05, strain_max=0.1),
    T.LUNG: Acoustic(343, 1.2, 40.0, -200.0, gas=True, roughness=0.55, haze=0.0006, haze_decay_mm=15.0,
                     a_lines=True, slides=True, **_RIGID),
    T.AIRWAY: Acoustic(343, 1.2, 40.0, -200.0, gas=True, roughness=0.5, haze=0.004, haze_decay_mm=10.0,
                       a_lines=True, **_RIGID),
    T.LIVER: Acoustic(1580, 1060, 0.6, -50.0, **_ORGAN),
    T.SPLEEN: Acoustic(1565, 1055, 0.5, -51.0, **_ORGAN),
    T.KIDNEY: Acoustic(1560, 1050, 1.0, -53.0, **_ORGAN),
    T.PANCREAS: Acoustic(1570, 1060, 0.8, -47.0, **_ORGAN),
    T.ADRENAL: Acoustic(1560, 1050, 0.8, -52.0, **_ORGAN),
    T.STOMACH: Acoustic(1560, 1045, 0.8, -50.0, roughness=0.15, compliance=0.5, strain_max=0.5),
    T.BOWEL: Acoustic(1560, 1045, 0.8, -50.0, roughness=0.15, compliance=0.5, strain_max=0.5),
    T.GALLBLADDER: Acoustic(1500, 1010, 0.05, -92.0, roughness=0.1, compliance=0.5, strain_max=0.4),
    T.BLADDER: Acoustic(1495, 1005, 0.005, -95.0, roughness=0.1, compliance=0.5, strain_max=0.4),
    T.ESOPHAGUS: Acoustic(1560, 1045, 0.8, -50.0, roughness=0.15, compliance=0.5, strain_max=0.5),
    T.THYROID: Acoustic(1570, 1050, 0.8, -45.0, **_ORGAN),
    T.SPINAL_CORD: Acoustic(1565, 1040, 0.8, -62.0, **_ORGAN),
    T.CSF: Acoustic(1505, 1007, 0.005, -95.0, roughness=0.1, compliance=0.1, strain_max=0.2),
    T.BRAIN: Acoustic(1550, 1040, 0.6, -58.0, **_ORGAN),
    T.NERVE: Acoustic(1630, 1080, 0.8, -68.0, TEX_NERVE, -40.0, roughness=0.3, wall=0.03, compliance=0.15,
                      strain_max=0.3),
    T.FLUID: Acoustic(1480, 1000, 0.002, -100.0, roughness=0.1, compliance=0.3, strain_max=0.3),
    T.GEL: Acoustic(1540, 1020, 0.5, -60.0, roughness=0.1, compliance=0.6, strain_max=0.5),
    T.PROSTATE: Acoustic(1565, 1050, 0.8, -52.0, **_ORGAN),
    T.INTERVERTEBRAL_DISC: Acoustic(1650, 1100, 1.5, -56.0, roughness=0.15, **_RIGID),
    # metal implant (steel): Z 46 MRayl, so 93 % of the pulse reflects at its surface; nothing behind it
    T.METAL: Acoustic(5900, 7900, 60.0, -24.0, roughness=0.3, **_RIGID),
    GAS: Acoustic(343, 1.2, 40.0, -200.0, roughness=0.6, **_DIRTY),
    CALCIFICATION: Acoustic(3200, 1800, 12.0, -30.0, roughness=0.6, **_RIGID),
    COUPLING: Acoustic(1540, 1000, 0.0, -200.0, roughness=0.0, **_RIGID),
    OUTSIDE: Acoustic(1540, 1000, 0.0, -200.0, roughness=0.0, **_RIGID),
    # Injected liquid is anechoic whatever it is: local anaesthetic, saline, iodinated contrast,
    # phenol in water or glycerol, dehydrated alcohol - B-mode cannot tell them apart (the
    # simulator does not invent a difference). Speed of sound ~1500-1530 m/s, water-like density.
    INJECTATE: Acoustic(1515, 1005, 0.002, -100.0, roughness=0.1, compliance=0.5, strain_max=0.3),
    INJECTED_AIR: Acoustic(343, 1.2, 40.0, -200.0, roughness=0.7, gas=True, haze=0.001, haze_decay_mm=8.0,
                           compliance=0.0, strain_max=0.0),
}


@dataclass
class AcousticTable:
    """Per-code arrays (length N_CODES) used by the kernels."""

    z: np.ndarray  # MRayl
    alpha: np.ndarray  # dB/cm/MHz
    b_lo: np.ndarray  # linear speckle amplitude (textured tissue: the dark component)
    b_hi: np.ndarray  # linear amplitude of the bright texture component
    b_mean: np.ndarray  # mean amplitude (used for partial volume from neighbouring elevation planes)
    texture: np.ndarray  # int32 texture kind
    roughness: np.ndarray
    gas: np.ndarray  # uint8
    flow: np.ndarray  # int8: 1 artery, -1 vein
    soft: np.ndarray  # uint8: counts for the automatic TGC (not bone/gas/calcification/coupling)
    wall: np.ndarray  # float32 extra boundary echo
    compliance: np.ndarray  # float64, probe compression
    strain_max: np.ndarray  # float64
    rigid: np.ndarray  # uint8: a compressed column ends here (bone, gas)
    outside_body: np.ndarray  # uint8: air outside the body / beyond the volume (probe contact)
    haze: np.ndarray  # float32, gas: haze level
    haze_decay_mm: np.ndarray  # float32
    a_lines: np.ndarray  # uint8
    slides: np.ndarray  # uint8

    @classmethod
    def build(cls, overrides: dict[int, Acoustic] | None = None) -> "AcousticTable":
        props = dict(DEFAULT_ACOUSTICS)
        for k, v in (overrides or {}).items():
            props[int(k)] = v
        z = np.full(N_CODES, 1.6, np.float64)
        alpha = np.full(N_CODES, 0.8, np.float64)
        b_lo = np.full(N_CODES, 10 ** (-52 / 20), np.float64)
        b_hi = b_lo.copy()
        texture = np.zeros(N_CODES, np.int32)
        rough = np.full(N_CODES, 0.15)
        gas = np.zeros(N_CODES, np.uint8)
        flow = np.zeros(N_CODES, np.int8)
        soft = np.ones(N_CODES, np.uint8)
        wall = np.zeros(N_CODES, np.float32)
        comp = np.full(N_CODES, 0.2)
        smax = np.full(N_CODES, 0.4)
        haze = np.zeros(N_CODES, np.float32)
        haze_decay = np.full(N_CODES, 10.0, np.float32)
        a_lines = np.zeros(N_CODES, np.uint8)
        slides = np.zeros(N_CODES, np.uint8)
        for code, a in props.items():
            wall[code] = a.wall
            comp[code] = a.compliance
            smax[code] = a.strain_max
            haze[code] = a.haze
            haze_decay[code] = max(a.haze_decay_mm, 0.1)
            a_lines[code] = 1 if a.a_lines else 0
            slides[code] = 1 if a.slides else 0
            z[code] = a.z_mrayl
            alpha[code] = a.alpha_db_cm_mhz
            b_lo[code] = 10 ** (a.backscatter_db / 20)
            b_hi[code] = 10 ** ((a.texture_db if a.texture else a.backscatter_db) / 20)
            texture[code] = a.texture
            rough[code] = a.roughness
            gas[code] = 1 if a.gas else 0
            flow[code] = a.flow
        for code in (T.CORTICAL_BONE, T.CANCELLOUS_BONE, CALCIFICATION, COUPLING, OUTSIDE, GAS, T.LUNG, T.AIRWAY, T.AIR,
                     INJECTED_AIR):
            soft[code] = 0
        rigid = ((comp <= 0.0) | (gas != 0)).astype(np.uint8)
        outside_body = np.zeros(N_CODES, np.uint8)
        outside_body[[int(T.AIR), OUTSIDE, COUPLING]] = 1
        # Texture fill fractions (mean of the texture field) give the mean amplitude.
        fill = {TEX_MUSCLE: 0.06, TEX_NERVE: 0.55, TEX_FAT: 0.05}
        b_mean = b_lo.copy()
        for code in range(N_CODES):
            if texture[code]:
                f = fill[int(texture[code])]
                b_mean[code] = math.sqrt((1 - f) * b_lo[code] ** 2 + f * b_hi[code] ** 2)
        return cls(
            z.astype(np.float32),
            alpha.astype(np.float32),
            b_lo.astype(np.float32),
            b_hi.astype(np.float32),
            b_mean.astype(np.float32),
            texture,
            rough.astype(np.float32),
            gas,
            flow,
            soft,
            wall,
            comp,
            smax,
            rigid,
            outside_body,
            haze,
            haze_decay,
            a_lines,
            slides,
        )


def gas_hu_codes() -> np.ndarray:
    """uint8[N_CODES]: tissue codes whose voxels become GAS below the gas HU threshold: the gut
    and airway (their gas), and unlabelled soft tissue (air pockets). Not skin, fat or muscle:
    their voxels at the body outline are partly air in the CT and would make a gas skin."""
    m = np.zeros(N_CODES, np.uint8)
    for t in (T.STOMACH, T.BOWEL, T.ESOPHAGUS, T.SOFT_TISSUE, T.AIRWAY):
        m[t] = 1
    return m


def calcification_hu_thresholds() -> np.ndarray:
    """float32[N_CODES]: HU above which a voxel of this class is treated as calcification."""
    th = np.full(N_CODES, 1e9, np.float32)
    for t in (T.SOFT_TISSUE, T.MUSCLE, T.FAT, T.LIVER, T.SPLEEN, T.KIDNEY, T.PANCREAS, T.ADRENAL, T.STOMACH,
              T.BOWEL, T.ESOPHAGUS, T.THYROID, T.PROSTATE, T.GALLBLADDER, T.BLADDER, T.SKIN, T.NERVE):
        th[t] = 450.0
    for t in (T.ARTERY, T.VEIN, T.HEART):  # contrast-enhanced lumen can reach 400 HU
        th[t] = 900.0
    return th


# --------------------------------------------------------------------------------------------
# Textures
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Textures:
    speckle: np.ndarray  # float32 (256,): Gaussian quantiles / sqrt(2) (unit complex power)
    speckle_seed: int  # mixed into the lattice hash
    speckle_rotation: np.ndarray  # 3x3: world -> lattice axes (p @ rotation)
    muscle: np.ndarray  # uint8 (P, P, 3): septum strength, normal (u, v) in the fibre cross-section
    muscle_texel_mm: float
    nerve: np.ndarray  # float32 (Q, Q), 1 epineurium, 0 fascicle
    nerve_texel_mm: float
    fat: np.ndarray  # uint8 (P, P, 3): septum strength, normal (u, v) in the cross-section
    fat_texel_mm: float
    fibre_mask: np.ndarray  # uint8 (M, M, L, 2): septum continuity along the fibres, waviness
    fibre_mask_texel_mm: float  # across the fibres (u, v)
    fibre_mask_texel_along_mm: float  # along them (w)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _periodic_seeds(rng, n_cells: int, dim: int, jitter: float = 0.8) -> np.ndarray:
    """Jittered-grid seeds in the unit torus [0, 1)^dim (about one per grid cell)."""
    g = np.stack(np.meshgrid(*([np.arange(n_cells)] * dim), indexing="ij"), -1).reshape(-1, dim).astype(float)
    pts = (g + 0.5 + jitter * (rng.random(g.shape) - 0.5)) / n_cells
    return pts % 1.0


def _periodic_query(seeds: np.ndarray, queries: np.ndarray, k: int = 2):
    """Nearest seeds on the unit torus (seeds replicated into the neighbouring tiles)."""
    dim = seeds.shape[1]
    shifts = np.stack(np.meshgrid(*([np.array([-1.0, 0.0, 1.0])] * dim), indexing="ij"), -1).reshape(-1, dim)
    tiled = (seeds[None, :, :] + shifts[:, None, :]).reshape(-1, dim)
    tree = cKDTree(tiled)
    d, i = tree.query(queries, k=k, workers=-1)
    return d, tiled[i], i % len(seeds)


def _voronoi_border_distance(seeds: np.ndarray, queries: np.ndarray):
    """Distance (torus units) from each query to the nearest Voronoi border and that border's
    unit normal (the direction between the two nearest seeds)."""
    d, nearest, _ = _periodic_query(seeds, queries, k=2)
    s1, s2 = nearest[:, 0], nearest[:, 1]
    diff = s2 - s1
    den = np.maximum(np.linalg.norm(diff, axis=1), 1e-12)
    # Exact distance to the bisector of the two nearest seeds.
    num = np.einsum("ij,ij->i", queries - 0.5 * (s1 + s2), diff)
    return np.abs(num) / den, diff / den[:, None]


def _encode(strength: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """uint8 texels: channel 0 strength 0..255, then the normal components mapped to 0..254."""
    out = np.empty(strength.shape + (1 + normal.shape[-1],), np.uint8)
    out[..., 0] = np.clip(np.rint(strength * 255), 0, 255)
    out[..., 1:] = np.clip(np.rint((normal + 1.0) * 127.0), 0, 254)
    return out


def _smooth_periodic_noise(rng, shape, sigma_px: float) -> np.ndarray:
    """Gaussian-filtered periodic white noise, normalised to zero mean, unit std (FFT)."""
    n = rng.normal(size=shape)
    f = np.fft.fftn(n)
    freqs = np.meshgrid(*[np.fft.fftfreq(s) for s in shape], indexing="ij")
    k2 = sum(fr**2 for fr in freqs)
    out = np.real(np.fft.ifftn(f * np.exp(-2 * (math.pi**2) * sigma_px**2 * k2)))
    out -= out.mean()
    return out / max(out.std(), 1e-12)


def _muscle_texture(rng, size: int = 512, texel_mm: float = 0.06) -> np.ndarray:
    """(P, P, 3) uint8: septum strength and its in-plane normal (u, v) in the fibre cross-section."""
    period = size * texel_mm
    uv = (np.stack(np.meshgrid(np.arange(size), np.arange(size), indexing="ij"), -1).reshape(-1, 2) + 0.5) / size
    # Fibre bundles (~1.8 mm) with perimysium septa, plus finer, fainter septa (~0.7 mm).
    coarse = _periodic_seeds(rng, max(2, int(round(period / 1.8))), 2)
    fine = _periodic_seeds(rng, max(2, int(round(period / 0.7))), 2)
    d1, n1 = _voronoi_border_distance(coarse, uv)
    d2, n2 = _voronoi_border_distance(fine, uv)
    w = 0.07 / period
    sept = np.exp(-0.5 * (d1 / w) ** 2)
    sept_fine = np.exp(-0.5 * (d2 / (0.8 * w)) ** 2)
    # Break the network into dots and streaks ("starry sky"): smooth random masks.
    mask = np.clip(_smooth_periodic_noise(rng, (size, size), sigma_px=0.6 / texel_mm) + 0.2, 0.0, 1.0).ravel()
    mask2 = np.clip((_smooth_periodic_noise(rng, (size, size), sigma_px=0.4 / texel_mm) - 0.3) / 0.8, 0.0, 1.0).ravel()
    a = sept * mask
    b = 0.55 * sept_fine * mask2
    strength = np.maximum(a, b)
    normal = np.where((a >= b)[:, None], n1, n2)
    return _encode(strength.reshape(size, size), normal.reshape(size, size, 2))


def _nerve_texture(rng, size: int = 320, texel_mm: float = 0.025) -> np.ndarray:
    period = size * texel_mm
    uv = (np.stack(np.meshgrid(np.arange(size), np.arange(size), indexing="ij"), -1).reshape(-1, 2) + 0.5) / size
    seeds = _periodic_seeds(rng, max(2, int(round(period / 1.0))), 2, jitter=0.7)
    radii = (0.30 + 0.14 * rng.random(len(seeds))) / period  # fascicle radius 0.30-0.44 mm
    d, _, idx = _periodic_query(seeds, uv, k=1)
    edge = 0.05 / period
    inside = 1.0 / (1.0 + np.exp(-(radii[idx] - d) / (0.35 * edge)))
    tex = (1.0 - inside).reshape(size, size)
    return tex.astype(np.float32)


def _fibre_mask(rng, size: int = 64, length: int = 32, texel_mm: float = 0.5, texel_along_mm: float = 2.0) -> np.ndarray:
    """(M, M, L, 2) uint8, periodic: channel 0 the continuity of a septum along the fibres (0..1:
    segments ~5-15 mm long, independent ~1 mm across), channel 1 a slow lateral waviness (-1..1,
    ~1 cm along, ~4 mm across). Septa of muscle and fat are sheets of finite extent, slightly
    undulating: extruded without it, every septum would cross a long-axis image as a straight rule."""
    def noise(sig_across_mm, sig_along_mm):
        n = rng.normal(size=(size, size, length))
        f = np.fft.fftn(n)
        fu = np.fft.fftfreq(size)[:, None, None] / texel_mm
        fw = np.fft.fftfreq(length)[None, None, :] / texel_along_mm
        fv = np.fft.fftfreq(size)[None, :, None] / texel_mm
        k = (sig_across_mm**2) * (fu**2 + fv**2) + (sig_along_mm**2) * fw**2
        out = np.real(np.fft.ifftn(f * np.exp(-2 * math.pi**2 * k)))
        out -= out.mean()
        return out / max(out.std(), 1e-12)

    cont = np.clip((noise(0.5, 2.0) + 0.1) / 0.8, 0.0, 1.0)
    wave = np.clip(noise(2.0, 4.0) / 2.5, -1.0, 1.0)
    out = np.empty((size, size, length, 2), np.uint8)
    out[..., 0] = np.rint(cont * 255)
    out[..., 1] = np.rint((wave + 1.0) * 127.5)
    return out


def _fat_texture(rng, size: int = 512, texel_mm: float = 0.06) -> np.ndarray:
    """(P, P, 3) uint8: septum strength around ~3.5 mm lobules (a cross-section pattern extruded
    along the structure's axis, like muscle), and the septum's in-plane normal."""
    period = size * texel_mm
    uv = (np.stack(np.meshgrid(np.arange(size), np.arange(size), indexing="ij"), -1).reshape(-1, 2) + 0.5) / size
    seeds = _periodic_seeds(rng, max(2, int(round(period / 3.5))), 2)
    dist, normal = _voronoi_border_distance(seeds, uv)
    w = 0.06 / period
    sept = np.exp(-0.5 * (dist / w) ** 2)
    mask = np.clip(_smooth_periodic_noise(rng, (size, size), sigma_px=0.8 / texel_mm) + 0.3, 0.0, 1.0).ravel()
    return _encode((sept * mask).reshape(size, size), normal.reshape(size, size, 2))


TEXTURE_VERSION = 10


@lru_cache(maxsize=4)
def make_textures(seed: int = 20240611) -> Textures:
    """The tissue-fixed textures (deterministic for a seed). Cached per process and on disk in
    the user's data folder (`cache/us_textures_v*_SEED_N.npz`), since building them takes ~2 s."""
    cache = user_data_dir() / "cache" / f"us_textures_v{TEXTURE_VERSION}_{seed}.npz"
    try:
        with np.load(cache) as z:
            return Textures(
                z["speckle"], int(z["speckle_seed"]), z["rotation"], z["muscle"], float(z["muscle_texel"]), z["nerve"],
                float(z["nerve_texel"]), z["fat"], float(z["fat_texel"]), z["fibre_mask"],
                float(z["fibre_mask_texel"]), float(z["fibre_mask_along"]),
            )
    except (OSError, KeyError, ValueError):
        pass
    tex = _build_textures(seed)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, speckle=tex.speckle, speckle_seed=tex.speckle_seed, rotation=tex.speckle_rotation, muscle=tex.muscle,
                 muscle_texel=tex.muscle_texel_mm, nerve=tex.nerve, nerve_texel=tex.nerve_texel_mm,
                 fat=tex.fat, fat_texel=tex.fat_texel_mm, fibre_mask=tex.fibre_mask,
                 fibre_mask_texel=tex.fibre_mask_texel_mm, fibre_mask_along=tex.fibre_mask_texel_along_mm)
        tmp.replace(cache)
    except OSError:
        pass  # a read-only data folder only costs the rebuild next time
    return tex


def _build_textures(seed: int) -> Textures:
    from scipy.special import ndtri

    rng = np.random.default_rng(seed)
    quantiles = (ndtri((np.arange(256) + 0.5) / 256) / math.sqrt(2.0)).astype(np.float32)
    quantiles /= math.sqrt(2.0 * float(np.mean(quantiles.astype(np.float64) ** 2)))  # E|re + i im|^2 = 1
    rot = _random_rotation(rng)
    hseed = int(rng.integers(0, 2**32))
    muscle = _muscle_texture(np.random.default_rng(seed + 1))
    nerve = _nerve_texture(np.random.default_rng(seed + 2))
    fat = _fat_texture(np.random.default_rng(seed + 3))
    mask = _fibre_mask(np.random.default_rng(seed + 4))
    return Textures(quantiles, hseed, rot, muscle, 0.06, nerve, 0.025, fat, 0.06, mask, 0.5, 2.0)


def with_overrides(base: dict[int, Acoustic], **changes) -> dict[int, Acoustic]:
    """Convenience for tests and scenarios: {code: replace(acoustic, **fields)}."""
    return {k: replace(v, **changes) for k, v in base.items()}
