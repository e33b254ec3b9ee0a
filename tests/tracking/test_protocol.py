"""The OpenIGTLink reader and writer: the wire format checked against pyigtl (an independent
implementation) both ways, exact poses, and damaged input that only ever gives our own errors."""
import struct

import numpy as np
import pyigtl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.tracking import protocol as P

POSE = np.array([[0.0, -1.0, 0.0, 10.25], [1.0, 0.0, 0.0, -3.5], [0.0, 0.0, 1.0, 101.125], [0, 0, 0, 1]])


def read_all(data: bytes, chunk: int | None = None):
    r = P.MessageReader()
    if chunk is None:
        return r.feed(data)
    out = []
    for i in range(0, len(data), chunk):
        out += r.feed(data[i:i + chunk])
    return out


def test_crc64_is_ecma_182_as_pyigtl_computes_it():
    assert P.crc64(b"123456789") == 0x6C40DF5F0B497347  # the CRC-64/ECMA-182 check value
    rng = np.random.default_rng(1)
    for n in (0, 1, 7, 58, 4096):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert P.crc64(data) == pyigtl.messages.CRC64(data)


def test_messages_from_pyigtl_are_read():
    ts = 1712345678.25
    raw = pyigtl.TransformMessage(POSE, timestamp=ts, device_name="NeedleTipToReference").pack()
    img = (np.arange(24, dtype=np.int16) * 300 - 2000).reshape(1, 4, 6)
    ijk = np.array([[0.2, 0, 0, -5.0], [0, 0.3, 0, 7.0], [0, 0, 1.5, 2.0], [0, 0, 0, 1]])
    raw += pyigtl.ImageMessage(img, ijk_to_world_matrix=ijk, timestamp=ts, device_name="Image_Reference").pack()
    raw += pyigtl.StringMessage("Task 1", timestamp=ts, device_name="Text").pack()
    v2 = pyigtl.TransformMessage(POSE, timestamp=ts, device_name="ProbeToReference")
    v2.header_version, v2.metadata = 2, {"TransformStatus": "INVALID", "Note": "cafe"}  # pyigtl fails on non-ASCII
    raw += v2.pack()
    out = read_all(raw, chunk=5)  # whatever the chunks the socket gives
    assert [m.type for m in out] == ["TRANSFORM", "IMAGE", "STRING", "TRANSFORM"]
    t, im, s, inv = out
    assert t.device == "NeedleTipToReference" and abs(t.timestamp - ts) < 1e-6
    assert np.array_equal(t.matrix, POSE) and t.valid
    assert np.array_equal(im.image, img) and np.allclose(im.ijk_to_world, ijk, atol=1e-5)
    assert s.text == "Task 1"
    assert inv.version == 2 and not inv.valid and inv.metadata["Note"] == "cafe"
    (ours,) = read_all(P.encode("STRING", "T", struct.pack(">HH", 3, 1) + b"x", 1.0, {"Note": "caf\u00e9"}))
    assert ours.metadata == {"Note": "caf\u00e9"} and ours.text == "x"


def test_our_messages_are_read_by_pyigtl():
    raw = P.encode_transform("NeedleTipToReference", POSE, 12.345)
    h = pyigtl.MessageBase.parse_header(raw[:58])
    m = pyigtl.TransformMessage()
    m.unpack(h, raw[58:])
    assert np.allclose(m.matrix, POSE) and abs(h["timestamp"] - 12.345) < 1e-6
    us = (np.arange(512 * 512) % 251).astype(np.uint8).reshape(512, 512)
    ijk = np.eye(4)
    ijk[:3, :3] = np.diag([-0.1, 0.1, 0.1])
    ijk[:3, 3] = [30.0, -20.0, 5.0]
    raw = P.encode_image("Image_Reference", us, ijk, 1.5)
    h = pyigtl.MessageBase.parse_header(raw[:58])
    im = pyigtl.ImageMessage()
    im.unpack(h, raw[58:])
    assert np.array_equal(im.image[0], us) and np.allclose(im.ijk_to_world_matrix, ijk, atol=1e-4)
    assert h["body_size"] == len(raw) - 58


