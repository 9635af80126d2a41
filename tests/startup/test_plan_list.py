"""The committed plan/device list is what ``qserver-list-plans-devices`` makes of the profile today."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from sibyls.devices.epics_env import loopback_ca_env
from sibyls.startup.config import ProfileConfig
from sibyls.startup.stack.services import console_script

pytestmark = pytest.mark.slow

REPO_STARTUP = Path(__file__).resolve().parents[2] / "startup"


def test_existing_plans_and_devices_yaml_is_fresh(sim_ioc, tmp_path):
    """Fails when plans or devices changed without regenerating startup/existing_plans_and_devices.yaml.

    Regenerate with the IOC running: ``qserver-list-plans-devices --startup-module
    sibyls.startup.profile --file-dir startup`` (with the IOC's prefix as the ``ioc_prefix`` setting and
    the EPICS env).
    """
    config = ProfileConfig.given(ioc_prefix=sim_ioc.prefix, var_dir=tmp_path / "var")
    env = {**os.environ, **config.as_env(), **loopback_ca_env(sim_ioc.port)}  # this IOC, whatever ran before
    command = [
        console_script("qserver-list-plans-devices"),
        "--startup-module",
        "sibyls.startup.profile",
        "--file-dir",
        str(tmp_path),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    generated = yaml.safe_load((tmp_path / "existing_plans_and_devices.yaml").read_text())
    committed = yaml.safe_load((REPO_STARTUP / "existing_plans_and_devices.yaml").read_text())
    assert generated == committed, "startup/existing_plans_and_devices.yaml is stale: regenerate it"


def test_plan_list_has_every_sibyls_plan_with_ranges_and_no_bare_bluesky_plans():
    listing = yaml.safe_load((REPO_STARTUP / "existing_plans_and_devices.yaml").read_text())
    plans = listing["existing_plans"]
    from sibyls.plans import QUEUE_PLANS

    assert set(QUEUE_PLANS) <= set(plans)
    assert set(plans) - set(QUEUE_PLANS) <= {"mv", "mvr"}  # raw moves: admin only (permissions)
    params = {p["name"]: p for p in plans["saxs_exposure"]["parameters"]}
    assert "default" not in params["sample_code"] and "default" not in params["project_code"]
    assert (params["exposure_time"]["min"], params["exposure_time"]["max"]) == ("0.001", "60")
    assert (params["num_frames"]["min"], params["num_frames"]["max"]) == ("1", "10000")
    assert "Literal" in params["sample_role"]["annotation"]["type"]
    sec = {p["name"]: p for p in plans["sec_saxs"]["parameters"]}
    assert (sec["flow_rate"]["min"], sec["flow_rate"]["max"]) == ("0.01", "1")
    temp = {p["name"]: p for p in plans["saxs_exposure"]["parameters"]}["cell_temperature"]
    assert (temp["min"], temp["max"]) == ("4", "60")


def test_permissions_keep_users_to_measurement_plans():
    permissions = yaml.safe_load((REPO_STARTUP / "user_group_permissions.yaml").read_text())["user_groups"]
    from sibyls.plans import QUEUE_PLANS

    assert set(permissions["primary"]["allowed_plans"]) == set(QUEUE_PLANS)
    assert {"mv", "mvr"} <= set(permissions["primary"]["forbidden_plans"])
    assert permissions["admin"]["allowed_plans"] == [":.*"]
