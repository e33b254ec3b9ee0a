"""C-arm geometry and dose: conventions, projection, magnification, collimation, dose figures."""
import math

import numpy as np
import pytest

from simulator.core.carm import (
    AIR_KERMA_RATE_LIMIT_MGY_MIN,
    MAGNIFICATION_FIELD_FRACTIONS,
    CArmPose,
    DoseTracker,
    body_thickness_mm,
    compute_exposure,
    orbit_poses,
)

ISO = (10.0, -40.0, -280.0)


# ---- conventions -------------------------------------------------------------------------------
def test_prone_ap_shows_patient_left_on_screen_left_and_head_up():
    pose = CArmPose(isocenter_mm=ISO, patient_position="prone")
    c = (pose.detector_pixels - 1) / 2
    left = np.array(ISO) + [-50.0, 0, 0]  # patient's left: smaller x
    head = np.array(ISO) + [0, 0, 50.0]
    u, v = pose.world_to_pixel([left, head])
    assert u[0] < c - 50 and abs(v[0] - c) < 1e-6
    assert v[1] < c - 50 and abs(u[1] - c) < 1e-6
    # the beam goes anterior -> posterior (tube under the table, detector above the back)
    assert np.allclose(pose.beam_direction, [0, -1, 0])
    assert pose.source_mm[1] > ISO[1] > pose.detector_center_mm[1]
    assert pose.orientation_labels() == {"left": "L", "right": "R", "top": "H", "bottom": "F"}


def test_supine_ap_shows_patient_left_on_screen_right():
    pose = CArmPose(isocenter_mm=ISO, patient_position="supine")
    c = (pose.detector_pixels - 1) / 2
    u, _ = pose.world_to_pixel(np.array(ISO) + [-50.0, 0, 0])
    assert u[0] > c + 50
    assert np.allclose(pose.beam_direction, [0, 1, 0])  # posterior -> anterior
    assert pose.orientation_labels()["right"] == "L"


@pytest.mark.parametrize("position", ["prone", "supine"])
def test_lao_moves_the_detector_towards_the_patients_left(position):
    iso = np.array(ISO)
    for lao in (15.0, 30.0, 60.0, 90.0):
        pose = CArmPose(lao_deg=lao, isocenter_mm=ISO, patient_position=position)
        assert pose.detector_center_mm[0] < iso[0] - 1.0  # left = smaller x
        assert pose.source_mm[0] > iso[0] + 1.0
    rao = CArmPose(lao_deg=-30.0, isocenter_mm=ISO, patient_position=position)
    assert rao.detector_center_mm[0] > iso[0] + 1.0
    lateral = CArmPose(lao_deg=90.0, isocenter_mm=ISO, patient_position=position)
    assert np.allclose(lateral.beam_direction, [-1, 0, 0], atol=1e-12)
    assert lateral.orientation_labels() == {"left": "A", "right": "P", "top": "H", "bottom": "F"}


def test_cranial_tilt_moves_the_detector_towards_the_head():
    iso = np.array(ISO)
    cra = CArmPose(cranial_deg=20.0, isocenter_mm=ISO)
    cau = CArmPose(cranial_deg=-20.0, isocenter_mm=ISO)
    assert cra.detector_center_mm[2] > iso[2] + 10
    assert cau.detector_center_mm[2] < iso[2] - 10
    assert math.isclose(np.linalg.norm(cra.detector_center_mm - iso), 400.0)


def test_frame_is_orthonormal_and_flip_mirrors_the_display():
    for pose in orbit_poses((-90, -45, 0, 30, 90), (-30, 0, 25), isocenter_mm=ISO):
        b, u, v = pose.beam_direction, pose.detector_u_axis, pose.detector_v_axis
        m = np.stack([b, u, v])
        assert np.allclose(m @ m.T, np.eye(3), atol=1e-12)
        flipped = pose.replace(flip_horizontal=True)
        p = np.array(ISO) + [23.0, -11.0, 17.0]
        u1, v1 = pose.world_to_pixel(p)
        u2, v2 = flipped.world_to_pixel(p)
        c = (pose.detector_pixels - 1) / 2
        assert math.isclose(u1[0] - c, -(u2[0] - c), abs_tol=1e-9) and math.isclose(v1[0], v2[0], abs_tol=1e-9)


# ---- projection ----------------------------------------------------------------------------------
def test_isocentre_projects_to_the_image_centre_at_every_angle():
    c = (512 - 1) / 2
    for pose in orbit_poses(range(-90, 91, 15), (-40, -20, 0, 20, 40), isocenter_mm=ISO):
        u, v = pose.world_to_pixel(ISO)
        assert abs(u[0] - c) < 1e-9 and abs(v[0] - c) < 1e-9


