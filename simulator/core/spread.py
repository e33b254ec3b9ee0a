"""Where an injectate goes: a volume-limited fill of the tissue around the needle tip.

Model (a deliberate simplification, documented for instructors):
- The injectate fills the voxels nearest to the tip in *spread distance*, a geodesic distance
  through the tissue-class volume in which loose tissue (fat, loose connective tissue, gel:
  `TISSUE_INFO.loose`) costs 1 per mm and other soft tissue (muscle, skin, nerve) costs 4 per mm,
  and barrier tissue (bone, organ capsules, vessel walls, lung, dura: `TISSUE_INFO.barrier`) is not
  entered at all. The fill stops when its voxels hold the injected volume (1 ml = 1000 mm^3). So a
  bolus in the retroperitoneal fat spreads along the fat planes and flattens against the aorta,
  the crus and the vertebral body; one in the psoas stays small and streaky.
- Tip inside a vessel (artery, vein, heart): intravascular; the injectate is carried away
  (`washout`): it marks the connected vessel lumen near the tip, diluted, for a moment on the
  fluoroscopy, and covers no target.
- Tip in the dural sac (CSF) or cord: intrathecal; the fill stays inside the CSF space.
- Tip inside another barrier tissue (an organ, the lung, bone, a disc): the fill stays inside that
  tissue (intra-organ, intraosseous) and is flagged.
- Tip in air (outside the body or in gas): nothing is deposited in tissue.

The geodesic distance is Dijkstra's on an 18-connected voxel graph (scipy) restricted to a box
around the tip that grows until the fill no longer touches it, so a 20 ml bolus on the bundled CT
takes tens of milliseconds.

Output (`Spread`): the filled voxels as indices into the anatomy grid with the fraction of each
voxel filled (summing to the volume), helpers for a dense sub-grid (for the fluoroscopy engine:
contrast is visible where it lies), the structures the fill touches, and target coverage.

In time (for imaging; the deposit itself is computed once, for the whole volume): the bolus is
given at `INJECTION_RATE_ML_S` from `time_s` on, filling its voxels in fill order (nearest to the
tip first: `injected_ml`, `fill_prefix`); once given, a liquid deposit resorbs with a time
constant of `RESORPTION_TAU_S` (air more slowly): `present_ml`. Each bolus carries its agent;
`agent_class` sorts agents (local anaesthetic, contrast, neurolytic, saline, air). Every liquid
agent - local anaesthetic, saline, iodinated contrast, phenol (in water or glycerol), dehydrated
alcohol - is anechoic on B-mode ultrasound; they differ on fluoroscopy (contrast only) and in
their effect, not in their echo. Air injected by mistake (`air_ml`: an unpurged syringe or
extension line) goes first, at the tip.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulator.core.anatomy import Anatomy
from simulator.core.tissue import BONE, NEURAXIS, TISSUE_INFO, VESSEL, Tissue

LOOSE_COST = 1.0
DENSE_COST = 4.0
WASHOUT_RADIUS_MM = 25.0
WASHOUT_S = 2.0  # how long intravascular contrast stays visible
INJECTION_RATE_ML_S = 0.5  # a slow, steady hand injection: 2 ml in about 4 s
RESORPTION_TAU_S = 1200.0  # a liquid pocket in the tissue planes resorbs over tens of minutes
AIR_RESORPTION_TAU_S = 3600.0  # injected air lingers longer
RIM_CONCENTRATION = 0.2  # share of injected medium at the front of a fill (mixed with tissue fluid)
TEXTURE_AMPLITUDE = 0.45  # relative amplitude of the uneven filling of loose tissue


_AGENT_CLASSES = (
    ("air", ("air",)),
    ("contrast", ("contrast", "iohexol", "iopamidol", "iodixanol", "omnipaque", "isovue", "visipaque", "iopromide")),
    ("neurolytic", ("phenol", "alcohol", "ethanol", "glycerol", "glycerin")),
    ("local_anaesthetic", ("lidocaine", "lignocaine", "bupivacaine", "levobupivacaine", "ropivacaine",
                           "mepivacaine", "prilocaine", "chloroprocaine", "anaesthetic", "anesthetic")),
    ("saline", ("saline", "sodium chloride", "nacl", "dextrose", "water")),
)


def agent_class(agent: str, kind: str = "") -> str:
    """local_anaesthetic | contrast | neurolytic | saline | air (by name, then by the injection's
    kind: contrast -> contrast, neurolytic -> neurolytic, test dose -> local anaesthetic)."""
    a = str(agent).lower()
    for cls, words in _AGENT_CLASSES:
        if any(w in a for w in words):
            return cls
    return {"contrast": "contrast", "neurolytic": "neurolytic", "test_dose": "local_anaesthetic",
            "prognostic": "local_anaesthetic"}.get(kind, "saline")


def _texture(indices: np.ndarray, amplitude: float) -> np.ndarray:
    """A smooth random field at the voxels `indices` (K, 3), mean 1, fixed to the anatomy grid:
    hashed white noise per voxel, smoothed over about two voxels, scaled to `amplitude` (std)."""
    from scipy.ndimage import gaussian_filter

    lo = indices.min(axis=0) - 3
    hi = indices.max(axis=0) + 4
    ii, jj, kk = np.meshgrid(*[np.arange(a, b, dtype=np.uint64) for a, b in zip(lo, hi)], indexing="ij")
    h = (ii * np.uint64(73856093)) ^ (jj * np.uint64(19349663)) ^ (kk * np.uint64(83492791))
    h = (h ^ (h >> np.uint64(13))) * np.uint64(0x5BD1E995)
    h = h ^ (h >> np.uint64(15))
    white = (h & np.uint64(0xFFFF)).astype(np.float64) / 65535.0 - 0.5
    field_ = gaussian_filter(white, (1.6, 1.6, 0.8))
    q = indices - lo
    v = field_[q[:, 0], q[:, 1], q[:, 2]]
    sd = float(field_.std()) or 1.0
    return np.clip(1.0 + amplitude * v / sd, 0.15, 2.0)

_COST = np.full(256, np.inf)
for _t, _info in TISSUE_INFO.items():
    if _t == Tissue.AIR or _info.barrier:
        continue
    _COST[int(_t)] = LOOSE_COST if _info.loose else DENSE_COST

# 18-connectivity: 6 faces and 12 edges (both signs listed).
_OFFSETS = np.array(
    [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, -1, 0), (1, 0, 1), (1, 0, -1), (0, 1, 1), (0, 1, -1)],
    dtype=np.int64,
)
_OFFSETS = np.concatenate([_OFFSETS, -_OFFSETS])


@dataclass
class Spread:
    """One injection's deposit, in the anatomy's voxel grid."""

    volume_ml: float
    origin_mm: np.ndarray  # the tip at injection
    spacing_mm: np.ndarray  # of the anatomy grid
    grid_origin_mm: np.ndarray  # RAS of voxel (0, 0, 0)
    indices: np.ndarray  # (K, 3) int32 voxel indices
    fraction: np.ndarray  # (K,) float32, share of each voxel filled (sums to volume / voxel volume)
    distance_mm: np.ndarray  # (K,) spread distance from the tip (cost-weighted mm)
    tip_tissue: Tissue = Tissue.AIR
    tip_structure: str | None = None
    mode: str = "tissue"  # tissue | intravascular | intrathecal | intra_organ | intraosseous | outside
    washout: bool = False
    overflow_ml: float = 0.0  # volume that found no room (closed compartment) and tracks back
    contacts: dict = field(default_factory=dict)  # structure or tissue touched -> number of voxel faces
    filled: dict = field(default_factory=dict)  # structure name -> ml inside it
    # set by the procedure:
    time_s: float = 0.0
    kind: str = ""
    agent: str = ""
    concentration_pct: float = 0.0
    coverage: dict = field(default_factory=dict)  # target id -> fraction covered (0..1)
    air_ml: float = 0.0  # air injected ahead of the liquid (part of volume_ml)
    rate_ml_s: float = INJECTION_RATE_ML_S

    # --- in time --------------------------------------------------------------------------
    @property
    def agent_class(self) -> str:
        return agent_class(self.agent, self.kind)

    @property
    def duration_s(self) -> float:
        """How long the injection takes at `rate_ml_s`."""
        return float(self.volume_ml) / max(float(self.rate_ml_s), 1e-9)

    def injected_ml(self, time_s: float | None = None) -> float:
        """Volume given by `time_s` (all of it when None)."""
        if time_s is None:
            return float(self.volume_ml)
        return float(min(self.volume_ml, max(0.0, (float(time_s) - self.time_s) * self.rate_ml_s)))

    def present_ml(self, time_s: float | None = None) -> float:
        """Volume still in the tissue at `time_s`: given so far, less what has resorbed since the
        end of the injection (exponential, RESORPTION_TAU_S; an intravascular bolus is gone)."""
        v = self.injected_ml(time_s)
        if self.washout:
            return 0.0 if time_s is None or not self.visible_at(time_s) else v
        if time_s is None:
            return v
        t_end = self.time_s + self.duration_s
        if time_s <= t_end:
            return v
        tau = AIR_RESORPTION_TAU_S if self.agent_class == "air" else RESORPTION_TAU_S
        return float(v * math.exp(-(float(time_s) - t_end) / tau))

    def fill_prefix(self, volume_ml: float) -> tuple[np.ndarray, np.ndarray]:
        """The voxels (indices, filled fraction) holding the first `volume_ml` in fill order
        (nearest to the tip in spread distance first): the deposit as it grows."""
        k = len(self.indices)
        if k == 0 or volume_ml <= 0:
            return self.indices[:0], self.fraction[:0]
        frac = self.fraction.astype(np.float64)
        order = np.argsort(self.distance_mm, kind="stable")
        cum = np.cumsum(frac[order]) * self.voxel_volume_mm3 / 1000.0
        n = int(np.searchsorted(cum, volume_ml - 1e-12) + 1)
        n = min(n, k)
        sel = order[:n]
        out = frac[sel].copy()
        before = cum[n - 2] if n >= 2 else 0.0
        out[-1] = min(out[-1], max(0.0, (volume_ml - before) * 1000.0 / self.voxel_volume_mm3))
        return self.indices[sel], out.astype(np.float32)

    @property
    def intravascular(self) -> bool:
        return self.mode == "intravascular"

    @property
    def intrathecal(self) -> bool:
        return self.mode == "intrathecal"

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing_mm))

    @property
    def deposited_ml(self) -> float:
        return float(self.fraction.astype(np.float64).sum() * self.voxel_volume_mm3 / 1000.0)

    def points_mm(self) -> np.ndarray:
        """RAS centres of the filled voxels."""
        return self.grid_origin_mm + self.indices.astype(np.float64) * self.spacing_mm

    def concentration(self, rim: float = RIM_CONCENTRATION, texture: float = TEXTURE_AMPLITUDE) -> np.ndarray:
        """Relative concentration of the injected medium in each filled voxel (K,), in (0, 1].

        A bolus mixes with the tissue fluid it pushes ahead of it, so the medium is undiluted at
        the tip and thinner towards the front of the fill: by fill order (the share q of the
        volume filled before a voxel; the equivalent radius grows as q^(1/3)) the share falls
        smoothly from 1 to `rim` at the front. In loose tissue the medium runs between fat lobules
        and along septa rather than filling every voxel evenly: a tissue-fixed smooth random
        modulation of relative amplitude `texture` (the same for the same voxels, whatever the
        order of injections) makes the fill a cloud with streaks instead of a uniform block."""
        k = len(self.indices)
        if k == 0:
            return np.zeros(0, np.float32)
        order = np.argsort(self.distance_mm, kind="stable")
        q = np.empty(k, np.float64)
        q[order] = (np.arange(k) + 0.5) / k
        s = np.cbrt(q)
        c = rim + (1.0 - rim) * (1.0 - s ** 1.5)
        if texture > 0 and k > 8:
            c = c * _texture(self.indices, float(texture))
        return np.clip(c, 0.05 * rim, 1.0).astype(np.float32)

    def subgrid(self, margin: int = 1, graded: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A dense box holding the filled fraction of each voxel: (values (a, b, c) float32,
        origin_mm of values[0, 0, 0], spacing_mm). Empty spreads give a 1x1x1 zero box at the tip.
        graded: the filled fraction times the medium's relative concentration (`concentration()`),
        i.e. the share of each voxel that is injected medium, for imaging."""
        if len(self.indices) == 0:
            return np.zeros((1, 1, 1), np.float32), np.asarray(self.origin_mm, float), self.spacing_mm.copy()
        lo = self.indices.min(axis=0) - margin
        hi = self.indices.max(axis=0) + margin
        box = np.zeros(tuple(hi - lo + 1), np.float32)
        q = self.indices - lo
        vals = self.fraction * self.concentration() if graded else self.fraction
        box[q[:, 0], q[:, 1], q[:, 2]] = vals
        return box, self.grid_origin_mm + lo * self.spacing_mm, self.spacing_mm.copy()

    def visible_at(self, time_s: float) -> bool:
        """Whether the deposit still shows (intravascular contrast washes out)."""
        return not self.washout or (time_s - self.time_s) <= WASHOUT_S

    def coverage_of(self, sample_points: np.ndarray, radius_mm: float = 0.0) -> float:
        """Share of the sample points within radius_mm of the deposit: of a filled voxel's centre,
        plus half the voxel's diagonal (so a point inside a filled voxel always counts)."""
        pts = np.atleast_2d(np.asarray(sample_points, dtype=np.float64))
        if len(self.indices) == 0 or self.washout or len(pts) == 0:
            return 0.0
        from scipy.spatial import cKDTree

        tree = cKDTree(self.points_mm())
        d, _ = tree.query(pts, k=1)
        reach = float(radius_mm) + 0.5 * float(np.linalg.norm(self.spacing_mm))
        return float(np.mean(d <= reach))

    def summary(self) -> dict:
        """JSON-ready description (no voxels)."""
        return {
            "volume_ml": self.volume_ml,
            "deposited_ml": round(self.deposited_ml, 6),
            "mode": self.mode,
            "washout": self.washout,
            "overflow_ml": round(self.overflow_ml, 6),
            "tip_tissue": self.tip_tissue.name.lower(),
            "tip_structure": self.tip_structure,
            "contacts": dict(self.contacts),
            "filled": {k: round(v, 6) for k, v in self.filled.items()},
            "coverage": {k: round(v, 6) for k, v in self.coverage.items()},
            "voxels": int(len(self.indices)),
        }


