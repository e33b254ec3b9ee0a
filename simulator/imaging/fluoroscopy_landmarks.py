"""Can a physician see the landmarks? Measured properties of a rendered fluoroscopy frame.

The anatomy's own surface meshes are projected with the C-arm's geometry (path length through
each structure per pixel, `xray_mesh_kernels`), which says where each landmark is on the image;
the frame's 8-bit display is then measured there (Sobel gradient magnitude):

- `rib_edge_ratio`: mean gradient on the projected rib outlines over the lung (a 3-pixel band on
  the rib mask's boundary, inside the lung) over the mean gradient in the rest of the lung field
  (at least 4 pixels from any rib outline). Rib cortices should be the strongest edges there.
- `endplate_ratio`: for each vertebra whose body lies in the field, the mean vertical gradient on
  the rows of its upper and lower end plates (per column, the first and last row where the ray
  crosses more than 20 mm of the vertebra: the body, not the thinner posterior elements; columns
  15-40 % and 60-85 % of the body's width, so the spinous process in the middle is left out) over
  the mean gradient inside the body (same columns, rows at least 5 pixels from the end plates);
  the median over the vertebrae (those cut by the end of the scan are left out).
- `lung_clipped_fraction`: share of the lung field (path through lung > 20 mm) displayed pure
  white (255), or pure black when the display is inverted.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from simulator.imaging import xray_mesh_kernels as MK


def structure_path_mm(anatomy, names, pose, n: int | None = None) -> np.ndarray:
    """Sum over the named structures of the path length (mm) of each pixel's ray through their
    meshes (structures without a mesh are skipped)."""
    n = pose.detector_pixels if n is None else int(n)
    out = np.zeros((n, n))
    tmp = np.zeros((n, n))
    det_origin, du, dv = pose.detector_pixel_grid(n)
    src = np.asarray(pose.source_mm, dtype=np.float64)
    for name in names:
        mesh = anatomy.meshes.get(name)
        if mesh is None or mesh.n_triangles == 0:
            continue
        v = mesh.vertices.astype(np.float64)
        uv = np.empty((len(v), 2))
        MK.project_vertices(v, src, det_origin, du, dv, np.asarray(pose.beam_direction, dtype=np.float64),
                            float(pose.source_to_detector_mm), uv)
        MK.mesh_path_length(v, mesh.faces.astype(np.int64), uv, src, det_origin - src, du, dv, tmp)
        out += np.maximum(tmp, 0.0)
    return out


def sobel_magnitude(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gradient magnitude, |vertical gradient|) of an image (as float)."""
    f = image.astype(np.float64)
    gy = ndi.sobel(f, axis=0)
    gx = ndi.sobel(f, axis=1)
    return np.hypot(gx, gy), np.abs(gy)


def _field(pose, n: int, margin_px: int = 6) -> np.ndarray:
    return ndi.binary_erosion(pose.exposed_mask(n), iterations=margin_px)


def rib_edge_ratio(image: np.ndarray, anatomy, pose) -> dict:
    n = image.shape[0]
    ribs = [s.name for s in anatomy.structures.values() if s.name.startswith("rib_")]
    lungs = [s.name for s in anatomy.structures.values() if s.name.startswith("lung_")]
    if not ribs or not lungs:
        return {"rib_edge_ratio": None, "note": "no rib or lung meshes"}
    rib = structure_path_mm(anatomy, ribs, pose, n) > 0.5
    lung = (structure_path_mm(anatomy, lungs, pose, n) > 20.0) & _field(pose, n)
    outline = rib ^ ndi.binary_erosion(rib)
    band = ndi.binary_dilation(outline, iterations=1) & lung
    # the lung's own border (diaphragm, heart, mediastinum) is another landmark: left out
    far = ndi.binary_erosion(lung, iterations=4) & ~ndi.binary_dilation(outline, iterations=4)
    grad, _ = sobel_magnitude(image)
    if band.sum() < 50 or far.sum() < 50:
        return {"rib_edge_ratio": None, "note": "too little lung with ribs in the field"}
    return {"rib_edge_ratio": round(float(grad[band].mean() / max(grad[far].mean(), 1e-9)), 3),
            "rib_outline_pixels": int(band.sum()), "lung_pixels": int(lung.sum())}


def lung_clipped_fraction(image: np.ndarray, anatomy, pose, inverted: bool = False) -> float | None:
    n = image.shape[0]
    lungs = [s.name for s in anatomy.structures.values() if s.name.startswith("lung_")]
    lung = (structure_path_mm(anatomy, lungs, pose, n) > 20.0) & _field(pose, n) if lungs else None
    if lung is None or lung.sum() < 50:
        return None
    white = image == (0 if inverted else 255)
    return round(float(white[lung].mean()), 4)


