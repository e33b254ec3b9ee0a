"""The patient's course after the attempt: an educational model driven by published figures.

    course = compute_course(facts, params, case)     # pure: the same inputs give the same course
    course = course_for_attempt(recording, scenario)  # the facade: facts, parameters, case from files

What drives it (every number from `CourseParameters`, each a cited figure or a marked assumption):
- the chance of lasting relief from the neurolytic's coverage: celiac quadrants reached (De Cicco)
  or the share of the painful targets covered (a piecewise-linear table), times the agent's factor
  when its concentration is below the effective one, times `negative_block_factor` when this
  patient's prognostic block would have been negative, times `relief_factor` for a repeat;
- per virtual patient: the baseline pain (vignette score and its spread), relief or not, the onset
  (by agent), the relative fall of the pain score, how long relief lasts (log-normal around the
  median) and how fast pain returns as the nerves regenerate; patients without lasting relief get a
  short partial relief;
- side effects and complications: each effect's probability given its trigger in the attempt
  (pleural breach, arterial puncture, intravascular or intrathecal neurolytic, no asepsis, alcohol
  on a somatic nerve, per nerve treated, ...) and the vignette's conditions (anticoagulation,
  infection at the site, aneurysm), each patient drawing whether it happens, when and for how long;
  effects with `pain_nrs` (neuritis, post-sympathectomy neuralgia) add to the pain while they last;
- the time a repeat would be offered: the pain back at `offer_at_nrs`, no earlier than the minimum
  interval.
Output (`Course`): the daily pain score of N virtual patients summarised as median and bands
(10-90 %, 25-75 %), the index patient (the attempt's own patient: patient 0), the day relief
starts and ends, the repeat offer, the effects with their likelihood, and the list of figures
used (published vs assumed). Deterministic for a seed (the attempt's `attempt_seed`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from simulator.core.case_steps import case_seed, patient_seed
from simulator.core.outcome_facts import QUADRANTS, AttemptFacts, count_quadrants, facts_from_recording, target_coverage
from simulator.core.outcome_params import CourseParameters, Duration, Effect
from simulator.core.repeat import pain_now, repeat_sites

EDUCATIONAL_LABEL = "Educational model - not a prediction for a real patient"
DEFAULT_BASELINE_NRS = 7.0


@dataclass
class CaseInfo:
    """What the course needs from the scenario (kept plain so the model stays a pure function)."""

    baseline_nrs: float = DEFAULT_BASELINE_NRS
    pain_targets: list[str] = field(default_factory=list)
    somatic_targets: set[str] = field(default_factory=set)
    conditions: set[str] = field(default_factory=set)  # anticoagulated, coagulopathy, infection_at_site, aortic_aneurysm
    block_truth: bool | None = None  # this patient's prognostic block (None: drawn from the parameters)
    block_truth_seed: int = 0
    n_patients: int = 200
    repeat_of: list[dict] | None = None  # a follow-up: the earlier attempt's neurolytic sites ([]: not known)
    vignette: bool = False


@dataclass
class EffectOutcome:
    id: str
    name: str
    kind: str  # side_effect | complication
    severity: str
    probability: float  # for this attempt (model)
    share: float  # of the N virtual patients who had it
    index_day: float | None  # when the index patient had it (None: not this patient)
    index_days: float | None  # how long (None: permanent)
    trigger: str
    figure: str  # "14/1020 (1.4 %) - shanti2001" or "5 % - assumption"
    explain: str = ""

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Course:
    available: bool
    reason: str = ""
    label: str = EDUCATIONAL_LABEL
    title: str = ""
    seed: int = 0
    n_patients: int = 0
    days: np.ndarray = field(default_factory=lambda: np.zeros(0))
    median: np.ndarray = field(default_factory=lambda: np.zeros(0))
    p10: np.ndarray = field(default_factory=lambda: np.zeros(0))
    p90: np.ndarray = field(default_factory=lambda: np.zeros(0))
    p25: np.ndarray = field(default_factory=lambda: np.zeros(0))
    p75: np.ndarray = field(default_factory=lambda: np.zeros(0))
    index: np.ndarray = field(default_factory=lambda: np.zeros(0))
    baseline_nrs: float = 0.0
    relief_probability: float = 0.0
    relief_share: float = 0.0
    relief_basis: str = ""
    index_relief: bool = False
    index_onset_day: float | None = None
    index_return_day: float | None = None  # relief starts to wear off (regeneration)
    index_repeat_day: float | None = None
    repeat_day_median: float | None = None
    return_day_median: float | None = None
    effects: list[EffectOutcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: list[dict] = field(default_factory=list)  # path, text, source | None, assumption
    coverage: dict = field(default_factory=dict)

    @property
    def weeks(self) -> np.ndarray:
        return self.days / 7.0

    @property
    def assumptions(self) -> list[dict]:
        return [f for f in self.figures if f["assumption"]]

    def markers(self) -> list[dict]:
        """What happened to the index patient on the timeline: day, label, kind (side_effect,
        complication, relief, return, repeat), severity; in time order."""
        out = []
        if self.index_onset_day is not None:
            out.append({"day": self.index_onset_day, "label": "relief begins", "kind": "relief", "severity": ""})
        for e in self.effects:
            if e.index_day is not None:
                out.append({"day": e.index_day, "label": e.name, "kind": e.kind, "severity": e.severity})
        if self.index_return_day is not None:
            out.append({"day": self.index_return_day, "label": "pain returns (nerves regenerating)", "kind": "return",
                        "severity": ""})
        if self.index_repeat_day is not None:
            out.append({"day": self.index_repeat_day, "label": "repeat procedure offered", "kind": "repeat",
                        "severity": ""})
        return sorted(out, key=lambda m: m["day"])

    def pain_at(self, day: float) -> float:
        """The index patient's pain score on a day (interpolated)."""
        return float(np.interp(day, self.days, self.index)) if len(self.days) else float("nan")

    def summary_lines(self) -> list[str]:
        """The course in words, for the debrief and the report."""
        if not self.available:
            return [self.reason]
        out = [f"Chance of lasting relief after this attempt: {100 * self.relief_probability:.0f} % "
               f"({100 * self.relief_share:.0f} % of {self.n_patients} virtual patients)."]
        out += list(self.notes)
        if self.index_relief:
            onset = "at once" if (self.index_onset_day or 0) < 0.5 else f"after {self.index_onset_day:.0f} day(s)"
            out.append(f"This patient: relief {onset}, pain {self.baseline_nrs:g} -> {self.index.min():.1f}/10.")
            if self.index_return_day is not None:
                out.append(f"Pain returns from week {self.index_return_day / 7:.0f} as the nerves regenerate.")
            else:
                out.append(f"Relief lasts beyond the {self.days[-1] / 7:.0f} weeks shown.")
        else:
            out.append(f"This patient: no lasting relief (pain {self.baseline_nrs:g}/10, lowest {self.index.min():.1f}).")
        if self.index_repeat_day is not None:
            out.append(f"A repeat procedure would be offered in week {self.index_repeat_day / 7:.0f}.")
        happened = [f"{e.name} (day {e.index_day:.0f})" for e in self.effects if e.index_day is not None]
        if happened:
            out.append("Happened to this patient: " + ", ".join(happened) + ".")
        n_a = len(self.assumptions)
        out.append(f"{len(self.figures) - n_a} published figures and {n_a} assumptions (to be reviewed by an instructor) "
                   "drive this course.")
        return out

    def to_json(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if not isinstance(v, np.ndarray)}
        out["effects"] = [e.to_json() for e in self.effects]
        for k, v in self.__dict__.items():
            if isinstance(v, np.ndarray):
                out[k] = [round(float(x), 3) for x in v]
        return out


