"""The one writer of secret files: mode 0600 from creation, also over a file that had a wider mode.

A key file holds the key and nothing else, no trailing newline: the ecosystem's clients read such
files verbatim (bluesky-widgets' ``queue-monitor --http-server-keyfile`` sends the whole file as
``Authorization: ApiKey …``; ``open(...).read()`` handed to REManagerAPI's ``zmq_public_key`` is
checked as a 40-character key), and ``$(cat file)`` in a shell gives the same key.
"""

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


def write_key(path: Path, key: str) -> None:
    """Write a key file (0600) as clients read it: exactly ``key``, no newline or other whitespace."""
    if not key or key != key.strip() or any(character.isspace() for character in key):
        raise ValueError(f"{path}: a key must be one word without whitespace")
    write_private(path, key)


def normalize_key_file(path: Path) -> bool:
    """Rewrite a key file written with a trailing newline (older stacks) as :func:`write_key` writes it,
    keeping the key; True if it was rewritten. A missing, empty or multi-word file is left alone."""
    path = Path(path)
    try:
        text = path.read_text()
    except (FileNotFoundError, IsADirectoryError):
        return False
    key = text.strip()
    if text == key or not key or any(character.isspace() for character in key):
        return False
    write_key(path, key)
    return True


def is_private(path: Path) -> bool:
    """True if ``path`` exists and neither group nor others may read it."""
    try:
        return not stat.S_IMODE(Path(path).stat().st_mode) & 0o077
    except OSError:
        return False
