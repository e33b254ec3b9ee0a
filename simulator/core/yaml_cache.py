"""The parsed data of YAML files that validated, by the SHA-256 of their text.

Reading YAML with ruamel's pure-Python safe loader costs about 20 ms per kB (the shared course
parameter file, 27 kB: ~0.5 s). A text read before gives its data at once: from memory in this
process, else from `user_data_dir()/cache/yaml/<sha256>.json` (written atomically; any unreadable
or mismatching entry is ignored and rewritten). Only texts that validated are kept, and the data
is validated again on every load, so nothing about errors changes: a file that does not validate
is always read by the loader that gives lines and columns.

    data = get(text)        # a deep copy, or None
    put(text, data, disk)   # after the text validated
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

MEMORY_ENTRIES = 64
_memory: dict[str, Any] = {}


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _folder() -> Path:
    from simulator.core.paths import user_data_dir

    return user_data_dir() / "cache" / "yaml"


def get(text: str) -> Any:
    """The data of `text` if it was parsed before (a deep copy: callers may change it), else None."""
    key = _key(text)
    if key in _memory:
        return copy.deepcopy(_memory[key])
    try:
        raw = (_folder() / f"{key}.json").read_text(encoding="utf-8")
        entry = json.loads(raw)
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("sha256") != key or "data" not in entry:
        return None
    _remember(key, entry["data"])
    return copy.deepcopy(entry["data"])


def put(text: str, data: Any, disk: bool = False) -> None:
    """Keep the data of a text that validated; `disk`: in the cache folder too (files, not the
    editor's texts; only when JSON gives the data back unchanged)."""
    key = _key(text)
    _remember(key, copy.deepcopy(data))
    if not disk:
        return
    try:
        if json.loads(json.dumps(data)) != data:  # e.g. integer mapping keys: memory only
            return
        folder = _folder()
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    except (OSError, TypeError, ValueError):
        return  # a cache that cannot be written only costs time
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"sha256": key, "data": data}, f)
        os.replace(tmp, folder / f"{key}.json")
    except (OSError, TypeError, ValueError):
        Path(tmp).unlink(missing_ok=True)


def validate_cached(text: str, validate) -> Any:
    """`validate(data)` of the data cached for `text`; None when nothing is cached or it no
    longer validates (its base or the code changed: the caller reads the text again, for lines)."""
    data = get(text)
    if data is None:
        return None
    try:
        return validate(data)
    except Exception:  # noqa: BLE001 - any failure: read the text again
        return None


def _remember(key: str, data: Any) -> None:
    if len(_memory) >= MEMORY_ENTRIES:
        _memory.pop(next(iter(_memory)))
    _memory[key] = data


def clear_memory() -> None:
    _memory.clear()


__all__ = ["get", "put", "validate_cached", "clear_memory"]
