"""B-mode correctness with known answers (the automatable tests of the ultrasound reference).

All images are the float outputs before 8-bit quantisation (`bmode_db`, `envelope_beam`,
`doppler_velocity_m_s`); phantoms are small analytic `Anatomy` blocks; speckle is fixed by seed.
"""
import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from simulator.core.probe import ProbePose, ProbeSpec
from simulator.core.tissue import Tissue
from simulator.imaging import ultrasound_phantoms as P
from simulator.imaging.ultrasound import NeedleGeometry, ScannerSettings, UltrasoundSimulator
from simulator.imaging.ultrasound_tissue import DEFAULT_ACOUSTICS

LINEAR = ProbeSpec.linear()
CURVED = ProbeSpec.curvilinear()
DOWN = (0.0, -1.0, 0.0)  # phantoms are scanned from y = 0 towards -y
QUIET = -300.0  # no electronic noise


def gel(**changes):
    return {Tissue.GEL: replace(DEFAULT_ACOUSTICS[Tissue.GEL], **changes)}


def scatter_free_block(depth=60.0, half=60.0, spacing=1.0):
    """A gel block (scatter-free when its backscatter is overridden) scanned from y = 0."""
    return P.block((-half, -depth, -half), (half, 0.0, half), spacing, Tissue.GEL)


def linear_env(frame):
    return 10.0 ** (frame.bmode_db.astype(np.float64) / 20.0)


def parabolic_peak(profile, i):
    """Sub-sample position of a peak from three samples."""
    if i <= 0 or i >= len(profile) - 1:
        return float(i)
    a, b, c = profile[i - 1], profile[i], profile[i + 1]
    den = a - 2 * b + c
    return float(i) if den == 0 else i + 0.5 * (a - c) / den


def fwhm(profile, spacing):
    """Full width at half maximum by linear interpolation of the half-max crossings."""
    i = int(np.argmax(profile))
    half = profile[i] / 2.0
    lo = i
    while lo > 0 and profile[lo - 1] > half:
        lo -= 1
    hi = i
    while hi < len(profile) - 1 and profile[hi + 1] > half:
        hi += 1
    left = lo - 1 + (half - profile[lo - 1]) / (profile[lo] - profile[lo - 1])
    right = hi + (profile[hi] - half) / (profile[hi] - profile[hi + 1])
    return (right - left) * spacing


# --------------------------------------------------------------------------------------------
# 1-2: point reflector position and PSF size
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", [LINEAR, CURVED], ids=["linear", "curvilinear"])
def test_point_reflector_position(spec):
    anat = scatter_free_block(depth=130.0, half=170.0)  # the fan never leaves the block
    sim = UltrasoundSimulator(anat, spec, acoustics=gel(backscatter_db=-300.0))
    pose = ProbePose.from_vectors((0, 0, 0), DOWN, (1, 0, 0))
    depth = 40.0 if spec is LINEAR else 110.0
    f = spec.default_frequency_mhz
    st = ScannerSettings(depth_mm=depth, noise_db=QUIET, tgc_alpha_db_cm_mhz=0.0)
    for x0, z0 in ((3.3, 17.7), (-7.9, 26.4)) if spec is LINEAR else ((13.3, 61.7), (-21.9, 90.4)):
        frame = sim.render(pose, st, points_mm=[[x0, -z0, 0.0]])
        env = linear_env(frame)
        v, u = np.unravel_index(np.argmax(env), env.shape)
        vv = parabolic_peak(env[:, u], v)
        uu = parabolic_peak(env[v, :], u)
        p = frame.pixel_to_world([[uu, vv]])[0]
        sample = frame.grid.dr_mm
        lam = spec.wavelength_mm(f)
        px = frame.geometry.spacing_mm
        lat_fwhm = float(spec.lateral_fwhm_mm(z0, f, frame.settings.focus_mm))
        # Depth along the beam and lateral position (probe frame).
        q = pose.points_to_probe([p])[0]
        truth = np.array([x0, z0, 0.0])
        if spec.is_curvilinear:
            r_q, r_t = math.hypot(q[0], q[1] + 60), math.hypot(x0, z0 + 60)
            depth_err = abs(r_q - r_t)
            lat_err = abs(math.atan2(q[0], q[1] + 60) - math.atan2(x0, z0 + 60)) * r_t
        else:
            depth_err = abs(q[1] - truth[1])
            lat_err = abs(q[0] - truth[0])
        assert depth_err <= max(sample, lam / 2), (depth_err, sample, lam)
        assert lat_err <= px + lat_fwhm / 4, (lat_err, px, lat_fwhm)


