"""The test block: a small analytic anatomy with exactly known geometry, `phantom:test_block`
(`simulator.anatomy.load_anatomy`): a prone patient's back from skin to a vertebral body with the
aorta, the inferior vena cava, a kidney, the spinal canal and a lung base. The scoring benchmark
and the tests score scripted attempts on it.
"""
from __future__ import annotations

import numpy as np

from simulator.core.anatomy import Anatomy, Structure
from simulator.core.meshes import box_mesh
from simulator.core.tissue import TISSUE_INFO, Tissue, structure_group

# Geometry of the test block (RAS mm). Posterior skin at y = -70; the needle goes anteriorly (+y).
BLOCK_LO = (-60.0, -80.0, -60.0)  # grid extent
BLOCK_HI = (60.0, 40.0, 60.0)
SKIN_Y = -70.0
FAT_Y = -68.0
MUSCLE_Y = -55.0
RETRO_Y = -35.0
VERTEBRA = ((-15.0, -25.0), (15.0, 5.0))  # x, y box of the vertebral body (all z)
AORTA = ((-20.0, 18.0), 9.0)  # centre (x, y), radius; runs along z
IVC = ((20.0, 16.0), 8.0)
KIDNEY = ((-52.0, 8.0, 0.0), 10.0)  # sphere
CANAL = ((0.0, -31.0), 5.0)  # cylinder along z (CSF)
LUNG = (-30.0, 40.0)  # x < -30 and z > 40
TARGET = (-32.0, 30.0, 0.0)  # celiac plexus (left), anterolateral to the aorta
ENTRY = (-56.0, SKIN_Y, 0.0)

STRUCTURES = {
    1: ("vertebrae_L1", Tissue.CANCELLOUS_BONE),
    2: ("aorta", Tissue.ARTERY),
    3: ("inferior_vena_cava", Tissue.VEIN),
    4: ("kidney_left", Tissue.KIDNEY),
    5: ("spinal_canal", Tissue.CSF),
    6: ("lung_lower_lobe_left", Tissue.LUNG),
    7: ("autochthon_left", Tissue.MUSCLE),
}


def synthetic_block_anatomy(spacing_mm=(1.0, 1.0, 2.0)) -> Anatomy:
    """The test block (see the module notes). Voxel centres sit half a voxel inside the block
    faces, so the body surface y = -70 lies exactly between voxel centres, as does its skin mesh."""
    sp = np.asarray(spacing_mm, dtype=np.float64)
    lo = np.asarray(BLOCK_LO)
    hi = np.asarray(BLOCK_HI)
    shape = np.round((hi - lo) / sp).astype(int)
    origin = lo + 0.5 * sp
    x = origin[0] + np.arange(shape[0]) * sp[0]
    y = origin[1] + np.arange(shape[1]) * sp[1]
    z = origin[2] + np.arange(shape[2]) * sp[2]
    X, Y, Z = np.meshgrid(x, y, z, indexing="ij")
    tissue = np.full(tuple(shape), int(Tissue.AIR), np.uint8)
    labels = np.zeros(tuple(shape), np.uint16)
    tissue[Y >= SKIN_Y] = int(Tissue.SKIN)
    tissue[Y >= FAT_Y] = int(Tissue.FAT)
    musc = (Y >= MUSCLE_Y) & (Y < RETRO_Y)
    tissue[musc] = int(Tissue.MUSCLE)
    labels[musc & (X < 0)] = 7
    tissue[Y >= RETRO_Y] = int(Tissue.FAT)

    def put(mask, sid):
        tissue[mask] = int(STRUCTURES[sid][1])
        labels[mask] = sid

    (vx0, vy0), (vx1, vy1) = VERTEBRA
    put((X >= vx0) & (X <= vx1) & (Y >= vy0) & (Y <= vy1), 1)
    (ax, ay), ar = AORTA
    put((X - ax) ** 2 + (Y - ay) ** 2 <= ar * ar, 2)
    (ix, iy), ir = IVC
    put((X - ix) ** 2 + (Y - iy) ** 2 <= ir * ir, 3)
    (kx, ky, kz), kr = KIDNEY
    put((X - kx) ** 2 + (Y - ky) ** 2 + (Z - kz) ** 2 <= kr * kr, 4)
    (cx, cy), cr = CANAL
    put((X - cx) ** 2 + (Y - cy) ** 2 <= cr * cr, 5)
    put((X < LUNG[0]) & (Z > LUNG[1]) & (Y >= RETRO_Y), 6)
    hu_table = np.array([TISSUE_INFO[Tissue(i)].hu if i in Tissue._value2member_map_ else 0 for i in range(256)])
    hu = hu_table[tissue].astype(np.int16)
    structures = {}
    for sid, (name, t) in STRUCTURES.items():
        structures[sid] = Structure(id=sid, name=name, tissue=t, group=structure_group(name, t),
                                    voxels=int(np.sum(labels == sid)))
    skin = box_mesh((lo[0], SKIN_Y, lo[2]), (hi[0], hi[1], hi[2]))
    return Anatomy(name="test_block", hu=hu, tissue=tissue, labels=labels, spacing_mm=sp, origin_mm=origin,
                   structures=structures, meshes={"skin": skin}, source={"kind": "synthetic", "hash": "test_block_v1"})
