"""Shared fixtures: a tiny synthetic anatomy with known geometry, and Qt/VTK test hygiene.

The synthetic patient (RAS mm) is a box-shaped "body" (the skin) containing:
- vertebrae_L1: a box on the midline, posterior (x -15..15, y -60..-30, z -20..20), bone
- aorta: a vertical cylinder left of the midline, anterior to the spine (x = -20, y = -10, r 10)
- kidney_left: a sphere on the patient's LEFT (x = -70, y = -40, z = 0, r 22), organ
- kidney_right: a smaller sphere on the patient's RIGHT (x = +70, y = -40, z = 10, r 15)
so tests know where each structure must appear on screen for every camera preset.
"""
from __future__ import annotations

import numpy as np
import pytest

from simulator.core import meshes
from simulator.core.anatomy import Anatomy, Structure, TriMesh
from simulator.core.tissue import Tissue

BODY_LO = np.array([-120.0, -90.0, -100.0])
BODY_HI = np.array([120.0, 90.0, 100.0])
L1_LO = np.array([-15.0, -60.0, -20.0])
L1_HI = np.array([15.0, -30.0, 20.0])
AORTA_XY = (-20.0, -10.0)
AORTA_R = 10.0
KIDNEY_LEFT_C = np.array([-70.0, -40.0, 0.0])
KIDNEY_LEFT_R = 22.0
KIDNEY_RIGHT_C = np.array([70.0, -40.0, 10.0])
KIDNEY_RIGHT_R = 15.0


def box_mesh(lo, hi) -> TriMesh:
    """Axis-aligned box with outward-oriented faces (watertight)."""
    mesh = meshes.box_mesh(lo, hi)
    assert mesh.signed_volume_mm3() > 0
    return mesh


def sphere_mesh(centre, radius, subdivisions: int = 3) -> TriMesh:
    """Icosphere, outward oriented."""
    mesh = meshes.icosphere(centre, radius, subdivisions)
    assert mesh.signed_volume_mm3() > 0
    return mesh


def cylinder_mesh(x, y, radius, z0, z1, sides: int = 32) -> TriMesh:
    """Closed vertical cylinder, outward oriented."""
    ang = np.linspace(0, 2 * np.pi, sides, endpoint=False)
    ring = np.stack([x + radius * np.cos(ang), y + radius * np.sin(ang)], axis=1)
    bottom = np.column_stack([ring, np.full(sides, z0)])
    top = np.column_stack([ring, np.full(sides, z1)])
    v = np.vstack([bottom, top, [[x, y, z0], [x, y, z1]]])
    cb, ct = 2 * sides, 2 * sides + 1
    faces = []
    for i in range(sides):
        j = (i + 1) % sides
        faces += [(i, j, sides + j), (i, sides + j, sides + i)]
        faces += [(cb, j, i), (ct, sides + i, sides + j)]
    mesh = TriMesh(v, np.array(faces))
    assert mesh.signed_volume_mm3() > 0
    return mesh


def make_synthetic_anatomy() -> Anatomy:
    shape = (8, 8, 8)
    structures = {
        1: Structure(1, "vertebrae_L1", Tissue.CANCELLOUS_BONE, "spine"),
        2: Structure(2, "aorta", Tissue.ARTERY, "vessels"),
        3: Structure(3, "kidney_left", Tissue.KIDNEY, "organs"),
        4: Structure(4, "kidney_right", Tissue.KIDNEY, "organs"),
    }
    meshes = {
        "skin": box_mesh(BODY_LO, BODY_HI),
        "vertebrae_L1": box_mesh(L1_LO, L1_HI),
        "aorta": cylinder_mesh(*AORTA_XY, AORTA_R, -80.0, 80.0),
        "kidney_left": sphere_mesh(KIDNEY_LEFT_C, KIDNEY_LEFT_R),
        "kidney_right": sphere_mesh(KIDNEY_RIGHT_C, KIDNEY_RIGHT_R),
    }
    return Anatomy(
        name="synthetic",
        hu=np.zeros(shape, np.int16),
        tissue=np.zeros(shape, np.uint8),
        labels=np.zeros(shape, np.uint16),
        spacing_mm=np.full(3, 30.0),
        origin_mm=BODY_LO + 15.0,
        structures=structures,
        meshes=meshes,
        source={"kind": "synthetic test anatomy"},
    )


@pytest.fixture(scope="session")
def synthetic_anatomy() -> Anatomy:
    return make_synthetic_anatomy()


@pytest.fixture
def qsettings_file(tmp_path):
    """An isolated settings file, so GUI tests never read or write the user's settings."""
    return tmp_path / "settings.ini"


