"""Frame-file checksums computed off the RunEngine thread, as soon as each file is final.

A user gets the same ``sha256:`` checksum, size and date in each record's DataFile as before, but the
RunEngine (and the queue) never waits for them: the record writer hands every frame file to a
:class:`FileHasher` when the event that references it is emitted (the detector has closed the
file by then), one background thread hashes it, and the record is assembled later from the
result. A result is used only while the file's identity (inode, size, mtime, ctime) is unchanged;
a file modified after it was hashed is hashed again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: A file is read only once its last modification is at least this old: file times tick in
#: jiffies (1-10 ms), so a write in the same tick as an earlier one would leave mtime unchanged.
RACY_WINDOW_S = 0.02
_BLOCK = 4 << 20


class Cancelled(Exception):
    """Hashing was abandoned (the writer is shutting down); the caller spools instead."""


def sha256_file(path: Path | str) -> str:
    """SHA-256 hex digest of a file as it is now (no stability check; see :func:`file_facts`)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def signature(st: os.stat_result) -> tuple[int, int, int, int]:
    """What identifies one version of a file: inode, size, mtime and ctime (ns)."""
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True)
class FileFacts:
    """A file's size, modification time and SHA-256, valid while its signature is unchanged."""

    path: str
    size: int
    mtime_ns: int
    sha256: str
    ino: int
    ctime_ns: int

    def matches(self, st: os.stat_result) -> bool:
        """True when ``st`` describes the same version of the file that was hashed."""
        return signature(st) == (self.ino, self.size, self.mtime_ns, self.ctime_ns)

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FileFacts:
        return cls(**state)


def file_facts(path: Path | str, cancelled: Callable[[], bool] | None = None, attempts: int = 3) -> FileFacts:
    """Stat and hash ``path``; raises ``OSError`` when it is missing or unreadable.

    The content is read only after :data:`RACY_WINDOW_S` has passed since its last change and
    the result is kept only if the file did not change while it was read (else it is read again,
    up to ``attempts`` times; the last result then carries the first stat so it never matches).
    """
    path = str(path)
    buffer = bytearray(_BLOCK)
    view = memoryview(buffer)
    for attempt in range(attempts):
        before = os.stat(path)
        wait = before.st_mtime_ns / 1e9 + RACY_WINDOW_S - time.time()
        if wait > 0:
            time.sleep(min(wait, RACY_WINDOW_S))
            before = os.stat(path)
        digest = hashlib.sha256()
        with open(path, "rb", buffering=0) as fh:
            while n := fh.readinto(buffer):
                digest.update(view[:n])
                if cancelled is not None and cancelled():
                    raise Cancelled(path)
            after = os.fstat(fh.fileno())
        if signature(after) == signature(before) or attempt == attempts - 1:
            if signature(after) != signature(before):
                log.warning("%s kept changing while it was hashed; it will be hashed again", path)
            sha = digest.hexdigest()
            return FileFacts(path, before.st_size, before.st_mtime_ns, sha, before.st_ino, before.st_ctime_ns)
    raise AssertionError("unreachable")


class FileHasher:
    """One daemon thread hashing files in the order they were handed in.

    ``submit(path)`` is cheap (the RunEngine thread calls it per event); ``result(path)`` waits for
    that file's hash and checks it is still current, hashing inline otherwise. ``close()`` stops
    the thread; anyone waiting then gets :class:`Cancelled`.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._queued: set[str] = set()
        self._running: str | None = None
        self._done: dict[str, FileFacts] = {}
        self._closing = False
        self._thread: threading.Thread | None = None

    @property
    def closing(self) -> bool:
        return self._closing

    def submit(self, path: Path | str) -> None:
        """Hash ``path`` in the background (again, if it was hashed before: it may have grown)."""
        key = str(path)
        with self._cond:
            if self._closing or key in self._queued:
                return
            self._queued.add(key)
            self._queue.append(key)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="sibyls-file-hasher", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def backlog(self) -> int:
        """Files waiting to be hashed (including the one being hashed)."""
        with self._cond:
            return len(self._queue) + (self._running is not None)

    def known(self, path: Path | str) -> FileFacts | None:
        """The last hash of ``path`` if there is one (not checked against the file)."""
        with self._cond:
            return self._done.get(str(path))

    def result(self, path: Path | str, known: FileFacts | None = None) -> FileFacts:
        """Up-to-date facts for ``path``: waits for its background hash, checks it, else hashes inline.

        Raises ``OSError`` when the file is missing or unreadable, :class:`Cancelled` on close.
        """
        key = str(path)
        with self._cond:
            while key in self._queued or self._running == key:
                if self._closing:
                    raise Cancelled(key)
                self._cond.wait(0.5)
            facts = self._done.get(key) or known
        st = os.stat(key)
        if facts is not None and facts.matches(st):
            return facts
        if self._closing:
            raise Cancelled(key)
        return file_facts(key, cancelled=lambda: self._closing)

    def forget(self, paths) -> None:
        """Drop the kept results for ``paths`` (their record is written)."""
        with self._cond:
            for path in paths:
                self._done.pop(str(path), None)

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop hashing (the file being read is abandoned) and end the thread."""
        with self._cond:
            self._closing = True
            self._queue.clear()
            self._queued.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                key = self._queue.popleft()
                self._queued.discard(key)
                self._running = key
            facts = None
            try:
                facts = file_facts(key, cancelled=lambda: self._closing)
            except Cancelled:
                pass
            except OSError as exc:
                log.debug("cannot hash %s yet: %s", key, exc)
            except Exception:
                log.exception("hashing %s failed", key)
            with self._cond:
                self._running = None
                if facts is not None:
                    self._done[key] = facts
                else:
                    self._done.pop(key, None)
                self._cond.notify_all()
