"""The scenario schema: one exercise, as an instructor writes it in YAML.

Pydantic models only (no file handling): `simulator.core.scenario` loads YAML files into these,
with errors that name the file, the line and the field. Coordinates are patient RAS millimetres.
Scenario files are data: nothing here executes code from them.
"""
from __future__ import annotations

from enum import Enum
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION = 1

Vec3 = tuple[float, float, float]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, use_enum_values=False)


class Procedure(str, Enum):
    needle_basics = "needle_basics"
    celiac_plexus = "celiac_plexus"
    splanchnic = "splanchnic"
    lumbar_sympathetic = "lumbar_sympathetic"
    superior_hypogastric = "superior_hypogastric"
    ganglion_impar = "ganglion_impar"
    stellate = "stellate"
    intercostal = "intercostal"
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


class NeedleSpec(_Model):
    gauge: Literal[18, 20, 21, 22, 23, 25] = 22
    length_mm: float = Field(150.0, gt=20, le=250, description="shaft length (90, 150, 200 mm are usual)")
    bevel: Literal["quincke", "chiba", "tuohy", "short"] = "chiba"
    bevel_direction_deg: float = Field(0.0, ge=-180, le=180, description="bevel roll about the shaft")
    curved_tip: bool = False


class FluoroscopySettings(_Model):
    lao_deg: float = Field(0.0, ge=-120, le=120, description="orbital angle: + LAO, - RAO")
    cranial_deg: float = Field(0.0, ge=-45, le=45, description="tilt: + cranial, - caudal")
    isocenter_mm: Optional[Vec3] = None  # RAS; default the first target
    pulse_rate_pps: Literal[3.75, 7.5, 15, 30] = 15
    field_mm: float = Field(300.0, gt=50, le=450, description="detector field size")
    kvp: float = Field(80.0, ge=50, le=125)
    presets: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="named views: name -> [lao_deg, cranial_deg]"
    )


class UltrasoundSettings(_Model):
    probe: Literal["linear", "curvilinear"] = "linear"
    center_mm: Optional[Vec3] = None  # probe face centre on the skin (RAS)
    direction: Optional[Vec3] = None  # depth axis of the image, into the patient
    marker: Optional[Vec3] = None  # lateral axis, towards the orientation marker
    depth_mm: float = Field(40.0, gt=10, le=250)
    frequency_mhz: float = Field(10.0, ge=1, le=18)
    gain_db: float = Field(0.0, ge=-30, le=30)
    focus_mm: Optional[float] = Field(None, gt=0, le=250)
    doppler: bool = False


class Imaging(_Model):
    fluoroscopy: Optional[FluoroscopySettings] = None
    ultrasound: Optional[UltrasoundSettings] = None


class EntryZone(_Model):
    center_mm: Vec3
    radius_mm: float = Field(30.0, gt=0, le=200)


class Trajectory(_Model):
    entry_mm: Vec3
    target_mm: Vec3

    @model_validator(mode="after")
    def _distinct(self):
        if sum((a - b) ** 2 for a, b in zip(self.entry_mm, self.target_mm)) < 1.0:
            raise ValueError("entry_mm and target_mm must be at least 1 mm apart")
        return self


class Target(_Model):
    id: str = Field(pattern=r"^[a-z0-9_]+$")
    name: str
    kind: Literal["point", "polyline", "sphere"] = "point"
    points_mm: Optional[list[Vec3]] = None  # point: one; polyline: two or more; sphere: centre
    radius_mm: float = Field(0.0, ge=0, le=50, description="nerve radius (polyline) or sphere radius")
    tolerance_mm: float = Field(5.0, gt=0, le=50)
    side: Literal["left", "right", "midline"] = "midline"
    proposal: Optional[str] = Field(
        None, description="take the points from the label-based proposal of this name (e.g. celiac_plexus_left)"
    )
    required: bool = True  # must be reached (and covered by the agent) to pass

    @model_validator(mode="after")
    def _points(self):
        if self.points_mm is None and self.proposal is None:
            raise ValueError("give points_mm or a proposal")
        if self.points_mm is not None:
            n = len(self.points_mm)
            if self.kind in ("point", "sphere") and n != 1:
                raise ValueError(f"a {self.kind} target has exactly one point in points_mm, got {n}")
            if self.kind == "polyline" and n < 2:
                raise ValueError(f"a polyline target needs at least two points in points_mm, got {n}")
        return self