def _box(center_ijk: np.ndarray, half_vox: np.ndarray, shape) -> tuple[np.ndarray, np.ndarray]:
    lo = np.maximum(center_ijk - half_vox, 0)
    hi = np.minimum(center_ijk + half_vox + 1, np.asarray(shape))
    return lo, hi


class _Graph:
    """The 18-connected voxel graph of a cost box (inf = impassable), for scipy's Dijkstra."""

    def __init__(self, cost_box: np.ndarray, spacing: np.ndarray):
        from scipy.sparse import csr_matrix

        # Pad by one impassable voxel so every neighbour of a real voxel exists in the box; edges
        # from or to an impassable voxel weigh inf (Dijkstra never takes them).
        c = np.pad(cost_box, 1, constant_values=np.inf)
        self.shape = c.shape
        n = c.size
        strides = np.array([self.shape[1] * self.shape[2], self.shape[2], 1], dtype=np.int64)
        half = 0.5 * c.ravel()
        k = len(_OFFSETS)
        w = np.empty((k, n))
        ind = np.empty((k, n), dtype=np.int32)
        base = np.arange(n, dtype=np.int32)
        shifted = np.empty(n)
        for j, o in enumerate(_OFFSETS):
            step = int(o @ strides)
            if step > 0:
                shifted[: n - step] = half[step:]
                shifted[n - step:] = np.inf
            else:
                shifted[-step:] = half[: n + step]
                shifted[:-step] = np.inf
            np.add(half, shifted, out=w[j])
            w[j] *= float(np.sqrt(np.sum((o * spacing) ** 2)))
            np.add(base, step, out=ind[j])
        np.clip(ind, 0, n - 1, out=ind)
        self.graph = csr_matrix((w.T.ravel(), ind.T.ravel(), np.arange(0, n * k + 1, k, dtype=np.int32)),
                                shape=(n, n))

    def distances(self, src: tuple, limit: float) -> np.ndarray:
        """Cost-weighted distance from src (box indices) up to `limit` (inf beyond)."""
        from scipy.sparse.csgraph import dijkstra

        s = int(np.ravel_multi_index(tuple(int(x) + 1 for x in src), self.shape))
        d = dijkstra(self.graph, directed=True, indices=s, limit=limit)
        return d.reshape(self.shape)[1:-1, 1:-1, 1:-1]


