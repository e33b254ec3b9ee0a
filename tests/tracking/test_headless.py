"""The tracking package is headless: no Qt, no VTK (it runs in servers, benchmarks and tests)."""
import subprocess
import sys


def test_importing_the_tracking_package_loads_no_gui_library():
    code = (
        "import importlib, pkgutil, sys, simulator.tracking as t\n"
        "for m in pkgutil.iter_modules(t.__path__): importlib.import_module('simulator.tracking.' + m.name)\n"
        "bad = [n for n in sys.modules if n.split('.')[0] in ('PySide6', 'vtk', 'vtkmodules', 'pyqtgraph', 'shiboken6')]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
