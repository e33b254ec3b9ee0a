"""The injectate on B-mode, with known answers on an analytic chest wall (muscle, a fascial plane of
fat, pleura and lung): the procedure's spread becomes an anechoic pocket that opens the plane,
pushes the pleura down and lifts the fascia, with posterior enhancement; it grows during the
injection and resorbs; injected air is bright with a dirty shadow; in muscle the fluid only darkens
it; inside a nerve it swells the nerve; into a vessel it leaves no pocket but a turbulent jet on
colour Doppler. Every liquid agent looks the same."""
from dataclasses import replace

import numpy as np
import pytest

from simulator.core.probe import ProbePose, ProbeSpec
from simulator.core.spread import compute_spread
from simulator.core.tissue import Tissue
from simulator.imaging import ultrasound_phantoms as P
from simulator.imaging.ultrasound import BodyState, ScannerSettings, UltrasoundSimulator
from simulator.imaging.ultrasound_tissue import INJECTATE, INJECTED_AIR

LINEAR = ProbeSpec.linear()
DOWN = (0.0, -1.0, 0.0)
PLANE = (-13.5, -10.5)  # the fascial plane (fat) between two muscle layers, y range
PLEURA_Y = -20.0
TIP = (0.0, -12.0, 0.0)
ST = ScannerSettings(depth_mm=35.0, frequency_mhz=10.0, noise_db=-300.0, tgc_alpha_db_cm_mhz=1.1)


def _chest_wall(pleura_y):
    a = P.block((-40, -40, -40), (40, 0, 40), 0.5, Tissue.MUSCLE, "chest_wall")
    P.add_box(a, (-40, -1.5, -40), (40, 0, 40), Tissue.SKIN, "skin")
    P.add_box(a, (-40, PLANE[0], -40), (40, PLANE[1], 40), Tissue.FAT, "fascial_plane")
    P.add_box(a, (-40, -40, -40), (40, pleura_y, 40), Tissue.LUNG, "lung", hu=-800)
    P._paint(a, a.tissue == int(Tissue.MUSCLE), Tissue.MUSCLE, "chest_wall")
    return a


@pytest.fixture(scope="module")
def wall():
    return _chest_wall(PLEURA_Y)


@pytest.fixture(scope="module")
def sim(wall):
    return UltrasoundSimulator(wall, LINEAR)


@pytest.fixture(scope="module")
def bolus(wall):
    sp = compute_spread(wall, TIP, 2.0)
    sp.kind, sp.agent, sp.time_s = "neurolytic", "phenol 6 % in water", 100.0
    return sp


def _pose(sim, dz=0.0):
    return sim.place_on_skin(ProbePose.from_vectors((0, 5, dz), DOWN, (1, 0, 0)), press_mm=0.5)


def _frame(sim, spreads=(), t=None, dz=0.0, st=ST):
    return sim.render(_pose(sim, dz), st, body=BodyState(t, tuple(spreads)) if spreads else None)


def _first(codes, code):
    """Per line: first sample with this code (n_samples where none)."""
    hit = codes == code
    return np.where(hit.any(axis=1), np.argmax(hit, axis=1), codes.shape[1])


def test_pocket_is_anechoic_opens_the_plane_and_pushes_the_pleura(sim, bolus):
    before = _frame(sim)
    after = _frame(sim, [bolus])
    codes = after.tissue_beam
    pocket = codes == INJECTATE
    assert pocket.sum() > 500
    grid = after.grid
    depth = grid.sample_depths_mm()
    x = grid.line_positions()
    # Echo level: the pocket's interior (away from its walls) >= 20 dB below the muscle beside it
    # at the same depths (intensity means, from the linear envelope).
    env_db = 20 * np.log10(np.maximum(after.envelope_beam.astype(np.float64), 1e-30)) + after.tgc_db[None, :]
    lines = np.nonzero(pocket.sum(axis=1) * grid.dr_mm > 3.0)[0]
    assert len(lines) > 20
    inner = np.zeros_like(pocket)
    for l in lines:
        s = np.nonzero(pocket[l])[0]
        inner[l, s[0] + 8: s[-1] - 8] = True
    far = np.abs(x) > 15.0  # beside the pocket (it spans about +-10 mm)
    d_lo, d_hi = np.nonzero(pocket.any(axis=0))[0][[0, -1]]
    near = np.zeros(pocket.shape[1], bool)
    near[max(0, d_lo - int(5 / grid.dr_mm)): d_hi + int(5 / grid.dr_mm)] = True
    muscle = far[:, None] & near[None, :] & (codes == int(Tissue.MUSCLE))

    def mean_db(mask):
        return 10 * np.log10(np.mean(10 ** (env_db[mask] / 10)))

    assert mean_db(muscle) - mean_db(inner) >= 20.0
    # The pleura under the pocket is pushed down; far from it, it stays.
    p0 = _first(before.tissue_beam, int(Tissue.LUNG)) * grid.dr_mm
    p1 = _first(codes, int(Tissue.LUNG)) * grid.dr_mm
    centre = np.abs(x) < 3.0
    assert np.median(p1[centre] - p0[centre]) > 0.5  # 6 mm under the pocket's floor
    assert np.max(np.abs(p1[np.abs(x) > 16] - p0[np.abs(x) > 16])) < 0.2
    # The fascia over the plane is lifted (muscle -> fat/pocket boundary moves up).
    top0 = _first(before.tissue_beam, int(Tissue.FAT))
    top1 = np.minimum(_first(codes, int(Tissue.FAT)), _first(codes, INJECTATE))
    lift = np.median((top0 - top1)[centre]) * grid.dr_mm
    # The pocket holds about the injected volume: its cross-section is a band a few mm thick
    # lying in the plane, which opened by the extra thickness, half of it on each side.
    thick = pocket[centre].sum(axis=1) * grid.dr_mm
    assert 3.0 < np.median(thick) < 12.0
    plane = PLANE[1] - PLANE[0]
    assert lift > 0.3
    assert lift == pytest.approx((np.median(thick) - plane) / 2, abs=0.3)
    assert np.all(np.abs(depth[pocket.any(axis=0)] + PLANE[0] + 1.5) < 10.0)


