"""`PostgresRecordStore`: the record store on a centre's PostgreSQL server (psycopg 3).

    store = PostgresRecordStore("service=neurolysis")      # or "", "host=... dbname=...", a URI

The same tables and statements as the SQLite store (`SQLRecordStore` with the PostgreSQL
dialect), one connection per thread. Credentials come only from libpq's standard places: the
service file (`~/.pg_service.conf`, `PGSERVICEFILE`, `PGSERVICE`), the password file
(`~/.pgpass`, `PGPASSFILE`) and the environment (`PGHOST`, `PGUSER`, `PGPASSWORD`, ...). A
connection string holding a password is refused, so the trainer never keeps one in its settings.

Every failure is a `ServerError` (a `RecordsError`) naming the server and what failed: the server
cannot be reached, the password is wrong, the server holds a newer schema, or the connected role
may not read or write what was asked (row-level security).
"""
from __future__ import annotations

from simulator.records.store.migrations import SCHEMA_VERSION, migrate, newer_schema_message, stored_version
from simulator.records.store.model import RecordsError
from simulator.records.store.schema import POSTGRESQL
from simulator.records.store.sql import SQLRecordStore

CONNECT_TIMEOUT_S = 5


class ServerError(RecordsError):
    """A centre server refused or failed; `kind`: unreachable, auth, schema, denied, conflict, checksum."""

    def __init__(self, message: str, kind: str = "server"):
        super().__init__(message)
        self.kind = kind


def _psycopg():
    try:
        import psycopg
    except ImportError:  # pragma: no cover - a dependency of the project
        raise RecordsError("PostgreSQL support needs the psycopg package (pip install 'psycopg[binary]')") from None
    return psycopg


def conninfo_params(conninfo: str) -> dict:
    """The parameters of a libpq connection string or URI; refuses one that holds a password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(conninfo or "")
    except Exception as e:  # noqa: BLE001 - libpq's parse error
        raise ServerError(f"server connection {conninfo!r} cannot be read: {e}", "config") from None
    if params.get("password"):
        raise ServerError("a password in the server connection settings is refused: keep it in ~/.pgpass "
                          "(or PGPASSFILE) or the PGPASSWORD environment variable, and name the server with a "
                          "service (service=NAME in ~/.pg_service.conf) or host/dbname/user", "config")
    return params


def describe(conninfo: str) -> str:
    """postgresql://user@host:port/dbname as far as the string and the environment tell."""
    import os

    p = conninfo_params(conninfo)
    if p.get("service") and len(p) == 1:
        return f"postgresql service {p['service']}"
    host = p.get("host") or os.environ.get("PGHOST") or "localhost"
    port = p.get("port") or os.environ.get("PGPORT") or "5432"
    user = p.get("user") or os.environ.get("PGUSER") or ""
    db = p.get("dbname") or os.environ.get("PGDATABASE") or user
    where = f"{host}:{port}" if not host.startswith("/") else f"{host} (socket, port {port})"
    return f"postgresql://{user + '@' if user else ''}{where}/{db}"


def explain_connect_error(e: Exception, where: str) -> ServerError:
    """A failed connection as a message that says what to fix."""
    text = str(e).strip()
    low = text.lower()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    last = "; ".join(lines).removeprefix("connection failed: ") if lines else type(e).__name__
    if "password authentication failed" in low:
        return ServerError(f"{where}: wrong password ({last}); check ~/.pgpass or PGPASSWORD", "auth")
    if "no password supplied" in low or "password is missing" in low:
        return ServerError(f"{where}: the server asks for a password and none was found in ~/.pgpass or "
                           f"PGPASSWORD ({last})", "auth")
    if "does not exist" in low and ("role" in low or "database" in low):
        return ServerError(f"{where}: {last}", "auth")
    if "definition of service" in low or "service file" in low:
        return ServerError(f"{where}: {last} (services are read from ~/.pg_service.conf or PGSERVICEFILE)",
                           "config")
    return ServerError(f"{where}: server unreachable ({last})", "unreachable")


