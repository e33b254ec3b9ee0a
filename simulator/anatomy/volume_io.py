"""Reading CT and label volumes (NIfTI, NRRD) and putting them on an axis-aligned RAS grid.

Every volume comes back as `(array, affine)` where `affine` maps voxel indices to RAS mm.
`to_ras_grid` reorders/flips axes so that i->R, j->A, k->S with positive spacing; an oblique
acquisition (rotated axes) is resampled onto an axis-aligned grid.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

OBLIQUE_TOLERANCE_DEG = 0.5
RESAMPLE_GROWTH_LIMIT = 8  # an oblique volume's axis-aligned box: at most this many times its voxels


class VolumeError(Exception):
    """A volume file could not be read or used; the message names the file."""


def shown(value) -> str:
    """A header value for a one-line message (arrays as lists, white space folded, cut at 200 characters)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return " ".join(repr(value).split())[:200]


def checked_affine(affine, name: str) -> np.ndarray:
    """A voxel->world matrix that can place voxels: finite, its 3 x 3 part invertible."""
    try:
        aff = np.asarray(affine, dtype=np.float64).reshape(4, 4)
    except (TypeError, ValueError):
        raise VolumeError(f"{name}: the voxel-to-world matrix is not a 4 x 4 matrix of numbers") from None
    lin = aff[:3, :3]
    if not np.all(np.isfinite(aff)):
        raise VolumeError(f"{name}: the voxel-to-world matrix has values that are not numbers: "
                          f"{np.round(aff, 4).tolist()}")
    with np.errstate(all="ignore"):  # absurd sizes overflow: refused below all the same
        sizes = np.linalg.norm(lin, axis=0)
        flat = not np.all(np.isfinite(sizes)) or np.any(sizes <= 1e-6) or np.any(sizes > 1e4) \
            or not abs(np.linalg.det(lin)) > 1e-9 * float(np.prod(sizes))
    if flat:
        raise VolumeError(f"{name}: the voxel-to-world matrix is singular or absurd (voxel axes of zero length, "
                          f"in one plane or over 10 m long): {shown(np.round(lin, 4))}")
    return aff


def _nifti_array(img, path: str) -> np.ndarray:
    """Voxel values with the header's scaling applied, without going through float64 when the
    scaling is the identity."""
    proxy = img.dataobj
    if not hasattr(proxy, "get_unscaled"):
        return np.asanyarray(proxy)
    # nibabel keeps the file's scl_slope / scl_inter on the array proxy (the header's are reset).
    slope = float(getattr(proxy, "slope", 1.0))
    inter = float(getattr(proxy, "inter", 0.0))
    raw = np.asanyarray(proxy.get_unscaled())
    if slope == 1.0 and inter == 0.0:
        return raw
    if raw.dtype.kind in "iu" and slope == 1.0 and inter.is_integer():
        return raw.astype(np.int32) + np.int32(inter)
    return raw.astype(np.float32) * np.float32(slope) + np.float32(inter)


