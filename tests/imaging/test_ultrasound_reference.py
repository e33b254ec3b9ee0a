"""The numba kernels against the plain-numpy implementation of the same model.

The numpy version is written independently, as whole-array operations (it is the benchmark's
baseline); agreement to a small fraction of a dB over a phantom with every tissue feature (skin,
fat and muscle septa, nerve, vessel, rib shadow, pleura with A-lines and haze, needle with
reverberation and tip, point reflectors, a probe edge lifted into air) checks both.
"""
import numpy as np
import pytest

from simulator.core.probe import ProbePose, ProbeSpec
from simulator.core.tissue import Tissue
from simulator.imaging import ultrasound_phantoms as P
from simulator.imaging.ultrasound import NeedleGeometry, ScannerSettings, UltrasoundSimulator
from simulator.imaging.ultrasound_reference import render_reference


@pytest.fixture(scope="module")
def chest_wall():
    a = P.intercostal_block(0.5)
    P.add_cylinder(a, (-30, -5, -35), (30, -5, 35), 1.5, Tissue.NERVE, "nerve")
    return a


@pytest.mark.parametrize("kind", ["linear", "curvilinear"])
def test_kernels_match_numpy_reference(chest_wall, kind):
    spec = ProbeSpec.named(kind)
    sim = UltrasoundSimulator(chest_wall, spec)
    # Oblique pose, partly off the block's edge (lines in air) for the curvilinear probe.
    pose = ProbePose.from_vectors((2.0, 0.0, 1.0), (0.0, -1.0, 0.05), (0.2, 0.0, 1.0))
    needle = NeedleGeometry.from_points((0, -1, -35), (0, -19, 3), bevel_normal=(0, 1, 0))
    st = ScannerSettings(depth_mm=45.0 if kind == "linear" else 80.0, image_shape=(192, 192), beam_lines=80,
                         beam_samples=240, gain_db=3.0, tgc_db=(0.0, 2.0, -1.0, 4.0))
    points = [[5.0, -12.0, 0.0], [-3.0, -30.0, 0.5]]
    frame = sim.render(pose, st, needle, points_mm=points, point_amplitudes=0.05)
    bmode, display, env = render_reference(sim, pose, st, needle, points_mm=points, point_amplitudes=0.05)
    inside = frame.fov_mask()
    assert inside.sum() > 0.3 * inside.size
    lit = inside & (bmode > -200)
    assert np.abs(frame.bmode_db[lit] - bmode[lit]).max() < 0.01
    assert np.mean(frame.display == display) > 0.999
    assert np.allclose(frame.envelope_beam, env, rtol=1e-4, atol=1e-12)
    # The scene really holds the features it is meant to test.
    codes = set(np.unique(frame.tissue_beam).tolist())
    assert {int(Tissue.SKIN), int(Tissue.FAT), int(Tissue.MUSCLE), int(Tissue.CANCELLOUS_BONE),
            int(Tissue.LUNG), int(Tissue.NERVE)} <= codes


def test_kernels_match_numpy_reference_with_injectate_breath_and_pressure(chest_wall):
    """The new stages too: a pressed probe (compressed columns), a bolus with air (displacement,
    pocket, gas with its dirty shadow, infiltrated muscle), the lung sliding and a pneumothorax."""
    from dataclasses import replace

    from simulator.core.spread import compute_spread
    from simulator.imaging.ultrasound import BodyState
    from simulator.imaging.ultrasound_tissue import INJECTATE, INJECTED_AIR

    sim = UltrasoundSimulator(chest_wall, ProbeSpec.linear())
    pose = sim.place_on_skin(ProbePose.from_vectors((2.0, 5.0, 1.0), (0.0, -1.0, 0.05), (0.2, 0.0, 1.0)), 2.5)
    bolus = replace(compute_spread(chest_wall, (0.0, -9.0, 0.0), 1.5), air_ml=0.15, time_s=0.0)
    body = BodyState(1001.0, (bolus,), ((np.array([0.0, -24.0, 20.0]), 990.0),))
    needle = NeedleGeometry.from_points((0, -1, -35), (0, -19, 3))
    st = ScannerSettings(depth_mm=45.0, image_shape=(192, 192), beam_lines=80, beam_samples=240, gain_db=3.0)
    frame = sim.render(pose, st, needle, body=body)
    bmode, display, env = render_reference(sim, pose, st, needle, body=body)
    codes = set(np.unique(frame.tissue_beam).tolist())
    assert {INJECTATE, INJECTED_AIR, int(Tissue.LUNG)} <= codes
    assert frame.stress.max() > 0.05
    inside = frame.fov_mask()
    lit = inside & (bmode > -200)
    assert np.abs(frame.bmode_db[lit] - bmode[lit]).max() < 0.01
    assert np.allclose(frame.envelope_beam, env, rtol=1e-4, atol=1e-12)
