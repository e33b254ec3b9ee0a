"""Injectate spread: volume kept, barriers respected, loose tissue preferred, special compartments."""
import math

import numpy as np
import pytest

from simulator.benchmarks.scoring import AORTA, CANAL, KIDNEY, TARGET, synthetic_block_anatomy
from simulator.core.anatomy import Anatomy, Structure
from simulator.core.spread import WASHOUT_S, compute_spread
from simulator.core.tissue import TISSUE_INFO, Tissue


@pytest.fixture(scope="module")
def block():
    return synthetic_block_anatomy()


def slab_anatomy(shape=(60, 60, 60), spacing=1.0):
    """Fat for y < 30 (voxels), muscle above; a bone wall at x >= 40."""
    tissue = np.full(shape, int(Tissue.FAT), np.uint8)
    tissue[:, 30:, :] = int(Tissue.MUSCLE)
    tissue[40:, :, :] = int(Tissue.CORTICAL_BONE)
    labels = np.zeros(shape, np.uint16)
    labels[40:, :, :] = 1
    hu = np.zeros(shape, np.int16)
    return Anatomy("slab", hu, tissue, labels, np.full(3, spacing), np.zeros(3),
                   structures={1: Structure(1, "vertebrae_L2", Tissue.CORTICAL_BONE, "spine")})


def test_volume_is_kept_and_barriers_are_not_entered():
    an = slab_anatomy()
    sp = compute_spread(an, [30.0, 15.0, 30.0], 5.0)
    assert sp.mode == "tissue"
    assert sp.deposited_ml == pytest.approx(5.0, rel=1e-6)
    tis = an.tissue[tuple(sp.indices.T)]
    assert not np.any(tis == int(Tissue.CORTICAL_BONE))
    assert "vertebrae_L2" in sp.contacts  # it spreads up to the bone and touches it
    box, origin, spacing = sp.subgrid()
    assert float(box.sum()) * np.prod(spacing) / 1000.0 == pytest.approx(5.0, rel=1e-6)
    assert np.all(origin >= 0)


def test_loose_tissue_is_preferred_to_muscle():
    an = slab_anatomy()
    # tip on the fat/muscle interface: most of the bolus stays in the fat
    sp = compute_spread(an, [20.0, 29.0, 30.0], 3.0)
    tis = an.tissue[tuple(sp.indices.T)]
    fat = float(sp.fraction[tis == int(Tissue.FAT)].sum())
    muscle = float(sp.fraction[tis == int(Tissue.MUSCLE)].sum())
    assert fat > 3 * muscle > 0


def test_in_uniform_fat_the_fill_is_round():
    an = slab_anatomy()
    v = 2.0
    sp = compute_spread(an, [20.0, 12.0, 30.0], v)
    r_eq = (3 * v * 1000 / (4 * math.pi)) ** (1 / 3)
    r = np.linalg.norm(sp.points_mm() - [20.0, 12.0, 30.0], axis=1)
    assert r.max() <= 1.25 * r_eq
    assert np.mean(r) == pytest.approx(0.75 * r_eq, rel=0.15)  # mean radius of a ball is 3/4 of its radius


def test_intravascular_injection_washes_out(block):
    (ax, ay), _ = AORTA
    sp = compute_spread(block, [ax, ay, 0.0], 10.0)
    assert sp.intravascular and sp.washout
    assert np.all(block.labels[tuple(sp.indices.T)] == 2)
    assert sp.visible_at(sp.time_s + 1.0) and not sp.visible_at(sp.time_s + WASHOUT_S + 0.1)
    assert sp.coverage_of(np.array([TARGET])) == 0.0


def test_intrathecal_and_intra_organ_fills_stay_inside(block):
    sp = compute_spread(block, [CANAL[0][0], CANAL[0][1], 0.0], 2.0)
    assert sp.intrathecal
    assert np.all(block.tissue[tuple(sp.indices.T)] == int(Tissue.CSF))
    assert sp.deposited_ml == pytest.approx(2.0, rel=1e-6)
    k = compute_spread(block, list(KIDNEY[0]), 1.0)
    assert k.mode == "intra_organ" and np.all(block.labels[tuple(k.indices.T)] == 4)


def test_injection_into_air_deposits_nothing(block):
    sp = compute_spread(block, [0.0, -75.0, 0.0], 1.0)
    assert sp.mode == "outside" and len(sp.indices) == 0 and sp.overflow_ml == 1.0
    with pytest.raises(ValueError):
        compute_spread(block, [0.0, 0.0, 0.0], 0.0)


