"""The queue gate on the real stack: every bad item refused at add, on every way in, nothing moved.

The battery (``tests/plans/test_gate_battery.py``: codes, numbers, structure, limits, plates, SEC,
meta, payload size) goes to the stack ``sibyls up`` starts (Redis, IOC, sibyls-re-manager, HTTP
server) over the ``qserver`` CLI, HTTP (``POST /api/queue/item/add``) and the Python API
(bluesky-queueserver-api). Each item must be refused with a message whose problem line starts with
the field, the queue must stay as it was (same items, same ``plan_queue_uid``, no history), and no
PV of a motor, shutter, pump, robot or temperature controller may change (Channel Access monitors
run for the whole battery). Batches with one bad item, updates into a bad item, ``item_execute`` of a
bad item and bad plate sheets are refused the same way. Then a valid item of each plan is accepted
on every path and one of each runs to completion.

What a path cannot carry at all is skipped with the reason: ``qserver`` parses an item with
``ast.literal_eval`` (no literal is NaN; infinity is ``1e999``) from one command-line argument (at
most 128 KiB on Linux).

(Over 450 lines on purpose: the three ways in, the PV watch and the battery's replay share one stack
and one chain of module fixtures; split, each part would need the whole chain again.)
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import json
import math
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from bluesky_queueserver_api import BPlan
from bluesky_queueserver_api.comm_base import RequestFailedError
from stack_helpers import ca_environment, csv_sheet, qserver, upload_sheet, wait_until_idle

from sibyls.plans import QUEUE_PLAN_NAMES
from sibyls.startup.stack import StackState, manager_api

pytestmark = pytest.mark.slow


def _battery():
    """tests/plans/test_gate_battery.py, the one battery table (imported by path: tests are no package)."""
    name = "test_gate_battery"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "plans" / "test_gate_battery.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


battery = _battery()
BATTERY = battery.BATTERY
PATHS = ("cli", "http", "api")
#: One bad item of each category, for batches, updates and item_execute.
REPRESENTATIVES = [
    next(c for c in BATTERY if c.id == case_id)
    for case_id in (
        "sample_code-nul",
        "exposure_time-nan",
        "unknown-kwarg",
        "scan-beamstop-beyond",
        "buffer-after-sample",
        "duration-no-frame",
        "meta-submitted_by",
        "description-5MB",
    )
]
#: Which path's copy of each plan's valid item is run to completion (every path runs some).
RUN_PATH = {plan: PATHS[i % len(PATHS)] for i, plan in enumerate(QUEUE_PLAN_NAMES)}
CLI_ARGUMENT_MAX = 128 * 1024  # Linux MAX_ARG_STRLEN: the longest single command-line argument

# ---- Channel Access: the PVs that must not change while items are refused ----------------------

MOTOR_FIELDS = [
    f"{m}.{f}" for m in ("SampleStage:X", "SampleStage:Y", "Beamstop:X", "Beamstop:Y") for f in ("VAL", "RBV")
]
WATCHED = [
    *MOTOR_FIELDS,
    "PShutter:Open",
    "PShutter:Status_RBV",
    "FShutter:Open",
    "FShutter:Status_RBV",
    "SEC:Pump:FlowRate",
    "SEC:Pump:FlowRate_RBV",
    "SEC:RunState_RBV",
    "SEC:RunTime",
    "Robot:State_RBV",
    "Robot:PlateId",
    "Robot:Well",
    "Robot:LoadedWell_RBV",
    "Cell:Temp:SP",  # not the readback: it drifts with the controller's noise
    "Pilatus:Acquire",
]
SEC_VIAL = {
    "sample_code": "gate_sec",
    "kind": "sample",
    "rg_a": 30.0,
    "concentration_mg_ml": 5.0,
    "mw_kda": 50.0,
    "elution_volume_ml": 3.0,
}


def _plain(data: Any) -> Any:
    value = data[0] if len(data) == 1 else bytes(data)
    if isinstance(value, bytes):
        return value.rstrip(b"\0").decode()
    return value.item() if hasattr(value, "item") else value


class PVWatch:
    """Monitors of :data:`WATCHED` on the stack's IOC: every value posted after the first reading."""

    def __init__(self, stack: StackState) -> None:
        from caproto.threading.client import Context

        prefix = stack.ioc_prefix
        self._lock = threading.Lock()
        self.events: list[tuple[str, Any]] = []
        self._callbacks = []  # caproto holds callbacks weakly
        with ca_environment(stack):
            self.context = Context()
            self.pvs = self.context.get_pvs(*(prefix + name for name in WATCHED), timeout=5)
            for pv in self.pvs:
                pv.wait_for_connection(timeout=10)
            self.controls = dict(
                zip(
                    ("plate", "vial"),
                    self.context.get_pvs(
                        f"{prefix}Robot:PlateDefinition", f"{prefix}SEC:InjectSample", timeout=5
                    ),
                    strict=True,
                )
            )
            for pv in self.controls.values():
                pv.wait_for_connection(timeout=10)
        self.initial = self.snapshot()
        for pv in self.pvs:  # each monitor posts the current value first: no change

            def posted(sub, response, name=pv.name):
                with self._lock:
                    self.events.append((name, _plain(response.data)))

            self._callbacks.append(posted)
            pv.subscribe(data_type="native").add_callback(posted)

    def write_json(self, control: str, value: dict) -> None:
        """Put a JSON document into a char-waveform PV (plate definition, SEC vial)."""
        self.controls[control].write(json.dumps(value).encode(), wait=True, timeout=10)

    def snapshot(self) -> dict[str, Any]:
        return {pv.name: _plain(pv.read(timeout=5, data_type="native").data) for pv in self.pvs}

    def mark(self) -> int:
        with self._lock:
            return len(self.events)

    def changes_since(self, mark: int) -> list[tuple[str, Any]]:
        """Values posted since ``mark`` that differ from the PV's value when the watch began."""
        with self._lock:
            events = self.events[mark:]
        return [(name, value) for name, value in events if not same(value, self.initial[name])]

    def close(self) -> None:
        self.context.disconnect()


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=0, abs_tol=1e-9)
    return a == b


