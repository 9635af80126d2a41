"""A plate's per-well RunStart contracts: the same as building each well's contract on its own."""

from __future__ import annotations

import pytest

from sibyls.metadata.contract import ContractError, RunMetadata
from sibyls.metadata.plate_spec import validate_plate


def _mixed_plate() -> dict:
    wells = []
    for index, (row, column) in enumerate((r, c) for r in "AB" for c in range(1, 13)):
        buffer_well, sample_well = f"{row}{column}", None
        if column % 2 == 0:
            continue
        sample_well = f"{row}{column + 1}"
        wells.append({"well": buffer_well, "sample_code": f"buf{index}", "sample_role": "buffer_blank"})
        sample = {
            "well": sample_well,
            "sample_code": f"s{index}",
            "buffer_well": buffer_well,
            "concentration_mg_ml": 1.0 + index,
        }
        if index % 3 == 0:
            sample |= {"sample_type": "protein", "molecular_weight_kda": 10.0 + index}
        if index % 4 == 0:
            sample |= {"description": f"well {sample_well}", "buffer_name": "HEPES"}
        wells.append(sample)
    wells.append({"well": "C1", "sample_code": "std", "sample_role": "standard", "buffer_well": "A1"})
    return {"plate_id": "MIXED", "wells": wells}


def test_every_wells_contract_equals_one_built_on_its_own():
    spec = validate_plate(_mixed_plate())
    common = {"operator": "staff", "cell_temperature_c": 10.0}
    runs = spec.well_metadata("PROJ", **common)
    assert len(runs) == len(spec.wells)
    for well, run in zip(spec.wells, runs, strict=True):
        fields = {
            "sample_code": well.sample_code,
            "project_code": "PROJ",
            "plan_type": "ht_plate",
            "plate_id": "MIXED",
            "well": well.well,
            "sample_role": well.sample_role,
            "concentration_mg_ml": well.concentration_mg_ml,
            "sample_type": well.sample_type,
            "molecular_weight_kda": well.molecular_weight_kda,
            "buffer_name": well.buffer_name,
            "description": well.description,
            **common,
        }
        alone = RunMetadata(**{k: v for k, v in fields.items() if v is not None})
        assert run == alone and run.model_dump() == alone.model_dump()


def test_a_plate_wide_value_the_contract_refuses_is_named_once_by_its_argument():
    spec = validate_plate(_mixed_plate())
    with pytest.raises(ContractError) as refused:
        spec.well_metadata("bad project/code", cell_temperature_c=70.0)
    assert [p.split(":")[0] for p in refused.value.problems] == ["project_code", "cell_temperature"]
