"""A recording process for the kill-and-recover test: records an attempt on the test block at 60
samples per second in real time through the live recorder, printing each sample's index, until
it is killed. `python -m tests.records.live_child DB_PATH`."""
from __future__ import annotations

import sys
import time

import numpy as np

RATE_HZ = 60
ENTRY = (-56.0, -70.0, 0.0)
DIRECTION = (0.35, 0.93, 0.0)


def start(proc) -> None:
    d = np.asarray(DIRECTION) / np.linalg.norm(DIRECTION)
    proc.set_entry(ENTRY, d, time_s=0.0)


def step(proc, i: int) -> None:
    """Frame i (>= 1) of the scripted attempt, at time i / 60 s."""
    t = i / RATE_HZ
    if i % 97 == 0:
        proc.record_fluoro_shot(dap_gycm2=0.05, duration_s=0.2, time_s=t)
    elif i % 4 == 0 and i < 1200:
        proc.advance(0.25, time_s=t)
    else:
        proc.tick(time_s=t)


def main(db: str) -> None:
    from simulator.benchmarks.scoring import synthetic_block_anatomy, synthetic_scenario
    from simulator.core.procedure import Procedure
    from simulator.records.live import LiveRecorder
    from simulator.records.store import SQLiteRecordStore

    scenario, anatomy = synthetic_scenario(), synthetic_block_anatomy()
    store = SQLiteRecordStore(db)
    proc = Procedure(scenario, anatomy, clock=lambda: 0.0, trainee="crash_test")
    recorder = LiveRecorder(store, proc)
    recorder.start()
    start(proc)
    print(f"attempt {recorder.attempt_id}", flush=True)
    t0 = time.monotonic()
    i = 1
    while True:
        delay = t0 + i / RATE_HZ - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        step(proc, i)
        print(i, flush=True)
        i += 1


if __name__ == "__main__":
    main(sys.argv[1])
