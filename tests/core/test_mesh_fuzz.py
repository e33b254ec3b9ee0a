"""STL surfaces given by users (`score --tissue`, phantom meshes): binary and ASCII files, mutated
(hypothesis), give our MeshFileError naming the file, or a sound welded mesh - never a traceback."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.core.meshes import MeshFileError, icosphere, read_stl, write_stl

from tests.mutations import fuzz_settings, mutated_bytes, mutated_text, read_damaged


@pytest.fixture(scope="module")
def stl_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("stl")
    mesh = icosphere(radius_mm=10.0, subdivisions=1)
    write_stl(d / "skin.stl", mesh, binary=True)
    write_stl(d / "skin_ascii.stl", mesh, binary=False)
    for p in d.iterdir():
        assert len(read_stl(p).faces) == len(mesh.faces)  # each reads as it is
    return d


@fuzz_settings(40)
@given(data=st.data(), name=st.sampled_from(["skin.stl", "skin_ascii.stl"]))
def test_mutated_stl_gives_our_error(stl_files, data, name):
    raw = (stl_files / name).read_bytes()
    if name == "skin_ascii.stl" and data.draw(st.booleans()):
        bad = data.draw(mutated_text(raw.decode("ascii"))).encode("utf-8", "surrogatepass")
    else:
        bad = data.draw(mutated_bytes(raw, hot=(0, 200)))
    mesh = read_damaged(bad, name, read_stl, MeshFileError)
    if mesh is None:
        return
    assert mesh.vertices.ndim == 2 and mesh.vertices.shape[1] == 3 and np.isfinite(mesh.vertices).all()
    assert mesh.faces.ndim == 2 and mesh.faces.shape[1] == 3 and len(mesh.faces)
    assert mesh.faces.min() >= 0 and mesh.faces.max() < len(mesh.vertices)
