"""Neck structures a CT segmentation lacks, placed from the ones it has (the stellate ganglion
exercise looks at them under ultrasound): internal jugular veins, vertebral arteries, longus colli.

TotalSegmentator-style label maps of the neck name the common carotid arteries, the vertebrae,
the thyroid, trachea and oesophagus, the subclavian arteries and the brachiocephalic veins, but not
these. Each is drawn slice by slice (axial) in the voxels the segmentation left unlabelled, from the
landmarks around it (documented anatomy; sizes are adult averages):

- Internal jugular vein: in the carotid sheath, lateral and a little anterior to the common carotid
  artery, touching it (its centre r_cca + r_ijv + 1 mm lateral, 2.5 mm anterior), oval (wider than
  deep); 12 mm across on the right, 10 mm on the left (the right is usually the larger). It runs
  down to the top of the brachiocephalic vein of its side, bending onto it over the last 10 mm.
- Vertebral artery: 4 mm across; from the top of the subclavian artery's first part (medial to
  the first rib) up in front of the C7 transverse process (lateral to the longus colli), into the
  transverse foramen of C6 and up through C5: the foramina are the small holes of the vertebra's
  label in each slice, lateral to the vertebral canal; where a slice shows none (thick slices),
  the artery continues straight.
- Longus colli: on the front of the vertebral bodies (C5 down to T3), either side of the midline,
  under the oesophagus: an oval belly 3-15 mm from the midline, 6 mm thick, on the body's anterior
  surface.

On a contrast-enhanced CT (the carotid's lumen above 150 HU) the veins and arteries the
segmentation left unlabelled are in the scan, bright: the internal jugular vein and the vertebral
artery are then taken from it - in each slice the enhanced unlabelled blob of vessel size nearest to
where the rules above expect it (the jugular: lateral or anterior to the carotid within 25 mm; the
vertebral artery: within 15 mm of the foramen or the front of the C7 transverse process), and the
rules fill only the slices where the scan shows none. The other enhanced unlabelled blobs of the neck
(thyroid, transverse cervical and suprascapular vessels; away from bone) become `neck_vessels`:
left as they were, above 150 HU they would be taken for bone.

The voxels taken were unlabelled soft tissue (not bone, air or another structure); vessels get
blood's CT number. A scan without common carotid arteries or cervical vertebrae is left alone.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from scipy import ndimage as ndi

from simulator.core.anatomy import Structure
from simulator.core.tissue import BONE, Tissue, structure_group

IJV_RADIUS_MM = {"right": 6.0, "left": 5.0}
IJV_OVAL = (1.25, 0.8)  # lateral, anteroposterior semi-axis factors
VA_RADIUS_MM = 2.0
LONGUS_MM = (3.0, 15.0, 6.0)  # from the midline (inner, outer), thickness
SOFT_HU = (-200.0, 300.0)
BLOOD_HU = 40
ENHANCED_HU = (110.0, 900.0)  # a contrast-filled lumen, unlabelled (undiluted contrast in a vein is dense)
ENHANCED_CCA_HU = 150.0
RIM_HU = 80.0  # partial-volume rim of an enhanced lumen, taken with it
IJV_AREA_MM2 = (20.0, 450.0)
VA_AREA_MM2 = (5.0, 60.0)
NECK_VESSEL_MIN_MM3 = 20.0
NECK_VESSEL_BONE_GAP_MM = 2.0
NECK_HALF_WIDTH_MM = 60.0
SPECK_HU = 100  # an enhanced unlabelled speck too small for a vessel: soft tissue
NECK_VERSION = "neck5"  # part of the chest patient's input hash (anatomy/bundled.py)
SIDES = {"right": 1.0, "left": -1.0}  # +x is the patient's right (RAS)
CERVICAL = ("vertebrae_C3", "vertebrae_C4", "vertebrae_C5", "vertebrae_C6", "vertebrae_C7")
LONGUS_LEVELS = CERVICAL + ("vertebrae_T1", "vertebrae_T2", "vertebrae_T3")


def _ids(structures: dict[int, Structure], names) -> list[int]:
    by = {s.name: s.id for s in structures.values()}
    return [by[n] for n in names if n in by]


def _add(structures: dict, labels: np.ndarray, hu: np.ndarray, mask: np.ndarray, name: str, tissue: Tissue,
         next_id: int, blood: bool) -> int:
    if not mask.any():
        return next_id
    labels[mask] = next_id
    if blood:
        hu[mask] = BLOOD_HU
    structures[next_id] = Structure(next_id, name, tissue, structure_group(name, tissue), int(mask.sum()), True)
    return next_id + 1


class _Slices:
    """Per-axial-slice geometry helpers on the label map (x, y mm of voxel centres)."""

    def __init__(self, labels: np.ndarray, hu: np.ndarray, spacing: np.ndarray, origin: np.ndarray):
        self.labels, self.hu, self.spacing, self.origin = labels, hu, spacing, origin
        self.x = origin[0] + np.arange(labels.shape[0]) * spacing[0]
        self.y = origin[1] + np.arange(labels.shape[1]) * spacing[1]
        self.z = origin[2] + np.arange(labels.shape[2]) * spacing[2]

    def free(self, k: int) -> np.ndarray:
        """Unlabelled soft tissue of slice k (where a synthesised structure may go)."""
        h = self.hu[:, :, k]
        return (self.labels[:, :, k] == 0) & (h > SOFT_HU[0]) & (h < SOFT_HU[1])

    def centroid(self, mask2d: np.ndarray):
        idx = np.argwhere(mask2d)
        if len(idx) == 0:
            return None
        return np.array([self.x[idx[:, 0]].mean(), self.y[idx[:, 1]].mean()]), math.sqrt(
            len(idx) * self.spacing[0] * self.spacing[1] / math.pi)

    def lumen(self, k: int) -> np.ndarray:
        """Enhanced unlabelled voxels of slice k (a contrast-filled vessel's lumen)."""
        h = self.hu[:, :, k]
        return (self.labels[:, :, k] == 0) & (h >= ENHANCED_HU[0]) & (h <= ENHANCED_HU[1])

    def blob(self, k: int, near, reach_mm: float, area_mm2, accept=None, largest: bool = False):
        """The enhanced unlabelled blob of slice k with an area in `area_mm2` whose centre lies
        within `reach_mm` of `near` (and passes `accept(centre)`): the nearest one (or the
        largest), with its partial-volume rim; (mask, centre) or None."""
        lab, n = ndi.label(self.lumen(k))
        best = None
        px = self.spacing[0] * self.spacing[1]
        for i, sl in enumerate(ndi.find_objects(lab), start=1):
            comp = lab[sl] == i
            a = comp.sum() * px
            if not (area_mm2[0] <= a <= area_mm2[1]):
                continue
            idx = np.argwhere(comp)
            c = np.array([self.x[idx[:, 0] + sl[0].start].mean(), self.y[idx[:, 1] + sl[1].start].mean()])
            d = float(np.hypot(*(c - near)))
            if d > reach_mm or (accept is not None and not accept(c)):
                continue
            key = -a if largest else d
            if best is None or key < best[0]:
                best = (key, i, c)
        if best is None:
            return None
        m = lab == best[1]
        rim = ndi.binary_dilation(m) & (self.labels[:, :, k] == 0) & (self.hu[:, :, k] >= RIM_HU)
        return m | rim, best[2]

    def ellipse(self, c, ax_x: float, ax_y: float) -> np.ndarray:
        X = (self.x[:, None] - c[0]) / ax_x
        Y = (self.y[None, :] - c[1]) / ax_y
        return X * X + Y * Y <= 1.0

    def disc(self, c, r: float) -> np.ndarray:
        return self.ellipse(c, r, r)


def _midline(sl: _Slices, k: int, vert_ids: list[int]):
    """x of the midline and the vertebral body's anterior surface y in slice k (None if no
    vertebra there): the vertebra voxels' median x, their anterior-most y near the midline."""
    m = np.isin(sl.labels[:, :, k], vert_ids)
    idx = np.argwhere(m)
    if len(idx) < 20:
        return None
    xs, ys = sl.x[idx[:, 0]], sl.y[idx[:, 1]]
    xm = float(np.median(xs))
    near = np.abs(xs - xm) < 8.0
    if not near.any():
        return None
    return xm, float(ys[near].max()), m


def _smooth(v: np.ndarray, good: np.ndarray, size: int = 5) -> np.ndarray:
    """Median of the good values in a window along z (fills gaps by the nearest good value)."""
    out = v.copy()
    gi = np.nonzero(good)[0]
    if len(gi) == 0:
        return out
    for k in range(len(v)):
        w = gi[np.abs(gi - k) <= size // 2]
        if len(w) == 0:
            w = gi[[np.argmin(np.abs(gi - k))]]
        out[k] = np.median(v[w], axis=0)
    return out


def _jugular(sl: _Slices, structures, side: str, next_id: int, enhanced: bool) -> int:
    s_sign = SIDES[side]
    cca = _ids(structures, [f"common_carotid_artery_{side}"])
    if not cca:
        return next_id
    nz = sl.labels.shape[2]
    cc = np.zeros((nz, 2))
    rr = np.zeros(nz)
    have = np.zeros(nz, bool)
    for k in range(nz):
        got = sl.centroid(sl.labels[:, :, k] == cca[0])
        if got is not None:
            (cc[k], rr[k]), have[k] = got, True
    if have.sum() < 3:
        return next_id
    bcv = _ids(structures, [f"brachiocephalic_vein_{side}"])
    k_low = int(np.nonzero(have)[0].min())
    target = None
    if bcv:
        ks = np.nonzero(np.isin(sl.labels, bcv).any(axis=(0, 1)))[0]
        if len(ks):
            k_top = int(ks.max())
            got = sl.centroid(sl.labels[:, :, k_top] == bcv[0])
            if got is not None:
                target, k_low = (got[0], k_top), max(k_low, k_top)
    cc = _smooth(cc, have)
    rr = _smooth(rr, have)
    r_ijv = IJV_RADIUS_MM[side]
    mask = np.zeros(sl.labels.shape, bool)
    last = int(np.nonzero(have)[0].max())
    # The scan's own vein (contrast CT): lateral or anterior to the carotid, the largest blob.
    seen = np.zeros(nz, bool)
    off = np.zeros((nz, 2))
    areas = []
    for k in range(k_low, last + 1) if enhanced else ():
        def beside(c, k=k):
            return s_sign * (c[0] - cc[k][0]) >= -3.0 and c[1] - cc[k][1] >= -5.0
        got = sl.blob(k, cc[k], 25.0, IJV_AREA_MM2, beside, largest=True)
        if got is not None:
            mask[:, :, k], seen[k], off[k] = got[0], True, got[1] - cc[k]
            areas.append(got[0].sum() * sl.spacing[0] * sl.spacing[1])
    if seen.sum() >= 3:  # the slices between: the vein where its neighbours have it
        off = _smooth(off, seen)
        r = math.sqrt(float(np.median(areas)) / math.pi)
        for k in range(k_low, last + 1):
            if not seen[k]:
                mask[:, :, k] = sl.ellipse(cc[k] + off[k], r * IJV_OVAL[0], r * IJV_OVAL[1]) & sl.free(k)
    else:
        mask[:] = False
        bend_mm = 10.0
        for k in range(k_low, last + 1):
            c = cc[k] + np.array([s_sign * (rr[k] + r_ijv * IJV_OVAL[0] + 1.0), 2.5])
            if target is not None:
                dz = (k - target[1]) * sl.spacing[2]
                if dz < bend_mm:  # bend onto the brachiocephalic vein's top
                    t = max(0.0, dz) / bend_mm
                    c = t * c + (1 - t) * target[0][0]
            mask[:, :, k] = sl.ellipse(c, r_ijv * IJV_OVAL[0], r_ijv * IJV_OVAL[1]) & sl.free(k)
    return _add(structures, sl.labels, sl.hu, mask, f"internal_jugular_vein_{side}", Tissue.VEIN, next_id, True)


def _foramen(sl: _Slices, k: int, vert_ids: list[int], xm: float, side: str):
    """Centre of the transverse foramen on one side of slice k: a small hole of the vertebra's
    label 15-40 mm from the midline, or None."""
    m = np.isin(sl.labels[:, :, k], vert_ids)
    holes = ndi.binary_fill_holes(m) & ~m
    lab, n = ndi.label(holes)
    best = None
    area_px = sl.spacing[0] * sl.spacing[1]
    for i in range(1, n + 1):
        comp = lab == i
        a = comp.sum() * area_px
        got = sl.centroid(comp)
        if got is None or not (4.0 <= a <= 80.0):
            continue
        c = got[0]
        off = (c[0] - xm) * SIDES[side]
        if 15.0 <= off <= 40.0 and (best is None or a > best[1]):
            best = (c, a)
    return None if best is None else best[0]


def _scan_vessel(sl: _Slices, k: int, c, enhanced: bool) -> tuple[float, float]:
    """Where the scan shows the vertebral artery near the rules' point c in slice k (the nearest
    enhanced blob of its size within 15 mm on a contrast CT), else c."""
    got = sl.blob(k, np.asarray(c, float), 15.0, VA_AREA_MM2) if enhanced else None
    return (float(c[0]), float(c[1])) if got is None else (float(got[1][0]), float(got[1][1]))


def _vertebral(sl: _Slices, structures, side: str, next_id: int, enhanced: bool) -> int:
    sub = _ids(structures, [f"subclavian_artery_{side}"])
    c7 = _ids(structures, ["vertebrae_C7"])
    upper = _ids(structures, ["vertebrae_C6", "vertebrae_C5", "vertebrae_C4", "vertebrae_C3"])
    if not sub or not c7:
        return next_id
    s_sign = SIDES[side]
    nz = sl.labels.shape[2]
    pts = []  # (x, y, z) polyline, bottom up
    # Origin: the top of the subclavian artery's part within 40 mm of the midline.
    mid = _midline(sl, int(np.nonzero(np.isin(sl.labels, c7).any(axis=(0, 1)))[0].mean()), c7)
    if mid is None:
        return next_id
    xm = mid[0]
    idx = np.argwhere(sl.labels == sub[0])
    off = (sl.x[idx[:, 0]] - xm) * s_sign
    idx = idx[(off > 10.0) & (off < 40.0)]
    if len(idx) == 0:
        return next_id
    ktop = idx[:, 2].max()
    top = idx[idx[:, 2] == ktop]
    pts.append((sl.x[top[:, 0]].mean(), sl.y[top[:, 1]].mean(), sl.z[ktop]))
    for k in range(ktop + 1, nz):
        vm = _midline(sl, k, c7 + upper)
        if vm is None:
            continue
        xm_k, y_ant, _ = vm
        reach = 20.0 if len(pts) == 1 else 8.0  # from the subclavian artery's top, then slice to slice
        got = sl.blob(k, np.array(pts[-1][:2]), reach, VA_AREA_MM2) if enhanced else None
        if got is not None:  # contrast CT: follow the scan's artery up from the last point
            pts.append((float(got[1][0]), float(got[1][1]), sl.z[k]))
            continue
        fo = _foramen(sl, k, upper, xm_k, side) if np.isin(sl.labels[:, :, k], upper).any() else None
        if fo is not None:
            pts.append((*_scan_vessel(sl, k, fo, enhanced), sl.z[k]))
            continue
        # In front of the C7 transverse process: the anterior-most vertebra voxel 20-35 mm out.
        m = np.isin(sl.labels[:, :, k], c7)
        tp = np.argwhere(m)
        o = (sl.x[tp[:, 0]] - xm_k) * s_sign
        tp = tp[(o > 20.0) & (o < 35.0)]
        if len(tp):
            j = tp[np.argmax(sl.y[tp[:, 1]])]
            c = (sl.x[j[0]] - s_sign * 2.0, sl.y[j[1]] + VA_RADIUS_MM + 2.0)
            pts.append((*_scan_vessel(sl, k, c, enhanced), sl.z[k]))

    if len(pts) < 3:
        return next_id
    p = np.array(pts)
    # Smooth the path (foramina found in some slices only), keep its ends.
    ps = p.copy()
    for a in (0, 1):
        ps[1:-1, a] = ndi.median_filter(p[:, a], size=3, mode="nearest")[1:-1]
    mask = np.zeros(sl.labels.shape, bool)
    for k in range(nz):
        z = sl.z[k]
        if z < ps[0, 2] or z > sl.z[-1]:
            continue
        c = np.array([np.interp(z, ps[:, 2], ps[:, 0]), np.interp(z, ps[:, 2], ps[:, 1])])
        free = (sl.labels[:, :, k] == 0) & (sl.hu[:, :, k] > SOFT_HU[0])
        got = sl.blob(k, c, 5.0, VA_AREA_MM2) if enhanced else None
        mask[:, :, k] = got[0] if got is not None else sl.disc(c, VA_RADIUS_MM) & free
    return _add(structures, sl.labels, sl.hu, mask, f"vertebral_artery_{side}", Tissue.ARTERY, next_id, True)


def _longus(sl: _Slices, structures, side: str, next_id: int) -> int:
    verts = _ids(structures, LONGUS_LEVELS)
    cerv = _ids(structures, CERVICAL)
    if not verts or not cerv:
        return next_id
    ks = np.nonzero(np.isin(sl.labels, verts).any(axis=(0, 1)))[0]
    k_cerv = np.nonzero(np.isin(sl.labels, cerv).any(axis=(0, 1)))[0]
    inner, outer, thick = LONGUS_MM
    s_sign = SIDES[side]
    mask = np.zeros(sl.labels.shape, bool)
    for k in range(int(ks.min()), sl.labels.shape[2]):
        vm = _midline(sl, k, verts)
        if vm is None:
            continue
        xm, _, m = vm
        # The body's anterior surface across the muscle's width.
        cx = xm + s_sign * 0.5 * (inner + outer)
        band = (np.abs(sl.x - cx) <= 0.5 * (outer - inner))
        cols = np.nonzero(band)[0]
        ant = [sl.y[np.nonzero(m[i])[0]].max() for i in cols if m[i].any()]
        if not ant:
            continue
        y0 = float(np.median(ant))
        if k < k_cerv.min() - 2 / sl.spacing[2] and y0 < -60:
            continue
        c = (cx, y0 + 0.5 * thick)
        e = sl.ellipse(c, 0.5 * (outer - inner), 0.5 * thick + 0.5)
        mask[:, :, k] = e & sl.free(k)
    return _add(structures, sl.labels, sl.hu, mask, f"longus_colli_{side}", Tissue.MUSCLE, next_id, False)


def _neck_vessels(sl: _Slices, structures, next_id: int) -> int:
    """The other enhanced unlabelled blobs of the neck (see the module notes): in the cervical
    slices, within NECK_HALF_WIDTH_MM of the midline, away from labelled bone and not enclosed by
    dense voxels (above ENHANCED_HU: an unlabelled bone's cortex around its cancellous core);
    those touching the thyroid are the gland's own unlabelled parts (the isthmus) and join it;
    specks too small for a vessel get a soft tissue's CT number (SPECK_HU), not bone's."""
    cerv = _ids(structures, CERVICAL)
    ks = np.nonzero(np.isin(sl.labels, cerv).any(axis=(0, 1)))[0]
    if len(ks) == 0:
        return next_id
    zs = slice(int(ks.min()), int(ks.max()) + 1)
    mid = _midline(sl, int(np.median(ks)), cerv)
    if mid is None:
        return next_id
    i0, i1 = np.searchsorted(sl.x, [mid[0] - NECK_HALF_WIDTH_MM, mid[0] + NECK_HALF_WIDTH_MM])
    box = (slice(int(i0), int(i1)), slice(None), zs)  # a view: the labels written through
    sub_l, sub_h = sl.labels[box], sl.hu[box]
    bone_ids = [s.id for s in structures.values() if s.tissue in BONE]
    near_bone = np.isin(sub_l, bone_ids)
    r = np.maximum(np.rint(NECK_VESSEL_BONE_GAP_MM / sl.spacing).astype(int), 1)
    for a in range(3):
        near_bone = ndi.maximum_filter1d(near_bone, 2 * r[a] + 1, axis=a)
    cand = (sub_l == 0) & (sub_h >= ENHANCED_HU[0]) & (sub_h <= ENHANCED_HU[1]) & ~near_bone
    lab, n = ndi.label(cand)
    if n == 0:
        return next_id
    vol = np.bincount(lab.ravel(), minlength=n + 1) * float(np.prod(sl.spacing))
    # Inside an unlabelled bone: a component whose surroundings are mostly dense (its cortex).
    ring = ndi.binary_dilation(lab > 0) & (lab == 0)
    near = ndi.grey_dilation(lab, size=(3, 3, 3))
    rings = np.bincount(near[ring], minlength=n + 1)
    dense = np.bincount(near[ring & (sub_h > ENHANCED_HU[1])], minlength=n + 1)
    inside_bone = dense > 0.5 * np.maximum(rings, 1)
    small = (vol < NECK_VESSEL_MIN_MM3) & ~inside_bone
    small[0] = False
    specks = small[lab]
    sub_h[specks] = np.minimum(sub_h[specks], SPECK_HU)  # enhanced specks: soft tissue, not bone
    ok = (vol >= NECK_VESSEL_MIN_MM3) & ~inside_bone
    ok[0] = False
    thyroid = _ids(structures, ["thyroid_gland"])
    gland = np.zeros(n + 1, bool)
    if thyroid:
        gland[np.unique(lab[ndi.binary_dilation(sub_l == thyroid[0]) & (lab > 0)])] = True
        gland &= ok
        grow = gland[lab]
        sub_l[grow] = thyroid[0]
        st = structures[thyroid[0]]
        structures[thyroid[0]] = replace(st, voxels=st.voxels + int(grow.sum()))
        ok &= ~gland
    mask = np.zeros(sl.labels.shape, bool)
    mask[box] = ok[lab]
    return _add(structures, sl.labels, sl.hu, mask, "neck_vessels", Tissue.ARTERY, next_id, True)


def synthesise_neck(hu: np.ndarray, labels: np.ndarray, spacing, origin, structures: dict[int, Structure],
                    next_id: int, contrast_enhanced: bool | None = None) -> int:
    """Add the neck structures the segmentation lacks (see the module notes) into `labels` (and
    vessels' CT numbers into `hu`), in place; returns the next free label id. Structures already
    present by name are left as they are. `contrast_enhanced` None: judged from the carotids."""
    names = {s.name for s in structures.values()}
    if not any(n.startswith("common_carotid_artery_") for n in names) or not _ids(structures, CERVICAL):
        return next_id
    sl = _Slices(labels, hu, np.asarray(spacing, float), np.asarray(origin, float))
    cca = np.isin(labels, _ids(structures, ["common_carotid_artery_right", "common_carotid_artery_left"]))
    enhanced = bool(cca.any() and np.median(hu[cca]) > ENHANCED_CCA_HU) if contrast_enhanced is None \
        else bool(contrast_enhanced)
    for side in ("right", "left"):
        if f"internal_jugular_vein_{side}" not in names:
            next_id = _jugular(sl, structures, side, next_id, enhanced)
        if f"vertebral_artery_{side}" not in names:
            next_id = _vertebral(sl, structures, side, next_id, enhanced)
        if f"longus_colli_{side}" not in names:
            next_id = _longus(sl, structures, side, next_id)
    if enhanced and "neck_vessels" not in names:
        next_id = _neck_vessels(sl, structures, next_id)
    return next_id
