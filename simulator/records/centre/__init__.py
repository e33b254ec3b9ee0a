"""A simulation centre: many workstations, one records server, instructors watching live.

- `cluster`: a throw-away PostgreSQL server (tests, the benchmark, trying the centre out)
- `admin`: roles (trainee / instructor / admin), cohorts and logins on the server
- `sync`: offline-first sync of a workstation's SQLite records with the server, by attempt UUID
- `feed`: live progress of each workstation (the instructor's dashboard reads it)

The store itself is `simulator.records.store.PostgresRecordStore`.
"""
