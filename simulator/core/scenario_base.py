"""Scenario variants: `based_on: ID` takes another scenario's fields and changes some.

A variant file holds only what differs from its base - another patient story on the same needle
work (a vignette with an aortic aneurysm, a follow-up months later), a harder rubric:

    schema_version: 1
    id: splanchnic_t11_t12_aneurysm
    title: "Splanchnic neurolysis: a patient with an aortic aneurysm"
    based_on: splanchnic_t11_t12
    vignette: {...}

Mappings merge key by key (`steps: {time_out: true}` adds to the base's steps; a key set to null
replaces the base's value with none), everything else (lists, numbers, text) replaces the base's. The base is
found like any scenario (the library, then the user's folder) and must itself be valid; variants
of variants are allowed up to `MAX_DEPTH`, a cycle is refused. Errors name the variant file and
its `based_on` line.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

MAX_DEPTH = 4
_cache: dict = {}  # (base path, mtime, size, chain) -> its data: the editor reads a variant's base often


def deep_merge(base: Any, over: Any) -> Any:
    """`over` on top of `base`: mappings key by key (recursively), anything else replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = deep_merge(base[k], v) if k in base else v
        return out
    return over


def base_data(base_id: Any, file, chain: tuple = ()) -> dict:
    """The merged data of the base scenario `base_id` (its own `based_on` resolved); raises
    ValueError with a message for the `based_on` field."""
    from simulator.core import scenario as io

    if not isinstance(base_id, str) or not base_id:
        raise ValueError(f"based_on must be a scenario id, got {base_id!r}")
    if base_id in chain:
        raise ValueError("based_on makes a cycle: " + " -> ".join(chain + (base_id,)))
    if len(chain) >= MAX_DEPTH:
        raise ValueError(f"based_on is nested more than {MAX_DEPTH} deep ({' -> '.join(chain + (base_id,))})")
    try:
        path = io.find_scenario(base_id)
    except io.ScenarioNotFoundError as e:
        raise ValueError(f"the base scenario is not found: {e}") from None
    if file not in (None, "<text>") and Path(str(file)).resolve() == path:
        raise ValueError("a scenario cannot be based on itself")
    try:
        st = path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size, chain)
    except OSError:
        key = None
    if key in _cache:
        return copy.deepcopy(_cache[key])
    try:
        io.load_scenario(path)  # the base must be valid on its own
        data, _root, _dup = io._parse_yaml(io.read_text(path))
    except io.ScenarioError as e:
        first = str(e).splitlines()[0] if str(e) else "invalid"
        raise ValueError(f"the base scenario {base_id!r} does not load: {first}") from None
    except io._Fatal as f:
        raise ValueError(f"the base scenario {base_id!r} does not load: {f.errors[0].message}") from None
    if isinstance(data.get("based_on"), str):
        data = deep_merge(base_data(data["based_on"], path, chain + (base_id,)), data)
    if key is not None:
        if len(_cache) > 32:
            _cache.clear()
        _cache[key] = copy.deepcopy(data)
    return data


def merged(data: dict, file) -> dict:
    """`with_base` for a variant, the data itself otherwise (raises ValueError)."""
    return with_base(data, file) if data.get("based_on") is not None else data


def merged_or_error(data: dict, root, dup: list, file) -> dict:
    """`merged`, a problem with the base raised as the ScenarioError of the `based_on` line."""
    from simulator.core import scenario as io

    try:
        return merged(data, file)
    except ValueError as e:
        line, _ = io._locate(root, ("based_on",))
        raise io.ScenarioError(file, io._sorted_unique(dup + [io.FieldError("based_on", line, str(e), data.get("based_on"))])) from None


def with_base(data: dict, file) -> dict:
    """The variant's data on top of its base's (see the module notes)."""
    merged = deep_merge(base_data(data.get("based_on"), file, (str(data.get("id", "")),)), data)
    merged["based_on"] = data["based_on"]
    return merged


def base_value(tree, key, file):
    """A variant's base value of the top-level field `key` (plain Python), None when it has none
    (or `tree` is no variant, or its base does not load)."""
    if not isinstance(tree, dict) or not isinstance(tree.get("based_on"), str):
        return None
    try:
        return base_data(tree.get("based_on"), file).get(key)
    except ValueError:
        return None


def base_has(tree, key, file) -> bool:
    """Whether the variant `tree` takes the field `key` from its base."""
    return base_value(tree, key, file) is not None


__all__ = ["deep_merge", "base_value", "base_has", "with_base", "merged", "merged_or_error", "base_data", "MAX_DEPTH"]
