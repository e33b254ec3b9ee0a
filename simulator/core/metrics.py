"""Metrics of an attempt: Perk Tutor's core metrics, exactly, and ours beside them.

Perk Tutor core metrics (PerkLab's PythonMetrics definitions, reimplemented)
---------------------------------------------------------------------------
Input: frames i = 0..N-1 with time t_i (s) and NeedleTipToWorld M_i (4x4, mm). The tip p_i is the
translation of M_i; the needle axis is +Z of the tip frame by default (`axis`, any of +-X/Y/Z);
the needle base is b_i = M_i (-300 * axis, 1) (Perk Tutor's 300 mm, whatever the real needle).
"Inside" is the inside of the Tissue surface (a closed mesh; here `MeshLocator.contains`).
- elapsed time = sum over i >= 1 of (t_i - t_{i-1})
- path length = sum of |p_i - p_{i-1}|
- path in tissue = sum of |p_i - p_{i-1}| over i >= 1 where p_i is inside
- time in tissue = sum of (t_i - t_{i-1}) over i >= 1 where p_i is inside
- potential tissue damage: for i >= 1 where p_i and p_{i-1} are both inside, with E_i the first
  intersection of the segment p_i -> b_i with the surface (Perk Tutor uses the origin (0, 0, 0)
  when that segment does not meet the surface - kept, for identical numbers), add
  Heron(p_i, p_{i-1}, E_i) + Heron(E_i, E_{i-1}, p_{i-1}): the area swept by the buried shaft.
- tissue punctures: +1 when the tip and the points 1 mm before and after it along the axis are
  all inside after an "out" state; back to "out" when all three are outside.
Sums run in frame order, one term at a time, as Perk Tutor adds them, so the numbers agree with its
to the last bits of double precision (up to the surface queries themselves).

`perk_core_metrics` computes all of them for whole arrays at once (vectorised, with repeated poses
computed once); `PerkAccumulator` takes one frame at a time (the live score during an attempt, and
the plain per-sample loop the benchmark compares against). Both give the same numbers.

Ours (`attempt_metrics`, from a recording): tip-to-target distances (final, minimum), target
reached, angle to the planned trajectory, skin punctures (the puncture rule above), redirections,
contacts with critical structures by severity, bone contacts, advances without imaging,
fluoroscopy shots / time / dose, tip visibility under ultrasound, procedure-step order, agent
coverage of the targets and off-target spread. Definitions are in `attempt_metrics`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulator.core.anatomy import Anatomy
from simulator.core.events import EventKind
from simulator.core.geometry import (
    MeshLocator,
    angle_between_deg,
    ball_samples,
    distance3,
    heron_area,
    locator_for,
    point_polyline_distance,
    polyline_samples,
    sphere_distance,
    tube_distance,
)
from simulator.core.tissue import Tissue

PERK_NEEDLE_LENGTH_MM = 300.0
PUNCTURE_OFFSET_MM = 1.0
OFF_TARGET_MARGIN_MM = 20.0  # deposit farther than tolerance + this from every target is off target
NERVE_CONTACT_MM = 1.0
AXES = {"+x": (1.0, 0.0, 0.0), "-x": (-1.0, 0.0, 0.0), "+y": (0.0, 1.0, 0.0), "-y": (0.0, -1.0, 0.0),
        "+z": (0.0, 0.0, 1.0), "-z": (0.0, 0.0, -1.0)}


def parse_axis(axis) -> tuple[float, float, float]:
    """'+Z', '-x', 'z' or a 3-vector -> the needle axis in the tip frame."""
    if isinstance(axis, str):
        key = axis.strip().lower()
        if key in ("x", "y", "z"):
            key = "+" + key
        if key not in AXES:
            raise ValueError(f"needle axis {axis!r}: expected one of +X -X +Y -Y +Z -Z")
        return AXES[key]
    v = tuple(float(x) for x in axis)
    if len(v) != 3:
        raise ValueError(f"needle axis {axis!r}: expected three numbers")
    return v


# --------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------


@dataclass
class TargetGeometry:
    """A scenario target resolved to points in the anatomy."""

    id: str
    name: str
    kind: str  # point | polyline | sphere
    points_mm: np.ndarray  # (K, 3)
    radius_mm: float = 0.0
    tolerance_mm: float = 5.0
    required: bool = True
    side: str = "midline"
    somatic: bool | None = None

    def distance(self, points) -> np.ndarray:
        """Distance from each point to the target (0 inside a nerve or sphere)."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        if self.kind == "point" and len(p) == 1:
            c = self._c if hasattr(self, "_c") else self.points_mm[0].tolist()
            x, y, z = p[0].tolist()
            return np.array([math.sqrt((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2)])
        if self.kind == "polyline":
            return tube_distance(p, self.points_mm, self.radius_mm)
        if self.kind == "sphere":
            return sphere_distance(p, self.points_mm[0], self.radius_mm)
        return np.linalg.norm(p - self.points_mm[0], axis=1)

    def centre_distance(self, points) -> np.ndarray:
        p = np.atleast_2d(np.asarray(points, dtype=np.float64))
        return point_polyline_distance(p, self.points_mm)

    def coverage_samples(self) -> tuple[np.ndarray, float]:
        """Points that the agent should reach, and the radius around each that counts
        (polyline: the nerve every 1 mm with its radius; sphere: its volume; point: the point)."""
        if self.kind == "polyline":
            return polyline_samples(self.points_mm, 1.0), float(self.radius_mm)
        if self.kind == "sphere":
            step = max(1.0, self.radius_mm / 5.0)
            return ball_samples(self.points_mm[0], self.radius_mm, step), 0.0
        return self.points_mm[:1].copy(), 0.0

    @property
    def is_nerve(self) -> bool:
        """A somatic nerve whose touch gives paraesthesia (sympathetic plexus targets do not)."""
        if self.somatic is not None:
            return self.somatic
        autonomic = any(w in f"{self.id} {self.name}".lower() for w in ("sympath", "splanchnic", "plexus", "ganglion"))
        return self.kind == "polyline" and not autonomic

    @property
    def centre_mm(self) -> np.ndarray:
        return self.points_mm.mean(axis=0)

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "kind": self.kind, "points_mm": self.points_mm.tolist(),
                "radius_mm": self.radius_mm, "tolerance_mm": self.tolerance_mm, "required": self.required,
                "side": self.side, "somatic": self.somatic}


