"""What every first look (batch or SEC) shares: the flags a result carries, the software versions and
the lambda-ber ``WorkflowRun`` entry, and the analysis of one subtracted curve (Guinier, MW by Vc and
I(0)/c, Kratky; then P(r), the Porod volume and the consensus MW) with the flags and notes it raises."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from sibyls.metadata.rules import CODE_PATTERN
from sibyls.saxs.analysis.flags import (
    FLAG_AGGREGATION,
    FLAG_FAILED_FIT,
    FLAG_FALLBACK_FIT,
    FLAG_FLEXIBLE,
    FLAG_MW_DISAGREE,
    FLAG_MW_NOT_EXPECTED,
    FLAG_RG_GUINIER_PR,
)
from sibyls.saxs.analysis.guinier import GuinierResult, auto_guinier
from sibyls.saxs.analysis.inputs import AnalysisError
from sibyls.saxs.analysis.kratky import KratkyResult, kratky_analysis
from sibyls.saxs.analysis.mw import (
    MW_DISAGREEMENT_SIGMAS,
    MwConsensus,
    MwEstimate,
    consensus_mw,
    mw_from_i0,
    mw_from_porod,
    mw_from_vc,
    mw_unexpected,
)
from sibyls.saxs.analysis.pr import PrResult, pair_distribution
from sibyls.saxs.analysis.standards import VC_Q_MAX
from sibyls.saxs.reduction.curves import Curve

WORKFLOW_TYPE = "saxs_analysis"
SOFTWARE_NAME = "sibyls-bluesky first look"
# Below this mean I/σ over the Guinier region the curve is flagged low-signal.
LOW_SIGNAL_I_OVER_SIGMA = 5.0
#: Guinier and P(r) Rg differ "beyond their errors" past this many combined σ.
RG_DIFFER_SIGMAS = 3.0
NAME_RE = re.compile(CODE_PATTERN)


class FirstLookBase(BaseModel):
    """What every first-look result has: the sample, flags and notes, the software and parameters
    (for the record's ``workflow_runs`` entry) and when it ran; ``to_dict()`` gives plain JSON."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    sample_name: str
    frames_total: int
    intensity_unit: str
    flags: list[str]
    notes: list[str]
    software: dict[str, str]
    parameters: dict[str, Any]
    started_at: str
    completed_at: str

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready dict (curves left out)."""
        return self.model_dump(mode="json")

    def workflow_run(self) -> dict[str, Any]:
        """The lambda-ber ``WorkflowRun`` slots (without ``id``): type, software, parameters, times."""
        return workflow_run_entry(self.software, self.parameters, self.started_at, self.completed_at)


def software_versions() -> dict[str, str]:
    """Names and versions of the software the first look ran with (for ``workflow_runs``)."""
    found = {}
    for dist in ("sibyls-bluesky", "freesas", "numpy", "scipy", "matplotlib"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            found[dist] = "unknown"
    return found


def now_iso() -> str:
    """Now in UTC, ISO 8601 (for started_at/completed_at)."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def workflow_run_entry(
    software: dict[str, str], parameters: dict[str, Any], started_at: str, completed_at: str
) -> dict[str, Any]:
    """A ``WorkflowRun``-shaped dict: saxs_analysis by this project, FreeSAS etc. as additional software."""
    others = ", ".join(f"{name} {ver}" for name, ver in software.items() if name != "sibyls-bluesky")
    return {
        "workflow_type": WORKFLOW_TYPE,
        "software_name": SOFTWARE_NAME,
        "software_version": software.get("sibyls-bluesky", "unknown"),
        "additional_software": others,
        "processing_parameters": "; ".join(
            f"{key}={_param_text(value)}" for key, value in parameters.items()
        ),
        "started_at": started_at,
        "completed_at": completed_at,
    }


def _param_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ",".join(_param_text(v) for v in value) or "none"
    return str(value)


def guinier_metrics(guinier: GuinierResult, intensity_unit: str) -> dict[str, dict[str, float | str]]:
    """lambda-ber ``rg`` and ``i_zero`` of a Guinier result: the standard straight-line Guinier values
    of FreeSAS autoRg's range (what SASBDB and every pipeline report as the Guinier Rg)."""
    return {
        "rg": {"numeric_value": round(float(guinier.rg), 4), "unit": "Angstroms"},
        "i_zero": {"numeric_value": float(f"{guinier.i0:.6g}"), "unit": intensity_unit},
    }


