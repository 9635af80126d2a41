"""A failed plate on the real stack: a plate of LAB_B aborted during its second well gives the
project's people one notice naming that well and why, and the well never measured; with no SMTP host
set (the session stack) it is logged and saved, not sent."""

from __future__ import annotations

import email
import email.policy
import time

import pytest
from bluesky_queueserver_api import BPlan
from stack_helpers import http, wait_until_idle

from sibyls.startup.stack import http_login, profile_config

pytestmark = pytest.mark.slow

PROJECT, PLATE = "LAB_B", "FAILED_PLATE"


def test_a_plate_aborted_during_a_well_sends_the_failed_plate_notice(stack, api):
    from sibyls.metadata.plate_registry import PlateRegistry

    robot = {
        "A1": {"sample_code": "fp_buf", "kind": "buffer"},
        **{w: {"sample_code": f"fp_{w}", "kind": "sample", "rg_a": 20.0, "concentration_mg_ml": 2.0,
               "mw_kda": 50.0} for w in ("A2", "A3")},
    }  # fmt: skip
    PlateRegistry(profile_config(stack).plate_registry).add({"plate_id": PLATE, "wells": robot})
    time.sleep(2.5)  # the simulated robot re-reads the plate registry every second
    buffer = {"well": "A1", "sample_code": "fp_buf", "sample_role": "buffer_blank", "num_frames": 2}
    sample = {"buffer_well": "A1", "concentration_mg_ml": 2.0}
    wells = [
        {**buffer, "exposure_time": 1.0},
        # the second well takes 10 x 60 s at the stack's time scale 50: about 12 s, time to abort it
        {**sample, "well": "A2", "sample_code": "fp_A2", "num_frames": 10, "exposure_time": 60.0},
        {**sample, "well": "A3", "sample_code": "fp_A3", "num_frames": 2, "exposure_time": 1.0},
    ]
    reply = api.item_add(BPlan("ht_plate", {"plate_id": PLATE, "wells": wells}, PROJECT))
    assert reply["success"], reply
    item_uid = reply["item"]["item_uid"]
    token = http_login(stack, "staff")
    api.queue_start()
    deadline = time.monotonic() + 120
    while True:  # until the second well's run is under way
        progress = http(stack, "GET", "/api/sibyls/progress", token=token).json()
        if progress.get("state") == "running" and str(progress.get("well")) == "2/3":
            break
        assert time.monotonic() < deadline, progress
        time.sleep(0.2)
    time.sleep(1.0)
    assert api.re_pause("immediate")["success"]
    api.wait_for_idle_or_paused(timeout=60)
    assert api.re_abort()["success"]
    wait_until_idle(api)
    assert api.history_get()["items"][-1]["result"]["exit_status"] == "aborted"

    saved = profile_config(stack).state_dir / "notices" / f"{PROJECT}_{PLATE}_{item_uid[:8]}_failed.eml"
    deadline = time.monotonic() + 120
    while not saved.is_file():
        assert time.monotonic() < deadline, f"no failed-plate notice at {saved}"
        time.sleep(0.5)
    message = email.message_from_bytes(saved.read_bytes(), policy=email.policy.default)
    assert message["Subject"] == f"SIBYLS: plate {PLATE} of {PROJECT}: failed well(s) A2"
    assert message["To"] == "user2@example.org"
    text = message.get_body(("plain",)).get_content()
    assert "A2: the plan was aborted during this well" in text
    assert "well 3 of the plate's 3: not measured" in text
    assert "A1:" not in text  # the buffer well succeeded