def test_psf_fwhm_matches_configuration():
    spec = LINEAR
    anat = scatter_free_block(depth=60.0)
    sim = UltrasoundSimulator(anat, spec, acoustics=gel(backscatter_db=-300.0, alpha_db_cm_mhz=0.0))
    pose = ProbePose.from_vectors((0, 0, 0), DOWN, (1, 0, 0))
    f, depth, focus = 10.0, 30.0, 15.0
    st = ScannerSettings(depth_mm=depth, frequency_mhz=f, focus_mm=focus, noise_db=QUIET, beam_lines=512,
                         beam_samples=768, tgc_alpha_db_cm_mhz=0.0)
    # A reflector exactly on line 256, sample at the focus depth.
    frame0 = sim.render(pose, st)
    grid = frame0.grid
    s_idx = int(round(focus / grid.dr_mm - 0.5))
    p_probe = grid.beam_to_probe([[256, s_idx]])[0]
    frame = sim.render(pose, st, points_mm=pose.points_to_world([p_probe]))
    env = frame.envelope_beam.astype(np.float64)  # (lines, samples), before TGC and scan conversion
    axial = fwhm(env[256, :], grid.dr_mm)
    lateral = fwhm(env[:, s_idx], grid.line_pitch)
    want_axial = spec.axial_fwhm_mm(f)
    want_lateral = float(spec.lateral_fwhm_mm((s_idx + 0.5) * grid.dr_mm, f, focus))
    assert axial == pytest.approx(want_axial, rel=0.10)
    assert lateral == pytest.approx(want_lateral, rel=0.10)


@pytest.mark.parametrize("spec", [LINEAR, CURVED], ids=["linear", "curvilinear"])
def test_probe_lifted_off_the_skin_shows_nothing(spec):
    sim = UltrasoundSimulator(P.block((-200, -100, -60), (200, 0, 60), 1.0, Tissue.GEL), spec)
    st = ScannerSettings(depth_mm=40.0 if spec is LINEAR else 80.0)
    # Pressed in far enough for the whole face to touch (a convex face's ends stand 8 mm above
    # a flat skin when its centre touches), then lifted beyond press + gel film.
    press = 1.0 if spec is LINEAR else 8.0
    down = sim.place_on_skin(ProbePose.from_vectors((0, 5, 0), DOWN, (1, 0, 0)), press_mm=press)
    assert down.center_mm[1] == pytest.approx(-press, abs=0.3)
    touching = sim.render(down, st)
    assert touching.contact.all()
    lifted = sim.render(down.slid(depth_mm=-(press + sim.params.gel_mm + 1.0)), st)
    assert not lifted.contact.any()
    assert lifted.envelope_beam.max() < 1e-4 * touching.envelope_beam.max()
    assert lifted.display.mean() < 1.0  # black but for faint electronic noise
    assert touching.display[touching.fov_mask()].mean() > 40


# --------------------------------------------------------------------------------------------
# 3-4: needle in plane and out of plane
# --------------------------------------------------------------------------------------------
def _needle_frame(sim, angle_deg, depth_tip=25.0, dz=0.0, settings=None):
    pose = ProbePose.from_vectors((0, 0, 0), DOWN, (1, 0, 0))
    a = math.radians(angle_deg)
    tip = np.array([4.0, -depth_tip, dz])
    axis = np.array([math.cos(a), -math.sin(a), 0.0])  # advancing towards +x and deeper
    needle = NeedleGeometry(tip, axis, length_mm=80.0)
    st = settings or ScannerSettings(depth_mm=40.0, frequency_mhz=10.0, noise_db=QUIET, tgc_alpha_db_cm_mhz=0.5)
    return sim.render(pose, st, needle), tip, axis


