"""Exports for users who don't use Python: NXcanSAS, CSV, JSON, SPEC, a PNG of I(q), and lambda-ber.

``export(source, fmt, out_dir, scan_id=/uid=/project=)`` writes stored runs in one of
:data:`FORMATS`; :func:`export_project` merges a project's run records into one lambda-ber Dataset
valid against the upstream schema alone.
"""

from sibyls.metadata.exports.formats import FORMATS, export, export_run, export_stem
from sibyls.metadata.exports.lambda_ber import export_project

__all__ = ["FORMATS", "export", "export_project", "export_run", "export_stem"]
