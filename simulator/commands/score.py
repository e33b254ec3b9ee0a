"""`score`: score a recorded attempt, or a tracked recording from 3D Slicer / PLUS / Perk Tutor.

    main.py score RECORDING.nlrec.npz [--scenario ID_OR_FILE] [--json]
        our recording: the scenario's rubric, score card with reasons (exit 0)
    main.py score FILE.igs.mha|.seq.mha|.mha|.seq.nrrd|.xml --tissue MODEL.stl --needle NAME [--json]
        Perk Tutor's core metrics on a tracked recording: elapsed_time_s, path_length_mm (for every
        transform, keyed by its name), path_in_tissue_mm, time_in_tissue_s, tissue_damage_mm2
        (and tissue_punctures), with the tissue model (binary or ASCII STL) as the Tissue surface.

Malformed files give one line naming the file (and line) and exit status 1; never a traceback.
"""
from __future__ import annotations

import json
import sys


def add_parser(subparsers) -> None:
    s = subparsers.add_parser(
        "score",
        help="score a recorded attempt, or Perk Tutor metrics of a tracked .mha/.xml with a tissue model",
        description="Score one of our recordings against its scenario's rubric, or compute Perk Tutor's "
        "core metrics of a PLUS/Slicer tracked-sequence metafile (.mha, .igs.mha, .seq.mha, .seq.nrrd) or a "
        "Perk Tutor TransformRecorder XML with --tissue MODEL.stl and --needle TRANSFORM_NAME.",
    )
    s.add_argument("recording", help="our recording (.nlrec.npz) or a tracked file (.mha, .igs.mha, .seq.nrrd, .xml)")
    s.add_argument("--scenario", help="scenario id or YAML file (default: the recording's scenario)")
    s.add_argument("--tissue", help="closed tissue surface (STL, binary or ASCII): Perk Tutor's Tissue model")
    s.add_argument("--needle", help="the needle tip transform, e.g. NeedleTipToReference (with or without 'Transform')")
    s.add_argument("--needle-axis", default="+Z", help="needle direction in the tip frame: +X -X +Y -Y +Z -Z (default +Z)")
    s.add_argument("--master", help="transform whose times drive the replay (default: the first in the file)")
    s.add_argument("--skip-invalid", action="store_true",
                   help="drop samples whose transform status is INVALID (Slicer keeps them)")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=run)


def _fail(msg: str) -> int:
    sys.stderr.write(f"score: {msg}\n")
    return 1


def tracked_metrics(path, tissue, needle: str | None, axis="+Z", master: str | None = None,
                    skip_invalid: bool = False) -> dict:
    """Perk Tutor core metrics of a tracked file (the --tissue mode of the command)."""
    from pathlib import Path

    import numpy as np

    from simulator.core.geometry import distance3
    from simulator.core.mesh_locator import MeshLocator
    from simulator.core.meshes import read_stl
    from simulator.core.metrics import parse_axis, perk_core_metrics
    from simulator.core.trackfiles import TrackedRecording, TransformSequence, read_tracked, recording_sequences, resample

    p = Path(path)
    if p.name.lower().endswith(".npz"):
        from simulator.core.recording import Recording

        rec = Recording.load(p)
        seqs = {k: TransformSequence(k, v[0], v[1], v[2]) for k, v in recording_sequences(rec).items()}
        tracked = TrackedRecording(str(p), seqs, [], {}, "recording")
    else:
        tracked = read_tracked(p, skip_invalid=skip_invalid)
    mesh = read_stl(tissue)
    surface = MeshLocator(mesh.vertices, mesh.faces)
    if needle is None:
        if len(tracked.sequences) == 1:
            needle = next(iter(tracked.sequences))
        else:
            raise KeyError(f"{p}: several transforms ({', '.join(tracked.sequences)}); choose one with --needle")
    nseq = tracked.find(needle)
    times, mats = resample(tracked, master)
    core = perk_core_metrics(times, mats[nseq.name], surface, axis=parse_axis(axis))
    out = {
        "elapsed_time_s": core["elapsed_time_s"],
        "path_length_mm": {},
        "path_in_tissue_mm": core["path_in_tissue_mm"],
        "time_in_tissue_s": core["time_in_tissue_s"],
        "tissue_damage_mm2": core["tissue_damage_mm2"],
        "tissue_punctures": core["tissue_punctures"],
    }
    for name, m in mats.items():
        pts = m[:, :3, 3]
        seg = distance3(pts[1:], pts[:-1])
        out["path_length_mm"][name] = float(np.cumsum(seg)[-1]) if len(seg) else 0.0
    out["needle"] = nseq.name
    out["master"] = (tracked.find(master).name if master else tracked.master.name)
    out["samples"] = int(len(times))
    out["tissue_triangles"] = int(mesh.n_triangles)
    out["tissue_watertight"] = bool(mesh.is_watertight())
    return out


