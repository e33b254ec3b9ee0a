"""The VTK scene, offscreen: colours, group visibility, camera presets, picking, needle, overlays.

Known answers come from the synthetic anatomy in tests/conftest.py (kidney_left at x = -70 on the
patient's left, the aorta anterior to the L1 box, ...).
"""
from __future__ import annotations

import numpy as np
import pytest

from simulator.core.tissue import TISSUE_INFO, Tissue
from simulator.render.camera import CAMERA_PRESETS, camera_preset_vectors, default_preset
from simulator.render.scene import AnatomyScene
from simulator.anatomy.vtk_mesh import polydata_from_mesh, vertex_normals
from tests.conftest import (
    AORTA_XY,
    BODY_HI,
    KIDNEY_LEFT_C,
    KIDNEY_LEFT_R,
    L1_HI,
    L1_LO,
    sphere_mesh,
)

W, H = 320, 240


@pytest.fixture
def scene(synthetic_anatomy):
    s = AnatomyScene(size=(W, H))
    s.set_anatomy(synthetic_anatomy, "supine")
    yield s
    s.close()


def chroma(rgb) -> np.ndarray:
    c = np.asarray(rgb, dtype=float)
    return c / max(np.linalg.norm(c), 1e-9)


def pixel_at(img: np.ndarray, display_xy) -> np.ndarray:
    """Pixel of a screenshot (row 0 at the top) at VTK display coordinates (origin bottom-left)."""
    x, y = int(round(display_xy[0])), int(round(display_xy[1]))
    return img[img.shape[0] - 1 - y, x].astype(float)


def looks_like(pixel, tissue: Tissue, tol: float = 0.2) -> bool:
    """Same hue as the tissue colour (shading scales brightness, so compare directions; a white
    specular highlight desaturates a little). Kidney and artery hues are 0.39 apart."""
    return float(np.linalg.norm(chroma(pixel) - chroma(TISSUE_INFO[tissue].color))) < tol


def closest_tissue(pixel, candidates) -> Tissue:
    return min(candidates, key=lambda t: np.linalg.norm(chroma(pixel) - chroma(TISSUE_INFO[t].color)))


def aorta_centre():
    return np.array([AORTA_XY[0], AORTA_XY[1], 0.0])


# --- geometry helpers -----------------------------------------------------------------------------
def test_vertex_normals_point_outward_on_a_sphere():
    m = sphere_mesh((5.0, -3.0, 2.0), 10.0, subdivisions=2)
    n = vertex_normals(m.vertices, m.faces)
    radial = (m.vertices - np.array([5.0, -3.0, 2.0])) / 10.0
    assert np.allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-5)
    assert np.min(np.einsum("ij,ij->i", n, radial)) > 0.99


def test_polydata_keeps_vertices_and_triangles():
    m = sphere_mesh((0.0, 0.0, 0.0), 5.0, subdivisions=1)
    pd = polydata_from_mesh(m)
    assert pd.GetNumberOfPoints() == len(m.vertices)
    assert pd.GetNumberOfCells() == len(m.faces)
    assert pd.GetPointData().GetNormals().GetNumberOfTuples() == len(m.vertices)
    cell = pd.GetCell(7)
    assert [cell.GetPointId(i) for i in range(3)] == m.faces[7].tolist()


# --- camera preset vectors (pure) ---------------------------------------------------------------
def test_preset_vectors_for_supine_and_prone():
    to_cam, up = camera_preset_vectors("AP", "supine")
    assert np.allclose(to_cam, [0, 1, 0]) and np.allclose(up, [0, 0, 1])
    to_cam, up = camera_preset_vectors("PA", "prone")
    assert np.allclose(to_cam, [0, -1, 0]) and np.allclose(up, [0, 0, 1])
    # Lateral views keep the ceiling up: the front for a supine patient, the back for a prone one.
    assert np.allclose(camera_preset_vectors("lateral_left", "supine")[1], [0, 1, 0])
    assert np.allclose(camera_preset_vectors("lateral_left", "prone")[1], [0, -1, 0])
    # Obliques turn from the working side (back when prone) towards the named side.
    to_cam, _ = camera_preset_vectors("oblique_left", "prone")
    assert to_cam[1] < -0.5 and to_cam[0] < -0.3
    to_cam, _ = camera_preset_vectors("oblique_right", "supine")
    assert to_cam[1] > 0.5 and to_cam[0] > 0.3
    assert default_preset("prone") == "PA" and default_preset("supine") == "AP"
    for name in CAMERA_PRESETS:
        for pos in ("supine", "prone", "lateral_left", "lateral_right", "sitting"):
            to_cam, up = camera_preset_vectors(name, pos)
            assert abs(np.dot(to_cam, up)) < 1e-9
    with pytest.raises(ValueError, match="camera preset 'top'"):
        camera_preset_vectors("top", "supine")