def resolve_targets(scenario, anatomy: Anatomy, overrides: dict | None = None) -> list[TargetGeometry]:
    """The scenario's targets as geometry: `overrides[id]` (points), else `points_mm`, else the
    anatomy's proposal of that name."""
    from simulator.core.proposals import target_points  # late: scipy label analysis

    out = []
    overrides = overrides or {}
    for t in scenario.targets:
        pts = overrides.get(t.id)
        if pts is None:
            pts = target_points(anatomy, t.points_mm, t.proposal)
        if pts is None:
            raise ValueError(f"target {t.id!r}: no points_mm and the anatomy offers no proposal {t.proposal!r}")
        arr = np.atleast_2d(np.asarray(pts, dtype=np.float64))
        kind = t.kind
        if kind in ("point", "sphere") and len(arr) > 1:
            arr = arr[:1] if kind == "sphere" else arr.mean(axis=0, keepdims=True)
        out.append(TargetGeometry(id=t.id, name=t.name, kind=kind, points_mm=arr, radius_mm=float(t.radius_mm),
                                  tolerance_mm=float(t.tolerance_mm), required=bool(t.required), side=t.side,
                                  somatic=getattr(t, "somatic", None)))
    return out


# --------------------------------------------------------------------------------------------
# The body surface ("Tissue" in Perk Tutor)
# --------------------------------------------------------------------------------------------


class VoxelBody:
    """The body as the voxels that are not AIR (used when an anatomy has no skin mesh).

    Inside: nearest voxel is not AIR. First intersection of a segment: walk from its start in
    steps of half the smallest voxel and refine the first step that changes side to 1e-3 mm."""

    def __init__(self, anatomy: Anatomy):
        self.anatomy = anatomy
        self.step = 0.5 * float(np.min(anatomy.spacing_mm))

    def contains(self, points) -> np.ndarray:
        return self.anatomy.tissue_at(np.atleast_2d(points)) != int(Tissue.AIR)

    def contains_point(self, p) -> bool:
        return bool(self.contains(np.asarray(p, dtype=np.float64)[None])[0])

    def first_intersection(self, p0, p1):
        a = np.atleast_2d(np.asarray(p0, dtype=np.float64))
        b = np.atleast_2d(np.asarray(p1, dtype=np.float64))
        n = len(a)
        frac = np.full(n, np.inf)
        point = np.full((n, 3), np.nan)
        for i in range(n):
            length = float(np.linalg.norm(b[i] - a[i]))
            if length == 0:
                continue
            m = max(2, int(math.ceil(length / self.step)) + 1)
            t = np.linspace(0.0, 1.0, m)
            pts = a[i] + t[:, None] * (b[i] - a[i])
            ins = self.contains(pts)
            ch = np.nonzero(ins[1:] != ins[0])[0]
            if len(ch) == 0:
                continue
            lo, hi = t[ch[0]], t[ch[0] + 1]
            side = ins[0]
            for _ in range(40):
                if (hi - lo) * length < 1e-3:
                    break
                mid = 0.5 * (lo + hi)
                if self.contains(a[i] + mid * (b[i] - a[i]))[0] == side:
                    lo = mid
                else:
                    hi = mid
            frac[i] = hi
            point[i] = a[i] + hi * (b[i] - a[i])
        return np.isfinite(frac), frac, point

    def first_intersection_point(self, p0, p1):
        h, f, p = self.first_intersection(np.asarray(p0)[None], np.asarray(p1)[None])
        return bool(h[0]), float(f[0]), p[0]


