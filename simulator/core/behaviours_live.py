"""Error behaviours as they happen: the trainee is told the moment one is detected, not only in the
score card at the end.

    watch = LiveBehaviours(procedure)
    watch.detected.subscribe(show)      # show(Behaviour) once per behaviour, in time order
    watch.check()                       # after inputs (the trainer calls it a few times a second)

`check` runs the score card's own detector (`behaviours.detect_behaviours`, with the injections'
intended targets as `metrics.intended_targets` assigns them) on the recording so far and reports
each behaviour it has not reported yet, with what it costs under the scenario's rubric. The same
rules, the same messages as the card: what the trainee is told live is what the examiner reads.
A behaviour is known by its kind and time, so one found again on a later check is not told twice.
Nothing is checked while the recording has not changed: no new event and no input but the clock's
`tick` (the 60 Hz samples of a still needle cost nothing).
"""
from __future__ import annotations

from simulator.core.behaviours import BEHAVIOURS, Behaviour, consequence, detect_behaviours
from simulator.core.events import Signal

#: inputs that change nothing a behaviour could be made of (the simulation clock's samples)
QUIET_INPUTS = frozenset({"tick"})


class LiveBehaviours:
    """The error behaviours of one attempt in progress (see the module notes)."""

    def __init__(self, procedure):
        self.procedure = procedure
        self.detected = Signal("behaviour_detected")
        self.found: list[Behaviour] = []
        self._told: set[tuple[str, float]] = set()
        self._n_inputs = 0
        self._n_events = -1

    def _changed(self) -> bool:
        """A new event or a new input other than the clock's tick since the last look."""
        rec = self.procedure.recording
        fresh = rec.inputs[self._n_inputs:]
        self._n_inputs += len(fresh)
        changed = len(rec.events) != self._n_events or any(i.name not in QUIET_INPUTS for i in fresh)
        self._n_events = len(rec.events)
        return changed

    def check(self) -> list[Behaviour]:
        """The behaviours found since the last check (each also sent to `detected`)."""
        if not self._changed():
            return []
        from simulator.core.metrics import intended_targets

        p = self.procedure
        rec = p.recording
        intended = intended_targets(rec.events, p.scenario, p.targets)
        new = []
        for b in detect_behaviours(rec, p.scenario, p.anatomy, p.targets, intended):
            key = (b.key, round(float(b.time_s), 3))
            if key in self._told:
                continue
            self._told.add(key)
            new.append(b)
        self.found += new
        for b in new:
            self.detected.emit(b)
        return new

    def cost(self, behaviour: Behaviour) -> str:
        """What the behaviour costs under the scenario's rubric, in the card's words: "fails the
        attempt", "-3 points", "0 (cap reached)", or "" (ignored)."""
        c = consequence(self.procedure.scenario.rubric, behaviour.key)
        if c == "fail":
            return "fails the attempt"
        if c is None:
            return ""
        points, cap = c
        before = sum(1 for b in self.found if b.key == behaviour.key and b.time_s < behaviour.time_s)
        left = max(0.0, float(cap) - before * float(points))
        return f"-{min(float(points), left):g} points" if left > 0 else "0 (cap reached)"

    @staticmethod
    def title(behaviour: Behaviour) -> str:
        """The behaviour's name as the score card lists it."""
        return BEHAVIOURS.get(behaviour.key, behaviour.key)


__all__ = ["LiveBehaviours"]
