"""Neck structures synthesised from the labelled ones (anatomy/neck.py), on an analytic neck: the
internal jugular vein beside the carotid, the vertebral artery through the transverse foramina,
the longus colli on the vertebral bodies; nothing labelled is overwritten."""
import numpy as np
import pytest

from simulator.anatomy.neck import BLOOD_HU, IJV_RADIUS_MM, SPECK_HU, VA_RADIUS_MM, synthesise_neck
from simulator.core.anatomy import Structure
from simulator.core.tissue import Tissue, structure_group

SP = np.array([0.5, 0.5, 2.0])
ORIGIN = np.array([-60.0, -50.0, -80.0])
SHAPE = (241, 201, 41)  # x -60..60, y -50..50, z -80..0
FORAMEN_X = 26.0  # transverse foramina, mm from the midline
FORAMEN_Y = -12.0
IJ_SCAN = (21.0, 19.0)  # the scan's own jugular vein (right; mirrored left): anterior to the carotid
VA_SCAN = (23.0, -3.0)  # the scan's vertebral artery, in front of the C7 transverse process


def _grid():
    x = ORIGIN[0] + np.arange(SHAPE[0]) * SP[0]
    y = ORIGIN[1] + np.arange(SHAPE[1]) * SP[1]
    z = ORIGIN[2] + np.arange(SHAPE[2]) * SP[2]
    return np.meshgrid(x, y, z, indexing="ij")


def _phantom(scan_vessels: bool = False):
    """The analytic neck; `scan_vessels`: a contrast CT that shows the jugular veins (anterior to
    the carotids, not where the rules would put them), the vertebral arteries (a tube from the
    subclavian artery up in front of C7) and a small unlabelled vein in the fat, all unlabelled."""
    X, Y, Z = _grid()
    labels = np.zeros(SHAPE, np.uint16)
    hu = np.full(SHAPE, 40, np.int16)
    hu[(X**2 / 60**2 + Y**2 / 50**2) > 1] = -1000  # air around the neck
    names = {}

    def put(mask, sid, name, tissue, value):
        labels[mask & (labels == 0)] = sid
        hu[mask] = value
        names[sid] = (name, tissue)

    # vertebrae (a body 20 mm wide around y = -15, transverse processes to 35 mm with a foramen)
    levels = {"vertebrae_C6": (-10, 0), "vertebrae_C7": (-30, -10), "vertebrae_T1": (-50, -30)}
    for i, (name, (z0, z1)) in enumerate(levels.items()):
        zz = (Z >= z0) & (Z < z1)
        body = ((X / 10.0) ** 2 + ((Y + 15) / 9.0) ** 2 <= 1) & zz
        tp = (np.abs(X) > 8) & (np.abs(X) < 35) & (np.abs(Y - FORAMEN_Y) < 4.5) & zz
        if name == "vertebrae_C6":  # foramen transversarium (C7 has none here: the artery runs in front)
            tp &= ((np.abs(X) - FORAMEN_X) ** 2 + (Y - FORAMEN_Y) ** 2) > 2.5**2
        put(body | tp, 10 + i, name, Tissue.CANCELLOUS_BONE, 400)
    # carotids and their veins' destination, subclavian arteries
    for sign, side, sid in ((1, "right", 20), (-1, "left", 30)):
        put(((X - sign * 20) ** 2 + (Y - 8) ** 2 <= 4**2) & (Z > -70), sid, f"common_carotid_artery_{side}",
            Tissue.ARTERY, 300)
        put(((X - sign * 30) ** 2 + (Y - 10) ** 2 <= 7**2) & (Z < -60), sid + 1, f"brachiocephalic_vein_{side}",
            Tissue.VEIN, 200)
        put(((Y + 5) ** 2 + (Z + 66) ** 2 <= 4**2) & (sign * X > 10) & (sign * X < 50), sid + 2,
            f"subclavian_artery_{side}", Tissue.ARTERY, 300)
    put(((X / 6.0) ** 2 + ((Y - 6) / 5.0) ** 2 <= 1) & (Z > -70), 40, "trachea", Tissue.AIRWAY, -1000)
    if scan_vessels:
        for sign in (1, -1):
            hu[((X - sign * IJ_SCAN[0]) ** 2 + (Y - IJ_SCAN[1]) ** 2 <= 5.0**2) & (Z > -58) & (labels == 0)] = 190
            hu[((X - sign * VA_SCAN[0]) ** 2 + (Y - VA_SCAN[1]) ** 2 <= 2.5**2) & (Z > -64) & (Z < -12)
               & (labels == 0)] = 250
        hu[((X - 45) ** 2 + (Y - 25) ** 2 <= 2.0**2) & (Z > -30) & (Z < -10)] = 180  # a vein in the fat
        # an unlabelled bone (cortex over 900 HU, cancellous inside): stays bone, not a vessel
        r = np.hypot(X + 40, Y - 25)
        hu[(r <= 5.0) & (Z > -32) & (Z < -8)] = 1200
        hu[(r <= 3.5) & (Z > -29) & (Z < -11)] = 300
        # the thyroid lobe labelled, its isthmus not (enhanced, touching it): joins the gland
        put(((X - 12) ** 2 + (Y - 14) ** 2 <= 4.0**2) & (Z > -30) & (Z < -10), 50, "thyroid_gland",
            Tissue.THYROID, 150)
        hu[((X - 6) ** 2 + (Y - 15) ** 2 <= 3.0**2) & (Z > -30) & (Z < -10) & (labels == 0)] = 160
        hu[_index((40.0, 0.0, -20.0))] = 200  # an enhanced speck (one voxel): soft tissue, not bone
    structures = {sid: Structure(sid, n, t, structure_group(n, t), int((labels == sid).sum()))
                  for sid, (n, t) in names.items()}
    before = labels.copy()
    nid = synthesise_neck(hu, labels, SP, ORIGIN, structures, 100)
    return labels, before, structures, nid, hu


