"""Slice views of the anatomy for the scenario editor: axial, sagittal and coronal planes of the
CT (windowed) with the label map overlaid in tissue colours, a crosshair linked across the three,
and the scenario drawn on them (targets, nerve polylines, entry zone, planned trajectories).

Screen conventions (the usual radiological display, written on every view):
- axial: seen from the feet - the patient's RIGHT on the screen's LEFT, anterior at the top;
- coronal: seen from the front - the patient's right on the screen's left, superior at the top;
- sagittal: anterior on the screen's left, superior at the top.

Each view's scene coordinates are millimetres of its two in-plane RAS axes (`PLANES`), so a
click maps to RAS exactly: in-plane from the view, the third coordinate the slice's plane
(through `Anatomy.ijk_to_ras`). Mouse: click sets the point (and moves the crosshair, so the two
other views pass through it); wheel moves the slice (Shift: 5 slices), Ctrl+wheel zooms, drag pans;
Page Up/Down move the slice; Enter and Escape are passed on (finish / cancel a polyline).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from simulator.core.tissue import TISSUE_INFO, Tissue

# view name -> (normal axis, horizontal axis, vertical axis), RAS axis indices
PLANES: dict[str, tuple[int, int, int]] = {
    "axial": (2, 0, 1),
    "sagittal": (0, 1, 2),
    "coronal": (1, 0, 2),
}
# screen edge -> patient direction; horizontal axes are shown inverted (larger x / y on the left)
EDGE_LABELS: dict[str, dict[str, str]] = {
    "axial": {"left": "R", "right": "L", "top": "A", "bottom": "P"},
    "sagittal": {"left": "A", "right": "P", "top": "S", "bottom": "I"},
    "coronal": {"left": "R", "right": "L", "top": "S", "bottom": "I"},
}
TITLES = {
    "axial": "Axial (radiological: patient's right on screen left, seen from the feet)",
    "sagittal": "Sagittal (anterior on the left)",
    "coronal": "Coronal (patient's right on screen left, seen from the front)",
}
WINDOWS: dict[str, tuple[float, float]] = {  # name -> (level, width) HU
    "Soft tissue": (40.0, 400.0),
    "Bone": (400.0, 1800.0),
    "Lung": (-600.0, 1500.0),
}
SEVERITY_COLOURS = {"critical": (230, 30, 30), "major": (255, 140, 0), "minor": (240, 220, 40)}
TARGET_COLOUR = (40, 230, 90)
PLAN_COLOUR = (60, 200, 255)
ZONE_COLOUR = (255, 120, 255)
PENDING_COLOUR = (255, 255, 255)
CROSS_COLOUR = (255, 230, 80)
PROBE_COLOUR = (255, 170, 40)
LABEL_LINE_PX = 16  # label height on screen (for spreading labels that would overlap)
LABEL_CHAR_PX = 7  # average character width


@dataclass
class SliceOverlays:
    """What the editor draws on the slices (RAS mm)."""

    targets: list  # dicts: id, kind, points_mm (N, 3), radius_mm, tolerance_mm, selected
    trajectories: list  # (entry_mm, target_mm) pairs
    zone_center_mm: object = None
    zone_radius_mm: float = 0.0
    pending: list | None = None  # points of a polyline being drawn
    critical_labels: dict | None = None  # structure label id -> severity
    critical_tissues: dict | None = None  # Tissue code -> severity
    probe: dict | None = None  # ultrasound probe: center_mm, direction, marker (unit), width_mm, depth_mm


def label_lut(anatomy, critical_labels=None, critical_tissues=None, alpha: int = 90) -> np.ndarray:
    """RGBA colour per label id: the structure's tissue colour (critical structures: the severity
    colour, more opaque); 0 (no structure) transparent."""
    ids = list(anatomy.structures)
    n = (max(ids) if ids else 0) + 1
    lut = np.zeros((n, 4), np.uint8)
    critical_labels = critical_labels or {}
    critical_tissues = critical_tissues or {}
    for sid, s in anatomy.structures.items():
        sev = critical_labels.get(sid) or critical_tissues.get(int(s.tissue))
        if sev:
            lut[sid] = (*SEVERITY_COLOURS.get(sev, (230, 30, 30)), min(255, 2 * alpha))
        else:
            c = TISSUE_INFO[Tissue(int(s.tissue))].color
            lut[sid] = (int(255 * c[0]), int(255 * c[1]), int(255 * c[2]), alpha)
    return lut


class _SliceBox(pg.ViewBox):
    """A ViewBox whose wheel moves the slice (Ctrl+wheel zooms) and whose left click is a point."""

    def __init__(self, view: "SliceView"):
        super().__init__(lockAspect=True, enableMenu=False, invertX=True)
        self._view = view

    def wheelEvent(self, ev, axis=None):  # noqa: N802 (pyqtgraph API)
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        steps = 1 if delta > 0 else -1
        if ev.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            steps *= 5
        self._view.scrolled.emit(self._view.name, steps)
        ev.accept()

    def mouseClickEvent(self, ev):  # noqa: N802 (pyqtgraph API)
        if ev.button() != Qt.MouseButton.LeftButton:
            super().mouseClickEvent(ev)
            return
        ev.accept()
        p = self.mapSceneToView(ev.scenePos())
        self._view._clicked(p.x(), p.y(), bool(ev.double()))


class _InertScatter(pg.ScatterPlotItem):
    """Marks drawn on a slice (targets, entry, zone): a click on one is a click on the slice
    (pyqtgraph's scatter would take it as a click on the spot and the slice would never see it)."""

    def mouseClickEvent(self, ev):  # noqa: N802 (pyqtgraph API)
        ev.ignore()


class SliceView(pg.GraphicsView):
    """One plane of the anatomy. Signals carry RAS mm."""

    clicked = Signal(object, bool)  # ras (3,), double click
    hovered = Signal(object)  # ras (3,)
    scrolled = Signal(str, int)  # view name, slices
    key_pressed = Signal(int)  # Qt key (Enter, Escape) for the editor

    def __init__(self, name: str, parent=None):
        super().__init__(parent, background="k")
        self.name = name
        self.setObjectName(f"slice_{name}")
        self.normal_axis, self.h_axis, self.v_axis = PLANES[name]
        self.box = _SliceBox(self)
        self.setCentralItem(self.box)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.anatomy = None
        self.index = 0  # slice index along the normal axis
        self.ct_item = pg.ImageItem()
        self.label_item = pg.ImageItem()
        self.box.addItem(self.ct_item)
        self.box.addItem(self.label_item)
        pen = pg.mkPen(CROSS_COLOUR, width=1, style=Qt.PenStyle.DashLine)
        self.hline = pg.InfiniteLine(angle=0, movable=False, pen=pen)
        self.vline = pg.InfiniteLine(angle=90, movable=False, pen=pen)
        self.box.addItem(self.hline, ignoreBounds=True)
        self.box.addItem(self.vline, ignoreBounds=True)
        self._curves: dict = {}
        self._labels: list = []
        self.dots = _InertScatter(pxMode=True)
        self.box.addItem(self.dots, ignoreBounds=True)
        self._begin()
        self._lut = None
        self._level = WINDOWS["Soft tissue"]
        self.title = QLabel(TITLES[name], self)
        self.title.setStyleSheet("color: #ddd; background: rgba(0,0,0,120); padding: 1px 4px;")
        self.title.move(4, 2)
        self._edge = {}
        font = QFont(self.font())
        font.setBold(True)
        font.setPointSizeF(max(10.0, font.pointSizeF() + 1))
        for side, letter in EDGE_LABELS[name].items():
            lab = QLabel(letter, self)
            lab.setFont(font)
            lab.setStyleSheet("color: #f0e68c; background: transparent;")
            lab.setObjectName(f"edge_{name}_{side}")
            self._edge[side] = lab
        self.slice_label = QLabel("", self)
        self.slice_label.setStyleSheet("color: #ccc; background: rgba(0,0,0,120); padding: 1px 4px;")

    # --- geometry --------------------------------------------------------------------------
    def plane_mm(self) -> float:
        a = self.anatomy
        return float(a.origin_mm[self.normal_axis] + self.index * a.spacing_mm[self.normal_axis])

    def ras_from_view(self, u: float, v: float) -> np.ndarray:
        """RAS of a point of this view (u horizontal, v vertical scene mm) on the current slice,
        through the continuous voxel index and `ijk_to_ras`."""
        a = self.anatomy
        ijk = np.zeros(4)
        ijk[3] = 1.0
        ijk[self.h_axis] = (u - a.origin_mm[self.h_axis]) / a.spacing_mm[self.h_axis]
        ijk[self.v_axis] = (v - a.origin_mm[self.v_axis]) / a.spacing_mm[self.v_axis]
        ijk[self.normal_axis] = self.index
        return (a.ijk_to_ras @ ijk)[:3]

    def view_from_ras(self, ras) -> tuple[float, float]:
        p = np.asarray(ras, float)
        return float(p[self.h_axis]), float(p[self.v_axis])

    def widget_point(self, ras):
        """Widget pixel (QPoint) where a RAS point shows (its in-plane projection)."""
        u, v = self.view_from_ras(ras)
        scene = self.box.mapViewToScene(QPointF(u, v))
        return self.mapFromScene(scene)

    def index_for(self, ras) -> int:
        a = self.anatomy
        k = int(round((float(ras[self.normal_axis]) - a.origin_mm[self.normal_axis]) / a.spacing_mm[self.normal_axis]))
        return int(np.clip(k, 0, a.shape[self.normal_axis] - 1))

    # --- content ---------------------------------------------------------------------------
    def set_anatomy(self, anatomy, lut) -> None:
        self.anatomy = anatomy
        self._lut = lut
        a = anatomy
        h, v = self.h_axis, self.v_axis
        x0 = a.origin_mm[h] - 0.5 * a.spacing_mm[h]
        y0 = a.origin_mm[v] - 0.5 * a.spacing_mm[v]
        rect = QRectF(x0, y0, a.shape[h] * a.spacing_mm[h], a.shape[v] * a.spacing_mm[v])
        self.index = a.shape[self.normal_axis] // 2
        self._update_image()
        self.ct_item.setRect(rect)
        self.label_item.setRect(rect)
        self.box.setRange(rect, padding=0.02)

    def set_lut(self, lut) -> None:
        self._lut = lut
        self._update_labels()

    def set_window(self, level: float, width: float) -> None:
        self._level = (level, width)
        self.ct_item.setLevels((level - width / 2, level + width / 2))

    def set_label_opacity(self, opacity: float) -> None:
        self.label_item.setOpacity(float(opacity))

    def _slab(self, volume: np.ndarray) -> np.ndarray:
        """The slice, indexed [horizontal, vertical] (pyqtgraph's column-major images)."""
        k = self.index
        if self.normal_axis == 2:
            return volume[:, :, k]
        if self.normal_axis == 0:
            return volume[k, :, :]
        return volume[:, k, :]

    def _update_image(self) -> None:
        if self.anatomy is None:
            return
        lv, w = self._level
        self.ct_item.setImage(self._slab(self.anatomy.hu).astype(np.float32), autoLevels=False,
                              levels=(lv - w / 2, lv + w / 2))
        self._update_labels()
        self.slice_label.setText(f"{'RAS'[self.normal_axis]} {self.plane_mm():.1f} mm  "
                                 f"({self.index + 1}/{self.anatomy.shape[self.normal_axis]})")
        self.slice_label.adjustSize()
        self._place_labels()

    def _update_labels(self) -> None:
        if self.anatomy is None or self._lut is None:
            return
        lab = self._slab(self.anatomy.labels)
        lut = self._lut
        safe = np.minimum(lab, len(lut) - 1)
        self.label_item.setImage(lut[safe], autoLevels=False, levels=(0, 255))

    def set_index(self, k: int) -> bool:
        if self.anatomy is None:
            return False
        k = int(np.clip(k, 0, self.anatomy.shape[self.normal_axis] - 1))
        if k == self.index:
            return False
        self.index = k
        self._update_image()
        return True

    def set_crosshair(self, ras) -> None:
        u, v = self.view_from_ras(ras)
        self.vline.setPos(u)
        self.hline.setPos(v)

    # --- overlays --------------------------------------------------------------------------
    # The overlays are a few persistent items whose data is replaced on each redraw (lines with
    # NaN breaks, one scatter of dots, a pool of labels): adding and removing graphics items for
    # every edit would be slow.
    def _begin(self) -> None:
        self._curves_data: dict = {}
        self._spots: list = []
        self._texts: list = []

    def _curve_key(self, colour, width, style, alpha):
        return (tuple(colour), int(width), int(style.value) if hasattr(style, "value") else int(style), int(alpha))

    def _polyline(self, u, v, colour, width=2, style=Qt.PenStyle.SolidLine, alpha=255) -> None:
        key = self._curve_key(colour, width, style, alpha)
        us, vs = self._curves_data.setdefault(key, ([], []))
        us.extend(list(u) + [np.nan])
        vs.extend(list(v) + [np.nan])

    def _flush(self) -> None:
        used = set()
        for key, (us, vs) in self._curves_data.items():
            item = self._curves.get(key)
            colour, width, style, alpha = key
            if item is None:
                item = pg.PlotCurveItem(pen=pg.mkPen((*colour, alpha), width=width, style=Qt.PenStyle(style)),
                                        connect="finite")
                self.box.addItem(item, ignoreBounds=True)
                self._curves[key] = item
            item.setData(np.asarray(us, float), np.asarray(vs, float), connect="finite")
            used.add(key)
        for key, item in self._curves.items():
            if key not in used and item.xData is not None and len(item.xData):
                item.setData([], [])
        if self._spots:
            self.dots.setData(spots=self._spots)
        elif len(self.dots.data):
            self.dots.setData([], [])
        while len(self._labels) < len(self._texts):
            t = pg.TextItem("", anchor=(0, 1))
            self.box.addItem(t, ignoreBounds=True)
            self._labels.append(t)
        placed = self._spread_labels()
        for i, t in enumerate(self._labels):
            if i < len(self._texts):
                text, _uv, colour = self._texts[i]
                t.setText(text, color=colour)
                t.setPos(*placed[i])
            elif t.textItem.toPlainText():
                t.setText("")

    def _spread_labels(self) -> list:
        """Label positions (scene mm) moved down a line where two would overlap on screen
        (two targets a few mm apart, the probe over the entry)."""
        try:
            sx, sy = (abs(float(x)) for x in self.box.viewPixelSize())
        except Exception:  # noqa: BLE001 - not laid out yet: as given
            sx = sy = 0.0
        out: list = []
        if not (sx > 0 and sy > 0):
            return [uv for _t, uv, _c in self._texts]
        line = LABEL_LINE_PX * sy
        for text, (u, v), _c in self._texts:
            width = (LABEL_CHAR_PX * len(text) + 8) * sx
            for _ in range(len(out) + 1):
                # the views are mirrored (invertX): a label spans [u - width, u] in scene mm
                clash = next(((pu, pv) for (pu, pv), pw in out
                              if abs(pv - v) < line and pu - pw < u and u - width < pu), None)
                if clash is None:
                    break
                v = clash[1] - line  # one line below the label it would cover
            out.append(((u, v), width))
        return [uv for uv, _w in out]

    def clear_overlays(self) -> None:
        self._begin()
        self._flush()

    @property
    def overlay_count(self) -> int:
        """How many marks are drawn (dots, lines, labels): for tests."""
        n = len(self.dots.data)
        n += sum(1 for c in self._curves.values() if c.xData is not None and len(c.xData))
        n += sum(1 for t in self._labels if t.textItem.toPlainText())
        return n

    def _dist(self, p) -> float:
        return float(np.asarray(p, float)[self.normal_axis] - self.plane_mm())

    def _circle(self, centre, radius, colour, width=2, style=Qt.PenStyle.SolidLine) -> None:
        t = np.linspace(0, 2 * np.pi, 49)
        u, v = self.view_from_ras(centre)
        self._polyline(u + radius * np.cos(t), v + radius * np.sin(t), colour, width, style)

    def _dot(self, ras, colour, symbol="o", size=9, text=None, alpha=255) -> None:
        u, v = self.view_from_ras(ras)
        self._spots.append({"pos": (u, v), "symbol": symbol, "size": size, "pen": pg.mkPen((0, 0, 0, alpha)),
                            "brush": pg.mkBrush(*colour, alpha)})
        if text:
            self._texts.append((text, (u, v), colour))

    def _line(self, pts, colour, width=2, style=Qt.PenStyle.SolidLine, alpha=255) -> None:
        pts = np.asarray(pts, float).reshape(-1, 3)
        self._polyline(pts[:, self.h_axis], pts[:, self.v_axis], colour, width, style, alpha)

    def _crossing(self, a, b):
        """The point where segment a-b crosses this slice's plane, or None."""
        da, db = self._dist(a), self._dist(b)
        if da * db > 0 or da == db:
            return None
        t = da / (da - db)
        return np.asarray(a, float) + t * (np.asarray(b, float) - np.asarray(a, float))

    def draw_overlays(self, ov: SliceOverlays) -> None:
        self._begin()
        if self.anatomy is None:
            self._flush()
            return
        half = 0.5 * float(self.anatomy.spacing_mm[self.normal_axis])
        for t in ov.targets:
            pts = np.asarray(t["points_mm"], float).reshape(-1, 3)
            if not len(pts):
                continue
            reach = float(t.get("radius_mm", 0.0)) + float(t.get("tolerance_mm", 0.0))
            width = 3 if t.get("selected") else 2
            if t["kind"] == "polyline" and len(pts) > 1:
                self._line(pts, TARGET_COLOUR, width=1, style=Qt.PenStyle.DashLine, alpha=150)
                for a, b in zip(pts[:-1], pts[1:]):
                    c = self._crossing(a, b)
                    if c is not None:
                        self._circle(c, max(reach, 1.0), TARGET_COLOUR, width=width)
                        self._dot(c, TARGET_COLOUR, size=6)
                for p in pts:
                    if abs(self._dist(p)) <= half:
                        self._dot(p, TARGET_COLOUR, size=7)
                u, v = self.view_from_ras(pts[0])
                self._texts.append((t["id"], (u, v), TARGET_COLOUR))
            else:
                p = pts[0]
                d = abs(self._dist(p))
                if d <= max(reach, half):
                    r = np.sqrt(max(reach ** 2 - d ** 2, 0.0)) if reach > 0 else 0.0
                    if r > 0:
                        self._circle(p, r, TARGET_COLOUR, width=width)
                    self._dot(p, TARGET_COLOUR, size=9, text=t["id"])
                else:  # elsewhere: a faint cross where it projects
                    self._dot(p, TARGET_COLOUR, symbol="+", size=10, alpha=140)
        for entry, target in ov.trajectories:
            e, g = np.asarray(entry, float), np.asarray(target, float)
            self._line([e, g], PLAN_COLOUR, width=2, style=Qt.PenStyle.DashLine, alpha=220)
            c = self._crossing(e, g)
            if c is not None:
                self._dot(c, PLAN_COLOUR, size=8)
            self._dot(e, PLAN_COLOUR, symbol="s", size=8 if abs(self._dist(e)) <= half else 5)
            self._dot(g, PLAN_COLOUR, symbol="t", size=8 if abs(self._dist(g)) <= half else 5)
        if ov.zone_center_mm is not None and ov.zone_radius_mm > 0:
            c = np.asarray(ov.zone_center_mm, float)
            d = abs(self._dist(c))
            r = ov.zone_radius_mm
            if d < r:
                self._circle(c, np.sqrt(r * r - d * d), ZONE_COLOUR, width=2, style=Qt.PenStyle.DashLine)
            self._dot(c, ZONE_COLOUR, symbol="x", size=9)
        if ov.probe is not None:
            self._probe(ov.probe)
        if ov.pending:
            pts = np.asarray(ov.pending, float).reshape(-1, 3)
            if len(pts) > 1:
                self._line(pts, PENDING_COLOUR, width=2)
            for p in pts:
                self._dot(p, PENDING_COLOUR, size=7)
        self._flush()

    def _probe(self, pr: dict) -> None:
        """The probe's face (solid) and the edges of its image (dashed), projected on the slice."""
        c = np.asarray(pr["center_mm"], float)
        d, m = np.asarray(pr["direction"], float), np.asarray(pr["marker"], float)
        half = 0.5 * float(pr["width_mm"]) * m
        deep = float(pr["depth_mm"]) * d
        a, b = c - half, c + half
        self._line([a, b], PROBE_COLOUR, width=4)
        self._line([a, a + deep, b + deep, b], PROBE_COLOUR, width=1, style=Qt.PenStyle.DashLine, alpha=200)
        self._dot(b, PROBE_COLOUR, symbol="o", size=6)  # the marker's end
        u, v = self.view_from_ras(c)
        self._texts.append(("probe", (u, v), PROBE_COLOUR))

    # --- events ----------------------------------------------------------------------------
    def _clicked(self, u: float, v: float, double: bool) -> None:
        if self.anatomy is None:
            return
        self.clicked.emit(self.ras_from_view(u, v), double)

    def mouseMoveEvent(self, ev):  # noqa: N802 (Qt API)
        # every move (pyqtgraph's scene signal drops moves closer than 10 ms: after a quick
        # move the text would name a point the mouse has left)
        super().mouseMoveEvent(ev)
        self._mouse_moved(self.mapToScene(ev.position().toPoint()))

    def _mouse_moved(self, scene_pos) -> None:
        if self.anatomy is None:
            return
        p = self.box.mapSceneToView(scene_pos)
        self.hovered.emit(self.ras_from_view(p.x(), p.y()))

    def keyPressEvent(self, event):  # noqa: N802 (Qt API)
        k = event.key()
        if k in (Qt.Key.Key_PageUp, Qt.Key.Key_PageDown):
            step = 5 if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else 1
            self.scrolled.emit(self.name, step if k == Qt.Key.Key_PageUp else -step)
            event.accept()
            return
        if k in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Escape, Qt.Key.Key_Backspace):
            self.key_pressed.emit(int(k))
            event.accept()
            return
        super().keyPressEvent(event)

    def resizeEvent(self, event):  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        self._place_labels()

    def _place_labels(self) -> None:
        if not hasattr(self, "slice_label"):
            return  # called by the base class's constructor
        w, h = self.width(), self.height()
        for side, lab in self._edge.items():
            lab.adjustSize()
            if side == "left":
                lab.move(6, h // 2 - lab.height() // 2)
            elif side == "right":
                lab.move(w - lab.width() - 6, h // 2 - lab.height() // 2)
            elif side == "top":
                lab.move(w // 2 - lab.width() // 2, 20)
            else:
                lab.move(w // 2 - lab.width() // 2, h - lab.height() - 4)
        self.slice_label.move(4, h - self.slice_label.height() - 4)


class SlicePanel(QWidget):
    """The three views, the point under the cursor, the CT window and label opacity."""

    point_clicked = Signal(object, str, bool)  # ras, view name, double click
    key_pressed = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("slice_panel")
        self.anatomy = None
        self.cursor_mm = np.zeros(3)
        self.views = {name: SliceView(name) for name in PLANES}
        self.banner = QLabel("")
        self.banner.setObjectName("plan_banner")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background: #7a1010; color: white; font-weight: bold; padding: 4px;")
        self.banner.hide()
        self.hint = QLabel("")
        self.hint.setObjectName("click_hint")
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("background: #24425e; color: white; padding: 3px;")
        self.status = QLabel("Move the mouse over a slice: the structure under it shows here")
        self.status.setObjectName("slice_status")
        # the text changes as the mouse moves: it must never resize the views under the mouse
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.status.setMinimumWidth(40)
        self.window_combo = QComboBox()
        self.window_combo.setObjectName("ct_window")
        self.window_combo.addItems(list(WINDOWS))
        self.window_combo.currentTextChanged.connect(self._window_changed)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setObjectName("label_opacity")
        self.opacity.setRange(0, 100)
        self.opacity.setValue(100)
        self.opacity.setMinimumWidth(90)
        self.opacity.setMaximumWidth(140)
        self.opacity.valueChanged.connect(lambda v: [w.set_label_opacity(v / 100.0) for w in self.views.values()])

        grid = QGridLayout()
        grid.setSpacing(2)
        grid.addWidget(self.views["axial"], 0, 0, 1, 2)
        grid.addWidget(self.views["sagittal"], 1, 0)
        grid.addWidget(self.views["coronal"], 1, 1)
        grid.setRowStretch(0, 3)
        grid.setRowStretch(1, 2)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("CT window"))
        bar.addWidget(self.window_combo)
        bar.addWidget(QLabel("Labels"))
        bar.addWidget(self.opacity)
        bar.addWidget(self.status, 1)
        self.legend = QLabel(
            "<span style='color:#e61e1e'>\u25a0</span> critical / <span style='color:#ff8c00'>\u25a0</span> major / "
            "<span style='color:#f0dc28'>\u25a0</span> minor structure to avoid; "
            "<span style='color:#28e65a'>\u25cf</span> target (circle: tolerance); "
            "<span style='color:#3cc8ff'>- -</span> planned needle; <span style='color:#ff78ff'>\u2715</span> entry zone; "
            "<span style='color:#ffaa28'>\u25ac</span> ultrasound probe")
        self.legend.setObjectName("slice_legend")
        self.legend.setWordWrap(True)  # never widens the panel
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.banner)
        lay.addWidget(self.hint)
        lay.addLayout(grid, 1)
        lay.addLayout(bar)
        lay.addWidget(self.legend)
        for v in self.views.values():
            v.clicked.connect(lambda ras, dbl, n=v.name: self._on_click(ras, n, dbl))
            v.hovered.connect(self.show_point_info)
            v.scrolled.connect(self.scroll)
            v.key_pressed.connect(self.key_pressed)

    def set_anatomy(self, anatomy, lut) -> None:
        self.anatomy = anatomy
        for v in self.views.values():
            v.set_anatomy(anatomy, lut)
        lo, hi = anatomy.bounds_mm()
        self.set_cursor(0.5 * (lo + hi))

    def set_lut(self, lut) -> None:
        for v in self.views.values():
            v.set_lut(lut)

    def _window_changed(self, name: str) -> None:
        level, width = WINDOWS[name]
        for v in self.views.values():
            v.set_window(level, width)

    def set_cursor(self, ras) -> None:
        """Move the crosshair to a RAS point: every view shows the slice through it."""
        self.cursor_mm = np.asarray(ras, float).copy()
        for v in self.views.values():
            v.set_index(v.index_for(self.cursor_mm))
            v.set_crosshair(self.cursor_mm)

    def scroll(self, name: str, steps: int) -> None:
        v = self.views[name]
        if v.set_index(v.index + steps):
            self.cursor_mm[v.normal_axis] = v.plane_mm()
            for o in self.views.values():
                o.set_crosshair(self.cursor_mm)
            self.slices_moved()

    def slices_moved(self) -> None:
        """Hook: the editor redraws its overlays when a slice changes (set by the owner)."""
        cb = getattr(self, "on_slices_moved", None)
        if cb is not None:
            cb()

    def _on_click(self, ras, name: str, double: bool) -> None:
        before = [v.index for v in self.views.values()]
        self.set_cursor(ras)
        self.show_point_info(ras)
        if before != [v.index for v in self.views.values()]:
            self.slices_moved()
        self.point_clicked.emit(np.asarray(ras, float), name, double)

    def describe(self, ras) -> str:
        a = self.anatomy
        if a is None:
            return ""
        p = np.asarray(ras, float)
        s = a.structure_at(p)
        tissue = Tissue(int(a.tissue_at(p[None])[0]))
        hu = int(a.hu_at(p[None])[0])
        what = s.name if s is not None else "(no structure)"
        r, a_, s_ = (round(float(x), 1) + 0.0 for x in p)  # + 0.0: no "-0.0"
        return (f"R {r:.1f}  A {a_:.1f}  S {s_:.1f} mm:  {what}  "
                f"[{TISSUE_INFO[tissue].label}, {hu} HU]")

    def show_point_info(self, ras) -> None:
        self.status.setText(self.describe(ras))

    def draw_overlays(self, ov: SliceOverlays) -> None:
        for v in self.views.values():
            v.draw_overlays(ov)
