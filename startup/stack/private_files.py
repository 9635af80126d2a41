"""The one writer of secret files: mode 0600 from creation, also over a file that had a wider mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600); creates the parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)


def is_private(path: Path) -> bool:
    """True if ``path`` exists and neither group nor others may read it."""
    try:
        return not stat.S_IMODE(Path(path).stat().st_mode) & 0o077
    except OSError:
        return False
