"""Form fields bound to paths of a `ScenarioDocument`, validating as the instructor types.

A field shows the document's value at its path and, under it, the document's validation errors
for that path - the message the `validate` command prints for it (its full line, with file and
line number, in the tooltip and in the editor's error list). Every change goes into the document
as an undoable edit; the keystrokes of one visit to a field are one undo step.

Numbers are typed in line edits, not spin boxes, so that a wrong value (a letter, a negative
tolerance) reaches the document and gets the validator's own message instead of being refused
silently. Ctrl+Z / Ctrl+Shift+Z in a field undo the document (not the field's own text history),
so the editor has one undo history.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from simulator.core.scenario_errors import NO_VALUE, _show
from simulator.core.scenario_doc import field_name

TYPING_MS = 150  # typing goes into the document (and is validated) after this pause
ERROR_STYLE = "color: #c0161a;"
BAD_FIELD_STYLE = "border: 1px solid #d01010; background: #fff0f0;"


def errors_under(errors, path) -> list:
    name = field_name(path)
    if not name:
        return list(errors)
    return [e for e in errors if e.field == name or e.field.startswith(name + ".") or e.field.startswith(name + "[")]


def error_text(e) -> str:
    """The validator's message for a field, as `validate` prints it after "file:line: field: "."""
    got = f" (got {_show(e.value)})" if e.value is not NO_VALUE else ""
    return f"{e.message}{got}"


def set_text(widget, text: str) -> None:
    """setText only when the text changes (fewer Qt calls on every keystroke's refresh)."""
    if widget.text() != text:
        widget.setText(text)


def set_enabled(widget, on: bool) -> None:
    if widget.isEnabled() != bool(on):
        widget.setEnabled(bool(on))


def format_value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isfinite(v) and v == int(v) and abs(v) < 1e15:
            return str(int(v))
        return repr(v)
    if isinstance(v, (list, tuple)):
        return ", ".join(format_value(x) for x in v)
    return str(v)


def parse_number(text: str):
    """A typed number as int or float; anything else stays the text (the validator names it)."""
    t = text.strip()
    if t == "":
        return None
    try:
        return int(t)
    except ValueError:
        pass
    try:
        f = float(t)
    except ValueError:
        return t
    return f if math.isfinite(f) else t


def parse_numbers(text: str) -> list:
    return [parse_number(x) for x in text.replace(";", ",").split(",") if x.strip() != ""]


class _UndoKeysToDocument(QObject):
    """Leave Ctrl+Z / Ctrl+Shift+Z to the window's Undo / Redo actions (the document's history)."""

    def eventFilter(self, obj, event):  # noqa: N802 (Qt API)
        if event.type() == QEvent.Type.ShortcutOverride:
            if event.matches(QKeySequence.StandardKey.Undo) or event.matches(QKeySequence.StandardKey.Redo):
                event.ignore()
                return True
        return False


class Binder(QObject):
    """Owns the fields of the editor's forms; refreshes them when the document changes."""

    edited = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.doc = None
        self.fields: list["Field"] = []
        self._source: "Field | None" = None
        self._visit = 0  # a new number when a field is left: the next edit starts an undo step
        self._undo_keys = _UndoKeysToDocument(self)
        self.errors: list = []
        self._pending: dict = {}  # field -> (path, value, unset): typing not yet in the document
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(TYPING_MS)
        self._timer.timeout.connect(self.flush)

    @property
    def pending(self) -> bool:
        """Typing waits for a pause before it goes into the document."""
        return bool(self._pending)

    def schedule(self, field: "Field", path, value, unset: bool = False) -> None:
        """Typing: the value goes into the document after a pause of TYPING_MS (or when the
        field is left), so a fast typist is never slowed by validation."""
        if path is None:
            return
        old = self._pending.get(field)
        if old is not None and old[0] != path:
            self.flush()
        self._pending[field] = (path, value, unset)
        self._timer.start()

    def flush(self) -> None:
        """Put waiting typing into the document now."""
        self._timer.stop()
        items = list(self._pending.items())
        self._pending.clear()
        for field, (path, value, unset) in items:
            self.commit(field, path, value, unset=unset)

    def set_document(self, doc) -> None:
        self._timer.stop()
        self._pending.clear()
        self.doc = doc
        self._visit += 1
        self.refresh()

    def add(self, field: "Field") -> "Field":
        field.binder = self
        self.fields.append(field)
        for w in field.inputs():
            w.installEventFilter(self._undo_keys)
        return field

    def commit(self, field: "Field", path, value, *, unset: bool = False, label: str | None = None) -> None:
        """One edit from a field; consecutive edits of the same field and path merge into one
        undo step (until the field loses focus or another edit happens)."""
        doc = self.doc
        if doc is None or path is None:
            return
        label = label or f"Edit {field_name(path)}"
        if unset and not doc.has(path):
            return
        if not unset and doc.has(path) and doc.get(path) == value:
            return
        self._source = field
        key = ("field", id(field), path, self._visit)  # this visit's keystrokes: one undo step
        try:
            if unset:
                doc.unset(path, label=label, merge_key=key)
            else:
                doc.set(path, value, label=label, merge_key=key)
        finally:
            self._source = None
        self.edited.emit()

    def end_merge(self) -> None:
        self._visit += 1
        if self.doc is not None:
            self.doc.end_merge()

    def refresh(self) -> None:
        doc = self.doc
        self.errors = doc.errors() if doc is not None else []
        for f in self.fields:
            f.refresh(doc, self.errors, update_value=f is not self._source and f not in self._pending)


