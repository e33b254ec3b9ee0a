"""Scenario files: loading, validation with file/line/field in every error, the library, the schema.

A scenario is a YAML file (one exercise) validated against `simulator.core.scenario_model.Scenario`.
YAML (1.2, as the editor writes it) is read with ruamel.yaml's safe loader only: tags that would build Python objects are refused, so
nothing in a scenario file can run code. Every problem becomes a `FieldError` naming the field, the
line of that field in the file, a message and the offending value; `ScenarioError` collects them:

    scenarios/celiac.yaml:12: targets[1].points_mm: a point target has exactly one point in points_mm, got 2 (got [[1, 2, 3], [4, 5, 6]])

Public API:
    load_scenario(path) -> Scenario                  raises ScenarioError
    find_scenario(id_or_path) -> Path                raises ScenarioNotFoundError
    list_scenarios() -> list[ScenarioEntry]          the library and the user's scenarios; never raises
    validate_files(paths, out) -> int                the `validate` command: 0 when all are valid
    json_schema() -> dict                            the JSON Schema (exported to scenarios/scenario.schema.json)
    DEFAULT_SCENARIO_ID
"""
from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterable, Optional, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.constructor import ConstructorError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from simulator.core import paths
from simulator.core.scenario_errors import NO_VALUE, FieldError, ScenarioError, ScenarioNotFoundError
from simulator.core.scenario_model import LocatedValueError, Scenario

__all__ = [
    "DEFAULT_SCENARIO_ID",
    "SCHEMA_FILE_NAME",
    "FieldError",
    "ScenarioError",
    "ScenarioNotFoundError",
    "ScenarioEntry",
    "load_scenario",
    "find_scenario",
    "list_scenarios",
    "validate_files",
    "json_schema",
    "schema_text",
]

DEFAULT_SCENARIO_ID = "celiac_plexus_posterior"
SCHEMA_FILE_NAME = "scenario.schema.json"
SCHEMA_ID = "urn:neurolysis-trainer:scenario:1"
SCENARIO_SUFFIXES = (".yaml", ".yml")

MAX_FILE_BYTES = 1_000_000  # a scenario is a few kB; refuse anything absurd before parsing
MAX_NODES = 100_000  # YAML anchors/aliases can expand exponentially ("billion laughs")
MAX_DEPTH = 64  # nested lists/mappings: a scenario needs fewer than 10; [[[...]]] must not exhaust the stack


# --------------------------------------------------------------------------------------------
# Reading YAML
# --------------------------------------------------------------------------------------------

def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _safe_yaml() -> YAML:
    """The one YAML reader of scenario files: ruamel's safe loader, YAML 1.2 (as the editor writes:
    `no`, `on`, `off` are text), plain data only; node marks give the lines. Duplicate keys are
    found on the nodes (`_duplicate_keys`) and reported with both lines."""
    y = YAML(typ="safe", pure=True)
    y.allow_duplicate_keys = True
    return y


def safe_load_text(text: str) -> Any:
    """Plain data of a YAML text read as scenario files are (raises ruamel's YAMLError)."""
    return _safe_yaml().load(text)


def _yaml_error(exc: YAMLError, text: str = "") -> FieldError:
    position = getattr(exc, "position", None)  # a ReaderError: a character YAML does not allow
    if isinstance(position, int) and hasattr(exc, "character"):
        ch = getattr(exc, "character", "")
        code = f"#x{ord(ch):04x}" if isinstance(ch, str) and len(ch) == 1 else repr(ch)
        return FieldError("", text[:position].count("\n") + 1,
                          f"YAML error: the character {code} is not allowed in a YAML file")
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        parts = [p for p in (exc.context, exc.problem) if p]
        if exc.context_mark is not None and exc.problem_mark is not None and exc.context:
            parts = [f"{exc.problem} ({exc.context} on line {exc.context_mark.line + 1})"]
        text = "; ".join(parts) or "invalid YAML"
        return FieldError("", mark.line + 1 if mark else None, f"YAML syntax error: {text}")
    return FieldError("", None, f"YAML error: {exc}")


def _count_nodes(root: Node) -> int:
    """Nodes after alias expansion, stopping at MAX_NODES + 1 (also ends recursive aliases)."""
    count, stack = 0, [root]
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_NODES:
            break
        if isinstance(node, SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, MappingNode):
            for k, v in node.value:
                stack.append(k)
                stack.append(v)
    return count


