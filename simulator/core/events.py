"""Events of an attempt and a tiny signal for observers (no Qt).

An `Event` is something that happened at a time: the needle punctured the skin, touched bone,
entered the aorta, the trainee aspirated (and what came back), injected, took a fluoroscopy shot.
Events are data (JSON round trip) and are stored in the recording; the score reads them.

`Signal` is a minimal observer list: `subscribe(fn)`, `unsubscribe(fn)`, `emit(*args)`. The
procedure owns its signals; views subscribe and never write back. A Qt adapter (in the ui layer)
can forward a Signal to a Qt signal to cross threads.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable


class Signal:
    """Observers called synchronously, in subscription order, with the emitted arguments."""

    def __init__(self, name: str = ""):
        self.name = name
        self._slots: list[Callable] = []
        self._blocked = 0

    def subscribe(self, fn: Callable) -> Callable:
        if fn not in self._slots:
            self._slots.append(fn)
        return fn

    connect = subscribe

    def unsubscribe(self, fn: Callable) -> None:
        try:
            self._slots.remove(fn)
        except ValueError:
            pass

    disconnect = unsubscribe

    def emit(self, *args) -> None:
        if self._blocked:
            return
        for fn in list(self._slots):
            fn(*args)

    def blocked(self):
        """Context manager: no emission inside (used by replay to run silently)."""
        sig = self

        class _Block:
            def __enter__(self):
                sig._blocked += 1

            def __exit__(self, *exc):
                sig._blocked -= 1

        return _Block()

    def __len__(self) -> int:
        return len(self._slots)


class EventKind(str, Enum):
    # needle and tissue
    skin_puncture = "skin_puncture"
    needle_out = "needle_out"  # tip left the body
    enter_structure = "enter_structure"
    leave_structure = "leave_structure"
    bone_contact = "bone_contact"
    vessel_puncture = "vessel_puncture"
    pleural_breach = "pleural_breach"
    dural_puncture = "dural_puncture"  # spinal canal, CSF or cord
    organ_puncture = "organ_puncture"  # solid organ or bowel
    nerve_contact = "nerve_contact"  # paraesthesia
    critical_contact = "critical_contact"  # a scenario critical structure, with its severity
    target_reached = "target_reached"
    target_left = "target_left"
    redirection = "redirection"
    advance_without_imaging = "advance_without_imaging"
    # procedure steps
    local_anaesthetic = "local_anaesthetic"
    aspiration = "aspiration"
    injection = "injection"
    step_warning = "step_warning"  # a step out of order (no aspiration, agent before contrast ...)
    asepsis = "asepsis"  # skin preparation or drape (data: what)
    consent = "consent"  # consent taken (data: items discussed)
    time_out = "time_out"  # contraindications checked (data: contraindications noticed, decision)
    prognostic_result = "prognostic_result"  # what the patient reports after the prognostic block
    # imaging
    fluoro_shot = "fluoro_shot"
    ultrasound_view = "ultrasound_view"  # tip visibility changed
    end = "end"


#: Events that mean the needle went where it should not (used for colours and summaries).
HARMFUL = frozenset({
    EventKind.vessel_puncture, EventKind.pleural_breach, EventKind.dural_puncture, EventKind.organ_puncture,
    EventKind.critical_contact,
})


def format_time(seconds: float) -> str:
    """mm:ss of an attempt time (hh:mm:ss past an hour)."""
    s = max(0, int(math.floor(seconds + 1e-9)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


def _clean(value: Any) -> Any:
    """JSON-ready copy of event data (numpy scalars and arrays to Python)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Enum):
        return value.value
    return value


@dataclass
class Event:
    time_s: float
    kind: EventKind
    message: str  # for the trainee, e.g. "aorta punctured"
    data: dict = field(default_factory=dict)  # structure, tissue, position_mm, volume_ml, severity ...

    def __post_init__(self) -> None:
        self.kind = EventKind(self.kind)
        self.time_s = float(self.time_s)
        self.data = _clean(self.data)

    def to_json(self) -> dict:
        return {"time_s": self.time_s, "kind": self.kind.value, "message": self.message, "data": self.data}

    @classmethod
    def from_json(cls, d: dict) -> "Event":
        return cls(time_s=d["time_s"], kind=EventKind(d["kind"]), message=d.get("message", ""), data=d.get("data", {}))

    def __str__(self) -> str:
        return f"{format_time(self.time_s)} {self.message}"
