"""Named imaging presets of the C-arm's image chain (what a unit's "spine" / "abdomen" program
sets), each parameter with where its value comes from.

The chain (`FluoroscopyRenderer._derive` and `FluoroscopySession`):
1. log of the detected signal (attenuation, relative to the AEC level);
2. dynamic-range compression ("harmonisation", `fluoroscopy_multiscale`): on a Laplacian pyramid,
   steps larger than a threshold (lung against mediastinum, skin against air) are compressed by a
   local Laplacian filter while smaller ones (bone against soft tissue) are kept, and the broad
   background beyond a large scale is partly taken out, so lung and spine are both readable
   without clipping and without halos;
3. multi-scale edge enhancement: the fine bands (cortices, end plates, the needle) and the middle
   bands (pedicles, processes, rib outlines) of the same pyramid are amplified;
4. quantum noise from the detected quanta of each pulse (`xray_exposure`: the dose of the pulse,
   the spectrum's effective quanta per uGy on the CsI detector, the pixel's area);
5. in live fluoroscopy a recursive temporal filter (new = w * pulse + (1 - w) * previous: less
   noise, some lag on motion); a single shot averages its pulses; the last image is held;
6. window/level from the field's histogram, a display curve with a soft shoulder, gamma.

Sources for the values:
- [V] Vuylsteke and Schoeters 1994, multiscale image contrast amplification (MUSICA): large band
  coefficients compressed, small ones kept or amplified; Prokop and Schaefer-Prokop 1997 (Eur
  Radiol 7:S73), digital image processing: harmonisation kernels 20-80 mm, compression 0.5-0.9;
  unsharp masking 0.5-3 mm kernels at gains 0.5-3.
- [L] Paris, Hasinoff and Kautz 2011 (local Laplacian filters), Aubry et al. 2014 (the fast
  version): halo-free compression of steps above a threshold sigma_r by a factor beta.
- [A] AAPM Report 125 (2012), fluoroscopic AEC and image processing: recursive filter weights
  0.25-0.75 (2-8 effective frames), pulse widths 3-20 ms, mA limits of pulsed fluoroscopy.
- [D] flat panels: 550-600 um columnar CsI:Tl, 150-200 um pixels, MTF 0.5 at 1-1.5 lp/mm (e.g.
  Varian PaxScan 3030/4030, Trixell Pixium); image intensifiers: 300-450 um CsI:Na input
  phosphor, 23-30 cm fields, veiling glare adding 10-20 % low-frequency signal, lag (Seibert 1997,
  RadioGraphics 17:1533).
- [S] scatter-to-primary ratio behind a 10:1 grid for 20-25 cm of tissue 0.3-0.6 (Boone and
  Seibert 1988).
"""
from __future__ import annotations

from dataclasses import dataclass

from simulator.imaging import xray_spectrum as XS
from simulator.imaging.fluoroscopy import DisplaySettings


@dataclass(frozen=True)
class ImagingPreset:
    name: str
    title: str
    display: DisplaySettings
    detector: XS.Detector
    recursive_weight: float  # live mode: weight of the newest pulse [A]
    field_shape: str  # "square" (flat panel) or "circle" (image intensifier)


FLAT_PANEL = ImagingPreset(
    name="flat_panel",
    title="Flat-panel C-arm, spine/abdomen program",
    # DisplaySettings' defaults: steps above 0.25 (attenuation) compressed by 0.7 [L, V] - the
    # lung/mediastinum and skin/air steps are 1-3, bone against soft tissue 0.1-0.3; the background
    # beyond 25 mm keeps 0.3 [V: 0.5-0.9 compression over 20-80 mm kernels; the short end, so that a lateral pelvis, thick in front and thin behind the sacrum, is readable]; the fine bands gain
    # up to 6x at 0.5 mm (cortices, end plates, the needle: above the usual 0.5-3 of [V], a "high"
    # edge setting, chosen so that rib outlines lead over the lung texture in a single shot, see the
    # bench's landmarks) and the middle bands 2x at 2 mm (pedicles, processes) [V: 0.5-3 at 0.5-3
    # mm]; window on nearly the whole field, with room on its dense side so the spine sits on the
    # display curve's straight part, gamma 1.3; scatter-to-primary 0.4 [S]; CsI light spread 0.7
    # display pixels (MTF 0.5 at about 1.3 lp/mm) [D]; a single shot averages 4 pulses (0.2 s at
    # 15-30 p/s) [A]
    display=DisplaySettings(),
    detector=XS.FLAT_PANEL,  # 600 um CsI:Tl, packing 0.8 [D]
    recursive_weight=0.35,  # about 3 effective frames [A]
    field_shape="square",
)

IMAGE_INTENSIFIER = ImagingPreset(
    name="image_intensifier",
    title="Image-intensifier C-arm (round field, softer, more lag)",
    display=DisplaySettings(
        auto_percentiles=(0.5, 99.6),
        auto_margin=(0.03, 0.12),
        range_compression=0.55,  # older units compress less [V]
        range_sigma_mm=50.0,
        band_compression=0.4,
        compression_threshold=0.3,
        edge_enhance=1.0,
        edge_sigma_mm=1.2,
        detail_enhance=0.6,
        detail_sigma_mm=4.0,
        scatter_fraction=0.55,  # scatter plus veiling glare [D, S]
        psf_sigma_px=1.1,  # lower MTF of the intensifier chain [D]
        gamma=1.2,
        frames_averaged=4.0,
    ),
    detector=XS.IMAGE_INTENSIFIER,  # 400 um CsI:Na input phosphor [D]
    recursive_weight=0.25,  # 4 effective frames: an intensifier's phosphor lag plus the filter [A, D]
    field_shape="circle",
)

BONE_DETAIL = ImagingPreset(
    name="bone_detail",
    title="Flat panel, bone-detail program (strong edges, for end plates and pedicles)",
    display=DisplaySettings(
        auto_percentiles=(0.3, 99.7),
        auto_margin=(0.03, 0.15),
        range_compression=0.7,
        range_sigma_mm=40.0,
        band_compression=0.8,
        compression_threshold=0.2,
        edge_enhance=5.0,
        edge_sigma_mm=0.5,
        detail_enhance=1.3,
        detail_sigma_mm=1.5,
        scatter_fraction=0.4,
        psf_sigma_px=0.7,
        gamma=1.3,
        frames_averaged=4.0,
    ),
    detector=XS.FLAT_PANEL,
    recursive_weight=0.35,
    field_shape="square",
)

PRESETS: dict[str, ImagingPreset] = {p.name: p for p in (FLAT_PANEL, IMAGE_INTENSIFIER, BONE_DETAIL)}
DEFAULT_PRESET = "flat_panel"


def preset(name: str | None) -> ImagingPreset:
    """A preset by name (None: the default); ValueError naming the known ones otherwise."""
    key = DEFAULT_PRESET if name is None else str(name)
    if key not in PRESETS:
        raise ValueError(f"imaging preset: {name!r} is not one of {', '.join(PRESETS)}")
    return PRESETS[key]