class CriticalStructure(_Model):
    structure: Optional[str] = Field(None, description="structure name in the anatomy, e.g. aorta")
    tissue: Optional[str] = Field(None, description="or a tissue class, e.g. lung, csf, artery")
    severity: Severity = Severity.major
    message: Optional[str] = None

    @model_validator(mode="after")
    def _one(self):
        if (self.structure is None) == (self.tissue is None):
            raise ValueError("give exactly one of structure or tissue")
        return self


class VolumeRange(_Model):
    min_ml: float = Field(0.0, ge=0)
    max_ml: float = Field(gt=0, le=100)

    @model_validator(mode="after")
    def _order(self):
        if self.min_ml > self.max_ml:
            raise ValueError(f"min_ml {self.min_ml} is above max_ml {self.max_ml}")
        return self


class AgentOption(_Model):
    agent: Literal["phenol", "alcohol", "glycerol", "bupivacaine", "lidocaine", "ropivacaine"]
    concentrations_pct: list[float] = Field(min_length=1)
    volume_ml: VolumeRange  # per target / per side

    @field_validator("concentrations_pct")
    @classmethod
    def _pct(cls, v):
        for c in v:
            if not 0 < c <= 100:
                raise ValueError(f"concentration {c} % is not in (0, 100]")
        return v


class Steps(_Model):
    local_anaesthetic: bool = True  # skin and track before the needle
    aspiration_before_injection: bool = True
    contrast: Optional[VolumeRange] = None  # required contrast (fluoroscopy)
    test_dose: Optional[AgentOption] = None  # local anaesthetic test dose
    neurolytic: Optional[AgentOption] = None
    neurolytic_options: list[AgentOption] = Field(default_factory=list, description="alternative agents")


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
]

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
]


class RubricItem(_Model):
    metric: MetricName
    weight: float = Field(gt=0, le=100)
    good: float = Field(description="value at or better than which the item scores full marks")
    bad: float = Field(description="value at or worse than which the item scores zero")
    reason: Optional[str] = None

    @model_validator(mode="after")
    def _range(self):
        if self.good == self.bad:
            raise ValueError("good and bad must differ")
        return self


class Rubric(_Model):
    pass_mark: float = Field(70.0, ge=0, le=100)
    items: list[RubricItem] = Field(min_length=1)
    automatic_fails: list[AutoFail] = Field(default_factory=list)
    advance_without_imaging_mm: float = Field(5.0, gt=0, le=50, description="fluoroscopy: advance allowed per image")


class Reference(_Model):
    id: str
    citation: str
    used_for: Optional[str] = None


class Scenario(_Model):
    schema_version: Literal[1] = 1
    id: str = Field(pattern=r"^[a-z0-9_\-]+$")
    title: str = Field(min_length=3)
    procedure: Procedure
    indication: list[Indication] = Field(min_length=1)
    difficulty: int = Field(ge=1, le=4, description="tier 1 (beginner) to 4 (advanced)")
    anatomy: str = Field(
        pattern=r"^(bundled|phantom:[a-z0-9_]+|user:[A-Za-z0-9_\-]+)$",
        description="bundled | phantom:NAME | user:NAME (an imported patient)",
    )
    patient_position: PatientPosition
    modality: Modality
    needle: NeedleSpec = Field(default_factory=NeedleSpec)
    imaging: Imaging = Field(default_factory=Imaging)
    skin_entry_zone: Optional[EntryZone] = None
    planned_trajectory: Optional[Trajectory] = None
    targets: list[Target] = Field(min_length=1)
    critical_structures: list[CriticalStructure] = Field(default_factory=list)
    steps: Steps = Field(default_factory=Steps)
    rubric: Rubric
    instructions: str = Field(min_length=10)
    references: list[Reference] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistency(self):
        ids = [t.id for t in self.targets]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"target ids must be unique, repeated: {sorted(dup)}")
        if self.modality in (Modality.fluoroscopy, Modality.both) and self.imaging.fluoroscopy is None:
            self.imaging.fluoroscopy = FluoroscopySettings()
        if self.modality in (Modality.ultrasound, Modality.both) and self.imaging.ultrasound is None:
            self.imaging.ultrasound = UltrasoundSettings()
        return self
