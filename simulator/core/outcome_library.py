"""The shared course-parameter file: finding, loading (errors with file, line, field), caching.

    shared_library() -> CourseLibrary        scenarios/outcome/course_parameters.yaml
    load_library(path) -> CourseLibrary      raises LibraryError (a ScenarioError: file:line: field: message)

Both are cached by the text's content hash: the file is read again each time (27 kB, microseconds);
its validated library is kept in memory, and its YAML data in `yaml_cache` (memory and the user's
cache folder), so only a changed text is read by the YAML loader (~0.5 s with ruamel's pure-Python
loader; ~15 ms from the cache, validation included). Errors are never cached: a broken file keeps
its line/field message.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional, Union

from simulator.core import paths
from simulator.core.outcome_params import CourseLibrary, CourseParameters, Source
from simulator.core.scenario import ScenarioError, parse_model_text, read_text

LIBRARY_FOLDER = "outcome"
LIBRARY_FILE = "course_parameters.yaml"
LibraryError = ScenarioError

_CACHE_SIZE = 8
_cache: dict[str, CourseLibrary] = {}  # sha256 of the text -> the validated library


def library_path() -> Path:
    return paths.SCENARIOS_DIR / LIBRARY_FOLDER / LIBRARY_FILE


def load_library(path: Union[str, Path]) -> CourseLibrary:
    text = read_text(path)
    key = hashlib.sha256(text.encode("utf-8")).hexdigest()
    hit = _cache.get(key)
    if hit is not None:
        return hit
    lib = parse_model_text(text, CourseLibrary, path, what="course parameters (kind, sources, sets)", disk_cache=True)
    if len(_cache) >= _CACHE_SIZE:
        _cache.pop(next(iter(_cache)))
    _cache[key] = lib
    return lib


def shared_library() -> CourseLibrary:
    """The shared file (parsed again only when its content changed)."""
    return load_library(library_path())


def is_library_file(path: Union[str, Path]) -> bool:
    """A course-parameter file: in an `outcome` folder, or its text starts with `kind: course_parameters`."""
    p = Path(path)
    if p.parent.name == LIBRARY_FOLDER:
        return True
    try:
        head = p.read_text(encoding="utf-8-sig", errors="replace")[:4000]
    except OSError:
        return False
    return any(line.strip() == "kind: course_parameters" for line in head.splitlines())


def parameters_for(scenario) -> Optional[tuple[CourseParameters, dict[str, str]]]:
    """The scenario's course parameters and the citations of the sources they may name
    (the shared file's and the scenario's references), or None without an `outcome`."""
    out = getattr(scenario, "outcome", None)
    if out is None:
        return None
    sources: dict[str, str] = {}
    try:
        lib = shared_library()
        sources.update({s.id: _cite(s) for s in lib.sources})
    except LibraryError:
        lib = None
    sources.update({r.id: r.citation for r in scenario.references})
    if out.set is not None:
        return out.set, sources
    if lib is None or out.parameters not in lib.sets:
        return None
    return lib.sets[out.parameters], sources


def _cite(s: Source) -> str:
    return s.citation + (f" {s.url}" if s.url else "")
