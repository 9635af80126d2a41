"""The first look at one run, as the processing service calls it: frames in, results and files out.

``first_look_batch`` takes a batch (HT or cuvette) run's per-frame curves and its buffer — the
buffer run's frames, an averaged buffer curve, or nothing — and returns a ``FirstLookResult``:
CorMap screening, the averaged and subtracted curve, Guinier (Rg, I(0)), P(r) (Dmax, Rg, I(0)), MW by
Vc, I(0)/c and the Porod volume with their consensus,
the Kratky verdict, flags a user should see, and what a lambda-ber ``workflow_runs`` entry needs
(software and versions, parameters). ``write_products`` writes the files a SIBYLS user gets:
per-frame ``<sample>_00001.dat``…, ``A_<sample>.dat`` (average), ``A_S_<sample>.dat`` (averaged,
buffer-subtracted), ``<sample>_pr.dat`` (P(r) by BIFT), PNGs and the result as JSON. SEC runs go
through ``first_look_sec`` (``sibyls.saxs.analysis.sec``, re-exported here).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sibyls.metadata.atomic import atomic_write_text
from sibyls.saxs.analysis import plots
from sibyls.saxs.analysis.averaging import average_curves
from sibyls.saxs.analysis.flags import FLAG_DAMAGE, FLAG_LOW_SIGNAL, FLAG_NO_BUFFER
from sibyls.saxs.analysis.guinier import GuinierResult
from sibyls.saxs.analysis.inputs import AnalysisError, check_curve, check_frames
from sibyls.saxs.analysis.kratky import KratkyResult
from sibyls.saxs.analysis.mw import MwEstimate
from sibyls.saxs.analysis.pr import pr_curve_text
from sibyls.saxs.analysis.results import (
    LOW_SIGNAL_I_OVER_SIGMA,
    FirstLookBase,
    ShapeResult,
    analyse_curve,
    analyse_shape,
    check_name,
    guinier_signal_to_noise,
    now_iso,
    quality_metrics_of,
    software_versions,
)
from sibyls.saxs.analysis.screening import ScreeningResult, screen_frames
from sibyls.saxs.analysis.sec import SecResult, first_look_sec
from sibyls.saxs.analysis.standards import CORMAP_ALPHA, VC_Q_MAX
from sibyls.saxs.analysis.subtraction import subtract_buffer
from sibyls.saxs.reduction.curves import Curve, write_dat

__all__ = ["FirstLookResult", "SecResult", "first_look_batch", "first_look_sec", "write_products"]


class AnalysisCurves(BaseModel):
    """The curves behind a result (kept out of ``to_dict``; ``write_products`` writes them)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    frames: list[Curve]
    averaged: Curve
    buffer: Curve | None
    subtracted: Curve | None


class FirstLookResult(FirstLookBase):
    """Everything the first look found for one batch sample."""

    buffer_name: str | None
    frames_kept: int
    screening: ScreeningResult
    buffer_screening: ScreeningResult | None
    guinier: GuinierResult | None
    mw_vc: MwEstimate | None
    mw_i0: MwEstimate | None
    kratky: KratkyResult | None
    shape: ShapeResult | None = None  # P(r), Porod volume, consensus MW
    signal_to_noise: float | None
    q_min: float
    q_max: float
    curves: AnalysisCurves = Field(exclude=True, repr=False)

    def quality_metrics(self) -> dict[str, dict[str, float | str]]:
        """lambda-ber ``QualityMetrics`` slots this result fills (rg, i_zero, signal_to_noise)."""
        return quality_metrics_of(self.guinier, self.signal_to_noise, self.intensity_unit)


def _buffer_curve(
    buffer: Sequence[Curve] | Curve | None, alpha: float
) -> tuple[Curve | None, ScreeningResult | None]:
    if buffer is None:
        return None, None
    if isinstance(buffer, Curve):
        return check_curve(buffer, "buffer"), None
    frames = check_frames(buffer, "buffer frames")
    screening = screen_frames(frames, alpha=alpha)
    return average_curves([frames[i] for i in screening.kept]), screening


