"""The scenario schema: one exercise, as an instructor writes it in YAML.

Pydantic models only (no file handling): `simulator.core.scenario` loads YAML files into these,
with errors that name the file, the line and the field. Coordinates are patient RAS millimetres
(+x the patient's Right, +y Anterior, +z Superior) of the scenario's anatomy. Scenario files are
data: nothing here executes code from them, and the only path a scenario can name (a user anatomy,
`user:NAME`) must stay inside the user's anatomies folder.

Validators that find a problem in one sub-field raise `LocatedValueError(message, *sub_loc)`; the
loader appends `sub_loc` to pydantic's error location, so the error points at the YAML line of that
sub-field (a repeated target id points at the second target's `id`, not at the whole list).
"""
from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from simulator.core.behaviours import BEHAVIOURS
from simulator.core.model_base import LocatedValueError, Vec3, _Model
from simulator.core.scenario_case import Outcome, PrognosticBlock, Vignette, check_case
from simulator.core.tissue import Tissue

SCHEMA_VERSION = 1



class Procedure(str, Enum):
    needle_basics = "needle_basics"
    celiac_plexus = "celiac_plexus"
    splanchnic = "splanchnic"
    thoracic_sympathetic = "thoracic_sympathetic"
    lumbar_sympathetic = "lumbar_sympathetic"
    superior_hypogastric = "superior_hypogastric"
    ganglion_impar = "ganglion_impar"
    stellate = "stellate"
    intercostal = "intercostal"
    suprascapular = "suprascapular"
    genicular = "genicular"
    obturator = "obturator"
    musculocutaneous = "musculocutaneous"
    gasserian = "gasserian"


class Indication(str, Enum):
    cancer_pain = "cancer_pain"
    crps = "crps"
    nerve_entrapment = "nerve_entrapment"
    neuropathic_pain = "neuropathic_pain"
    chronic_pancreatitis = "chronic_pancreatitis"
    spasticity = "spasticity"
    training = "training"  # phantom exercises


class Modality(str, Enum):
    fluoroscopy = "fluoroscopy"
    ultrasound = "ultrasound"
    both = "both"


class PatientPosition(str, Enum):
    prone = "prone"
    supine = "supine"
    lateral_left = "lateral_left"
    lateral_right = "lateral_right"
    sitting = "sitting"


class Severity(str, Enum):
    minor = "minor"  # noted, small deduction
    major = "major"  # large deduction
    critical = "critical"  # automatic fail (aorta, dura, pleura in most blocks)


# Tissue classes a critical structure may name (lower-case names of `Tissue`): lung, csf, artery, ...
TissueName = Literal[tuple(t.name.lower() for t in Tissue)]  # type: ignore[valid-type]

_NAME = r"^[a-z0-9_]+$"
_STRUCTURE = r"^[A-Za-z0-9_]+$"  # anatomy structure names keep their segmentation's case (vertebrae_L1)


def _check_vec(v: Vec3, what: str, *loc) -> None:
    if math.hypot(*v) < 1e-9:
        raise LocatedValueError(f"{what} must not be the zero vector", *loc)


class NeedleSpec(_Model):
    """The needle the trainee uses."""

    gauge: Literal[18, 20, 21, 22, 23, 25] = Field(22, description="Birmingham gauge (22 G = 0.72 mm outer diameter)")
    length_mm: float = Field(150.0, gt=20, le=250, description="shaft length (90, 150, 200 mm are usual)")
    bevel: Literal["quincke", "chiba", "tuohy", "short"] = "chiba"
    bevel_direction_deg: float = Field(0.0, ge=-180, le=180, description="bevel roll about the shaft")
    curved_tip: bool = False


