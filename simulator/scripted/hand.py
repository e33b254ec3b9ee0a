"""The scripted operator's hand: how far off the entry lands, how much the needle wavers, how
fast it moves and how long the pauses are. Drawn from a seed, so the same seed gives the same
attempt to the last bit.

Two skill profiles (ranges drawn uniformly per attempt):

| quantity | expert | novice |
|---|---|---|
| entry_jitter_mm (entry off the plan, across the path) | 0 - 3 | 4 - 10 |
| tremor_deg (random turn of the needle per movement) | 0.05 - 0.3 | 0.8 - 2.0 |
| speed_mm_s (needle speed while it moves; withdrawal 2.5 times as fast) | 8 - 18 | 50 - 110 |
| turn_deg_s (how fast the needle is turned) | 8 - 15 | 60 - 150 |
| move_mm (one movement) | 4 - 9 | 10 - 20 |
| pause_s (between actions) | 1.5 - 4 | 3 - 8 |
| correct_deg (misalignment the hand corrects) | 0.8 | 3.0 |
| stop_short_mm (tip left short of the goal) | 0 - 0.5 | 1.5 - 4 |
| image_fraction (fluoroscopy image after this share of the allowance) | 0.9 - 0.99 | 0.9 - 1.6 |
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SKILLS = ("expert", "novice")
SAMPLE_HZ = {"expert": 10.0, "novice": 20.0}  # inputs per second while a movement lasts

_RANGES = {
    "expert": dict(entry_jitter_mm=(0.0, 3.0), tremor_deg=(0.05, 0.3), speed_mm_s=(8.0, 18.0), move_mm=(4.0, 9.0),
                   turn_deg_s=(8.0, 15.0),
                   pause_s=(1.5, 4.0), stop_short_mm=(0.0, 0.5), image_fraction=(0.9, 0.99)),
    "novice": dict(entry_jitter_mm=(4.0, 10.0), tremor_deg=(0.8, 2.0), speed_mm_s=(50.0, 110.0), move_mm=(10.0, 20.0),
                   turn_deg_s=(60.0, 150.0),
                   pause_s=(3.0, 8.0), stop_short_mm=(1.5, 4.0), image_fraction=(0.9, 1.6)),
}
_CORRECT_DEG = {"expert": 0.8, "novice": 3.0}


@dataclass
class Hand:
    """One operator's hand for one attempt (see the module notes)."""

    skill: str
    seed: int
    entry_jitter_mm: float
    tremor_deg: float
    speed_mm_s: float
    turn_deg_s: float
    move_mm: float
    pause_s: float
    stop_short_mm: float
    image_fraction: float
    correct_deg: float
    rng: np.random.Generator
    quick: bool = False  # one input per movement and per turn (fewer inputs: the tests' battery)

    @classmethod
    def draw(cls, skill: str = "expert", seed: int = 0, steady: bool = False, quick: bool = False) -> "Hand":
        """A hand of this skill from `seed`. `steady`: no jitter, no tremor, the ranges' middle
        (the reference attempt of a scenario). `quick`: each movement and turn one input."""
        if skill not in SKILLS:
            raise ValueError(f"skill must be one of {', '.join(SKILLS)}, got {skill!r}")
        rng = np.random.default_rng(seed)
        vals = {}
        for k, (lo, hi) in _RANGES[skill].items():
            vals[k] = 0.5 * (lo + hi) if steady else float(rng.uniform(lo, hi))
        if steady:
            vals.update(entry_jitter_mm=0.0, tremor_deg=0.0, stop_short_mm=0.0)
        return cls(skill=skill, seed=int(seed), correct_deg=_CORRECT_DEG[skill], rng=rng, quick=quick, **vals)

    def pause(self) -> float:
        """Seconds before the next action (exponential around the hand's mean, at least 0.3 s)."""
        return max(0.3, float(self.rng.exponential(self.pause_s)))

    def jitter(self, axis) -> np.ndarray:
        """An entry offset of `entry_jitter_mm`, across the path (perpendicular to `axis`)."""
        a = np.asarray(axis, dtype=np.float64)
        u = np.cross(a, [0.0, 0.0, 1.0])
        if np.linalg.norm(u) < 1e-6:
            u = np.cross(a, [1.0, 0.0, 0.0])
        u /= np.linalg.norm(u)
        v = np.cross(a, u)
        ang = float(self.rng.uniform(0.0, 2.0 * math.pi))
        return self.entry_jitter_mm * (math.cos(ang) * u + math.sin(ang) * v)

    def waver(self, axis) -> np.ndarray:
        """The axis turned by a random tremor (normal, sd `tremor_deg`) about a random direction."""
        a = np.asarray(axis, dtype=np.float64)
        if self.tremor_deg <= 0:
            return a
        ang = math.radians(float(self.rng.normal(0.0, self.tremor_deg)))
        u = np.cross(a, self.rng.normal(size=3))
        n = np.linalg.norm(u)
        if n < 1e-9:
            return a
        u /= n
        return math.cos(ang) * a + math.sin(ang) * u

    @property
    def dt(self) -> float:
        """Seconds between the recorded inputs of one movement."""
        return 1.0 / SAMPLE_HZ[self.skill]

    def substeps(self, mm: float) -> int:
        """How many recorded inputs one movement of `mm` takes at this hand's speed (withdrawal
        goes 2.5 times as fast as advance)."""
        if self.quick:
            return 1
        speed = self.speed_mm_s * (2.5 if mm < 0 else 1.0)
        return max(1, int(math.ceil(abs(mm) * SAMPLE_HZ[self.skill] / speed)))

    def turn_steps(self, angle_deg: float) -> int:
        """How many recorded inputs turning the needle by `angle_deg` takes (at most 8)."""
        if self.quick:
            return 1
        return max(1, min(8, int(math.ceil(abs(angle_deg) * SAMPLE_HZ[self.skill] / self.turn_deg_s))))
