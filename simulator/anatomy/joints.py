"""Joints a needle passes through that the label map does not separate: the sacrococcygeal joint.

TotalSegmentator's `sacrum` label includes the coccyx, as one bone. The transcoccygeal approach to
the ganglion impar passes the needle through the sacrococcygeal joint (a fibrocartilage disc), so
the builder marks the joint: going up from the coccyx's tip, the label's cross-section stays small
(the coccyx, COCCYX_MM at least) and then widens into the sacral apex (to WIDEN_RATIO times the
coccyx's median cross-section); the joint is the slab of SCJ_THICKNESS_MM of the label just below
the widening, given the tissue of an intervertebral disc and its own label, `sacrococcygeal_joint`.
At a scan's resolution the joint is not seen; its level is where the sacrum narrows into the
coccyx, and its plane is taken axial.
"""
from __future__ import annotations

import numpy as np

SCJ_NAME = "sacrococcygeal_joint"
COCCYX_MM = 9.0  # the joint lies at least this far above the coccyx's tip
SEARCH_MM = 60.0  # ... and at most this far
TIP_MM = 12.0  # the coccyx's cross-section: the median over its lowest 12 mm
WIDEN_RATIO = 1.8
SCJ_THICKNESS_MM = 3.0


def sacrococcygeal_joint(labels: np.ndarray, spacing, sacrum_id: int) -> np.ndarray | None:
    """Bool mask of the joint's voxels (within the sacrum label), or None when no narrowing is found."""
    mask = labels == sacrum_id
    area = mask.sum(axis=(0, 1)).astype(float)
    ks = np.nonzero(area)[0]
    if len(ks) < 4:
        return None
    sz = float(spacing[2])
    k0 = int(ks[0])
    tip = area[k0:k0 + max(1, int(round(TIP_MM / sz)))]
    coccyx = float(np.median(tip))
    for k in range(k0 + int(round(COCCYX_MM / sz)), min(k0 + int(round(SEARCH_MM / sz)), len(area))):
        if area[k] > WIDEN_RATIO * coccyx:
            n = max(1, int(round(SCJ_THICKNESS_MM / sz)))
            joint = np.zeros_like(mask)
            joint[:, :, max(k - n, k0):k] = mask[:, :, max(k - n, k0):k]
            return joint if joint.any() else None
    return None
