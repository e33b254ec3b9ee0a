"""A C-arm in use: pedal, single shots, pulsed live fluoroscopy, last image hold, saved images and
the dose they cost. No Qt: the fluoroscopy view drives it from its timer and shows its frames.

    session = FluoroscopySession(renderer, pose, DoseTracker(pulse_rate_pps=15))
    frame = session.shot(needles, contrast, time_s)          # tap of the pedal: one image, held
    session.pedal_down(time_s)                                # live fluoroscopy starts
    frame = session.tick(time_s, needles, contrast)           # call often: a frame on each pulse, else None
    session.pedal_up(time_s)                                  # the last image stays on screen
    session.save()                                            # keep the held image for review
    session.dose.summary()                                    # shots, fluoro_time_s, air_kerma_mgy, dap_gycm2

Every exposure uses the patient's water-equivalent thickness behind the automatic exposure control
region of the current pose (`FluoroscopyRenderer.water_thickness_mm`), and the image's quantum
noise follows the dose of that pulse. While the C-arm moves the frames are coarse previews; a
single shot, and live frames once the C-arm has been still for a moment, are refined (call
`refine_pending()` from a worker thread to do that off the GUI thread).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from simulator.core.carm import CArmPose, DoseTracker
from simulator.imaging.fluoroscopy import ContrastScene, DisplaySettings, FluoroFrame, FluoroscopyRenderer, NeedleModel


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
    display: DisplaySettings = field(default_factory=DisplaySettings)
    last_image: FluoroFrame | None = None  # last image hold
    saved: list[SavedImage] = field(default_factory=list)
    _live_since: float | None = None
    _next_pulse_s: float = 0.0
    _last_time_s: float = 0.0

    # ---- the C-arm ------------------------------------------------------------------------------------
    def set_pose(self, pose: CArmPose) -> None:
        """Move the C-arm (angles, table, collimation, magnification)."""
        self.pose = pose

    def refine_pending(self) -> bool:
        """Compute the full-quality anatomy image of the current pose if it is missing (slow:
        call from a worker thread). Returns True if it did some work."""
        pose = self.pose
        if self.renderer.has_full(pose, self.display):
            return False
        self.renderer.refine(pose, self.display)
        return True

    # ---- exposures --------------------------------------------------------------------------------------
    def _render(self, needles, contrast, time_s: float, quality: str, exposure) -> FluoroFrame:
        return self.renderer.render(self.pose, needles, contrast, time_s=time_s, quality=quality,
                                    quanta_per_pixel=exposure.quanta_per_pixel, display=self.display)

    def shot(self, needles: Sequence[NeedleModel] = (), contrast: ContrastScene | None = None,
             time_s: float = 0.0) -> FluoroFrame:
        """A single shot (a tap of the pedal): one full-quality image, counted and held."""
        thickness = self.renderer.water_thickness_mm(self.pose)
        exposure = self.dose.record_shot(self.pose, thickness, time_s=time_s)
        self.last_image = self._render(needles, contrast, time_s, "full", exposure)
        self._last_time_s = time_s
        return self.last_image

    def pedal_down(self, time_s: float) -> None:
        """Live (pulsed) fluoroscopy starts; the first pulse fires on the next `tick`."""
        if self._live_since is None:
            self.dose.begin_live(self.pose, time_s)
            self._live_since = time_s
            self._next_pulse_s = time_s

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
        and return the newest frame; None when no pulse is due or the pedal is up."""
        if self._live_since is None or time_s < self._next_pulse_s:
            return None
        period = 1.0 / self.dose.pulse_rate_pps
        thickness = self.renderer.water_thickness_mm(self.pose)
        exposure = None
        while self._next_pulse_s <= time_s:
            exposure = self.dose.pulse(self.pose, thickness)
            self._next_pulse_s += period
        self.last_image = self._render(needles, contrast, time_s, quality, exposure)
        self._last_time_s = time_s
        return self.last_image

    # ---- review ---------------------------------------------------------------------------------------
    def save(self, label: str = "") -> SavedImage | None:
        """Keep the held image for later review."""
        if self.last_image is None:
            return None
        item = SavedImage(self.last_image, self._last_time_s, label)
        self.saved.append(item)
        return item