@pytest.mark.parametrize("dtype,shape", [(np.uint8, (1, 3, 5)), (">i2", (2, 3, 4)), (np.float32, (1, 2, 2, 3))])
def test_images_round_trip_with_their_geometry(dtype, shape):
    a = (np.arange(int(np.prod(shape))) % 100).astype(dtype).reshape(shape)
    ijk = np.array([[0.0, 0.5, 0, 1.0], [-0.25, 0.0, 0, 2.0], [0, 0, 2.0, 3.0], [0, 0, 0, 1]])
    (m,) = read_all(P.encode_image("Img", a, ijk, 3.0))
    assert np.array_equal(m.image, a) and m.image.dtype.isnative and np.allclose(m.ijk_to_world, ijk)


def test_position_tdata_string_status():
    q = (0.0, 0.0, np.sin(np.pi / 4), np.cos(np.pi / 4))  # 90 degrees about z
    pos = P.encode("POSITION", "Stylus", struct.pack(">7f", 1.0, 2.0, 3.0, *q), 4.0)
    el = struct.pack(">20sBB12f", b"NeedleTipToReference", 1, 0, *POSE[:3, 0], *POSE[:3, 1], *POSE[:3, 2], *POSE[:3, 3])
    el2 = struct.pack(">20sBB12f", b"ProbeToReference", 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 5, 6, 7)
    tdata = P.encode("TDATA", "Tracker", el + el2, 4.0)
    out = read_all(pos + tdata + P.encode_string("Note", "d\u00e9but", 4.0) + P.encode_status("Tracker", 1, "OK", 4.0))
    p, td, s, stt = out
    assert np.allclose(p.matrix[:3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-6) and np.allclose(p.matrix[:3, 3], [1, 2, 3])
    assert [n for n, _ in td.elements] == ["NeedleTipToReference", "ProbeToReference"]
    assert np.array_equal(td.elements[0][1], POSE) and np.array_equal(td.elements[1][1][:3, 3], [5, 6, 7])
    assert s.text == "d\u00e9but" and stt.status_code == 1 and stt.text == "OK"


def test_exact_metadata_gives_the_float64_pose_only_when_it_agrees_with_the_body():
    m = POSE.copy()
    m[:3, 3] = [10.123456789012345, -3.3333333333333335, 101.1]
    (exact,) = read_all(P.encode_transform("N", m, 1.0, exact=True))
    assert np.array_equal(exact.matrix, m)  # bit for bit
    (plain,) = read_all(P.encode_transform("N", m, 1.0))
    assert np.array_equal(plain.matrix, m.astype(np.float32).astype(np.float64)) and not np.array_equal(plain.matrix, m)
    other = m.copy()
    other[0, 3] += 1.0
    forged = P.encode("TRANSFORM", "N", P.transform_content(m), 1.0,
                      {P.EXACT_MATRIX_KEY: " ".join(repr(float(x)) for x in other.reshape(16))})
    broken = P.encode("TRANSFORM", "N", P.transform_content(m), 1.0, {P.EXACT_MATRIX_KEY: "1 2 three"})
    for raw in (forged, broken):
        (got,) = read_all(raw)
        assert np.array_equal(got.matrix, plain.matrix)  # the body wins


def test_a_damaged_message_is_skipped_and_the_next_one_read():
    good = P.encode_transform("A", POSE, 1.0)
    damaged = bytearray(P.encode_transform("B", POSE, 2.0))
    damaged[70] ^= 0x40  # a bit flipped in the body: the CRC catches it
    short = P.encode("TRANSFORM", "C", b"\0" * 40, 3.0)  # a TRANSFORM of 40 bytes
    nan_img = P.encode("IMAGE", "D", b"\0" * 10, 4.0)
    out = read_all(good + bytes(damaged) + short + nan_img + good)
    assert [type(x).__name__ for x in out] == ["Message", "ProtocolError", "ProtocolError", "ProtocolError", "Message"]
    assert "CRC mismatch" in str(out[1]) and "'B'" in str(out[1])
    assert "40 bytes" in str(out[2]) and "'C'" in str(out[2])


@pytest.mark.parametrize("patch,words", [
    (lambda h: b"\x00\x07" + h[2:], "header version 7"),
    (lambda h: h[:2] + b"TRANS\x01FORM\0\0" + h[14:], "not a printable name"),
    (lambda h: h[:42] + struct.pack(">Q", 1 << 40) + h[50:], "body of"),
    (lambda h: h[:14] + b"\xff\xfe" + h[16:], "device name"),
])
def test_a_broken_header_stops_the_reader_with_a_framing_error(patch, words):
    raw = P.encode_transform("NeedleTipToReference", POSE, 1.0)
    r = P.MessageReader()
    out = r.feed(patch(raw[:58]) + raw[58:] + raw)
    assert len(out) == 1 and isinstance(out[0], P.FramingError) and words in str(out[0])
    assert r.feed(raw) == [] and r.broken is not None
    r.reset()
    assert [m.device for m in r.feed(raw)] == ["NeedleTipToReference"]


def _corpus() -> list[bytes]:
    us = (np.arange(16 * 12) % 200).astype(np.uint8).reshape(12, 16)
    v2 = pyigtl.TransformMessage(POSE, timestamp=5.0, device_name="ProbeToReference")
    v2.header_version, v2.metadata = 2, {"TransformStatus": "OK"}
    return [P.encode_transform("NeedleTipToReference", POSE, 1.0, exact=True), P.encode_image("Image_Reference", us, np.eye(4), 2.0),
            P.encode_string("S", "hello", 3.0), P.encode_status("T", 1, "ok", 4.0), v2.pack(),
            P.encode("TDATA", "Tracker", struct.pack(">20sBB12f", b"N", 1, 0, *([0.0] * 12)), 6.0),
            P.encode("POSITION", "P", struct.pack(">7f", 1, 2, 3, 0, 0, 0, 1), 7.0)]


CORPUS = _corpus()


@st.composite
def mutated_stream(draw):
    msgs = [bytearray(CORPUS[i]) for i in draw(st.lists(st.integers(0, len(CORPUS) - 1), min_size=1, max_size=4))]
    data = bytearray(b"".join(msgs))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "truncate", "field"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[pos:pos + draw(st.integers(1, 64))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=32))
        elif op == "truncate":
            data = data[:pos]
        elif op == "field" and len(data) >= 58:  # rewrite a header field of the first message
            off, fmt = draw(st.sampled_from([(0, ">H"), (34, ">I"), (38, ">I"), (42, ">Q"), (50, ">Q")]))
            bits = 8 * struct.calcsize(fmt)
            struct.pack_into(fmt, data, off, draw(st.integers(0, (1 << bits) - 1)))
    return bytes(data), draw(st.integers(1, 97))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_stream())
def test_mutated_real_messages_give_messages_or_our_errors_never_a_traceback(case):
    data, chunk = case
    out = read_all(data, chunk)
    assert all(isinstance(x, (P.Message, P.ProtocolError)) for x in out)
    for m in out:
        if isinstance(m, P.Message) and m.matrix is not None:
            assert m.matrix.shape == (4, 4)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["TRANSFORM", "POSITION", "TDATA", "IMAGE", "STRING", "STATUS", "GET_TRANS"]),
       st.binary(max_size=200), st.integers(1, 2))
def test_any_body_of_any_type_decodes_or_gives_our_error(mtype, body, version):
    raw = P.encode(mtype, "Dev", body, 1.0, version=1)
    header = P.parse_header(raw[:58])
    header.version = version
    try:
        P.decode(header, raw[58:])
    except P.ProtocolError:
        pass
