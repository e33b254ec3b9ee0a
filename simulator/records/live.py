"""Crash-safe live recording of an attempt into a record store.

    recorder = LiveRecorder(store, procedure)      # or a bare Recording that something else fills
    recorder.start()                                # the attempt is in the store, status "live"
    ... the attempt runs: the procedure appends inputs, samples and events to its recording ...
    recorder.add_image("fluoro_003", png_bytes)     # key images, written with the next flush
    info = recorder.finish(card)                    # last flush, score card, status "finished"

A background thread (or, with `thread=False`, the owner calling `poll()` on its timer) flushes
what is new every `interval_s` (0.5 s by default) in one transaction (and marks the attempt
alive every `HEARTBEAT_S` when nothing happens): the inputs and events added
since the last flush and the samples that are final. A sample is final once a later one exists
(the recording replaces the newest sample when the next input falls in the same millisecond);
the newest one is written too, aside as the attempt's provisional "tail", so a killed process
loses at most what happened since the last flush. Flushing never blocks the caller: the
recorder only reads the recording (appends only, newest sample excepted) from its own thread,
with its own database connection. Harmful events and the end of the attempt wake the thread at
once.

After a crash, `store.recoverable_attempts()` lists the attempts still "live" whose recording
process is gone (another trainer running on the same database keeps its attempt) and
`store.recover(id)` returns the Recording saved so far (status "recovered"). To go on with a
recovered attempt, rebuild it with `simulator.core.procedure.replay` and continue recording into
the same attempt with `LiveRecorder.resume(store, procedure, attempt_id)`.
"""
from __future__ import annotations

import statistics
import threading
import time

import numpy as np

from simulator.core.events import HARMFUL, EventKind
from simulator.core.recording import Recording
from simulator.records.codec import SAMPLE_KEYS
from simulator.records.store import HEARTBEAT_S, AttemptInfo, RecordsError, RecordStore, mark_active

DEFAULT_INTERVAL_S = 0.5
_WAKE_KINDS = frozenset(HARMFUL) | {EventKind.end, EventKind.injection}


def _sample_arrays(samples, start: int, stop: int) -> dict[str, np.ndarray]:
    return samples.arrays(start, stop)


