"""The patient behind a scenario: the case vignette, the prognostic block and the course model.

Scenario fields (all optional; see scenarios/celiac_plexus_posterior.yaml):

    vignette:          who the patient is (age, diagnosis, pain history, prior treatments,
                       anticoagulation, other facts), shown before the attempt; `contraindications`
                       is the instructor's key of what the trainee must notice at the time-out;
                       `consent_items` the risks to discuss.
    prognostic_block:  a local-anaesthetic block the trainee must do before the neurolytic, and
                       its result for this patient (relief yes/no, hours, side effects).
    outcome:           the course model: a named set of the shared parameter file
                       (`parameters: celiac_plexus`) or a set of its own (`set: {...}`).
    follows:           the scenario this one repeats (a follow-up months later, same patient).

The models only check values; cross-file checks (does the named set exist, do the figures name
known sources, are the pain targets targets of the scenario) are in `check_case(scenario)`,
called by the Scenario model.
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from simulator.core.model_base import LocatedValueError, Vec3, _Model
from simulator.core.outcome_params import LOCAL_ANAESTHETICS, CourseParameters

CONTRAINDICATION_KINDS = (
    "coagulopathy",  # INR, platelets, or an anticoagulant not stopped long enough
    "infection_at_site",
    "aortic_aneurysm",
    "allergy",
    "pleural_adhesions",
    "patient_refusal",
    "pregnancy",
    "other",
)
ContraindicationKind = Literal[CONTRAINDICATION_KINDS]  # type: ignore[valid-type]

CONTRAINDICATION_TEXT = {
    "coagulopathy": "coagulopathy or anticoagulation not stopped",
    "infection_at_site": "infection at the puncture site",
    "aortic_aneurysm": "aortic aneurysm",
    "allergy": "allergy to a drug of the procedure",
    "pleural_adhesions": "pleural adhesions",
    "patient_refusal": "no consent / patient declines",
    "pregnancy": "pregnancy",
    "other": "other contraindication",
}


class Anticoagulation(_Model):
    drug: str = Field("none", min_length=1, description="e.g. none, aspirin 75 mg, apixaban 5 mg twice daily")
    last_dose_hours: Optional[float] = Field(None, ge=0, le=10_000, description="hours since the last dose")
    inr: Optional[float] = Field(None, gt=0, le=20)
    platelets_per_nl: Optional[float] = Field(None, ge=0, le=2000, description="platelets, 10^9/l")


class Contraindication(_Model):
    """Something in the vignette the trainee must notice before the needle goes in."""

    kind: ContraindicationKind  # type: ignore[valid-type]
    finding: str = Field(min_length=3, description="the fact in the vignette, e.g. INR 2.4 on warfarin")
    action: Literal["defer", "correct_first", "proceed_with_caution"] = Field(
        "defer", description="what a careful physician does: defer the procedure, correct first, or go on with care"
    )
    why: str = Field(min_length=3, description="why it matters, shown in the debrief")


class Vignette(_Model):
    age_years: int = Field(ge=0, le=120)
    sex: Literal["female", "male", "other"]
    diagnosis: str = Field(min_length=3)
    pain_history: str = Field(min_length=3)
    pain_nrs: float = Field(ge=0, le=10, description="pain score now, 0-10")
    pain_side: Literal["left", "right", "bilateral", "midline"] = "bilateral"
    pain_targets: list[str] = Field(default_factory=list, description="target ids that carry the pain (default: the required targets)")
    prior_treatments: list[str] = Field(default_factory=list)
    medications: list[str] = Field(default_factory=list)
    anticoagulation: Anticoagulation = Field(default_factory=Anticoagulation)
    allergies: list[str] = Field(default_factory=list)
    other_facts: list[str] = Field(default_factory=list)
    contraindications: list[Contraindication] = Field(default_factory=list, description="the key: what must be noticed")
    consent_items: list[str] = Field(default_factory=list, description="risks to discuss before consent")
    life_expectancy_months: Optional[float] = Field(None, gt=0, le=600)


class PrognosticBlock(_Model):
    """The local-anaesthetic block before a neurolysis, and its result for this patient."""

    required: bool = Field(True, description="the neurolytic is refused until the block has been done")
    agent: Literal[LOCAL_ANAESTHETICS] = "bupivacaine"  # type: ignore[valid-type]
    concentration_pct: float = Field(0.25, gt=0, le=5)
    min_ml: float = Field(1.0, gt=0, le=50)
    max_ml: float = Field(20.0, gt=0, le=50)
    positive: Optional[bool] = Field(None, description="this patient's result; absent: drawn from the parameter set")
    relief_pct: Optional[float] = Field(None, ge=0, le=100, description="pain relief during the block")
    duration_hours: Optional[float] = Field(None, ge=0, le=72, description="how long the block relieved the pain")
    side_effects: list[str] = Field(default_factory=list, description="what happened after the block, e.g. hypotension")
    why: str = Field(
        "A neurolysis destroys nerves for months: a local-anaesthetic block first shows that these nerves carry "
        "the pain (and what the patient will feel), so a patient whose pain does not respond is spared a "
        "destructive procedure that would not help.",
        min_length=10,
    )

    @model_validator(mode="after")
    def _volumes(self):
        if self.min_ml > self.max_ml:
            raise LocatedValueError(f"min_ml {self.min_ml} is above max_ml {self.max_ml}", "min_ml")
        return self


class Outcome(_Model):
    """Which course model the scenario uses."""

    parameters: Optional[str] = Field(None, pattern=r"^[a-z0-9_]+$", description="a set of the shared parameter file")
    set: Optional[CourseParameters] = Field(None, description="or a parameter set of the scenario's own")
    celiac_origin_mm: Optional[Vec3] = Field(None, description="the celiac artery's origin (RAS mm): the quadrants' centre")
    n_patients: int = Field(200, ge=10, le=5000, description="virtual patients in the band of the debrief")

    @model_validator(mode="after")
    def _one(self):
        if (self.parameters is None) == (self.set is None):
            raise LocatedValueError("give exactly one of parameters (a shared set) or set (the scenario's own)", "parameters")
        return self


def check_case(scenario) -> None:
    """Cross-checks of the case fields against the rest of the scenario and the shared file."""
    ids = {t.id for t in scenario.targets}
    v = scenario.vignette
    if v is not None:
        for i, t in enumerate(v.pain_targets):
            if t not in ids:
                raise LocatedValueError(f"pain target {t!r} is not one of the targets {sorted(ids)}", "vignette", "pain_targets", i)
    out = scenario.outcome
    if out is None:
        return
    from simulator.core import outcome_library  # late: reads the shared file

    if out.parameters is not None:
        try:
            lib = outcome_library.shared_library()
        except outcome_library.LibraryError as e:
            raise LocatedValueError(f"the shared course parameters do not load: {e.first_line()}", "outcome", "parameters") from None
        if out.parameters not in lib.sets:
            raise LocatedValueError(f"no parameter set {out.parameters!r} in {outcome_library.library_path().name}; "
                                    f"sets: {', '.join(sorted(lib.sets))}", "outcome", "parameters")
        cp = lib.sets[out.parameters]
    else:
        from simulator.core.outcome_params import unknown_source

        cp = out.set
        known = {r.id for r in scenario.references}
        try:
            known |= {s.id for s in outcome_library.shared_library().sources}
        except outcome_library.LibraryError:
            pass
        unknown_source(cp, known, ("outcome", "set"))
    where = ("outcome", "parameters") if out.parameters is not None else ("outcome", "set", "agents")
    for opt in scenario.steps.agent_options():
        if opt.agent not in cp.agents:
            raise LocatedValueError(f"the course parameters give no figures for {opt.agent}, an agent this scenario allows "
                                    f"(they have: {', '.join(sorted(cp.agents))})", *where)
    if cp.relief.measure == "celiac_quadrants" and out.celiac_origin_mm is None:
        raise LocatedValueError("this course model counts quadrants around the celiac artery: give celiac_origin_mm",
                                "outcome", "celiac_origin_mm")
    if out.set is None:
        return  # a shared set's target-bound effects apply to the scenarios that have those targets
    for i, e in enumerate(cp.effects):
        for j, t in enumerate(e.targets):
            if t not in ids:
                raise LocatedValueError(f"effect {e.id!r} names target {t!r}, not a target of this scenario",
                                        "outcome", "set", "effects", i, "targets", j)