class FluoroscopySettings(_Model):
    """Initial C-arm pose and exposure. Angles follow `simulator.core.carm`: for a prone patient the
    detector is above the back; lao_deg > 0 turns the detector towards the patient's LEFT (the left
    ipsilateral oblique of a left-sided needle), < 0 towards the right; +90 is a left lateral view."""

    lao_deg: float = Field(0.0, ge=-120, le=120, description="orbital angle: + detector to the patient's left, - to the right")
    cranial_deg: float = Field(0.0, ge=-45, le=45, description="tilt: + detector towards the head, - towards the feet")
    isocenter_mm: Optional[Vec3] = Field(None, description="RAS point the beam is centred on; default the first target")
    pulse_rate_pps: Literal[3.75, 7.5, 15, 30] = 15
    field_mm: float = Field(300.0, gt=50, le=450, description="detector field size")
    kvp: float = Field(80.0, ge=40, le=125, description="tube voltage where the automatic exposure control starts (it raises mA first, then kVp)")
    filtration_mm_al: float = Field(3.0, ge=0, le=30, description="total aluminium filtration (inherent + added), mm")
    filtration_mm_cu: float = Field(0.1, ge=0, le=3, description="added copper filtration, mm")
    imaging_preset: Literal["flat_panel", "image_intensifier", "bone_detail"] = Field(
        "flat_panel", description="the image chain's programme (detector, processing, temporal filter)")
    presets: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="named views: name -> [lao_deg, cranial_deg]"
    )

    @model_validator(mode="after")
    def _filtration(self):
        from simulator.core.carm import filter_transmission

        t = filter_transmission(self.kvp, self.filtration_mm_al, self.filtration_mm_cu)
        if t < 1e-3:
            field = "filtration_mm_cu" if self.filtration_mm_cu > 0 else "filtration_mm_al"
            raise LocatedValueError(
                f"{self.filtration_mm_al:g} mm Al + {self.filtration_mm_cu:g} mm Cu leave no photons at {self.kvp:g} kVp "
                f"(transmission {t:.1e} of the most penetrating ones); use at most a few mm Al and 0.1-0.3 mm Cu", field)
        return self

    @field_validator("presets")
    @classmethod
    def _presets(cls, v):
        for name, (lao, cranial) in v.items():
            if not -120 <= lao <= 120:
                raise LocatedValueError(f"lao_deg {lao} of preset {name!r} is not in [-120, 120]", name, 0)
            if not -45 <= cranial <= 45:
                raise LocatedValueError(f"cranial_deg {cranial} of preset {name!r} is not in [-45, 45]", name, 1)
        return v


class UltrasoundSettings(_Model):
    """Initial probe pose and the scanner's settings. The image plane is spanned by `direction`
    (depth, into the patient) and `marker` (lateral axis, towards the probe's orientation marker);
    the marker need not be exactly perpendicular (it is orthogonalised when the probe is placed)."""

    probe: Literal["linear", "curvilinear"] = "linear"
    center_mm: Optional[Vec3] = Field(None, description="probe face centre on the skin (RAS mm)")
    direction: Optional[Vec3] = Field(None, description="depth axis of the image, into the patient")
    marker: Optional[Vec3] = Field(None, description="lateral axis of the image, towards the orientation marker")
    depth_mm: float = Field(40.0, gt=10, le=250)
    frequency_mhz: float = Field(10.0, ge=1, le=18)
    gain_db: float = Field(0.0, ge=-30, le=30)
    focus_mm: Optional[float] = Field(None, gt=0, le=250)
    doppler: bool = False

    @model_validator(mode="after")
    def _axes(self):
        if self.direction is not None:
            _check_vec(self.direction, "direction", "direction")
        if self.marker is not None:
            _check_vec(self.marker, "marker", "marker")
        if self.direction is not None and self.marker is not None:
            d, m = self.direction, self.marker
            cross = (d[1] * m[2] - d[2] * m[1], d[2] * m[0] - d[0] * m[2], d[0] * m[1] - d[1] * m[0])
            if math.hypot(*cross) < 1e-3 * math.hypot(*d) * math.hypot(*m):
                raise LocatedValueError("marker is parallel to direction: they must span the image plane", "marker")
        if self.focus_mm is not None and self.focus_mm > self.depth_mm:
            raise LocatedValueError(f"focus {self.focus_mm} mm is deeper than the image depth {self.depth_mm} mm", "focus_mm")
        from simulator.core.probe import ProbeSpec

        spec = ProbeSpec.named(self.probe)
        lo, hi = spec.frequency_range_mhz
        if not (lo <= self.frequency_mhz <= hi):
            raise LocatedValueError(f"frequency {self.frequency_mhz:g} MHz is outside the {self.probe} probe's range "
                                    f"{lo:g}-{hi:g} MHz", "frequency_mhz")
        if self.depth_mm > spec.max_depth_mm:
            raise LocatedValueError(f"depth {self.depth_mm:g} mm is beyond the {self.probe} probe's "
                                    f"{spec.max_depth_mm:g} mm", "depth_mm")
        return self


