"""lambda-ber records ⇄ Bluesky documents: records for stored runs, and a record replayed as documents.

A user gets records for past runs (:func:`records_from_runs`, the live writer's mapping) and a
record with its data files turned back into a valid Bluesky document stream
(:func:`replay_record`), e.g. to re-ingest a run into Tiled.
"""

from sibyls.metadata.replay.records import (
    load_record,
    record_to_documents,
    records_from_runs,
    replay_record,
    validate_documents,
)

__all__ = ["load_record", "record_to_documents", "records_from_runs", "replay_record", "validate_documents"]
