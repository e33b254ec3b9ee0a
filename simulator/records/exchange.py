"""Attempts and trainees' records in and out: the formats of the field and our own.

Attempt exports
---------------
- PLUS tracked-sequence metafile (`.igs.mha`, `export_igs_mha`), opened by 3D Slicer (Sequences)
  and Perk Tutor: one frame per sample with `Seq_FrameNNNN_Timestamp` (the sample's time, s) and
  the transforms, named as Perk Tutor users name them:
    NeedleTipToReference   the needle tip frame in the patient's RAS millimetres (our
                           needle_tip_to_world: the tip is its origin, the needle points along +Z,
                           as Perk Tutor's needle axis default)
    ProbeToReference       the ultrasound probe (only when a probe was used; frames without a
                           probe pose are written with status INVALID)
  "Reference" is the patient RAS frame of the scenario's anatomy. The file is tracking only
  (Slicer style: `DimSize = 0 0 N`, no pixel bytes; `style="plus"` writes PLUS's 1 x 1 x N
  placeholder pixels). Perk Tutor's core metrics of the file, with the anatomy's skin as Tissue
  and NeedleTipToReference as the needle, are those of the attempt.
- CSV (`export_csv`): one row per sample: time_s, the tip (tip_r_mm, tip_a_mm, tip_s_mm), the
  16 values of needle_tip_to_world and of probe_to_world (row-major, columns
  needle_tip_to_world_RC), the C-arm pose and tip_visible (1 / 0, empty when not reported).
  Numbers are written exactly (shortest round-trip form); missing values are empty cells.
- JSON (`export_json`): {"format": "neurolysis-trainer-attempt", "attempt": the store's summary,
  "recording": the recording (meta, inputs, events, samples), "score_card", "scenario", "images"
  (base64 PNG)}. Strict JSON: values that are not finite numbers (a missing probe pose) are null.

Imports
-------
- `import_tracked(store, path, scenario, anatomy)`: a tracked file (.igs.mha / .seq.mha / .mha,
  .seq.nrrd, Perk Tutor TransformRecorder .xml) becomes an attempt: its frames (Perk Tutor's
  replay rule: the first sequence's times, the others sampled at them) are fed through the
  procedure as tracked poses (`set_needle_tip_to_world`, `set_probe_to_world`), so it gets events,
  an input log that replays, and a score card.
- `import_json(store, path)`: our JSON export (not added again when its UUID is already stored).

Trainee records
---------------
`export_trainee(store, name, path)` writes one self-contained SQLite file with the trainee's
attempts (everything: samples, inputs, events, images, score cards, the scenario versions);
`import_trainee(store, path)` merges such a file: attempts already present (same UUID) are
skipped, so importing twice, or importing records that went back and forth between
workstations, never duplicates an attempt. Every attempt is decoded and checked before anything
is merged, and the merge is one transaction: a damaged file is refused (naming the file and the
attempt) and changes nothing.
"""
from __future__ import annotations

import base64
import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simulator.core.recording import CARM_DIM, CARM_FIELDS, Recording, RecordingError
from simulator.records.store import RecordsError, RecordStore, SQLiteRecordStore, now_iso

NEEDLE_TRANSFORM = "NeedleTipToReference"
PROBE_TRANSFORM = "ProbeToReference"
JSON_FORMAT = "neurolysis-trainer-attempt"
JSON_FORMAT_VERSION = 1
EXPORT_FORMATS = ("igs.mha", "csv", "json")
TRACKED_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr", ".xml")


def format_from_path(path) -> str | None:
    name = str(path).lower()
    if name.endswith((".igs.mha", ".seq.mha", ".mha")):
        return "igs.mha"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".json"):
        return "json"
    return None


# --------------------------------------------------------------------------------------------
# .igs.mha
# --------------------------------------------------------------------------------------------


def attempt_sequences(recording: Recording) -> dict[str, tuple]:
    """The recording's poses as tracked sequences (name -> (time_s, matrices, valid)), the needle first."""
    s = recording.samples
    n = len(s)
    out = {NEEDLE_TRANSFORM: (s.time_s.copy(), s.needle_tip_to_world.copy(), np.ones(n, bool))}
    probe = s.probe_to_world
    ok = np.all(np.isfinite(probe.reshape(n, -1)), axis=1) if n else np.zeros(0, bool)
    if ok.any():
        p = probe.copy()
        p[~ok] = np.eye(4)
        out[PROBE_TRANSFORM] = (s.time_s.copy(), p, ok)
    return out


