"""Fixtures of the tracking tests: the test block patient, a recorded needle pass on it (an .igs.mha
file as PLUS writes it) and helpers that wait on loopback with a bound on the time."""
from __future__ import annotations

import time

import numpy as np
import pytest

from simulator.benchmarks.scoring import ENTRY, TARGET, synthetic_block_anatomy, synthetic_scenario
from simulator.core.trackfiles import write_sequence_metafile
from simulator.tracking.hand_motion import needle_pass


@pytest.fixture(scope="session")
def block():
    return synthetic_block_anatomy()


@pytest.fixture(scope="session")
def scenario():
    return synthetic_scenario()


@pytest.fixture(scope="session")
def pass_file(tmp_path_factory):
    """3 s of a needle pass at 60 Hz from outside the skin to the target, needle and probe, with the
    file's times starting at 12.5 s (a PLUS system clock) and float64 poses (not float32 numbers)."""
    seqs = needle_pass(np.array(ENTRY) + [0, -5, 0], TARGET, rate_hz=60.0, duration_s=3.0, start_s=12.5, seed=3)
    path = tmp_path_factory.mktemp("tracked") / "pass.igs.mha"
    return write_sequence_metafile(path, seqs, style="plus")


def wait_for(cond, timeout_s: float = 10.0, step_s: float = 0.002, what: str = "the condition"):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(step_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def pump_until(session, cond, timeout_s: float = 10.0, what: str = "the poses"):
    def step():
        session.pump()
        return cond()

    wait_for(step, timeout_s, what=what)
