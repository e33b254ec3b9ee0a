"""Tissue classes: what a voxel is made of, for ultrasound, fluoroscopy and the needle.

Every anatomy (bundled CT, a user's CT, an analytic phantom) carries a uint8 volume of these
codes. The codes are stable: they are stored in caches and recordings.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum


class Tissue(IntEnum):
    AIR = 0  # outside the body, and gas inside it
    SKIN = 1
    FAT = 2
    MUSCLE = 3
    SOFT_TISSUE = 4  # generic connective / unsegmented soft tissue
    CORTICAL_BONE = 5
    CANCELLOUS_BONE = 6
    CARTILAGE = 7
    ARTERY = 8
    VEIN = 9
    HEART = 10
    LUNG = 11
    AIRWAY = 12
    LIVER = 13
    SPLEEN = 14
    KIDNEY = 15
    PANCREAS = 16
    ADRENAL = 17
    STOMACH = 18
    BOWEL = 19
    GALLBLADDER = 20
    BLADDER = 21
    ESOPHAGUS = 22
    THYROID = 23
    SPINAL_CORD = 24
    CSF = 25  # dural sac / spinal canal around the cord
    BRAIN = 26
    NERVE = 27
    FLUID = 28  # cysts, free fluid
    GEL = 29  # ultrasound phantom gel
    PROSTATE = 30
    INTERVERTEBRAL_DISC = 31
    METAL = 32  # an implant (hip stem, nail, screws): opaque on fluoroscopy, shadows ultrasound


@dataclass(frozen=True)
class TissueInfo:
    label: str
    group: str  # display group: skin, bone, vessels, organs, lungs, muscle, nervous, fat, phantom
    color: tuple[float, float, float]
    loose: bool = False  # injectate spreads readily through it
    barrier: bool = False  # injectate does not cross it (bone, capsules, vessel walls)
    hu: float = 40.0  # representative CT number, for phantoms (HU)


TISSUE_INFO: dict[Tissue, TissueInfo] = {
    Tissue.AIR: TissueInfo("air", "air", (0.0, 0.0, 0.0), hu=-1000),
    Tissue.SKIN: TissueInfo("skin", "skin", (0.93, 0.76, 0.65), hu=30),
    Tissue.FAT: TissueInfo("fat", "fat", (0.98, 0.90, 0.55), loose=True, hu=-100),
    Tissue.MUSCLE: TissueInfo("muscle", "muscle", (0.75, 0.30, 0.28), hu=50),
    Tissue.SOFT_TISSUE: TissueInfo("soft tissue", "soft tissue", (0.85, 0.65, 0.60), loose=True, hu=30),
    Tissue.CORTICAL_BONE: TissueInfo("cortical bone", "bone", (0.95, 0.93, 0.85), barrier=True, hu=1200),
    Tissue.CANCELLOUS_BONE: TissueInfo("cancellous bone", "bone", (0.90, 0.86, 0.72), barrier=True, hu=250),
    Tissue.CARTILAGE: TissueInfo("cartilage", "bone", (0.70, 0.85, 0.90), barrier=True, hu=100),
    Tissue.ARTERY: TissueInfo("artery", "vessels", (0.85, 0.10, 0.10), barrier=True, hu=45),
    Tissue.VEIN: TissueInfo("vein", "vessels", (0.20, 0.30, 0.80), barrier=True, hu=40),
    Tissue.HEART: TissueInfo("heart", "vessels", (0.70, 0.15, 0.20), barrier=True, hu=45),
    Tissue.LUNG: TissueInfo("lung", "lungs", (0.85, 0.75, 0.80), barrier=True, hu=-800),
    Tissue.AIRWAY: TissueInfo("airway", "lungs", (0.60, 0.80, 0.90), barrier=True, hu=-950),
    Tissue.LIVER: TissueInfo("liver", "organs", (0.55, 0.20, 0.15), barrier=True, hu=60),
    Tissue.SPLEEN: TissueInfo("spleen", "organs", (0.60, 0.25, 0.35), barrier=True, hu=50),
    Tissue.KIDNEY: TissueInfo("kidney", "organs", (0.70, 0.35, 0.25), barrier=True, hu=35),
    Tissue.PANCREAS: TissueInfo("pancreas", "organs", (0.90, 0.75, 0.45), barrier=True, hu=40),
    Tissue.ADRENAL: TissueInfo("adrenal gland", "organs", (0.90, 0.60, 0.30), barrier=True, hu=30),
    Tissue.STOMACH: TissueInfo("stomach", "bowel", (0.85, 0.55, 0.55), barrier=True, hu=30),
    Tissue.BOWEL: TissueInfo("bowel", "bowel", (0.90, 0.65, 0.60), barrier=True, hu=30),
    Tissue.GALLBLADDER: TissueInfo("gallbladder", "organs", (0.40, 0.65, 0.30), barrier=True, hu=10),
    Tissue.BLADDER: TissueInfo("urinary bladder", "organs", (0.90, 0.85, 0.40), barrier=True, hu=10),
    Tissue.ESOPHAGUS: TissueInfo("oesophagus", "bowel", (0.85, 0.50, 0.50), barrier=True, hu=40),
    Tissue.THYROID: TissueInfo("thyroid", "organs", (0.75, 0.40, 0.50), barrier=True, hu=80),
    Tissue.SPINAL_CORD: TissueInfo("spinal cord", "nervous", (0.98, 0.95, 0.60), barrier=True, hu=35),
    Tissue.CSF: TissueInfo("CSF (dural sac)", "nervous", (0.55, 0.80, 0.95), barrier=True, hu=5),
    Tissue.BRAIN: TissueInfo("brain", "nervous", (0.90, 0.80, 0.75), barrier=True, hu=35),
    Tissue.NERVE: TissueInfo("nerve", "nervous", (1.00, 0.90, 0.20), hu=40),
    Tissue.FLUID: TissueInfo("fluid", "organs", (0.50, 0.70, 0.90), barrier=True, hu=5),
    Tissue.GEL: TissueInfo("gel", "phantom", (0.75, 0.85, 0.95), loose=True, hu=10),
    Tissue.PROSTATE: TissueInfo("prostate", "organs", (0.80, 0.50, 0.50), barrier=True, hu=40),
    Tissue.INTERVERTEBRAL_DISC: TissueInfo("intervertebral disc", "bone", (0.70, 0.85, 0.90), barrier=True, hu=80),
    # hu: stainless steel / cobalt-chrome on an extended CT scale (see simulator/anatomy/metal.py)
    Tissue.METAL: TissueInfo("metal implant", "implants", (0.62, 0.66, 0.72), barrier=True, hu=14000),
}

BONE = frozenset({Tissue.CORTICAL_BONE, Tissue.CANCELLOUS_BONE})
VESSEL = frozenset({Tissue.ARTERY, Tissue.VEIN, Tissue.HEART})
ORGAN = frozenset(
    {
        Tissue.LIVER,
        Tissue.SPLEEN,
        Tissue.KIDNEY,
        Tissue.PANCREAS,
        Tissue.ADRENAL,
        Tissue.STOMACH,
        Tissue.BOWEL,
        Tissue.GALLBLADDER,
        Tissue.BLADDER,
        Tissue.ESOPHAGUS,
        Tissue.THYROID,
        Tissue.PROSTATE,
    }
)
NEURAXIS = frozenset({Tissue.SPINAL_CORD, Tissue.CSF, Tissue.BRAIN})

# TotalSegmentator structure names (v1 and v2) -> tissue class. Patterns are matched in order.
_NAME_RULES: list[tuple[str, Tissue]] = [
    (r"^(vertebrae_.*|sacrum|skull|rib_.*|sternum|humerus_.*|scapula_.*|clavicula_.*|femur_.*|hip_.*)$",
     Tissue.CANCELLOUS_BONE),
    (r"^costal_cartilages$", Tissue.CARTILAGE),
    (r"^(aorta|brachiocephalic_trunk|subclavian_artery_.*|common_carotid_artery_.*|iliac_artery_.*|"
     r"pulmonary_artery|.*_artery.*)$", Tissue.ARTERY),
    (r"^(inferior_vena_cava|superior_vena_cava|portal_vein_and_splenic_vein|brachiocephalic_vein_.*|"
     r"iliac_vena_.*|pulmonary_vein|.*_vein.*|.*_vena.*)$", Tissue.VEIN),
    (r"^(heart.*|atrial_appendage_.*)$", Tissue.HEART),
    (r"^lung_.*$", Tissue.LUNG),
    (r"^trachea$", Tissue.AIRWAY),
    (r"^liver$", Tissue.LIVER),
    (r"^spleen$", Tissue.SPLEEN),
    (r"^kidney_cyst_.*$", Tissue.FLUID),
    (r"^kidney_.*$", Tissue.KIDNEY),
    (r"^pancreas$", Tissue.PANCREAS),
    (r"^adrenal_gland_.*$", Tissue.ADRENAL),
    (r"^stomach$", Tissue.STOMACH),
    (r"^(small_bowel|duodenum|colon)$", Tissue.BOWEL),
    (r"^gallbladder$", Tissue.GALLBLADDER),
    (r"^urinary_bladder$", Tissue.BLADDER),
    (r"^esophagus$", Tissue.ESOPHAGUS),
    (r"^thyroid_gland$", Tissue.THYROID),
    (r"^prostate$", Tissue.PROSTATE),
    (r"^spinal_cord$", Tissue.SPINAL_CORD),
    (r"^(spinal_canal|dural_sac|csf)$", Tissue.CSF),
    (r"^brain$", Tissue.BRAIN),
    (r"^(autochthon_.*|iliopsoas_.*|gluteus_.*|.*_muscle.*|psoas.*|quadratus_lumborum.*|longus_colli.*)$", Tissue.MUSCLE),
    (r"^(intervertebral_disc.*|sacrococcygeal_joint)$", Tissue.INTERVERTEBRAL_DISC),
    (r"^(.*_nerve.*|.*plexus.*|.*ganglion.*)$", Tissue.NERVE),
    (r"^(face|skin)$", Tissue.SKIN),
    (r"^(metal_implant.*|implant.*)$", Tissue.METAL),
    (r"^(subcutaneous_fat|fat)$", Tissue.FAT),
]


def tissue_for_structure(name: str) -> Tissue | None:
    """The tissue class of a TotalSegmentator-style structure name, or None if unknown."""
    key = name.strip().lower()
    for pattern, tissue in _NAME_RULES:
        if re.match(pattern, key):
            return tissue
    return None


def structure_group(name: str, tissue: Tissue) -> str:
    """Display group of a structure (used for visibility toggles in the 3D view)."""
    if name.startswith("vertebrae_") or name == "sacrum":
        return "spine"
    if name.startswith("rib_") or name in ("sternum", "costal_cartilages"):
        return "ribs"
    return TISSUE_INFO[tissue].group
