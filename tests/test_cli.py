"""The command line: help for every command, a plain message when there is no display."""
import os
import subprocess
import sys

import pytest

from simulator.core.paths import PROJECT_ROOT

MAIN = str(PROJECT_ROOT / "main.py")


def run(*args, env=None):
    return subprocess.run([sys.executable, MAIN, *args], capture_output=True, text=True, env=env, timeout=120)


def test_no_display_gives_a_plain_message_not_a_qt_trace():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    r = run(env=env)
    assert r.returncode == 2
    assert "needs a graphical display" in r.stderr
    assert "xvfb-run" in r.stderr and "validate" in r.stderr
    assert "qt.qpa" not in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("command", ["validate", "import-anatomy", "bench", "setup-data", "schema", "list-scenarios"])
def test_every_command_documents_itself(command):
    r = run(command, "--help")
    assert r.returncode == 0, r.stderr
    assert "usage:" in r.stdout


def test_unknown_benchmark_is_named():
    r = run("bench", "nonsense", "--json")
    assert r.returncode == 2
    assert "nonsense" in r.stderr


def test_python_dash_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "simulator", "--version"], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert r.returncode == 0 and "neurolysis-trainer" in r.stdout