# --- rendering -------------------------------------------------------------------------------------
def test_structures_render_in_their_tissue_colours(scene):
    scene.set_group_visible("skin", False)
    img = scene.screenshot()
    assert img.shape == (H, W, 3) and img.dtype == np.uint8
    kidney = pixel_at(img, scene.world_to_display(KIDNEY_LEFT_C + [0, KIDNEY_LEFT_R, 0]))
    aorta = pixel_at(img, scene.world_to_display(aorta_centre() + [0, 10, 0]))
    assert looks_like(kidney, Tissue.KIDNEY), kidney
    assert looks_like(aorta, Tissue.ARTERY), aorta
    candidates = (Tissue.KIDNEY, Tissue.ARTERY, Tissue.CANCELLOUS_BONE, Tissue.SKIN)
    assert closest_tissue(kidney, candidates) == Tissue.KIDNEY
    assert closest_tissue(aorta, candidates) == Tissue.ARTERY
    spine = pixel_at(img, scene.world_to_display(((L1_LO + L1_HI) / 2) * [1, 1, 1] + [0, 0, 15]))
    assert closest_tissue(spine, candidates) == Tissue.CANCELLOUS_BONE, spine
    # Not blank: a good share of the image is anatomy, not background.
    background = img[5, W // 2].astype(float)
    differs = np.linalg.norm(img.astype(float) - background, axis=2) > 30
    assert differs.mean() > 0.05


def test_skin_is_translucent(scene):
    """With the skin shown, the aorta still shows through, tinted by the skin."""
    p = scene.world_to_display(aorta_centre() + [0, 10, 0])
    with_skin = pixel_at(scene.screenshot(), p)
    scene.set_group_visible("skin", False)
    without = pixel_at(scene.screenshot(), p)
    assert with_skin[0] > with_skin[1] + 20  # still red dominated
    assert not np.allclose(with_skin, without, atol=5)
    assert scene.group_opacity("skin") < 0.5


def test_group_visibility_hides_pixels(scene):
    scene.set_group_visible("skin", False)
    p = scene.world_to_display(KIDNEY_LEFT_C + [0, KIDNEY_LEFT_R, 0])
    assert looks_like(pixel_at(scene.screenshot(), p), Tissue.KIDNEY)
    scene.set_group_visible("organs", False)
    img = scene.screenshot()
    assert not looks_like(pixel_at(img, p), Tissue.KIDNEY)
    kidney_hue = chroma(TISSUE_INFO[Tissue.KIDNEY].color)
    norms = np.linalg.norm(img.astype(float), axis=2, keepdims=True)
    hue = img / np.maximum(norms, 1)
    assert np.sum(np.linalg.norm(hue - kidney_hue, axis=2) < 0.05) == 0
    scene.set_group_visible("organs", True)
    assert looks_like(pixel_at(scene.screenshot(), p), Tissue.KIDNEY)


def test_group_opacity_changes_the_blend(scene):
    scene.set_group_visible("skin", False)
    p = scene.world_to_display(KIDNEY_LEFT_C + [0, KIDNEY_LEFT_R, 0])
    opaque = pixel_at(scene.screenshot(), p)
    scene.set_group_opacity("organs", 0.2)
    faint = pixel_at(scene.screenshot(), p)
    assert np.linalg.norm(opaque - faint) > 20
    assert scene.groups()[0] == "skin"
    assert set(scene.groups()) == {"skin", "spine", "vessels", "organs"}


def _kidney_left_side(scene, preset, position):
    """Where kidney_left (the patient's LEFT) appears: 'left' or 'right' half of the image."""
    scene.set_group_visible("skin", False)
    scene.structures["kidney_right"].actor.VisibilityOff()
    scene.set_camera_preset(preset, position)
    img = scene.screenshot()
    hue = chroma(TISSUE_INFO[Tissue.KIDNEY].color)
    mask = np.linalg.norm(img / np.maximum(np.linalg.norm(img.astype(float), axis=2, keepdims=True), 1) - hue,
                          axis=2) < 0.08
    assert mask.sum() > 50
    cols = np.nonzero(mask)[1]
    return "right" if cols.mean() > W / 2 else "left"


def test_ap_view_shows_the_patients_left_on_the_image_right(scene):
    assert _kidney_left_side(scene, "AP", "supine") == "right"


def test_pa_view_is_mirrored(scene):
    assert _kidney_left_side(scene, "PA", "prone") == "left"


def test_lateral_view_keeps_the_ceiling_up(scene):
    """Supine lateral: the aorta (anterior) is above the spine; prone lateral: below it."""
    scene.set_group_visible("skin", False)
    spine = (L1_LO + L1_HI) / 2
    scene.set_camera_preset("lateral_left", "supine")
    assert scene.world_to_display(aorta_centre())[1] > scene.world_to_display(spine)[1] + 10
    scene.set_camera_preset("lateral_left", "prone")
    assert scene.world_to_display(aorta_centre())[1] < scene.world_to_display(spine)[1] - 10
    # Left lateral looks from the patient's left: kidney_left is nearer the camera than kidney_right.
    assert scene.world_to_display(KIDNEY_LEFT_C)[2] < scene.world_to_display(-KIDNEY_LEFT_C * [1, -1, -1])[2]


def test_axial_view_from_the_feet(scene):
    scene.set_camera_preset("axial", "supine")
    to_cam = np.array(scene.camera_state()["position"]) - np.array(scene.camera_state()["focal_point"])
    assert to_cam[2] < 0  # camera below the feet
    # radiological convention: the patient's right on the image left, anterior up (supine)
    assert scene.world_to_display(KIDNEY_LEFT_C)[0] > W / 2
    assert scene.world_to_display(aorta_centre())[1] > scene.world_to_display((L1_LO + L1_HI) / 2)[1]


# --- picking ----------------------------------------------------------------------------------------
def test_pick_returns_a_point_on_the_structure_surface(scene):
    scene.set_group_visible("skin", False)
    scene.render()
    d = scene.world_to_display(KIDNEY_LEFT_C)
    hit = scene.pick_surface(d[0], d[1])
    assert hit is not None
    point, name = hit
    assert name == "kidney_left"
    assert abs(np.linalg.norm(point - KIDNEY_LEFT_C) - KIDNEY_LEFT_R) < 0.5
    assert point[1] > KIDNEY_LEFT_C[1] + 0.9 * KIDNEY_LEFT_R  # the side facing the AP camera


def test_pick_on_the_skin_for_an_entry_point(scene):
    scene.set_camera_preset("PA", "prone")
    scene.render()
    d = scene.world_to_display((10.0, 0.0, 5.0))
    point, name = scene.pick_surface(d[0], d[1], structures=["skin"])
    assert name == "skin"
    # the back of the synthetic body is the face y = BODY_LO[1] = -90
    assert point[1] == pytest.approx(-90.0, abs=0.2)
    assert point[0] == pytest.approx(10.0, abs=2.0) and point[2] == pytest.approx(5.0, abs=2.0)


def test_pick_outside_the_anatomy_returns_none(scene):
    scene.render()
    assert scene.pick_surface(2, H - 2) is None
    scene.set_group_visible("skin", False)
    scene.set_group_visible("organs", False)
    d = scene.world_to_display(KIDNEY_LEFT_C)
    assert scene.pick_surface(d[0], d[1]) is None  # hidden structures are not picked


# --- needle -------------------------------------------------------------------------------------------
def test_needle_extends_back_from_the_tip_along_minus_z(scene):
    tip = np.array([10.0, 20.0, 30.0])
    m = np.eye(4)
    m[:3, 3] = tip
    scene.set_needle(m, length_mm=100.0, diameter_mm=0.72)
    b = scene._needle_shaft.GetBounds()
    assert b[5] == pytest.approx(tip[2], abs=1e-3)  # tip at the most advanced point
    assert b[4] == pytest.approx(tip[2] - 100.0, abs=1e-3)
    assert b[1] - b[0] == pytest.approx(0.72, abs=0.01)
    hub = scene._needle_hub.GetBounds()
    assert hub[5] == pytest.approx(tip[2] - 100.0, abs=1e-3)
    # Insert posteriorly from the back (prone): +Z of the tip frame maps to -Y (anterior -> posterior is +Y...)
    r = np.eye(4)
    r[:3, :3] = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=float)  # columns: X, Y, Z axes
    r[:3, 3] = tip
    # Z axis = third column = (0, 1, 0): the needle advances anteriorly; the hub is posterior.
    scene.set_needle(r, length_mm=100.0, diameter_mm=0.72)
    b = scene._needle_hub.GetBounds()
    assert b[3] == pytest.approx(tip[1] - 100.0, abs=1e-3)
    assert scene.needle_visible()
    scene.hide_needle()
    assert not scene.needle_visible()


