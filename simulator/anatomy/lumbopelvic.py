"""The second bundled patient, "lumbopelvic": lumbar spine, sacrum, coccyx and pelvis.

Source: the PyPI source distribution of TotalSegmentator 2.18.0 (Apache-2.0; the wheel does not
carry its tests) holds `tests/reference_files/example_ct.nii.gz`, a real adult non-contrast CT from
the lower T11 through L1-L5, the sacrum and coccyx, the pelvis and both hips (122 x 101 x 112 voxels
of 3 mm, RAS), and on the same grid `example_seg_fast_force_split.nii.gz`, TotalSegmentator's own
multi-label map of it (v2 `total` ids: vertebrae T11-S1, sacrum with the coccyx, kidneys, aorta to
its bifurcation, IVC, iliac arteries and veins, iliopsoas, bladder, bowel, hip bones, femora, ...).
Set-up fetches the archive with pip (hash-checked), checks the archive's and both members' sha256,
and reads the label names from the package's own `map_to_binary.py` as text (its `class_map` dict
literal is parsed, never executed); TotalSegmentator is never imported or installed. Its LICENSE and
the credit are written beside the built anatomy (`packaged.py`).

The caveats of this scan and what the builder does about them (`anatomy.source["caveats"]`):
- 3 mm voxels: the grid is refined to 1.5 mm before the build, CT numbers interpolated trilinearly
  (as the fluoroscopy projector does), labels with smooth boundaries (`regrid.py`); surfaces are
  smoothed meshes; the ultrasound draws tissue texture from the tissue classes in world mm;
- no contrast: the iliac vessels are at soft-tissue density on the CT, as on a plain fluoroscopy; they
  are known from the label map (needle contact, aspiration of blood, ultrasound flow);
- a metal implant in the left proximal femur (over 2000 HU in the lowest slices): labelled
  `metal_implant`, opaque on fluoroscopy and shadowing on ultrasound, its CT streaks clipped out of
  the soft tissue around it (`metal.py`);
- the skin is cut by the scan's field of view along the patient's left flank and hip: the body ends
  in a flat face there (reported with its extent); no scenario enters the skin near it;
- the label map is a model's output, not hand-drawn (the L1-L5 and sacral labels were checked
  against the CT for the scenarios that use them: tests/anatomy/test_lumbopelvic.py).
"""
from __future__ import annotations

import ast
from pathlib import Path

from simulator.anatomy import packaged
from simulator.anatomy.build import TREATMENT_VERSION
from simulator.anatomy.packaged import BundledDataError, PackagedPatient
from simulator.core.anatomy import Anatomy

TS_VERSION = "2.18.0"
SDIST_NAME = f"totalsegmentator-{TS_VERSION}.tar.gz"
SDIST_SHA256 = "5d4223ef93973bc36d710869d11e7742ead2c154c72f7f9edcaaadd5b6c4bd03"
_ROOT = f"totalsegmentator-{TS_VERSION}"
CT_MEMBER = f"{_ROOT}/tests/reference_files/example_ct.nii.gz"
CT_SHA256 = "dbd3ae6d614d1d7ef3a46925c30c70038ed52da6b37fdd6afdc7b9b71387e3e1"
LABELS_MEMBER = f"{_ROOT}/tests/reference_files/example_seg_fast_force_split.nii.gz"
LABELS_SHA256 = "e8097758e56e73099075b6caaebce23ef11bc6fad66a4ec3753b9406846558c7"
NAMES_MEMBER = f"{_ROOT}/totalsegmentator/map_to_binary.py"
LICENCE_MEMBER = f"{_ROOT}/LICENSE"
NAME = "lumbopelvic"
REF = "bundled:lumbopelvic"
RECIPE = f"lumbopelvic1{TREATMENT_VERSION}"  # this patient's treatment (grid, metal, joints)

CREDIT = (
    "CT and segmentation from TotalSegmentator (Wasserthal J, Breit H-C, Meyer MT, et al. TotalSegmentator: "
    "robust segmentation of 104 anatomic structures in CT images. Radiology: Artificial Intelligence 2023;"
    "5(5):e230024), github.com/wasserth/TotalSegmentator, Apache License 2.0 (LICENSE-totalsegmentator.txt "
    "beside this file). Files: tests/reference_files/example_ct.nii.gz and "
    "example_seg_fast_force_split.nii.gz of the totalsegmentator 2.18.0 source distribution."
)


def read_class_map(text: str, where: str, task: str = "total") -> dict[int, str]:
    """The `class_map[task]` dict literal of TotalSegmentator's map_to_binary.py, parsed (not run)."""
    try:
        tree = ast.parse(text)
    except SyntaxError as e:
        raise BundledDataError(f"{where}: not readable Python ({e})") from None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "class_map" for t in node.targets) \
                and isinstance(node.value, ast.Dict):
            for key, value in zip(node.value.keys, node.value.values):
                if isinstance(key, ast.Constant) and key.value == task:
                    try:
                        table = ast.literal_eval(value)
                    except ValueError as e:
                        raise BundledDataError(f"{where}: class_map[{task!r}] is not a plain dict ({e})") from None
                    if not isinstance(table, dict) or not all(isinstance(k, int) and isinstance(v, str)
                                                              for k, v in table.items()):
                        raise BundledDataError(f"{where}: class_map[{task!r}] is not a table of id: name")
                    return table
    raise BundledDataError(f"{where}: no class_map[{task!r}] found")


def _names(read, where: str) -> dict[int, str]:
    return read_class_map(read(NAMES_MEMBER).decode("utf-8"), f"{where}:{NAMES_MEMBER}")


PATIENT = PackagedPatient(
    name=NAME,
    ref=REF,
    title="lumbar spine and pelvis (plain CT)",
    requirement=f"totalsegmentator=={TS_VERSION}",
    file_name=SDIST_NAME,
    sha256=SDIST_SHA256,
    wheel=False,
    ct_member=CT_MEMBER,
    labels_member=LABELS_MEMBER,
    names=_names,
    contrast_enhanced=False,
    credit=CREDIT,
    licence_member=LICENCE_MEMBER,
    member_sha256={CT_MEMBER: CT_SHA256, LABELS_MEMBER: LABELS_SHA256},
    recipe=RECIPE,
    extra_members=(NAMES_MEMBER,),
)


def cache_dir() -> Path:
    return packaged.cache_dir(PATIENT)


def cache_is_valid() -> bool:
    return packaged.cache_is_valid(PATIENT)


def ensure_lumbopelvic(progress=None, force: bool = False) -> Path:
    return packaged.ensure(PATIENT, progress, force)


def load_lumbopelvic(progress=None) -> Anatomy:
    return Anatomy.load(ensure_lumbopelvic(progress))
