"""Plots of an attempt for the reports, written as SVG by hand (no plotting library).

`attempt_plots(recording)` gives the report's plots as data (`Plot`: series, markers, axes):
- the tip's path in two projections, axial (looking from the feet: the patient's right on the
  left, anterior up) and sagittal (from the patient's left: anterior on the left, superior up),
  equal scales in millimetres, with the skin entries, the targets, the injections and the
  contacts;
- the tip-to-target distance over time, one line per target, with its tolerance;
- the depth of the tip below the skin over time (along the needle from the current skin entry),
  with the injections and harmful events marked.
`svg(plot, width, height)` draws one as a standalone SVG document (embedded in the HTML report);
`to_qimage(plot, ...)` rasterises that SVG with QtSvg for the PDF (Qt imported only there).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

import numpy as np

from simulator.core.events import HARMFUL, EventKind

MAX_POINTS = 2500
PALETTE = ("#1f5fa8", "#c4501b", "#2a8a3e", "#7b3fa0", "#a07a12", "#0f8a8a")
RED = "#c62828"
GREY = "#777777"


@dataclass
class Series:
    label: str
    x: np.ndarray
    y: np.ndarray
    color: str = PALETTE[0]
    kind: str = "line"  # line | points | rings (hollow points) | band (filled between y and y2)
    width: float = 1.6
    size: float = 3.5
    dash: str = ""
    y2: np.ndarray | None = None  # the band's upper edge
    opacity: float = 1.0


@dataclass
class VLine:
    x: float
    label: str
    color: str = GREY
    group: str = ""  # the legend's name for lines like this one


@dataclass
class HLine:
    y: float
    label: str
    color: str = GREY


@dataclass
class Plot:
    title: str
    xlabel: str
    ylabel: str
    series: list[Series] = field(default_factory=list)
    vlines: list[VLine] = field(default_factory=list)
    hlines: list[HLine] = field(default_factory=list)
    equal_aspect: bool = False
    flip_x: bool = False  # larger x drawn on the left
    y_from_zero: bool = False
    note: str = ""  # shown when there is nothing to plot

    def has_data(self) -> bool:
        return any(np.isfinite(s.y).any() for s in self.series)


# --------------------------------------------------------------------------------------------
# Data of an attempt
# --------------------------------------------------------------------------------------------


def _decimate(n: int, limit: int = MAX_POINTS) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    idx = np.linspace(0, n - 1, limit).round().astype(int)
    return np.unique(idx)


def _moving_points(tips: np.ndarray) -> np.ndarray:
    """Indices of the tip positions where it moved (rests collapse to one point), decimated."""
    n = len(tips)
    if n == 0:
        return np.zeros(0, int)
    keep = np.ones(n, bool)
    keep[1:] = np.any(tips[1:] != tips[:-1], axis=1)
    idx = np.nonzero(keep)[0]
    if idx[-1] != n - 1:
        idx = np.append(idx, n - 1)
    return idx[_decimate(len(idx))]


def _targets(recording) -> list:
    from simulator.core.metrics import TargetGeometry

    out = []
    for d in (recording.meta or {}).get("targets", []) or []:
        try:
            out.append(TargetGeometry(id=d["id"], name=d["name"], kind=d["kind"],
                                      points_mm=np.asarray(d["points_mm"], float).reshape(-1, 3),
                                      radius_mm=float(d.get("radius_mm", 0.0)),
                                      tolerance_mm=float(d.get("tolerance_mm", 5.0)),
                                      required=bool(d.get("required", True)), side=d.get("side", "midline")))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def depth_below_skin(recording) -> np.ndarray:
    """Per sample: the tip's depth (mm) along the needle from the skin entry of the current pass
    (from the skin-puncture and needle-out events), 0 outside the body."""
    s = recording.samples
    t = s.time_s
    n = len(t)
    depth = np.zeros(n)
    if n == 0:
        return depth
    punct = [(e.time_s, np.asarray(e.data.get("position_mm"), float)) for e in recording.events
             if e.kind == EventKind.skin_puncture and e.data.get("position_mm") is not None]
    outs = sorted(e.time_s for e in recording.events if e.kind == EventKind.needle_out)
    tips = s.needle_tip_to_world[:, :3, 3]
    axes = s.needle_tip_to_world[:, :3, 2]
    for k, (tp, entry) in enumerate(punct):
        t_next = punct[k + 1][0] if k + 1 < len(punct) else math.inf
        t_out = next((o for o in outs if o >= tp), math.inf)
        t_end = min(t_next, t_out)
        sel = (t >= tp - 5e-4) & (t < t_end - 5e-4)
        if sel.any():
            d = np.einsum("ij,ij->i", tips[sel] - entry, axes[sel])
            depth[sel] = np.maximum(d, 0.0)
    return depth


def _event_points(recording, kinds) -> np.ndarray:
    pts = []
    for e in recording.events:
        if e.kind in kinds:
            p = e.data.get("position_mm", e.data.get("tip_mm"))
            if p is not None and len(p) == 3:
                pts.append(p)
    return np.asarray(pts, float).reshape(-1, 3)


def insertion_numbers(recording) -> np.ndarray:
    """Per sample: the insertion the needle is in (1, 2, ... from the skin punctures), 0 while it is
    out of the body (before the first puncture, after a needle-out)."""
    t = recording.samples.time_s
    out = np.zeros(len(t), int)
    punct = sorted(e.time_s for e in recording.events if e.kind == EventKind.skin_puncture)
    outs = sorted(e.time_s for e in recording.events if e.kind == EventKind.needle_out)
    for k, tp in enumerate(punct):
        t_next = punct[k + 1] if k + 1 < len(punct) else math.inf
        t_out = next((o for o in outs if o >= tp), math.inf)
        out[(t >= tp - 5e-4) & (t < min(t_next, t_out) - 5e-4)] = k + 1
    return out


def insertion_paths(recording) -> np.ndarray:
    """The tip's path in the body, one run of points per insertion separated by a NaN row (a line
    drawn through it breaks there instead of crossing the skin between insertions)."""
    tips = recording.samples.needle_tip_to_world[:, :3, 3]
    number = insertion_numbers(recording)
    rows, prev = [], 0
    for j in _moving_points(tips):
        n = int(number[j])
        if n and ((prev and n != prev) or (not prev and rows)):
            rows.append(np.full(3, np.nan))
        if n:
            rows.append(tips[j])
        prev = n
    return np.asarray(rows, float).reshape(-1, 3)


def trajectory_plots(recording) -> list[Plot]:
    path = insertion_paths(recording)
    entries = _event_points(recording, {EventKind.skin_puncture})
    injections = _event_points(recording, {EventKind.injection})
    harmful = _event_points(recording, set(HARMFUL) | {EventKind.bone_contact})
    targets = _targets(recording)
    views = [("Tip path, axial (from the feet)", 0, 1, "patient right  \u2190  x (mm)  \u2192  left",
              "y (mm), anterior up", True),
             ("Tip path, sagittal (from the left)", 1, 2, "anterior  \u2190  y (mm)  \u2192  posterior",
              "z (mm), superior up", True)]
    plots = []
    for title, a, b, xl, yl, flip in views:
        p = Plot(title, xl, yl, equal_aspect=True, flip_x=flip, note="the needle was never placed")
        p.series.append(Series("tip path", path[:, a], path[:, b], PALETTE[0]))
        if len(entries):
            p.series.append(Series("skin entry", entries[:, a], entries[:, b], "#222222", kind="points", size=4))
        if len(injections):
            p.series.append(Series("injection", injections[:, a], injections[:, b], PALETTE[2], kind="points", size=5))
        if len(harmful):
            p.series.append(Series("contact / puncture", harmful[:, a], harmful[:, b], PALETTE[1], kind="points",
                                   size=4))
        for tg in targets:
            pts = tg.points_mm
            kind = "line" if tg.kind == "polyline" and len(pts) > 1 else "rings"
            p.series.append(Series(f"target: {tg.name}", pts[:, a], pts[:, b], RED, kind=kind, size=6, width=2.5,
                                   dash="5,3" if kind == "line" else ""))
        plots.append(p)
    return plots


def _time_markers(recording, t0: float) -> list[VLine]:
    out = []
    for e in recording.events:
        if e.kind == EventKind.injection:
            out.append(VLine(e.time_s - t0, str(e.data.get("kind", "injection")).replace("_", " "), PALETTE[2],
                             "injection"))
        elif e.kind in HARMFUL:
            out.append(VLine(e.time_s - t0, e.message, RED, "harmful event"))
    return out


def time_plots(recording) -> list[Plot]:
    s = recording.samples
    n = len(s)
    t = s.time_s
    t0 = float(t[0]) if n else 0.0
    idx = _decimate(n)
    tt = t[idx] - t0
    tips = s.needle_tip_to_world[idx, :3, 3]
    marks = _time_markers(recording, t0)
    dist = Plot("Tip-to-target distance", "time (s)", "distance (mm)", vlines=marks, y_from_zero=True,
                note="no samples")
    for k, tg in enumerate(_targets(recording)):
        color = PALETTE[k % len(PALETTE)]
        dist.series.append(Series(tg.name, tt, tg.distance(tips) if len(tips) else np.zeros(0), color))
        dist.hlines.append(HLine(tg.tolerance_mm, f"tolerance {tg.tolerance_mm:g} mm ({tg.name})", color))
    depth = Plot("Tip depth below the skin", "time (s)", "depth (mm)", vlines=marks, y_from_zero=True,
                 note="no samples")
    depth.series.append(Series("depth", tt, depth_below_skin(recording)[idx] if n else np.zeros(0), PALETTE[0]))
    return [dist, depth]


def attempt_plots(recording) -> list[Plot]:
    """The report's four plots (see the module notes)."""
    return trajectory_plots(recording) + time_plots(recording)


