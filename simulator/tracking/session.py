"""A tracked attempt: OpenIGTLink poses drive the Procedure's needle and probe (no Qt).

    session = TrackingSession(TrackingConfig(port=18944))
    session.connect()                      # a TrackingClient on its own thread
    session.attach(procedure)              # the attempt to drive (its clock: session.clock)
    session.pump()                         # on the thread that owns the procedure: apply what came
    session.state()                        # ("connected" | "waiting" | "stale" | "lost" | "off", text)

Each pose is checked, in arrival order:
- its device: the needle (`needle_device`, NeedleTipToReference by default) or the probe
  (`probe_device`, ProbeToReference); any other device is listed (`devices()`) and noted once, not used;
- marked invalid by the sender (out of the tracker's view), NaN or infinite, not rigid (scale,
  shear, a reflection): refused with a notice; the needle does not move;
- its time: the sender's timestamp plus the device's `time_offsets_s` (to line up two trackers).
  The same timestamp again from a device is a repeat (ignored); an earlier one is out of order
  (refused, counted) unless the clock went back by more than a second or on a new connection (the
  tracker restarted, a file replay looped): then the attempt's time carries on from where it was;
- its pose in the world: reference_to_world (the fiducial registration) @ pose @ the device's
  calibration (`needle_tip_to_device` from the pivot calibration; `probe_to_device`).
Poses of one tracker frame (the same millisecond) go to the Procedure together as one
`set_tracked_pose(needle, probe)` input: one sample per frame, as Perk Tutor samples it.

Attempt time: an elapsed-time sender clock (below ELAPSED_CLOCK_MAX_S: PLUS's system time, a replayed
file) is kept as it is, so a replayed .igs.mha scores exactly as the file; a wall clock (Unix time)
starts at its whole second. An attempt that was already running carries on from its own time.
`clock()` is the attempt's time now: the last frame's time (see `clock`), the clock of the
Procedure's other inputs (local anaesthetic, injections, the views' verdicts) in a tracked attempt.

State: "off" (not started), "waiting" (connecting, or connected with no needle pose yet),
"connected" (needle poses arriving), "stale" (no needle pose for `stale_after_s`, or the last one
invalid), "lost" (the connection dropped after poses had arrived; the client keeps reconnecting).
`paused` (stale or lost with an attempt attached): nothing moves the needle; the attempt is kept
and carries on when poses return.
"""
from __future__ import annotations

import collections
import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np

from simulator.core.events import Signal
from simulator.core.geometry import is_rigid
from simulator.core.recording import ms_time
from simulator.tracking.client import DEFAULT_PORT, Notice, TrackingClient

log = logging.getLogger("simulator.tracking")
ELAPSED_CLOCK_MAX_S = 1.0e6  # sender times below this are elapsed-time clocks, kept as they are
CLOCK_BACK_S = 1.0  # a clock that goes back more than this restarted
CLOCK_JUMP_S = 3600.0  # ... and one that leaps forward more than this too
STALE_AFTER_S = 0.5
LATE_S = 0.5  # a pose this much older than the attempt's last input is refused, a younger one joins it
RIGID_TOL = 1e-3
STATES = ("off", "waiting", "connected", "stale", "lost")


def _eye() -> np.ndarray:
    return np.eye(4)


def _matrix(v, name: str) -> np.ndarray:
    m = np.asarray(v, dtype=np.float64)
    if m.shape != (4, 4) or not is_rigid(m, tol=RIGID_TOL):
        raise ValueError(f"tracking setting {name!r} must be a rigid 4x4 transform")
    return m


