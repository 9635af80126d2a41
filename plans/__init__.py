"""SIBYLS plans: every run carries the metadata contract and gets a lambda-ber record."""

from sibyls.plans.alignment import align_beamstop, align_sample_stage, alignment_grid_scan
from sibyls.plans.batch import saxs_exposure, temperature_series
from sibyls.plans.context import configure_plans, plan_context, plan_progress, setup_run_engine
from sibyls.plans.plate import ht_plate
from sibyls.plans.sec import sec_saxs
from sibyls.plans.standard import count, grid_scan, list_scan, rel_scan, scan

#: The plans offered through the queue (the bare bluesky plans are not).
QUEUE_PLANS = {
    plan.__name__: plan
    for plan in (
        saxs_exposure,
        ht_plate,
        sec_saxs,
        temperature_series,
        align_beamstop,
        align_sample_stage,
        alignment_grid_scan,
        count,
        scan,
        rel_scan,
        list_scan,
        grid_scan,
    )
}

__all__ = [
    "QUEUE_PLANS",
    "align_beamstop",
    "align_sample_stage",
    "alignment_grid_scan",
    "configure_plans",
    "count",
    "grid_scan",
    "ht_plate",
    "list_scan",
    "plan_context",
    "plan_progress",
    "rel_scan",
    "saxs_exposure",
    "scan",
    "sec_saxs",
    "setup_run_engine",
    "temperature_series",
]
