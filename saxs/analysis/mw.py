"""Molecular weight of the particles from a subtracted curve, by three independent routes, and the
consensus of them:

* **Vc** (Rambo & Tainer, Nature 2013): the volume of correlation Vc = I(0)/∫q·I(q)dq (FreeSAS's
  ``calc_Vc``, Guinier-extrapolated to q = 0, integrated to ``VC_Q_MAX``), Qr = Vc²/Rg, and for
  proteins MW = Qr/0.1231 (Qr in Å³, MW in Da). Concentration-free; calibrated on proteins.
* **I(0)/c**: MW = I(0)/(c·K) with K the scattering power per mg/mL and kDa — on absolute scale
  (cm⁻¹) the protein constant, otherwise K measured on a standard (BSA) with
  ``calibration_from_standard``. Needs the concentration; any shape.
* **Porod volume** (FreeSAS ``calc_Porod``: Vp = 2π²I(0)/∫q²I dq, Guinier-extrapolated to q = 0,
  integrated to ``POROD_Q_MAX``) and MW = Vp/``POROD_A3_PER_DA`` (hydrated globular proteins).

Each method's domain: Vc is Rambo & Tainer's empirical relation for real proteins (measured and atomic
models, qmax 0.3 Å⁻¹, ±10 % on their set); on homogeneous model bodies (the simulator's shapes) it
reads 0.62-0.90 of the mass at any q_max from 0.2 to 1.2 Å⁻¹ (a sphere 0.63, the rod 0.65, the
cage 0.90): its constant is calibrated, not derived, so it is reported and weighted as the least sure
route. Porod's volume holds for any compact homogeneous particle but its MW assumes a hydrated
protein's volume per dalton. I(0)/c is exact on absolute scale for any shape, as good as c and the
calibration. :func:`consensus_mw` weighs them by these stated accuracies.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from freesas.containers import RG_RESULT
from freesas.invariants import calc_Porod, calc_Vc
from pydantic import BaseModel, ConfigDict

from sibyls.saxs.analysis.guinier import GuinierResult
from sibyls.saxs.analysis.inputs import AnalysisError, check_curve
from sibyls.saxs.analysis.standards import (
    BSA_MW_KDA,
    PROTEIN_I0_PER_MG_ML_KDA,
    RAMBO_TAINER_PROTEIN_QR_PER_DA,
    VC_Q_MAX,
)
from sibyls.saxs.reduction.curves import Curve

ABSOLUTE_UNIT = "1/cm"
#: Upper q (Å⁻¹) of the Porod invariant.
POROD_Q_MAX = 0.3
#: Porod volume per dalton of a hydrated globular protein (Å³/Da; MW [kDa] ≈ Vp [nm³]/1.6,
#: Petoukhov et al., J Appl Cryst 2012).
POROD_A3_PER_DA = 1.6
#: Each method's stated relative accuracy (1σ) in its domain: weights of the consensus.
METHOD_ACCURACY = {"i0_over_c": 0.05, "mals": 0.05, "porod": 0.15, "vc": 0.20}
#: A method further than this many of its stated accuracies from the consensus flags disagreement.
MW_DISAGREEMENT_SIGMAS = 2.0
#: The consensus MW may differ from the MW the sample sheet expects by this fraction (or by
#: MW_DISAGREEMENT_SIGMAS of the consensus' own σ, when larger) before the run is flagged: a monomer
#: sheet with a dimer (or a 70/30 monomer/dimer mix, +30 %), aggregates, a wrong concentration.
MW_EXPECTED_TOLERANCE = 0.10


class MwEstimate(BaseModel):
    """A molecular weight in kDa with its 1σ error, the method and the numbers it came from."""

    model_config = ConfigDict(frozen=True)

    method: Literal["vc", "i0_over_c", "mals", "porod"]
    mw_kda: float
    mw_sigma_kda: float | None
    parameters: dict[str, float | str]


def mw_from_vc(curve: Curve, guinier: GuinierResult, q_max: float = VC_Q_MAX) -> MwEstimate:
    """Protein MW from the Rambo–Tainer invariant of a subtracted curve and its Guinier fit."""
    check_curve(curve, "curve", min_points=10)
    first = guinier.first_point
    upto = curve.q <= q_max
    if upto.sum() <= first + 2:
        raise AnalysisError(f"no data between the Guinier region and q_max={q_max} for Vc")
    data = np.ascontiguousarray(
        np.column_stack([curve.q[upto], curve.intensity[upto], curve.sigma[upto]]), dtype=np.float64
    )
    vc, vc_sigma = calc_Vc(data, guinier.rg, guinier.rg_sigma, guinier.i0, guinier.i0_sigma, first)
    if not np.isfinite(vc) or vc <= 0:
        raise AnalysisError(f"Vc is not positive ({vc}): the curve's integral is not usable")
    qr = vc**2 / guinier.rg
    mw_kda = qr / RAMBO_TAINER_PROTEIN_QR_PER_DA / 1000.0
    qr_sigma = qr * (guinier.rg_sigma / guinier.rg + 2.0 * vc_sigma / vc)
    return MwEstimate(
        method="vc",
        mw_kda=float(mw_kda),
        mw_sigma_kda=float(mw_kda * qr_sigma / qr),
        parameters={
            "vc_a2": float(vc),
            "qr_a3": float(qr),
            "q_max_per_a": float(curve.q[upto][-1]),
            "qr_per_da": RAMBO_TAINER_PROTEIN_QR_PER_DA,
        },
    )


def calibration_from_standard(i0: float, concentration_mg_ml: float, mw_kda: float = BSA_MW_KDA) -> float:
    """The scattering power K = I(0)/(c·MW) measured on a standard (BSA by default)."""
    for name, value in (("I(0)", i0), ("concentration", concentration_mg_ml), ("MW", mw_kda)):
        if not np.isfinite(value) or value <= 0:
            raise AnalysisError(f"standard {name} must be a positive number, got {value}")
    return i0 / (concentration_mg_ml * mw_kda)


def mw_from_i0(
    guinier: GuinierResult,
    concentration_mg_ml: float | None,
    unit: str,
    i0_per_mg_ml_kda: float | None = None,
) -> MwEstimate:
    """MW = I(0)/(c·K): K given (from a standard), or the protein constant when I is in cm⁻¹."""
    if concentration_mg_ml is None:
        raise AnalysisError("no concentration given: MW from I(0)/c needs one")
    if not np.isfinite(concentration_mg_ml) or concentration_mg_ml <= 0:
        raise AnalysisError(f"concentration must be a positive number, got {concentration_mg_ml}")
    if i0_per_mg_ml_kda is None:
        if unit != ABSOLUTE_UNIT:
            raise AnalysisError(
                f"intensity is in {unit!r}, not on absolute scale ({ABSOLUTE_UNIT}): "
                "MW from I(0)/c needs a standard's calibration"
            )
        i0_per_mg_ml_kda, source = PROTEIN_I0_PER_MG_ML_KDA, "protein constant (absolute scale)"
    else:
        source = "standard"
    if not np.isfinite(i0_per_mg_ml_kda) or i0_per_mg_ml_kda <= 0:
        raise AnalysisError(f"I(0)/(c·MW) calibration must be positive, got {i0_per_mg_ml_kda}")
    mw = guinier.i0 / (concentration_mg_ml * i0_per_mg_ml_kda)
    return MwEstimate(
        method="i0_over_c",
        mw_kda=float(mw),
        mw_sigma_kda=float(mw * guinier.i0_sigma / guinier.i0),
        parameters={
            "concentration_mg_ml": float(concentration_mg_ml),
            "i0_per_mg_ml_kda": float(i0_per_mg_ml_kda),
            "calibration": source,
        },
    )


def mw_from_porod(curve: Curve, guinier: GuinierResult, q_max: float = POROD_Q_MAX) -> MwEstimate:
    """Porod volume (Å³, FreeSAS ``calc_Porod``) and the MW of a hydrated protein of that volume."""
    check_curve(curve, "curve", min_points=10)
    upto = curve.q <= q_max
    if upto.sum() <= guinier.last_point + 2:
        raise AnalysisError(f"no data between the Guinier region and q_max={q_max} for the Porod volume")
    data = np.ascontiguousarray(
        np.column_stack([curve.q[upto], curve.intensity[upto], curve.sigma[upto]]), dtype=np.float64
    )
    fit = RG_RESULT(guinier.rg, guinier.rg_sigma, guinier.i0, guinier.i0_sigma, guinier.first_point,
                    guinier.last_point)  # fmt: skip
    volume = float(calc_Porod(data, fit))
    if not np.isfinite(volume) or volume <= 0:
        raise AnalysisError(f"Porod volume is not positive ({volume}): the curve's integral is not usable")
    mw_kda = volume / POROD_A3_PER_DA / 1000.0
    return MwEstimate(
        method="porod",
        mw_kda=mw_kda,
        mw_sigma_kda=mw_kda * METHOD_ACCURACY["porod"],
        parameters={"porod_volume_a3": volume, "q_max_per_a": float(curve.q[upto][-1]),
                    "a3_per_da": POROD_A3_PER_DA},
    )  # fmt: skip


class MwConsensus(BaseModel):
    """One MW from several methods: their weighted mean, their spread, and which disagree."""

    model_config = ConfigDict(frozen=True)

    mw_kda: float
    mw_sigma_kda: float  # from the methods' stated accuracies
    spread_kda: float  # max − min of the methods
    methods: dict[str, float]
    disagreeing: list[str]  # methods further than MW_DISAGREEMENT_SIGMAS × their accuracy from mw_kda


def consensus_mw(estimates: list[MwEstimate]) -> MwConsensus | None:
    """Weighted mean of the methods' MWs (weights from :data:`METHOD_ACCURACY`); None without any."""
    usable = [e for e in estimates if np.isfinite(e.mw_kda) and e.mw_kda > 0]
    if not usable:
        return None
    weights = np.array([1.0 / METHOD_ACCURACY[e.method] ** 2 for e in usable])
    values = np.array([e.mw_kda for e in usable])
    mean = float(np.sum(weights * values) / np.sum(weights))
    disagreeing = [
        e.method
        for e in usable
        if abs(e.mw_kda - mean) > MW_DISAGREEMENT_SIGMAS * METHOD_ACCURACY[e.method] * mean
    ]
    return MwConsensus(
        mw_kda=mean,
        mw_sigma_kda=float(mean / np.sqrt(np.sum(weights))),
        spread_kda=float(values.max() - values.min()),
        methods={e.method: e.mw_kda for e in usable},
        disagreeing=disagreeing,
    )


def mw_unexpected(consensus: MwConsensus | None, expected_kda: float | None) -> str | None:
    """Why the consensus MW is not the expected one (a note for the flag), or None when it is within
    :data:`MW_EXPECTED_TOLERANCE` (or its own error), or either is unknown."""
    if consensus is None or expected_kda is None or not np.isfinite(expected_kda) or expected_kda <= 0:
        return None
    allowed = max(MW_EXPECTED_TOLERANCE * expected_kda, MW_DISAGREEMENT_SIGMAS * consensus.mw_sigma_kda)
    difference = consensus.mw_kda - expected_kda
    if abs(difference) <= allowed:
        return None
    return (
        f"MW: the consensus {consensus.mw_kda:.1f} ± {consensus.mw_sigma_kda:.1f} kDa is "
        f"{difference / expected_kda:+.0%} from the expected {expected_kda:g} kDa (allowed ± {allowed:.1f}): "
        "an oligomer or a mixture, aggregates, or a wrong concentration"
    )
