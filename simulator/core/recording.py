"""The record of one attempt: every input, the pose samples and the events.

A `Recording` holds
- `meta`: scenario id and version (a hash of its content), anatomy reference and hash, trainee,
  mode (practice | exam), wall-clock start, format version;
- `inputs`: every call made on the `Procedure` (name, time, arguments) in order. Replaying them
  through the same entry points rebuilds the attempt exactly (`simulator.core.procedure.replay`);
- `samples`: after each input, the state the score reads: time_s (N,), needle_tip_to_world (N, 4, 4),
  probe_to_world (N, 4, 4; NaN when no probe), carm_pose (N, 5: lao_deg, cranial_deg,
  isocenter RAS mm; NaN when no C-arm), tip_visible (N,) int8 (1 visible, 0 not, -1 not reported);
- `events`: what happened (`simulator.core.events.Event`).

Sample times follow the tracked-sequence rule of 3D Slicer and Perk Tutor: times are kept to the
millisecond, and a new sample within the same millisecond as the last one replaces it (so an
exported .igs.mha scores identically in Perk Tutor and here). Samples start with the first needle
placement.

File format (our own, `.nlrec.npz`): a NumPy .npz (no pickles) with the sample arrays and one
`meta_json` entry holding meta, inputs and events as JSON text. `Recording.load` checks the format
version and names the file in every error.
"""
from __future__ import annotations

from array import array
import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from simulator.core.events import Event

FORMAT_VERSION = 1
SUFFIX = ".nlrec.npz"
CARM_FIELDS = ("lao_deg", "cranial_deg", "isocenter_r_mm", "isocenter_a_mm", "isocenter_s_mm")
CARM_DIM = len(CARM_FIELDS)


class RecordingError(ValueError):
    """A recording that cannot be read or used; the message names the file."""


def ms_time(t: float) -> float:
    """A time rounded to the millisecond, as Slicer indexes tracked sequences."""
    return float(round(float(t), 3))


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    return v


_NO_ARGS: dict = {}  # shared by every input recorded without arguments (ticks): never mutated


@dataclass(slots=True)
class InputRecord:
    time_s: float
    name: str
    args: dict

    def to_json(self) -> dict:
        return {"time_s": self.time_s, "name": self.name, "args": dict(self.args)}

    @classmethod
    def from_json(cls, d: dict) -> "InputRecord":
        args = d.get("args") or _NO_ARGS
        return cls(time_s=float(d["time_s"]), name=str(d["name"]), args=dict(args) if args else _NO_ARGS)


