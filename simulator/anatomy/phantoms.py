"""Analytic phantoms with exactly known geometry (patient RAS mm; the probe sits on the anterior
surface y = 0 and depth runs towards -y).

- `gel_block`: ultrasound gel box x in [-40, 40], y in [-50, 0], z in [-40, 40]; an artery
  ("vessel", radius 4 mm) along z with its axis at (x, y) = (-8, -20); a nerve ("nerve", radius
  2.5 mm) along z at (7, -20). Air outside.
- `layered_block`: box x in [-50, 50], y in [-60, 0], z in [-50, 50]: skin y in [-2, 0], fat
  [-12, -2], muscle [-60, -12]; a cortical bone plate ("bone_plate") y in [-37, -32], x in [-30, 30],
  z in [-40, 40]; a nerve (radius 2 mm, along z) lying on the plate, axis at (0, -30).

`PHANTOMS[name]` holds the primitives (`Part(structure, tissue, shape)`, later parts paint over
earlier ones); each shape answers `contains(points)`, `volume_mm3()` and gives an exact closed
`mesh()`. `make_phantom(name)` voxelises them at 0.5 mm (voxel faces on the primitives' planes, so
box voxel counts are exact). `write_phantom_assets()` writes the meshes (binary STL, one per
structure, in assets/meshes/<phantom>/) and `<phantom>.json` describing the geometry; `make_phantom`
reads those files when present.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simulator.core.anatomy import Anatomy, Structure, TriMesh
from simulator.core.paths import MESHES_DIR
from simulator.core.tissue import TISSUE_INFO, Tissue, structure_group

VOXEL_MM = 0.5
MARGIN_MM = 5.0  # air around the block
CYLINDER_SEGMENTS = 64


@dataclass(frozen=True)
class Box:
    lo_mm: tuple[float, float, float]
    hi_mm: tuple[float, float, float]

    def contains(self, points: np.ndarray) -> np.ndarray:
        p = np.atleast_2d(np.asarray(points, dtype=np.float64))
        return np.all((p >= np.array(self.lo_mm)) & (p <= np.array(self.hi_mm)), axis=1)

    def volume_mm3(self) -> float:
        return float(np.prod(np.subtract(self.hi_mm, self.lo_mm)))

    def mesh(self) -> TriMesh:
        return box_mesh(self.lo_mm, self.hi_mm)

    def to_json(self) -> dict:
        return {"shape": "box", "lo_mm": list(self.lo_mm), "hi_mm": list(self.hi_mm)}


@dataclass(frozen=True)
class CylinderZ:
    """A right circular cylinder whose axis is parallel to z."""

    center_xy_mm: tuple[float, float]
    radius_mm: float
    z_mm: tuple[float, float]

    def contains(self, points: np.ndarray) -> np.ndarray:
        p = np.atleast_2d(np.asarray(points, dtype=np.float64))
        d2 = (p[:, 0] - self.center_xy_mm[0]) ** 2 + (p[:, 1] - self.center_xy_mm[1]) ** 2
        return (d2 <= self.radius_mm ** 2) & (p[:, 2] >= self.z_mm[0]) & (p[:, 2] <= self.z_mm[1])

    def volume_mm3(self) -> float:
        return float(np.pi * self.radius_mm ** 2 * (self.z_mm[1] - self.z_mm[0]))

    def distance_to_axis_mm(self, points: np.ndarray) -> np.ndarray:
        p = np.atleast_2d(np.asarray(points, dtype=np.float64))
        return np.hypot(p[:, 0] - self.center_xy_mm[0], p[:, 1] - self.center_xy_mm[1])

    def axis_points_mm(self) -> np.ndarray:
        """The axis as a two-point polyline (from low z to high z)."""
        x, y = self.center_xy_mm
        return np.array([[x, y, self.z_mm[0]], [x, y, self.z_mm[1]]], dtype=np.float64)

    def mesh(self) -> TriMesh:
        return cylinder_mesh(self.center_xy_mm, self.radius_mm, self.z_mm)

    def to_json(self) -> dict:
        return {"shape": "cylinder", "axis": "z", "center_xy_mm": list(self.center_xy_mm),
                "radius_mm": self.radius_mm, "z_mm": list(self.z_mm)}


@dataclass(frozen=True)
class BoxWithCavity:
    """A box with a box-shaped cavity (the muscle slab around the bone plate): its mesh has the
    outer surface facing out and the cavity's surface facing into the cavity."""

    outer: Box
    cavity: Box

    def contains(self, points: np.ndarray) -> np.ndarray:
        return self.outer.contains(points) & ~self._cavity_open(points)

    def _cavity_open(self, points) -> np.ndarray:
        p = np.atleast_2d(np.asarray(points, dtype=np.float64))
        return np.all((p > np.array(self.cavity.lo_mm)) & (p < np.array(self.cavity.hi_mm)), axis=1)

    def volume_mm3(self) -> float:
        return self.outer.volume_mm3() - self.cavity.volume_mm3()

    def mesh(self) -> TriMesh:
        a = self.outer.mesh()
        b = self.cavity.mesh()
        return TriMesh(np.concatenate([a.vertices, b.vertices]),
                       np.concatenate([a.faces, b.faces[:, ::-1] + len(a.vertices)]))

    def to_json(self) -> dict:
        return {"shape": "box_with_cavity", "outer": self.outer.to_json(), "cavity": self.cavity.to_json()}