def export_igs_mha(recording: Recording, path, style: str = "slicer") -> Path:
    """Write the attempt as a PLUS / Slicer tracked-sequence metafile (see the module notes)."""
    from simulator.core.trackfiles import write_sequence_metafile

    if recording.n_samples == 0:
        raise RecordsError("the attempt has no samples (the needle was never placed): nothing to export")
    return write_sequence_metafile(path, attempt_sequences(recording), style=style)


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------

_RC = [f"{r}{c}" for r in range(4) for c in range(4)]
CSV_COLUMNS = (["time_s", "tip_r_mm", "tip_a_mm", "tip_s_mm"] + [f"needle_tip_to_world_{rc}" for rc in _RC]
               + [f"probe_to_world_{rc}" for rc in _RC] + [f"carm_{f}" for f in CARM_FIELDS] + ["tip_visible"])


def _num(x: float) -> str:
    return repr(float(x)) if math.isfinite(x) else ""


def export_csv(recording: Recording, path) -> Path:
    """One row per sample (see the module notes)."""
    s = recording.samples
    n = len(s)
    t = s.time_s
    m = s.needle_tip_to_world.reshape(n, 16)
    p = s.probe_to_world.reshape(n, 16)
    c = s.carm_pose.reshape(n, CARM_DIM)
    v = s.tip_visible
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for i in range(n):
            mi = m[i].tolist()
            row = [_num(t[i]), _num(mi[3]), _num(mi[7]), _num(mi[11])]
            row += [_num(x) for x in mi]
            row += [_num(x) for x in p[i].tolist()]
            row += [_num(x) for x in c[i].tolist()]
            row.append("" if v[i] < 0 else str(int(v[i])))
            w.writerow(row)
    return path


def _csv_rows(path: Path, r) -> list[list[float]]:
    head = next(r, None)
    if head != CSV_COLUMNS:
        raise RecordsError(f"{path}:1: not a sample CSV of this program (expected columns {CSV_COLUMNS[:3]}...)")
    rows = []
    for line, row in enumerate(r, start=2):
        if len(row) != len(CSV_COLUMNS):
            raise RecordsError(f"{path}:{line}: {len(row)} values, expected {len(CSV_COLUMNS)}")
        try:
            rows.append([float(x) if x != "" else math.nan for x in row])
        except ValueError:
            raise RecordsError(f"{path}:{line}: a value is not a number") from None
    return rows


def read_samples_csv(path) -> dict[str, np.ndarray]:
    """Sample arrays from a CSV written by `export_csv` (errors name the file and line)."""
    path = Path(path)
    try:
        f = open(path, newline="", encoding="utf-8")
    except OSError as e:
        raise RecordsError(f"{path}: cannot open ({e.strerror or e})") from None
    with f:
        r = csv.reader(f)
        try:
            rows = _csv_rows(path, r)
        except (UnicodeDecodeError, csv.Error) as e:
            raise RecordsError(f"{path}:{r.line_num + 1}: not a sample CSV of this program "
                               f"({' '.join(str(e).split())})") from None
    a = np.array(rows, dtype=np.float64).reshape(-1, len(CSV_COLUMNS))
    n = len(a)
    vis = a[:, -1]
    return {"time_s": a[:, 0].copy(), "needle_tip_to_world": a[:, 4:20].reshape(n, 4, 4).copy(),
            "probe_to_world": a[:, 20:36].reshape(n, 4, 4).copy(), "carm_pose": a[:, 36:36 + CARM_DIM].copy(),
            "tip_visible": np.where(np.isnan(vis), -1, vis).astype(np.int8)}


# --------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------