def first_look_batch(
    frames: Sequence[Curve],
    buffer: Sequence[Curve] | Curve | None,
    concentration_mg_ml: float | None,
    *,
    sample_name: str = "sample",
    buffer_name: str | None = None,
    alpha: float = CORMAP_ALPHA,
    i0_per_mg_ml_kda: float | None = None,
    q_min: float | None = None,
    q_max: float | None = None,
    vc_q_max: float = VC_Q_MAX,
    with_pr: bool = True,
    expected_mw_kda: float | None = None,
) -> FirstLookResult:
    """First look at a batch run: screen, average, subtract the buffer, Guinier, MW, Kratky, flags.

    ``buffer`` is the buffer run's frames (screened and averaged the same way), an averaged buffer
    curve, or None (no subtraction; flagged). ``q_min``/``q_max`` limit the analysed q-range.
    ``i0_per_mg_ml_kda`` is a standard's calibration for MW from I(0)/c when the data are not in cm⁻¹.
    ``with_pr=False`` leaves out P(r) (BIFT, the slowest step). ``expected_mw_kda`` (the sheet's MW)
    flags a consensus MW that is not it (``mw-not-expected``).
    """
    started = now_iso()
    check_name(sample_name)
    frames = check_frames(frames)
    if q_min is not None or q_max is not None:
        frames = [f.restricted(q_min, q_max) for f in frames]
        frames = check_frames(frames, "frames in the q-range")
    flags: list[str] = []
    notes: list[str] = []
    screening = screen_frames(frames, alpha=alpha)
    if screening.rejected:
        flags.append(FLAG_DAMAGE)
        notes.append(
            f"CorMap: frames {screening.rejected[0] + 1}-{screening.rejected[-1] + 1} differ from the first "
            f"(adjusted P < {alpha}) and were left out"
        )
    averaged = average_curves([frames[i] for i in screening.kept], meta={"sample": sample_name})
    buffer_curve, buffer_screening = _buffer_curve(buffer, alpha)
    if buffer_curve is None:
        flags.append(FLAG_NO_BUFFER)
        notes.append("no buffer given: the curve is not subtracted and Rg/MW describe sample + solvent")
        subtracted = None
        analysed = averaged
    else:
        try:
            subtracted = subtract_buffer(averaged, buffer_curve)
            analysed = subtracted
        except AnalysisError as exc:  # a buffer of another q-range or unit: the sample's curve still counts
            flags.append(FLAG_NO_BUFFER)
            notes.append(f"buffer not subtracted ({exc}): Rg/MW describe sample + solvent")
            buffer_curve = subtracted = None
            analysed = averaged
    guinier, mw_vc, mw_i0, kratky, more_flags, more_notes = analyse_curve(
        analysed, concentration_mg_ml, i0_per_mg_ml_kda, vc_q_max
    )
    flags += more_flags
    notes += more_notes
    shape = None
    if subtracted is not None and guinier is not None:
        shape, more_flags, more_notes = analyse_shape(
            subtracted, guinier, [mw_vc, mw_i0], with_pr, expected_mw_kda
        )
        flags += more_flags
        notes += more_notes
    snr = guinier_signal_to_noise(analysed, guinier) if guinier is not None else None
    if guinier is None or (snr is not None and snr < LOW_SIGNAL_I_OVER_SIGMA):
        flags.append(FLAG_LOW_SIGNAL)
    parameters: dict[str, Any] = {
        "q_range": [float(analysed.q[0]), float(analysed.q[-1])],
        "frames_total": len(frames),
        "frames_kept": len(screening.kept),
        "frames_rejected": [i + 1 for i in screening.rejected],
        "cormap_alpha": alpha,
        "cormap_correction": "bonferroni",
        "frame_averaging": "mean of kept frames",
        "concentration_mg_ml": concentration_mg_ml if concentration_mg_ml is not None else "none",
        "buffer_subtraction": "automatic" if buffer_curve is not None else "none",
        "buffer": buffer_name or ("given" if buffer_curve is not None else "none"),
        "guinier_method": guinier.method if guinier else "failed",
        "vc_q_max": vc_q_max,
    }
    if buffer_screening is not None:
        parameters["buffer_frames_kept"] = len(buffer_screening.kept)
        parameters["buffer_frames_total"] = buffer_screening.total
    if guinier is not None:
        parameters["guinier_q_range"] = [guinier.q_min, guinier.q_max]
    return FirstLookResult(
        sample_name=sample_name,
        buffer_name=buffer_name,
        frames_total=len(frames),
        frames_kept=len(screening.kept),
        screening=screening,
        buffer_screening=buffer_screening,
        guinier=guinier,
        mw_vc=mw_vc,
        mw_i0=mw_i0,
        kratky=kratky,
        shape=shape,
        signal_to_noise=snr,
        intensity_unit=analysed.unit,
        q_min=float(analysed.q[0]),
        q_max=float(analysed.q[-1]),
        flags=flags,
        notes=notes,
        software=software_versions(),
        parameters=parameters,
        started_at=started,
        completed_at=now_iso(),
        curves=AnalysisCurves(frames=frames, averaged=averaged, buffer=buffer_curve, subtracted=subtracted),
    )


