"""The editor's forms, one module a tab: `targets`, `critical` (structures to avoid), `plan` (entry
zone, trajectory, tunnel preview, plan check), `steps` (steps and agent limits), `imaging`,
`rubric`, `text` (instructions and references), `meta` (the scenario's metadata) and `patient`
(vignette, prognostic block, course model, follow-up and variant); `common`
holds what they share. Every widget edits the document through `fields.Binder` (undoable) and
shows the validator's message for its field.
"""
from __future__ import annotations

from simulator.ui.editor.panels.common import scroll, structure_order
from simulator.ui.editor.panels.critical import CriticalPanel
from simulator.ui.editor.panels.imaging import ImagingPanel
from simulator.ui.editor.panels.meta import MetaPanel
from simulator.ui.editor.panels.patient import PatientPanel
from simulator.ui.editor.panels.plan import PlanPanel
from simulator.ui.editor.panels.rubric import RubricPanel
from simulator.ui.editor.panels.steps import StepsPanel
from simulator.ui.editor.panels.targets import TargetsPanel
from simulator.ui.editor.panels.text import TextPanel

__all__ = ["CriticalPanel", "ImagingPanel", "MetaPanel", "PatientPanel", "PlanPanel", "RubricPanel", "StepsPanel", "TargetsPanel",
           "TextPanel", "scroll", "structure_order"]