def quality_metrics_of(
    guinier: GuinierResult | None, signal_to_noise: float | None, intensity_unit: str
) -> dict[str, dict[str, float | str]]:
    """lambda-ber ``QualityMetrics`` slots of a first look (rg, i_zero, signal_to_noise)."""
    metrics: dict[str, dict[str, float | str]] = {}
    if guinier is not None:
        metrics.update(guinier_metrics(guinier, intensity_unit))
    if signal_to_noise is not None:
        metrics["signal_to_noise"] = {
            "numeric_value": round(signal_to_noise, 2),
            "unit": "signal to noise ratio",
        }
    return metrics


def guinier_numbers(guinier: GuinierResult) -> dict[str, float | None]:
    """The record's ``saxs_results`` numbers of a Guinier result: σ of the Guinier Rg and I(0), the
    fitted q and qRg range, autoRg's quality; the curvature-corrected (q⁴) Rg under its own name."""
    return {
        "rg_sigma_a": guinier.rg_sigma,
        "i_zero_sigma": guinier.i0_sigma,
        "guinier_q_min": guinier.q_min,
        "guinier_q_max": guinier.q_max,
        "guinier_qrg_min": guinier.qrg_min,
        "guinier_qrg_max": guinier.qrg_max,
        "guinier_points": guinier.points,
        "guinier_quality": guinier.quality,
        "rg_curvature_corrected_a": guinier.rg_second_order,
        "rg_curvature_corrected_sigma_a": guinier.rg_second_order_sigma,
    }


def shape_numbers(shape: ShapeResult) -> dict[str, float | int | str | None]:
    """The record's ``saxs_results`` numbers of P(r), the Porod volume and the MW consensus."""
    numbers: dict[str, float | int | str | None] = {}
    if shape.pr is not None:
        pr = shape.pr
        numbers.update(
            {
                "pr_rg_a": pr.rg,
                "pr_rg_sigma_a": pr.rg_sigma,
                "pr_i_zero": pr.i0,
                "pr_i_zero_sigma": pr.i0_sigma,
                "dmax_a": pr.dmax,
                "dmax_sigma_a": pr.dmax_sigma,
                "pr_chi2_reduced": pr.chi2_reduced,
                "pr_method": pr.method,
            }
        )
    if shape.mw_porod is not None:
        numbers["porod_volume_a3"] = float(shape.mw_porod.parameters["porod_volume_a3"])
        numbers["molecular_weight_porod_kda"] = shape.mw_porod.mw_kda
    if shape.mw is not None:
        numbers["molecular_weight_kda"] = shape.mw.mw_kda
        numbers["molecular_weight_sigma_kda"] = shape.mw.mw_sigma_kda
        numbers["molecular_weight_spread_kda"] = shape.mw.spread_kda
        numbers["molecular_weight_methods"] = ", ".join(sorted(shape.mw.methods))
    return numbers


class ShapeResult(BaseModel):
    """What the whole curve says beyond its Guinier region: P(r) (Dmax, Rg, I(0)), the Porod volume
    and its MW, the consensus MW of all methods."""

    model_config = ConfigDict(frozen=True)

    pr: PrResult | None
    mw_porod: MwEstimate | None
    mw: MwConsensus | None


