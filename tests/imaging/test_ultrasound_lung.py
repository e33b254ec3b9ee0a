"""Aerated lung on B-mode with known answers: the pleural line, A-lines at multiples of the
probe-to-pleura distance, lung sliding with the breath (the chest wall still, the lung below the
pleura moving), a pneumothorax that stops the sliding over its extent and shows the lung point
moving with the breath."""
import math

import numpy as np
import pytest

from simulator.core.probe import ProbePose, ProbeSpec
from simulator.core.tissue import Tissue
from simulator.imaging import ultrasound_phantoms as P
from simulator.imaging.ultrasound import BodyState, ModelParams, ScannerSettings, UltrasoundSimulator
from simulator.imaging.ultrasound_body import LUNG_POINT_MM, PTX_MAX_RADIUS_MM, lung_motion

LINEAR = ProbeSpec.linear()
DOWN = (0.0, -1.0, 0.0)
PLEURA_Y = -13.0
ST = ScannerSettings(depth_mm=45.0, frequency_mhz=10.0, noise_db=-300.0)


@pytest.fixture(scope="module")
def chest():
    a = P.block((-60, -60, -60), (60, 0, 60), 0.5, Tissue.MUSCLE, "intercostal_muscles")
    P.add_box(a, (-60, -1.5, -60), (60, 0, 60), Tissue.SKIN, "skin")
    P.add_box(a, (-60, -5, -60), (60, -1.5, 60), Tissue.FAT, "fat")
    P.add_box(a, (-60, -60, -60), (60, PLEURA_Y, 60), Tissue.LUNG, "lung_lower_lobe_left", hu=-800)
    sim = UltrasoundSimulator(a, LINEAR)
    pose = sim.place_on_skin(ProbePose.from_vectors((0, 5, 0), DOWN, (0, 0, 1)), press_mm=0.3)  # sagittal
    return sim, pose


def _peak(profile, i):
    a, b, c = profile[i - 1], profile[i], profile[i + 1]
    den = a - 2 * b + c
    return i if den == 0 else i + 0.5 * (a - c) / den


def test_a_lines_repeat_the_pleural_depth(chest):
    sim, pose = chest
    f = sim.render(pose, ST)
    grid = f.grid
    env = f.envelope_beam.astype(np.float64) * 10 ** (f.tgc_db[None, :] / 20)
    prof = env[96:160].mean(axis=0)
    depth = lambda s: (s + 0.5) * grid.dr_mm
    ip = int(np.argmax(prof))
    d = depth(_peak(prof, ip))
    assert d == pytest.approx(-PLEURA_Y - 0.3, abs=0.3)  # the pleural line where the lung begins
    lines = []
    for k in (2, 3):
        lo, hi = int((k * d - 2.0) / grid.dr_mm), int((k * d + 2.0) / grid.dr_mm)
        i = lo + int(np.argmax(prof[lo:hi]))
        lines.append(depth(_peak(prof, i)))
        assert prof[i] > 10 * np.median(prof[int((d + 2) / grid.dr_mm): lo])  # a line, not haze
    spacing = np.diff([d] + lines)
    assert np.all(np.abs(spacing - d) < 0.5), (d, lines)
    # Nothing below the pleura but these artefacts: no tissue echo from the lung.
    assert np.median(prof[int((d + 2) / grid.dr_mm): int((2 * d - 2) / grid.dr_mm)]) < 0.05 * prof[ip]


def _corr(a, b):
    """Correlation of the speckle (log envelope less each depth's mean over the lines)."""
    za, zb = (np.log(np.maximum(x, 1e-30)) for x in (a, b))
    za = za - za.mean(axis=0, keepdims=True)
    zb = zb - zb.mean(axis=0, keepdims=True)
    return float(np.corrcoef(za.ravel(), zb.ravel())[0, 1])