class Field:
    """A widget bound to a document path (`path_fn()` gives the path, None: disabled)."""

    def __init__(self, path, widget: QWidget, *, label: str = "", tip: str = "", optional: bool = False,
                 default=None):
        self.path_fn: Callable = path if callable(path) else (lambda p=tuple(path): p)
        self.widget = widget
        self.default = default  # the schema's value when the key is absent (shown, not written)
        self.label = label
        self.optional = optional
        self.binder: Binder | None = None
        self.error = QLabel("")
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setWordWrap(True)
        self.error.hide()
        if tip:
            widget.setToolTip(tip)
        self._tip = tip
        self._updating = False

    @property
    def path(self):
        return self.path_fn()

    def inputs(self) -> list:
        return [self.widget]

    def container(self) -> QWidget:
        """The widget and its error line, for a form layout."""
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(1)
        lay.addWidget(self.widget)
        lay.addWidget(self.error)
        return box

    typed = False  # typing fields wait for a pause (Binder.schedule)

    def commit(self, value, unset: bool = False) -> None:
        if self._updating or self.binder is None:
            return
        if self.typed:
            self.binder.schedule(self, self.path, value, unset=unset)
        else:
            self.binder.commit(self, self.path, value, unset=unset)

    def _finished(self) -> None:
        if self.binder is not None:
            self.binder.flush()
            self.binder.end_merge()

    def refresh(self, doc, errors, update_value: bool = True) -> None:
        path = self.path
        enabled = doc is not None and path is not None
        set_enabled(self.widget, enabled)
        if not enabled:
            self._show_errors("", "")
            return
        if update_value:
            self._updating = True
            try:
                self.show_value(doc.get(path))
            finally:
                self._updating = False
        errs = errors_under(errors, path)
        self._show_errors("\n".join(error_text(e) for e in errs), "\n".join(e.format(doc.file_label) for e in errs))

    def _show_errors(self, text: str, tip: str) -> None:
        if (text, tip) == getattr(self, "_shown", ("", "")):
            return
        self._shown = (text, tip)
        self.error.setText(text)
        self.error.setToolTip(tip)
        self.error.setVisible(bool(text))
        bad = bool(text) and isinstance(self.widget, (QLineEdit, QPlainTextEdit))
        self.widget.setStyleSheet(BAD_FIELD_STYLE if bad else "")

    def show_value(self, value) -> None:
        """Show the document's value (each kind of field shows it its own way)."""
        tip = f"{self._tip}\n{format_value(value)}".strip()
        if self.widget.toolTip() != tip:
            self.widget.setToolTip(tip)


class LineField(Field):
    """Text or numbers in a line edit. kind: str | number | numbers (comma-separated list)."""

    typed = True

    def __init__(self, path, *, kind: str = "str", placeholder: str = "", **kw):
        w = QLineEdit()
        super().__init__(path, w, **kw)
        self.kind = kind
        if not placeholder and self.default is not None:
            placeholder = f"{format_value(self.default)} (default)"
        w.setPlaceholderText(placeholder)
        w.textEdited.connect(self._edited)
        w.editingFinished.connect(self._finished)

    def _edited(self, text: str) -> None:
        if self.kind == "number":
            value = parse_number(text)
        elif self.kind == "numbers":
            value = parse_numbers(text)
        else:
            value = text if text != "" or not self.optional else None
        if value is None and self.optional:
            self.commit(None, unset=True)
        else:
            self.commit(value)

    def show_value(self, value) -> None:
        text = format_value(value)
        if self.widget.text() != text:
            self.widget.setText(text)


class SpinField(Field):
    """A bounded number in a spin box (radius, tolerance: values the schema's range allows)."""

    typed = True

    def __init__(self, path, *, minimum: float, maximum: float, step: float = 0.5, decimals: int = 1,
                 suffix: str = " mm", **kw):
        w = QDoubleSpinBox()
        w.setRange(minimum, maximum)
        w.setSingleStep(step)
        w.setDecimals(decimals)
        w.setSuffix(suffix)
        w.setKeyboardTracking(True)
        super().__init__(path, w, **kw)
        w.valueChanged.connect(self._changed)
        w.editingFinished.connect(self._finished)

    def _changed(self, v: float) -> None:
        self.commit(int(v) if float(v).is_integer() else float(v))

    def show_value(self, value) -> None:
        try:
            v = float(value) if value is not None else self.widget.minimum()
        except (TypeError, ValueError):
            return
        if abs(self.widget.value() - v) > 1e-9:
            self.widget.setValue(v)


