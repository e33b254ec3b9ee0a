"""An OpenIGTLink client that loses nothing: every message, in arrival order, with its arrival time.

    client = TrackingClient("127.0.0.1", 18944, on_data=wake_up)   # on_data: called from its thread
    client.start()
    for item in client.take(): ...        # Received items, in order (all since the last take)
    client.status()                       # ClientStatus: connected?, devices seen, rates, problems
    client.stop()

One background thread connects (again and again, every `reconnect_s`, until `stop()`), reads
the socket and cuts the stream into messages (`protocol.MessageReader`). TRANSFORM, POSITION
and TDATA elements become `Received` poses (device, sender timestamp, 4x4, valid flag, arrival
time); other messages are kept as `Received` with their `Message`. A damaged message (CRC, size,
content) is skipped and noted; a damaged header drops the connection (the stream is out of step)
and the client connects again. Nothing raises out of the thread: every problem is a `Notice`
(time, level, text) in `notices` and in the `simulator.tracking` log.

`on_data()` is called when the queue goes from empty to non-empty (one wake-up per batch, not
per message), so a GUI can post itself one event and drain everything with `take()`.

Per device: messages, rate (Hz, over the last second), the last timestamp, the lag
(arrival - timestamp - the smallest such difference seen: jitter above the best) and the clock
offset (the smallest arrival - timestamp: transit time plus the difference of the clocks; the
latency itself when the sender's clock is this machine's, e.g. on loopback).
"""
from __future__ import annotations

import collections
import logging
import socket
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from simulator.tracking.protocol import FramingError, Message, MessageReader, ProtocolError, warm_up

log = logging.getLogger("simulator.tracking")
DEFAULT_PORT = 18944
POSE_TYPES = ("TRANSFORM", "POSITION", "TDATA")
MAX_QUEUE = 200_000  # items kept for a consumer that stopped reading (about half an hour at 120 Hz)
MAX_NOTICES = 200
CLOCK_RESET_S = 5.0  # arrival - timestamp this much above its best: the sender's clock was reset


@dataclass
class Received:
    device: str
    timestamp: float  # the sender's clock, seconds
    recv_t: float  # time.perf_counter() when it was read
    recv_wall: float  # time.time() when it was read
    seq: int  # arrival order on this client (over all connections)
    connection: int  # which connection it came on (1, 2, ...)
    matrix: np.ndarray | None = None  # poses: 4x4 float64
    valid: bool = True  # poses: False when the sender marked it invalid
    message: Message | None = None  # other messages (images, strings, status)

    @property
    def is_pose(self) -> bool:
        return self.matrix is not None


@dataclass
class Notice:
    time: float  # time.time()
    level: str  # "info" | "warning" | "error"
    text: str


@dataclass
class DeviceStats:
    name: str
    type: str = ""
    count: int = 0
    last_timestamp: float = float("nan")
    last_recv_t: float = float("nan")
    last_recv_wall: float = float("nan")
    clock_offset_s: float = float("inf")  # min(arrival wall time - timestamp)
    lag_s: float = float("nan")  # the last arrival - timestamp - clock_offset_s
    _recent: collections.deque = field(default_factory=lambda: collections.deque(maxlen=512), repr=False)

    def add(self, mtype: str, ts: float, recv_t: float, recv_wall: float) -> None:
        self.type = mtype
        self.count += 1
        self.last_timestamp, self.last_recv_t, self.last_recv_wall = ts, recv_t, recv_wall
        d = recv_wall - ts
        if d < self.clock_offset_s or d - self.clock_offset_s > CLOCK_RESET_S:  # the sender's clock restarted
            self.clock_offset_s = d
        self.lag_s = d - self.clock_offset_s
        self._recent.append(recv_t)

    def rate_hz(self, now: float | None = None, window_s: float = 1.0) -> float:
        """Messages per second over the last `window_s` (0 once none arrived in it)."""
        now = time.perf_counter() if now is None else now
        r = self._recent
        n = 0
        for t in reversed(r):
            if now - t > window_s:
                break
            n += 1
        if n == len(r) and n == self.count:  # seen for less than the window: its span so far
            return (n - 1) / (r[-1] - r[0]) if n > 1 and r[-1] > r[0] else 0.0
        return n / window_s

    def snapshot(self, now: float | None = None) -> dict:
        now = time.perf_counter() if now is None else now
        return {"name": self.name, "type": self.type, "count": self.count, "rate_hz": self.rate_hz(now),
                "last_timestamp": self.last_timestamp, "age_s": now - self.last_recv_t if self.count else float("inf"),
                "clock_offset_s": self.clock_offset_s if self.count else float("nan"), "lag_s": self.lag_s}


@dataclass
class ClientStatus:
    host: str
    port: int
    running: bool
    connected: bool
    connections: int  # how many connections have been made
    ever_received: bool
    messages: int
    bytes: int
    errors: int
    devices: list[dict]
    last_problem: str


