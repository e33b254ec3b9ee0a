"""Replay of a stored attempt in the trainer, with a timeline.

    player = ReplayPlayer(recording, scenario, anatomy)      # nothing applied yet (time 0)
    player.rebuilt.connect(...)      # a fresh Procedure (the start, or a seek backwards)
    player.play(); player.pause(); player.set_speed(2.0); player.seek(42.0)

The player feeds the recorded inputs, in order and with their recorded times, through the
Procedure's own input methods: the same entry point as live input and as
`simulator.core.procedure.replay` (whose builder it uses for the fresh Procedure, so the replayed
attempt is rebuilt bit for bit). The main window hosts that Procedure in its `AttemptController`
(`attach_replay`), so the 3D view, the imaging views and the procedure panel follow its signals as
they follow a live attempt; live inputs are refused meanwhile.

Seeking backwards (or far forwards) restarts from the nearest checkpoint before the new time (or
from the start) and re-runs the inputs from there: the player keeps up to `MAX_CHECKPOINTS` copies
of the Procedure, every `checkpoint_every` inputs, so a seek re-runs at most that many (a
10-minute attempt at 60 samples per second has ~36k `tick` inputs). They are made while inputs are
applied and, from `start()`, ahead by a second Procedure in slices of the event loop's idle time
(`prepare`, `prepared`). A checkpoint is a deep
copy that shares what never changes (scenario, anatomy, targets, the recorded inputs and events)
and has its own signals; the final state after a seek is the same as a run from the start (the
rest of the attempt replays bit for bit, tested). After a restore the player emits `rebuilt`, then
`seek_started`, then plays the restored Procedure's history to its listeners (the needle states,
events and spreads so far), so the views' plots and event lists are whole. While it seeks
(`seeking`, `seek_started(procedure)` / `seek_done(procedure)`) the window listens to the
Procedure directly with cheap bookkeeping only (no Qt signal, no render per input) and refreshes
the views once at the end.

`TimelineDock`: play / pause, back to the start, speed (0.5x to 4x), a slider to scrub with the
recorded events marked under it and the error behaviours above it (click one: the replay jumps
there; `ui/timeline_marks.py`), the time read-out, "Rescore" (the score card of the replayed attempt,
compared with the stored one) and "Stop replay". `AttemptPicker`: the stored attempts (trainee,
scenario, date, score) to choose one from.
"""
from __future__ import annotations

import bisect
import copy
import dataclasses
import json
import math
import time

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QStyle,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from simulator.ui.timeline_marks import MarkedSlider, behaviour_marks, event_marks

SPEEDS = (0.5, 1.0, 2.0, 4.0)
TICK_MS = 30
BACK_DRAG_INPUTS = 1500  # a drag backwards seeks live while re-running fewer inputs than this
MAX_CHECKPOINTS = 10  # copies of the Procedure kept for seeking backwards
MIN_CHECKPOINT_EVERY = 1200  # inputs (20 s of 60 Hz samples)
BUILD_SLICE_S = 0.012  # the checkpoints made ahead: at most this long per turn of the event loop
FORWARD_JUMP_INPUTS = 1000  # a seek forwards past a checkpoint further than this starts from it
PROCEDURE_SIGNALS = ("needle_changed", "event_added", "step_changed", "sample_added", "spread_added")


def clone_procedure(proc):
    """A deep copy of a Procedure that goes on exactly as the original would: it shares the
    read-only parts (scenario, anatomy, needle spec, tissue probe, body surface, targets, clock,
    the recorded inputs, events and spreads) and has signals of its own, without listeners."""
    from simulator.core.events import Signal

    memo = {}
    for name in ("scenario", "anatomy", "spec", "probe_tissue", "surface", "targets", "_clock", "_crit"):
        obj = getattr(proc, name, None)
        if obj is not None:
            memo[id(obj)] = obj
    for seq in (proc.recording.inputs, proc.recording.events, getattr(proc, "spreads", None)):
        if seq is not None:  # a list (or input log) of its own, the same (never modified) items
            memo[id(seq)] = copy.deepcopy(seq) if hasattr(seq, "__deepcopy__") else list(seq)
    for name in PROCEDURE_SIGNALS:
        sig = getattr(proc, name, None)
        if sig is not None:
            memo[id(sig)] = Signal(getattr(sig, "name", name))
    clone = copy.deepcopy(proc, memo)
    samples = getattr(clone.recording, "samples", None)
    if samples is not None and hasattr(samples, "compact"):  # no spare capacity in a copy kept aside
        samples.compact()
    return clone


