"""How a scenario document writes YAML (ruamel.yaml round trip): values become nodes in the file's
style (coordinates rounded to 0.1 mm in flow lists, unit vectors to 4 decimals, strings quoted only
when needed), the indentation styles tried on open, and the bookkeeping of the comment lines that
ruamel keeps on the entry before them (moved when entries are inserted, replaced or removed).
"""
from __future__ import annotations

import enum
import io
import math
from typing import Any, Optional

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    FoldedScalarString,
    LiteralScalarString,
    SingleQuotedScalarString,
)



Path = tuple  # tuple[str | int, ...]; the name the interface uses (not pathlib.Path)

COORDINATE_KEYS = frozenset({"center_mm", "isocenter_mm", "entry_mm", "target_mm", "points_mm"})
COORDINATE_DECIMALS = 1  # 0.1 mm
UNIT_VECTOR_KEYS = frozenset({"direction", "marker"})
UNIT_VECTOR_DECIMALS = 4
FLOW_MAPPING_KEYS = frozenset({"volume_ml"})  # written {min_ml: 3, max_ml: 5} as in the library
FLOW_POINTS_MAX = 2  # a list of up to 2 points is one flow line; longer lists one point per line

# Indentation styles tried on open (the one that gives the file back unchanged is kept):
# (mapping, sequence, offset). The library uses "  - item" under a key: (2, 4, 2).
INDENT_STYLES = ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4), (2, 4, 0), (4, 4, 0), (3, 5, 2))
DEFAULT_INDENT = (2, 4, 2)

def round_mm(value: float, decimals: int = COORDINATE_DECIMALS) -> float:
    v = round(float(value), decimals)
    return 0.0 if v == 0 else v  # no "-0.0" in the file


def _represent_none(representer, data):
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


def _represent_float(representer, data: float):
    """Plain floats that read back as numbers in YAML 1.2 and 1.1 alike: 12 significant digits,
    and a mantissa with a dot (1.0e-05, not 1e-05, which YAML 1.1 reads as text)."""
    if math.isnan(data):
        text = ".nan"
    elif math.isinf(data):
        text = ".inf" if data > 0 else "-.inf"
    else:
        text = repr(float(f"{data:.12g}"))
        if "e" in text and "." not in text.split("e")[0]:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent}"
    return representer.represent_scalar("tag:yaml.org,2002:float", text)


def make_yaml(indent: tuple[int, int, int]) -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096  # never fold long lines the instructor wrote
    y.allow_duplicate_keys = True  # validation reports them; the editor must still open the file
    y.indent(mapping=indent[0], sequence=indent[1], offset=indent[2])
    y.representer.add_representer(type(None), _represent_none)
    y.representer.add_representer(float, _represent_float)
    return y


def dump(y: YAML, tree: Any) -> str:
    s = io.StringIO()
    y.dump(tree, s)
    return s.getvalue()


