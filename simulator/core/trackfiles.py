"""Tracked sequences from the 3D Slicer / PLUS / Perk Tutor world: read, write, and replay them as
Perk Tutor does.

Formats
-------
- PLUS / Slicer sequence metafile (.mha, .igs.mha, .seq.mha): an ASCII header of `Key = Value`
  lines (split on the first '=', both sides trimmed, so `Key=Value` is fine), ending with
  `ElementDataFile = LOCAL`; pixel bytes may follow and are skipped. Per frame:
  `Seq_Frame0000_<A>To<B>Transform = 16 numbers` (row-major 4x4), `..TransformStatus = OK|INVALID`,
  `Seq_Frame0000_Timestamp`. Tracking-only files carry `DimSize = 0 0 N` and no pixels (Slicer) or
  `DimSize = 1 1 N` and N placeholder bytes (PLUS): both are read.
- NRRD variant (.igs.nrrd, .seq.nrrd): the same frame fields as `key:=value` lines of an NRRD header.
- Perk Tutor TransformRecorder XML: `<log TimeStampSec= TimeStampNSec= type="transform"
  DeviceName= transform="16 numbers row-major"/>` and `type="message"` entries, in any order.

Slicer's reading rules, kept so the numbers match Perk Tutor's: one sequence per transform field,
named without its "Transform" suffix (NeedleTipToReferenceTransform -> NeedleTipToReference);
each sample is indexed by its time rounded to the millisecond, and a later sample with the same
index replaces the earlier one; the transform status is recorded but, as in Slicer, an INVALID
transform is still a sample (`read_tracked(..., skip_invalid=True)` drops them instead).

Replay (`resample`): the first sequence is the master; at each master time every other sequence
takes its sample within 1 ms if there is one, else its latest earlier sample (clamped to its first).

Malformed files raise `TrackFileError` whose message names the file and the line.
"""
from __future__ import annotations

import math
import re
import xml.parsers.expat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simulator.core.metrics import SYNC_TOLERANCE_S, sample_sequence_at

MAX_HEADER_BYTES = 256 * 1024 * 1024
_FRAME_RE = re.compile(r"^Seq_Frame(\d+)_(.+)$")


class TrackFileError(ValueError):
    """A tracked-sequence file that cannot be read; the message is `FILE:LINE: what is wrong`."""

    def __init__(self, path, line: int | None, message: str):
        self.path = str(path)
        self.line = line
        where = f"{path}:{line}" if line else f"{path}"
        super().__init__(f"{where}: {message}")


@dataclass
class TransformSequence:
    name: str  # without the "Transform" suffix, as Slicer names it
    time_s: np.ndarray  # (N,) sorted, millisecond-rounded
    matrices: np.ndarray  # (N, 4, 4)
    valid: np.ndarray  # (N,) bool (status OK)

    def __len__(self) -> int:
        return len(self.time_s)


@dataclass
class TrackedRecording:
    path: str
    sequences: dict[str, TransformSequence]  # in creation order: the first is the master
    messages: list[tuple[float, str]] = field(default_factory=list)
    header: dict = field(default_factory=dict)
    format: str = ""

    @property
    def master(self) -> TransformSequence:
        return next(iter(self.sequences.values()))

    def find(self, name: str) -> TransformSequence:
        """A sequence by name, with or without the "Transform" suffix (case-insensitive fallback)."""
        key = strip_transform_suffix(name)
        if key in self.sequences:
            return self.sequences[key]
        low = {k.lower(): k for k in self.sequences}
        if key.lower() in low:
            return self.sequences[low[key.lower()]]
        raise KeyError(f"{self.path}: no transform {name!r}; the file has {', '.join(self.sequences) or 'none'}")


def strip_transform_suffix(name: str) -> str:
    suffix = "Transform"
    if len(name) > len(suffix) and name.endswith(suffix):
        return name[: -len(suffix)]
    return name


def index_time(t: float) -> float:
    """Slicer's sequence index of a timestamp: rounded to 3 decimals."""
    return float(f"{float(t):.3f}")


