"""A C-arm in use: pedal, single shots, pulsed live fluoroscopy, last image hold, saved images and
the dose they cost. No Qt: the fluoroscopy view drives it from its timer and shows its frames.

    session = FluoroscopySession(renderer, pose, DoseTracker(pulse_rate_pps=15))
    frame = session.shot(needles, contrast, time_s)          # tap of the pedal: one image, held
    session.pedal_down(time_s)                                # live fluoroscopy starts
    frame = session.tick(time_s, needles, contrast)           # call often: a frame on each pulse, else None
    session.pedal_up(time_s)                                  # the last image stays on screen
    session.save()                                            # keep the held image for review
    session.dose.summary()                                    # shots, fluoro_time_s, air_kerma_mgy, dap_gycm2

Every exposure is set by the automatic exposure control (`xray_exposure.aec_exposure`: mA first,
then kVp along the curve that starts at the scenario's kVp) from the patient behind the AEC region
of the current pose; the image is rendered with that kVp's spectrum and its quantum noise follows
the detected quanta of that pulse. A single shot averages its pulses; live frames go through the
recursive temporal filter of the imaging preset (`fluoroscopy_presets`), so a moving needle lags a
little as on a real unit. While the C-arm moves the frames are coarse previews; a single shot, and
live frames once the C-arm has been still for a moment, are refined (call `refine_pending()` from a
worker thread to do that off the GUI thread).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from simulator.core.carm import CArmPose, DoseTracker, Exposure
from simulator.imaging.fluoroscopy import Beam, ContrastScene, DisplaySettings, FluoroFrame, FluoroscopyRenderer, NeedleModel
from simulator.imaging.fluoroscopy_presets import ImagingPreset, preset as named_preset
from simulator.imaging.xray_exposure import AecCurve, aec_exposure


@dataclass
class SavedImage:
    frame: FluoroFrame
    time_s: float
    label: str = ""


@dataclass
class FluoroscopySession:
    renderer: FluoroscopyRenderer
    pose: CArmPose
    dose: DoseTracker = field(default_factory=DoseTracker)
    display: DisplaySettings | None = None  # None: the preset's
    preset: ImagingPreset | str | None = None  # None: the flat-panel preset
    al_mm: float = 3.0  # total filtration
    cu_mm: float = 0.1
    aec: AecCurve | None = None  # None: from the tracker's kVp up to 120 kVp
    last_image: FluoroFrame | None = None  # last image hold
    saved: list[SavedImage] = field(default_factory=list)
    _live_since: float | None = None
    _next_pulse_s: float = 0.0
    _last_time_s: float = 0.0
    _recursive: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.preset, ImagingPreset):
            self.preset = named_preset(self.preset)
        if self.display is None:
            self.display = self.preset.display
        if self.aec is None:
            self.aec = AecCurve(kvp_min=float(self.dose.kvp))
        if self.dose.exposure_model is None:
            self.dose.exposure_model = self._aec_exposure
        self.pose = self.pose.replace(field_shape=self.preset.field_shape)

    # ---- the beam -------------------------------------------------------------------------------------
    def _aec_exposure(self, pose: CArmPose, _water_mm: float, pulse_rate_pps: float, dose_mode: str) -> Exposure:
        water, bone = self.renderer.aec_paths(pose)
        return aec_exposure(pose, water, bone, self.aec, pulse_rate_pps, dose_mode, self.al_mm, self.cu_mm,
                            self.preset.detector)

    def beam(self, kvp: float | None = None) -> Beam:
        """The beam at a tube voltage (default: the AEC curve's start)."""
        return Beam(kvp=float(self.aec.kvp_min if kvp is None else kvp), al_mm=self.al_mm, cu_mm=self.cu_mm,
                    detector=self.preset.detector)

    # ---- the C-arm ------------------------------------------------------------------------------------
    def set_pose(self, pose: CArmPose) -> None:
        """Move the C-arm (angles, table, collimation, magnification); the field's shape is the
        detector's (the preset's: square flat panel, round image intensifier)."""
        self.pose = pose.replace(field_shape=self.preset.field_shape)
        self._recursive = None

    def refine_pending(self) -> bool:
        """Compute the full-quality anatomy image of the current pose if it is missing (slow:
        call from a worker thread). Returns True if it did some work."""
        pose = self.pose
        beam = self.beam(self.dose.exposure(pose, 0.0).kvp)
        if self.renderer.has_full(pose, self.display, beam):
            return False
        self.renderer.refine(pose, self.display, beam)
        return True

    # ---- exposures --------------------------------------------------------------------------------------
    def _render(self, needles, contrast, time_s: float, quality: str, exposure: Exposure, pulses: float) -> FluoroFrame:
        display = replace(self.display, frames_averaged=max(float(pulses), 1.0))
        return self.renderer.render(self.pose, needles, contrast, time_s=time_s, quality=quality,
                                    quanta_per_pixel=exposure.quanta_per_pixel, display=display,
                                    beam=self.beam(exposure.kvp))

    def shot(self, needles: Sequence[NeedleModel] = (), contrast: ContrastScene | None = None,
             time_s: float = 0.0) -> FluoroFrame:
        """A single shot (a tap of the pedal): one full-quality image of its pulses averaged,
        counted and held."""
        events = len(self.dose.events)
        exposure = self.dose.record_shot(self.pose, 0.0, time_s=time_s)
        pulses = self.dose.events[events].pulses if len(self.dose.events) > events else 1
        self.last_image = self._render(needles, contrast, time_s, "full", exposure, pulses)
        self._last_time_s = time_s
        self._recursive = None
        return self.last_image

    def pedal_down(self, time_s: float) -> None:
        """Live (pulsed) fluoroscopy starts; the first pulse fires on the next `tick`."""
        if self._live_since is None:
            self.dose.begin_live(self.pose, time_s)
            self._live_since = time_s
            self._next_pulse_s = time_s
            self._recursive = None

    def pedal_up(self, time_s: float) -> None:
        """Live fluoroscopy stops; `last_image` stays on the screen (last image hold)."""
        if self._live_since is not None:
            self.dose.end_live()
            self._live_since = None
        self._last_time_s = time_s

    @property
    def live(self) -> bool:
        return self._live_since is not None

    def tick(self, time_s: float, needles: Sequence[NeedleModel] = (), contrast: ContrastScene | None = None,
             quality: str = "auto") -> FluoroFrame | None:
        """During live fluoroscopy, fire the pulses due by `time_s` (at the tracker's pulse rate)
        and return the newest frame (through the recursive filter); None when no pulse is due or
        the pedal is up."""
        if self._live_since is None or time_s < self._next_pulse_s:
            return None
        period = 1.0 / self.dose.pulse_rate_pps
        exposure = None
        while self._next_pulse_s <= time_s:
            exposure = self.dose.pulse(self.pose, 0.0)
            self._next_pulse_s += period
        frame = self._render(needles, contrast, time_s, quality, exposure, 1.0)
        self.last_image = self._temporal(frame)
        self._last_time_s = time_s
        return self.last_image

    def _temporal(self, frame: FluoroFrame) -> FluoroFrame:
        """Recursive filter: displayed = w * newest + (1 - w) * previous displayed."""
        img = frame.image.astype(np.float32)
        w = float(self.preset.recursive_weight)
        if self._recursive is None or self._recursive.shape != img.shape:
            self._recursive = img
        else:
            self._recursive = w * img + (1.0 - w) * self._recursive
        return replace(frame, image=np.clip(np.rint(self._recursive), 0, 255).astype(np.uint8))

    # ---- review ---------------------------------------------------------------------------------------
    def save(self, label: str = "") -> SavedImage | None:
        """Keep the held image for later review."""
        if self.last_image is None:
            return None
        item = SavedImage(self.last_image, self._last_time_s, label)
        self.saved.append(item)
        return item


def fluoroscopy_session(renderer: FluoroscopyRenderer, pose: CArmPose, settings=None) -> FluoroscopySession:
    """A session set up as a scenario's `FluoroscopySettings` say (pulse rate, kVp where the AEC
    starts, filtration, imaging preset); defaults without settings."""
    if settings is None:
        return FluoroscopySession(renderer, pose)
    return FluoroscopySession(renderer, pose, DoseTracker(kvp=float(settings.kvp), pulse_rate_pps=float(settings.pulse_rate_pps)),
                              preset=str(settings.imaging_preset), al_mm=float(settings.filtration_mm_al),
                              cu_mm=float(settings.filtration_mm_cu))