class Imaging(_Model):
    fluoroscopy: Optional[FluoroscopySettings] = None
    ultrasound: Optional[UltrasoundSettings] = None


class EntryZone(_Model):
    """Where on the skin the needle should enter: a disc around `center_mm`."""

    center_mm: Vec3
    radius_mm: float = Field(30.0, gt=0, le=200)


class Trajectory(_Model):
    """A planned needle path, skin entry to tip position (used for the angle-to-plan metric and
    shown in instructor mode)."""

    entry_mm: Vec3
    target_mm: Vec3
    target_id: Optional[str] = Field(None, pattern=_NAME, description="the target this path leads to")

    @model_validator(mode="after")
    def _distinct(self):
        if sum((a - b) ** 2 for a, b in zip(self.entry_mm, self.target_mm)) < 1.0:
            raise LocatedValueError("entry_mm and target_mm must be at least 1 mm apart", "target_mm")
        return self

    @property
    def length_mm(self) -> float:
        return math.dist(self.entry_mm, self.target_mm)


class Target(_Model):
    """A nerve or plexus the tip must reach. The tip is at the target when its distance to it is at
    most `tolerance_mm`: to the point (kind point), to the nerve's surface - the centre line minus
    `radius_mm` (polyline), or to the sphere's surface (sphere); inside counts as distance 0.

    `points_mm`, when given, are the target in this scenario's anatomy. `proposal` names the
    label-based proposal (e.g. celiac_plexus_left) that gives the points when `points_mm` is absent,
    or when the scenario is run on another anatomy than the one it was written for."""

    id: str = Field(pattern=_NAME)
    name: str = Field(min_length=1)
    kind: Literal["point", "polyline", "sphere"] = "point"
    points_mm: Optional[list[Vec3]] = Field(None, description="point: one; polyline: two or more; sphere: the centre")
    radius_mm: float = Field(0.0, ge=0, le=50, description="nerve radius (polyline) or sphere radius")
    tolerance_mm: float = Field(5.0, gt=0, le=50)
    side: Literal["left", "right", "midline"] = "midline"
    proposal: Optional[str] = Field(
        None, pattern=_NAME,
        description="take the points from the label-based proposal of this name (e.g. celiac_plexus_left)",
    )
    required: bool = Field(True, description="must be reached (and covered by the agent) to pass")
    somatic: Optional[bool] = Field(
        None, description="a somatic nerve (touching it gives paraesthesia); default: true for polyline "
        "targets except sympathetic/splanchnic/plexus ones, false otherwise",
    )

    @model_validator(mode="after")
    def _points(self):
        if self.points_mm is None and self.proposal is None:
            raise LocatedValueError("give points_mm or a proposal", "points_mm")
        if self.points_mm is not None:
            n = len(self.points_mm)
            if self.kind in ("point", "sphere") and n != 1:
                raise LocatedValueError(f"a {self.kind} target has exactly one point in points_mm, got {n}", "points_mm")
            if self.kind == "polyline" and n < 2:
                raise LocatedValueError(f"a polyline target needs at least two points in points_mm, got {n}", "points_mm")
        if self.kind == "sphere" and self.radius_mm <= 0:
            raise LocatedValueError("a sphere target needs radius_mm > 0", "radius_mm")
        return self


class CriticalStructure(_Model):
    """Something the needle must not touch: a named structure of the anatomy or a tissue class."""

    structure: Optional[str] = Field(None, pattern=_STRUCTURE, description="structure name in the anatomy, e.g. aorta")
    tissue: Optional[TissueName] = Field(None, description="or a tissue class, e.g. lung, csf, artery")  # type: ignore[valid-type]
    severity: Severity = Severity.major
    message: Optional[str] = Field(None, description="what the trainee is told on contact")

    @model_validator(mode="after")
    def _one(self):
        if (self.structure is None) == (self.tissue is None):
            raise LocatedValueError("give exactly one of structure or tissue", "structure")
        return self


