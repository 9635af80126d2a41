"""The RunStart contract: the model's rules, the RunEngine guard and reserved-key protection."""

from __future__ import annotations

import re

import bluesky.plans as bp
import pytest
from bluesky import RunEngine
from ophyd.sim import det

from sibyls.metadata import (
    PLAN_TYPES,
    SEAL_KEY,
    WELL_PATTERN,
    ContractError,
    RunMetadata,
    contract_md_validator,
    inject_run_metadata,
    install_contract,
    validate_run_metadata,
    with_run_metadata,
)

GOOD = {"sample_code": "GluRS_1", "project_code": "PRJ-2025.01", "plan_type": "count"}


@pytest.fixture
def guarded_re():
    RE = RunEngine({})
    install_contract(RE)
    docs: list[tuple[str, dict]] = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE.captured = docs
    return RE


def test_plan_types_closed_set():
    assert PLAN_TYPES == (
        "saxs_exposure", "ht_plate", "sec_saxs", "temperature_series", "alignment",
        "count", "scan", "rel_scan", "list_scan", "grid_scan",
    )  # fmt: skip


def test_codes_trimmed_and_checked():
    md = RunMetadata(sample_code="  GluRS_1 ", project_code="PRJ", plan_type="scan")
    assert md.sample_code == "GluRS_1"
    for bad, rule in [("", "empty"), ("   ", "empty"), ("a b", "letters, digits"), ("../x", "letters"),
                      ("x" * 41, "at most 40"), ("-lead", "start with")]:  # fmt: skip
        with pytest.raises(ContractError) as err:
            validate_run_metadata(sample_code=bad, project_code="P", plan_type="count")
        assert err.value.problems[0].startswith("sample_code:")
        assert rule in err.value.problems[0]


def test_every_error_names_field_and_rule():
    with pytest.raises(ContractError) as err:
        validate_run_metadata(
            sample_code="S", project_code="P", plan_type="fly", well="Z13", cell_temperature_c=80,
            sample_type="lipid", sample_role="blank", concentration_mg_ml=0, buffer_run_uid="not a uid!",
        )  # fmt: skip
    text = "\n".join(err.value.problems)
    for field in ("plan_type", "well", "cell_temperature_c", "sample_type", "sample_role",
                  "concentration_mg_ml", "buffer_run_uid"):  # fmt: skip
        assert re.search(rf"^{field}: ", text, re.M), field
    assert "A1 to H12" in text and "60" in text and "'protein'" in text


def test_optional_saxs_fields_and_cross_field_rules():
    md = RunMetadata(
        **{**GOOD, "plan_type": "ht_plate"}, plate_id="PL-7", well="h12", sample_type="protein",
        concentration_mg_ml=2.5, buffer_name="Tris", buffer_composition=["25 mM Tris", "150 mM NaCl"],
        sample_role="sample", cell_temperature_c=20, proposal_id="ALS-1234", operator="kb",
        description="first", molecular_weight_kda=54.8, buffer_run_uid="0f3a9c1e-1111-2222-3333-444455556666",
    )  # fmt: skip
    assert md.well == "H12" and md.effective_collection_mode == "batch"
    assert re.match(WELL_PATTERN, "A1") and not re.match(WELL_PATTERN, "I1")
    with pytest.raises(ContractError, match="well: required by plan_type 'ht_plate'"):
        validate_run_metadata(**{**GOOD, "plan_type": "ht_plate"})
    with pytest.raises(ContractError, match="plate_id: required with well"):
        validate_run_metadata(**GOOD, well="A1")
    with pytest.raises(ContractError, match="cannot have collection_mode 'batch'"):
        validate_run_metadata(**{**GOOD, "plan_type": "sec_saxs"}, collection_mode="batch")
    assert RunMetadata(**{**GOOD, "plan_type": "sec_saxs"}).effective_collection_mode == "sec_saxs"
    with pytest.raises(ContractError, match="sample_kode: not a contract field"):
        validate_run_metadata(**GOOD, sample_kode="x")


def test_validator_runs_before_uid_and_time():
    contract_md_validator(dict(GOOD, scan_id=3, plan_name="count"))
    with pytest.raises(ContractError, match="uid: reserved"):
        contract_md_validator(dict(GOOD, uid="abc"))


def test_bare_count_refused_naming_missing_fields(guarded_re):
    with pytest.raises(ContractError) as err:
        guarded_re(bp.count([det]))
    text = str(err.value)
    assert "sample_code: required field is missing" in text
    assert "project_code: required field is missing" in text
    assert "plan_type: 'generator'" in text
    assert not guarded_re.captured  # nothing was emitted: the run never opened