class ComboField(Field):
    """One of a set of values. `choices`: (value, text) pairs; optional: a "(none)" entry unsets."""

    def __init__(self, path, choices: Iterable, **kw):
        w = QComboBox()
        super().__init__(path, w, **kw)
        self.set_choices(choices)
        w.activated.connect(self._activated)

    def set_choices(self, choices) -> None:
        choices = list(choices)
        if choices == getattr(self, "_choices", None):
            return
        self._choices = choices
        w = self.widget
        current = w.currentData()
        w.blockSignals(True)
        w.clear()
        if self.optional:
            w.addItem("(none)", None)
        for value, text in choices:
            w.addItem(text, value)
        if current is not None:
            self.show_value(current)
        w.blockSignals(False)

    def _activated(self, i: int) -> None:
        value = self.widget.itemData(i)
        if value is None:
            self.commit(None, unset=True)
        else:
            self.commit(value)
        if self.binder:
            self.binder.end_merge()

    def show_value(self, value) -> None:
        w = self.widget
        if value is None and self.default is not None:
            value = self.default  # absent: the schema's default is what the trainer uses
        i = w.findData(value)
        if i < 0 and value is not None:
            w.addItem(f"{value} (not valid)", value)
            i = w.count() - 1
        if w.currentIndex() != max(i, 0):
            w.setCurrentIndex(max(i, 0))


class CheckField(Field):
    def __init__(self, path, text: str, default: bool = False, **kw):
        w = QCheckBox(text)
        super().__init__(path, w, **kw)
        self.default = default
        w.toggled.connect(lambda on: (self.commit(bool(on)), self.binder.end_merge() if self.binder else None))

    def show_value(self, value) -> None:
        on = self.default if value is None else bool(value)
        if self.widget.isChecked() != on:
            self.widget.setChecked(on)


class TextField(Field):
    """Several lines of text (instructions)."""

    typed = True

    def __init__(self, path, **kw):
        w = QPlainTextEdit()
        w.setTabChangesFocus(True)
        super().__init__(path, w, **kw)
        w.textChanged.connect(self._changed)

    def _changed(self) -> None:
        if self._updating:
            return
        text = self.widget.toPlainText()
        if self.optional and not text:
            self.commit(None, unset=True)
        else:
            self.commit(text if text.endswith("\n") or not text else text + "\n")

    def show_value(self, value) -> None:
        text = "" if value is None else str(value)
        if self.widget.toPlainText().rstrip("\n") != text.rstrip("\n"):
            self.widget.setPlainText(text.rstrip("\n"))


class ChecklistField(Field):
    """A list of choices (indications, automatic fails) as check boxes."""

    def __init__(self, path, choices: Iterable, **kw):
        w = QListWidget()
        super().__init__(path, w, **kw)
        self.values = []
        for value, text in choices:
            it = QListWidgetItem(text)
            it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            it.setCheckState(Qt.CheckState.Unchecked)
            it.setData(Qt.ItemDataRole.UserRole, value)
            w.addItem(it)
            self.values.append(value)
        w.setMaximumHeight(min(22 * len(self.values) + 6, 180))
        w.itemChanged.connect(self._changed)

    def checked(self) -> list:
        w = self.widget
        return [w.item(i).data(Qt.ItemDataRole.UserRole) for i in range(w.count())
                if w.item(i).checkState() == Qt.CheckState.Checked]

    def _changed(self, _item) -> None:
        if self._updating:
            return
        self.commit(self.checked())
        if self.binder:
            self.binder.end_merge()

    def show_value(self, value) -> None:
        chosen = set(value or [])
        w = self.widget
        w.blockSignals(True)
        for i in range(w.count()):
            it = w.item(i)
            it.setCheckState(Qt.CheckState.Checked if it.data(Qt.ItemDataRole.UserRole) in chosen else Qt.CheckState.Unchecked)
        w.blockSignals(False)


def form(binder: Binder, rows: list, parent=None) -> QWidget:
    """A form of (label, Field | QWidget) rows; fields are registered with the binder."""
    box = QWidget(parent)
    lay = QFormLayout(box)
    lay.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    for label, item in rows:
        if isinstance(item, Field):
            binder.add(item)
            if item.label == "":
                item.label = label
            lay.addRow(label, item.container())
        elif label is None:
            lay.addRow(item)
        else:
            lay.addRow(label, item)
    return box