class VolumeRange(_Model):
    min_ml: float = Field(0.0, ge=0)
    max_ml: float = Field(gt=0, le=100)

    @model_validator(mode="after")
    def _order(self):
        if self.min_ml > self.max_ml:
            raise LocatedValueError(f"min_ml {self.min_ml} is above max_ml {self.max_ml}", "min_ml")
        return self


class AgentOption(_Model):
    agent: Literal["phenol", "alcohol", "glycerol", "bupivacaine", "lidocaine", "ropivacaine"]
    concentrations_pct: list[float] = Field(min_length=1, description="allowed concentrations (any of them)")
    volume_ml: VolumeRange = Field(description="per target / per side")

    @field_validator("concentrations_pct")
    @classmethod
    def _pct(cls, v):
        for i, c in enumerate(v):
            if not 0 < c <= 100:
                raise LocatedValueError(f"concentration {c} % is not in (0, 100]", i)
        return v


class Steps(_Model):
    """The procedure steps the scenario requires. An agent left out (null) is not part of the
    exercise: a phantom exercise may need only a local-anaesthetic test dose and no neurolytic."""

    time_out: bool = Field(False, description="a time-out on the vignette's contraindications before the needle")
    consent: bool = Field(False, description="consent taken (the vignette's risks discussed) before the needle")
    asepsis: bool = Field(False, description="skin preparation and a sterile drape before the needle")
    local_anaesthetic: bool = Field(True, description="skin and track infiltrated before the needle")
    aspiration_before_injection: bool = True
    contrast: Optional[VolumeRange] = Field(None, description="required contrast volume (fluoroscopy)")
    test_dose: Optional[AgentOption] = Field(None, description="local anaesthetic test dose")
    neurolytic: Optional[AgentOption] = None
    neurolytic_options: list[AgentOption] = Field(default_factory=list, description="alternative agents")

    @model_validator(mode="after")
    def _agents(self):
        if self.neurolytic_options and self.neurolytic is None:
            raise LocatedValueError("neurolytic_options are alternatives to a neurolytic: give neurolytic first", "neurolytic_options")
        local = {"bupivacaine", "lidocaine", "ropivacaine"}
        if self.test_dose is not None and self.test_dose.agent not in local:
            raise LocatedValueError(
                f"a test dose is a local anaesthetic ({', '.join(sorted(local))}), got {self.test_dose.agent}",
                "test_dose", "agent",
            )
        return self

    def agent_options(self) -> list[AgentOption]:
        """The neurolytic agents allowed (the main one first)."""
        return ([self.neurolytic] if self.neurolytic else []) + list(self.neurolytic_options)


MetricName = Literal[
    "final_distance_mm",
    "min_distance_mm",
    "elapsed_time_s",
    "path_length_mm",
    "path_in_tissue_mm",
    "time_in_tissue_s",
    "tissue_damage_mm2",
    "skin_punctures",
    "redirections",
    "angle_to_plan_deg",
    "advances_without_imaging",
    "fluoro_shots",
    "fluoro_time_s",
    "dap_gycm2",
    "target_coverage_pct",
    "off_target_spread_ml",
    "tip_visible_pct",
    "critical_contacts",
    "bone_contacts",
    "translational_actions",
    "rotational_actions",
    "probe_translational_actions",
    "probe_rotational_actions",
    "error_behaviours",
    # the treatment decisions (core.decision_scores): 100 good, 50 acceptable, 0 poor
    "decision_time_out",
    "decision_consent",
    "decision_asepsis",
    "decision_prognostic_block",
    "decision_agent",
    "decision_volume",
    "decision_level_side",
    "decision_approach",
    "treatment_decisions_pct",
]