def unavailable(reason: str) -> Course:
    return Course(available=False, reason=reason)


# --------------------------------------------------------------------------------------------
# pieces
# --------------------------------------------------------------------------------------------

def _interp_relief(points, c: float) -> float:
    xs = [p.coverage for p in points]
    ys = [p.relief.value for p in points]
    return float(np.interp(c, xs, ys))


def _triangular(rng, d: Duration, n: int) -> np.ndarray:
    lo, hi = d.range_days()
    m = d.days
    if hi - lo < 1e-9:
        rng.random(n)  # keep the stream's position independent of the figure's shape
        return np.full(n, m)
    return rng.triangular(lo, min(max(m, lo), hi), hi, n)


def relief_chance(facts: AttemptFacts, params: CourseParameters, case: CaseInfo) -> tuple[float, str, dict]:
    """P(lasting relief) for this attempt, the reason in words, and the coverage it used."""
    r = params.relief
    doses, scar = scarred_doses(facts.tissue_doses(), params, case)
    if not doses:
        return 0.0, "no neurolytic reached tissue", {}
    if r.measure == "celiac_quadrants":
        n_q = count_quadrants(doses, params.celiac_area.min_ml.value)
        row = next(row for row in r.by_quadrants if n_q in row.quadrants)
        p = row.relief.value
        basis = f"{n_q} of 4 quadrants around the celiac artery reached: lasting relief {row.relief.text()}"
        cov = {"quadrants": n_q}
    else:
        targets = case.pain_targets or sorted({t for d in doses for t in d.coverage})
        tc = target_coverage(doses, targets)
        covered = [t for t in targets if tc.get(t, 0.0) >= r.covered_at]
        c = len(covered) / len(targets) if targets else 0.0
        p = _interp_relief(r.by_coverage, c)
        basis = (f"{len(covered)} of {len(targets)} painful target(s) covered by the neurolytic: "
                 f"lasting relief {100 * p:.0f} %")
        cov = {"targets": tc, "covered": covered, "share": c}
    # agents: a volume-weighted factor over the doses in tissue
    factors, vols = [], []
    for d in doses:
        ae = params.agents.get(d.agent)
        if ae is None:
            factors.append(0.0)
            basis += f"; {d.agent} has no course parameters (counted as no neurolysis)"
        else:
            weak = d.concentration_pct < ae.min_effective_pct.value
            factors.append(ae.below_min_factor.value if weak else 1.0)
            if weak:
                basis += (f"; {d.agent} {d.concentration_pct:g} % is below the effective {ae.min_effective_pct.value:g} %"
                          f" (x{ae.below_min_factor.value:g})")
        vols.append(max(d.volume_ml, 1e-6))
    p *= float(np.average(factors, weights=vols))
    truth = block_truth(params, case)
    if not truth:
        p *= r.negative_block_factor.value
        basis += f"; this patient's prognostic block would be negative (x{r.negative_block_factor.value:g})"
    if case.repeat_of is not None:
        p *= params.repeat.relief_factor.value
        basis += f"; a repeat procedure (x{params.repeat.relief_factor.value:g})" + scar
    return float(min(max(p, 0.0), 1.0)), basis, cov


