"""Needle specification and the kinematic rules: bone stops the tip, pivots sweep tissue, redirections."""
import math

import numpy as np
import pytest

from simulator.benchmarks.scoring import ENTRY, SKIN_Y, synthetic_scenario
from simulator.core.events import EventKind
from simulator.core.geometry import normalize
from simulator.core.needle import GAUGE_OD_MM, REDIRECT_DEG, NeedleSpec, TissueProbe
from simulator.core.procedure import Procedure
from simulator.core.tissue import BONE, Tissue


def new(scenario, block):
    return Procedure(scenario, block, clock=lambda: 0.0)


def kinds(proc, kind):
    return [e for e in proc.events if e.kind == kind]


def test_gauges_and_spec():
    assert GAUGE_OD_MM == {18: 1.27, 20: 0.91, 21: 0.82, 22: 0.72, 23: 0.64, 25: 0.51}
    s = NeedleSpec.from_scenario(synthetic_scenario().needle)
    assert (s.gauge, s.length_mm, s.outer_diameter_mm) == (22, 150.0, 0.72)
    with pytest.raises(ValueError):
        NeedleSpec(gauge=19)


def test_probe_finds_skin_and_bone_surfaces(block):
    probe = TissueProbe(block)
    e = probe.skin_entry([-50, -200, 0], [-50, 0, 0])
    assert e[1] == pytest.approx(SKIN_Y, abs=0.01) and e[0] == -50
    assert probe.skin_entry([-50, -200, 0], [-50, -100, 0]) is None  # all in air
    stop, first, label = probe.first_bone([-40, -10, 0], [0, -10, 0])
    # the vertebral body begins at x = -15 (between voxel centres -15.5 and -14.5)
    assert -15.05 < stop[0] <= -15.0 < first[0] < -14.95
    assert block.structures[label].name == "vertebrae_L1"
    assert Tissue(int(block.tissue_at(stop[None])[0])) not in BONE
    assert probe.first_bone([-40, -10, 0], [-30, -10, 0]) is None


def test_bone_stops_the_advancing_tip(scenario, block):
    proc = new(scenario, block)
    start = np.array([-45.0, SKIN_Y, 0.0])
    aim = np.array([-15.0, -10.0, 0.0])
    d = normalize(aim - start)
    proc.set_entry(start, d, time_s=1.0)
    moved = proc.advance(200.0, time_s=2.0)
    st = proc.state
    assert st.bone_contact and st.inserted
    assert moved < 200.0
    assert st.tissue not in BONE
    # the tip rests at the bone surface: a tenth of a millimetre further is bone
    ahead = st.tip_mm + 0.1 * st.axis
    assert Tissue(int(block.tissue_at(ahead[None])[0])) in BONE
    assert -15.1 < st.tip_mm[0] <= -15.0
    contacts = kinds(proc, EventKind.bone_contact)
    assert len(contacts) == 1 and contacts[0].data["structure"] == "vertebrae_L1"
    assert contacts[0].data["depth_mm"] == pytest.approx(st.depth_mm)
    # pushing again does not move it and does not count a second contact
    assert proc.advance(5.0, time_s=3.0) < 0.05
    assert len(kinds(proc, EventKind.bone_contact)) == 1
    # withdraw, touch again: a new contact
    proc.withdraw(5.0, time_s=4.0)
    assert not proc.state.bone_contact
    proc.advance(10.0, time_s=5.0)
    assert len(kinds(proc, EventKind.bone_contact)) == 2


