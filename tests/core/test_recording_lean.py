"""A long attempt's recording stays lean: the input log and the sample buffer grow by a few
bytes per input and per sample, and read back exactly what was recorded."""
from __future__ import annotations

import copy
import tracemalloc

import numpy as np

from simulator.core.recording import CARM_DIM, InputLog, InputRecord, SampleBuffer


def test_input_log_reads_as_a_list_of_records():
    recs = [InputRecord(0.0, "set_entry", {"point_mm": [1.0, 2.0, 3.0]}), InputRecord(0.016, "tick", {}),
            InputRecord(0.5, "advance", {"mm": 1.0}), InputRecord(0.516, "tick", {})]
    log = InputLog(recs)
    assert len(log) == 4 and log == recs and list(log) == recs
    assert log[2].args == {"mm": 1.0} and log[-1].name == "tick" and log[1].args == {}
    assert log[1:3] == recs[1:3]
    clone = copy.deepcopy(log)
    clone.append(InputRecord(1.0, "end", {}))
    assert len(log) == 4 and len(clone) == 5 and clone[:4] == recs
    try:
        log[4]
    except IndexError:
        pass
    else:
        raise AssertionError("index past the end must raise IndexError")


def _bytes_per_item(make, n: int) -> float:
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    obj = make(n)
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert obj is not None
    return used / n


def test_ticks_cost_a_few_bytes_each():
    def ticks(n):
        log = InputLog()
        for i in range(n):
            log.append(InputRecord(i / 60.0, "tick", {}))
        return log

    assert _bytes_per_item(ticks, 20_000) < 16  # a time and a name index (10 bytes) + growth slack


def test_samples_without_probe_cost_under_200_bytes_and_read_back_exactly():
    rng = np.random.default_rng(3)
    n = 5000
    needle = rng.normal(size=(n, 4, 4))
    carm = np.tile(np.arange(CARM_DIM, dtype=float), (n, 1))
    carm[2000:] += 1.0  # the C-arm moved once
    probe = np.full((n, 4, 4), np.nan)
    probe[4000:] = np.eye(4)  # a probe from sample 4000 on

    def fill(k):
        buf = SampleBuffer()
        for i in range(k):
            buf.append(i / 60.0, needle[i], None if i < 4000 else probe[i], carm[i], i % 2 == 0)
        return buf

    assert _bytes_per_item(lambda k: fill(k), n) < 200
    buf = fill(n)
    a = buf.arrays()
    assert np.array_equal(a["needle_tip_to_world"], needle)
    assert np.array_equal(a["carm_pose"], carm)
    assert np.array_equal(a["probe_to_world"], probe, equal_nan=True)
    assert np.array_equal(a["tip_visible"], (np.arange(n) % 2 == 0).astype(np.int8))
    part = buf.arrays(1990, 2010)
    assert np.array_equal(part["carm_pose"], carm[1990:2010]) and len(part["time_s"]) == 20
    again = SampleBuffer.from_arrays(a).arrays()
    for k in a:
        assert np.array_equal(again[k], a[k], equal_nan=True)
    buf.compact()
    assert len(buf) == n and np.array_equal(buf.needle_tip_to_world, needle)
    buf.append(n / 60.0, np.eye(4))
    assert len(buf) == n + 1 and np.isnan(buf.probe_to_world[-1]).all()