def scarred_doses(doses, params: CourseParameters, case: CaseInfo) -> tuple[list, str]:
    """A follow-up: the share of agent that reaches tissue neurolysed before is cut by the repeat
    policy's `fibrosis_spread_factor` (scarring) - the coverage of the targets the earlier attempt
    covered, the millilitres in the celiac quadrants it reached. Returns the doses and a note."""
    if not case.repeat_of or not doses:
        return doses, ""
    f = params.repeat.fibrosis_spread_factor.value
    targets = {t for s in case.repeat_of for t in (s.get("targets") or [])}
    min_ml = params.celiac_area.min_ml.value if params.celiac_area is not None else 0.5
    quadrants = {q for q in QUADRANTS
                 if sum(float((s.get("quadrant_ml") or {}).get(q, 0.0)) for s in case.repeat_of) >= min_ml}
    if not targets and not quadrants:
        return doses, ""
    out = [replace(d, coverage={t: c * f if t in targets else c for t, c in d.coverage.items()},
                   quadrant_ml={q: ml * f if q in quadrants else ml for q, ml in d.quadrant_ml.items()}) for d in doses]
    return out, f" (scarring from the earlier neurolysis: x{f:g} of the agent reaches the tissue treated before)"


def block_truth(params: CourseParameters, case: CaseInfo) -> bool:
    """Whether this patient's prognostic block is positive: the vignette's, else a draw fixed by
    the case seed from the published share of positive blocks."""
    if case.block_truth is not None:
        return bool(case.block_truth)
    u = np.random.default_rng(case.block_truth_seed).random()
    return bool(u < params.prognostic.positive.value)


