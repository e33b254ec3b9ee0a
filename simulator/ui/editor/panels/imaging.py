"""The editor's Imaging tab: fluoroscopy and ultrasound settings (absent settings show the schema's
defaults without writing them).
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGroupBox, QLabel, QPushButton, QVBoxLayout, QWidget

from simulator.core import scenario_model as M
from simulator.ui.editor.fields import (
    Binder,
    CheckField,
    ComboField,
    LineField,
    form,
    set_enabled,
    set_text,
)
from simulator.ui.editor.panels.common import fmt_point


class ImagingPanel(QWidget):
    """Fluoroscopy's initial C-arm, the ultrasound's initial probe (placed by a click)."""

    mode_requested = Signal(str)  # "probe" | ""
    turn_requested = Signal()

    def __init__(self, binder: Binder, parent=None):
        super().__init__(parent)
        self.binder = binder
        lay = QVBoxLayout(self)
        f = ("imaging", "fluoroscopy")
        fd = _defaults(M.FluoroscopySettings)
        fl = QGroupBox("Fluoroscopy (initial C-arm)")
        QVBoxLayout(fl).addWidget(form(binder, [
            ("Orbit LAO+ / RAO- (\u00b0)", LineField(f + ("lao_deg",), kind="number", default=fd["lao_deg"])),
            ("Cranial+ / caudal- (\u00b0)", LineField(f + ("cranial_deg",), kind="number", default=fd["cranial_deg"])),
            ("Isocentre (R, A, S mm)", LineField(f + ("isocenter_mm",), kind="numbers", optional=True,
                                                 placeholder="the first target (default)",
                                                 tip="empty: centred on the first target")),
            ("Pulse rate (p/s)", ComboField(f + ("pulse_rate_pps",), [(v, f"{v:g}") for v in (3.75, 7.5, 15, 30)],
                                            default=fd["pulse_rate_pps"])),
            ("Field (mm)", LineField(f + ("field_mm",), kind="number", default=fd["field_mm"])),
            ("kV", LineField(f + ("kvp",), kind="number", default=fd["kvp"])),
        ]))
        lay.addWidget(fl)
        u = ("imaging", "ultrasound")
        ud = _defaults(M.UltrasoundSettings)
        ul = QGroupBox("Ultrasound (initial probe)")
        ull = QVBoxLayout(ul)
        self.probe_button = QPushButton("Place the probe (click the skin in 3D, or a slice)")
        self.probe_button.setObjectName("place_probe")
        self.probe_button.setCheckable(True)
        self.probe_button.setToolTip("The probe sits where you click and looks towards the planned tip "
                                     "(else the selected target); its marker points to the head")
        self.probe_button.clicked.connect(lambda on: self.mode_requested.emit("probe" if on else ""))
        self.turn_button = QPushButton("Turn the probe 90\u00b0 (sagittal \u2194 transverse)")
        self.turn_button.setObjectName("turn_probe")
        self.turn_button.clicked.connect(self.turn_requested)
        self.probe_label = QLabel("")
        self.probe_label.setObjectName("probe_label")
        self.probe_label.setWordWrap(True)
        ull.addWidget(self.probe_button)
        ull.addWidget(self.turn_button)
        ull.addWidget(self.probe_label)
        ull.addWidget(form(binder, [
            ("Probe", ComboField(u + ("probe",), [("linear", "linear"), ("curvilinear", "curvilinear")],
                                 default=ud["probe"])),
            ("Centre on the skin (mm)", LineField(u + ("center_mm",), kind="numbers", optional=True)),
            ("Depth axis", LineField(u + ("direction",), kind="numbers", optional=True)),
            ("Marker axis", LineField(u + ("marker",), kind="numbers", optional=True)),
            ("Depth (mm)", LineField(u + ("depth_mm",), kind="number", default=ud["depth_mm"])),
            ("Frequency (MHz)", LineField(u + ("frequency_mhz",), kind="number", default=ud["frequency_mhz"])),
            ("Gain (dB)", LineField(u + ("gain_db",), kind="number", default=ud["gain_db"])),
            ("Focus (mm)", LineField(u + ("focus_mm",), kind="number", optional=True, placeholder="half the depth (default)")),
            ("", CheckField(u + ("doppler",), "colour Doppler on at the start")),
        ]))
        lay.addWidget(ul)
        lay.addStretch(1)

    def set_mode(self, mode: str) -> None:
        self.probe_button.setChecked(mode == "probe")

    def refresh(self) -> None:
        doc = self.binder.doc
        us = doc.get(("imaging", "ultrasound")) if doc is not None else None
        set_text(self.probe_label, _probe_text(us))
        set_enabled(self.turn_button, isinstance(us, dict) and us.get("direction") is not None)


def _defaults(model) -> dict:
    """The schema's defaults of a settings model (field name -> value)."""
    return {name: f.default for name, f in model.model_fields.items()}


def _probe_text(us) -> str:
    if not isinstance(us, dict) or us.get("center_mm") is None:
        return "No initial probe position: the trainee places the probe."
    text = "Centre " + fmt_point(us.get("center_mm"))
    d, m = us.get("direction"), us.get("marker")
    try:
        d = np.asarray(d, float).reshape(3)
        m = np.asarray(m, float).reshape(3)
    except (TypeError, ValueError):
        return text
    d = d / max(float(np.linalg.norm(d)), 1e-9)
    m = m - d * float(m @ d)
    if not np.linalg.norm(m) > 1e-6:
        return text
    m /= np.linalg.norm(m)
    towards = (("the patient's right", "the patient's left")[bool(m[0] < 0)], ("the front", "the back")[bool(m[1] < 0)],
               ("the head", "the feet")[bool(m[2] < 0)])
    k = int(np.argmax(np.abs(m)))
    plane = ("long axis (sagittal)" if k == 2 else "transverse") + f", marker towards {towards[k]}"
    return f"{text}; {plane}"
