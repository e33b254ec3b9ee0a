"""What the record store hands to callers: trainees, attempt summaries, and its errors."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timezone

STATUSES = ("live", "finished", "recovered", "abandoned")


class RecordsError(ValueError):
    """A record that does not exist or cannot be read; the message names it."""


class UnknownAttempt(RecordsError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Trainee:
    name: str
    full_name: str = ""
    created_at: str = ""
    attempts: int = 0
    last_attempt_at: str = ""

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class AttemptInfo:
    id: int
    uuid: str
    trainee: str
    scenario_id: str
    scenario_version: str
    scenario_title: str
    anatomy_ref: str
    anatomy_hash: str
    mode: str
    status: str
    started_at: str
    ended_at: str
    duration_s: float
    n_samples: int
    n_events: int
    n_inputs: int
    score: float | None
    passed: bool | None
    pass_mark: float | None
    owner: str = ""  # "host:pid" of the process that recorded it
    updated_at: str = ""  # last written (a live attempt's recorder writes at least every HEARTBEAT_S)

    @property
    def short_uuid(self) -> str:
        return self.uuid[:8]

    def to_json(self) -> dict:
        return asdict(self)
