"""Probe geometry: frames, image mapping, beam grid, slice profile, needle visibility."""
import math

import numpy as np
import pytest

from simulator.core.probe import (
    BeamGrid,
    ImageGeometry,
    ProbePose,
    ProbeSpec,
    image_to_probe,
    image_to_world,
    needle_visibility,
    probe_to_world,
)

LINEAR = ProbeSpec.linear()
CURVED = ProbeSpec.curvilinear()


def test_specs_match_the_issue():
    assert LINEAR.kind == "linear" and 36 <= LINEAR.aperture_mm <= 40
    assert LINEAR.frequency_range_mhz == (6.0, 13.0)
    assert CURVED.kind == "curvilinear" and CURVED.radius_mm == 60.0 and CURVED.sector_deg == 60.0
    assert CURVED.frequency_range_mhz == (2.0, 5.0)
    with pytest.raises(ValueError, match="frequency_mhz.*20"):
        LINEAR.check_frequency(20.0)
    with pytest.raises(ValueError, match="'kind'"):
        ProbeSpec.named("phased")


def test_pose_is_orthonormalised_and_frames_are_inverse():
    pose = ProbePose.from_vectors((10, 20, 30), (0, -2, 0), (1, 0.3, 0))
    assert np.allclose(pose.direction, (0, -1, 0))
    assert np.allclose(pose.marker, (1, 0, 0))
    assert np.allclose(pose.elevation, np.cross(pose.marker, pose.direction))
    m = probe_to_world(pose)
    assert np.allclose(m @ pose.world_to_probe(), np.eye(4))
    assert np.allclose(m[:3, 3], (10, 20, 30))
    p = np.array([[1.0, 2.0, 3.0], [-4.0, 5.0, 0.5]])
    assert np.allclose(pose.points_to_probe(pose.points_to_world(p)), p)
    # 5 mm deep on the central line is 5 mm along the direction.
    assert np.allclose(pose.points_to_world([[0, 5, 0]])[0], (10, 15, 30))


def test_pose_errors_name_the_field():
    with pytest.raises(ValueError, match="'direction'"):
        ProbePose.from_vectors((0, 0, 0), (0, 0, 0), (1, 0, 0))
    with pytest.raises(ValueError, match="'marker'.*parallel"):
        ProbePose.from_vectors((0, 0, 0), (0, 0, 1), (0, 0, 2))
    with pytest.raises(ValueError, match="'center_mm'"):
        ProbePose.from_vectors((0, np.nan, 0), (0, 0, 1), (1, 0, 0))


def test_pose_motion_helpers():
    pose = ProbePose.from_vectors((0, 0, 0), (0, -1, 0), (1, 0, 0))  # elevation = x cross -y = -z
    assert np.allclose(pose.elevation, (0, 0, -1))
    r = pose.rotated(90)  # turn on the skin, right-handed about the depth axis
    assert np.allclose(r.direction, pose.direction)
    assert np.allclose(r.marker, -pose.elevation)
    assert np.allclose(r.elevation, pose.marker)
    t = pose.tilted(10)  # fan in elevation: depth axis tips towards the elevation axis
    assert np.allclose(t.marker, pose.marker)
    assert math.isclose(float(t.direction @ pose.direction), math.cos(math.radians(10)), rel_tol=1e-12)
    assert float(t.direction @ pose.elevation) > 0.17
    k = pose.rocked(15)  # heel-toe stays in plane
    assert abs(float(k.direction @ pose.elevation)) < 1e-12 and abs(float(k.marker @ pose.elevation)) < 1e-12
    s = pose.slid(lateral_mm=5, elevation_mm=-2)
    assert np.allclose(s.center_mm, (5, 0, 2))