def read_nifti_bytes(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A NIfTI image from bytes (gzip-compressed or not); `name` is used in errors."""
    import nibabel as nib

    try:
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        img = nib.Nifti1Image.from_bytes(data)
    except Exception as e:  # noqa: BLE001
        raise VolumeError(f"{name}: not a readable NIfTI image ({e})") from None
    arr = _nifti_array(img, name)
    if arr.ndim == 4 and arr.shape[3] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise VolumeError(f"{name}: expected a 3-D volume, got shape {arr.shape}")
    return arr, checked_affine(img.affine, name)


def read_volume(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(array, voxel->RAS affine) of a NIfTI (.nii, .nii.gz) or NRRD (.nrrd, .nhdr) file."""
    path = Path(path)
    if not path.exists():
        raise VolumeError(f"{path}: file not found")
    if path.is_dir():
        raise VolumeError(f"{path}: is a folder, expected a NIfTI (.nii/.nii.gz) or NRRD (.nrrd/.nhdr) file")
    lower = path.name.lower()
    if lower.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        try:
            img = nib.load(str(path))
            arr = _nifti_array(img, str(path))
        except Exception as e:  # noqa: BLE001
            raise VolumeError(f"{path}: not a readable NIfTI image ({e})") from None
        if arr.ndim == 4 and arr.shape[3] == 1:
            arr = arr[..., 0]
        if arr.ndim != 3:
            raise VolumeError(f"{path}: expected a 3-D volume, got shape {arr.shape}")
        return arr, checked_affine(img.affine, str(path))
    if lower.endswith((".nrrd", ".nhdr")):
        return _read_nrrd(path)
    raise VolumeError(f"{path}: unsupported file type (use NIfTI .nii/.nii.gz or NRRD .nrrd/.nhdr)")


_NRRD_SPACES = {
    "right-anterior-superior": np.array([1.0, 1.0, 1.0]),
    "ras": np.array([1.0, 1.0, 1.0]),
    "left-posterior-superior": np.array([-1.0, -1.0, 1.0]),
    "lps": np.array([-1.0, -1.0, 1.0]),
    "left-anterior-superior": np.array([-1.0, 1.0, 1.0]),
    "las": np.array([-1.0, 1.0, 1.0]),
    "scanner-xyz": np.array([-1.0, -1.0, 1.0]),  # DICOM patient coordinates are LPS
}


def _read_nrrd(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import nrrd

    try:
        arr, header = nrrd.read(str(path), index_order="F")
    except Exception as e:  # noqa: BLE001
        raise VolumeError(f"{path}: not a readable NRRD file ({e})") from None
    if arr.ndim != 3:
        raise VolumeError(f"{path}: expected a 3-D volume, got shape {arr.shape}")
    space = str(header.get("space", "")).strip().lower()
    dirs = header.get("space directions")
    if dirs is None:
        spacings = header.get("spacings")
        if spacings is None:
            raise VolumeError(f"{path}: NRRD header has neither 'space directions' nor 'spacings'")
        dirs = np.diag(np.asarray(spacings, dtype=np.float64))
        space = space or "right-anterior-superior"
    try:
        dirs = np.asarray(dirs, dtype=np.float64)
    except (TypeError, ValueError):
        dirs = np.full(1, np.nan)
    if dirs.shape != (3, 3) or not np.all(np.isfinite(dirs)):
        raise VolumeError(f"{path}: NRRD field 'space directions' must give 3 spatial axes, got "
                          f"{shown(header.get('space directions', header.get('spacings')))}")
    if space not in _NRRD_SPACES:
        raise VolumeError(
            f"{path}: NRRD field 'space' is {shown(header.get('space'))}; expected one of "
            f"{', '.join(sorted(k for k in _NRRD_SPACES if '-' in k))}"
        )
    try:
        origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=np.float64).reshape(3)
    except (TypeError, ValueError):
        origin = np.full(1, np.nan)
    if origin.shape != (3,) or not np.all(np.isfinite(origin)):
        raise VolumeError(f"{path}: NRRD field 'space origin' must be 3 numbers, got {shown(header.get('space origin'))}")
    flip = _NRRD_SPACES[space]
    affine = np.eye(4)
    affine[:3, :3] = (dirs.T) * flip[:, None]  # rows of 'space directions' are the axis vectors
    affine[:3, 3] = origin * flip
    return arr, checked_affine(affine, str(path))


def to_ras_grid(arr: np.ndarray, affine: np.ndarray, order: int, name: str,
                fill: float = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reorient to i->R, j->A, k->S with positive spacing. Returns (array, spacing_mm, origin_mm).

    An oblique volume (axes rotated by more than OBLIQUE_TOLERANCE_DEG) is resampled with
    interpolation `order` (1 for CT, 0 for labels)."""
    from nibabel import orientations as no

    ornt = no.io_orientation(affine)
    out = no.apply_orientation(arr, ornt)
    aff = affine @ no.inv_ornt_aff(ornt, arr.shape)
    lin = aff[:3, :3]
    spacing = np.linalg.norm(lin, axis=0)
    if np.any(spacing <= 0) or not np.all(np.isfinite(lin)):
        raise VolumeError(f"{name}: degenerate voxel-to-world matrix {affine[:3, :3].tolist()}")
    cosines = lin / spacing
    angle = np.degrees(np.arccos(np.clip(np.min(np.diag(cosines)), -1.0, 1.0)))
    if angle <= OBLIQUE_TOLERANCE_DEG:
        return np.ascontiguousarray(out), spacing, aff[:3, 3].copy()
    # Oblique: resample onto an axis-aligned grid covering the volume, same voxel size.
    from scipy import ndimage as ndi

    corners = np.array([[i, j, k, 1.0] for i in (0, out.shape[0] - 1) for j in (0, out.shape[1] - 1)
                        for k in (0, out.shape[2] - 1)])
    world = corners @ aff.T
    lo, hi = world[:, :3].min(axis=0), world[:, :3].max(axis=0)
    step = spacing
    shape = np.ceil((hi - lo) / step).astype(int) + 1
    if float(np.prod(shape.astype(float))) > RESAMPLE_GROWTH_LIMIT * arr.size + 1e6:
        raise VolumeError(f"{name}: the voxel axes are sheared too far ({shown(np.round(lin, 3))}): an axis-aligned "
                          f"grid holding it would need {shape.tolist()} voxels")
    # new ijk -> world -> old ijk
    new_to_world = np.eye(4)
    new_to_world[:3, :3] = np.diag(step)
    new_to_world[:3, 3] = lo
    new_to_old = np.linalg.inv(aff) @ new_to_world
    res = ndi.affine_transform(out, new_to_old[:3, :3], offset=new_to_old[:3, 3], output_shape=tuple(shape),
                               order=order, mode="constant", cval=fill)
    return res, step, lo