class LiveRecorder:
    """Writes one attempt to a `RecordStore` while it happens (see the module notes)."""

    def __init__(self, store: RecordStore, source, *, scenario=None, trainee: str | None = None,
                 interval_s: float = DEFAULT_INTERVAL_S, thread: bool = True):
        if not (0 < float(interval_s) <= 1.0):
            raise ValueError(f"interval_s must be in (0, 1] so at most a second is lost, got {interval_s!r}")
        self.store = store
        self.procedure = source if hasattr(source, "recording") and hasattr(source, "event_added") else None
        self.recording: Recording = source.recording if self.procedure is not None else source
        if not isinstance(self.recording, Recording):
            raise TypeError(f"LiveRecorder records a Procedure or a Recording, got {type(source).__name__}")
        self.scenario = scenario if scenario is not None else getattr(self.procedure, "scenario", None)
        self.trainee = trainee
        self.interval_s = float(interval_s)
        self.use_thread = bool(thread)
        self.attempt_id: int | None = None
        self.uuid: str = ""
        self._w_samples = 0
        self._w_inputs = 0
        self._w_events = 0
        self._last_tail: bytes | None = None
        self._images: dict[str, bytes] = {}
        self._lock = threading.Lock()  # pending images
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_flush = 0.0
        self._last_write = 0.0
        self._finished = False
        self.flushes = 0
        self.samples_written = 0
        self.flush_ms: list[float] = []
        self.max_flush_samples = 0
        self.errors: list[str] = []

    # -- life cycle ----------------------------------------------------------------------
    def start(self, uuid: str | None = None) -> int:
        """Create the attempt (status live) and start flushing; returns the attempt id."""
        if self.attempt_id is not None:
            raise RecordsError(f"this recorder already records attempt {self.attempt_id}")
        self.attempt_id = self.store.start_attempt(self.recording, self.scenario, trainee=self.trainee, uuid=uuid)
        self.uuid = self.store.attempt(self.attempt_id).uuid
        self._begin()
        return self.attempt_id

    @classmethod
    def resume(cls, store: RecordStore, source, attempt_id: int, **kwargs) -> "LiveRecorder":
        """Go on recording into a stored attempt (a recovered one, after `replay` rebuilt its
        procedure): what the store holds is taken as written, the rest is appended."""
        rec = cls(store, source, **kwargs)
        info = store.attempt(attempt_id)
        r = rec.recording
        if len(r.inputs) < info.n_inputs or len(r.events) < info.n_events or len(r.samples) < info.n_samples:
            raise RecordsError(f"attempt {attempt_id}: the procedure has fewer inputs, events or samples than the "
                               f"store ({len(r.inputs)}/{info.n_inputs}, {len(r.events)}/{info.n_events}, "
                               f"{len(r.samples)}/{info.n_samples}); rebuild it with replay() first")
        if hasattr(store, "set_status"):
            store.set_status(attempt_id, "live")
        rec.attempt_id = int(attempt_id)
        rec.uuid = info.uuid
        rec._w_inputs, rec._w_events, rec._w_samples = info.n_inputs, info.n_events, info.n_samples
        rec._begin()
        return rec

    def _begin(self) -> None:
        mark_active(self.uuid)
        if self.procedure is not None:
            self.procedure.event_added.subscribe(self._on_event)
        self._last_flush = self._last_write = time.monotonic()
        if self.use_thread:
            self._thread = threading.Thread(target=self._run, name=f"LiveRecorder-{self.attempt_id}", daemon=True)
            self._thread.start()

    def _on_event(self, event) -> None:
        if event.kind in _WAKE_KINDS:
            self._wake.set()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.wait(self.interval_s)
                self._wake.clear()
                if self._stop.is_set():
                    break
                self._safe_flush()
        finally:
            release = getattr(self.store, "release_thread_connection", None)
            if release is not None:
                release()

    def _safe_flush(self) -> None:
        try:
            self.flush()
            if time.monotonic() - self._last_write >= HEARTBEAT_S:
                self.store.touch(self.attempt_id)  # nothing new for a while: still alive
                self._last_write = time.monotonic()
        except Exception as e:  # noqa: BLE001 - kept in memory, tried again at the next flush
            self.errors.append(f"{type(e).__name__}: {e}")

    def _stop_thread(self) -> None:
        mark_active(self.uuid, False)
        if self.procedure is not None:
            self.procedure.event_added.unsubscribe(self._on_event)
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join()
            self._thread = None

    def poll(self) -> bool:
        """Without a thread: flush when `interval_s` has passed since the last flush (call it on
        every tick of the owner's timer). True when it flushed."""
        if self.attempt_id is None or self._finished:
            return False
        if time.monotonic() - self._last_flush >= self.interval_s:
            self._safe_flush()
            return True
        return False

    def add_image(self, name: str, png: bytes) -> None:
        """A key image (PNG bytes) for the report, written with the next flush."""
        with self._lock:
            self._images[str(name)] = bytes(png)

    def finish(self, card=None, status: str = "finished", compact: bool = True) -> AttemptInfo:
        """Write everything (the newest sample as a final one) and close the attempt."""
        if self.attempt_id is None:
            raise RecordsError("the recorder was not started")
        self._stop_thread()
        mark_active(self.uuid)  # until it is closed
        try:
            self.flush(final=True)
        finally:
            mark_active(self.uuid, False)
        self._finished = True
        return self.store.finish_attempt(self.attempt_id, card, status=status, recording=self.recording,
                                         compact=compact)

    def abandon(self) -> AttemptInfo:
        """The trainee gave up: keep what was recorded, status "abandoned"."""
        return self.finish(None, status="abandoned")

    def stop(self) -> None:
        """Stop flushing without closing the attempt (it stays live, as after a crash)."""
        self._stop_thread()

    # -- flushing ------------------------------------------------------------------------
    def flush(self, final: bool = False) -> int:
        """Write what is new; the number of samples written (final ones)."""
        if self.attempt_id is None:
            raise RecordsError("the recorder was not started")
        with self._flush_lock:
            t0 = time.perf_counter()
            rec = self.recording
            s = rec.samples
            n_s = len(s)
            n_in = len(rec.inputs)
            n_ev = len(rec.events)
            stop = n_s if final else max(self._w_samples, n_s - 1)
            samples = _sample_arrays(s, self._w_samples, stop) if stop > self._w_samples else None
            tail = None
            tail_key = None
            if not final and n_s > stop:
                tail = _sample_arrays(s, stop, stop + 1)
                tail_key = (b"".join(np.ascontiguousarray(tail[k]).tobytes() for k in SAMPLE_KEYS)
                            + stop.to_bytes(8, "little"))
            inputs = rec.inputs[self._w_inputs:n_in]
            events = rec.events[self._w_events:n_ev]
            with self._lock:
                images, self._images = self._images, {}
            if samples is None and not inputs and not events and not images and tail_key == self._last_tail:
                self._last_flush = time.monotonic()
                return 0
            try:
                self.store.append(self.attempt_id, samples=samples, inputs=inputs, events=events, tail=tail,
                                  images=images or None)
            except Exception:
                with self._lock:
                    for k, v in images.items():
                        self._images.setdefault(k, v)
                raise
            written = 0 if samples is None else len(samples["time_s"])
            self._last_write = time.monotonic()
            self._w_samples = stop
            self._w_inputs = n_in
            self._w_events = n_ev
            self._last_tail = tail_key
            self.flushes += 1
            self.samples_written += written
            self.max_flush_samples = max(self.max_flush_samples, written)
            self.flush_ms.append(1e3 * (time.perf_counter() - t0))
            self._last_flush = time.monotonic()
            return written

    # -- state ---------------------------------------------------------------------------
    @property
    def pending_samples(self) -> int:
        """Samples in the recording that are not yet written as final ones."""
        return len(self.recording.samples) - self._w_samples

    @property
    def healthy(self) -> bool:
        """False once a flush failed (the data stays in memory and is tried again)."""
        return not self.errors

    def stats(self) -> dict:
        return {
            "attempt_id": self.attempt_id,
            "flushes": self.flushes,
            "samples_written": self.samples_written,
            "pending_samples": self.pending_samples,
            "max_flush_samples": self.max_flush_samples,
            "flush_ms_median": statistics.median(self.flush_ms) if self.flush_ms else 0.0,
            "flush_ms_max": max(self.flush_ms) if self.flush_ms else 0.0,
            "errors": list(self.errors),
        }
