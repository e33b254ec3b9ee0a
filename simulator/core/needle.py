"""The needle: its specification, its state, and how it meets the tissue.

Frame: `needle_tip_to_world` (RAS mm). The origin is the tip; +Z is the direction of insertion;
the hub (the base of the shaft) is at tip - length_mm * Z. (Perk Tutor's metrics take a 300 mm
base along the same axis whatever the needle's length; `simulator.core.metrics` does that.)

`TissueProbe` samples the anatomy along lines (nearest voxel, as `Anatomy.tissue_at`):
- the skin entry of a shaft: walking from the hub towards the tip, the first point in the body
  (tissue other than AIR); gas inside the body comes after the skin, so it does not fool it;
- the first bone on a path (cortical or cancellous bone), found to a few hundredths of a
  millimetre, which stops an advancing tip at the bone surface;
- the tissue and structure sequence along a path, for the events of the procedure.

Rules of the needle in tissue (applied by `simulator.core.procedure.Procedure`):
- Advance and withdraw move the tip along its axis. Bone stops an advancing tip where the bone
  begins ("bone contact"); it rests there until it is withdrawn or redirected.
- Before the skin is punctured, changing the direction turns the needle about its tip (it rests
  on the skin). Once in tissue, it turns about the skin entry point: the tip sweeps an arc through
  the tissue at its depth (the tissue-damage metric counts that area). Bone on the new line stops
  the tip at the bone.
- A redirection is counted when, with the tip in tissue, the needle's direction has turned more
  than REDIRECT_DEG (5 degrees) from the direction it had at the last counted redirection (or at
  the skin puncture). Small corrections add up until they pass the threshold. A redirection is
  "proper" when the needle was first withdrawn towards the skin: by at least half of the deepest
  depth reached since the last redirection, or to within 20 mm of the skin.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulator.core.anatomy import Anatomy
from simulator.core.tissue import BONE, Tissue

GAUGE_OD_MM: dict[int, float] = {18: 1.27, 20: 0.91, 21: 0.82, 22: 0.72, 23: 0.64, 25: 0.51}
REDIRECT_DEG = 5.0
PROPER_WITHDRAW_FRACTION = 0.5
PROPER_WITHDRAW_DEPTH_MM = 20.0
PARK_MM = 0.5  # the tip rests this far outside the skin before a puncture

# what stops an advancing tip: bone, and a metal implant (reported as bone contact, named by its structure)
_BONE_CODES = np.array(sorted(int(t) for t in (*BONE, Tissue.METAL)), dtype=np.uint8)
_IS_BONE = np.zeros(256, dtype=bool)
_IS_BONE[_BONE_CODES] = True


@dataclass(frozen=True)
class NeedleSpec:
    gauge: int = 22
    length_mm: float = 150.0
    bevel: str = "chiba"
    bevel_direction_deg: float = 0.0
    curved_tip: bool = False

    def __post_init__(self):
        if self.gauge not in GAUGE_OD_MM:
            raise ValueError(f"needle gauge {self.gauge} is not one of {sorted(GAUGE_OD_MM)}")
        if not self.length_mm > 0:
            raise ValueError(f"needle length_mm must be positive, got {self.length_mm}")

    @property
    def outer_diameter_mm(self) -> float:
        return GAUGE_OD_MM[self.gauge]

    od_mm = outer_diameter_mm

    @classmethod
    def from_scenario(cls, spec) -> "NeedleSpec":
        """From a `scenario_model.NeedleSpec` (or any object with the same fields)."""
        return cls(
            gauge=int(spec.gauge),
            length_mm=float(spec.length_mm),
            bevel=str(spec.bevel),
            bevel_direction_deg=float(spec.bevel_direction_deg),
            curved_tip=bool(getattr(spec, "curved_tip", False)),
        )


@dataclass(frozen=True)
class NeedleState:
    """The needle at one moment (read-only: the procedure makes a new one on every change)."""

    time_s: float
    needle_tip_to_world: np.ndarray  # (4, 4)
    spec: NeedleSpec
    inserted: bool = False  # the tip is past the skin
    skin_entry_mm: np.ndarray | None = None  # where the shaft crosses the skin
    depth_mm: float = 0.0  # along the shaft from the skin entry to the tip
    tissue: Tissue = Tissue.AIR  # at the tip
    structure: str | None = None  # named structure at the tip
    bone_contact: bool = False  # the tip rests against bone
    target_distances_mm: dict = field(default_factory=dict)  # target id -> distance to the target
    tip_visible: bool | None = None  # ultrasound: tip in the image plane (None: not reported)
    profile: object = field(default=None, repr=False, compare=False)  # () -> (structures, tissues), lazy
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def _profile(self) -> tuple[tuple[str, ...], tuple[Tissue, ...]]:
        if "profile" not in self._cache:
            self._cache["profile"] = self.profile() if callable(self.profile) else ((), ())
        return self._cache["profile"]

    @property
    def shaft_structures(self) -> tuple[str, ...]:
        """Named structures along the shaft, skin to tip (computed when first read)."""
        return self._profile()[0]

    @property
    def shaft_tissues(self) -> tuple[Tissue, ...]:
        """Tissue classes along the shaft, skin to tip, runs merged (computed when first read)."""
        return self._profile()[1]

    @property
    def tip_mm(self) -> np.ndarray:
        return self.needle_tip_to_world[:3, 3].copy()

    @property
    def axis(self) -> np.ndarray:
        return self.needle_tip_to_world[:3, 2].copy()

    @property
    def hub_mm(self) -> np.ndarray:
        return self.tip_mm - self.spec.length_mm * self.axis

    def summary(self) -> dict:
        return {
            "time_s": self.time_s,
            "tip_mm": self.tip_mm.tolist(),
            "axis": self.axis.tolist(),
            "inserted": self.inserted,
            "depth_mm": self.depth_mm,
            "skin_entry_mm": None if self.skin_entry_mm is None else self.skin_entry_mm.tolist(),
            "tissue": self.tissue.name.lower(),
            "structure": self.structure,
            "shaft_structures": list(self.shaft_structures),
            "bone_contact": self.bone_contact,
            "target_distances_mm": dict(self.target_distances_mm),
        }


class TissueProbe:
    """Line sampling of an anatomy's tissue and label volumes (nearest voxel)."""

    def __init__(self, anatomy: Anatomy, step_mm: float | None = None):
        self.anatomy = anatomy
        sp = float(np.min(anatomy.spacing_mm))
        self.step_mm = float(step_mm) if step_mm else min(max(0.5 * sp, 0.1), 1.0)
        self._names = {sid: s.name for sid, s in anatomy.structures.items()}
        self._shape = np.asarray(anatomy.shape)

    def name_of(self, label: int) -> str | None:
        return self._names.get(int(label)) if label else None

    def line(self, a, b, include_start: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Points from a to b about `step_mm` apart (b included) and their parameters in [0, 1]."""
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        d = b - a
        dx, dy, dz = d.tolist()
        length = math.sqrt(dx * dx + dy * dy + dz * dz)
        n = max(1, int(math.ceil(length / self.step_mm)))
        t = np.arange(0 if include_start else 1, n + 1) / n
        return a + t[:, None] * d, t

    def tissue_at(self, points) -> np.ndarray:
        """Tissue codes at points (nearest voxel, AIR outside the grid), like Anatomy.tissue_at."""
        an = self.anatomy
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        ijk = np.rint((p - an.origin_mm) / an.spacing_mm).astype(np.int64)
        shape = self._shape
        inside = ((ijk >= 0) & (ijk < shape)).all(axis=1)
        if inside.all():
            return an.tissue[ijk[:, 0], ijk[:, 1], ijk[:, 2]]
        out = np.zeros(len(p), dtype=np.uint8)
        q = ijk[inside]
        out[inside] = an.tissue[q[:, 0], q[:, 1], q[:, 2]]
        return out

    def tissue_label_at(self, points) -> tuple[np.ndarray, np.ndarray]:
        """Tissue codes and labels at points, one voxel lookup for both."""
        an = self.anatomy
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        ijk = np.rint((p - an.origin_mm) / an.spacing_mm).astype(np.int64)
        inside = ((ijk >= 0) & (ijk < self._shape)).all(axis=1)
        tis = np.zeros(len(p), dtype=np.uint8)
        lab = np.zeros(len(p), dtype=an.labels.dtype)
        if inside.all():
            tis[:] = an.tissue[ijk[:, 0], ijk[:, 1], ijk[:, 2]]
            lab[:] = an.labels[ijk[:, 0], ijk[:, 1], ijk[:, 2]]
        elif inside.any():
            q = ijk[inside]
            tis[inside] = an.tissue[q[:, 0], q[:, 1], q[:, 2]]
            lab[inside] = an.labels[q[:, 0], q[:, 1], q[:, 2]]
        return tis, lab

    def _refine(self, a, b, pred, levels: int = 2, n: int = 16) -> tuple[np.ndarray, np.ndarray]:
        """Between a (pred False) and b (pred True): the last False point and the first True point."""
        for _ in range(levels):
            t = np.arange(1, n) / n
            pts = a + t[:, None] * (b - a)
            hit = pred(pts)
            k = int(np.argmax(hit)) if hit.any() else len(t)
            new_a = pts[k - 1] if k > 0 else a
            new_b = pts[k] if k < len(t) else b
            a, b = new_a, new_b
        return a, b

    def first_bone(self, a, b) -> tuple[np.ndarray, np.ndarray, int] | None:
        """First bone on the path a -> b (a itself excluded).

        Returns (stop point: the last non-bone point before the bone, within ~0.02 mm of it;
        first bone point; its label) or None if the path is free of bone."""
        pts, _ = self.line(a, b, include_start=True)
        bone = _IS_BONE[self.tissue_at(pts)]
        bone[0] = False  # the start is where the tip already is
        if not bone.any():
            return None
        k = int(np.argmax(bone))

        def is_bone(p):
            return _IS_BONE[self.tissue_at(p)]

        stop, first = self._refine(pts[k - 1], pts[k], is_bone)
        label = int(self.tissue_label_at(first[None])[1][0])
        return stop, first, label

    def structure_near(self, point, radius_mm: float = 4.0, bone_only: bool = True) -> str | None:
        """The named structure nearest to `point` within radius_mm (bone structures only by
        default): names bone the label map leaves unlabelled (e.g. a cortical rim)."""
        an = self.anatomy
        c = np.rint((np.asarray(point, dtype=np.float64) - an.origin_mm) / an.spacing_mm).astype(np.int64)
        r = np.ceil(radius_mm / an.spacing_mm).astype(np.int64)
        lo = np.maximum(c - r, 0)
        hi = np.minimum(c + r + 1, self._shape)
        if np.any(hi <= lo):
            return None
        lab = an.labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        ok = lab > 0
        if bone_only:
            ok &= _IS_BONE[an.tissue[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]]
        idx = np.argwhere(ok)
        if len(idx) == 0:
            return None
        d = np.linalg.norm((idx + lo - c) * an.spacing_mm, axis=1)
        j = int(np.argmin(d))
        if d[j] > radius_mm:
            return None
        return self.name_of(int(lab[tuple(idx[j])]))

    def skin_entry(self, hub, tip) -> np.ndarray | None:
        """Where a shaft from hub to tip enters the body (first non-AIR point from the hub side),
        or None if the whole shaft is in air. If the hub itself is in the body, the hub."""
        pts, _ = self.line(hub, tip, include_start=True)
        body = self.tissue_at(pts) != int(Tissue.AIR)
        if not body.any():
            return None
        k = int(np.argmax(body))
        if k == 0:
            return np.asarray(hub, dtype=np.float64).copy()

        def in_body(p):
            return self.tissue_at(p) != int(Tissue.AIR)

        _, first = self._refine(pts[k - 1], pts[k], in_body)
        return first

    def body_entry_on_line(self, point, direction, reach_mm: float = 250.0) -> np.ndarray | None:
        """Where a line through `point` along `direction` enters the body, searching from
        reach_mm behind the point forwards to reach_mm past it (None if it never does)."""
        d = np.asarray(direction, dtype=np.float64)
        p = np.asarray(point, dtype=np.float64)
        a = p - reach_mm * d
        b = p + reach_mm * d
        # If the far-behind point is already inside, walk back further until outside (bounded).
        for _ in range(4):
            if self.tissue_at(a[None])[0] == int(Tissue.AIR):
                break
            a = a - reach_mm * d
        return self.skin_entry(a, b)

    def runs(self, a, b, include_start: bool = False) -> list[tuple[float, int, int]]:
        """The tissue/label sequence along a -> b as runs: (parameter where the run starts, tissue, label)."""
        pts, t = self.line(a, b, include_start=include_start)
        tis, lab = self.tissue_label_at(pts)
        key = tis.astype(np.int64) * 65536 + lab.astype(np.int64)
        change = np.ones(len(key), dtype=bool)
        change[1:] = key[1:] != key[:-1]
        idx = np.nonzero(change)[0]
        return [(float(t[i]), int(tis[i]), int(lab[i])) for i in idx]

    def shaft_profile(self, entry, tip) -> tuple[tuple[str, ...], tuple[Tissue, ...]]:
        """Named structures and tissue classes along the shaft from the skin entry to the tip."""
        if entry is None:
            return (), ()
        r = self.runs(entry, tip, include_start=True)
        names: list[str] = []
        tissues: list[Tissue] = []
        for _, tis, lab in r:
            nm = self.name_of(lab)
            if nm and (not names or names[-1] != nm):
                names.append(nm)
            t = Tissue(tis)
            if not tissues or tissues[-1] != t:
                tissues.append(t)
        return tuple(names), tuple(tissues)