@pytest.fixture(scope="module")
def neck():
    return _phantom()


@pytest.fixture(scope="module")
def neck_scan():
    return _phantom(scan_vessels=True)


def _index(p):
    return tuple(np.rint((np.asarray(p) - ORIGIN) / SP).astype(int))


def _of(structures, name):
    return next(s for s in structures.values() if s.name == name)


def _centre(labels, sid, k):
    X, Y, _ = _grid()
    m = labels[:, :, k] == sid
    return (X[:, :, k][m].mean(), Y[:, :, k][m].mean(), m.sum() * SP[0] * SP[1]) if m.any() else None


def test_nothing_labelled_is_overwritten(neck):
    labels, before, structures, nid, _ = neck
    assert nid == 106
    assert np.array_equal(labels[before > 0], before[before > 0])
    for name, tissue in (("internal_jugular_vein_left", Tissue.VEIN), ("vertebral_artery_right", Tissue.ARTERY),
                         ("longus_colli_left", Tissue.MUSCLE)):
        assert _of(structures, name).tissue == tissue


def test_jugular_vein_lies_beside_the_carotid(neck):
    labels, _, structures, _, _ = neck
    for sign, side in ((1, "right"), (-1, "left")):
        ijv = _of(structures, f"internal_jugular_vein_{side}").id
        k = 30  # z = -20, mid neck
        cx, cy, area = _centre(labels, ijv, k)
        r = IJV_RADIUS_MM[side]
        assert sign * cx == pytest.approx(20 + 4 + r * 1.25 + 1.0, abs=1.5)  # lateral, touching the sheath
        assert cy == pytest.approx(8 + 2.5, abs=1.0)
        assert area == pytest.approx(np.pi * r * r, rel=0.15)
        # down to the brachiocephalic vein, bending onto it
        zs = np.nonzero((labels == ijv).any(axis=(0, 1)))[0]
        assert ORIGIN[2] + zs.min() * SP[2] <= -58.0


