"""First look at a SEC-SAXS(-MALS) run: the chromatogram, its peaks, the buffer region before them,
Rg across each peak, each species' averaged subtracted curve with Guinier/MW, and MALS molar mass.

* **Chromatogram**: the sum of I(q) over a low-q window per frame, where particles scatter most.
* **Peaks**: ``scipy.signal.find_peaks`` on the lightly smoothed chromatogram, prominence above
  ``PEAK_NOISE_FACTOR`` × the frame-to-frame noise and ``PEAK_MIN_FRACTION`` of the highest peak.
* **Buffer**: frames before the first peak whose signal sits at the baseline (within
  ``BUFFER_NOISE_FACTOR`` × noise) and that CorMap finds consistent with each other.
* **Rg across a peak**: each frame of the peak minus the buffer, FreeSAS autoRg.
* **Species**: the frames within the peak's FWHM whose Rg agrees with the median (``rg_tolerance``)
  are averaged and subtracted; Guinier, Vc MW (and I(0)/c when a concentration trace is given).
* **MALS**: M = K_mals · Σ(LS − LS₀)/Σ(RI − RI₀) over the peak's FWHM, each trace shifted by its
  delay to the SAXS cell (found by cross-correlation), baselines from the buffer frames; K_mals
  (``MALS_KDA_PER_V_PER_RIU``) is the instrument's calibration constant.

(Over 450 lines on purpose: the SEC first look is one pipeline whose steps share the frame indices,
the noise estimate and the buffer frames; it reads top to bottom in the order listed above.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.signal import find_peaks, peak_widths

from sibyls.saxs.analysis.averaging import average_curves
from sibyls.saxs.analysis.components import ComponentsResult, peak_components
from sibyls.saxs.analysis.efa import EfaResult, evolving_factor_analysis, species_molar_masses
from sibyls.saxs.analysis.flags import FLAG_DAMAGED_BUFFER, FLAG_NOT_ONE_SPECIES, FLAG_RG_NOT_FLAT
from sibyls.saxs.analysis.guinier import GuinierResult, auto_guinier
from sibyls.saxs.analysis.inputs import AnalysisError, check_frames
from sibyls.saxs.analysis.kratky import KratkyResult
from sibyls.saxs.analysis.mw import MwEstimate
from sibyls.saxs.analysis.results import (
    FirstLookBase,
    analyse_curve,
    check_name,
    guinier_signal_to_noise,
    now_iso,
    quality_metrics_of,
    software_versions,
)
from sibyls.saxs.analysis.screening import cormap_p
from sibyls.saxs.analysis.standards import CORMAP_ALPHA, MALS_KDA_PER_V_PER_RIU, VC_Q_MAX
from sibyls.saxs.analysis.subtraction import subtract_buffer
from sibyls.saxs.reduction.curves import Curve

PEAK_NOISE_FACTOR = 10.0
PEAK_MIN_FRACTION = 0.05
BUFFER_NOISE_FACTOR = 4.0
BUFFER_MARGIN_FRAMES = 5  # at least this many frames (or half the FWHM) between buffer region and peak foot
PEAK_FOOT_HEIGHT = 0.99  # the foot: where the peak has fallen to 1 % of its prominence
SMOOTH_FRAMES = 5
RG_FLAT_TOLERANCE = 0.03  # Rg across the FWHM varying more than this (relative std) is flagged
MAX_TRACE_LAG_FRAMES = 40


class SecSpecies(BaseModel):
    """One elution peak: where it is, its Rg across the peak and its averaged subtracted result."""

    model_config = ConfigDict(frozen=True)

    number: int  # 1-based, in elution order
    apex_frame: int
    start_frame: int  # peak foot (0-based frame indices)
    end_frame: int
    fwhm_frames: list[int]
    averaged_frames: list[int]  # FWHM frames whose Rg agrees with the median
    rg_across_peak_mean: float | None
    rg_across_peak_rel_std: float | None
    guinier: GuinierResult | None
    mw_vc: MwEstimate | None
    mw_i0: MwEstimate | None
    mw_mals: MwEstimate | None
    kratky: KratkyResult | None
    signal_to_noise: float | None
    flags: list[str]
    notes: list[str]
    components: ComponentsResult | None = None  # SVD over the FWHM frames: how many species


class SecCurves(BaseModel):
    """The curves behind a SEC result (kept out of ``to_dict``)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    frames: list[Curve]
    buffer: Curve
    species: list[Curve | None]  # averaged, subtracted curve of each species (None: no frame usable)
    efa: list[Curve] = []  # each EFA-separated species' curve, in the order of SecResult.efa