class InputLog:
    """The procedure's input log, kept lean: a time (8 bytes) and a name index (2 bytes) per
    input, the arguments only for inputs that have some (a 60 Hz `tick` has none). Reads as a
    list of InputRecord (index, slice, iterate, compare with a list)."""

    __slots__ = ("_times", "_names", "_name_ids", "_ids", "_args")

    def __init__(self, records=()):
        self._times = array("d")
        self._ids = array("H")
        self._names: list[str] = []
        self._name_ids: dict[str, int] = {}
        self._args: dict[int, dict] = {}
        for r in records:
            self.append(r)

    def append(self, record: InputRecord) -> None:
        k = self._name_ids.get(record.name)
        if k is None:
            k = self._name_ids[record.name] = len(self._names)
            self._names.append(record.name)
        if record.args:
            self._args[len(self._times)] = record.args
        self._times.append(float(record.time_s))
        self._ids.append(k)

    def extend(self, records) -> None:
        for r in records:
            self.append(r)

    def __iadd__(self, records):
        self.extend(records)
        return self

    def __len__(self) -> int:
        return len(self._times)

    def _record(self, i: int) -> InputRecord:
        return InputRecord(self._times[i], self._names[self._ids[i]], self._args.get(i, _NO_ARGS))

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._record(j) for j in range(*i.indices(len(self._times)))]
        n = len(self._times)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("input index out of range")
        return self._record(i)

    def __iter__(self):
        for i in range(len(self._times)):
            yield self._record(i)

    def __eq__(self, other) -> bool:
        if isinstance(other, (InputLog, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __repr__(self) -> str:
        return f"InputLog({len(self)} inputs)"

    def __deepcopy__(self, memo) -> "InputLog":
        out = InputLog()
        out._times, out._ids = array("d", self._times), array("H", self._ids)
        out._names, out._name_ids = list(self._names), dict(self._name_ids)
        out._args = dict(self._args)  # the argument dicts are never modified: shared
        return out


class _Column:
    """A growable float64 array of rows (amortised O(1) append). Memory is taken with np.empty,
    so pages that were never written are not resident."""

    def __init__(self, row_shape: tuple, capacity: int):
        self.row_shape = row_shape
        self.data = np.empty((capacity,) + row_shape)
        self.n = 0

    def reserve(self, n: int) -> None:
        if n > len(self.data):
            grown = np.empty((max(n, len(self.data) + len(self.data) // 2 + 16),) + self.row_shape)
            grown[: self.n] = self.data[: self.n]
            self.data = grown


class _ChangeColumn:
    """A per-sample value that seldom changes (the probe pose in a fluoroscopy attempt, the C-arm
    pose between moves): each distinct run is stored once, each sample holds an int32 index into
    the runs (-1: no value, read back as NaN)."""

    def __init__(self, row_shape: tuple, capacity: int):
        self.values = _Column(row_shape, 16)
        self.index = np.empty(capacity, np.int32)

    def grow(self, capacity: int, n: int) -> None:
        grown = np.empty(capacity, np.int32)
        grown[:n] = self.index[:n]
        self.index = grown

    def set(self, i: int, value) -> None:
        if value is None:
            self.index[i] = -1
            return
        v = np.asarray(value, dtype=np.float64).reshape(self.values.row_shape)
        vals = self.values
        if vals.n and np.array_equal(vals.data[vals.n - 1], v, equal_nan=True):
            self.index[i] = vals.n - 1
            return
        if np.isnan(v).all():
            self.index[i] = -1
            return
        vals.reserve(vals.n + 1)
        vals.data[vals.n] = v
        self.index[i] = vals.n
        vals.n += 1

    def rows(self, start: int, stop: int) -> np.ndarray:
        idx = self.index[start:stop]
        out = np.full((len(idx),) + self.values.row_shape, np.nan)
        ok = idx >= 0
        out[ok] = self.values.data[idx[ok]]
        return out


class SampleBuffer:
    """Growable arrays of samples (amortised O(1) append, about 150 bytes a sample): the needle
    pose, time and tip visibility per sample; the probe and C-arm poses stored once per change."""

    def __init__(self, capacity: int = 1024):
        cap = max(16, capacity)
        self._n = 0
        self._time = np.empty(cap)
        self._needle = np.empty((cap, 4, 4))
        self._vis = np.empty(cap, np.int8)
        self._probe = _ChangeColumn((4, 4), cap)
        self._carm = _ChangeColumn((CARM_DIM,), cap)

    def _grow(self) -> None:
        n, cap = self._n, len(self._time) + len(self._time) // 2 + 16
        for name in ("_time", "_needle", "_vis"):
            old = getattr(self, name)
            new = np.empty((cap,) + old.shape[1:], old.dtype)
            new[:n] = old[:n]
            setattr(self, name, new)
        self._probe.grow(cap, n)
        self._carm.grow(cap, n)

    def __len__(self) -> int:
        return self._n

    def compact(self) -> None:
        """Drop the spare capacity (a copy kept aside, e.g. a replay checkpoint)."""
        n = max(self._n, 1)
        self._time, self._needle, self._vis = self._time[:n].copy(), self._needle[:n].copy(), self._vis[:n].copy()
        for col in (self._probe, self._carm):
            col.index = col.index[:n].copy()
            col.values.data = col.values.data[: max(col.values.n, 1)].copy()

    def append(self, time_s: float, needle_tip_to_world, probe_to_world=None, carm_pose=None, tip_visible=None) -> int:
        """Add a sample (or replace the last one if it falls in the same millisecond); its index."""
        t = ms_time(time_s)
        if self._n and t == self._time[self._n - 1]:
            i = self._n - 1
        else:
            if self._n and t < self._time[self._n - 1]:
                raise ValueError(f"sample time {t} s is before the previous sample {self._time[self._n - 1]} s")
            if self._n == len(self._time):
                self._grow()
            i = self._n
            self._n += 1
        self._time[i] = t
        self._needle[i] = needle_tip_to_world
        self._probe.set(i, probe_to_world)
        self._carm.set(i, carm_pose)
        self._vis[i] = -1 if tip_visible is None else int(bool(tip_visible))
        return i

    @property
    def time_s(self) -> np.ndarray:
        return self._time[: self._n]

    @property
    def needle_tip_to_world(self) -> np.ndarray:
        return self._needle[: self._n]

    @property
    def probe_to_world(self) -> np.ndarray:
        """(n, 4, 4), NaN where no probe was recorded (a new array)."""
        return self._probe.rows(0, self._n)

    @property
    def carm_pose(self) -> np.ndarray:
        """(n, CARM_DIM), NaN where no C-arm pose was recorded (a new array)."""
        return self._carm.rows(0, self._n)

    @property
    def tip_visible(self) -> np.ndarray:
        return self._vis[: self._n]

    def arrays(self, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
        """Copies of the samples start..stop (all by default)."""
        stop = self._n if stop is None else min(int(stop), self._n)
        start = max(0, min(int(start), stop))
        return {
            "time_s": self._time[start:stop].copy(),
            "needle_tip_to_world": self._needle[start:stop].copy(),
            "probe_to_world": self._probe.rows(start, stop),
            "carm_pose": self._carm.rows(start, stop),
            "tip_visible": self._vis[start:stop].copy(),
        }

    @classmethod
    def from_arrays(cls, arrays: dict) -> "SampleBuffer":
        t = np.asarray(arrays["time_s"], dtype=np.float64)
        n = len(t)
        buf = cls(capacity=max(16, n))
        buf._n = n
        buf._time[:n] = t
        buf._needle[:n] = np.asarray(arrays["needle_tip_to_world"], dtype=np.float64).reshape(n, 4, 4)
        probe = arrays.get("probe_to_world")
        probe = None if probe is None else np.asarray(probe, dtype=np.float64).reshape(n, 4, 4)
        carm = arrays.get("carm_pose")
        carm = None if carm is None else np.asarray(carm, dtype=np.float64).reshape(n, CARM_DIM)
        vis = arrays.get("tip_visible")
        if vis is not None:
            vis = np.asarray(vis, dtype=np.float64).reshape(n)
            if not np.isin(vis, (-1, 0, 1)).all():
                raise ValueError("tip_visible holds values other than -1, 0, 1")
        if not (np.isfinite(t).all() and np.isfinite(buf._needle[:n]).all()):
            raise ValueError("time_s or needle_tip_to_world holds NaN or infinite values")
        if n > 1 and (np.diff(t) < 0).any():
            raise ValueError("time_s goes backwards")
        buf._vis[:n] = -1 if vis is None else vis.astype(np.int8)
        for i in range(n):
            buf._probe.set(i, None if probe is None else probe[i])
            buf._carm.set(i, None if carm is None else carm[i])
        return buf


def scenario_version(scenario) -> str:
    """A short content hash of a scenario (its JSON form)."""
    text = scenario.model_dump_json() if hasattr(scenario, "model_dump_json") else json.dumps(scenario, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_ANATOMY_HASHES: dict[int, str] = {}


def anatomy_hash(anatomy) -> str:
    """The anatomy's content hash: its build hash when it has one, else a hash of its volumes."""
    src = getattr(anatomy, "source", {}) or {}
    for key in ("hash", "input_hash", "sha256", "cache_key"):
        if isinstance(src.get(key), str) and src[key]:
            return str(src[key])
    key = id(anatomy)
    if key not in _ANATOMY_HASHES:
        h = hashlib.sha256()
        h.update(str(anatomy.shape).encode())
        h.update(np.asarray(anatomy.spacing_mm, np.float64).tobytes())
        h.update(np.asarray(anatomy.origin_mm, np.float64).tobytes())
        h.update(np.ascontiguousarray(anatomy.tissue).tobytes())
        h.update(np.ascontiguousarray(anatomy.labels).tobytes())
        _ANATOMY_HASHES[key] = h.hexdigest()[:16]
    return _ANATOMY_HASHES[key]


@dataclass
class Recording:
    scenario_id: str = ""
    scenario_version: str = ""
    anatomy_ref: str = ""
    anatomy_hash: str = ""
    trainee: str = ""
    mode: str = "practice"
    started_at: str = ""  # ISO 8601 wall clock (information only; never used by the score)
    meta: dict = field(default_factory=dict)
    inputs: InputLog = field(default_factory=InputLog)
    events: list[Event] = field(default_factory=list)
    samples: SampleBuffer = field(default_factory=SampleBuffer)
    format_version: int = FORMAT_VERSION

    @classmethod
    def new(cls, scenario, anatomy, trainee: str = "", mode: str = "practice", **meta) -> "Recording":
        return cls(
            scenario_id=getattr(scenario, "id", ""),
            scenario_version=scenario_version(scenario),
            anatomy_ref=getattr(scenario, "anatomy", ""),
            anatomy_hash=anatomy_hash(anatomy),
            trainee=trainee,
            mode=mode,
            started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            meta=_jsonable(meta),
        )

    # -- building ------------------------------------------------------------------------
    def add_input(self, time_s: float, name: str, args: dict) -> None:
        self.inputs.append(InputRecord(float(time_s), name, _jsonable(args) if args else _NO_ARGS))

    def add_event(self, event: Event) -> None:
        self.events.append(event)

    def add_sample(self, time_s, needle_tip_to_world, probe_to_world=None, carm_pose=None, tip_visible=None) -> int:
        return self.samples.append(time_s, needle_tip_to_world, probe_to_world, carm_pose, tip_visible)

    @property
    def n_samples(self) -> int:
        return len(self.samples)

    @property
    def duration_s(self) -> float:
        t = self.samples.time_s
        return float(t[-1] - t[0]) if len(t) else 0.0

    def events_of(self, *kinds) -> list[Event]:
        ks = {str(getattr(k, "value", k)) for k in kinds}
        return [e for e in self.events if e.kind.value in ks]

    # -- storage -------------------------------------------------------------------------
    def meta_dict(self) -> dict:
        return {
            "format_version": self.format_version,
            "scenario_id": self.scenario_id,
            "scenario_version": self.scenario_version,
            "anatomy_ref": self.anatomy_ref,
            "anatomy_hash": self.anatomy_hash,
            "trainee": self.trainee,
            "mode": self.mode,
            "started_at": self.started_at,
            "meta": self.meta,
        }

    def to_json_dict(self) -> dict:
        """Everything as JSON-compatible data (sample arrays as nested lists)."""
        d = self.meta_dict()
        d["inputs"] = [i.to_json() for i in self.inputs]
        d["events"] = [e.to_json() for e in self.events]
        d["samples"] = {k: v.tolist() for k, v in self.samples.arrays().items()}
        return d

    @classmethod
    def from_json_dict(cls, d: dict, source: str = "recording") -> "Recording":
        try:
            version = int(d.get("format_version", -1))
            if version != FORMAT_VERSION:
                raise RecordingError(f"{source}: recording format_version {version}, this program reads {FORMAT_VERSION}")
            rec = cls(
                scenario_id=str(d.get("scenario_id", "")),
                scenario_version=str(d.get("scenario_version", "")),
                anatomy_ref=str(d.get("anatomy_ref", "")),
                anatomy_hash=str(d.get("anatomy_hash", "")),
                trainee=str(d.get("trainee", "")),
                mode=str(d.get("mode", "practice")),
                started_at=str(d.get("started_at", "")),
                meta=dict(d.get("meta", {})),
                inputs=InputLog(InputRecord.from_json(x) for x in d.get("inputs", [])),
                events=[Event.from_json(x) for x in d.get("events", [])],
            )
            if "samples" in d:
                rec.samples = SampleBuffer.from_arrays(d["samples"])
        except RecordingError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as e:
            raise RecordingError(f"{source}: malformed recording ({type(e).__name__}: {e})") from None
        return rec

    def save(self, path) -> Path:
        """Write `.nlrec.npz` (atomic: a temporary file renamed into place)."""
        path = Path(path)
        meta = self.meta_dict()
        meta["inputs"] = [i.to_json() for i in self.inputs]
        meta["events"] = [e.to_json() for e in self.events]
        arrays = self.samples.arrays()
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez_compressed(f, meta_json=np.array(json.dumps(meta)), **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path) -> "Recording":
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                if "meta_json" not in z.files:
                    raise RecordingError(f"{path}: not a Neurolysis Trainer recording (no meta_json entry)")
                meta = json.loads(str(z["meta_json"]))
                arrays = {k: z[k] for k in z.files if k != "meta_json"}
        except RecordingError:
            raise
        except FileNotFoundError:
            raise RecordingError(f"{path}: no such file") from None
        except Exception as e:  # noqa: BLE001 - a damaged archive fails in many ways (zip, zlib, npy header)
            detail = " ".join(str(e).split())[:200]
            raise RecordingError(f"{path}: cannot read the recording ({type(e).__name__}: {detail})") from None
        if "time_s" not in arrays or "needle_tip_to_world" not in arrays:
            raise RecordingError(f"{path}: recording has no samples (time_s, needle_tip_to_world)")
        meta["samples"] = arrays
        return cls.from_json_dict(meta, source=str(path))

    def same_as(self, other: "Recording") -> bool:
        """Identical inputs, samples (bit for bit) and events."""
        a, b = self.samples.arrays(), other.samples.arrays()
        if any(not np.array_equal(a[k], b[k], equal_nan=True) for k in a):
            return False
        return [e.to_json() for e in self.events] == [e.to_json() for e in other.events] and [
            i.to_json() for i in self.inputs
        ] == [i.to_json() for i in other.inputs]
