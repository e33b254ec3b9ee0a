"""The procedure-step inputs of the Procedure (a mixin of `procedure.Procedure`): local
anaesthetic, aspiration and injections (contrast, test dose, prognostic block, neurolytic), with the
warnings a step out of order raises at once.
"""
from __future__ import annotations

import math

import numpy as np

from simulator.core import case_steps
from simulator.core.events import Event, EventKind
from simulator.core.metrics import OFF_TARGET_MARGIN_MM
from simulator.core.needle import PARK_MM
from simulator.core.procedure_input import ProcedureError, recorded_input
from simulator.core.spread import Spread, compute_spread
from simulator.core.tissue import VESSEL, Tissue

ASPIRATION_VALID_MM = 2.0
INJECTION_KINDS = ("contrast", "test_dose", "prognostic", "neurolytic")


class ProcedureSteps:
    """Step inputs (state lives in `Procedure.__init__`)."""

    @recorded_input
    def local_anaesthetic(self, volume_ml: float = 5.0, agent: str = "lidocaine", concentration_pct: float = 1.0,
                          point_mm=None) -> Event:
        """Infiltrate the skin and track at `point_mm`, or at the needle's entry point."""
        v = float(volume_ml)
        if not (v > 0 and math.isfinite(v)):
            raise ProcedureError(f"local_anaesthetic: volume_ml must be positive, got {volume_ml!r}")
        if point_mm is not None:
            site = np.asarray(point_mm, dtype=np.float64).reshape(3)
        elif self._pose is None:
            raise ProcedureError("local_anaesthetic: place the needle at the entry point first, or give point_mm")
        elif self._inserted and self._entry is not None:
            site = self._entry.copy()
        else:
            site = self._pose[:3, 3] + PARK_MM * self._pose[:3, 2]
        before = not self._inserted
        ev = self._emit(EventKind.local_anaesthetic, f"local anaesthetic: {v:g} ml {agent} {float(concentration_pct):g} %"
                        + ("" if before else " (after the needle was in)"),
                        site_mm=site, volume_ml=v, agent=str(agent), concentration_pct=float(concentration_pct),
                        before_insertion=before)
        self._done["local_anaesthetic"] = True
        return ev

    def _aspirate_result(self) -> str:
        if self._pose is None or not self._inserted:
            return "nothing"
        t = Tissue(self._tip_key[0])
        if t in VESSEL:
            return "blood"
        if t in (Tissue.CSF, Tissue.SPINAL_CORD):
            return "csf"
        if t in (Tissue.LUNG, Tissue.AIRWAY):
            return "air"
        if t in (Tissue.STOMACH, Tissue.BOWEL, Tissue.ESOPHAGUS):
            return "bowel contents"
        if t == Tissue.AIR:
            return "air"
        return "nothing"

    @recorded_input
    def aspirate(self) -> str:
        """Pull back on the syringe: blood, csf, air, bowel contents or nothing."""
        self._require_placed("aspirate")
        res = self._aspirate_result()
        text = {"blood": "blood - the tip is in a vessel", "csf": "clear fluid (CSF)", "air": "air",
                "bowel contents": "bowel contents", "nothing": "negative (nothing)"}[res]
        self._emit(EventKind.aspiration, f"aspiration: {text}", result=res, tip_mm=self._pose[:3, 3],
                   tissue=Tissue(self._tip_key[0]).name.lower(), structure=self.probe_tissue.name_of(self._tip_key[1]))
        self._aspiration_tip = self._pose[:3, 3].copy()
        if self._ever_target:
            self._done["aspiration"] = True
        return res

    @recorded_input
    def inject(self, kind: str, agent: str, concentration_pct: float, volume_ml: float, air_ml: float = 0.0) -> Spread:
        """Inject through the needle. kind: contrast | test_dose | prognostic | neurolytic. Returns the
        spread. A neurolytic is refused while a required prognostic block is not done (`case_steps`).
        `air_ml`: air given first, by mistake (a syringe or line not purged; part of volume_ml)."""
        self._require_placed("inject")
        if kind not in INJECTION_KINDS:
            raise ProcedureError(f"inject: kind must be one of {', '.join(INJECTION_KINDS)}, got {kind!r}")
        v = float(volume_ml)
        c = float(concentration_pct)
        air = float(air_ml)
        if not (v > 0 and math.isfinite(v)):
            raise ProcedureError(f"inject: volume_ml must be positive, got {volume_ml!r}")
        if not (0 <= c <= 100):
            raise ProcedureError(f"inject: concentration_pct must be in [0, 100], got {concentration_pct!r}")
        if kind == "neurolytic" and (why := case_steps.neurolytic_refusal(self.scenario, self.recording.events)):
            raise ProcedureError(why)
        if kind == "prognostic" and str(agent) not in case_steps.LOCAL_ANAESTHETICS:
            raise ProcedureError(f"inject: a prognostic block is a local anaesthetic ({', '.join(case_steps.LOCAL_ANAESTHETICS)}), "
                                 f"got {agent!r}")
        if not (0 <= air < v):
            raise ProcedureError(f"inject: air_ml must be within 0 and volume_ml ({v:g}), got {air_ml!r}")
        tip = self._pose[:3, 3].copy()
        aspirated = self._aspiration_tip is not None and float(np.linalg.norm(tip - self._aspiration_tip)) <= ASPIRATION_VALID_MM
        sp = compute_spread(self.anatomy, tip, v)
        sp.time_s = self._now
        sp.kind = kind
        sp.agent = str(agent)
        sp.concentration_pct = c
        sp.air_ml = air
        coverage = {}
        pts = sp.points_mm() if len(sp.indices) else np.zeros((0, 3))
        for tg in self.targets:
            samples, radius = tg.coverage_samples()
            coverage[tg.id] = sp.coverage_of(samples, radius)
        sp.coverage = coverage
        if sp.mode in ("intravascular", "intrathecal", "outside"):
            off = v
        elif len(pts) and self.targets:
            dmin = np.full(len(pts), np.inf)
            for tg in self.targets:
                dmin = np.minimum(dmin, tg.distance(pts) - tg.tolerance_mm)
            far = dmin > OFF_TARGET_MARGIN_MM
            off = float(sp.fraction[far].astype(np.float64).sum() * sp.voxel_volume_mm3 / 1000.0)
        else:
            off = 0.0
        dists = {tg.id: float(tg.distance(tip)[0]) for tg in self.targets}
        where = {"tissue": "", "intravascular": " - into a blood vessel (it washes away)",
                 "intrathecal": " - into the dural sac (intrathecal)", "intra_organ": f" - into the {sp.tip_tissue.name.lower()}",
                 "intraosseous": " - into bone", "outside": " - outside the body"}[sp.mode]
        label = {"contrast": "contrast", "test_dose": "test dose", "prognostic": "prognostic block", "neurolytic": "neurolytic"}[kind]
        extra = case_steps.injection_extras(self.scenario, sp, kind)
        if kind == "prognostic":
            rec = self.recording
            extra["prognostic_result"] = case_steps.prognostic_result(
                self.scenario, coverage, case_steps.patient_seed(rec))
        bubbles = f" with {air:g} ml air (syringe not purged)" if air > 0 else ""
        self._emit(EventKind.injection, f"{label}: {v:g} ml {agent} {c:g} %{bubbles}{where}", kind=kind, agent=str(agent), air_ml=air,
                        concentration_pct=c, volume_ml=v, tip_mm=tip, mode=sp.mode, aspirated=bool(aspirated),
                        pass_index=self._pass_index, coverage=coverage, off_target_ml=off, target_distances_mm=dists,
                        tissue=sp.tip_tissue.name.lower(), structure=sp.tip_structure, spread=sp.summary(), **extra)
        if kind == "prognostic":
            self._emit(EventKind.prognostic_result, extra["prognostic_result"]["message"], **extra["prognostic_result"])
        self._injection_warnings(kind, str(agent), aspirated, sp)
        self._aspiration_tip = None
        self.spreads.append(sp)
        self._done[kind] = True
        self.spread_added.emit(sp)
        return sp

    def _injection_warnings(self, kind: str, agent: str, aspirated: bool, sp: Spread) -> None:
        steps = self.scenario.steps
        if steps.aspiration_before_injection and not aspirated:
            self._emit(EventKind.step_warning, f"{kind.replace('_', ' ')} injected without aspirating first",
                       key="no_aspiration")
        if kind != "neurolytic":
            return
        ev = self.recording.events
        punct = [e for e in ev if e.kind == EventKind.skin_puncture]
        start = punct[-1].time_s if punct else -math.inf
        in_pass = [e for e in ev if e.kind == EventKind.injection and e.time_s >= start]
        if steps.local_anaesthetic and not any(e.kind == EventKind.local_anaesthetic for e in ev):
            self._emit(EventKind.step_warning, "neurolytic given without local anaesthetic", key="no_local_anaesthetic")
        if steps.contrast is not None and not any(e.data.get("kind") == "contrast" for e in in_pass):
            self._emit(EventKind.step_warning, "neurolytic given before contrast confirmed the spread", key="no_contrast")
        if steps.test_dose is not None and not any(e.data.get("kind") == "test_dose" for e in in_pass):
            self._emit(EventKind.step_warning, "neurolytic given without a test dose", key="no_test_dose")
        prog = case_steps.prognostic_done(ev)
        if prog is not None and not prog.get("positive", True):
            self._emit(EventKind.step_warning, "neurolytic given after a prognostic block without relief",
                       key="negative_prognostic_block")
        if sp.intravascular:
            self._emit(EventKind.step_warning, f"{agent} went into a blood vessel", key="intravascular")
        if sp.intrathecal:
            self._emit(EventKind.step_warning, f"{agent} went into the dural sac", key="intrathecal")
