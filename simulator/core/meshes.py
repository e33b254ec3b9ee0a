"""Meshes: STL reading and writing (binary and ASCII, welded on read) and a few exact meshes (box,
subdivided box, icosphere) for tests and benchmarks.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from simulator.core.anatomy import TriMesh


class MeshFileError(ValueError):
    """A surface file that cannot be read; the message names the file (and line for ASCII)."""


def weld(vertices: np.ndarray, faces: np.ndarray | None = None) -> TriMesh:
    """Merge identical vertices (STL stores three per triangle) into an indexed mesh."""
    v = np.asarray(vertices, dtype=np.float32).reshape(-1, 3)
    uniq, inverse = np.unique(v, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    f = inverse.reshape(-1, 3) if faces is None else inverse[np.asarray(faces)]
    return TriMesh(uniq, f.astype(np.int32))


def read_stl(path) -> TriMesh:
    """Read a binary or ASCII STL file into a welded TriMesh (RAS mm as stored)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise MeshFileError(f"{path}: cannot read ({e.strerror or e})") from None
    if len(data) >= 84:
        (n,) = struct.unpack_from("<I", data, 80)
        if 84 + 50 * n == len(data) and n > 0:
            rec = np.frombuffer(data, dtype=np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")]), count=n, offset=84)
            v = rec["v"].reshape(-1, 3)
            if not np.all(np.isfinite(v)):
                raise MeshFileError(f"{path}: binary STL has non-finite vertex coordinates")
            return weld(v)
    head = data[:512].lstrip().lower()
    if not head.startswith(b"solid"):
        raise MeshFileError(
            f"{path}: not an STL file (binary size does not match its triangle count, and it does not start with 'solid')"
        )
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise MeshFileError(f"{path}: ASCII STL contains non-ASCII bytes") from None
    verts = []
    in_loop = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        tok = line.split()
        if not tok:
            continue
        key = tok[0].lower()
        if key == "vertex":
            if len(tok) != 4:
                raise MeshFileError(f"{path}:{lineno}: 'vertex' needs three numbers, got {line.strip()!r}")
            try:
                verts.append([float(x) for x in tok[1:]])
            except ValueError:
                raise MeshFileError(f"{path}:{lineno}: bad vertex coordinates {line.strip()!r}") from None
            in_loop += 1
        elif key == "outer":
            in_loop = 0
        elif key == "endloop":
            if in_loop != 3:
                raise MeshFileError(f"{path}:{lineno}: a facet loop has {in_loop} vertices, expected 3")
        elif key not in ("solid", "facet", "endfacet", "endsolid"):
            raise MeshFileError(f"{path}:{lineno}: unexpected keyword {tok[0]!r} in ASCII STL")
    if not verts or len(verts) % 3:
        raise MeshFileError(f"{path}: ASCII STL holds no complete triangles")
    v = np.array(verts, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise MeshFileError(f"{path}: ASCII STL has non-finite vertex coordinates")
    return weld(v)


def write_stl(path, mesh: TriMesh, binary: bool = True, name: str = "tissue") -> None:
    """Binary (little endian; `name` is the 80-byte header) or ASCII STL, normals from the right-hand
    rule. `path` may be a binary file object."""
    tri = mesh.vertices.astype(np.float32)[mesh.faces]
    nrm = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    ln = np.linalg.norm(nrm, axis=1, keepdims=True)
    nrm = np.where(ln > 0, nrm / np.where(ln > 0, ln, 1), 0).astype(np.float32)
    if binary:
        rec = np.zeros(len(tri), dtype=np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")]))
        rec["n"] = nrm
        rec["v"] = tri
        header = name.encode("ascii", "replace")[:80].ljust(80, b" ")
        if header.lower().startswith(b"solid"):
            header = b"binary " + header[:73]
        data = header + struct.pack("<I", len(tri)) + rec.tobytes()
        if hasattr(path, "write"):
            path.write(data)
        else:
            Path(path).write_bytes(data)
    else:
        lines = [f"solid {name}"]
        for n_, t in zip(nrm, tri):
            lines.append(f"  facet normal {n_[0]:.9g} {n_[1]:.9g} {n_[2]:.9g}")
            lines.append("    outer loop")
            for p in t:
                lines.append(f"      vertex {p[0]:.9g} {p[1]:.9g} {p[2]:.9g}")
            lines.append("    endloop")
            lines.append("  endfacet")
        lines.append(f"endsolid {name}")
        Path(path).write_text("\n".join(lines) + "\n")


def box_mesh(lo, hi) -> TriMesh:
    """Closed, outward-oriented box with corners lo and hi (12 triangles)."""
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    v = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    # vertex index = 4*ix + 2*iy + iz
    f = [
        (0, 1, 3), (0, 3, 2),  # -x
        (4, 6, 7), (4, 7, 5),  # +x
        (0, 4, 5), (0, 5, 1),  # -y
        (2, 3, 7), (2, 7, 6),  # +y
        (0, 2, 6), (0, 6, 4),  # -z
        (1, 5, 7), (1, 7, 3),  # +z
    ]
    return TriMesh(v, np.array(f))


def subdivided_box_mesh(lo, hi, n: int) -> TriMesh:
    """A closed box whose faces are split into n x n squares (two triangles each)."""
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    verts: list = []
    faces: list = []
    g = np.linspace(0.0, 1.0, n + 1)
    for axis in range(3):
        for side in (0, 1):
            u_ax, v_ax = [a for a in range(3) if a != axis]
            base = len(verts)
            for i in range(n + 1):
                for j in range(n + 1):
                    p = np.empty(3)
                    p[axis] = hi[axis] if side else lo[axis]
                    p[u_ax] = lo[u_ax] + g[i] * (hi[u_ax] - lo[u_ax])
                    p[v_ax] = lo[v_ax] + g[j] * (hi[v_ax] - lo[v_ax])
                    verts.append(p)
            for i in range(n):
                for j in range(n):
                    a = base + i * (n + 1) + j
                    b, c, d = a + (n + 1), a + (n + 1) + 1, a + 1
                    faces.append((a, b, c))
                    faces.append((a, c, d))
    v = np.array(verts)
    # Merge the shared edge vertices, then orient every face outward.
    mesh = weld(v, np.array(faces))
    t = mesh.triangles()
    centre = (lo + hi) / 2
    nrm = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
    flip = np.einsum("ij,ij->i", nrm, t.mean(axis=1) - centre) < 0
    f = mesh.faces.copy()
    f[flip] = f[flip][:, [0, 2, 1]]
    return TriMesh(mesh.vertices, f)


def icosphere(center=(0.0, 0.0, 0.0), radius_mm: float = 1.0, subdivisions: int = 2) -> TriMesh:
    """Closed, outward-oriented sphere mesh (an icosahedron subdivided)."""
    t = (1.0 + 5 ** 0.5) / 2.0
    v = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
         (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    f = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2), (10, 7, 6),
         (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7),
         (9, 8, 1)]
    verts = [np.array(p, dtype=np.float64) / np.linalg.norm(p) for p in v]
    faces = list(f)
    for _ in range(subdivisions):
        cache: dict[tuple[int, int], int] = {}

        def mid(i, j):
            key = (min(i, j), max(i, j))
            if key not in cache:
                m = verts[i] + verts[j]
                verts.append(m / np.linalg.norm(m))
                cache[key] = len(verts) - 1
            return cache[key]

        new = []
        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    vv = np.array(verts) * radius_mm + np.asarray(center, dtype=np.float64)
    return TriMesh(vv, np.array(faces))
