"""What happened in an attempt, as the outcome model reads it (pure: no Qt, no file access).

`facts_from_events(events, scenario)` reduces a recording's events to `AttemptFacts`: the
neurolytic injections (agent, concentration, volume, where it went, the coverage of each target,
the celiac quadrants reached), the harmful events (pleura, vessels, kidney, dura), and the steps of
the treatment arc (asepsis, consent, the time-out on contraindications, the prognostic block).

`celiac_quadrants(spread, origin_mm, area)` counts De Cicco's quadrants: the celiac area split on
the frontal plane into upper/lower and right/left of the celiac artery's origin; the procedure
stores the result in each injection's event (`quadrant_ml`), so the course is a function of the
recording alone.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import numpy as np

from simulator.core.events import EventKind

QUADRANTS = ("upper_right", "upper_left", "lower_right", "lower_left")
KIDNEY = "kidney"


@dataclass
class Dose:
    """One injection of neurolytic (or of the prognostic local anaesthetic)."""

    time_s: float
    agent: str
    concentration_pct: float
    volume_ml: float
    mode: str  # tissue | intravascular | intrathecal | intra_organ | intraosseous | outside
    tissue: str = ""
    structure: str | None = None
    coverage: dict = field(default_factory=dict)  # target id -> 0..1
    quadrant_ml: dict = field(default_factory=dict)  # quadrant -> ml (celiac)
    pass_index: int = 0

    @property
    def arterial(self) -> bool:
        return self.mode == "intravascular" and self.tissue == "artery"


@dataclass
class AttemptFacts:
    scenario_id: str = ""
    neurolytic: list[Dose] = field(default_factory=list)
    prognostic: list[Dose] = field(default_factory=list)
    prognostic_result: dict | None = None  # from the procedure's prognostic event
    pleural_breaches: int = 0
    vessel_punctures: int = 0
    arterial_punctures: int = 0
    kidney_punctures: int = 0
    organ_punctures: int = 0
    dural_punctures: int = 0
    skin_prep: bool = False
    drape: bool = False
    asepsis_before_puncture: bool = False
    consent_items: list[str] | None = None  # None: no consent step recorded
    time_out: dict | None = None  # {"contraindications": [...], "decision": "proceed" | "defer"}
    local_anaesthetic: bool = False
    skin_punctures: int = 0
    ended: bool = False
    seed: int = 0

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def asepsis(self) -> bool:
        return self.skin_prep and self.drape and self.asepsis_before_puncture

    def tissue_doses(self) -> list[Dose]:
        return [d for d in self.neurolytic if d.mode == "tissue"]


def attempt_seed(recording) -> int:
    """A seed fixed by the attempt: the same inputs (and start) give the same course."""
    h = hashlib.sha256()
    h.update(str(getattr(recording, "scenario_id", "")).encode())
    h.update(str(getattr(recording, "started_at", "")).encode())
    for inp in getattr(recording, "inputs", []):
        h.update(json.dumps([inp.name, round(float(inp.time_s), 3), inp.args], sort_keys=True, default=str).encode())
    return int.from_bytes(h.digest()[:8], "little")


def _dose(e) -> Dose:
    d = e.data
    return Dose(time_s=float(e.time_s), agent=str(d.get("agent", "")), concentration_pct=float(d.get("concentration_pct", 0.0)),
                volume_ml=float(d.get("volume_ml", 0.0)), mode=str(d.get("mode", "tissue")), tissue=str(d.get("tissue", "")),
                structure=d.get("structure"), coverage=dict(d.get("coverage") or {}),
                quadrant_ml=dict(d.get("quadrant_ml") or {}), pass_index=int(d.get("pass_index", 0)))


def facts_from_events(events, scenario_id: str = "", seed: int = 0) -> AttemptFacts:
    """The facts of an attempt from its events (in time order)."""
    f = AttemptFacts(scenario_id=scenario_id, seed=int(seed))
    for e in events:
        k, d = e.kind, e.data
        if k == EventKind.injection:
            kind = d.get("kind")
            if kind == "neurolytic":
                f.neurolytic.append(_dose(e))
            elif kind == "prognostic":
                f.prognostic.append(_dose(e))
                if d.get("prognostic_result") is not None:
                    f.prognostic_result = dict(d["prognostic_result"])
        elif k == EventKind.pleural_breach:
            f.pleural_breaches += 1
        elif k == EventKind.vessel_puncture:
            f.vessel_punctures += 1
            if d.get("vessel") == "artery":
                f.arterial_punctures += 1
        elif k == EventKind.organ_puncture:
            f.organ_punctures += 1
            if KIDNEY in str(d.get("structure") or d.get("tissue") or ""):
                f.kidney_punctures += 1
        elif k == EventKind.enter_structure and KIDNEY in str(d.get("structure") or ""):
            f.kidney_punctures += 1
        elif k == EventKind.dural_puncture:
            f.dural_punctures += 1
        elif k == EventKind.skin_puncture:
            f.skin_punctures += 1
        elif k == EventKind.local_anaesthetic:
            f.local_anaesthetic = True
        elif k == EventKind.end:
            f.ended = True
        elif k == EventKind.asepsis:
            if d.get("what") == "skin_prep":
                f.skin_prep = True
            elif d.get("what") == "drape":
                f.drape = True
            if f.skin_prep and f.drape and f.skin_punctures == 0:
                f.asepsis_before_puncture = True
        elif k == EventKind.consent:
            f.consent_items = list(d.get("items") or [])
        elif k == EventKind.time_out:
            f.time_out = {"contraindications": list(d.get("contraindications") or []), "decision": d.get("decision", "proceed")}
    if f.kidney_punctures and f.organ_punctures == 0:
        f.organ_punctures = f.kidney_punctures
    return f


def facts_from_recording(recording) -> AttemptFacts:
    return facts_from_events(recording.events, getattr(recording, "scenario_id", ""), attempt_seed(recording))


# --------------------------------------------------------------------------------------------
# Celiac quadrants (computed at injection time from the spread's voxels)
# --------------------------------------------------------------------------------------------

def celiac_quadrants(points_mm: np.ndarray, volume_ml_each: np.ndarray, origin_mm, radius_mm: float,
                     posterior_mm: float) -> dict[str, float]:
    """Millilitres of injectate in each frontal-plane quadrant around the celiac origin: points
    (RAS mm) within `radius_mm` of the origin and at most `posterior_mm` behind it; upper =
    superior (+z), right = the patient's right (+x)."""
    pts = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3)
    vol = np.asarray(volume_ml_each, dtype=np.float64).reshape(-1)
    o = np.asarray(origin_mm, dtype=np.float64).reshape(3)
    d = pts - o
    inside = (np.einsum("ij,ij->i", d, d) <= radius_mm * radius_mm) & (d[:, 1] >= -posterior_mm)
    up = d[:, 2] >= 0
    right = d[:, 0] >= 0
    out = {}
    for name, m in zip(QUADRANTS, (up & right, up & ~right, ~up & right, ~up & ~right)):
        out[name] = round(float(vol[inside & m].sum()), 4)
    return out


