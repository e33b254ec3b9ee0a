"""Fixtures shared by the core tests: the synthetic block patient and its scenario (known geometry,
see simulator/benchmarks/scoring.py)."""
import pytest

from simulator.benchmarks.scoring import synthetic_block_anatomy, synthetic_scenario


@pytest.fixture(scope="module")
def block():
    return synthetic_block_anatomy()


@pytest.fixture(scope="module")
def scenario():
    return synthetic_scenario()
