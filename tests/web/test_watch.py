"""``sibyls watch``: the terminal progress bar follows a queued item to its end, from the stack's Redis."""

from __future__ import annotations

import subprocess

import pytest

from sibyls.startup.stack.services import console_script

pytestmark = pytest.mark.slow


def watch(stack, *options: str, timeout: float = 120) -> subprocess.CompletedProcess:
    command = [console_script("sibyls"), "watch", "--var-dir", stack.var_dir, *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def test_watch_shows_frames_and_etas_until_the_queue_is_done(stack, api):
    item = {
        "name": "saxs_exposure",
        "item_type": "plan",
        "kwargs": {
            "sample_code": "web_watch_1",
            "project_code": "WEB_WATCH",
            "exposure_time": 5.0,
            "num_frames": 12,
        },
    }
    assert api.item_add(item)["success"]
    queued = watch(stack, "--once")
    assert queued.returncode == 0 and "queue 1 item(s), ETA" in queued.stdout
    command = [console_script("sibyls"), "watch", "--var-dir", stack.var_dir, "--until-idle"]
    follower = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = follower.stdout.readline()  # it follows the queue before the queue starts
        assert "queue 1 item(s)" in first, first
        assert api.queue_start()["success"]
        out, err = follower.communicate(timeout=120)
    finally:
        follower.kill()
    assert follower.returncode == 0, err
    followed = subprocess.CompletedProcess(command, 0, first + out, err)
    lines = followed.stdout.splitlines()
    running = [line for line in lines if line.startswith("saxs_exposure web_watch_1 | [")]
    assert any("frame " in line and "/12 | ETA" in line and "queue ETA" in line for line in running), lines
    assert lines[-1] == "last: saxs_exposure web_watch_1 success | queue empty"
    assert "caRepeater" not in followed.stdout + followed.stderr
