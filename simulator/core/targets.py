"""A scenario's targets as geometry in the anatomy: distances, coverage samples, nerve or not.

`resolve_targets(scenario, anatomy)` gives one `TargetGeometry` per target: its own `points_mm`,
else its proposal's (`core.proposals.target_points`). A recording keeps the geometry it was made
with (`TargetGeometry.to_json` / `from_json`), so rescoring an old attempt measures against the
targets the trainee saw.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulator.core.anatomy import Anatomy
from simulator.core.geometry import (
    ball_samples,
    point_polyline_distance,
    polyline_samples,
    sphere_distance,
    tube_distance,
)

NERVE_CONTACT_MM = 1.0  # the tip this close to a somatic nerve: paraesthesia


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

    @classmethod
    def from_json(cls, d: dict) -> "TargetGeometry":
        return cls(id=d["id"], name=d["name"], kind=d["kind"], points_mm=np.asarray(d["points_mm"], dtype=np.float64),
                   radius_mm=float(d["radius_mm"]), tolerance_mm=float(d["tolerance_mm"]),
                   required=bool(d["required"]), side=d.get("side", "midline"), somatic=d.get("somatic"))


def targets_from_recording(recording) -> list[TargetGeometry] | None:
    """The target geometry a recording was made with (None for recordings without it)."""
    saved = (recording.meta or {}).get("targets")
    return [TargetGeometry.from_json(d) for d in saved] if saved else None


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