def test_posterior_enhancement_behind_the_pocket():
    """Deep to the pocket the muscle is brighter than beside it by the attenuation the fluid does
    not have: 2 f x the one-way attenuation deficit along the line above (from the code map)."""
    wall = _chest_wall(-32.0)
    s = UltrasoundSimulator(wall, LINEAR)
    sp = compute_spread(wall, TIP, 2.0)
    frame = _frame(s, [sp])
    codes = frame.tissue_beam
    grid = frame.grid
    env_db = 20 * np.log10(np.maximum(frame.envelope_beam.astype(np.float64), 1e-30))
    pocket = codes == INJECTATE
    x = grid.line_positions()
    lines = np.nonzero(np.abs(x) < 4.0)[0]
    far = np.nonzero(np.abs(x) > 15.0)[0]
    bottom = max(np.nonzero(pocket[l])[0].max() for l in lines)
    rows = np.arange(bottom + int(4 / grid.dr_mm), bottom + int(12 / grid.dr_mm))  # past any infiltrated muscle
    assert np.all(codes[np.ix_(lines, rows)] == int(Tissue.MUSCLE))
    measured = env_db[np.ix_(lines, rows)].mean() - env_db[np.ix_(far, rows)].mean()
    alpha = s.table.alpha.astype(np.float64)
    path = lambda ls: alpha[codes[ls, : rows[0]]].sum(axis=1).mean() * grid.dr_mm / 10.0  # dB/MHz, one way
    want = 2 * 10.0 * (path(far) - path(lines))
    assert measured > 3.0
    assert measured == pytest.approx(want, abs=1.5)


def test_grows_during_the_injection_then_resorbs(sim, bolus):
    def area(t):
        return int((_frame(sim, [bolus], t=t).tissue_beam == INJECTATE).sum())

    t0 = bolus.time_s
    assert area(t0 - 1.0) == 0
    a1, a2, a_end = area(t0 + 1.0), area(t0 + 2.5), area(t0 + bolus.duration_s + 1.0)
    assert 0 < a1 < a2 < a_end
    assert area(t0 + bolus.duration_s + 3600.0) < 0.6 * a_end


def test_every_liquid_agent_looks_the_same(sim, wall):
    frames = []
    for kind, agent in (("neurolytic", "dehydrated alcohol 100 %"), ("neurolytic", "phenol 6 % in glycerol"),
                        ("contrast", "iohexol 300"), ("test_dose", "lidocaine 1 %")):
        sp = compute_spread(wall, TIP, 2.0)
        sp.kind, sp.agent = kind, agent
        frames.append(_frame(sim, [sp]).bmode_db)
    for f in frames[1:]:
        assert np.array_equal(f, frames[0])