def body_surface(anatomy: Anatomy):
    """The closed surface Perk Tutor would call Tissue: the anatomy's skin mesh when it has a
    watertight one (a cached `MeshLocator`), else the non-air voxels."""
    mesh = anatomy.meshes.get("skin")
    if mesh is not None and mesh.n_triangles > 0:
        return locator_for(mesh)
    return VoxelBody(anatomy)


# --------------------------------------------------------------------------------------------
# Perk Tutor core metrics
# --------------------------------------------------------------------------------------------

CORE_KEYS = ("elapsed_time_s", "path_length_mm", "path_in_tissue_mm", "time_in_tissue_s", "tissue_damage_mm2",
             "tissue_punctures")


def needle_base(matrices: np.ndarray, axis=(0.0, 0.0, 1.0), length_mm: float = PERK_NEEDLE_LENGTH_MM) -> np.ndarray:
    """Perk Tutor's needle base M (-length * axis, 1), evaluated in vtkMatrix4x4's order."""
    m = np.asarray(matrices, dtype=np.float64)
    nb = [x * -length_mm for x in axis]
    return m[..., :3, 0] * nb[0] + m[..., :3, 1] * nb[1] + m[..., :3, 2] * nb[2] + m[..., :3, 3] * 1.0


def _seq_sum(values: np.ndarray) -> float:
    """Sum in order, one term at a time (as a Python loop adds)."""
    if len(values) == 0:
        return 0.0
    return float(np.cumsum(values)[-1])


def _runs_of_equal(m: np.ndarray) -> np.ndarray:
    """Index of the first frame of the run of identical consecutive poses each frame belongs to."""
    n = len(m)
    if n == 0:
        return np.zeros(0, np.int64)
    flat = m.reshape(n, -1)
    new = np.ones(n, dtype=bool)
    new[1:] = np.any(flat[1:] != flat[:-1], axis=1)
    first = np.nonzero(new)[0]
    return first[np.cumsum(new) - 1]


def perk_core_metrics(time_s, needle_tip_to_world, surface, axis=(0.0, 0.0, 1.0),
                      base_mm: float = PERK_NEEDLE_LENGTH_MM, inside: np.ndarray | None = None) -> dict:
    """Perk Tutor's core metrics for whole arrays (see the module notes). `inside` may pass the
    tip-inside flags when the caller has them."""
    t = np.asarray(time_s, dtype=np.float64)
    m = np.asarray(needle_tip_to_world, dtype=np.float64)
    n = len(t)
    out = dict.fromkeys(CORE_KEYS, 0.0)
    out["tissue_punctures"] = 0
    if n == 0:
        return out
    axis = np.asarray(parse_axis(axis), dtype=np.float64)
    p = m[:, :3, 3]
    rep = _runs_of_equal(m)
    first = np.ones(n, dtype=bool)
    first[1:] = rep[1:] != rep[:-1]
    uniq = rep[first]  # rep is non-decreasing: its distinct values in order
    # tip and the +-1 mm points along the axis, inside tests on distinct poses only
    off = [x * PUNCTURE_OFFSET_MM for x in axis]
    fwd = m[:, :3, 0] * off[0] + m[:, :3, 1] * off[1] + m[:, :3, 2] * off[2] + m[:, :3, 3]
    bwd = m[:, :3, 0] * -off[0] + m[:, :3, 1] * -off[1] + m[:, :3, 2] * -off[2] + m[:, :3, 3]
    q = np.concatenate([p[uniq], fwd[uniq], bwd[uniq]])
    ins_q = surface.contains(q)
    k = len(uniq)
    pos = np.searchsorted(uniq, rep)
    ins_tip = ins_q[:k][pos] if inside is None else np.asarray(inside, dtype=bool)
    ins_f = ins_q[k:2 * k][pos]
    ins_b = ins_q[2 * k:][pos]
    if n >= 2:
        dt = t[1:] - t[:-1]
        d = distance3(p[1:], p[:-1])
        inn = ins_tip[1:]
        out["elapsed_time_s"] = _seq_sum(dt)
        out["path_length_mm"] = _seq_sum(d)
        out["path_in_tissue_mm"] = _seq_sum(np.where(inn, d, 0.0))
        out["time_in_tissue_s"] = _seq_sum(np.where(inn, dt, 0.0))
        both = np.nonzero(ins_tip[1:] & ins_tip[:-1])[0] + 1
        if len(both):
            mark = np.zeros(n, dtype=bool)
            mark[rep[both]] = True
            mark[rep[both - 1]] = True
            need = np.nonzero(mark)[0]
            base = needle_base(m[need], axis, base_mm)
            hit, _, ent = surface.first_intersection(p[need], base)
            ent = np.where(hit[:, None], ent, 0.0)  # Perk Tutor: no intersection leaves (0, 0, 0)
            e_idx = np.searchsorted(need, rep[both])
            e_prev = np.searchsorted(need, rep[both - 1])
            ei = ent[e_idx]
            ep = ent[e_prev]
            a1 = heron_area(p[both], p[both - 1], ei)
            a2 = heron_area(ei, ep, p[both - 1])
            inter = np.empty(2 * len(both))
            inter[0::2] = a1
            inter[1::2] = a2
            out["tissue_damage_mm2"] = _seq_sum(inter)
    # punctures: state machine with hysteresis, vectorised by forward filling the decisions
    all3 = ins_tip & ins_f & ins_b
    none3 = ~ins_tip & ~ins_f & ~ins_b
    decided = all3 | none3
    idx = np.where(decided, np.arange(n), -1)
    last = np.maximum.accumulate(idx)
    state = np.where(last >= 0, all3[np.maximum(last, 0)], False)
    prev = np.concatenate([[False], state[:-1]])
    out["tissue_punctures"] = int(np.sum(state & ~prev))
    return out


