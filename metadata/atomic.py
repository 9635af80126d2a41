"""Atomic files: a temp file beside the target, fsynced, renamed over it only when complete.

A beamline user never finds a half-written record, export or state file: either the complete new
file, or nothing (or the old file). The one implementation every writer in the package uses. Temp
files are named ``.<name>.<random>.tmp`` in the target's folder (same file system, so the rename is
atomic); :func:`sibyls.metadata.housekeeping.cleanup_leftovers` removes any a crash leaves behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (skipped where a folder cannot be opened)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temp path to write; on success it replaces ``target``, on error it is removed.

    The caller writes the temp file by any means (``open``, ``h5py.File``, ``savefig``); when the
    block ends the file is fsynced and renamed to ``target``, and the folder is fsynced.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        publish(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def publish(tmp: Path | str, target: Path | str) -> None:
    """Rename a complete, fsynced temp file to ``target`` and make the rename durable.

    The last step of :func:`atomic_path`; also used directly by writers that build their temp file
    over time (the document log's per-run part file).
    """
    target = Path(target)
    os.replace(tmp, target)
    _fsync_dir(target.parent)


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
