"""Opening and closing the trainer's real window in GUI tests."""
from __future__ import annotations

from PySide6.QtCore import QSettings

from simulator.ui.driver import process, wait_until
from simulator.ui.main_window import MainWindow


#: Seconds a test waits for work to finish (a patient loaded, an imaging engine ready, a worker's
#: frame): the wait ends as soon as the work is done, so this bounds only a real hang. A loaded
#: machine (CI, or 2 cores shared by several suites) is many times slower than an idle one, and a
#: fresh checkout compiles its numba kernels on first use.
WORK_TIMEOUT_S = 300.0


def open_window(scenario: str, settings_path, answers: dict | None = None, default: str = "discard") -> MainWindow:
    """The window on `scenario`, shown, its anatomy and plots ready. Questions are answered from
    `answers` (key -> answer, else `default`) and noted in `w.asked` as (key, text). If it never
    gets ready the window is closed before the error is raised (no window outlives its test)."""
    answers = {} if answers is None else answers
    w = MainWindow(scenario=scenario, settings=QSettings(str(settings_path), QSettings.Format.IniFormat))
    w.asked = []
    w.question_answer = lambda key, text: w.asked.append((key, text)) or answers.get(key, default)
    w.resize(1500, 950)
    w.show()
    try:
        wait_until(lambda: w.scenario is not None and w.scenario.id == scenario and w.anatomy is not None,
                   WORK_TIMEOUT_S, "the scenario")
        wait_until(lambda: w.procedure_panel.plots_ready, WORK_TIMEOUT_S, "the plots")
        w.view3d.render_now()
    except BaseException:
        close_window(w)
        raise
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