def _dist(a, b) -> float:
    dx = a[0] - b[0]
    dy = a[1] - b[1]
    dz = a[2] - b[2]
    return math.sqrt(dx * dx + dy * dy + dz * dz)


def _heron(p, q, r) -> float:
    """`geometry.heron_area` for one triangle, in plain floats."""
    a = _dist(p, q)
    b = _dist(p, r)
    c = _dist(r, q)
    s = (a + b + c) / 2
    prod = s * (s - a) * (s - b) * (s - c)
    return math.sqrt(prod) if prod > 0 else 0.0


class PerkAccumulator:
    """Perk Tutor's core metrics one frame at a time (its AddTimestamp), for live display and as
    the per-sample baseline. `add` returns nothing; read `values()`."""

    def __init__(self, surface, axis=(0.0, 0.0, 1.0), base_mm: float = PERK_NEEDLE_LENGTH_MM):
        self.surface = surface
        self.axis = tuple(parse_axis(axis))
        self.base_mm = float(base_mm)
        self._nb = [x * -self.base_mm for x in self.axis]
        self._off = [x * PUNCTURE_OFFSET_MM for x in self.axis]
        self._scalar_segment = hasattr(surface, "first_intersection_point")
        self._scalar_inside = hasattr(surface, "contains_point")
        self.reset()

    def reset(self) -> None:
        self.elapsed_time_s = 0.0
        self.path_length_mm = 0.0
        self.path_in_tissue_mm = 0.0
        self.time_in_tissue_s = 0.0
        self.tissue_damage_mm2 = 0.0
        self.tissue_punctures = 0
        self._puncture_state = False
        self._t_prev = None
        self._p_prev = None
        self._m_prev = None
        self._in_prev = False
        self._e_prev = None  # entry of the previous frame, when computed
        self.last_inside = False

    def _segment_hit(self, p, b):
        if self._scalar_segment:
            hit, _, e = self.surface.first_intersection_point(p, b)
        else:
            h, _, ee = self.surface.first_intersection(np.array([p]), np.array([b]))
            hit, e = bool(h[0]), ee[0]
        return (float(e[0]), float(e[1]), float(e[2])) if hit else None

    def _entry(self, rows: list) -> tuple[float, float, float]:
        """Perk Tutor's skin entry of a pose given as 4x4 nested lists ((0, 0, 0) if none).
        (The same arithmetic as the vectorised search: the sums agree to the last bit, which
        matters because Heron's formula magnifies the rounding of nearly flat triangles.)"""
        nb = self._nb
        p = (rows[0][3], rows[1][3], rows[2][3])
        b = tuple(r[0] * nb[0] + r[1] * nb[1] + r[2] * nb[2] + r[3] * 1.0 for r in rows[:3])
        e = self._segment_hit(p, b)
        return (0.0, 0.0, 0.0) if e is None else e

    def _inside(self, pts: list) -> list[bool]:
        if self._scalar_inside:
            return [self.surface.contains_point(q) for q in pts]
        return [bool(x) for x in self.surface.contains(np.array(pts))]

    def add(self, time_s: float, matrix) -> None:
        """One frame (Perk Tutor's AddTimestamp for all core metrics), in plain floats with the
        same operations, in the same order, as the vectorised `perk_core_metrics`."""
        time_s = float(time_s)
        rows = np.asarray(matrix, dtype=np.float64).tolist()
        p = (rows[0][3], rows[1][3], rows[2][3])
        off = self._off
        same_pose = self._m_prev is not None and rows == self._m_prev
        if same_pose:
            ins_tip, ins_f, ins_b = self._flags_prev
        else:
            fwd = tuple(r[0] * off[0] + r[1] * off[1] + r[2] * off[2] + r[3] for r in rows[:3])
            bwd = tuple(r[0] * -off[0] + r[1] * -off[1] + r[2] * -off[2] + r[3] for r in rows[:3])
            ins_tip, ins_f, ins_b = self._inside([p, fwd, bwd])
        if self._t_prev is not None:
            dt = time_s - self._t_prev
            q = self._p_prev
            d = _dist(p, q)
            self.elapsed_time_s = self.elapsed_time_s + dt
            self.path_length_mm = self.path_length_mm + d
            if ins_tip:
                self.path_in_tissue_mm = self.path_in_tissue_mm + d
                self.time_in_tissue_s = self.time_in_tissue_s + dt
            if ins_tip and self._in_prev:
                if self._e_prev is None:
                    self._e_prev = self._entry(self._m_prev)
                e_cur = self._e_prev if same_pose else self._entry(rows)
                a1 = _heron(p, q, e_cur)
                a2 = _heron(e_cur, self._e_prev, q)
                self.tissue_damage_mm2 = self.tissue_damage_mm2 + a1 + a2
                self._e_prev = e_cur
            else:
                self._e_prev = None
        if not self._puncture_state and ins_tip and ins_f and ins_b:
            self.tissue_punctures += 1
            self._puncture_state = True
        elif self._puncture_state and not ins_tip and not ins_f and not ins_b:
            self._puncture_state = False
        self._t_prev = time_s
        self._p_prev = p
        self._m_prev = rows
        self._in_prev = ins_tip
        self._flags_prev = (ins_tip, ins_f, ins_b)
        self.last_inside = ins_tip

    def values(self) -> dict:
        return {k: getattr(self, k) for k in CORE_KEYS}