def test_pixel_rays_and_world_to_pixel_agree():
    pose = CArmPose(lao_deg=35.0, cranial_deg=-15.0, isocenter_mm=ISO, detector_pixels=64)
    origins, dirs = pose.pixel_rays()
    assert np.allclose(origins, pose.source_mm)
    assert np.allclose(np.linalg.norm(dirs, axis=-1), 1.0)
    for (r, c) in ((0, 0), (10, 50), (63, 63), (31, 7)):
        for t in (400.0, 650.0, 900.0):
            p = origins[r, c] + t * dirs[r, c]
            u, v = pose.world_to_pixel(p)
            assert abs(u[0] - c) < 1e-6 and abs(v[0] - r) < 1e-6
    # detector plane: pixel centres lie 1000 mm from the source along the beam
    pts = pose.pixel_to_detector_mm(np.array([0.0, 63.0]), np.array([0.0, 63.0]))
    depth = (pts - pose.source_mm) @ pose.beam_direction
    assert np.allclose(depth, 1000.0)


def test_magnification_follows_source_to_object_distance():
    pose = CArmPose(isocenter_mm=ISO)
    pitch = pose.pixel_pitch_mm
    a = np.array(ISO) + [-20.0, 0, 0]
    b = np.array(ISO) + [20.0, 0, 0]
    u, _ = pose.world_to_pixel([a, b])
    assert math.isclose((u[1] - u[0]) * pitch, 40.0 * 1000.0 / 600.0, rel_tol=1e-9)
    # the patient moved 100 mm towards the tube (prone: the tube is below, on the anterior side, +y)
    nearer = pose.replace(table_offset_mm=(0.0, 100.0, 0.0))
    u2, _ = nearer.world_to_pixel([a, b])
    assert math.isclose((u2[1] - u2[0]) * pitch, 40.0 * 1000.0 / 500.0, rel_tol=1e-9)
    assert math.isclose(float(nearer.magnification_at(a)[0]), 2.0)
    # a magnification mode enlarges the image on the display by the field ratio
    mag = pose.replace(magnification=2)
    u3, _ = mag.world_to_pixel([a, b])
    assert math.isclose((u3[1] - u3[0]) / (u[1] - u[0]), 1.0 / MAGNIFICATION_FIELD_FRACTIONS[2])


def test_table_offset_is_the_same_as_moving_the_isocentre_the_other_way():
    p = np.array([[-30.0, 5.0, -250.0], [12.0, -60.0, -300.0]])
    a = CArmPose(lao_deg=20, cranial_deg=10, isocenter_mm=ISO, table_offset_mm=(5.0, -7.0, 12.0))
    b = CArmPose(lao_deg=20, cranial_deg=10, isocenter_mm=tuple(np.array(ISO) - [5.0, -7.0, 12.0]))
    ua, va = a.world_to_pixel(p)
    ub, vb = b.world_to_pixel(p)
    assert np.allclose(ua, ub) and np.allclose(va, vb)
    assert a.geometry_key() == b.geometry_key()


def test_collimation_area_mask_and_cache_key():
    full = CArmPose(field_shape="square")
    assert math.isclose(full.exposed_area_detector_mm2(), 300.0**2)
    coll = full.replace(collimation=(0.1, 0.2, 0.0, 0.3))
    assert math.isclose(coll.exposed_area_detector_mm2(), 0.7 * 0.7 * 300.0**2)
    assert coll.geometry_key() == full.geometry_key()  # shutters do not change the rays
    circ = CArmPose(field_shape="circle", collimation=(0.2, 0.1, 0.3, 0.05), detector_pixels=1024)
    counted = circ.exposed_mask().sum() * circ.pixel_pitch_mm**2
    assert math.isclose(counted, circ.exposed_area_detector_mm2(), rel_tol=5e-3)
    assert math.isclose(CArmPose(field_shape="circle").exposed_area_detector_mm2(), math.pi * 150.0**2)
    # the mask's shutters are on the stated screen sides
    m = CArmPose(field_shape="square", collimation=(0.25, 0.0, 0.0, 0.0), detector_pixels=100).exposed_mask()
    assert not m[:, :24].any() and m[:, 26:].all()
    # the beam area shrinks with the square of the distance from the source
    assert math.isclose(full.exposed_area_at_mm2(500.0), 0.25 * 300.0**2)


@pytest.mark.parametrize(
    "field,value",
    [
        ("lao_deg", 200.0),
        ("cranial_deg", 75.0),
        ("patient_position", "upside_down"),
        ("collimation", (0.5, 0, 0, 0)),
        ("magnification", 7),
        ("field_shape", "hexagon"),
        ("source_to_detector_mm", 500.0),
        ("isocenter_mm", (1.0, 2.0)),
    ],
)
def test_bad_pose_values_name_the_field_and_value(field, value):
    with pytest.raises(ValueError) as e:
        CArmPose(**{field: value})
    assert field in str(e.value) and str(value)[:3] in str(e.value)


