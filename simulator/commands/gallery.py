"""`gallery`: the fluoroscopy images of the README (`docs/images/`), made from the scenario
library on the bundled patients (the chest patient; the lumbar spine and pelvis), as a trainee would see them (single shots through the scenario's
AEC and imaging preset):

    python main.py gallery --out docs/images

- the celiac plexus block: AP, left oblique, lateral and a caudal tilt with both planned needles;
  AP and lateral after 5 ml of contrast at each tip (the spread model of `simulator.core.spread`);
- the splanchnic block at T11-T12: AP and oblique with its needles, lateral after contrast;
- a misplaced tip in the psoas: the contrast stays in the muscle as streaks;
- the same AP without the meshed bones (the CT alone), for comparison;
- the AP at 60 and 110 kVp (bone and iodine contrast fall as kVp rises);
- the second patient: the lumbar sympathetic block at L3 (AP, tunnel, lateral), the superior
  hypogastric block (AP) and the ganglion impar (AP).
Each image gets a caption line in `docs/images/gallery.md`, with the landmark measures of the AP
views (`fluoroscopy_landmarks`).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def add_parser(sub) -> None:
    s = sub.add_parser("gallery", help="render the README's fluoroscopy gallery to docs/images (bundled patients)")
    s.add_argument("--out", default="docs/images", help="folder for the PNG files and gallery.md")
    s.add_argument("--only", help="comma-separated image names to make (default: all)")
    s.set_defaults(func=run)


def _needles(scenario):
    from simulator.imaging.fluoroscopy import NeedleModel

    lines = []
    if scenario.planned_trajectory is not None:
        lines.append(scenario.planned_trajectory)
    lines += list(getattr(scenario, "additional_trajectories", None) or [])
    out = []
    for t in lines:
        entry = np.asarray(t.entry_mm, float)
        tip = np.asarray(t.target_mm, float)
        axis = (tip - entry) / np.linalg.norm(tip - entry)
        out.append(NeedleModel.from_gauge(scenario.needle.gauge, tip, axis, length_mm=scenario.needle.length_mm))
    return out


def _lines(scenario, lines):
    from simulator.imaging.fluoroscopy import NeedleModel

    out = []
    for entry, tip in lines:
        e, t = np.asarray(entry, float), np.asarray(tip, float)
        out.append(NeedleModel.from_gauge(scenario.needle.gauge, t, (t - e) / np.linalg.norm(t - e),
                                          length_mm=scenario.needle.length_mm))
    return out


def _contrast(anatomy, needles, volume_ml: float):
    from simulator.core.spread import compute_spread
    from simulator.imaging.fluoroscopy import ContrastGrid, ContrastScene

    grids = [ContrastGrid.from_spread(compute_spread(anatomy, n.tip_mm, volume_ml)) for n in needles]
    return ContrastScene(grids=grids)


def _views():
    """(name, scenario, lao, cranial, contrast ml or 0, kVp or None, bones, caption)."""
    c, s, ls = "celiac_plexus_posterior", "splanchnic_t11_t12", "lumbar_sympathetic_l3"
    return [
        ("celiac_ap", c, 0, 0, 0, None, True, "Celiac plexus block, AP at L1, both needles: end plates, disc spaces, "
         "pedicles, spinous processes, the 11th/12th ribs, the diaphragm"),
        ("celiac_oblique_left", c, 25, 0, 0, None, True, "25 deg left oblique: the left needle runs along the "
         "anterolateral margin of L1"),
        ("celiac_lateral", c, 90, 0, 0, None, True, "Lateral: the tips just anterior to the L1 body"),
        ("celiac_caudal_tilt", c, 0, -15, 0, None, True, "AP with 15 deg caudal tilt: the L1 end plates squared"),
        ("celiac_ap_contrast", c, 0, 0, 5.0, None, True, "AP after 5 ml of contrast at each tip: the peri-aortic "
         "cloud in front of L1"),
        ("celiac_lateral_contrast", c, 90, 0, 5.0, None, True, "Lateral after contrast: the spread anterior to the "
         "vertebral body"),
        ("celiac_ap_ct_only", c, 0, 0, 0, None, False, "The same AP from the CT alone (no bones from meshes): no "
         "end plates, pedicles or ribs to steer by"),
        ("celiac_ap_60kvp", c, 0, 0, 5.0, 60.0, True, "AP with contrast at 60 kVp: more bone and iodine contrast"),
        ("celiac_ap_110kvp", c, 0, 0, 5.0, 110.0, True, "AP with contrast at 110 kVp: less"),
        ("splanchnic_ap", s, 0, 0, 0, None, True, "Splanchnic block at T11-T12, AP: ribs, rib heads, T11/T12 "
         "end plates and pedicles"),
        ("splanchnic_oblique_left", s, 35, 0, 0, None, True, "35 deg left oblique along the left needle"),
        ("splanchnic_lateral_contrast", s, 90, 0, 3.0, None, True, "Lateral after 3 ml of contrast at each tip"),
        ("psoas_contrast", c, 0, 0, 5.0, None, True, "A tip in the left psoas at L2 (too lateral and deep for a "
         "celiac block): 5 ml of contrast stay in the muscle as streaks along its fibres"),
        ("lumbar_sympathetic_l3_ap", ls, 0, 0, 0, None, True, "Second patient (lumbar spine and pelvis): lumbar "
         "sympathetic block at L3, AP - end plates, pedicles, transverse processes, the iliac crests"),
        ("lumbar_sympathetic_l3_tunnel", ls, 35, 0, 0, None, True, "35 deg left oblique (tunnel view): the needle "
         "end-on at the anterolateral L3 body"),
        ("lumbar_sympathetic_l3_lateral", ls, 90, 0, 0, None, True, "Lateral: the tip at the anterior margin of "
         "L3"),
        ("hypogastric_ap", "superior_hypogastric_l5_s1", 0, 0, 0, None, True, "Superior hypogastric block, AP at "
         "L5-S1: the sacrum with its foramina, the iliac wings; the hip implant at the corner"),
        ("impar_ap", "ganglion_impar_transcoccygeal", 0, 0, 0, None, True, "Ganglion impar, AP: the needle end-on "
         "below the sacral apex in the midline"),
    ]


# needles other than the scenario's for a view: name -> [(entry, tip)] (RAS mm)
_LINES = {"psoas_contrast": [((-105.0, -110.0, -322.0), (-52.0, -38.0, -310.0))]}


def run(args) -> int:
    from simulator.anatomy import AnatomyNotFound, load_anatomy
    from simulator.core.carm import CArmPose
    from simulator.core.scenario import ScenarioError, find_scenario, load_scenario
    from simulator.core.scenario_model import FluoroscopySettings
    from simulator.imaging.fluoroscopy import FluoroscopyRenderer, encode_png
    from simulator.imaging.fluoroscopy_landmarks import landmark_report
    from simulator.imaging.fluoroscopy_session import fluoroscopy_session

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None
    renderers: dict = {}
    lines = ["# Fluoroscopy gallery", "", "Made by `python main.py gallery --out docs/images` on the bundled patients.", ""]
    try:
        for name, sid, lao, cranial, ml, kvp, bones, caption in _views():
            if only and name not in only:
                continue
            scenario = load_scenario(find_scenario(sid))
            anatomy = load_anatomy(scenario.anatomy)
            key = (id(anatomy), bones)
            if key not in renderers:
                renderers[key] = FluoroscopyRenderer(anatomy, seed=0, bones="auto" if bones else None)
            settings = scenario.imaging.fluoroscopy or FluoroscopySettings()
            if kvp is not None:
                settings = settings.model_copy(update={"kvp": kvp})
            pose = CArmPose.from_settings(settings, isocenter_mm=tuple(settings.isocenter_mm or (0, 0, 0)),
                                          patient_position=scenario.patient_position.value)
            pose = pose.replace(lao_deg=float(lao), cranial_deg=float(cranial))
            if name in _LINES:  # centred on the (first) tip
                pose = pose.replace(isocenter_mm=tuple(_LINES[name][0][1]))
            needles = _needles(scenario) if name not in _LINES else _lines(scenario, _LINES[name])
            contrast = _contrast(anatomy, needles, ml) if ml else None
            session = fluoroscopy_session(renderers[key], pose, settings)
            if kvp is not None:  # a fixed tube voltage (AEC on mA only)
                session.aec = type(session.aec)(kvp_min=kvp, kvp_max=kvp, ma_max=1e6)
            frame = session.shot(needles, contrast, time_s=10.0)
            (out / f"{name}.png").write_bytes(encode_png(frame.image))
            e = session.dose.last_exposure
            note = f"{e.kvp:.0f} kV, {e.ma:.1f} mA"
            if lao == 0 and cranial == 0 and not ml:
                rep = landmark_report(frame.image, anatomy, pose)
                note += (f"; rib-outline gradient ratio {rep.get('rib_edge_ratio')}, end-plate ratio "
                         f"{rep.get('endplate_ratio')}, lung clipped {rep.get('lung_clipped_fraction')}")
            lines += [f"![{name}]({name}.png)", "", f"**{name}**: {caption} ({note}).", ""]
            print(f"wrote {out / (name + '.png')} ({note})")
    except (ScenarioError, AnatomyNotFound, FileNotFoundError) as e:
        sys.stderr.write(f"gallery: {e}\n")
        return 1
    if not only:
        (out / "gallery.md").write_text("\n".join(lines))
    return 0
