"""OpenIGTLink messages: a strict reader of the bytes that arrive and the writer of ours.

Wire format (big-endian; header versions 1 and 2, i.e. OpenIGTLink protocol 1-3):

    header (58 bytes)  uint16 version | char[12] type | char[20] device name |
                       uint32 seconds | uint32 fraction (2^-32 s) | uint64 body size | uint64 CRC-64
    body               version 2 only: extended header (uint16 its size >= 12, uint16 metadata
                       header size, uint32 metadata body size, uint32 message id), then
                       the content, then the metadata (uint16 count, count x (uint16 key size,
                       uint16 encoding, uint32 value size), keys and values).

CRC-64 is ECMA-182 (polynomial 0x42F0E1EBA9EA3693, no reflection, initial value 0) over the
whole body.

Contents read: TRANSFORM (12 float32: the 3x3 rotation column by column, then the
translation), POSITION (position + quaternion x y z w, 28 bytes), TDATA (tracking data: n x
(char[20] name, uint8 type, uint8 reserved, 12 float32)), IMAGE (72-byte image header:
components, scalar type, endianness, coordinate system, size, 12 float32 matrix of the axis
directions times spacing and the image CENTRE, sub-volume; then the pixels), STRING, STATUS.
Other message types (GET_*, STT_*, commands, ...) are read as `Message` with no content so a
receiver can report them and go on.

Errors are `ProtocolError` (a message cannot be read; the stream is still in step: the reader
skips it) or `FramingError` (the header itself is wrong, so where the next message starts is
unknown: the connection must be dropped). Both name the device and what is wrong; nothing else
escapes the reader, whatever the bytes.

Why not pyigtl's parser: it keeps only the latest message of each device (a 60 Hz pose stream
loses poses between two reads), does not check the CRC or bound the body size (a corrupt
header makes it wait for gigabytes), and its errors are tracebacks printed from its thread
(struct.error, UnicodeDecodeError, KeyError, NotImplementedError, a `raise` of a str). Its
CRC-64 (crcmod) falls back to pure Python without a C compiler: ~100 ms per 512x512 frame.
This module is the small part written here; pyigtl stays the independent implementation the
tests check this one against, both ways.

Precision: TRANSFORM carries float32. A sender may add the exact float64 matrix as the metadata
key `MatrixFloat64` (16 numbers, row-major; header version 2): our simulated tracker does, so a
recorded file replays bit for bit. A reader uses it only when it agrees with the float32 body.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

import numba
import numpy as np

HEADER_SIZE = 58
HEADER = struct.Struct(">H12s20sIIQQ")
EXT_HEADER = struct.Struct(">HHII")
IMAGE_HEADER = struct.Struct(">HBBBBHHH12fHHHHHH")
TRANSFORM_CONTENT = struct.Struct(">12f")
POSITION_CONTENT = struct.Struct(">7f")
TDATA_ELEMENT = struct.Struct(">20sBB12f")
STATUS_HEAD = struct.Struct(">HQ20s")
#: the largest body accepted: a 1024 x 1024 x 4-component float32 image and its headers
MAX_BODY_BYTES = 16 * 1024 * 1024 + 4096
MAX_METADATA_ITEMS = 256
EXACT_MATRIX_KEY = "MatrixFloat64"
STATUS_KEY = "TransformStatus"
IMAGE_COORD_RAS, IMAGE_COORD_LPS = 1, 2
_SCALAR_TYPES = {2: np.int8, 3: np.uint8, 4: np.int16, 5: np.uint16, 6: np.int32, 7: np.uint32,
                 10: np.float32, 11: np.float64}
_SCALAR_CODES = {np.dtype(v).newbyteorder("=").str: k for k, v in _SCALAR_TYPES.items()}
_ENCODINGS = {3: "ascii", 106: "utf-8"}
_FRACTION = 4294967296.0  # 2^32


class ProtocolError(ValueError):
    """A message that cannot be read (the stream is still in step; the message is skipped)."""


class FramingError(ProtocolError):
    """A header that cannot be trusted: where the next message starts is unknown."""


# ---------------------------------------------------------------------------------------------
# CRC-64 (ECMA-182), compiled
# ---------------------------------------------------------------------------------------------
def _crc_table() -> np.ndarray:
    poly = 0x42F0E1EBA9EA3693
    table = np.zeros(256, dtype=np.uint64)
    for i in range(256):
        c = i << 56
        for _ in range(8):
            c = ((c << 1) ^ poly) if c & (1 << 63) else (c << 1)
            c &= 0xFFFFFFFFFFFFFFFF
        table[i] = c
    return table


_TABLE = _crc_table()


@numba.njit(cache=True, nogil=True)
def _crc64_kernel(data, table):
    crc = np.uint64(0)
    s56 = np.uint64(56)
    s8 = np.uint64(8)
    m = np.uint64(0xFF)
    for b in data:
        crc = table[((crc >> s56) ^ np.uint64(b)) & m] ^ (crc << s8)
    return crc


_warm = []


def warm_up(background: bool = True) -> None:
    """Compile (or load from its cache) the CRC kernel ahead of the first message (about a second on a
    busy machine); servers and clients call it when they start (on a thread of its own by default)."""
    if _warm:
        return
    _warm.append(True)
    if background:
        import threading

        threading.Thread(target=crc64, args=(b"\0",), name="igtl-warm-up", daemon=True).start()
    else:
        crc64(b"\0")


def crc64(data) -> int:
    """CRC-64/ECMA-182 of bytes (as OpenIGTLink computes it)."""
    if len(data) == 0:
        return 0
    return int(_crc64_kernel(np.frombuffer(data, dtype=np.uint8), _TABLE))


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------
@dataclass
class Header:
    version: int
    type: str
    device: str
    timestamp: float  # seconds (the sender's clock)
    body_size: int
    crc: int


@dataclass
class Message:
    """One message read from the wire. `content` by type:
    TRANSFORM / POSITION: `matrix` (4x4 float64); TDATA: `elements` [(name, 4x4)];
    IMAGE: `image` (k, j, i[, components]) and `ijk_to_world` (4x4, origin at voxel 0);
    STRING: `text`; STATUS: `status_code`, `text`."""

    type: str
    device: str
    timestamp: float
    version: int = 1
    metadata: dict = field(default_factory=dict)
    matrix: np.ndarray | None = None
    elements: list = field(default_factory=list)
    image: np.ndarray | None = None
    ijk_to_world: np.ndarray | None = None
    coordinate_system: str = "ras"
    text: str = ""
    status_code: int = 0
    size: int = 0  # bytes on the wire

    @property
    def valid(self) -> bool:
        """False when the sender marked the pose invalid (metadata TransformStatus)."""
        s = str(self.metadata.get(STATUS_KEY, "OK")).strip().upper()
        return s in ("", "OK", "VALID")


def _text(raw: bytes, what: str, device: str = "") -> str:
    raw = raw.split(b"\0", 1)[0]
    try:
        return raw.decode("utf-8").rstrip(" \t\r\n")
    except UnicodeDecodeError:
        where = f" (device {device!r})" if device else ""
        raise ProtocolError(f"{what}{where} is not text: {raw[:24]!r}") from None


def parse_header(data: bytes) -> Header:
    """The 58-byte header, checked: version 1 or 2, a printable type, a text device name, a body
    size within bounds. Raises FramingError."""
    if len(data) < HEADER_SIZE:
        raise FramingError(f"header truncated: {len(data)} of {HEADER_SIZE} bytes")
    version, mtype, dev, sec, frac, size, crc = HEADER.unpack_from(data)
    if version not in (1, 2):
        raise FramingError(f"header version {version} (OpenIGTLink uses 1 or 2): not an OpenIGTLink stream")
    raw_type = mtype.split(b"\0", 1)[0]
    if not raw_type or any(c < 0x21 or c > 0x7E for c in raw_type):
        raise FramingError(f"message type {mtype!r} is not a printable name: not an OpenIGTLink stream")
    mtype_s = raw_type.decode("ascii")
    try:
        device = _text(dev, "device name")
    except ProtocolError as e:
        raise FramingError(str(e)) from None
    if size > MAX_BODY_BYTES:
        raise FramingError(f"{mtype_s} {device!r}: body of {size} bytes (more than {MAX_BODY_BYTES}): "
                           "a corrupt header or not an OpenIGTLink stream")
    return Header(version, mtype_s, device, sec + frac / _FRACTION, int(size), int(crc))


def _metadata(header: Header, meta: bytes, header_size: int) -> dict:
    if header_size < 2:
        raise ProtocolError(f"{header.type} {header.device!r}: metadata header of {header_size} bytes")
    (count,) = struct.unpack_from(">H", meta, 0)
    if count > MAX_METADATA_ITEMS or 2 + 8 * count != header_size:
        raise ProtocolError(f"{header.type} {header.device!r}: metadata header of {header_size} bytes "
                            f"does not hold {count} entries")
    out = {}
    pos = header_size
    for i in range(count):
        ksize, enc, vsize = struct.unpack_from(">HHI", meta, 2 + 8 * i)
        if pos + ksize + vsize > len(meta):
            raise ProtocolError(f"{header.type} {header.device!r}: metadata entry {i} runs past the message")
        key = _text(meta[pos:pos + ksize], "metadata key", header.device)
        raw = meta[pos + ksize:pos + ksize + vsize]
        pos += ksize + vsize
        try:
            out[key] = raw.decode(_ENCODINGS.get(enc, "latin-1"))
        except UnicodeDecodeError:
            raise ProtocolError(f"{header.type} {header.device!r}: metadata {key!r} is not "
                                f"{_ENCODINGS.get(enc)} text") from None
    if pos != len(meta):
        raise ProtocolError(f"{header.type} {header.device!r}: {len(meta) - pos} stray bytes after the metadata")
    return out


def _split_body(header: Header, body: bytes) -> tuple[bytes, dict]:
    """(content, metadata) of a body."""
    if header.version == 1:
        return body, {}
    if len(body) < EXT_HEADER.size:
        raise ProtocolError(f"{header.type} {header.device!r}: body of {len(body)} bytes has no extended header")
    ext, meta_h, meta_b, _msg_id = EXT_HEADER.unpack_from(body)
    meta_size = meta_h + meta_b
    if ext < EXT_HEADER.size or ext + meta_size > len(body):
        raise ProtocolError(f"{header.type} {header.device!r}: extended header ({ext} bytes, metadata "
                            f"{meta_size} bytes) does not fit a body of {len(body)} bytes")
    content = body[ext:len(body) - meta_size]
    meta = _metadata(header, body[len(body) - meta_size:], meta_h) if meta_size else {}
    return content, meta


def _matrix_from_12(v) -> np.ndarray:
    m = np.eye(4)
    m[:3, 0] = v[0:3]
    m[:3, 1] = v[3:6]
    m[:3, 2] = v[6:9]
    m[:3, 3] = v[9:12]
    return m


def _exact_matrix(msg: Message, m32: np.ndarray) -> np.ndarray:
    """The float64 matrix of the metadata when present and in agreement with the float32 body."""
    text = msg.metadata.get(EXACT_MATRIX_KEY)
    if text is None:
        return m32
    try:
        v = np.array([float(x) for x in text.split()], dtype=np.float64)
    except ValueError:
        return m32
    if v.shape != (16,) or not np.all(np.isfinite(v)):
        return m32
    m = v.reshape(4, 4)
    with np.errstate(invalid="ignore", over="ignore"):
        agree = np.abs(m - m32) <= 1e-6 * np.maximum(1.0, np.abs(m32))
    return m if bool(np.all(agree)) else m32


def _quaternion_matrix(x, y, z, w) -> np.ndarray:
    n = x * x + y * y + z * z + w * w
    m = np.eye(4)
    if not (n > 0) or not math.isfinite(n):
        m[:3, :3] = np.nan
        return m
    s = 2.0 / n
    m[:3, :3] = [[1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w)],
                 [s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w)],
                 [s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)]]
    return m


def _decode_image(msg: Message, content: bytes) -> None:
    if len(content) < IMAGE_HEADER.size:
        raise ProtocolError(f"IMAGE {msg.device!r}: image header truncated ({len(content)} of {IMAGE_HEADER.size} bytes)")
    v = IMAGE_HEADER.unpack_from(content)
    _ver, comps, stype, endian, coord = v[0:5]
    size = np.array(v[5:8], dtype=np.int64)
    mat = v[8:20]
    sub_off, sub_size = v[20:23], np.array(v[23:26], dtype=np.int64)
    if stype not in _SCALAR_TYPES:
        raise ProtocolError(f"IMAGE {msg.device!r}: scalar type {stype} is not one OpenIGTLink defines")
    if comps < 1 or endian not in (1, 2) or coord not in (1, 2):
        raise ProtocolError(f"IMAGE {msg.device!r}: {comps} components, endianness {endian}, "
                            f"coordinate system {coord} (expected >= 1, 1|2, 1|2)")
    if any(sub_off) or not np.array_equal(sub_size, size):
        raise ProtocolError(f"IMAGE {msg.device!r}: sub-volumes are not supported (offset {sub_off}, "
                            f"size {tuple(sub_size)} of {tuple(size)})")
    dt = np.dtype(_SCALAR_TYPES[stype]).newbyteorder(">" if endian == 1 else "<")
    n = int(np.prod(size)) * comps
    if len(content) - IMAGE_HEADER.size != n * dt.itemsize:
        raise ProtocolError(f"IMAGE {msg.device!r}: {len(content) - IMAGE_HEADER.size} pixel bytes for a "
                            f"{'x'.join(map(str, size))}x{comps} image of {dt.itemsize}-byte pixels")
    m = np.array(mat, dtype=np.float64)
    if not np.all(np.isfinite(m)):
        raise ProtocolError(f"IMAGE {msg.device!r}: its matrix holds NaN or infinity")
    ijk = _matrix_from_12(m)
    centre = ijk[:3, 3].copy()
    ijk[:3, 3] = centre - ijk[:3, :3] @ ((size - 1) / 2.0)
    pix = np.frombuffer(content, dtype=dt, count=n, offset=IMAGE_HEADER.size).astype(dt.newbyteorder("="))
    shape = (int(size[2]), int(size[1]), int(size[0])) + ((comps,) if comps > 1 else ())
    msg.image = pix.reshape(shape)
    msg.ijk_to_world = ijk
    msg.coordinate_system = "ras" if coord == IMAGE_COORD_RAS else "lps"


def decode(header: Header, body: bytes, check_crc: bool = True) -> Message:
    """A message from its checked header and its body. Raises ProtocolError."""
    if len(body) != header.body_size:
        raise ProtocolError(f"{header.type} {header.device!r}: body truncated ({len(body)} of {header.body_size} bytes)")
    if check_crc and crc64(body) != header.crc:
        raise ProtocolError(f"{header.type} {header.device!r}: CRC mismatch (the message was damaged on the way)")
    content, meta = _split_body(header, body)
    msg = Message(header.type, header.device, header.timestamp, header.version, meta, size=HEADER_SIZE + len(body))
    t = header.type
    if t == "TRANSFORM":
        if len(content) != TRANSFORM_CONTENT.size:
            raise ProtocolError(f"TRANSFORM {header.device!r}: {len(content)} bytes of content (48 expected)")
        m32 = _matrix_from_12(TRANSFORM_CONTENT.unpack(content))
        msg.matrix = _exact_matrix(msg, m32)
    elif t == "POSITION":
        if len(content) != POSITION_CONTENT.size:
            raise ProtocolError(f"POSITION {header.device!r}: {len(content)} bytes (28 expected: position "
                                "and orientation quaternion)")
        x, y, z, qx, qy, qz, qw = POSITION_CONTENT.unpack(content)
        m = _quaternion_matrix(qx, qy, qz, qw)
        m[:3, 3] = (x, y, z)
        msg.matrix = m
    elif t == "TDATA":
        if len(content) % TDATA_ELEMENT.size:
            raise ProtocolError(f"TDATA {header.device!r}: {len(content)} bytes is not a whole number of "
                                f"{TDATA_ELEMENT.size}-byte elements")
        for k in range(len(content) // TDATA_ELEMENT.size):
            e = TDATA_ELEMENT.unpack_from(content, k * TDATA_ELEMENT.size)
            name = _text(e[0], "TDATA element name", header.device)
            msg.elements.append((name, _matrix_from_12(e[3:15])))
    elif t == "IMAGE":
        _decode_image(msg, content)
    elif t == "STRING":
        if len(content) < 4:
            raise ProtocolError(f"STRING {header.device!r}: {len(content)} bytes (4 at least)")
        enc, n = struct.unpack_from(">HH", content)
        if 4 + n != len(content):
            raise ProtocolError(f"STRING {header.device!r}: says {n} characters, holds {len(content) - 4} bytes")
        try:
            msg.text = content[4:].decode(_ENCODINGS.get(enc, "latin-1"))
        except UnicodeDecodeError:
            raise ProtocolError(f"STRING {header.device!r}: not {_ENCODINGS.get(enc)} text") from None
    elif t == "STATUS":
        if len(content) < STATUS_HEAD.size:
            raise ProtocolError(f"STATUS {header.device!r}: {len(content)} bytes ({STATUS_HEAD.size} at least)")
        code, _sub, _name = STATUS_HEAD.unpack_from(content)
        msg.status_code = int(code)
        msg.text = content[STATUS_HEAD.size:].split(b"\0", 1)[0].decode("utf-8", "replace")
    return msg


class MessageReader:
    """Cuts a byte stream into messages. `feed(data)` returns what became complete: `Message`s and
    `ProtocolError`s (a damaged message, skipped) in arrival order. After a `FramingError` is
    returned the stream cannot be trusted: the reader refuses further data until `reset()`."""

    def __init__(self, check_crc: bool = True, max_body_bytes: int = MAX_BODY_BYTES):
        self.check_crc = check_crc
        self.max_body_bytes = max_body_bytes
        self._buf = bytearray()
        self._header: Header | None = None
        self.broken: FramingError | None = None

    def reset(self) -> None:
        self._buf.clear()
        self._header = None
        self.broken = None

    @property
    def pending_bytes(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list:
        if self.broken is not None:
            return []
        self._buf += data
        out: list = []
        while True:
            if self._header is None:
                if len(self._buf) < HEADER_SIZE:
                    break
                try:
                    h = parse_header(bytes(self._buf[:HEADER_SIZE]))
                    if h.body_size > self.max_body_bytes:
                        raise FramingError(f"{h.type} {h.device!r}: body of {h.body_size} bytes (more than "
                                           f"{self.max_body_bytes})")
                except FramingError as e:
                    self.broken = e
                    self._buf.clear()
                    out.append(e)
                    break
                self._header = h
                del self._buf[:HEADER_SIZE]
            h = self._header
            if len(self._buf) < h.body_size:
                break
            body = bytes(self._buf[:h.body_size])
            del self._buf[:h.body_size]
            self._header = None
            try:
                out.append(decode(h, body, self.check_crc))
            except ProtocolError as e:
                out.append(e)
            except Exception as e:  # noqa: BLE001 - whatever the bytes, the caller gets our error
                out.append(ProtocolError(f"{h.type} {h.device!r}: unreadable ({type(e).__name__}: {e})"))
        return out


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------
def _timestamp_fields(t: float) -> tuple[int, int]:
    t = float(t)
    if not math.isfinite(t) or t < 0:
        t = 0.0
    sec = int(math.floor(t))
    frac = int(round((t - sec) * _FRACTION))
    if frac >= 1 << 32:
        sec, frac = sec + 1, 0
    return sec & 0xFFFFFFFF, frac


def _pack_metadata(metadata: dict) -> tuple[bytes, bytes]:
    head = [struct.pack(">H", len(metadata))]
    body = []
    for k, v in metadata.items():
        kb = str(k).encode("utf-8")
        try:
            vb, enc = str(v).encode("ascii"), 3
        except UnicodeEncodeError:
            vb, enc = str(v).encode("utf-8"), 106
        head.append(struct.pack(">HHI", len(kb), enc, len(vb)))
        body.append(kb + vb)
    return b"".join(head), b"".join(body)


def encode(mtype: str, device: str, content: bytes, timestamp: float = 0.0, metadata: dict | None = None,
           version: int | None = None, message_id: int = 0) -> bytes:
    """A whole message. Version 2 (extended header and metadata) when metadata is given, else 1."""
    if version is None:
        version = 2 if metadata else 1
    if version == 2:
        mh, mb = _pack_metadata(metadata or {})
        body = EXT_HEADER.pack(EXT_HEADER.size, len(mh), len(mb), message_id) + content + mh + mb
    else:
        body = content
    name = device.encode("utf-8")
    if len(name) > 20:
        raise ValueError(f"OpenIGTLink device names hold 20 bytes; {device!r} has {len(name)}")
    sec, frac = _timestamp_fields(timestamp)
    return HEADER.pack(version, mtype.encode("ascii"), name, sec, frac, len(body), crc64(body)) + body


def transform_content(matrix) -> bytes:
    m = np.asarray(matrix, dtype=np.float64)
    return TRANSFORM_CONTENT.pack(*m[:3, 0], *m[:3, 1], *m[:3, 2], *m[:3, 3])


def encode_transform(device: str, matrix, timestamp: float = 0.0, exact: bool = False,
                     valid: bool = True) -> bytes:
    """A TRANSFORM message. `exact` adds the float64 matrix as metadata (header version 2);
    `valid=False` marks the pose invalid (metadata TransformStatus = INVALID, version 2)."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"a transform is a 4x4 matrix, got shape {m.shape}")
    meta = {}
    if exact:
        meta[EXACT_MATRIX_KEY] = " ".join(repr(float(x)) for x in m.reshape(16))
    if not valid:
        meta[STATUS_KEY] = "INVALID"
    return encode("TRANSFORM", device, transform_content(m), timestamp, meta or None)