def perk_core_metrics_loop(time_s, needle_tip_to_world, surface, axis=(0.0, 0.0, 1.0),
                           base_mm: float = PERK_NEEDLE_LENGTH_MM) -> dict:
    """The same metrics by a plain per-sample loop (the baseline and cross-check)."""
    acc = PerkAccumulator(surface, axis, base_mm)
    for t, m in zip(np.asarray(time_s, dtype=np.float64), np.asarray(needle_tip_to_world, dtype=np.float64)):
        acc.add(float(t), m)
    return acc.values()


# --------------------------------------------------------------------------------------------
# Several transforms recorded at different times (Slicer / Perk Tutor replay rule)
# --------------------------------------------------------------------------------------------

SYNC_TOLERANCE_S = 0.001


def sample_sequence_at(times_master: np.ndarray, times: np.ndarray, values: np.ndarray,
                       tol: float = SYNC_TOLERANCE_S) -> np.ndarray:
    """The values of one sequence at each master time: the sample within `tol` s if there is one
    (the nearest), else the latest sample before it, clamped to the first sample."""
    tm = np.asarray(times_master, dtype=np.float64)
    ts = np.asarray(times, dtype=np.float64)
    if len(ts) == 0:
        raise ValueError("cannot sample an empty sequence")
    j = np.searchsorted(ts, tm, side="right") - 1  # latest at or before
    jc = np.clip(j, 0, len(ts) - 1)
    jn = np.clip(j + 1, 0, len(ts) - 1)
    d_prev = np.abs(tm - ts[jc])
    d_next = np.abs(ts[jn] - tm)
    pick = np.where((d_next < d_prev) & (d_next <= tol), jn, jc)
    pick = np.where(j < 0, np.where(np.abs(ts[0] - tm) <= tol, 0, 0), pick)
    return values[pick]


# --------------------------------------------------------------------------------------------
# Our metrics of an attempt
# --------------------------------------------------------------------------------------------


@dataclass
class TargetResult:
    id: str
    name: str
    required: bool
    tolerance_mm: float
    final_distance_mm: float
    min_distance_mm: float
    min_time_s: float
    evaluated_at_s: float  # when the final distance was taken (an injection, or the end)
    coverage: float  # 0..1 by the agent
    agent_ml: float  # neurolytic volume given nearest this target

    @property
    def reached(self) -> bool:
        return self.final_distance_mm <= self.tolerance_mm + 1e-9

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "required": self.required, "tolerance_mm": self.tolerance_mm,
                "final_distance_mm": self.final_distance_mm, "min_distance_mm": self.min_distance_mm,
                "min_time_s": self.min_time_s, "evaluated_at_s": self.evaluated_at_s, "coverage": self.coverage,
                "agent_ml": self.agent_ml, "reached": self.reached}


@dataclass
class StepIssue:
    key: str  # an AutoFail name when it is one
    time_s: float
    message: str


