"""Probe contact with known answers: the face pressed into the skin compresses the tissue columns
(soft layers most, a vein until it collapses, an artery hardly); a gel film bridges up to
`gel_mm`; rocking or lifting the probe loses the image only beyond the geometric limit, on the
lifted side."""
import math

import numpy as np
import pytest

from simulator.core.probe import ProbePose, ProbeSpec
from simulator.core.tissue import Tissue
from simulator.imaging import ultrasound_phantoms as P
from simulator.imaging.ultrasound import ScannerSettings, UltrasoundSimulator

LINEAR = ProbeSpec.linear()
DOWN = (0.0, -1.0, 0.0)
ST = ScannerSettings(depth_mm=40.0, frequency_mhz=10.0)


@pytest.fixture(scope="module")
def gel_sim():
    return UltrasoundSimulator(P.block((-60, -60, -40), (60, 0, 40), 0.5, Tissue.GEL), LINEAR)


def test_contact_lost_only_beyond_the_rock_that_lifts_the_face_past_the_gel(gel_sim):
    """Face pressed `press` into a flat surface, rocked heel-toe by theta about its centre: a line
    at lateral x keeps contact while its face stays within the gel film of the skin,
    |x| sin(theta) <= press + gel cos(theta), on the lifted side; the other side presses deeper."""
    sim = gel_sim
    press, gel = 2.0, sim.params.gel_mm
    base = sim.place_on_skin(ProbePose.from_vectors((0, 5, 0), DOWN, (1, 0, 0)), press_mm=press)
    limit = math.degrees(math.asin((press + gel) / math.hypot(LINEAR.aperture_mm / 2, 1.0)))
    flat = sim.render(base.rocked(0.9 * limit), ST)
    assert flat.contact.all()
    for theta in (1.3 * limit, 2.0 * limit):
        f = sim.render(base.rocked(theta), ST)
        x = f.grid.line_positions()
        t = math.radians(theta)
        # Which side rises: the face point's height above the pressed-in centre.
        o_p, _ = f.grid.lines_probe()
        rise = base.rocked(theta).points_to_world(o_p)[:, 1] - base.center_mm[1]  # +y is out of the block
        lifted = rise > 0
        expect = ~lifted | (np.abs(x) * math.sin(t) <= press + gel * math.cos(t))
        wrong = f.contact.astype(bool) != expect
        # Lines right at the limit may go either way (the skin found to ~0.01 mm).
        margin = np.abs(np.abs(x) * math.sin(t) - (press + gel * math.cos(t))) < 0.05
        assert not np.any(wrong & ~margin)
        assert 0 < f.contact.sum() < len(x)
        assert f.contact[~lifted].all()  # the pressed side keeps its image
        # The image is lost where contact is: nothing on those lines (but for the lateral
        # point-spread of their live neighbours).
        live = np.nonzero(f.contact)[0]
        dead = np.array([np.min(np.abs(live - l)) > 12 for l in range(len(x))])
        if dead.any():
            assert f.envelope_beam[dead].max() < 1e-3 * f.envelope_beam[live].max()


def test_contact_lost_only_beyond_a_lift_of_press_plus_gel(gel_sim):
    sim = gel_sim
    press, gel = 2.0, sim.params.gel_mm
    base = sim.place_on_skin(ProbePose.from_vectors((0, 5, 0), DOWN, (1, 0, 0)), press_mm=press)
    assert sim.render(base.slid(depth_mm=-(press + gel - 0.1)), ST).contact.all()
    assert not sim.render(base.slid(depth_mm=-(press + gel + 0.1)), ST).contact.any()


def _layered():
    a = P.block((-40, -60, -40), (40, 0, 40), 0.25, Tissue.MUSCLE, "layered")
    P.add_box(a, (-40, -2, -40), (40, 0, 40), Tissue.SKIN, "skin")
    P.add_box(a, (-40, -10, -40), (40, -2, 40), Tissue.FAT, "fat")
    P.add_box(a, (-40, -32, -40), (40, -28, 40), Tissue.CORTICAL_BONE, "bone")
    return a