def frame_file_name(sample_name: str, index: int) -> str:
    """SIBYLS per-frame name: ``<sample>_<NNNNN>.dat``, counting from 00001."""
    return f"{sample_name}_{index + 1:05d}.dat"


def _dat_header_from(
    name: str, what: str, guinier: GuinierResult | None, software: dict[str, str], extra: dict[str, Any]
) -> dict[str, Any]:
    header: dict[str, Any] = {"sample": name, "content": what, **extra}
    if guinier is not None:
        header["Rg_A"] = f"{guinier.rg:.4f} +- {guinier.rg_sigma:.4f}"
        header["I0"] = f"{guinier.i0:.6g} +- {guinier.i0_sigma:.3g}"
        header["guinier_q_range"] = f"{guinier.q_min:.5f}-{guinier.q_max:.5f}"
        header["guinier_qRg_range"] = f"{guinier.qrg_min:.3f}-{guinier.qrg_max:.3f}"
        if guinier.rg_second_order is not None:
            corrected = f"{guinier.rg_second_order:.4f} +- {guinier.rg_second_order_sigma:.4f}"
            header["Rg_curvature_corrected_A"] = corrected
    header["software"] = ", ".join(f"{k} {v}" for k, v in software.items())
    return header


def _write_json(path: Path, result: FirstLookResult | SecResult) -> Path:
    atomic_write_text(path, json.dumps(result.to_dict(), indent=1, sort_keys=True) + "\n")
    return path


def write_products(
    result: FirstLookResult | SecResult, out_dir: Path | str, sample_name: str | None = None
) -> list[Path]:
    """Write the run's files in SIBYLS naming into ``out_dir``; return their paths.

    Every run: per-frame ``<sample>_00001.dat``… and ``<sample>_firstlook.json``. Batch:
    ``A_<sample>.dat`` (average of kept frames), ``A_S_<sample>.dat`` (averaged, buffer-subtracted),
    ``<sample>_pr.dat``, ``<sample>_Iq_plot.png``, ``<sample>_Guinier_plot.png``,
    ``<sample>_Kratky_plot.png``, ``<sample>_Pr_plot.png``. SEC:
    ``A_buff_<sample>.dat`` (buffer region), ``A_S_<sample>_<k>.dat`` per species k,
    ``A_S_<sample>_efa<k>.dat`` per EFA-separated co-eluting species,
    ``<sample>_SEC_chromatogram.png``, ``<sample>_<k>_Guinier_plot.png``, ``<sample>_<k>_Kratky_plot.png``.
    Every file appears complete or not at all. (:func:`write_data_products` then
    :func:`write_plots` do the same in two steps: the processing service records the numbers first.)
    """
    return write_data_products(result, out_dir, sample_name) + write_plots(result, out_dir, sample_name)