def _too_deep(root: Node) -> bool:
    """Lists or mappings nested more than MAX_DEPTH levels (checked without recursion)."""
    stack, seen = [(root, 1)], set()
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            stack.extend((n, depth + 1) for n in node.value)
        elif isinstance(node, MappingNode):
            stack.extend((v, depth + 1) for _k, v in node.value)
    return False


def _duplicate_keys(node: Node, path: tuple = (), seen: Optional[set] = None) -> list[FieldError]:
    """Keys given twice in one mapping (a YAML loader would keep the last, or stop at the first)."""
    seen = set() if seen is None else seen
    if id(node) in seen:
        return []
    seen.add(id(node))
    out: list[FieldError] = []
    if isinstance(node, MappingNode):
        first: dict[str, int] = {}
        for k, v in node.value:
            key = k.value if isinstance(k, ScalarNode) else None
            if key is not None:
                if key in first:
                    out.append(FieldError(_field_name(path + (key,)), _line(k),
                                          f"this key is given twice (first on line {first[key]}); keep one"))
                else:
                    first[key] = _line(k)
            out.extend(_duplicate_keys(v, path + ((key,) if key is not None else ()), seen))
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            out.extend(_duplicate_keys(item, path + (i,), seen))
    return out


def _parse_yaml(text: str) -> tuple[Any, Optional[Node], list[FieldError]]:
    """(data, root node, duplicate-key errors); raises _Fatal for unreadable YAML."""
    y = _safe_yaml()
    try:
        try:
            node = y.compose(text)  # refuses control characters
        except RecursionError:
            raise _Fatal([FieldError("", None, f"the file nests lists or mappings more than {MAX_DEPTH} levels "
                                                "deep; a scenario is much flatter")]) from None
        if node is None:
            return None, None, []
        if _too_deep(node):
            raise _Fatal([FieldError("", _line(node), f"the file nests lists or mappings more than {MAX_DEPTH} "
                                                       "levels deep; a scenario is much flatter")])
        if _count_nodes(node) > MAX_NODES:
            raise _Fatal([FieldError("", _line(node), f"the file expands to more than {MAX_NODES} values "
                                                       "(anchors and aliases); a scenario is much smaller")])
        data = y.constructor.construct_document(node)
        return data, node, _duplicate_keys(node)
    except ConstructorError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        if "constructor for the tag" in str(e.problem):
            message = f"not allowed in a scenario file: {e.problem} (scenario files hold plain data only)"
        else:
            message = f"YAML error: {e.problem}" + (f" ({e.context})" if e.context else "")
        raise _Fatal([FieldError("", line, message)]) from None
    except YAMLError as e:
        raise _Fatal([_yaml_error(e, text)]) from None


class _Fatal(Exception):
    def __init__(self, errors: list[FieldError]):
        super().__init__("")
        self.errors = errors


# --------------------------------------------------------------------------------------------
# Mapping pydantic errors to YAML lines
# --------------------------------------------------------------------------------------------

_TAG = re.compile(r"[\[\]() ,]")


def _is_tag(part) -> bool:
    """Pydantic adds union-member tags such as 'function-after[...]' to some locations."""
    return isinstance(part, str) and bool(_TAG.search(part))


def _field_name(loc: Iterable) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _is_tag(part):
            out += ("." if out else "") + str(part)
    return out


def _locate(root: Optional[Node], loc: tuple) -> tuple[Optional[int], bool]:
    """Line of the deepest node of `loc` found in the YAML tree, and whether all of it was found."""
    if root is None:
        return 1, False
    node, line = root, _line(root)
    for part in loc:
        if _is_tag(part):
            continue
        if isinstance(node, MappingNode):
            match = None
            for k, v in node.value:  # the last occurrence wins, as in the loaded data
                if isinstance(k, ScalarNode) and k.value == str(part):
                    match = (k, v)
            if match is None:
                return line, False
            line, node = _line(match[0]), match[1]
        elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = _line(node)
        else:
            return line, False
    return line, True


def _data_at(data: Any, loc: tuple) -> Any:
    for part in loc:
        if _is_tag(part):
            continue
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, (list, tuple)) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return NO_VALUE
    return data


def _unwrap(t):
    while True:
        origin = get_origin(t)
        if origin is Union or str(origin) == "types.UnionType":
            args = [a for a in get_args(t) if a is not type(None)]
            if len(args) != 1:
                return t
            t = args[0]
        else:
            return t