Shape = Box | CylinderZ | BoxWithCavity


@dataclass(frozen=True)
class Part:
    structure: str
    tissue: Tissue
    shape: Shape


@dataclass(frozen=True)
class PhantomSpec:
    name: str
    description: str
    block: Box  # the body: everything outside is air
    parts: tuple[Part, ...] = field(default_factory=tuple)

    def part(self, structure: str) -> Part:
        for p in self.parts:
            if p.structure == structure:
                return p
        raise KeyError(f"phantom {self.name!r} has no structure {structure!r}")

    def tissue_at(self, points: np.ndarray) -> np.ndarray:
        """Exact tissue code at each point (later parts win; AIR outside every part)."""
        p = np.atleast_2d(np.asarray(points, dtype=np.float64))
        out = np.full(len(p), int(Tissue.AIR), np.uint8)
        for part in self.parts:
            out[part.shape.contains(p)] = int(part.tissue)
        return out

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "frame": "patient RAS millimetres; probe on the anterior surface y = 0, depth towards -y",
            "voxel_mm": VOXEL_MM,
            "block": self.block.to_json(),
            "parts": [{"structure": p.structure, "tissue": p.tissue.name, **p.shape.to_json()} for p in self.parts],
            "meshes": {name: f"{self.name}/{name}.stl" for name in _mesh_names(self)},
        }


GEL_BOX = Box((-40.0, -50.0, -40.0), (40.0, 0.0, 40.0))
LAYERED_BOX = Box((-50.0, -60.0, -50.0), (50.0, 0.0, 50.0))
BONE_PLATE = Box((-30.0, -37.0, -40.0), (30.0, -32.0, 40.0))

PHANTOMS: dict[str, PhantomSpec] = {
    "gel_block": PhantomSpec(
        name="gel_block",
        description="Ultrasound gel block with an artery (radius 4 mm) and a nerve (radius 2.5 mm) "
                    "running along z at 20 mm depth, 15 mm apart.",
        block=GEL_BOX,
        parts=(
            Part("gel", Tissue.GEL, GEL_BOX),
            Part("vessel", Tissue.ARTERY, CylinderZ((-8.0, -20.0), 4.0, (-40.0, 40.0))),
            Part("nerve", Tissue.NERVE, CylinderZ((7.0, -20.0), 2.5, (-40.0, 40.0))),
        ),
    ),
    "layered_block": PhantomSpec(
        name="layered_block",
        description="Skin 2 mm, fat 10 mm, muscle below; a 5 mm cortical bone plate at 32-37 mm depth "
                    "with a nerve (radius 2 mm) lying on it along z.",
        block=LAYERED_BOX,
        parts=(
            Part("muscle", Tissue.MUSCLE, BoxWithCavity(Box((-50.0, -60.0, -50.0), (50.0, -12.0, 50.0)), BONE_PLATE)),
            Part("fat", Tissue.FAT, Box((-50.0, -12.0, -50.0), (50.0, -2.0, 50.0))),
            Part("skin", Tissue.SKIN, Box((-50.0, -2.0, -50.0), (50.0, 0.0, 50.0))),
            Part("bone_plate", Tissue.CORTICAL_BONE, BONE_PLATE),
            Part("nerve", Tissue.NERVE, CylinderZ((0.0, -30.0), 2.0, (-50.0, 50.0))),
        ),
    ),
}


