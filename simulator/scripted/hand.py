"""The scripted operator's hand: where the entry lands, how much the needle wavers, how fast it
moves and turns, how long the pauses are, and how the operator images. Drawn from a seed, so the
same seed gives the same attempt to the last bit.

Three skill profiles (ranges drawn uniformly per attempt). The novice is merely clumsy - no fault
that fails the attempt by itself (those are the named faults, `faults.FAULTS`):

| quantity | expert | intermediate | novice |
|---|---|---|---|
| entry_jitter_mm (entry off the plan, across the path) | 0 - 3 | 2 - 6 | 4 - 10 |
| aim_error_deg (first aim off the planned line) | 0 - 1 | 1 - 3 | 2 - 6 |
| tremor_deg (random turn of the needle per movement, sd) | 0.05 - 0.3 | 0.3 - 0.8 | 0.8 - 2.0 |
| speed_mm_s (a steady advance; withdrawal 2.5 times as fast) | 5 - 15 | 8 - 20 | 10 - 25 |
| jab_share (movements made as a quick jab at 60 - 100 mm/s) | 0 | 0.1 - 0.3 | 0.35 - 0.7 |
| turn_deg_s (how fast the needle is turned) | 3 - 8 | 10 - 40 | 50 - 90 |
| overshoot (a turn goes this share further, then back) | 0 | 0 - 0.3 | 0.4 - 1.0 |
| skin_reaims (turns of 15 - 35 deg at the skin before puncturing) | 0 | 0 - 1 | 1 - 4 |
| move_mm (one movement) | 6 - 12 | 5 - 12 | 5 - 12 |
| pause_s (mean pause between actions) | 1.5 - 3.5 | 2.5 - 5 | 4 - 9 |
| correct_deg (misalignment the hand corrects) | 0.8 | 1.5 | 3.0 |
| withdraw_fraction (a redirection withdraws to this share of the depth) | 0.4 | 0.5 - 0.7 | 0.7 - 0.95 |
| stop_short_mm (tip left short of the goal) | 0 - 0.5 | 0.5 - 2 | 1.5 - 4 |
| image_fraction (fluoroscopy image after this share of the allowance) | 0.8 - 0.95 | 0.5 - 0.8 | 0.3 - 0.7 |
| extra_shot_p (another image right after one: "one more look") | 0 | 0.1 - 0.2 | 0.3 - 0.6 |
| live_p (an image taken as a short live run, 1 - 4 s) | 0 | 0.1 - 0.3 | 0.3 - 0.6 |
| lapse_p (a movement made without the image that was due) | 0 | 0 - 0.05 | 0.05 - 0.2 |
| lost_mm (ultrasound: advance on after the tip left the plane) | 0 | 0 - 2 | 2 - 6 |
| drift_p (ultrasound: the probe slips while the needle advances) | 0 | 0 - 0.05 | 0.05 - 0.2 |

Motion is recorded as a tracker sees it: `SAMPLE_HZ` inputs per second while the hand moves, the
same rate for everyone (a rate per skill would be a difference of the recording, not the hand).
The speeds matter to Perk Tutor's action counts (more than 50 mm/s or 50 deg/s for more than 0.2 s
is one action): a steady expert hand stays below them, a novice's quick turns and withdrawals do
not. Perk Tutor measures the translation of the pose change M_i M_(i-1)^-1, which for a turn about
the skin entry includes the entry's distance from the world origin times the angle: a slow turn
of 10 deg/s 300 mm from the origin is 52 mm/s - the expert's turning speed (3 - 8 deg/s) keeps
deliberate redirections below the threshold.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SKILLS = ("expert", "intermediate", "novice")
SAMPLE_HZ = 20.0  # inputs per second while a movement lasts (every skill)
JAB_SPEED_MM_S = (60.0, 100.0)
REAIM_DEG = (15.0, 35.0)

_RANGES = {
    "expert": dict(entry_jitter_mm=(0.0, 3.0), aim_error_deg=(0.0, 1.0), tremor_deg=(0.05, 0.3),
                   speed_mm_s=(5.0, 15.0), jab_share=(0.0, 0.0), turn_deg_s=(3.0, 8.0), overshoot=(0.0, 0.0),
                   skin_reaims=(0.0, 0.0), move_mm=(6.0, 12.0), pause_s=(1.5, 3.5), withdraw_fraction=(0.4, 0.4),
                   stop_short_mm=(0.0, 0.5), image_fraction=(0.8, 0.95), extra_shot_p=(0.0, 0.0),
                   live_p=(0.0, 0.0), lapse_p=(0.0, 0.0), lost_mm=(0.0, 0.0), drift_p=(0.0, 0.0)),
    "intermediate": dict(entry_jitter_mm=(2.0, 6.0), aim_error_deg=(1.0, 3.0), tremor_deg=(0.3, 0.8),
                         speed_mm_s=(8.0, 20.0), jab_share=(0.1, 0.3), turn_deg_s=(10.0, 40.0), overshoot=(0.0, 0.3),
                         skin_reaims=(0.0, 1.99), move_mm=(5.0, 12.0), pause_s=(2.5, 5.0),
                         withdraw_fraction=(0.5, 0.7), stop_short_mm=(0.5, 2.0), image_fraction=(0.5, 0.8),
                         extra_shot_p=(0.1, 0.2), live_p=(0.1, 0.3), lapse_p=(0.0, 0.05), lost_mm=(0.0, 2.0),
                         drift_p=(0.0, 0.05)),
    "novice": dict(entry_jitter_mm=(4.0, 10.0), aim_error_deg=(2.0, 6.0), tremor_deg=(0.8, 2.0),
                   speed_mm_s=(10.0, 25.0), jab_share=(0.35, 0.7), turn_deg_s=(50.0, 90.0), overshoot=(0.4, 1.0),
                   skin_reaims=(1.0, 4.99), move_mm=(5.0, 12.0), pause_s=(4.0, 9.0), withdraw_fraction=(0.7, 0.95),
                   stop_short_mm=(1.5, 4.0), image_fraction=(0.3, 0.7), extra_shot_p=(0.3, 0.6),
                   live_p=(0.3, 0.6), lapse_p=(0.05, 0.2), lost_mm=(2.0, 6.0), drift_p=(0.05, 0.2)),
}
_CORRECT_DEG = {"expert": 0.8, "intermediate": 1.5, "novice": 3.0}

#: Novices clumsy in one way only: an expert's hand but for these quantities, drawn from the
#: novice's ranges (the validity bench measures what each costs the score and which metric sees it).
#: "imaging" also sweeps the ultrasound probe as a novice does; "unsteady" corrects as late.
STYLES: dict[str, tuple[str, ...]] = {
    "rotational": ("turn_deg_s", "overshoot", "skin_reaims"),
    "translational": ("jab_share", "speed_mm_s"),
    "unsteady": ("entry_jitter_mm", "aim_error_deg", "tremor_deg", "stop_short_mm", "withdraw_fraction"),
    "imaging": ("image_fraction", "extra_shot_p", "live_p", "lapse_p", "lost_mm", "drift_p"),
    "hesitant": ("pause_s",),
}


@dataclass
class Hand:
    """One operator's hand for one attempt (see the module notes)."""

    skill: str
    seed: int
    entry_jitter_mm: float
    aim_error_deg: float
    tremor_deg: float
    speed_mm_s: float
    jab_share: float
    turn_deg_s: float
    overshoot: float
    skin_reaims: float
    move_mm: float
    pause_s: float
    withdraw_fraction: float
    stop_short_mm: float
    image_fraction: float
    extra_shot_p: float
    live_p: float
    lapse_p: float
    lost_mm: float
    drift_p: float
    correct_deg: float
    rng: np.random.Generator
    quick: bool = False  # one input per movement and per turn (fewer inputs: the tests' battery)
    style: str = ""  # a novice clumsy in one way only (`STYLES`), else ""

    @classmethod
    def draw(cls, skill: str = "expert", seed: int = 0, steady: bool = False, quick: bool = False,
             style: str | None = None) -> "Hand":
        """A hand of this skill from `seed`. `steady`: no jitter, no tremor, no slips, the ranges'
        middle otherwise (the reference attempt of a scenario). `quick`: each movement and turn one
        input. `style` (novices only): clumsy in that way only (`STYLES`)."""
        if skill not in SKILLS:
            raise ValueError(f"skill must be one of {', '.join(SKILLS)}, got {skill!r}")
        if style and (skill != "novice" or style not in STYLES):
            raise ValueError(f"style must be one of {', '.join(STYLES)} (novices only), got {style!r} for {skill!r}")
        rng = np.random.default_rng(seed)
        vals = {}
        for k, (lo, hi) in _RANGES[skill].items():
            if style and k not in STYLES[style]:
                lo, hi = _RANGES["expert"][k]
            vals[k] = 0.5 * (lo + hi) if steady else float(rng.uniform(lo, hi))
        vals["skin_reaims"] = float(int(vals["skin_reaims"]))
        if steady:
            vals.update(entry_jitter_mm=0.0, aim_error_deg=0.0, tremor_deg=0.0, stop_short_mm=0.0, lapse_p=0.0,
                        drift_p=0.0)
        correct = _CORRECT_DEG["expert" if style and style != "unsteady" else skill]
        return cls(skill=skill, seed=int(seed), correct_deg=correct, rng=rng, quick=quick, style=style or "", **vals)

    @property
    def probe_skill(self) -> str:
        """How the hand scans with the ultrasound probe (a novice clumsy in another way: as an expert)."""
        return "expert" if self.style and self.style != "imaging" else self.skill

    def pause(self) -> float:
        """Seconds before the next action (exponential around the hand's mean, at least 0.3 s)."""
        return max(0.3, float(self.rng.exponential(self.pause_s)))

    def chance(self, p: float) -> bool:
        """True with probability `p` (no draw at all when p is 0: an expert's attempt does not
        change when a slip's probability is added)."""
        return p > 0 and float(self.rng.random()) < p

    def _across(self, axis) -> tuple[np.ndarray, np.ndarray]:
        a = np.asarray(axis, dtype=np.float64)
        u = np.cross(a, [0.0, 0.0, 1.0])
        if np.linalg.norm(u) < 1e-6:
            u = np.cross(a, [1.0, 0.0, 0.0])
        u /= np.linalg.norm(u)
        return u, np.cross(a, u)

    def jitter(self, axis) -> np.ndarray:
        """An entry offset of `entry_jitter_mm`, across the path (perpendicular to `axis`)."""
        u, v = self._across(axis)
        ang = float(self.rng.uniform(0.0, 2.0 * math.pi))
        return self.entry_jitter_mm * (math.cos(ang) * u + math.sin(ang) * v)

    def misaim(self, axis) -> np.ndarray:
        """The first aim: the axis turned by `aim_error_deg` about a random direction across it."""
        return self.turned(axis, self.aim_error_deg)

    def turned(self, axis, angle_deg: float) -> np.ndarray:
        """`axis` turned by `angle_deg` towards a random direction across it."""
        a = np.asarray(axis, dtype=np.float64)
        if angle_deg == 0:
            return a
        u, v = self._across(a)
        phi = float(self.rng.uniform(0.0, 2.0 * math.pi))
        side = math.cos(phi) * u + math.sin(phi) * v
        ang = math.radians(angle_deg)
        return math.cos(ang) * a + math.sin(ang) * side

    def waver(self, axis, scale: float = 1.0) -> np.ndarray:
        """The axis turned by a random tremor (normal, sd `tremor_deg` times `scale`) about a random
        direction."""
        a = np.asarray(axis, dtype=np.float64)
        if self.tremor_deg <= 0:
            return a
        ang = math.radians(float(self.rng.normal(0.0, self.tremor_deg)) * scale)
        u = np.cross(a, self.rng.normal(size=3))
        n = np.linalg.norm(u)
        if n < 1e-9:
            return a
        u /= n
        return math.cos(ang) * a + math.sin(ang) * u

    @property
    def dt(self) -> float:
        """Seconds between the recorded inputs of one movement."""
        return 1.0 / SAMPLE_HZ

    def movement_speed(self, mm: float) -> float:
        """mm/s of the next movement: a jab now and then (novices), else the steady speed;
        withdrawal 2.5 times as fast."""
        v = float(self.rng.uniform(*JAB_SPEED_MM_S)) if self.chance(self.jab_share) else self.speed_mm_s
        return v * (2.5 if mm < 0 else 1.0)

    def substeps(self, mm: float, speed_mm_s: float | None = None) -> int:
        """How many recorded inputs one movement of `mm` takes at `speed_mm_s` (default: the hand's
        steady speed)."""
        if self.quick:
            return 1
        speed = speed_mm_s or self.speed_mm_s * (2.5 if mm < 0 else 1.0)
        return max(1, int(math.ceil(abs(mm) * SAMPLE_HZ / speed)))

    def turn_steps(self, angle_deg: float) -> int:
        """How many recorded inputs turning the needle by `angle_deg` takes at the hand's turning
        speed."""
        if self.quick:
            return 1
        return max(1, int(math.ceil(abs(angle_deg) * SAMPLE_HZ / self.turn_deg_s)))
