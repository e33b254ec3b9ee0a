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


@dataclass
class InputRecord:
    time_s: float
    name: str
    args: dict

    def to_json(self) -> dict:
        return {"time_s": self.time_s, "name": self.name, "args": self.args}

    @classmethod
    def from_json(cls, d: dict) -> "InputRecord":
        return cls(time_s=float(d["time_s"]), name=str(d["name"]), args=dict(d.get("args", {})))


class SampleBuffer:
    """Growable arrays of samples (amortised O(1) append)."""

    def __init__(self, capacity: int = 1024):
        self._n = 0
        self._alloc(max(16, capacity))

    def _alloc(self, cap: int) -> None:
        old = getattr(self, "_time", None)
        time = np.zeros(cap)
        needle = np.zeros((cap, 4, 4))
        probe = np.full((cap, 4, 4), np.nan)
        carm = np.full((cap, CARM_DIM), np.nan)
        vis = np.full(cap, -1, np.int8)
        if old is not None:
            n = self._n
            time[:n] = self._time[:n]
            needle[:n] = self._needle[:n]
            probe[:n] = self._probe[:n]
            carm[:n] = self._carm[:n]
            vis[:n] = self._vis[:n]
        self._time, self._needle, self._probe, self._carm, self._vis = time, needle, probe, carm, vis

    def __len__(self) -> int:
        return self._n

    def append(self, time_s: float, needle_tip_to_world, probe_to_world=None, carm_pose=None, tip_visible=None) -> int:
        """Add a sample (or replace the last one if it falls in the same millisecond); its index."""
        t = ms_time(time_s)
        if self._n and t == self._time[self._n - 1]:
            i = self._n - 1
        else:
            if self._n and t < self._time[self._n - 1]:
                raise ValueError(f"sample time {t} s is before the previous sample {self._time[self._n - 1]} s")
            if self._n == len(self._time):
                self._alloc(2 * len(self._time))
            i = self._n
            self._n += 1
        self._time[i] = t
        self._needle[i] = needle_tip_to_world
        self._probe[i] = np.nan if probe_to_world is None else probe_to_world
        self._carm[i] = np.nan if carm_pose is None else carm_pose
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
        return self._probe[: self._n]

    @property
    def carm_pose(self) -> np.ndarray:
        return self._carm[: self._n]

    @property
    def tip_visible(self) -> np.ndarray:
        return self._vis[: self._n]

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "time_s": self.time_s.copy(),
            "needle_tip_to_world": self.needle_tip_to_world.copy(),
            "probe_to_world": self.probe_to_world.copy(),
            "carm_pose": self.carm_pose.copy(),
            "tip_visible": self.tip_visible.copy(),
        }

    @classmethod
    def from_arrays(cls, arrays: dict) -> "SampleBuffer":
        t = np.asarray(arrays["time_s"], dtype=np.float64)
        n = len(t)
        buf = cls(capacity=max(16, n))
        buf._n = n
        buf._time[:n] = t
        buf._needle[:n] = np.asarray(arrays["needle_tip_to_world"], dtype=np.float64).reshape(n, 4, 4)
        if "probe_to_world" in arrays:
            buf._probe[:n] = np.asarray(arrays["probe_to_world"], dtype=np.float64).reshape(n, 4, 4)
        if "carm_pose" in arrays:
            buf._carm[:n] = np.asarray(arrays["carm_pose"], dtype=np.float64).reshape(n, CARM_DIM)
        if "tip_visible" in arrays:
            buf._vis[:n] = np.asarray(arrays["tip_visible"], dtype=np.int8).reshape(n)
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
    inputs: list[InputRecord] = field(default_factory=list)
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
        self.inputs.append(InputRecord(float(time_s), name, _jsonable(args)))

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
                inputs=[InputRecord.from_json(x) for x in d.get("inputs", [])],
                events=[Event.from_json(x) for x in d.get("events", [])],
            )
            if "samples" in d:
                rec.samples = SampleBuffer.from_arrays(d["samples"])
        except RecordingError:
            raise
        except (KeyError, TypeError, ValueError) as e:
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
        except (OSError, ValueError, zipfile.BadZipFile, json.JSONDecodeError, EOFError) as e:
            raise RecordingError(f"{path}: cannot read the recording ({e})") from None
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