class SecSeparation(BaseModel):
    """Co-eluting species EFA separated over a region of overlapping peaks: the EFA (windows,
    profiles, MALS molar masses) and each species' Guinier and Vc MW from its own curve."""

    model_config = ConfigDict(frozen=True)

    efa: EfaResult
    guinier: list[GuinierResult | None]
    mw_vc: list[MwEstimate | None]


class SecResult(FirstLookBase):
    """Everything the first look found in a SEC run."""

    chromatogram: list[float]
    chromatogram_q_window: tuple[float, float]
    baseline: float
    noise: float
    buffer_frames: list[int]
    buffer_candidates: int
    rg_per_frame: list[float | None]
    i0_per_frame: list[float | None]
    trace_lags_frames: dict[str, int]
    traces: dict[str, list[float]]
    species: list[SecSpecies]
    separations: list[SecSeparation] = []
    curves: SecCurves = Field(exclude=True, repr=False)

    @property
    def main_species(self) -> SecSpecies | None:
        """The species of the highest peak (what a one-line summary reports)."""
        if not self.species:
            return None
        return max(self.species, key=lambda s: self.chromatogram[s.apex_frame])

    def quality_metrics(self) -> dict[str, dict[str, float | str]]:
        """lambda-ber ``QualityMetrics`` slots of the main species (rg, i_zero, signal_to_noise)."""
        main = self.main_species
        if main is None or main.guinier is None:
            return {}
        return quality_metrics_of(main.guinier, main.signal_to_noise, self.intensity_unit)


def chromatogram(
    frames: Sequence[Curve], q_min: float | None = None, q_max: float | None = None
) -> np.ndarray:
    """Integrated intensity per frame: the sum of I over ``q_min``..``q_max``."""
    frames = check_frames(frames)
    window = np.ones(len(frames[0]), dtype=bool)
    if q_min is not None:
        window &= frames[0].q >= q_min
    if q_max is not None:
        window &= frames[0].q <= q_max
    if not window.any():
        raise AnalysisError(f"no q in the chromatogram window {q_min}-{q_max}")
    return np.array([f.intensity[window].sum() for f in frames])


def _smooth(y: np.ndarray, width: int = SMOOTH_FRAMES) -> np.ndarray:
    padded = np.pad(y, width // 2, mode="edge")
    return np.convolve(padded, np.ones(width) / width, mode="valid")


def _noise(y: np.ndarray) -> float:
    """Frame-to-frame noise of a trace (robust: MAD of first differences / √2)."""
    d = np.diff(y)
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2)) or float(np.std(y)) or 1e-30


def find_elution_peaks(signal: np.ndarray) -> tuple[list[dict[str, int | list[int]]], float, float]:
    """Peaks of a chromatogram with their apex, foot and FWHM frames; the baseline and the noise."""
    smooth = _smooth(signal)
    noise = _noise(signal)
    baseline = float(np.percentile(smooth, 10))
    height = float(smooth.max() - baseline)
    prominence = max(PEAK_NOISE_FACTOR * noise, PEAK_MIN_FRACTION * height)
    apexes, props = find_peaks(smooth, prominence=prominence)
    if len(apexes) == 0:
        return [], baseline, noise
    half = peak_widths(smooth, apexes, rel_height=0.5, prominence_data=_prom(props))
    foot = peak_widths(smooth, apexes, rel_height=PEAK_FOOT_HEIGHT, prominence_data=_prom(props))
    peaks = []
    for k, apex in enumerate(apexes):
        lo, hi = int(np.ceil(half[2][k])), int(np.floor(half[3][k]))
        peaks.append(
            {
                "apex": int(apex),
                "start": int(np.floor(foot[2][k])),
                "end": int(np.ceil(foot[3][k])),
                "fwhm": list(range(lo, hi + 1)),
            }
        )
    return peaks, baseline, noise