def _strict(v):
    """JSON-safe copy: non-finite floats become None (strict JSON has no NaN)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): _strict(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_strict(x) for x in v]
    if isinstance(v, np.ndarray):
        return _strict(v.tolist())
    if isinstance(v, np.generic):
        return _strict(v.item())
    return v


def attempt_json(store: RecordStore, attempt_id: int) -> dict:
    """The JSON export of a stored attempt, as a dict."""
    info = store.attempt(attempt_id)
    rec = store.load_attempt(attempt_id)
    sj = store.scenario_json(info.scenario_id, info.scenario_version)
    return _strict({
        "format": JSON_FORMAT,
        "format_version": JSON_FORMAT_VERSION,
        "exported_at": now_iso(),
        "attempt": info.to_json(),
        "recording": rec.to_json_dict(),
        "score_card": store.score_card(attempt_id),
        "scenario": json.loads(sj) if sj else None,
        "images": {k: base64.b64encode(v).decode("ascii") for k, v in store.images(attempt_id).items()},
    })


def export_json(store: RecordStore, attempt_id: int, path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(attempt_json(store, attempt_id), allow_nan=False), encoding="utf-8")
    return path


def export_attempt(store: RecordStore, attempt_id: int, path, fmt: str | None = None) -> Path:
    """Export in the format named (igs.mha, csv, json) or implied by the file name."""
    fmt = fmt or format_from_path(path)
    if fmt not in EXPORT_FORMATS:
        raise RecordsError(f"{path}: choose a format: {', '.join(EXPORT_FORMATS)} (got {fmt!r})")
    if fmt == "json":
        return export_json(store, attempt_id, path)
    rec = store.load_attempt(attempt_id)
    return export_igs_mha(rec, path) if fmt == "igs.mha" else export_csv(rec, path)


def import_json(store: RecordStore, path) -> tuple[int, bool]:
    """Add an attempt from our JSON export; (its id, whether it was added: False when already stored).
    The whole file is decoded and checked before anything is stored: a refused file adds nothing."""
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordsError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise RecordsError(f"{path}: not a JSON attempt export ({' '.join(str(e).split())})") from None
    if not isinstance(d, dict) or d.get("format") != JSON_FORMAT:
        raise RecordsError(f"{path}: not an attempt exported by this program (format is not {JSON_FORMAT!r})")
    if d.get("format_version") != JSON_FORMAT_VERSION:
        raise RecordsError(f"{path}: attempt format_version {d.get('format_version')!r}, this program reads "
                           f"{JSON_FORMAT_VERSION}")
    att = d.get("attempt") or {}
    if not isinstance(att, dict):
        raise RecordsError(f"{path}: 'attempt' is not an object")
    uid = att.get("uuid")
    if uid is not None and (not isinstance(uid, str) or not uid.strip()):
        raise RecordsError(f"{path}: attempt.uuid is {uid!r}, expected the attempt's UUID")
    if uid:
        known = store.attempt_by_uuid(uid)
        if known is not None:
            return known.id, False
    rec, card, scenario, images = _decoded_json_attempt(d, att, path)
    if scenario is not None:
        store.add_scenario(scenario_id=rec.scenario_id, version=rec.scenario_version,
                           title=str(att.get("scenario_title", "")), scenario_json=json.dumps(scenario))
    status = att.get("status") if att.get("status") in ("finished", "recovered", "abandoned") else "finished"
    aid = store.save_recording(rec, card, status=status, uuid=uid, images=images or None)
    return aid, True


def _decoded_json_attempt(d: dict, att: dict, path: Path):
    """(recording, score card, scenario, images) of a JSON export, each checked."""
    if "recording" not in d:
        raise RecordsError(f"{path}: no 'recording' in the file")
    try:
        rec = Recording.from_json_dict(d["recording"], source=str(path))
    except RecordingError as e:
        raise RecordsError(" ".join(str(e).split())) from None
    except Exception as e:  # noqa: BLE001 - a 'recording' that is not even an object
        raise RecordsError(f"{path}: 'recording' is malformed ({type(e).__name__}: {e})") from None
    trainee = att.get("trainee")
    if rec.trainee == "" and trainee:
        if not isinstance(trainee, str):
            raise RecordsError(f"{path}: attempt.trainee is {trainee!r}, expected a name")
        rec.trainee = trainee
    card = d.get("score_card")
    if card is not None:
        ok = isinstance(card, dict) and all(
            isinstance(card.get(k, 0.0), (int, float)) and not isinstance(card.get(k, 0.0), bool)
            and math.isfinite(card.get(k, 0.0)) for k in ("score",)) \
            and (card.get("pass_mark") is None or isinstance(card["pass_mark"], (int, float)))
        if not ok:
            raise RecordsError(f"{path}: 'score_card' is not a score card (score and pass_mark must be numbers)")
    scenario = d.get("scenario") or None
    if scenario is not None and not isinstance(scenario, dict):
        raise RecordsError(f"{path}: 'scenario' is not an object")
    raw_images = d.get("images") or {}
    if not isinstance(raw_images, dict):
        raise RecordsError(f"{path}: 'images' is not an object of name: base64 PNG")
    images = {}
    for k, v in raw_images.items():
        try:
            images[str(k)] = base64.b64decode(v, validate=True)
        except (ValueError, TypeError):
            raise RecordsError(f"{path}: image {k!r} is not base64") from None
    return rec, card, scenario, images


# --------------------------------------------------------------------------------------------
# Tracked files from the field
# --------------------------------------------------------------------------------------------


def _pick(tracked, name: str | None, prefixes: tuple[str, ...], what: str):
    if name:
        try:
            return tracked.find(name)
        except KeyError as e:
            raise RecordsError(str(e.args[0])) from None
    for pre in prefixes:
        for key, seq in tracked.sequences.items():
            if key.lower().startswith(pre.lower()):
                return seq
    return None


def procedure_from_tracked(path, scenario, anatomy, *, needle: str | None = None, probe: str | None = None,
                           trainee: str = "", skip_invalid: bool = False):
    """Feed a tracked recording's frames through a new Procedure (see the module notes)."""
    from simulator.core.procedure import Procedure, ProcedureError
    from simulator.core.trackfiles import TrackFileError, read_tracked, resample

    path = Path(path)
    try:
        tracked = read_tracked(path, skip_invalid=skip_invalid)
    except TrackFileError as e:
        raise RecordsError(str(e)) from None
    nseq = _pick(tracked, needle, ("NeedleTip", "Needle", "StylusTip", "Stylus"), "needle")
    if nseq is None:
        if len(tracked.sequences) == 1:
            nseq = tracked.master
        else:
            raise RecordsError(f"{path}: which transform is the needle? It has {', '.join(tracked.sequences)}; "
                               f"choose one with --needle")
    pseq = _pick(tracked, probe, ("Probe",), "probe")
    times, mats = resample(tracked)
    needle_m = mats[nseq.name]
    probe_m = mats[pseq.name] if pseq is not None and pseq is not nseq else None
    probe_ok = None
    if probe_m is not None:
        from simulator.core.metrics import sample_sequence_at

        probe_ok = sample_sequence_at(times, pseq.time_s, pseq.valid) if pseq is not tracked.master else pseq.valid
    proc = Procedure(scenario, anatomy, clock=lambda: 0.0, trainee=trainee, mode="imported")
    proc.recording.meta.update({"imported_from": path.name, "needle_transform": nseq.name,
                                "probe_transform": None if probe_m is None else pseq.name,
                                "master_transform": tracked.master.name})
    last_probe = None
    for i in range(len(times)):
        t = float(times[i])
        try:
            moved = last_probe is None or not np.array_equal(probe_m[i], last_probe) if probe_m is not None else False
            if probe_m is not None and probe_ok[i] and moved:
                proc.set_probe_to_world(probe_m[i], time_s=t)
                last_probe = probe_m[i]
            proc.set_needle_tip_to_world(needle_m[i], time_s=t)
        except ProcedureError as e:
            raise RecordsError(f"{path}: frame {i} (time {t:.3f} s), {nseq.name}: {e}") from None
    if len(times):
        proc.end(time_s=float(times[-1]))
    return proc