def _print_tracked(out: dict) -> None:
    print(f"{'elapsed_time_s':>22}: {out['elapsed_time_s']:.6f}")
    for k, v in out["path_length_mm"].items():
        print(f"{'path_length_mm':>22}: {v:.6f}  ({k})")
    for k in ("path_in_tissue_mm", "time_in_tissue_s", "tissue_damage_mm2", "tissue_punctures"):
        print(f"{k:>22}: {out[k]}")
    print(f"{'needle':>22}: {out['needle']}  (master {out['master']}, {out['samples']} samples)")


def run(args) -> int:
    from simulator.core.meshes import MeshFileError
    from simulator.core.recording import RecordingError
    from simulator.core.trackfiles import TrackFileError

    try:
        if args.tissue:
            out = tracked_metrics(args.recording, args.tissue, args.needle, args.needle_axis, args.master,
                                  args.skip_invalid)
            if args.json:
                print(json.dumps(out))
            else:
                _print_tracked(out)
            return 0
        name = str(args.recording).lower()
        if name.endswith((".mha", ".mhd", ".xml", ".nrrd", ".nhdr")):
            return _fail(f"{args.recording}: a tracked recording needs --tissue MODEL.stl (and --needle NAME)")
        from simulator.core.recording import Recording, anatomy_hash
        from simulator.core.scenario import find_scenario, load_scenario
        from simulator.core.scoring import score_attempt

        rec = Recording.load(args.recording)
        sid = args.scenario or rec.scenario_id
        if not sid:
            return _fail(f"{args.recording}: the recording names no scenario; give --scenario")
        scenario = load_scenario(find_scenario(sid))
        from simulator.core.recording import scenario_version

        if rec.scenario_version and rec.scenario_version != scenario_version(scenario):
            sys.stderr.write(f"score: warning: {args.recording} was recorded with another version of scenario "
                             f"{scenario.id!r}; scoring with the current rubric\n")
        from simulator.anatomy import load_anatomy

        anatomy = load_anatomy(scenario.anatomy)
        if rec.anatomy_hash and rec.anatomy_hash != anatomy_hash(anatomy):
            sys.stderr.write(f"score: warning: {args.recording} was recorded on another build of anatomy "
                             f"{scenario.anatomy!r} (hash {rec.anatomy_hash}); scoring on the current one\n")
        card = score_attempt(rec, scenario, anatomy)
        if args.json:
            print(json.dumps(card.to_json()))
        else:
            print(card.text())
        return 0
    except (TrackFileError, MeshFileError, RecordingError) as e:
        return _fail(str(e))
    except KeyError as e:
        return _fail(str(e.args[0]) if e.args else str(e))
    except FileNotFoundError as e:
        return _fail(f"{e.filename or ''} {e.strerror or e}".strip())
    except Exception as e:  # noqa: BLE001 - reported plainly, never a traceback
        return _fail(f"{type(e).__name__}: {e}")