def test_pressing_compresses_the_tissue_column_by_compliance():
    """Skin 2 mm, fat 8 mm, muscle 18 mm on bone, pressed 3 mm: one stress sigma shortens each
    layer by min(sigma c, strain_max) of its thickness, the shortenings add up to the press, the
    bone does not move."""
    sim = UltrasoundSimulator(_layered(), LINEAR, refine=False)
    press = 3.0
    pose = sim.place_on_skin(ProbePose.from_vectors((0, 5, 0), DOWN, (1, 0, 0)), press_mm=press)
    f = sim.render(pose, ST)
    tab = sim.table
    layers = [(Tissue.SKIN, 2.0), (Tissue.FAT, 8.0), (Tissue.MUSCLE, 18.0)]
    short = lambda s: sum(t * min(s * tab.compliance[int(c)], tab.strain_max[int(c)]) for c, t in layers)
    lo, hi = 0.0, sim.params.sigma_max
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if short(mid) < press else (lo, mid)
    sigma = 0.5 * (lo + hi)
    assert np.median(f.stress) == pytest.approx(sigma, rel=0.02)
    codes = f.tissue_beam[64:192]
    dr = f.grid.dr_mm
    fat = (codes == int(Tissue.FAT)).sum(axis=1) * dr
    skin = (codes == int(Tissue.SKIN)).sum(axis=1) * dr
    want_fat = 8.0 * (1 - min(sigma * tab.compliance[int(Tissue.FAT)], tab.strain_max[int(Tissue.FAT)]))
    assert np.median(fat) == pytest.approx(want_fat, abs=2 * dr + 0.05)
    assert np.median(skin) == pytest.approx(2.0 * (1 - sigma * tab.compliance[int(Tissue.SKIN)]), abs=2 * dr + 0.05)
    bone = np.argmax(codes == int(Tissue.CORTICAL_BONE), axis=1) * dr
    assert np.median(bone) == pytest.approx(28.0 - press, abs=2 * dr + 0.05)  # where it lies under the face


def test_a_vein_collapses_under_the_probe_an_artery_does_not():
    a = P.block((-40, -60, -40), (40, 0, 40), 0.25, Tissue.MUSCLE, "neck")
    P.add_box(a, (-40, -1.5, -40), (40, 0, 40), Tissue.SKIN, "skin")
    P.add_box(a, (-40, -22, -40), (40, -1.5, 40), Tissue.FAT, "fat")
    P.add_cylinder(a, (-8, -14, -40), (-8, -14, 40), 5.0, Tissue.VEIN, "internal_jugular_vein")
    P.add_cylinder(a, (8, -14, -40), (8, -14, 40), 4.0, Tissue.ARTERY, "common_carotid_artery")
    sim = UltrasoundSimulator(a, LINEAR, refine=False)
    out = {}
    for press in (0.5, 10.0):
        pose = sim.place_on_skin(ProbePose.from_vectors((0, 5, 0), DOWN, (1, 0, 0)), press_mm=press)
        f = sim.render(pose, ST)
        x = f.grid.line_positions()
        dr = f.grid.dr_mm
        vein = (f.tissue_beam[np.abs(x + 8) < 1.0] == int(Tissue.VEIN)).sum(axis=1).mean() * dr
        art = (f.tissue_beam[np.abs(x - 8) < 1.0] == int(Tissue.ARTERY)).sum(axis=1).mean() * dr
        out[press] = (vein, art)
    (v0, a0), (v1, a1) = out[0.5], out[10.0]
    assert v0 > 8.5 and a0 > 6.5  # both round at light contact (10 and 8 mm)
    assert v1 < 0.2 * v0  # the vein flattens
    assert a1 > 0.9 * a0  # the artery keeps its lumen


def test_pressure_beyond_the_plausible_range_is_capped():
    """Over bone under thin skin the column cannot take much: the stress stops at sigma_max."""
    a = P.block((-40, -40, -40), (40, 0, 40), 0.5, Tissue.CORTICAL_BONE, "bone")
    P.add_box(a, (-40, -3, -40), (40, 0, 40), Tissue.SKIN, "skin")
    sim = UltrasoundSimulator(a, LINEAR, refine=False)
    f = sim.render(sim.place_on_skin(ProbePose.from_vectors((0, 5, 0), DOWN, (1, 0, 0)), press_mm=6.0), ST)
    assert np.all(f.stress == pytest.approx(sim.params.sigma_max))
