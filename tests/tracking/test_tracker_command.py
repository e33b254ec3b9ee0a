"""`main.py tracker`: the simulated tracker and the connection check from the command line."""
import json
import subprocess
import sys

from simulator.tracking.server import TrackingServer
from simulator.tracking.simtracker import SimulatedTracker


def main(*args, timeout=60):
    return subprocess.run([sys.executable, "main.py", "tracker", *args], capture_output=True, text=True, timeout=timeout)


def test_listen_reports_the_devices_a_server_sends(pass_file):
    tracker = SimulatedTracker(pass_file, port=0, speed=1.0, loop=True)
    tracker.start()
    try:
        r = main("listen", "--port", str(tracker.port), "--seconds", "3", "--json")
    finally:
        tracker.stop()
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    rates = {d["name"]: d["rate_hz"] for d in out["devices"]}
    assert set(rates) == {"NeedleTipToReference", "ProbeToReference"} and all(40 < v < 80 for v in rates.values())
    assert out["errors"] == 0


def test_bad_files_ports_and_servers_are_one_line_each(tmp_path):
    bad = tmp_path / "broken.igs.mha"
    bad.write_text("ObjectType = Image\nNDims = 3\nSeq_Frame0000_NeedleTipToReferenceTransform = 1 2 3\n")
    r = main("replay", str(bad))
    assert r.returncode == 1 and r.stderr.startswith("tracker: ") and "broken.igs.mha" in r.stderr
    assert "Traceback" not in r.stderr
    busy = TrackingServer("127.0.0.1", 0)
    busy.start()
    try:
        r = main("demo", "--scenario", "needle_basics_gel", "--port", str(busy.port), "--seconds", "1")
        assert r.returncode == 1 and "is in use" in r.stderr and "Traceback" not in r.stderr
        free = busy.port
    finally:
        busy.stop()
    r = main("listen", "--port", str(free), "--seconds", "0.5")
    assert r.returncode == 1 and "cannot connect" in r.stderr and "Traceback" not in r.stderr