#: Metrics an item can score for one target (`RubricItem.target`).
PER_TARGET_METRICS = ("final_distance_mm", "min_distance_mm", "target_coverage_pct", "angle_to_plan_deg")
#: Metrics that need an imaging modality: they do not apply (and weigh nothing) without it.
FLUORO_METRICS = ("fluoro_shots", "fluoro_time_s", "dap_gycm2")
ULTRASOUND_METRICS = ("tip_visible_pct", "probe_translational_actions", "probe_rotational_actions")

BehaviourName = Literal[tuple(BEHAVIOURS)]  # type: ignore[valid-type]

AutoFail = Literal[
    "critical_contact",  # contact with a critical structure of severity critical
    "intravascular_agent",
    "intrathecal_agent",
    "agent_without_aspiration",
    "agent_without_local_anaesthetic",
    "agent_without_contrast",
    "agent_without_test_dose",
    "target_not_reached",
    "agent_volume_exceeded",
    "wrong_agent",
    "pleural_breach",
    "no_agent_injected",
    "contraindication_ignored",  # the needle in despite a contraindication the key says defer (always applied)
]


class RubricItem(_Model):
    """One scored metric: full marks at `good` or better, none at `bad` or worse, linear between.
    Lower is better when good < bad (distances, times), higher when good > bad (coverage)."""

    metric: MetricName
    weight: float = Field(ge=0, le=100, description="0 keeps the item on the card without points")
    target: Optional[str] = Field(
        None, pattern=_NAME, description="score the metric at this target only (final_distance_mm, "
        "min_distance_mm, target_coverage_pct, angle_to_plan_deg); default: over the required targets",
    )
    good: float = Field(description="value at or better than which the item scores full marks")
    bad: float = Field(description="value at or worse than which the item scores zero")
    reason: Optional[str] = Field(None, description="why this matters, shown to the trainee")

    @model_validator(mode="after")
    def _range(self):
        if self.good == self.bad:
            raise LocatedValueError("good and bad must differ", "bad")
        if self.target is not None and self.metric not in PER_TARGET_METRICS:
            raise LocatedValueError(f"metric {self.metric} is not measured per target (those are: "
                                    f"{', '.join(PER_TARGET_METRICS)})", "target")
        return self


class Rubric(_Model):
    pass_mark: float = Field(70.0, ge=0, le=100)
    items: list[RubricItem] = Field(min_length=1)
    automatic_fails: list[AutoFail] = Field(default_factory=list)
    advance_without_imaging_mm: float = Field(5.0, gt=0, le=50, description="fluoroscopy: advance allowed per image")
    blind_advance_mm: Optional[float] = Field(
        None, gt=0, le=300, description="an unbroken stretch of advance without an image (fluoroscopy) or with the "
        "tip unseen (ultrasound) longer than this is a blind advance (default: 3 allowances; ultrasound 10 mm)")
    behaviours: dict[BehaviourName, Union[Literal["fail", "ignore"], float]] = Field(  # type: ignore[valid-type]
        default_factory=dict,
        description="what an error behaviour costs: fail, ignore, or points off per occurrence "
        "(defaults in simulator/core/behaviours.py)",
    )
    redirections_allowed: int = Field(6, ge=0, le=100, description="more redirections than this: a behaviour")
    live_fluoro_max_s: float = Field(10.0, gt=0, le=600, description="a live fluoroscopy run longer than this: a behaviour")

    @model_validator(mode="after")
    def _unique(self):
        seen: dict[tuple, int] = {}
        for i, item in enumerate(self.items):
            key = (item.metric, item.target)
            if key in seen:
                what = item.metric + (f" at target {item.target}" if item.target else "")
                raise LocatedValueError(f"metric {what} is already scored by items[{seen[key]}]", "items", i, "metric")
            seen[key] = i
        for key, v in self.behaviours.items():
            if not isinstance(v, str) and not (0 <= v <= 100):
                raise LocatedValueError(f"behaviour {key}: points off must be in [0, 100], got {v}", "behaviours", key)
        for i, fail in enumerate(self.automatic_fails):
            if self.automatic_fails.index(fail) != i:
                raise LocatedValueError(f"automatic fail {fail} is listed twice", "automatic_fails", i)
        return self

    @property
    def total_weight(self) -> float:
        return float(sum(i.weight for i in self.items))