def test_linear_image_geometry_and_marker_side():
    g = ImageGeometry.for_probe(LINEAR, 40.0, (512, 512))
    assert math.isclose(g.spacing_mm, 40.0 / 512)
    # Marker on the left: column 0 lies towards +x (the marker).
    p0 = g.pixel_to_probe([[0, 0]])[0]
    p1 = g.pixel_to_probe([[511, 0]])[0]
    assert p0[0] > 0 > p1[0]
    assert math.isclose(p0[0], -p1[0])
    assert math.isclose(g.pixel_to_probe([[0, 511]])[0, 1], 40.0 - 0.5 * g.spacing_mm)
    right = ImageGeometry.for_probe(LINEAR, 40.0, (512, 512), marker_left=False)
    assert right.pixel_to_probe([[0, 0]])[0, 0] < 0
    # 4x4 ImageToProbe agrees with the function, and image_to_world composes the two.
    uv = np.array([[12.5, 300.0], [400.0, 7.0]])
    h = np.c_[uv, np.zeros(2), np.ones(2)]
    assert np.allclose((image_to_probe(g) @ h.T).T[:, :3], g.pixel_to_probe(uv))
    pose = ProbePose.from_vectors((3, 4, 5), (0, 0, -1), (0, 1, 0))
    assert np.allclose((image_to_world(pose, g) @ h.T).T[:, :3], g.pixel_to_world(uv, pose))
    back = g.world_to_pixel(g.pixel_to_world(uv, pose), pose)
    assert np.allclose(back[:, :2], uv) and np.allclose(back[:, 2], 0)
    mask = g.fov_mask()
    cols = np.where(mask[100])[0]
    assert math.isclose((cols[-1] - cols[0] + 1) * g.spacing_mm, LINEAR.aperture_mm, abs_tol=2 * g.spacing_mm)


def test_curvilinear_fan_geometry():
    depth = 120.0
    g = ImageGeometry.for_probe(CURVED, depth, (512, 512))
    mask = g.fov_mask()
    # The face centre (probe origin) is on the top edge of the fan, the apex 60 mm above it.
    u, v, _ = g.probe_to_pixel([[0.0, 0.5, 0.0]])[0]
    assert mask[int(round(v)), int(round(u))]
    assert not mask[int(round(v)) - 3, int(round(u))]
    # Edge lines at +-30 degrees reach (R + depth) sin 30 laterally.
    th = math.radians(29.5)
    r = 60.0 + 100.0
    p = np.array([[r * math.sin(th), r * math.cos(th) - 60.0, 0.0]])
    uu, vv, _ = g.probe_to_pixel(p)[0]
    assert mask[int(round(vv)), int(round(uu))]
    p_out = np.array([[r * math.sin(math.radians(32)), r * math.cos(math.radians(32)) - 60.0, 0.0]])
    uu, vv, _ = g.probe_to_pixel(p_out)[0]
    assert not mask[int(round(vv)), int(round(uu))]
    assert CURVED.fov_contains([[0, depth - 0.1, 0]], depth)[0]
    assert not CURVED.fov_contains([[0, depth + 0.1, 0]], depth)[0]


@pytest.mark.parametrize("spec", [LINEAR, CURVED], ids=["linear", "curvilinear"])
def test_beam_grid_round_trip(spec):
    grid = BeamGrid(spec, 50.0, 128, 400)
    ls = np.array([[0.0, 0.0], [63.5, 200.2], [127.0, 399.0], [10.25, 33.75]])
    assert np.allclose(grid.probe_to_beam(grid.beam_to_probe(ls)), ls)
    o, d = grid.lines_probe()
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0)
    # Sample s of line l lies at depth (s + 0.5) dr along the line.
    p = o[5] + (7 + 0.5) * grid.dr_mm * d[5]
    assert np.allclose(grid.probe_to_beam(p[None])[0], (5, 7))
    assert np.allclose(spec.depth_of(p[None]), 7.5 * grid.dr_mm)