@pytest.fixture(scope="module")
def gel_sim():
    return UltrasoundSimulator(P.block((-40, -50, -40), (40, 0, 40), 0.5, Tissue.GEL), LINEAR)


def test_in_plane_needle_line_tip_and_brightness(gel_sim):
    levels = []
    for angle in (10, 20, 30, 45):
        frame, tip, axis = _needle_frame(gel_sim, angle)
        db = frame.bmode_db
        mask = frame.fov_mask()
        background = np.median(db[mask])
        pts = []
        top = int(3.0 / frame.geometry.spacing_mm)  # below the skin-surface echo
        for u in range(db.shape[1]):
            col = db[top:, u]
            if not mask[:, u].any():
                continue
            v = int(np.argmax(col))
            if col[v] > background + 20.0:
                pts.append((u, top + parabolic_peak(col, v), col[v]))
        pts = np.array(pts)
        world = frame.pixel_to_world(pts[:, :2])
        probe = frame.pose.points_to_probe(world)
        # The brightest pixel per column traces the shaft: fit depth = a x + b.
        slope, icpt = np.polyfit(probe[:, 0], probe[:, 1], 1)
        fitted = math.degrees(math.atan(slope))  # depth grows towards the tip (+x)
        assert fitted == pytest.approx(angle, abs=1.0)
        # Offset of the fitted line from the true shaft, from its shallowest point to the tip.
        for x in (probe[:, 0].min(), tip[0]):
            assert abs((slope * x + icpt) - (-tip[1] - (tip[0] - x) * math.tan(math.radians(angle)))) < 0.5
        # Tip: the furthest shaft point (along the axis) still above half the shaft level.
        along = probe[:, 0] * math.cos(math.radians(angle)) + probe[:, 1] * math.sin(math.radians(angle))
        shaft_level = np.median(pts[:, 2])
        on = pts[:, 2] > shaft_level - 6.0
        tip_along = 4.0 * math.cos(math.radians(angle)) + 25.0 * math.sin(math.radians(angle))
        assert float(along[on].max()) == pytest.approx(tip_along, abs=1.0)
        levels.append(shaft_level)
    assert all(a > b for a, b in zip(levels, levels[1:])), levels


def test_out_of_plane_needle_is_a_dot(gel_sim):
    pose = ProbePose.from_vectors((0, 0, 0), DOWN, (1, 0, 0))  # elevation axis = -z
    tip = np.array([3.0, -20.0, -6.0])  # crossed the plane, 6 mm beyond it
    needle = NeedleGeometry(tip, (0.0, 0.0, -1.0), length_mm=60.0)
    st = ScannerSettings(depth_mm=40.0, frequency_mhz=10.0, noise_db=QUIET)
    frame = gel_sim.render(pose, st, needle)
    db = frame.bmode_db
    v, u = np.unravel_index(np.argmax(db), db.shape)
    p = frame.pose.points_to_probe(frame.pixel_to_world([[u, v]]))[0]
    assert abs(p[0] - 3.0) < 0.3 and abs(p[1] - 20.0) < 0.3
    # Compact laterally: the -6 dB extent of the brightest row is about one lateral FWHM.
    row = db[v]
    width_px = np.count_nonzero(row > row[u] - 6.0)
    lat = float(LINEAR.lateral_fwhm_mm(20.0, 10.0, frame.settings.focus_mm))
    assert width_px * frame.geometry.spacing_mm < 2.0 * lat
    vis = frame.needle_visibility
    assert not vis.tip_in_plane and vis.tip_distance_to_plane_mm == pytest.approx(6.0)
    assert vis.shaft_fraction_in_plane < 0.1