def test_pivot_about_the_skin_entry_sweeps_a_sector(scenario, block):
    proc = new(scenario, block)
    proc.set_entry(ENTRY, [0, 1, 0], time_s=0.0)
    depth = 30.0
    proc.advance(depth + 0.5, time_s=1.0)  # 0.5 mm from the parked tip to the skin
    entry = proc.state.skin_entry_mm.copy()
    assert entry[1] == pytest.approx(SKIN_Y, abs=0.01)
    assert proc.state.depth_mm == pytest.approx(depth, abs=0.01)
    d0 = proc.live.tissue_damage_mm2
    n, theta = 20, math.radians(22.0)
    for i in range(1, n + 1):
        a = theta * i / n
        proc.set_direction([math.sin(a), math.cos(a), 0.0], time_s=1.0 + i)
        assert np.linalg.norm(proc.state.tip_mm - entry) == pytest.approx(depth, abs=0.02)
    swept = proc.live.tissue_damage_mm2 - d0
    expected = n * depth * depth / 2 * math.sin(theta / n)
    assert swept == pytest.approx(expected, rel=2e-3)
    # 22 degrees of turning in 1.1-degree steps: a redirection each time the turn since the last
    # one passes 5 degrees (at 5.5, 11, 16.5 and 22 degrees)
    red = kinds(proc, EventKind.redirection)
    assert len(red) == 4
    assert all(not r.data["proper"] for r in red)  # deep, no withdrawal first


def test_turning_before_the_skin_pivots_about_the_tip(scenario, block):
    proc = new(scenario, block)
    proc.set_entry(ENTRY, [0, 1, 0], time_s=0.0)
    tip = proc.state.tip_mm
    proc.set_direction(azimuth_deg=60.0, elevation_deg=10.0, time_s=1.0)
    assert np.allclose(proc.state.tip_mm, tip)
    assert not proc.state.inserted
    assert kinds(proc, EventKind.redirection) == []


def test_redirect_after_withdrawal_is_proper(scenario, block):
    proc = new(scenario, block)
    proc.set_entry(ENTRY, [0, 1, 0], time_s=0.0)
    proc.advance(40.5, time_s=1.0)
    proc.set_direction([0.0, 1.0, 0.05], time_s=2.0)  # under 5 degrees: a correction, not counted
    assert kinds(proc, EventKind.redirection) == []
    proc.withdraw(30.0, time_s=3.0)
    proc.set_direction(normalize([0.3, 1.0, 0.0]), time_s=4.0)
    red = kinds(proc, EventKind.redirection)
    assert len(red) == 1 and red[0].data["proper"] and red[0].data["angle_deg"] > REDIRECT_DEG


def test_state_reports_depth_entry_and_shaft(scenario, block):
    proc = new(scenario, block)
    proc.set_entry(ENTRY, normalize(np.array([-32.0, 30.0, 0.0]) - ENTRY), time_s=0.0)
    st0 = proc.state
    assert not st0.inserted and st0.depth_mm == 0.0 and st0.tissue == Tissue.AIR
    assert np.allclose(st0.hub_mm, st0.tip_mm - 150.0 * st0.axis)
    proc.advance(60.0, time_s=1.0)
    st = proc.state
    assert st.inserted and st.depth_mm == pytest.approx(59.5, abs=0.01)
    assert "autochthon_left" in st.shaft_structures
    assert st.shaft_tissues[0] == Tissue.SKIN
    assert set(st.target_distances_mm) == {"celiac_left"}
    assert st.summary()["tissue"] == st.tissue.name.lower()


def test_bone_stops_the_tip_on_the_layered_phantom():
    from simulator.anatomy.phantoms import make_phantom

    an = make_phantom("layered_block")
    bone = np.isin(an.tissue, [int(t) for t in BONE])
    assert bone.any(), "the layered phantom has a bone plate"
    centre = an.origin_mm + np.argwhere(bone).mean(axis=0) * an.spacing_mm
    # come from the body surface nearest the plate's centre
    best = None
    for axis in np.vstack([np.eye(3), -np.eye(3)]):
        probe = TissueProbe(an)
        far = centre - 400 * axis
        e = probe.skin_entry(far, centre)
        if e is not None and (best is None or np.linalg.norm(centre - e) < best[0]):
            best = (np.linalg.norm(centre - e), axis, e)
    assert best is not None
    _, axis, e = best
    sc = synthetic_scenario(targets=[{"id": "t", "name": "plate", "points_mm": [centre.tolist()]}])
    proc = Procedure(sc, an, clock=lambda: 0.0)
    proc.set_entry(e, axis, time_s=0.0)
    proc.advance(float(np.linalg.norm(centre - e)) + 20.0, time_s=1.0)
    st = proc.state
    assert st.bone_contact and st.tissue not in BONE
    assert Tissue(int(an.tissue_at((st.tip_mm + 0.2 * axis)[None])[0])) in BONE
