"""A scenario being edited: its YAML text, edited field by field with undo and redo.

The editor (simulator/ui/editor) works on a `ScenarioDocument`. The text is the document's state:
edits go through a ruamel.yaml round-trip tree, so comments, key order, quoting and flow-style
lists (`[12.3, -4.5, 100.0]`) survive, and a field set by the editor changes that field's line only.
Opening a file and reading `text()` gives the file back byte for byte.

Validation is the `validate` command's own (`simulator.core.scenario.parse_scenario_text`): the
errors of a document are exactly what `main.py validate` prints for the same text (field, line,
message, value), and `save` refuses a document that does not validate.

Fields are addressed by paths: tuples of keys and list indices,

    ("targets", 0, "tolerance_mm")      ("rubric", "pass_mark")      ("imaging", "fluoroscopy")

Coordinates (keys ending in `_mm` that hold points: entry_mm, target_mm, points_mm, center_mm,
isocenter_mm) are written rounded to 0.1 mm as flow lists; any list of numbers is written as a flow
list. Every edit is one undo step; `with doc.batch("label"):` makes several edits one step, and
`set(path, value, merge_key=k)` joins consecutive edits with the same key (the keystrokes of one
visit to a field) into one step until `end_merge()`, an undo or another edit.

Helpers for the editor's tools (`add_target`, `target_from_proposal`, `set_planned_trajectory`,
`add_critical_structure`) are in `simulator.core.scenario_edits`; how values are written as YAML
(and where comments go) in `simulator.core.scenario_yaml`.

No Qt here: `subscribe(callback)` tells listeners which paths changed (the Qt layer turns it into
a signal).
"""
from __future__ import annotations

import contextlib
import difflib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any, Callable, Iterator, Optional, Union

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError as RuamelYAMLError

from simulator.core import paths as project_paths
from simulator.core.scenario import (
    FieldError,
    ScenarioError,
    _model_at,
    find_scenario,
    parse_scenario_text,
    read_text,
)
from simulator.core.scenario_base import base_has, base_value
from simulator.core.scenario_model import Scenario
from simulator.core.scenario_yaml import (
    COORDINATE_KEYS,
    DEFAULT_INDENT,
    FLOW_POINTS_MAX,
    INDENT_STYLES,
    Path,
    append_tail,
    dump,
    is_number,
    make_yaml,
    move_tail_comment,
    normalise,
    plain,
    replace_value,
    round_for,
    round_mm,
    same_shape,
    take_tail,
    to_node,
)

__all__ = [
    "Path",
    "ScenarioDocument",
    "ScenarioDocError",
    "field_name",
    "COORDINATE_KEYS",
    "round_mm",
]


class ScenarioDocError(ValueError):
    """An edit that cannot be applied (a path that does not exist, text that is not YAML)."""


