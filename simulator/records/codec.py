"""Compact, exact encodings of an attempt's samples and inputs for the record store.

Samples (codec "xs1"): a chunk of N samples is 38 float64 columns (time_s; needle_tip_to_world,
16 values row-major; probe_to_world, 16; carm_pose, 5) and one int8 column (tip_visible). Each
float column is XOR-ed with its previous value (bit patterns as uint64: a pose at rest becomes
zeros), the bytes are shuffled (all first bytes, then all second bytes, ...) and the lot is zlib
compressed. Decoding reverses it bit for bit: NaN payloads, signed zeros and every last digit
come back as they went in.

Inputs (codec "jl1"): the procedure's input log as JSON lines `[time_s, name, args]`, zlib
compressed. Python's JSON writes floats with `repr`, so they read back exactly.
"""
from __future__ import annotations

import json
import zlib

import numpy as np

from simulator.core.recording import CARM_DIM, InputRecord

SAMPLE_CODEC = "xs1"
INPUT_CODEC = "jl1"
N_FLOAT_COLUMNS = 1 + 16 + 16 + CARM_DIM
SAMPLE_ZLIB_LEVEL = 1  # fast: the recorder re-encodes the newest row at every flush
INPUT_ZLIB_LEVEL = 6
SAMPLE_KEYS = ("time_s", "needle_tip_to_world", "probe_to_world", "carm_pose", "tip_visible")


class CodecError(ValueError):
    """Stored bytes that do not decode (a damaged record)."""


def empty_samples() -> dict[str, np.ndarray]:
    return {
        "time_s": np.zeros(0),
        "needle_tip_to_world": np.zeros((0, 4, 4)),
        "probe_to_world": np.zeros((0, 4, 4)),
        "carm_pose": np.zeros((0, CARM_DIM)),
        "tip_visible": np.zeros(0, np.int8),
    }


def encode_samples(samples: dict) -> bytes:
    """Encode sample arrays (the keys of `SampleBuffer.arrays()`, any length >= 0)."""
    t = np.asarray(samples["time_s"], dtype=np.float64)
    n = len(t)
    cols = np.empty((N_FLOAT_COLUMNS, n), dtype=np.float64)
    cols[0] = t
    cols[1:17] = np.asarray(samples["needle_tip_to_world"], dtype=np.float64).reshape(n, 16).T
    cols[17:33] = np.asarray(samples["probe_to_world"], dtype=np.float64).reshape(n, 16).T
    cols[33:] = np.asarray(samples["carm_pose"], dtype=np.float64).reshape(n, CARM_DIM).T
    bits = cols.view(np.uint64)
    x = bits.copy()
    if n > 1:
        x[:, 1:] ^= bits[:, :-1]
    shuffled = np.ascontiguousarray(x.reshape(-1).view(np.uint8).reshape(-1, 8).T)
    vis = np.asarray(samples["tip_visible"], dtype=np.int8).reshape(n)
    return zlib.compress(shuffled.tobytes() + vis.tobytes(), SAMPLE_ZLIB_LEVEL)


#: An input's JSON line is far shorter than this: a chunk inflating beyond it per input is refused.
MAX_INPUT_BYTES = 64 * 1024


def _inflate(data: bytes, limit: int, what: str) -> bytes:
    """zlib-decompressed `data`, refused (CodecError) past `limit` bytes: a damaged or crafted chunk
    cannot inflate into gigabytes ("zip bomb")."""
    d = zlib.decompressobj()
    try:
        raw = d.decompress(bytes(data), limit + 1)
    except zlib.error as e:
        raise CodecError(f"{what} does not decompress ({e})") from None
    if len(raw) > limit or d.unconsumed_tail:
        raise CodecError(f"{what} inflates beyond the {limit} bytes it can hold")
    if not d.eof:
        raise CodecError(f"{what} does not decompress (truncated data)")
    return raw


def decode_samples(data: bytes, n: int) -> dict[str, np.ndarray]:
    """The arrays of `n` samples encoded by `encode_samples`."""
    nf = N_FLOAT_COLUMNS * n * 8
    raw = _inflate(data, nf + n, "sample chunk")
    if len(raw) != nf + n:
        raise CodecError(f"sample chunk holds {len(raw)} bytes, expected {nf + n} for {n} samples")
    x = np.frombuffer(raw[:nf], dtype=np.uint8).reshape(8, -1).T.copy().view(np.uint64).reshape(N_FLOAT_COLUMNS, n)
    bits = np.bitwise_xor.accumulate(x, axis=1) if n > 1 else x
    cols = np.ascontiguousarray(bits).view(np.float64)
    return {
        "time_s": cols[0].copy(),
        "needle_tip_to_world": np.ascontiguousarray(cols[1:17].T).reshape(n, 4, 4),
        "probe_to_world": np.ascontiguousarray(cols[17:33].T).reshape(n, 4, 4),
        "carm_pose": np.ascontiguousarray(cols[33:].T).reshape(n, CARM_DIM),
        "tip_visible": np.frombuffer(raw[nf:], dtype=np.int8).copy(),
    }


def concat_samples(parts: list[dict]) -> dict[str, np.ndarray]:
    if not parts:
        return empty_samples()
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in SAMPLE_KEYS}


def slice_samples(samples: dict, start: int, stop: int) -> dict[str, np.ndarray]:
    return {k: np.asarray(samples[k])[start:stop] for k in SAMPLE_KEYS}


def encode_inputs(inputs) -> bytes:
    lines = [json.dumps([i.time_s, i.name, i.args], separators=(",", ":")) for i in inputs]
    return zlib.compress("\n".join(lines).encode("utf-8"), INPUT_ZLIB_LEVEL)


def decode_inputs(data: bytes, n: int) -> list[InputRecord]:
    try:
        text = _inflate(data, MAX_INPUT_BYTES * max(int(n), 1), "input chunk").decode("utf-8")
        rows = json.loads("[" + text.replace("\n", ",") + "]") if n else []
    except (zlib.error, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CodecError(f"input chunk does not decode ({e})") from None
    if len(rows) != n:
        raise CodecError(f"input chunk holds {len(rows)} inputs, expected {n}")
    try:
        return [InputRecord(float(t), name, args) for t, name, args in rows
                if isinstance(name, str) and isinstance(args, dict) or _bad_input(t, name, args)]
    except (TypeError, ValueError) as e:
        raise CodecError(f"input chunk has a malformed entry ({e})") from None


def _bad_input(t, name, args) -> bool:
    raise ValueError(f"entry {[t, name, args]!r:.80} is not [time_s, name, {{args}}]")