class _SequenceBuilder:
    """Collects samples per transform name with Slicer's replace-on-equal-index rule."""

    def __init__(self):
        self.order: list[str] = []
        self.samples: dict[str, dict[float, tuple[np.ndarray, bool]]] = {}

    def add(self, name: str, t: float, m: np.ndarray, valid: bool) -> None:
        if name not in self.samples:
            self.order.append(name)
            self.samples[name] = {}
        self.samples[name][index_time(t)] = (m, valid)

    def build(self, skip_invalid: bool = False) -> dict[str, TransformSequence]:
        out = {}
        for name in self.order:
            items = sorted(self.samples[name].items())
            if skip_invalid:
                items = [it for it in items if it[1][1]]
            if not items:
                continue
            t = np.array([k for k, _ in items], dtype=np.float64)
            mats = np.stack([v[0] for _, v in items]).astype(np.float64)
            valid = np.array([v[1] for _, v in items], dtype=bool)
            out[name] = TransformSequence(name, t, mats, valid)
        return out


def _parse_matrix(path, line, text: str) -> np.ndarray:
    parts = text.replace(",", " ").split()
    if len(parts) != 16:
        raise TrackFileError(path, line, f"a transform needs 16 numbers, found {len(parts)}: {text.strip()[:80]!r}")
    try:
        vals = [float(x) for x in parts]
    except ValueError:
        raise TrackFileError(path, line, f"transform has a value that is not a number: {text.strip()[:80]!r}") from None
    if not all(math.isfinite(v) for v in vals):
        raise TrackFileError(path, line, "transform has a non-finite value (nan or inf)")
    return np.array(vals, dtype=np.float64).reshape(4, 4)


def _parse_time(path, line, text: str) -> float:
    try:
        t = float(text.strip())
    except ValueError:
        raise TrackFileError(path, line, f"timestamp {text.strip()[:40]!r} is not a number") from None
    if not math.isfinite(t):
        raise TrackFileError(path, line, f"timestamp {text.strip()!r} is not finite")
    return t


def _frames_to_sequences(path, frames: dict[int, dict], skip_invalid: bool) -> dict[str, TransformSequence]:
    b = _SequenceBuilder()
    for fn in sorted(frames):
        fr = frames[fn]
        transforms = fr.get("transforms", [])
        if not transforms:
            continue
        if "time" not in fr:
            line = transforms[0][2]
            raise TrackFileError(path, line, f"frame {fn} has transforms but no Seq_Frame{fn:04d}_Timestamp")
        for name, m, line in transforms:
            status = fr.get("status", {}).get(name, "OK")
            b.add(strip_transform_suffix(name), fr["time"], m, status.upper() == "OK")
    return b.build(skip_invalid)


def _open(path: Path):
    try:
        return open(path, "rb")
    except OSError as e:
        raise TrackFileError(path, None, f"cannot open ({e.strerror or e})") from None


def _frame_field(path: Path, lineno: int, frames: dict[int, dict], mt: re.Match, value: str) -> None:
    """One `Seq_FrameNNNN_<field>` header entry (metafile and NRRD spell them the same) into `frames`."""
    fn = int(mt.group(1))
    field_name = mt.group(2)
    fr = frames.setdefault(fn, {})
    if field_name == "Timestamp":
        fr["time"] = _parse_time(path, lineno, value)
    elif field_name.endswith("TransformStatus"):
        fr.setdefault("status", {})[field_name[: -len("Status")]] = value
    elif "Transform" in field_name and "Status" not in field_name:
        fr.setdefault("transforms", []).append((field_name, _parse_matrix(path, lineno, value), lineno))