def _contacts(anatomy: Anatomy, idx: np.ndarray) -> dict:
    """Structures (by name) and barrier tissues whose voxels share a face with the deposit."""
    if len(idx) == 0:
        return {}
    shape = np.asarray(anatomy.shape)
    out: dict[str, int] = {}
    lo = idx.min(axis=0) - 1
    hi = idx.max(axis=0) + 2
    lo_c = np.maximum(lo, 0)
    hi_c = np.minimum(hi, shape)
    mask = np.zeros(tuple(hi_c - lo_c), dtype=bool)
    q = idx - lo_c
    mask[q[:, 0], q[:, 1], q[:, 2]] = True
    from scipy import ndimage

    ring = ndimage.binary_dilation(mask) & ~mask
    ri = np.argwhere(ring) + lo_c
    if len(ri) == 0:
        return {}
    tis = anatomy.tissue[ri[:, 0], ri[:, 1], ri[:, 2]]
    lab = anatomy.labels[ri[:, 0], ri[:, 1], ri[:, 2]]
    for t in np.unique(tis):
        if TISSUE_INFO[Tissue(int(t))].barrier:
            out[f"tissue:{Tissue(int(t)).name.lower()}"] = int(np.sum(tis == t))
    for lb in np.unique(lab):
        if lb == 0:
            continue
        s = anatomy.structures.get(int(lb))
        if s is not None:
            out[s.name] = int(np.sum(lab == lb))
    return out


