"""`snapshot`: render a scenario's fluoroscopy, ultrasound or 3D view to PNG, headless.

Instructors check a scenario with it, and the README shows real images made by it:

    python main.py snapshot celiac_plexus_posterior --view fluoroscopy --out ap.png \
        --entry -93.8,-113.3,-309.2 --target -43,-4,-275 --lao 25

The needle lies on the line entry -> target with its tip at the target, unless --depth says how far
past the entry point (along that line) the tip is. Without --entry/--target the scenario's planned
trajectory is used (and no needle if it has none). The C-arm comes from the scenario unless
--lao/--cranial are given; the probe from the scenario unless --probe-center/--probe-direction/
--probe-marker are given.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np


class SnapshotError(Exception):
    pass


def _vec(text: str, option: str) -> np.ndarray:
    try:
        parts = [float(p) for p in text.replace(" ", "").split(",")]
    except ValueError:
        raise SnapshotError(f"{option}: expected three numbers x,y,z in mm, got {text!r}") from None
    if len(parts) != 3 or not np.all(np.isfinite(parts)):
        raise SnapshotError(f"{option}: expected three numbers x,y,z in mm, got {text!r}")
    return np.array(parts, dtype=np.float64)


def add_parser(sub) -> None:
    s = sub.add_parser(
        "snapshot",
        help="render a scenario's fluoroscopy, ultrasound or 3D view to PNG (headless)",
        description=__doc__.split("\n\n")[0] + " The needle, C-arm and probe default to the scenario's.",
    )
    # Coordinates such as "-93.8,-113.3,-309.2" are values, not options.
    s._negative_number_matcher = re.compile(r"^-\.?\d[\d.,eE+\- ]*$")
    s.add_argument("scenario", help="scenario id or YAML file")
    s.add_argument("--view", choices=("fluoroscopy", "ultrasound", "3d"), default="fluoroscopy")
    s.add_argument("--out", required=True, help="PNG file to write")
    s.add_argument("--entry", help="needle skin entry x,y,z (RAS mm)")
    s.add_argument("--target", help="needle target x,y,z (RAS mm); the tip lies here unless --depth")
    s.add_argument("--depth", type=float, help="tip depth past the entry point along entry->target (mm)")
    s.add_argument("--lao", type=float, help="C-arm orbital angle (deg, + LAO, - RAO)")
    s.add_argument("--cranial", type=float, help="C-arm tilt (deg, + cranial, - caudal)")
    s.add_argument("--tunnel", action="store_true", help="aim the C-arm down the needle (tunnel view)")
    s.add_argument("--probe-center", help="probe face centre x,y,z (RAS mm)")
    s.add_argument("--probe-direction", help="image depth axis x,y,z (into the patient)")
    s.add_argument("--probe-marker", help="image lateral axis x,y,z (towards the orientation marker)")
    s.add_argument("--depth-mm", type=float, dest="us_depth", help="ultrasound depth (mm)")
    s.add_argument("--patient", help="render the scenario fitted to this patient (bundled, bundled:lumbopelvic, "
                   "user:NAME) instead of its own")
    s.set_defaults(func=run)


def _needle_line(args, scenario):
    """(entry, tip) of the needle in RAS mm, or None."""
    if (args.entry is None) != (args.target is None):
        raise SnapshotError("--entry and --target go together (or give neither to use the planned trajectory)")
    if args.entry is not None:
        entry, target = _vec(args.entry, "--entry"), _vec(args.target, "--target")
    elif scenario.planned_trajectory is not None:
        entry = np.array(scenario.planned_trajectory.entry_mm, dtype=float)
        target = np.array(scenario.planned_trajectory.target_mm, dtype=float)
    else:
        return None
    d = target - entry
    n = float(np.linalg.norm(d))
    if n < 1.0:
        raise SnapshotError("--entry and --target must be at least 1 mm apart")
    axis = d / n
    tip = target if args.depth is None else entry + axis * float(args.depth)
    if args.depth is not None and args.depth <= 0:
        raise SnapshotError(f"--depth must be positive, got {args.depth}")
    return entry, tip, axis


def _fluoroscopy(args, scenario, anatomy, line) -> np.ndarray:
    from simulator.core.carm import CArmPose
    from simulator.core.metrics import resolve_targets
    from simulator.core.scenario_model import FluoroscopySettings
    from simulator.imaging.fluoroscopy import FluoroscopyRenderer, NeedleModel
    from simulator.imaging.fluoroscopy_session import fluoroscopy_session

    settings = scenario.imaging.fluoroscopy or FluoroscopySettings()
    if settings.isocenter_mm is not None:
        iso = np.asarray(settings.isocenter_mm, dtype=float)
    elif line is not None:
        iso = line[1]
    else:
        iso = resolve_targets(scenario, anatomy)[0].centre_mm
    pose = CArmPose.from_settings(settings, isocenter_mm=iso, patient_position=scenario.patient_position.value)
    if args.lao is not None or args.cranial is not None:
        pose = pose.replace(
            lao_deg=pose.lao_deg if args.lao is None else float(args.lao),
            cranial_deg=pose.cranial_deg if args.cranial is None else float(args.cranial),
        )
    if args.tunnel:
        if line is None:
            raise SnapshotError("--tunnel needs a needle (--entry/--target or a planned trajectory)")
        try:
            pose = pose.aimed_along(line[2])
        except ValueError as e:
            raise SnapshotError(f"--tunnel: {e}") from None
    needles = []
    if line is not None:
        _entry, tip, axis = line
        needles.append(NeedleModel.from_gauge(scenario.needle.gauge, tip, axis, length_mm=scenario.needle.length_mm))
    renderer = FluoroscopyRenderer(anatomy, seed=0)
    session = fluoroscopy_session(renderer, pose, settings)
    return session.shot(needles).image


def _ultrasound(args, scenario, anatomy, line) -> np.ndarray:
    from dataclasses import replace

    from simulator.core.probe import ImageGeometry, ProbePose, ProbeSpec
    from simulator.core.scenario_model import UltrasoundSettings
    from simulator.imaging.ultrasound import NeedleGeometry, ScannerSettings, UltrasoundSimulator
    from simulator.core.needle import GAUGE_OD_MM

    us = scenario.imaging.ultrasound or UltrasoundSettings()
    center = _vec(args.probe_center, "--probe-center") if args.probe_center else us.center_mm
    direction = _vec(args.probe_direction, "--probe-direction") if args.probe_direction else us.direction
    marker = _vec(args.probe_marker, "--probe-marker") if args.probe_marker else us.marker
    if center is None or direction is None or marker is None:
        raise SnapshotError(
            "the scenario sets no ultrasound probe pose: give --probe-center, --probe-direction and --probe-marker"
        )
    try:
        pose = ProbePose.from_vectors(center, direction, marker)
    except ValueError as e:
        raise SnapshotError(f"probe pose: {e}") from None
    spec = ProbeSpec.named(us.probe)
    overrides = {"depth_mm": float(args.us_depth)} if args.us_depth else {}
    settings = ScannerSettings.from_scenario(us, **overrides)
    needle = None
    if line is not None:
        _entry, tip, axis = line
        needle = NeedleGeometry(tip, axis, float(scenario.needle.length_mm), GAUGE_OD_MM[scenario.needle.gauge])
    sim = UltrasoundSimulator(anatomy, spec)
    pose = sim.place_on_skin(pose, spec.default_press_mm)  # held on the skin as in the trainer
    settings = replace(settings, image_shape=ImageGeometry.true_aspect_shape(spec, float(settings.depth_mm)))
    try:
        frame = sim.render(pose, settings, needle)
    except ValueError as e:
        raise SnapshotError(str(e)) from None
    img = np.repeat(frame.display[:, :, None], 3, axis=2).astype(np.float32)
    if frame.doppler_rgba is not None:
        a = frame.doppler_rgba[:, :, 3:4].astype(np.float32) / 255.0
        img = img * (1 - a) + frame.doppler_rgba[:, :, :3].astype(np.float32) * a
    return np.clip(img, 0, 255).astype(np.uint8)


def _view3d(args, scenario, anatomy, line) -> np.ndarray:
    from simulator.core.metrics import resolve_targets
    from simulator.render.camera import default_preset
    from simulator.core.geometry import pose_from_tip_axis
    from simulator.render.glyphs import diameter_for_gauge
    from simulator.render.scene import AnatomyScene

    scene = AnatomyScene(size=(1000, 800))
    try:
        scene.set_anatomy(anatomy)
        position = scenario.patient_position.value
        scene.set_camera_preset(default_preset(position), position)
        scene.show_targets(resolve_targets(scenario, anatomy), True)
        if line is not None:
            _entry, tip, axis = line
            scene.set_needle(pose_from_tip_axis(tip, axis), scenario.needle.length_mm,
                             diameter_for_gauge(scenario.needle.gauge))
        return scene.screenshot()
    finally:
        scene.close()


def run(args) -> int:
    from simulator.anatomy import AnatomyNotFound, load_anatomy
    from simulator.core.scenario import ScenarioError, find_scenario, load_scenario
    from simulator.imaging.fluoroscopy import encode_png

    try:
        scenario = load_scenario(find_scenario(args.scenario))
        anatomy = load_anatomy(getattr(args, "patient", None) or scenario.anatomy)
        if getattr(args, "patient", None) and args.patient != scenario.anatomy:
            from simulator.core.fitting import fit_scenario

            scenario = fit_scenario(scenario, anatomy, args.patient)
        line = _needle_line(args, scenario)
        image = {"fluoroscopy": _fluoroscopy, "ultrasound": _ultrasound, "3d": _view3d}[args.view](
            args, scenario, anatomy, line
        )
    except (SnapshotError, ScenarioError, AnatomyNotFound, FileNotFoundError, ValueError) as e:
        sys.stderr.write(f"snapshot: {e}\n")
        return 1
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(encode_png(image))
    print(f"wrote {out} ({image.shape[1]}x{image.shape[0]}, {args.view})")
    return 0


def main(argv=None) -> int:  # pragma: no cover - convenience for `python -m simulator.commands.snapshot`
    p = argparse.ArgumentParser(prog="snapshot")
    sub = p.add_subparsers()
    add_parser(sub)
    args = p.parse_args(["snapshot", *(argv or sys.argv[1:])])
    return args.func(args)
