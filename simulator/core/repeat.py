"""A repeat procedure: the same patient months later, with the history of the earlier attempt.

    history = history_from_attempt(recording, scenario, course)   # JSON-ready, kept in the
                                                                  # follow-up's recording meta
    months = months_until_repeat(course)                           # when the repeat is offered

The history names what the earlier attempt did (each neurolytic injection in tissue: agent,
concentration, volume, the targets it covered, the celiac quadrants it reached), how the patient
fared (relief and for how long, the side effects and complications that happened, the pain now)
and where it came from (scenario, attempt, start; `patient`: the first attempt of a chain of
follow-ups, whose seed fixes the patient's prognostic block - `case_steps.patient_seed`). A follow-up attempt stores it as
`recording.meta["follows"]`; the outcome model reads it back (`repeat_sites(meta)`) and computes
the second course with the parameter set's repeat policy: a lower chance and a shorter duration of
relief (McGreevy 2013: success 67 % after the first celiac neurolysis, 29 % after a repeat; mean
relief 3.4 -> 1.6 months) and less agent reaching tissue neurolysed before (scarring: an
assumption, no published figure). A scenario with `follows:` is a repeat even when no earlier
attempt is known (its vignette tells the story): `repeat_sites` gives [] then.
"""
from __future__ import annotations

from simulator.core.outcome_facts import QUADRANTS, facts_from_recording

DAYS_PER_MONTH = 30.44
MIN_MONTHS = 1.0


def months_until_repeat(course) -> float | None:
    """Months from the procedure to the repeat offer of the attempt's own patient (half months,
    at least one), None when no repeat is offered within the course shown."""
    day = getattr(course, "index_repeat_day", None)
    if day is None:
        return None
    return max(MIN_MONTHS, round(2.0 * float(day) / DAYS_PER_MONTH) / 2.0)


def _sites(recording, scenario, covered_at: float) -> list[dict]:
    names = {t.id: t.name for t in scenario.targets}
    out = []
    for d in facts_from_recording(recording).tissue_doses():
        covered = [t for t, c in sorted(d.coverage.items()) if float(c) >= covered_at]
        site = {"agent": d.agent, "concentration_pct": round(d.concentration_pct, 3), "volume_ml": round(d.volume_ml, 3),
                "targets": covered, "target_names": [names.get(t, t) for t in covered]}
        if d.quadrant_ml:
            site["quadrant_ml"] = {q: round(float(d.quadrant_ml.get(q, 0.0)), 3) for q in QUADRANTS}
        out.append(site)
    return out


def history_from_attempt(recording, scenario, course, attempt_id: int | None = None) -> dict:
    """What a follow-up on this patient carries over from `recording` (see the module notes)."""
    from simulator.core.outcome import relief_days

    covered_at = 0.5
    try:
        from simulator.core.outcome_library import parameters_for

        found = parameters_for(scenario)
        if found is not None:
            covered_at = found[0].relief.covered_at
    except Exception:  # noqa: BLE001 - the default threshold will do
        pass
    months = months_until_repeat(course) if course is not None and course.available else None
    out = {
        "scenario_id": scenario.id,
        "title": scenario.title,
        "started_at": recording.started_at,
        "attempt_id": attempt_id,
        "months_before": months,
        # who the patient is: the first attempt of a chain of follow-ups (fixes their prognostic block)
        "patient": _patient(recording),
        "sites": _sites(recording, scenario, covered_at),
    }
    if course is not None and course.available:
        days = relief_days(course)
        out["relieved"] = bool(course.index_relief)
        out["relief_weeks"] = None if days is None else round(days / 7.0, 1)
        out["effects"] = [e.name for e in course.effects if e.index_day is not None]
        # the pain the follow-up starts from: at the repeat offer, else (relief outlasted the weeks
        # shown, or none was given) back where it was
        day = course.index_repeat_day
        now = course.pain_at(day) if day is not None else course.baseline_nrs
        out["pain_nrs_now"] = round(2.0 * now) / 2.0
    return out


def _patient(recording) -> dict:
    earlier = (getattr(recording, "meta", None) or {}).get("follows")
    if isinstance(earlier, dict) and isinstance(earlier.get("patient"), dict):
        return dict(earlier["patient"])
    return {"scenario_id": recording.scenario_id, "started_at": recording.started_at}


def repeat_sites(meta: dict | None, scenario=None) -> list[dict] | None:
    """The earlier attempt's sites for the course of a follow-up: from the recording's meta, []
    for a scenario that `follows` another with no earlier attempt known, None for a first procedure."""
    hist = (meta or {}).get("follows")
    if isinstance(hist, dict):
        return [s for s in hist.get("sites", []) if isinstance(s, dict)]
    if scenario is not None and getattr(scenario, "follows", None):
        return []
    return None


def pain_now(meta: dict | None) -> float | None:
    """The pain score a follow-up starts from (the earlier course's, at the repeat offer)."""
    hist = (meta or {}).get("follows")
    v = hist.get("pain_nrs_now") if isinstance(hist, dict) else None
    return float(v) if isinstance(v, (int, float)) and 0 <= v <= 10 else None


__all__ = ["history_from_attempt", "months_until_repeat", "repeat_sites", "pain_now", "DAYS_PER_MONTH"]
