"""Perk Tutor's metrics, exactly (PerkLab's PythonMetrics definitions, reimplemented).

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

Action counts (Perk Tutor's TranslationalActions / RotationalActions, for the needle and the probe):
with C_i = M_i M_{i-1}^-1 (frames with a repeated time skipped), the speed is |translation of
C_i| / dt (mm/s) or |rotation angle of C_i| / dt (deg/s, angle in [-180, 180]). The test
"speed > 50" changes the action state only once it has differed from the state for more than
0.2 s (since the last frame that agreed with it); each change into "moving" is one action.

`perk_core_metrics` computes all of them for whole arrays at once (vectorised, with repeated poses
computed once); `PerkAccumulator` takes one frame at a time (the live score during an attempt, and
the plain per-sample loop the benchmark compares against). Both give the same numbers.
"""
from __future__ import annotations

import math

import numpy as np

from simulator.core.anatomy import Anatomy
from simulator.core.geometry import distance3, heron_area
from simulator.core.mesh_locator import locator_for
from simulator.core.tissue import Tissue

PERK_NEEDLE_LENGTH_MM = 300.0
PUNCTURE_OFFSET_MM = 1.0
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
# Action counts (translational and rotational, any tracked tool)
# --------------------------------------------------------------------------------------------

ACTION_SPEED_MM_S = 50.0
ACTION_SPEED_DEG_S = 50.0
ACTION_HYSTERESIS_S = 0.2
ACTION_KEYS = ("translational_actions", "rotational_actions")


def _action_count(times: np.ndarray, moving: np.ndarray) -> int:
    """Perk Tutor's action state machine over frames 1.. (`moving[k]`: the test at times[k])."""
    state = False
    complete = 0.0
    count = 0
    for t, test in zip(times.tolist(), moving.tolist()):
        if test == state:
            complete = t
        elif t - complete > ACTION_HYSTERESIS_S:
            state = test
            complete = t
            if test:
                count += 1
    return count


def action_counts(time_s, tool_to_world, speed_mm_s: float = ACTION_SPEED_MM_S,
                  speed_deg_s: float = ACTION_SPEED_DEG_S) -> dict:
    """Translational and rotational actions of one tracked tool (Perk Tutor's definitions, see the
    module notes). Frames whose pose has a NaN (the tool not tracked) are left out."""
    t = np.asarray(time_s, dtype=np.float64)
    m = np.asarray(tool_to_world, dtype=np.float64).reshape(-1, 4, 4)
    if len(m) == 0:
        return dict.fromkeys(ACTION_KEYS, 0)
    ok = np.all(np.isfinite(m.reshape(len(m), 16)), axis=1)
    t, m = t[ok], m[ok]
    if len(t):
        keep = np.ones(len(t), dtype=bool)
        keep[1:] = t[1:] != t[:-1]  # a frame with the previous frame's time is skipped
        # (Perk Tutor compares with the last frame it kept; equal times are consecutive here)
        t, m = t[keep], m[keep]
    if len(t) < 2:
        return dict.fromkeys(ACTION_KEYS, 0)
    r_prev_t = np.transpose(m[:-1, :3, :3], (0, 2, 1))
    r_change = np.einsum("nij,njk->nik", m[1:, :3, :3], r_prev_t)
    trans = m[1:, :3, 3] - np.einsum("nij,nj->ni", r_change, m[:-1, :3, 3])
    dt = t[1:] - t[:-1]
    v = np.linalg.norm(trans, axis=1) / dt
    cos = np.clip((np.trace(r_change, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
    w = np.degrees(np.arccos(cos)) / dt
    return {"translational_actions": _action_count(t[1:], v > speed_mm_s),
            "rotational_actions": _action_count(t[1:], w > speed_deg_s)}
