"""The `RecordStore` interface and what is built on it for every backend."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Iterable, Sequence

from simulator.core.events import Event
from simulator.core.recording import InputRecord, Recording
from simulator.records.store.liveness import STALE_S, orphaned
from simulator.records.store.model import AttemptInfo, RecordsError, Trainee, UnknownAttempt


class RecordStore(ABC):
    """Where trainees' attempts are kept (see the module notes)."""

    @abstractmethod
    def add_trainee(self, name: str, full_name: str = "") -> Trainee: ...

    @abstractmethod
    def list_trainees(self) -> list[Trainee]: ...

    @abstractmethod
    def add_scenario(self, scenario=None, *, scenario_id: str = "", version: str = "", title: str = "",
                     scenario_json: str | None = None) -> None: ...

    @abstractmethod
    def scenario_json(self, scenario_id: str, version: str) -> str | None: ...

    @abstractmethod
    def start_attempt(self, recording: Recording, scenario=None, *, trainee: str | None = None,
                      uuid: str | None = None, status: str = "live", owner: str | None = None) -> int: ...

    @abstractmethod
    def touch(self, attempt_id: int) -> None:
        """Mark a live attempt as still being recorded (its recorder's heartbeat)."""

    @abstractmethod
    def append(self, attempt_id: int, *, samples: dict | None = None, inputs: Sequence[InputRecord] = (),
               events: Sequence[Event] = (), tail: dict | None = None, images: dict | None = None) -> None: ...

    @abstractmethod
    def _append_samples(self, tx, attempt_id: int, ns: int, samples: dict) -> None:
        """Samples ns.. of an attempt: the last row is filled up to MAX_CHUNK_SAMPLES first (so the
        live recorder's small flushes still end up in rows of that size), then new rows."""
        ...

    def finish_attempt(self, attempt_id: int, card=None, *, status: str = "finished",
                       recording: Recording | None = None, compact: bool = True) -> AttemptInfo: ...

    @abstractmethod
    def set_score(self, attempt_id: int, card) -> None: ...

    @abstractmethod
    def list_attempts(self, trainee: str | None = None, scenario: str | None = None,
                      status: str | Iterable[str] | None = None) -> list[AttemptInfo]: ...

    @abstractmethod
    def attempt(self, attempt_id: int) -> AttemptInfo: ...

    @abstractmethod
    def attempt_by_uuid(self, uuid: str) -> AttemptInfo | None: ...

    @abstractmethod
    def score_card(self, attempt_id: int) -> dict | None: ...

    @abstractmethod
    def images(self, attempt_id: int) -> dict[str, bytes]: ...

    @abstractmethod
    def load_attempt(self, attempt_id: int, *, inputs: bool = True) -> Recording: ...

    @abstractmethod
    def delete_attempt(self, attempt_id: int) -> None: ...

    @abstractmethod
    def raw_attempt(self, attempt_id: int) -> dict: ...

    @abstractmethod
    def copy_attempt(self, source: "RecordStore", attempt_id: int) -> int | None: ...

    @abstractmethod
    def close(self) -> None: ...

    # -- built on the above -------------------------------------------------------------
    def score_cards(self, attempt_ids: Sequence[int]) -> dict[int, dict]:
        """Score cards of many attempts (those that have one)."""
        cards = {int(i): self.score_card(i) for i in attempt_ids}
        return {i: c for i, c in cards.items() if c is not None}

    def recoverable_attempts(self, stale_s: float = STALE_S) -> list[AttemptInfo]:
        """Attempts still marked live whose recording process is gone (it crashed or was killed):
        not recorded by this process, and their recorder's process is not running on this machine
        or has not written for `stale_s` seconds (another machine sharing the database, or a
        process id since reused)."""
        return [a for a in self.list_attempts(status="live") if orphaned(a, stale_s)]

    def recover(self, attempt_id: int, force: bool = False) -> Recording:
        """Mark a live attempt recovered and return what was saved of it. An attempt that is still
        being recorded (see `recoverable_attempts`) is refused unless `force`."""
        info = self.attempt(attempt_id)
        if info.status != "live":
            raise RecordsError(f"attempt {attempt_id} is {info.status}, not live: nothing to recover")
        if not force and not orphaned(info):
            raise RecordsError(f"attempt {attempt_id} is still being recorded (by {info.owner or 'another process'}, "
                               f"last written {info.updated_at}); recover it only if that process is gone")
        rec = self.load_attempt(attempt_id)
        self.finish_attempt(attempt_id, None, status="recovered")
        return rec

    def abandon(self, attempt_id: int) -> AttemptInfo:
        return self.finish_attempt(attempt_id, None, status="abandoned")

    def save_recording(self, recording: Recording, card=None, *, scenario=None, status: str = "finished",
                       uuid: str | None = None, images: dict | None = None) -> int:
        """Store a whole attempt at once (imports, tests)."""
        aid = self.start_attempt(recording, scenario, uuid=uuid)
        self.append(aid, samples=recording.samples.arrays(), inputs=recording.inputs, events=recording.events,
                    images=images)
        self.finish_attempt(aid, card, status=status, recording=recording)
        return aid

    def resolve(self, ref) -> int:
        """An attempt id from what a person typed: its number, or its UUID or a unique prefix of it."""
        text = str(ref).strip()
        number_error = None
        if text.isdigit():
            try:
                self.attempt(int(text))
                return int(text)
            except UnknownAttempt as e:  # perhaps a UUID prefix of digits only
                number_error = e
        low = text.lower()
        if len(low) >= 4 and all(c in "0123456789abcdef-" for c in low):
            hits = [a for a in self.list_attempts() if a.uuid.startswith(low)]
            if len(hits) == 1:
                return hits[0].id
            if len(hits) > 1:
                raise UnknownAttempt(f"attempt {text!r} is ambiguous: {len(hits)} attempts have UUIDs starting "
                                     f"with it ({', '.join(h.short_uuid for h in hits[:5])})")
        if number_error is not None:
            raise number_error
        raise UnknownAttempt(f"no attempt {text!r} in {self.location}{self.visibility_note()}: give its number or "
                             f"(a prefix of) its UUID as listed by `records attempts`")

    @property
    def location(self) -> str:
        return type(self).__name__

    def visibility_note(self) -> str:
        return ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
