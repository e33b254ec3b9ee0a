"""M-mode: one scan line of the B-mode image drawn over time, as a scanner sweeps it.

The scanner's M-line is the image's central scan line; each new B-mode frame gives that line's
brightness at the frame's time, and the sweep writes it across the strip from left to right
(`sweep_s` for the strip's width), erasing a short gap ahead of the write position, then starts
again at the left. Between two frames the columns are filled with the newer line (a scanner's
M-mode is sampled far faster; ours is as fast as the B-mode frames come).

What a pain physician reads in it (intercostal and paravertebral blocks): with the lung sliding,
the still chest wall draws straight horizontal lines and the lung below the pleural line a grainy
"seashore"; where a pneumothorax separates the lung from the wall nothing moves below the pleura
either, and the whole strip is horizontal lines (the "stratosphere" or barcode sign).

Pure numpy: `MModeSweep` holds the strip, `m_line` takes the line out of a display image,
`side_by_side` composes the screen (B-mode with the M-line dotted, the strip beside it).
"""
from __future__ import annotations

import numpy as np

SWEEP_S = 4.0  # one sweep across the strip: a breath at rest
ERASE_COLUMNS = 4  # the gap the sweep clears ahead of the newest line
LINE_HALF_WIDTH_PX = 1  # the M-line averages 3 display columns (the beam's width on screen)


def m_line(display: np.ndarray, column: int | None = None) -> np.ndarray:
    """The brightness along the M-line (the central scan line unless `column`): (H,) uint8."""
    img = np.asarray(display)
    if img.ndim == 3:  # colour Doppler on top: the grey level of the composed pixel
        img = img[..., :3].mean(axis=2)
    w = img.shape[1]
    c = w // 2 if column is None else int(np.clip(column, 0, w - 1))
    lo, hi = max(0, c - LINE_HALF_WIDTH_PX), min(w, c + LINE_HALF_WIDTH_PX + 1)
    return np.clip(img[:, lo:hi].astype(np.float32).mean(axis=1) + 0.5, 0, 255).astype(np.uint8)


class MModeSweep:
    """The M-mode strip (height of the B-mode image, `width` columns for `sweep_s` seconds)."""

    def __init__(self, width: int = 256, sweep_s: float = SWEEP_S):
        if width < 8 or not sweep_s > 0:
            raise ValueError(f"MModeSweep: width {width!r} must be at least 8 and sweep_s {sweep_s!r} positive")
        self.width = int(width)
        self.sweep_s = float(sweep_s)
        self.strip: np.ndarray | None = None
        self._last_x: int | None = None
        self._last_t: float | None = None

    def clear(self) -> None:
        self.strip = None
        self._last_x = self._last_t = None

    def column_at(self, time_s: float) -> int:
        return int((float(time_s) % self.sweep_s) / self.sweep_s * self.width) % self.width

    def add(self, line: np.ndarray, time_s: float) -> None:
        """Write the M-line of a frame taken at `time_s` (seconds, any origin)."""
        line = np.asarray(line, dtype=np.uint8).reshape(-1)
        if self.strip is None or self.strip.shape[0] != line.size:
            self.strip = np.zeros((line.size, self.width), dtype=np.uint8)
            self._last_x = self._last_t = None
        x = self.column_at(time_s)
        t = float(time_s)
        if self._last_t is None or t < self._last_t or t - self._last_t >= self.sweep_s:
            cols = [x]  # the first line, or a jump: no columns to fill in between
        else:
            n = (x - self._last_x) % self.width
            cols = [(self._last_x + k) % self.width for k in range(1, n + 1)] or [x]
        self.strip[:, cols] = line[:, None]
        gap = [(x + k) % self.width for k in range(1, ERASE_COLUMNS + 1)]
        self.strip[:, gap] = 0
        self._last_x, self._last_t = x, t

    def image(self) -> np.ndarray | None:
        return self.strip


def side_by_side(bmode: np.ndarray, strip: np.ndarray | None, column: int | None = None) -> np.ndarray:
    """The screen of a scanner in B/M mode: the B-mode image with its M-line dotted, and the strip
    (scaled to the image's width) to its right, separated by a dark rule. Grey or RGB in, the
    same out."""
    b = np.array(bmode, copy=True)
    h, w = b.shape[:2]
    c = w // 2 if column is None else int(np.clip(column, 0, w - 1))
    dots = np.arange(0, h, 6)
    b[dots, c] = 230
    b[np.minimum(dots + 1, h - 1), c] = 230
    if strip is None:
        strip = np.zeros((h, w), dtype=np.uint8)
    xs = np.minimum((np.arange(w) * strip.shape[1]) // w, strip.shape[1] - 1)
    s = strip[:h][:, xs]
    if b.ndim == 3:
        s = np.repeat(s[..., None], b.shape[2], axis=2)
    rule = np.full((h, 3) + b.shape[2:], 40, dtype=np.uint8)
    return np.concatenate([b, rule, s.astype(np.uint8)], axis=1)


__all__ = ["SWEEP_S", "MModeSweep", "m_line", "side_by_side"]