def _model_at(loc: tuple, root: type[BaseModel] = Scenario) -> Optional[type[BaseModel]]:
    """The pydantic model class that validates the mapping at `loc` (None if not a model)."""
    t: Any = root
    for part in loc:
        if _is_tag(part):
            continue
        t = _unwrap(t)
        if isinstance(t, type) and issubclass(t, BaseModel):
            field = t.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            t = field.annotation
        else:
            origin = get_origin(t)
            if origin in (list, tuple):
                t = get_args(t)[0]
            elif origin is dict:
                t = get_args(t)[1]
            else:
                return None
    t = _unwrap(t)
    return t if isinstance(t, type) and issubclass(t, BaseModel) else None


_PATTERN_HELP = {
    "anatomy": "expected bundled, bundled:lumbopelvic, phantom:NAME or user:NAME (NAME: letters, digits, _ - .)",
    "id": "use lower-case letters, digits and _ only",
    "target_id": "use lower-case letters, digits and _ only",
    "proposal": "use lower-case letters, digits and _ only (e.g. celiac_plexus_left)",
    "structure": "use the structure's name in the anatomy: lower-case letters, digits and _ (e.g. aorta)",
}


def _message(err: dict, loc: tuple, root: type[BaseModel] = Scenario) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1], root)
        if model is not None:
            allowed = sorted(model.model_fields)
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            return f"unknown field; {hint}allowed here: {', '.join(allowed)}"
        return "unknown field"
    if kind == "string_pattern_mismatch":
        names = [p for p in loc if isinstance(p, str) and not _is_tag(p)]
        key = names[-1] if names else ""
        return _PATTERN_HELP.get(key, msg)
    if kind == "too_long" and err.get("ctx", {}).get("field_type") == "Tuple":
        n = err["ctx"].get("max_length")
        return f"expected exactly {n} numbers" + (" [x, y, z] in mm" if n == 3 else "")
    if kind in ("float_parsing", "float_type", "int_parsing", "int_type"):
        return msg.replace("Input should be", "expected").replace(", unable to parse string as", ": not")
    if kind in ("finite_number",):
        return "expected a finite number (not .nan or .inf)"
    if kind == "value_error":
        return re.sub(r"^Value error, ", "", msg)
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "expected a mapping of fields (key: value lines)"
    if kind in ("list_type", "tuple_type"):
        return "expected a list (lines starting with '- ', or [a, b])"
    if loc and loc[-1] == "[key]":
        if kind == "literal_error":  # a mapping keyed by names (e.g. agents): an unknown name
            return "unknown name: " + msg.replace("Input should be", "expected")
        return "this key must be text (put it in quotes)"
    if msg == "Keys should be strings":
        return "keys must be text (put the key in quotes)"
    if msg.startswith("Input should be"):
        return "must be" + msg[len("Input should be"):]
    return msg


def _field_errors(exc: ValidationError, data: Any, root: Optional[Node],
                  model: type[BaseModel] = Scenario) -> list[FieldError]:
    out: list[FieldError] = []
    short_lists: dict[tuple, int] = {}  # tuples with missing items -> highest missing index
    for err in exc.errors():
        loc = tuple(err["loc"])
        ctx_error = err.get("ctx", {}).get("error") if err["type"] == "value_error" else None
        if isinstance(ctx_error, LocatedValueError):
            loc = loc + ctx_error.loc
        if err["type"] == "missing" and loc and isinstance(loc[-1], int):
            parent = loc[:-1]
            short_lists[parent] = max(short_lists.get(parent, -1), loc[-1])
            continue
        line, _ = _locate(root, loc)
        value = NO_VALUE if err["type"] == "missing" else _data_at(data, loc)
        if loc and loc[-1] == "[key]":  # a mapping key of the wrong type: show the key itself
            value = loc[-2] if len(loc) > 1 else NO_VALUE
        if value is NO_VALUE and err["type"] not in ("missing",) and "input" in err:
            value = err["input"]
        out.append(FieldError(_field_name(loc), line, _message(err, loc, model), value))
    for parent, highest in short_lists.items():
        line, _ = _locate(root, parent)
        value = _data_at(data, parent)
        n = highest + 1
        what = f"expected {n} numbers" + (" [x, y, z] in mm" if n == 3 else "")
        got = len(value) if isinstance(value, (list, tuple)) else None
        out.append(FieldError(_field_name(parent), line, what + (f", got {got}" if got is not None else ""), value))
    return out


