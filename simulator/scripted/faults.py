"""Named faults a scripted attempt can make, and which scenarios they apply to.

Each fault is one behaviour a trainee shows (Sites 2007, and the fluoroscopy ones); the battery in
tests/core/test_behaviours.py checks that each fails the attempt or loses the rubric points it
should, with a reason a trainee can read.
"""
from __future__ import annotations

from simulator.core.decision_scores import must_defer

FAULTS: dict[str, str] = {
    "one_side_only": "only the first required target gets a needle (one side of a bilateral block)",
    "no_aspiration": "no aspiration before any injection",
    "no_imaging": "no imaging while advancing (no fluoroscopy image, the probe not on the needle)",
    "muscle_injection": "everything injected in muscle short of the target plane",
    "intravascular": "the tip in a vessel near the target; blood on aspiration ignored, all injected there",
    "wrong_level": "the needle one vertebral (or rib) level off",
    "wrong_side": "the needle on the other side of the patient",
    "pleura_dura": "the needle driven on into the pleura or the dura, then pulled back to the target",
    "excessive_redirections": "twelve redirections on the way in",
    "neurolytic_before_test_dose": "the neurolytic given before the test dose",
    "probe_off_tip": "the ultrasound probe not showing the tip while the needle advances",
    "probe_moved": "the ultrasound probe moved while the needle advances",
    "no_local_anaesthetic": "no local anaesthetic at the entry",
    "bone_pushed": "advanced three more times against bone before redirecting",
    "live_fluoro": "live fluoroscopy held for 40 s at the target",
    "intraneural": "the tip inside the nerve for the injections",
    "contraindication_missed": "the time-out's contraindication that says defer not noticed: the needle goes in",
}

#: The behaviours of the issue's battery (each must fail or lose points on every scenario it applies to).
BATTERY = ("one_side_only", "no_aspiration", "no_imaging", "muscle_injection", "intravascular", "wrong_level",
           "pleura_dura", "excessive_redirections", "neurolytic_before_test_dose", "probe_off_tip")


class FaultNotApplicable(ValueError):
    """This fault cannot happen on this scenario (the message says why)."""


def _modality(scenario) -> str:
    return str(getattr(scenario.modality, "value", scenario.modality))


def fault_applies(name: str, scenario, targets) -> str | None:
    """None when the fault can be scripted on this scenario, else why not (a quick check from the
    scenario alone; faults that need the anatomy - a vessel, a level, the pleura near the target -
    may still raise `FaultNotApplicable` when the attempt runs)."""
    if name not in FAULTS:
        raise KeyError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
    steps = scenario.steps
    required = [t for t in targets if t.required]
    modality = _modality(scenario)
    sides = {t.side for t in required}
    if name == "one_side_only" and len(required) < 2:
        return "the scenario has one required target"
    if name == "no_aspiration" and not steps.aspiration_before_injection:
        return "the scenario does not ask for aspiration"
    if name == "neurolytic_before_test_dose" and (steps.test_dose is None or not steps.agent_options()):
        return "the scenario has no test dose and neurolytic"
    if name in ("probe_off_tip", "probe_moved") and modality == "fluoroscopy":
        return "fluoroscopy only: no probe"
    if name == "live_fluoro" and modality == "ultrasound":
        return "ultrasound only: no fluoroscopy"
    if name == "no_local_anaesthetic" and not steps.local_anaesthetic:
        return "the scenario does not ask for local anaesthetic"
    if name == "wrong_side" and (sides != {"left"} and sides != {"right"}):
        return "the required targets are not on one side"
    if name == "intraneural" and not any(t.is_nerve for t in required):
        return "no required target is a somatic nerve"
    if name == "contraindication_missed" and not (steps.time_out and must_defer(scenario)):
        return "the scenario's key has no contraindication that says defer (or no time-out)"
    return None


def applicable_faults(scenario, targets, names=None) -> list[str]:
    """The faults (of `names`, default all) the scenario allows."""
    return [n for n in (names or FAULTS) if fault_applies(n, scenario, targets) is None]