def test_slice_profile():
    d = 25.0
    hw = LINEAR.slice_half_width_mm(d)
    assert math.isclose(float(LINEAR.elevation_profile(hw * 0.999, d)), 0.1, rel_tol=0.01)  # -20 dB
    assert float(LINEAR.elevation_profile(hw * 1.01, d)) == 0.0
    fwhm = float(LINEAR.elevation_fwhm_at(d))
    assert math.isclose(float(LINEAR.elevation_profile(fwhm / 2, d)), 0.5, rel_tol=1e-9)
    # Narrowest at the elevation focus, wider near the face and deep.
    assert LINEAR.slice_thickness_mm(LINEAR.elevation_focus_mm) < LINEAR.slice_thickness_mm(2.0)
    assert LINEAR.slice_thickness_mm(LINEAR.elevation_focus_mm) < LINEAR.slice_thickness_mm(60.0)
    # Higher frequency, thinner slice.
    assert LINEAR.slice_thickness_mm(d, 13.0) < LINEAR.slice_thickness_mm(d, 6.0)


class TestNeedleVisibility:
    pose = ProbePose.from_vectors((0, 0, 0), (0, -1, 0), (1, 0, 0))  # elevation = -z

    def _in_plane(self, dz=0.0):
        # From lateral (x = -30 at the skin) to a tip 20 mm deep under the probe, offset in z.
        tip = np.array([2.0, -20.0, dz])
        hub = np.array([-30.0, 0.0, dz])
        return tip, (tip - hub) / np.linalg.norm(tip - hub)

    def test_in_plane_needle(self):
        tip, axis = self._in_plane()
        vis = needle_visibility(tip, axis, self.pose, LINEAR, depth_mm=40)
        assert vis.tip_in_plane is True
        assert vis.tip_distance_to_plane_mm == pytest.approx(0.0, abs=1e-9)
        assert vis.shaft_fraction_in_plane == pytest.approx(1.0)
        a, b, c = vis  # unpacks as a 3-tuple
        assert (a, b, c) == tuple(vis)

    def test_slightly_off_plane_and_off_plane(self):
        hw = float(LINEAR.slice_half_width_mm(20.0))
        tip, axis = self._in_plane(0.5 * hw)
        vis = needle_visibility(tip, axis, self.pose, LINEAR, depth_mm=40)
        assert vis.tip_in_plane and vis.tip_distance_to_plane_mm == pytest.approx(0.5 * hw)
        assert vis.shaft_fraction_in_plane > 0.5  # shallow part of the slice is thicker
        tip, axis = self._in_plane(2.0 * hw)
        vis = needle_visibility(tip, axis, self.pose, LINEAR, depth_mm=40)
        assert not vis.tip_in_plane and vis.shaft_fraction_in_plane < 0.2

    def test_out_of_plane_needle_crosses_the_slice(self):
        # Steep out-of-plane approach from elevation: tip 1 mm beyond the plane.
        tip = np.array([0.0, -20.0, -1.0])  # probe z = +1
        hub = np.array([0.0, 0.0, 20.0])
        axis = (tip - hub) / np.linalg.norm(tip - hub)
        vis = needle_visibility(tip, axis, self.pose, LINEAR, depth_mm=40, slice_thickness_mm=1.0)
        assert not vis.tip_in_plane
        assert vis.tip_distance_to_plane_mm == pytest.approx(1.0)
        # Length in the 1 mm slab over the sub-surface shaft length: 1 / (20 sqrt 2) ... ~ 0.035.
        assert 0.02 < vis.shaft_fraction_in_plane < 0.06

    def test_tip_outside_the_sector_is_not_visible(self):
        tip = np.array([25.0, -10.0, 0.0])  # 25 mm lateral, beyond the 19 mm half footprint
        vis = needle_visibility(tip, (1, 0, 0), self.pose, LINEAR, depth_mm=40)
        assert not vis.tip_in_plane and vis.tip_distance_to_plane_mm == 0.0
        vis = needle_visibility((0.0, -50.0, 0.0), (0, -1, 0), self.pose, LINEAR, depth_mm=40)
        assert not vis.tip_in_plane  # deeper than the image

    def test_bad_axis(self):
        with pytest.raises(ValueError, match="'axis'"):
            needle_visibility((0, 0, 0), (0, 0, 0), self.pose, LINEAR)
