"""A zip archive written while it is sent: the page's "download all" of a run (no temporary file).

:func:`zip_chunks` yields the archive piece by piece as each file is read, so a run with many
frames starts downloading at once and never sits whole in memory or on disk.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

#: Bytes read from a file at a time.
BLOCK = 1 << 20


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
