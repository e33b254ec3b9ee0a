"""The anatomy of one patient or phantom, in patient RAS millimetres.

An `Anatomy` holds three voxel volumes on one axis-aligned grid (world = origin_mm + ijk * spacing_mm,
axes i->R, j->A, k->S), named structures with their tissue class, and one closed surface mesh per
structure plus the skin. It is plain numpy: builders live in `simulator.anatomy`, consumers
(needle, imaging, 3D view) only read it.

On disk (a cache folder): `anatomy.json` (metadata, structures), `volumes.npz` (hu, tissue, labels),
`meshes.npz` (vertices and faces per mesh).
"""
from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from simulator.core.tissue import Tissue

FORMAT_VERSION = 1


@dataclass
class TriMesh:
    """A triangle mesh in RAS mm. Faces index vertices; outward normals by right-hand rule."""

    vertices: np.ndarray  # (N, 3) float32
    faces: np.ndarray  # (M, 3) int32

    def __post_init__(self) -> None:
        self.vertices = np.ascontiguousarray(self.vertices, dtype=np.float32)
        self.faces = np.ascontiguousarray(self.faces, dtype=np.int32)

    @property
    def n_triangles(self) -> int:
        return int(self.faces.shape[0])

    def triangles(self) -> np.ndarray:
        """(M, 3, 3) float64 corner coordinates."""
        return self.vertices.astype(np.float64)[self.faces]

    def signed_volume_mm3(self) -> float:
        """Signed enclosed volume (divergence theorem); positive when oriented outward."""
        t = self.triangles()
        return float(np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2])).sum() / 6.0)

    def area_mm2(self) -> float:
        t = self.triangles()
        return float(0.5 * np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1).sum())

    def is_watertight(self) -> bool:
        """Every edge is shared by exactly two faces, traversed once in each direction."""
        if self.n_triangles == 0:
            return False
        f = self.faces
        directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
        # Each directed edge must appear exactly once, and its reverse exactly once.
        key = directed[:, 0].astype(np.int64) * (len(self.vertices) + 1) + directed[:, 1]
        rkey = directed[:, 1].astype(np.int64) * (len(self.vertices) + 1) + directed[:, 0]
        uniq, counts = np.unique(key, return_counts=True)
        if np.any(counts != 1):
            return False
        return bool(np.all(np.isin(rkey, uniq)))

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.vertices.min(axis=0), self.vertices.max(axis=0)


@dataclass
class Structure:
    """A named structure of the label volume."""

    id: int  # its value in the label volume
    name: str  # TotalSegmentator-style name, e.g. "vertebrae_L1", "aorta"
    tissue: Tissue
    group: str  # display group (spine, ribs, vessels, organs, ...)
    voxels: int = 0
    known: bool = True  # False when the name had no tissue rule (kept, reported)

    def to_json(self) -> dict:
        d = asdict(self)
        d["tissue"] = self.tissue.name
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Structure":
        d = dict(d)
        d["tissue"] = Tissue[d["tissue"]]
        return cls(**d)


