"""Geometry for the needle and the score: poses, distances, triangle areas, closed surfaces.

Everything is numpy, vectorised over points or segments, in patient RAS millimetres.

Poses are 4x4 homogeneous matrices named `a_to_b`. The needle pose `needle_tip_to_world` has its
origin at the tip and its +Z axis along the direction of insertion (from the hub towards the tip);
the hub lies at tip - length * Z.

Closed surfaces (`MeshLocator`: inside test and first intersection of segments) are in
`simulator.core.mesh_locator`; STL files and exact meshes (box, icosphere) in
`simulator.core.meshes`.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.spatial.transform import Rotation


# --------------------------------------------------------------------------------------------
# Vectors and poses
# --------------------------------------------------------------------------------------------


def normalize(v) -> np.ndarray:
    """Unit vector(s) along the last axis. Raises ValueError for a zero vector."""
    a = np.asarray(v, dtype=np.float64)
    if a.shape == (3,):
        x, y, z = a.tolist()
        n = math.sqrt(x * x + y * y + z * z)
        if n == 0 or not math.isfinite(n):
            raise ValueError(f"cannot normalise a zero or non-finite vector: {a.tolist()}")
        return np.array([x / n, y / n, z / n])
    n = np.linalg.norm(a, axis=-1, keepdims=True)
    if np.any(n == 0) or not np.all(np.isfinite(n)):
        raise ValueError(f"cannot normalise a zero or non-finite vector: {a.tolist()}")
    return a / n


def angle_between_deg(u, v) -> np.ndarray | float:
    """Angle(s) in degrees between vectors u and v (broadcast along the last axis)."""
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    nu = np.linalg.norm(u, axis=-1)
    nv = np.linalg.norm(v, axis=-1)
    c = np.sum(u * v, axis=-1) / (nu * nv)
    # atan2 of |u x v| and u . v is accurate for small angles, unlike arccos.
    s = np.linalg.norm(np.cross(u, v), axis=-1) / (nu * nv)
    ang = np.degrees(np.arctan2(s, c))
    return float(ang) if np.ndim(ang) == 0 else ang


def rotation_about_axis(axis, angle_deg: float) -> np.ndarray:
    """3x3 rotation by angle_deg about axis (right hand rule): the one rotation of the package
    (scipy's `Rotation`); the needle, the probe and the steering all turn with it."""
    return Rotation.from_rotvec(math.radians(angle_deg) * normalize(axis)).as_matrix()


def rotate(vector, axis, angle_deg: float) -> np.ndarray:
    """`vector` turned by angle_deg about axis (right hand rule)."""
    return rotation_about_axis(axis, angle_deg) @ np.asarray(vector, dtype=np.float64)


def rotation_between(a, b) -> np.ndarray:
    """The smallest 3x3 rotation taking direction a onto direction b."""
    a = normalize(a)
    b = normalize(b)
    ax, ay, az = a.tolist()
    bx, by, bz = b.tolist()
    v = np.array([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx])
    s = math.sqrt(float(v @ v))
    c = ax * bx + ay * by + az * bz
    if s < 1e-12:
        if c > 0:
            return np.eye(3)
        # Opposite: half turn about any axis perpendicular to a.
        perp = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(perp) < 1e-6:
            perp = np.cross(a, [0.0, 1.0, 0.0])
        return rotation_about_axis(perp, 180.0)
    return rotation_about_axis(v, math.degrees(math.atan2(s, c)))


def frame_from_axis(z_axis, roll_deg: float = 0.0) -> np.ndarray:
    """A right-handed 3x3 frame whose third column is z_axis.

    The first column (the bevel side at roll 0) points as close to patient superior (+S) as it can,
    or to anterior (+A) when the needle runs along S; `roll_deg` turns it about the axis."""
    z = normalize(z_axis)
    ref = np.array([0.0, 0.0, 1.0]) if abs(z[2]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = ref - np.dot(ref, z) * z
    x = normalize(x)
    y = np.cross(z, x)
    r = np.column_stack([x, y, z])
    if roll_deg:
        r = rotation_about_axis(z, roll_deg) @ r
    return r


def make_pose(rotation: np.ndarray, origin) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = rotation
    m[:3, 3] = np.asarray(origin, dtype=np.float64)
    return m


def pose_from_tip_axis(tip_mm, axis, roll_deg: float = 0.0) -> np.ndarray:
    """needle_tip_to_world for a tip position and an insertion direction."""
    return make_pose(frame_from_axis(axis, roll_deg), tip_mm)


def invert_pose(m: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 pose."""
    r = m[:3, :3]
    out = np.eye(4)
    out[:3, :3] = r.T
    out[:3, 3] = -r.T @ m[:3, 3]
    return out


def is_rigid(m: np.ndarray, tol: float = 1e-4) -> bool:
    """A finite 4x4 rotation + translation: R^T R = I within `tol` (plus 1e-5 relative on the
    diagonal), det R = 1 within `tol`, bottom row 0 0 0 1. (Plain floats: a tracker's 60-240 poses
    a second are checked in microseconds.)"""
    m = np.asarray(m, dtype=np.float64)
    if m.shape != (4, 4):
        return False
    (a, b, c, _), (d, e, f, _), (g, h, i, _), last = m.tolist()
    if not all(math.isfinite(x) for x in (a, b, c, d, e, f, g, h, i, *m[:3, 3].tolist(), *last)):
        return False
    if abs(last[0]) > 1e-8 or abs(last[1]) > 1e-8 or abs(last[2]) > 1e-8 or abs(last[3] - 1.0) > 1e-8 + 1e-5:
        return False
    cols = ((a, d, g), (b, e, h), (c, f, i))
    for p in range(3):
        for q in range(p, 3):
            dot = cols[p][0] * cols[q][0] + cols[p][1] * cols[q][1] + cols[p][2] * cols[q][2]
            if abs(dot - (p == q)) > tol + (1e-5 if p == q else 0.0):
                return False
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    return abs(det - 1.0) < tol


def direction_from_angles(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Unit direction from two angles in the patient frame (RAS).

    azimuth_deg: in the axial plane, from +R (0) towards +A (90), -R (180), -A (270 or -90).
    elevation_deg: towards superior (+S) out of the axial plane (cranial tilt), negative caudal.
    A prone patient's posterior approach aims anteriorly: azimuth near 90 degrees."""
    az = math.radians(azimuth_deg)
    el = math.radians(elevation_deg)
    return np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])


def angles_from_direction(direction) -> tuple[float, float]:
    """(azimuth_deg, elevation_deg) of a direction; the inverse of `direction_from_angles`."""
    d = normalize(direction)
    el = math.degrees(math.asin(max(-1.0, min(1.0, float(d[2])))))
    az = math.degrees(math.atan2(float(d[1]), float(d[0])))
    return az, el


# --------------------------------------------------------------------------------------------
# Distances
# --------------------------------------------------------------------------------------------


def point_segment_distance(points, a, b) -> np.ndarray:
    """Distance from each point (N, 3) to the segment a-b."""
    p = np.atleast_2d(np.asarray(points, dtype=np.float64))
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ab = b - a
    den = float(np.dot(ab, ab))
    if den == 0.0:
        return np.linalg.norm(p - a, axis=1)
    t = np.clip((p - a) @ ab / den, 0.0, 1.0)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1)