@pytest.fixture(scope="module")
def watch(stack):
    """The IOC prepared as a person would (plate on the robot, vial in the autosampler), then watched."""
    pv_watch = PVWatch(stack)
    try:
        pv_watch.write_json("plate", battery.ROBOT_PLATE)
        pv_watch.write_json("vial", SEC_VIAL)
        yield pv_watch
    finally:
        pv_watch.close()


@pytest.fixture(scope="module")
def gate(stack, watch):
    """A manager client; the queue holds one valid item (a refused item must leave it as it is)."""
    client = manager_api(stack, timeout=30)
    client.queue_clear()
    client.item_add(
        BPlan("saxs_exposure", "gate_sentinel", battery.PROJECT, exposure_time=0.05, num_frames=1)
    )
    yield client
    client.close()


# ---- the three ways in -------------------------------------------------------------------------


class CannotCarry(Exception):
    """The path cannot express this item at all."""


def cli_literal(value: Any) -> str:
    """``value`` as the Python literal ``qserver`` parses (``ast.literal_eval``)."""
    if isinstance(value, float):
        if math.isnan(value):
            raise CannotCarry("qserver parses items with ast.literal_eval: no Python literal is NaN")
        if math.isinf(value):
            return "1e999" if value > 0 else "-1e999"
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{cli_literal(k)}: {cli_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(cli_literal(v) for v in value) + "]"
    return repr(value)


def cli_argument(item: dict) -> str:
    text = cli_literal(item)
    if len(text.encode()) >= CLI_ARGUMENT_MAX:
        raise CannotCarry(
            f"the item is {len(text) // 1024} KiB; one command-line argument holds at most 128 KiB"
        )
    return text


def cli_reply(result) -> dict:
    """The manager's reply as ``qserver`` prints it (a pprint-ed dict after ``MESSAGE:``)."""
    out = result.stdout
    start = out.find("{", out.find("MESSAGE:"))
    assert start >= 0, (
        f"qserver printed no reply (rc {result.returncode}): {out[-500:]} {result.stderr[-500:]}"
    )
    reply = ast.literal_eval(out[start:].strip())
    assert (result.returncode == 0) == bool(reply["success"]), (result.returncode, reply)
    return reply


def post_json(stack: StackState, path: str, body: dict) -> dict:
    """POST ``body`` as JSON text (NaN and infinity included, as Python's json writes them)."""
    response = httpx.post(
        f"{stack.http_url}{path}",
        content=json.dumps(body),
        headers={"Authorization": f"ApiKey {stack.api_key()}", "Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 200, f"HTTP {response.status_code}: {response.text[:500]}"
    return response.json()


def as_bplan(item: dict) -> BPlan | dict:
    """The item as a ``BPlan``; as a plain dict where BPlan itself refuses it (``meta`` not a dict) or
    would make another item of it (``args`` given as a dict, ``kwargs`` as a list)."""
    if not isinstance(item.get("args", []), list) or not isinstance(item.get("kwargs", {}), dict):
        return {**item, "item_type": "plan"}
    try:
        plan = BPlan(item["name"], *item.get("args", []), **item.get("kwargs", {}))
        if "meta" in item:
            plan.meta = item["meta"]
    except (TypeError, ValueError):
        return {**item, "item_type": "plan"}
    return plan


def api_call(call, *args, **kwargs) -> dict:
    """The manager's reply; a refusal (RequestFailedError) gives its reply too."""
    try:
        return call(*args, **kwargs)
    except RequestFailedError as exc:
        return exc.response


def add_over(path: str, stack: StackState, api, item: dict) -> dict:
    """``item_add`` over ``path``: the manager's reply (``success``, ``msg``, ``item``)."""
    item = copy.deepcopy(item)
    if path == "cli":
        return cli_reply(qserver(stack, "queue", "add", "plan", cli_argument(item)))
    if path == "http":
        return post_json(stack, "/api/queue/item/add", {"item": {**item, "item_type": "plan"}})
    return api_call(api.item_add, as_bplan(item))


def update_over(path: str, stack: StackState, api, uid: str, item: dict) -> dict:
    item = {**copy.deepcopy(item), "item_type": "plan"}
    if path == "cli":
        return cli_reply(qserver(stack, "queue", "update", "plan", uid, cli_argument(item)))
    if path == "http":
        return post_json(stack, "/api/queue/item/update", {"item": {**item, "item_uid": uid}})
    return api_call(api.item_update, {**item, "item_uid": uid})


def execute_over(path: str, stack: StackState, api, item: dict) -> dict:
    item = {**copy.deepcopy(item), "item_type": "plan"}
    if path == "cli":
        return cli_reply(qserver(stack, "queue", "execute", "plan", cli_argument(item)))
    if path == "http":
        return post_json(stack, "/api/queue/item/execute", {"item": item})
    return api_call(api.item_execute, item)


def queue_state(api) -> dict:
    """Everything a refused item must leave as it was."""
    queue, status = api.queue_get(reload=True), api.status(reload=True)
    return {
        "plan_queue_uid": queue["plan_queue_uid"],
        "items": queue["items"],
        "items_in_history": status["items_in_history"],
        "running_item_uid": status["running_item_uid"],
        "manager_state": status["manager_state"],
    }


def assert_refused(reply: dict, case) -> None:
    assert reply["success"] is False, f"{case.id}: accepted ({reply.get('msg')!r})"
    assert battery.names_field(reply["msg"], case.field), f"{case.field!r} is not named in:\n{reply['msg']}"


# ---- the battery -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_battery(stack, gate, watch):
    """The whole battery over the ``qserver`` CLI, four processes at a time (each spends ~0.5 s starting
    Python): case id → reply (or the exception), the queue before and after, what moved meanwhile.

    Only adds are sent, so a queue equal before and after (same ``plan_queue_uid``) was left unchanged
    by every one of them.
    """
    before, mark = queue_state(gate), watch.mark()

    def submit(case):
        try:
            return add_over("cli", stack, gate, case.item)
        except Exception as exc:  # CannotCarry, or a failed check of the CLI's output
            return exc

    with ThreadPoolExecutor(max_workers=4) as pool:
        replies = dict(zip((case.id for case in BATTERY), pool.map(submit, BATTERY), strict=True))
    return replies, before, queue_state(gate), watch.changes_since(mark)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", BATTERY, ids=[f"{c.category}-{c.id}" for c in BATTERY])
def test_each_bad_item_is_refused_at_add_naming_its_field(case, path, stack, gate, watch, request):
    if path == "cli":
        replies, before, after, moved = request.getfixturevalue("cli_battery")
        reply = replies[case.id]
        if isinstance(reply, CannotCarry):
            pytest.skip(str(reply))
        if isinstance(reply, Exception):
            raise reply
        assert_refused(reply, case)
        assert after == before, "the queue changed while the battery went through the CLI"
        assert moved == []
        return
    before, mark = queue_state(gate), watch.mark()
    reply = add_over(path, stack, gate, case.item)
    assert_refused(reply, case)
    assert queue_state(gate) == before
    assert watch.changes_since(mark) == []


@pytest.mark.parametrize("path", ["http", "api"])
@pytest.mark.parametrize("case", REPRESENTATIVES, ids=[c.category for c in REPRESENTATIVES])
def test_a_batch_with_one_bad_item_adds_nothing(case, path, stack, gate, watch):
    before, mark = queue_state(gate), watch.mark()
    good = {**battery.valid_item("count"), "item_type": "plan"}
    items = [good, {**copy.deepcopy(case.item), "item_type": "plan"}]
    if path == "http":
        reply = post_json(stack, "/api/queue/item/add/batch", {"items": items})
    else:
        reply = api_call(gate.item_add_batch, items)
    assert reply["success"] is False
    assert reply["results"][0]["success"] is True
    assert_refused(reply["results"][1], case)
    assert queue_state(gate) == before
    assert watch.changes_since(mark) == []


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", REPRESENTATIVES, ids=[c.category for c in REPRESENTATIVES])
def test_updating_a_queued_item_into_a_bad_one_is_refused(case, path, stack, gate, watch):
    # Over HTTP a person may change only their own items: there the item is the API key's (the user's).
    to_update = {"name": "count", "args": [["i0"], "to_update", battery.PROJECT]}
    queued = add_over("http" if path == "http" else "api", stack, gate, to_update)["item"]
    try:
        before, mark = queue_state(gate), watch.mark()
        try:
            reply = update_over(path, stack, gate, queued["item_uid"], case.item)
        except CannotCarry as exc:
            pytest.skip(str(exc))
        assert_refused(reply, case)
        assert queue_state(gate) == before
        assert watch.changes_since(mark) == []
    finally:
        gate.item_remove(uid=queued["item_uid"])


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", REPRESENTATIVES, ids=[c.category for c in REPRESENTATIVES])
def test_executing_a_bad_item_runs_nothing(case, path, stack, gate, watch):
    before, mark = queue_state(gate), watch.mark()
    try:
        reply = execute_over(path, stack, gate, case.item)
    except CannotCarry as exc:
        pytest.skip(str(exc))
    assert_refused(reply, case)
    time.sleep(0.3)  # a run that started anyway would show by now
    assert queue_state(gate) == before
    assert watch.changes_since(mark) == []


# ---- plate sheets ------------------------------------------------------------------------------


def sheet_rows() -> list[dict]:
    """The valid plate as sheet rows (row 2: the buffer, row 3: its sample)."""
    common = {"plate_id": battery.KNOWN_PLATE, "project_code": battery.PROJECT}
    return [{**common, **well} for well in battery.plate_wells()]


def upload(stack: StackState, rows: list[dict]) -> dict:
    response = upload_sheet(stack, "plate.csv", csv_sheet(rows))
    assert response.status_code == 200, response.text[:500]
    return response.json()


def _cell(row: int, column: str, value: Any):
    def change(rows: list[dict]) -> None:
        rows[row - 2][column] = value

    return change


def _every_row(column: str, value: Any):
    def change(rows: list[dict]) -> None:
        for row in rows:
            row[column] = value

    return change


BAD_SHEETS = [
    ("formula-equals-sample_code", _cell(3, "sample_code", "=1+1"), r"row 3, column sample_code:"),
    ("formula-plus-description", _cell(2, "description", "+SUM(A1:A9)"), r"row 2, column description:"),
    ("formula-minus-buffer_name", _cell(2, "buffer_name", "-2+3"), r"row 2, column buffer_name:"),
    ("formula-at-sample_code", _cell(3, "sample_code", "@cmd"), r"row 3, column sample_code:"),
    (
        "formula-equals-description",
        _cell(3, "description", '=HYPERLINK("http://x")'),
        r"row 3, column description:",
    ),
    ("bad-well", _cell(3, "well", "Z99"), r"row 3, column well:"),
    ("concentration-nan", _cell(3, "concentration_mg_ml", "nan"), r"row 3, column concentration_mg_ml:"),
    ("num_frames-fraction", _cell(2, "num_frames", "2.5"), r"row 2, column num_frames:"),
    ("unknown-plate", _every_row("plate_id", battery.UNKNOWN_PLATE), r"plate\.plate_id:|column plate_id:"),
]


@pytest.mark.parametrize(("change", "names"), [s[1:] for s in BAD_SHEETS], ids=[s[0] for s in BAD_SHEETS])
def test_a_bad_plate_sheet_queues_nothing_and_names_row_and_column(change, names, stack, gate, watch):
    before, mark = queue_state(gate), watch.mark()
    rows = sheet_rows()
    change(rows)
    reply = upload(stack, rows)
    assert reply["success"] is False, reply
    text = "\n".join([reply["msg"], *(r.get("msg", "") for r in reply.get("results", []))])
    assert re.search(names, text), text
    assert queue_state(gate) == before
    assert watch.changes_since(mark) == []


def test_nothing_moved_while_items_were_refused(gate, watch):
    """Runs after the refusals (before any valid item runs): not one monitored PV changed."""
    time.sleep(1.0)
    assert watch.changes_since(0) == []
    now = watch.snapshot()
    assert [name for name in now if not same(now[name], watch.initial[name])] == []


# ---- valid items -------------------------------------------------------------------------------

to_run: dict[str, str] = {}  # plan → uid of the queued copy that will run


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("plan", QUEUE_PLAN_NAMES)
def test_a_valid_item_of_each_plan_is_accepted_on_every_path(plan, path, stack, gate):
    item = battery.valid_item(plan)
    reply = add_over(path, stack, gate, item)
    assert reply["success"] is True, reply["msg"]
    queued = gate.queue_get(reload=True)["items"][-1]
    assert queued["item_uid"] == reply["item"]["item_uid"]
    assert (queued["name"], queued["kwargs"]) == (plan, item["kwargs"])
    if RUN_PATH[plan] == path:
        to_run[plan] = queued["item_uid"]
    else:
        gate.item_remove(uid=queued["item_uid"])


def test_a_valid_plate_sheet_becomes_one_item(stack, gate):
    before = len(gate.queue_get(reload=True)["items"])
    reply = upload(stack, sheet_rows())
    assert reply["success"] is True, reply
    queue = gate.queue_get(reload=True)["items"]
    assert len(queue) == before + 1 and queue[-1]["name"] == "ht_plate"
    assert queue[-1]["kwargs"]["plate"]["wells"] == battery.plate_wells()
    gate.item_remove(uid=queue[-1]["item_uid"])


def test_one_valid_item_of_each_plan_runs_to_completion(stack, gate, watch):
    for item in gate.queue_get(reload=True)["items"]:  # the sentinel, or anything a failed test left behind
        if item["item_uid"] not in to_run.values():
            gate.item_remove(uid=item["item_uid"])
    for plan in QUEUE_PLAN_NAMES:  # when run on its own, without the acceptance tests
        if plan not in to_run:
            to_run[plan] = gate.item_add(as_bplan(battery.valid_item(plan)))["item"]["item_uid"]
    queued = [item["item_uid"] for item in gate.queue_get(reload=True)["items"]]
    assert sorted(queued) == sorted(to_run.values())
    history_before, mark = gate.status(reload=True)["items_in_history"], watch.mark()
    gate.queue_start()
    wait_until_idle(gate, timeout=150)
    history = gate.history_get(reload=True)["items"][history_before:]
    outcome = {entry["name"]: entry["result"]["exit_status"] for entry in history}
    failed = {e["name"]: e["result"]["msg"] for e in history if e["result"]["exit_status"] != "completed"}
    assert not failed, failed
    assert outcome == dict.fromkeys(QUEUE_PLAN_NAMES, "completed")
    assert [entry["item_uid"] for entry in history] == queued
    # The monitors that saw nothing during the refusals are live: the runs moved every kind of device.
    moved = {name.removeprefix(stack.ioc_prefix) for name, _ in watch.changes_since(mark)}
    expected = {
        "SampleStage:X.RBV",
        "FShutter:Status_RBV",
        "SEC:Pump:FlowRate",
        "Robot:State_RBV",
        "Cell:Temp:SP",
    }
    assert expected <= moved, moved
