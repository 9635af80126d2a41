"""The soak's measuring tools on real processes and files: the RE worker is the manager's big child,
a gone process uses nothing, folder bytes count every file (and survive files vanishing)."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from sibyls.startup.stack.usage import folder_bytes, re_worker, rss

PARENT = """
import subprocess, sys, time
small = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
grow = "b = bytearray(80 * 2**20); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(60)"
big = subprocess.Popen([sys.executable, "-c", grow])
print(small.pid, big.pid, flush=True)
time.sleep(60)
"""


def test_the_re_worker_is_the_managers_largest_child():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        small, big = (int(pid) for pid in parent.stdout.readline().split())
        deadline = time.monotonic() + 30
        while rss(big) < 60 * 2**20 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert re_worker(parent.pid) == big
        assert rss(big) > rss(small) > 0
    finally:
        for child in psutil.Process(parent.pid).children():
            child.kill()
        parent.kill()
        parent.wait()


def test_a_process_that_is_gone_uses_nothing_and_has_no_worker():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert rss(gone.pid) == 0 and re_worker(gone.pid) is None


def test_folder_bytes_counts_every_file_below_and_a_missing_folder_is_empty(tmp_path):
    (tmp_path / "logs" / "old").mkdir(parents=True)
    (tmp_path / "logs" / "a.log").write_bytes(b"x" * 1000)
    (tmp_path / "logs" / "old" / "a.log.1").write_bytes(b"y" * 234)
    (tmp_path / "frames.h5").write_bytes(b"z" * 10)
    (tmp_path / "link").symlink_to(tmp_path / "frames.h5")  # the link itself, not its target again
    assert folder_bytes(tmp_path / "logs") == 1234
    assert folder_bytes(tmp_path) == 1244 + len(str(tmp_path / "frames.h5"))
    assert folder_bytes(tmp_path / "nowhere") == 0