def test_needle_is_drawn(scene):
    scene.set_group_visible("skin", False)
    scene.set_camera_preset("lateral_left", "supine")
    m = np.eye(4)
    m[:3, :3] = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=float)
    m[:3, 3] = (0.0, 40.0, 60.0)  # in front of everything, above the kidneys
    before = scene.screenshot()
    scene.set_needle(m, length_mm=60.0, diameter_mm=3.0)  # thick, to be sure of the pixels
    after = scene.screenshot()
    p = scene.world_to_display((0.0, 10.0, 60.0))  # 30 mm behind the tip, on the shaft
    assert np.linalg.norm(pixel_at(after, p) - pixel_at(before, p)) > 30
    shaft = pixel_at(after, p)
    assert np.ptp(shaft) < 40  # metallic grey, not a tissue colour


# --- overlays ------------------------------------------------------------------------------------------
class _T:
    def __init__(self, kind, points, radius=0.0, tolerance=5.0):
        self.kind, self.points_mm, self.radius_mm, self.tolerance_mm = kind, points, radius, tolerance


def test_targets_are_shown_and_hidden(scene):
    scene.set_group_visible("skin", False)
    centre = (0.0, BODY_HI[1] - 20.0, 40.0)  # anterior, above the kidneys
    p = scene.world_to_display(centre)
    before = pixel_at(scene.screenshot(), p)
    scene.show_targets([_T("point", [centre], tolerance=6.0), _T("polyline", [(-50, 0, -50), (50, 0, -50)], 2.0)])
    shown = pixel_at(scene.screenshot(), p)
    assert shown[1] > shown[0] + 40 and shown[1] > shown[2] + 40  # green
    assert len(scene._target_actors) == 4
    scene.set_targets_visible(False)
    assert np.allclose(pixel_at(scene.screenshot(), p), before, atol=3)
    # unresolved targets (no points yet) are skipped, not an error
    scene.show_targets([_T("point", None)])
    assert scene._target_actors == []