def point_polyline_distance(points, polyline) -> np.ndarray:
    """Distance from each point (N, 3) to a polyline (K >= 1 vertices, (K, 3))."""
    p = np.atleast_2d(np.asarray(points, dtype=np.float64))
    line = np.atleast_2d(np.asarray(polyline, dtype=np.float64))
    if len(line) == 1:
        return np.linalg.norm(p - line[0], axis=1)
    a = line[:-1]  # (S, 3)
    ab = line[1:] - a
    den = np.einsum("ij,ij->i", ab, ab)
    den = np.where(den == 0.0, 1.0, den)
    ap = p[:, None, :] - a[None, :, :]  # (N, S, 3)
    t = np.clip(np.einsum("nsj,sj->ns", ap, ab) / den, 0.0, 1.0)
    d = ap - t[..., None] * ab[None]
    return np.sqrt(np.min(np.einsum("nsj,nsj->ns", d, d), axis=1))


def tube_distance(points, polyline, radius_mm: float) -> np.ndarray:
    """Distance from each point to the surface of a tube (polyline with a radius); 0 inside."""
    return np.maximum(point_polyline_distance(points, polyline) - float(radius_mm), 0.0)


def sphere_distance(points, center, radius_mm: float) -> np.ndarray:
    """Distance to a ball; 0 inside."""
    p = np.atleast_2d(np.asarray(points, dtype=np.float64))
    return np.maximum(np.linalg.norm(p - np.asarray(center, dtype=np.float64), axis=1) - float(radius_mm), 0.0)


