"""Bones from closed meshes: exact path lengths through analytic solids, the cortical shell over
the cancellous core, the calibration against the CT, and the landmarks on the bundled patient."""
import numpy as np
import pytest

from simulator.core.anatomy import TriMesh
from simulator.core.carm import CArmPose
from simulator.imaging.fluoroscopy import DisplaySettings
from simulator.imaging import xray_mesh_kernels as MK
from simulator.imaging.xray_bones import MIN_CORE_WEIGHT, MIN_SHELL_WEIGHT, BoneGroup, BoneModel, _calibrate, inner_surface


def icosphere(level: int) -> tuple[np.ndarray, np.ndarray]:
    from simulator.core.geometry import icosphere as sphere

    mesh = sphere(subdivisions=level)
    return mesh.vertices.astype(np.float64), mesh.faces.astype(np.int64)


def cylinder(radius, height, n=720, rings=40):
    """A closed capped cylinder along z, outward faces."""
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
    zs = np.linspace(-height / 2, height / 2, rings + 1)
    verts = [(radius * np.cos(a), radius * np.sin(a), z) for z in zs for a in ang]
    verts += [(0, 0, -height / 2), (0, 0, height / 2)]
    faces = []
    for r in range(rings):
        for i in range(n):
            a, b = r * n + i, r * n + (i + 1) % n
            c, d = a + n, b + n
            faces += [(a, b, d), (a, d, c)]
    bot, top = len(verts) - 2, len(verts) - 1
    for i in range(n):
        faces.append((bot, (i + 1) % n, i))
        faces.append((top, rings * n + i, rings * n + (i + 1) % n))
    return np.array(verts, float), np.array(faces, dtype=np.int64)


def _path(verts, faces, pose):
    n = pose.detector_pixels
    det_origin, du, dv = pose.detector_pixel_grid()
    src = pose.source_mm
    uv = np.empty((len(verts), 2))
    MK.project_vertices(verts, src, det_origin, du, dv, pose.beam_direction, pose.source_to_detector_mm, uv)
    out = np.zeros((n, n))
    MK.mesh_path_length(verts, faces, uv, src, det_origin - src, du, dv, out)
    return out


def test_path_length_through_a_sphere_within_half_a_percent():
    v, f = icosphere(5)
    centre, radius = np.array([3.0, -2.0, 5.0]), 40.0
    verts = v * radius + centre
    assert TriMesh(verts, f).is_watertight() and TriMesh(verts, f).signed_volume_mm3() > 0
    for pose in (CArmPose(lao_deg=20, cranial_deg=10, detector_pixels=256), CArmPose(lao_deg=90, detector_pixels=256)):
        got = _path(verts, f, pose)
        o, d = pose.pixel_rays()
        m = o - centre
        b = np.einsum("ijk,ijk->ij", m, d)
        disc = b * b - (np.einsum("ijk,ijk->ij", m, m) - radius**2)
        chord = np.where(disc > 0, 2 * np.sqrt(np.maximum(disc, 0)), 0.0)
        inside = chord > 0.2 * chord.max()
        rel = np.abs(got[inside] - chord[inside]) / chord[inside]
        assert np.median(rel) < 0.005 and np.mean(rel) < 0.005
        assert got[chord == 0].max() == 0.0 and got.min() >= 0.0  # no crack or spike outside
        # the integral over the detector (volume x magnification^2) within 0.5 %
        assert got.sum() == pytest.approx(chord.sum(), rel=0.005)