def test_off_plane_needle_follows_the_elevation_profile():
    anat = scatter_free_block(depth=50.0, half=50.0)
    sim = UltrasoundSimulator(anat, LINEAR, acoustics=gel(backscatter_db=-300.0))
    depth_tip = 20.0
    hw = float(LINEAR.slice_half_width_mm(depth_tip, 10.0))
    peaks = {}
    for frac in (0.0, 0.25, 0.5, 0.75, 0.95, 1.05, 1.5):
        # A needle parallel to the probe face (0 deg), displaced in elevation by frac * half width.
        frame, _, _ = _needle_frame(sim, 0.0, depth_tip=depth_tip, dz=-frac * hw,
                                    settings=ScannerSettings(depth_mm=40.0, frequency_mhz=10.0, noise_db=QUIET,
                                                             tgc_alpha_db_cm_mhz=0.0))
        rows = slice(int(10.0 / frame.geometry.spacing_mm), None)  # below the surface echo
        peaks[frac] = float(frame.bmode_db[rows][frame.fov_mask()[rows]].max())
    for frac, pk in peaks.items():
        rel = pk - peaks[0.0]
        if frac < 1.0:
            want = 20 * math.log10(float(LINEAR.elevation_profile(frac * hw, depth_tip, 10.0)))
            assert rel == pytest.approx(want, abs=2.0), (frac, rel, want)
        else:
            assert rel < -20.0, (frac, rel)


# --------------------------------------------------------------------------------------------
# 5: bone shadow
# --------------------------------------------------------------------------------------------
def test_bone_plate_echo_and_shadow():
    anat = P.layered_block(0.25)  # cortical plate y in [-37, -32], x in [-30, 30]
    sim = UltrasoundSimulator(anat, LINEAR)
    pose = ProbePose.from_vectors((30.0, 0, 0), DOWN, (1, 0, 0))  # the plate edge under the centre
    st = ScannerSettings(depth_mm=60.0, frequency_mhz=8.0, noise_db=-200.0)
    frame = sim.render(pose, st)
    db = frame.bmode_db
    d = 32.0
    geom = frame.geometry
    cols = np.arange(db.shape[1])
    x = geom.pixel_to_probe(np.c_[cols, np.zeros_like(cols)])[:, 0] + 30.0  # world x of each column
    rows = np.arange(db.shape[0])
    y = geom.pixel_to_probe(np.c_[np.zeros_like(rows), rows])[:, 1]
    band = (y > d + 2) & (y < d + 20)
    lat = float(LINEAR.lateral_fwhm_mm(d + 10, 8.0, frame.settings.focus_mm))
    under = (x < 30 - 3 * lat) & (x > 30 - 15)
    control = (x > 30 + 3 * lat) & (x < 30 + 15)
    shadow_db = db[np.ix_(band, under)].mean(axis=0)
    control_db = db[np.ix_(band, control)].mean()
    assert control_db - shadow_db.max() >= 20.0
    # Surface echo at the plate depth, within one sample of the beam grid.
    env = frame.envelope_beam
    grid = frame.grid
    line = int(round(grid.probe_to_beam([[-8.0, d, 0.0]])[0, 0]))  # 8 mm over the plate
    prof = env[line].astype(np.float64)
    s_top = int(round(d / grid.dr_mm))
    win = slice(s_top - 20, s_top + 20)
    s_peak = s_top - 20 + int(np.argmax(prof[win]))
    assert abs((s_peak + 0.5) * grid.dr_mm - d) <= grid.dr_mm + 1e-9
    # Shadow edge at the plate edge (x = 30) within one lateral FWHM.
    # (in linear amplitude: half the control level is where a blurred edge sits)
    prof_x = (10 ** (db[band] / 20)).mean(axis=0)
    mid = 0.5 * prof_x[control].mean()
    sel = (x > 30 - 10) & (x < 30 + 10)
    xs, ps = x[sel], prof_x[sel]
    order = np.argsort(xs)
    xs, ps = xs[order], ps[order]
    k = int(np.argmax(ps > mid))
    edge = xs[k - 1] + (mid - ps[k - 1]) / (ps[k] - ps[k - 1]) * (xs[k] - xs[k - 1])
    assert abs(edge - 30.0) <= lat


