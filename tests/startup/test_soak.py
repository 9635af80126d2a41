"""The soak, short: one 16-well plate and a SEC run through the session stack's queue, processing on.

Every item completes, every run has its record and first look, and no service's memory grows beyond
a generous bound after the warm-up (the SEC run). The full night is ``python -m bench soak``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sibyls.startup.stack.soak import (
    missing,
    plate_item,
    project_records,
    run_queue,
    runs_of,
    sec_item,
    wait_for_first_looks,
)
from sibyls.startup.stack.state import SERVICES
from sibyls.startup.stack.usage import SAMPLED, sample

pytestmark = pytest.mark.slow

PROJECT = "SOAK"
#: Generous: one plate is not a night, and a first plate's code paths still load after the warm-up.
RSS_BOUND = 1.5


def test_a_short_soak_completes_every_run_with_its_first_look_and_memory_stays_bounded(stack, api):
    records = project_records(stack, PROJECT)
    plate = plate_item(stack, "SOAK_CI", PROJECT, 16)
    time.sleep(2.5)  # the simulated robot re-reads the plate registry every second
    warm_up = [sec_item(stack, "SOAK_CI_SEC", PROJECT)]
    uids = run_queue(api, warm_up, timeout=300)
    wait_for_first_looks(records, 1, timeout=300)
    after_warm_up = sample(stack)
    uids += run_queue(api, [plate], timeout=600)
    runs = runs_of([*warm_up, plate])
    wait_for_first_looks(records, runs, timeout=600)
    at_end = sample(stack)

    assert missing(api, uids, records, runs) == []
    assert sorted(at_end.rss) == sorted(SAMPLED)
    grown = {
        name: round(end / after_warm_up.rss[name], 3)
        for name, end in at_end.rss.items()
        if end > RSS_BOUND * after_warm_up.rss[name]
    }
    assert not grown, f"memory grew beyond {RSS_BOUND}x the after-warm-up figure: {grown}"
    assert 0 < at_end.redis_memory and 0 < at_end.log_bytes <= at_end.var_bytes
    logs = Path(stack.var_dir) / "logs"
    assert all((logs / f"{name}.log").is_file() for name in SERVICES)  # each service's log, bounded