@dataclass
class TrackingConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    needle_device: str = "NeedleTipToReference"
    probe_device: str = "ProbeToReference"  # "" = no tracked probe
    reference_to_world: np.ndarray = field(default_factory=_eye)  # the fiducial registration
    needle_tip_to_device: np.ndarray = field(default_factory=_eye)  # the pivot calibration
    probe_to_device: np.ndarray = field(default_factory=_eye)  # our probe frame in the tracked one
    time_offsets_s: dict = field(default_factory=dict)  # device -> seconds added to its timestamps
    stale_after_s: float = STALE_AFTER_S
    fre_mm: float = float("nan")  # of the registration in use (shown)

    def to_json(self) -> dict:
        return {"host": self.host, "port": self.port, "needle_device": self.needle_device,
                "probe_device": self.probe_device, "reference_to_world": self.reference_to_world.tolist(),
                "needle_tip_to_device": self.needle_tip_to_device.tolist(),
                "probe_to_device": self.probe_to_device.tolist(), "time_offsets_s": dict(self.time_offsets_s),
                "stale_after_s": self.stale_after_s, "fre_mm": None if math.isnan(self.fre_mm) else self.fre_mm}

    @classmethod
    def from_json(cls, d: dict) -> "TrackingConfig":
        """From saved settings; raises ValueError naming the field that is wrong."""
        if not isinstance(d, dict):
            raise ValueError("tracking settings must be a mapping")
        c = cls()
        try:
            c.host = str(d.get("host", c.host))
            c.port = int(d.get("port", c.port))
            if not 0 < c.port < 65536:
                raise ValueError(f"tracking setting 'port' must be 1-65535, got {c.port}")
            c.needle_device = str(d.get("needle_device", c.needle_device))
            c.probe_device = str(d.get("probe_device", c.probe_device))
            for k in ("reference_to_world", "needle_tip_to_device", "probe_to_device"):
                if k in d:
                    setattr(c, k, _matrix(d[k], k))
            offs = d.get("time_offsets_s", {}) or {}
            c.time_offsets_s = {str(k): float(v) for k, v in dict(offs).items() if math.isfinite(float(v))}
            c.stale_after_s = float(d.get("stale_after_s", c.stale_after_s))
            if not c.stale_after_s > 0:
                raise ValueError("tracking setting 'stale_after_s' must be positive")
            fre = d.get("fre_mm")
            c.fre_mm = float("nan") if fre is None else float(fre)
        except (TypeError, ValueError) as e:
            raise ValueError(str(e) if "tracking setting" in str(e) else f"tracking settings: {e}") from None
        return c


@dataclass
class _Frame:
    t: float  # attempt time
    ms: float
    recv_t: float  # the earliest arrival (perf_counter) of its poses
    needle: np.ndarray | None = None
    probe: np.ndarray | None = None