def polyline_samples(polyline, step_mm: float = 1.0) -> np.ndarray:
    """Points along a polyline, about step_mm apart, both ends included."""
    line = np.atleast_2d(np.asarray(polyline, dtype=np.float64))
    out = [line[:1]]
    for a, b in zip(line[:-1], line[1:]):
        n = max(1, int(math.ceil(np.linalg.norm(b - a) / step_mm)))
        t = np.arange(1, n + 1)[:, None] / n
        out.append(a + t * (b - a))
    return np.concatenate(out)


def ball_samples(center, radius_mm: float, step_mm: float = 1.0) -> np.ndarray:
    """Grid points inside a ball (the centre always included)."""
    c = np.asarray(center, dtype=np.float64)
    if radius_mm <= 0:
        return c[None]
    n = int(math.floor(radius_mm / step_mm))
    g = np.arange(-n, n + 1) * step_mm
    x, y, z = np.meshgrid(g, g, g, indexing="ij")
    pts = np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)
    pts = pts[np.einsum("ij,ij->i", pts, pts) <= radius_mm * radius_mm + 1e-9]
    return c + pts


def distance3(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| along the last axis, summed x, y, z in that order (as vtkMath::Distance2BetweenPoints)."""
    dx = a[..., 0] - b[..., 0]
    dy = a[..., 1] - b[..., 1]
    dz = a[..., 2] - b[..., 2]
    return np.sqrt(dx * dx + dy * dy + dz * dz)


def heron_area(p, q, r) -> np.ndarray:
    """Triangle area(s) by Heron's formula, as Perk Tutor computes it.

    Sides a = |p - q|, b = |p - r|, c = |r - q|; s = (a + b + c) / 2; area = sqrt(s(s-a)(s-b)(s-c)).
    A degenerate (collinear) triangle can make the product slightly negative by rounding: the area
    is 0 there (Perk Tutor's math.sqrt would raise)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    a = distance3(p, q)
    b = distance3(p, r)
    c = distance3(r, q)
    s = (a + b + c) / 2
    prod = s * (s - a) * (s - b) * (s - c)
    return np.sqrt(np.maximum(prod, 0.0))


def triangle_area(p, q, r) -> np.ndarray:
    """Triangle area(s) by the cross product (exact reference for tests)."""
    p = np.asarray(p, dtype=np.float64)
    return 0.5 * np.linalg.norm(np.cross(np.asarray(q) - p, np.asarray(r) - p), axis=-1)


# Closed surfaces and mesh files have modules of their own; their names stay importable from here.
from simulator.core.mesh_locator import MeshLocator, locator_for  # noqa: E402
from simulator.core.meshes import (  # noqa: E402
    MeshFileError,
    box_mesh,
    icosphere,
    read_stl,
    subdivided_box_mesh,
    weld,
    write_stl,
)

__all__ = [
    "MeshFileError", "MeshLocator", "angle_between_deg", "angles_from_direction", "ball_samples", "box_mesh",
    "direction_from_angles", "distance3", "frame_from_axis", "heron_area", "icosphere", "invert_pose", "is_rigid",
    "locator_for", "make_pose", "normalize", "point_polyline_distance", "point_segment_distance",
    "polyline_samples", "pose_from_tip_axis", "read_stl", "rotate", "rotation_about_axis", "rotation_between",
    "sphere_distance", "subdivided_box_mesh", "triangle_area", "tube_distance", "weld", "write_stl",
]
