"""The patient's course in the attempt report: the timeline plot, the effects and the decisions.

`course_section(recording, scenario_id)` finds the attempt's scenario (by id, in the library and the
user's scenarios), computes the course and the decisions exactly as the debrief does (the same
recording gives the same course), and returns a `CourseSection`: the timeline as a `plots.Plot`
(median and bands over the virtual patients, this patient's line, markers for what happened to
them, the return of pain and the repeat offer), the lines of text and the tables. Without a
scenario or outcome parameters the section says why.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from simulator.records.plots import GREY, PALETTE, RED, Plot, Series, VLine

BAND = "#1f5fa8"
MARKER = {"side_effect": ("#e08a1e", "side effect"), "complication": (RED, "complication"),
          "relief": (PALETTE[2], "relief begins"), "return": (PALETTE[3], "pain returns"),
          "repeat": (PALETTE[0], "repeat offered")}


@dataclass
class CourseSection:
    available: bool
    label: str
    lines: list[str]
    plot: Plot | None = None
    effects: list[list[str]] = field(default_factory=list)
    decisions: list[list[str]] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)


def course_plot(course) -> Plot:
    wk = course.weeks
    p = Plot("Pain after the procedure (educational model)", "weeks after the procedure", "pain score (NRS 0-10)",
             y_from_zero=True)
    p.series.append(Series("10-90 % of virtual patients", wk, course.p10, BAND, kind="band", y2=course.p90, opacity=0.18))
    p.series.append(Series("25-75 %", wk, course.p25, BAND, kind="band", y2=course.p75, opacity=0.35))
    p.series.append(Series("median", wk, course.median, BAND, width=2.0))
    p.series.append(Series("this patient", wk, course.index, "#222222", width=1.8, dash="6,4"))
    for m in course.markers():
        colour, group = MARKER.get(m["kind"], (GREY, m["kind"]))
        p.vlines.append(VLine(m["day"] / 7.0, f"week {m['day'] / 7:.1f}: {m['label']}", colour, group))
    p.series.append(Series("", [0.0, 0.0], [0.0, 10.0], "#ffffff", kind="points", size=0))  # the 0-10 scale
    return p


def section_from(course, decisions) -> CourseSection:
    if not course.available:
        return CourseSection(False, course.label, [course.reason])
    effects = [[e.name, e.kind.replace("_", " "), f"{100 * e.probability:.1f} %" if e.probability else "not triggered",
                "-" if e.index_day is None else f"day {e.index_day:.0f}", e.figure]
               for e in sorted(course.effects, key=lambda e: (e.probability == 0, -e.probability))]
    dec = [[d.topic, d.chosen, d.verdict, d.why] for d in decisions]
    assumptions = [f"{f['path']}: {f['text']}" + (f" ({f['note']})" if f.get("note") else "") for f in course.assumptions]
    return CourseSection(True, course.label, course.summary_lines(), course_plot(course), effects, dec, assumptions)


def course_section(recording, scenario=None) -> CourseSection:
    """The course of a recorded attempt (see the module notes)."""
    from simulator.core.decisions import judge_decisions
    from simulator.core.outcome import EDUCATIONAL_LABEL, case_info, course_for_attempt
    from simulator.core.outcome_facts import facts_from_recording

    if scenario is None:
        from simulator.core.scenario import ScenarioError, ScenarioNotFoundError, find_scenario, load_scenario

        try:
            scenario = load_scenario(find_scenario(recording.scenario_id))
        except (ScenarioError, ScenarioNotFoundError, OSError) as e:
            return CourseSection(False, EDUCATIONAL_LABEL, [f"No course: the scenario {recording.scenario_id!r} "
                                                             f"could not be loaded ({str(e).splitlines()[0]})."])
    try:
        course = course_for_attempt(recording, scenario)
        decisions = judge_decisions(facts_from_recording(recording), scenario,
                                    case_info(scenario, recording).somatic_targets)
    except Exception as e:  # noqa: BLE001 - the report is written whatever happens here
        return CourseSection(False, EDUCATIONAL_LABEL, [f"No course: it could not be computed ({e})."])
    return section_from(course, decisions)
