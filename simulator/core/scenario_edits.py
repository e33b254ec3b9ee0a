"""Edits the editor's tools make on a `ScenarioDocument` (each one undo step): add a target (or one
from a label-based proposal of the anatomy), set the planned trajectory, add a critical structure.
"""
from __future__ import annotations

from typing import Any, Optional

from simulator.core.scenario_doc import ScenarioDocError, ScenarioDocument
from simulator.core.scenario_yaml import is_number, normalise, round_mm




def _points(points_mm) -> list[list[float]]:
    pts = normalise(points_mm)
    if pts and is_number(pts[0]):
        pts = [pts]
    out = []
    for p in pts:
        if len(p) != 3:
            raise ScenarioDocError(f"a point has three coordinates [r, a, s] in mm, got {p!r}")
        out.append([round_mm(v) for v in p])
    return out


def add_target(doc: ScenarioDocument, *, id: str, name: str, kind: str = "point", points_mm,
               radius_mm: float = 0.0, tolerance_mm: float = 5.0, side: str = "midline",
               proposal: Optional[str] = None) -> int:
    """Append a target (points rounded to 0.1 mm); returns its index."""
    target: dict[str, Any] = {"id": id, "name": name, "kind": kind}
    if points_mm is not None:
        target["points_mm"] = _points(points_mm)
    if radius_mm:
        target["radius_mm"] = float(radius_mm)
    target["tolerance_mm"] = tolerance_mm
    target["side"] = side
    if proposal:
        target["proposal"] = proposal
    n = len(doc.get(("targets",), None) or [])
    doc.insert(("targets",), -1, target, label=f"Add target {id}")
    return n


def target_from_proposal(doc: ScenarioDocument, anatomy, proposal_name: str, *,
                         target_id: Optional[str] = None, tolerance_mm: float = 5.0) -> int:
    """Append the label-based proposal `proposal_name` of `anatomy` (simulator.core.proposals)
    as a target with its points (rounded to 0.1 mm) and the proposal's name; returns its index.
    Raises ScenarioDocError when the anatomy's labels do not support that proposal."""
    from simulator.core.proposals import propose, propose_targets  # late: scipy label analysis

    p = propose(anatomy, proposal_name)
    if p is None:
        known = ", ".join(sorted(propose_targets(anatomy))) or "none"
        raise ScenarioDocError(f"anatomy {getattr(anatomy, 'name', '?')!r} has no proposal {proposal_name!r} "
                               f"(its labels support: {known})")
    existing = {t.get("id") for t in (doc.get(("targets",), None) or []) if isinstance(t, dict)}
    tid = target_id or p.name
    base, n = tid, 2
    while tid in existing:
        tid, n = f"{base}_{n}", n + 1
    name = p.description.split(":")[0] if p.description else p.name.replace("_", " ")
    return add_target(doc, id=tid, name=name, kind=p.kind, points_mm=p.points_mm,
                      radius_mm=p.radius_mm if p.kind != "point" else 0.0,
                      tolerance_mm=tolerance_mm, side=p.side, proposal=p.name)


def set_planned_trajectory(doc: ScenarioDocument, entry_mm, target_mm, target_id: Optional[str] = None) -> None:
    """Set planned_trajectory (entry and tip rounded to 0.1 mm); one undo step."""
    traj: dict[str, Any] = {"entry_mm": _points(entry_mm)[0], "target_mm": _points(target_mm)[0]}
    if target_id is not None:
        traj["target_id"] = target_id
    with doc.batch("Set the planned trajectory"):
        doc.set(("planned_trajectory",), traj)
        if target_id is None and doc.has(("planned_trajectory", "target_id")):
            doc.unset(("planned_trajectory", "target_id"))


def add_critical_structure(doc: ScenarioDocument, *, structure: Optional[str] = None, tissue: Optional[str] = None,
                           severity: str = "major", message: Optional[str] = None) -> int:
    """Append a critical structure (a structure name of the anatomy or a tissue class); returns
    its index."""
    item: dict[str, Any] = {}
    if structure is not None:
        item["structure"] = structure
    if tissue is not None:
        item["tissue"] = tissue
    item["severity"] = normalise(severity)
    if message:
        item["message"] = message
    n = len(doc.get(("critical_structures",), None) or [])
    doc.insert(("critical_structures",), -1, item, label=f"Add critical structure {structure or tissue}")
    return n
