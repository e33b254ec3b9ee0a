"""Automatic exposure control and dose from the beam's own spectrum.

The AEC of a fluoroscope holds the air kerma per pulse at the detector entrance at a set level
(`simulator.core.carm.AEC_DETECTOR_KERMA_NGY`, more in a magnification mode, less in low-dose
mode). For a pose it reads the patient behind the central 30 % of the field (median water and
bone paths, `FluoroscopyRenderer.aec_paths`) and raises, along its curve (`AecCurve`):

1. the tube current (mA) at the lowest tube voltage of the curve (the scenario's kVp), up to the
   tube's limit for pulsed fluoroscopy;
2. then the tube voltage, 1 kV at a time, until the current needed fits under the limit (a
   thicker patient or an oblique/lateral view is imaged at a higher kVp, with less bone and iodine
   contrast, as on a real unit);
3. at the curve's top the detector gets less than its level and the image is noisier.

Dose figures come from the same spectrum (`xray_spectrum`): the air kerma per mAs at 1 m of the
filtered beam (its fluence times the air's energy absorption coefficient), the inverse square law
to the interventional reference point (IRP, 150 mm from the isocentre towards the source), the
US air-kerma rate cap (88 mGy/min), the dose-area product at the IRP, and the detected quanta per
pixel (effective quanta per uGy of the spectrum on the CsI detector) for the quantum noise.
"""
from __future__ import annotations

from dataclasses import dataclass

from simulator.core.carm import (
    AEC_DETECTOR_KERMA_NGY,
    AIR_KERMA_RATE_LIMIT_MGY_MIN,
    IRP_FROM_ISOCENTER_MM,
    LOW_DOSE_FACTOR,
    CArmPose,
    Exposure,
)
from simulator.imaging import xray_spectrum as XS

# Scatter reaching the detector behind the anti-scatter grid, relative to the primary, for a
# 20-25 cm patient: 0.3-0.6 (Boone and Seibert 1988; Fritz and Livingston 1985). The AEC's sensor
# sees primary plus scatter.
AEC_SCATTER_TO_PRIMARY = 0.4


@dataclass(frozen=True)
class AecCurve:
    """mA first, then kVp: the tube current at the curve's lowest kVp rises to `ma_max`, then the
    kVp rises to `kvp_max`. Pulses of `pulse_ms` (pulsed fluoroscopy: 3-20 ms). A mobile C-arm's
    rotating-anode tube gives 10-25 mA in pulsed fluoroscopy (AAPM Report 125, 2012)."""

    kvp_min: float = 70.0
    kvp_max: float = 120.0
    ma_max: float = 20.0
    pulse_ms: float = 10.0


def aec_exposure(pose: CArmPose, water_mm: float, bone_mm: float, curve: AecCurve = AecCurve(),
                 pulse_rate_pps: float = 15.0, dose_mode: str = "normal", al_mm: float = 3.0, cu_mm: float = 0.1,
                 detector: XS.Detector = XS.FLAT_PANEL, anode_angle_deg: float = 12.0) -> Exposure:
    """The exposure the AEC sets for one pulse (see the module doc)."""
    if dose_mode not in ("normal", "low"):
        raise ValueError(f"exposure dose_mode: {dose_mode!r} is not 'normal' or 'low'")
    if pulse_rate_pps <= 0:
        raise ValueError(f"exposure pulse_rate_pps: {pulse_rate_pps} must be > 0")
    k_target_ugy = AEC_DETECTOR_KERMA_NGY * 1e-3 * (pose.detector_size_mm / pose.field_mm)
    if dose_mode == "low":
        k_target_ugy *= LOW_DOSE_FACTOR
    sid = pose.source_to_detector_mm
    pulse_s = curve.pulse_ms / 1000.0
    kvp = max(XS.KVP_RANGE[0], min(curve.kvp_min, curve.kvp_max))
    while True:
        _w, _mw, _mb, kerma_per_mas, quanta_per_ugy = XS.beam_terms(kvp, al_mm, cu_mm, detector, anode_angle_deg)
        transmission = XS.detected_transmission(kvp, water_mm, bone_mm, al_mm, cu_mm, detector, anode_angle_deg) * (
            1.0 + AEC_SCATTER_TO_PRIMARY)
        k_det_per_mas = kerma_per_mas * (1000.0 / sid) ** 2 * transmission
        mas = k_target_ugy / max(k_det_per_mas, 1e-30)
        if mas / pulse_s <= curve.ma_max or kvp >= curve.kvp_max:
            break
        kvp = min(kvp + 1.0, curve.kvp_max)
    mas = min(mas, curve.ma_max * pulse_s)
    d_irp = pose.source_to_isocenter_mm - IRP_FROM_ISOCENTER_MM
    k_irp_mgy = kerma_per_mas * mas * (1000.0 / d_irp) ** 2 * 1e-3
    cap = AIR_KERMA_RATE_LIMIT_MGY_MIN / 60.0 / pulse_rate_pps
    capped = k_irp_mgy > cap
    if capped:
        mas *= cap / k_irp_mgy
        k_irp_mgy = cap
    k_det_ugy = k_det_per_mas * mas
    area_cm2 = pose.exposed_area_at_mm2(d_irp) / 100.0
    quanta = k_det_ugy / (1.0 + AEC_SCATTER_TO_PRIMARY) * quanta_per_ugy * pose.pixel_pitch_mm ** 2
    return Exposure(
        kvp=float(kvp),
        pulse_rate_pps=float(pulse_rate_pps),
        water_thickness_mm=_water_equivalent(kvp, transmission / (1.0 + AEC_SCATTER_TO_PRIMARY), al_mm, cu_mm, detector,
                                             anode_angle_deg),
        transmission=float(transmission),
        detector_kerma_ngy=float(k_det_ugy * 1000.0),
        air_kerma_irp_mgy=float(k_irp_mgy),
        mas=float(mas),
        dap_gycm2=float(k_irp_mgy * 1e-3 * area_cm2),
        field_area_irp_cm2=float(area_cm2),
        rate_capped=bool(capped),
        quanta_per_pixel=float(quanta),
        ma=float(mas / pulse_s),
    )



def _water_equivalent(kvp, transmission, al_mm, cu_mm, detector, anode_angle_deg) -> float:
    """The water thickness (mm) with the same detected transmission (bisection on 0-900 mm)."""
    lo, hi = 0.0, 900.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if XS.detected_transmission(kvp, mid, 0.0, al_mm, cu_mm, detector, anode_angle_deg) > transmission:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
