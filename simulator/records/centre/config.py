"""Which centre server a workstation uses, and under which name: no secrets here.

The server is a libpq connection string without a password, normally just a service name
(`service=centre`, defined in ~/.pg_service.conf or the file PGSERVICEFILE names); the password
lives in ~/.pgpass (or PGPASSFILE / PGPASSWORD), where libpq finds it. It comes from, in order:
the command line (`--server`), the environment (`NEUROLYSIS_CENTRE`), the trainer's setting
"centre/server". A password in any of them is refused with a message saying where it belongs.
The workstation's name: NEUROLYSIS_WORKSTATION, else the host name.
"""
from __future__ import annotations

import os
import socket

from simulator.records.store.postgres import conninfo_params

ENV_SERVER = "NEUROLYSIS_CENTRE"
ENV_WORKSTATION = "NEUROLYSIS_WORKSTATION"


def server_conninfo(explicit: str | None = None, setting: str | None = None) -> str | None:
    """The centre server's connection string (checked: no password), or None: no centre."""
    for value in (explicit, os.environ.get(ENV_SERVER), setting):
        if value is not None and str(value).strip():
            conninfo_params(str(value))  # refuses a password
            return str(value).strip()
    return None


def workstation_name() -> str:
    return os.environ.get(ENV_WORKSTATION) or socket.gethostname()