def test_critical_structures_are_tinted_by_severity(scene):
    scene.set_group_visible("skin", False)
    p = scene.world_to_display(KIDNEY_LEFT_C + [0, KIDNEY_LEFT_R, 0])
    normal = pixel_at(scene.screenshot(), p)
    scene.show_critical([("kidney", "critical")])  # a tissue name covers both kidneys
    assert scene.critical_structures() == {"kidney_left": "critical", "kidney_right": "critical"}
    tinted = pixel_at(scene.screenshot(), p)
    assert tinted[0] > 2.5 * max(tinted[1], tinted[2], 1)  # red
    scene.set_critical_visible(False)
    assert np.allclose(pixel_at(scene.screenshot(), p), normal, atol=3)


def test_plan_and_entry_zone(scene):
    scene.show_plan([((0, -90, 0), (0, -10, 0)), ((30, -90, 0), (10, -10, 0))], (0, -90, 0), 20.0)
    assert len(scene._plan_actors) == 3  # two paths and the entry zone ring
    b = scene._plan_actors[0].GetBounds()
    assert b[2] == pytest.approx(-90.0, abs=0.1) and b[3] == pytest.approx(-10.0, abs=0.1)
    b = scene._plan_actors[2].GetBounds()  # the ring lies in the skin plane y = -90
    assert b[3] - b[2] < 2.0 and b[1] - b[0] == pytest.approx(41.6, abs=1.0)
    scene.set_targets_visible(False)
    assert not scene._plan_actors[0].GetVisibility()


