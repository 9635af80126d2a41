"""The log sink: a service's output in a size-bounded file with a fixed number of backups."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from sibyls.devices.sim.log_sink import pump, rotating_handler


def feed(log: Path, data: bytes, max_bytes: int, backups: int) -> None:
    """Run the sink's loop on a pipe that gets ``data`` and is then closed (end of file)."""
    read_end, write_end = os.pipe()

    def write() -> None:
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(data)

    writer = threading.Thread(target=write)
    writer.start()
    handler = rotating_handler(str(log), max_bytes, backups)
    try:
        pump(read_end, handler, max_bytes)  # returns only at end of file
    finally:
        handler.close()
        os.close(read_end)
        writer.join()


def test_output_rotates_within_its_size_and_backup_count(tmp_path):
    log = tmp_path / "svc.log"
    lines = [f"line {i:05d} " + "x" * (i % 37) + "\n" for i in range(3000)]  # ~75 kB, 3 kB files
    feed(log, "".join(lines).encode(), max_bytes=3000, backups=3)

    files = [log, *(tmp_path / f"svc.log.{n}" for n in (1, 2, 3))]
    assert [path.name for path in sorted(tmp_path.iterdir())] == sorted(path.name for path in files)
    assert all(0 < path.stat().st_size < 3000 for path in files)
    # Oldest first, the kept files hold the last lines, each whole and in order.
    kept = b"".join(path.read_bytes() for path in reversed(files)).decode()
    assert kept.endswith(lines[-1]) and len(kept) > 9000
    assert lines[-len(kept.splitlines()) :] == kept.splitlines(keepends=True)
    for path in files:
        assert path.read_bytes().endswith(b"\n")  # no line split across two files


def test_bytes_are_kept_as_they_came_and_a_last_partial_line_is_written(tmp_path):
    log = tmp_path / "svc.log"
    data = "Å ångström\n".encode() + b"\xff\xfe not utf-8\n" + b"no newline at the end"
    feed(log, data, max_bytes=10_000, backups=2)
    assert log.read_bytes() == data
    assert sorted(path.name for path in tmp_path.iterdir()) == ["svc.log"]


def test_a_line_longer_than_the_file_is_split_not_lost(tmp_path):
    log = tmp_path / "svc.log"
    feed(log, b"a" * 2500 + b"\nend\n", max_bytes=1000, backups=5)
    files = sorted(tmp_path.iterdir(), key=lambda path: -int(path.suffix[1:]) if path.suffix != ".log" else 0)
    assert b"".join(path.read_bytes() for path in files) == b"a" * 2500 + b"\nend\n"
    assert all(path.stat().st_size < 1000 for path in files)
