"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_SCHEMA_DIR = REPO_ROOT.parent / "shared" / "reference" / "lambda-ber-schema" / "schema"


@pytest.fixture(scope="session")
def upstream_schema_dir() -> Path:
    """The lambda-ber-schema reference copy in ../shared (skipped when absent, unless CI requires it)."""
    if not (SHARED_SCHEMA_DIR / "lambda_ber_schema.yaml").is_file():
        reason = f"lambda-ber reference schema not found at {SHARED_SCHEMA_DIR}"
        if os.environ.get("SIBYLS_REQUIRE_SHARED"):
            pytest.fail(reason + " (SIBYLS_REQUIRE_SHARED is set)")
        pytest.skip(reason)
    return SHARED_SCHEMA_DIR
