"""A sync process for the kill -9 test: sends a workstation's attempts to the server, printing
"writing" and holding each one 0.2 s inside its server transaction (rows written, not yet
committed), until it is killed.
`python -m tests.records.sync_child DB_PATH CONNINFO`."""
from __future__ import annotations

import sys
import time


def main(db: str, conninfo: str) -> None:
    from simulator.records.centre.sync import CentreSync
    from simulator.records.store import SQLiteRecordStore
    from simulator.records.store.postgres import PostgresRecordStore

    def slow(point: str) -> None:
        if point == "server_rows_written":
            print("writing", flush=True)
            time.sleep(0.2)

    sync = CentreSync(SQLiteRecordStore(db), lambda: PostgresRecordStore(conninfo, migrate=False), kill=slow)
    sync._connect()
    print("ready", flush=True)
    while True:
        sync.sync_once()
        time.sleep(0.05)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