# ---- dose ------------------------------------------------------------------------------------------
def test_lumbar_screening_gives_a_dap_of_the_published_order():
    """Hanu-Cernat 2012: lumbar procedures, 34 +/- 27 s of screening, DAP 1.18 +/- 1.08 Gy cm2."""
    d = DoseTracker(pulse_rate_pps=15)
    pose = CArmPose(isocenter_mm=ISO)
    d.record_live(pose, 34.0, water_thickness_mm=220.0)
    s = d.summary()
    assert s["fluoro_time_s"] == pytest.approx(34.0)
    assert s["images"] == 510 and s["shots"] == 1
    assert 0.3 <= s["dap_gycm2"] <= 3.0
    assert s["air_kerma_mgy"] >= 1.0 and s["air_kerma_mgy"] <= 30.0
    assert s["air_kerma_rate_mgy_min"] < AIR_KERMA_RATE_LIMIT_MGY_MIN
    # DAP is kerma times the beam area at the reference point
    e = d.last_exposure
    assert e.dap_gycm2 == pytest.approx(e.air_kerma_irp_mgy * 1e-3 * e.field_area_irp_cm2)


def test_dose_is_monotone_in_time_field_size_and_thickness():
    pose = CArmPose(isocenter_mm=ISO)
    dap = []
    for t in (5.0, 10.0, 20.0):
        d = DoseTracker()
        d.record_live(pose, t, 220.0)
        dap.append(d.summary()["dap_gycm2"])
    assert dap[0] < dap[1] < dap[2]
    assert dap[2] == pytest.approx(4 * dap[0], rel=1e-9)
    areas = []
    for c in (0.3, 0.15, 0.0):
        e = compute_exposure(pose.replace(collimation=(c, c, c, c)), 220.0)
        areas.append(e.dap_gycm2)
    assert areas[0] < areas[1] < areas[2]
    kerma = [compute_exposure(pose, t).air_kerma_irp_mgy for t in (150.0, 220.0, 300.0)]
    assert kerma[0] < kerma[1] < kerma[2]
    # a faster pulse rate gives more dose in the same time; low-dose mode less
    slow, fast = DoseTracker(pulse_rate_pps=7.5), DoseTracker(pulse_rate_pps=30)
    slow.record_live(pose, 10.0, 220.0)
    fast.record_live(pose, 10.0, 220.0)
    assert fast.air_kerma_mgy == pytest.approx(4 * slow.air_kerma_mgy)
    low = DoseTracker(pulse_rate_pps=30, dose_mode="low")
    low.record_live(pose, 10.0, 220.0)
    assert low.air_kerma_mgy < 0.5 * fast.air_kerma_mgy


def test_rate_cap_and_detector_quanta():
    pose = CArmPose(isocenter_mm=ISO)
    e = compute_exposure(pose, 450.0, pulse_rate_pps=30.0)
    assert e.rate_capped
    assert e.air_kerma_rate_mgy_min == pytest.approx(AIR_KERMA_RATE_LIMIT_MGY_MIN)
    normal = compute_exposure(pose, 220.0, pulse_rate_pps=30.0)
    assert not normal.rate_capped
    assert e.quanta_per_pixel < normal.quanta_per_pixel  # capped: fewer quanta, a noisier image
    mag = compute_exposure(pose.replace(magnification=1), 220.0)
    assert mag.detector_kerma_ngy > normal.detector_kerma_ngy


def test_shots_pulses_and_events():
    pose = CArmPose(isocenter_mm=ISO)
    d = DoseTracker(pulse_rate_pps=15)
    d.record_shot(pose, 220.0, time_s=1.0)
    d.record_shot(pose.replace(lao_deg=30), 250.0, time_s=5.0)
    d.begin_live(pose, time_s=9.0)
    for _ in range(15):
        d.pulse(pose, 220.0)
    d.end_live()
    s = d.summary()
    assert s["shots"] == 3 and s["single_shots"] == 2 and s["live_runs"] == 1
    assert s["fluoro_time_s"] == pytest.approx(2 * 0.2 + 1.0)
    assert [e.kind for e in d.events] == ["shot", "shot", "live"]
    assert d.events[2].pulses == 15
    assert sum(e.dap_gycm2 for e in d.events) == pytest.approx(s["dap_gycm2"])
    assert set(s) >= {"shots", "fluoro_time_s", "air_kerma_mgy", "dap_gycm2"}
    d.reset()
    assert d.summary()["shots"] == 0 and d.summary()["dap_gycm2"] == 0.0
    with pytest.raises(ValueError, match="pulse_rate_pps"):
        DoseTracker(pulse_rate_pps=12)