@dataclass
class AttemptMetrics:
    values: dict  # MetricName -> float | None (None: not applicable to this scenario)
    perk: dict
    targets: list[TargetResult]
    critical_contacts: list[dict]
    issues: list[StepIssue]
    injections: list[dict]
    start_time_s: float
    end_time_s: float
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"values": self.values, "perk": self.perk, "targets": [t.to_json() for t in self.targets],
                "critical_contacts": self.critical_contacts,
                "issues": [{"key": i.key, "time_s": i.time_s, "message": i.message} for i in self.issues],
                "injections": self.injections, "start_time_s": self.start_time_s, "end_time_s": self.end_time_s,
                "extra": self.extra}


def _modality(scenario) -> str:
    m = scenario.modality
    return str(getattr(m, "value", m))


def _plans(scenario) -> list:
    plans = []
    if scenario.planned_trajectory is not None:
        plans.append(scenario.planned_trajectory)
    plans += list(getattr(scenario, "additional_trajectories", []) or [])
    return plans


def _agent_ok(option, agent: str, pct: float) -> bool:
    return option.agent == agent and any(abs(pct - c) <= 1e-6 for c in option.concentrations_pct)


def tip_advance_visibility(m: np.ndarray, inside: np.ndarray, visible: np.ndarray) -> tuple[float, float]:
    """Forward advance of the tip in tissue (mm), and the part of it made with the tip visible."""
    if len(m) < 2:
        return 0.0, 0.0
    p = m[:, :3, 3]
    ax = m[:-1, :3, 2]
    fwd = np.maximum(np.einsum("ij,ij->i", p[1:] - p[:-1], ax), 0.0)
    fwd = np.where(inside[1:] | inside[:-1], fwd, 0.0)
    vis = visible[1:] == 1
    return float(fwd.sum()), float(fwd[vis].sum())


