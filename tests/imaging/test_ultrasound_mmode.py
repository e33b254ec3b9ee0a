"""M-mode with known answers: the sweep writes each frame's central line at its time; over an
aerated, sliding lung the strip shows the seashore sign (the still chest wall as flat lines, the
lung below the pleura grainy over time), over a pneumothorax the stratosphere sign (flat lines
below the pleura too)."""
import numpy as np
import pytest

from simulator.imaging.ultrasound import BodyState, ModelParams
from simulator.imaging.ultrasound_mmode import ERASE_COLUMNS, MModeSweep, m_line, side_by_side
from tests.imaging.test_ultrasound_lung import PLEURA_Y, ST, chest  # noqa: F401 - the fixture

FRAME_S = 0.08  # the trainer's live frame interval


def test_the_sweep_writes_lines_at_their_time_fills_between_and_erases_ahead():
    sw = MModeSweep(width=40, sweep_s=4.0)
    sw.add(np.full(5, 100, np.uint8), 0.0)
    assert (sw.image()[:, 0] == 100).all() and (sw.image()[:, 1:1 + ERASE_COLUMNS] == 0).all()
    sw.add(np.full(5, 200, np.uint8), 1.0)  # 10 columns later: columns 1..10 get the newer line
    assert (sw.image()[:, 1:11] == 200).all() and (sw.image()[:, 0] == 100).all()
    sw.add(np.full(5, 50, np.uint8), 4.05)  # wrapped round: column 0 again, the rest of the sweep filled
    assert (sw.image()[:, 11:40] == 50).all() and (sw.image()[:, 0] == 50).all()
    assert (sw.image()[:, 1:1 + ERASE_COLUMNS] == 0).all()
    sw.add(np.full(7, 9, np.uint8), 4.1)  # another image height: a new strip
    assert sw.image().shape == (7, 40) and (sw.image() > 0).sum() == 7
    with pytest.raises(ValueError, match="width"):
        MModeSweep(width=2)


def test_side_by_side_dots_the_m_line_and_keeps_the_b_mode():
    b = np.full((60, 30), 80, np.uint8)
    strip = np.arange(60 * 10, dtype=np.uint8).reshape(60, 10)
    out = side_by_side(b, strip)
    assert out.shape == (60, 63)
    assert (out[::6, 15] == 230).all() and (out[:, :30][:, np.arange(30) != 15] == 80).all()
    assert (out[:, 30:33] == 40).all() and (out[:, 33] == strip[:, 0]).all() and (out[:, -1] == strip[:, -1]).all()
    assert m_line(b).shape == (60,) and (m_line(b) == 80).all()


def _strip(sim, pose, breaches=()):
    sw = MModeSweep(width=100, sweep_s=100 * FRAME_S)
    frame = None
    for k in range(100):  # two breaths
        t = 1000.0 + k * FRAME_S
        frame = sim.render(pose, ST, body=BodyState(t, pleural_breaches=breaches))
        sw.add(m_line(frame.display), t)
    g = frame.geometry
    depth = g.y_first_mm + np.arange(g.height) * g.spacing_mm
    return sw.image().astype(np.float64), depth


def _flicker(strip, rows):
    """Mean over the rows of the line-to-line change along time, relative to the rows' brightness."""
    s = strip[rows]
    return float(np.abs(np.diff(s, axis=1)).mean() / max(s.mean(), 1.0))


def test_seashore_over_a_sliding_lung_stratosphere_over_a_pneumothorax(chest):  # noqa: F811
    sim, pose = chest
    assert 2 * ModelParams().breath_period_s <= 100 * FRAME_S + 1e-9
    pleura = -PLEURA_Y
    strip, depth = _strip(sim, pose)
    wall = (depth > 2.5) & (depth < pleura - 2.5)
    lung = (depth > pleura + 2.0) & (depth < 2 * pleura - 2.0)  # the haze between pleura and first A-line
    assert wall.sum() > 10 and lung.sum() > 10
    sliding_wall, sliding_lung = _flicker(strip, wall), _flicker(strip, lung)
    assert sliding_lung > 4 * sliding_wall, (sliding_lung, sliding_wall)  # seashore
    ptx, _ = _strip(sim, pose, breaches=((np.array([0.0, PLEURA_Y, 0.0]), 900.0),))
    still_lung = _flicker(ptx, lung)
    assert still_lung < 0.25 * sliding_lung and still_lung <= 2 * _flicker(ptx, wall) + 0.01, (still_lung, sliding_lung)
