"""The treatment decisions of an attempt, judged against its scenario (pure: no Qt, no files).

`judge_decisions(facts, scenario)` -> list[Decision], one per topic that applies:
- time-out: the contraindications of the vignette (coagulopathy, infection at the site, aortic
  aneurysm ...) noticed, and the decision (proceed / defer) the key expects;
- prognostic block: done before the neurolytic where the scenario has one, and its answer heeded;
- agent and concentration: one of the scenario's agents at an allowed concentration (alcohol on a
  somatic nerve: neuritis; phenol below 5 %: no protein coagulation);
- volume per target: within the scenario's range (too little: spread misses the plexus; too much:
  spread beyond it);
- level and side: the neurolytic on the targets that carry this patient's pain, and not elsewhere;
- approach: as many needles as the plan (a bilateral plan done on one side covers half);
- asepsis (skin preparation and drape before the needle) and consent (the vignette's risks).
Verdicts: good | acceptable | poor. `decision_errors(decisions)` counts the poor ones.
"""
from __future__ import annotations

from dataclasses import dataclass

from simulator.core.outcome_facts import AttemptFacts, target_coverage
from simulator.core.scenario_case import CONTRAINDICATION_TEXT

COVERED_AT = 0.5


@dataclass
class Decision:
    topic: str
    chosen: str
    verdict: str  # good | acceptable | poor
    why: str

    def to_json(self) -> dict:
        return dict(self.__dict__)


def decision_errors(decisions: list[Decision]) -> int:
    return sum(1 for d in decisions if d.verdict == "poor")


def _names(kinds) -> str:
    return ", ".join(CONTRAINDICATION_TEXT.get(k, k) for k in kinds) or "none"


def _time_out(facts: AttemptFacts, v) -> Decision | None:
    key = list(v.contraindications) if v is not None else []
    if facts.time_out is None:
        if not key:
            return None
        return Decision("time-out", "no time-out recorded", "poor",
                        f"The vignette holds {_names(c.kind for c in key)}: " + " ".join(c.why for c in key))
    noticed = set(facts.time_out["contraindications"])
    present = {c.kind for c in key}
    decision = facts.time_out["decision"]
    must_defer = any(c.action in ("defer", "correct_first") for c in key)
    chosen = f"noticed: {_names(sorted(noticed))}; decision: {decision}"
    missed = present - noticed
    if missed:
        return Decision("time-out", chosen, "poor",
                        "Missed: " + " ".join(f"{c.finding} - {c.why}" for c in key if c.kind in missed))
    if must_defer and decision != "defer":
        return Decision("time-out", chosen, "poor", "Noticed but went ahead: " + " ".join(
            f"{c.finding} - {c.why}" for c in key if c.action in ("defer", "correct_first")))
    if not must_defer and decision == "defer":
        return Decision("time-out", chosen, "poor", "Nothing in the vignette stops this procedure: deferring leaves the "
                        "patient in pain" + (f" ({_names(sorted(noticed - present))} is not present)" if noticed - present else "") + ".")
    if noticed - present:
        return Decision("time-out", chosen, "acceptable", f"{_names(sorted(noticed - present))}: not present in this "
                        "patient (check the vignette again).")
    return Decision("time-out", chosen, "good", "The vignette's facts were checked" +
                    (": " + " ".join(c.why for c in key) if key else "; no contraindication."))


def _prognostic(facts: AttemptFacts, scenario) -> Decision | None:
    pb = getattr(scenario, "prognostic_block", None)
    if pb is None:
        return None
    res = facts.prognostic_result
    if not facts.prognostic:
        if not facts.neurolytic:
            return None
        return Decision("prognostic block", "skipped", "poor", pb.why)
    first_neuro = min((d.time_s for d in facts.neurolytic), default=None)
    if first_neuro is not None and min(d.time_s for d in facts.prognostic) > first_neuro:
        return Decision("prognostic block", "after the neurolytic", "poor", "The block must come first: " + pb.why)
    if res and not res.get("positive", False) and facts.neurolytic:
        if not res.get("reached", True):
            return Decision("prognostic block", "missed the target, then neurolysis", "poor",
                            "The local anaesthetic did not reach the target: the block said nothing, and the "
                            "neurolytic went ahead without an answer.")
        return Decision("prognostic block", "negative, then neurolysis", "poor",
                        "A negative block means these nerves do not carry the pain: the neurolysis cannot help.")
    verdict = "positive" if res and res.get("positive") else "negative"
    if verdict == "negative" and not facts.neurolytic:
        return Decision("prognostic block", "negative: no neurolysis", "good", "Stopping after a negative block is right.")
    return Decision("prognostic block", f"done ({verdict})", "good", res.get("message", "") if res else "")


def _agent(facts: AttemptFacts, scenario, somatic: set[str]) -> list[Decision]:
    opts = scenario.steps.agent_options()
    if not facts.neurolytic or not opts:
        return []
    out = []
    seen = set()
    for d in facts.neurolytic:
        key = (d.agent, d.concentration_pct)
        if key in seen:
            continue
        seen.add(key)
        chosen = f"{d.agent} {d.concentration_pct:g} %"
        match = [o for o in opts if o.agent == d.agent]
        allowed = ", ".join(f"{o.agent} {'/'.join(f'{c:g}' for c in o.concentrations_pct)} %" for o in opts)
        somatic_hit = any(d.coverage.get(t, 0) >= COVERED_AT for t in somatic)
        if not match:
            why = f"This block uses {allowed}."
            if d.agent == "alcohol" and somatic_hit:
                why += " Alcohol on a somatic nerve causes neuritis."
            out.append(Decision("agent", chosen, "poor", why))
        elif not any(abs(d.concentration_pct - c) < 1e-6 for o in match for c in o.concentrations_pct):
            why = f"Allowed: {allowed}."
            if d.agent == "phenol" and d.concentration_pct < 5:
                why += " Phenol coagulates protein only above 5 %."
            if d.agent == "alcohol" and d.concentration_pct < 50:
                why += " Alcohol below 50 % neurolyses incompletely."
            out.append(Decision("agent", chosen, "poor", why))
        else:
            out.append(Decision("agent", chosen, "good", f"One of the scenario's agents ({allowed})."))
    return out


