"""An OpenIGTLink server: streams our messages to every client (3D Slicer, Perk Tutor, a PLUS
client) as PLUS does, and hears what they send.

    server = TrackingServer("127.0.0.1", 18944)
    server.start()                          # ServerError with a plain reason (port in use, ...)
    server.send_transform("NeedleTipToReference", m, timestamp)
    server.send_image("Image_Reference", pixels, ijk_to_world, timestamp)
    server.clients()                        # who is connected, what each was sent / skipped
    server.stop()

Each client has its own sender thread and queue, so a slow client never holds back the others or
the caller (`send_*` only queues). Poses, strings and status messages are sent in order, every
one. Images are frames: when a client has not yet taken a device's previous frame, the newer frame
replaces it in its queue (counted in `images_skipped`): a slow client sees the newest picture, not
a growing backlog. A client that accepts nothing for `send_timeout_s`, or falls more than
MAX_QUEUED messages behind, is disconnected with a notice.

Messages from clients are read (strictly, `protocol.MessageReader`) and handed to `on_message`
(called on the client's thread); damaged ones are noted and skipped.
"""
from __future__ import annotations

import collections
import errno
import logging
import select
import socket
import threading
import time
from dataclasses import dataclass

from simulator.tracking.client import DEFAULT_PORT, Notice
from simulator.tracking.protocol import (
    MessageReader,
    ProtocolError,
    encode_image,
    encode_string,
    encode_transform,
    warm_up,
)

log = logging.getLogger("simulator.tracking")
MAX_QUEUED = 20_000
MAX_CLIENTS = 16


class ServerError(RuntimeError):
    """The server cannot start (the message says why and what to do)."""


@dataclass
class ClientInfo:
    address: str
    connected_at: float  # time.time()
    sent: int
    bytes: int
    images_skipped: int
    queued: int


class _Item:
    __slots__ = ("kind", "device", "data")

    def __init__(self, kind: str, device: str, data: bytes):
        self.kind, self.device, self.data = kind, device, data


class _Client:
    def __init__(self, server: "TrackingServer", sock: socket.socket, address: str):
        self.server = server
        self.sock = sock
        self.address = address
        self.connected_at = time.time()
        self.cond = threading.Condition()
        self.queue: collections.deque[_Item] = collections.deque()
        self.pending_images: dict[str, _Item] = {}
        self.sent = 0
        self.bytes = 0
        self.images_skipped = 0
        self.closed = False
        self.reader = MessageReader()
        self.thread = threading.Thread(target=self._run, name=f"igtl-server-client-{address}", daemon=True)

    def put(self, item: _Item) -> bool:
        with self.cond:
            if self.closed:
                return False
            if item.kind == "image":
                old = self.pending_images.get(item.device)
                if old is not None:  # the previous frame is still waiting: the new one takes its place
                    old.data = item.data
                    self.images_skipped += 1
                    return True
                self.pending_images[item.device] = item
            if len(self.queue) >= MAX_QUEUED:
                self.closed = True
                self.cond.notify()
                self.server._note("warning", f"client {self.address} fell {MAX_QUEUED} messages behind: disconnected")
                return False
            self.queue.append(item)
            self.cond.notify()
        return True

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify()

    def _run(self) -> None:
        why = ""
        try:
            while True:
                with self.cond:
                    if not self.queue and not self.closed:
                        self.cond.wait(0.05)
                    if self.closed:
                        break
                    batch = []
                    while self.queue:
                        it = self.queue.popleft()
                        if it.kind == "image" and self.pending_images.get(it.device) is it:
                            del self.pending_images[it.device]
                        batch.append(it)
                for it in batch:
                    self.sock.sendall(it.data)
                    self.sent += 1
                    self.bytes += len(it.data)
                if not self._hear():
                    why = "the client closed the connection"
                    break
        except socket.timeout:
            why = f"accepted nothing for {self.server.send_timeout_s:g} s: disconnected"
        except OSError as e:
            why = f"connection lost ({e.strerror or e})"
        except Exception as e:  # noqa: BLE001 - a client's thread never ends in a traceback
            why = f"stopped on an unexpected error ({type(e).__name__}: {e})"
        finally:
            with self.cond:
                self.closed = True
                self.queue.clear()
                self.pending_images.clear()
            try:
                self.sock.close()
            except OSError:
                pass
            self.server._forget(self, why)

    def _hear(self) -> bool:
        """Read what the client sent (without waiting); False when it has closed."""
        while True:
            r, _, _ = select.select([self.sock], [], [], 0)
            if not r:
                return True
            data = self.sock.recv(65536)
            if not data:
                return False
            for it in self.reader.feed(data):
                if isinstance(it, ProtocolError):
                    self.server._note("warning", f"client {self.address}: message skipped: {it}")
                elif self.server.on_message is not None:
                    try:
                        self.server.on_message(self.address, it)
                    except Exception as e:  # noqa: BLE001
                        self.server._note("error", f"on_message failed ({type(e).__name__}: {e})")
            if self.reader.broken is not None:
                self.server._note("error", f"client {self.address}: {self.reader.broken}")
                return False


