"""The instructor's live dashboard on a real PostgreSQL server: a trainee's workstation feeds its
progress (a real procedure on the test block: step, tip-to-target distance, events), the
instructor's dashboard shows it within 2 s, a critical contact in red, only the instructor's
cohort, and the cohort's learning curves from the central store."""
from __future__ import annotations

import numpy as np
import pytest

from simulator.benchmarks.scoring import expert_attempt, novice_attempt, synthetic_block_anatomy, synthetic_scenario
from simulator.core.events import Event, EventKind
from simulator.core.procedure import Procedure
from simulator.core.scoring import score_attempt
from simulator.records.centre import admin
from simulator.records.centre.feed import LiveFeed, procedure_snapshot, read_live
from simulator.records.store.postgres import PostgresRecordStore
from simulator.ui.centre_dashboard import COLUMNS, CentreDashboard

COL = {name: k for k, name in enumerate(COLUMNS)}


@pytest.fixture
def centre(pg_cluster, pg_database):
    su = PostgresRecordStore(pg_cluster.conninfo(pg_database))
    for login, role in (("ann", "trainee"), ("bob", "trainee"), ("lee", "instructor")):
        admin.add_user(su, login, role)
    admin.add_cohort(su, "c1")
    admin.add_member(su, "c1", "ann")
    admin.add_instructor(su, "c1", "lee")
    sc, an = synthetic_scenario(), synthetic_block_anatomy()
    for k, fn in enumerate((novice_attempt, expert_attempt, expert_attempt)):
        proc = fn(Procedure(sc, an, clock=lambda: 0.0, trainee="ann"))
        proc.recording.started_at = f"2026-02-0{k + 1}T10:00:00+00:00"
        su.save_recording(proc.recording, score_attempt(proc.recording, sc, an), scenario=sc)
    yield (lambda login: PostgresRecordStore(pg_cluster.conninfo(pg_database, user=login), migrate=False)), sc, an
    su.close()


def _cell(dash, workstation: str, column: str) -> str:
    t = dash.table
    for i in range(t.rowCount()):
        if t.item(i, COL["Workstation"]).text() == workstation:
            return t.item(i, COL[column]).text()
    return ""


def test_live_progress_reaches_the_dashboard_within_2_s(qtbot, centre):
    open_as, sc, an = centre
    proc = Procedure(sc, an, clock=lambda: 0.0, trainee="ann")
    proc.set_entry([-56.0, -70.0, 0.0], [0.35, 0.93, 0.0], time_s=0.0)
    ann_feed = LiveFeed(lambda: open_as("ann"), "ws-07", interval_s=0.5).start()
    bob_feed = LiveFeed(lambda: open_as("bob"), "ws-09", interval_s=0.5).start()
    dash = CentreDashboard(lambda: open_as("lee"), refresh_ms=1000, curves_every_s=0.0)
    qtbot.addWidget(dash)
    dash.show()
    try:
        bob_feed.publish({"trainee": "bob", "scenario_id": sc.id, "scenario_title": sc.title, "step": "target",
                          "distance_mm": 3.0, "elapsed_s": 5.0, "events": []})
        ann_feed.publish(procedure_snapshot(proc, attempt_uuid="u-1"))
        qtbot.waitUntil(lambda: _cell(dash, "ws-07", "Trainee") == "ann", timeout=4000)
        snap = procedure_snapshot(proc, attempt_uuid="u-1")
        want = min(snap["distance_mm"], 1e9)
        assert _cell(dash, "ws-07", "Tip to target") == f"{want:.1f} mm"
        assert _cell(dash, "ws-07", "Scenario") == sc.title
        # the needle goes in: a new step, a shorter distance, then a critical contact
        for i in range(1, 40):
            proc.advance(1.0, time_s=i / 10.0)
        proc.recording.add_event(Event(4.0, EventKind.critical_contact, "aorta touched",
                                       {"structure": "aorta", "severity": "critical"}))
        snap = procedure_snapshot(proc, attempt_uuid="u-1")
        ann_feed.publish(snap)
        qtbot.waitUntil(lambda: "aorta touched" in _cell(dash, "ws-07", "Latest event"), timeout=4000)
        row = next(i for i in range(dash.table.rowCount()) if dash.table.item(i, 0).text() == "ws-07")
        assert dash.table.item(row, COL["Latest event"]).background().color().red() == 255  # harmful: red row
        assert _cell(dash, "ws-07", "Tip to target") == f"{snap['distance_mm']:.1f} mm"
        # bob is not in lee's cohort: his workstation is not shown (row-level security)
        assert bob_feed.sent >= 1 and _cell(dash, "ws-09", "Trainee") == ""
        assert [r.workstation for r in read_live(open_as("bob"))] == ["ws-09"]
        # the cohort's learning curves: ann's three attempts, failed then passed
        qtbot.waitUntil(lambda: "ann" in dash.curves, timeout=5000)
        curve = dash.curves["ann"]
        assert curve.attempts == 3 and list(curve.series("passed")) == [0.0, 1.0, 1.0]
        items = [it for it in dash.plot.listDataItems() if it.name() == "ann"]
        assert len(items) == 1 and np.array_equal(items[0].getData()[0], [1.0, 2.0, 3.0])
    finally:
        ann_feed.stop()
        bob_feed.stop()
        dash.shutdown()


