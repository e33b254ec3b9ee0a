"""Known answers of the polychromatic beam model: spekpy's half-value layers, step-wedge
transmissions computed independently (spekpy's own spectrum, xraydb's material tables), the
tables against the direct spectrum sums, and contrast against kVp."""
import math

import numpy as np
import pytest

from simulator.imaging import xray_spectrum as XS

spekpy = pytest.importorskip("spekpy")
xraydb = pytest.importorskip("xraydb")


def _spekpy(kvp, al_mm=3.0, cu_mm=0.1):
    s = spekpy.Spek(kvp=float(kvp), th=12.0, dk=1.0)
    s.filter("Al", al_mm)
    if cu_mm:
        s.filter("Cu", cu_mm)
    return s


@pytest.mark.parametrize("kvp", [60, 80, 100])
def test_half_value_layer_matches_spekpy_within_5_percent(kvp):
    model = XS.spectral_model(kvp, 3.0, 0.1)
    ref = _spekpy(kvp).get_hvl1()
    assert model.hvl_mm_al() == pytest.approx(ref, rel=0.05)
    # and the air kerma per mAs (the dose model's source) within 2 %
    assert model.air_kerma_ugy_per_mas() == pytest.approx(_spekpy(kvp).get_kerma(), rel=0.02)


def _independent_attenuation(kvp, material, density, thickness_mm):
    """-ln(S/S0) of the detector signal behind a slab, from spekpy's filtered spectrum, xraydb's
    material table and a CsI energy-integrating detector, computed here from scratch."""
    s = _spekpy(kvp)
    k, phi = s.get_spectrum()
    e_ev = np.asarray(k) * 1000.0
    mu_slab = xraydb.material_mu(material, e_ev, density=density) / 10.0  # 1/mm
    det = XS.FLAT_PANEL
    eta = 1.0 - np.exp(-xraydb.material_mu("CsI", e_ev, density=4.51) * det.packing * det.csi_mm / 10.0)
    w = phi * eta * np.asarray(k)
    return -math.log(np.sum(w * np.exp(-mu_slab * thickness_mm)) / np.sum(w))


@pytest.mark.parametrize("kvp", [60, 80, 100])
def test_water_step_wedge_table_against_independent_spectrum_integral(kvp):
    model = XS.spectral_model(kvp, 3.0, 0.1)
    steps = np.array([10.0, 50.0, 100.0, 200.0, 300.0])
    ours = model.lookup(steps, np.zeros_like(steps))
    ref = np.array([_independent_attenuation(kvp, "water", 1.0, t) for t in steps])
    # transmission within 1 %
    np.testing.assert_allclose(np.exp(-ours), np.exp(-ref), rtol=0.01)


@pytest.mark.parametrize("kvp", [60, 100])
def test_aluminium_step_wedge_against_independent_spectrum_integral(kvp):
    model = XS.spectral_model(kvp, 3.0, 0.1)
    mu_al = XS.mass_attenuation("Al") * XS.DENSITY["Al"] / 10.0
    for t in (1.0, 2.0, 5.0, 10.0, 20.0):
        ours = model.attenuation(extra_mu=mu_al, extra_mm=t)
        ref = _independent_attenuation(kvp, "aluminum", 2.699, t)
        assert math.exp(-ours) == pytest.approx(math.exp(-ref), rel=0.01), t


def test_tables_follow_the_direct_spectrum_sums():
    model = XS.spectral_model(80, 3.0, 0.1)
    rng = np.random.default_rng(1)
    w = rng.uniform(0, 500, 300)
    b = rng.uniform(0, 60, 300)
    exact = np.array([model.attenuation(x, y) for x, y in zip(w, b)])
    assert np.max(np.abs(model.lookup(w, b) - exact)) < 0.005
    for iod in (20.0, 200.0, 800.0):
        d = model.attenuation(250, 12, iodine_mg_cm2=iod) - model.attenuation(250, 12)
        assert XS.lut3_at(250.0, 12.0, iod, model.lut_iodine, XS.W_MAX_MM, XS.B_MAX_MM, XS.I_MAX_MG_CM2) == pytest.approx(d, rel=0.01)
    for steel in (0.3, 0.72, 3.0):
        d = model.attenuation(250, 12, steel_mm=steel) - model.attenuation(250, 12)
        assert XS.lut3_at(250.0, 12.0, steel, model.lut_steel, XS.W_MAX_MM, XS.B_MAX_MM, XS.S_MAX_MM) == pytest.approx(d, rel=0.01)


def test_beam_hardening_and_contrast_rise_as_kvp_falls():
    bone, iodine, water_slope = [], [], []
    for kvp in (60, 70, 80, 100, 120):
        m = XS.spectral_model(kvp, 3.0, 0.1)
        bone.append(m.attenuation(200, 10) - m.attenuation(200, 0))
        iodine.append(m.attenuation(200, 0, 100) - m.attenuation(200, 0))
        water_slope.append((m.attenuation(20) / 20.0, (m.attenuation(320) - m.attenuation(300)) / 20.0))
    assert all(a > b for a, b in zip(bone, bone[1:]))
    assert all(a > b for a, b in zip(iodine, iodine[1:]))
    # beam hardening: the last centimetres of water attenuate less than the first ones
    assert all(deep < shallow for shallow, deep in water_slope)
    # at 80 kVp the bone contrast is above the 60 keV monochromatic model's (0.0398/mm * 10 mm)
    assert bone[2] > 0.0398 * 10


def test_filtration_that_leaves_no_photons_is_refused():
    with pytest.raises(ValueError, match="no photons"):
        XS.SpectralModel(50.0, XS.Filtration(al_mm=200.0, cu_mm=20.0))
    with pytest.raises(ValueError, match="kVp"):
        XS.unfiltered_spectrum(30.0)


def test_the_shipped_spectra_table_is_spekpys():
    flu, kvps, angles = XS._table()
    for kvp in (45.0, 85.0, 120.0):
        s = spekpy.Spek(kvp=kvp, th=12.0, dk=1.0)
        k, phi = s.get_spectrum()
        ours = XS.unfiltered_spectrum(kvp, 12.0)
        idx = np.rint(np.asarray(k) - 0.5).astype(int)
        np.testing.assert_allclose(ours[idx], phi, rtol=1e-4, atol=phi.max() * 1e-6)
