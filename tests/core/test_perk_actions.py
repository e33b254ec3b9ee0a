"""Perk Tutor's translational and rotational action counts: known answers on analytic motions, and
the same numbers as a plain transcription of Perk Tutor's per-frame rule."""
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.core.perk import action_counts
from simulator.core.geometry import rotation_between


def _translate(times, xs):
    m = np.tile(np.eye(4), (len(times), 1, 1))
    m[:, 0, 3] = xs
    return m


def _rotate(times, angles_deg):
    m = np.tile(np.eye(4), (len(times), 1, 1))
    for i, a in enumerate(np.radians(angles_deg)):
        c, s = math.cos(a), math.sin(a)
        m[i, :2, :2] = [[c, -s], [s, c]]
    return m


def test_a_sustained_fast_movement_is_one_action_a_jab_is_none():
    t = np.arange(0, 3, 1 / 60)
    x = np.where(t < 1.0, 0.0, np.where(t < 1.5, (t - 1.0) * 100.0, 50.0))  # 100 mm/s for 0.5 s
    assert action_counts(t, _translate(t, x)) == {"translational_actions": 1, "rotational_actions": 0}
    jab = np.where(t < 1.0, 0.0, np.where(t < 1.1, (t - 1.0) * 100.0, 10.0))  # 0.1 s: under the hysteresis
    assert action_counts(t, _translate(t, jab))["translational_actions"] == 0
    slow = t * 30.0  # 30 mm/s the whole time: never an action
    assert action_counts(t, _translate(t, slow))["translational_actions"] == 0


def test_two_bursts_are_two_actions_and_turns_count_as_rotations():
    t = np.arange(0, 4, 1 / 60)
    x = np.clip((t - 0.5) * 80, 0, 40) + np.clip((t - 2.5) * 80, 0, 40)
    assert action_counts(t, _translate(t, x))["translational_actions"] == 2
    ang = np.clip((t - 1.0) * 90.0, 0, 60)  # 90 deg/s for 2/3 s
    assert action_counts(t, _rotate(t, ang)) == {"translational_actions": 0, "rotational_actions": 1}


def test_untracked_frames_and_repeated_times_are_left_out():
    t = np.arange(0, 3, 1 / 60)
    x = np.where(t < 1.0, 0.0, np.where(t < 1.5, (t - 1.0) * 100.0, 50.0))
    m = _translate(t, x)
    m[::7] = np.nan  # the tool lost now and then
    assert action_counts(t, m)["translational_actions"] == 1
    assert action_counts([], np.zeros((0, 4, 4))) == {"translational_actions": 0, "rotational_actions": 0}


def _perk_reference(times, mats, rotational):
    """Perk Tutor's TranslationalActions / RotationalActions AddTimestamp, transcribed."""
    n = 0
    state = 0
    complete = 0.0
    t_prev = m_prev = None
    for t, m in zip(times, mats):
        if t_prev is not None and t == t_prev:
            continue
        if t_prev is None:
            t_prev, m_prev = t, m
            continue
        c = m @ np.linalg.inv(m_prev)
        if rotational:
            ang = math.degrees(math.acos(max(-1.0, min(1.0, (np.trace(c[:3, :3]) - 1) / 2))))
            speed = abs(ang) / (t - t_prev)
        else:
            speed = float(np.linalg.norm(c[:3, 3])) / (t - t_prev)
        test = 1 if speed > 50 else 0
        if test == state:
            complete = t
        elif t - complete > 0.2:
            state = test
            complete = t
            if test == 1:
                n += 1
        t_prev, m_prev = t, m
    return n


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_same_counts_as_perk_tutors_rule(seed):
    rng = np.random.default_rng(seed)
    k = 120
    t = np.cumsum(rng.choice([1 / 60, 1 / 30, 0.25, 0.0], size=k, p=[0.6, 0.2, 0.15, 0.05]))
    m = np.tile(np.eye(4), (k, 1, 1))
    pos = np.cumsum(rng.normal(scale=rng.choice([0.2, 3.0], size=(k, 1)), size=(k, 3)), axis=0)
    axis = np.array([0.0, 0.0, 1.0])
    for i in range(k):
        axis = axis + rng.normal(scale=rng.choice([0.01, 0.2]), size=3)
        axis /= np.linalg.norm(axis)
        m[i, :3, :3] = rotation_between(np.array([0.0, 0.0, 1.0]), axis)
        m[i, :3, 3] = pos[i] + 100.0  # away from the origin: rotations move the change's translation too
    got = action_counts(t, m)
    assert got["translational_actions"] == _perk_reference(t, m, False)
    assert got["rotational_actions"] == _perk_reference(t, m, True)