def canonical_card(card) -> str:
    """A score card (object or stored JSON dict) as canonical JSON text, for comparing to the
    last digit (as `simulator.records.rescore` compares)."""
    d = card if isinstance(card, dict) or card is None else json.loads(json.dumps(card.to_json()))
    return json.dumps(d, sort_keys=True)


class ReplayPlayer(QObject):
    """Feeds a recording's inputs to a Procedure against a clock (see the module notes)."""

    rebuilt = Signal(object)  # a fresh Procedure, nothing applied yet
    input_applied = Signal(object)  # InputRecord, after the Procedure took it (not while seeking)
    seek_started = Signal(object)  # the Procedure about to take the inputs of a seek
    seek_done = Signal(object)  # the Procedure, after a seek
    position_changed = Signal(float)  # seconds
    state_changed = Signal(str)  # "playing" | "paused" | "ended"
    failed = Signal(str)

    def __init__(self, recording, scenario, anatomy, *, attempt_id: int | None = None, stored_card=None,
                 parent=None):
        super().__init__(parent)
        self.recording = recording
        self.scenario = scenario
        self.anatomy = anatomy
        self.attempt_id = attempt_id
        self.stored_card = stored_card
        self.inputs = list(recording.inputs)
        self._times = [i.time_s for i in self.inputs]
        self.duration_s = float(self.inputs[-1].time_s) if self.inputs else 0.0
        self.procedure = None
        self.index = 0  # inputs applied
        self.time_s = 0.0
        self.speed = 1.0
        self.seeking = False
        self.state = "paused"
        self._timer = QTimer(self)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._tick)
        self._last_tick = 0.0
        n = len(self.inputs)
        self.checkpoint_every = max(MIN_CHECKPOINT_EVERY, math.ceil(n / (MAX_CHECKPOINTS + 1)))
        self.checkpoints: dict[int, tuple] = {}  # inputs applied -> (Procedure copy, needle states so far)
        self._states: list = []  # the needle states the procedure emitted, in order
        self._reemitting = False
        self.restored_from: int | None = None  # the checkpoint the last backwards seek started from
        # the checkpoints are made ahead, in slices of the event loop's idle time (`prepare`)
        self._builder = None  # (Procedure, states, inputs applied)
        self.prepared = len(self.inputs) < 2 * self.checkpoint_every
        self._build_timer = QTimer(self)
        self._build_timer.setInterval(0)
        self._build_timer.timeout.connect(self._build_slice)

    # -- building --------------------------------------------------------------------------
    def start(self) -> None:
        """The attempt at its start (time 0): a fresh Procedure; the checkpoints are prepared
        meanwhile (`prepare`)."""
        self._fresh()
        self.position_changed.emit(self.time_s)
        self.prepare()

    def prepare(self) -> None:
        """Make the checkpoints ahead: a second Procedure without listeners runs the attempt in
        slices of BUILD_SLICE_S from the event loop, so the first seek far away is fast too.
        `prepared` is True once it is done (or not needed: a short attempt)."""
        if self.prepared or self._build_timer.isActive():
            return
        from simulator.core.procedure import replay

        proc = replay(dataclasses.replace(self.recording, inputs=[]), self.scenario, self.anatomy)
        states: list = []
        proc.needle_changed.subscribe(states.append)
        self._builder = [proc, states, 0]
        self._build_timer.start()

    def _build_slice(self) -> None:
        b = self._builder
        if b is None:
            self._build_timer.stop()
            return
        proc, states, i = b
        end = time.perf_counter() + BUILD_SLICE_S
        n = len(self.inputs)
        try:
            while i < n and time.perf_counter() < end:
                inp = self.inputs[i]
                getattr(proc, inp.name)(**inp.args, time_s=inp.time_s)
                i += 1
                if i % self.checkpoint_every == 0 and i not in self.checkpoints:
                    self.checkpoints[i] = (clone_procedure(proc), tuple(states))
        except Exception:  # noqa: BLE001 - the replay itself reports an input that does not replay
            i = n
        b[2] = i
        if i >= (n // self.checkpoint_every) * self.checkpoint_every:  # the last checkpoint is made
            self._build_timer.stop()
            self._builder = None
            self.prepared = True

    def _fresh(self) -> None:
        from simulator.core.procedure import replay

        empty = dataclasses.replace(self.recording, inputs=[])
        self.procedure = replay(empty, self.scenario, self.anatomy)
        self.index = 0
        self.time_s = 0.0
        self._states = []
        self.procedure.needle_changed.subscribe(self._note_state)
        self.rebuilt.emit(self.procedure)

    def _note_state(self, state) -> None:
        if not self._reemitting:
            self._states.append(state)

    def _checkpoint(self) -> None:
        if self.index not in self.checkpoints:
            self.checkpoints[self.index] = (clone_procedure(self.procedure), tuple(self._states))

    def _restore(self, k: int) -> None:
        """The procedure as it was after `k` inputs, from its checkpoint (see the module notes)."""
        saved, states = self.checkpoints[k]
        self.procedure = clone_procedure(saved)
        self.index = k
        self.time_s = self.inputs[k - 1].time_s
        self._states = list(states)
        self.procedure.needle_changed.subscribe(self._note_state)
        self.restored_from = k
        self.rebuilt.emit(self.procedure)

    def _replay_history(self) -> None:
        """A restored procedure's past, to the listeners that came with `seek_started`."""
        proc = self.procedure
        self._reemitting = True
        try:
            for st in self._states:
                proc.needle_changed.emit(st)
            for ev in proc.recording.events:
                proc.event_added.emit(ev)
            for sp in getattr(proc, "spreads", []):
                proc.spread_added.emit(sp)
        finally:
            self._reemitting = False

    def _apply_until(self, t: float) -> bool:
        proc = self.procedure
        while self.index < len(self.inputs) and self.inputs[self.index].time_s <= t:
            inp = self.inputs[self.index]
            try:
                getattr(proc, inp.name)(**inp.args, time_s=inp.time_s)
            except Exception as e:  # noqa: BLE001 - a recording that does not replay: say so, stop
                self.pause()
                self.failed.emit(f"input {self.index + 1} ({inp.name} at {inp.time_s:.3f} s) did not replay: {e}")
                self.index = len(self.inputs)
                return False
            self.index += 1
            if self.index % self.checkpoint_every == 0:
                self._checkpoint()
            if not self.seeking:
                self.input_applied.emit(inp)
        self.time_s = min(max(t, 0.0), self.duration_s)
        return True

    # -- control ---------------------------------------------------------------------------
    def inputs_before(self, t: float) -> int:
        """How many inputs the attempt has up to `t` (all applied after a seek to `t`)."""
        return bisect.bisect_right(self._times, t)

    def checkpoint_before(self, t: float) -> int:
        """The checkpoint (inputs applied) a backwards seek to `t` starts from; 0: the start."""
        n = self.inputs_before(t)
        return max((k for k in self.checkpoints if k <= n), default=0)

    def rerun_inputs(self, t: float) -> int:
        """How many inputs a backwards seek to `t` re-runs."""
        return self.inputs_before(t) - self.checkpoint_before(t)

    @property
    def at_end(self) -> bool:
        return self.index >= len(self.inputs)

    def seek(self, t: float) -> None:
        """Go to `t` seconds: forwards from here, backwards from the nearest checkpoint before `t`
        (or the start)."""
        if self.procedure is None:
            self._fresh()
        t = min(max(float(t), 0.0), self.duration_s)
        self.seeking = True
        try:
            restored = False
            self.restored_from = None
            k = self.checkpoint_before(t)
            if self.index > 0 and self.inputs[self.index - 1].time_s > t:  # backwards
                if k > 0:
                    self._restore(k)
                    restored = True
                else:
                    self._fresh()
                    self.restored_from = 0
            elif k - self.index > FORWARD_JUMP_INPUTS:  # far forwards, past a checkpoint: start there
                self._restore(k)
                restored = True
            self.seek_started.emit(self.procedure)
            if restored:
                self._replay_history()
            self._apply_until(t)
        finally:
            self.seeking = False
            self.seek_done.emit(self.procedure)
        self.position_changed.emit(self.time_s)
        if self.at_end and self.state != "ended":
            self._set_state("ended")
        elif not self.at_end and self.state == "ended":
            self._set_state("paused")

    def play(self) -> None:
        if self.procedure is None:
            self.start()
        if self.at_end:
            self.seek(0.0)
        self._last_tick = time.perf_counter()
        self._timer.start()
        self._set_state("playing")

    def pause(self) -> None:
        self._timer.stop()
        if self.state == "playing":
            self._set_state("paused")

    def toggle(self) -> None:
        self.pause() if self.state == "playing" else self.play()

    def set_speed(self, speed: float) -> None:
        self.speed = float(speed)

    def stop(self) -> None:
        self._timer.stop()
        self._build_timer.stop()
        self._builder = None

    def _set_state(self, state: str) -> None:
        self.state = state
        self.state_changed.emit(state)

    def _tick(self) -> None:
        now = time.perf_counter()
        dt = (now - self._last_tick) * self.speed
        self._last_tick = now
        target = self.time_s + dt
        if target >= self.duration_s:
            target = self.duration_s
        ok = self._apply_until(target)
        self.position_changed.emit(self.time_s)
        if not ok or self.at_end:
            self._timer.stop()
            self._set_state("ended")

    # -- markers ---------------------------------------------------------------------------
    def markers(self) -> list[tuple[float, str, str, bool]]:
        """(time s, colour, text, is an error behaviour) of the marks on the timeline: the recorded
        events worth one, and the error behaviours the score card lists."""
        marks = event_marks(self.recording)
        try:
            from simulator.core.targets import resolve_targets, targets_from_recording

            targets = targets_from_recording(self.recording) or resolve_targets(self.scenario, self.anatomy)
            marks += behaviour_marks(self.recording, self.scenario, self.anatomy, targets)
        except Exception:  # noqa: BLE001 - marks are a help: an old or odd recording still replays
            pass
        return [(m.time_s, m.colour, m.text, m.behaviour) for m in sorted(marks, key=lambda m: m.time_s)]


def fmt_clock(t: float) -> str:
    m, s = divmod(max(t, 0.0), 60.0)
    return f"{int(m)}:{s:04.1f}"


class TimelineDock(QDockWidget):
    """The replay's controls (see the module notes). Object names for tests: `replay_play`,
    `replay_slider`, `replay_speed`, `replay_time`, `replay_rescore`, `replay_stop`."""

    rescore_requested = Signal()
    stop_requested = Signal()

    def __init__(self, parent=None):
        super().__init__("Replay", parent)
        self.setObjectName("dock_replay")
        self.player: ReplayPlayer | None = None
        self._updating = False
        self._pending_ms: int | None = None
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(6, 2, 6, 4)
        lay.setSpacing(2)
        self.title = QLabel("")
        self.title.setObjectName("replay_title")
        lay.addWidget(self.title)
        row = QHBoxLayout()
        self.start_button = QPushButton()
        self.start_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaSkipBackward))
        self.start_button.setObjectName("replay_to_start")
        self.start_button.setToolTip("Back to the start (Home)")
        self.play_button = QPushButton("Play")
        self.play_button.setObjectName("replay_play")
        self.play_button.setToolTip("Play / pause (P)")
        self.play_button.setMinimumWidth(90)
        self.slider = MarkedSlider()
        self.slider.setObjectName("replay_slider")
        self.time_label = QLabel("0:00.0 / 0:00.0")
        self.time_label.setObjectName("replay_time")
        self.time_label.setMinimumWidth(130)
        self.speed_combo = QComboBox()
        self.speed_combo.setObjectName("replay_speed")
        for s in SPEEDS:
            self.speed_combo.addItem(f"{s:g}\u00d7", s)
        self.speed_combo.setCurrentIndex(SPEEDS.index(1.0))
        self.speed_combo.setToolTip("Replay speed")
        self.rescore_button = QPushButton("Rescore")
        self.rescore_button.setObjectName("replay_rescore")
        self.rescore_button.setToolTip("Score the replayed attempt again and compare with the stored score")
        self.stop_button = QPushButton("Stop replay")
        self.stop_button.setObjectName("replay_stop")
        self.stop_button.setToolTip("Back to training (a new attempt)")
        for x in (self.start_button, self.play_button):
            row.addWidget(x)
        row.addWidget(self.slider, 1)
        for x in (self.time_label, self.speed_combo, self.rescore_button, self.stop_button):
            row.addWidget(x)
        lay.addLayout(row)
        self.setWidget(w)
        self.start_button.clicked.connect(lambda: self.player and self.player.seek(0.0))
        self.play_button.clicked.connect(lambda: self.player and self.player.toggle())
        self.speed_combo.currentIndexChanged.connect(
            lambda _i: self.player and self.player.set_speed(float(self.speed_combo.currentData())))
        self.slider.valueChanged.connect(self._slider_moved)
        self.slider.mark_clicked.connect(self.jump_to_ms)
        self.slider.sliderReleased.connect(self._flush_drag)
        self.rescore_button.clicked.connect(self.rescore_requested.emit)
        self.stop_button.clicked.connect(self.stop_requested.emit)
        self._drag_timer = QTimer(self)
        self._drag_timer.setSingleShot(True)
        self._drag_timer.setInterval(40)
        self._drag_timer.timeout.connect(self._flush_drag)

    def set_player(self, player: ReplayPlayer, title: str) -> None:
        self.player = player
        self.title.setText(title)
        self._updating = True
        self.slider.setRange(0, int(round(player.duration_s * 1000)))
        self.slider.setSingleStep(100)  # the arrow keys: 0.1 s
        self.slider.setPageStep(max(1000, int(player.duration_s * 100)))  # Page Up/Down: a tenth
        self.slider.setValue(0)
        self._updating = False
        self.slider.set_marks([(int(round(t * 1000)), c, txt, beh) for t, c, txt, beh in player.markers()])
        self.speed_combo.setCurrentIndex(SPEEDS.index(1.0))
        player.set_speed(1.0)
        player.position_changed.connect(self._on_position)
        player.state_changed.connect(self._on_state)
        self._on_position(player.time_s)
        self._on_state(player.state)

    def jump_to_ms(self, value: int) -> None:
        """Jump the replay to a moment (a clicked mark, a behaviour chosen on the score card)."""
        if self.player is None:
            return
        self.player.pause()
        self.player.seek(value / 1000.0)

    def _on_position(self, t: float) -> None:
        p = self.player
        if p is None:
            return
        self.time_label.setText(f"{fmt_clock(t)} / {fmt_clock(p.duration_s)}")
        if not self.slider.isSliderDown():
            self._updating = True
            self.slider.setValue(int(round(t * 1000)))
            self._updating = False

    def _on_state(self, state: str) -> None:
        playing = state == "playing"
        self.play_button.setText("Pause" if playing else "Play")
        self.play_button.setIcon(self.style().standardIcon(
            QStyle.StandardPixmap.SP_MediaPause if playing else QStyle.StandardPixmap.SP_MediaPlay))
        self.rescore_button.setEnabled(state == "ended")

    def _slider_moved(self, value: int) -> None:
        if self._updating or self.player is None:
            return
        if self.slider.isSliderDown():  # a drag: seek at most every 40 ms
            self._pending_ms = value
            self.time_label.setText(f"{fmt_clock(value / 1000.0)} / {fmt_clock(self.player.duration_s)}")
            if not self._drag_timer.isActive():
                self._drag_timer.start()
            return
        self.player.pause()
        self.player.seek(value / 1000.0)

    def _flush_drag(self) -> None:
        """Seek to where the slider was dragged. While the handle is held, only forwards (cheap:
        from here on); backwards re-runs the attempt from its start, so it waits for the release
        when that is long (more than BACK_DRAG_INPUTS inputs to re-run)."""
        if self._pending_ms is None or self.player is None:
            return
        t = self._pending_ms / 1000.0
        p = self.player
        if self.slider.isSliderDown() and t < p.time_s and p.rerun_inputs(t) > BACK_DRAG_INPUTS:
            return  # sliderReleased calls again
        self._pending_ms = None
        p.pause()
        p.seek(t)