def _prom(props: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return props["prominences"], props["left_bases"], props["right_bases"]


def buffer_region(
    frames: Sequence[Curve], signal: np.ndarray, end: int, baseline: float, noise: float, alpha: float
) -> tuple[list[int], list[int], list[int]]:
    """Frames before ``end`` usable as buffer: at the baseline, and consistent by CorMap with their
    mean. Returns the kept frames, those off the baseline and those CorMap left out."""
    before = range(max(0, end))
    if len(before) >= 3:
        # The level of the frames before the peak: what comes after it (a column wash, a cell that
        # drained when the HPLC run ended) must not decide which pre-peak frames are buffer.
        baseline = float(np.percentile(_smooth(signal[: len(before)]), 10))
    level = [i for i in before if abs(signal[i] - baseline) <= BUFFER_NOISE_FACTOR * noise]
    off_level = [i for i in before if i not in set(level)]
    if len(level) < 3:
        return level, off_level, []
    reference = np.mean([frames[i].intensity for i in level], axis=0)
    comparisons = len(level)
    differ = [i for i in level if min(1.0, cormap_p(frames[i].intensity, reference) * comparisons) < alpha]
    return [i for i in level if i not in set(differ)], off_level, differ


def trace_lag(signal: np.ndarray, trace: np.ndarray, max_lag: int = MAX_TRACE_LAG_FRAMES) -> int:
    """Frames by which ``trace`` lags the SAXS chromatogram (its detector sits after the cell)."""
    return max(range(-max_lag, max_lag + 1), key=_overlap(signal, trace))


def fine_trace_lag(signal: np.ndarray, trace: np.ndarray, max_lag: int = MAX_TRACE_LAG_FRAMES) -> float:
    """:func:`trace_lag` to a fraction of a sample (the cross-correlation's peak fitted by a parabola)."""
    overlap = _overlap(signal, trace)
    lag = max(range(-max_lag, max_lag + 1), key=overlap)
    before, at, after = overlap(lag - 1), overlap(lag), overlap(lag + 1)
    curvature = before - 2.0 * at + after
    return float(lag) if curvature >= 0 else lag + 0.5 * (before - after) / curvature


def _overlap(signal: np.ndarray, trace: np.ndarray):
    a = signal - np.median(signal)
    b = trace - np.median(trace)
    n = len(a)

    def overlap(lag: int) -> float:
        if abs(lag) >= n:
            return 0.0
        if lag >= 0:
            return float(np.dot(a[: n - lag], b[lag:]))
        return float(np.dot(a[-lag:], b[: n + lag]))

    return overlap


def mals_molar_mass(
    ls: np.ndarray,
    ri: np.ndarray,
    frames: Sequence[int],
    ls_lag: int,
    ri_lag: int,
    baseline_frames: Sequence[int],
    constant: float,
    volumes: np.ndarray | None = None,
) -> MwEstimate:
    """Weight-average molar mass over ``frames`` (SAXS frame numbers) from the LS and RI traces.

    With ``volumes`` (the eluted volume when each frame's readings were taken), LS and RI are summed
    over the same slice of eluate on an even volume grid, RI placed by its volume offset from LS:
    frames that fell behind the HPLC clock (a busy computer) are unevenly spaced in volume, and
    whole-frame lags then put the two sums on different slices of the peak (seen: 59 for 54 kDa).
    """
    n = len(ls)
    ls_idx = np.clip(np.asarray(frames) + ls_lag, 0, n - 1)
    ls0 = float(np.median(ls[np.clip(np.asarray(baseline_frames) + ls_lag, 0, n - 1)]))
    ri0 = float(np.median(ri[np.clip(np.asarray(baseline_frames) + ri_lag, 0, n - 1)]))
    if volumes is not None:
        ls_sum, ri_sum = _volume_aligned_sums(ls - ls0, ri - ri0, np.asarray(volumes, float), ls_idx)
    else:
        ls_sum = float(np.sum(ls[ls_idx] - ls0))
        ri_sum = float(np.sum(ri[np.clip(np.asarray(frames) + ri_lag, 0, n - 1)] - ri0))
    if ri_sum <= 0 or ls_sum <= 0:
        raise AnalysisError("MALS: no light-scattering or RI signal above baseline over the peak")
    mass = constant * ls_sum / ri_sum
    ls_noise = _noise(ls) * np.sqrt(len(frames))
    ri_noise = _noise(ri) * np.sqrt(len(frames))
    sigma = mass * float(np.hypot(ls_noise / ls_sum, ri_noise / ri_sum))
    return MwEstimate(
        method="mals",
        mw_kda=float(mass),
        mw_sigma_kda=sigma,
        parameters={"k_mals_kda_per_v_per_riu": constant, "ls_lag_frames": ls_lag, "ri_lag_frames": ri_lag},
    )


def _volume_aligned_sums(
    ls: np.ndarray, ri: np.ndarray, volumes: np.ndarray, ls_idx: np.ndarray
) -> tuple[float, float]:
    """Σ LS and Σ RI over the eluate slice LS saw at ``ls_idx``, on an even grid of eluted volume."""
    volumes = np.maximum.accumulate(volumes)
    step = float(np.median(np.diff(volumes)))
    if not step > 0:
        raise AnalysisError("MALS: the eluted volume does not advance between frames")
    grid = np.arange(volumes[0], volumes[-1], step / 4.0)  # a quarter frame: RI's offset to ~0.1 frame
    ri_offset = fine_trace_lag(
        np.interp(grid, volumes, ls), np.interp(grid, volumes, ri), 4 * MAX_TRACE_LAG_FRAMES
    )
    window = grid[(grid >= volumes[ls_idx.min()]) & (grid <= volumes[ls_idx.max()])]
    ls_sum = float(np.sum(np.interp(window, volumes, ls)))
    ri_sum = float(np.sum(np.interp(window + ri_offset * step / 4.0, volumes, ri)))
    return ls_sum, ri_sum


def first_look_sec(
    frames: Sequence[Curve],
    traces: Mapping[str, Sequence[float]] | None = None,
    *,
    sample_name: str = "sample",
    q_window: tuple[float | None, float | None] = (None, 0.15),
    alpha: float = CORMAP_ALPHA,
    mals_trace: str = "mals",
    ri_trace: str = "ri",
    mals_constant: float = MALS_KDA_PER_V_PER_RIU,
    concentration_trace: str | None = None,
    volumes: Sequence[float] | None = None,
    min_buffer_frames: int = 10,
    rg_tolerance: float = 0.05,
    vc_q_max: float = VC_Q_MAX,
) -> SecResult:
    """First look at a SEC run: chromatogram, peaks, buffer region, Rg per frame, species, MALS mass.

    ``traces`` are other detectors' signals sampled once per SAXS frame (UV, MALS LS in V, RI in
    RIU...), each as long as ``frames``. ``concentration_trace`` names one in mg/mL (e.g. UV
    converted with the extinction coefficient) to give MW from I(0)/c per species. ``volumes`` (mL
    eluted when each frame's readings were taken) lets the MALS mass align LS and RI by volume.
    """
    started = now_iso()
    check_name(sample_name)
    frames = check_frames(frames)
    n = len(frames)
    if n < 2 * min_buffer_frames:
        raise AnalysisError(f"a SEC run needs at least {2 * min_buffer_frames} frames, got {n}")
    arrays: dict[str, np.ndarray] = {}
    for name, trace in (traces or {}).items():
        values = np.asarray(trace, dtype=float)
        if values.shape != (n,):
            raise AnalysisError(f"trace {name!r} has {values.size} values for {n} frames")
        if not np.all(np.isfinite(values)):
            raise AnalysisError(f"trace {name!r} has non-finite values")
        arrays[name] = values
    eluted = None
    if volumes is not None:
        eluted = np.asarray(volumes, dtype=float)
        if eluted.shape != (n,) or not np.all(np.isfinite(eluted)):
            raise AnalysisError(f"volumes: {eluted.size} finite values are needed, one per frame ({n})")
    if concentration_trace is not None and concentration_trace not in arrays:
        raise AnalysisError(f"concentration trace {concentration_trace!r} is not among the traces")
    signal = chromatogram(frames, *q_window)
    peaks, baseline, noise = find_elution_peaks(signal)
    flags: list[str] = []
    notes: list[str] = []
    if peaks:
        margin = max(BUFFER_MARGIN_FRAMES, len(peaks[0]["fwhm"]) // 2)
        buffer_end = peaks[0]["start"] - margin
    else:  # a method too short for the sample to elute, or an empty vial: the run is all buffer
        notes.append(
            "no elution peak in the chromatogram (nothing above the noise): no species; the frames at the "
            "baseline are averaged as buffer"
        )
        buffer_end = n
    buffer_idx, off_level, differ = buffer_region(frames, signal, buffer_end, baseline, noise, alpha)
    candidates = len(buffer_idx) + len(off_level) + len(differ)
    if len(buffer_idx) < min_buffer_frames:
        where = f"before the first peak (frame {peaks[0]['start'] + 1})" if peaks else "at the baseline"
        raise AnalysisError(
            f"only {len(buffer_idx)} buffer frames {where}; at least {min_buffer_frames} are needed"
        )
    if off_level or differ:
        flags.append(FLAG_DAMAGED_BUFFER)
    if off_level:
        notes.append(f"buffer region: frames {_frame_list(off_level)} are off the baseline and were left out")
    if differ:
        notes.append(f"buffer region: CorMap finds frames {_frame_list(differ)} differ and left them out")
    buffer = average_curves([frames[i] for i in buffer_idx], meta={"source": f"{sample_name} buffer region"})

    rg_per_frame: list[float | None] = [None] * n
    i0_per_frame: list[float | None] = [None] * n
    for peak in peaks:
        for i in range(max(0, peak["start"]), min(n, peak["end"] + 1)):
            if rg_per_frame[i] is not None:
                continue
            try:
                g = auto_guinier(subtract_buffer(frames[i], buffer))
            except AnalysisError:
                continue
            if g.method.startswith("freesas"):
                rg_per_frame[i], i0_per_frame[i] = g.rg, g.i0

    lags: dict[str, int] = {name: trace_lag(signal, values) for name, values in arrays.items()}
    species: list[SecSpecies] = []
    species_curves: list[Curve] = []
    for number, peak in enumerate(peaks, start=1):
        sp, curve = _species(
            number,
            peak,
            frames,
            buffer,
            buffer_idx,
            rg_per_frame,
            arrays,
            lags,
            mals_trace,
            ri_trace,
            mals_constant,
            concentration_trace,
            rg_tolerance,
            vc_q_max,
            eluted,
        )
        species.append(sp)
        species_curves.append(curve)
        flags += [f for f in sp.flags if f not in flags]
    separations, efa_curves = _separate(
        species, frames, buffer, buffer_idx, signal, arrays, mals_trace, ri_trace, mals_constant, vc_q_max
    )
    for separation in separations:
        described = ", ".join(
            f"{s.number}: frames {s.start_frame + 1}-{s.end_frame + 1}, Rg "
            + (f"{g.rg:.1f} Å" if g is not None else "none")
            + (f", MALS {s.mals_molar_mass_kda:.1f} kDa" if s.mals_molar_mass_kda else "")
            for s, g in zip(separation.efa.species, separation.guinier, strict=True)
        )
        notes.append(f"EFA separates {len(separation.efa.species)} species ({described})")
    parameters: dict[str, Any] = {
        "collection_mode": "sec_saxs",
        "frames_total": n,
        "chromatogram_q_window": [float(signal_q) for signal_q in _window(frames[0], q_window)],
        "buffer_frames": f"{buffer_idx[0] + 1}-{buffer_idx[-1] + 1} ({len(buffer_idx)} kept of {candidates})",
        "buffer_subtraction": "automatic (buffer region before the first peak)",
        "cormap_alpha": alpha,
        "cormap_correction": "bonferroni",
        "peaks": ",".join(str(p["apex"] + 1) for p in peaks) or "none",
        "rg_tolerance": rg_tolerance,
        "mals_constant_kda_per_v_per_riu": mals_constant
        if mals_trace in arrays and ri_trace in arrays
        else "none",
        "vc_q_max": vc_q_max,
    }
    return SecResult(
        sample_name=sample_name,
        frames_total=n,
        chromatogram=[float(v) for v in signal],
        chromatogram_q_window=_window(frames[0], q_window),
        baseline=baseline,
        noise=noise,
        buffer_frames=buffer_idx,
        buffer_candidates=candidates,
        rg_per_frame=rg_per_frame,
        i0_per_frame=i0_per_frame,
        trace_lags_frames=lags,
        traces={k: [float(x) for x in v] for k, v in arrays.items()},
        species=species,
        separations=separations,
        intensity_unit=frames[0].unit,
        flags=flags,
        notes=notes,
        software=software_versions(),
        parameters=parameters,
        started_at=started,
        completed_at=now_iso(),
        curves=SecCurves(frames=frames, buffer=buffer, species=species_curves, efa=efa_curves),
    )


def _separate(
    species: list[SecSpecies],
    frames: list[Curve],
    buffer: Curve,
    buffer_idx: list[int],
    signal: np.ndarray,
    arrays: dict[str, np.ndarray],
    mals_trace: str,
    ri_trace: str,
    mals_constant: float,
    vc_q_max: float,
) -> tuple[list[SecSeparation], list[Curve]]:
    """EFA over each region of overlapping peaks (feet overlapping) where SVD found more than one
    component: as many species as the SVD's count or the region's peaks, whichever is more."""
    regions: list[list[SecSpecies]] = []
    for sp in species:
        if regions and sp.start_frame <= regions[-1][-1].end_frame:
            regions[-1].append(sp)
        else:
            regions.append([sp])
    separations, curves = [], []
    n = len(frames)
    for region in regions:
        count = max(len(region), *((s.components.components if s.components else 1) for s in region))
        if count < 2:
            continue
        indices = list(range(max(0, region[0].start_frame), min(n, region[-1].end_frame + 1)))
        try:
            efa, efa_curves = evolving_factor_analysis(frames, buffer, indices, min(count, 3))
        except AnalysisError:
            continue  # the SVD's flag and the peaks' averaged results stand
        if mals_trace in arrays and ri_trace in arrays:
            traces, lags = [], []
            for name in (mals_trace, ri_trace):
                values = arrays[name]
                lag = fine_trace_lag(signal, values)
                base = float(np.median(values[np.clip(np.asarray(buffer_idx) + round(lag), 0, n - 1)]))
                traces.append(values - base)
                lags.append(lag)
            try:
                efa = species_molar_masses(efa, traces[0], traces[1], mals_constant, (lags[0], lags[1]))
            except AnalysisError:
                pass
        guiniers, vcs = [], []
        for curve in efa_curves:
            guinier, mw_vc, *_ = analyse_curve(curve, None, None, vc_q_max)
            guiniers.append(guinier)
            vcs.append(mw_vc)
        separations.append(SecSeparation(efa=efa, guinier=guiniers, mw_vc=vcs))
        curves += efa_curves
    return separations, curves


def _frame_list(indices: Sequence[int]) -> str:
    shown = ",".join(str(i + 1) for i in indices[:10])
    return shown + (f",… ({len(indices)} frames)" if len(indices) > 10 else "")


def _window(curve: Curve, q_window: tuple[float | None, float | None]) -> tuple[float, float]:
    lo = curve.q[0] if q_window[0] is None else max(curve.q[0], q_window[0])
    hi = curve.q[-1] if q_window[1] is None else min(curve.q[-1], q_window[1])
    return float(lo), float(hi)


def _species(
    number: int,
    peak: dict,
    frames: list[Curve],
    buffer: Curve,
    buffer_idx: list[int],
    rg_per_frame: list[float | None],
    arrays: dict[str, np.ndarray],
    lags: dict[str, int],
    mals_trace: str,
    ri_trace: str,
    mals_constant: float,
    concentration_trace: str | None,
    rg_tolerance: float,
    vc_q_max: float,
    volumes: np.ndarray | None,
) -> tuple[SecSpecies, Curve | None]:
    flags: list[str] = []
    notes: list[str] = []
    fwhm = [i for i in peak["fwhm"] if 0 <= i < len(frames)]
    rgs = {i: rg_per_frame[i] for i in fwhm if rg_per_frame[i] is not None}
    rg_mean = rg_std = None
    averaged = list(fwhm)
    if rgs:
        values = np.array(list(rgs.values()))
        median = float(np.median(values))
        averaged = [i for i, rg in rgs.items() if abs(rg - median) <= rg_tolerance * median]
        rg_mean = float(values.mean())
        rg_std = float(values.std() / rg_mean)
        if rg_std > RG_FLAT_TOLERANCE:
            flags.append(FLAG_RG_NOT_FLAT)
            notes.append(f"peak {number}: Rg varies by {rg_std:.1%} across the FWHM")
    else:
        notes.append(f"peak {number}: no frame of the FWHM gave an Rg")
    components = None
    try:
        components = peak_components(frames, buffer, fwhm)
        if components.components > 1:
            flags.append(FLAG_NOT_ONE_SPECIES)
            notes.append(f"peak {number}: {components.components} significant SVD components across the FWHM")
    except AnalysisError as exc:
        notes.append(f"peak {number}: SVD: {exc}")
    curve = None
    guinier = mw_vc = mw_i0 = kratky = mw_mals = None
    snr = None
    if averaged:
        curve = subtract_buffer(average_curves([frames[i] for i in averaged]), buffer)
        concentration = None
        if concentration_trace is not None:
            lag = lags[concentration_trace]
            idx = np.clip(np.asarray(averaged) + lag, 0, len(frames) - 1)
            concentration = float(np.mean(arrays[concentration_trace][idx]))
        guinier, mw_vc, mw_i0, kratky, more_flags, more_notes = analyse_curve(
            curve, concentration, None, vc_q_max
        )
        flags += more_flags
        notes += [f"peak {number}: {m}" for m in more_notes]
        if guinier is not None:
            snr = guinier_signal_to_noise(curve, guinier)
    if mals_trace in arrays and ri_trace in arrays and fwhm:
        try:
            mw_mals = mals_molar_mass(
                arrays[mals_trace],
                arrays[ri_trace],
                fwhm,
                lags[mals_trace],
                lags[ri_trace],
                buffer_idx,
                mals_constant,
                volumes,
            )
        except AnalysisError as exc:
            notes.append(f"peak {number}: {exc}")
    return (
        SecSpecies(
            number=number,
            apex_frame=peak["apex"],
            start_frame=peak["start"],
            end_frame=peak["end"],
            fwhm_frames=fwhm,
            averaged_frames=averaged,
            rg_across_peak_mean=rg_mean,
            rg_across_peak_rel_std=rg_std,
            guinier=guinier,
            mw_vc=mw_vc,
            mw_i0=mw_i0,
            mw_mals=mw_mals,
            kratky=kratky,
            signal_to_noise=snr,
            flags=flags,
            notes=notes,
            components=components,
        ),
        curve,
    )
