"""A worker thread for the imaging views: jobs run in order off the GUI thread; results come back
to the GUI thread through a queued Qt signal.

- `submit(job)` queues a job; `submit(job, key="frame")` replaces a job with the same key still
  waiting (the latest wins: a burst of needle moves costs one frame, never a backlog).
- The handler runs in the worker thread (the numba kernels of the imaging engines release the
  GIL, so the GUI thread keeps running); whatever it returns other than None is emitted with
  `result`.
- `stop()` ends the thread (it finishes the job in hand); nothing is emitted after it.
"""
from __future__ import annotations

import threading
import traceback
from collections import deque
from typing import Callable

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    result = Signal(object)
    failed = Signal(str)


class SerialWorker:
    def __init__(self, name: str, handler: Callable, parent: QObject | None = None):
        self.name = name
        self.handler = handler
        self.emitter = _Emitter(parent)
        self.result = self.emitter.result
        self.failed = self.emitter.failed
        self._jobs: deque = deque()
        self._cond = threading.Condition()
        self._stopped = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name=f"worker-{name}", daemon=True)
        self._thread.start()

    def submit(self, job, key: str | None = None) -> None:
        with self._cond:
            if self._stopped:
                return
            if key is not None:
                for i, (k, _) in enumerate(self._jobs):
                    if k == key:
                        self._jobs[i] = (key, job)
                        self._cond.notify()
                        return
            self._jobs.append((key, job))
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._jobs) + (1 if self._busy else 0)

    def idle(self) -> bool:
        return self.pending() == 0

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                _, job = self._jobs.popleft()
                self._busy = True
            try:
                out = self.handler(job)
            except Exception as e:  # noqa: BLE001 - reported to the view, the worker goes on
                out = None
                self._emit(self.failed, f"{e}\n{traceback.format_exc(limit=3)}")
            with self._cond:
                self._busy = False
            if out is not None:
                self._emit(self.result, out)

    def _emit(self, signal, value) -> None:
        if self._stopped:
            return
        try:
            signal.emit(value)
        except RuntimeError:  # the view was deleted
            self._stopped = True

    def stop(self, timeout_s: float = 2.0) -> None:
        with self._cond:
            self._stopped = True
            self._jobs.clear()
            self._cond.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)
