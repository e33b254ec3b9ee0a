"""Start the trainer's window: `run_app(scenario=None, patient=None) -> exit code`."""
from __future__ import annotations

import os
import sys

from simulator.core.display import display_status
from simulator.ui.main_window import APPLICATION, ORGANISATION

CANNOT_CONNECT = """\
The trainer cannot open a window: the display {display!r} does not answer.

- Check DISPLAY (or start a virtual display: `xvfb-run -a python main.py`).
- Headless commands work without a display: `python main.py --help`.
"""


def x_display_reachable(display: str | None = None) -> bool:
    """True unless an X display is named and cannot be opened (Qt would abort with a plugin trace)."""
    return display_status(display) != "unreachable"


def run_app(scenario: str | None = None, argv: list[str] | None = None, patient: str | None = None) -> int:
    if not x_display_reachable():
        sys.stderr.write(CANNOT_CONNECT.format(display=os.environ.get("DISPLAY")))
        return 2
    from PySide6.QtWidgets import QApplication

    from simulator.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("Neurolysis Trainer")
    window = MainWindow(scenario=scenario, patient=patient)
    window.show()
    return int(app.exec())
