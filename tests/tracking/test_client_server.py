"""Client, server and simulated tracker on loopback (127.0.0.1, bounded in time): nothing lost or
reordered, images to several clients, and each kind of bad input told plainly, never raised."""
import socket
import threading
import time

import numpy as np
import pyigtl
import pytest

from simulator.core.trackfiles import read_tracked, resample
from simulator.tracking import protocol as P
from simulator.tracking.client import TrackingClient
from simulator.tracking.server import ServerError, TrackingServer
from simulator.tracking.simtracker import SimulatedTracker
from tests.tracking.conftest import wait_for


class RawServer:
    """A TCP server on loopback that sends given bytes to its first client (then, optionally, closes)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.conn = None
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.sock.settimeout(10)
        try:
            self.conn, _ = self.sock.accept()
        except OSError:
            pass

    def send(self, data: bytes):
        wait_for(lambda: self.conn is not None, 10, what="the client to connect")
        self.conn.sendall(data)

    def close(self):
        for s in (self.conn, self.sock):
            if s is not None:
                s.close()


@pytest.fixture
def client_factory():
    made = []

    def make(port, **kw):
        c = TrackingClient("127.0.0.1", port, reconnect_s=0.05, **kw)
        c.start()
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


def test_the_simulated_tracker_delivers_every_pose_in_order_bit_for_bit(pass_file, client_factory):
    tracked = read_tracked(pass_file)
    times, mats = resample(tracked)
    tracker = SimulatedTracker(tracked, port=0, speed=0)  # as fast as the connection takes them
    tracker.start()
    try:
        c = client_factory(tracker.port)
        assert tracker.wait_done(20)
        n = len(times) * 2
        got = []
        wait_for(lambda: got.extend(c.take()) or len(got) >= n, 10, what="all poses")
        assert [g.seq for g in got] == sorted(g.seq for g in got)
        needle = [g for g in got if g.device == "NeedleTipToReference"]
        probe = [g for g in got if g.device == "ProbeToReference"]
        assert len(needle) == len(probe) == len(times)
        assert np.array_equal([round(g.timestamp, 3) for g in needle], times)
        assert np.array_equal(np.stack([g.matrix for g in needle]), mats["NeedleTipToReference"])
        assert np.array_equal(np.stack([g.matrix for g in probe]), mats["ProbeToReference"])
        st = c.status()
        assert st.connected and st.errors == 0 and {d["name"] for d in st.devices} == {"NeedleTipToReference", "ProbeToReference"}
    finally:
        tracker.stop()


def test_the_tracker_keeps_its_recorded_rate(pass_file, client_factory):
    tracker = SimulatedTracker(pass_file, port=0, speed=2.0, max_frames=61)  # 1 s of the file in 0.5 s
    tracker.start()
    try:
        client_factory(tracker.port)
        assert tracker.wait_done(10)
        sent = [s[2] for s in tracker.send_log]
        assert sent[-1] - sent[0] == pytest.approx(0.5, abs=0.05)
        assert tracker.rate_hz == pytest.approx(60.0, rel=0.01)
    finally:
        tracker.stop()


def test_images_reach_every_client_and_pyigtl_reads_them(client_factory):
    server = TrackingServer("127.0.0.1", 0)
    server.start()
    py = None
    try:
        ours = client_factory(server.port)
        py = pyigtl.OpenIGTLinkClient("127.0.0.1", server.port)
        assert server.wait_for_clients(2, 10)
        us = (np.arange(512 * 512) % 253).astype(np.uint8).reshape(512, 512)
        ijk = np.diag([-0.1, 0.1, 0.1, 1.0])
        for k in range(5):
            server.send_image("Image_Reference", np.roll(us, k), ijk, 100.0 + k)
            server.send_transform("NeedleTipToReference", np.eye(4), 100.0 + k)
        assert server.flush(10)
        got = []
        wait_for(lambda: got.extend(ours.take()) or sum(g.is_pose for g in got) == 5 and any(
            g.message is not None and g.timestamp == 104.0 for g in got), 10, what="the frames")
        imgs = [g.message for g in got if g.message is not None]  # some may have been replaced by newer ones
        assert [g.timestamp for g in got if g.is_pose] == [100.0, 101.0, 102.0, 103.0, 104.0]  # poses: every one
        assert np.array_equal(imgs[-1].image[0], np.roll(us, 4)) and np.allclose(imgs[-1].ijk_to_world, ijk, atol=1e-4)
        m = py.wait_for_message("Image_Reference", timeout=5)
        assert m is not None and m.image.shape == (1, 512, 512)
    finally:
        if py is not None:
            py.stop()
        server.stop()


def test_a_port_in_use_is_told_plainly():
    first = TrackingServer("127.0.0.1", 0)
    first.start()
    try:
        with pytest.raises(ServerError, match=f"port {first.port} on 127.0.0.1 is in use"):
            TrackingServer("127.0.0.1", first.port).start()
    finally:
        first.stop()
    with pytest.raises(ServerError, match="not a TCP port"):
        TrackingServer("127.0.0.1", 70000).start()


def test_no_server_then_a_server_that_vanishes_and_returns(client_factory):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # a free port: nobody listens there yet
    c = client_factory(port)
    wait_for(lambda: any("cannot connect to 127.0.0.1" in n.text and "running" in n.text for n in c.notices()), 5,
             what="the refusal notice")
    assert not c.connected
    server = TrackingServer("127.0.0.1", port)
    server.start()
    wait_for(lambda: c.connected and server.clients(), 5, what="the connection")
    server.send_transform("NeedleTipToReference", np.eye(4), 1.0)
    wait_for(lambda: c.status().messages == 1, 5, what="a pose")
    server.stop()  # the server vanishes
    wait_for(lambda: not c.connected, 5, what="the loss")
    assert any("closed the connection" in n.text or "connection lost" in n.text for n in c.notices())
    server = TrackingServer("127.0.0.1", port)
    server.start()
    try:
        wait_for(lambda: c.connected and server.clients(), 5, what="the reconnection")
        server.send_transform("NeedleTipToReference", np.eye(4), 2.0)
        got = []
        wait_for(lambda: got.extend(c.take()) or any(g.connection == 2 for g in got), 5, what="a pose after it")
    finally:
        server.stop()


def test_damaged_messages_are_skipped_and_a_broken_header_reconnects(client_factory):
    raw = RawServer()
    try:
        c = client_factory(raw.port)
        good = P.encode_transform("NeedleTipToReference", np.eye(4), 1.0)
        damaged = bytearray(P.encode_transform("NeedleTipToReference", np.eye(4), 2.0))
        damaged[-3] ^= 0xFF
        raw.send(good + bytes(damaged) + P.encode("TRANSFORM", "ProbeToReference", b"\x00" * 12, 3.0) + good[:40])
        raw.send(good[40:])  # the rest of a message split across packets
        raw.send(b"GARBAGE!" * 10)  # not OpenIGTLink at all
        wait_for(lambda: sum("skipped" in n.text for n in c.notices()) >= 1 and any(
            "not an OpenIGTLink stream" in n.text for n in c.notices()), 5, what="the notices")
        texts = [n.text for n in c.notices()]
        assert any("CRC mismatch" in t for t in texts)
        assert any("12 bytes of content" in t or "12 bytes" in t for t in texts)
        got = c.take()
        assert [g.timestamp for g in got] == [1.0, 1.0]  # the good ones, the split one included
        assert c.status().errors >= 2
    finally:
        raw.close()


def test_a_server_that_stops_mid_message_is_a_lost_connection(client_factory):
    raw = RawServer()
    c = client_factory(raw.port)
    msg = P.encode_transform("NeedleTipToReference", np.eye(4), 1.0)
    raw.send(msg + msg[:30])
    wait_for(lambda: c.status().messages == 1, 5, what="the first pose")
    raw.close()
    wait_for(lambda: any("in the middle of a message" in n.text for n in c.notices()), 5, what="the notice")
    assert len(c.take()) == 1


def test_a_slow_client_gets_the_newest_image_not_a_backlog():
    server = TrackingServer("127.0.0.1", 0)
    server.start()
    s = socket.create_connection(("127.0.0.1", server.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        assert server.wait_for_clients(1, 5)
        big = np.zeros((512, 512), np.uint8)
        for k in range(40):  # nobody reads: the socket fills, frames queue up and replace each other
            server.send_image("Image_Reference", big + k, np.eye(4), float(k))
            time.sleep(0.002)
        info = server.clients()[0]
        assert info.images_skipped > 0 and info.queued <= 2
    finally:
        s.close()
        server.stop()