def test_an_unreachable_server_is_a_message_not_a_frozen_window(qtbot):
    from simulator.records.centre.cluster import _free_port

    port = _free_port()
    dash = CentreDashboard(lambda: PostgresRecordStore(f"host=127.0.0.1 port={port} dbname=x user=lee",
                                                       connect_timeout_s=1), refresh_ms=300)
    qtbot.addWidget(dash)
    dash.show()
    try:
        qtbot.waitUntil(lambda: "Server not reachable" in dash.header.text(), timeout=5000)
        assert f"127.0.0.1:{port}" in dash.header.text() and dash.table.rowCount() == 0
    finally:
        dash.shutdown()


def test_the_feed_never_blocks_and_sends_once_the_server_is_back(centre):
    open_as, sc, an = centre
    up = {"ok": False, "opened": 0}

    def opener():
        up["opened"] += 1
        if not up["ok"]:
            from simulator.records.store.postgres import ServerError

            raise ServerError("server unreachable (test)", "unreachable")
        return open_as("ann")

    feed = LiveFeed(opener, "ws-01", retry_s=0.0)
    feed.publish({"trainee": "ann", "scenario_id": sc.id, "step": "insertion", "events": []})
    assert up["opened"] == 0 and feed.state == "idle"  # publishing only hands the snapshot over: no connection
    assert feed.send_pending() is False and feed.state == "offline" and "unreachable" in feed.last_error
    up["ok"] = True
    assert feed.send_pending() is True and feed.state == "online"
    assert [r.step for r in read_live(open_as("lee"))] == ["insertion"]
    feed.stop()


def test_the_trainer_feeds_the_centre_and_sends_its_attempts(qapp, tmp_path, monkeypatch, pg_cluster, pg_database):
    """The trainer with NEUROLYSIS_CENTRE set: while the trainee works, the server shows the
    workstation live; the ended attempt reaches the server without anyone asking."""
    from PySide6.QtCore import Qt

    from simulator.ui.driver import SHIFT, WindowDriver, process, wait_until
    from tests.ui.windows import close_window, open_window

    su = PostgresRecordStore(pg_cluster.conninfo(pg_database))
    admin.add_user(su, "trainee_w", "trainee")
    from simulator.records.centre.schedules import synthetic_recording

    elsewhere = su.save_recording(synthetic_recording("trainee_w", 30, 4), {"score": 55.0, "passed": False,
                                                                             "metrics": {}})
    elsewhere_uuid = su.attempt(elsewhere).uuid  # made on another workstation
    monkeypatch.setenv("NEUROLYSIS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("NEUROLYSIS_CENTRE", pg_cluster.conninfo(pg_database, user="trainee_w"))
    monkeypatch.setenv("NEUROLYSIS_WORKSTATION", "sim-room-2")
    w = open_window("needle_basics_gel", tmp_path / "settings.ini")
    try:
        w.set_trainee("trainee_w")
        d = WindowDriver(w)
        d.click_skin(w.scenario.planned_trajectory.entry_mm)
        d.key(Qt.Key.Key_W, SHIFT)
        d.key(Qt.Key.Key_W, SHIFT)
        assert w.centre_sync is not None and w.centre_feed is not None

        def live():
            return [r for r in read_live(su) if r.workstation == "sim-room-2"]

        wait_until(lambda: process(50) or bool(live()), 10, "the workstation on the server")
        row = live()[0]
        assert row.trainee == "trainee_w" and row.scenario_id == "needle_basics_gel" and row.state == "live"
        assert row.distance_mm is not None and row.step
        d.key(Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
        wait_until(lambda: process(50) or len(su.list_attempts(trainee="trainee_w")) == 2, 15, "the attempt on the server")
        (info,) = [a for a in su.list_attempts(trainee="trainee_w") if a.uuid != elsewhere_uuid]
        local = w.store.attempt_by_uuid(info.uuid)
        assert su.load_attempt(info.id).same_as(w.store.load_attempt(local.id))
        wait_until(lambda: process(50) or live()[0].state == "ended", 10, "the dashboard told the attempt ended")
        wait_until(lambda: process(50) or "0 attempts to send" in w.centre_label.text(), 10, "the status line")
        # the attempt made elsewhere was fetched: this workstation's history has both
        wait_until(lambda: process(50) or w.store.attempt_by_uuid(elsewhere_uuid) is not None, 10, "the history")
        assert len(w.store.list_attempts(trainee="trainee_w")) == 2
    finally:
        close_window(w)
        su.close()