def _filled(anatomy: Anatomy, idx: np.ndarray, frac: np.ndarray) -> dict:
    if len(idx) == 0:
        return {}
    vv = float(np.prod(anatomy.spacing_mm)) / 1000.0
    lab = anatomy.labels[idx[:, 0], idx[:, 1], idx[:, 2]]
    out = {}
    for lb in np.unique(lab):
        if lb == 0:
            continue
        s = anatomy.structures.get(int(lb))
        name = s.name if s is not None else f"label_{int(lb)}"
        out[name] = float(frac[lab == lb].astype(np.float64).sum() * vv)
    return out


def compute_spread(anatomy: Anatomy, tip_mm, volume_ml: float) -> Spread:
    """The deposit of `volume_ml` injected at `tip_mm` (see the module notes for the model)."""
    if not (volume_ml > 0 and math.isfinite(volume_ml)):
        raise ValueError(f"injection volume must be a positive number of ml, got {volume_ml!r}")
    tip = np.asarray(tip_mm, dtype=np.float64).reshape(3)
    spacing = anatomy.spacing_mm
    vox_mm3 = float(np.prod(spacing))
    shape = np.asarray(anatomy.shape)
    ijk = np.rint(anatomy.ras_to_ijk(tip)).astype(np.int64)
    base = dict(volume_ml=float(volume_ml), origin_mm=tip, spacing_mm=spacing.copy(),
                grid_origin_mm=anatomy.origin_mm.copy())
    empty_idx = np.zeros((0, 3), np.int32)
    if np.any(ijk < 0) or np.any(ijk >= shape):
        return Spread(indices=empty_idx, fraction=np.zeros(0, np.float32), distance_mm=np.zeros(0),
                      mode="outside", overflow_ml=float(volume_ml), **base)
    t0 = Tissue(int(anatomy.tissue[tuple(ijk)]))
    lab0 = int(anatomy.labels[tuple(ijk)])
    s0 = anatomy.structures.get(lab0)
    sname = s0.name if s0 else None
    base.update(tip_tissue=t0, tip_structure=sname)
    if t0 == Tissue.AIR:
        return Spread(indices=empty_idx, fraction=np.zeros(0, np.float32), distance_mm=np.zeros(0),
                      mode="outside", overflow_ml=float(volume_ml), **base)
    volume_mm3 = float(volume_ml) * 1000.0
    r_eq = (3.0 * volume_mm3 / (4.0 * math.pi)) ** (1.0 / 3.0)

    if t0 in VESSEL:
        # Carried away by the blood: the connected lumen near the tip, diluted.
        half = np.ceil(WASHOUT_RADIUS_MM / spacing).astype(np.int64)
        lo, hi = _box(ijk, half, shape)
        sub_t = anatomy.tissue[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        sub_l = anatomy.labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        same = (sub_t == int(t0)) if lab0 == 0 else (sub_l == lab0)
        from scipy import ndimage

        comp, _ = ndimage.label(same)
        c0 = comp[tuple(ijk - lo)]
        sel = np.argwhere(comp == c0)
        pts = anatomy.origin_mm + (sel + lo) * spacing
        sel = sel[np.linalg.norm(pts - tip, axis=1) <= WASHOUT_RADIUS_MM]
        idx = (sel + lo).astype(np.int32)
        f = min(1.0, volume_mm3 / (len(idx) * vox_mm3))
        frac = np.full(len(idx), f, np.float32)
        dist = np.linalg.norm(anatomy.origin_mm + idx * spacing - tip, axis=1)
        sp = Spread(indices=idx, fraction=frac, distance_mm=dist, mode="intravascular", washout=True, **base)
        sp.overflow_ml = max(0.0, volume_ml - sp.deposited_ml)
        sp.filled = _filled(anatomy, idx, frac)
        return sp

    if t0 in NEURAXIS:
        mode = "intrathecal"
        allowed_codes = {int(Tissue.CSF), int(Tissue.SPINAL_CORD)}
    elif t0 in BONE:
        mode = "intraosseous"
        allowed_codes = {int(t0)}
    elif TISSUE_INFO[t0].barrier:
        mode = "intra_organ"
        allowed_codes = {int(t0)}
    else:
        mode = "tissue"
        allowed_codes = None

    need = int(math.ceil(volume_mm3 / vox_mm3 - 1e-9))
    # Start with a box a little larger than the ball of the volume; grow it while the fill
    # touches its faces. Inside a box, Dijkstra runs with a distance limit that grows until
    # enough voxels are reached (it only explores within the limit).
    half_mm = 1.25 * r_eq + 2.0 * float(spacing.max())
    for _attempt in range(8):
        half = np.ceil(half_mm / spacing).astype(np.int64)
        lo, hi = _box(ijk, half, shape)
        sub_t = anatomy.tissue[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        if allowed_codes is None:
            cost = _COST[sub_t]
        else:
            if mode == "intra_organ" and lab0:
                ok = anatomy.labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] == lab0
            else:
                ok = np.isin(sub_t, list(allowed_codes))
            cost = np.where(ok, 1.0, np.inf)
        src = tuple(ijk - lo)
        if not np.isfinite(cost[src]):
            cost = cost.copy()
            cost[src] = 1.0
        graph = _Graph(cost, spacing)
        box_span = float(np.linalg.norm((hi - lo) * spacing)) * (DENSE_COST if mode == "tissue" else 1.0)
        limit = 1.3 * r_eq + 2.0 * float(spacing.max())
        prev_reach = -1
        while True:
            d = graph.distances(src, limit)
            finite = np.isfinite(d)
            n_reach = int(finite.sum())
            if n_reach >= need or limit >= box_span or n_reach == prev_reach:
                break
            prev_reach = n_reach
            limit *= 1.6
        # Box faces touched (only where the box is not clipped by the grid itself).
        border = np.zeros_like(finite)
        for ax in range(3):
            sl_lo = [slice(None)] * 3
            sl_hi = [slice(None)] * 3
            sl_lo[ax] = 0
            sl_hi[ax] = -1
            if lo[ax] > 0:
                border[tuple(sl_lo)] = True
            if hi[ax] < shape[ax]:
                border[tuple(sl_hi)] = True
        flat = d.ravel()
        if n_reach >= need:
            order = np.argpartition(np.where(finite.ravel(), flat, np.inf), need - 1)[:need]
            thresh = float(flat[order].max())
        else:
            order = np.nonzero(finite.ravel())[0]
            thresh = float(flat[order].max()) if len(order) else 0.0
        border_d = d[border & finite]
        touching = len(border_d) > 0 and float(border_d.min()) <= thresh
        if not touching:
            break
        half_mm *= 1.5
    order = order[np.argsort(flat[order], kind="stable")]
    sub_idx = np.stack(np.unravel_index(order, d.shape), axis=1)
    idx = (sub_idx + lo).astype(np.int32)
    dist = flat[order]
    frac = np.ones(len(idx), np.float32)
    overflow = 0.0
    if len(idx) == need:
        frac[-1] = np.float32((volume_mm3 - (need - 1) * vox_mm3) / vox_mm3)
    else:
        overflow = (volume_mm3 - len(idx) * vox_mm3) / 1000.0
    sp = Spread(indices=idx, fraction=frac, distance_mm=dist, mode=mode, overflow_ml=max(0.0, overflow), **base)
    sp.contacts = _contacts(anatomy, idx)
    sp.filled = _filled(anatomy, idx, frac)
    return sp
