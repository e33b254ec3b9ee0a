"""Scenario YAML: every library file, mutated (lines dropped, doubled, cut, re-indented, values
retyped; bytes flipped), gives our ScenarioError naming the file (and a line), never a traceback -
read as the trainer reads it and opened as the editor opens it."""
from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from simulator.core.scenario import ScenarioError, load_scenario
from simulator.core.scenario_doc import ScenarioDocument

from tests.mutations import fuzz_settings, mutated_bytes, mutated_text

LIBRARY = sorted((Path(__file__).resolve().parents[2] / "scenarios").glob("*.yaml"))


def test_the_library_is_there():
    assert len(LIBRARY) >= 4
    for p in LIBRARY:
        load_scenario(p)


@fuzz_settings(20)
@given(data=st.data(), source=st.sampled_from(LIBRARY))
def test_mutated_scenario_files_give_our_error(data, source):
    raw = source.read_bytes()
    if data.draw(st.integers(0, 4)):
        bad = data.draw(mutated_text(raw.decode("utf-8"))).encode("utf-8", "surrogatepass")
    else:
        bad = data.draw(mutated_bytes(raw, max_ops=2))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / source.name
        p.write_bytes(bad)
        try:
            load_scenario(p)
        except ScenarioError as e:  # every problem: the file, its line, then the field (when one is at fault)
            assert e.errors and all(line.startswith(str(p)) for line in str(e).splitlines()), str(e)
            n_lines = bad.count(b"\n") + 1
            assert all(err.line is not None and 1 <= err.line <= n_lines + 1 for err in e.errors), str(e)
        try:
            doc = ScenarioDocument.open(p)
        except ScenarioError as e:  # not text at all: the editor says so
            assert str(e).startswith(str(p))
            return
        for err in doc.errors():
            assert err.format(p).startswith(str(p))