def _trigger_count(e: Effect, facts: AttemptFacts, params: CourseParameters, case: CaseInfo) -> int:
    doses = facts.neurolytic
    if e.agents:
        doses = [d for d in doses if d.agent in e.agents]
    tissue = [d for d in doses if d.mode == "tissue"]
    covered = set()
    for d in tissue:
        covered |= {t for t, c in d.coverage.items() if c >= params.relief.covered_at}
    if e.targets and not covered & set(e.targets):
        return 0
    w = e.when
    if w == "neurolytic_given":
        return int(bool(tissue))
    if w == "per_nerve":
        return len(covered)
    if w in ("somatic_alcohol", "somatic_phenol"):
        agent = "alcohol" if w == "somatic_alcohol" else "phenol"
        return int(any(d.agent == agent and any(d.coverage.get(t, 0) >= params.relief.covered_at for t in case.somatic_targets)
                       for d in tissue))
    if w == "intravascular_neurolytic":
        return int(any(d.mode == "intravascular" for d in doses))
    if w == "intra_arterial_neurolytic":
        return int(any(d.arterial for d in doses))
    if w == "intrathecal_neurolytic":
        return int(any(d.mode == "intrathecal" for d in doses))
    if e.agents and not doses:
        return 0
    punctured = facts.skin_punctures > 0
    return int({
        "pleural_breach": facts.pleural_breaches > 0,
        "vessel_puncture": facts.vessel_punctures > 0,
        "arterial_puncture": facts.arterial_punctures > 0,
        "organ_puncture": facts.organ_punctures > 0,
        "kidney_puncture": facts.kidney_punctures > 0,
        "dural_puncture": facts.dural_punctures > 0,
        "no_asepsis": punctured and not facts.asepsis,
        "asepsis": punctured and facts.asepsis,
    }[w])


def effect_probability(e: Effect, facts: AttemptFacts, params: CourseParameters, case: CaseInfo) -> float:
    n = _trigger_count(e, facts, params, case)
    if n == 0:
        return 0.0
    p = 1.0 - (1.0 - e.p.value) ** n
    conditions = set(case.conditions)
    if facts.skin_punctures and not facts.asepsis:
        conditions.add("no_asepsis")
    if case.repeat_of is not None:
        conditions.add("repeat")
    for m in e.modifiers:
        if m.when in conditions:
            p *= m.factor.value
    return float(min(max(p, 0.0), 1.0))


def _figure_text(fig) -> str:
    text = fig.text() if hasattr(fig, "text") else f"{getattr(fig, 'value', '')}"
    prov = fig.source if fig.source else ""
    if fig.assumption:
        prov = "assumption" + (f", from {fig.source}" if fig.source else "")
    return f"{text} - {prov}"


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------