def test_switching_anatomy_and_closing(scene, synthetic_anatomy):
    n = len(scene.renderer.GetActors())
    scene.set_anatomy(synthetic_anatomy)
    assert len(scene.renderer.GetActors()) == n  # old actors removed
    scene.set_anatomy(None)
    assert scene.structures == {}
    scene.close()
    assert scene.closed
    scene.render()  # no-op after close
    with pytest.raises(RuntimeError):
        scene.screenshot()


# --- the moving frame (level of detail, reduced image) --------------------------------------------------
@pytest.fixture
def lod_scene(monkeypatch, tmp_path):
    """The synthetic anatomy above the LOD limit (patched), its copies cached under tmp_path."""
    import simulator.render.lod as lod_mod
    from tests.conftest import make_synthetic_anatomy

    monkeypatch.setattr(lod_mod, "LOD_MIN_TRIANGLES", 0)
    monkeypatch.setattr(lod_mod, "LOD_TARGET_TRIANGLES", 800)
    monkeypatch.setattr(lod_mod, "lod_cache_dir", lambda: tmp_path / "lod")
    anatomy = make_synthetic_anatomy()  # a fresh object: its polydata is built with the patched limits
    s = AnatomyScene(size=(W, H))
    s.set_anatomy(anatomy, "supine")
    s.set_group_visible("skin", False)
    yield s
    s.close()


def test_decimated_mesh_keeps_the_shape_closed_and_outward():
    from simulator.render.lod import decimated_mesh

    sphere = sphere_mesh([10.0, -5.0, 3.0], 40.0, subdivisions=4)  # 5120 triangles
    small = decimated_mesh(sphere, 500)
    assert 400 <= small.n_triangles <= 520
    assert small.is_watertight()
    v0 = 4.0 / 3.0 * np.pi * 40.0 ** 3
    assert small.signed_volume_mm3() == pytest.approx(sphere.signed_volume_mm3(), rel=0.05)
    assert sphere.signed_volume_mm3() == pytest.approx(v0, rel=0.02)
    r = np.linalg.norm(small.vertices - [10.0, -5.0, 3.0], axis=1)
    assert np.all(np.abs(r - 40.0) < 1.5)
    assert decimated_mesh(sphere, 10_000) is sphere  # nothing to remove


def test_lod_targets_share_the_budget_with_a_floor():
    from simulator.render.lod import LOD_MIN_MESH_TRIANGLES, lod_targets

    meshes = {"big": sphere_mesh([0, 0, 0], 10.0, 4), "small": sphere_mesh([0, 0, 0], 10.0, 1)}  # 5120, 80
    t = lod_targets(meshes, total=1000)
    assert t["big"] == round(5120 * 1000 / 5200)
    assert t["small"] == LOD_MIN_MESH_TRIANGLES


def test_decimated_copies_are_read_back_from_their_cache(monkeypatch, tmp_path):
    import simulator.render.lod as lod_mod
    from tests.conftest import make_synthetic_anatomy

    monkeypatch.setattr(lod_mod, "LOD_MIN_TRIANGLES", 0)
    monkeypatch.setattr(lod_mod, "LOD_TARGET_TRIANGLES", 800)
    monkeypatch.setattr(lod_mod, "lod_cache_dir", lambda: tmp_path)
    anatomy = make_synthetic_anatomy()
    first = lod_mod.anatomy_lod_meshes(anatomy)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    assert first["kidney_left"].n_triangles < anatomy.meshes["kidney_left"].n_triangles

    def no_decimation(*_a, **_k):
        raise AssertionError("decimated again instead of reading the cache")

    monkeypatch.setattr(lod_mod, "decimated_mesh", no_decimation)
    again = lod_mod.anatomy_lod_meshes(make_synthetic_anatomy())
    assert set(again) == set(first)
    for name in first:
        np.testing.assert_array_equal(again[name].faces, first[name].faces)
        np.testing.assert_allclose(again[name].vertices, first[name].vertices)
    anatomy.meshes["kidney_left"] = sphere_mesh(KIDNEY_LEFT_C, KIDNEY_LEFT_R + 1.0)  # other meshes: other key
    monkeypatch.undo()
    monkeypatch.setattr(lod_mod, "LOD_MIN_TRIANGLES", 0)
    monkeypatch.setattr(lod_mod, "LOD_TARGET_TRIANGLES", 800)
    monkeypatch.setattr(lod_mod, "lod_cache_dir", lambda: tmp_path)
    lod_mod.anatomy_lod_meshes(anatomy)
    assert len(list(tmp_path.glob("*.npz"))) == 2
    monkeypatch.setattr(lod_mod, "LOD_CACHE_KEEP", 1)  # only the newest stays
    anatomy.meshes["kidney_left"] = sphere_mesh(KIDNEY_LEFT_C, KIDNEY_LEFT_R + 2.0)
    lod_mod.anatomy_lod_meshes(anatomy)
    assert len(list(tmp_path.glob("*.npz"))) == 1


