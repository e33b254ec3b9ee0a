"""Start the trainer's window: `run_app(scenario=None) -> exit code`.

`guard_bool_refcounts()` works around a reference-count bug of PySide6 6.12.0 on Python 3.11 (see
its notes) where such a PySide6 is installed anyway; pyproject.toml asks for an older one.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: True, False and None are topped up by this many references when they fall below BOOL_REFS_LOW
BOOL_REFS_TOP_UP = 1 << 30
BOOL_REFS_LOW = 1 << 29


def _leaky_pyside() -> bool:
    import PySide6

    return PySide6.__version__.startswith("6.12.")


def guard_bool_refcounts() -> bool:
    """PySide6 6.12 on Python 3.11 returns singletons without taking a new reference to them:
    `SignalInstance.emit()` returns True, and every Qt method returning nothing (`setText`,
    `setValue`, `QTimer.start`, `processEvents` ...) returns None, so each such call steals one of
    their references. After a few thousand calls (a replay seek, a long session, a test session)
    the interpreter aborts with "Fatal Python error: bool_dealloc" / "none_dealloc". From Python
    3.12 these objects are immortal and nothing happens. Here their reference counts are raised
    far out of reach (a CPython 3.11 object starts with its reference count, `ob_refcnt`); calling
    this again tops them up. Returns True when it raised them."""
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython" or not _leaky_pyside():
        return False
    raised = False
    for obj in (True, False, None):
        if sys.getrefcount(obj) < BOOL_REFS_LOW:
            ctypes.c_ssize_t.from_address(id(obj)).value += BOOL_REFS_TOP_UP
            raised = True
    return raised

from simulator.ui.main_window import APPLICATION, ORGANISATION

CANNOT_CONNECT = """\
The trainer cannot open a window: the display {display!r} does not answer.

- Check DISPLAY (or start a virtual display: `xvfb-run -a python main.py`).
- Headless commands work without a display: `python main.py --help`.
"""


def x_display_reachable(display: str | None = None) -> bool:
    """True unless an X display is named and cannot be opened (Qt would abort with a plugin trace)."""
    display = display if display is not None else os.environ.get("DISPLAY")
    if not sys.platform.startswith("linux") or not display or os.environ.get("WAYLAND_DISPLAY"):
        return True
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform and not platform.startswith("xcb"):
        return True
    name = ctypes.util.find_library("X11")
    if not name:
        return True  # let Qt report it
    try:
        x11 = ctypes.CDLL(name)
        x11.XOpenDisplay.restype = ctypes.c_void_p
        x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
        handle = x11.XOpenDisplay(display.encode())
        if not handle:
            return False
        x11.XCloseDisplay(handle)
    except OSError:
        return True
    return True


def run_app(scenario: str | None = None, argv: list[str] | None = None) -> int:
    if not x_display_reachable():
        sys.stderr.write(CANNOT_CONNECT.format(display=os.environ.get("DISPLAY")))
        return 2
    from PySide6.QtWidgets import QApplication

    from simulator.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("Neurolysis Trainer")
    window = MainWindow(scenario=scenario)
    window.show()
    return int(app.exec())
