"""A scan's caveats, found and treated before an anatomy is built, and reported after.

`prepare_volumes` runs first in `build_anatomy`: metal implants (`metal.py`) are labelled and their
streaks clipped on the scan's own grid, then a coarse grid is refined (`regrid.py`) and the metal
gets its CT number on the finer grid. `field_of_view_cuts` finds where the scan's field of view cut
the body (skin missing along a side), and `caveats` turns all of it into sentences for the
anatomy's `source["caveats"]` (the import report and the patient's description show them).
"""
from __future__ import annotations

import numpy as np

from simulator.anatomy.metal import METAL_STRUCTURE, apply_metal, find_metal, set_metal_hu
from simulator.anatomy.regrid import FINE_MM, refine_coarse_grid

_FACES = (  # (axis, first or last index, the patient's side there: RAS +x right, +y anterior)
    (0, 0, "left"), (0, -1, "right"), (1, 0, "posterior"), (1, -1, "anterior"))
MIN_CUT_MM2 = 100.0  # a cut face smaller than this is a fold of skin touching the edge, not a cut


def prepare_volumes(hu, labels, spacing, origin, structure_names: dict[int, str], contrast_enhanced: bool,
                    progress):
    """(hu, labels, spacing, origin, structure_names, notes) with metal labelled and a coarse grid
    refined; the inputs are not modified."""
    names = dict(structure_names)
    notes: dict = {}
    metal = find_metal(hu, labels, spacing, names, contrast_enhanced)
    metal_id = None
    if metal is not None:
        progress(0.005, "metal implant")
        hu, labels = hu.copy(), labels.copy()
        metal_id = max([0, int(labels.max()), *names]) + 1
        names[metal_id] = METAL_STRUCTURE
        notes.update(apply_metal(hu, labels, metal, spacing, names, metal_id))
    coarse = np.asarray(spacing, dtype=np.float64).copy()
    hu, labels, spacing, origin, factors = refine_coarse_grid(hu, labels, spacing, origin)
    if factors is not None:
        progress(0.01, f"grid refined from {coarse.round(2).tolist()} mm")
        notes["grid_refined_from_mm"] = coarse.round(3).tolist()
        notes["grid_refine_factors"] = list(factors)
    if metal_id is not None:
        set_metal_hu(hu, labels, metal_id)
    return hu, labels, spacing, origin, names, notes


def field_of_view_cuts(body: np.ndarray, spacing, origin) -> dict:
    """Where the body touches the grid's side faces (the scan's field of view cut the skin):
    {"field_of_view_cuts": [{"side", "z_mm": [lo, hi], "area_mm2"}]} or {}."""
    sp = np.asarray(spacing, dtype=np.float64)
    out = []
    for axis, index, side in _FACES:
        face = body[index] if axis == 0 else body[:, index]
        other = 1 if axis == 0 else 0
        area = float(face.sum()) * sp[other] * sp[2]
        if area < MIN_CUT_MM2:
            continue
        ks = np.nonzero(face.any(axis=0))[0]
        z = origin[2] + ks * sp[2]
        out.append({"side": side, "z_mm": [round(float(z.min()), 1), round(float(z.max()), 1)],
                    "area_mm2": float(round(area, 0))})
    return {"field_of_view_cuts": out} if out else {}


def caveats(notes: dict, contrast_enhanced: bool) -> list[str]:
    """Sentences describing what the scan lacks and what the builder did about it."""
    out = []
    if "grid_refined_from_mm" in notes:
        sp = " x ".join(f"{v:g}" for v in notes["grid_refined_from_mm"])
        out.append(f"Coarse CT grid ({sp} mm): refined to about {FINE_MM:g} mm before the build (CT numbers "
                   f"interpolated trilinearly, label boundaries smoothed); fine detail below the scan's "
                   f"resolution is not there.")
    if "metal_implant_mm3" in notes:
        where = ", ".join(notes.get("metal_implant_in") or []) or "unlabelled tissue"
        out.append(f"Metal implant ({notes['metal_implant_mm3'] / 1000:.1f} ml, in {where}): labelled "
                   f"{METAL_STRUCTURE}, opaque on fluoroscopy and shadowing on ultrasound; CT streaks around it "
                   f"clipped to soft-tissue values ({notes.get('metal_streak_voxels_clipped', 0)} voxels).")
    for cut in notes.get("field_of_view_cuts", []):
        side = cut["side"]
        where = f"the patient's {side} side" if side in ("left", "right") else f"the {side} surface"
        out.append(f"The scan's field of view cut the body along {where} from z = {cut['z_mm'][0]:g} to "
                   f"{cut['z_mm'][1]:g} mm ({cut['area_mm2'] / 100:.0f} cm2 of cut face): no skin there, the "
                   f"body ends in a flat face.")
    if not contrast_enhanced:
        out.append("No intravenous contrast: vessels are at soft-tissue density, as on a plain fluoroscopy.")
    return out
