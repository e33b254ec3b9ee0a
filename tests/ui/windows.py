"""Opening and closing the trainer's real window in GUI tests."""
from __future__ import annotations

from PySide6.QtCore import QSettings

from simulator.ui.driver import process, wait_until
from simulator.ui.main_window import MainWindow


def open_window(scenario: str, settings_path, answers: dict | None = None, default: str = "discard") -> MainWindow:
    """The window on `scenario`, shown, its anatomy and plots ready. Questions are answered from
    `answers` (key -> answer, else `default`) and noted in `w.asked` as (key, text)."""
    answers = {} if answers is None else answers
    w = MainWindow(scenario=scenario, settings=QSettings(str(settings_path), QSettings.Format.IniFormat))
    w.asked = []
    w.question_answer = lambda key, text: w.asked.append((key, text)) or answers.get(key, default)
    w.resize(1500, 950)
    w.show()
    wait_until(lambda: w.scenario is not None and w.scenario.id == scenario and w.anatomy is not None, 60, "the scenario")
    wait_until(lambda: w.procedure_panel.plots_ready, 20, "the plots")
    w.view3d.render_now()
    return w


def close_window(w: MainWindow) -> None:
    """Close it (discarding an attempt in progress) and delete it now."""
    import gc

    from PySide6.QtCore import QCoreApplication, QEvent

    w.question_answer = lambda key, text: "discard"
    w.close()
    w.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    process(50)
    gc.collect()
