"""A recorded-looking tracked needle pass, for the simulated tracker's demos, the benchmark and tests.

`needle_pass(entry_mm, target_mm, rate_hz, ...)` returns tracked sequences as a tracker records
them (`trackfiles.write_sequence_metafile` writes them to an .igs.mha): the needle tip
(`NeedleTipToReference`) and an ultrasound probe held beside the entry with the needle in its
plane (`ProbeToReference`), sampled at `rate_hz` with millisecond timestamps.

The probe: the scenario's own set-up when given (`probe_pose`), else beside the entry with the
needle in its plane. The hand: the tip waits 20 mm above the skin, comes down to 2 mm from it, pauses, inserts along the line to the
target in pushes with pauses (a minimum-jerk profile for each push), draws back a few millimetres
once and corrects its angle by a few degrees, then reaches the target and holds. Physiological
tremor (about 0.1 mm at 8-12 Hz, a few tenths of a degree) rides on top, on the probe too.
`reference_to_world` places the tracker's reference: the poses are given in that frame (its inverse
applied), so a fiducial registration has something to find.
"""
from __future__ import annotations

import numpy as np

from simulator.core.geometry import frame_from_axis, invert_pose, make_pose, normalize
from simulator.core.geometry import rotation_about_axis as _rot


def _min_jerk(s: np.ndarray) -> np.ndarray:
    s = np.clip(s, 0.0, 1.0)
    return s ** 3 * (10 - 15 * s + 6 * s ** 2)


def _depth_profile(t: np.ndarray, depth_mm: float) -> np.ndarray:
    """Depth along the line (negative: above the skin) over time: approach, pushes, a draw-back."""
    keys = [(0.0, -20.0), (0.15, -20.0), (0.25, -2.0), (0.30, -2.0), (0.45, 0.45 * depth_mm), (0.5, 0.45 * depth_mm),
            (0.6, 0.7 * depth_mm), (0.64, 0.7 * depth_mm - 5.0), (0.7, 0.7 * depth_mm - 5.0), (0.85, depth_mm),
            (1.0, depth_mm)]
    out = np.empty_like(t)
    for (t0, d0), (t1, d1) in zip(keys, keys[1:]):
        sel = (t >= t0) & (t <= t1)
        out[sel] = d0 + (d1 - d0) * _min_jerk((t[sel] - t0) / (t1 - t0))
    return out


def needle_pass(entry_mm, target_mm, rate_hz: float = 60.0, duration_s: float = 10.0, *, start_s: float = 0.0,
                seed: int = 0, reference_to_world=None, probe: bool = True, probe_pose=None) -> dict[str, tuple]:
    """Tracked sequences {name: (time_s (N,), matrices (N, 4, 4))} of one needle pass (module notes).
    `probe_pose`: (centre, direction, marker) of the probe (a scenario's ultrasound set-up); by
    default 30 mm beside the entry, looking at the target with the needle in its plane."""
    rng = np.random.default_rng(seed)
    entry = np.asarray(entry_mm, float)
    target = np.asarray(target_mm, float)
    line = target - entry
    depth = float(np.linalg.norm(line))
    axis0 = line / depth
    n = max(2, int(round(duration_s * rate_hz)) + 1)
    t = np.round(start_s + np.arange(n) / rate_hz, 3)
    u = (t - t[0]) / max(t[-1] - t[0], 1e-9)
    d = _depth_profile(u, depth)
    side = normalize(np.cross(axis0, [0.0, 0.0, 1.0]) if abs(axis0[2]) < 0.9 else np.cross(axis0, [1.0, 0.0, 0.0]))
    # the angle correction after the draw-back: 3 degrees off the line before, on it after
    corr = np.where(u < 0.64, 3.0, 3.0 * (1 - _min_jerk((u - 0.64) / 0.06)))
    f_tremor = rng.uniform(8.0, 12.0, size=3)
    ph = rng.uniform(0, 2 * np.pi, size=6)
    tt = t - t[0]
    tremor = 0.1 * np.stack([np.sin(2 * np.pi * f_tremor[i] * tt + ph[i]) for i in range(3)], axis=1)
    wobble = 0.3 * np.sin(2 * np.pi * f_tremor[0] * 0.7 * tt + ph[3])
    needle = np.empty((n, 4, 4))
    for i in range(n):
        r = _rot(side, corr[i] + wobble[i])
        a = r @ axis0
        pivot = entry if d[i] > 0 else entry + d[i] * axis0  # turns about the skin entry once in
        tip = pivot + max(d[i], 0.0) * a + tremor[i] + rng.normal(0.0, 0.02, 3)
        needle[i] = make_pose(frame_from_axis(a, 0.0), tip)
    out = {"NeedleTipToReference": (t, needle)}
    if probe:
        if probe_pose is not None:
            c, dirn, marker = (np.asarray(v, float) for v in probe_pose)
            dirn = normalize(dirn)
            marker = normalize(marker - dirn * float(marker @ dirn))
        else:
            c = entry + 30.0 * side
            dirn = normalize(target - c)
            marker = normalize(axis0 - dirn * float(axis0 @ dirn))
        rot = np.stack([marker, dirn, np.cross(marker, dirn)], axis=1)
        probe_m = np.empty((n, 4, 4))
        for i in range(n):
            r = _rot(dirn, 0.2 * np.sin(2 * np.pi * f_tremor[1] * 0.5 * tt[i] + ph[4])) @ rot
            probe_m[i] = make_pose(r, c + 0.5 * tremor[i])
        out["ProbeToReference"] = (t, probe_m)
    if reference_to_world is not None:
        w2r = invert_pose(np.asarray(reference_to_world, float))
        out = {k: (tk, w2r @ m) for k, (tk, m) in out.items()}
    return out