def write_data_products(
    result: FirstLookResult | SecResult,
    out_dir: Path | str,
    sample_name: str | None = None,
    *,
    frames: bool = True,
) -> list[Path]:
    """The curves (``.dat``) and the result (JSON) of :func:`write_products`, without the plots.
    ``frames=False`` leaves out the per-frame files (the processing service writes them as the frames
    arrive; the JSON says which frames were kept)."""
    name = check_name(sample_name or result.sample_name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(result, SecResult):
        written = _write_sec(result, out, name, frames)
    else:
        written = _write_batch(result, out, name, frames)
    written.append(_write_json(out / f"{name}_firstlook.json", result))
    return written


def write_plots(
    result: FirstLookResult | SecResult, out_dir: Path | str, sample_name: str | None = None
) -> list[Path]:
    """The PNGs of :func:`write_products`."""
    name = check_name(sample_name or result.sample_name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(result, SecResult):
        return _plot_sec(result, out, name)
    return _plot_batch(result, out, name)


def _write_batch(result: FirstLookResult, out: Path, name: str, frames: bool = True) -> list[Path]:
    curves = result.curves
    written: list[Path] = []
    for index, frame in enumerate(curves.frames if frames else ()):
        kept = "kept" if index in result.screening.kept else "rejected by CorMap"
        header = {"sample": name, "frame": index + 1, "screening": kept}
        written.append(write_dat(out / frame_file_name(name, index), frame, header))
    info = {"frames_kept": f"{result.frames_kept}/{result.frames_total}"}
    if result.buffer_name:
        info["buffer"] = result.buffer_name
    header = _dat_header_from(name, "average of kept frames", None, result.software, info)
    written.append(write_dat(out / f"A_{name}.dat", curves.averaged, header))
    if curves.subtracted is not None:
        if result.shape is not None and result.shape.pr is not None:
            pr = result.shape.pr
            info["Rg_Pr_A"] = f"{pr.rg:.4f} +- {pr.rg_sigma:.4f}"
            info["Dmax_A"] = f"{pr.dmax:.2f} +- {pr.dmax_sigma:.2f}"
        header = _dat_header_from(name, "averaged, buffer-subtracted", result.guinier, result.software, info)
        written.append(write_dat(out / f"A_S_{name}.dat", curves.subtracted, header))
        if result.shape is not None and result.shape.pr is not None:
            text = pr_curve_text(result.shape.pr, {"sample": name, "content": "P(r) of A_S_" + name + ".dat"})
            path = out / f"{name}_pr.dat"
            atomic_write_text(path, text)
            written.append(path)
    return written


def _plot_batch(result: FirstLookResult, out: Path, name: str) -> list[Path]:
    curves = result.curves
    final = curves.subtracted if curves.subtracted is not None else curves.averaged
    written: list[Path] = []
    shown = [(curves.averaged, "sample (average)")]
    if curves.buffer is not None:
        shown.append((curves.buffer, "buffer"))
    if curves.subtracted is not None:
        shown.append((curves.subtracted, "subtracted"))
    written.append(plots.plot_iq(out / f"{name}_Iq_plot.png", shown, title=name))
    if result.guinier is not None:
        written.append(plots.plot_guinier(out / f"{name}_Guinier_plot.png", final, result.guinier))
        written.append(plots.plot_kratky(out / f"{name}_Kratky_plot.png", final, result.guinier))
    if result.shape is not None and result.shape.pr is not None:
        written.append(plots.plot_pr(out / f"{name}_Pr_plot.png", result.shape.pr, title=f"{name}: P(r)"))
    return written


def _write_sec(result: SecResult, out: Path, name: str, frames: bool = True) -> list[Path]:
    curves = result.curves
    written: list[Path] = []
    buffer_set = set(result.buffer_frames)
    for index, frame in enumerate(curves.frames if frames else ()):
        header = {"sample": name, "frame": index + 1, "buffer_region": index in buffer_set}
        written.append(write_dat(out / frame_file_name(name, index), frame, header))
    info = {"frames": result.parameters["buffer_frames"]}
    header = _dat_header_from(name, "average of the buffer region", None, result.software, info)
    written.append(write_dat(out / f"A_buff_{name}.dat", curves.buffer, header))
    for species, curve in zip(result.species, curves.species, strict=True):
        if curve is None:
            continue
        k = species.number
        frames = ",".join(str(i + 1) for i in species.averaged_frames)
        info = {"species": k, "apex_frame": species.apex_frame + 1, "frames_averaged": frames}
        header = _dat_header_from(
            name, "averaged peak frames, buffer-subtracted", species.guinier, result.software, info
        )
        written.append(write_dat(out / f"A_S_{name}_{k}.dat", curve, header))
    efa_curves = iter(curves.efa)
    number = 0
    for separation in result.separations:
        for species, guinier in zip(separation.efa.species, separation.guinier, strict=True):
            number += 1
            frames_text = f"{species.start_frame + 1}-{species.end_frame + 1}"
            info = {
                "efa_species": species.number,
                "frames": frames_text,
                "apex_frame": species.apex_frame + 1,
            }
            if species.mals_molar_mass_kda is not None:
                info["MW_MALS_kDa"] = f"{species.mals_molar_mass_kda:.2f}"
            header = _dat_header_from(name, "EFA-separated species, buffer-subtracted", guinier,
                                      result.software, info)  # fmt: skip
            written.append(write_dat(out / f"A_S_{name}_efa{number}.dat", next(efa_curves), header))
    return written


def _plot_sec(result: SecResult, out: Path, name: str) -> list[Path]:
    written: list[Path] = []
    for species, curve in zip(result.species, result.curves.species, strict=True):
        if curve is not None and species.guinier is not None:
            k = species.number
            written.append(plots.plot_guinier(out / f"{name}_{k}_Guinier_plot.png", curve, species.guinier))
            written.append(plots.plot_kratky(out / f"{name}_{k}_Kratky_plot.png", curve, species.guinier))
    rg = np.array([np.nan if v is None else v for v in result.rg_per_frame])
    written.append(
        plots.plot_chromatogram(
            out / f"{name}_SEC_chromatogram.png",
            np.asarray(result.chromatogram),
            rg,
            {k: np.asarray(v) for k, v in result.traces.items()},
            result.buffer_frames,
            [s.apex_frame for s in result.species],
            title=f"{name}: SEC-SAXS",
        )
    )
    return written