# --------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (steps 1, 2, 2.5, 5 x 10^k)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, target)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    out = []
    v = first
    while v <= hi + 1e-9 * step:
        out.append(0.0 if abs(v) < 1e-12 * step else v)
        v += step
    return out


def _fmt_tick(v: float, step: float) -> str:
    if step >= 1 or step == 0:
        return f"{v:.0f}"
    digits = min(6, max(1, -int(math.floor(math.log10(step)))))
    return f"{v:.{digits}f}"


def _bounds(plot: Plot) -> tuple[float, float, float, float]:
    xs = [np.asarray(s.x, float) for s in plot.series] + [np.array([v.x for v in plot.vlines])]
    ys = [np.asarray(s.y, float) for s in plot.series] + [np.array([h.y for h in plot.hlines])]
    ys += [np.asarray(s.y2, float) for s in plot.series if s.y2 is not None]
    x = np.concatenate([a.ravel() for a in xs]) if xs else np.zeros(0)
    y = np.concatenate([a.ravel() for a in ys]) if ys else np.zeros(0)
    x = x[np.isfinite(x)]
    y = y[np.isfinite(y)]
    if len(x) == 0 or len(y) == 0:
        return 0.0, 1.0, 0.0, 1.0
    x0, x1, y0, y1 = float(x.min()), float(x.max()), float(y.min()), float(y.max())
    if plot.y_from_zero:
        y0 = min(0.0, y0)
    if x1 - x0 < 1e-9:
        x0, x1 = x0 - 1.0, x1 + 1.0
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 1.0, y1 + 1.0
    px, py = 0.04 * (x1 - x0), 0.06 * (y1 - y0)
    return x0 - px, x1 + px, (y0 if plot.y_from_zero and y0 == 0 else y0 - py), y1 + py