def analyse_shape(
    subtracted: Curve,
    guinier: GuinierResult | None,
    estimates: list[MwEstimate | None],
    with_pr: bool = True,
    expected_mw_kda: float | None = None,
) -> tuple[ShapeResult, list[str], list[str]]:
    """P(r) by BIFT, the Porod volume and the consensus MW of a subtracted curve, with the flags
    (Guinier and P(r) Rg differ beyond their errors; MW methods disagree; the consensus is not the
    ``expected_mw_kda`` of the sample sheet) and notes they raise."""
    flags: list[str] = []
    notes: list[str] = []
    pr = mw_porod = None
    if guinier is None:
        return ShapeResult(pr=None, mw_porod=None, mw=None), flags, notes
    if with_pr:
        try:
            pr = pair_distribution(subtracted, guinier)
        except AnalysisError as exc:
            notes.append(f"P(r): {exc}")
    try:
        mw_porod = mw_from_porod(subtracted, guinier)
    except AnalysisError as exc:
        notes.append(f"MW (Porod): {exc}")
    if pr is not None:
        sigma = float(np.hypot(guinier.rg_sigma, pr.rg_sigma))
        if abs(guinier.rg - pr.rg) > RG_DIFFER_SIGMAS * sigma:
            flags.append(FLAG_RG_GUINIER_PR)
            notes.append(
                f"Rg: Guinier {guinier.rg:.2f} ± {guinier.rg_sigma:.2f} Å and P(r) {pr.rg:.2f} ± "
                f"{pr.rg_sigma:.2f} Å differ by more than {RG_DIFFER_SIGMAS:g}σ (aggregation, repulsion, "
                "or a Guinier range too long for this shape)"
            )
    mw = consensus_mw([e for e in [*estimates, mw_porod] if e is not None])
    if mw is not None and mw.disagreeing:
        flags.append(FLAG_MW_DISAGREE)
        methods = ", ".join(f"{k} {v:.1f}" for k, v in sorted(mw.methods.items()))
        notes.append(
            f"MW: {', '.join(mw.disagreeing)} further than {MW_DISAGREEMENT_SIGMAS:g}× the method's stated "
            f"accuracy from the consensus {mw.mw_kda:.1f} kDa ({methods} kDa)"
        )
    unexpected = mw_unexpected(mw, expected_mw_kda)
    if unexpected is not None:
        flags.append(FLAG_MW_NOT_EXPECTED)
        notes.append(unexpected)
    return ShapeResult(pr=pr, mw_porod=mw_porod, mw=mw), flags, notes


def guinier_signal_to_noise(curve: Curve, guinier: GuinierResult) -> float:
    """Mean I/σ of the subtracted curve over its Guinier region."""
    part = slice(guinier.first_point, guinier.last_point + 1)
    sigma = np.maximum(curve.sigma[part], 1e-300)
    return float(np.mean(curve.intensity[part] / sigma))


def analyse_curve(
    subtracted: Curve,
    concentration_mg_ml: float | None,
    i0_per_mg_ml_kda: float | None = None,
    vc_q_max: float = VC_Q_MAX,
) -> tuple[
    GuinierResult | None, MwEstimate | None, MwEstimate | None, KratkyResult | None, list[str], list[str]
]:
    """Guinier, both MWs and Kratky of one subtracted curve, with the flags and notes they raise."""
    flags: list[str] = []
    notes: list[str] = []
    guinier = mw_vc = mw_i0 = kratky = None
    try:
        guinier = auto_guinier(subtracted)
    except AnalysisError as exc:
        flags.append(FLAG_FAILED_FIT)
        notes.append(f"Guinier: {exc}")
        return guinier, mw_vc, mw_i0, kratky, flags, notes
    if guinier.fallback_reason:
        flags.append(FLAG_FALLBACK_FIT)
        notes.append(f"Guinier: {guinier.fallback_reason}; the project's fit was used")
    if guinier.aggregated:
        flags.append(FLAG_AGGREGATION)
    for name, estimate in (
        ("MW (Vc)", lambda: mw_from_vc(subtracted, guinier, vc_q_max)),
        ("MW (I0/c)", lambda: mw_from_i0(guinier, concentration_mg_ml, subtracted.unit, i0_per_mg_ml_kda)),
    ):
        try:
            value = estimate()
        except AnalysisError as exc:
            notes.append(f"{name}: {exc}")
            continue
        if value.method == "vc":
            mw_vc = value
        else:
            mw_i0 = value
    try:
        kratky = kratky_analysis(subtracted, guinier)
        if kratky.flexible:
            flags.append(FLAG_FLEXIBLE)
    except AnalysisError as exc:
        notes.append(f"Kratky: {exc}")
    return guinier, mw_vc, mw_i0, kratky, flags, notes


def check_name(name: str) -> str:
    """``name`` if it can name files (a sample code), else a clear error."""
    if not NAME_RE.match(name):
        raise AnalysisError(f"sample name {name!r} must match {CODE_PATTERN} (it names files)")
    return name
