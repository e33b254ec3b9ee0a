"""The domain (simulator/core) and the imaging kernels must not depend on Qt or VTK."""
import ast
import subprocess
import sys
from pathlib import Path

import simulator

PACKAGE = Path(simulator.__file__).parent
FORBIDDEN = ("PySide6", "vtk", "vtkmodules", "pyqtgraph", "shiboken6")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_and_imaging_sources_do_not_import_qt_or_vtk():
    offenders = []
    for sub in ("core", "imaging"):
        for path in (PACKAGE / sub).rglob("*.py"):
            bad = _imports(path) & set(FORBIDDEN)
            if bad:
                offenders.append(f"{path.relative_to(PACKAGE)}: {sorted(bad)}")
    assert offenders == []


def test_importing_all_core_modules_loads_no_gui_library():
    code = (
        "import importlib, pkgutil, sys, simulator.core as c\n"
        "for m in pkgutil.iter_modules(c.__path__): importlib.import_module('simulator.core.' + m.name)\n"
        f"bad = [n for n in sys.modules if n.split('.')[0] in {FORBIDDEN!r}]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
