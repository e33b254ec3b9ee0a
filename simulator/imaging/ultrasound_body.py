"""The patient's state as the ultrasound sees it at a moment of an attempt: the injected boluses,
breathing (lung sliding) and a pneumothorax.

`BodyState` is plain data (a time, spreads, pleural breaches); `BodyState.of_attempt` builds it
from an attempt's spreads and events. Without a time (a still image) nothing moves: no sliding,
every bolus shown whole.

Lung sliding: with each breath the visceral pleura and the aerated lung under it slide along the
chest wall (craniocaudally, up to `ModelParams.sliding_mm`, one breath every `breath_period_s`);
the parietal pleura, the chest wall and the A-lines (reverberations between the probe face and the
pleura) stay put. On screen: the pleural line shimmers, the haze below it moves ("ants on a
line"), an M-mode line shows the seashore pattern.

Pneumothorax: a breach of the pleura by the needle (the attempt's `pleural_breach` event) lets air
into the pleural space from that moment. The air separates the lung from the chest wall over a
region growing around the breach (`PTX_GROWTH_MM_S`, up to `PTX_MAX_RADIUS_MM`): there the pleural
line (now the parietal pleura against air) stays bright with A-lines but does not slide. At the
region's edge the lung touches the wall again: the lung point, which moves in and out with the
breath (`LUNG_POINT_MM`) - sliding appears and disappears there.

Local anaesthetic infiltrated at the skin (the attempt's `local_anaesthetic` events) becomes a
small subcutaneous deposit (a spread of its volume in the fat under the site), shown like any
other liquid.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulator.core.spread import compute_spread
from simulator.core.tissue import Tissue

PTX_GROWTH_MM_S = 3.0
PTX_MAX_RADIUS_MM = 70.0
LUNG_POINT_MM = 8.0
SKIN_WHEAL_DEPTH_MM = (1.0, 2.0, 3.0, 4.0, 6.0)
_SUBCUTANEOUS = (int(Tissue.FAT), int(Tissue.SOFT_TISSUE), int(Tissue.GEL))


@dataclass(frozen=True)
class BodyState:
    time_s: float | None = None
    spreads: tuple = ()
    pleural_breaches: tuple = ()  # ((point_mm (3,), time_s), ...)
    breathing: bool = True

    @classmethod
    def of_attempt(cls, spreads, events, time_s: float | None, anatomy=None, cache: dict | None = None) -> "BodyState":
        """From an attempt's spreads and events (`local_anaesthetic` infiltrations become deposits
        when the anatomy is given; `cache` keeps them between frames)."""
        from simulator.core.events import EventKind

        extra = []
        breaches = []
        for e in events or ():
            if e.kind == EventKind.pleural_breach and e.data.get("position_mm") is not None:
                breaches.append((np.asarray(e.data["position_mm"], float), float(e.time_s)))
            elif e.kind == EventKind.local_anaesthetic and anatomy is not None and e.data.get("site_mm") is not None:
                key = ("la", id(e))
                sp = cache.get(key) if cache is not None else None
                if sp is None:
                    sp = infiltration_spread(anatomy, e.data["site_mm"], float(e.data.get("volume_ml", 5.0)),
                                             str(e.data.get("agent", "lidocaine")), float(e.time_s))
                    if cache is not None:
                        cache[key] = sp
                if sp is not None:
                    extra.append(sp)
        return cls(time_s, tuple(spreads or ()) + tuple(extra), tuple(breaches))


def infiltration_spread(anatomy, site_mm, volume_ml: float, agent: str, time_s: float):
    """A skin wheal: the spread of `volume_ml` in the subcutaneous tissue nearest to the site (the
    infiltration point lies on or just under the skin), or None if there is none within 6 mm."""
    site = np.asarray(site_mm, float).reshape(3)
    dirs = np.array([[a, b, c] for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1) if (a, b, c) != (0, 0, 0)], float)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    best = None
    for r in (0.0,) + SKIN_WHEAL_DEPTH_MM:
        cand = site[None, :] + r * (dirs if r > 0 else dirs[:1] * 0)
        ijk = np.rint(anatomy.ras_to_ijk(cand)).astype(np.int64)
        ok = np.all((ijk >= 0) & (ijk < np.asarray(anatomy.shape)), axis=1)
        for p, q, good in zip(cand, ijk, ok):
            if good and int(anatomy.tissue[tuple(q)]) in _SUBCUTANEOUS:
                best = p
                break
        if best is not None:
            break
    if best is None:
        return None
    sp = compute_spread(anatomy, best, max(float(volume_ml), 1e-3))
    sp.time_s = float(time_s)
    sp.kind = "local_anaesthetic"
    sp.agent = agent
    return sp


@dataclass
class LungMotion:
    slide_mm: np.ndarray = field(default_factory=lambda: np.zeros(3))  # world displacement of the lung surface now
    ptx: np.ndarray = field(default_factory=lambda: np.zeros(4))  # world centre, radius mm (0: none) without sliding
    moving: bool = False


def lung_motion(params, body: BodyState | None) -> LungMotion:
    """The lung's sliding offset and the pneumothorax region at the body's time."""
    out = LungMotion()
    if body is None or body.time_s is None:
        return out
    t = float(body.time_s)
    phase = 2.0 * math.pi * t / params.breath_period_s
    if body.breathing:
        out.slide_mm = np.array([0.0, 0.0, params.sliding_mm * 0.5 * (1.0 - math.cos(phase))])
        out.moving = True
    for point, t0 in body.pleural_breaches:
        if t < t0:
            continue
        r = min(PTX_MAX_RADIUS_MM, PTX_GROWTH_MM_S * (t - t0))
        if body.breathing:
            r = max(0.0, r + LUNG_POINT_MM * math.sin(phase) * min(1.0, r / LUNG_POINT_MM))
        if r > out.ptx[3]:
            out.ptx = np.r_[np.asarray(point, float), r]
    return out