def import_tracked(store: RecordStore, path, scenario, anatomy, *, trainee: str = "imported",
                   needle: str | None = None, probe: str | None = None, skip_invalid: bool = False):
    """Import a tracked file as a scored attempt; (attempt id, score card)."""
    from simulator.core.scoring import score_attempt

    proc = procedure_from_tracked(path, scenario, anatomy, needle=needle, probe=probe, trainee=trainee,
                                  skip_invalid=skip_invalid)
    if proc.recording.n_samples == 0:
        raise RecordsError(f"{path}: no frames")
    card = score_attempt(proc.recording, scenario, anatomy)
    aid = store.save_recording(proc.recording, card, scenario=scenario)
    return aid, card


# --------------------------------------------------------------------------------------------
# A trainee's records
# --------------------------------------------------------------------------------------------


@dataclass
class MergeSummary:
    added: list[int]  # new attempt ids in the receiving store
    skipped: int  # already present (same UUID)
    trainees: list[str]

    def text(self) -> str:
        return (f"{len(self.added)} attempt(s) added, {self.skipped} already present; "
                f"trainee(s): {', '.join(self.trainees) or 'none'}")


def export_trainee(store: RecordStore, trainee: str, path) -> int:
    """Write a trainee's finished, recovered and abandoned attempts to one file; how many."""
    path = Path(path)
    known = {t.name: t for t in store.list_trainees()}
    if trainee not in known:
        close = [n for n in known if n.lower() == trainee.lower()]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RecordsError(f"no trainee {trainee!r} in {store.location}{hint}")
    attempts = store.list_attempts(trainee=trainee, status=("finished", "recovered", "abandoned"))
    tmp = path.with_name(path.name + ".part")
    if tmp.exists():
        tmp.unlink()
    out = SQLiteRecordStore(tmp, wal=False)
    try:
        out.add_trainee(trainee, known[trainee].full_name)
        for a in attempts:
            out.copy_attempt(store, a.id)
        out.put_info("export_of", trainee)
        out.put_info("exported_at", now_iso())
    finally:
        out.close()
    os.replace(tmp, path)
    return len(attempts)


