"""A widget that shows one greyscale (or RGB) image, scaled to fit with its aspect ratio, and
text overlays at its edges: the screen of a C-arm or an ultrasound scanner.

Painting is plain QPainter on a raster widget (no OpenGL: the image and its overlays are one
cheap blit). `set_image` keeps a reference to the numpy array it wraps (QImage does not copy);
`painted` fires after each paint with the perf_counter time and the id of the frame shown, so a
benchmark can tell when a frame reached the screen.
"""
from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget


def qimage_from_array(arr: np.ndarray) -> tuple[QImage, np.ndarray]:
    """A QImage wrapping a uint8 (H, W) grey or (H, W, 3) RGB / (H, W, 4) RGBA array (the
    returned array must outlive the image: keep both)."""
    a = np.ascontiguousarray(arr, dtype=np.uint8)
    h, w = a.shape[:2]
    if a.ndim == 2:
        img = QImage(a.data, w, h, a.strides[0], QImage.Format.Format_Grayscale8)
    elif a.shape[2] == 3:
        img = QImage(a.data, w, h, a.strides[0], QImage.Format.Format_RGB888)
    elif a.shape[2] == 4:
        img = QImage(a.data, w, h, a.strides[0], QImage.Format.Format_RGBA8888)
    else:
        raise ValueError(f"image: expected (H, W), (H, W, 3) or (H, W, 4) uint8, got {a.shape}")
    return img, a


