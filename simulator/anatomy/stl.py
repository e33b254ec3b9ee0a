"""Binary STL reading and writing (numpy only, no VTK)."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from simulator.core.anatomy import TriMesh


def write_stl(mesh: TriMesh, path, header: str = "neurolysis-trainer") -> None:
    """Binary STL (little endian), normals from the right-hand rule; `path` may be a file object."""
    tri = mesh.vertices.astype(np.float32)[mesh.faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    n = np.divide(n, norm, out=np.zeros_like(n), where=norm > 0).astype(np.float32)
    rec = np.zeros(len(tri), dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
    rec["n"] = n
    rec["v"] = tri
    head = header.encode("ascii", "replace")[:80].ljust(80, b" ")
    data = head + struct.pack("<I", len(tri)) + rec.tobytes()
    if hasattr(path, "write"):
        path.write(data)
    else:
        Path(path).write_bytes(data)


def read_stl(path: str | Path) -> TriMesh:
    """Read a binary STL, merging identical corner coordinates into shared vertices."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 84:
        raise ValueError(f"{path}: not a binary STL file (only {len(data)} bytes)")
    (count,) = struct.unpack_from("<I", data, 80)
    if len(data) != 84 + 50 * count:
        raise ValueError(f"{path}: binary STL says {count} triangles but has {len(data)} bytes")
    rec = np.frombuffer(data, dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")], count=count,
                        offset=84)
    corners = rec["v"].reshape(-1, 3)
    verts, inverse = np.unique(corners, axis=0, return_inverse=True)
    return TriMesh(verts, inverse.reshape(-1, 3))