def test_injected_air_is_bright_with_a_dirty_shadow(sim, wall):
    liquid = compute_spread(wall, TIP, 2.0)
    air = replace(compute_spread(wall, TIP, 2.0), air_ml=0.4)
    f_liq = _frame(sim, [liquid])
    f_air = _frame(sim, [air])
    codes = f_air.tissue_beam
    gas = _first(codes, INJECTED_AIR)
    lines = np.nonzero(gas < codes.shape[1])[0]
    assert len(lines) > 10
    env_db = 20 * np.log10(np.maximum(f_air.envelope_beam.astype(np.float64), 1e-30)) + f_air.tgc_db[None, :]
    liq_db = 20 * np.log10(np.maximum(f_liq.envelope_beam.astype(np.float64), 1e-30)) + f_liq.tgc_db[None, :]
    top = np.array([env_db[l, gas[l] - 2: gas[l] + 3].max() for l in lines])
    rows = slice(int(3 / f_air.grid.dr_mm), int(8 / f_air.grid.dr_mm))
    muscle_db = 10 * np.log10(np.mean(10 ** (env_db[:, rows][np.abs(f_air.grid.line_positions()) > 15] / 10)))
    assert np.median(top) > muscle_db + 20.0  # bright
    # Below it: darker than the tissue under a liquid pocket (a shadow), yet not black (dirty: a
    # haze of reverberation, unlike the clean shadow of bone).
    n1, n6 = int(1 / f_air.grid.dr_mm), int(6 / f_air.grid.dr_mm)
    under = [np.nonzero(f_liq.tissue_beam[l] == INJECTATE)[0] for l in lines]
    keep = [i for i, u in enumerate(under) if len(u)]
    lo = [under[i].max() + n1 for i in keep]
    shadow = np.array([env_db[lines[i], a: a + n6].mean() for i, a in zip(keep, lo)])
    tissue = np.array([liq_db[lines[i], a: a + n6].mean() for i, a in zip(keep, lo)])
    assert np.median(tissue - shadow) > 6.0
    assert np.median(shadow) > muscle_db - 40.0


def test_injection_into_muscle_darkens_it_without_a_pocket(sim, wall):
    sp = compute_spread(wall, (0.0, -6.0, 0.0), 1.0)  # in the muscle above the plane
    assert sp.tip_tissue == Tissue.MUSCLE
    before = _frame(sim)
    after = _frame(sim, [sp])
    assert (after.tissue_beam == INJECTATE).sum() < 0.05 * (after.tissue_beam == int(Tissue.MUSCLE)).sum()
    grid = after.grid
    x = grid.line_positions()
    rows = np.arange(int(4 / grid.dr_mm), int(8 / grid.dr_mm))
    centre = np.abs(x) < 2.0
    d = (20 * np.log10(before.envelope_beam[np.ix_(centre, rows)].astype(np.float64) + 1e-30).mean()
         - 20 * np.log10(after.envelope_beam[np.ix_(centre, rows)].astype(np.float64) + 1e-30).mean())
    assert d > 5.0


def test_intraneural_injection_swells_the_nerve():
    a = P.block((-40, -40, -40), (40, 0, 40), 0.5, Tissue.MUSCLE, "muscle")
    P.add_box(a, (-40, -16, -40), (40, -8, 40), Tissue.FAT, "fat")
    s = UltrasoundSimulator(a, LINEAR)
    s.add_nerve([(0, -12, -40), (0, -12, 40)], 1.8, "nerve")  # along z: a transverse view
    pose = s.place_on_skin(ProbePose.from_vectors((0, 5, 0), DOWN, (1, 0, 0)), press_mm=0.5)
    sp = compute_spread(a, (0.0, -12.0, 0.0), 0.3)
    before = s.render(pose, ST)
    after = s.render(pose, ST, body=BodyState(None, (sp,)))
    n0 = (before.tissue_beam == int(Tissue.NERVE)).sum()
    n1 = (after.tissue_beam == int(Tissue.NERVE)).sum()
    assert n1 > 1.3 * n0


def test_intravascular_injection_leaves_no_pocket_and_a_turbulent_jet():
    a = P.block((-40, -40, -40), (40, 0, 40), 0.5, Tissue.GEL, "gel")
    P.add_cylinder(a, (-40, -15, 0), (40, -15, 0), 4.0, Tissue.VEIN, "vein")  # along x, in plane
    s = UltrasoundSimulator(a, LINEAR, flow_speeds_m_s={"vein": 0.15})
    pose = s.place_on_skin(ProbePose.from_vectors((0, 5, 0), DOWN, (1, 0, 0))).rocked(0.0)
    sp = compute_spread(a, (0.0, -15.0, 0.0), 2.0)
    sp.time_s = 10.0
    assert sp.mode == "intravascular"
    st = replace(ST, doppler=True, prf_hz=3000.0)
    quiet = s.render(pose, st, body=BodyState(9.0, (sp,)))
    jet = s.render(pose, st, body=BodyState(11.0, (sp,)))
    assert (jet.tissue_beam == INJECTATE).sum() == 0
    v0 = quiet.doppler_velocity_m_s
    v1 = jet.doppler_velocity_m_s
    assert np.isfinite(v1).sum() > 3 * max(1, np.isfinite(v0).sum())  # colour fills the lumen near the tip
    assert np.nanstd(v1) > 0.05 and np.nanmin(v1) < 0 < np.nanmax(v1)  # a mosaic of both directions
    later = s.render(pose, st, body=BodyState(10.0 + sp.duration_s + 10.0, (sp,)))
    assert np.isfinite(later.doppler_velocity_m_s).sum() <= np.isfinite(v0).sum()
