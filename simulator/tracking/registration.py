"""Fiducial registration: the tracker's reference frame -> the patient (world RAS mm).

Touch 3 or more points on the phantom or patient with the tracked needle tip (their positions in
the tracker's reference frame) and pick the same points in the 3D view (world): the rigid
transform that best maps the first onto the second (least squares; Arun / Horn / Umeyama via the
SVD, reflections excluded) is `reference_to_world`.

Quality, as navigation systems report it:
- FRE (fiducial registration error): the RMS distance between the mapped tracker points and their
  world points, with each point's own residual (a large one is a mis-paired or badly touched point);
- TRE (target registration error) expected at a point, Fitzpatrick's formula:
  TRE^2(r) = FLE^2 / N * (1 + 1/3 * sum_k d_k^2 / f_k^2), with d_k the distance of r from principal
  axis k of the fiducial set, f_k the fiducials' RMS distance from that axis, and the fiducial
  localisation error estimated from the FRE: FLE^2 = FRE^2 * N / (N - 2) (N > 3).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_POINTS = 3
MIN_SPREAD_MM = 5.0  # the points must span at least this much in two directions


class RegistrationError(ValueError):
    """Points that cannot give a registration (the message says which and why)."""


@dataclass
class Registration:
    reference_to_world: np.ndarray  # 4x4
    fre_mm: float
    residuals_mm: np.ndarray  # (N,)
    tracker_points_mm: np.ndarray  # (N, 3)
    world_points_mm: np.ndarray  # (N, 3)

    @property
    def n_points(self) -> int:
        return len(self.residuals_mm)

    def tre_mm(self, point_mm) -> float:
        """Expected target registration error at a world point (NaN with 3 points: FLE unknown)."""
        n = self.n_points
        if n <= 3:
            return float("nan")
        fle2 = self.fre_mm ** 2 * n / (n - 2)
        w = self.world_points_mm
        c = w.mean(axis=0)
        _, _, vt = np.linalg.svd(w - c)
        q = np.asarray(point_mm, dtype=np.float64) - c
        total = 0.0
        for k in range(3):
            axis = vt[k]
            d2 = float(np.sum(q ** 2) - (q @ axis) ** 2)  # squared distance of the target from axis k
            f2 = float(np.mean(np.sum((w - c) ** 2, axis=1) - ((w - c) @ axis) ** 2))
            total += d2 / f2 if f2 > 1e-12 else 0.0
        return float(np.sqrt(fle2 / n * (1.0 + total / 3.0)))

    def to_json(self) -> dict:
        return {"reference_to_world": self.reference_to_world.tolist(), "fre_mm": self.fre_mm,
                "residuals_mm": self.residuals_mm.tolist(), "tracker_points_mm": self.tracker_points_mm.tolist(),
                "world_points_mm": self.world_points_mm.tolist()}


def _points(p, name: str) -> np.ndarray:
    a = np.asarray(p, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 3:
        raise RegistrationError(f"{name}: expected N x 3 coordinates, got shape {a.shape}")
    bad = ~np.all(np.isfinite(a), axis=1)
    if bad.any():
        raise RegistrationError(f"{name}: point {int(np.argmax(bad)) + 1} is not a finite position")
    return a


def rigid_fit(src, dst) -> np.ndarray:
    """4x4 rigid transform minimising sum |R src_i + t - dst_i|^2 (no reflection, no scale)."""
    a, b = np.asarray(src, float), np.asarray(dst, float)
    ca, cb = a.mean(axis=0), b.mean(axis=0)
    h = (a - ca).T @ (b - cb)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = cb - r @ ca
    return m


def register_fiducials(tracker_points_mm, world_points_mm) -> Registration:
    """The rigid registration of paired points (tracker reference frame -> world). Raises
    RegistrationError for fewer than 3 pairs, unequal counts, or points (nearly) on a line."""
    src = _points(tracker_points_mm, "tracker points")
    dst = _points(world_points_mm, "patient points")
    if len(src) != len(dst):
        raise RegistrationError(f"{len(src)} tracker points but {len(dst)} patient points: they must pair up")
    if len(src) < MIN_POINTS:
        raise RegistrationError(f"{len(src)} point pair(s): a registration needs {MIN_POINTS} at least")
    for name, p in (("tracker points", src), ("patient points", dst)):
        s = np.linalg.svd(p - p.mean(axis=0), compute_uv=False) / np.sqrt(len(p))
        if s[1] < MIN_SPREAD_MM / 2:
            raise RegistrationError(f"{name} lie (nearly) on a line (spread {2 * s[0]:.1f} x {2 * s[1]:.1f} mm): "
                                    f"choose points at least {MIN_SPREAD_MM:g} mm apart, not in a row")
    m = rigid_fit(src, dst)
    mapped = src @ m[:3, :3].T + m[:3, 3]
    res = np.linalg.norm(mapped - dst, axis=1)
    return Registration(m, float(np.sqrt(np.mean(res ** 2))), res, src, dst)


class FiducialPairs:
    """The points being collected for a registration: tracker points (the needle tip touching the
    phantom) and patient points (picked in the 3D view), paired in the order they were taken."""

    def __init__(self):
        self.tracker: list[np.ndarray] = []
        self.world: list[np.ndarray] = []

    def add_tracker(self, point_mm) -> int:
        self.tracker.append(_points([point_mm], "tracker point")[0])
        return len(self.tracker)

    def add_world(self, point_mm) -> int:
        self.world.append(_points([point_mm], "patient point")[0])
        return len(self.world)

    def remove_last(self) -> None:
        """Drop the last pair (or the half pair being made)."""
        n = max(len(self.tracker), len(self.world))
        if len(self.tracker) == n and self.tracker:
            self.tracker.pop()
        if len(self.world) == n and self.world:
            self.world.pop()

    def clear(self) -> None:
        self.tracker.clear()
        self.world.clear()

    def rows(self) -> list[tuple[np.ndarray | None, np.ndarray | None]]:
        n = max(len(self.tracker), len(self.world))
        return [(self.tracker[i] if i < len(self.tracker) else None, self.world[i] if i < len(self.world) else None)
                for i in range(n)]

    def register(self) -> Registration:
        n = min(len(self.tracker), len(self.world))
        if len(self.tracker) != len(self.world):
            missing = "patient" if len(self.tracker) > len(self.world) else "tracker"
            raise RegistrationError(f"point {n + 1} has no {missing} point yet: add it or remove the point")
        return register_fiducials(np.array(self.tracker[:n]).reshape(-1, 3), np.array(self.world[:n]).reshape(-1, 3))