def test_moving_frame_draws_fewer_triangles_then_the_still_frame_comes_back(lod_scene):
    s = lod_scene
    kidney = s.structures["kidney_left"]
    assert s.has_lod() and kidney.lod_actor is not None
    assert kidney.lod_triangles < kidney.triangles
    assert s.moving_triangle_count() < s.still_triangle_count()
    # one merged actor per group (one draw call each), shared by the group's structures
    assert kidney.lod_actor is s.structures["kidney_right"].lod_actor
    assert kidney.lod_actor is not s.structures["aorta"].lod_actor
    assert s.still_triangle_count() == sum(i.triangles for n, i in s.structures.items() if n != "skin")

    still = s.screenshot()
    assert s.frame_reduction() == 1
    assert s.set_lod(True) and s.lod
    assert not kidney.actor.GetVisibility() and kidney.lod_actor.GetVisibility()
    assert not s.structures["skin"].lod_actor.GetVisibility()  # hidden groups stay hidden
    moving = s.screenshot()
    assert s.frame_reduction() == 2  # half the pixels per side, scaled up to the window
    assert moving.shape == still.shape == (H, W, 3)
    p = s.world_to_display(KIDNEY_LEFT_C + [0, KIDNEY_LEFT_R, 0])  # full-size display coordinates
    assert looks_like(pixel_at(moving, p), Tissue.KIDNEY)
    # the same picture, a little softer: most pixels agree with the still frame
    diff = np.abs(moving.astype(int) - still.astype(int)).max(axis=2)
    assert (diff < 40).mean() > 0.9 and diff.mean() > 0.1

    d = s.world_to_display(KIDNEY_LEFT_C)
    point, name = s.pick_surface(d[0], d[1])  # picks on the full mesh, at full-size coordinates
    assert name == "kidney_left" and abs(np.linalg.norm(point - KIDNEY_LEFT_C) - KIDNEY_LEFT_R) < 0.5
    assert s.lod

    assert s.set_lod(False) and not s.lod
    assert kidney.actor.GetVisibility() and not kidney.lod_actor.GetVisibility()
    again = s.screenshot()
    assert s.frame_reduction() == 1
    np.testing.assert_array_equal(again, still)  # the still frame exactly as before
    assert not s.set_lod(False)


def test_moving_frame_follows_the_groups_look(lod_scene):
    s = lod_scene
    kidney = s.structures["kidney_left"]
    s.set_group_opacity("organs", 0.5)
    assert kidney.lod_actor.GetProperty().GetOpacity() == 0.5
    s.show_critical([("kidney_left", "critical")])
    full = kidney.actor.GetProperty().GetDiffuseColor()
    assert full != pytest.approx(kidney.colour)
    assert s.lod_colour("kidney_left") == pytest.approx(full, abs=1 / 255)
    assert s.lod_colour("kidney_right") == pytest.approx(kidney.colour, abs=1 / 255)  # not tinted
    s.set_critical_visible(False)
    assert s.lod_colour("kidney_left") == pytest.approx(kidney.colour, abs=1 / 255)
    s.set_group_visible("organs", False)
    s.set_lod(True)
    assert not kidney.lod_actor.GetVisibility()
    assert s.moving_triangle_count() < s.lod_triangle_count()


