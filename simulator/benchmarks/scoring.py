"""Benchmark of the score: rescoring rate, its per-sample baseline, and the live update.

`python main.py bench scoring --json` prints one JSON object:
- samples_per_s: the full metric set (Perk Tutor core metrics on the skin mesh plus ours) over a
  recorded attempt, vectorised (median of repetitions);
- baseline_samples_per_s: the same Perk Tutor metrics by a plain per-sample Python loop
  (`metrics.perk_core_metrics_loop`), measured in the same run;
- live_update_ms: median time of one input during an attempt (the procedure's state update,
  events, recording and the live metrics), p95 beside it;
- distinct_samples_per_s: the vectorised rate when every sample has a different pose (the worst
  case: no repeated poses to share work);
- spread_20ml_ms: a 20 ml injection's spread at the first target.

The attempt is the scripted expert celiac plexus block (both needles) on the bundled patient when
its anatomy is built (`expert_side`), else the scripted attempt on `synthetic_block_anatomy()`,
sampled at 60 Hz like the workstation's recorder: the needle moves in steps and rests between them.

`synthetic_block_anatomy()` (`simulator.anatomy.test_block`, `phantom:test_block`) and
`synthetic_scenario()` are a small analytic anatomy with exactly known geometry (also used by the
tests) and a celiac-style scenario on it.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

from simulator.anatomy.test_block import (  # the block's geometry, also read by the tests from here
    AORTA,
    CANAL,
    ENTRY,
    KIDNEY,
    SKIN_Y,
    TARGET,
    synthetic_block_anatomy,
)

__all__ = ["AORTA", "CANAL", "ENTRY", "KIDNEY", "SKIN_Y", "TARGET", "StepClock", "expert_attempt", "expert_side",
           "novice_attempt", "synthetic_block_anatomy", "synthetic_scenario"]


def synthetic_scenario(**overrides):
    """A celiac-style fluoroscopy scenario on the test block (a `Scenario`). Fields given as
    keyword arguments replace the defaults; modality="ultrasound" also drops the contrast step,
    scores the tip visibility instead of the fluoroscopy images and (unless `imaging` is given)
    images with a curvilinear probe deep enough for the 100 mm deep target."""
    from simulator.core.scenario_model import Scenario

    d = {
        "id": "test_block_celiac",
        "title": "Celiac plexus block on the test block",
        "procedure": "celiac_plexus",
        "indication": ["training"],
        "difficulty": 1,
        "anatomy": "phantom:test_block",
        "patient_position": "prone",
        "modality": "fluoroscopy",
        "needle": {"gauge": 22, "length_mm": 150},
        "skin_entry_zone": {"center_mm": list(ENTRY), "radius_mm": 15},
        "planned_trajectory": {"entry_mm": list(ENTRY), "target_mm": list(TARGET)},
        "targets": [{"id": "celiac_left", "name": "celiac plexus", "kind": "point", "points_mm": [list(TARGET)],
                     "tolerance_mm": 5, "side": "left"}],
        "critical_structures": [
            {"structure": "aorta", "severity": "critical", "message": "aorta punctured"},
            {"structure": "inferior_vena_cava", "severity": "critical"},
            {"structure": "kidney_left", "severity": "major"},
            {"tissue": "csf", "severity": "critical", "message": "dural puncture"},
            {"tissue": "lung", "severity": "critical", "message": "pleura breached"},
        ],
        "steps": {
            "local_anaesthetic": True,
            "aspiration_before_injection": True,
            "contrast": {"min_ml": 2, "max_ml": 5},
            "test_dose": {"agent": "lidocaine", "concentrations_pct": [1, 2], "volume_ml": {"min_ml": 2, "max_ml": 5}},
            "neurolytic": {"agent": "alcohol", "concentrations_pct": [50, 100], "volume_ml": {"min_ml": 10, "max_ml": 25}},
        },
        "rubric": {
            "pass_mark": 70,
            "advance_without_imaging_mm": 10,
            "items": [
                {"metric": "final_distance_mm", "weight": 30, "good": 2, "bad": 10},
                {"metric": "tissue_damage_mm2", "weight": 10, "good": 300, "bad": 3000},
                {"metric": "advances_without_imaging", "weight": 15, "good": 0, "bad": 4},
                {"metric": "redirections", "weight": 5, "good": 2, "bad": 8},
                {"metric": "fluoro_shots", "weight": 5, "good": 30, "bad": 60},
                {"metric": "fluoro_time_s", "weight": 10, "good": 15, "bad": 60},
                {"metric": "elapsed_time_s", "weight": 5, "good": 400, "bad": 1200},
                {"metric": "target_coverage_pct", "weight": 20, "good": 100, "bad": 0},
                {"metric": "critical_contacts", "weight": 15, "good": 0, "bad": 1},
            ],
            "automatic_fails": ["critical_contact", "intravascular_agent", "intrathecal_agent",
                                "agent_without_aspiration", "agent_without_local_anaesthetic",
                                "agent_without_contrast", "agent_volume_exceeded", "target_not_reached",
                                "no_agent_injected", "pleural_breach"],
        },
        "instructions": "Prone patient. Reach the left celiac plexus from a posterior left approach.",
    }
    d.update(overrides)
    if d["modality"] == "ultrasound":
        d["steps"] = dict(d["steps"], contrast=None)
        d["rubric"] = dict(d["rubric"])
        d["rubric"]["automatic_fails"] = [f for f in d["rubric"]["automatic_fails"] if f != "agent_without_contrast"]
        d["rubric"]["items"] = [i if i["metric"] != "fluoro_shots" else
                                {"metric": "tip_visible_pct", "weight": 5, "good": 90, "bad": 50}
                                for i in d["rubric"]["items"]]
        if "imaging" not in overrides:
            d["imaging"] = {"ultrasound": {"probe": "curvilinear", "depth_mm": 140, "frequency_mhz": 4}}
    return Scenario.model_validate(d)


def expert_attempt(proc, t0: float = 0.0, dt: float = 1.0, fluoro_every_mm: float = 8.0):
    """A good attempt on the test block: LA, entry, advance under imaging, bone contact with the
    vertebral body, withdraw and walk off, reach the target, aspirate, contrast, test dose, agent."""
    from simulator.core.geometry import normalize

    t = [t0]

    def nt():
        t[0] += dt
        return t[0]

    entry = np.array(ENTRY)
    bone_aim = np.array([-15.0, -10.0, 0.0])
    target = np.array(TARGET)
    proc.set_entry(entry, normalize(bone_aim - entry), time_s=nt())
    proc.local_anaesthetic(5.0, time_s=nt())
    proc.record_fluoro_shot(dap_gycm2=0.1, duration_s=0.2, time_s=nt())
    moved = 0.0
    for _ in range(30):
        got = proc.advance(4.0, time_s=nt())
        moved += got
        if proc.state.bone_contact:
            break
        if moved >= fluoro_every_mm - 1e-6:
            proc.record_fluoro_shot(dap_gycm2=0.1, duration_s=0.2, time_s=nt())
            moved = 0.0
    proc.record_fluoro_shot(dap_gycm2=0.1, duration_s=0.2, time_s=nt())
    depth = proc.state.depth_mm
    proc.withdraw(depth - 15.0, time_s=nt())
    entry_pt = proc.state.skin_entry_mm
    proc.set_direction(normalize(target - entry_pt), time_s=nt())
    proc.record_fluoro_shot(dap_gycm2=0.1, duration_s=0.2, time_s=nt())
    moved = 0.0
    for _ in range(60):
        remaining = float(np.linalg.norm(target - entry_pt)) - proc.state.depth_mm
        if remaining <= 0.3:
            break
        step = min(4.0, remaining)
        moved += proc.advance(step, time_s=nt())
        if moved >= fluoro_every_mm - 1e-6:
            proc.record_fluoro_shot(dap_gycm2=0.1, duration_s=0.2, time_s=nt())
            moved = 0.0
    proc.record_fluoro_shot(dap_gycm2=0.1, duration_s=0.2, time_s=nt())
    proc.aspirate(time_s=nt())
    proc.inject("contrast", "iohexol", 0.0, 3.0, time_s=nt())
    proc.record_fluoro_shot(dap_gycm2=0.1, duration_s=0.2, time_s=nt())
    proc.aspirate(time_s=nt())
    proc.inject("test_dose", "lidocaine", 1.0, 3.0, time_s=nt())
    proc.aspirate(time_s=nt())
    proc.inject("neurolytic", "alcohol", 100.0, 15.0, time_s=nt())
    proc.end(time_s=nt())
    return proc


SHOT = dict(dap_gycm2=0.05, duration_s=0.2)


class StepClock:
    """Attempt time for scripts: each call moves on by `dt` seconds (and may call `on_step`)."""

    def __init__(self, dt: float = 1.5, start: float = 0.0, on_step=None):
        self.t, self.dt, self.on_step = start, dt, on_step

    def __call__(self) -> float:
        t0 = self.t
        self.t += self.dt
        if self.on_step is not None:
            self.on_step(t0, self.t)
        return self.t


def expert_side(proc, clock, entry, target, fluoro_every: float = 9.5, agent=("alcohol", 100.0, 10.0),
                shot=SHOT, touch_bone: bool = True):
    """One needle of an expert celiac-style block: local anaesthetic at the entry, aim at the
    vertebral body and advance under fluoroscopy (an image every `fluoro_every` mm) to bone
    contact, withdraw half way and walk off towards the target, advance to it, aspirate,
    contrast, aspirate, test dose, aspirate, agent; then out of the skin."""
    from simulator.core.geometry import normalize
    from simulator.scripted.plan import bone_aim

    entry = np.asarray(entry, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    aim = bone_aim(proc, entry, target) if touch_bone else None
    first_dir = normalize(aim - entry) if aim is not None else normalize(target - entry)
    proc.set_entry(entry, first_dir, time_s=clock())
    proc.local_anaesthetic(5.0, "lidocaine", 1.0, time_s=clock())
    proc.record_fluoro_shot(**shot, time_s=clock())
    moved = 0.0
    path = float(np.linalg.norm(target - entry))
    while not proc.state.bone_contact:
        if aim is None and proc.state.depth_mm >= path - 0.5:
            break
        if proc.state.depth_mm >= path + 10:
            break
        moved += proc.advance(fluoro_every - moved, time_s=clock())
        if moved >= fluoro_every - 1e-6:
            proc.record_fluoro_shot(**shot, time_s=clock())
            moved = 0.0
    proc.record_fluoro_shot(**shot, time_s=clock())
    if proc.state.bone_contact:
        proc.withdraw(0.5 * proc.state.depth_mm, time_s=clock())
    e = proc.state.skin_entry_mm
    proc.set_direction(normalize(target - e), time_s=clock())
    proc.record_fluoro_shot(**shot, time_s=clock())
    moved = 0.0
    for _ in range(200):
        remaining = float(np.linalg.norm(target - e)) - proc.state.depth_mm
        if remaining <= 0.2 or proc.state.bone_contact:
            break
        moved += proc.advance(min(remaining, fluoro_every - moved), time_s=clock())
        if moved >= fluoro_every - 1e-6:
            proc.record_fluoro_shot(**shot, time_s=clock())
            moved = 0.0
    proc.record_fluoro_shot(**shot, time_s=clock())
    proc.aspirate(time_s=clock())
    proc.inject("contrast", "iohexol", 0.0, 4.0, time_s=clock())
    proc.record_fluoro_shot(**shot, time_s=clock())
    proc.aspirate(time_s=clock())
    proc.inject("test_dose", "lidocaine", 1.0, 3.0, time_s=clock())
    proc.aspirate(time_s=clock())
    proc.inject("neurolytic", agent[0], agent[1], agent[2], time_s=clock())
    proc.withdraw(time_s=clock())
    return proc


def novice_attempt(proc, t0: float = 0.0, dt: float = 1.0):
    """A poor attempt: no local anaesthetic, advances without imaging straight into the aorta,
    no aspiration, too much agent."""
    t = [t0]

    def nt():
        t[0] += dt
        return t[0]

    (ax, ay), _ = AORTA
    proc.set_entry([ax - 5.0, SKIN_Y, 0.0], [0.0, 1.0, 0.0], time_s=nt())
    for _ in range(6):
        proc.advance(14.0, time_s=nt())
    proc.inject("neurolytic", "alcohol", 100.0, 30.0, time_s=nt())
    proc.end(time_s=nt())
    return proc


def _bundled_celiac():
    """(scenario, anatomy) of the celiac scenario on the bundled patient when its cache is built."""
    try:
        from simulator.anatomy import bundled
        from simulator.core.paths import SCENARIOS_DIR
        from simulator.core.scenario import load_scenario

        path = SCENARIOS_DIR / "celiac_plexus_posterior.yaml"
        if not path.exists() or not bundled.cache_is_valid():
            return None
        return load_scenario(path), bundled.load_bundled()
    except Exception:  # noqa: BLE001 - the benchmark falls back to the test block
        return None


def _sampled_attempt(scenario, anatomy, rate_hz: float = 60.0, seconds_per_input: float = 1.0):
    """The expert attempt with the recorder's ticks at `rate_hz` between inputs (the needle rests
    between the trainee's actions): both celiac needles on a scenario with planned trajectories,
    the test-block script otherwise. Returns the procedure and, per input name, the seconds each
    call took."""
    from simulator.core.procedure import Procedure, input_names

    proc = Procedure(scenario, anatomy, clock=lambda: 0.0)
    timings: dict[str, list[float]] = {}
    clock = [0.0]
    inputs = set(input_names())

    class Timed:
        def __getattr__(self, name):
            fn = getattr(proc, name)
            if name not in inputs:
                return fn

            def call(*a, time_s=None, **k):
                while clock[0] + 1.0 / rate_hz < time_s:
                    clock[0] += 1.0 / rate_hz
                    if proc.state is not None:
                        s = time.perf_counter()
                        proc.tick(time_s=clock[0])
                        timings.setdefault("tick", []).append(time.perf_counter() - s)
                clock[0] = time_s
                s = time.perf_counter()
                r = fn(*a, time_s=time_s, **k)
                timings.setdefault(name, []).append(time.perf_counter() - s)
                return r

            return call

    timed = Timed()
    plans = ([scenario.planned_trajectory] if scenario.planned_trajectory else []) + list(
        getattr(scenario, "additional_trajectories", []) or [])
    if scenario.id == "test_block_celiac" or not plans:
        expert_attempt(timed, dt=seconds_per_input)
    else:
        steps = StepClock(seconds_per_input)
        for plan in plans:
            expert_side(timed, steps, plan.entry_mm, plan.target_mm)
        timed.end(time_s=steps())
    return proc, timings


def run(args) -> dict:
    from simulator.core.metrics import body_surface, perk_core_metrics, perk_core_metrics_loop
    from simulator.core.scoring import score_attempt
    from simulator.core.spread import compute_spread

    quick = bool(getattr(args, "quick", False))
    real = _bundled_celiac()
    if real is not None:
        scenario, anatomy = real
        where = "bundled patient, celiac_plexus_posterior"
    else:
        scenario, anatomy = synthetic_scenario(), synthetic_block_anatomy()
        where = "test block (the bundled patient is not built)"
    proc, timings = _sampled_attempt(scenario, anatomy, seconds_per_input=1.0 if quick else 8.0)
    rec = proc.recording
    surface = body_surface(anatomy)
    t = rec.samples.time_s
    m = rec.samples.needle_tip_to_world
    n = len(t)
    reps = 3 if quick else 7

    def timed(fn):
        out = []
        for _ in range(reps):
            s = time.perf_counter()
            fn()
            out.append(time.perf_counter() - s)
        return statistics.median(out)

    full = timed(lambda: score_attempt(rec, scenario, anatomy, surface=surface))
    core = timed(lambda: perk_core_metrics(t, m, surface))
    k = min(n, 2000 if quick else 10000)
    base = timed(lambda: perk_core_metrics_loop(t[:k], m[:k], surface))
    # worst case: every pose distinct (a small jitter on each sample, as a tracker gives)
    rng = np.random.default_rng(0)
    mj = m.copy()
    mj[:, :3, 3] += rng.normal(scale=0.05, size=(n, 3))
    distinct = timed(lambda: perk_core_metrics(t, mj, surface))
    distinct_base = timed(lambda: perk_core_metrics_loop(t[:k], mj[:k], surface))
    tip = np.asarray(scenario.targets[0].points_mm[0], dtype=np.float64)
    sp = timed(lambda: compute_spread(anatomy, tip, 20.0))
    every = sorted(x for v in timings.values() for x in v)
    motion = sorted(x for name in ("advance", "withdraw", "set_direction", "set_entry") for x in timings.get(name, []))
    return {
        "anatomy": where,
        "skin_triangles": int(anatomy.meshes["skin"].n_triangles) if "skin" in anatomy.meshes else 0,
        "samples": n,
        "samples_per_s": round(n / full),
        "baseline_samples_per_s": round(k / base),
        "live_update_ms": round(1000 * statistics.median(every), 4),
        "live_update_p95_ms": round(1000 * every[int(0.95 * (len(every) - 1))], 4),
        "live_motion_update_ms": round(1000 * statistics.median(motion), 4),
        "core_samples_per_s": round(n / core),
        "distinct_samples_per_s": round(n / distinct),
        "distinct_baseline_samples_per_s": round(k / distinct_base),
        "spread_20ml_ms": round(1000 * sp, 2),
    }
