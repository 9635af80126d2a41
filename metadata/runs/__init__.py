"""Storage of SIBYLS runs: document logs, run sources (a folder or Tiled), the Tiled writer, recovery.

A user gets every run stored twice (a JSON-lines document log per run and Tiled), readable back as
the same :class:`StoredRun` by scan id, uid or project, and a record for every run that opened even
when its RE worker died.
"""

from sibyls.metadata.runs.doclog import DocumentLog, read_document_log, write_document_log
from sibyls.metadata.runs.recovery import recover_unfinished_runs
from sibyls.metadata.runs.sources import (
    FolderRunSource,
    RunNotFoundError,
    RunSource,
    StoredRun,
    TiledRunSource,
    run_from_documents,
    select_runs,
)
from sibyls.metadata.runs.tiled import LazyTiledWriter, make_tiled_writer

__all__ = [
    "DocumentLog",
    "FolderRunSource",
    "LazyTiledWriter",
    "RunNotFoundError",
    "RunSource",
    "StoredRun",
    "TiledRunSource",
    "make_tiled_writer",
    "read_document_log",
    "recover_unfinished_runs",
    "run_from_documents",
    "select_runs",
    "write_document_log",
]