def test_coverage_of_a_nerve_partly_inside_the_fill():
    an = slab_anatomy()
    sp = compute_spread(an, [20.0, 12.0, 30.0], 2.0)
    r_eq = (3 * 2000 / (4 * math.pi)) ** (1 / 3)
    # a nerve along z through the tip: the part within the fill is covered
    z = np.arange(0.0, 60.0, 1.0)
    nerve = np.stack([np.full_like(z, 20.0), np.full_like(z, 12.0), z], axis=1)
    cov = sp.coverage_of(nerve)
    assert cov == pytest.approx(2 * r_eq / 60.0, abs=0.08)
    assert sp.coverage_of(np.array([[20.0, 12.0, 30.0]])) == 1.0


def test_twenty_ml_on_the_test_block(block):
    sp = compute_spread(block, TARGET, 20.0)  # its time is a benchmark figure, not a test
    assert sp.deposited_ml == pytest.approx(20.0, rel=1e-6)
    assert all(TISSUE_INFO[Tissue(int(t))].barrier is False for t in np.unique(block.tissue[tuple(sp.indices.T)]))
    assert "aorta" in sp.contacts  # the bolus beside the aorta flattens against its wall


def test_graded_concentration_falls_from_tip_to_front():
    an = slab_anatomy()
    sp = compute_spread(an, [20.0, 12.0, 30.0], 2.0)
    c = sp.concentration(texture=0.0)
    assert c.max() <= 1.0 and c.min() > 0.0
    near = c[sp.distance_mm <= np.percentile(sp.distance_mm, 10)].mean()
    far = c[sp.distance_mm >= np.percentile(sp.distance_mm, 90)].mean()
    assert c[np.argmin(sp.distance_mm)] > 0.97 and near > 0.75 and far < 0.35  # undiluted at the tip, mixed with tissue fluid at the front
    # the texture is fixed to the tissue: the same voxels get the same values
    assert np.array_equal(sp.concentration(), compute_spread(an, [20.0, 12.0, 30.0], 2.0).concentration())
    graded, _, spacing = sp.subgrid(graded=True)
    plain, _, _ = sp.subgrid()
    assert float(plain.sum()) * np.prod(spacing) / 1000.0 == pytest.approx(2.0, rel=1e-6)
    assert 0.2 * plain.sum() < graded.sum() < plain.sum()


def test_a_bolus_grows_at_the_injection_rate_then_resorbs():
    from simulator.core.spread import INJECTION_RATE_ML_S, RESORPTION_TAU_S

    sp = compute_spread(slab_anatomy(), [30.0, 15.0, 30.0], 2.0)
    sp.time_s = 10.0
    assert sp.injected_ml(None) == sp.present_ml(None) == 2.0
    assert sp.injected_ml(9.0) == 0.0
    assert sp.injected_ml(11.0) == pytest.approx(INJECTION_RATE_ML_S)
    end = 10.0 + sp.duration_s
    assert sp.duration_s == pytest.approx(2.0 / INJECTION_RATE_ML_S)
    assert sp.present_ml(end) == pytest.approx(2.0)
    assert sp.present_ml(end + RESORPTION_TAU_S) == pytest.approx(2.0 / math.e)
    # The growing deposit fills in fill order: the first voxels, holding exactly the volume.
    idx, frac = sp.fill_prefix(0.5)
    assert float(frac.astype(np.float64).sum()) * sp.voxel_volume_mm3 / 1000.0 == pytest.approx(0.5)
    d_prefix = sp.distance_mm[np.isin(np.ravel_multi_index(sp.indices.T, (60, 60, 60)),
                                      np.ravel_multi_index(idx.T, (60, 60, 60)))]
    assert d_prefix.max() <= np.sort(sp.distance_mm)[len(idx) - 1] + 1e-9


def test_agents_are_classed_and_air_is_recorded_with_the_injection(scenario, block):
    from simulator.core.procedure import Procedure, ProcedureError
    from simulator.core.spread import agent_class

    assert agent_class("phenol 6 % in glycerol") == agent_class("dehydrated alcohol") == "neurolytic"
    assert agent_class("iohexol 300") == "contrast" and agent_class("bupivacaine 0.5 %") == "local_anaesthetic"
    assert agent_class("x", "test_dose") == "local_anaesthetic"
    proc = Procedure(scenario, block, clock=lambda: 0.0)
    proc.set_entry(np.array(TARGET) + [0, -40, 0], [0, 1, 0], time_s=0.5)
    proc.advance(40.0, time_s=1.0)
    sp = proc.inject("test_dose", "lidocaine", 1.0, 2.0, air_ml=0.3, time_s=2.0)
    assert sp.air_ml == 0.3 and sp.agent_class == "local_anaesthetic"
    ev = [e for e in proc.events if e.kind.value == "injection"][-1]
    assert ev.data["air_ml"] == 0.3 and "air" in ev.message
    with pytest.raises(ProcedureError, match="air_ml"):
        proc.inject("test_dose", "lidocaine", 1.0, 1.0, air_ml=1.0, time_s=3.0)