class TrackingClient:
    """See the module notes. Thread-safe: `take`, `status`, `notices` may be called from any thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, on_data=None,
                 reconnect_s: float = 0.5, connect_timeout_s: float = 2.0):
        self.host = str(host)
        self.port = int(port)
        self.on_data = on_data
        self.reconnect_s = float(reconnect_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self._lock = threading.Lock()
        self._queue: collections.deque[Received] = collections.deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._connected = False
        self._connections = 0
        self._seq = 0
        self._messages = 0
        self._bytes = 0
        self._errors = 0
        self._dropped = 0
        self._devices: dict[str, DeviceStats] = {}
        self._notices: collections.deque[Notice] = collections.deque(maxlen=MAX_NOTICES)
        self._last_problem = ""
        self._last_connect_error = ""
        self._recent_notes: dict[str, tuple[float, int]] = {}

    # ------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        warm_up()
        self._thread = threading.Thread(target=self._run, name=f"igtl-client-{self.port}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def connected(self) -> bool:
        return self._connected

    def take(self) -> list[Received]:
        """Everything received since the last call, in arrival order."""
        with self._lock:
            if not self._queue:
                return []
            out = list(self._queue)
            self._queue.clear()
        return out

    def notices(self, since: int = 0) -> list[Notice]:
        with self._lock:
            return list(self._notices)[since:]

    def status(self) -> ClientStatus:
        now = time.perf_counter()
        with self._lock:
            devs = [d.snapshot(now) for d in self._devices.values()]
            return ClientStatus(self.host, self.port, self.running, self._connected, self._connections,
                                self._messages > 0, self._messages, self._bytes, self._errors, devs,
                                self._last_problem)

    def device(self, name: str) -> DeviceStats | None:
        with self._lock:
            return self._devices.get(name)

    # ------------------------------------------------------------------------------------------
    def _note(self, level: str, text: str) -> None:
        now = time.monotonic()
        key = text[:60]
        last = self._recent_notes.get(key)
        if last is not None and now - last[0] < 1.0:  # the same problem again within a second: counted
            self._recent_notes[key] = (last[0], last[1] + 1)
            return
        if last is not None and last[1]:
            text = f"{text} (and {last[1]} more like it)"
        self._recent_notes[key] = (now, 0)
        if len(self._recent_notes) > 64:
            self._recent_notes.pop(next(iter(self._recent_notes)))
        getattr(log, level)(f"OpenIGTLink {self.host}:{self.port}: {text}")
        with self._lock:
            self._notices.append(Notice(time.time(), level, text))
            if level != "info":
                self._last_problem = text

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                sock = self._connect()
                if sock is None:
                    self._stop.wait(self.reconnect_s)
                    continue
                self._read(sock)
                self._connected = False
                self._sock = None
                try:
                    sock.close()
                except OSError:
                    pass
                if not self._stop.is_set():
                    self._stop.wait(min(self.reconnect_s, 0.2))
        except Exception as e:  # noqa: BLE001 - the thread must never die with a traceback
            self._connected = False
            self._note("error", f"the client stopped on an unexpected error ({type(e).__name__}: {e})")

    def _connect(self) -> socket.socket | None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout_s)
        except OSError as e:
            why = e.strerror or str(e) or type(e).__name__
            text = (f"cannot connect to {self.host}:{self.port} ({why}); is the OpenIGTLink server (PLUS, "
                    "3D Slicer) running on that port? Trying again")
            if text != self._last_connect_error:  # once per distinct reason, not every half second
                self._last_connect_error = text
                self._note("warning", text)
            return None
        self._last_connect_error = ""
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(0.25)
        self._sock = sock
        self._connected = True
        self._connections += 1
        self._note("info", f"connected to {self.host}:{self.port}")
        return sock

    def _read(self, sock: socket.socket) -> None:
        reader = MessageReader()
        conn = self._connections
        while not self._stop.is_set():
            try:
                data = sock.recv(1 << 20)
            except socket.timeout:
                continue
            except OSError as e:
                if not self._stop.is_set():
                    self._note("warning", f"connection lost ({e.strerror or e}); reconnecting")
                return
            if not data:
                if not self._stop.is_set():
                    left = f" in the middle of a message ({reader.pending_bytes} bytes)" if reader.pending_bytes else ""
                    self._note("warning", f"the server closed the connection{left}; reconnecting")
                return
            now_t, now_w = time.perf_counter(), time.time()
            items = reader.feed(data)
            with self._lock:
                self._bytes += len(data)
            self._accept(items, now_t, now_w, conn)
            if reader.broken is not None:
                self._note("error", f"{reader.broken}; the connection is dropped and made again")
                return

    def _accept(self, items: list, now_t: float, now_w: float, conn: int) -> None:
        new: list[Received] = []
        problems: list[str] = []
        for it in items:
            if isinstance(it, ProtocolError):
                if not isinstance(it, FramingError):
                    problems.append(f"message skipped: {it}")
                continue
            msg: Message = it
            if msg.type in POSE_TYPES:
                poses = msg.elements if msg.type == "TDATA" else [(msg.device, msg.matrix)]
                for name, m in poses:
                    self._seq += 1
                    new.append(Received(name, msg.timestamp, now_t, now_w, self._seq, conn, matrix=m,
                                        valid=msg.valid))
            else:
                self._seq += 1
                new.append(Received(msg.device, msg.timestamp, now_t, now_w, self._seq, conn, message=msg))
        with self._lock:
            self._errors += len(problems)
            for r in new:
                d = self._devices.get(r.device)
                if d is None:
                    d = self._devices[r.device] = DeviceStats(r.device)
                d.add("pose" if r.is_pose else r.message.type, r.timestamp, now_t, now_w)
            self._messages += sum(1 for it in items if isinstance(it, Message))
            was_empty = not self._queue
            room = MAX_QUEUE - len(self._queue)
            if len(new) > room:
                self._dropped += len(new) - max(room, 0)
                new = new[:max(room, 0)]
            self._queue.extend(new)
        for p in problems:
            self._note("warning", p)
        if new and was_empty and self.on_data is not None:
            try:
                self.on_data()
            except Exception as e:  # noqa: BLE001 - a consumer's bug must not stop the stream
                self._note("error", f"on_data failed ({type(e).__name__}: {e})")

    @property
    def dropped(self) -> int:
        """Items not kept because the consumer stopped taking them (MAX_QUEUE)."""
        return self._dropped
