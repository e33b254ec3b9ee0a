"""Where the project and the user's data live.

Scenario files may only reference assets inside these folders (see `safe_asset_path`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ASSETS_DIR = PROJECT_ROOT / "assets"
MESHES_DIR = ASSETS_DIR / "meshes"
SCENARIOS_DIR = PROJECT_ROOT / "scenarios"


def user_data_dir() -> Path:
    """The user's data folder: $NEUROLYSIS_DATA, else $XDG_DATA_HOME/neurolysis-trainer."""
    env = os.environ.get("NEUROLYSIS_DATA")
    if env:
        return Path(env).expanduser().resolve()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return (Path(base) / "neurolysis-trainer").resolve()


SHARED_DATA = ("anatomies", "cache", "downloads")


def link_shared_data(folder: Path, source: Path | None = None) -> Path:
    """Make `folder` a data folder of its own (records, editor files) that shares the built
    anatomies, caches and downloads of `source` (default: the current user data folder) through
    symbolic links; for benchmarks and tests that must not write into the user's records."""
    source = user_data_dir() if source is None else Path(source)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in SHARED_DATA:
        if (source / name).exists() and not (folder / name).exists():
            (folder / name).symlink_to((source / name).resolve(), target_is_directory=True)
    return folder


def downloads_dir() -> Path:
    return user_data_dir() / "downloads"


def anatomies_dir() -> Path:
    """Built anatomies (cache), one folder per anatomy name."""
    return user_data_dir() / "anatomies"


def user_scenarios_dir() -> Path:
    return user_data_dir() / "scenarios"


def allowed_roots() -> list[Path]:
    return [PROJECT_ROOT.resolve(), user_data_dir()]


def safe_asset_path(path: str | os.PathLike, base: Path | None = None) -> Path:
    """Resolve `path` (relative to `base`, else the project root) and refuse it if it leaves
    the project's folder and the user's data folder. Raises ValueError naming the path."""
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = (base or PROJECT_ROOT) / p
    resolved = p.resolve()
    for root in allowed_roots():
        try:
            resolved.relative_to(root)
            return resolved
        except ValueError:
            continue
    raise ValueError(
        f"path {str(path)!r} resolves to {resolved}, outside the project folder and the user data folder"
    )


def file_stem(name: str, default: str = "records") -> str:
    """A user-given name (a trainee's, a scenario's) made safe as a file name: letters, digits, '-',
    '_' and '.' kept, anything else (path separators, spaces, control characters) '_', no leading
    dot, at most 64 characters; `default` when nothing is left."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name or ""))
    stem = re.sub(r"_+", "_", re.sub(r"\.{2,}", "_", stem)).strip("._")[:64]
    return stem or default