def attempt_metrics(recording, scenario, anatomy: Anatomy, targets: list[TargetGeometry] | None = None,
                    surface=None) -> AttemptMetrics:
    """Every metric of one attempt, as a pure function of the recording (and the scenario and anatomy).

    Definitions:
    - final_distance_mm: for each target, the tip's distance to it when the neurolytic agent (or,
      in scenarios without one, any injection) was given nearest to it; without injections, at the
      end. The metric is the worst (largest) over required targets.
    - min_distance_mm: the closest the tip came to each target; the worst over required targets.
    - angle_to_plan_deg: angle between the needle's axis and the planned trajectory nearest to the
      tip (entry -> target), at the moments the final distances are taken; the largest.
    - skin_punctures: Perk Tutor's tissue punctures. redirections, bone_contacts,
      advances_without_imaging: counts of those events. critical_contacts: contacts with the
      scenario's critical structures (any severity; each listed with its severity).
    - fluoro_shots, fluoro_time_s, dap_gycm2: from the fluoroscopy events.
    - tip_visible_pct: share of the forward advance in tissue made with the tip in the ultrasound
      plane (ultrasound scenarios only).
    - target_coverage_pct: mean over required targets of the best coverage of the target by the
      neurolytic agent (any agent when the scenario has no neurolytic).
    - off_target_spread_ml: neurolytic volume deposited farther than tolerance + 20 mm from every
      target, plus any given into a vessel or the dural sac.
    """
    samples = recording.samples
    t = samples.time_s
    m = samples.needle_tip_to_world
    events = recording.events
    if surface is None:
        surface = body_surface(anatomy)
    if targets is None:
        targets = resolve_targets(scenario, anatomy)
    n = len(t)
    t0 = float(t[0]) if n else 0.0
    t1 = float(t[-1]) if n else 0.0
    perk = perk_core_metrics(t, m, surface) if n else perk_core_metrics([], np.zeros((0, 4, 4)), surface)
    tips = m[:, :3, 3] if n else np.zeros((0, 3))
    modality = _modality(scenario)
    steps = scenario.steps
    options = list(steps.agent_options()) if hasattr(steps, "agent_options") else (
        ([steps.neurolytic] if steps.neurolytic else []) + list(steps.neurolytic_options))

    injections = [e for e in events if e.kind == EventKind.injection]
    neuro = [e for e in injections if e.data.get("kind") == "neurolytic"]
    evaluated = neuro if options else injections

    # targets
    results: list[TargetResult] = []
    nearest_of = {}
    for e in evaluated:
        tip = np.asarray(e.data.get("tip_mm"), dtype=np.float64)
        if targets:
            d = [float(tg.distance(tip)[0]) for tg in targets]
            nearest_of[id(e)] = int(np.argmin(d))
    for k, tg in enumerate(targets):
        if n:
            dist = tg.distance(tips)
            j = int(np.argmin(dist))
            dmin, tmin = float(dist[j]), float(t[j])
        else:
            dmin, tmin = math.inf, 0.0
        mine = [e for e in evaluated if nearest_of.get(id(e)) == k]
        if mine:
            ds = [float(tg.distance(np.asarray(e.data["tip_mm"], dtype=np.float64))[0]) for e in mine]
            i = int(np.argmin(ds))
            final, when = ds[i], mine[i].time_s
        elif n:
            final, when = float(tg.distance(tips[-1])[0]), t1
        else:
            final, when = math.inf, 0.0
        cov = max([float(e.data.get("coverage", {}).get(tg.id, 0.0)) for e in evaluated] or [0.0])
        agent_ml = float(sum(float(e.data.get("volume_ml", 0.0)) for e in mine if e.data.get("kind") == "neurolytic"))
        results.append(TargetResult(tg.id, tg.name, tg.required, tg.tolerance_mm, final, dmin, tmin, float(when),
                                    cov, agent_ml))
    req = [r for r in results if r.required] or results

    # angle to the planned trajectory
    plans = _plans(scenario)
    angle = None
    if plans and n:
        eval_idx = []
        for e in evaluated:
            eval_idx.append(int(np.clip(np.searchsorted(t, ms_round(e.time_s), side="right") - 1, 0, n - 1)))
        if not eval_idx:
            eval_idx = [n - 1]
        angs = []
        for i in eval_idx:
            tip = tips[i]
            plan = min(plans, key=lambda pl: float(np.linalg.norm(np.asarray(pl.target_mm) - tip)))
            direction = np.asarray(plan.target_mm, dtype=np.float64) - np.asarray(plan.entry_mm, dtype=np.float64)
            angs.append(float(angle_between_deg(m[i, :3, 2], direction)))
        angle = max(angs)

    # contacts and counts
    crit = [e for e in events if e.kind == EventKind.critical_contact]
    critical_contacts = [{"time_s": e.time_s, "structure": e.data.get("structure") or e.data.get("tissue"),
                          "severity": e.data.get("severity", "major"), "message": e.message} for e in crit]
    count = lambda kind: sum(1 for e in events if e.kind == kind)  # noqa: E731
    shots = [e for e in events if e.kind == EventKind.fluoro_shot]
    fluoro_time = float(sum(float(e.data.get("duration_s", 0.0) or 0.0) for e in shots))
    dap = float(sum(float(e.data.get("dap_gycm2", 0.0) or 0.0) for e in shots))

    # ultrasound tip visibility
    tip_vis = None
    if modality in ("ultrasound", "both") and n:
        inside = surface.contains(tips)
        total, seen = tip_advance_visibility(m, inside, samples.tip_visible)
        tip_vis = 100.0 * seen / total if total > 0 else None

    # coverage and off-target spread
    if req:
        cov_pct = 100.0 * float(np.mean([r.coverage for r in req]))
    else:
        cov_pct = 0.0
    off_ml = float(sum(float(e.data.get("off_target_ml", 0.0)) for e in (neuro if options else injections)))

    values = {
        "final_distance_mm": max((r.final_distance_mm for r in req), default=None),
        "min_distance_mm": max((r.min_distance_mm for r in req), default=None),
        "elapsed_time_s": perk["elapsed_time_s"],
        "path_length_mm": perk["path_length_mm"],
        "path_in_tissue_mm": perk["path_in_tissue_mm"],
        "time_in_tissue_s": perk["time_in_tissue_s"],
        "tissue_damage_mm2": perk["tissue_damage_mm2"],
        "skin_punctures": float(perk["tissue_punctures"]),
        "redirections": float(count(EventKind.redirection)),
        "angle_to_plan_deg": angle,
        "advances_without_imaging": float(count(EventKind.advance_without_imaging)),
        "fluoro_shots": float(len(shots)) if modality in ("fluoroscopy", "both") else None,
        "fluoro_time_s": fluoro_time if modality in ("fluoroscopy", "both") else None,
        "dap_gycm2": dap if modality in ("fluoroscopy", "both") else None,
        "target_coverage_pct": cov_pct if (options or steps.test_dose is not None) else None,
        "off_target_spread_ml": off_ml if (options or steps.test_dose is not None) else None,
        "tip_visible_pct": tip_vis,
        "critical_contacts": float(len(crit)),
        "bone_contacts": float(count(EventKind.bone_contact)),
    }
    issues = step_issues(events, scenario, results, options)
    return AttemptMetrics(values=values, perk=perk, targets=results, critical_contacts=critical_contacts,
                          issues=issues, injections=[e.to_json() for e in injections], start_time_s=t0,
                          end_time_s=t1, extra={"modality": modality})


def ms_round(t: float) -> float:
    return float(round(float(t), 3))


LA_SITE_MM = 30.0


