"""Metal implants in a CT: found, labelled `metal_implant`, given the attenuation of metal, and the
scanner's metal streaks taken out of the soft tissue around them.

Why: a CT scanner's 12-bit scale saturates at metal (3071 HU), so a hip stem or a nail carries the
CT number of dense bone. A fluoroscopy simulated from those numbers would show it as a slightly
denser bone, where a real C-arm shows it black (bone-white display: white) and opaque; an
ultrasound simulated from the tissue classes would not show it at all. And the reconstruction
streaks a CT draws around metal (bright and dark bands through the soft tissue) are artefacts of
the CT, not anatomy: a dark streak in the thigh would read as fat or gas.

What (`find_metal`, `apply_metal`):
- metal: voxels of at least METAL_SEED_HU, grown into connected voxels of at least METAL_GROW_HU
  (the partial-volume rim), in pieces of at least METAL_MIN_MM3. On a contrast-enhanced CT,
  undiluted contrast in the injected vein also saturates: there only pieces lying mostly inside a
  labelled bone count as metal.
- the metal voxels get their own structure (tissue METAL, label `metal_implant`, cut out of the bone
  it sits in) and the CT number METAL_HU: stainless steel and cobalt-chrome measure about 13,000 HU
  and more on an extended CT scale, so the fluoroscopy's HU-to-attenuation conversion makes the
  implant about 0.37 /mm at 60 keV - a 15 mm stem transmits under 0.5 % (opaque). The ultrasound
  gives the METAL class a steel impedance and attenuation: a bright surface echo, nothing behind.
- streaks: within METAL_ARTEFACT_MM of the metal, soft-tissue voxels (not labelled bone, not metal)
  are limited to STREAK_CLIP_HU, the range from fat to muscle, so neither gas nor bone is invented.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from simulator.core.tissue import BONE, TISSUE_INFO, Tissue, tissue_for_structure

METAL_STRUCTURE = "metal_implant"
METAL_SEED_HU = 2500.0
METAL_GROW_HU = 2000.0
METAL_MIN_MM3 = 100.0
METAL_HU = int(TISSUE_INFO[Tissue.METAL].hu)
METAL_ARTEFACT_MM = 40.0
STREAK_CLIP_HU = (-150, 150)
ENHANCED_IN_BONE_FRACTION = 0.5


def _bone_ids(structure_names: dict[int, str]) -> np.ndarray:
    ids = [sid for sid, name in structure_names.items() if tissue_for_structure(str(name)) in BONE]
    return np.asarray(ids, dtype=np.int64)


def find_metal(hu: np.ndarray, labels: np.ndarray, spacing: np.ndarray, structure_names: dict[int, str],
               contrast_enhanced: bool = False) -> np.ndarray | None:
    """Bool mask of metal implants (see the module doc), or None when there are none."""
    seeds = hu >= METAL_SEED_HU
    if not seeds.any():
        return None
    grown, n = ndi.label(hu >= METAL_GROW_HU, structure=np.ones((3, 3, 3), bool))
    voxel_mm3 = float(np.prod(spacing))
    sizes = np.bincount(grown.ravel(), minlength=n + 1) * voxel_mm3
    seeded = np.zeros(n + 1, bool)
    seeded[np.unique(grown[seeds])] = True
    keep = seeded & (sizes >= METAL_MIN_MM3)
    keep[0] = False
    if contrast_enhanced and keep.any():
        in_bone = np.isin(labels, _bone_ids(structure_names)) & (grown > 0)
        bone_counts = np.bincount(grown[in_bone], minlength=n + 1) * voxel_mm3
        keep &= bone_counts >= ENHANCED_IN_BONE_FRACTION * np.maximum(sizes, 1e-9)
    if not keep.any():
        return None
    return keep[grown]


def apply_metal(hu: np.ndarray, labels: np.ndarray, metal: np.ndarray, spacing: np.ndarray,
                structure_names: dict[int, str], metal_id: int) -> dict:
    """In place: streaks clipped around `metal`, then the metal voxels labelled `metal_id`.
    Returns what was done (for the anatomy's source notes)."""
    voxel_mm3 = float(np.prod(spacing))
    hosts = np.bincount(labels[metal].astype(np.int64))
    inside = [structure_names.get(int(i), f"label_{i}") for i in np.argsort(-hosts) if i and hosts[i]]
    pad = np.ceil(METAL_ARTEFACT_MM / spacing).astype(int)
    where = np.argwhere(metal)
    lo = np.maximum(where.min(axis=0) - pad, 0)
    hi = np.minimum(where.max(axis=0) + pad + 1, np.array(hu.shape))
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    near = ndi.distance_transform_edt(~metal[box], sampling=spacing) <= METAL_ARTEFACT_MM
    soft = near & ~metal[box] & ~np.isin(labels[box], _bone_ids(structure_names))
    sub = hu[box]
    before = sub[soft].copy()
    sub[soft] = np.clip(before, *STREAK_CLIP_HU)
    changed = int(np.count_nonzero(sub[soft] != before))
    labels[metal] = metal_id
    return {
        "metal_implant_mm3": round(float(metal.sum()) * voxel_mm3, 1),
        "metal_implant_in": inside,
        "metal_hu": METAL_HU,
        "metal_streak_voxels_clipped": changed,
    }


def set_metal_hu(hu: np.ndarray, labels: np.ndarray, metal_id: int) -> None:
    """In place: the metal voxels carry METAL_HU (after any resampling of the CT numbers)."""
    hu[labels == metal_id] = METAL_HU