def test_path_length_through_a_cylinder_within_half_a_percent():
    radius, height = 15.0, 120.0
    verts, faces = cylinder(radius, height)
    verts = verts + np.array([0.0, 0.0, 10.0])
    # beam across the cylinder (AP of a vertical cylinder): chord = 2 sqrt(r^2 - d^2) in its cross-section
    pose = CArmPose(detector_pixels=256, isocenter_mm=(0.0, 0.0, 10.0))
    got = _path(verts, faces, pose)
    o, d = pose.pixel_rays()
    # exact chord through the (finite) cylinder: the infinite one's, clipped by the caps
    m = o[..., :2]
    dd = d[..., :2]
    a = np.einsum("ijk,ijk->ij", dd, dd)
    b = np.einsum("ijk,ijk->ij", m, dd)
    c = np.einsum("ijk,ijk->ij", m, m) - radius**2
    disc = b * b - a * c
    ok = disc > 0
    t1 = np.where(ok, (-b - np.sqrt(np.maximum(disc, 0))) / a, 0)
    t2 = np.where(ok, (-b + np.sqrt(np.maximum(disc, 0))) / a, 0)
    z0, z1 = 10.0 - height / 2, 10.0 + height / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        s0 = (z0 - o[..., 2]) / d[..., 2]
        s1 = (z1 - o[..., 2]) / d[..., 2]
    lo = np.maximum(t1, np.minimum(s0, s1))
    hi = np.minimum(t2, np.maximum(s0, s1))
    chord = np.where(ok, np.maximum(hi - lo, 0), 0)
    inside = chord > 0.2 * chord.max()
    rel = np.abs(got[inside] - chord[inside]) / chord[inside]
    assert np.median(rel) < 0.005
    assert got.sum() == pytest.approx(chord.sum(), rel=0.005)


def test_cortical_shell_over_core_on_a_sphere():
    """A hollow-ish sphere: the inner surface 1.5 mm in, the shell at weight 1 and the core at 0.1:
    through the centre B = 2 x 1.5 + 0.1 x (2 R - 3); tangentially near the rim the shell's long
    path shows as a bright ring (the cortical outline)."""
    v, f = icosphere(5)
    radius = 20.0
    outer = v * radius
    inner = inner_surface(outer, f, 1.5, np.full(len(outer), 20.0))
    assert np.allclose(np.linalg.norm(inner, axis=1), radius - 1.5, atol=0.05)
    model = BoneModel(np.concatenate([outer, inner]), np.concatenate([f, f + len(outer)]),
                      [BoneGroup("ball", 1, (0, len(f)), (len(f), 2 * len(f)), (0, 2 * len(outer)), 1.5, 1.0, 0.1,
                                 0.0, 0.0, 0.0)])
    pose = CArmPose(detector_pixels=256)
    b = model.project(pose)
    c = 127.5
    centre = b[127:129, 127:129].mean()
    mag = pose.source_to_detector_mm / pose.source_to_isocenter_mm
    assert centre == pytest.approx(2 * 1.5 + 0.1 * (2 * radius - 3.0), rel=0.01)
    # the outline: the maximum of B along a row through the centre lies within the shell's
    # projection, near the rim, and is several times the centre's value
    row = b[128]
    rim_px = radius * mag / pose.pixel_pitch_mm
    peak = int(np.argmax(row[: int(c)]))
    assert abs((c - peak) - rim_px) < 2.5
    assert row[peak] > 2.0 * centre


def test_calibration_shares_the_ct_mass_between_shell_and_core():
    core_w, shell_w = _calibrate(10.0, 12.0, 30.0, 0.13)
    assert core_w == pytest.approx(0.13) and shell_w * 12.0 + core_w * 30.0 == pytest.approx(10.0)
    core_w, shell_w = _calibrate(40.0, 12.0, 30.0, 0.13)  # dense bone: the shell is cortical, the core takes the rest
    assert shell_w == 1.0 and core_w == pytest.approx((40.0 - 12.0) / 30.0)
    core_w, shell_w = _calibrate(8.0, 12.0, 30.0, 0.13)  # light bone: the shell at its floor, the core lighter
    assert shell_w == pytest.approx(MIN_SHELL_WEIGHT) and core_w == pytest.approx((8.0 - 12.0 * MIN_SHELL_WEIGHT) / 30.0)
    assert core_w >= MIN_CORE_WEIGHT
    core_w, shell_w = _calibrate(3.0, 12.0, 30.0, 0.13)  # very light: the core at its floor, the shell lighter
    assert core_w == pytest.approx(MIN_CORE_WEIGHT) and shell_w == pytest.approx((3.0 - 30.0 * MIN_CORE_WEIGHT) / 12.0)
    assert _calibrate(0.6, 12.0, 30.0, 0.13) == (pytest.approx(0.02), 0.0)  # all in the core, the mass kept