@pytest.fixture(scope="session", autouse=True)
def _release_windows_before_the_display_goes():
    """pytest-xvfb stops the X server when the session ends, before Python exits. Widgets closed
    by the last test are only deleteLater()'d, and a test that failed may have left its window
    open; delete them all (and their VTK render windows, which hold X connections) now, while the
    server is still there - a window destroyed after the server went crashes the interpreter at
    exit (exit code 139 after a passing run)."""
    yield
    import gc
    import sys

    if "PySide6.QtWidgets" in sys.modules:
        release_top_level_widgets()
    gc.collect()


def release_top_level_widgets() -> None:
    """Close and delete every top-level widget now. Closing one window may run the event loop and
    delete others already deleteLater()'d (their Python wrappers then outlive them): each is
    checked before it is touched, and the deletions are repeated until none is left."""
    from PySide6.QtCore import QCoreApplication, QEvent
    from PySide6.QtWidgets import QApplication
    from shiboken6 import isValid

    app = QApplication.instance()
    if app is None:
        return
    for _ in range(5):
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        windows = [w for w in app.topLevelWidgets() if isValid(w)]
        if not windows:
            return
        for w in windows:
            if isValid(w):
                w.close()
            if isValid(w):
                w.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        QCoreApplication.processEvents()


@pytest.fixture(scope="session")
def lumbopelvic():
    """The second bundled patient (lumbar spine and pelvis) from its built cache (`make test` builds
    it; skipped when it is not built)."""
    from simulator.anatomy import load_anatomy
    from simulator.anatomy.lumbopelvic import cache_is_valid

    if not cache_is_valid():
        pytest.skip("the lumbopelvic patient is not built (python main.py setup-data)")
    return load_anatomy("bundled:lumbopelvic")


from tests.pg import pg_cluster, pg_database, pg_template  # noqa: E402,F401 - shared PostgreSQL fixtures


def pytest_collection_modifyitems(config, items):
    """The declared markers: `gui` for the tests of the Qt layer (they need a display: pytest-xvfb
    starts one), `slow` for those on the built bundled patient (`pytest -m "not slow"` skips them)."""
    for item in items:
        path = str(item.path)
        if "/tests/ui/" in path:
            item.add_marker(pytest.mark.gui)
        if {"bundled", "lumbopelvic", "imported_patient"} & set(getattr(item, "fixturenames", ())) \
                or "bundled" in item.name or "celiac" in item.name:
            item.add_marker(pytest.mark.slow)


IMPORTED = "ts_example_import"


@pytest.fixture(scope="session")
def imported_patient():
    """An imported patient, as an instructor makes one: the TotalSegmentator example CT cropped to
    L1 - coccyx (a field of view of its own), its labels written as TotalSegmentator's default output
    (one mask file per structure), through `import_anatomy`. Built once per data folder (the
    importer's cache is keyed by the inputs' hash; about 20 s), skipped when the lumbopelvic
    patient's archive is not downloaded. Returns (reference, anatomy)."""
    import tempfile
    from pathlib import Path

    import nibabel as nib

    from simulator.anatomy import load_anatomy, packaged
    from simulator.anatomy.importer import import_anatomy
    from simulator.anatomy.lumbopelvic import PATIENT
    from simulator.anatomy.volume_io import read_nifti_bytes

    archive = packaged.archive_path(PATIENT)
    if not archive.exists():
        pytest.skip("the lumbopelvic archive is not downloaded (python main.py setup-data)")
    read, close = packaged._reader(archive)
    try:
        ct, aff = read_nifti_bytes(read(PATIENT.ct_member), "ct")
        seg, _ = read_nifti_bytes(read(PATIENT.labels_member), "seg")
        names = PATIENT.names(read, str(archive))
    finally:
        close()
    k0, k1 = 8, 100  # slices: below the hips' implant to above L1 (3 mm each)
    aff = aff.copy()
    aff[:3, 3] = aff[:3, 3] + aff[:3, 2] * k0
    ct, seg = ct[:, :, k0:k1], seg[:, :, k0:k1]
    with tempfile.TemporaryDirectory(prefix="neurolysis-import-") as tmp:
        folder = Path(tmp) / "segmentations"
        folder.mkdir()
        nib.save(nib.Nifti1Image(ct.astype("int16"), aff), str(Path(tmp) / "ct.nii"))
        for sid in sorted(set(int(v) for v in seg.ravel()) - {0}):
            nib.save(nib.Nifti1Image((seg == sid).astype("uint8"), aff), str(folder / f"{names[sid]}.nii"))
        import_anatomy(Path(tmp) / "ct.nii", folder, name=IMPORTED)
    ref = f"user:{IMPORTED}"
    return ref, load_anatomy(ref)
