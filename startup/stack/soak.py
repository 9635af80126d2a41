"""A night's work for a stack, checked: plates of wells and a SEC run through the queue, processing on.

The soak (``python -m bench soak`` for the full night, ``tests/startup/test_soak.py`` for a short
one) queues :func:`plate_item` s and a :func:`sec_item` as a user would, waits until the queue has
run them (:func:`run_queue`) and every run's first look is written (:func:`wait_for_first_looks`),
and says what is missing (:func:`missing`): an item that did not complete, a run without a record,
a record without its first look.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sibyls.metadata.record_results import results_path
from sibyls.metadata.rules import WELL_COLUMNS, WELL_ROWS
from sibyls.startup.stack.starters import profile_config
from sibyls.startup.stack.state import StackState

#: What each well measures: short exposures (the IOC's time scale makes them shorter still).
WELL_EXPOSURE = {"exposure_time": 0.5, "num_frames": 5}
#: The SEC run: 12 s frames over 5 minutes of the HPLC's clock (paced by the IOC's time scale): 25
#: frames, the SEC first look needs 20. At the stack's 50x that leaves 0.23 s of wall time a frame
#: besides the exposure, so the frames keep pace with the HPLC clock (and catch up after a stall)
#: also on a slow, busy machine.
SEC_RUN = {"flow_rate": 1.0, "frame_period": 12.0, "exposure_time": 0.5, "duration": 5.0}


def plate_wells(count: int) -> list[str]:
    """The first ``count`` wells of a 96-well plate, row by row (``A1``, ``A2``, ...)."""
    names = [f"{row}{column}" for row in WELL_ROWS for column in WELL_COLUMNS]
    if not 2 <= count <= len(names) or count % 2:
        raise ValueError(f"wells: an even number from 2 to {len(names)} (buffer/sample pairs), not {count}")
    return names[:count]


def plate_item(state: StackState, plate_id: str, project: str, wells: int) -> dict:
    """An ``ht_plate`` item of ``wells`` wells (buffer, sample, buffer, ...), the plate registered with
    the stack's robot (a small protein at 2 mg/mL in each sample well)."""
    from sibyls.metadata.plate_registry import PlateRegistry

    names = plate_wells(wells)
    submitted, robot = [], {}
    for buffer_well, sample_well in zip(names[::2], names[1::2], strict=True):
        buffer_code, sample_code = f"{plate_id}_{buffer_well}", f"{plate_id}_{sample_well}"
        buffer = {"well": buffer_well, "sample_code": buffer_code, "sample_role": "buffer_blank"}
        sample = {"well": sample_well, "sample_code": sample_code, "buffer_well": buffer_well}
        submitted += [{**buffer, **WELL_EXPOSURE}, {**sample, "concentration_mg_ml": 2.0, **WELL_EXPOSURE}]
        robot[buffer_well] = {"sample_code": buffer_code, "kind": "buffer"}
        robot[sample_well] = {
            "sample_code": sample_code,
            "rg_a": 20.0,
            "concentration_mg_ml": 2.0,
            "mw_kda": 50.0,
        }
    PlateRegistry(profile_config(state).plate_registry).add({"plate_id": plate_id, "wells": robot})
    plate = {"plate_id": plate_id, "wells": submitted}
    return {"name": "ht_plate", "args": [plate, project], "kwargs": {}, "item_type": "plan"}


def sec_item(state: StackState, sample_code: str, project: str) -> dict:
    """A ``sec_saxs`` item, its sample (lysozyme, 5 mg/mL) put into the simulated HPLC's injector."""
    from caproto.sync.client import write

    from sibyls.devices.epics_env import loopback_ca_environment
    from sibyls.devices.sim.samples import catalogue_sample

    vial = catalogue_sample("lysozyme", sample_code=sample_code, concentration_mg_ml=5.0)
    with loopback_ca_environment(state.ports["ca"]):
        pv, text = f"{state.ioc_prefix}SEC:InjectSample", vial.model_dump_json(exclude_none=True)
        write(pv, text.encode(), notify=True, timeout=5, repeater=False)
    return {"name": "sec_saxs", "args": [sample_code, project], "kwargs": SEC_RUN, "item_type": "plan"}


def run_queue(api, items: list[dict], timeout: float) -> list[str]:
    """Add ``items`` to the queue, start it and wait until it has run them all; their item uids."""
    uids = []
    for item in items:
        reply = api.item_add(item)
        if not reply["success"]:
            raise RuntimeError(f"the queue refused {item['name']}: {reply['msg']}")
        uids.append(reply["item"]["item_uid"])
    api.queue_start()
    deadline = time.monotonic() + timeout
    time.sleep(0.5)
    while True:
        status = api.status()
        if status["manager_state"] == "idle" and status["running_item_uid"] is None:
            return uids
        if time.monotonic() > deadline:
            raise TimeoutError(f"the queue did not finish within {timeout:.0f} s")
        time.sleep(0.5)


@dataclass
class Records:
    """The records of a project, and which have their first look (processing ``completed``)."""

    folder: Path
    statuses: dict[Path, str | None] = field(default_factory=dict)

    def refresh(self) -> None:
        """Read the records not yet known to be done (a finished record is not read again)."""
        for path in sorted(self.folder.glob("*.yaml")) if self.folder.is_dir() else []:
            if self.statuses.get(path) in ("completed", "failed"):
                continue
            try:
                record = yaml.safe_load(path.read_text())
                self.statuses[path] = record["experiment_runs"][0].get("processing_status")
            except (OSError, ValueError, KeyError, IndexError, TypeError, yaml.YAMLError):
                self.statuses[path] = None  # being written: read again

    @property
    def finished(self) -> int:
        return sum(status in ("completed", "failed") for status in self.statuses.values())


def project_records(state: StackState, project: str) -> Records:
    """The records of ``project`` in the stack's records folder."""
    return Records(profile_config(state).records_dir / project)


def wait_for_first_looks(records: Records, runs: int, timeout: float) -> Records:
    """Until ``runs`` records of the project have a finished first look (or ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while True:
        records.refresh()
        if records.finished >= runs or time.monotonic() > deadline:
            return records
        time.sleep(1.0)


def missing(api, item_uids: list[str], records: Records, runs: int) -> list[str]:
    """What the soak lacks: items not completed, runs without a record, records without a first look."""
    problems = []
    history = {item["item_uid"]: item for item in api.history_get()["items"]}
    for uid in item_uids:
        result = history.get(uid, {}).get("result", {})
        if result.get("exit_status") != "completed":
            problems.append(
                f"item {uid}: {result.get('exit_status', 'not in the history')} {result.get('msg', '')}"
            )
    records.refresh()
    if len(records.statuses) != runs:
        problems.append(f"{len(records.statuses)} records of {runs} runs")
    for path, status in records.statuses.items():
        if status != "completed" or not results_path(path).is_file():
            problems.append(f"{path.name}: first look {status}")
    return problems


def runs_of(items: list[dict]) -> int:
    """How many runs (records) ``items`` make: one per plate well, one per SEC run."""
    return sum(len(item["args"][0]["wells"]) if item["name"] == "ht_plate" else 1 for item in items)
