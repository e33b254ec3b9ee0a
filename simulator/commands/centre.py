"""`centre`: a simulation centre's records server from the command line.

    main.py centre init                          create or update the server's tables, roles, policies (admin)
    main.py centre add-user LOGIN --role trainee|instructor|admin [--full-name T] [--password]
    main.py centre add-cohort NAME [--title T] | add-member COHORT TRAINEE | add-instructor COHORT LOGIN
    main.py centre whoami                        the connected role, its centre roles and cohorts
    main.py centre sync [--db FILE] [--watch] [--pull TRAINEE ...]
                                                 send this workstation's closed attempts, fetch the roster
                                                 (and the named trainees' histories); --watch goes on
    main.py centre status [--db FILE]            attempts not yet on the server
    main.py centre live                          every workstation now (as the dashboard shows it)
    main.py centre dashboard                     the instructor's live dashboard (a window)
    main.py centre xapi ATTEMPT --out FILE [--db FILE | --on-server] [--homepage URL]
    main.py centre try-server                    a throw-away local PostgreSQL server to try the centre on

The server: `--server CONNINFO`, else NEUROLYSIS_CENTRE (e.g. "service=centre" from
~/.pg_service.conf); passwords only from ~/.pgpass or PGPASSWORD, never on the command line.
Errors are one line naming the server or file and what failed, exit status 1.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("centre", help="a simulation centre's records server: sync, roles, dashboard, xAPI",
                              description="A simulation centre: workstations record locally and sync to a "
                              "PostgreSQL server; instructors follow their cohorts live.")
    p.add_argument("--server", help="libpq connection string without a password (default: $NEUROLYSIS_CENTRE)")
    sub = p.add_subparsers(dest="centre_command", metavar="SUBCOMMAND")
    sub.add_parser("init", help="create or update the server's schema, roles and policies (as its admin)")
    s = sub.add_parser("add-user", help="a login in the role trainee, instructor or admin")
    s.add_argument("login")
    s.add_argument("--role", required=True, choices=("trainee", "instructor", "admin"))
    s.add_argument("--full-name", default="")
    s.add_argument("--password", action="store_true", help="ask for a password (typed, not shown)")
    s = sub.add_parser("add-cohort", help="a cohort")
    s.add_argument("name")
    s.add_argument("--title", default="")
    s = sub.add_parser("add-member", help="a trainee joins a cohort")
    s.add_argument("cohort")
    s.add_argument("trainee")
    s = sub.add_parser("add-instructor", help="an instructor teaches a cohort")
    s.add_argument("cohort")
    s.add_argument("login")
    sub.add_parser("whoami", help="the connected role")
    s = sub.add_parser("sync", help="sync this workstation's records with the server")
    s.add_argument("--db", help="the workstation's records file (default: the user's records.sqlite)")
    s.add_argument("--watch", action="store_true", help="keep syncing (every second) until stopped")
    s.add_argument("--pull", nargs="*", default=[], metavar="TRAINEE", help="also fetch these trainees' attempts")
    s = sub.add_parser("status", help="attempts of this workstation not yet on the server")
    s.add_argument("--db")
    sub.add_parser("live", help="every workstation now").add_argument("--json", action="store_true")
    sub.add_parser("dashboard", help="the instructor's live dashboard")
    s = sub.add_parser("xapi", help="an attempt as xAPI statements (JSON array)")
    s.add_argument("attempt")
    s.add_argument("--out", required=True)
    s.add_argument("--db", help="the records file holding it (default: the user's records.sqlite)")
    s.add_argument("--on-server", action="store_true", help="read the attempt from the centre's server")
    s.add_argument("--homepage", default=None, help="the centre's home page IRL (the trainees' account home)")
    sub.add_parser("try-server", help="start a throw-away PostgreSQL server here (Ctrl-C stops and removes it)")
    p.set_defaults(func=run, _centre_parser=p)


class _Fail(Exception):
    pass


def _server(args, migrate=False):
    from simulator.records.centre.config import server_conninfo
    from simulator.records.store.postgres import PostgresRecordStore

    conninfo = server_conninfo(args.server)
    if conninfo is None:
        raise _Fail("no centre server: pass --server 'service=NAME' (a service of ~/.pg_service.conf) or set "
                    "NEUROLYSIS_CENTRE")
    return PostgresRecordStore(conninfo, migrate="auto" if migrate else False)


def _local(args):
    from simulator.records.store import SQLiteRecordStore, default_db_path

    return SQLiteRecordStore(Path(args.db) if getattr(args, "db", None) else default_db_path())


def run(args) -> int:
    cmd = getattr(args, "centre_command", None)
    if not cmd:
        args._centre_parser.print_help(sys.stderr)
        return 2
    from simulator.records.store.model import RecordsError

    try:
        return COMMANDS[cmd](args) or 0
    except (_Fail, RecordsError, OSError, ValueError) as e:
        sys.stderr.write(f"centre {cmd}: {e}\n")
        return 1
    except KeyboardInterrupt:
        return 130


def cmd_init(args) -> int:
    from simulator.records.store.migrations import SCHEMA_VERSION

    st = _server(args, migrate=True)
    print(f"{st.location}: records schema {SCHEMA_VERSION}, roles nt_trainee / nt_instructor / nt_admin ready "
          f"(PostgreSQL {st.server_version})")
    st.close()


def cmd_add_user(args) -> int:
    import getpass

    from simulator.records.centre import admin

    password = None
    if args.password:
        password = getpass.getpass(f"password for {args.login}: ")
        if password != getpass.getpass("again: "):
            raise _Fail("the two passwords differ")
    st = _server(args)
    admin.add_user(st, args.login, args.role, full_name=args.full_name, password=password)
    print(f"{args.login}: {args.role} on {st.location}")
    st.close()


def _simple(fn_name: str, *fields):
    def cmd(args) -> int:
        from simulator.records.centre import admin

        st = _server(args)
        getattr(admin, fn_name)(st, *(getattr(args, f) for f in fields))
        print(f"{fn_name.replace('_', ' ')}: {' '.join(str(getattr(args, f)) for f in fields)} on {st.location}")
        st.close()
    return cmd


def cmd_whoami(args) -> int:
    from simulator.records.centre import admin

    st = _server(args)
    print(json.dumps(dict(admin.whoami(st), server=st.location, server_version=st.server_version)))
    st.close()


def cmd_sync(args) -> int:
    from simulator.records.centre.config import server_conninfo, workstation_name
    from simulator.records.centre.sync import CentreSync
    from simulator.records.store.postgres import PostgresRecordStore

    conninfo = server_conninfo(args.server)
    if conninfo is None:
        raise _Fail("no centre server: pass --server or set NEUROLYSIS_CENTRE")
    local = _local(args)
    sync = CentreSync(local, lambda: PostgresRecordStore(conninfo, migrate=False), workstation=workstation_name(),
                      pull_history=(lambda: list(args.pull)) if args.pull else None)
    failed = False
    try:
        while True:
            r = sync.sync_once()
            line = (f"{time.strftime('%H:%M:%S')} {sync.state}: {len(r.pushed)} sent, {len(r.already)} already there, "
                    f"{len(r.pulled)} fetched, {len(sync.pending())} waiting")
            print(line + (f" - {r.error}" if r.error else ""), flush=True)
            for key, msg in r.failed.items():
                print(f"  not sent: {msg}", flush=True)
            failed = bool(r.error or r.failed)
            if not args.watch:
                break
            time.sleep(sync.interval_s if not r.error else 5.0)
    finally:
        sync.stop()
        local.close()
    return 1 if failed else 0


def cmd_status(args) -> int:
    from simulator.records.centre.sync import CentreSync

    local = _local(args)
    pending = CentreSync(local, lambda: None).pending()
    print(f"{local.location}: {len(pending)} closed attempts not yet on the server")
    for aid, uuid, _ in pending:
        print(f"  #{aid} {uuid}")
    local.close()


def cmd_live(args) -> int:
    from simulator.records.centre.feed import read_live

    st = _server(args)
    rows = read_live(st)
    st.close()
    if args.json:
        print(json.dumps([r.to_json() for r in rows]))
        return 0
    for r in rows:
        d = "-" if r.distance_mm is None else f"{r.distance_mm:.1f} mm"
        last = r.events[-1]["message"] if r.events else ""
        print(f"{r.workstation:<16} {r.trainee:<14} {r.scenario_title[:32]:<32} {r.step:<18} {d:>9}  "
              f"{r.age_s:4.0f} s ago  {last}")


def cmd_dashboard(args) -> int:
    from simulator.core.display import NO_DISPLAY_MESSAGE, display_status
    from simulator.records.centre.config import server_conninfo
    from simulator.records.store.postgres import PostgresRecordStore

    if display_status() == "none":
        sys.stderr.write(NO_DISPLAY_MESSAGE)
        return 2
    conninfo = server_conninfo(args.server)
    if conninfo is None:
        raise _Fail("no centre server: pass --server or set NEUROLYSIS_CENTRE")
    from PySide6.QtWidgets import QApplication

    from simulator.ui.centre_dashboard import CentreDashboard

    app = QApplication.instance() or QApplication(sys.argv[:1])
    w = CentreDashboard(lambda: PostgresRecordStore(conninfo, migrate=False))
    w.show()
    rc = app.exec()
    w.shutdown()
    return rc


def cmd_xapi(args) -> int:
    from simulator.records.xapi import DEFAULT_HOMEPAGE, attempt_statements

    st = _server(args) if args.on_server else _local(args)
    try:
        sts = attempt_statements(st, st.resolve(args.attempt), homepage=args.homepage or DEFAULT_HOMEPAGE)
    finally:
        st.close()
    Path(args.out).write_text(json.dumps(sts, indent=1) + "\n")
    print(f"{args.out}: {len(sts)} xAPI statements")


def cmd_try_server(args) -> int:
    from simulator.records.centre.cluster import LocalCluster
    from simulator.records.store.postgres import PostgresRecordStore

    with LocalCluster(durable=True) as cluster:
        cluster.create_database("centre")
        PostgresRecordStore(cluster.conninfo("centre")).close()
        print(f"PostgreSQL {cluster.version()} running (Ctrl-C stops it and removes its files). As its admin:\n"
              f"  export NEUROLYSIS_CENTRE='{cluster.conninfo('centre')}'\n"
              f"  python main.py centre add-user ann --role trainee\n"
              f"Then as a trainee: NEUROLYSIS_CENTRE='{cluster.conninfo('centre', user='ann')}'", flush=True)
        while True:
            time.sleep(3600)


COMMANDS = {"init": cmd_init, "add-user": cmd_add_user, "add-cohort": _simple("add_cohort", "name", "title"),
            "add-member": _simple("add_member", "cohort", "trainee"),
            "add-instructor": _simple("add_instructor", "cohort", "login"), "whoami": cmd_whoami, "sync": cmd_sync,
            "status": cmd_status, "live": cmd_live, "dashboard": cmd_dashboard, "xapi": cmd_xapi,
            "try-server": cmd_try_server}