def import_trainee(store: RecordStore, path) -> MergeSummary:
    """Merge a file written by `export_trainee` (or any records database) into `store`.

    Every attempt is read and checked first (its samples, inputs, events and meta decode; its counts
    and sealed checksum match what it holds; its score card and scenario are JSON); a damaged file
    is refused with a RecordsError naming the file and the attempt, and changes nothing. The merge
    itself is one transaction."""
    path = Path(path)
    raws, trainees = _read_checked(path)
    try:
        ids = store.merge_raw(raws, trainees)
    except Exception as e:  # noqa: BLE001 - the transaction is rolled back: say so, naming both ends
        detail = " ".join(str(e).split())
        raise RecordsError(f"{path}: merging into {store.location} failed ({type(e).__name__}: {detail}); "
                           "nothing was imported") from None
    added = [i for i in ids if i is not None]
    return MergeSummary(added, len(ids) - len(added), [name for name, _ in trainees])


def _damaged(path: Path, what: str, e: Exception) -> RecordsError:
    detail = str(e) if isinstance(e, RecordsError) else f"{type(e).__name__}: {e}"
    detail = " ".join(detail.replace(str(path), "").split()).lstrip(": ")
    return RecordsError(f"{path}: {what}: {detail}; nothing was imported")


def _read_checked(path: Path) -> tuple[list[dict], list[tuple[str, str]]]:
    """Every closed attempt of a records file, as `raw_attempt` gives it, checked; its trainees."""
    try:
        src = SQLiteRecordStore(path, read_only=True)
    except RecordsError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged database fails in many ways
        raise _damaged(path, "not a readable records database", e) from None
    try:
        try:
            infos = [a for a in src.list_attempts() if a.status != "live"]
            trainees = [(t.name, t.full_name) for t in src.list_trainees()]
        except Exception as e:  # noqa: BLE001
            raise _damaged(path, "the list of attempts cannot be read", e) from None
        raws = []
        for a in infos:
            try:
                raws.append(_checked_attempt(src, a.id))
            except Exception as e:  # noqa: BLE001 - whatever the damage, the file is named and nothing merged
                raise _damaged(path, f"attempt {a.id} ({str(a.uuid)[:8]})", e) from None
    finally:
        src.close()
    return raws, trainees


def _checked_attempt(src: SQLiteRecordStore, attempt_id: int) -> dict:
    from simulator.records.store.checksum import attempt_checksum

    raw = src.raw_attempt(attempt_id)
    att = raw["attempt"]
    for key in ("uuid", "trainee", "scenario_id"):
        if not isinstance(att[key], str) or not att[key].strip():
            raise RecordsError(f"its {key} is {att[key]!r}")
    if att["status"] not in ("finished", "recovered", "abandoned"):
        raise RecordsError(f"its status is {att['status']!r}")
    counts = {k: att[k] for k in ("n_samples", "n_events", "n_inputs")}
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts.values()):
        raise RecordsError(f"its counts are {counts}")
    rec = src.load_attempt(attempt_id)  # decodes every sample, input and event, and the meta
    held = {"n_samples": rec.n_samples, "n_events": len(rec.events), "n_inputs": len(rec.inputs)}
    if held != counts:
        raise RecordsError(f"it holds {held} where its summary says {counts}")
    sealed = src.stored_checksum(attempt_id)
    if sealed and sealed != attempt_checksum(raw):
        raise RecordsError("its content does not match the checksum sealed when it was recorded")
    for what, text in (("score card", att["score_card_json"]), ("scenario", raw["scenario"][3])):
        if text is not None and not isinstance(json.loads(text), dict):
            raise RecordsError(f"its {what} is not a JSON object")
    if not all(isinstance(name, str) and isinstance(data, bytes) for name, _, data in raw["images"]):
        raise RecordsError("an image is not a named picture")
    return raw
