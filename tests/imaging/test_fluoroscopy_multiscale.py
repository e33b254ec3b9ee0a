"""The image chain's multiscale processing (`fluoroscopy_multiscale`): exact reconstruction when
nothing is changed, and halo-free compression of a large step that keeps the small details."""
import dataclasses

import numpy as np

from simulator.imaging.fluoroscopy import DisplaySettings
from simulator.imaging.fluoroscopy_multiscale import multiscale_process

NEUTRAL = DisplaySettings(edge_enhance=0.0, detail_enhance=0.0, range_compression=0.0, band_compression=0.0)


def _scene():
    """A 2.0 attenuation step (a band 100 px wide: the mediastinum between the lungs) with a
    0.15 detail inside and outside it (an end plate)."""
    L = np.full((512, 512), 4.0, np.float32)
    L[:, 220:320] += 2.0
    L[200:204, 240:300] += 0.15
    L[200:204, 40:100] += 0.15
    return L


def test_the_pyramid_reconstructs_the_image_exactly_when_nothing_is_changed():
    L = _scene() + np.random.default_rng(0).normal(0, 0.05, (512, 512)).astype(np.float32)
    out = multiscale_process(L, 5.0, 0.35, NEUTRAL)
    assert np.abs(out - L).max() < 1e-4


def test_large_steps_are_compressed_without_halos_and_details_are_kept():
    L = _scene()
    d = dataclasses.replace(NEUTRAL, band_compression=0.8, compression_threshold=0.15)
    out = multiscale_process(L, 5.0, 0.35, d)
    step = out[100, 270] - out[100, 60]
    assert 0.3 < step < 0.9  # 2.0 -> 0.15 + 0.2 x 1.85 = 0.52 in the ideal case
    assert abs(out[100, 200] - out[100, 60]) < 0.05  # 20 px outside the band: no halo
    for c in (270, 70):  # the detail inside and outside the band keeps its amplitude
        assert abs((out[201, c] - out[190, c]) - 0.15) < 0.02
    # the same step through a linear harmonisation (the broad background taken out) rings
    lin = multiscale_process(L, 5.0, 0.35, dataclasses.replace(NEUTRAL, range_compression=0.8, range_sigma_mm=10.0))
    assert abs(lin[100, 200] - lin[100, 60]) > 0.1
