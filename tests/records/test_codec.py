"""The record codec: exact round trips, and damaged or crafted chunks refused with CodecError."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.records.codec import (
    CARM_DIM,
    CodecError,
    decode_inputs,
    decode_samples,
    encode_samples,
)


def _samples(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"time_s": np.cumsum(rng.random(n)), "needle_tip_to_world": rng.normal(size=(n, 4, 4)),
            "probe_to_world": rng.normal(size=(n, 4, 4)), "carm_pose": rng.normal(size=(n, CARM_DIM)),
            "tip_visible": rng.integers(0, 2, n).astype(np.int8)}


def test_samples_round_trip_exactly():
    s = _samples(50)
    back = decode_samples(encode_samples(s), 50)
    for k, v in s.items():
        np.testing.assert_array_equal(back[k], v)


def test_a_chunk_that_inflates_past_its_samples_is_refused_at_once():
    bomb = zlib.compress(b"\0" * (64 << 20), 9)  # 64 MB of zeros in ~64 kB
    with pytest.raises(CodecError, match="inflates beyond"):
        decode_samples(bomb, 3)
    with pytest.raises(CodecError, match="inflates beyond"):
        decode_inputs(bomb, 1)


def test_truncated_chunks_are_refused():
    data = encode_samples(_samples(20))
    with pytest.raises(CodecError):
        decode_samples(data[: len(data) // 2], 20)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_sample_chunks_decode_or_give_codec_error(data):
    good = encode_samples(_samples(8, seed=1))
    buf = bytearray(good)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(buf)))
    try:
        out = decode_samples(bytes(buf[:cut]), 8)
    except CodecError:
        return
    assert out["time_s"].shape == (8,) and out["needle_tip_to_world"].shape == (8, 4, 4)
