"""The errors of scenario files and their wording: `FieldError` (one problem: the field's path, its
line, a message, the offending value as the instructor wrote it), `ScenarioError` (every problem
of one file), `ScenarioNotFoundError`. `simulator.core.scenario` reads and validates the files.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

__all__ = ["NO_VALUE", "FieldError", "ScenarioError", "ScenarioNotFoundError"]


class _NoValue:
    """Marker: the error has no offending value (e.g. a missing field)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_VALUE"

    def __bool__(self) -> bool:
        return False


NO_VALUE: Any = _NoValue()


def _show(value: Any, limit: int = 80) -> str:
    """A value as the instructor wrote it (YAML-like: null, true, 'text', [1, 2])."""

    def conv(v):
        if isinstance(v, dict):
            return {str(k): conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        if isinstance(v, (str, int, float, bool)) or v is None:
            return v
        return str(v)

    if isinstance(value, float) and not math.isfinite(value):
        text = ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    elif isinstance(value, str):
        text = repr(value)
    else:
        try:
            text = json.dumps(conv(value), ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class FieldError:
    """One problem in a scenario file. `field` is a path like `targets[1].points_mm` ("" for the
    whole file), `line` is 1-based (None if unknown), `value` is NO_VALUE when there is none."""

    field: str
    line: Optional[int]
    message: str
    value: Any = NO_VALUE

    def format(self, file: Union[str, Path]) -> str:
        where = f"{file}:{self.line}" if self.line is not None else f"{file}"
        what = f"{self.field}: {self.message}" if self.field else self.message
        got = f" (got {_show(self.value)})" if self.value is not NO_VALUE else ""
        return f"{where}: {what}{got}"


class ScenarioError(Exception):
    """A scenario file that cannot be used; `errors` lists every problem found."""

    def __init__(self, file: Union[str, Path], errors: list[FieldError]):
        self.file = Path(file)
        self.errors = list(errors)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(e.format(self.file) for e in self.errors)

    @property
    def first_line(self) -> str:
        return self.errors[0].format(self.file) if self.errors else str(self.file)


class ScenarioNotFoundError(ScenarioError, FileNotFoundError):
    """No scenario with that id or path."""

    def __init__(self, query: str, message: str):
        self.query = query
        self._message = message
        super().__init__(query, [FieldError("", None, message)])

    def __str__(self) -> str:
        return self._message
