"""`snapshot` renders a scenario's views to PNG; the needle shows where the geometry says."""
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from simulator.core.paths import PROJECT_ROOT

MAIN = str(PROJECT_ROOT / "main.py")


def read_png(path) -> np.ndarray:
    """Decode the PNGs our encoder writes (8-bit grey or RGB, any filter)."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            ch = {0: 1, 2: 3}[ctype]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(h, 1 + w * ch)
    out = np.zeros((h, w * ch), dtype=np.int32)
    for r in range(h):
        f, line = raw[r, 0], raw[r, 1:].astype(np.int32)
        prev = out[r - 1] if r else np.zeros(w * ch, np.int32)
        if f == 0:
            out[r] = line
        elif f == 2:
            out[r] = (line + prev) % 256
        elif f == 1:
            row = line.copy()
            for i in range(ch, len(row)):
                row[i] = (row[i] + row[i - ch]) % 256
            out[r] = row
        else:
            raise AssertionError(f"filter {f} not handled by this test decoder")
    return out.reshape(h, w, ch).squeeze().astype(np.uint8)


def snapshot(*args):
    return subprocess.run([sys.executable, MAIN, "snapshot", *args], capture_output=True, text=True, timeout=300)


def test_ultrasound_snapshot_of_the_gel_phantom_shows_the_in_plane_needle(tmp_path):
    # Probe from the scenario (transverse over the vessel and nerve); a 45-degree needle in plane from
    # lateral, once advanced 25 mm and once barely through the surface. The speckle is fixed in the
    # tissue, so the difference of the two images is the needle alone.
    images = []
    for depth in ("25", "1"):
        out = tmp_path / f"us{depth}.png"
        r = snapshot("needle_basics_gel", "--view", "ultrasound", "--out", str(out),
                     "--entry", "30,0,0", "--target", "12,-18,0", "--depth", depth)
        assert r.returncode == 0, r.stderr
        img = read_png(out).astype(float)
        images.append(img.mean(axis=2) if img.ndim == 3 else img)
    diff = images[0] - images[1]
    # The shaft's specular echo: in each column it crosses, the brightest row of the difference.
    cols = np.nonzero(diff.max(axis=0) > 0.5 * diff.max())[0]
    rows = diff[:, cols].argmax(axis=0)
    assert len(cols) > 60  # the shaft from the image edge (x = 19 mm) to the tip (x = 12.3 mm)
    slope, intercept = np.polyfit(cols, rows, 1)
    residual = np.median(np.abs(rows - (slope * cols + intercept)))
    assert residual < 2.0
    assert 0.8 < abs(slope) < 1.3  # 45 degrees; the image is 38 mm wide and 40 mm deep in 512 x 512
    assert diff.max() > 80  # a bright specular reflector


def test_fluoroscopy_snapshot_needle_is_dark_where_the_geometry_projects_it(tmp_path):
    from simulator.anatomy.bundled import cache_is_valid

    if not cache_is_valid():
        pytest.skip("the bundled patient is built by `make test` (main.py setup-data) before the tests")
    from simulator.core.carm import CArmPose
    from simulator.core.scenario import find_scenario, load_scenario

    out = tmp_path / "ap.png"
    entry, target = np.array([-93.8, -113.3, -309.2]), np.array([-43.0, -4.0, -275.0])
    r = snapshot("celiac_plexus_posterior", "--view", "fluoroscopy", "--out", str(out), "--lao", "0",
                 "--cranial", "0", "--entry", ",".join(map(str, entry)), "--target", ",".join(map(str, target)))
    assert r.returncode == 0, r.stderr
    img = read_png(out).astype(float)
    sc = load_scenario(find_scenario("celiac_plexus_posterior"))
    pose = CArmPose.from_settings(sc.imaging.fluoroscopy, isocenter_mm=target, patient_position="prone")
    pose = pose.replace(lao_deg=0.0, cranial_deg=0.0)
    on = []
    for f in np.linspace(0.3, 0.9, 7):  # points along the shaft inside the body
        u, v = pose.world_to_pixel((entry + f * (target - entry))[None])
        on.append(img[int(round(float(np.ravel(v)[0]))), int(round(float(np.ravel(u)[0])))])
    exposed = img[img > 0]
    assert np.median(on) < np.percentile(exposed, 10), (on, np.percentile(exposed, [10, 50]))


def test_snapshot_errors_name_the_option(tmp_path):
    r = snapshot("needle_basics_gel", "--view", "ultrasound", "--out", str(tmp_path / "x.png"),
                 "--entry", "1,2", "--target", "0,0,0")
    assert r.returncode == 1 and "--entry" in r.stderr and "Traceback" not in r.stderr
    r = snapshot("no_such_scenario", "--out", str(tmp_path / "x.png"))
    assert r.returncode == 1 and "no_such_scenario" in r.stderr and "Traceback" not in r.stderr
    r = snapshot("needle_basics_gel", "--view", "ultrasound", "--out", str(tmp_path / "x.png"), "--entry", "1,2,3")
    assert r.returncode == 1 and "--target" in r.stderr
