"""Exports for users who don't use Python: NXcanSAS, CSV, JSON, SPEC and a PNG of I(q).

``export(source, fmt, out_dir, scan_id=/uid=/project=)`` writes stored runs in one of
:data:`FORMATS`. The lambda-ber export of a project's records is
:func:`sibyls.metadata.exports.lambda_ber.export_project`.
"""

from sibyls.saxs.exports.formats import FORMATS, export, export_run, export_stem

__all__ = ["FORMATS", "export", "export_run", "export_stem"]
