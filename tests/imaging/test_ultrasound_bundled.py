"""The intercostal view of the bundled patient (cached build only; skipped when it is not built).

The intercostal scenario's probe: sagittal over the left 10th-11th intercostal space at the rib
angle, marker cranial. A regional anaesthetist expects the "flying bat": two rib surfaces with
black acoustic shadows under them at the image's sides, the bright pleural line between them
slightly deeper than the ribs, and no tissue echo below the pleura except reverberation.
"""
import numpy as np
import pytest

from simulator.core.probe import ProbePose, ProbeSpec
from simulator.core.tissue import Tissue
from simulator.imaging.ultrasound import NeedleGeometry, ScannerSettings, UltrasoundSimulator


@pytest.fixture(scope="module")
def bundled():
    from simulator.anatomy.bundled import cache_dir, cache_is_valid

    if not cache_is_valid(cache_dir()):
        pytest.skip("bundled patient not built (python main.py setup-data)")
    from simulator.anatomy import load_anatomy

    return load_anatomy("bundled")


def test_intercostal_view_shows_ribs_shadows_and_pleura(bundled):
    sim = UltrasoundSimulator(bundled, ProbeSpec.linear())
    pose = ProbePose.from_vectors((-88.0, -115.9, -233.5), (0.47, 0.88, 0.0), (0.0, 0.0, 1.0))
    st = ScannerSettings(depth_mm=40.0, frequency_mhz=10.0, focus_mm=25.0)
    needle = NeedleGeometry.from_points((-88.2, -116.2, -265.4), (-78.0, -97.0, -224.5))
    f = sim.render(pose, st, needle)
    codes = f.tissue_beam
    grid = f.grid
    bone = np.isin(codes, [int(Tissue.CORTICAL_BONE), int(Tissue.CANCELLOUS_BONE)])
    lung = codes == int(Tissue.LUNG)
    lines_with_bone = bone.any(axis=1)
    lines_with_lung = lung.any(axis=1)
    # Ribs under both ends of the probe (the 10th and 11th ribs), lung between them.
    n = grid.n_lines
    assert lines_with_bone[: n // 5].mean() > 0.8 and lines_with_bone[-n // 5:].mean() > 0.8
    middle = slice(2 * n // 5, 3 * n // 5)
    assert lines_with_lung[middle].all() and not lines_with_bone[middle].any()
    env_db = 20 * np.log10(np.maximum(f.envelope_beam, 1e-30)) + f.tgc_db[None, :]
    depth = grid.sample_depths_mm()
    # Pleural line: on the middle lines the brightest echo sits where the lung begins.
    first_lung = np.argmax(lung[middle], axis=1)
    peak = np.argmax(env_db[middle], axis=1)
    assert np.median(np.abs(depth[peak] - depth[first_lung])) < 0.5
    pleura_mm = float(np.median(depth[first_lung]))
    assert 15.0 < pleura_mm < 32.0
    # Shadows: under the ribs (5-12 mm below their surface) at least 20 dB darker than the soft
    # tissue at the same depth band above the pleura between them.
    rib_lines = np.nonzero(lines_with_bone)[0]
    top = np.array([np.argmax(bone[l]) for l in rib_lines])
    below = np.array([env_db[l, t + int(5 / grid.dr_mm): t + int(12 / grid.dr_mm)].mean()
                      for l, t in zip(rib_lines, top) if t + int(12 / grid.dr_mm) < grid.n_samples])
    soft = env_db[middle][:, (depth > 5) & (depth < pleura_mm - 3)].mean()
    assert soft - np.median(below) > 20.0
    # The needle (aimed at the target 21 mm deep) is seen, tip in the slice.
    assert f.tip_visible