# --------------------------------------------------------------------------------------------
# 6-7: attenuation and posterior enhancement
# --------------------------------------------------------------------------------------------
def _depth_profile_db(frame, lo_mm, hi_mm):
    """Mean dB across the central lines at each beam sample, with the depths."""
    env = frame.envelope_beam.astype(np.float64)
    nl = env.shape[0]
    central = env[nl // 8 : nl - nl // 8]
    db = 20 * np.log10(np.maximum(central, 1e-30)).mean(axis=0) + frame.tgc_db
    depth = frame.grid.sample_depths_mm()
    sel = (depth >= lo_mm) & (depth <= hi_mm)
    return depth[sel], db[sel]


def test_attenuation_slope_scales_with_frequency():
    alpha = 0.5
    anat = P.block((-40, -60, -40), (40, 0, 40), 0.5, Tissue.GEL)
    sim = UltrasoundSimulator(anat, LINEAR, acoustics=gel(alpha_db_cm_mhz=alpha))
    pose = ProbePose.from_vectors((0, 0, 0), DOWN, (1, 0, 0))
    slopes = {}
    for f in (6.0, 10.0):
        frame = sim.render(pose, ScannerSettings(depth_mm=40.0, frequency_mhz=f, noise_db=QUIET, tgc_alpha_db_cm_mhz=0.0))
        depth, db = _depth_profile_db(frame, 4.0, 36.0)
        slope = np.polyfit(depth / 10.0, db, 1)[0]  # dB/cm
        assert slope == pytest.approx(-2 * alpha * f, rel=0.05)
        slopes[f] = slope
        matched = sim.render(pose, ScannerSettings(depth_mm=40.0, frequency_mhz=f, noise_db=QUIET,
                                                   tgc_alpha_db_cm_mhz=alpha))
        depth, db = _depth_profile_db(matched, 4.0, 36.0)
        assert abs(np.polyfit(depth / 10.0, db, 1)[0]) < 0.1
    assert slopes[10.0] / slopes[6.0] == pytest.approx(10.0 / 6.0, rel=0.05)


def test_posterior_enhancement_below_a_cyst():
    alpha_t, diameter, f = 0.8, 10.0, 8.0
    anat = P.block((-40, -60, -40), (40, 0, 40), 0.4, Tissue.GEL)
    P.add_cylinder(anat, (0, -20, -40), (0, -20, 40), diameter / 2, Tissue.FLUID, "cyst")
    sim = UltrasoundSimulator(anat, LINEAR, acoustics=gel(alpha_db_cm_mhz=alpha_t))
    alpha_c = DEFAULT_ACOUSTICS[Tissue.FLUID].alpha_db_cm_mhz
    below, beside, chords = [], [], []
    st = ScannerSettings(depth_mm=45.0, frequency_mhz=f, noise_db=QUIET, tgc_alpha_db_cm_mhz=alpha_t)
    for dz in np.arange(-6.0, 6.1, 1.5):  # several elevations: independent speckle
        pose = ProbePose.from_vectors((0, 0, dz), DOWN, (1, 0, 0))
        frame = sim.render(pose, st)
        env = frame.envelope_beam.astype(np.float64)
        grid = frame.grid
        x = grid.line_positions()
        depth = grid.sample_depths_mm()
        rows = (depth > 20 + diameter / 2 + 3) & (depth < 20 + diameter / 2 + 15)
        inner = np.abs(x) < diameter / 4
        outer = (np.abs(x) > diameter / 2 + 4) & (np.abs(x) < diameter / 2 + 12)
        db = 20 * np.log10(np.maximum(env, 1e-30))
        below.append(db[np.ix_(inner, rows)].mean())
        beside.append(db[np.ix_(outer, rows)].mean())
        chords.append(np.mean(2 * np.sqrt((diameter / 2) ** 2 - x[inner] ** 2)))
    measured = np.mean(below) - np.mean(beside)
    want = 2 * (alpha_t - alpha_c) * f * np.mean(chords) / 10.0
    assert measured == pytest.approx(want, abs=1.5)


# --------------------------------------------------------------------------------------------
# 8-9: speckle statistics and stability
# --------------------------------------------------------------------------------------------
def test_speckle_is_rayleigh():
    anat = P.block((-40, -50, -40), (40, 0, 40), 0.5, Tissue.GEL)
    sim = UltrasoundSimulator(anat, LINEAR, acoustics=gel(alpha_db_cm_mhz=0.0))
    pose = ProbePose.from_vectors((0, 0, 0), DOWN, (1, 0, 0))
    frame = sim.render(pose, ScannerSettings(depth_mm=40.0, frequency_mhz=10.0, noise_db=QUIET))
    env = frame.envelope_beam.astype(np.float64)[32:-32, 40:-20]
    env = env / np.sqrt((env**2).mean(axis=0, keepdims=True))  # per depth: unit RMS
    ratio = env.mean() / env.std()
    assert ratio == pytest.approx(math.sqrt(math.pi / (4 - math.pi)), rel=0.10)  # 1.91
    sample = env[::4, ::6].ravel()  # about one value per speckle grain
    scale = math.sqrt((sample**2).mean() / 2)
    assert stats.kstest(sample, "rayleigh", args=(0, scale)).pvalue > 0.01


def test_frames_are_stable_and_move_with_the_tissue():
    anat = P.block((-40, -50, -40), (40, 0, 40), 0.4, Tissue.GEL)
    P.add_cylinder(anat, (-40, -15, -40), (40, -15, 40), 3.0, Tissue.VEIN, "oblique_vein")  # 45 deg to the plane
    P.add_sphere(anat, (6, -28, 0), 5.0, Tissue.MUSCLE, "nodule")
    sim = UltrasoundSimulator(anat, LINEAR)
    pose = ProbePose.from_vectors((0, 0, 0), DOWN, (1, 0, 0))
    st = ScannerSettings(depth_mm=40.0, frequency_mhz=10.0)
    a = sim.render(pose, st)
    b = sim.render(pose, st)
    assert np.array_equal(a.bmode_db, b.bmode_db) and np.array_equal(a.display, b.display)
    # A lateral shift by a non-integer number of scan lines: the content moves with the tissue.
    shift_px = 24
    dx = shift_px * a.geometry.spacing_mm
    assert abs(dx / a.grid.line_pitch - round(dx / a.grid.line_pitch)) > 0.2
    c = sim.render(pose.slid(lateral_mm=dx), st)
    # Moving the probe towards its marker moves the content away from the marker side (right).
    m = a.fov_mask()[:, :-shift_px] & c.fov_mask()[:, shift_px:]
    r = np.corrcoef(a.bmode_db[:, :-shift_px][m], c.bmode_db[:, shift_px:][m])[0, 1]
    assert r > 0.9
    # Sliding in elevation: speckle and structures change progressively.
    corr = []
    mm = a.fov_mask()
    for dz in (0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2):
        e = sim.render(pose.slid(elevation_mm=dz), st)
        corr.append(np.corrcoef(a.bmode_db[mm], e.bmode_db[mm])[0, 1])
    assert corr[0] == pytest.approx(1.0)
    assert corr[1] > 0.8  # a tremor-sized slide keeps most of the pattern
    assert all(x > y for x, y in zip(corr, corr[1:])), corr


# --------------------------------------------------------------------------------------------
# 10: colour Doppler
# --------------------------------------------------------------------------------------------
ROCKED = ProbePose.from_vectors((0, 0, 0), DOWN, (1, 0, 0)).rocked(30.0)


@pytest.fixture(scope="module")
def vessel_sim():
    anat = P.block((-40, -40, -40), (40, 10, 40), 0.25, Tissue.GEL)
    # The scanning surface: the plane of the face of a probe rocked by 30 deg (it lies flat on it).
    x, y, z = P._grid(anat)
    above = (x[:, None, None] * ROCKED.direction[0] + y[None, :, None] * ROCKED.direction[1]) < 0
    anat.tissue[np.broadcast_to(above, anat.shape)] = int(Tissue.AIR)
    P.add_cylinder(anat, (-40, -15, 0), (40, -15, 0), 4.0, Tissue.ARTERY, "artery")  # along x
    return UltrasoundSimulator(anat, LINEAR, flow_speeds_m_s={"artery": 0.5})


def _analytic_velocity(frame, vmax=0.5, radius=4.0):
    """Flow along -x or +x with v = vmax (1 - r^2/R^2): its component towards the probe."""
    h, w = frame.bmode_db.shape
    v, u = np.mgrid[0:h, 0:w]
    world = frame.pixel_to_world(np.c_[u.ravel(), v.ravel()]).reshape(h, w, 3)
    r2 = (world[..., 1] + 15.0) ** 2 + world[..., 2] ** 2
    speed = vmax * np.clip(1 - r2 / radius**2, 0, None)
    return world, speed


def test_doppler_velocity_angle_and_aliasing(vessel_sim):
    sim = vessel_sim
    # Heel-toe rock by 30 deg (flat on the phantom's sloping surface): the beam meets the vessel
    # (along x) at 60 deg.
    pose = ROCKED
    st = ScannerSettings(depth_mm=30.0, frequency_mhz=10.0, doppler=True, prf_hz=12000.0)
    frame = sim.render(pose, st)
    vel = frame.doppler_velocity_m_s
    coloured = np.isfinite(vel)
    assert coloured.sum() > 500
    world, speed = _analytic_velocity(frame)
    beam = pose.direction
    flow_dir = sim.flow_fields().data.reshape(-1, 3)
    flow_dir = flow_dir[np.linalg.norm(flow_dir, axis=1) > 0]
    u_flow = flow_dir[0] / np.linalg.norm(flow_dir[0])
    assert abs(abs(u_flow[0]) - 1.0) < 1e-3  # along the vessel
    cos_t = float(-(u_flow @ beam))  # component towards the probe
    assert abs(cos_t) == pytest.approx(math.cos(math.radians(60.0)), abs=1e-6)
    want = speed[coloured] * cos_t
    assert float(vel[coloured].mean()) == pytest.approx(float(want.mean()), rel=0.05)
    assert np.sign(vel[coloured]).mean() == pytest.approx(np.sign(cos_t))
    # Perpendicular to the vessel: no colour at all.
    perp = sim.render(sim.place_on_skin(ProbePose.from_vectors((0, 5, 0), DOWN, (1, 0, 0))), st)
    assert np.isfinite(perp.doppler_velocity_m_s).sum() == 0
    assert perp.doppler_rgba[..., 3].max() == 0
    # Aliasing: with a low PRF the fast centre wraps to the other sign, within +-Nyquist.
    low = replace(st, prf_hz=2500.0)
    v_nyq = low.resolve(LINEAR).nyquist_velocity_m_s()
    fa = sim.render(pose, low)
    va = fa.doppler_velocity_m_s
    centre = np.isfinite(va) & (speed * abs(cos_t) > 1.2 * v_nyq)
    assert centre.sum() > 20
    assert np.all(np.abs(va[np.isfinite(va)]) <= v_nyq + 1e-6)
    true = speed[centre] * cos_t
    wrapped = true - 2 * v_nyq * np.floor((true + v_nyq) / (2 * v_nyq))
    assert np.allclose(va[centre], wrapped, atol=0.05 * v_nyq + 0.02)
    assert np.all(np.sign(va[centre]) == -np.sign(cos_t))
    rgba = fa.doppler_rgba
    assert rgba.shape == fa.bmode_db.shape + (4,) and rgba.dtype == np.uint8


def test_muscle_in_long_axis_shows_no_bands_across_the_image():
    """Muscle septa are sheets of finite length: a long-axis view (fibres along the image's lateral
    axis) shows dashes and streaks, not rules across the whole width at fixed depths."""
    from scipy.ndimage import median_filter

    anat = P.block((-60, -40, -12), (60, 0, 12), 0.5, Tissue.MUSCLE)
    P._paint(anat, anat.tissue == int(Tissue.MUSCLE), Tissue.MUSCLE, "erector_spinae")  # long axis: x
    sim = UltrasoundSimulator(anat, LINEAR)
    assert abs(np.cross(sim.label_axes[1, :3], sim.label_axes[1, 3:])[0]) > 0.99
    pose = sim.place_on_skin(ProbePose.from_vectors((0, 5, 0), DOWN, (1, 0, 0)), press_mm=0.5)
    frame = sim.render(pose, ScannerSettings(depth_mm=40.0, frequency_mhz=10.0))
    rows = frame.bmode_db[40:400, 64:448]
    med = np.median(rows, axis=1)  # a band across the width lifts a row's median
    bands = med - median_filter(med, 15)
    assert np.abs(bands).max() < 6.0  # a septum's dash at most (a rule across the width: 10-20 dB)
    assert bands.std() < 1.3  # as in a uniform, untextured medium (about 1 dB)
