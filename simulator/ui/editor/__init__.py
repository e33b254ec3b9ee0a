"""The scenario editor: an editor mode of the trainer's main window (issue 8).

    from simulator.ui.editor import install_editor
    editor = install_editor(window)      # adds the "Scenario editor" menu; returns the EditorMode

See `simulator.ui.editor.mode` for the layout and the clicks, `fields` for the validating forms,
`slices` for the slice views, `panels` for the forms.
"""
from __future__ import annotations

from simulator.ui.editor.mode import EditorMode


def install_editor(window) -> EditorMode:
    """Add the scenario editor to a `MainWindow` (its menu, dock and slice views, hidden until
    the editor is entered). The window keeps it as `window.editor`."""
    existing = getattr(window, "editor", None)
    if isinstance(existing, EditorMode):
        return existing
    editor = EditorMode(window)
    window.editor = editor
    window.destroyed.connect(lambda *_: editor.shutdown())
    return editor


__all__ = ["EditorMode", "install_editor"]