def _volume(facts: AttemptFacts, scenario) -> Decision | None:
    opts = {o.agent: o for o in scenario.steps.agent_options()}
    if not facts.neurolytic or not opts:
        return None
    per_pass: dict[int, float] = {}
    agent_of: dict[int, str] = {}
    for d in facts.neurolytic:
        per_pass[d.pass_index] = per_pass.get(d.pass_index, 0.0) + d.volume_ml
        agent_of[d.pass_index] = d.agent
    problems, chosen = [], []
    for p, ml in sorted(per_pass.items()):
        o = opts.get(agent_of[p]) or next(iter(opts.values()))
        chosen.append(f"{ml:g} ml")
        lo, hi = o.volume_ml.min_ml, o.volume_ml.max_ml
        if ml < lo - 1e-6:
            problems.append(f"{ml:g} ml is below {lo:g} ml: the spread may not reach the whole target")
        elif ml > hi + 1e-6:
            problems.append(f"{ml:g} ml is above {hi:g} ml: agent beyond the target, more side effects and toxicity")
    text = " + ".join(chosen) + " (per needle)"
    if problems:
        return Decision("volume", text, "poor", "; ".join(problems) + ".")
    return Decision("volume", text, "good", "Within the scenario's range per target.")


def _level_side(facts: AttemptFacts, scenario) -> Decision | None:
    if not facts.neurolytic:
        return None
    v = getattr(scenario, "vignette", None)
    pain = list(v.pain_targets) if v is not None and v.pain_targets else [t.id for t in scenario.targets if t.required]
    all_ids = [t.id for t in scenario.targets]
    cov = target_coverage(facts.neurolytic, all_ids)
    names = {t.id: t.name for t in scenario.targets}
    missed = [t for t in pain if cov.get(t, 0.0) < COVERED_AT]
    wrong = [t for t in all_ids if t not in pain and cov.get(t, 0.0) >= COVERED_AT and v is not None and v.pain_targets]
    hit = [t for t in pain if t not in missed]
    chosen = "covered: " + (", ".join(names[t] for t in hit) or "none of the painful targets")
    if missed or wrong:
        why = []
        if missed:
            why.append("not reached by the neurolytic: " + ", ".join(names[t] for t in missed))
        if wrong:
            why.append("neurolytic where this patient has no pain: " + ", ".join(names[t] for t in wrong))
        return Decision("level and side", chosen, "poor", "; ".join(why) + ".")
    return Decision("level and side", chosen, "good", "The neurolytic reached every target that carries the pain.")


def _approach(facts: AttemptFacts, scenario) -> Decision | None:
    plans = scenario.trajectories
    if not facts.neurolytic or len(plans) < 2:
        return None
    passes = {d.pass_index for d in facts.neurolytic if d.mode == "tissue"}
    if len(passes) < len([t for t in scenario.targets if t.required]):
        return Decision("approach", f"{len(passes)} needle(s) with neurolytic", "poor",
                        f"The plan has {len(plans)} needles: one needle rarely spreads to both sides.")
    return Decision("approach", f"{len(passes)} needles with neurolytic", "good", "As planned.")


def _asepsis(facts: AttemptFacts, scenario) -> Decision | None:
    if facts.skin_punctures == 0:
        return None
    if facts.asepsis:
        return Decision("asepsis", "skin prepared and draped before the needle", "good", "Infection risk kept at its minimum.")
    missing = [w for w, ok in (("skin preparation", facts.skin_prep), ("drape", facts.drape)) if not ok]
    chosen = ("missing: " + ", ".join(missing)) if missing else "done after the needle was in"
    required = bool(getattr(scenario.steps, "asepsis", False))
    return Decision("asepsis", chosen, "poor" if required else "acceptable",
                    "Without skin preparation and a drape before the puncture the course model raises the infection risk.")


def _consent(facts: AttemptFacts, scenario) -> Decision | None:
    v = getattr(scenario, "vignette", None)
    items = list(v.consent_items) if v is not None else []
    required = bool(getattr(scenario.steps, "consent", False))
    if facts.consent_items is None:
        if not (required or items):
            return None
        return Decision("consent", "not recorded", "poor" if required else "acceptable",
                        "Consent names the risks this patient faces: " + ("; ".join(items) or "the procedure's risks") + ".")
    missing = [i for i in items if i not in facts.consent_items]
    if missing:
        return Decision("consent", f"{len(items) - len(missing)} of {len(items)} risks discussed", "acceptable",
                        "Not discussed: " + "; ".join(missing) + ".")
    return Decision("consent", "taken, every risk discussed", "good", "")


def judge_decisions(facts: AttemptFacts, scenario, somatic_targets: set[str] | None = None) -> list[Decision]:
    v = getattr(scenario, "vignette", None)
    somatic = set(somatic_targets or ())
    out: list[Decision | None] = [_time_out(facts, v), _consent(facts, scenario), _asepsis(facts, scenario),
                                  _prognostic(facts, scenario)]
    out += _agent(facts, scenario, somatic)
    out += [_volume(facts, scenario), _level_side(facts, scenario), _approach(facts, scenario)]
    return [d for d in out if d is not None]
