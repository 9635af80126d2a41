"""Start-up housekeeping: temp and partial files our own writers leave behind when a process dies.

A beamline user never sees half-written files in the folders they browse. Call
:func:`cleanup_leftovers` when the environment opens (after :func:`recover_unfinished_runs`, though
either order is safe): it removes

* document-log part files ``runs/.<uid>.<random>.jsonl.part`` that no live process holds and that
  hold no run to recover;
* record temp files ``.<name>.yaml.<random>.tmp`` (and spooled-summary temp files
  ``.<name>.run.json.<random>.tmp``) in the records and spool folders;
* frame files ``data/**/*.h5.partial`` the IOC never finished, except the one it is writing now
  (pass it as ``keep``; :func:`acquisition_partial` finds it from the detector).

Temp and partial files younger than ``min_age_s`` are left alone: another process may still be
writing them.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: ``atomic_write_text`` temp files: ``.<name>.<random>.tmp`` (records and spooled summaries).
RECORD_TEMP_PATTERN = re.compile(r"^\..+\.(yaml|run\.json)\.[a-z0-9_]+\.tmp$")


@dataclass
class Leftovers:
    """What :func:`cleanup_leftovers` removed."""

    part_files: list[Path] = field(default_factory=list)
    temp_files: list[Path] = field(default_factory=list)
    partial_frames: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.part_files) + len(self.temp_files) + len(self.partial_frames)


def acquisition_partial(detector: Any) -> Path | None:
    """The ``.h5.partial`` file the detector's IOC is writing now, or None when it is idle.

    Reads the areaDetector-style file PVs (``FileTemplate % (FilePath, FileName, FileNumber)``
    names the file of the acquisition in progress).
    """
    try:
        state = detector.detector_state.get(use_monitor=False)
        if state in ("Idle", "Error"):
            return None
        template = detector.file_template.get(use_monitor=False)
        name = template % (
            detector.file_path.get(use_monitor=False),
            detector.file_name.get(use_monitor=False),
            int(detector.file_number.get(use_monitor=False)),
        )
    except Exception as exc:
        log.warning(
            "cannot tell which frame file %s is writing (%s)", getattr(detector, "name", detector), exc
        )
        return None
    return Path(name + ".partial")


def _old(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False


def _remove(path: Path, into: list[Path]) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        log.warning("cannot remove leftover %s: %s", path, exc)
        return
    into.append(path)


def cleanup_leftovers(
    var_dir: Path | str | None = None,
    *,
    runs_dir: Path | str | None = None,
    records_dir: Path | str | None = None,
    spool_dir: Path | str | None = None,
    data_dir: Path | str | None = None,
    keep: Iterable[Path | str | None] = (),
    min_age_s: float = 60.0,
) -> Leftovers:
    """Remove our own leftover temp and partial files; returns what went.

    Folders default to ``<var_dir>/runs``, ``records``, ``spool`` and ``data``; a folder that is
    neither given nor derivable is skipped. ``keep``: partial frame files not to touch (the IOC's
    current acquisition).
    """
    from sibyls.metadata.runs.recovery import stale_part_files

    def folder(given: Path | str | None, name: str) -> Path | None:
        if given is not None:
            return Path(given)
        return Path(var_dir) / name if var_dir is not None else None

    runs, records, spool, data = (
        folder(runs_dir, "runs"),
        folder(records_dir, "records"),
        folder(spool_dir, "spool"),
        folder(data_dir, "data"),
    )
    cutoff = time.time() - min_age_s
    removed = Leftovers()
    if runs is not None:
        for part in stale_part_files(runs):
            if _old(part, cutoff):
                _remove(part, removed.part_files)
    for where in (records, spool):
        if where is None or not where.is_dir():
            continue
        for tmp in where.rglob(".*.tmp"):
            if RECORD_TEMP_PATTERN.match(tmp.name) and _old(tmp, cutoff):
                _remove(tmp, removed.temp_files)
    if data is not None and data.is_dir():
        kept = {Path(p).resolve() for p in keep if p}
        for partial in data.rglob("*.h5.partial"):
            if partial.resolve() not in kept and _old(partial, cutoff):
                _remove(partial, removed.partial_frames)
        # The IOC reserves disk beside a frame file it writes (``<file>.reserve``) so that closing
        # it never fails on a full disk; an IOC that died mid-acquisition leaves the reservation.
        for reserve in data.rglob("*.h5.partial.reserve"):
            owner = reserve.with_name(reserve.name.removesuffix(".reserve"))
            if owner.resolve() not in kept and _old(reserve, cutoff):
                _remove(reserve, removed.partial_frames)
    if len(removed):
        log.warning(
            "removed leftovers of a previous run: %d document-log part file(s), %d record temp file(s), "
            "%d unfinished frame file(s)",
            len(removed.part_files),
            len(removed.temp_files),
            len(removed.partial_frames),
        )
    return removed
