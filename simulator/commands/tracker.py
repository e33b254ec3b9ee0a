"""`tracker`: a simulated tracker and a connection check, over OpenIGTLink (no hardware needed).

    main.py tracker replay FILE.igs.mha [--port 18944] [--speed 1] [--loop] [--clock file|now] [--plain]
                                        [--rename NAME=DEVICE ...]
        stream a recorded tracked file (.igs.mha, .seq.mha, .seq.nrrd, Perk Tutor XML) as PLUS
        streams a live tracker, at its recorded rate (--speed 2: twice as fast; 0: as fast as possible)
    main.py tracker demo [--scenario ID] [--rate 60] [--seconds 20] [--port 18944] [--loop]
        stream a hand-held needle pass along the scenario's planned trajectory (and a probe beside it)
    main.py tracker listen [--host 127.0.0.1] [--port 18944] [--seconds 5]
        connect to an OpenIGTLink server (PLUS, 3D Slicer, the above) and report the devices it sends,
        their rates and lags, and any problem with the stream

Problems (a file that cannot be read, a port in use, no server) are one line naming the file or the
port, exit status 1; never a traceback. Ctrl+C stops.
"""
from __future__ import annotations

import json
import sys
import time


def add_parser(subparsers) -> None:
    s = subparsers.add_parser(
        "tracker",
        help="simulated tracker over OpenIGTLink (replay a tracked file, a demo pass) and a connection check",
        description="Stream a recorded tracked file or a demo needle pass over OpenIGTLink as PLUS streams a "
        "live tracker (for the trainer's tracking panel, 3D Slicer or Perk Tutor), or listen to a server and "
        "report what it sends.",
    )
    sub = s.add_subparsers(dest="tracker_command", metavar="ACTION", required=True)
    common = {"--host": dict(default="127.0.0.1", help="address (default 127.0.0.1: this computer only)"),
              "--port": dict(type=int, default=18944, help="TCP port (default 18944, OpenIGTLink's)")}
    r = sub.add_parser("replay", help="stream a tracked file at its recorded rate")
    r.add_argument("file", help=".igs.mha, .seq.mha, .mha, .seq.nrrd or Perk Tutor .xml")
    d = sub.add_parser("demo", help="stream a needle pass along a scenario's planned trajectory")
    d.add_argument("--scenario", default="celiac_plexus_posterior", help="scenario id or YAML file")
    d.add_argument("--rate", type=float, default=60.0, help="poses per second (default 60)")
    d.add_argument("--seconds", type=float, default=20.0, help="length of the pass (default 20)")
    for p in (r, d):
        for k, v in common.items():
            p.add_argument(k, **v)
        p.add_argument("--speed", type=float, default=1.0, help="1: recorded rate, 2: twice as fast, 0: at once")
        p.add_argument("--loop", action="store_true", help="start again at the end (until Ctrl+C)")
        p.add_argument("--wait", action="store_true", help="start when the first client connects")
        p.add_argument("--clock", choices=("file", "now"), default="file",
                       help="timestamps: the file's own (default) or this computer's clock at sending")
        p.add_argument("--plain", action="store_true",
                       help="float32 poses only, as PLUS sends (default: the exact float64 pose in the metadata)")
        p.add_argument("--rename", action="append", default=[], metavar="NAME=DEVICE",
                       help="send transform NAME as DEVICE, e.g. StylusTipToReference=NeedleTipToReference")
    listen = sub.add_parser("listen", help="connect to a server and report the devices it sends")
    for k, v in common.items():
        listen.add_argument(k, **v)
    listen.add_argument("--seconds", type=float, default=5.0, help="how long to listen (default 5)")
    listen.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=run)


def _fail(msg: str) -> int:
    sys.stderr.write(f"tracker: {msg}\n")
    return 1


def run(args) -> int:
    if args.tracker_command == "listen":
        return _listen(args)
    from simulator.core.trackfiles import TrackFileError, TrackedRecording, TransformSequence, read_tracked
    from simulator.tracking.server import ServerError
    from simulator.tracking.simtracker import SimulatedTracker

    rename = {}
    for item in args.rename:
        if "=" not in item:
            return _fail(f"--rename {item!r}: write NAME=DEVICE")
        a, b = item.split("=", 1)
        rename[a.strip()] = b.strip()
    if args.tracker_command == "replay":
        try:
            source = read_tracked(args.file)
        except TrackFileError as e:
            return _fail(str(e))
        what = args.file
    else:
        import numpy as np

        from simulator.core.scenario import ScenarioError, find_scenario, load_scenario
        from simulator.tracking.hand_motion import needle_pass

        try:
            sc = load_scenario(find_scenario(args.scenario))
        except (ScenarioError, FileNotFoundError, OSError, ValueError) as e:
            return _fail(f"scenario {args.scenario!r}: {e}")
        plan = sc.planned_trajectory
        if plan is None:
            return _fail(f"scenario {sc.id!r} has no planned trajectory to follow")
        if not (args.rate > 0 and args.seconds > 0):
            return _fail("--rate and --seconds must be positive")
        us = sc.imaging.ultrasound if sc.imaging is not None else None
        probe = ((us.center_mm, us.direction, us.marker) if us is not None and None not in (us.center_mm, us.direction, us.marker)
                 else None)
        seqs = needle_pass(plan.entry_mm, plan.target_mm, rate_hz=args.rate, duration_s=args.seconds, probe_pose=probe)
        source = TrackedRecording(f"demo:{sc.id}", {k: TransformSequence(k, t, m, np.ones(len(t), bool))
                                                    for k, (t, m) in seqs.items()})
        what = f"a needle pass on {sc.id}"
    try:
        tracker = SimulatedTracker(source, args.host, args.port, speed=args.speed, rename=rename,
                                   exact=not args.plain, clock=args.clock, loop=args.loop, wait_for_client=args.wait)
        tracker.start()
    except (ServerError, ValueError) as e:
        return _fail(str(e))
    print(f"streaming {what} on {args.host}:{tracker.port}: {', '.join(tracker.devices)}, {tracker.n_frames} frames "
          f"at {tracker.rate_hz:.1f} Hz x {args.speed:g}{' (looping)' if args.loop else ''}; Ctrl+C stops", flush=True)
    try:
        while not tracker.wait_done(0.5):
            pass
        tracker.server.flush(5.0)
    except KeyboardInterrupt:
        pass
    finally:
        tracker.stop()
    print(f"sent {tracker.frames_sent} frames ({tracker.messages_sent} messages)")
    return 0


def _listen(args) -> int:
    from simulator.tracking.client import TrackingClient

    c = TrackingClient(args.host, args.port)
    c.start()
    try:
        time.sleep(max(0.1, args.seconds))
    except KeyboardInterrupt:
        pass
    st = c.status()
    notes = [n.text for n in c.notices()]
    c.stop()
    if args.json:
        print(json.dumps({"connected": st.connected, "messages": st.messages, "errors": st.errors,
                          "devices": st.devices, "notices": notes}, default=str))
        return 0 if st.messages else 1
    if not st.messages:
        return _fail(notes[-1] if notes else f"nothing received from {args.host}:{args.port}")
    print(f"{args.host}:{args.port}: {st.messages} messages, {st.errors} damaged")
    for d in st.devices:
        print(f"  {d['name']:<22} {d['type']:<10} {d['count']:>6} messages  {d['rate_hz']:6.1f} Hz  "
              f"lag {1e3 * d['lag_s']:6.1f} ms")
    for n in notes:
        print(f"  note: {n}")
    return 0
