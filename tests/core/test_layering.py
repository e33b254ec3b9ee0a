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


def test_the_layer_contracts_in_pyproject_hold():
    """import-linter's contracts ([tool.importlinter] in pyproject.toml): ui > commands | benchmarks >
    records | render > anatomy | imaging | scripted | tracking > core; core and imaging without Qt
    or VTK; render without Qt."""
    r = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
                        "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))"],
                       capture_output=True, text=True, cwd=PACKAGE.parent, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


def _dynamic_simulator_imports(path: Path) -> list[str]:
    """Calls that import a simulator module by a name in a string (importlib.import_module,
    importlib.util.find_spec, __import__): the layer contracts cannot see them."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
        if name not in ("import_module", "find_spec", "__import__"):
            continue
        arg = node.args[0]
        text = arg.value if isinstance(arg, ast.Constant) else (
            arg.values[0].value if isinstance(arg, ast.JoinedStr) and arg.values
            and isinstance(arg.values[0], ast.Constant) else "")
        if isinstance(text, str) and (text.startswith("simulator") or text.startswith(".")):
            out.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {name}({text!r}...)")
    return out


def test_no_simulator_module_is_looked_up_by_name():
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in _dynamic_simulator_imports(path)]
    assert found == []


def test_every_command_and_benchmark_is_registered_in_the_cli():
    """The CLI imports its commands and benchmarks by name (no look-ups by string): a new module
    must be listed there."""
    import pkgutil

    import simulator.benchmarks
    import simulator.commands
    from simulator import cli

    registered = {m.__name__.rsplit(".", 1)[1] for m in cli.command_modules()}
    with_parser = {m.name for m in pkgutil.iter_modules(simulator.commands.__path__)
                   if "def add_parser(" in (PACKAGE / "commands" / f"{m.name}.py").read_text()}
    assert with_parser == registered
    benches = {m.name for m in pkgutil.iter_modules(simulator.benchmarks.__path__)
               if "def run(" in (PACKAGE / "benchmarks" / f"{m.name}.py").read_text()}
    assert benches <= set(cli.BENCHMARKS)
    for name in cli.BENCHMARKS:
        assert callable(cli.benchmark_module(name).run)
