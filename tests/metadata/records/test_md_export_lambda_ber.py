"""Upstream-strict export: a project's records merged into one Dataset valid against lambda-ber alone."""

from __future__ import annotations

import argparse

import bluesky.plans as bp
import pytest
import yaml

from sibyls.metadata import RunMetadata, inject_run_metadata
from sibyls.metadata.records_schema import linkml_validate_cli
from sibyls.metadata.writer import RecordWriter
from sibyls.startup.cli import build_parser

pytestmark = pytest.mark.slow


def _parser() -> argparse.ArgumentParser:
    return build_parser()


def test_export_project_is_upstream_strict(RE, tmp_path, beamline, upstream_validator, upstream_schema_dir):
    writer = RecordWriter(tmp_path / "records", spool_dir=tmp_path / "spool")
    RE.subscribe(writer)
    common = dict(project_code="PRJ-7", sample_type="protein", concentration_mg_ml=2.0)
    RE(inject_run_metadata(bp.count([beamline["pilatus"]], num=2),
                           RunMetadata(sample_code="S1", plan_type="saxs_exposure", **common)))  # fmt: skip
    RE(inject_run_metadata(bp.count([beamline["pilatus"]]),
                           RunMetadata(sample_code="S1", plan_type="saxs_exposure", **common)))  # fmt: skip
    other = RunMetadata(sample_code="B1", project_code="OTHER", plan_type="count")
    RE(inject_run_metadata(bp.count([beamline["pilatus"]]), other))
    uids = [d["uid"] for n, d in RE.captured if n == "start"]
    assert writer.flush(30)

    out = tmp_path / "export" / "prj7.yaml"
    args = _parser().parse_args(["export-lambda-ber", "--records", str(writer.records_dir),
                                 "--project", "PRJ-7", "--out", str(out)])  # fmt: skip
    assert args.func(args) == 0
    data = yaml.safe_load(out.read_text())
    assert upstream_validator.validate(data) == []
    assert [r["id"] for r in data["experiment_runs"]] == [f"urn:uuid:{u}" for u in uids[:2]]
    assert len(data["studies"]) == 1 and len(data["samples"]) == 1 and len(data["instruments"]) == 1
    assert len(data["study_experiment_associations"]) == 2
    assert len(data["data_files"]) == 2
    assert all("bluesky_uid" not in r and "exit_status" not in r for r in data["experiment_runs"])
    assert f"Bluesky run {uids[0]}" in data["experiment_runs"][0]["description"]
    assert "exit status success" in data["experiment_runs"][0]["description"]
    assert not list(out.parent.glob(".*.tmp"))

    result = linkml_validate_cli([out], upstream_schema_dir, with_extension=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_export_unknown_project_fails_cleanly(tmp_path, capsys):
    args = _parser().parse_args(["export-lambda-ber", "--records", str(tmp_path), "--project", "NOPE",
                                 "--out", str(tmp_path / "x.yaml")])  # fmt: skip
    assert args.func(args) == 1
    assert "no run records" in capsys.readouterr().out
    assert not (tmp_path / "x.yaml").exists()


def test_parser_requires_arguments():
    with pytest.raises(SystemExit):
        _parser().parse_args(["export-lambda-ber", "--project", "P"])


def test_sibyls_cli_has_export_command(tmp_path, capsys):
    from sibyls.startup.cli import main

    assert (
        main(
            ["export-lambda-ber", "--records", str(tmp_path), "--project", "P", "--out", str(tmp_path / "o")]
        )
        == 1
    )
    assert "no run records for project 'P'" in capsys.readouterr().out