def compute_course(facts: AttemptFacts, params: CourseParameters, case: CaseInfo, seed: int | None = None) -> Course:
    """The course of N virtual patients after this attempt (patient 0 is the attempt's own)."""
    seed = int(facts.seed if seed is None else seed) & 0xFFFFFFFFFFFFFFFF
    rng = np.random.default_rng(seed)
    n = int(case.n_patients)
    r = params.relief
    days = np.arange(0.0, round(params.horizon_weeks * 7.0) + 1.0)
    notes: list[str] = []
    if not case.vignette:
        notes.append(f"No vignette: baseline pain {case.baseline_nrs:g}/10 assumed.")
    if case.repeat_of is not None:
        rp = params.repeat
        notes.append(f"A repeat procedure: relief x{rp.relief_factor.value:g} as likely"
                     + (f" and x{rp.duration_factor.value:g} as long" if rp.duration_factor is not None else "")
                     + " as after the first.")
    deferred = facts.time_out is not None and facts.time_out.get("decision") == "defer" and not facts.neurolytic
    p_relief, basis, cov = relief_chance(facts, params, case)
    if deferred:
        notes.append("The procedure was deferred at the time-out: the pain is untreated.")
    elif not facts.neurolytic:
        notes.append("No neurolytic was injected: the pain is unchanged.")
    else:
        notes.append(basis)
    # --- draws (a fixed order, whatever the attempt: the same seed gives the same patients)
    b = np.clip(case.baseline_nrs + params.baseline_nrs_sd.value * rng.standard_normal(n), 0.0, 10.0)
    b[0] = case.baseline_nrs  # the attempt's own patient has the vignette's score
    u_relief = rng.random(n)
    onset_by_dose = [params.agents[d.agent].onset for d in facts.tissue_doses() if d.agent in params.agents]
    onset_fig = min(onset_by_dose, key=lambda d: d.days) if onset_by_dose else None
    onset = _triangular(rng, onset_fig, n) if onset_fig is not None else _zeros_draw(rng, n)
    f_full = np.clip(r.nrs_reduction.value + r.nrs_reduction.sd * rng.standard_normal(n), 0.05, 1.0)
    f_part = np.clip(r.partial_reduction.value + r.partial_reduction.sd * rng.standard_normal(n), 0.0, 1.0)
    part_days = _triangular(rng, r.partial_days, n)
    median_d = r.median_duration_days()
    dur = median_d * np.exp(r.duration_sd_log.value * rng.standard_normal(n))
    if case.repeat_of is not None and params.repeat.duration_factor is not None:
        dur = dur * params.repeat.duration_factor.value  # relief is shorter after a repeat
    regrow = np.maximum(_triangular(rng, r.regrowth, n), 1.0)
    responders = u_relief < p_relief
    treated = bool(facts.tissue_doses())
    # --- pain of each patient over days: b * (1 - f * g(t))
    t = days[None, :]
    ramp_on = np.where(onset[:, None] > 0, np.clip(t / np.maximum(onset[:, None], 1e-9), 0.0, 1.0), 1.0)
    end_relief = onset + dur
    fade = np.clip(1.0 - (t - end_relief[:, None]) / regrow[:, None], 0.0, 1.0)
    g_full = ramp_on * fade
    g_part = np.clip(1.0 - (t - part_days[:, None]) / 3.0, 0.0, 1.0)
    if treated:
        g = np.where(responders[:, None], f_full[:, None] * g_full, f_part[:, None] * g_part)
    else:
        g = np.zeros((n, len(days)))
    pain = b[:, None] * (1.0 - g)
    # --- effects
    effects: list[EffectOutcome] = []
    for e in params.effects:
        p = effect_probability(e, facts, params, case)
        u = rng.random(n)
        on = _triangular(rng, e.onset, n)
        lasts = _triangular(rng, e.lasts, n) if e.lasts is not None else np.full(n, np.inf)
        has = u < p
        if e.pain_nrs and has.any():
            active = has[:, None] & (t >= on[:, None]) & (t < (on + lasts)[:, None])
            pain = pain + e.pain_nrs * active
        effects.append(EffectOutcome(
            id=e.id, name=e.name, kind=e.kind, severity=e.severity, probability=p, share=float(has.mean()),
            index_day=float(on[0]) if has[0] else None,
            index_days=(None if not np.isfinite(lasts[0]) else float(lasts[0])) if has[0] else None,
            trigger=e.when, figure=_figure_text(e.p), explain=e.explain or ""))
    pain = np.clip(pain, 0.0, 10.0)
    # --- return of pain and the repeat offer
    repeat_day = _repeat_days(pain, days, b, responders & treated, end_relief, params) if treated else np.full(n, np.nan)
    ret_day = np.where(responders & treated, end_relief, np.nan)
    ret_day = np.where(ret_day <= days[-1], ret_day, np.nan)
    q = np.percentile(pain, [10, 25, 50, 75, 90], axis=0)
    figures = [{"path": path, "text": _figure_text(fig), "source": fig.source, "assumption": bool(fig.assumption),
                "note": fig.note or ""} for path, fig in params.figures()]
    if not case.vignette:
        figures.append({"path": "baseline_nrs", "text": f"{DEFAULT_BASELINE_NRS:g} - assumption", "source": None,
                        "assumption": True, "note": "no vignette pain score"})
    return Course(
        available=True, title=params.title, seed=seed, n_patients=n, days=days,
        median=q[2], p10=q[0], p90=q[4], p25=q[1], p75=q[3], index=pain[0],
        baseline_nrs=float(case.baseline_nrs), relief_probability=p_relief if treated else 0.0,
        relief_share=float(responders.mean()) if treated else 0.0, relief_basis=basis,
        index_relief=bool(responders[0] and treated),
        index_onset_day=float(onset[0]) if treated and responders[0] else None,
        index_return_day=None if np.isnan(ret_day[0]) else float(ret_day[0]),
        index_repeat_day=None if np.isnan(repeat_day[0]) else float(repeat_day[0]),
        repeat_day_median=_nanmedian(repeat_day), return_day_median=_nanmedian(ret_day),
        effects=effects, notes=notes, figures=figures, coverage=cov,
    )


def _repeat_days(pain, days, b, relieved, end_relief, params) -> np.ndarray:
    """When a repeat would be offered: with relief, once it wears off (the pain back at the offer
    score, or half the relief lost) and not before the minimum interval; without lasting relief, at
    the follow-up after the minimum interval if the pain is still at the offer score."""
    thr = params.repeat.offer_at_nrs.value
    min_iv = params.repeat.min_interval.days
    t = days[None, :]
    best = pain.min(axis=1)
    back = (pain >= thr) | (pain >= best[:, None] + 0.5 * (b - best)[:, None])
    worn = relieved[:, None] & (t >= np.maximum(min_iv, end_relief)[:, None]) & back
    failed = ~relieved[:, None] & (t >= min_iv) & (pain >= thr)
    ok = worn | failed
    return np.where(ok.any(axis=1), days[np.argmax(ok, axis=1)], np.nan)


