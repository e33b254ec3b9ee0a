"""Attempts the tests share: a celiac-like alcohol neurolysis on the synthetic block."""
from __future__ import annotations

import itertools

import numpy as np

from simulator.benchmarks.scoring import ENTRY, TARGET, synthetic_block_anatomy
from simulator.core.procedure import Procedure


def neurolysis_on_block(scenario):
    """(anatomy, ended procedure): local anaesthetic, the needle 1 mm short of the target,
    aspiration, 15 ml of 100 % alcohol, end."""
    block = synthetic_block_anatomy()
    clk = itertools.count(1.0)
    proc = Procedure(scenario, block, clock=lambda: float(next(clk)))
    d = np.subtract(TARGET, ENTRY)
    proc.set_entry(ENTRY, d / np.linalg.norm(d))
    proc.local_anaesthetic()
    proc.advance(float(np.linalg.norm(d)) - 1.0)
    proc.aspirate()
    proc.inject("neurolytic", "alcohol", 100.0, 15.0)
    proc.end()
    return block, proc