def read_sequence_metafile(path, skip_invalid: bool = False) -> TrackedRecording:
    """Read a PLUS / Slicer tracked-sequence metafile (.mha, .igs.mha, .seq.mha)."""
    path = Path(path)
    f = _open(path)
    header: dict[str, str] = {}
    frames: dict[int, dict] = {}
    n_read = 0
    saw_end = False
    lineno = 0
    with f:
        for raw in f:
            lineno += 1
            n_read += len(raw)
            if n_read > MAX_HEADER_BYTES:
                raise TrackFileError(path, lineno, "header too long (no ElementDataFile line)")
            line = raw.decode("latin-1").rstrip("\r\n")
            if not line.strip():
                continue
            if "=" not in line:
                if lineno == 1:
                    raise TrackFileError(path, 1, "not a sequence metafile (expected 'Key = Value' header lines)")
                raise TrackFileError(path, lineno, f"expected 'Key = Value', got {line.strip()[:80]!r}")
            key, value = line.split("=", 1)
            key = key.strip()
            value = value.strip()
            if not key:
                raise TrackFileError(path, lineno, "empty key before '='")
            if key == "ElementDataFile":
                saw_end = True
                break
            mt = _FRAME_RE.match(key)
            if not mt:
                header[key] = value
                if key == "DimSize":
                    parts = value.split()
                    if not parts or not all(p.isdigit() for p in parts):
                        raise TrackFileError(path, lineno, f"DimSize must be whole numbers, got {value!r}")
                continue
            _frame_field(path, lineno, frames, mt, value)
    if lineno == 0:
        raise TrackFileError(path, None, "the file is empty")
    if not saw_end and not frames:
        raise TrackFileError(path, None, "no ElementDataFile line and no frames: not a sequence metafile")
    seqs = _frames_to_sequences(path, frames, skip_invalid)
    if not seqs:
        raise TrackFileError(path, None, "no tracked transforms (no Seq_FrameNNNN_...Transform fields)")
    return TrackedRecording(str(path), seqs, [], header, "metafile")


def read_sequence_nrrd(path, skip_invalid: bool = False) -> TrackedRecording:
    """Read the NRRD variant (.igs.nrrd, .seq.nrrd): frame fields as `key:=value` header lines."""
    path = Path(path)
    f = _open(path)
    header: dict[str, str] = {}
    frames: dict[int, dict] = {}
    lineno = 0
    with f:
        first = f.readline()
        lineno = 1
        if not first.startswith(b"NRRD"):
            raise TrackFileError(path, 1, "not an NRRD file (does not start with NRRD000x)")
        for raw in f:
            lineno += 1
            line = raw.decode("latin-1").rstrip("\r\n")
            if not line.strip():
                break  # end of the header
            if line.startswith("#"):
                continue
            if ":=" in line:
                key, value = line.split(":=", 1)
            elif ":" in line:
                key, value = line.split(":", 1)
                header[key.strip()] = value.strip()
                continue
            else:
                raise TrackFileError(path, lineno, f"expected 'field: value' or 'key:=value', got {line.strip()[:80]!r}")
            key = key.strip()
            value = value.strip()
            mt = _FRAME_RE.match(key)
            if not mt:
                header[key] = value
                continue
            _frame_field(path, lineno, frames, mt, value)
    seqs = _frames_to_sequences(path, frames, skip_invalid)
    if not seqs:
        raise TrackFileError(path, None, "no tracked transforms (no Seq_FrameNNNN_...Transform fields)")
    return TrackedRecording(str(path), seqs, [], header, "nrrd")


