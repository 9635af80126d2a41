"""A zip archive written while it is sent: the page's "download all" of a run and of a project.

:func:`zip_chunks` yields the archive piece by piece as each file is read, so a run with many
frames starts downloading at once and never sits whole in memory or on disk.

:func:`sized_zip` makes an uncompressed (stored) archive whose exact length is known before the
first byte is sent: the response carries ``Content-Length`` and a browser shows the download's
progress. Its length is measured by writing the same archive with every file's bytes replaced by
zeros of the same length (a stored zip's headers depend only on names and sizes). A file whose size
changed between the listing and its turn in the stream ends the download with an error (the archive
would otherwise be silently wrong); files that are rewritten in place (records, summaries) are
therefore taken as bytes when the archive is listed.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

#: Bytes read from a file at a time.
BLOCK = 1 << 20
_ZEROS = bytes(BLOCK)


class _Sink(io.RawIOBase):
    """A write-only, unseekable stream whose written bytes are taken out in chunks."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


class _Counter(io.RawIOBase):
    """A write-only, unseekable stream that only counts the bytes written to it."""

    def __init__(self) -> None:
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.count += len(data)
        return len(data)


def zip_chunks(entries: Iterable[tuple[str, Path]]) -> Iterator[bytes]:
    """The zip of ``entries`` (name in the archive, file) as consecutive byte chunks."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, path in entries:
            with open(path, "rb") as source, archive.open(name, "w", force_zip64=True) as target:
                for block in iter(lambda: source.read(BLOCK), b""):  # noqa: B023 (used at once)
                    target.write(block)
                    if chunk := sink.take():
                        yield chunk
    yield sink.take()


@dataclass(frozen=True)
class SizedEntry:
    """One file of a sized archive: its name there and either its bytes or a file of known size."""

    name: str
    size: int
    path: Path | None = None
    data: bytes | None = None

    @classmethod
    def of_file(cls, name: str, path: Path) -> SizedEntry:
        return cls(name, path.stat().st_size, path=path)

    @classmethod
    def of_bytes(cls, name: str, data: bytes) -> SizedEntry:
        return cls(name, len(data), data=data)

    def blocks(self) -> Iterator[bytes]:
        """The entry's bytes; a file that is no longer ``size`` bytes long raises ``OSError``."""
        if self.data is not None:
            yield self.data
            return
        left = self.size
        with open(self.path, "rb") as source:
            while left > 0:
                block = source.read(min(BLOCK, left))
                if not block:
                    break
                left -= len(block)
                yield block
            if left or source.read(1):
                raise OSError(f"{self.name} changed while the archive was sent")


def _zeros(size: int) -> Iterator[bytes]:
    while size > 0:
        yield _ZEROS[: min(BLOCK, size)]
        size -= BLOCK


def _write_stored(stream: io.RawIOBase, entries: list[SizedEntry], real: bool) -> Iterator[None]:
    with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_STORED) as archive:
        for entry in entries:
            with archive.open(entry.name, "w", force_zip64=True) as target:
                for block in entry.blocks() if real else _zeros(entry.size):
                    target.write(block)
                    yield


def sized_zip(entries: Iterable[SizedEntry]) -> tuple[int, Iterator[bytes]]:
    """An uncompressed zip of ``entries``: its exact length in bytes, and its bytes as chunks."""
    entries = list(entries)
    counter = _Counter()
    for _ in _write_stored(counter, entries, real=False):
        pass

    def chunks() -> Iterator[bytes]:
        sink = _Sink()
        for _ in _write_stored(sink, entries, real=True):
            if chunk := sink.take():
                yield chunk
        yield sink.take()

    return counter.count, chunks()