def test_bare_count_with_valid_metadata_runs(guarded_re):
    (uid,) = guarded_re(bp.count([det]), **GOOD)
    start = guarded_re.captured[0][1]
    assert start["uid"] == uid and start["plan_type"] == "count" and start["sample_code"] == "GluRS_1"
    guarded_re.captured.clear()
    guarded_re(bp.count([det], md=dict(GOOD, plan_type="alignment")))
    assert guarded_re.captured[0][1]["plan_type"] == "alignment"


def test_injected_metadata_wins_over_plan_md_and_sets_plan_type(guarded_re):
    md = RunMetadata(**{**GOOD, "plan_type": "saxs_exposure"}, cell_temperature_c=20)
    guarded_re(inject_run_metadata(bp.count([det], md={"sample_code": "inner"}), md))
    start = guarded_re.captured[0][1]
    assert start["plan_type"] == "saxs_exposure"  # not the RunEngine's 'generator'
    assert start["sample_code"] == "GluRS_1" and start["cell_temperature_c"] == 20
    assert start[SEAL_KEY] == {"sample_code": "GluRS_1", "project_code": "PRJ-2025.01",
                               "plan_type": "saxs_exposure", "cell_temperature_c": 20.0}  # fmt: skip


@pytest.mark.parametrize(
    "key,value",
    [
        ("sample_code", "other"),
        ("project_code", "X"),
        ("plan_type", "scan"),
        ("well", "H12"),
        ("concentration_mg_ml", 99.0),
    ],
)
def test_queue_meta_cannot_override_contract(guarded_re, key, value):
    md = RunMetadata(**GOOD)
    with pytest.raises(ContractError, match=rf"{key}: reserved; the plan set"):
        guarded_re(inject_run_metadata(bp.count([det]), md), **{key: value})  # what qserver does with meta
    assert not [n for n, _ in guarded_re.captured if n == "start"]


@pytest.mark.parametrize("key", ["uid", "time", "scan_id"])
def test_queue_meta_cannot_set_run_engine_keys(guarded_re, key):
    with pytest.raises(ContractError, match=rf"{key}: reserved"):
        guarded_re(inject_run_metadata(bp.count([det]), RunMetadata(**GOOD)), **{key: 12345})
    assert not guarded_re.captured


@pytest.mark.parametrize("key", ["plan_type", "sample_code", "project_code"])
def test_re_md_cannot_carry_contract_keys(guarded_re, key):
    guarded_re.md[key] = "count" if key == "plan_type" else "FROM_RE_MD"
    with pytest.raises(ContractError, match=rf"{key}: reserved; remove it from RE.md"):
        guarded_re(inject_run_metadata(bp.count([det]), RunMetadata(**GOOD)))
    del guarded_re.md[key]
    guarded_re(inject_run_metadata(bp.count([det]), RunMetadata(**GOOD)))
    assert guarded_re.captured[0][1]["plan_type"] == "count"


def test_plain_validator_restores_plan_values_over_re_md():
    """Without the bound guard, RE.md is the lowest layer: the plan's injected values still win."""
    RE = RunEngine({}, md_validator=contract_md_validator)
    RE.md.update(plan_type="scan", sample_code="stale")
    docs = []
    RE(inject_run_metadata(bp.count([det]), RunMetadata(**GOOD)), lambda n, d: docs.append(d))
    assert docs[0]["plan_type"] == "count" and docs[0]["sample_code"] == "GluRS_1"


def test_plan_md_with_reserved_run_engine_key_refused(guarded_re):
    with pytest.raises(ContractError, match="scan_id: reserved"):
        guarded_re(inject_run_metadata(bp.count([det], md={"scan_id": 9}), RunMetadata(**GOOD)))


def test_decorator_validates_before_first_message(guarded_re):
    moved = []

    @with_run_metadata("saxs_exposure")
    def exposure(detectors, *, sample_code, project_code, concentration_mg_ml=None):
        moved.append(True)
        yield from bp.count(detectors)

    guarded_re(exposure([det], sample_code="S1", project_code="P1", concentration_mg_ml=1.5))
    start = guarded_re.captured[0][1]
    assert start["plan_type"] == "saxs_exposure" and start["concentration_mg_ml"] == 1.5
    moved.clear()
    with pytest.raises(ContractError, match="sample_code: must not be empty or blank"):
        list(exposure([det], sample_code="", project_code="P1"))
    assert not moved