class PostgresRecordStore(SQLRecordStore):
    """The record store on a PostgreSQL server (see the module notes).

    `migrate`: "auto" brings an older server up to this version when the connected role may change
    the schema (the centre's admin), and otherwise says who must; False only checks the version."""

    def __init__(self, conninfo: str = "", *, connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 migrate: bool | str = "auto", application_name: str = "neurolysis-trainer"):
        self.conninfo = conninfo
        self.connect_timeout_s = connect_timeout_s
        self.application_name = application_name
        self.migrate_mode = migrate
        where = describe(conninfo)
        self.role = ""
        self.server_version = ""
        self._rights: str | None = None
        super().__init__(self._open, POSTGRESQL, location=where)

    def _open(self):
        psycopg = _psycopg()
        try:
            conn = psycopg.connect(self.conninfo, connect_timeout=max(1, int(round(self.connect_timeout_s))),
                                   application_name=self.application_name)
        except psycopg.Error as e:
            raise explain_connect_error(e, self._location) from None
        if not self.role:
            info = conn.info
            self.role = info.user
            v = info.server_version
            self.server_version = f"{v // 10000}.{v % 10000}"
            sock = info.host.startswith("/")
            self._location = (f"postgresql://{info.user}@{'localhost' if sock else info.host}:{info.port}/"
                              f"{info.dbname}" + (f" (socket in {info.host})" if sock else ""))
            try:
                row = conn.execute("SELECT rolsuper OR pg_has_role(current_user, 'nt_admin', 'MEMBER'), "
                                   "pg_has_role(current_user, 'nt_instructor', 'MEMBER') FROM pg_roles "
                                   "WHERE rolname = current_user").fetchone()
                self._rights = "admin" if row[0] else ("instructor" if row[1] else "trainee")
            except psycopg.Error:  # the groups do not exist yet (a server being set up)
                self._rights = "admin"
            conn.rollback()
        return conn

    def _create_schema(self) -> None:
        with self._tx() as tx:
            version = stored_version(tx)
        if version > SCHEMA_VERSION:
            raise ServerError(newer_schema_message(self._location, version), "schema")
        if version == SCHEMA_VERSION:
            return
        if self.migrate_mode is False:
            raise ServerError(f"{self._location}: the server's records schema is {version}, this trainer needs "
                              f"{SCHEMA_VERSION}: the centre's admin brings it up to date with "
                              f"`main.py centre init`", "schema")
        try:
            migrate(self)
        except ServerError as e:
            if e.kind != "denied":
                raise
            raise ServerError(f"{self._location}: the server's records schema is {version}, this trainer needs "
                              f"{SCHEMA_VERSION}, and role {self.role} may not change it: the centre's admin "
                              f"brings it up to date with `main.py centre init`", "schema") from None

    def _ensure_trainee(self, tx, name: str, full_name: str = "", created_at: str | None = None,
                        login: str = "") -> None:
        # on a server a trainee's records are theirs by login, which is their name unless the
        # admin set another (row-level security checks it even when the row is there already)
        super()._ensure_trainee(tx, name, full_name, created_at, login=login or name)

    def visibility_note(self) -> str:
        """What the connected role may read (row-level security hides the rest)."""
        if self._rights in (None, "admin"):
            return ""
        what = "its own" if self._rights == "trainee" else "those of the cohorts it teaches"
        return (f" that role {self.role} may read (a {self._rights} reads only {what} attempts; another "
                f"trainee's attempt is not shown)")

    def _translate_error(self, exc: BaseException) -> RecordsError | None:
        psycopg = _psycopg()
        if not isinstance(exc, psycopg.Error):
            return None
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            return ServerError(f"{self._location}: role {self.role} may not do this ({text})", "denied")
        if isinstance(exc, psycopg.errors.UniqueViolation):
            return ServerError(f"{self._location}: already there ({text})", "conflict")
        if isinstance(exc, psycopg.OperationalError) or isinstance(exc, psycopg.InterfaceError):
            self._drop_thread_connection()
            return ServerError(f"{self._location}: connection lost ({text})", "unreachable")
        return ServerError(f"{self._location}: {text}")

    def _drop_thread_connection(self) -> None:
        try:
            self.release_thread_connection()
        except Exception:  # noqa: BLE001 - already broken
            pass

    def abort_connections(self) -> None:
        """Close every connection at once, open transactions undone by the server (what a killed
        process leaves behind; tests use it to model a kill in mid-transfer)."""
        with self._all_lock:
            conns, self._all = self._all, []
        for c in conns:
            try:
                c.pgconn.finish()
            except Exception:  # noqa: BLE001
                pass
        self._local.__dict__.clear()


__all__ = ["PostgresRecordStore", "ServerError", "conninfo_params", "describe", "explain_connect_error"]
