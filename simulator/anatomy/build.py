"""Build an `Anatomy` from a CT (HU) and a label map, on one axis-aligned RAS grid.

Steps (`build_anatomy`):
0. the scan's caveats (`scan_caveats.py`): metal implants labelled `metal_implant` with their streaks
   clipped (`metal.py`); a coarse grid (in-plane voxels over 2 mm) refined to about 1.5 mm with
   smooth label boundaries (`regrid.py`). Reported in `source["caveats"]`, with any place where the
   scan's field of view cut the body.
1. body outline: HU > -300 or labelled, opened in-plane (breaks thin bridges to the scanner table),
   connected components: the largest one, plus any sizeable one that carries labels; holes filled
   slice by slice (lungs, bowel gas). Everything else (table, air, blankets) becomes air (-1000 HU).
2. the grid is cropped to the body's bounding box plus a margin.
3. structures: each label id present gets its name (unknown names are kept as soft tissue, flagged
   `known=False` and listed in `unknown_structures`). Synthesised: `spinal_canal` (the dural sac:
   a CSF layer around the spinal cord, not into bone), `sacrococcygeal_joint` (`joints.py`: the disc
   between the sacrum and the coccyx, which the sacrum label includes), the neck's internal jugular
   veins, vertebral arteries and longus colli (`neck.py`) and, for contrast-enhanced CTs,
   `other_vessels` (unlabelled contrast-filled vessels such as the celiac trunk and the SMA).
4. tissue classes: labelled voxels from the structure's tissue; bones split into a cortical shell
   (about 1.5 mm, or HU > 500) and cancellous interior; unlabelled body voxels by HU (gas, fat,
   soft tissue, muscle, bone); skin = body voxels within about 2 mm of the outline (in-plane).
5. for contrast-enhanced CTs, the iodine is taken out of the vessel lumens (HU brought to blood,
   local texture kept) because fluoroscopy of a procedure is a plain, non-contrast image.
6. meshes: one closed, smooth, outward mesh per structure and "skin" (see `meshing.py`).
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable

import numpy as np
from scipy import ndimage as ndi

from simulator.anatomy.joints import SCJ_NAME, sacrococcygeal_joint
from simulator.anatomy.neck import synthesise_neck
from simulator.anatomy.scan_caveats import caveats, field_of_view_cuts, prepare_volumes
from simulator.core.anatomy import Anatomy, Structure, TriMesh
from simulator.core.tissue import BONE, Tissue, structure_group, tissue_for_structure

BUILDER_VERSION = "2"
# What the builder adds for some scans only (scan caveats, synthesised joints): part of the input hash of
# the lumbopelvic patient and of imports, not of the chest patient, whose build it does not change.
TREATMENT_VERSION = "t2"

Progress = Callable[[float, str], None]

BODY_THRESHOLD_HU = -300.0
GAS_BELOW_HU = -500.0
FAT_RANGE_HU = (-190.0, -30.0)
MUSCLE_FROM_HU = 25.0  # unlabelled soft tissue at or above this is called muscle
BONE_FROM_HU = 150.0  # unlabelled voxels above this: bone/calcification (or contrast, see below)
CORTICAL_HU = 500.0
CORTICAL_SHELL_MM = 1.5
SKIN_MM = 2.0
CROP_MARGIN_MM = 5.0
CANAL_MARGIN_MM = 3.5  # CSF layer around the cord (dural sac)
ENHANCED_LUMEN_HU = 100.0
BLOOD_HU = 40.0
OTHER_VESSEL_HU = (150.0, 600.0)
VESSEL_RIM_STEPS = 2  # voxels in-plane given to a vessel's label from its contrast rim (grow_vessel_rims)
VESSEL_RIM_MAX_HU = 600.0  # denser than this at a vessel's wall: calcified plaque, kept
OTHER_VESSEL_BONE_GAP_MM = 3.0
OTHER_VESSEL_MIN_MM3 = 250.0
MM2_PER_TRIANGLE = 5.0  # triangle budget per structure: voxel-face area / this
MIN_TRIANGLES, MAX_TRIANGLES = 300, 30000
SKIN_TRIANGLES = 45000
SKIN_MESH_MM = 2.8  # in-plane grid for the skin surface
MESH_WORKERS = 2

SPINAL_CANAL = "spinal_canal"
OTHER_VESSELS = "other_vessels"


def _noop(fraction: float, message: str) -> None:
    return None


def _disk(radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    """In-plane (k thickness 1) disk structuring element."""
    ri = max(1, int(np.floor(radius_mm / spacing[0] + 1e-6)))
    rj = max(1, int(np.floor(radius_mm / spacing[1] + 1e-6)))
    ii, jj = np.mgrid[-ri:ri + 1, -rj:rj + 1]
    d = ((ii * spacing[0]) ** 2 + (jj * spacing[1]) ** 2) <= radius_mm ** 2 + 1e-9
    return d[:, :, None]


def _bbox(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(lo, hi) voxel index bounds (hi exclusive) of a mask, or None if empty."""
    sl = ndi.find_objects(mask.astype(np.uint8, copy=False))
    if not sl or sl[0] is None:
        return None
    s = sl[0]
    return np.array([x.start for x in s]), np.array([x.stop for x in s])