def test_lung_slides_with_the_breath_the_chest_wall_does_not(chest):
    sim, pose = chest
    period = sim.params.breath_period_s
    a = sim.render(pose, ST, body=BodyState(0.0))  # end expiration
    b = sim.render(pose, ST, body=BodyState(period / 2))  # end inspiration: slid by sliding_mm
    c = sim.render(pose, ST, body=BodyState(period))  # a breath later: back
    assert b.animated and a.animated
    grid = a.grid
    wall = slice(int(2 / grid.dr_mm), int((-PLEURA_Y - 2) / grid.dr_mm))
    lung = slice(int((-PLEURA_Y + 1) / grid.dr_mm), int((-PLEURA_Y + 8) / grid.dr_mm))
    ea, eb, ec = (x.envelope_beam.astype(np.float64) for x in (a, b, c))
    assert np.array_equal(ea[:, wall], eb[:, wall])  # the chest wall is still
    assert _corr(ea[:, lung], eb[:, lung]) < 0.3  # the lung under the pleura has moved
    assert _corr(ea[:, lung], ec[:, lung]) > 0.999  # ... and come back
    still = sim.render(pose, ST)  # no time: a still image, no motion
    assert not still.animated


def test_pneumothorax_stops_sliding_and_shows_the_lung_point(chest):
    sim, pose = chest
    period = sim.params.breath_period_s
    grid = sim.render(pose, ST).grid
    x = grid.line_positions()  # along z (sagittal probe, marker cranial)
    lung = slice(int((-PLEURA_Y + 1) / grid.dr_mm), int((-PLEURA_Y + 8) / grid.dr_mm))
    # A breach under the probe, long ago: the whole view lies in the pneumothorax.
    over = (np.array([0.0, PLEURA_Y, 0.0]), 0.0)
    a = sim.render(pose, ST, body=BodyState(1000.0, pleural_breaches=(over,)))
    b = sim.render(pose, ST, body=BodyState(1000.0 + period / 2, pleural_breaches=(over,)))
    assert np.array_equal(a.envelope_beam[:, lung], b.envelope_beam[:, lung])  # no sliding anywhere
    # A breach 75 mm caudal: the air reaches PTX_MAX_RADIUS_MM +- LUNG_POINT_MM with the breath, so
    # the lung point swings across the image, between z = 75 - 70 - 8 and 75 - 70 + 8 mm.
    far = (np.array([0.0, PLEURA_Y, -75.0]), 0.0)
    t_in = 1000.0 + period / 4  # sin = +1: the air reaches furthest
    t_out = 1000.0 + 3 * period / 4  # sin = -1: the lung comes back
    # Both instants have the same sliding offset (half way), so only the lines whose state
    # changed - the band the lung point swept - differ.
    ea = sim.render(pose, ST, body=BodyState(t_in, pleural_breaches=(far,))).envelope_beam
    eb = sim.render(pose, ST, body=BodyState(t_out, pleural_breaches=(far,))).envelope_beam
    differ = np.array([not np.array_equal(ea[l, lung], eb[l, lung]) for l in range(len(x))])
    # Where the pleura lies along each line (at z = x): distance to the breach point.
    dist = np.hypot(x + 75.0, 0.0)
    r_in, r_out = PTX_MAX_RADIUS_MM + LUNG_POINT_MM, PTX_MAX_RADIUS_MM - LUNG_POINT_MM
    swept = (dist > r_out + 0.3) & (dist < r_in - 0.3)
    outside = (dist < r_out - 1.0) | (dist > r_in + 1.0)  # beyond the lateral point-spread
    assert differ[swept].all()
    assert not differ[outside].any()
    assert swept.sum() > 30


def test_lung_motion_known_answers():
    p = ModelParams()
    assert lung_motion(p, None).moving is False
    m = lung_motion(p, BodyState(p.breath_period_s / 2))
    assert m.slide_mm[2] == pytest.approx(p.sliding_mm)
    grow = lung_motion(p, BodyState(10.0, pleural_breaches=((np.zeros(3), 0.0),)))
    assert grow.ptx[3] == pytest.approx(30.0 + LUNG_POINT_MM * math.sin(2 * math.pi * 10.0 / p.breath_period_s), abs=1e-9)
    assert lung_motion(p, BodyState(5.0, pleural_breaches=((np.zeros(3), 9.0),))).ptx[3] == 0.0  # not yet
