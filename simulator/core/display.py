"""Is there a display? The one check the trainer, the reports and the 3D scene ask.

`display_status()` answers "ok" (a display Qt and VTK can open: not Linux, a Qt platform that
needs none, Wayland, or an X display that answers), "none" (no DISPLAY nor WAYLAND_DISPLAY) or
"unreachable" (DISPLAY names an X server that does not answer: Qt would abort with a plugin
trace). No Qt here: the X server is asked through Xlib with ctypes.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: What `main.py` says when there is no display at all (the trainer and the dashboards need one).
NO_DISPLAY_MESSAGE = """\
The trainer needs a graphical display, and this machine has none (DISPLAY and WAYLAND_DISPLAY are unset).

- On a desktop: run it from a terminal inside your graphical session.
- Over SSH: connect with `ssh -X`, or start a virtual display: `xvfb-run -a python main.py`.
- Headless commands work without a display:
    python main.py validate scenarios/*.yaml
    python main.py import-anatomy --help
    python main.py snapshot --help      (fluoroscopy / ultrasound / 3D view of a scenario to PNG)
    python main.py score --help         (score a recording, or Perk Tutor metrics of a tracked file)
    python main.py records --help       (trainees, attempts, exports, reports, rescoring)
    python main.py bench --help
"""

#: Qt platforms that need no window system
HEADLESS_QT_PLATFORMS = ("offscreen", "minimal", "vnc", "eglfs")


def x_display_answers(display: str) -> bool:
    """True unless the X display cannot be opened (True as well when Xlib is missing: Qt reports it)."""
    name = ctypes.util.find_library("X11")
    if not name:
        return True
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


def display_status(display: str | None = None) -> str:
    """"ok", "none" or "unreachable" (see the module notes); `display` overrides $DISPLAY."""
    if not sys.platform.startswith("linux"):
        return "ok"
    platform = os.environ.get("QT_QPA_PLATFORM", "").split(":")[0]
    if platform in HEADLESS_QT_PLATFORMS or os.environ.get("WAYLAND_DISPLAY"):
        return "ok"
    display = display if display is not None else os.environ.get("DISPLAY")
    if not display:
        return "none"
    if platform and platform != "xcb":
        return "ok"
    return "ok" if x_display_answers(display) else "unreachable"


def has_display() -> bool:
    return display_status() == "ok"


def x_display_available() -> bool:
    """DISPLAY names an X server that answers (VTK's on-screen and X-backed windows need one;
    without it VTK renders offscreen through EGL)."""
    display = os.environ.get("DISPLAY")
    return bool(display) and x_display_answers(display)
