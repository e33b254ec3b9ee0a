"""Loading anatomies off the GUI thread, with progress, cached in memory by reference.

`AnatomyLoader.request(ref)` returns at once. The anatomy arrives through `loaded(ref, anatomy)`
(on the GUI thread, through a queued signal), or `failed(ref, message)`; `progress(fraction,
message)` feeds a progress bar while the first build of the bundled patient runs (up to a minute).
A second request for a reference already loading joins the running load. Loaded anatomies stay in
`cache`, so switching back to a scenario is instant.

Worker threads are Python daemon threads: closing the window during a long build never blocks
the exit (the builder writes its cache atomically, so an interrupted build leaves no half cache).
"""
from __future__ import annotations

import threading
import time
import traceback
from typing import Callable

from PySide6.QtCore import QObject, QTimer, Signal

PROGRESS_MIN_INTERVAL_S = 0.05


def _default_load(ref: str, progress=None):
    from simulator.anatomy import load_anatomy

    return load_anatomy(ref, progress=progress)


class AnatomyLoader(QObject):
    progress = Signal(float, str)
    loaded = Signal(str, object)
    failed = Signal(str, str)

    def __init__(self, load_fn: Callable | None = None, prepare_fn: Callable | None = None, parent=None):
        super().__init__(parent)
        self.load_fn = load_fn or _default_load
        self.prepare_fn = prepare_fn  # more work for the worker (e.g. building the VTK meshes)
        self.cache: dict[str, object] = {}
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._stopped = False
        self.load_seconds: dict[str, float] = {}

    def is_loading(self, ref: str | None = None) -> bool:
        with self._lock:
            return bool(self._running) if ref is None else ref in self._running

    def request(self, ref: str) -> None:
        """Load `ref` (or take it from the cache); the result arrives by signal."""
        if ref in self.cache:
            anatomy = self.cache[ref]
            QTimer.singleShot(0, self, lambda: self._deliver(ref, anatomy))
            return
        with self._lock:
            if ref in self._running:
                return
            self._running.add(ref)
        threading.Thread(target=self._work, args=(ref,), name=f"load-anatomy-{ref}", daemon=True).start()

    def _deliver(self, ref, anatomy):
        if not self._stopped:
            self.loaded.emit(ref, anatomy)

    def _emit(self, signal, *args) -> None:
        if self._stopped:
            return
        try:
            signal.emit(*args)
        except RuntimeError:  # the loader was deleted with its window
            self._stopped = True

    def _work(self, ref: str) -> None:
        last = [0.0]

        def progress(fraction, message=""):
            now = time.monotonic()
            if fraction >= 1.0 or now - last[0] >= PROGRESS_MIN_INTERVAL_S:
                last[0] = now
                self._emit(self.progress, float(fraction), str(message))

        t0 = time.perf_counter()
        try:
            anatomy = self.load_fn(ref, progress=progress)
        except Exception as e:  # noqa: BLE001 - every failure is reported to the user
            with self._lock:
                self._running.discard(ref)
            msg = str(e) or e.__class__.__name__
            if not isinstance(e, (FileNotFoundError, ValueError, LookupError, OSError)):
                msg = f"{msg}\n\n{traceback.format_exc(limit=4)}"
            self._emit(self.failed, ref, msg)
            return
        if self.prepare_fn is not None:
            progress(1.0, "preparing the 3D view")
            try:
                self.prepare_fn(anatomy)
            except Exception:  # noqa: BLE001 - the GUI thread builds it again and reports then
                pass
        self.load_seconds[ref] = time.perf_counter() - t0
        self.cache[ref] = anatomy
        with self._lock:
            self._running.discard(ref)
        self._emit(self.loaded, ref, anatomy)

    def stop(self) -> None:
        """No more signals (the window is closing); running loads finish in the background."""
        self._stopped = True