# --- analytic meshes ----------------------------------------------------------------------------

def box_mesh(lo, hi) -> TriMesh:
    """Closed box, outward faces (12 triangles)."""
    x0, y0, z0 = lo
    x1, y1, z1 = hi
    v = np.array([[x0, y0, z0], [x1, y0, z0], [x1, y1, z0], [x0, y1, z0],
                  [x0, y0, z1], [x1, y0, z1], [x1, y1, z1], [x0, y1, z1]], dtype=np.float64)
    f = np.array([
        [0, 2, 1], [0, 3, 2],  # z0 (normal -z)
        [4, 5, 6], [4, 6, 7],  # z1 (+z)
        [0, 1, 5], [0, 5, 4],  # y0 (-y)
        [3, 7, 6], [3, 6, 2],  # y1 (+y)
        [0, 4, 7], [0, 7, 3],  # x0 (-x)
        [1, 2, 6], [1, 6, 5],  # x1 (+x)
    ], dtype=np.int32)
    return TriMesh(v, f)


def cylinder_mesh(center_xy, radius, z_range, segments: int = CYLINDER_SEGMENTS) -> TriMesh:
    """Closed cylinder along z; the polygon's radius is enlarged so that its area equals pi r^2
    (the mesh encloses exactly the cylinder's volume)."""
    n = int(segments)
    r = radius * np.sqrt(2.0 * np.pi / (n * np.sin(2.0 * np.pi / n)))
    ang = 2.0 * np.pi * np.arange(n) / n
    cx, cy = center_xy
    ring = np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], axis=1)
    z0, z1 = z_range
    v = np.concatenate([
        np.column_stack([ring, np.full(n, z0)]),
        np.column_stack([ring, np.full(n, z1)]),
        [[cx, cy, z0], [cx, cy, z1]],
    ])
    i = np.arange(n)
    j = (i + 1) % n
    c0, c1 = 2 * n, 2 * n + 1
    side = np.concatenate([np.column_stack([i, j, n + j]), np.column_stack([i, n + j, n + i])])
    bottom = np.column_stack([np.full(n, c0), j, i])
    top = np.column_stack([np.full(n, c1), n + i, n + j])
    return TriMesh(v, np.concatenate([side, bottom, top]).astype(np.int32))


def _mesh_names(spec: PhantomSpec) -> list[str]:
    # "skin" is the body outline (the block); a phantom's skin layer has no separate mesh.
    return ["skin"] + [p.structure for p in spec.parts if p.structure != "skin"]


def analytic_meshes(name: str) -> dict[str, TriMesh]:
    spec = _spec(name)
    meshes = {"skin": spec.block.mesh()}
    for p in spec.parts:
        if p.structure != "skin":
            meshes[p.structure] = p.shape.mesh()
    return meshes


# --- voxelisation ------------------------------------------------------------------------------

def _spec(name: str) -> PhantomSpec:
    try:
        return PHANTOMS[name]
    except KeyError:
        raise KeyError(f"unknown phantom {name!r}; choose from {', '.join(PHANTOMS)}") from None


def phantom_grid(spec: PhantomSpec) -> tuple[np.ndarray, tuple[int, int, int]]:
    """(origin_mm of voxel (0,0,0)'s centre, shape): the block plus MARGIN_MM of air, voxel faces
    on multiples of VOXEL_MM."""
    lo = np.array(spec.block.lo_mm) - MARGIN_MM
    hi = np.array(spec.block.hi_mm) + MARGIN_MM
    shape = tuple(int(round(v)) for v in (hi - lo) / VOXEL_MM)
    return lo + 0.5 * VOXEL_MM, shape  # type: ignore[return-value]


