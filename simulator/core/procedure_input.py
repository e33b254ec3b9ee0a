"""The input decorator of the Procedure: every recorded input goes through `recorded_input`.

A method marked with `@recorded_input` takes an optional `time_s` keyword (without it the
procedure's clock gives the time), refuses calls after the attempt has ended, binds its arguments
by name, runs, and on success is appended to the recording (name, time, arguments) and followed by
a sample of the state. `replay` feeds the recorded inputs back through the same methods.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import replace

from simulator.core.needle import NeedleState


class ProcedureError(ValueError):
    """An input the procedure cannot take (the message says why, for the trainee or the caller)."""


def recorded_input(fn):
    """Mark a method as an input: time-stamped, recorded after success, followed by a sample."""
    sig = inspect.signature(fn)
    name = fn.__name__
    params = [(p.name, p.default) for p in list(sig.parameters.values())[1:]]
    names = {p for p, _ in params}

    def bind(args, kwargs) -> dict:
        if len(args) > len(params):
            raise TypeError(f"{name}() takes {len(params)} arguments, got {len(args)}")
        call = {}
        for (pname, _), value in zip(params, args):
            call[pname] = value
        for key in kwargs:
            if key not in names or key in call:
                raise TypeError(f"{name}() got an unexpected or repeated argument {key!r}")
        for pname, default in params[len(args):]:
            if pname in kwargs:
                call[pname] = kwargs[pname]
            elif default is inspect.Parameter.empty:
                raise TypeError(f"{name}() missing argument {pname!r}")
            else:
                call[pname] = default
        return call

    @functools.wraps(fn)
    def wrapper(self, *args, time_s: float | None = None, **kwargs):
        if self._ended:
            raise ProcedureError(f"the attempt has ended; {name} is not possible")
        call = bind(args, kwargs)
        t = self._resolve_time(time_s)
        self._now = t
        self._pose_dirty = False
        result = fn(self, **call)
        self.recording.add_input(t, name, call)
        self._last_time = t
        self._after_input(steps=name != "tick")  # a sample alone cannot change a step
        return result

    wrapper._is_input = True
    return wrapper


def replace_state(state: NeedleState, **changes) -> NeedleState:
    """A copy of the needle state with some fields changed."""
    return replace(state, **changes)