def test_an_open_bone_mesh_is_reported_and_left_in_the_ct(synthetic_anatomy):
    import copy

    from simulator.core.tissue import BONE

    anatomy = copy.copy(synthetic_anatomy)
    bones = [s for s in anatomy.structures.values() if s.tissue in BONE and s.name in anatomy.meshes]
    if not bones:
        pytest.skip("the synthetic anatomy has no meshed bone")
    name = bones[0].name
    mesh = anatomy.meshes[name]
    anatomy.meshes = dict(anatomy.meshes, **{name: TriMesh(mesh.vertices, mesh.faces[:-3])})
    model = BoneModel.from_anatomy(anatomy)
    assert name in model.rejected and "not closed" in model.rejected[name]
    assert all(g.name != name for g in model.groups)


@pytest.fixture(scope="module")
def bundled_renderer():
    from simulator.anatomy import load_anatomy
    from simulator.anatomy.bundled import cache_dir, cache_is_valid

    if not cache_is_valid(cache_dir()):
        pytest.skip("the bundled patient is not built (make data)")
    from simulator.imaging.fluoroscopy import FluoroscopyRenderer

    anatomy = load_anatomy("bundled")
    return anatomy, FluoroscopyRenderer(anatomy, seed=0)


def test_bundled_bones_carry_the_cts_mass_and_show_their_landmarks(bundled_renderer):
    from simulator.imaging.fluoroscopy_landmarks import bone_calibration_check, landmark_report

    anatomy, renderer = bundled_renderer
    assert renderer.bones is not None and not renderer.bones.rejected
    names = {g.name for g in renderer.bones.groups}
    assert {"vertebrae_L1", "vertebrae_T12", "rib_left_12", "rib_right_11"} <= names
    iso = (anatomy.centroid_mm("vertebrae_T11") + anatomy.centroid_mm("vertebrae_T12")) / 2
    pose = CArmPose(isocenter_mm=tuple(iso), detector_pixels=512)
    # the preview's coarse solid bones carry the same mass
    full = renderer.bones.project(pose, 256, mirrors=False)
    preview = renderer.bones_preview.project(pose, 256, mirrors=False)
    assert preview.sum() == pytest.approx(full.sum(), rel=0.05)
    check = bone_calibration_check(renderer, anatomy, pose)
    assert check["bone_mass_ratio_total"] == pytest.approx(1.0, abs=0.1)
    assert check["bone_mass_ratio_median"] == pytest.approx(1.0, abs=0.15)
    renderer.refine(pose)
    frame = renderer.render(pose, quality="full", rng=np.random.default_rng(0))
    rep = landmark_report(frame.image, anatomy, pose)
    assert rep["rib_edge_ratio"] >= 1.5
    assert rep["endplate_ratio"] >= 1.5
    assert rep["lung_clipped_fraction"] <= 0.05