def read_transform_recorder_xml(path, skip_invalid: bool = False) -> TrackedRecording:
    """Read a Perk Tutor TransformRecorder XML log (entries in any order, one sequence per DeviceName)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TrackFileError(path, None, f"cannot open ({e.strerror or e})") from None
    b = _SequenceBuilder()
    messages: list[tuple[float, str]] = []
    parser = xml.parsers.expat.ParserCreate()
    state = {"root": None}

    def timestamp(attrs, line):
        sec = attrs.get("TimeStampSec")
        nsec = attrs.get("TimeStampNSec", "0")
        if sec is None:
            raise TrackFileError(path, line, "log entry without TimeStampSec")
        try:
            return float(int(sec)) + 1e-9 * float(int(nsec))
        except ValueError:
            pass
        try:
            t = float(sec) + 1e-9 * float(nsec)
        except ValueError:
            raise TrackFileError(path, line, f"TimeStampSec/TimeStampNSec {sec!r}/{nsec!r} are not numbers") from None
        if not math.isfinite(t):
            raise TrackFileError(path, line, f"TimeStampSec/TimeStampNSec {sec!r}/{nsec!r} are not finite")
        return t

    def start(name, attrs):
        line = parser.CurrentLineNumber
        if state["root"] is None:
            state["root"] = name
            if name != "TransformRecorderLog":
                raise TrackFileError(path, line, f"root element is <{name}>, expected <TransformRecorderLog>")
            return
        if name != "log":
            return
        kind = attrs.get("type", "transform")
        t = timestamp(attrs, line)
        if kind == "transform":
            dev = attrs.get("DeviceName")
            if not dev:
                raise TrackFileError(path, line, "transform entry without DeviceName")
            if "transform" not in attrs:
                raise TrackFileError(path, line, f"transform entry for {dev} has no transform attribute")
            m = _parse_matrix(path, line, attrs["transform"])
            status = attrs.get("TransformStatus", attrs.get("status", "OK"))
            b.add(strip_transform_suffix(dev), t, m, status.upper() == "OK")
        elif kind == "message":
            messages.append((t, attrs.get("message", "")))

    parser.StartElementHandler = start
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as e:
        raise TrackFileError(path, e.lineno, f"not well-formed XML ({xml.parsers.expat.errors.messages.get(e.code, e)})") from None
    if state["root"] is None:
        raise TrackFileError(path, None, "no XML elements")
    seqs = b.build(skip_invalid)
    if not seqs:
        raise TrackFileError(path, None, "no transform entries")
    messages.sort(key=lambda x: x[0])
    return TrackedRecording(str(path), seqs, messages, {}, "xml")


def read_tracked(path, skip_invalid: bool = False) -> TrackedRecording:
    """Read any supported tracked-sequence file, chosen by its extension (or its first bytes)."""
    p = Path(path)
    name = p.name.lower()
    if name.endswith((".mha", ".mhd")):
        return read_sequence_metafile(p, skip_invalid)
    if name.endswith(".nrrd") or name.endswith(".nhdr"):
        return read_sequence_nrrd(p, skip_invalid)
    if name.endswith(".xml"):
        return read_transform_recorder_xml(p, skip_invalid)
    try:
        with open(p, "rb") as f:
            head = f.read(256)
    except OSError as e:
        raise TrackFileError(p, None, f"cannot open ({e.strerror or e})") from None
    if head.lstrip().startswith(b"<"):
        return read_transform_recorder_xml(p, skip_invalid)
    if head.startswith(b"NRRD"):
        return read_sequence_nrrd(p, skip_invalid)
    return read_sequence_metafile(p, skip_invalid)


# --------------------------------------------------------------------------------------------
# Replay at the master's times
# --------------------------------------------------------------------------------------------


def resample(rec: TrackedRecording, master: str | None = None,
             tol: float = SYNC_TOLERANCE_S) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Master times and every sequence's matrices at them (Perk Tutor's replay rule)."""
    mseq = rec.find(master) if master else rec.master
    t = mseq.time_s
    out = {}
    for name, s in rec.sequences.items():
        out[name] = s.matrices.copy() if s is mseq else sample_sequence_at(t, s.time_s, s.matrices, tol)
    return t, out


# --------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------


def _fmt_matrix(m: np.ndarray) -> str:
    return " ".join(repr(float(x)) for x in np.asarray(m, dtype=np.float64).reshape(16))


