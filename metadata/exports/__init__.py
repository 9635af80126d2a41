"""Exports of the records: one lambda-ber Dataset per project, valid against the upstream schema alone.

The exports of a run's data (NXcanSAS, CSV, JSON, SPEC, PNG) are in :mod:`sibyls.saxs.exports`.
"""

from sibyls.metadata.exports.lambda_ber import export_project

__all__ = ["export_project"]