class ImageCanvas(QWidget):
    painted = Signal(float, int)  # perf_counter after the paint, id of the frame shown
    wheel_steps = Signal(float, object)  # notches (+ away from the user), modifiers
    dragged = Signal(float, float, object)  # dx, dy (widget px) of a left-button drag, modifiers
    clicked = Signal(float, float)  # image pixel (u, v) of a click without drag

    def __init__(self, placeholder: str = "", parent=None):
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 120)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.placeholder = placeholder
        self._image: QImage | None = None
        self._array: np.ndarray | None = None
        self.frame_id = 0
        self.corner_text: dict[str, str] = {}  # "tl", "tr", "bl", "br" -> text
        self.edge_labels: dict[str, str] = {}  # "left", "right", "top", "bottom" -> one letter
        self.banner = ""  # centred text near the top (e.g. "REVIEW")
        self.marker_dot: str | None = None  # "left" / "right": the ultrasound orientation marker
        self.paint_count = 0
        self.last_paint_t = 0.0
        self._press = None
        self._wheel_accum = 0.0

    # --- content ----------------------------------------------------------------------------
    def set_image(self, arr: np.ndarray | None, frame_id: int = 0) -> None:
        if arr is None:
            self._image, self._array = None, None
        else:
            self._image, self._array = qimage_from_array(arr)
        self.frame_id = int(frame_id)
        if self.isVisible():
            # a new frame goes on screen now, not with the window's next paint cycle (which
            # also repaints whatever else is dirty: plots, labels)
            self.repaint()
        else:
            self.update()

    def image_array(self) -> np.ndarray | None:
        """The array shown (H, W) or (H, W, C), uint8; None when the screen is blank."""
        return self._array

    def has_image(self) -> bool:
        return self._image is not None

    def image_rect(self) -> QRectF:
        """Where the image sits in the widget (aspect-preserving fit, centred)."""
        if self._image is None:
            return QRectF(0, 0, 0, 0)
        w, h = self.width(), self.height()
        iw, ih = self._image.width(), self._image.height()
        s = min(w / iw, h / ih)
        return QRectF((w - iw * s) / 2, (h - ih * s) / 2, iw * s, ih * s)

    def widget_to_image(self, x: float, y: float) -> tuple[float, float]:
        r = self.image_rect()
        if r.width() <= 0:
            return float("nan"), float("nan")
        s = r.width() / self._image.width()
        return (x - r.x()) / s - 0.5, (y - r.y()) / s - 0.5

    def image_to_widget(self, u: float, v: float) -> tuple[float, float]:
        r = self.image_rect()
        s = r.width() / self._image.width() if self._image is not None else 1.0
        return r.x() + (u + 0.5) * s, r.y() + (v + 0.5) * s

    # --- painting ---------------------------------------------------------------------------
    def paintEvent(self, event):  # noqa: N802 (Qt API)
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(0, 0, 0))
        font = QFont(self.font())
        font.setPointSizeF(max(8.0, font.pointSizeF()))
        p.setFont(font)
        if self._image is None:
            if self.placeholder:
                p.setPen(QColor(120, 120, 120))
                p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
        else:
            r = self.image_rect()
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            p.drawImage(r, self._image)
            self._paint_overlays(p, r)
        p.end()
        self.paint_count += 1
        self.last_paint_t = time.perf_counter()
        self.painted.emit(self.last_paint_t, self.frame_id)

    def _paint_overlays(self, p: QPainter, r: QRectF) -> None:
        fm = p.fontMetrics()
        pad = 6
        p.setPen(QColor(230, 230, 140))
        bold = QFont(p.font())
        bold.setBold(True)
        p.setFont(bold)
        for side, text in self.edge_labels.items():
            if not text:
                continue
            tw = fm.horizontalAdvance(text)
            if side == "left":
                pos = QPointF(r.left() + pad, r.center().y() + fm.ascent() / 2)
            elif side == "right":
                pos = QPointF(r.right() - pad - tw, r.center().y() + fm.ascent() / 2)
            elif side == "top":
                pos = QPointF(r.center().x() - tw / 2, r.top() + pad + fm.ascent())
            else:
                pos = QPointF(r.center().x() - tw / 2, r.bottom() - pad)
            p.drawText(pos, text)
        p.setFont(self.font())
        p.setPen(QColor(210, 210, 210))
        w = self.width()
        h = self.height()
        for corner, text in self.corner_text.items():
            if not text:
                continue
            lines = text.splitlines()
            for i, line in enumerate(lines):
                tw = fm.horizontalAdvance(line)
                x = pad if corner[1] == "l" else w - pad - tw
                if corner[0] == "t":
                    y = pad + fm.ascent() + i * fm.height()
                else:
                    y = h - pad - (len(lines) - 1 - i) * fm.height() - fm.descent()
                p.drawText(QPointF(x, y), line)
        if self.banner:
            p.setPen(QColor(255, 200, 60))
            p.setFont(bold)
            tw = fm.horizontalAdvance(self.banner)
            p.drawText(QPointF(w / 2 - tw / 2, pad + 2 * fm.height()), self.banner)
        if self.marker_dot in ("left", "right"):
            x = r.left() + 14 if self.marker_dot == "left" else r.right() - 14
            p.setPen(QPen(QColor(40, 140, 255), 1))
            p.setBrush(QColor(40, 140, 255))
            p.drawEllipse(QPointF(x, r.top() + 14), 6, 6)

    # --- input ------------------------------------------------------------------------------
    def wheelEvent(self, event):  # noqa: N802 (Qt API)
        d = event.angleDelta()
        delta = d.y() if d.y() != 0 else d.x()
        self._wheel_accum += delta / 120.0
        steps = int(self._wheel_accum) if abs(self._wheel_accum) >= 1 else 0
        if steps:
            self._wheel_accum -= steps
            self.wheel_steps.emit(float(steps), event.modifiers())
        event.accept()

    def mousePressEvent(self, event):  # noqa: N802 (Qt API)
        if event.button() == Qt.MouseButton.LeftButton:
            self._press = (event.position(), event.position(), False)
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event):  # noqa: N802 (Qt API)
        if self._press is not None and event.buttons() & Qt.MouseButton.LeftButton:
            p0, last, moved = self._press
            pos = event.position()
            if moved or (pos - p0).manhattanLength() > 3:
                self.dragged.emit(pos.x() - last.x(), pos.y() - last.y(), event.modifiers())
                self._press = (p0, pos, True)
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event):  # noqa: N802 (Qt API)
        if event.button() == Qt.MouseButton.LeftButton and self._press is not None:
            p0, _, moved = self._press
            self._press = None
            if not moved and self._image is not None:
                u, v = self.widget_to_image(p0.x(), p0.y())
                self.clicked.emit(u, v)
        super().mouseReleaseEvent(event)
