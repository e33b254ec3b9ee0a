"""The base of the file schemas (scenario, course parameters): strict pydantic models and the
located validation error. Kept apart so schema modules can import it without import cycles."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict

Vec3 = tuple[float, float, float]


class LocatedValueError(ValueError):
    """A validation error about a sub-field: `loc` is appended to the model's location."""

    def __init__(self, message: str, *loc: str | int):
        super().__init__(message)
        self.loc: tuple[str | int, ...] = tuple(loc)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, use_enum_values=False, allow_inf_nan=False)