class AttemptPicker(QDialog):
    """The stored attempts, newest first: choose one to replay. Object names: `attempt_table`,
    `attempt_trainee_filter`."""

    COLUMNS = ("#", "Trainee", "Scenario", "Date", "Mode", "Status", "Duration", "Score")

    def __init__(self, store, trainee: str | None = None, parent=None, title: str = "Replay an attempt"):
        super().__init__(parent)
        self.setObjectName("attempt_picker")
        self.setWindowTitle(title)
        self.store = store
        self.chosen: int | None = None
        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(QLabel("Trainee:"))
        self.trainee_filter = QComboBox()
        self.trainee_filter.setObjectName("attempt_trainee_filter")
        self.trainee_filter.addItem("All trainees", None)
        for t in store.list_trainees():
            self.trainee_filter.addItem(t.name, t.name)
        top.addWidget(self.trainee_filter, 1)
        lay.addLayout(top)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setObjectName("attempt_table")
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.doubleClicked.connect(lambda _i: self._accept())
        lay.addWidget(self.table, 1)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.replay_button = self.buttons.addButton("Replay", QDialogButtonBox.ButtonRole.AcceptRole)
        self.replay_button.setObjectName("attempt_replay")
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)
        if trainee is not None:
            i = self.trainee_filter.findData(trainee)
            if i >= 0:
                self.trainee_filter.setCurrentIndex(i)
        self.trainee_filter.currentIndexChanged.connect(lambda _i: self.fill())
        self.fill()
        self.resize(820, 420)

    def fill(self) -> None:
        trainee = self.trainee_filter.currentData()
        rows = [a for a in self.store.list_attempts(trainee=trainee) if a.status != "live" and a.n_inputs > 0]
        rows.reverse()
        self.table.setRowCount(len(rows))
        for r, a in enumerate(rows):
            score = "" if a.score is None else f"{a.score:.1f} {'passed' if a.passed else 'failed'}"
            cells = (str(a.id), a.trainee, a.scenario_title or a.scenario_id, a.started_at.replace("T", " ")[:16],
                     a.mode, a.status, fmt_clock(a.duration_s), score)
            for c, text in enumerate(cells):
                it = QTableWidgetItem(text)
                it.setData(Qt.ItemDataRole.UserRole, a.id)
                self.table.setItem(r, c, it)
        self.table.resizeColumnsToContents()
        if rows:
            self.table.selectRow(0)
        self.replay_button.setEnabled(bool(rows))

    def row_of(self, attempt_id: int) -> int:
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).data(Qt.ItemDataRole.UserRole) == attempt_id:
                return r
        return -1

    def selected_id(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return self.table.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole)

    def _accept(self) -> None:
        self.chosen = self.selected_id()
        if self.chosen is not None:
            self.accept()


__all__ = ["AttemptPicker", "MarkedSlider", "ReplayPlayer", "SPEEDS", "TimelineDock", "canonical_card", "clone_procedure",
           "fmt_clock"]