@dataclass
class Anatomy:
    name: str
    hu: np.ndarray  # (I, J, K) int16, CT numbers (iodine-free for vessels is the imaging's job)
    tissue: np.ndarray  # (I, J, K) uint8, Tissue codes
    labels: np.ndarray  # (I, J, K) uint16, structure ids (0 = none)
    spacing_mm: np.ndarray  # (3,)
    origin_mm: np.ndarray  # (3,) RAS of voxel (0, 0, 0) centre
    structures: dict[int, Structure] = field(default_factory=dict)
    meshes: dict[str, TriMesh] = field(default_factory=dict)  # structure name or "skin"
    source: dict = field(default_factory=dict)  # provenance: kind, files, hashes
    unknown_structures: list[str] = field(default_factory=list)
    contrast_enhanced: bool = False  # CT with iodine in its vessels

    def __post_init__(self) -> None:
        self.spacing_mm = np.asarray(self.spacing_mm, dtype=np.float64).reshape(3)
        self.origin_mm = np.asarray(self.origin_mm, dtype=np.float64).reshape(3)
        if not (self.hu.shape == self.tissue.shape == self.labels.shape):
            raise ValueError(
                f"anatomy {self.name!r}: volume shapes differ: hu {self.hu.shape}, "
                f"tissue {self.tissue.shape}, labels {self.labels.shape}"
            )

    # --- geometry -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.hu.shape)  # type: ignore[return-value]

    @property
    def ijk_to_ras(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = np.diag(self.spacing_mm)
        m[:3, 3] = self.origin_mm
        return m

    def bounds_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """RAS of the outer faces of the voxel grid (min corner, max corner)."""
        lo = self.origin_mm - 0.5 * self.spacing_mm
        hi = self.origin_mm + (np.array(self.shape) - 0.5) * self.spacing_mm
        return lo, hi

    def ras_to_ijk(self, points_ras: np.ndarray) -> np.ndarray:
        p = np.asarray(points_ras, dtype=np.float64)
        return (p - self.origin_mm) / self.spacing_mm

    def _nearest(self, volume: np.ndarray, points_ras: np.ndarray, outside) -> np.ndarray:
        p = np.atleast_2d(np.asarray(points_ras, dtype=np.float64))
        ijk = np.rint(self.ras_to_ijk(p)).astype(np.int64)
        shape = np.array(self.shape)
        inside = np.all((ijk >= 0) & (ijk < shape), axis=1)
        out = np.full(len(p), outside, dtype=volume.dtype)
        q = ijk[inside]
        out[inside] = volume[q[:, 0], q[:, 1], q[:, 2]]
        return out

    def tissue_at(self, points_ras: np.ndarray) -> np.ndarray:
        """Tissue code (nearest voxel) at each point; AIR outside the grid."""
        return self._nearest(self.tissue, points_ras, int(Tissue.AIR))

    def label_at(self, points_ras: np.ndarray) -> np.ndarray:
        return self._nearest(self.labels, points_ras, 0)

    def hu_at(self, points_ras: np.ndarray) -> np.ndarray:
        return self._nearest(self.hu, points_ras, -1000)

    def structure_at(self, point_ras) -> Structure | None:
        sid = int(self.label_at(np.asarray(point_ras)[None])[0])
        return self.structures.get(sid)

    def structure_by_name(self, name: str) -> Structure | None:
        for s in self.structures.values():
            if s.name == name:
                return s
        return None

    def centroid_mm(self, name: str) -> np.ndarray | None:
        """Centroid (RAS mm) of a structure's voxels, or None if absent."""
        s = self.structure_by_name(name)
        if s is None:
            return None
        idx = np.argwhere(self.labels == s.id)
        if len(idx) == 0:
            return None
        return self.origin_mm + idx.mean(axis=0) * self.spacing_mm

    # --- storage --------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "volumes.tmp.npz"
        np.savez(tmp, hu=self.hu, tissue=self.tissue, labels=self.labels)
        tmp.replace(folder / "volumes.npz")
        arrays = {}
        for i, (name, mesh) in enumerate(self.meshes.items()):
            arrays[f"v{i}"] = mesh.vertices
            arrays[f"f{i}"] = mesh.faces
        tmp = folder / "meshes.tmp.npz"
        np.savez(tmp, **arrays)
        tmp.replace(folder / "meshes.npz")
        meta = {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "spacing_mm": self.spacing_mm.tolist(),
            "origin_mm": self.origin_mm.tolist(),
            "shape": list(self.shape),
            "structures": [s.to_json() for s in self.structures.values()],
            "meshes": list(self.meshes.keys()),
            "source": self.source,
            "unknown_structures": self.unknown_structures,
            "contrast_enhanced": self.contrast_enhanced,
        }
        # anatomy.json is written last: its presence marks a complete cache.
        tmp = folder / "anatomy.tmp.json"
        tmp.write_text(json.dumps(meta, indent=1))
        tmp.replace(folder / "anatomy.json")

    @classmethod
    def load(cls, folder: str | Path, with_meshes: bool = True) -> "Anatomy":
        folder = Path(folder)
        meta_file = folder / "anatomy.json"
        try:
            meta = json.loads(meta_file.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{meta_file}: no built anatomy here") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{meta_file}: not valid JSON ({e})") from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{meta_file}: format_version {meta.get('format_version')} != {FORMAT_VERSION}")
        try:
            with np.load(folder / "volumes.npz") as z:
                hu, tissue, labels = z["hu"], z["tissue"], z["labels"]
            meshes: dict[str, TriMesh] = {}
            if with_meshes:
                with np.load(folder / "meshes.npz") as z:
                    for i, name in enumerate(meta["meshes"]):
                        meshes[name] = TriMesh(z[f"v{i}"], z[f"f{i}"])
        except (zipfile.BadZipFile, zlib.error, EOFError, KeyError) as e:
            raise ValueError(f"{folder}: a damaged anatomy archive ({type(e).__name__}: {e})") from None
        structures = {d["id"]: Structure.from_json(d) for d in meta["structures"]}
        return cls(
            name=meta["name"],
            hu=hu,
            tissue=tissue,
            labels=labels,
            spacing_mm=np.array(meta["spacing_mm"]),
            origin_mm=np.array(meta["origin_mm"]),
            structures=structures,
            meshes=meshes,
            source=meta.get("source", {}),
            unknown_structures=meta.get("unknown_structures", []),
            contrast_enhanced=meta.get("contrast_enhanced", False),
        )
