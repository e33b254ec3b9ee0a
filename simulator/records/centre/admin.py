"""The centre's people on the server: logins in the roles trainee / instructor / admin, cohorts.

    add_user(store, "ann", "trainee", full_name="Dr Ann Example", password=...)   # CREATE ROLE ... IN ROLE nt_trainee
    add_user(store, "lee", "instructor")
    add_cohort(store, "2026-spring", "Spring course"); add_member(store, "2026-spring", "ann")
    add_instructor(store, "2026-spring", "lee")

Run as the centre's admin (the owner of the records database, or a member of nt_admin with
CREATEROLE). What each role may see is decided on the server by row-level security (migration 3):
a trainee their own attempts, an instructor the trainees of the cohorts they teach, nt_admin
everything. Passwords go to the server only (as SCRAM hashes); the trainer keeps none.
"""
from __future__ import annotations

from simulator.records.store.model import RecordsError, now_iso

ROLES = {"trainee": "nt_trainee", "instructor": "nt_instructor", "admin": "nt_admin"}


def _sql():
    from psycopg import sql

    return sql


def _exec(store, statement) -> None:
    """A composed (psycopg.sql) statement in the store's transaction machinery."""
    with store._tx() as tx:
        tx.cur.execute(statement)


def add_user(store, login: str, role: str, *, full_name: str = "", password: str | None = None) -> None:
    """A login role in one of ROLES (created, or added to the group if it exists); a trainee also
    gets their row in `trainees` (their records are theirs by this login)."""
    if role not in ROLES:
        raise RecordsError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    login = str(login).strip()
    if not login:
        raise RecordsError("a user needs a login name")
    sql = _sql()
    with store._tx() as tx:
        exists = tx.one("SELECT 1 FROM pg_roles WHERE rolname = ?", (login,)) is not None
    ident = sql.Identifier(login)
    if not exists:
        stmt = sql.SQL("CREATE ROLE {} LOGIN").format(ident)
        if password:
            stmt = sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(ident, sql.Literal(password))
        _exec(store, stmt)
    elif password:
        _exec(store, sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, sql.Literal(password)))
    _exec(store, sql.SQL("GRANT {} TO {}").format(sql.Identifier(ROLES[role]), ident))
    if role == "admin":
        _exec(store, sql.SQL("ALTER ROLE {} CREATEROLE").format(ident))
    if role == "trainee":
        with store._tx() as tx:
            store._ensure_trainee(tx, login, full_name, now_iso(), login=login)
            tx.run("UPDATE trainees SET login = ?, full_name = CASE WHEN ? <> '' THEN ? ELSE full_name END "
                   "WHERE name = ?", (login, full_name, full_name, login))


def add_cohort(store, name: str, title: str = "") -> None:
    with store._tx() as tx:
        tx.run("INSERT INTO cohorts (name, title) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", (name, title or name))


def add_member(store, cohort: str, trainee: str) -> None:
    with store._tx() as tx:
        if tx.one("SELECT 1 FROM trainees WHERE name = ?", (trainee,)) is None:
            raise RecordsError(f"no trainee {trainee!r} on {store.location}: add them first (centre add-user)")
        tx.run("INSERT INTO cohort_members (cohort, trainee) VALUES (?, ?) ON CONFLICT (cohort, trainee) DO NOTHING",
               (cohort, trainee))


def add_instructor(store, cohort: str, login: str) -> None:
    with store._tx() as tx:
        tx.run("INSERT INTO cohort_instructors (cohort, login) VALUES (?, ?) ON CONFLICT (cohort, login) DO NOTHING",
               (cohort, login))


def whoami(store) -> dict:
    """The connected role and which of the centre's roles it has."""
    with store._tx() as tx:
        user = tx.one("SELECT current_user")[0]
        groups = {g: bool(tx.one("SELECT pg_has_role(current_user, ?, 'MEMBER')", (r,))[0])
                  for g, r in ROLES.items()}
        cohorts = [r[0] for r in tx.all("SELECT cohort FROM cohort_instructors WHERE login = current_user::text "
                                        "ORDER BY cohort")]
    return {"login": str(user), "roles": [g for g, v in groups.items() if v], "teaches": cohorts}


def cohorts(store) -> dict[str, list[str]]:
    """Cohort -> its trainees (those the connected role may see)."""
    with store._tx() as tx:
        rows = tx.all("SELECT c.name, m.trainee FROM cohorts c LEFT JOIN cohort_members m ON m.cohort = c.name "
                      "AND m.trainee IN (SELECT name FROM trainees) ORDER BY c.name, m.trainee")
    out: dict[str, list[str]] = {}
    for c, t in rows:
        out.setdefault(str(c), [])
        if t is not None:
            out[str(c)].append(str(t))
    return out
