"""Which live attempts still have a recorder: the recording process's heartbeat and identity."""
from __future__ import annotations

import os
import socket
from datetime import datetime, timezone

from simulator.records.store.model import AttemptInfo

STALE_S = 60.0  # a live attempt not written for this long has lost its recorder
HEARTBEAT_S = 10.0  # a live recorder writes at least this often, even when nothing happens
_ACTIVE: set[str] = set()  # UUIDs of the attempts recorded by this process right now


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def mark_active(uuid: str, active: bool = True) -> None:
    """The live recorder of this process registers the attempts it is recording."""
    (_ACTIVE.add if active else _ACTIVE.discard)(uuid)


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def orphaned(info: AttemptInfo, stale_s: float = STALE_S) -> bool:
    """True when nobody is recording this live attempt any more (see `recoverable_attempts`)."""
    if info.uuid in _ACTIVE:
        return False
    if info.owner == this_process():
        return True  # ours, and not being recorded by us
    host, _, pid = info.owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit() and not _pid_running(int(pid)):
        return True
    try:
        last = datetime.fromisoformat(info.updated_at)
    except ValueError:
        return True
    if last.tzinfo is None:
        last = last.replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - last).total_seconds() > stale_s
