"""The trainer in a simulation centre: background sync of this workstation's records with the
centre's server, the live progress of the attempt in progress for the instructors' dashboard, and
the dashboard itself (Records > Centre dashboard).

A centre is configured by a server connection without a password (`NEUROLYSIS_CENTRE`, or the
setting "centre/server": e.g. "service=centre"; see `simulator.records.centre.config`). Without
one the trainer works alone, as before. With one, recording is unchanged (local SQLite, the
session never waits on the network): the sync thread sends closed attempts when it can and the
feed sends a snapshot of the attempt every half second, both dropping silently to "offline" and
trying again when the server cannot be reached. The sync also fetches the current trainee's
attempts made on other workstations (History shows them all). The status bar says how many
attempts wait.
"""
from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel

FEED_MS = 500


class CentreMixin:
    """Part of `MainWindow` (simulator.ui.main_window)."""

    centre_sync = None
    centre_feed = None
    centre_dashboard = None
    centre_label = None
    _centre_timer = None
    _centre_conninfo: str | None = None
    _centre_error = ""

    def centre_conninfo(self) -> str | None:
        from simulator.records.centre.config import server_conninfo

        try:
            setting = self.settings.value("centre/server", None) if self.settings is not None else None
            return server_conninfo(None, setting if isinstance(setting, str) else None)
        except Exception as e:  # noqa: BLE001 - a password in the setting: refused, said once
            if not self._centre_error:
                self._centre_error = str(e)
                self.report_error("Centre", f"The centre server setting is not used: {e}")
            return None

    def start_centre(self) -> bool:
        """Start the sync and the live feed (once the record store is open); False without a centre."""
        if self.centre_sync is not None:
            return True
        conninfo = self.centre_conninfo()
        st = self._store
        if conninfo is None or st is None or not hasattr(st, "_tx"):
            return False
        from simulator.records.centre.config import workstation_name
        from simulator.records.centre.feed import LiveFeed
        from simulator.records.centre.sync import CentreSync
        from simulator.records.store.postgres import PostgresRecordStore

        def open_server():
            return PostgresRecordStore(conninfo, migrate=False)

        self._centre_conninfo = conninfo
        name = workstation_name()
        # the trainee's attempts on other workstations come here too (their history is complete)
        self.centre_sync = CentreSync(st, open_server, workstation=name,
                                      pull_history=lambda: [self._trainee]).start()
        self.centre_feed = LiveFeed(open_server, name).start()
        self.centre_label = QLabel("")
        self.statusBar().addPermanentWidget(self.centre_label)
        self._centre_timer = QTimer(self)
        self._centre_timer.timeout.connect(self._centre_tick)
        self._centre_timer.start(FEED_MS)
        return True

    def _centre_snapshot(self, state: str = "live"):
        from simulator.records.centre.feed import procedure_snapshot

        proc = self.controller.procedure
        if proc is None or self.controller.replaying:
            return None
        uuid = self.recorder.uuid if self.recorder is not None else ""
        return procedure_snapshot(proc, attempt_uuid=uuid, trainee=self._trainee, state=state)

    def _centre_tick(self) -> None:
        if self.centre_feed is None:
            return
        self._centre_ticks = getattr(self, "_centre_ticks", 0) + 1
        if self._centre_ticks % 4 == 1:  # every 2 s: online or not, attempts waiting
            self.centre_label.setText(self.centre_status())
        if self.controller.in_progress and self.recorder is not None:
            snap = self._centre_snapshot()
            if snap is not None:
                self.centre_feed.publish(snap)

    def centre_attempt_closed(self) -> None:
        """An attempt was stored: send it now, and show the dashboards it ended."""
        if self.centre_sync is None:
            self.start_centre()
        if self.centre_sync is not None:
            self.centre_sync.wake()
            snap = self._centre_snapshot(state="ended")
            if snap is not None:
                self.centre_feed.publish(snap)

    def centre_status(self) -> str:
        if self.centre_sync is None:
            return ""
        sync = self.centre_sync
        try:
            waiting = len(sync.pending())
        except Exception:  # noqa: BLE001 - the local store is busy or closed
            waiting = 0
        state = {"online": "online", "offline": "offline (records kept here)"}.get(sync.state, sync.state)
        return f"Centre: {state}, {waiting} attempts to send" + (" - " + sync.last_error[:80] if sync.last_error
                                                                 else "")

    def show_centre_dashboard(self) -> None:
        """Records > Centre dashboard: the instructor's live view of the centre."""
        conninfo = self.centre_conninfo()
        if conninfo is None:
            self.report_error("Centre", "No centre server is set. Set NEUROLYSIS_CENTRE (or the setting "
                                        "centre/server) to a connection without a password, e.g. service=centre "
                                        "from ~/.pg_service.conf; the password goes in ~/.pgpass.")
            return
        if self.centre_dashboard is None:
            from simulator.records.store.postgres import PostgresRecordStore
            from simulator.ui.centre_dashboard import CentreDashboard

            self.centre_dashboard = CentreDashboard(lambda: PostgresRecordStore(conninfo, migrate=False))
        self.centre_dashboard.show()
        self.centre_dashboard.raise_()

    def stop_centre(self) -> None:
        if self._centre_timer is not None:
            self._centre_timer.stop()
            self._centre_timer = None
        if self.centre_dashboard is not None:
            self.centre_dashboard.shutdown()
            self.centre_dashboard.close()
            self.centre_dashboard = None
        for part in (self.centre_feed, self.centre_sync):
            if part is not None:
                part.stop()
        self.centre_feed = self.centre_sync = None