def test_small_anatomies_have_no_coarse_copies_but_a_reduced_moving_image(scene):
    assert not scene.has_lod()
    assert scene.moving_triangle_count() == scene.still_triangle_count()
    assert scene.set_lod(True)  # the image is reduced: a render is due
    assert scene.structures["kidney_left"].actor.GetVisibility()
    scene.screenshot()
    assert scene.frame_reduction() == 2
    scene.set_lod(False)
    scene.image_reduction = 1
    assert not scene.set_lod(True)  # nothing changes: no extra render needed
    scene.screenshot()
    assert scene.frame_reduction() == 1


def test_scaled_image_is_bilinear_with_aligned_centres():
    from simulator.render.lod import _scale_image

    img = np.array([[[0], [100]], [[200], [40]]], np.uint8)
    big = _scale_image(img, 4, 4)[:, :, 0]
    assert big.shape == (4, 4)
    assert big[0, 0] == 0 and big[0, 3] == 100 and big[3, 0] == 200 and big[3, 3] == 40  # edges clamp
    assert big[0, 1] == 25 and big[0, 2] == 75  # a quarter and three quarters of the way
    flat = _scale_image(np.full((3, 5, 3), 77, np.uint8), 10, 6)
    assert flat.shape == (6, 10, 3) and np.all(flat == 77)


def test_the_needle_stays_visible_when_the_view_is_zoomed_out(scene):
    from simulator.core.geometry import pose_from_tip_axis

    scene.set_needle(pose_from_tip_axis(KIDNEY_LEFT_C + [0, 60, 0], [0, -1, 0]), length_mm=90, diameter_mm=0.72)
    scene.render()
    still = scene.needle_width_scale()
    assert still > 1.0  # the whole trunk in 240 px: a 0.72 mm shaft is well under a pixel
    scene.set_lod(True)
    scene.render()
    assert scene.needle_width_scale() == pytest.approx(2 * still, rel=0.01)  # pixels twice as big
    scene.set_lod(False)
    cam = scene.renderer.GetActiveCamera()
    cam.Dolly(8.0)  # close up: the real gauge is wide enough
    scene.renderer.ResetCameraClippingRange()
    scene.render_window.Render()
    assert scene.needle_width_scale() < still


def test_draw_order_opaque_front_to_back_then_translucent_with_the_skin_last(scene):
    scene.set_group_opacity("vessels", 0.5)
    for preset, position in (("AP", "supine"), ("PA", "prone"), ("lateral_left", "supine")):
        scene.set_camera_preset(preset, position)
        scene.render()
        order = scene.draw_order()
        assert order[-2:] == ["aorta", "skin"]  # translucent after the opaque ones, skin last
        cam = np.array(scene.camera_state()["position"])

        def distance(name):
            b = scene.structures[name].actor.GetBounds()
            return np.linalg.norm(np.array([(b[0] + b[1]) / 2, (b[2] + b[3]) / 2, (b[4] + b[5]) / 2]) - cam)

        opaque = [distance(n) for n in order[:-2]]
        assert opaque == sorted(opaque) and len(opaque) == 3