def _zeros_draw(rng, n: int) -> np.ndarray:
    rng.random(n)
    return np.zeros(n)


def _nanmedian(a: np.ndarray) -> float | None:
    a = a[np.isfinite(a)]
    return float(np.median(a)) if len(a) else None


# --------------------------------------------------------------------------------------------
# the facade: from a recording and its scenario
# --------------------------------------------------------------------------------------------

def case_info(scenario, recording=None, targets=None, repeat_of: list[dict] | None = None) -> CaseInfo:
    """The CaseInfo of a scenario (its vignette) for an attempt."""
    from simulator.core.metrics import TargetGeometry

    v = getattr(scenario, "vignette", None)
    info = CaseInfo()
    out = getattr(scenario, "outcome", None)
    if out is not None:
        info.n_patients = out.n_patients
    required = [t.id for t in scenario.targets if t.required]
    info.pain_targets = list(v.pain_targets) if v is not None and v.pain_targets else required
    somatic = set()
    for t in targets or []:
        if t.is_nerve:
            somatic.add(t.id)
    if not targets:
        for t in scenario.targets:
            g = TargetGeometry(id=t.id, name=t.name, kind=t.kind, points_mm=np.zeros((2, 3)), somatic=t.somatic)
            if g.is_nerve:
                somatic.add(t.id)
    info.somatic_targets = somatic
    if v is not None:
        info.vignette = True
        info.baseline_nrs = float(v.pain_nrs)
        ac = v.anticoagulation
        if ac.drug.strip().lower() not in ("none", "no", "nil", "-"):
            info.conditions.add("anticoagulated")
        for c in v.contraindications:
            if c.kind in ("coagulopathy", "infection_at_site", "aortic_aneurysm"):
                info.conditions.add(c.kind)
    pb = getattr(scenario, "prognostic_block", None)
    if pb is not None and pb.positive is not None:
        info.block_truth = bool(pb.positive)
    if recording is not None:
        info.block_truth_seed = patient_seed(recording)
    meta = getattr(recording, "meta", None) if recording is not None else None
    info.repeat_of = repeat_of if repeat_of is not None else repeat_sites(meta, scenario)
    now = pain_now(meta)
    if info.repeat_of is not None and now is not None:
        info.baseline_nrs = now  # a follow-up starts from the pain the earlier course left
    return info


def course_for_attempt(recording, scenario, targets=None, repeat_of: list[dict] | None = None) -> Course:
    """The course of an attempt, or an unavailable course saying why."""
    from simulator.core.outcome_library import parameters_for

    if getattr(scenario, "outcome", None) is None:
        return unavailable("This scenario has no outcome parameters (no `outcome:` in its file), "
                           "so no course after the procedure is computed.")
    found = parameters_for(scenario)
    if found is None:
        return unavailable(f"The course parameters {scenario.outcome.parameters!r} could not be loaded "
                           "(check scenarios/outcome/course_parameters.yaml with `validate`).")
    params, sources = found
    facts = facts_from_recording(recording)
    if params.relief.measure == "celiac_quadrants" and any(d.mode == "tissue" and not d.quadrant_ml for d in facts.neurolytic):
        return unavailable("This attempt was recorded before the celiac quadrants were stored with each injection; "
                           "replay it to compute its course.")
    course = compute_course(facts, params, case_info(scenario, recording, targets, repeat_of))
    for f in course.figures:
        f["citation"] = sources.get(f["source"], "") if f["source"] else ""
    return course


def relief_days(course: Course) -> float | None:
    """Days of relief of the index patient (onset to the start of the return), None without relief."""
    if not course.index_relief or course.index_onset_day is None:
        return None
    end = course.index_return_day if course.index_return_day is not None else float(course.days[-1])
    return max(0.0, end - course.index_onset_day)


__all__ = ["Course", "CaseInfo", "EffectOutcome", "compute_course", "course_for_attempt", "case_info", "case_seed",
           "block_truth", "relief_chance", "effect_probability", "unavailable", "relief_days", "EDUCATIONAL_LABEL"]