def _sorted_unique(errors: list[FieldError]) -> list[FieldError]:
    seen, out = set(), []
    for e in errors:
        key = (e.field, e.line, e.message)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return sorted(out, key=lambda e: (e.line if e.line is not None else 0))


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

def _read_text(path: Path) -> str:
    if not path.exists():
        raise _Fatal([FieldError("", None, "file not found")])
    if not path.is_file():
        raise _Fatal([FieldError("", None, "not a file")])
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise _Fatal([FieldError("", None, f"file is {size} bytes; a scenario file is at most {MAX_FILE_BYTES}")])
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise _Fatal([FieldError("", line, "the file is not UTF-8 text")]) from None


def parse_model_text(text: str, model: type[BaseModel], file: Union[str, Path] = "<text>",
                     what: str = "scenario fields (id, title, procedure, ...)", disk_cache: bool = False):
    """Validate YAML text against `model`; every problem a FieldError (file, line, field).
    `what` names the top-level fields for an empty file. A text seen valid before skips the YAML reading (`yaml_cache`)."""
    from simulator.core import scenario_base, yaml_cache

    hit = yaml_cache.validate_cached(text, lambda d: model.model_validate(scenario_base.merged(d, file) if model is Scenario else d))
    if hit is not None:
        return hit
    try:
        data, root, dup = _parse_yaml(text)
    except _Fatal as f:
        raise ScenarioError(file, f.errors) from None
    if data is None:
        raise ScenarioError(file, [FieldError("", 1, f"the file is empty: expected a mapping of {what}")])
    if not isinstance(data, dict):
        kind = {list: "a list", str: "a single text value"}.get(type(data), f"a single {type(data).__name__} value")
        raise ScenarioError(file, [FieldError("", _line(root) if root is not None else 1,
                                              f"the top level must be a mapping of {what}, got {kind}")])
    # a variant: its base's fields under its own (errors at its based_on line)
    own, data = data, scenario_base.merged_or_error(data, root, dup, file) if model is Scenario else data
    try:
        result = model.model_validate(data)
    except ValidationError as e:
        raise ScenarioError(file, _sorted_unique(dup + _field_errors(e, data, root, model))) from None
    except RecursionError:
        raise ScenarioError(file, [FieldError("", 1, "the file refers to itself (recursive anchors)")]) from None
    if dup:
        raise ScenarioError(file, _sorted_unique(dup))
    yaml_cache.put(text, own, disk=disk_cache)
    return result


def parse_scenario_text(text: str, file: Union[str, Path] = "<text>") -> Scenario:
    """Validate scenario YAML given as text (the editor uses this); errors name `file`."""
    return parse_model_text(text, Scenario, file)


def read_text(path: Union[str, Path]) -> str:
    """A YAML file's text (size-capped, UTF-8); raises ScenarioError naming the file."""
    try:
        return _read_text(Path(path))
    except _Fatal as f:
        raise ScenarioError(path, f.errors) from None


def load_scenario(path: Union[str, Path]) -> Scenario:
    """Read and validate one scenario file. Raises ScenarioError listing every problem found."""
    path = Path(path)
    return parse_model_text(read_text(path), Scenario, path, disk_cache=True)


# --------------------------------------------------------------------------------------------
# The library
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScenarioEntry:
    """One scenario file as the picker lists it; `error` is set (and the rest is best-effort)
    when the file does not validate."""

    path: Path
    id: str
    title: str
    procedure: Optional[str]
    modality: Optional[str]
    difficulty: Optional[int]
    error: Optional[str] = None
    source: str = "library"  # library | user
    indication: tuple[str, ...] = ()
    anatomy: str = ""
    scenario: Any = field(default=None, compare=False, repr=False)  # the validated Scenario (None if invalid)

    @property
    def ok(self) -> bool:
        return self.error is None


def _scenario_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in SCENARIO_SUFFIXES and p.is_file())


