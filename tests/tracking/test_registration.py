"""Fiducial registration and pivot calibration on known geometry."""
import numpy as np
import pytest

from simulator.tracking.calibration import CalibrationError, pivot_calibration
from simulator.core.geometry import rotation_about_axis as _rot
from simulator.tracking.registration import RegistrationError, register_fiducials


def _transform(deg=35.0, axis=(1, 2, 3), t=(120.0, -40.0, 15.0)):
    m = np.eye(4)
    m[:3, :3] = _rot(axis, deg)
    m[:3, 3] = t
    return m


PHANTOM = np.array([[0, 0, 0], [80, 0, 0], [0, 60, 0], [0, 0, 40], [50, 50, 20]], float)


def test_exact_points_give_the_transform_and_no_error():
    m = _transform()
    world = PHANTOM @ m[:3, :3].T + m[:3, 3]
    reg = register_fiducials(PHANTOM, world)
    assert np.allclose(reg.reference_to_world, m, atol=1e-9) and reg.fre_mm < 1e-9
    assert np.linalg.det(reg.reference_to_world[:3, :3]) == pytest.approx(1.0)


def test_noisy_points_report_their_fre_and_mispaired_points_a_large_one():
    rng = np.random.default_rng(4)
    m = _transform()
    world = PHANTOM @ m[:3, :3].T + m[:3, 3]
    noisy = world + rng.normal(0, 0.5, world.shape)
    reg = register_fiducials(PHANTOM, noisy)
    assert 0.1 < reg.fre_mm < 1.0
    assert np.allclose(reg.reference_to_world[:3, 3], m[:3, 3], atol=2.0)
    # the expected error at a target inside the fiducials is of the order of the localisation error
    tre = reg.tre_mm(world.mean(axis=0))
    assert 0.1 < tre < 1.0 and reg.tre_mm(world.mean(axis=0) + [300, 0, 0]) > tre  # and grows away from them
    swapped = world.copy()
    swapped[[1, 2]] = swapped[[2, 1]]
    bad = register_fiducials(PHANTOM, swapped)
    assert bad.fre_mm > 20 * reg.fre_mm and bad.residuals_mm.min() > 5.0


@pytest.mark.parametrize("src,dst,words", [
    (PHANTOM[:2], PHANTOM[:2], "needs 3"),
    (PHANTOM, PHANTOM[:4], "must pair up"),
    (np.array([[0, 0, 0], [10, 0, 0], [20, 0.1, 0], [30, 0, 0]], float), np.eye(4)[:, :3] * 50, "on a line"),
    (np.vstack([PHANTOM[:3], [np.nan, 0, 0]]), PHANTOM[:4], "point 4 is not a finite"),
    (PHANTOM.ravel(), PHANTOM, "N x 3"),
])
def test_points_that_cannot_register_are_told(src, dst, words):
    with pytest.raises(RegistrationError, match=words):
        register_fiducials(src, dst)


def _pivot_poses(tip, pivot, n=30, max_deg=30.0, rng=None, noise=0.0):
    rng = rng or np.random.default_rng(0)
    out = []
    for k in range(n):
        r = _rot(rng.normal(size=3), rng.uniform(-max_deg, max_deg))
        m = np.eye(4)
        m[:3, :3] = r
        m[:3, 3] = pivot - r @ tip + rng.normal(0, noise, 3)
        out.append(m)
    return np.stack(out)


def test_pivot_calibration_finds_the_tip():
    tip = np.array([2.0, -1.0, 155.0])
    pivot = np.array([10.0, 20.0, -30.0])
    cal = pivot_calibration(_pivot_poses(tip, pivot))
    assert np.allclose(cal.tip_in_tool_mm, tip, atol=1e-9) and np.allclose(cal.pivot_in_reference_mm, pivot, atol=1e-9)
    assert cal.rms_mm < 1e-9 and cal.rotation_range_deg > 20
    m = cal.needle_tip_to_tool()
    assert np.allclose(m[:3, 3], tip) and np.allclose(m[:3, 2], tip / np.linalg.norm(tip))  # +Z towards the tip
    assert np.allclose(m[:3, :3].T @ m[:3, :3], np.eye(3)) and np.linalg.det(m[:3, :3]) == pytest.approx(1.0)
    noisy = pivot_calibration(_pivot_poses(tip, pivot, noise=0.3, rng=np.random.default_rng(2)))
    assert 0.1 < noisy.rms_mm < 0.6 and np.allclose(noisy.tip_in_tool_mm, tip, atol=1.5)


def test_pivot_calibration_refuses_poor_pivoting():
    tip, pivot = np.array([0.0, 0.0, 150.0]), np.zeros(3)
    with pytest.raises(CalibrationError, match="at least 6"):
        pivot_calibration(_pivot_poses(tip, pivot, n=4))
    with pytest.raises(CalibrationError, match="turned .* degrees"):
        pivot_calibration(_pivot_poses(tip, pivot, max_deg=5.0))
    one_axis = np.stack([np.eye(4)] * 10)
    for k in range(10):
        one_axis[k, :3, :3] = _rot([1, 0, 0], 4.0 * k)
        one_axis[k, :3, 3] = pivot - one_axis[k, :3, :3] @ tip
    with pytest.raises(CalibrationError, match="one axis"):
        pivot_calibration(one_axis)
