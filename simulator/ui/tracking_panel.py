"""The Tracking panel: a real tracked needle and probe over OpenIGTLink (PLUS, 3D Slicer), and our
session streamed out to Slicer. It only shows the `TrackingSession`'s state and asks the window
(`window_tracking`) to act through its signals.

- Tracker in: host and port, Connect; the needle's and the probe's device names (any device seen
  can be chosen); the state (connected / waiting / stale / lost, in colour, with what is wrong); per
  device its rate, latency (arrival - timestamp, when the sender's clock is this computer's), lag
  (jitter above its best) and a time offset (ms, added to its timestamps); the recent problems.
  "Drive the attempt from the tracker" makes new attempts tracked.
- Registration: pairs of points, the needle tip touching the phantom (Touch) and the same point
  picked on the patient in the 3D view (Pick); Register shows the FRE and each pair's error.
- Pivot calibration: records the needle's sensor while its tip pivots in a divot.
- Stream out: an OpenIGTLink server (port) sending the needle, probe, ultrasound and fluoroscopy.
"""
from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

STATE_COLOURS = {"connected": "#2e7d32", "waiting": "#b26a00", "stale": "#b26a00", "lost": "#c62828", "off": "#666666"}
DEVICE_COLUMNS = ("Device", "Use", "Hz", "Latency ms", "Lag ms", "Offset ms")


def _fmt(v: float, digits: int = 1) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _xyz(p) -> str:
    return "-" if p is None else f"{p[0]:.1f}, {p[1]:.1f}, {p[2]:.1f}"