def _entry(path: Path, source: str) -> ScenarioEntry:
    try:
        s = load_scenario(path)
        return ScenarioEntry(path, s.id, s.title, s.procedure.value, s.modality.value, s.difficulty, None, source,
                             tuple(i.value for i in s.indication), s.anatomy, s)
    except ScenarioError as e:
        raw: dict = {}
        try:
            loaded = safe_load_text(path.read_text(encoding="utf-8-sig"))
            raw = loaded if isinstance(loaded, dict) else {}
        except Exception:  # noqa: BLE001 - a broken file is listed with its error, never raised
            raw = {}

        def text(key, default=None):
            v = raw.get(key)
            return v if isinstance(v, str) and v else default

        diff = raw.get("difficulty")
        return ScenarioEntry(path, text("id", path.stem), text("title", path.stem), text("procedure"),
                             text("modality"), diff if isinstance(diff, int) and not isinstance(diff, bool) else None,
                             str(e) or "invalid scenario", source)
    except Exception as e:  # noqa: BLE001 - unreadable file (permissions, ...): listed, not raised
        return ScenarioEntry(path, path.stem, path.stem, None, None, None, f"{path}: {e}", source)


def list_scenarios() -> list[ScenarioEntry]:
    """The library (scenarios/) and the user's scenarios, each sorted by difficulty then id;
    broken files are listed with their error. Never raises."""
    out: list[ScenarioEntry] = []
    for folder, source in ((paths.SCENARIOS_DIR, "library"), (paths.user_scenarios_dir(), "user")):
        try:
            entries = [_entry(p, source) for p in _scenario_files(folder)]
        except OSError:
            entries = []
        entries.sort(key=lambda e: (e.error is not None, e.difficulty or 99, e.id))
        out.extend(entries)
    return out


def find_scenario(id_or_path: Union[str, Path]) -> Path:
    """A scenario file from a path, or from an id: `scenarios/ID.yaml`, then the user's
    `scenarios/ID.yaml`, then any file in those folders whose `id:` is ID."""
    text = str(id_or_path)
    candidate = Path(text).expanduser()
    if candidate.is_file():
        return candidate.resolve()
    looks_like_path = isinstance(id_or_path, Path) or "/" in text or "\\" in text or candidate.suffix in SCENARIO_SUFFIXES
    folders = [paths.SCENARIOS_DIR, paths.user_scenarios_dir()]
    if looks_like_path:
        raise ScenarioNotFoundError(text, f"scenario file {text} not found")
    for folder in folders:
        for suffix in SCENARIO_SUFFIXES:
            p = folder / f"{text}{suffix}"
            if p.is_file():
                return p.resolve()
    known: list[str] = []
    for folder in folders:
        for p in _scenario_files(folder):
            try:
                raw = safe_load_text(p.read_text(encoding="utf-8-sig"))
            except Exception:  # noqa: BLE001 - broken files are skipped in the search
                continue
            if isinstance(raw, dict) and isinstance(raw.get("id"), str):
                if raw["id"] == text:
                    return p.resolve()
                known.append(raw["id"])
    close = difflib.get_close_matches(text, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ScenarioNotFoundError(
        text,
        f"no scenario {text!r}: looked for {text}.yaml in {folders[0]} and {folders[1]}.{hint} "
        f"Known: {', '.join(sorted(set(known))) or 'none'}",
    )


def validate_files(files: Iterable[Union[str, Path]], out: IO[str]) -> int:
    """The `validate` command: one line "OK path" per valid file, the errors of the others.
    A folder stands for the scenario files in it (and the course parameter files of its `outcome`
    folder); a course parameter file is checked as one. Returns 0 only when every file is valid."""
    from simulator.core import outcome_library  # late: it imports this module

    ok = True
    count = 0
    for item in files:
        p = Path(item)
        targets = _scenario_files(p) if p.is_dir() else [p]
        if p.is_dir() and not targets:
            out.write(f"{p}: no scenario files (*.yaml) in this folder\n")
            ok = False
        if p.is_dir():  # course parameter files first: the scenarios use them
            targets = _scenario_files(p / outcome_library.LIBRARY_FOLDER) + targets
        for f in targets:
            count += 1
            try:
                if outcome_library.is_library_file(f):
                    outcome_library.load_library(f)
                else:
                    load_scenario(f)
            except ScenarioError as e:
                ok = False
                out.write(f"{e}\n")
            else:
                out.write(f"OK {f}\n")
    if count == 0:
        ok = False
    return 0 if ok else 1


# --------------------------------------------------------------------------------------------
# JSON Schema
# --------------------------------------------------------------------------------------------

def json_schema() -> dict:
    """The JSON Schema of scenario files (draft 2020-12), for editors and other tools."""
    body = Scenario.model_json_schema()
    body.pop("title", None)
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Neurolysis Trainer scenario",
    }
    schema.update(body)
    return schema


def schema_text() -> str:
    """The exported file's exact text (scenarios/scenario.schema.json)."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