def plain(value: Any) -> Any:
    """A round-trip value as plain Python (dict, list, str, int, float, bool, None)."""
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def normalise(value: Any) -> Any:
    """Values from the UI (numpy scalars and arrays, tuples, enums) as plain Python."""
    if isinstance(value, enum.Enum):
        return normalise(value.value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy array or scalar
        return normalise(value.tolist())
    if isinstance(value, dict):
        return {str(k): normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(f"{value:.12g}") if math.isfinite(value) else float(value)  # as it is written
    return value


def _key_of(path: Path) -> Optional[str]:
    """The mapping key a value at `path` belongs to (the last key, skipping list indices)."""
    for part in reversed(path):
        if isinstance(part, str):
            return part
    return None


def round_for(path: Path, value: Any) -> Any:
    """Round coordinates (0.1 mm) and unit vectors (1e-4) in a value written at `path`."""
    if isinstance(value, dict):
        return {k: round_for(path + (k,), v) for k, v in value.items()}
    if isinstance(value, list):
        return [round_for(path + (i,), v) for i, v in enumerate(value)]
    if not (is_number(value) and math.isfinite(value)):
        return value
    key = _key_of(path)
    if key in COORDINATE_KEYS:
        return round_mm(value, COORDINATE_DECIMALS)
    if key in UNIT_VECTOR_KEYS:
        return round_mm(value, UNIT_VECTOR_DECIMALS)
    return value


def to_node(value: Any, path: Path, like: Any = None) -> Any:
    """A plain value as a round-trip node for `path`, styled after the node `like` it replaces."""
    if isinstance(value, dict):
        m = CommentedMap()
        for k, v in value.items():
            m[k] = to_node(v, path + (k,))
        if _key_of(path) in FLOW_MAPPING_KEYS and all(not isinstance(v, (dict, list)) for v in value.values()):
            m.fa.set_flow_style()
        elif isinstance(like, CommentedMap) and like.fa.flow_style() and all(not isinstance(v, (dict, list)) for v in value.values()):
            m.fa.set_flow_style()
        return m
    if isinstance(value, list):
        s = CommentedSeq(to_node(v, path + (i,)) for i, v in enumerate(value))
        if all(is_number(v) for v in value):
            s.fa.set_flow_style()
        elif value and all(isinstance(v, list) and all(is_number(x) for x in v) for v in value):
            if isinstance(like, CommentedSeq):
                flow = like.fa.flow_style()
            else:
                flow = len(value) <= FLOW_POINTS_MAX
            if flow:
                s.fa.set_flow_style()
            else:
                s.fa.set_block_style()
        return s
    if isinstance(value, str):
        if isinstance(like, (DoubleQuotedScalarString, SingleQuotedScalarString, LiteralScalarString, FoldedScalarString)):
            if isinstance(like, (LiteralScalarString, FoldedScalarString)) and "\n" not in value:
                return DoubleQuotedScalarString(value) if _needs_quotes(value) else value
            return type(like)(value)
        if "\n" in value:
            return LiteralScalarString(value if value.endswith("\n") else value + "\n")
        return value
    return value


def _needs_quotes(text: str) -> bool:
    return text != text.strip() or any(c in text for c in ":#{}[],&*!|>'\"%@`")


def same_shape(a: Any, b: Any) -> bool:
    return (isinstance(a, dict) and isinstance(b, CommentedMap)) or (isinstance(a, list) and isinstance(b, CommentedSeq))


def _last_leaf(node: Any, key: Any) -> tuple[Any, Any]:
    """(container, key) of the deepest last entry of node[key], where a trailing comment lives."""
    value = node[key]
    while True:
        if isinstance(value, CommentedMap) and len(value) and not value.fa.flow_style():
            node, key = value, list(value.keys())[-1]
        elif isinstance(value, CommentedSeq) and len(value) and not value.fa.flow_style():
            node, key = value, len(value) - 1
        else:
            return node, key
        value = node[key]


def _slot(holder: Any) -> int:
    return 2 if isinstance(holder, CommentedMap) else 0


def _leaf_token(node: Any, key: Any):
    holder, k = _last_leaf(node, key)
    entry = holder.ca.items.get(k)
    idx = _slot(holder)
    tok = entry[idx] if entry and len(entry) > idx else None
    return holder, k, (tok if tok is not None and hasattr(tok, "value") else None)


def take_tail(node: Any, key: Any) -> Optional[str]:
    """Remove and return the lines after node[key]'s value (comment and blank lines above the
    next entry), keeping the comment at the end of the value's own line."""
    holder, k, tok = _leaf_token(node, key)
    if tok is None:
        return None
    first_nl = tok.value.find("\n")
    if first_nl < 0 or not tok.value[first_nl + 1:]:
        return None
    tail = tok.value[first_nl + 1:]
    eol = tok.value[: first_nl + 1]
    if eol.strip():
        tok.value = eol
    else:
        holder.ca.items[k][_slot(holder)] = None
    return tail


def append_tail(node: Any, key: Any, tail: str) -> None:
    """Put `tail` (whole lines) after node[key]'s value."""
    from ruamel.yaml.error import CommentMark
    from ruamel.yaml.tokens import CommentToken

    holder, k, tok = _leaf_token(node, key)
    if tok is not None:
        tok.value = (tok.value if tok.value.endswith("\n") else tok.value + "\n") + tail
        return
    entry = holder.ca.items.get(k)
    if entry is None:
        entry = [None, None, None, None] if isinstance(holder, CommentedMap) else [None, None]
        holder.ca.items[k] = entry
    entry[_slot(holder)] = CommentToken("\n" + tail, CommentMark(0), None)


def move_tail_comment(node: Any, from_key: Any, to_key: Any) -> None:
    """Move the lines after node[from_key] to after node[to_key]."""
    tail = take_tail(node, from_key)
    if tail:
        append_tail(node, to_key, tail)


def replace_value(parent: Any, key: Any, new: Any) -> None:
    """parent[key] = new, keeping the comment at the end of the key's line and the lines that
    follow the old value (they belong above the next entry)."""
    tail = take_tail(parent, key)
    entry = parent.ca.items.get(key)
    idx = _slot(parent)
    eol = entry[idx] if entry and len(entry) > idx else None
    old = parent[key]
    parent[key] = new
    if isinstance(new, (CommentedMap, CommentedSeq)) and not new.fa.flow_style() and len(new):
        if eol is not None and hasattr(eol, "value") and eol.value.strip():
            new.ca.comment = [eol, None]  # the key line's comment, as ruamel keeps it for a block value
    if tail:
        append_tail(parent, key, tail)