class TrackingSession:
    """See the module notes. Not thread-safe: call everything from the thread that owns the
    procedure (the client's own thread only queues)."""

    def __init__(self, config: TrackingConfig | None = None, *, perf=time.perf_counter):
        self.config = config or TrackingConfig()
        self.client: TrackingClient | None = None
        self.procedure = None
        self._apply_fn = None
        self._perf = perf
        self.frames_applied = Signal("frames_applied")  # (list of arrival perf_counter times)
        self.state_changed = Signal("state_changed")  # (state, text)
        self.poses_seen = Signal("poses_seen")  # (role -> world 4x4) of the last pump, attached or not
        self.counts: collections.Counter = collections.Counter()
        self._notices: collections.deque[Notice] = collections.deque(maxlen=300)
        self._noted: dict[str, int] = {}
        self._on_data = None
        self._had_data = False  # a needle pose has arrived on this connection
        self._needle_seen_t: float | None = None  # arrival (perf) of the last good needle pose
        self._needle_invalid = False
        self.reset_clock()
        self._state = ("off", "not connected")
        self.latest_raw: dict[str, np.ndarray] = {}  # device -> last pose in the tracker's reference
        self.latest_world: dict[str, np.ndarray] = {}  # role -> last pose in the world

    # ------------------------------------------------------------------------------------------
    # connection
    # ------------------------------------------------------------------------------------------
    def connect(self, host: str | None = None, port: int | None = None, on_data=None) -> None:
        """(Re)start the client on host:port (the config's by default). `on_data` is called from
        the client's thread when poses wait (a GUI posts itself a pump there)."""
        self.disconnect()
        if host is not None:
            self.config.host = str(host)
        if port is not None:
            self.config.port = int(port)
        self._on_data = on_data
        self.client = TrackingClient(self.config.host, self.config.port, on_data=on_data)
        self._had_data = False
        self._needle_seen_t = None
        self._needle_invalid = False
        self.client.start()
        self._update_state()

    def disconnect(self) -> None:
        if self.client is not None:
            self.client.stop()
            self._absorb_client_notices()
        self.client = None
        self._had_data = False
        self._update_state()

    # ------------------------------------------------------------------------------------------
    # the attempt
    # ------------------------------------------------------------------------------------------
    def reset_clock(self) -> None:
        self._origin: float | None = None
        self._last_time: float | None = None
        self._last_perf: float | None = None
        self._last_recv: float | None = None  # arrival (perf_counter) of the last frame applied
        self._attach_base = 0.0
        self._attach_perf: float | None = None
        self._last_ts: dict[str, tuple[float, int]] = {}  # device -> (sender time + offset, connection)

    def attach(self, procedure, now_s: float = 0.0, apply=None) -> None:
        """Drive `procedure` from now on; `now_s` is its time now (0 for a new attempt). `apply(needle,
        probe, time_s) -> bool` gives a frame to it (default: `procedure.set_tracked_pose`; a GUI
        passes its controller's way in, which records the attempt live and refuses what it must)."""
        self.procedure = procedure
        self._apply_fn = apply
        self.reset_clock()
        self._attach_base = float(now_s)
        self._attach_perf = self._perf()
        if self.client is not None:
            self.client.take()  # poses from before the attempt are not part of it

    def detach(self) -> None:
        self.procedure = None
        self._apply_fn = None
        self.reset_clock()

    def clock(self) -> float:
        """The attempt's time now (seconds): the Procedure's clock in a tracked attempt. Once poses
        flow it is the last frame's time: the tracker is the attempt's clock (as the master sequence
        is in Perk Tutor), so the other inputs (the ultrasound view's verdicts, an injection) join
        the last frame's sample instead of adding samples between frames, and a paused attempt's
        time stands still. Before the first pose it runs from the attempt's time at `attach`."""
        if self._last_time is not None:
            return self._last_time
        return self._elapsed_clock()

    def _elapsed_clock(self, arrival: float | None = None) -> float:
        """The attempt's time had it run on since the last frame (or since `attach`): to `arrival`
        (a pose's arrival, perf_counter) when given, else to now."""
        if self._last_perf is not None:
            since = (arrival - self._last_recv) if arrival is not None and self._last_recv is not None else (
                self._perf() - self._last_perf)
            return self._last_time + max(0.001, since)
        if self._attach_perf is not None:
            return self._attach_base + (self._perf() - self._attach_perf)
        return 0.0

    @property
    def paused(self) -> bool:
        return self.procedure is not None and self._state[0] in ("stale", "lost")

    # ------------------------------------------------------------------------------------------
    # notices
    # ------------------------------------------------------------------------------------------
    def _note(self, level: str, text: str, key: str | None = None) -> None:
        """A notice for the panel and the log; with `key`, only the first of its kind is told
        (the others are counted: `counts`)."""
        if key is not None:
            n = self._noted.get(key, 0)
            self._noted[key] = n + 1
            if n:
                return
        getattr(log, level)(f"tracking: {text}")
        self._notices.append(Notice(time.time(), level, text))

    def _absorb_client_notices(self) -> None:
        c = self.client
        if c is None:
            return
        seen = getattr(c, "_absorbed", 0)
        new = c.notices(seen)
        c._absorbed = seen + len(new)
        self._notices.extend(new)

    def notices(self) -> list[Notice]:
        self._absorb_client_notices()
        return list(self._notices)

    @property
    def last_problem(self) -> str:
        for n in reversed(self.notices()):
            if n.level != "info":
                return n.text
        return ""

    # ------------------------------------------------------------------------------------------
    # poses
    # ------------------------------------------------------------------------------------------
    def role_of(self, device: str) -> str | None:
        if device and device == self.config.needle_device:
            return "needle"
        if device and device == self.config.probe_device:
            return "probe"
        return None

    def _attempt_time(self, ts: float, device: str, connection: int, arrival: float | None = None) -> float | None:
        """The attempt time of a sender time, or None when it is out of order (refused)."""
        prev = self._last_ts.get(device)
        if prev is not None:
            p_ts, p_conn = prev
            if ts == p_ts:
                self.counts["repeated"] += 1
                return None
            back = ts < p_ts
            if (back and (p_ts - ts > CLOCK_BACK_S or connection != p_conn)) or ts - p_ts > CLOCK_JUMP_S:
                self._origin = ts - self._elapsed_clock(arrival)
                self._last_ts = {}  # one clock for all its devices: the others follow this new origin
                self._note("info", f"{device}: the tracker's clock jumped from {p_ts:.3f} s to {ts:.3f} s (restarted?); "
                           "the attempt's time carries on")
            elif back:
                self.counts["reordered"] += 1
                self._note("warning", f"{device}: a pose out of order (time {ts:.3f} s after {p_ts:.3f} s) was refused",
                           key=f"reordered:{device}")
                return None
        self._last_ts[device] = (ts, connection)
        if self._origin is None:
            base = 0.0 if ts < ELAPSED_CLOCK_MAX_S else float(math.floor(ts))
            floor_t = self._min_time()
            self._origin = base if ts - base >= floor_t else ts - max(floor_t + 0.001, self._elapsed_clock())
        return ts - self._origin

    def _min_time(self) -> float:
        """The attempt's last input time (0 without an attempt or inputs)."""
        p = self.procedure
        if p is None or not p.recording.inputs:
            return 0.0
        return float(p.recording.inputs[-1].time_s)

    def _check(self, it, role: str) -> np.ndarray | None:
        """The pose in the world, or None (refused, with a notice)."""
        dev = it.device
        if not it.valid:
            self.counts["invalid"] += 1
            if role == "needle":
                self._needle_invalid = True
            self._note("warning", f"{dev}: the tracker marks the pose invalid (out of its view?); the {role} stays "
                       "where it was", key=f"invalid:{dev}")
            return None
        m = it.matrix
        if not np.all(np.isfinite(m)):
            self.counts["rejected"] += 1
            self._note("warning", f"{dev}: a pose with NaN or infinite numbers was refused", key=f"nan:{dev}")
            return None
        if not is_rigid(m, tol=RIGID_TOL):
            self.counts["rejected"] += 1
            r = m[:3, :3]
            self._note("warning", f"{dev}: a pose that is not rigid (scale, shear or reflection: det {np.linalg.det(r):.4g}) "
                       "was refused", key=f"rigid:{dev}")
            return None
        self.latest_raw[dev] = m
        cal = self.config.needle_tip_to_device if role == "needle" else self.config.probe_to_device
        w = m
        if not np.array_equal(self.config.reference_to_world, np.eye(4)):
            w = self.config.reference_to_world @ w
        if not np.array_equal(cal, np.eye(4)):
            w = w @ cal
        return w

    def pump(self) -> int:
        """Apply every pose that has arrived, in order; the number of frames given to the procedure."""
        c = self.client
        items = c.take() if c is not None else []
        frames: list[_Frame] = []
        seen: dict[str, np.ndarray] = {}
        for it in items:
            if not it.is_pose:
                self._other_message(it)
                continue
            role = self.role_of(it.device)
            if role is None:
                self.counts["unused"] += 1
                self._note("info", f"device {it.device!r} is not used (needle: {self.config.needle_device!r}, probe: "
                           f"{self.config.probe_device or 'none'!r}); choose it in the tracking panel to use it",
                           key=f"unused:{it.device}")
                continue
            w = self._check(it, role)
            if w is None:
                continue
            ts = it.timestamp + float(self.config.time_offsets_s.get(it.device, 0.0))
            t = self._attempt_time(ts, it.device, it.connection, it.recv_t)
            if t is None:
                continue
            if role == "needle":
                self._needle_seen_t = it.recv_t
                self._needle_invalid = False
                self._had_data = True
            seen[role] = w
            self.latest_world[role] = w
            ms = ms_time(t)  # kept to the millisecond, as Slicer indexes a tracked sequence
            f = frames[-1] if frames else None
            if f is None or f.ms != ms or getattr(f, role) is not None:
                f = _Frame(ms, ms, it.recv_t)
                frames.append(f)
            setattr(f, role, w)
        applied = self._apply(frames)
        self._update_state()
        if seen:
            self.poses_seen.emit(seen)
        return applied

    def _apply(self, frames: list[_Frame]) -> int:
        proc = self.procedure
        if proc is None or proc.ended or not frames:
            return 0
        from simulator.core.procedure import ProcedureError

        done: list[float] = []
        for f in frames:
            t = f.t
            last = self._min_time()
            if t < last:
                if f.needle is not None and last - t > LATE_S:  # the attempt has moved on: far too old
                    self.counts["reordered"] += 1
                    self._note("warning", f"a needle pose at {t:.3f} s came after the attempt's input at {last:.3f} s: "
                               "refused", key="late")
                    continue
                t = last  # overtaken by a keyboard input a moment ago: it joins that moment
            before = self._last_time
            self._last_time = t  # inputs the frame sets off (the views' verdicts) happen at its time
            try:
                if self._apply_fn is not None:
                    ok = self._apply_fn(f.needle, f.probe, t)
                else:
                    proc.set_tracked_pose(f.needle, f.probe, time_s=t)
                    ok = True
            except ProcedureError as e:
                ok = False
                self._note("warning", f"pose refused by the attempt: {e}", key=f"proc:{str(e)[:40]}")
            if not ok:
                self.counts["rejected"] += 1
                self._last_time = before
                continue
            self._last_perf = self._perf()
            self._last_recv = f.recv_t
            self.counts["needle_poses"] += f.needle is not None
            done.append(f.recv_t)
        self.counts["frames"] += len(done)
        if done:
            self.frames_applied.emit(done)
        return len(done)

    def _other_message(self, it) -> None:
        msg = it.message
        if msg.type == "STATUS" and msg.status_code not in (0, 1):
            self._note("warning", f"{it.device}: the server reports status {msg.status_code} {msg.text!r}",
                       key=f"status:{it.device}:{msg.status_code}")

    # ------------------------------------------------------------------------------------------
    # state
    # ------------------------------------------------------------------------------------------
    def state(self) -> tuple[str, str]:
        self._update_state()
        return self._state

    def _compute_state(self) -> tuple[str, str]:
        c = self.client
        cfg = self.config
        where = f"{cfg.host}:{cfg.port}"
        if c is None or not c.running:
            return "off", "not connected"
        if not c.connected:
            if self._had_data:
                return "lost", f"connection to {where} lost; reconnecting" + (" - the attempt is paused" if self.procedure else "")
            problem = c.status().last_problem
            return "waiting", f"connecting to {where}" + (f": {problem}" if problem else " ...")
        if self._needle_seen_t is None:
            names = [d["name"] for d in c.status().devices]
            seen = f" (seen: {', '.join(names)})" if names else ""
            return "waiting", f"connected to {where}; waiting for {cfg.needle_device}{seen}"
        if self._needle_invalid:
            return "stale", f"{cfg.needle_device} is out of the tracker's view" + (" - paused" if self.procedure else "")
        age = self._perf() - self._needle_seen_t
        if age > cfg.stale_after_s:
            return "stale", f"no {cfg.needle_device} pose for {age:.1f} s" + (" - the attempt is paused" if self.procedure else "")
        return "connected", f"connected to {where}"

    def _update_state(self) -> None:
        s = self._compute_state()
        if s[0] != self._state[0]:
            old = self._state[0]
            self._state = s
            if old != "off" or s[0] != "off":
                self._note("info" if s[0] in ("connected", "waiting") else "warning", f"tracking {s[0]}: {s[1]}")
            self.state_changed.emit(*s)
        else:
            self._state = s

    def devices(self) -> list[dict]:
        """One row per device seen: name, role, count, rate_hz, age_s, latency_ms (arrival - timestamp
        when the sender's clock is this machine's), clock_offset_s, lag_ms, time_offset_s."""
        c = self.client
        if c is None:
            return []
        rows = []
        for d in c.status().devices:
            off = d["clock_offset_s"]
            same_clock = math.isfinite(off) and abs(off) < 5.0
            rows.append({**d, "role": self.role_of(d["name"]) or "not used",
                         "latency_ms": off * 1e3 + d["lag_s"] * 1e3 if same_clock else float("nan"),
                         "lag_ms": d["lag_s"] * 1e3, "time_offset_s": float(self.config.time_offsets_s.get(d["name"], 0.0))})
        return rows