class TrackingServer:
    """See the module notes. `send_*` may be called from any thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, on_message=None,
                 send_timeout_s: float = 5.0):
        self.host = str(host)
        self.requested_port = int(port)
        self.port = int(port)
        self.on_message = on_message
        self.send_timeout_s = float(send_timeout_s)
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._clients: list[_Client] = []
        self._lock = threading.Lock()
        self._notices: collections.deque[Notice] = collections.deque(maxlen=200)
        self.sent_messages = 0

    # ------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.running:
            return
        warm_up()
        if not 0 <= self.requested_port <= 65535:
            raise ServerError(f"port {self.requested_port} is not a TCP port (0-65535)")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.requested_port))
            sock.listen(MAX_CLIENTS)
        except OSError as e:
            sock.close()
            if e.errno == errno.EADDRINUSE:
                raise ServerError(f"port {self.requested_port} on {self.host} is in use (another OpenIGTLink server, "
                                  "e.g. PLUS or 3D Slicer, may be listening there): choose another port") from None
            if e.errno in (errno.EACCES, errno.EPERM):
                raise ServerError(f"port {self.requested_port} needs administrator rights: choose one above 1023") from None
            if e.errno == errno.EADDRNOTAVAIL:
                raise ServerError(f"{self.host} is not an address of this computer") from None
            raise ServerError(f"cannot listen on {self.host}:{self.requested_port} ({e.strerror or e})") from None
        except (socket.gaierror, OverflowError, UnicodeError) as e:
            sock.close()
            raise ServerError(f"cannot listen on {self.host}:{self.requested_port} ({e})") from None
        sock.settimeout(0.2)
        self._listener = sock
        self.port = sock.getsockname()[1]
        self._stop.clear()
        self._thread = threading.Thread(target=self._accept_loop, name=f"igtl-server-{self.port}", daemon=True)
        self._thread.start()
        self._note("info", f"listening on {self.host}:{self.port}")

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._thread = None
        if self._listener is not None:
            try:
                self._listener.close()
            except OSError:
                pass
            self._listener = None
        with self._lock:
            clients = list(self._clients)
        for c in clients:
            c.close()
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for c in clients:
            c.thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def clients(self) -> list[ClientInfo]:
        with self._lock:
            return [ClientInfo(c.address, c.connected_at, c.sent, c.bytes, c.images_skipped, len(c.queue))
                    for c in self._clients if not c.closed]

    def notices(self) -> list[Notice]:
        with self._lock:
            return list(self._notices)

    def wait_for_clients(self, n: int = 1, timeout_s: float = 5.0) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if len(self.clients()) >= n:
                return True
            time.sleep(0.005)
        return False

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every client's queue is empty (True) or the time is up."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            with self._lock:
                busy = any(c.queue for c in self._clients if not c.closed)
            if not busy:
                return True
            time.sleep(0.002)
        return False

    # ------------------------------------------------------------------------------------------
    def send_bytes(self, data: bytes, kind: str = "message", device: str = "") -> int:
        """Queue an encoded message for every client; how many clients it was queued for."""
        with self._lock:
            clients = [c for c in self._clients if not c.closed]
        n = 0
        for c in clients:
            if c.put(_Item(kind, device, data)):
                n += 1
        self.sent_messages += 1
        return n

    def send_transform(self, device: str, matrix, timestamp: float, exact: bool = False, valid: bool = True) -> int:
        return self.send_bytes(encode_transform(device, matrix, timestamp, exact=exact, valid=valid), "transform", device)

    def send_image(self, device: str, image, ijk_to_world, timestamp: float) -> int:
        if not self.clients():
            return 0  # nobody to send to: skip the encoding
        return self.send_bytes(encode_image(device, image, ijk_to_world, timestamp), "image", device)

    def send_string(self, device: str, text: str, timestamp: float) -> int:
        return self.send_bytes(encode_string(device, text, timestamp), "string", device)

    # ------------------------------------------------------------------------------------------
    def _note(self, level: str, text: str) -> None:
        getattr(log, level)(f"OpenIGTLink server {self.host}:{self.port}: {text}")
        with self._lock:
            self._notices.append(Notice(time.time(), level, text))

    def _accept_loop(self) -> None:
        listener = self._listener
        while not self._stop.is_set():
            try:
                sock, addr = listener.accept()
            except socket.timeout:
                continue
            except OSError as e:
                if not self._stop.is_set():
                    self._note("error", f"stopped accepting clients ({e.strerror or e})")
                return
            address = f"{addr[0]}:{addr[1]}"
            with self._lock:
                n = sum(1 for c in self._clients if not c.closed)
            if n >= MAX_CLIENTS:
                self._note("warning", f"client {address} refused: {MAX_CLIENTS} clients already")
                sock.close()
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self.send_timeout_s)
            c = _Client(self, sock, address)
            with self._lock:
                self._clients.append(c)
            c.thread.start()
            self._note("info", f"client {address} connected")

    def _forget(self, client: _Client, why: str) -> None:
        with self._lock:
            if client in self._clients:
                self._clients.remove(client)
        if not self._stop.is_set():
            self._note("info" if "closed" in why else "warning", f"client {client.address}: {why or 'disconnected'}")
