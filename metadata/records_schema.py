"""Validate lambda-ber records with LinkML: upstream schema plus our extension, or upstream alone.

The upstream lambda-ber-schema has no license and is not shipped: callers pass the directory holding
``lambda_ber_schema.yaml`` (and its imports). The extension imports it by name, so the helper
assembles both in a temporary directory. A user gets one call that says which records are invalid
and why. Needs the ``linkml`` package (a test dependency).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

EXTENSION_SCHEMA_NAME = "sibyls_bluesky_extension.yaml"
UPSTREAM_SCHEMA_NAME = "lambda_ber_schema.yaml"
UPSTREAM_FILES = ("lambda_ber_schema.yaml", "lambda_ber_types.yaml", "functional_annotation.yaml")
TARGET_CLASS = "Dataset"


def extension_schema_text() -> str:
    """The project's LinkML extension schema (YAML text)."""
    return resources.files("sibyls.metadata").joinpath(EXTENSION_SCHEMA_NAME).read_text()


def assemble_schema(upstream_dir: Path, dest: Path, *, with_extension: bool = True) -> Path:
    """Put the upstream schema files (and the extension) into ``dest``; return the schema to load."""
    upstream_dir = Path(upstream_dir)
    if not (upstream_dir / UPSTREAM_SCHEMA_NAME).is_file():
        raise FileNotFoundError(f"no {UPSTREAM_SCHEMA_NAME} in {upstream_dir}")
    dest.mkdir(parents=True, exist_ok=True)
    for name in UPSTREAM_FILES:
        if (upstream_dir / name).is_file():
            shutil.copyfile(upstream_dir / name, dest / name)
    if not with_extension:
        return dest / UPSTREAM_SCHEMA_NAME
    (dest / EXTENSION_SCHEMA_NAME).write_text(extension_schema_text())
    return dest / EXTENSION_SCHEMA_NAME


class RecordValidator:
    """Loads the schema once (about 2 s) and validates many records like ``linkml-validate`` does."""

    def __init__(self, upstream_dir: Path, *, with_extension: bool = True):
        self.upstream_dir = Path(upstream_dir)
        self.with_extension = with_extension

    @cached_property
    def _validator(self) -> Any:
        from linkml.validator import Validator
        from linkml.validator.plugins import JsonschemaValidationPlugin

        with tempfile.TemporaryDirectory(prefix="sibyls-schema-") as tmp:
            path = assemble_schema(self.upstream_dir, Path(tmp), with_extension=self.with_extension)
            validator = Validator(str(path), validation_plugins=[JsonschemaValidationPlugin(closed=True)])
            # The JSON Schema is generated (and cached) on first use: do it while the files exist.
            validator.validate({"id": "sibyls:warm-up"}, TARGET_CLASS)
        return validator

    def validate(self, record: dict) -> list[str]:
        """Error messages for one record (an empty list means valid)."""
        report = self._validator.validate(record, TARGET_CLASS)
        return [r.message for r in report.results if r.severity.value == "ERROR"]

    def validate_files(self, paths: Iterable[Path]) -> dict[Path, list[str]]:
        """Error messages per file."""
        return {Path(p): self.validate(yaml.safe_load(Path(p).read_text())) for p in paths}


def linkml_validate_cli(
    paths: Iterable[Path], upstream_dir: Path, *, with_extension: bool = True
) -> subprocess.CompletedProcess:
    """Run the ``linkml-validate`` command on the files (one call; ``returncode`` 0 means all valid)."""
    exe = Path(sys.executable).with_name("linkml-validate")
    with tempfile.TemporaryDirectory(prefix="sibyls-schema-") as tmp:
        schema = assemble_schema(upstream_dir, Path(tmp), with_extension=with_extension)
        cmd = [str(exe), "-s", str(schema), "-C", TARGET_CLASS, *[str(p) for p in paths]]
        return subprocess.run(cmd, capture_output=True, text=True, check=False)
