"""Storage and exchange of SIBYLS runs: Tiled, exports (NXcanSAS, CSV, JSON, SPEC, PNG), records ⇄ Bluesky."""

from sibyls.metadata.exchange.atomic import ExchangeError, atomic_path
from sibyls.metadata.exchange.doclog import DocumentLog, read_document_log, write_document_log
from sibyls.metadata.exchange.exports import FORMATS, export, export_run
from sibyls.metadata.exchange.records import (
    record_to_documents,
    records_from_runs,
    replay_record,
    validate_documents,
)
from sibyls.metadata.exchange.reduce import guinier_fit, read_frame_geometry, reduce_run
from sibyls.metadata.exchange.runs import (
    FolderRunSource,
    RunNotFoundError,
    StoredRun,
    TiledRunSource,
    run_from_documents,
)
from sibyls.metadata.exchange.tiled import LazyTiledWriter, make_tiled_writer

__all__ = [
    "FORMATS",
    "DocumentLog",
    "ExchangeError",
    "FolderRunSource",
    "LazyTiledWriter",
    "RunNotFoundError",
    "StoredRun",
    "TiledRunSource",
    "atomic_path",
    "export",
    "export_run",
    "guinier_fit",
    "make_tiled_writer",
    "read_document_log",
    "read_frame_geometry",
    "record_to_documents",
    "records_from_runs",
    "reduce_run",
    "replay_record",
    "run_from_documents",
    "validate_documents",
    "write_document_log",
]
