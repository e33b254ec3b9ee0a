"""A thread that works for the trainer in the background (the sync, the live feed): started once,
woken early when something happened, stopped with its server connection closed."""
from __future__ import annotations

import threading


def close_quietly(store) -> None:
    """Close a store whose connection may already be broken."""
    if store is not None:
        try:
            store.close()
        except Exception:  # noqa: BLE001 - a broken connection has nothing left to close
            pass


class Background:
    """Subclasses define `_run()` (looping until `self._stop` is set, waiting on `self._wake`)."""

    thread_name = "background"
    server = None

    def _init_background(self) -> None:
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.server = None

    def start(self):
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()
        return self

    def wake(self) -> None:
        """Work now instead of at the next interval."""
        self._wake.set()

    def _disconnect(self) -> None:
        close_quietly(self.server)
        self.server = None

    def stop(self) -> None:
        """Stop the thread (after its current step) and close the server connection."""
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join()
            self._thread = None
        self._disconnect()
