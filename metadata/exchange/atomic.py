"""Write output files atomically: a temp file beside the target, renamed only when complete."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class ExchangeError(RuntimeError):
    """A run, record or data file cannot be exported or converted; the message says why."""


@contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temp path to write; on success it replaces ``target``, on error it is removed.

    A user never finds a partial export: either the complete file or nothing (or the old file).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