def test_mesh_occupancy_is_the_partial_volume_of_a_sphere_on_a_ct_grid():
    """The bone model as the CT sees it: the fraction of each 0.7 x 0.7 x 2.5 mm voxel inside a
    sphere's mesh sums to the mesh's volume (exact along z, 3 x 3 rays per voxel column) and matches the finely sampled sphere voxel by voxel."""
    from simulator.imaging.xray_bones import mesh_occupancy

    v, f = icosphere(5)
    centre, radius = np.array([0.3, -0.2, 0.7]), 10.0
    v = v * radius + centre
    spacing, origin, shape = np.array([0.7, 0.7, 2.5]), np.array([-15.0, -15.0, -15.0]), (44, 44, 13)
    occ = mesh_occupancy(v, f, origin, spacing, (0, 0, 0), shape)
    t = v[f]
    mesh_volume = np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2])).sum() / 6
    assert occ.sum() * spacing.prod() == pytest.approx(mesh_volume, rel=1e-3)  # exact along z, 3 x 3 rays in-plane
    k = 8
    g = [origin[a] + (np.arange(shape[a] * k) + 0.5) / k * spacing[a] - 0.5 * spacing[a] for a in range(3)]
    X, Y, Z = np.meshgrid(*g, indexing="ij")
    fine = ((X - centre[0]) ** 2 + (Y - centre[1]) ** 2 + (Z - centre[2]) ** 2 <= radius ** 2).astype(np.float32)
    ref = fine.reshape(shape[0], k, shape[1], k, shape[2], k).mean(axis=(1, 3, 5))
    assert np.abs(occ - ref).max() < 0.06 and np.abs(occ - ref).mean() < 0.002


def test_refined_surface_turns_the_slice_staircase_of_a_tilted_end_plate_into_its_slope():
    """A box whose top is tilted 15 deg, on 2.5 mm slices (CT numbers with partial volume, the
    label at half of it), meshed as the anatomy builder meshes: refined against the CT, the top's
    vertices lie on the true plane (RMS) at least twice as closely as the staircase mesh's did."""
    from simulator.anatomy.meshing import mask_to_mesh
    from simulator.imaging.xray_bone_surface import refine_bone_surface, vertex_normals

    spacing, origin, shape = np.array([0.7, 0.7, 2.5]), np.zeros(3), (60, 60, 24)
    slope = np.tan(np.radians(15.0))
    k = (4, 4, 8)
    g = [origin[a] + (np.arange(shape[a] * k[a]) + 0.5) / k[a] * spacing[a] - 0.5 * spacing[a] for a in range(3)]
    X, Y, Z = np.meshgrid(*g, indexing="ij")
    inside = (X > 8) & (X < 34) & (Y > 8) & (Y < 34) & (Z > 12) & (Z < 30 + slope * (Y - 21))
    occ = inside.reshape(shape[0], k[0], shape[1], k[1], shape[2], k[2]).mean(axis=(1, 3, 5))
    mesh = mask_to_mesh(occ >= 0.5, spacing, origin, target_triangles=1500)

    def top_rms(v, f):
        n = vertex_normals(v, f)
        top = (n[:, 2] > 0.9) & (np.abs(v[:, 0] - 21) < 9) & (np.abs(v[:, 1] - 21) < 9)
        return float(np.sqrt(np.mean((v[top, 2] - (30 + slope * (v[top, 1] - 21))) ** 2)))

    v0, f0 = mesh.vertices.astype(np.float64), mesh.faces.astype(np.int64)
    v1, f1 = refine_bone_surface(v0, f0, (1000.0 * occ).astype(np.float32), origin, spacing)
    assert top_rms(v1, f1) < 0.5 * top_rms(v0, f0) and top_rms(v1, f1) < 0.4
    assert TriMesh(v1, f1).is_watertight()