def endplate_ratio(image: np.ndarray, anatomy, pose, vertebrae=None, body_path_mm: float = 20.0) -> dict:
    """The end plates' vertical gradient over the gradient inside the vertebral bodies."""
    n = image.shape[0]
    names = vertebrae or [s.name for s in anatomy.structures.values() if s.name.startswith("vertebrae_")]
    scan_lo, scan_hi = anatomy.bounds_mm()
    _, gy = sobel_magnitude(image)
    field = _field(pose, n, 10)
    per = {}
    for name in names:
        mesh = anatomy.meshes.get(name)
        if mesh is None or mesh.n_triangles == 0:
            continue
        z = mesh.vertices[:, 2]
        if z.min() < scan_lo[2] + 3.0 or z.max() > scan_hi[2] - 3.0:
            continue  # cut by the end of the scan: no end plate there
        # the body: where the ray crosses more than `body_path_mm` of the vertebra (the posterior
        # elements alone are thinner)
        body = structure_path_mm(anatomy, [name], pose, n) > body_path_mm
        cols = np.flatnonzero(body.any(axis=0))
        if len(cols) < 20:
            continue
        u0, u1 = float(cols.min()), float(cols.max())
        w = u1 - u0
        band = np.concatenate([np.arange(int(u0 + 0.15 * w), int(u0 + 0.40 * w) + 1),
                               np.arange(int(u1 - 0.40 * w), int(u1 - 0.15 * w) + 1)])
        edge_vals, inside_vals = [], []
        ok = True
        for c in band:
            rows = np.flatnonzero(body[:, c])
            if len(rows) == 0:
                continue
            lo, hi = int(rows.min()), int(rows.max())
            if lo < 2 or hi > n - 3 or not (field[lo, c] and field[hi, c]) or hi - lo < 14:
                ok = False
                break
            edge_vals += [gy[lo - 1:lo + 2, c].mean(), gy[hi - 1:hi + 2, c].mean()]
            inside_vals.append(gy[lo + 5:hi - 4, c].mean())
        if not ok or not edge_vals:
            continue
        per[name] = round(float(np.mean(edge_vals) / max(np.mean(inside_vals), 1e-9)), 3)
    if not per:
        return {"endplate_ratio": None, "note": "no vertebral body wholly in the field"}
    return {"endplate_ratio": round(float(np.median(list(per.values()))), 3), "per_vertebra": per}


def landmark_report(image: np.ndarray, anatomy, pose, inverted: bool = False) -> dict:
    """All three measures of one frame."""
    out = {}
    out.update(rib_edge_ratio(image, anatomy, pose))
    out.update(endplate_ratio(image, anatomy, pose))
    out["lung_clipped_fraction"] = lung_clipped_fraction(image, anatomy, pose, inverted)
    return out


def bone_calibration_check(renderer, anatomy, pose, blur_mm: float = 2.0) -> dict:
    """Do the meshed bones carry the CT's bone? The CT's own bone line integral (the original CT
    minus the CT with the meshed bones taken out, at 60 keV, read as mm of cortical bone) against
    the renderer's bone map, both blurred to the CT's resolution (a Gaussian of `blur_mm` at the
    isocentre), over the pixels where either shows more than 2 mm of bone: the median and the
    total ratio (hybrid / CT)."""
    from simulator.imaging.fluoroscopy_image_kernels import gaussian_blur
    from simulator.imaging.fluoroscopy_volume import AttenuationVolume, hu_to_mu

    bones = renderer.bones
    if bones is None or not bones.groups:
        return {"bone_mass_ratio_median": None, "note": "no meshed bones"}
    idx = bones.edit_index
    delta = np.zeros(anatomy.hu.shape, np.float32)
    orig = anatomy.hu.flat[idx]
    delta.flat[idx] = hu_to_mu(orig) - hu_to_mu(bones.edit_hu)
    vol = AttenuationVolume.from_xyz(delta, anatomy.origin_mm, anatomy.spacing_mm)
    vol.use_x_major = False
    n = pose.detector_pixels
    ct_mm = vol.project_fast(pose, n) / MU_BONE_EXCESS_60KEV_PER_MM
    hybrid_mm = bones.project(pose, n, mirrors=False).astype(np.float32)
    sigma = blur_mm * pose.source_to_detector_mm / pose.source_to_isocenter_mm / pose.pixel_pitch_mm
    a = gaussian_blur(np.ascontiguousarray(ct_mm, dtype=np.float32), sigma)
    b = gaussian_blur(np.ascontiguousarray(hybrid_mm, dtype=np.float32), sigma)
    sel = (a > 2.0) | (b > 2.0)
    if sel.sum() < 100:
        return {"bone_mass_ratio_median": None, "note": "too little bone in the field"}
    ratio = b[sel] / np.maximum(a[sel], 1e-3)
    return {"bone_mass_ratio_median": round(float(np.median(ratio)), 3),
            "bone_mass_ratio_total": round(float(b[sel].sum() / a[sel].sum()), 3),
            "bone_pixels": int(sel.sum())}


# cortical bone (1.92 g/cm3) minus the water it replaces, at 60 keV (NIST XCOM): 0.604 - 0.206 /cm
MU_BONE_EXCESS_60KEV_PER_MM = 0.0398
