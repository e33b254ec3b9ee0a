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


@pytest.fixture(scope="session")
def bundled():
    """The bundled patient from its built cache (`make test` builds it; skipped when it is not built)."""
    from simulator.anatomy import load_anatomy
    from simulator.anatomy.bundled import cache_is_valid

    if not cache_is_valid():
        pytest.skip("the bundled patient is not built (python main.py setup-data)")
    return load_anatomy("bundled")
