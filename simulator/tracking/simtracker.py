"""A simulated tracker: a recorded tracked file (.igs.mha / .seq.nrrd / Perk Tutor XML) streamed over
OpenIGTLink as PLUS streams a live tracker, for demos and for tests on loopback without hardware.

    tracker = SimulatedTracker("attempt.igs.mha", port=18944, speed=1.0)
    tracker.start()          # a TrackingServer; the frames follow at their recorded times / speed
    tracker.wait_done(30)    # or tracker.stop()

Frames: the file's first transform is the master (Perk Tutor's replay rule, `trackfiles.resample`);
at each master time every transform of the file is sent, in the file's order, with the same
timestamp, as TRANSFORM messages named after the sequence (`NeedleTipToReference`; `rename`
maps file names to other device names). Timestamps are the file's own times (`clock="file"`) or
the frames' moments on this machine's clock (`clock="now"`, like a live PLUS: the replay's start
plus the frame's recorded offset, whenever the frame actually leaves). `exact=True` adds each pose's
float64 matrix as metadata so the receiver gets the recorded numbers bit for bit (TRANSFORM
itself is float32); frames whose status is INVALID are sent marked invalid (exact) or not at all
(plain, as PLUS does by default). `speed=0` sends as fast as the connection takes them.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from simulator.core.metrics import sample_sequence_at
from simulator.core.trackfiles import TrackedRecording, read_tracked, resample
from simulator.tracking.client import DEFAULT_PORT
from simulator.tracking.protocol import encode_transform
from simulator.tracking.server import TrackingServer

MAX_DEVICE_BYTES = 20


class SimulatedTracker:
    """See the module notes."""

    def __init__(self, source, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, speed: float = 1.0,
                 rename: dict | None = None, exact: bool = True, clock: str = "file", loop: bool = False,
                 wait_for_client: bool = True, max_frames: int | None = None, server: TrackingServer | None = None):
        tracked = source if isinstance(source, TrackedRecording) else read_tracked(Path(source))
        if clock not in ("file", "now"):
            raise ValueError(f"clock must be 'file' or 'now', got {clock!r}")
        if not speed >= 0:
            raise ValueError(f"speed must be >= 0 (0: as fast as possible), got {speed!r}")
        self.source = tracked.path
        self.speed = float(speed)
        self.exact = bool(exact)
        self.clock = clock
        self.loop = bool(loop)
        self.wait_for_client = bool(wait_for_client)
        rename = dict(rename or {})
        self.times, mats = resample(tracked)
        self.devices: list[str] = []
        self._mats: list[np.ndarray] = []
        self._valid: list[np.ndarray] = []
        master = tracked.master
        for name, seq in tracked.sequences.items():
            dev = str(rename.get(name, name))
            if len(dev.encode("utf-8")) > MAX_DEVICE_BYTES:
                raise ValueError(f"{tracked.path}: transform {name!r} is longer than the {MAX_DEVICE_BYTES} bytes of an "
                                 "OpenIGTLink device name: rename it")
            self.devices.append(dev)
            self._mats.append(mats[name])
            self._valid.append(seq.valid.copy() if seq is master else
                               sample_sequence_at(self.times, seq.time_s, seq.valid).astype(bool))
        self.n_frames = len(self.times) if max_frames is None else min(len(self.times), int(max_frames))
        self.server = server or TrackingServer(host, port)
        self._own_server = server is None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames_sent = 0
        self.messages_sent = 0
        self.send_log: list[tuple[int, float, float]] = []  # (frame, timestamp sent, perf_counter at sending)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def rate_hz(self) -> float:
        """The file's mean frame rate."""
        t = self.times[: self.n_frames]
        return (len(t) - 1) / float(t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0

    def frame_messages(self, i: int, timestamp: float | None = None) -> list[tuple[str, bytes]]:
        """Frame i's messages: (device, encoded TRANSFORM)."""
        ts = float(self.times[i]) if timestamp is None else timestamp
        out = []
        for dev, m, v in zip(self.devices, self._mats, self._valid):
            if not v[i] and not self.exact:
                continue
            out.append((dev, encode_transform(dev, m[i], ts, exact=self.exact, valid=bool(v[i]))))
        return out

    def start(self) -> None:
        if self._own_server:
            self.server.start()
        self._stop.clear()
        self._done.clear()
        self._thread = threading.Thread(target=self._play, name="simulated-tracker", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._own_server:
            self.server.stop()

    def wait_done(self, timeout_s: float) -> bool:
        return self._done.wait(timeout_s)

    def _play(self) -> None:
        try:
            if self.wait_for_client:
                while not self._stop.is_set() and not self.server.clients():
                    time.sleep(0.005)
            while not self._stop.is_set():
                self._play_once()
                if not self.loop:
                    break
        finally:
            self._done.set()

    def _play_once(self) -> None:
        t = self.times
        start = time.perf_counter()
        wall0 = time.time()
        for i in range(self.n_frames):
            if self._stop.is_set():
                return
            if self.speed > 0:
                due = start + (float(t[i]) - float(t[0])) / self.speed
                wait = due - time.perf_counter()
                while wait > 0:
                    if self._stop.wait(min(wait, 0.05)):
                        return
                    wait = due - time.perf_counter()
            ts = None
            if self.clock == "now":  # the frame's moment on this computer's clock, as a tracker stamps it
                ts = wall0 + (float(t[i]) - float(t[0])) / self.speed if self.speed > 0 else time.time()
            msgs = self.frame_messages(i, ts)
            for dev, data in msgs:
                self.server.send_bytes(data, "transform", dev)
            self.messages_sent += len(msgs)
            self.frames_sent += 1
            self.send_log.append((i, float(t[i]) if ts is None else ts, time.perf_counter()))
