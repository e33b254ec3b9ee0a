"""How the anatomy's structures are displayed: the order of the structure groups, the opacity and
visibility each group starts with, and `StructureInfo` (a structure's actors in the scene).
"""
from __future__ import annotations

from dataclasses import dataclass

from vtkmodules.vtkRenderingCore import vtkActor

from simulator.core.tissue import Tissue

#: Order of the structure groups in menus and panels (unknown groups follow, sorted).
GROUP_ORDER = (
    "skin", "spine", "ribs", "bone", "vessels", "organs", "bowel", "lungs", "nervous",
    "muscle", "fat", "soft tissue", "phantom", "other",
)
#: Opacity a group starts with; the rest are opaque. The skin and the bulky groups that hide the
#: spine and the retroperitoneum (lungs, back muscles) start translucent.
DEFAULT_GROUP_OPACITY = {
    "skin": 0.22, "lungs": 0.30, "muscle": 0.40, "fat": 0.25, "soft tissue": 0.40, "phantom": 0.25,
    "bowel": 0.85,
}
DEFAULT_GROUP_VISIBLE = {"fat": False, "soft tissue": False}


@dataclass
class StructureInfo:
    name: str
    group: str
    tissue: Tissue
    colour: tuple[float, float, float]
    actor: vtkActor
    triangles: int
    #: The moving frame's actor: the decimated copies of the group's structures merged into one
    #: mesh (one draw call per group), coloured per vertex (a translucent group's structures blend
    #: in mesh order; the groups in draw order, by distance, as in the still frame).
    lod_actor: vtkActor | None = None
    lod_key: str = ""  # "group:" and the structure's group
    lod_triangles: int = 0  # triangles of this structure's decimated copy
    lod_points: tuple[int, int] = (0, 0)  # its points in the group mesh
    #: The medium still frame's actor (a decimated copy; shares the full actor's property, so
    #: colour, opacity and tint follow by themselves), None when the mesh is drawn whole.
    mid_actor: vtkActor | None = None
    mid_triangles: int = 0
