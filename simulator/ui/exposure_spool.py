"""Saved fluoroscopy images kept off the heap: a long attempt takes hundreds of shots, and a
512x512 image is 256 kB. The image strip keeps its thumbnails (icons) in memory; the full images
go to a folder of this window's own in the user data folder's cache (removed when the window
closes or the attempt is reset) and come back from there when a trainee reviews one.

    spool = ExposureSpool()
    k = spool.put(frame.image)        # an index
    image = spool.get(k)              # the same uint8 array, read back
    spool.clear(); spool.close()
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from simulator.core.paths import user_data_dir


class ExposureSpool:
    def __init__(self, folder: Path | None = None):
        self._root = Path(folder) if folder is not None else None
        self._dir: Path | None = None
        self._n = 0
        self._shapes: list[tuple] = []

    def _folder(self) -> Path:
        if self._dir is None:
            base = self._root or (user_data_dir() / "cache" / "exposures")
            base.mkdir(parents=True, exist_ok=True)
            self._dir = Path(tempfile.mkdtemp(prefix="spool-", dir=base))
        return self._dir

    def __len__(self) -> int:
        return self._n

    def put(self, image: np.ndarray) -> int:
        """Write an image; its index."""
        k = self._n
        np.save(self._folder() / f"{k:05d}.npy", np.ascontiguousarray(image), allow_pickle=False)
        self._n += 1
        return k

    def get(self, k: int) -> np.ndarray | None:
        """The image written as `k` (None if it is gone)."""
        if self._dir is None or not 0 <= k < self._n:
            return None
        try:
            return np.load(self._dir / f"{k:05d}.npy", allow_pickle=False)
        except (OSError, ValueError):
            return None

    def clear(self) -> None:
        self.close()
        self._n = 0

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
