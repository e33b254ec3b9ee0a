"""Pivot calibration of a tracked needle: where its tip is in the frame of the sensor on it.

Hold the tip still in a divot and pivot the needle about it (20 degrees or more, several
directions) while the tracker reports the sensor's pose `tool_to_reference` (R_i, t_i). The tip
(p in the tool frame) and the pivot point (q in the reference frame) satisfy R_i p + t_i = q for
every pose: least squares over [R_i  -I] [p; q] = -t_i. The residuals |R_i p + t_i - q| give the
calibration's RMS error; PLUS reports the same figure.

`needle_tip_to_tool()` turns the tip offset into the `NeedleTipToNeedle` transform the session
applies: origin at the tip, +Z along the shaft towards the tip (the direction of insertion; the
sensor sits on the shaft or the hub), X and Y the tool's axes made perpendicular to it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_POSES = 6
MIN_ROTATION_DEG = 20.0


class CalibrationError(ValueError):
    """Poses that cannot give a calibration (the message says why and what to do)."""


@dataclass
class PivotCalibration:
    tip_in_tool_mm: np.ndarray  # (3,)
    pivot_in_reference_mm: np.ndarray  # (3,)
    rms_mm: float
    residuals_mm: np.ndarray  # (N,)
    rotation_range_deg: float

    def needle_tip_to_tool(self) -> np.ndarray:
        """4x4 NeedleTipToNeedle: the tip frame in the tool (sensor) frame."""
        p = self.tip_in_tool_mm
        n = float(np.linalg.norm(p))
        z = p / n if n > 1e-9 else np.array([0.0, 0.0, 1.0])
        x = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        x = x - z * float(x @ z)
        x /= np.linalg.norm(x)
        m = np.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2] = x, np.cross(z, x), z
        m[:3, 3] = p
        return m

    def to_json(self) -> dict:
        return {"tip_in_tool_mm": self.tip_in_tool_mm.tolist(), "pivot_in_reference_mm": self.pivot_in_reference_mm.tolist(),
                "rms_mm": self.rms_mm, "rotation_range_deg": self.rotation_range_deg, "n_poses": len(self.residuals_mm)}


def _angle_deg(r: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0))))


def pivot_calibration(tool_to_reference) -> PivotCalibration:
    """Calibrate from N >= 6 poses (N x 4 x 4) taken while pivoting about the tip."""
    m = np.asarray(tool_to_reference, dtype=np.float64)
    if m.ndim != 3 or m.shape[1:] != (4, 4):
        raise CalibrationError(f"expected N x 4 x 4 poses, got shape {m.shape}")
    m = m[np.all(np.isfinite(m.reshape(len(m), -1)), axis=1)]
    if len(m) < MIN_POSES:
        raise CalibrationError(f"{len(m)} usable pose(s): pivot the needle while at least {MIN_POSES} are recorded")
    r, t = m[:, :3, :3], m[:, :3, 3]
    spread = max(_angle_deg(r[0].T @ ri) for ri in r)
    if spread < MIN_ROTATION_DEG:
        raise CalibrationError(f"the needle turned {spread:.1f} degrees: pivot it at least {MIN_ROTATION_DEG:g} degrees "
                               "about its tip, in several directions")
    a = np.zeros((3 * len(m), 6))
    a[:, :3] = r.reshape(-1, 3)
    a[:, 3:] = -np.tile(np.eye(3), (len(m), 1))
    x, _, rank, sv = np.linalg.lstsq(a, -t.reshape(-1), rcond=None)
    if rank < 6 or sv[-1] < 1e-3 * sv[0]:
        raise CalibrationError("the needle turned about one axis only: pivot it in several directions "
                               "(forwards-backwards and side to side)")
    p, q = x[:3], x[3:]
    res = np.linalg.norm(np.einsum("nij,j->ni", r, p) + t - q, axis=1)
    return PivotCalibration(p, q, float(np.sqrt(np.mean(res ** 2))), res, spread)