def svg(plot: Plot, width: int = 520, height: int = 360) -> str:
    """The plot as a standalone SVG document."""
    ml, mr, mt, mb = 62, 14, 30, 46
    legend_rows = [(s.label, s.kind, s.color, s.size, "") for s in plot.series if s.label]
    seen = set()
    for h in plot.hlines:
        if h.label not in seen:
            seen.add(h.label)
            legend_rows.append((h.label, "line", h.color, 0, "6,4"))
    for v in plot.vlines:
        if v.group and v.group not in seen:
            seen.add(v.group)
            legend_rows.append((v.group, "line", v.color, 0, "2,3"))
    legend_h = 15 * len(legend_rows) + (6 if legend_rows else 0)
    pw, ph = width - ml - mr, height - mt - mb - legend_h
    x0, x1, y0, y1 = _bounds(plot)
    if plot.equal_aspect:
        sx, sy = pw / (x1 - x0), ph / (y1 - y0)
        s = min(sx, sy)
        cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
        x0, x1 = cx - 0.5 * pw / s, cx + 0.5 * pw / s
        y0, y1 = cy - 0.5 * ph / s, cy + 0.5 * ph / s

    def X(v):
        f = (v - x0) / (x1 - x0)
        return ml + (1 - f if plot.flip_x else f) * pw

    def Y(v):
        return mt + (1 - (v - y0) / (y1 - y0)) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="11">',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
           f'<text x="{width / 2:.1f}" y="18" text-anchor="middle" font-size="13" font-weight="bold">'
           f'{escape(plot.title)}</text>']
    clip = f"clip{abs(hash((plot.title, width, height))) % 10**8}"
    out.append(f'<defs><clipPath id="{clip}"><rect x="{ml}" y="{mt}" width="{pw}" height="{ph}"/></clipPath></defs>')
    # grid and ticks
    xt = nice_ticks(x0, x1, 6 if not plot.equal_aspect else 5)
    yt = nice_ticks(y0, y1, 5)
    xstep = xt[1] - xt[0] if len(xt) > 1 else 1.0
    ystep = yt[1] - yt[0] if len(yt) > 1 else 1.0
    for v in xt:
        px = X(v)
        out.append(f'<line x1="{px:.1f}" y1="{mt}" x2="{px:.1f}" y2="{mt + ph}" stroke="#e4e4e4" stroke-width="1"/>')
        out.append(f'<text x="{px:.1f}" y="{mt + ph + 14}" text-anchor="middle">{_fmt_tick(v, xstep)}</text>')
    for v in yt:
        py = Y(v)
        out.append(f'<line x1="{ml}" y1="{py:.1f}" x2="{ml + pw}" y2="{py:.1f}" stroke="#e4e4e4" stroke-width="1"/>')
        out.append(f'<text x="{ml - 5}" y="{py + 4:.1f}" text-anchor="end">{_fmt_tick(v, ystep)}</text>')
    out.append(f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#444444" stroke-width="1"/>')
    out.append(f'<text x="{ml + pw / 2:.1f}" y="{mt + ph + 32}" text-anchor="middle">{escape(plot.xlabel)}</text>')
    out.append(f'<text x="14" y="{mt + ph / 2:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 14 {mt + ph / 2:.1f})">{escape(plot.ylabel)}</text>')
    body = [f'<g clip-path="url(#{clip})">']
    for h in plot.hlines:
        py = Y(h.y)
        body.append(f'<line x1="{ml}" y1="{py:.1f}" x2="{ml + pw}" y2="{py:.1f}" stroke="{h.color}" '
                    f'stroke-width="1" stroke-dasharray="6,4"><title>{escape(h.label)}</title></line>')
    for v in plot.vlines:
        px = X(v.x)
        body.append(f'<line x1="{px:.1f}" y1="{mt}" x2="{px:.1f}" y2="{mt + ph}" stroke="{v.color}" '
                    f'stroke-width="1" stroke-dasharray="2,3"><title>{escape(v.label)}</title></line>')
    for s in plot.series:
        x = np.asarray(s.x, float)
        y = np.asarray(s.y, float)
        ok = np.isfinite(x) & np.isfinite(y)
        if s.kind in ("points", "rings"):
            paint = (f'fill="{s.color}" stroke="#ffffff" stroke-width="0.8"' if s.kind == "points" else
                     f'fill="none" stroke="{s.color}" stroke-width="2"')
            for a, b in zip(x[ok], y[ok]):
                body.append(f'<circle cx="{X(a):.1f}" cy="{Y(b):.1f}" r="{s.size:g}" {paint}/>')
            continue
        if s.kind == "band" and s.y2 is not None:
            y2 = np.asarray(s.y2, float)
            okb = ok & np.isfinite(y2)
            upper = [f"{X(a):.1f},{Y(b):.1f}" for a, b in zip(x[okb], y2[okb])]
            lower = [f"{X(a):.1f},{Y(b):.1f}" for a, b in zip(x[okb][::-1], y[okb][::-1])]
            if upper:
                body.append(f'<polygon points="{" ".join(upper + lower)}" fill="{s.color}" '
                            f'fill-opacity="{s.opacity:g}" stroke="none"/>')
            continue
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        for run in _runs(ok):  # a gap (NaN) breaks the line
            pts = " ".join(f"{X(a):.1f},{Y(b):.1f}" for a, b in zip(x[run], y[run]))
            body.append(f'<polyline points="{pts}" fill="none" stroke="{s.color}" stroke-width="{s.width:g}" '
                        f'stroke-linejoin="round"{dash}/>')
    body.append("</g>")
    out += body
    if not plot.has_data() and plot.note:
        out.append(f'<text x="{ml + pw / 2:.1f}" y="{mt + ph / 2:.1f}" text-anchor="middle" fill="{GREY}">'
                   f'{escape(plot.note)}</text>')
    ly = mt + ph + 50
    for k, (label, kind, color, size, dash) in enumerate(legend_rows):
        yy = ly + 15 * k
        if kind == "points":
            out.append(f'<circle cx="{ml + 8}" cy="{yy - 4}" r="{min(size, 4):g}" fill="{color}"/>')
        elif kind == "band":
            out.append(f'<rect x="{ml}" y="{yy - 9}" width="16" height="10" fill="{color}" fill-opacity="0.45"/>')
        elif kind == "rings":
            out.append(f'<circle cx="{ml + 8}" cy="{yy - 4}" r="4" fill="none" stroke="{color}" stroke-width="2"/>')
        else:
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(f'<line x1="{ml}" y1="{yy - 4}" x2="{ml + 16}" y2="{yy - 4}" stroke="{color}" '
                       f'stroke-width="2"{dash_attr}/>')
        out.append(f'<text x="{ml + 22}" y="{yy}">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _runs(ok: np.ndarray) -> list[slice]:
    """Slices of consecutive True values."""
    out, start = [], None
    for i, v in enumerate(ok):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out.append(slice(start, i))
            start = None
    if start is not None:
        out.append(slice(start, len(ok)))
    return out


def to_qimage(svg_text: str, width: int, height: int, scale: float = 2.0):
    """Rasterise an SVG document (QtSvg) to a QImage `scale` times its size (needs a Qt GUI app)."""
    from PySide6.QtCore import QByteArray, QRectF
    from PySide6.QtGui import QColor, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    img = QImage(int(width * scale), int(height * scale), QImage.Format.Format_ARGB32)
    img.fill(QColor("white"))
    renderer = QSvgRenderer(QByteArray(svg_text.encode("utf-8")))
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(p, QRectF(0, 0, img.width(), img.height()))
    p.end()
    return img