class TrackingPanel(QWidget):
    connect_requested = Signal(str, int)  # host, port
    disconnect_requested = Signal()
    devices_chosen = Signal(str, str)  # needle device, probe device ("" = none)
    offset_changed = Signal(str, float)  # device, seconds
    tracked_mode_changed = Signal(bool)
    touch_requested = Signal()
    pick_requested = Signal()
    remove_point_requested = Signal()
    clear_points_requested = Signal()
    register_requested = Signal()
    calibrate_requested = Signal()
    server_start_requested = Signal(int)
    server_stop_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("tracking_panel")
        lay = QVBoxLayout(self)
        lay.addWidget(self._build_input())
        lay.addWidget(self._build_registration())
        lay.addWidget(self._build_output())
        lay.addStretch(1)
        self._offset_spins: dict[str, QDoubleSpinBox] = {}

    # ------------------------------------------------------------------------------------------
    def _build_input(self) -> QGroupBox:
        box = QGroupBox("Tracker in (OpenIGTLink: PLUS, 3D Slicer)")
        v = QVBoxLayout(box)
        row = QHBoxLayout()
        self.host_edit = QLineEdit("127.0.0.1")
        self.host_edit.setToolTip("Address of the OpenIGTLink server (PLUS Server, Slicer's OpenIGTLinkIF)")
        self.port_spin = QSpinBox()
        self.port_spin.setRange(1, 65535)
        self.port_spin.setValue(18944)
        self.connect_button = QPushButton("Connect")
        self.connect_button.setCheckable(True)
        self.connect_button.toggled.connect(self._on_connect_toggled)
        row.addWidget(QLabel("Host"))
        row.addWidget(self.host_edit, 1)
        row.addWidget(QLabel("Port"))
        row.addWidget(self.port_spin)
        row.addWidget(self.connect_button)
        v.addLayout(row)
        form = QFormLayout()
        self.needle_combo = QComboBox()
        self.needle_combo.setEditable(True)
        self.needle_combo.addItem("NeedleTipToReference")
        self.probe_combo = QComboBox()
        self.probe_combo.setEditable(True)
        self.probe_combo.addItems(["ProbeToReference", "(none)"])
        for c in (self.needle_combo, self.probe_combo):
            c.activated.connect(self._emit_devices)
            c.lineEdit().editingFinished.connect(self._emit_devices)
        form.addRow("Needle", self.needle_combo)
        form.addRow("Probe", self.probe_combo)
        v.addLayout(form)
        self.state_label = QLabel("off")
        self.state_label.setObjectName("tracking_state")
        self.state_label.setWordWrap(True)
        v.addWidget(self.state_label)
        self.tracked_box = QCheckBox("Drive the attempt from the tracker")
        self.tracked_box.setToolTip("New attempts take the needle (and the probe) from the tracker; "
                                    "the keyboard no longer moves them")
        self.tracked_box.toggled.connect(self.tracked_mode_changed)
        v.addWidget(self.tracked_box)
        self.device_table = QTableWidget(0, len(DEVICE_COLUMNS))
        self.device_table.setHorizontalHeaderLabels(DEVICE_COLUMNS)
        self.device_table.verticalHeader().hide()
        head = self.device_table.horizontalHeader()
        head.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        head.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.device_table.setToolTip("Latency: arrival - the sender's timestamp (when its clock is this computer's); "
                                     "lag: how much later than its quickest message; offset: added to its timestamps")
        self.device_table.setMaximumHeight(130)
        v.addWidget(self.device_table)
        self.problems = QPlainTextEdit()
        self.problems.setObjectName("tracking_problems")
        self.problems.setReadOnly(True)
        self.problems.setMaximumHeight(90)
        self.problems.setPlaceholderText("Problems with the stream are listed here")
        v.addWidget(self.problems)
        return box

    def _build_registration(self) -> QGroupBox:
        box = QGroupBox("Registration (tracker -> patient) and needle calibration")
        v = QVBoxLayout(box)
        self.fiducial_table = QTableWidget(0, 3)
        self.fiducial_table.setHorizontalHeaderLabels(("Tracker (mm)", "Patient (mm)", "Error (mm)"))
        self.fiducial_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.fiducial_table.setMaximumHeight(120)
        v.addWidget(self.fiducial_table)
        row = QHBoxLayout()
        for text, sig, tip in (("Touch", self.touch_requested, "Take the needle tip's position (touching a point on the phantom)"),
                               ("Pick", self.pick_requested, "Click the same point on the patient in the 3D view"),
                               ("Remove", self.remove_point_requested, "Remove the last point"),
                               ("Clear", self.clear_points_requested, "Remove every point")):
            b = QPushButton(text)
            b.setToolTip(tip)
            b.clicked.connect(sig)
            row.addWidget(b)
        v.addLayout(row)
        row = QHBoxLayout()
        self.register_button = QPushButton("Register")
        self.register_button.clicked.connect(self.register_requested)
        self.calibrate_button = QPushButton("Pivot calibration")
        self.calibrate_button.setToolTip("Hold the tip in a divot and pivot the needle about it for a few seconds")
        self.calibrate_button.clicked.connect(self.calibrate_requested)
        row.addWidget(self.register_button)
        row.addWidget(self.calibrate_button)
        v.addLayout(row)
        self.registration_label = QLabel("No registration: the tracker's reference is taken as the patient frame")
        self.registration_label.setObjectName("registration_label")
        self.registration_label.setWordWrap(True)
        self.calibration_label = QLabel("")
        self.calibration_label.setWordWrap(True)
        v.addWidget(self.registration_label)
        v.addWidget(self.calibration_label)
        return box

    def _build_output(self) -> QGroupBox:
        box = QGroupBox("Stream out (OpenIGTLink server for 3D Slicer / Perk Tutor)")
        v = QVBoxLayout(box)
        row = QHBoxLayout()
        self.server_port_spin = QSpinBox()
        self.server_port_spin.setRange(1, 65535)
        self.server_port_spin.setValue(18945)
        self.server_button = QPushButton("Start")
        self.server_button.setCheckable(True)
        self.server_button.toggled.connect(self._on_server_toggled)
        row.addWidget(QLabel("Port"))
        row.addWidget(self.server_port_spin)
        row.addWidget(self.server_button)
        row.addStretch(1)
        v.addLayout(row)
        self.server_label = QLabel("Not streaming")
        self.server_label.setObjectName("server_label")
        self.server_label.setWordWrap(True)
        v.addWidget(self.server_label)
        return box

    # ------------------------------------------------------------------------------------------
    def _on_connect_toggled(self, on: bool) -> None:
        self.connect_button.setText("Disconnect" if on else "Connect")
        if on:
            self.connect_requested.emit(self.host_edit.text().strip(), self.port_spin.value())
        else:
            self.disconnect_requested.emit()

    def _on_server_toggled(self, on: bool) -> None:
        self.server_button.setText("Stop" if on else "Start")
        if on:
            self.server_start_requested.emit(self.server_port_spin.value())
        else:
            self.server_stop_requested.emit()

    def set_server_running(self, on: bool, port: int | None = None) -> None:
        if port:
            self.server_port_spin.setValue(int(port))
        self.server_button.blockSignals(True)
        self.server_button.setChecked(on)
        self.server_button.setText("Stop" if on else "Start")
        self.server_button.blockSignals(False)

    def _emit_devices(self, *_):
        probe = self.probe_combo.currentText().strip()
        self.devices_chosen.emit(self.needle_combo.currentText().strip(), "" if probe == "(none)" else probe)

    def show_config(self, config) -> None:
        self.host_edit.setText(config.host)
        self.port_spin.setValue(int(config.port))
        self.needle_combo.setEditText(config.needle_device)
        self.probe_combo.setEditText(config.probe_device or "(none)")

    def show_state(self, state: str, text: str) -> None:
        colour = STATE_COLOURS.get(state, "#666666")
        self.state_label.setText(f"<b style='color:{colour}'>{state.upper()}</b> {text}")

    def show_devices(self, rows: list[dict]) -> None:
        t = self.device_table
        if t.rowCount() != len(rows):
            t.setRowCount(len(rows))
        for i, r in enumerate(rows):
            vals = (r["name"], r["role"], _fmt(r["rate_hz"]), _fmt(r["latency_ms"]), _fmt(r["lag_ms"]))
            for j, text in enumerate(vals):
                item = t.item(i, j)
                if item is None:
                    item = QTableWidgetItem()
                    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                    t.setItem(i, j, item)
                if item.text() != text:
                    item.setText(text)
            spin = t.cellWidget(i, 5)
            if spin is None or spin.property("device") != r["name"]:
                spin = QDoubleSpinBox()
                spin.setRange(-5000.0, 5000.0)
                spin.setDecimals(1)
                spin.setProperty("device", r["name"])
                spin.setValue(1e3 * r["time_offset_s"])
                spin.setToolTip("Added to this device's timestamps (to line up two trackers or video)")
                spin.valueChanged.connect(lambda ms, d=r["name"]: self.offset_changed.emit(d, ms / 1e3))
                t.setCellWidget(i, 5, spin)
        names = [r["name"] for r in rows]
        for combo in (self.needle_combo, self.probe_combo):
            for n in names:
                if combo.findText(n) < 0:
                    combo.addItem(n)

    def show_problems(self, notices) -> None:
        text = "\n".join(n.text for n in notices[-30:] if n.level != "info")
        if text != self.problems.toPlainText():
            self.problems.setPlainText(text)
            self.problems.verticalScrollBar().setValue(self.problems.verticalScrollBar().maximum())

    def show_fiducials(self, rows, residuals=None) -> None:
        t = self.fiducial_table
        t.setRowCount(len(rows))
        for i, (tr, wo) in enumerate(rows):
            err = "-" if residuals is None or i >= len(residuals) else f"{residuals[i]:.2f}"
            for j, text in enumerate((_xyz(tr), _xyz(wo), err)):
                item = QTableWidgetItem(text)
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                t.setItem(i, j, item)
