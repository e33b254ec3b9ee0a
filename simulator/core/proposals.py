"""Nerve target proposals derived from a TotalSegmentator-style label map, and the one rule for a
target's points (`target_points`: its own, else its proposal's on the anatomy).

Nerves are not in CT segmentations; these proposals place the usual neurolysis targets from the
labelled bones and vessels, so that any patient - bundled or imported - gets them, and a scenario
can name its targets by anatomical rule instead of coordinates ("anterolateral L3 body, left" is
`lumbar_sympathetic_l3_left`). The rules live in `proposals_trunk.py` (celiac, splanchnic,
lumbar and thoracic sympathetic chain, stellate ganglion, superior hypogastric plexus, ganglion
impar) and `proposals_girdle.py` (intercostal nerves, suprascapular notch); their geometry helpers
in `proposal_geometry.py`. A proposal whose structures are missing is skipped, and
`proposal_needs(name)` lists those structures (alternatives joined by "|").
"""
from __future__ import annotations

import re
import weakref

from simulator.core.anatomy import Anatomy
from simulator.core.proposal_geometry import LabelGeometry, Proposal
from simulator.core.proposals_girdle import NEEDS as _GIRDLE_NEEDS, girdle_proposals
from simulator.core.proposals_trunk import NEEDS as _TRUNK_NEEDS, trunk_proposals

__all__ = ["Proposal", "propose", "propose_targets", "proposal_needs", "target_points"]

_NEEDS = {**_TRUNK_NEEDS, **_GIRDLE_NEEDS}
_CACHE: dict[int, tuple[weakref.ref, dict[str, Proposal]]] = {}


def propose_targets(anatomy: Anatomy) -> dict[str, Proposal]:
    """All proposals the anatomy's labels support (name -> Proposal); cached per anatomy object."""
    key = id(anatomy)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is anatomy:
        return hit[1]
    g = LabelGeometry(anatomy)
    out: dict[str, Proposal] = {}
    for p in (*trunk_proposals(g), *girdle_proposals(g)):
        if p is not None:
            out[p.name] = p
    try:
        ref = weakref.ref(anatomy, lambda _r, k=key: _CACHE.pop(k, None))
    except TypeError:
        return out
    _CACHE[key] = (ref, out)
    return out


def propose(anatomy: Anatomy, name: str) -> Proposal | None:
    """One proposal by name (None if the anatomy's labels do not support it)."""
    return propose_targets(anatomy).get(name)


def _pattern(template: str) -> re.Pattern:
    rx = re.escape(template)
    for field, group in (("side", r"(?P<side>left|right)"), ("level", r"(?P<level>[a-z]\d+)"), ("n", r"(?P<n>\d+)")):
        rx = rx.replace(re.escape("{" + field + "}"), group)
    return re.compile(f"^{rx}$")


def proposal_needs(name: str) -> tuple[str, ...] | None:
    """The structures proposal `name` needs (each entry one name, or alternatives joined by "|"),
    or None for a name no rule knows."""
    for template, needs in _NEEDS.items():
        m = _pattern(template).match(name)
        if m:
            fields = {k: v for k, v in m.groupdict().items() if v is not None}
            if "level" in fields:
                fields["LEVEL"] = fields["level"].upper()
            return tuple(n.format(**fields) for n in needs)
    return None


def target_points(anatomy, points_mm, proposal):
    """The one rule for where a target is: its own points (`points_mm`, returned as given) when it
    has any, else the points of its `proposal` on `anatomy` ((N, 3) array), else None. Used by the
    scoring (`metrics.resolve_targets`), the plan check, the trainer and the editor."""
    if points_mm is not None and len(points_mm):
        return points_mm
    if proposal and anatomy is not None:
        p = propose(anatomy, str(proposal))
        if p is not None:
            return p.points_mm
    return None
