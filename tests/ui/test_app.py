"""The entry point: `run_app` opens the window and returns the exit code; a display that does not
answer is reported plainly (no Qt plugin trace)."""
from __future__ import annotations

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from simulator.ui import app as app_mod
from simulator.ui.main_window import MainWindow


def test_unreachable_display_is_reported_plainly(monkeypatch, capsys):
    monkeypatch.setenv("DISPLAY", ":987")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    assert not app_mod.x_display_reachable()
    assert app_mod.run_app() == 2
    err = capsys.readouterr().err
    assert "':987' does not answer" in err and "xvfb-run -a python main.py" in err


def test_the_virtual_display_is_reachable():
    assert app_mod.x_display_reachable()


def test_run_app_opens_the_scenario_and_returns_when_closed(qtbot, tmp_path, monkeypatch):
    from tests.ui.test_main_window import SCENARIO

    data = tmp_path / "data"
    (data / "scenarios").mkdir(parents=True)
    monkeypatch.setenv("NEUROLYSIS_DATA", str(data))
    (data / "scenarios" / "app_gel.yaml").write_text(SCENARIO.format(
        id="app_gel", title="App test", anatomy="phantom:gel_block", position="supine", modality="ultrasound"))
    # keep the user's own settings out of it
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    seen = {}

    def close_when_shown():
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        if not windows:
            QTimer.singleShot(50, close_when_shown)
            return
        w = windows[0]

        def shown(_ref):
            seen["scenario"] = w.scenario.id
            seen["organisation"] = QApplication.organizationName()
            w.close()

        if w.scenario is not None:
            shown(w.anatomy_ref)
        else:
            w.anatomy_shown.connect(shown)

    QTimer.singleShot(0, close_when_shown)
    assert app_mod.run_app(scenario="app_gel") == 0
    assert seen == {"scenario": "app_gel", "organisation": "NeurolysisTrainer"}
    assert (tmp_path / "settings" / "NeurolysisTrainer" / "Trainer.conf").exists()


def test_many_qt_calls_do_not_exhaust_the_references_to_true_and_none(qapp):
    """PySide6 6.12.0 on Python 3.11 lets each `emit()` steal a reference to True (its result) and
    each Qt call returning nothing one to None: the interpreter aborts after a few thousand calls
    ("bool_dealloc", "none_dealloc"). The PySide6 pyproject.toml asks for must not do that."""
    import sys

    from PySide6.QtCore import QObject, Signal
    from PySide6.QtWidgets import QLabel

    class Emitter(QObject):
        changed = Signal(object)

    e = Emitter()
    got = []
    e.changed.connect(got.append)
    label = QLabel()
    true0, none0 = sys.getrefcount(True), sys.getrefcount(None)
    for i in range(20_000):
        e.changed.emit(i)
        label.setText(str(i))
    assert len(got) == 20_000 and label.text() == "19999"
    if sys.version_info < (3, 12):  # immortal from 3.12 on
        assert abs(sys.getrefcount(True) - true0) < 100 and abs(sys.getrefcount(None) - none0) < 100