def encode_string(device: str, text: str, timestamp: float = 0.0) -> bytes:
    raw = text.encode("utf-8")
    enc = 3 if raw.isascii() else 106
    return encode("STRING", device, struct.pack(">HH", enc, len(raw)) + raw, timestamp)


def encode_status(device: str, code: int = 1, text: str = "", timestamp: float = 0.0) -> bytes:
    return encode("STATUS", device, STATUS_HEAD.pack(code, 0, b"") + text.encode("utf-8") + b"\0", timestamp)


def encode_image(device: str, image, ijk_to_world, timestamp: float = 0.0, metadata: dict | None = None) -> bytes:
    """An IMAGE message (RAS). image: (j, i) or (k, j, i) or (k, j, i, components) with i the fastest
    axis (columns); ijk_to_world: 4x4 with the axis directions times the spacing and voxel (0,0,0)'s
    position (converted to the image centre as OpenIGTLink wants)."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[None]
    if a.ndim not in (3, 4):
        raise ValueError(f"an image is 2-D, 3-D or 3-D with components, got shape {np.shape(image)}")
    comps = 1 if a.ndim == 3 else a.shape[3]
    code = _SCALAR_CODES.get(a.dtype.newbyteorder("=").str)
    if code is None:
        raise ValueError(f"pixel type {a.dtype} cannot be sent (OpenIGTLink: int8-32, uint8-32, float32/64)")
    size = np.array([a.shape[2], a.shape[1], a.shape[0]])
    if np.any(size > 0xFFFF):
        raise ValueError(f"image size {tuple(size)} exceeds 65535")
    m = np.asarray(ijk_to_world, dtype=np.float64)
    centre = m[:3, 3] + m[:3, :3] @ ((size - 1) / 2.0)
    endian = 1 if a.dtype.byteorder == ">" else 2
    head = IMAGE_HEADER.pack(1, comps, code, endian, IMAGE_COORD_RAS, *size.tolist(), *m[:3, 0], *m[:3, 1],
                             *m[:3, 2], *centre, 0, 0, 0, *size.tolist())
    return encode("IMAGE", device, head + np.ascontiguousarray(a).tobytes(), timestamp, metadata)


__all__ = [
    "EXACT_MATRIX_KEY", "FramingError", "HEADER_SIZE", "Header", "MAX_BODY_BYTES", "Message", "MessageReader",
    "ProtocolError", "crc64", "decode", "encode", "encode_image", "encode_status", "encode_string",
    "encode_transform", "parse_header", "transform_content",
]
