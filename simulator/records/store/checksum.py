"""The checksum of an attempt's content: what was recorded, as stored, in a fixed order.

`attempt_checksum(store.raw_attempt(id))` hashes (SHA-256) the attempt's identity and summary
(UUID, trainee, scenario and version, anatomy, mode, status, times, counts, meta) and every stored
row of its samples, inputs, events and images, byte for byte. The score card is left out: an
attempt may be rescored without changing what was recorded. A store seals an attempt with it when
the attempt is closed; the centre's sync checks it before sending an attempt and again on the
server, inside the transaction that writes it, before that transaction commits.
"""
from __future__ import annotations

import hashlib

PREFIX = "sha256:"
ATTEMPT_FIELDS = ("uuid", "trainee", "scenario_id", "scenario_version", "anatomy_ref", "anatomy_hash", "mode",
                  "status", "started_at", "ended_at", "first_time_s", "last_time_s", "n_samples", "n_events",
                  "n_inputs", "meta_json")


def _feed(h, value) -> None:
    if isinstance(value, (bytes, bytearray, memoryview)):
        b = bytes(value)
        h.update(b"b%d:" % len(b))
        h.update(b)
    elif value is None:
        h.update(b"n;")
    elif isinstance(value, bool):
        h.update(b"i%d;" % int(value))
    elif isinstance(value, int):
        h.update(b"i%d;" % value)
    elif isinstance(value, float):
        h.update(b"f" + float(value).hex().encode() + b";")
    else:
        b = str(value).encode("utf-8")
        h.update(b"s%d:" % len(b))
        h.update(b)


def attempt_checksum(raw: dict) -> str:
    """"sha256:<hex>" of an attempt as `raw_attempt` gives it (see the module notes)."""
    h = hashlib.sha256()
    att = raw["attempt"]
    for k in ATTEMPT_FIELDS:
        _feed(h, k)
        _feed(h, att.get(k))
    for part in ("samples", "inputs", "events", "images"):
        rows = raw[part]
        if part == "images":
            rows = sorted(rows, key=lambda r: r[0])
        _feed(h, part)
        _feed(h, len(rows))
        for row in rows:
            for v in row:
                _feed(h, v)
    return PREFIX + h.hexdigest()