class Reference(_Model):
    id: str = Field(min_length=1)
    citation: str = Field(min_length=3)
    used_for: Optional[str] = None


def _user_anatomy_folder(name: str) -> Path:
    """The folder of the user anatomy `name`; refuses names that leave the anatomies folder."""
    from simulator.core import paths  # late: paths reads the environment when called

    root = paths.anatomies_dir().resolve()
    try:
        folder = paths.safe_asset_path(name, base=root)
    except ValueError as e:
        raise ValueError(f"user anatomy {e}") from None
    try:
        folder.relative_to(root)
    except ValueError:
        raise ValueError(
            f"user anatomy {name!r} resolves to {folder}, outside the user's anatomies folder {root}"
        ) from None
    return folder


class Scenario(_Model):
    """One exercise. See scenarios/*.yaml for commented examples."""

    schema_version: Literal[1] = 1
    id: str = Field(pattern=r"^[a-z0-9_\-]+$")
    title: str = Field(min_length=3)
    procedure: Procedure
    indication: list[Indication] = Field(min_length=1)
    difficulty: int = Field(ge=1, le=4, description="tier 1 (beginner) to 4 (advanced)")
    anatomy: str = Field(
        pattern=r"^(bundled(:lumbopelvic)?|phantom:[a-z0-9_]+|user:[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*)$",
        description="bundled (chest and upper abdomen) | bundled:lumbopelvic (lumbar spine and pelvis) | "
        "phantom:NAME | user:NAME (an imported patient, inside the user's anatomies folder)",
    )
    patient_position: PatientPosition
    modality: Modality
    needle: NeedleSpec = Field(default_factory=NeedleSpec)
    imaging: Imaging = Field(default_factory=Imaging)
    skin_entry_zone: Optional[EntryZone] = None
    planned_trajectory: Optional[Trajectory] = None
    additional_trajectories: list[Trajectory] = Field(
        default_factory=list, description="further planned needles, e.g. the other side of a bilateral block"
    )
    targets: list[Target] = Field(min_length=1)
    critical_structures: list[CriticalStructure] = Field(default_factory=list)
    steps: Steps = Field(default_factory=Steps)
    rubric: Rubric
    instructions: str = Field(min_length=10)
    references: list[Reference] = Field(default_factory=list)
    vignette: Optional[Vignette] = Field(None, description="the patient: shown before the attempt")
    prognostic_block: Optional[PrognosticBlock] = Field(None, description="a local-anaesthetic block required first")
    outcome: Optional[Outcome] = Field(None, description="the course after the procedure (debrief)")
    follows: Optional[str] = Field(None, pattern=r"^[a-z0-9_\-]+$", description="the scenario this one repeats, months later")
    based_on: Optional[str] = Field(None, pattern=r"^[a-z0-9_\-]+$", description=(
        "a scenario whose fields this one takes (a variant: another patient story on the same needle work); "
        "its own fields change them - mappings key by key, anything else replaced"))

    @field_validator("anatomy")
    @classmethod
    def _anatomy_inside_data(cls, v: str) -> str:
        if v.startswith("user:"):
            _user_anatomy_folder(v[len("user:"):])
        return v

    @model_validator(mode="after")
    def _consistency(self):
        ids: dict[str, int] = {}
        for i, t in enumerate(self.targets):
            if t.id in ids:
                raise LocatedValueError(f"target id {t.id!r} is already used by targets[{ids[t.id]}]", "targets", i, "id")
            ids[t.id] = i
        if self.additional_trajectories and self.planned_trajectory is None:
            raise LocatedValueError("give planned_trajectory before additional_trajectories", "additional_trajectories")
        located = [(("planned_trajectory",), self.planned_trajectory)] if self.planned_trajectory else []
        located += [(("additional_trajectories", i), t) for i, t in enumerate(self.additional_trajectories)]
        for loc, traj in located:
            if traj.target_id is not None and traj.target_id not in ids:
                raise LocatedValueError(f"target_id {traj.target_id!r} is not one of the targets {sorted(ids)}", *loc, "target_id")
        for i, item in enumerate(self.rubric.items):
            if item.target is not None and item.target not in ids:
                raise LocatedValueError(f"target {item.target!r} is not one of the targets {sorted(ids)}",
                                        "rubric", "items", i, "target")
        applicable = [it for it in self.rubric.items if self.metric_applies(it.metric)]
        if sum(it.weight for it in applicable) <= 0:
            why = ("the weights sum to 0" if applicable else
                   f"none of its metrics applies to a {self.modality.value} scenario like this one")
            raise LocatedValueError(f"the rubric cannot score: {why} (give an applicable item a weight above 0)",
                                    "rubric", "items")
        fails = set(self.rubric.automatic_fails)
        needs = {
            "agent_without_contrast": (self.steps.contrast, "steps.contrast"),
            "agent_without_test_dose": (self.steps.test_dose, "steps.test_dose"),
            "wrong_agent": (self.steps.neurolytic, "steps.neurolytic"),
            "agent_volume_exceeded": (self.steps.neurolytic or self.steps.test_dose, "steps.neurolytic or steps.test_dose"),
        }
        for fail, (value, what) in needs.items():
            if fail in fails and value is None:
                raise LocatedValueError(
                    f"automatic fail {fail} needs {what} in the scenario",
                    "rubric", "automatic_fails", self.rubric.automatic_fails.index(fail),
                )
        if "agent_without_contrast" in fails and self.modality == Modality.ultrasound:
            raise LocatedValueError(
                "automatic fail agent_without_contrast needs fluoroscopy (modality is ultrasound)",
                "rubric", "automatic_fails", self.rubric.automatic_fails.index("agent_without_contrast"),
            )
        check_case(self)
        if self.follows == self.id:
            raise LocatedValueError("a scenario cannot follow itself", "follows")
        if self.modality in (Modality.fluoroscopy, Modality.both) and self.imaging.fluoroscopy is None:
            self.imaging.fluoroscopy = FluoroscopySettings()
        if self.modality in (Modality.ultrasound, Modality.both) and self.imaging.ultrasound is None:
            self.imaging.ultrasound = UltrasoundSettings()
        return self

    # -- helpers for the rest of the program --------------------------------------------------
    def metric_applies(self, metric: str) -> bool:
        """Can this scenario measure the metric? (fluoroscopy metrics need fluoroscopy, probe and tip
        visibility metrics ultrasound, the angle a planned trajectory, coverage and off-target spread
        an agent to give)."""
        if metric in FLUORO_METRICS:
            return self.modality in (Modality.fluoroscopy, Modality.both)
        if metric in ULTRASOUND_METRICS:
            return self.modality in (Modality.ultrasound, Modality.both)
        if metric == "angle_to_plan_deg":
            return self.planned_trajectory is not None
        if metric in ("target_coverage_pct", "off_target_spread_ml"):
            return bool(self.steps.agent_options()) or self.steps.test_dose is not None
        return True

    @property
    def trajectories(self) -> list[Trajectory]:
        """All planned needle paths: `planned_trajectory` first, then `additional_trajectories`."""
        first = [self.planned_trajectory] if self.planned_trajectory is not None else []
        return first + list(self.additional_trajectories)

    def target(self, target_id: str) -> Target:
        for t in self.targets:
            if t.id == target_id:
                return t
        raise KeyError(f"scenario {self.id!r} has no target {target_id!r}; targets: {[t.id for t in self.targets]}")

    def trajectory_for(self, target_id: str) -> Optional[Trajectory]:
        """The planned path to a target (by `target_id`; the only trajectory if there is just one)."""
        for t in self.trajectories:
            if t.target_id == target_id:
                return t
        if len(self.trajectories) == 1 and self.trajectories[0].target_id is None:
            return self.trajectories[0]
        return None

    @property
    def user_anatomy_name(self) -> Optional[str]:
        return self.anatomy[len("user:"):] if self.anatomy.startswith("user:") else None

    @property
    def phantom_name(self) -> Optional[str]:
        return self.anatomy[len("phantom:"):] if self.anatomy.startswith("phantom:") else None
