"""The GUI benchmarks' child process: the parent runs `python -m MODULE ARGS...` (under `xvfb-run`
when there is no DISPLAY, or on an Xvfb it starts), the child measures with a data folder of its
own and prints one JSON line, then leaves with os._exit (no X or finalization trouble)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable


def ensure_display() -> tuple[bool, object]:
    """(True, None) when there is a display; else (False, the Xvfb process we started, or None)."""
    if os.environ.get("DISPLAY"):
        return True, None
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        return False, None
    for n in range(90, 110):
        if os.path.exists(f"/tmp/.X11-unix/X{n}") or os.path.exists(f"/tmp/.X{n}-lock"):
            continue
        proc = subprocess.Popen([xvfb, f":{n}", "-screen", "0", "1600x1000x24", "-ac", "+extension", "GLX",
                                 "+render", "-nolisten", "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if os.path.exists(f"/tmp/.X11-unix/X{n}"):
                os.environ["DISPLAY"] = f":{n}"
                return True, proc
            time.sleep(0.05)
        proc.terminate()
    return False, None


def run_child(module: str, args: list[str], timeout_s: float = 1800) -> dict:
    """The JSON the child `python -m module args...` prints (or an error naming its exit status)."""
    cmd = [sys.executable, "-m", module] + list(args)
    if not os.environ.get("DISPLAY"):
        xvfb_run = shutil.which("xvfb-run")
        if xvfb_run is None:
            ok, _ = ensure_display()
            if not ok:
                return {"error": "no display: install Xvfb (apt-get install xvfb) or set DISPLAY"}
        else:
            cmd = [xvfb_run, "-a", "-s", "-screen 0 1600x1000x24 -ac +extension GLX +render"] + cmd
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"error": f"the measuring process failed (exit {proc.returncode})", "stderr": proc.stderr[-2000:]}


def child_main(measure: Callable[[str], dict], prefix: str = "nt-bench-") -> None:
    """In the child: `measure(data_folder)` with a data folder of its own (the shared anatomies
    linked in; the trainer records every attempt into a records store of the benchmark's own),
    its figures (or the error with the end of its traceback) printed as one JSON line."""
    from simulator.core.paths import link_shared_data

    data = tempfile.mkdtemp(prefix=prefix)
    os.environ["NEUROLYSIS_DATA"] = str(link_shared_data(data))
    try:
        out = measure(data)
    except Exception as e:  # noqa: BLE001 - reported in the JSON
        import traceback

        out = {"error": f"{e.__class__.__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
    shutil.rmtree(data, ignore_errors=True)
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    os._exit(0)
