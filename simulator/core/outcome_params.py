"""The figures that drive the patient's course after a neurolysis, each with where it comes from.

An educational model, not a clinical predictor. Every number the outcome model uses is a
`Figure` that names its source (an id in the parameter file's `sources`, or in the scenario's
`references`) or says `assumption: true` - a value nobody published, chosen so the model runs, to be
reviewed by an instructor. The debrief and the report list the assumptions separately; nothing
marked as an assumption is presented as published.

Files: the shared library `scenarios/outcome/course_parameters.yaml` holds one `CourseParameters`
set per procedure (`sets: {celiac_plexus: ..., intercostal: ...}`) and the sources; a scenario
names a set (`outcome: {parameters: celiac_plexus}`) or carries its own (`outcome: {set: ...}`).
`load_library(path)` reads the file with the scenario loader's errors (file, line, field).

Kinds of figures:
- `Proportion`: k of n patients (the 95 % interval is Wilson's unless `low`/`high` give the
  published one), or a probability `p` (with an optional published range `low`-`high`).
- `Duration`: a median with an optional range, in hours, days, weeks or months.
- `Amount`: any other number (an NRS value, a factor, millilitres) with its unit.
"""
from __future__ import annotations

import math
from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from simulator.core.model_base import LocatedValueError, _Model

NAME = r"^[a-z0-9_]+$"
AGENTS = ("alcohol", "phenol", "glycerol")
LOCAL_ANAESTHETICS = ("bupivacaine", "lidocaine", "ropivacaine")
DAYS_PER = {"hours": 1.0 / 24.0, "days": 1.0, "weeks": 7.0, "months": 30.44}


class Source(_Model):
    id: str = Field(pattern=NAME)
    citation: str = Field(min_length=3)
    url: Optional[str] = None


class Figure(_Model):
    """Where a number comes from: a source id, or `assumption: true` (not published)."""

    source: Optional[str] = Field(None, pattern=NAME, description="id of a source (parameter file or scenario references)")
    assumption: bool = Field(False, description="not a published figure: chosen for the model, to be reviewed")
    note: Optional[str] = Field(None, description="what the figure is, as published (or why it was assumed)")

    @model_validator(mode="after")
    def _provenance(self):
        if self.source is None and not self.assumption:
            raise LocatedValueError("name its source (an id from `sources`) or mark it `assumption: true`", "source")
        return self


