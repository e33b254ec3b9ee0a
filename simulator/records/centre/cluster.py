"""A throw-away PostgreSQL server on this machine (tests, `bench centre`, trying the centre out).

    with LocalCluster() as cluster:           # initdb + pg_ctl start in a temp folder
        cluster.create_database("records")
        store = PostgresRecordStore(cluster.conninfo("records"))

Debian's `postgresql` package provides the programs (`/usr/lib/postgresql/<N>/bin`; `pg_config
--bindir` or `NEUROLYSIS_PG_BIN` elsewhere). The server listens on 127.0.0.1 at a free port and on
a unix socket in its own folder; local (socket) connections are trusted, TCP connections need a
password (SCRAM), so a wrong password can be tried. As root, the programs run as the `postgres`
user (initdb refuses root). `durable=False` turns fsync off (tests); the benchmark keeps it on.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PACKAGE_HINT = "install Debian's postgresql package (apt-get install postgresql)"
SUPERUSER = "postgres"


class ClusterError(RuntimeError):
    pass


def find_bindir() -> Path | None:
    """The folder of initdb / pg_ctl / postgres, or None."""
    env = os.environ.get("NEUROLYSIS_PG_BIN")
    candidates = [env] if env else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                         if Path(p).parent.name.isdigit() else 0, reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            candidates.append(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                             timeout=10).stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    for c in candidates:
        if c and (Path(c) / "initdb").is_file() and (Path(c) / "pg_ctl").is_file():
            return Path(c)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    """One PostgreSQL server in a temp folder; `stop()` (or leaving the `with`) removes it all."""

    def __init__(self, *, durable: bool = False, bindir: Path | None = None):
        self.bindir = bindir or find_bindir()
        if self.bindir is None:
            raise ClusterError(f"PostgreSQL server programs (initdb, pg_ctl) not found: {PACKAGE_HINT}")
        self.durable = durable
        self.root = Path(tempfile.mkdtemp(prefix="nt-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.port = _free_port()
        self.host = "127.0.0.1"
        self.running = False
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            import pwd

            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise ClusterError("running as root needs the postgres user to start a server: "
                                   + PACKAGE_HINT) from None
            runuser = shutil.which("runuser") or "/usr/sbin/runuser"
            self._as_user = [runuser, "-u", "postgres", "--"]
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.socket_dir.mkdir()
        if self._as_user:
            os.chown(self.socket_dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.root, 0o755)
        os.chmod(self.socket_dir, 0o777)

    def _run(self, *args: str, timeout: float = 120) -> str:
        cmd = [*self._as_user, *args]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        except (OSError, subprocess.SubprocessError) as e:
            raise ClusterError(f"{args[0]}: {e}") from None
        if r.returncode != 0:
            raise ClusterError(f"{Path(args[0]).name} failed ({r.returncode}): {(r.stderr or r.stdout).strip()}")
        return r.stdout

    def start(self) -> "LocalCluster":
        b = self.bindir
        self._run(str(b / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth-local=trust",
                  "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", *([] if self.durable else ["-N"]))
        opts = [f"-c listen_addresses={self.host}", f"-c port={self.port}",
                f"-c unix_socket_directories={self.socket_dir}", "-c max_connections=200",
                "-c shared_buffers=64MB"]
        if not self.durable:
            opts += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(str(b / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60",
                  "-o", " ".join(opts), "start")
        self.running = True
        return self

    def stop(self) -> None:
        if self.running:
            try:
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop",
                          timeout=60)
            except ClusterError:
                pass
            self.running = False
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "LocalCluster":
        return self.start() if not self.running else self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- connecting ----------------------------------------------------------------------
    def conninfo(self, dbname: str = "postgres", user: str = SUPERUSER, *, tcp: bool = False) -> str:
        """Over the unix socket (trusted) or, with `tcp`, 127.0.0.1 (password needed)."""
        host = self.host if tcp else str(self.socket_dir)
        return f"host={host} port={self.port} dbname={dbname} user={user}"

    def admin(self, dbname: str = "postgres"):
        """A superuser connection in autocommit mode (CREATE DATABASE, CREATE ROLE)."""
        import psycopg

        return psycopg.connect(self.conninfo(dbname), autocommit=True)

    def create_database(self, name: str, template: str = "template1") -> str:
        from psycopg import sql

        with self.admin() as c:
            c.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(name), sql.Identifier(template)))
        return name

    def drop_database(self, name: str) -> None:
        from psycopg import sql

        with self.admin() as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def version(self) -> str:
        with self.admin() as c:
            return str(c.execute("SHOW server_version").fetchone()[0])

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            try:
                with self.admin():
                    return
            except Exception:  # noqa: BLE001
                time.sleep(0.1)
        raise ClusterError("the server did not come up")
