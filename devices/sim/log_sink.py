"""Write a service's output into a size-bounded, rotating log file.

``python -m sibyls.devices.sim.log_sink LOG MAX_BYTES BACKUPS`` reads its standard input (the write end
is the service's stdout and stderr) and writes it, line by line and byte for byte, through
:class:`logging.handlers.RotatingFileHandler`: ``LOG`` stays under ``MAX_BYTES`` and at most
``BACKUPS`` older files (``LOG.1`` newest ... ``LOG.N``) are kept, so a month of running cannot fill a
disk. A line is never split across two files (unless it is longer than half of ``MAX_BYTES``).

It lives exactly as long as its pipe: it ignores SIGINT, SIGTERM and SIGHUP and ends at end of file,
when the service and every child that inherited its output are gone. A write that fails (disk full)
drops that line and keeps reading, so the service never blocks on a sink that stopped reading.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import select
import signal
import sys

#: A partial line (no newline yet) is written after this many seconds without more output.
PARTIAL_LINE_WAIT_S = 1.0
#: The most bytes read at once (and the longest record written, for large MAX_BYTES).
READ_SIZE = 65536


class _DropErrors(logging.handlers.RotatingFileHandler):
    """A rotating handler that silently drops what it cannot write (its stderr is nowhere)."""

    terminator = ""  # each record is raw output that keeps its own newline

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        pass


def rotating_handler(path: str, max_bytes: int, backups: int) -> logging.Handler:
    """The handler that writes raw output into ``path`` (bytes kept as they came, message only)."""
    handler = _DropErrors(
        path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", errors="surrogateescape"
    )
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def pump(fd: int, handler: logging.Handler, max_bytes: int) -> None:
    """Copy everything readable from ``fd`` into ``handler``, one record per line, until end of file."""
    longest = max(1, min(READ_SIZE, max_bytes // 2))
    pending = b""
    while True:
        readable, _, _ = select.select([fd], [], [], PARTIAL_LINE_WAIT_S if pending else None)
        if not readable:  # a prompt or progress without a newline: show it anyway
            _emit(handler, pending)
            pending = b""
            continue
        chunk = os.read(fd, READ_SIZE)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            line += b"\n"
            for start in range(0, len(line), longest):
                _emit(handler, line[start : start + longest])
        while len(pending) >= longest:
            _emit(handler, pending[:longest])
            pending = pending[longest:]
    if pending:
        _emit(handler, pending)


def _emit(handler: logging.Handler, data: bytes) -> None:
    message = data.decode("utf-8", errors="surrogateescape")
    handler.handle(logging.LogRecord("service", logging.INFO, "", 0, message, None, None))


def main(argv: list[str]) -> int:
    path, max_bytes, backups = argv[0], int(argv[1]), int(argv[2])
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    handler = rotating_handler(path, max_bytes, backups)
    try:
        pump(sys.stdin.fileno(), handler, max_bytes)
    finally:
        handler.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
