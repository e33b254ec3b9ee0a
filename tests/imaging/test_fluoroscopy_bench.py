"""The benchmark's baseline is a fair one: its numpy ray sum agrees with the engine's projector."""
import numpy as np

from simulator.benchmarks.fluoroscopy import _numpy_ray_sum
from simulator.core.carm import CArmPose
from simulator.imaging.fluoroscopy import AttenuationVolume
from simulator.imaging.fluoroscopy_phantom import ellipsoid_chords, ellipsoid_mu_volume


def test_numpy_baseline_agrees_with_the_projector_and_the_analytic_answer():
    shape, spacing = (70, 60, 50), (1.5, 1.5, 1.5)
    origin = -(np.array(shape) - 1) / 2 * np.array(spacing)
    axes = (40.0, 35.0, 30.0)
    vol = AttenuationVolume.from_xyz(ellipsoid_mu_volume(shape, spacing, origin, (0, 0, 0), axes, 0.02), origin, spacing)
    pose = CArmPose(lao_deg=30, cranial_deg=10, detector_pixels=64)
    base = _numpy_ray_sum(vol, pose, 64)
    ours = vol.project_fast(pose)
    o, d = pose.pixel_rays()
    chord = ellipsoid_chords(o.reshape(-1, 3), d.reshape(-1, 3), (0, 0, 0), axes).reshape(64, 64)
    inside = chord > 0.3 * chord.max()
    assert np.median(np.abs(base[inside] - 0.02 * chord[inside]) / (0.02 * chord[inside])) < 0.03
    assert np.median(np.abs(base[inside] - ours[inside]) / ours[inside]) < 0.03