def field_name(path: Path) -> str:
    """A path as `validate` names fields: ("targets", 1, "points_mm") -> "targets[1].points_mm"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


# --------------------------------------------------------------------------------------------
# ruamel.yaml set-up
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# The document
# --------------------------------------------------------------------------------------------

@dataclass
class _Step:
    label: str
    before: str
    after: str
    paths: list
    merge_key: Any = None


class _Batch:
    def __init__(self, label: str, before: str):
        self.label = label
        self.before = before
        self.paths: list = []
        self.depth = 1


class ScenarioDocument:
    """One scenario's YAML, edited by undoable commands. See the module doc."""

    def __init__(self, text: str, file: Union[str, FilePath, None] = None, *, dirty: bool = False):
        self.path: Optional[FilePath] = FilePath(file) if file is not None and str(file) != "<new>" else None
        self._file_label = str(file) if file is not None else "<new>"
        self._stale = False  # inside a batch the tree is ahead of the text until it is read
        self._raw_text = text
        self._clean_text: Optional[str] = None if dirty else text
        self._indent = DEFAULT_INDENT
        self._yaml = make_yaml(self._indent)
        self._tree: Any = None
        self._tree_text: Optional[str] = None  # the text _tree was parsed from
        self._tree_error: Optional[str] = None
        self._undo: list[_Step] = []
        self._redo: list[_Step] = []
        self._batch: Optional[_Batch] = None
        self._listeners: list[Callable[[list], None]] = []
        self._validated: tuple[Optional[str], list[FieldError], Optional[Scenario]] = (None, [], None)
        self._choose_indent()

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def open(cls, path) -> "ScenarioDocument":
        """Read a scenario file. A file that does not validate still opens (see `errors()`);
        a file that cannot be read as text raises ScenarioError naming it."""
        p = FilePath(path)
        return cls(read_text(p), p)

    @classmethod
    def from_text(cls, text: str, file: str = "<new>") -> "ScenarioDocument":
        return cls(text, file)

    @classmethod
    def new(cls, *, scenario_id: str, title: str, anatomy: str = "bundled",
            template: str = "celiac_plexus_posterior") -> "ScenarioDocument":
        """A new scenario from a library scenario (id or path) as template, with id, title and
        anatomy set. On the template's own anatomy everything is kept. On another anatomy the
        points are anatomy-specific and are dropped: targets that name a proposal keep it (a
        labelled patient, bundled or user:, gets the proposal's points) and lose their points;
        other targets, the planned trajectories, the skin entry zone and the imaging centres are
        removed. The new document is unsaved (`path` None, dirty) and lists what is left to fill
        in its errors (e.g. targets when none is left)."""
        source = find_scenario(template)
        doc = cls(read_text(source), None, dirty=True)
        tree = doc._require_tree()
        if not isinstance(tree, CommentedMap):
            raise ScenarioError(source, doc.errors() or [FieldError("", 1, "the template is not a mapping of fields")])
        own_anatomy = str(tree.get("anatomy", "")) == anatomy
        labelled_patient = anatomy == "bundled" or anatomy.startswith("user:")
        header = (f"# yaml-language-server: $schema=scenario.schema.json\n#\n# {title}\n"
                  f"# Made in the scenario editor from the template {source.stem} "
                  f"(anatomy {anatomy}).\n\n")
        # the template's header comment describes the template: replace it with ours
        tree.ca.comment = None
        with doc.batch("New scenario"):
            doc.set(("id",), scenario_id)
            doc.set(("title",), title)
            doc.set(("anatomy",), anatomy)
            if not own_anatomy:
                for key in ("planned_trajectory", "additional_trajectories", "skin_entry_zone"):
                    doc.unset((key,))
                for key in ("isocenter_mm",):
                    doc.unset(("imaging", "fluoroscopy", key))
                for key in ("center_mm", "direction", "marker"):
                    doc.unset(("imaging", "ultrasound", key))
                targets = tree.get("targets")
                if isinstance(targets, CommentedSeq):
                    for i in reversed(range(len(targets))):
                        t = targets[i]
                        if labelled_patient and isinstance(t, CommentedMap) and t.get("proposal"):
                            doc.unset(("targets", i, "points_mm"))
                        else:
                            doc.remove(("targets",), i)
        doc._text = header + doc._text.lstrip("\n") if not doc._text.startswith("#") else doc._text
        doc._tree_text = None  # reparse lazily (the header changed the text)
        doc._undo.clear()
        doc._redo.clear()
        doc._clean_text = None
        return doc

    # -- state ----------------------------------------------------------------------------
    @property
    def _text(self) -> str:
        if self._stale:  # edits inside a batch: write the tree out when the text is needed
            self._stale = False
            self._raw_text = self._tree_text = self._dump_tree()
        return self._raw_text

    @_text.setter
    def _text(self, value: str) -> None:
        self._stale = False
        self._raw_text = value

    def text(self) -> str:
        return self._text

    @property
    def file_label(self) -> str:
        """How errors name this document: its path, or "<new>"."""
        return str(self.path) if self.path is not None else self._file_label

    @property
    def dirty(self) -> bool:
        return self._text != self._clean_text

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_label(self) -> Optional[str]:
        return self._undo[-1].label if self._undo else None

    @property
    def redo_label(self) -> Optional[str]:
        return self._redo[-1].label if self._redo else None

    @property
    def yaml_error(self) -> Optional[str]:
        """Why the text cannot be edited field by field (not YAML), else None."""
        self._current_tree()
        return self._tree_error

    # -- reading --------------------------------------------------------------------------
    def get(self, path: Path, default=None):
        """The value at `path` as plain Python (dicts, lists, str, float, int, bool, None)."""
        node = self._current_tree()
        path = tuple(path)
        if path and isinstance(node, CommentedMap) and path[0] not in node and base_has(node, path[0], self.path):
            node = {path[0]: base_value(node, path[0], self.path)}  # a variant: what it takes from its base
        for part in path:
            if isinstance(node, (CommentedMap, dict)) and not isinstance(part, int) and part in node:
                node = node[part]
            elif isinstance(node, (CommentedSeq, list)) and isinstance(part, int) and -len(node) <= part < len(node):
                node = node[part]
            else:
                return default
        return plain(node)

    def has(self, path: Path) -> bool:
        marker = object()
        return self.get(path, marker) is not marker

    # -- validation -----------------------------------------------------------------------
    def _validate(self) -> tuple[list[FieldError], Optional[Scenario]]:
        if self._validated[0] != self._text:
            try:
                sc = parse_scenario_text(self._text, self.file_label)
                self._validated = (self._text, [], sc)
            except ScenarioError as e:
                self._validated = (self._text, list(e.errors), None)
        return self._validated[1], self._validated[2]

    def errors(self) -> list[FieldError]:
        """Every problem, exactly as `main.py validate` reports it for this text."""
        return list(self._validate()[0])

    def errors_at(self, path: Path) -> list[FieldError]:
        """The errors of the field at `path` and of the fields below it (all errors for ())."""
        name = field_name(tuple(path))
        if not name:
            return self.errors()
        return [e for e in self.errors()
                if e.field == name or e.field.startswith(name + ".") or e.field.startswith(name + "[")]

    def formatted_errors(self) -> list[str]:
        """The errors as the `validate` command prints them (file:line: field: message)."""
        return [e.format(self.file_label) for e in self.errors()]

    def scenario(self) -> Optional[Scenario]:
        """The validated scenario, None while the document has errors."""
        return self._validate()[1]

    # -- editing --------------------------------------------------------------------------
    def set(self, path: Path, value, label: Optional[str] = None, *, merge_key: Any = None) -> None:
        """Set the value at `path` (creating missing mappings on the way); one undo step.
        Mappings and lists replacing mappings and lists are updated in place, so their comments
        and style stay.

        `merge_key` (any hashable, e.g. (field, visit)): an edit whose key equals the last undo
        step's key, made straight after it (nothing undone or edited in between), joins that step,
        so the keystrokes of one visit to a field undo at once. A step brought back to where it
        started disappears from the history."""
        path = tuple(path)
        if not path:
            raise ScenarioDocError("set needs a field path, e.g. ('title',)")
        value = round_for(path, normalise(value))
        with self._edit(label or f"Set {field_name(path)}", [path], merge_key=merge_key):
            tree = self._require_tree()
            parent = self._container(tree, path[:-1], create=True)
            self._assign(parent, path, value)

    def unset(self, path: Path, label: Optional[str] = None, *, merge_key: Any = None) -> None:
        """Remove a mapping key (a field goes back to its default); nothing if it is absent.
        `merge_key`: as for `set` (a field emptied while typing joins the same step)."""
        path = tuple(path)
        if not self.has(path) or not path or isinstance(path[-1], int):
            if path and isinstance(path[-1], int):
                raise ScenarioDocError(f"{field_name(path)}: use remove() for list items")
            return
        with self._edit(label or f"Remove {field_name(path)}", [path], merge_key=merge_key):
            parent = self._container(self._require_tree(), path[:-1], create=False)
            self._delete_key(parent, path[-1])

    def insert(self, list_path: Path, index: int, value, label: Optional[str] = None) -> None:
        """Insert `value` into the list at `list_path` before `index` (-1: append). A missing
        list is created."""
        list_path = tuple(list_path)
        value = normalise(value)
        with self._edit(label or f"Add to {field_name(list_path)}", [list_path]):
            tree = self._require_tree()
            seq = self._container(tree, list_path, create=True, leaf_list=True)
            if not isinstance(seq, CommentedSeq):
                raise ScenarioDocError(f"{field_name(list_path)} is not a list")
            n = len(seq)
            i = n if index == -1 or index >= n else (max(0, n + index + 1) if index < 0 else index)
            self._insert_item(seq, i, to_node(round_for(list_path + (i,), value), list_path + (i,)))

    def remove(self, list_path: Path, index: int, label: Optional[str] = None) -> None:
        """Remove item `index` of the list at `list_path`."""
        list_path = tuple(list_path)
        seq = self._container(self._require_tree(), list_path, create=False)
        if not isinstance(seq, CommentedSeq):
            raise ScenarioDocError(f"{field_name(list_path)} is not a list")
        if not -len(seq) <= index < len(seq):
            raise ScenarioDocError(f"{field_name(list_path)} has {len(seq)} items, no item {index}")
        with self._edit(label or f"Remove {field_name(list_path + (index,))}", [list_path]):
            seq = self._container(self._require_tree(), list_path, create=False)
            self._delete_item(seq, index % len(seq))

    def move(self, list_path: Path, index: int, new_index: int, label: Optional[str] = None) -> None:
        """Move list item `index` to position `new_index` (-1: the end); its comments and quoting
        travel with it."""
        list_path = tuple(list_path)
        seq = self._container(self._require_tree(), list_path, create=False)
        if not isinstance(seq, CommentedSeq):
            raise ScenarioDocError(f"{field_name(list_path)} is not a list")
        n = len(seq)
        if not -n <= index < n:
            raise ScenarioDocError(f"{field_name(list_path)} has {n} items, no item {index}")
        index %= n
        new_index = n - 1 if new_index == -1 or new_index >= n else max(0, new_index % n)
        if new_index == index:
            return
        with self._edit(label or f"Move {field_name(list_path + (index,))}", [list_path]):
            seq = self._container(self._require_tree(), list_path, create=False)
            node = seq[index]
            self._delete_item(seq, index)
            self._insert_item(seq, new_index, node)

    def set_text(self, text: str, label: str = "Edit text") -> None:
        """Replace the whole text (a raw-text edit); one undo step. The text need not be valid
        YAML: such a document lists the syntax error and takes field edits again once fixed."""
        if self._batch is not None:
            raise ScenarioDocError("set_text cannot be part of a batch")
        if text == self._text:
            return
        before = self._text
        self._text = text
        self._tree_text = None
        self._choose_indent()
        self._push(_Step(label, before, text, [()]))
        self._notify([()])

    @contextlib.contextmanager
    def batch(self, label: str) -> Iterator["ScenarioDocument"]:
        """Several edits as one undo step (nested batches join the outermost). If the block
        raises, its edits are undone and the exception propagates."""
        if self._batch is not None:
            self._batch.depth += 1
            try:
                yield self
            finally:
                self._batch.depth -= 1
            return
        self._batch = _Batch(label, self._text)
        try:
            yield self
        except BaseException:
            b, self._batch = self._batch, None
            self._restore(b.before)
            raise
        b, self._batch = self._batch, None
        if self._text != b.before:
            self._push(_Step(b.label, b.before, self._text, b.paths))
            self._notify(b.paths)

    def undo(self) -> bool:
        if not self._undo or self._batch is not None:
            return False
        step = self._undo.pop()
        self._restore(step.before)
        self._redo.append(_Step(step.label, step.before, step.after, step.paths))  # merges no more
        self._notify(step.paths)
        return True

    def redo(self) -> bool:
        if not self._redo or self._batch is not None:
            return False
        step = self._redo.pop()
        self._restore(step.after)
        self._undo.append(step)
        self._notify(step.paths)
        return True

    # -- saving ---------------------------------------------------------------------------
    def save(self, path=None) -> FilePath:
        """Write the text (atomically: a temporary file renamed over the target). Refuses a
        document that does not validate: raises ScenarioError with its FieldErrors."""
        target = FilePath(path) if path is not None else self.path
        if target is None:
            raise ScenarioDocError("this scenario has no file yet: save it with a path")
        errs = self.errors()
        if errs:
            raise ScenarioError(target, errs)
        target = target.expanduser()
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                f.write(self._text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self.path = target
        self._file_label = str(target)
        self._clean_text = self._text
        self._validated = (None, [], None)  # errors name the new file
        return target

    def default_save_path(self) -> FilePath:
        """Where a new scenario goes: the user's scenarios folder, named by its id."""
        sid = self.get(("id",)) or "new_scenario"
        return project_paths.user_scenarios_dir() / f"{sid}.yaml"

    # -- listeners ------------------------------------------------------------------------
    def subscribe(self, callback: Callable[[list], None]) -> None:
        """callback(paths) after every change, undo and redo; paths are the changed fields
        (() = the whole document)."""
        self._listeners.append(callback)

    def unsubscribe(self, callback: Callable[[list], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    # -- internals ------------------------------------------------------------------------
    def _choose_indent(self) -> None:
        """Pick the indentation style that writes this text back unchanged."""
        tree = self._current_tree()
        if tree is None or self._tree_error is not None:
            return
        best, best_ratio = None, -1.0
        for style in INDENT_STYLES:
            try:
                out = dump(make_yaml(style), tree)
            except Exception:  # noqa: BLE001 - a style that ruamel cannot write is just skipped
                continue
            if out == self._text:
                best = style
                break
            # none exact (yet): the one that changes the fewest lines
            ratio = difflib.SequenceMatcher(None, self._text.splitlines(), out.splitlines(), autojunk=False).ratio()
            if ratio > best_ratio:
                best, best_ratio = style, ratio
        self._indent = best or DEFAULT_INDENT
        self._yaml = make_yaml(self._indent)

    def _current_tree(self) -> Any:
        if self._stale:
            return self._tree
        if self._tree_text != self._text:
            try:
                self._tree = self._yaml.load(self._text)
                self._tree_error = None
            except (RuamelYAMLError, ValueError, TypeError) as e:
                self._tree = None
                self._tree_error = f"the text is not valid YAML: {e}"
            self._tree_text = self._text
        return self._tree

    def _require_tree(self) -> Any:
        tree = self._current_tree()
        if self._tree_error is not None:
            raise ScenarioDocError(f"{self.file_label}: {self._tree_error}; fix the text first")
        if tree is None:  # empty text: start a mapping
            self._tree = tree = CommentedMap()
        return tree

    def _dump_tree(self) -> str:
        return dump(self._yaml, self._tree)

    def _restore(self, text: str) -> None:
        self._text = text
        self._tree_text = None

    def _push(self, step: _Step) -> None:
        last = self._undo[-1] if self._undo else None
        if (step.merge_key is not None and last is not None and last.merge_key == step.merge_key
                and last.after == step.before and not self._redo):
            paths = list(last.paths) + [p for p in step.paths if p not in last.paths]
            self._undo.pop()
            if step.after != last.before:
                self._undo.append(_Step(last.label, last.before, step.after, paths, step.merge_key))
            return
        self._undo.append(step)
        self._redo.clear()

    def end_merge(self) -> None:
        """The next edit starts an undo step of its own, whatever its `merge_key`."""
        if self._undo and self._undo[-1].merge_key is not None:
            last = self._undo[-1]
            self._undo[-1] = _Step(last.label, last.before, last.after, last.paths, None)

    def _notify(self, paths: list) -> None:
        for cb in list(self._listeners):
            cb(list(paths))

    @contextlib.contextmanager
    def _edit(self, label: str, paths: list, merge_key: Any = None):
        if self._batch is not None:
            self._batch.paths.extend(p for p in paths if p not in self._batch.paths)
            yield
            self._stale = True  # written out at the end of the batch, or when the text is read
            return
        before = self._text
        self._require_tree()
        try:
            yield
        except BaseException:
            self._restore(before)
            raise
        after = self._dump_tree()
        self._text = after
        self._tree_text = after
        if after != before:
            self._push(_Step(label, before, after, list(paths), merge_key))
            self._notify(list(paths))

    def _container(self, tree: Any, path: Path, *, create: bool, leaf_list: bool = False) -> Any:
        node = tree
        for depth, part in enumerate(path):
            here = path[: depth + 1]
            if isinstance(node, CommentedMap):
                if isinstance(part, int):
                    raise ScenarioDocError(f"{field_name(path[:depth]) or 'the document'} is a mapping: no item {part}")
                if create and depth == 0 and part not in node and base_has(node, part, self.path):
                    # a variant: the base's value becomes the variant's own, then the edit applies to it
                    self._insert_key(node, (), part, to_node(base_value(node, part, self.path), (part,)))
                if part not in node or node[part] is None:
                    if not create:
                        raise ScenarioDocError(f"{field_name(here)} is not in the scenario")
                    last = depth == len(path) - 1
                    fresh = CommentedSeq() if (last and leaf_list) else CommentedMap()
                    if part in node:
                        node[part] = fresh
                    else:
                        self._insert_key(node, path[:depth], part, fresh)
                node = node[part]
            elif isinstance(node, CommentedSeq):
                if not isinstance(part, int) or not -len(node) <= part < len(node):
                    raise ScenarioDocError(f"{field_name(path[:depth])} has {len(node)} items: no item {part!r}")
                node = node[part]
            else:
                raise ScenarioDocError(f"{field_name(path[:depth]) or 'the document'} is not a mapping or a list")
        return node

    def _assign(self, parent: Any, path: Path, value: Any) -> None:
        key = path[-1]
        if isinstance(parent, CommentedSeq):
            if not isinstance(key, int) or not -len(parent) <= key < len(parent):
                raise ScenarioDocError(f"{field_name(path[:-1])} has {len(parent)} items: no item {key!r}")
            old = parent[key]
            if same_shape(value, old) and len(value):
                self._update(old, value, path)
            else:
                replace_value(parent, key, to_node(value, path, old))
            return
        if not isinstance(parent, CommentedMap):
            raise ScenarioDocError(f"{field_name(path[:-1]) or 'the document'} is not a mapping")
        if isinstance(key, int):
            raise ScenarioDocError(f"{field_name(path[:-1])} is a mapping: no item {key}")
        if key in parent:
            old = parent[key]
            if same_shape(value, old) and len(value):
                self._update(old, value, path)
            else:
                replace_value(parent, key, to_node(value, path, old))
        else:
            self._insert_key(parent, path[:-1], key, to_node(value, path))

    def _update(self, node: Any, value: Any, path: Path) -> None:
        """Update a mapping or list in place (its comments and style stay)."""
        if isinstance(node, CommentedMap):
            for k in [k for k in node if k not in value]:
                self._delete_key(node, k)
            for k, v in value.items():
                self._assign(node, path + (k,), v)
            return
        # a list: update the common items, then cut or extend
        n = min(len(node), len(value))
        for i in range(n):
            self._assign(node, path + (i,), value[i])
        while len(node) > len(value):
            self._delete_item(node, len(node) - 1)
        for i in range(n, len(value)):
            self._insert_item(node, i, to_node(value[i], path + (i,)))
        if len(value) > FLOW_POINTS_MAX and all(isinstance(v, list) and v and all(is_number(x) for x in v) for v in value):
            node.fa.set_block_style()  # three or more points: one per line

    def _insert_key(self, node: CommentedMap, node_path: Path, key: str, value: Any) -> None:
        """Add a key where the schema puts it (after the fields that precede it in the model)."""
        model = _model_at(tuple(node_path))
        pos = len(node)
        if model is not None and key in model.model_fields:
            order = list(model.model_fields)
            rank = order.index(key)
            keys = list(node.keys())
            pos = 0
            for i, k in enumerate(keys):
                if k in order and order.index(k) < rank:
                    pos = i + 1
            if pos == 0 and keys and keys[0] not in order:
                pos = len(keys)
        # the lines above the next entry are kept by ruamel on the previous entry's tail: move
        # them after the new one, so they stay where they were
        if pos >= len(node):
            node[key] = value
        else:
            node.insert(pos, key, value)
        if pos > 0:
            move_tail_comment(node, list(node.keys())[pos - 1], key)

    def _insert_item(self, seq: CommentedSeq, index: int, node: Any) -> None:
        if index >= len(seq):
            seq.append(node)
        else:
            seq.insert(index, node)
        if index > 0 and not seq.fa.flow_style():
            move_tail_comment(seq, index - 1, index)

    def _delete_key(self, node: CommentedMap, key: str) -> None:
        keys = list(node.keys())
        i = keys.index(key)
        tail = take_tail(node, key)  # the lines above the next entry stay there
        del node[key]
        if tail and i > 0:
            append_tail(node, keys[i - 1], tail)

    def _delete_item(self, seq: CommentedSeq, index: int) -> None:
        tail = take_tail(seq, index) if not seq.fa.flow_style() else None
        del seq[index]
        if tail and index > 0:
            append_tail(seq, index - 1, tail)
