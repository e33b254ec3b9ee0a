"""What the procedure panel says about what the syringe and the contrast show, in a physician's
words (the aspirate's colour and text, the contrast pattern), and the time plot's points."""
from __future__ import annotations

import math

import numpy as np

ASPIRATION_STYLE = {
    "blood": ("Blood in the syringe", "#ff4040"),
    "csf": ("Clear fluid (CSF)", "#60c0ff"),
    "air": ("Air", "#c0c0c0"),
    "bowel contents": ("Bowel contents", "#c09040"),
    "nothing": ("Negative: nothing", "#60d060"),
}


def human(x) -> str:
    return str(getattr(x, "value", x)).replace("_", " ")


def contrast_note(spread) -> str:
    """What the contrast image shows, in a physician's words."""
    mode = spread.mode
    if mode == "intravascular":
        return "Contrast flashes and washes away at once: the tip is in a vessel. Do not inject: reposition."
    if mode == "intrathecal":
        return "Contrast outlines the dural sac (myelogram): the tip is intrathecal. Stop."
    if mode == "intra_organ":
        return f"Contrast pools inside the {human(spread.tip_tissue.name.lower())}: the tip is in an organ."
    if mode == "intraosseous":
        return "Contrast stays in the bone: the tip is in the vertebral body."
    if mode == "outside":
        return "Contrast runs out onto the skin: the tip is not in the body."
    near = []
    for _, k in sorted(((v, k) for k, v in (spread.contacts or {}).items()), reverse=True):
        name = str(k).split(":", 1)[-1].replace("_", " ")
        if name and name not in near:
            near.append(name)
        if len(near) == 3:
            break
    where = f" along {', '.join(near)}" if near else ""
    return f"Contrast spreads in the tissue{where} ({spread.volume_ml:g} ml)."


__all__ = ["ASPIRATION_STYLE", "contrast_note", "human"]


class PlotSeries:
    """The time plot's points (time, depth, distance to target): growable arrays, read as
    `series["t"]`, `series["depth"]`, `series["dist"]` (views of what has been appended)."""

    KEYS = ("t", "depth", "dist")

    def __init__(self):
        self._a = np.empty((1024, 3))
        self._n = 0

    def append(self, t: float, depth: float, dist: float) -> None:
        if self._n == len(self._a):
            grown = np.empty((2 * len(self._a), 3))
            grown[: self._n] = self._a[: self._n]
            self._a = grown
        self._a[self._n] = (t, depth, dist)
        self._n += 1

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, key: str) -> np.ndarray:
        return self._a[: self._n, self.KEYS.index(key)]

    def items(self):
        return [(k, self[k]) for k in self.KEYS]


#: While poses stream, the time plot's range moves in steps of this many seconds and millimetres.
PLOT_STEP_S, PLOT_STEP_MM = 10.0, 20.0


def stepped_box(t_s: float, *ys) -> tuple[float, float, float]:
    """The time plot's range while poses stream: (seconds to, mm from, mm to), each the next step
    past the data, so that it changes every few seconds rather than with every redraw (a range
    that moves repaints the axes, their labels and the grid: ~10 ms of the GUI thread a redraw
    instead of ~2, measured with 1000 points)."""
    y = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in ys]) if ys else np.zeros(0)
    y = y[np.isfinite(y)]
    lo = min(0.0, float(y.min())) if len(y) else 0.0
    hi = float(y.max()) if len(y) else 0.0
    return (PLOT_STEP_S * (math.floor(max(float(t_s), 0.0) / PLOT_STEP_S) + 1),
            PLOT_STEP_MM * math.floor(lo / PLOT_STEP_MM), PLOT_STEP_MM * (math.floor(hi / PLOT_STEP_MM) + 1))