def test_vertebral_artery_runs_through_the_transverse_foramen(neck):
    labels, _, structures, _, _ = neck
    for sign, side in ((1, "right"), (-1, "left")):
        va = _of(structures, f"vertebral_artery_{side}").id
        k = 36  # z = -8, C6
        cx, cy, area = _centre(labels, va, k)
        assert sign * cx == pytest.approx(FORAMEN_X, abs=1.0)
        assert cy == pytest.approx(FORAMEN_Y, abs=1.0)
        assert area <= np.pi * VA_RADIUS_MM**2 * 1.1  # within the foramen (2.5 mm radius), never the bone
        k7 = 25  # z = -30 ... -10: C7, in front of the transverse process
        c7 = _centre(labels, va, k7 + 2)
        assert c7 is not None and c7[1] > FORAMEN_Y + 4.5  # anterior to the process
        zs = np.nonzero((labels == va).any(axis=(0, 1)))[0]
        assert ORIGIN[2] + zs.min() * SP[2] <= -60.0  # from the subclavian artery


def test_longus_colli_lies_on_the_vertebral_bodies(neck):
    labels, _, structures, _, _ = neck
    for sign, side in ((1, "right"), (-1, "left")):
        lc = _of(structures, f"longus_colli_{side}").id
        for k in (18, 27, 37):  # T1, C7, C6
            cx, cy, area = _centre(labels, lc, k)
            assert 3.0 < sign * cx < 15.0
            assert -15 + 9 - 1.0 < cy < -15 + 9 + 6.0  # on the body's front (y = -6), about 6 mm thick
            assert area > 20.0


def test_a_contrast_scan_s_own_vessels_are_followed(neck_scan):
    """On a contrast CT the jugular vein and the vertebral artery are where the scan shows them
    (not where the rules would put them); another enhanced blob of the neck becomes `neck_vessels`,
    not bone."""
    labels, before, structures, nid, hu = neck_scan
    assert nid == 107  # jugular veins, vertebral arteries, longus colli, neck_vessels
    assert np.array_equal(labels[before > 0], before[before > 0])
    for sign, side in ((1, "right"), (-1, "left")):
        ijv = _of(structures, f"internal_jugular_vein_{side}").id
        cx, cy, area = _centre(labels, ijv, 30)
        assert sign * cx == pytest.approx(IJ_SCAN[0], abs=0.7) and cy == pytest.approx(IJ_SCAN[1], abs=0.7)
        assert area == pytest.approx(np.pi * 5.0**2, rel=0.2)
        va = _of(structures, f"vertebral_artery_{side}").id
        for k in (15, 22, 27):  # z = -50 (above the subclavian), -36 (T1), -26 (C7)
            cx, cy, area = _centre(labels, va, k)
            assert sign * cx == pytest.approx(VA_SCAN[0], abs=0.7) and cy == pytest.approx(VA_SCAN[1], abs=0.7)
            assert area == pytest.approx(np.pi * 2.5**2, rel=0.35)
    other = _of(structures, "neck_vessels")
    assert other.tissue == Tissue.ARTERY
    cx, cy, area = _centre(labels, other.id, 30)
    assert cx == pytest.approx(45.0, abs=0.7) and cy == pytest.approx(25.0, abs=0.7)  # the vein, alone:
    assert area == pytest.approx(np.pi * 2.0**2, rel=0.35)  # not the unlabelled bone, not the isthmus
    thyroid = _of(structures, "thyroid_gland")
    assert labels[_index((6.0, 15.0, -20.0))] == thyroid.id  # the isthmus joined the gland
    assert thyroid.voxels == int((labels == thyroid.id).sum())
    assert labels[_index((-40.0, 25.0, -20.0))] == 0  # the unlabelled bone left to the tissue classes
    assert hu[_index((-40.0, 25.0, -20.0))] == 300
    assert labels[_index((40.0, 0.0, -20.0))] == 0 and hu[_index((40.0, 0.0, -20.0))] == SPECK_HU
    assert hu[_index((45.0, 25.0, -20.0))] == BLOOD_HU  # the vessels' CT numbers brought to blood
