"""Our session out over OpenIGTLink, as PLUS streams a tracked ultrasound session, so 3D Slicer (and
Perk Tutor in it) can show and record it.

Devices (the Reference frame is the patient, RAS mm):
- TRANSFORM `NeedleTipToReference`: the needle tip (+Z along the shaft, towards the tip);
- TRANSFORM `ProbeToReference`: the ultrasound probe (x towards the marker, y into the patient);
- IMAGE `Image_Reference` with TRANSFORM `ImageToReference`: the ultrasound frame (8-bit or RGB) placed
  in the Reference frame (pixel (i, j) -> mm, PLUS's ImageToReference, spacing included); Slicer's
  OpenIGTLinkIF shows it where the probe images;
- IMAGE `Fluoro_Reference`: the fluoroscopy frame on the C-arm's detector plane (its pixel pitch).

Timestamps are this computer's clock (Unix time), as PLUS sends them. Poses are sent every time
they change; images every frame the views make (a slow client gets the newest, see the server).
"""
from __future__ import annotations

import collections
import time

import numpy as np

from simulator.tracking.server import TrackingServer

NEEDLE = "NeedleTipToReference"
PROBE = "ProbeToReference"
IMAGE = "Image_Reference"
IMAGE_TO_REFERENCE = "ImageToReference"
FLUORO = "Fluoro_Reference"


def fluoro_ijk_to_world(pose, image_shape) -> np.ndarray:
    """Pixel (column, row) of a fluoroscopy image -> its point on the detector (RAS mm)."""
    h, w = int(image_shape[0]), int(image_shape[1])
    origin, du, dv = pose.detector_pixel_grid(w)
    if h != w:  # the grid is square: rows keep the column pitch
        dv = dv * (np.linalg.norm(du) / max(np.linalg.norm(dv), 1e-12))
    m = np.eye(4)
    m[:3, 0], m[:3, 1] = du, dv
    n = np.cross(du, dv)
    m[:3, 2] = n / max(np.linalg.norm(n), 1e-12) * float(np.linalg.norm(du))
    m[:3, 3] = origin
    return m


class SessionStreamer:
    """Sends the session's poses and images through a `TrackingServer` (see the module notes)."""

    def __init__(self, server: TrackingServer, clock=time.time):
        self.server = server
        self.clock = clock
        self.sent = collections.Counter()
        self._image_times: collections.deque = collections.deque(maxlen=120)

    @property
    def running(self) -> bool:
        return self.server.running

    def needle(self, needle_tip_to_world, t: float | None = None) -> None:
        self._transform(NEEDLE, needle_tip_to_world, t)

    def probe(self, probe_to_world, t: float | None = None) -> None:
        self._transform(PROBE, probe_to_world, t)

    def _transform(self, device: str, m, t) -> None:
        if self.server.running and m is not None:
            self.server.send_transform(device, np.asarray(m, float), self.clock() if t is None else t)
            self.sent[device] += 1

    def ultrasound(self, image, image_to_world, t: float | None = None) -> None:
        """An ultrasound frame: (H, W) grey or (H, W, 3) colour, and its ImageToWorld (pixel -> mm)."""
        if not self.server.running or image is None:
            return
        t = self.clock() if t is None else t
        a = np.asarray(image)
        self.server.send_transform(IMAGE_TO_REFERENCE, image_to_world, t)
        self.server.send_image(IMAGE, a[None] if a.ndim == 3 else a, image_to_world, t)
        self.sent[IMAGE] += 1
        self._image_times.append(time.perf_counter())

    def fluoroscopy(self, image, carm_pose, t: float | None = None) -> None:
        if not self.server.running or image is None:
            return
        a = np.asarray(image)
        if a.dtype not in (np.uint8, np.uint16, np.int16, np.float32):
            a = a.astype(np.float32)
        self.server.send_image(FLUORO, a, fluoro_ijk_to_world(carm_pose, a.shape), self.clock() if t is None else t)
        self.sent[FLUORO] += 1

    def image_rate_hz(self, window_s: float = 1.0) -> float:
        now = time.perf_counter()
        n = sum(1 for x in self._image_times if now - x <= window_s)
        return n / window_s
