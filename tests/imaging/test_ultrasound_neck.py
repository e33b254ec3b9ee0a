"""The neck under ultrasound: flow along the centreline (analytic vessels), and the stellate
ganglion view of the bundled patient (cached build only; skipped when it is not built).

The stellate probe (the library's scenario): linear, axial over the right neck at C7, marker
lateral. A pain physician expects, lateral to medial: the internal jugular vein (anechoic, flattens
when the probe presses), the carotid under it (anechoic, round whatever the pressure, pulsatile
colour), the thyroid lobe medially (homogeneous, brighter than the muscles), deep the vertebral
artery (colour) in front of the C7 transverse process, the longus colli on the C7 body and the
bone's shadow below it."""
import numpy as np
import pytest

from simulator.core.probe import ProbePose, ProbeSpec
from simulator.core.tissue import Tissue
from simulator.imaging import ultrasound_phantoms as P
from simulator.imaging.ultrasound import ScannerSettings, UltrasoundSimulator
from simulator.imaging.ultrasound_flow import FlowFieldCache

SGB_CENTRE = (29.9, 58.9, -22.5)
SGB_DIRECTION = (-0.068, -0.998, 0.0)
SGB_MARKER = (0.998, -0.068, 0.0)
SYSTOLE_S, DIASTOLE_S = 0.135, 0.6  # the Doppler's heart cycle: 0.9 s, peak at 15 %


def test_flow_runs_along_a_wide_vessel_whatever_the_seed():
    """A wide straight vein seeded off its axis, and an artery labelled in two separate pieces:
    the flow runs along each vessel (no flow across the lumen, which would colour a transverse
    view), in both pieces."""
    a = P.block((-30, -30, -60), (30, 30, 60), 1.0, Tissue.SOFT_TISSUE)
    P.add_cylinder(a, (-12, 0, -55), (-12, 0, 55), 6.0, Tissue.VEIN, "wide_vein")
    P.add_cylinder(a, (12, 0, -55), (12, 0, -5), 2.5, Tissue.ARTERY, "split_artery")
    P.add_cylinder(a, (12, 0, 5), (12, 0, 55), 2.5, Tissue.ARTERY, "split_artery_b")
    ids = {s.name: s.id for s in a.structures.values()}
    a.labels[a.labels == ids["split_artery_b"]] = ids["split_artery"]  # one label, two pieces
    cache = FlowFieldCache(a)
    cache.ensure([ids["wide_vein"], ids["split_artery"]])
    _, f = cache._fields[ids["wide_vein"]]
    v = f[np.linalg.norm(f, axis=-1) > 0.02]
    across = np.linalg.norm(v[:, :2], axis=1) / np.linalg.norm(v, axis=1)
    assert np.percentile(across, 95) < 0.15
    lo, f = cache._fields[ids["split_artery"]]
    z = a.origin_mm[2] + (lo[2] + np.arange(f.shape[2])) * a.spacing_mm[2]
    speed = np.linalg.norm(f, axis=-1).max(axis=(0, 1))
    assert speed[(z > -45) & (z < -15)].min() > 0.3 and speed[(z > 15) & (z < 45)].min() > 0.3


@pytest.fixture(scope="module")
def bundled():
    from simulator.anatomy.bundled import cache_dir, cache_is_valid

    if not cache_is_valid(cache_dir()):
        pytest.skip("bundled patient not built (python main.py setup-data)")
    from simulator.anatomy import load_anatomy

    return load_anatomy("bundled")


@pytest.fixture(scope="module")
def sgb(bundled):
    sim = UltrasoundSimulator(bundled, ProbeSpec.linear())
    pose = ProbePose.from_vectors(SGB_CENTRE, SGB_DIRECTION, SGB_MARKER)
    return bundled, sim, pose


def _labels_in_view(anatomy, frame) -> np.ndarray:
    """The anatomy's label under each image pixel (as in the CT: where the probe's pressure has
    not moved the tissue)."""
    h, w = frame.display.shape
    vv, uu = np.mgrid[0:h, 0:w]
    p = frame.pixel_to_world(np.stack([uu.ravel(), vv.ravel()], 1).astype(float))
    ijk = np.clip(np.rint((p - anatomy.origin_mm) / anatomy.spacing_mm).astype(int), 0,
                  np.array(anatomy.labels.shape) - 1)
    return anatomy.labels[ijk[:, 0], ijk[:, 1], ijk[:, 2]].reshape(h, w)


def _id(anatomy, name) -> int:
    return anatomy.structure_by_name(name).id


