"""Hypothesis strategies that damage a real file the way disks, copies and hand edits do: bytes
flipped, runs zeroed or dropped, garbage inserted, the file cut short (binary files); lines dropped,
doubled, cut, re-indented, numbers and values retyped (text files). Every reader of user files is
tested with them: a mutated file gives the project's own error naming the file, never a traceback."""
from __future__ import annotations

import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# NT_FUZZ_SCALE=10 runs ten times the examples (a deeper search by hand; the suite stays quick)
SCALE = float(os.environ.get("NT_FUZZ_SCALE", "1"))


def fuzz_settings(examples: int = 30) -> settings:
    """Bounded, deadline-free settings for the reader tests (files are written per example)."""
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None, print_blob=False, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large])

ODD_VALUES = ["-1", "0", "1e308", "nan", "-inf", "x", "''", "[]", "{}", "null", "true", "1.5", "99999999999",
              "[1, 2]", "\"\\u0000\"", "~"]


@st.composite
def mutated_bytes(draw, data: bytes, hot: tuple[int, int] | None = None, max_ops: int = 4) -> bytes:
    """`data` with 1..max_ops damages; `hot` (start, end) is where most of them land (a header)."""
    b = bytearray(data)
    for _ in range(draw(st.integers(1, max_ops))):
        if not b:
            break
        lo, hi = hot if hot and draw(st.booleans()) else (0, len(b))
        lo, hi = min(lo, len(b) - 1), max(min(hi, len(b)), 1)
        at = draw(st.integers(lo, max(lo, hi - 1)))
        op = draw(st.sampled_from(["flip", "flip", "byte", "zero", "drop", "insert", "truncate"]))
        if op == "flip":
            b[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte":
            b[at] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, ord("-"), ord("9")]))
        elif op == "zero":
            n = draw(st.integers(1, 16))
            b[at:at + n] = bytes(len(b[at:at + n]))
        elif op == "drop":
            del b[at:at + draw(st.integers(1, 16))]
        elif op == "insert":
            b[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del b[at:]
    return bytes(b)


@st.composite
def mutated_text(draw, text: str, max_ops: int = 4) -> str:
    """`text` with 1..max_ops line edits (see the module notes)."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, max_ops))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "dup", "number", "value", "cut", "indent", "swap"]))
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "number":
            odd = draw(st.sampled_from(ODD_VALUES))
            lines[i] = re.sub(r"-?\d+(\.\d+)?", lambda m: odd, lines[i], count=1)
        elif op == "value":
            k = lines[i].find(":") if ":" in lines[i] else lines[i].find("=")
            if k >= 0:
                lines[i] = lines[i][: k + 1] + " " + draw(st.sampled_from(ODD_VALUES))
        elif op == "cut":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))] + draw(st.text(max_size=6))
        elif op == "indent":
            lines[i] = draw(st.sampled_from(["  ", " ", "\t", "- "])) + lines[i]
        else:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines) + "\n"


@contextmanager
def damaged_file(data: bytes, name: str):
    """`data` written as `name` in a folder of its own (removed after): its path."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / name
        p.write_bytes(data)
        yield p


def assert_names_file(error: Exception, path: Path) -> None:
    """The project's rule for a bad file: one line that starts with the file's path."""
    assert str(error).startswith(str(path)) and "\n" not in str(error), str(error)


def read_damaged(data: bytes, name: str, read, error: type[Exception] | tuple):
    """`read(path)` of `data` written as `name`: its result, or None when it raised `error`
    naming the file in one line (any other exception fails the test)."""
    with damaged_file(data, name) as p:
        try:
            return read(p)
        except error as e:
            assert_names_file(e, p)
            return None
