"""Help texts of the plan parameters without a rule of their own (the page shows each under its field).

Parameters with a rule (limits, units) take their words from the rule table
(:func:`sibyls.metadata.rules.annotations`); the rest are described here once, in plain words
(no reStructuredText), and each plan's ``parameter_annotation_decorator`` picks the ones it has.
"""

from typing import Any

FIELD_HELP: dict[str, str] = {
    "sample_code": "Name of what is in the beam, e.g. GluRS_1; starts with a letter or digit, "
    "becomes part of the file names.",
    "project_code": "Project the run is filed under (its records and files are kept per project).",
    "sample_role": "sample, buffer_blank (a buffer to subtract) or standard.",
    "sample_type": "Kind of macromolecule (recorded with the run).",
    "molecular_weight_kda": "Expected molecular weight in kDa, if known (recorded with the run).",
    "buffer_name": "Buffer the sample is in, e.g. 20 mM HEPES pH 7.5, 150 mM NaCl.",
    "buffer_run_uid": "Run uid of the buffer to subtract from this sample (from the history); "
    "without one the first look shows only I(q).",
    "proposal_id": "ALS proposal number, if any (recorded with the run).",
    "operator": "Who prepared or measured the sample (recorded with the run).",
    "description": "Free text about the sample or the run (recorded with it).",
    "start": "first position of the axis",
    "stop": "last position of the axis",
    "start1": "first position of the slow axis",
    "stop1": "last position of the slow axis",
    "start2": "first position of the fast axis",
    "stop2": "last position of the fast axis",
    "positions": "positions of the axis to read at, in order, e.g. [0, 0.5, 1]",
    "snake": "go back and forth along the fast axis (no return move between rows)",
    "axis": "axis to align",
    "dry_between_wells": "Dry the cell after cleaning it, before the next well.",
}


def field_help(*names: str) -> dict[str, dict[str, Any]]:
    """Queueserver annotations (description only) of the parameters ``names``."""
    return {name: {"description": FIELD_HELP[name]} for name in names}