def spread_quadrants(spread, origin_mm, radius_mm: float, posterior_mm: float) -> dict[str, float]:
    """`celiac_quadrants` of a `Spread` (no quadrant is reached by washed-out or misplaced agent)."""
    if spread.mode != "tissue" or len(spread.indices) == 0:
        return dict.fromkeys(QUADRANTS, 0.0)
    ml = spread.fraction.astype(np.float64) * spread.voxel_volume_mm3 / 1000.0
    return celiac_quadrants(spread.points_mm(), ml, origin_mm, radius_mm, posterior_mm)


def count_quadrants(doses: list[Dose], min_ml: float) -> int:
    """Quadrants holding at least `min_ml` of neurolytic summed over the doses in tissue."""
    total = dict.fromkeys(QUADRANTS, 0.0)
    for d in doses:
        if d.mode != "tissue":
            continue
        for q in QUADRANTS:
            total[q] += float(d.quadrant_ml.get(q, 0.0))
    return sum(1 for q in QUADRANTS if total[q] >= min_ml)


def target_coverage(doses: list[Dose], targets: list[str]) -> dict[str, float]:
    """The best coverage of each target by neurolytic in tissue (0..1)."""
    out = {}
    for t in targets:
        out[t] = max([float(d.coverage.get(t, 0.0)) for d in doses if d.mode == "tissue"] or [0.0])
    return out
