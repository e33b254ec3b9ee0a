"""The imaging inputs of the Procedure (a mixin of `procedure.Procedure`): fluoroscopy exposures,
the ultrasound view's tip visibility, and the probe and C-arm poses.
"""
from __future__ import annotations

import math

import numpy as np

from simulator.core.events import EventKind
from simulator.core.procedure_input import ProcedureError, recorded_input, replace_state
from simulator.core.recording import CARM_DIM


class ImagingInputs:
    """Imaging inputs (state lives in `Procedure.__init__`)."""

    def _fluoro_shot(self, dap_gycm2: float, duration_s: float, kvp, lao_deg, cranial_deg, live: bool, frames: int):
        self._emit(EventKind.fluoro_shot, "fluoroscopy" + (" (live)" if live else " image"),
                   dap_gycm2=float(dap_gycm2), duration_s=float(duration_s), kvp=kvp, lao_deg=lao_deg,
                   cranial_deg=cranial_deg, live=bool(live), frames=int(frames))
        self._unimaged_mm = 0.0

    def _set_visible(self, visible: bool, distance_to_plane_mm) -> None:
        v = bool(visible)
        changed = v != self._tip_visible
        self._tip_visible = v
        self._distance_to_plane = None if distance_to_plane_mm is None else float(distance_to_plane_mm)
        if v:
            self._us_unseen_mm = 0.0
            if self._modality == "both":
                self._unimaged_mm = 0.0
        if changed:
            self._emit(EventKind.ultrasound_view, "needle tip " + ("in" if v else "out of") + " the ultrasound plane",
                       visible=v, distance_to_plane_mm=self._distance_to_plane)
        if self._state is not None:
            self._state = replace_state(self._state, tip_visible=v)

    @recorded_input
    def record_fluoro_shot(self, dap_gycm2: float = 0.0, duration_s: float = 0.0, kvp: float | None = None,
                           lao_deg: float | None = None, cranial_deg: float | None = None, live: bool = False,
                           frames: int = 1) -> None:
        """A fluoroscopy exposure (from the fluoroscopy view)."""
        self._fluoro_shot(dap_gycm2, duration_s, kvp, lao_deg, cranial_deg, live, frames)

    @recorded_input
    def set_tip_visible(self, visible: bool, distance_to_plane_mm: float | None = None) -> None:
        """The ultrasound view's verdict for the current frame."""
        self._set_visible(visible, distance_to_plane_mm)

    @recorded_input
    def record_imaging(self, kind: str, data: dict | None = None) -> None:
        """kind 'fluoroscopy' (data as record_fluoro_shot) or 'ultrasound' (visible, distance_to_plane_mm)."""
        data = dict(data or {})
        if kind == "fluoroscopy":
            self._fluoro_shot(data.get("dap_gycm2", 0.0), data.get("duration_s", 0.0), data.get("kvp"),
                              data.get("lao_deg"), data.get("cranial_deg"), data.get("live", False), data.get("frames", 1))
        elif kind == "ultrasound":
            if "visible" not in data:
                raise ProcedureError("record_imaging('ultrasound'): data needs 'visible'")
            self._set_visible(data["visible"], data.get("distance_to_plane_mm"))
        else:
            raise ProcedureError(f"record_imaging: kind must be 'fluoroscopy' or 'ultrasound', got {kind!r}")

    @recorded_input
    def set_probe_to_world(self, matrix) -> None:
        m = np.asarray(matrix, dtype=np.float64)
        if m.shape != (4, 4) or not np.all(np.isfinite(m)):
            raise ProcedureError("set_probe_to_world: expected a finite 4x4 matrix")
        self._probe = m.copy()

    @recorded_input
    def set_carm_pose(self, lao_deg: float, cranial_deg: float, isocenter_mm=None) -> None:
        iso = [math.nan] * 3 if isocenter_mm is None else [float(x) for x in isocenter_mm]
        v = np.array([float(lao_deg), float(cranial_deg), *iso])
        if v.shape != (CARM_DIM,):
            raise ProcedureError("set_carm_pose: isocenter_mm needs three numbers")
        self._carm = v