def test_stellate_view_shows_the_neck_where_it_is(sgb):
    anatomy, sim, pose = sgb
    pose = sim.place_on_skin(pose, 2.0)
    f = sim.render(pose, ScannerSettings(depth_mm=75.0, frequency_mhz=8.0, focus_mm=50.0))
    lab = _labels_in_view(anatomy, f)
    db = f.bmode_db
    depth = (np.arange(db.shape[0]) + 0.5) * f.geometry.spacing_mm
    assert f.alive.mean() > 0.95  # the probe's whole face on the skin
    px = {n: lab == _id(anatomy, n) for n in (
        "internal_jugular_vein_right", "common_carotid_artery_right", "thyroid_gland", "vertebral_artery_right",
        "longus_colli_right", "vertebrae_C7")}
    for n, m in px.items():
        assert m.sum() * f.geometry.spacing_mm**2 > 8.0, f"{n} not in the stellate view"

    def inner(m):  # the lumen away from its walls' echoes
        from scipy import ndimage

        return ndimage.binary_erosion(m, iterations=max(1, int(1.0 / f.geometry.spacing_mm)))

    thyroid = np.median(db[inner(px["thyroid_gland"])])
    for vessel in ("internal_jugular_vein_right", "common_carotid_artery_right"):
        assert thyroid - np.median(db[inner(px[vessel])]) > 20.0, vessel  # anechoic lumens
    # The carotid lies under the jugular vein, the vertebral artery deeper, on the C7 body's level.
    d = {n: float(np.median(np.broadcast_to(depth[:, None], lab.shape)[m])) for n, m in px.items()}
    assert d["internal_jugular_vein_right"] < d["common_carotid_artery_right"] < d["vertebral_artery_right"]
    # The deep bone surface (the C7 body and transverse process): a bright line at least 25 dB
    # above the soft tissue 5-10 mm above it, and its shadow 5-10 mm under it at least 20 dB below
    # that tissue (without electronic noise: at 6 cm and 8 MHz the tissue is near the noise floor).
    f = sim.render(pose, ScannerSettings(depth_mm=75.0, frequency_mhz=8.0, focus_mm=50.0, noise_db=-300))
    g = f.grid
    dep = g.sample_depths_mm()
    env_db = 20 * np.log10(np.maximum(f.envelope_beam, 1e-30)) + f.tgc_db[None, :]
    bone = np.isin(f.tissue_beam, [int(Tissue.CORTICAL_BONE), int(Tissue.CANCELLOUS_BONE)]) & (dep > 40.0)[None, :]
    n2, n5, n10 = (int(x / g.dr_mm) for x in (2.0, 5.0, 10.0))
    from scipy import ndimage

    bone = ndimage.binary_opening(bone, structure=np.ones((1, n2)))  # a bone surface, not a calcified speck
    drops, bright = [], []
    for line in np.nonzero(bone.any(axis=1) & f.alive)[0]:
        t = int(np.argmax(bone[line]))
        if t + n10 < g.n_samples:
            above = env_db[line, t - n10:t - n5].mean()
            drops.append(above - env_db[line, t + n5:t + n10].mean())
            bright.append(env_db[line, t - n2:t + n2].max() - above)
    assert len(drops) > 0.2 * g.n_lines
    assert np.median(drops) > 20.0 and np.median(bright) > 25.0


def _largest(mask) -> int:
    """Samples in the largest connected piece of a beam-grid mask."""
    from scipy import ndimage

    lab, n = ndimage.label(mask)
    return int(np.bincount(lab.ravel())[1:].max()) if n else 0


def test_the_jugular_vein_flattens_under_the_probe_the_carotid_does_not(sgb):
    _, sim, pose0 = sgb
    st = ScannerSettings(depth_mm=60.0, frequency_mhz=8.0)
    area = {}
    for press in (1.0, 5.0, 9.0):
        f = sim.render(sim.place_on_skin(pose0, press), st)
        cell = f.grid.dr_mm * f.grid.line_pitch
        area[press] = {t: _largest(f.tissue_beam == int(t)) * cell for t in (Tissue.VEIN, Tissue.ARTERY)}
    veins = [area[p][Tissue.VEIN] for p in (1.0, 5.0, 9.0)]  # the jugular vein
    arteries = [area[p][Tissue.ARTERY] for p in (1.0, 5.0, 9.0)]  # the carotid
    assert veins[0] > 40.0 and veins[1] < 0.8 * veins[0] and veins[2] < 0.45 * veins[0], veins
    assert max(arteries) < 1.15 * min(arteries), arteries


def test_colour_doppler_in_the_vessels_only_and_the_carotid_pulsates(sgb):
    anatomy, sim, pose = sgb
    pose = sim.place_on_skin(pose, 1.0)
    frames = {t: sim.render(pose, ScannerSettings(depth_mm=75.0, frequency_mhz=8.0, doppler=True, time_s=t))
              for t in (SYSTOLE_S, DIASTOLE_S)}
    f = frames[SYSTOLE_S]
    lab = _labels_in_view(anatomy, f)
    vessel_ids = [s.id for s in anatomy.structures.values() if s.tissue in (Tissue.ARTERY, Tissue.VEIN)]
    from scipy import ndimage

    vessels = ndimage.binary_dilation(np.isin(lab, vessel_ids), iterations=3)  # walls, pixel mapping
    colour = np.isfinite(f.doppler_velocity_m_s)
    assert colour.sum() > 500
    assert (colour & vessels).sum() / colour.sum() > 0.97  # no colour outside the vessels
    cca = lab == _id(anatomy, "common_carotid_artery_right")
    va = lab == _id(anatomy, "vertebral_artery_right")
    assert (colour & cca).sum() > 0.5 * cca.sum() and (colour & va).sum() > 0.3 * va.sum()
    speed = {t: np.nanmean(np.abs(fr.doppler_velocity_m_s[cca])) for t, fr in frames.items()}
    assert speed[SYSTOLE_S] > 1.8 * speed[DIASTOLE_S]  # pulsatile
    ijv = lab == _id(anatomy, "internal_jugular_vein_right")
    venous = {t: np.nanmean(np.abs(np.where(ijv, fr.doppler_velocity_m_s, np.nan))) for t, fr in frames.items()}
    assert abs(venous[SYSTOLE_S] / venous[DIASTOLE_S] - 1.0) < 0.2  # the vein flows steadily
    # The carotid flows up the neck (away from this probe, tilted as the CT's carotid runs): one
    # colour, not a mosaic.
    v = f.doppler_velocity_m_s[cca & colour]
    assert max((v > 0).mean(), (v < 0).mean()) > 0.9