def _fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """Fill every in-plane hole (background not connected in-plane to the slice border)."""
    bg = ~mask
    struct2d = np.zeros((3, 3, 3), bool)
    struct2d[:, :, 1] = ndi.generate_binary_structure(2, 1)
    lab, n = ndi.label(bg, structure=struct2d)
    if n == 0:
        return mask
    border = np.zeros(n + 1, bool)
    for face in (lab[0], lab[-1], lab[:, 0], lab[:, -1]):
        border[np.unique(face)] = True
    border[0] = True  # label 0 is the mask itself
    return mask | ~border[lab]


def body_mask(hu: np.ndarray, labels: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """The patient's body (bool), without the scanner table and anything else outside it."""
    candidate = (hu > BODY_THRESHOLD_HU) | (labels > 0)
    box = _bbox(candidate)
    body = np.zeros(hu.shape, bool)
    if box is None:
        return body
    lo, hi = box
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    sub = candidate[sl]
    # in-plane opening with a square of about 3.5 mm (separable min/max filters: fast)
    opened = _dilate_box(_erode_box(sub, 1.0, spacing, axes=(0, 1)), 1.0, spacing, axes=(0, 1))
    lab, n = ndi.label(opened)
    if n == 0:
        keep = np.zeros_like(sub)
    else:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        labelled = np.bincount(lab.ravel(), weights=(labels[sl] > 0).ravel(), minlength=n + 1)
        largest = int(np.argmax(sizes))
        ok = (sizes >= 0.02 * sizes[largest]) & (labelled >= 0.01 * sizes)
        ok[largest] = True
        ok[0] = False
        keep = ok[lab]
    keep |= labels[sl] > 0
    body[sl] = _fill_holes_per_slice(keep)
    return body


def _interior(labels: np.ndarray, target: np.ndarray, steps: tuple[int, int, int]) -> np.ndarray:
    """Voxels of `target` whose neighbours up to `steps[a]` voxels along each axis a carry the same
    label (the complement within `target` is the shell of each labelled structure)."""
    inner = target.copy()
    for axis, n in enumerate(steps):
        for d in range(1, n + 1):
            for sign in (1, -1):
                shifted = np.roll(labels, sign * d, axis=axis)
                same = shifted == labels
                # np.roll wraps around: the wrapped slab is the grid border, count it as different.
                idx = [slice(None)] * 3
                idx[axis] = slice(0, d) if sign > 0 else slice(-d, None)
                same[tuple(idx)] = False
                inner &= same
    return inner


def _triangle_budget(mask: np.ndarray, spacing: np.ndarray) -> tuple[int, float]:
    """(target triangles, voxel-face area mm2) for a cropped structure mask."""
    m = np.pad(mask, 1)
    face = (spacing[1] * spacing[2], spacing[0] * spacing[2], spacing[0] * spacing[1])
    area = float(sum(np.count_nonzero(np.diff(m, axis=a)) * face[a] for a in range(3)))
    return int(np.clip(area / MM2_PER_TRIANGLE, MIN_TRIANGLES, MAX_TRIANGLES)), area


def _inplane_factor(nvox: int, spacing: np.ndarray, scan_mm: float = 0.0) -> int:
    """In-plane block size for meshing: a coarser grid for all but tiny structures (decimation time
    grows with the iso-surface's size), never coarser than the slice spacing, nor than 2.5 mm - or
    than the scan's own in-plane voxel `scan_mm` when the grid was refined from it."""
    if nvox < 4000:
        return 1
    limit = max(min(2.5, max(spacing[2], spacing[0])), scan_mm)
    wanted = 3 if nvox > 400000 else 2
    f = wanted
    while f > 1 and f * spacing[0] > limit + 1e-6:
        f -= 1
    return f


def _unique_name(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name}_{n}" in taken:
        n += 1
    return f"{name}_{n}"


def build_anatomy(
    name: str,
    hu: np.ndarray,
    labels: np.ndarray,
    spacing_mm,
    origin_mm,
    structure_names: dict[int, str],
    source: dict,
    progress: Progress | None = None,
    contrast_enhanced: bool = False,
) -> Anatomy:
    """Build an anatomy from an axis-aligned RAS CT (HU) and label map (see the module doc)."""
    progress = progress or _noop
    t_start = time.perf_counter()
    spacing = np.asarray(spacing_mm, dtype=np.float64).reshape(3)
    origin = np.asarray(origin_mm, dtype=np.float64).reshape(3)
    hu = np.asarray(hu)
    labels = np.asarray(labels)
    if hu.ndim != 3 or hu.shape != labels.shape:
        raise ValueError(f"anatomy {name!r}: CT shape {hu.shape} and label shape {labels.shape} differ")
    if np.any(spacing <= 0):
        raise ValueError(f"anatomy {name!r}: spacing_mm must be positive, got {spacing.tolist()}")
    if hu.dtype != np.int16:
        if hu.dtype.kind in "iu":
            hu = np.clip(hu, -1024, 3071).astype(np.int16)
        else:
            hu = np.clip(np.rint(np.nan_to_num(hu, nan=-1024.0)), -1024, 3071).astype(np.int16)
    if labels.dtype != np.uint16:
        if labels.size and (labels.min() < 0 or labels.max() > 65535):
            raise ValueError(f"anatomy {name!r}: label values must be in 0..65535")
        labels = labels.astype(np.uint16)

    # 0. metal implants; a coarse grid made finer (metal.py, regrid.py) ------------------------
    hu, labels, spacing, origin, structure_names, notes = prepare_volumes(
        hu, labels, spacing, origin, structure_names, contrast_enhanced, progress)

    # 1. body outline -------------------------------------------------------------------------
    progress(0.02, "finding the body outline")
    body = body_mask(hu, labels, spacing)
    box = _bbox(body)
    if box is None:
        raise ValueError(f"anatomy {name!r}: no body found (no voxel above {BODY_THRESHOLD_HU:.0f} HU)")
    notes.update(field_of_view_cuts(body, spacing, origin))

    # 2. crop ----------------------------------------------------------------------------------
    progress(0.12, "cropping to the body")
    margin = np.ceil(CROP_MARGIN_MM / spacing).astype(int)
    lo = np.maximum(box[0] - margin, 0)
    hi = np.minimum(box[1] + margin, np.array(hu.shape))
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    hu = hu[sl].copy()
    labels = labels[sl].copy()
    body = body[sl]
    origin = origin + lo * spacing
    hu[~body] = -1000
    labels[~body] = 0

    # 3. structures ----------------------------------------------------------------------------
    progress(0.15, "naming structures")
    counts = np.bincount(labels.ravel())
    present = [int(i) for i in np.nonzero(counts)[0] if i != 0]
    structures: dict[int, Structure] = {}
    unknown: list[str] = []
    taken: set[str] = set()
    for sid in present:
        raw = structure_names.get(sid)
        sname = _unique_name(str(raw).strip() if raw else f"label_{sid}", taken)
        taken.add(sname)
        tissue = tissue_for_structure(sname)
        known = tissue is not None
        if not known:
            tissue = Tissue.SOFT_TISSUE
            unknown.append(sname)
        structures[sid] = Structure(sid, sname, tissue, structure_group(sname, tissue), int(counts[sid]), known)
    next_id = max([0, *present, *structure_names.keys()]) + 1
    by_name = {s.name: s for s in structures.values()}

    def synthesise(sname: str, stissue: Tissue, voxels) -> int:
        """A structure the builder adds (not in the label map): its id, the next free one."""
        nonlocal next_id
        sid, next_id = next_id, next_id + 1
        structures[sid] = Structure(sid, sname, stissue, structure_group(sname, stissue), int(voxels), True)
        return sid

    # spinal canal (dural sac): CSF layer around the cord, not into bone, only unlabelled voxels.
    progress(0.17, "spinal canal")
    cord = by_name.get("spinal_cord")
    if cord is not None and SPINAL_CANAL not in by_name:
        cbox = _bbox(labels == cord.id)
        pad = np.ceil((CANAL_MARGIN_MM + 1.0) / spacing).astype(int)
        clo = np.maximum(cbox[0] - pad, 0)
        chi = np.minimum(cbox[1] + pad, np.array(labels.shape))
        csl = tuple(slice(a, b) for a, b in zip(clo, chi))
        sub = labels[csl]
        dist = ndi.distance_transform_edt(sub != cord.id, sampling=spacing)
        canal = (dist <= CANAL_MARGIN_MM) & (sub == 0) & (hu[csl] < 300) & body[csl]
        if canal.any():
            sub[canal] = synthesise(SPINAL_CANAL, Tissue.CSF, canal.sum())

    # sacrococcygeal joint (joints.py): the disc a transcoccygeal needle passes, inside the sacrum label
    sacrum = by_name.get("sacrum")
    if sacrum is not None and SCJ_NAME not in by_name:
        joint = sacrococcygeal_joint(labels, spacing, sacrum.id)
        if joint is not None:
            labels[joint] = synthesise(SCJ_NAME, Tissue.INTERVERTEBRAL_DISC, joint.sum())

    # the neck's veins, arteries and longus colli a segmentation lacks (neck.py; stellate ganglion)
    progress(0.18, "neck structures")
    next_id = synthesise_neck(hu, labels, spacing, origin, structures, next_id, contrast_enhanced)

    bone_lut = np.zeros(next_id + 2, bool)
    for s in structures.values():
        if s.tissue in BONE:
            bone_lut[s.id] = True
    bone = bone_lut[labels]

    # unlabelled contrast-filled vessels (celiac trunk, SMA, renal and mesenteric vessels, ...)
    if contrast_enhanced:
        progress(0.2, "unlabelled contrast-filled vessels")
        vessels = find_other_vessels(hu, labels, body, bone, spacing)
        if vessels is not None:
            labels[vessels] = synthesise(OTHER_VESSELS, Tissue.ARTERY, vessels.sum())
        # the partial-volume rim of contrast around the vessels' labels is the vessel, not bone
        grow_vessel_rims(hu, labels, structures, body)

    # 4. tissue classes ------------------------------------------------------------------------
    progress(0.25, "tissue classes")
    lut = np.zeros(next_id + 2, np.uint8)
    for s in structures.values():
        lut[s.id] = int(s.tissue)
    tissue = lut[labels]
    unl = (labels == 0) & body
    h = hu
    cls = np.full(hu.shape, int(Tissue.SOFT_TISSUE), np.uint8)
    cls[h < GAS_BELOW_HU] = Tissue.AIR
    cls[(h >= GAS_BELOW_HU) & (h < FAT_RANGE_HU[1])] = Tissue.FAT
    cls[(h >= MUSCLE_FROM_HU) & (h < BONE_FROM_HU)] = Tissue.MUSCLE
    cls[h >= BONE_FROM_HU] = Tissue.CANCELLOUS_BONE
    cls[h >= CORTICAL_HU] = Tissue.CORTICAL_BONE
    tissue[unl] = cls[unl]
    del cls

    # bones: cortical shell + dense voxels, cancellous inside
    progress(0.3, "cortical and cancellous bone")
    bbox_b = _bbox(bone)
    if bbox_b is not None:
        bsl = tuple(slice(max(a - 1, 0), b + 1) for a, b in zip(*bbox_b))
        steps = tuple(max(1, int(round(CORTICAL_SHELL_MM / s))) for s in spacing)
        b_sub = bone[bsl]
        inner = _interior(labels[bsl], b_sub, steps)
        shell = b_sub & (~inner | (hu[bsl] > CORTICAL_HU))
        t_sub = tissue[bsl]
        t_sub[b_sub] = Tissue.CANCELLOUS_BONE
        t_sub[shell] = Tissue.CORTICAL_BONE

    # skin: body voxels within SKIN_MM of the outline, in-plane (the scan's end slices are cuts)
    progress(0.36, "skin")
    inner_body = _erode_box(body, SKIN_MM, spacing, axes=(0, 1))
    skin = body & ~inner_body & (labels == 0)
    tissue[skin] = Tissue.SKIN
    tissue[~body] = Tissue.AIR

    # 5. iodine out of the vessels ---------------------------------------------------------------
    if contrast_enhanced:
        progress(0.4, "removing iodine contrast from the vessels")
        remove_contrast(hu, labels, structures)

    # 6. meshes ---------------------------------------------------------------------------------
    progress(0.45, "meshing")
    jobs: list[tuple[str, np.ndarray, np.ndarray, int, int]] = []
    skin_box = _bbox(body)
    if skin_box is not None:
        ssl = tuple(slice(a, b) for a, b in zip(*skin_box))
        jobs.append(("skin", body[ssl], origin + skin_box[0] * spacing, SKIN_TRIANGLES,
                     max(1, int(round(SKIN_MESH_MM / spacing[0])))))
    objects = ndi.find_objects(labels)
    scan_mm = min(notes.get("grid_refined_from_mm", [0.0, 0.0])[:2])
    for s in structures.values():
        if s.id > len(objects) or objects[s.id - 1] is None:
            continue
        osl = objects[s.id - 1]
        pad_sl = tuple(slice(max(x.start - 1, 0), min(x.stop + 1, dim)) for x, dim in zip(osl, labels.shape))
        sub = labels[pad_sl]
        mask = sub == s.id
        if s.name == SPINAL_CANAL and cord is not None:
            mask |= sub == cord.id  # the dural sac's outline encloses the cord
        target, _ = _triangle_budget(mask, spacing)
        org = origin + np.array([x.start for x in pad_sl]) * spacing
        jobs.append((s.name, mask, org, target, _inplane_factor(int(mask.sum()), spacing, scan_mm)))
    meshes = mesh_jobs(jobs, spacing, lambda f, m: progress(0.45 + 0.53 * f, m))
    # keep a stable order: skin first, then structures by id
    order = ["skin"] + [s.name for s in sorted(structures.values(), key=lambda s: s.id)]
    meshes = {k: meshes[k] for k in order if k in meshes}

    progress(1.0, "anatomy built")
    src = dict(source)
    src.update(notes)
    src["caveats"] = caveats(notes, contrast_enhanced)
    src["builder_version"] = BUILDER_VERSION
    src["build_seconds"] = round(time.perf_counter() - t_start, 2)
    src.setdefault("cropped_from_voxels", [int(v) for v in lo])
    return Anatomy(
        name=name,
        hu=hu,
        tissue=tissue,
        labels=labels,
        spacing_mm=spacing,
        origin_mm=origin,
        structures=structures,
        meshes=meshes,
        source=src,
        unknown_structures=unknown,
        contrast_enhanced=bool(contrast_enhanced),
    )


def _dilate_box(mask: np.ndarray, radius_mm: float, spacing: np.ndarray, axes=(0, 1, 2)) -> np.ndarray:
    """Dilation by a box of half-size radius_mm along `axes` (separable, fast)."""
    out = mask.view(np.uint8) if mask.dtype == bool else mask.astype(np.uint8)
    for axis in axes:
        r = int(np.ceil(radius_mm / spacing[axis] - 1e-6))
        if r > 0:
            out = ndi.maximum_filter1d(out, 2 * r + 1, axis=axis)
    return out.astype(bool)


def _erode_box(mask: np.ndarray, radius_mm: float, spacing: np.ndarray, axes=(0, 1, 2)) -> np.ndarray:
    """Erosion by a box of half-size radius_mm along `axes` (outside the grid counts as empty)."""
    out = mask.astype(np.uint8)
    for axis in axes:
        r = int(np.ceil(radius_mm / spacing[axis] - 1e-6))
        if r > 0:
            out = ndi.minimum_filter1d(out, 2 * r + 1, axis=axis, mode="constant", cval=0)
    return out.astype(bool)


def find_other_vessels(hu: np.ndarray, labels: np.ndarray, body: np.ndarray, bone: np.ndarray,
                       spacing: np.ndarray) -> np.ndarray | None:
    """Unlabelled contrast-filled vessels of a contrast-enhanced CT (bool mask, or None).

    Candidates: unlabelled body voxels in OTHER_VESSEL_HU, at least OTHER_VESSEL_BONE_GAP_MM from
    any labelled bone; opened in-plane (drops the 1-2 voxel partial-volume rims around enhanced
    chambers and organs, keeps vessels wider than about 3 mm); connected pieces smaller than
    OTHER_VESSEL_MIN_MM3 or touching unlabelled dense (> 700 HU, bone-like) voxels are dropped."""
    cand = (labels == 0) & body & (hu >= OTHER_VESSEL_HU[0]) & (hu <= OTHER_VESSEL_HU[1])
    box = _bbox(cand)
    if box is None:
        return None
    pad = np.ceil((OTHER_VESSEL_BONE_GAP_MM + 2.0) / spacing).astype(int)
    lo = np.maximum(box[0] - pad, 0)
    hi = np.minimum(box[1] + pad, np.array(hu.shape))
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    c = cand[sl]
    c &= ~_dilate_box(bone[sl], OTHER_VESSEL_BONE_GAP_MM, spacing)
    c = ndi.binary_opening(c, structure=_disk(1.5, spacing))
    lab, n = ndi.label(c)
    if n == 0:
        return None
    sizes = np.bincount(lab.ravel(), minlength=n + 1) * float(np.prod(spacing))
    ok = sizes >= OTHER_VESSEL_MIN_MM3
    dense = (labels[sl] == 0) & (hu[sl] > 700) & body[sl]
    touching = np.unique(lab[_dilate_box(dense, 1.5, spacing) & (lab > 0)])
    ok[touching] = False
    ok[0] = False
    if not ok.any():
        return None
    out = np.zeros(hu.shape, bool)
    out[sl] = ok[lab]
    return out


def mesh_jobs(jobs, spacing: np.ndarray, progress: Progress, workers: int | None = None) -> dict[str, TriMesh]:
    """Mesh (name, mask, origin, target, inplane_factor) jobs, shared between this process and a
    helper process when there are several cores (see `mesh_worker`)."""
    from simulator.anatomy.mesh_worker import run_jobs

    if workers is None:
        workers = min(MESH_WORKERS, os.cpu_count() or 1)
    return run_jobs(jobs, spacing, progress, workers)


def grow_vessel_rims(hu: np.ndarray, labels: np.ndarray, structures: dict[int, Structure], body: np.ndarray) -> int:
    """In place: give the contrast-filled vessels' labels the unlabelled voxels of their wall
    (`VESSEL_RIM_STEPS` voxels in-plane, one through-plane) whose CT number lies in the contrast
    range (ENHANCED_LUMEN_HU to VESSEL_RIM_MAX_HU). A label map drawn a voxel inside the lumen leaves
    that rim unlabelled; read by its CT number alone it would be bone (above BONE_FROM_HU): a ring
    of bone round the aorta that a needle strikes and the fluoroscopy outlines. Denser voxels
    (calcified plaque) stay as they are. Returns the number of voxels given."""
    ids = [s.id for s in structures.values() if s.tissue in (Tissue.ARTERY, Tissue.VEIN, Tissue.HEART)]
    if not ids:
        return 0
    lut = np.zeros(int(labels.max()) + 1, bool)
    lut[[i for i in ids if i < lut.size]] = True
    box = _bbox(lut[labels])
    if box is None:
        return 0
    lo = np.maximum(box[0] - VESSEL_RIM_STEPS - 1, 0)
    hi = np.minimum(box[1] + VESSEL_RIM_STEPS + 1, np.array(labels.shape))
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    lab = labels[sl]
    cand = (lab == 0) & body[sl] & (hu[sl] > ENHANCED_LUMEN_HU) & (hu[sl] <= VESSEL_RIM_MAX_HU)
    added = np.zeros(lut.size, np.int64)
    for size in [(3, 3, 1)] * VESSEL_RIM_STEPS + [(1, 1, 3)]:
        ves = np.where(lut[lab], lab, 0)
        grown = ndi.grey_dilation(ves, size=size)
        new = cand & (grown > 0) & (lab == 0)
        lab[new] = grown[new]
        added += np.bincount(grown[new].ravel(), minlength=lut.size)[:lut.size]
    for sid in np.flatnonzero(added):
        st = structures[int(sid)]
        structures[int(sid)] = dataclasses.replace(st, voxels=int(st.voxels + added[sid]))
    return int(added.sum())


def remove_contrast(hu: np.ndarray, labels: np.ndarray, structures: dict[int, Structure]) -> None:
    """In place: bring contrast-filled lumen voxels (> ENHANCED_LUMEN_HU) of artery, vein and heart
    structures to blood density. Per structure, the enhancement E = median(lumen) - BLOOD_HU is
    subtracted, ramped in between ENHANCED_LUMEN_HU and the median so that partial-volume voxels
    at the wall join smoothly; results are capped at ENHANCED_LUMEN_HU."""
    vessel_ids = [s.id for s in structures.values() if s.tissue in (Tissue.ARTERY, Tissue.VEIN, Tissue.HEART)]
    if not vessel_ids:
        return
    objects = ndi.find_objects(labels)
    for sid in vessel_ids:
        if sid > len(objects) or objects[sid - 1] is None:
            continue
        osl = objects[sid - 1]
        sub_l = labels[osl]
        sub_h = hu[osl]
        lumen = (sub_l == sid) & (sub_h > ENHANCED_LUMEN_HU)
        if not lumen.any():
            continue
        values = sub_h[lumen].astype(np.float32)
        med = float(np.median(values))
        if med <= ENHANCED_LUMEN_HU + 20:
            continue
        enhancement = med - BLOOD_HU
        ramp = np.clip((values - ENHANCED_LUMEN_HU) / (med - ENHANCED_LUMEN_HU), 0.0, 1.0)
        new = np.minimum(values - enhancement * ramp, ENHANCED_LUMEN_HU)
        sub_h[lumen] = np.rint(new).astype(np.int16)