def test_second_patient_end_plates_and_an_opaque_unmirrored_implant():
    """The lumbopelvic patient (a 3 mm CT, light bones, a screw in the left hip): the L3 end plates
    lead in AP, the implant is the darkest thing in its AP and is not mirrored past the scan's end."""
    from simulator.anatomy import lumbopelvic, packaged
    from simulator.imaging.fluoroscopy import FluoroscopyRenderer
    from simulator.imaging.fluoroscopy_landmarks import endplate_ratio
    from simulator.imaging.fluoroscopy_session import FluoroscopySession

    if not packaged.cache_is_valid(lumbopelvic.PATIENT):
        pytest.skip("the lumbopelvic patient is not built (make data)")
    from simulator.anatomy import load_anatomy

    anatomy = load_anatomy(lumbopelvic.REF)
    renderer = FluoroscopyRenderer(anatomy, seed=0)
    # light vertebrae (about 200 HU on average) keep a cortex: the core gives the mass up first
    assert min(g.shell_weight for g in renderer.bones.groups if g.name.startswith("vertebrae_L")) >= MIN_SHELL_WEIGHT - 1e-9
    pose = CArmPose(isocenter_mm=tuple(anatomy.centroid_mm("vertebrae_L3")), detector_pixels=512)
    session = FluoroscopySession(renderer, pose)
    assert endplate_ratio(session.shot().image, anatomy, session.pose)["endplate_ratio"] >= 1.5
    metal = anatomy.structure_by_name("metal_implant")
    pose = CArmPose(isocenter_mm=tuple(anatomy.centroid_mm("femur_left")), detector_pixels=256)
    session = FluoroscopySession(renderer, pose)
    img = session.shot().image.astype(float)
    field = session.pose.exposed_mask(256)
    below = _below_scan(anatomy, session.pose) & field  # past the scan's lower end (5 mm in)
    first = int(np.flatnonzero(below.any(axis=1))[0])
    scan = field.copy()
    scan[first - 10:] = False  # the scanned anatomy, clear of the cut end
    inside = _metal_shadow(anatomy, metal, session.pose) & scan
    from scipy import ndimage as ndi

    rest = scan & ~ndi.binary_dilation(inside, iterations=4)  # the anatomy, the implant's rim left out
    assert inside.sum() > 100 and np.median(img[inside]) <= np.percentile(img[rest], 1.0)
    # past the cut end the image is behind a shutter: flat at the shutter's grey, no made-up
    # anatomy (a mirrored second implant, a second pelvis); the anatomy above it is not flat
    level = DisplaySettings().shutter_level
    assert below.sum() > 1000 and abs(np.median(img[below]) - level) <= 3 and np.percentile(img[below], 99) < level + 12
    assert np.std(img[scan & ~inside]) > 5 * np.std(img[below])
    # the masks are made once per pose (not per frame) and their cache stays bounded as the C-arm moves
    from simulator.imaging.fluoroscopy import EXPOSED_CACHE_SIZE

    assert renderer._exposed(session.pose) is renderer._exposed(session.pose)
    for k in range(EXPOSED_CACHE_SIZE + 5):
        renderer._exposed(session.pose.replace(lao_deg=float(k)))
    assert len(renderer._exposed_cache) <= EXPOSED_CACHE_SIZE


def _metal_shadow(anatomy, metal, pose):
    """Pixels where the implant's voxels project (closed, one pixel in from its edge)."""
    from scipy import ndimage as ndi

    pts = anatomy.origin_mm + np.argwhere(anatomy.labels == metal.id) * anatomy.spacing_mm
    (u, v) = pose.world_to_pixel(pts)
    n = pose.detector_pixels
    hit = np.zeros((n, n), bool)
    ok = (u >= 0) & (u < n) & (v >= 0) & (v < n)
    hit[v[ok].astype(int), u[ok].astype(int)] = True
    return ndi.binary_erosion(ndi.binary_closing(hit, iterations=2), iterations=1)


def _below_scan(anatomy, pose):
    """Pixels whose ray meets the isocentre's plane below the scan's lowest slice."""
    n = pose.detector_pixels
    z0 = float(anatomy.bounds_mm()[0][2]) - 5.0
    iso = np.asarray(pose.isocenter_mm, float)
    rows = np.arange(n)
    pts = np.stack([np.full(n, iso[0]), np.full(n, iso[1]), np.linspace(iso[2] + 200, iso[2] - 200, n)], axis=1)
    _, v = pose.world_to_pixel(pts)
    cut = np.interp(z0, pts[::-1, 2], v[::-1])
    return np.broadcast_to((rows > cut)[:, None], (n, n)).copy()