def test_orientation_cube_shows_the_face_the_camera_looks_at(scene):
    """One actor: faces and letters in one mesh; the letter of the face towards the camera shows
    in its colour in the lower-left corner (A/P green, R/L red, S/I blue)."""
    from simulator.render.camera import orientation_cube_polydata

    poly = orientation_cube_polydata()
    b = poly.GetBounds()
    assert b == pytest.approx((-0.504, 0.504, -0.504, 0.504, -0.504, 0.504), abs=1e-3)
    assert scene._cube_renderer.GetActors().GetNumberOfItems() == 1

    def corner_letter_pixels(preset):
        scene.set_camera_preset(preset, "supine")
        img = scene.screenshot().astype(int)
        side = min(90, W // 4, H // 4)
        corner = img[H - side:, :side]
        r, g, bl = corner[..., 0], corner[..., 1], corner[..., 2]
        return {"green": int(((g > r + 60) & (g > bl + 40)).sum()), "red": int(((r > g + 60) & (r > bl + 60)).sum()),
                "blue": int(((bl > r + 60) & (bl > g + 20)).sum())}

    for preset, colour in (("AP", "green"), ("PA", "green"), ("lateral_left", "red"), ("axial", "blue")):
        counts = corner_letter_pixels(preset)
        assert counts[colour] > 20, (preset, counts)
        assert all(v < counts[colour] / 4 for k, v in counts.items() if k != colour), (preset, counts)


# --- the medium still frame ---------------------------------------------------------------------
@pytest.fixture
def medium_scene(monkeypatch, tmp_path):
    """The synthetic anatomy with moving copies (800 triangles) and medium ones (1600), cached
    under tmp_path."""
    import simulator.render.lod as lod_mod
    from tests.conftest import make_synthetic_anatomy

    monkeypatch.setattr(lod_mod, "LOD_MIN_TRIANGLES", 0)
    monkeypatch.setattr(lod_mod, "LOD_TARGET_TRIANGLES", 800)
    monkeypatch.setattr(lod_mod, "MEDIUM_MIN_TRIANGLES", 0)
    monkeypatch.setattr(lod_mod, "MEDIUM_TARGET_TRIANGLES", 1600)
    monkeypatch.setattr(lod_mod, "MEDIUM_MIN_MESH_TRIANGLES", 16)
    monkeypatch.setattr(lod_mod, "lod_cache_dir", lambda: tmp_path / "lod")
    anatomy = make_synthetic_anatomy()
    s = AnatomyScene(size=(W, H))
    s.set_anatomy(anatomy, "supine")
    s.set_group_visible("skin", False)
    yield s
    s.close()


def test_medium_frame_draws_fewer_triangles_than_the_full_one_at_full_resolution(medium_scene, tmp_path):
    s = medium_scene
    kidney = s.structures["kidney_left"]
    assert s.has_lod() and s.has_medium()
    assert kidney.lod_triangles < kidney.mid_triangles < kidney.triangles
    assert s.moving_triangle_count() < s.medium_triangle_count() < s.still_triangle_count()
    assert s.structures["vertebrae_L1"].mid_actor is None  # 12 triangles, under the floor: drawn whole
    assert len(list((tmp_path / "lod").glob("*.npz"))) == 2  # moving and medium copies, cached apart

    assert s.detail == "full"
    full = s.screenshot()
    assert s.set_detail("medium") and s.detail == "medium" and not s.lod
    assert kidney.mid_actor.GetVisibility() and not kidney.actor.GetVisibility()
    assert not kidney.lod_actor.GetVisibility()
    assert s.structures["vertebrae_L1"].actor.GetVisibility()
    medium = s.screenshot()
    assert s.frame_reduction() == 1  # full resolution
    p = s.world_to_display(KIDNEY_LEFT_C + [0, KIDNEY_LEFT_R, 0])
    assert looks_like(pixel_at(medium, p), Tissue.KIDNEY)
    diff = np.abs(medium.astype(int) - full.astype(int)).max(axis=2)
    assert (diff < 40).mean() > 0.95 and diff.mean() > 0.0  # the same picture from other meshes
    assert "kidney_left" in s.draw_order()

    assert s.set_detail("moving") and s.lod
    s.screenshot()
    assert s.frame_reduction() == 2
    assert s.set_detail("full")
    np.testing.assert_array_equal(s.screenshot(), full)  # the full frame exactly as before
    with pytest.raises(ValueError, match="'fine'"):
        s.set_detail("fine")


def test_medium_frame_follows_the_look_and_picks_on_the_full_meshes(medium_scene):
    s = medium_scene
    kidney = s.structures["kidney_left"]
    s.show_critical([("kidney_left", "critical")])
    s.set_group_opacity("organs", 0.5)
    assert kidney.mid_actor.GetProperty() is kidney.actor.GetProperty()  # tint and opacity shared
    s.set_detail("medium")
    d = s.world_to_display(KIDNEY_LEFT_C)
    point, name = s.pick_surface(d[0], d[1])
    assert name == "kidney_left"
    assert s.detail == "medium" and kidney.mid_actor.GetVisibility()
    s.set_detail("full")
    full_point, _ = s.pick_surface(d[0], d[1])
    np.testing.assert_array_equal(point, full_point)  # the same surface: the full sphere
    s.set_group_visible("organs", False)
    s.set_detail("medium")
    assert not kidney.mid_actor.GetVisibility() and not kidney.actor.GetVisibility()


def test_small_anatomies_have_no_medium_copies(scene):
    assert not scene.has_medium()
    assert scene.medium_triangle_count() == scene.still_triangle_count()
    assert not scene.set_detail("medium")  # the same full meshes: nothing to redraw