class Proportion(Figure):
    """k of n, or a probability p; `low`/`high`: the published interval or range."""

    k: Optional[int] = Field(None, ge=0)
    n: Optional[int] = Field(None, gt=0)
    p: Optional[float] = Field(None, ge=0, le=1, description="a probability (0..1) when no count is given")
    low: Optional[float] = Field(None, ge=0, le=1)
    high: Optional[float] = Field(None, ge=0, le=1)

    @model_validator(mode="after")
    def _value(self):
        if (self.k is None) != (self.n is None):
            raise LocatedValueError("give both k and n (k of n patients)", "n" if self.n is None else "k")
        if self.k is not None and self.k > self.n:
            raise LocatedValueError(f"k = {self.k} is more than n = {self.n}", "k")
        if self.k is None and self.p is None:
            raise LocatedValueError("give p (0..1) or k and n", "p")
        if self.k is not None and self.p is not None and abs(self.p - self.k / self.n) > 0.005:
            raise LocatedValueError(f"p = {self.p} differs from k/n = {self.k}/{self.n}", "p")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise LocatedValueError(f"low {self.low} is above high {self.high}", "low")
        v = self.published
        if self.low is not None and v < self.low - 1e-9:
            raise LocatedValueError(f"the value {v:.3g} is below low {self.low}", "low")
        if self.high is not None and v > self.high + 1e-9:
            raise LocatedValueError(f"the value {v:.3g} is above high {self.high}", "high")
        return self

    @property
    def value(self) -> float:
        """The probability the model uses: p, or for k of n Laplace's rule of succession
        (k + 1) / (n + 2) - 18/18 becomes 0.95, 0/75 0.013: a small study's "all" or "none" is
        not taken as certain; within the study's confidence interval for the counts used here."""
        return float((self.k + 1) / (self.n + 2)) if self.k is not None else float(self.p)

    @property
    def published(self) -> float:
        """The figure as published: k/n or p."""
        return float(self.k / self.n) if self.k is not None else float(self.p)

    def interval(self) -> Optional[tuple[float, float]]:
        """The published interval, else Wilson's 95 % interval of k/n, else None."""
        if self.low is not None and self.high is not None:
            return float(self.low), float(self.high)
        if self.k is not None:
            return wilson(self.k, self.n)
        return None

    def text(self) -> str:
        if self.k is not None:
            return f"{self.k}/{self.n} ({100 * self.published:.0f} %)"
        rng = f", range {100 * self.low:.0f}-{100 * self.high:.0f} %" if self.low is not None and self.high is not None else ""
        return f"{100 * self.published:.3g} %{rng}"


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of k successes in n (95 % by default)."""
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


class Duration(Figure):
    unit: Literal["hours", "days", "weeks", "months"]
    median: float = Field(ge=0, le=10_000)
    low: Optional[float] = Field(None, ge=0, le=10_000)
    high: Optional[float] = Field(None, ge=0, le=10_000)

    @model_validator(mode="after")
    def _range(self):
        if self.low is not None and self.low > self.median:
            raise LocatedValueError(f"low {self.low} is above the median {self.median}", "low")
        if self.high is not None and self.high < self.median:
            raise LocatedValueError(f"high {self.high} is below the median {self.median}", "high")
        return self

    @property
    def days(self) -> float:
        return float(self.median) * DAYS_PER[self.unit]

    def range_days(self) -> tuple[float, float]:
        lo = self.median if self.low is None else self.low
        hi = self.median if self.high is None else self.high
        return float(lo) * DAYS_PER[self.unit], float(hi) * DAYS_PER[self.unit]

    def text(self) -> str:
        rng = f" ({self.low:g}-{self.high:g})" if self.low is not None and self.high is not None else ""
        return f"{self.median:g}{rng} {self.unit}"


class Amount(Figure):
    value: float = Field(ge=-1000, le=1000)
    unit: str = Field("", max_length=20)


class Fraction(Figure):
    """A share 0..1 (e.g. the relative fall in the pain score) with its spread between patients."""

    value: float = Field(ge=0, le=1)
    sd: float = Field(0.0, ge=0, le=0.5, description="spread between patients (standard deviation)")


class QuadrantRelief(_Model):
    quadrants: list[int] = Field(min_length=1, description="numbers of quadrants with neurolytic (0-4) this row covers")
    relief: Proportion

    @field_validator("quadrants")
    @classmethod
    def _q(cls, v):
        for i, q in enumerate(v):
            if not 0 <= q <= 4:
                raise LocatedValueError(f"{q} quadrants: expected 0 to 4", i)
        return v


class CoveragePoint(_Model):
    coverage: float = Field(ge=0, le=1, description="share of the painful targets covered by the neurolytic (0..1)")
    relief: Proportion


class CeliacArea(_Model):
    """How quadrants are counted (De Cicco's frontal-plane quadrants around the celiac artery):
    neurolytic in tissue within `radius_mm` of the celiac origin and no further back than
    `posterior_mm` behind it, split into upper/lower and right/left; a quadrant counts when it holds
    at least `min_ml`."""

    radius_mm: float = Field(35.0, gt=5, le=100)
    posterior_mm: float = Field(15.0, ge=0, le=60)
    min_ml: Amount


class AgentEffect(_Model):
    """An agent's effect on relief: below `min_effective_pct` the chance of relief is multiplied
    by `below_min_factor`."""

    min_effective_pct: Amount
    below_min_factor: Proportion
    onset: Duration


class Relief(_Model):
    measure: Literal["celiac_quadrants", "target_coverage"]
    by_quadrants: list[QuadrantRelief] = Field(default_factory=list)
    by_coverage: list[CoveragePoint] = Field(default_factory=list)
    covered_at: float = Field(0.5, gt=0, le=1, description="a target counts as covered from this share of its samples")
    overall: Optional[Proportion] = Field(None, description="published overall success (shown beside the model)")
    nrs_reduction: Fraction = Field(description="relative fall of the pain score in patients with relief")
    partial_reduction: Fraction = Field(description="relative fall in patients without lasting relief (for days)")
    partial_days: Duration
    duration: Optional[Duration] = Field(None, description="median time relief lasts before the nerves regenerate")
    duration_sd_log: Amount = Field(description="spread of the duration between patients (sd of its logarithm)")
    still_relieved: Optional[Proportion] = Field(
        None, description="or: the published share of patients with relief still relieved at `at_weeks` "
        "(the median duration follows from it and duration_sd_log)")
    at_weeks: Optional[float] = Field(None, gt=0, le=520)
    regrowth: Duration = Field(description="time over which pain returns once regeneration begins")
    negative_block_factor: Proportion = Field(description="relief chance multiplied by this when the prognostic block would be negative")

    @model_validator(mode="after")
    def _tables(self):
        if self.measure == "celiac_quadrants":
            if not self.by_quadrants:
                raise LocatedValueError("measure celiac_quadrants needs by_quadrants", "by_quadrants")
            seen: dict[int, int] = {}
            for i, row in enumerate(self.by_quadrants):
                for q in row.quadrants:
                    if q in seen:
                        raise LocatedValueError(f"{q} quadrants already in by_quadrants[{seen[q]}]", "by_quadrants", i, "quadrants")
                    seen[q] = i
            missing = sorted(set(range(5)) - set(seen))
            if missing:
                raise LocatedValueError(f"by_quadrants gives no relief for {missing} quadrants", "by_quadrants")
        elif len(self.by_coverage) < 2:
            raise LocatedValueError("measure target_coverage needs at least two by_coverage points", "by_coverage")
        for i in range(1, len(self.by_coverage)):
            if self.by_coverage[i].coverage <= self.by_coverage[i - 1].coverage:
                raise LocatedValueError("by_coverage points must be in increasing coverage", "by_coverage", i, "coverage")
        if (self.still_relieved is None) != (self.at_weeks is None):
            raise LocatedValueError("give still_relieved and at_weeks together", "at_weeks")
        if (self.duration is None) == (self.still_relieved is None):
            raise LocatedValueError("give exactly one of duration (a median) or still_relieved with at_weeks", "duration")
        if self.still_relieved is not None and not 0 < self.still_relieved.value < 1:
            raise LocatedValueError("still_relieved must be between 0 and 1 (exclusive) to give a duration", "still_relieved")
        if not 0 < self.duration_sd_log.value <= 3:
            raise LocatedValueError(f"duration_sd_log {self.duration_sd_log.value} is not in (0, 3]", "duration_sd_log", "value")
        return self

    def median_duration_days(self) -> float:
        """The median relief duration: given, or from the share still relieved at `at_weeks`
        (log-normal durations: P(D > t) = p  ->  median = t * exp(sd * z_p))."""
        if self.duration is not None:
            return self.duration.days
        from statistics import NormalDist

        z = NormalDist().inv_cdf(self.still_relieved.value)
        return float(self.at_weeks) * 7.0 * math.exp(self.duration_sd_log.value * z)


Trigger = Literal[
    "neurolytic_given",  # any neurolytic in tissue (side effects of the block itself)
    "per_nerve",  # once per target covered by neurolytic (e.g. pneumothorax per intercostal nerve)
    "pleural_breach",
    "vessel_puncture",
    "arterial_puncture",
    "organ_puncture",
    "kidney_puncture",
    "dural_puncture",
    "intravascular_neurolytic",
    "intra_arterial_neurolytic",
    "intrathecal_neurolytic",
    "somatic_alcohol",  # alcohol on a somatic (mixed) nerve
    "somatic_phenol",
    "no_asepsis",
    "asepsis",  # the baseline infection risk with skin preparation and drape
]

Condition = Literal["anticoagulated", "coagulopathy", "infection_at_site", "aortic_aneurysm", "no_asepsis", "repeat"]


class Modifier(_Model):
    when: Condition
    factor: Amount


class Effect(_Model):
    """A side effect (expected, mostly transient) or a complication, with its likelihood given
    its trigger in the attempt."""

    id: str = Field(pattern=NAME)
    name: str = Field(min_length=2)
    kind: Literal["side_effect", "complication"]
    severity: Literal["mild", "moderate", "severe"] = "mild"
    when: Trigger = "neurolytic_given"
    agents: list[Literal["alcohol", "phenol", "glycerol"]] = Field(default_factory=list, description="only with these agents")
    targets: list[str] = Field(default_factory=list, description="only when these targets are covered (ids)")
    p: Proportion
    onset: Duration
    lasts: Optional[Duration] = Field(None, description="how long it lasts; absent: permanent")
    modifiers: list[Modifier] = Field(default_factory=list)
    pain_nrs: float = Field(0.0, ge=-10, le=10, description="added to the pain score while it lasts")
    explain: Optional[str] = Field(None, description="one line for the debrief")


class RepeatPolicy(_Model):
    offer_at_nrs: Amount = Field(description="a repeat is offered when the pain is back to this score")
    min_interval: Duration
    relief_factor: Proportion = Field(description="chance of relief of a repeat relative to the first")
    duration_factor: Optional[Proportion] = Field(None, description="how long relief lasts after a repeat, relative to the first")
    fibrosis_spread_factor: Proportion = Field(description="volume share reaching tissue neurolysed before")


class PrognosticParams(_Model):
    positive: Proportion = Field(description="share of patients with a positive local-anaesthetic block")
    relief_hours: Duration
    side_effects: list[Effect] = Field(default_factory=list)


class CourseParameters(_Model):
    """The course model of one procedure."""

    title: str = Field(min_length=3)
    horizon_weeks: float = Field(26.0, gt=1, le=260)
    baseline_nrs_sd: Amount
    relief: Relief
    celiac_area: Optional[CeliacArea] = None
    agents: dict[Literal["alcohol", "phenol", "glycerol"], AgentEffect] = Field(min_length=1)
    effects: list[Effect] = Field(default_factory=list)
    prognostic: PrognosticParams
    repeat: RepeatPolicy

    @model_validator(mode="after")
    def _checks(self):
        if self.relief.measure == "celiac_quadrants" and self.celiac_area is None:
            raise LocatedValueError("measure celiac_quadrants needs celiac_area", "celiac_area")
        seen: dict[str, int] = {}
        for i, e in enumerate(self.effects):
            if e.id in seen:
                raise LocatedValueError(f"effect id {e.id!r} is already used by effects[{seen[e.id]}]", "effects", i, "id")
            seen[e.id] = i
        return self

    def figures(self) -> list[tuple[str, Figure]]:
        """Every figure of the set with its field path (for the list of sources and assumptions)."""
        out: list[tuple[str, Figure]] = []

        def walk(obj, path: str):
            if isinstance(obj, Figure):
                out.append((path, obj))
            if isinstance(obj, _Model):
                for name in type(obj).model_fields:
                    walk(getattr(obj, name), f"{path}.{name}" if path else name)
            elif isinstance(obj, list):
                for i, x in enumerate(obj):
                    walk(x, f"{path}[{i}]")
            elif isinstance(obj, dict):
                for k, x in obj.items():
                    walk(x, f"{path}.{k}")

        walk(self, "")
        return out


class CourseLibrary(_Model):
    """The shared parameter file."""

    kind: Literal["course_parameters"] = Field(description="marks the file as course parameters (not a scenario)")
    version: Literal[1] = 1
    sources: list[Source] = Field(min_length=1)
    sets: dict[str, CourseParameters] = Field(min_length=1)

    @model_validator(mode="after")
    def _sources(self):
        ids: dict[str, int] = {}
        for i, s in enumerate(self.sources):
            if s.id in ids:
                raise LocatedValueError(f"source id {s.id!r} is already used by sources[{ids[s.id]}]", "sources", i, "id")
            ids[s.id] = i
        for name, cp in self.sets.items():
            unknown_source(cp, set(ids), ("sets", name))
        return self


def unknown_source(cp: CourseParameters, known: set[str], loc: tuple) -> None:
    """Raise a located error for the first figure naming a source not in `known`."""
    for path, fig in cp.figures():
        if fig.source is not None and fig.source not in known:
            parts: list = []
            for piece in path.replace("]", "").split("."):
                name, *idx = piece.split("[")
                parts.append(name)
                parts.extend(int(i) for i in idx)
            raise LocatedValueError(f"source {fig.source!r} is not one of the sources {sorted(known)}", *loc, *parts, "source")