def step_issues(events, scenario, results: list[TargetResult], options) -> list[StepIssue]:
    """Procedure-step problems, keyed by the rubric's automatic-fail names where they are one."""
    steps = scenario.steps
    out: list[StepIssue] = []
    punctures = [e for e in events if e.kind == EventKind.skin_puncture]
    las = [e for e in events if e.kind == EventKind.local_anaesthetic]
    injections = [e for e in events if e.kind == EventKind.injection]

    def pass_start(time_s):
        before = [p for p in punctures if p.time_s <= time_s]
        return before[-1] if before else None

    for e in injections:
        kind = e.data.get("kind")
        agent = e.data.get("agent", "")
        vol = float(e.data.get("volume_ml", 0.0))
        if steps.aspiration_before_injection and not e.data.get("aspirated", False):
            key = "agent_without_aspiration" if kind == "neurolytic" else "injection_without_aspiration"
            out.append(StepIssue(key, e.time_s, f"{kind.replace('_', ' ')} injected without aspirating first"))
        if kind != "neurolytic":
            continue
        mode = e.data.get("mode", "tissue")
        if mode == "intravascular":
            out.append(StepIssue("intravascular_agent", e.time_s, f"{agent} injected into a blood vessel"))
        if mode == "intrathecal":
            out.append(StepIssue("intrathecal_agent", e.time_s, f"{agent} injected into the dural sac (intrathecal)"))
        if options and not any(_agent_ok(o, agent, float(e.data.get("concentration_pct", 0.0))) for o in options):
            allowed = "; ".join(f"{o.agent} {'/'.join(f'{c:g}' for c in o.concentrations_pct)} %" for o in options)
            out.append(StepIssue("wrong_agent", e.time_s,
                                 f"{agent} {float(e.data.get('concentration_pct', 0.0)):g} % is not an agent of this "
                                 f"procedure ({allowed})"))
        p = pass_start(e.time_s)
        if steps.local_anaesthetic:
            ok = False
            if p is not None:
                site = np.asarray(p.data.get("position_mm", [np.nan] * 3), dtype=np.float64)
                for la in las:
                    if la.time_s <= p.time_s:
                        s = np.asarray(la.data.get("site_mm", [np.nan] * 3), dtype=np.float64)
                        if np.all(np.isfinite(s)) and np.linalg.norm(s - site) <= LA_SITE_MM:
                            ok = True
            if not ok:
                out.append(StepIssue("agent_without_local_anaesthetic", e.time_s,
                                     "no local anaesthetic at the entry site before the needle went in"))
        in_pass = [x for x in injections if x.time_s <= e.time_s and x is not e and
                   (p is None or x.time_s >= p.time_s)]
        if steps.contrast is not None and not any(x.data.get("kind") == "contrast" for x in in_pass):
            out.append(StepIssue("agent_without_contrast", e.time_s,
                                 f"{agent} given without a contrast injection first to confirm the spread"))
        if steps.test_dose is not None and not any(x.data.get("kind") == "test_dose" for x in in_pass):
            out.append(StepIssue("agent_without_test_dose", e.time_s,
                                 f"{agent} given without a local anaesthetic test dose first"))
        del vol
    # volumes per target
    if options:
        limit = max(o.volume_ml.max_ml for o in options)
        low = min(o.volume_ml.min_ml for o in options)
        for r in results:
            if r.agent_ml > limit + 1e-9:
                out.append(StepIssue("agent_volume_exceeded", 0.0,
                                     f"{r.agent_ml:g} ml of neurolytic at the {r.name} (at most {limit:g} ml)"))
            elif 0 < r.agent_ml < low - 1e-9:
                out.append(StepIssue("agent_volume_low", 0.0,
                                     f"only {r.agent_ml:g} ml of neurolytic at the {r.name} (at least {low:g} ml)"))
        if not any(e.data.get("kind") == "neurolytic" for e in injections):
            out.append(StepIssue("no_agent_injected", 0.0, "no neurolytic agent was injected"))
    if steps.contrast is not None:
        for e in injections:
            if e.data.get("kind") == "contrast":
                v = float(e.data.get("volume_ml", 0.0))
                if not (steps.contrast.min_ml - 1e-9 <= v <= steps.contrast.max_ml + 1e-9):
                    out.append(StepIssue("contrast_volume", e.time_s,
                                         f"{v:g} ml of contrast ({steps.contrast.min_ml:g}-{steps.contrast.max_ml:g} ml expected)"))
    for r in results:
        if r.required and not r.reached:
            out.append(StepIssue("target_not_reached", r.evaluated_at_s,
                                 f"tip {r.final_distance_mm:.1f} mm from the {r.name} (tolerance {r.tolerance_mm:g} mm)"))
    for e in events:
        if e.kind == EventKind.pleural_breach:
            out.append(StepIssue("pleural_breach", e.time_s, e.message))
    return out