def test_body_thickness_along_the_central_ray():
    pose = CArmPose(isocenter_mm=(0.0, 0.0, 0.0))

    def slab(points):  # a 200 mm thick body between y = -100 and y = 100
        return (np.abs(np.asarray(points)[:, 1]) <= 100.0).astype(np.uint8)

    assert body_thickness_mm(slab, pose, step_mm=1.0) == pytest.approx(200.0, abs=2.0)
    oblique = pose.replace(lao_deg=60.0)
    assert body_thickness_mm(slab, oblique, step_mm=1.0) == pytest.approx(400.0, abs=4.0)


def test_tunnel_view_puts_a_line_on_the_beam():
    entry = np.array([-92.0, -107.0, -277.0])
    target = np.array([-44.0, 1.0, -285.0])
    for position in ("prone", "supine"):
        pose = CArmPose(isocenter_mm=tuple(target), patient_position=position).aimed_along(target - entry)
        b = pose.beam_direction
        d = (target - entry) / np.linalg.norm(target - entry)
        assert abs(abs(b @ d) - 1.0) < 1e-9
        u, v = pose.world_to_pixel([entry, target, 0.5 * (entry + target)])
        assert np.ptp(u) < 1e-6 and np.ptp(v) < 1e-6  # the whole line projects to one point
    prone = CArmPose(isocenter_mm=tuple(target)).aimed_along(target - entry)
    assert prone.lao_deg > 0  # a left-sided posterior approach: detector turned towards the left
    assert prone.oblique("left", 25).lao_deg == 25 and prone.oblique("right", 25).lao_deg == -25
    with pytest.raises(ValueError, match="cranial_deg"):
        CArmPose().aimed_along((0.0, 0.2, 1.0))


def test_pose_from_a_scenarios_fluoroscopy_settings():
    from simulator.core.scenario_model import FluoroscopySettings, PatientPosition

    st = FluoroscopySettings(lao_deg=25, cranial_deg=-10, isocenter_mm=[-30.0, -4.0, -275.0], field_mm=230)
    pose = CArmPose.from_settings(st, patient_position=PatientPosition.prone)
    assert pose.patient_position == "prone" and pose.isocenter_mm == (-30.0, -4.0, -275.0)
    assert (pose.lao_deg, pose.cranial_deg, pose.detector_size_mm) == (25.0, -10.0, 230.0)
    st2 = FluoroscopySettings()
    pose2 = CArmPose.from_settings(st2, isocenter_mm=(1.0, 2.0, 3.0), patient_position="supine", detector_pixels=256)
    assert pose2.isocenter_mm == (1.0, 2.0, 3.0) and pose2.patient_position == "supine" and pose2.detector_pixels == 256


# ---- the beam settings of a scenario: bad values refused with file, line and field --------------
@pytest.mark.parametrize("extra, field, words", [
    ("    kvp: 30\n", "imaging.fluoroscopy.kvp", "greater than or equal to 40"),
    ("    kvp: 140\n", "imaging.fluoroscopy.kvp", "less than or equal to 125"),
    ("    kvp: 60\n    filtration_mm_cu: 3.0\n", "imaging.fluoroscopy.filtration_mm_cu", "no photons"),
    ("    kvp: 40\n    filtration_mm_cu: 0\n    filtration_mm_al: 30\n", "imaging.fluoroscopy.filtration_mm_al", "no photons"),
    ("    imaging_preset: xray_vision\n", "imaging.fluoroscopy.imaging_preset", "'flat_panel'"),
])
def test_bad_beam_settings_name_file_line_and_field(tmp_path, extra, field, words):
    from simulator.core.scenario import ScenarioError
    from tests.core.test_scenario import BASE, errors_of, line_of, write

    text = BASE.replace("  fluoroscopy:\n", "  fluoroscopy:\n" + extra, 1)
    path = write(tmp_path, text)
    errors = [e for e in errors_of(path) if e.field == field]
    assert errors, [(e.field, e.message) for e in errors_of(path)]
    assert words in errors[0].message
    assert errors[0].line == line_of(text, extra.strip().splitlines()[-1].split(":")[0] + ":")
    assert f"{path}:{errors[0].line}: {field}: " in str(ScenarioError(path, errors))


def test_filter_transmission_and_the_preset_names_agree_with_the_imaging_side():
    from simulator.core.carm import IMAGING_PRESETS, filter_transmission
    from simulator.imaging.fluoroscopy_presets import PRESETS

    assert set(IMAGING_PRESETS) == set(PRESETS)
    assert filter_transmission(80, 3.0, 0.1) > 0.3  # a clinical beam's hard photons pass
    assert filter_transmission(60, 3.0, 3.0) < 1e-3
