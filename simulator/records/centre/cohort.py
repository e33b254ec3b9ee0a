"""A cohort's learning curves from the central store (what the instructor's dashboard plots)."""
from __future__ import annotations

from simulator.records.progress import LearningCurve, learning_curve


def scenarios_seen(store) -> list[tuple[str, str]]:
    """(scenario id, title) of the attempts the connected role may see, most attempted first."""
    counts: dict[str, list] = {}
    for a in store.list_attempts(status=("finished", "recovered", "abandoned")):
        c = counts.setdefault(a.scenario_id, [0, a.scenario_title])
        c[0] += 1
    return [(sid, c[1]) for sid, c in sorted(counts.items(), key=lambda kv: (-kv[1][0], kv[0]))]


def cohort_curves(store, scenario_id: str) -> dict[str, LearningCurve]:
    """trainee -> their learning curve on one scenario, for every trainee the role may see who
    attempted it."""
    trainees = sorted({a.trainee for a in store.list_attempts(scenario=scenario_id)})
    return {t: learning_curve(store, t, scenario_id) for t in trainees}
