"""SIBYLS run metadata: the RunStart contract, lambda-ber records written at each run's stop, export.

Names are loaded on first use (PEP 562): a device module that needs only the rule table
(``sibyls.metadata.rules``) does not load the record writer with it.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "CELL_TEMPERATURE_MAX_C": "contract",
    "CELL_TEMPERATURE_MIN_C": "contract",
    "CODE_MAX_LENGTH": "contract",
    "CODE_PATTERN": "contract",
    "COLLECTION_MODES": "contract",
    "PLAN_TYPES": "contract",
    "RESERVED_KEYS": "contract",
    "SAMPLE_ROLES": "contract",
    "SAMPLE_TYPES": "contract",
    "SEAL_KEY": "contract",
    "WELL_COLUMNS": "contract",
    "WELL_PATTERN": "contract",
    "WELL_ROWS": "contract",
    "CollectionMode": "contract",
    "ContractError": "contract",
    "ContractGuard": "contract",
    "PlanType": "contract",
    "RunMetadata": "contract",
    "SampleRole": "contract",
    "SampleType": "contract",
    "contract_md_validator": "contract",
    "inject_run_metadata": "contract",
    "install_contract": "contract",
    "validate_run_metadata": "contract",
    "with_run_metadata": "contract",
    "RunSummary": "mapping",
    "documents_to_dataset": "mapping",
    "RecordWriter": "writer",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "RecordWriter",
    "RunSummary",
    "documents_to_dataset",
    "CELL_TEMPERATURE_MAX_C",
    "CELL_TEMPERATURE_MIN_C",
    "CODE_MAX_LENGTH",
    "CODE_PATTERN",
    "COLLECTION_MODES",
    "PLAN_TYPES",
    "RESERVED_KEYS",
    "SAMPLE_ROLES",
    "SAMPLE_TYPES",
    "SEAL_KEY",
    "WELL_COLUMNS",
    "WELL_PATTERN",
    "WELL_ROWS",
    "CollectionMode",
    "ContractError",
    "ContractGuard",
    "PlanType",
    "RunMetadata",
    "SampleRole",
    "SampleType",
    "contract_md_validator",
    "inject_run_metadata",
    "install_contract",
    "validate_run_metadata",
    "with_run_metadata",
]
