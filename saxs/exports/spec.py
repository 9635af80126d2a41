"""SPEC export: one or more runs as a SPEC data file (one ``#S`` scan per run), for SPEC-era tools.

Written with apstools' ``SpecWriterCallback`` from the runs' documents, atomically.
"""

from __future__ import annotations

from pathlib import Path

from sibyls.metadata.atomic import atomic_path
from sibyls.metadata.errors import ExchangeError
from sibyls.metadata.runs.sources import StoredRun
from sibyls.saxs.exports.tables import jsonable


def write_spec(runs: list[StoredRun], target: Path) -> Path:
    """A SPEC data file of one or more runs (apstools' SpecWriterCallback), one #S scan per run."""
    from apstools.callbacks import SpecWriterCallback

    with atomic_path(target) as tmp:
        tmp.unlink()
        writer = SpecWriterCallback(filename=str(tmp), auto_write=True)
        writer.newfile(str(tmp))
        for run in runs:
            for name, doc in run.documents():
                if name in ("start", "descriptor", "event", "stop"):
                    writer.receiver(name, jsonable(doc))
        if not tmp.exists():
            raise ExchangeError(f"the SPEC writer wrote nothing for {len(runs)} run(s)")
        tmp.write_text(tmp.read_text(encoding="utf-8").replace(str(tmp), str(target)), encoding="utf-8")
    return target