def _common_frames(sequences: dict[str, tuple]) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Frame times (the first sequence's) and each sequence's matrices and validity at them."""
    items = list(sequences.items())
    t0 = np.asarray(items[0][1][0], dtype=np.float64)
    out = {}
    for name, seq in items:
        t = np.asarray(seq[0], dtype=np.float64)
        m = np.asarray(seq[1], dtype=np.float64).reshape(-1, 4, 4)
        v = np.ones(len(t), bool) if len(seq) < 3 or seq[2] is None else np.asarray(seq[2], dtype=bool)
        if len(t) == len(t0) and np.array_equal(t, t0):
            out[name] = (m, v)
        else:
            out[name] = (sample_sequence_at(t0, t, m), sample_sequence_at(t0, t, v))
    return t0, out


def write_sequence_metafile(path, sequences: dict[str, tuple], style: str = "slicer",
                            extra_header: dict | None = None) -> Path:
    """Write a tracking-only sequence metafile.

    sequences: name -> (time_s (N,), matrices (N, 4, 4)[, valid (N,)]); names without the
    "Transform" suffix (it is added). All share the first sequence's frame times (others are
    resampled at them). style "slicer" writes DimSize = 0 0 N and no pixel bytes; "plus" writes
    DimSize = 1 1 N followed by N placeholder bytes, as PLUS does."""
    if style not in ("slicer", "plus"):
        raise ValueError(f"style must be 'slicer' or 'plus', got {style!r}")
    t, data = _common_frames(sequences)
    n = len(t)
    dims = "0 0" if style == "slicer" else "1 1"
    lines = [
        "ObjectType = Image",
        "NDims = 3",
        "AnatomicalOrientation = RAI",
        "BinaryData = True",
        "BinaryDataByteOrderMSB = False",
        "CompressedData = False",
        f"DimSize = {dims} {n}",
        "ElementSpacing = 1 1 1",
        "Offset = 0 0 0",
        "TransformMatrix = 1 0 0 0 1 0 0 0 1",
        "ElementType = MET_UCHAR",
        "Kinds = domain domain list",
    ]
    for k, v in (extra_header or {}).items():
        lines.append(f"{k} = {v}")
    for i in range(n):
        for name, (m, v) in data.items():
            full = name if name.endswith("Transform") else name + "Transform"
            lines.append(f"Seq_Frame{i:04d}_{full} = {_fmt_matrix(m[i])}")
            lines.append(f"Seq_Frame{i:04d}_{full}Status = {'OK' if v[i] else 'INVALID'}")
        lines.append(f"Seq_Frame{i:04d}_FrameNumber = {i}")
        lines.append(f"Seq_Frame{i:04d}_Timestamp = {float(t[i]):.6f}")
        lines.append(f"Seq_Frame{i:04d}_UnfilteredTimestamp = {float(t[i]):.6f}")
        if style == "plus":
            lines.append(f"Seq_Frame{i:04d}_ImageStatus = INVALID")
    lines.append("ElementDataFile = LOCAL")
    body = ("\n".join(lines) + "\n").encode("ascii")
    if style == "plus":
        body += bytes(n)
    path = Path(path)
    path.write_bytes(body)
    return path


def write_transform_recorder_xml(path, sequences: dict[str, tuple], messages: list[tuple[float, str]] = ()) -> Path:
    """Write a Perk Tutor TransformRecorder XML log (entries sorted by time)."""
    entries = []
    for name, seq in sequences.items():
        t = np.asarray(seq[0], dtype=np.float64)
        m = np.asarray(seq[1], dtype=np.float64).reshape(-1, 4, 4)
        for ti, mi in zip(t, m):
            entries.append((float(ti), 0, name, mi))
    for ti, text in messages:
        entries.append((float(ti), 1, text, None))
    entries.sort(key=lambda e: (e[0], e[1]))
    out = ["<TransformRecorderLog>"]
    for ti, kind, name, mi in entries:
        sec = int(math.floor(ti))
        nsec = int(round((ti - sec) * 1e9))
        if nsec >= 1_000_000_000:
            sec, nsec = sec + 1, nsec - 1_000_000_000
        if kind == 0:
            out.append(f'  <log TimeStampSec="{sec}" TimeStampNSec="{nsec}" type="transform" '
                       f'DeviceName="{_xml_attr(name)}" transform="{_fmt_matrix(mi)} " />')
        else:
            out.append(f'  <log TimeStampSec="{sec}" TimeStampNSec="{nsec}" type="message" message="{_xml_attr(name)}" />')
    out.append("</TransformRecorderLog>")
    path = Path(path)
    path.write_text("\n".join(out) + "\n")
    return path


def _xml_attr(s: str) -> str:
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;"))


def recording_sequences(recording) -> dict[str, tuple]:
    """A recording's poses as tracked sequences: NeedleTipToWorld (always), ProbeToWorld (when a
    probe was recorded)."""
    s = recording.samples
    out = {"NeedleTipToWorld": (s.time_s.copy(), s.needle_tip_to_world.copy(), np.ones(len(s), bool))}
    probe = s.probe_to_world
    ok = np.all(np.isfinite(probe.reshape(len(s), -1)), axis=1) if len(s) else np.zeros(0, bool)
    if ok.any():
        p = probe.copy()
        p[~ok] = np.eye(4)
        out["ProbeToWorld"] = (s.time_s.copy(), p, ok)
    return out
