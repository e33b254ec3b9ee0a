"""The patients a scenario can run on, as the scenario picker lists them: every built anatomy in the
user's anatomies folder - the bundled patients set up by `setup-data` and the patients imported
with `import-anatomy` - with its title and structure names, read from its `anatomy.json` alone (no
volumes are loaded: the picker asks which scenarios each patient can host, `fitting.host_check`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from simulator.core import paths


@dataclass(frozen=True)
class PatientInfo:
    ref: str  # what a scenario's `anatomy` field says: bundled, bundled:lumbopelvic, user:NAME
    title: str
    names: frozenset[str]  # its structures


def _ref(folder_name: str, source: dict) -> str | None:
    kind = str(source.get("kind", ""))
    if kind == "bundled":
        name = str(source.get("patient") or folder_name)
        return "bundled" if name == "bundled" else f"bundled:{name}"
    if kind == "user":
        return f"user:{folder_name}"
    return None


def available_patients() -> list[PatientInfo]:
    """Built patients, bundled first then imported ones by name; unreadable folders are skipped."""
    root = paths.anatomies_dir()
    out: list[PatientInfo] = []
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.endswith((".partial", ".old")))
    except OSError:
        return out
    for folder in folders:
        try:
            meta = json.loads((folder / "anatomy.json").read_text())
        except (OSError, ValueError):
            continue
        source = meta.get("source") or {}
        ref = _ref(folder.name, source)
        if ref is None:
            continue
        names = frozenset(str(s.get("name")) for s in meta.get("structures") or [] if isinstance(s, dict))
        title = str(source.get("title") or ("imported patient " + folder.name if ref.startswith("user:") else ref))
        out.append(PatientInfo(ref, title, names))
    out.sort(key=lambda p: (not p.ref.startswith("bundled"), p.ref != "bundled", p.ref))
    return out
