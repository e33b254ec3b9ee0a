"""`records`: trainees' records from the command line (headless), for instructors who run a course.

    main.py records [--db FILE] trainees | attempts [--trainee T] [--scenario S] [--status ST]
    main.py records show ATTEMPT                          the score card and its reasons
    main.py records export ATTEMPT --out FILE.igs.mha|.csv|.json [--format igs.mha|csv|json]
    main.py records export-trainee TRAINEE --out FILE     one file with all their attempts
    main.py records import-trainee FILE                   merge it (attempts already here are skipped)
    main.py records import-attempt FILE.igs.mha --scenario S [--trainee T] [--needle NAME]
                                                          a tracked file (.mha, .seq.nrrd, Perk Tutor .xml)
                                                          or our .json export, scored and stored
    main.py records report ATTEMPT --out FILE.html|FILE.pdf [--image NAME=FILE.png ...]
    main.py records rescore ATTEMPT [--scenario S] [--save]   replay its inputs, score again
    main.py records recover [ATTEMPT]                     list attempts a crash left open / recover one
    main.py records progress TRAINEE [--scenario S]       learning-curve data
    main.py records overview [--scenario S]               per scenario: trainees, attempts, pass rate
    main.py records validity --expert T [T ...] --novice T [T ...] [--scenario S] [--boot N]
                                                          per metric and the total score: expert-vs-novice
                                                          AUC with a bootstrap 95 % CI, pass/fail agreement
    main.py records add-trainee NAME [--full-name TEXT] | delete ATTEMPT --yes

ATTEMPT is the number `attempts` lists or (a unique prefix of) the attempt's UUID. `--db FILE`
chooses the database (default: records.sqlite in the user's data folder); `--json` prints JSON.
Errors are one line naming the attempt, trainee or file, with exit status 1; never a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

CREATES = {"import-trainee", "import-attempt", "add-trainee"}


def _common() -> argparse.ArgumentParser:
    c = argparse.ArgumentParser(add_help=False)
    c.add_argument("--db", metavar="FILE",
                   help="records database file (default: records.sqlite in the user's data folder)")
    return c


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "records", help="trainees' records: list, export, import, report, rescore (headless)",
        description="Trainees' recorded attempts: list them, export an attempt (.igs.mha for 3D Slicer / Perk "
        "Tutor, CSV, JSON) or a trainee's records, import, produce a report (HTML or PDF), rescore by replay.",
        epilog="ATTEMPT is the number listed by `records attempts` or (a unique prefix of) the attempt's UUID.")
    p.add_argument("--db", dest="db_top", metavar="FILE",
                   help="records database file (default: the user's records.sqlite)")
    sub = p.add_subparsers(dest="records_command", metavar="SUBCOMMAND")
    c = _common()

    s = sub.add_parser("trainees", parents=[c], help="list the trainees")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("add-trainee", parents=[c], help="add a trainee")
    s.add_argument("name")
    s.add_argument("--full-name", default="")

    s = sub.add_parser("attempts", parents=[c], help="list attempts (oldest first)")
    s.add_argument("--trainee")
    s.add_argument("--scenario")
    s.add_argument("--status", choices=("live", "finished", "recovered", "abandoned"))
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("show", parents=[c], help="an attempt's summary and score card")
    s.add_argument("attempt")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("export", parents=[c], help="export an attempt as .igs.mha, CSV or JSON")
    s.add_argument("attempt")
    s.add_argument("--out", required=True, help="output file")
    s.add_argument("--format", choices=("igs.mha", "csv", "json"), help="default: from the file name")
    s.add_argument("--style", choices=("slicer", "plus"), default="slicer",
                   help=".igs.mha flavour: Slicer (DimSize 0 0 N, no pixels) or PLUS (1 1 N placeholders)")

    s = sub.add_parser("export-trainee", parents=[c], help="write a trainee's records to one file")
    s.add_argument("trainee")
    s.add_argument("--out", required=True)

    s = sub.add_parser("import-trainee", parents=[c], help="merge a file written by export-trainee")
    s.add_argument("file")

    s = sub.add_parser("import-attempt", parents=[c], help="import a tracked file (scored) or a JSON export")
    s.add_argument("file", help=".igs.mha/.seq.mha/.mha, .seq.nrrd, Perk Tutor .xml, or our .json")
    s.add_argument("--scenario", help="scenario id or YAML file (required for tracked files)")
    s.add_argument("--trainee", default="imported")
    s.add_argument("--needle", help="the needle tip transform (default: the one named NeedleTip...)")
    s.add_argument("--probe", help="the probe transform (default: the one named Probe...)")
    s.add_argument("--skip-invalid", action="store_true", help="drop frames whose transform status is INVALID")

    s = sub.add_parser("report", parents=[c], help="an attempt's report as HTML or PDF")
    s.add_argument("attempt")
    s.add_argument("--out", required=True, help="FILE.html or FILE.pdf")
    s.add_argument("--image", action="append", default=[], metavar="NAME=FILE.png",
                   help="add a key image (repeatable)")

    s = sub.add_parser("rescore", parents=[c], help="replay an attempt's inputs and score it again")
    s.add_argument("attempt")
    s.add_argument("--scenario", help="score with this scenario (default: the version it was recorded on)")
    s.add_argument("--save", action="store_true", help="store the new score card")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("recover", parents=[c], help="list attempts left open by a crash, or recover one")
    s.add_argument("attempt", nargs="?")
    s.add_argument("--force", action="store_true", help="recover even if its recorder still seems to be running")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("progress", parents=[c], help="a trainee's learning-curve data")
    s.add_argument("trainee")
    s.add_argument("--scenario")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("overview", parents=[c], help="per scenario: trainees, attempts, scores, pass rate")
    s.add_argument("--scenario")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("validity", parents=[c], help="expert-vs-novice AUC per metric (95 %% CI), pass/fail agreement")
    s.add_argument("--expert", nargs="+", required=True, metavar="TRAINEE",
                   help="the expert group's trainees (names, or one comma-separated list)")
    s.add_argument("--novice", nargs="+", required=True, metavar="TRAINEE", help="the novice group's trainees")
    s.add_argument("--scenario", help="only this scenario (default: every scenario both groups did)")
    s.add_argument("--boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("delete", parents=[c], help="delete an attempt")
    s.add_argument("attempt")
    s.add_argument("--yes", action="store_true", help="really delete")

    p.set_defaults(func=run, _records_parser=p)


# --------------------------------------------------------------------------------------------


class _Fail(Exception):
    pass


def _table(head: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in head]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _score(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def _passed(v) -> str:
    return "-" if v is None else ("yes" if v else "no")


def _open(args, cmd: str):
    from simulator.records.store import SQLiteRecordStore, default_db_path

    path = Path(getattr(args, "db", None) or getattr(args, "db_top", None) or default_db_path())
    if not path.exists() and cmd not in CREATES:
        return None, path
    return SQLiteRecordStore(path), path


def run(args) -> int:
    cmd = getattr(args, "records_command", None)
    if not cmd:
        args._records_parser.print_help(sys.stderr)
        return 2
    from simulator.core.recording import RecordingError
    from simulator.records.store import RecordsError

    store = None
    try:
        store, path = _open(args, cmd)
        return COMMANDS[cmd](args, store, path)
    except _Fail as e:
        sys.stderr.write(f"records {cmd}: {e}\n")
        return 1
    except (RecordsError, RecordingError, OSError, ValueError) as e:
        msg = str(e) if not isinstance(e, OSError) or not e.filename else f"{e.filename}: {e.strerror or e}"
        sys.stderr.write(f"records {cmd}: {msg}\n")
        return 1
    except Exception as e:  # noqa: BLE001 - reported plainly, never a traceback
        sys.stderr.write(f"records {cmd}: {type(e).__name__}: {e}\n")
        return 1
    finally:
        if store is not None:
            store.close()


def _need(store, path):
    if store is None:
        raise _Fail(f"{path}: no records database there (nothing recorded yet)")
    return store


def _attempt(store, path, ref) -> int:
    return _need(store, path).resolve(ref)


def cmd_trainees(args, store, path) -> int:
    rows = store.list_trainees() if store else []
    if args.json:
        print(json.dumps([t.to_json() for t in rows]))
        return 0
    if not rows:
        print(f"no trainees in {path}")
        return 0
    print(_table(["trainee", "name", "attempts", "last attempt"],
                 [[t.name, t.full_name, t.attempts, t.last_attempt_at] for t in rows]))
    return 0


def cmd_add_trainee(args, store, path) -> int:
    t = store.add_trainee(args.name, args.full_name)
    print(f"trainee {t.name} ({t.attempts} attempts) in {path}")
    return 0


def _attempt_rows(attempts) -> list[list]:
    from simulator.core.events import format_time

    return [[a.id, a.short_uuid, a.trainee, a.scenario_id, a.started_at.replace("+00:00", "Z"),
             format_time(a.duration_s), a.mode, a.status, _score(a.score), _passed(a.passed)] for a in attempts]


ATTEMPT_HEAD = ["id", "uuid", "trainee", "scenario", "started", "time", "mode", "status", "score", "passed"]


def cmd_attempts(args, store, path) -> int:
    attempts = store.list_attempts(trainee=args.trainee, scenario=args.scenario, status=args.status) if store else []
    if args.json:
        print(json.dumps([a.to_json() for a in attempts]))
        return 0
    if not attempts:
        print(f"no attempts{' matching' if (args.trainee or args.scenario or args.status) else ''} in {path}")
        return 0
    print(_table(ATTEMPT_HEAD, _attempt_rows(attempts)))
    return 0


def cmd_show(args, store, path) -> int:
    aid = _attempt(store, path, args.attempt)
    info = store.attempt(aid)
    card = store.score_card(aid)
    if args.json:
        print(json.dumps({"attempt": info.to_json(), "score_card": card}))
        return 0
    print(_table(ATTEMPT_HEAD, _attempt_rows([info])))
    print(f"uuid {info.uuid}; scenario {info.scenario_title} (version {info.scenario_version}); "
          f"anatomy {info.anatomy_ref}; {info.n_samples} samples, {info.n_events} events, {info.n_inputs} inputs")
    if card is None:
        print("not scored")
    else:
        print(f"score {card['score']:.1f} / 100 (pass mark {card['pass_mark']:g}): "
              f"{'PASSED' if card['passed'] else 'FAILED'}")
        for r in card.get("reasons", []):
            print(f"- {r}")
    return 0


def cmd_export(args, store, path) -> int:
    from simulator.records.exchange import export_attempt, export_igs_mha, format_from_path

    aid = _attempt(store, path, args.attempt)
    fmt = args.format or format_from_path(args.out)
    if fmt is None:
        raise _Fail(f"{args.out}: say which format with --format igs.mha|csv|json (or name the file .igs.mha, "
                    f".csv or .json)")
    if fmt == "igs.mha":
        out = export_igs_mha(store.load_attempt(aid), args.out, style=args.style)
    else:
        out = export_attempt(store, aid, args.out, fmt)
    print(f"attempt {aid} written to {out} ({fmt})")
    return 0


def cmd_export_trainee(args, store, path) -> int:
    from simulator.records.exchange import export_trainee

    n = export_trainee(_need(store, path), args.trainee, args.out)
    print(f"{n} attempt(s) of {args.trainee} written to {args.out}")
    return 0


def cmd_import_trainee(args, store, path) -> int:
    from simulator.records.exchange import import_trainee

    summary = import_trainee(store, args.file)
    print(f"{args.file}: {summary.text()}")
    return 0


def cmd_import_attempt(args, store, path) -> int:
    from simulator.records.exchange import TRACKED_SUFFIXES, import_json, import_tracked
    from simulator.records.rescore import anatomy_for, load_scenario_ref

    f = Path(args.file)
    if not f.exists():
        raise _Fail(f"{f}: no such file")
    if f.name.lower().endswith(".json"):
        aid, added = import_json(store, f)
        print(f"{f}: attempt {aid} {'added' if added else 'was already stored (same UUID)'}")
        return 0
    if not f.name.lower().endswith(TRACKED_SUFFIXES):
        raise _Fail(f"{f}: import takes a tracked file (.igs.mha, .seq.mha, .mha, .seq.nrrd, .xml) or a .json export")
    if not args.scenario:
        raise _Fail(f"{f}: a tracked file needs --scenario (the scenario whose anatomy it was recorded on)")
    scenario = load_scenario_ref(args.scenario)
    anatomy = anatomy_for(scenario.anatomy)
    aid, card = import_tracked(store, f, scenario, anatomy, trainee=args.trainee, needle=args.needle,
                               probe=args.probe, skip_invalid=args.skip_invalid)
    print(f"{f}: attempt {aid} ({store.attempt(aid).n_samples} samples)")
    print(card.text())
    return 0


def cmd_report(args, store, path) -> int:
    from simulator.records.report import build_report, write_report

    aid = _attempt(store, path, args.attempt)
    suffix = Path(args.out).suffix.lower()
    if suffix not in (".html", ".htm", ".pdf"):
        raise _Fail(f"{args.out}: a report is FILE.html or FILE.pdf")
    images = {}
    for item in args.image:
        name, sep, file = item.partition("=")
        if not sep or not name or not file:
            raise _Fail(f"--image {item!r}: expected NAME=FILE.png")
        try:
            images[name] = Path(file).read_bytes()
        except OSError as e:
            raise _Fail(f"{file}: cannot read the image ({e.strerror or e})") from None
    out = write_report(build_report(store, aid, images), args.out, headless=True)
    print(f"report of attempt {aid} written to {out}")
    return 0


def cmd_rescore(args, store, path) -> int:
    from simulator.records.rescore import rescore

    aid = _attempt(store, path, args.attempt)
    res = rescore(store, aid, scenario=args.scenario, save=args.save)
    if args.json:
        print(json.dumps(res.to_json()))
        return 0
    for w in res.warnings:
        print(f"warning: {w}")
    stored = "-" if res.stored is None else f"{res.stored['score']:.1f} ({_passed(res.stored['passed'])})"
    print(f"attempt {aid}: stored score {stored}; rescored {res.card.score:.1f} ({_passed(res.card.passed)})")
    if res.identical:
        print("identical to the stored score card, to the last digit")
    else:
        print("differs from the stored score card:")
        for d in res.differences:
            print(f"  {d}")
    if not res.replay_identical:
        print("note: the replay did not reproduce the stored samples and events exactly")
    if args.save:
        print("the new score card is stored")
    return 0


def cmd_recover(args, store, path) -> int:
    if args.attempt is None:
        live = store.recoverable_attempts() if store else []
        if args.json:
            print(json.dumps([a.to_json() for a in live]))
        elif not live:
            print(f"no attempts to recover in {path}")
        else:
            print(_table(ATTEMPT_HEAD, _attempt_rows(live)))
        return 0
    aid = _attempt(store, path, args.attempt)
    rec = store.recover(aid, force=args.force)
    print(f"attempt {aid} recovered: {rec.n_samples} samples, {len(rec.events)} events, {len(rec.inputs)} inputs "
          f"({rec.duration_s:.1f} s); `records rescore {aid} --save` scores it")
    return 0


def cmd_progress(args, store, path) -> int:
    from simulator.records.progress import learning_curve, learning_curves

    st = _need(store, path)
    if args.trainee not in {t.name for t in st.list_trainees()}:
        raise _Fail(f"no trainee {args.trainee!r} in {path}")
    curves = ({args.scenario: learning_curve(st, args.trainee, args.scenario)} if args.scenario
              else learning_curves(st, args.trainee))
    if args.json:
        print(json.dumps({k: c.to_json() for k, c in curves.items()}))
        return 0
    if not curves:
        print(f"{args.trainee} has no attempts")
    for sid, c in curves.items():
        mark = "-" if c.pass_mark is None else f"{c.pass_mark:g}"
        print(f"{c.scenario_title} ({sid}): {c.attempts} scored attempt(s), pass mark {mark}")
        head = ["#", "id", "started", "score", "passed"] + [c.metric_labels[m][0] for m in c.metric_labels]
        rows = [[p.number, p.attempt_id, p.started_at.replace("+00:00", "Z"), _score(p.score), _passed(p.passed)]
                + ["-" if p.metrics[m] is None else f"{p.metrics[m]:.1f}" for m in c.metric_labels]
                for p in c.points]
        if rows:
            print(_table(head, rows))
        print()
    return 0


def cmd_overview(args, store, path) -> int:
    from simulator.records.progress import instructor_overview

    ov = instructor_overview(store, args.scenario) if store else []
    if args.json:
        print(json.dumps([o.to_json() for o in ov]))
        return 0
    if not ov:
        print(f"no attempts in {path}")
    for o in ov:
        rate = "-" if o.pass_rate is None else f"{100 * o.pass_rate:.0f} %"
        print(f"{o.scenario_title} ({o.scenario_id}): {o.trainees} trainee(s), {o.attempts} scored attempt(s), "
              f"pass rate {rate}, best {_score(o.best_score)}, mean {_score(o.mean_score)}")
        print(_table(["trainee", "attempts", "best", "last", "last passed", "passed", "pass rate", "last attempt"],
                     [[r.trainee, r.attempts, _score(r.best_score), _score(r.last_score), _passed(r.last_passed),
                       r.passed, "-" if r.pass_rate is None else f"{100 * r.pass_rate:.0f} %",
                       r.last_at.replace("+00:00", "Z")] for r in o.rows]))
        print()
    return 0


def cmd_validity(args, store, path) -> int:
    from simulator.records.validity import TABLE_HEAD, header_line, summary_line, table_rows, validity_report

    def names(values):
        return [n.strip() for v in values for n in str(v).split(",") if n.strip()]

    if not 100 <= args.boot <= 100000:
        raise _Fail(f"--boot {args.boot}: give between 100 and 100000 resamples")
    rep = validity_report(_need(store, path), names(args.expert), names(args.novice), args.scenario, n_boot=args.boot)
    if args.json:
        print(json.dumps(rep.to_json()))
        return 0
    print(header_line(rep))
    for s in rep.scenarios:
        print()
        print(summary_line(s))
        print(_table(TABLE_HEAD, table_rows(s)))
    return 0


def cmd_delete(args, store, path) -> int:
    aid = _attempt(store, path, args.attempt)
    if not args.yes:
        raise _Fail(f"attempt {aid} would be deleted for good; add --yes")
    store.delete_attempt(aid)
    print(f"attempt {aid} deleted")
    return 0


COMMANDS = {
    "trainees": cmd_trainees, "add-trainee": cmd_add_trainee, "attempts": cmd_attempts, "show": cmd_show,
    "export": cmd_export, "export-trainee": cmd_export_trainee, "import-trainee": cmd_import_trainee,
    "import-attempt": cmd_import_attempt, "report": cmd_report, "rescore": cmd_rescore, "recover": cmd_recover,
    "progress": cmd_progress, "overview": cmd_overview, "validity": cmd_validity, "delete": cmd_delete,
}