def _voxelise(spec: PhantomSpec) -> tuple[np.ndarray, np.ndarray, dict[int, Structure], np.ndarray]:
    origin, shape = phantom_grid(spec)
    axes = [origin[a] + VOXEL_MM * np.arange(shape[a]) for a in range(3)]
    labels = np.zeros(shape, np.uint16)
    tissue = np.zeros(shape, np.uint8)
    structures: dict[int, Structure] = {}
    for sid, part in enumerate(spec.parts, start=1):
        mask = _shape_mask(part.shape, axes)
        labels[mask] = sid
        tissue[mask] = int(part.tissue)
    counts = np.bincount(labels.ravel(), minlength=len(spec.parts) + 1)
    for sid, part in enumerate(spec.parts, start=1):
        structures[sid] = Structure(sid, part.structure, part.tissue, structure_group(part.structure, part.tissue),
                                    int(counts[sid]), True)
    hu_lut = np.array([TISSUE_INFO[Tissue(t)].hu if t in Tissue._value2member_map_ else -1000
                       for t in range(256)], dtype=np.float64)
    hu = np.rint(hu_lut[tissue]).astype(np.int16)
    return hu, tissue, structures, labels


def _shape_mask(shape: Shape, axes) -> np.ndarray:
    x, y, z = axes
    if isinstance(shape, Box):
        mx = (x >= shape.lo_mm[0]) & (x <= shape.hi_mm[0])
        my = (y >= shape.lo_mm[1]) & (y <= shape.hi_mm[1])
        mz = (z >= shape.lo_mm[2]) & (z <= shape.hi_mm[2])
        return mx[:, None, None] & my[None, :, None] & mz[None, None, :]
    if isinstance(shape, CylinderZ):
        cx, cy = shape.center_xy_mm
        disk = ((x[:, None] - cx) ** 2 + (y[None, :] - cy) ** 2) <= shape.radius_mm ** 2
        mz = (z >= shape.z_mm[0]) & (z <= shape.z_mm[1])
        return disk[:, :, None] & mz[None, None, :]
    if isinstance(shape, BoxWithCavity):
        return _shape_mask(shape.outer, axes) & ~_shape_mask(shape.cavity, axes)
    raise TypeError(f"unknown phantom shape {shape!r}")


def make_phantom(name: str) -> Anatomy:
    """The phantom as an Anatomy (0.5 mm voxels; meshes from assets/meshes, else generated)."""
    spec = _spec(name)
    hu, tissue, structures, labels = _voxelise(spec)
    origin, _ = phantom_grid(spec)
    meshes = read_phantom_meshes(name)
    if meshes is None:
        meshes = analytic_meshes(name)
    return Anatomy(
        name=f"phantom:{name}",
        hu=hu,
        tissue=tissue,
        labels=labels,
        spacing_mm=np.full(3, VOXEL_MM),
        origin_mm=origin,
        structures=structures,
        meshes=meshes,
        source={"kind": "phantom", "phantom": name, "description": spec.description,
                "geometry": spec.to_json()},
        unknown_structures=[],
        contrast_enhanced=False,
    )


# --- committed assets --------------------------------------------------------------------------

def read_phantom_meshes(name: str, folder: Path | None = None) -> dict[str, TriMesh] | None:
    """The committed STL meshes of a phantom, or None if any is missing."""
    from simulator.core.meshes import read_stl

    folder = Path(folder) if folder is not None else MESHES_DIR
    spec = _spec(name)
    out: dict[str, TriMesh] = {}
    for mesh_name in _mesh_names(spec):
        path = folder / name / f"{mesh_name}.stl"
        if not path.exists():
            return None
        out[mesh_name] = read_stl(path)
    return out


def phantom_asset_files(name: str, folder: Path | None = None) -> dict[Path, bytes]:
    """The exact bytes `write_phantom_assets` writes for a phantom, by path."""
    import io

    from simulator.core.meshes import write_stl

    folder = Path(folder) if folder is not None else MESHES_DIR
    spec = _spec(name)
    files: dict[Path, bytes] = {}
    for mesh_name, mesh in analytic_meshes(name).items():
        buf = io.BytesIO()
        write_stl(buf, mesh, name=f"neurolysis-trainer phantom {name} {mesh_name}")
        files[folder / name / f"{mesh_name}.stl"] = buf.getvalue()
    files[folder / f"{name}.json"] = (json.dumps(spec.to_json(), indent=2) + "\n").encode("utf-8")
    return files


def write_phantom_assets(folder: Path | None = None) -> list[Path]:
    """Write every phantom's meshes and description; returns the files written."""
    written = []
    for name in PHANTOMS:
        for path, data in phantom_asset_files(name, folder).items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            written.append(path)
    return written


if __name__ == "__main__":
    for p in write_phantom_assets():
        print(p)
