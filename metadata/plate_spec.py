"""HT-SAXS plate definitions: what a user submits for a 96-well plate, checked as a whole.

The whole plate is validated before the robot moves: wells unique within A1–H12, every sample's
buffer present and measured before it, concentrations positive, exposures and frame counts in
range, and every well's run metadata valid under the RunStart contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sibyls.metadata.contract import (
    ContractError,
    RunMetadata,
    SampleRole,
    SampleType,
    _check_rule,
    _describe,
)
from sibyls.metadata.rules import PLATE_WELLS


class PlateWell(BaseModel):
    """One well to measure: what is in it and how to expose it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    well: str = Field(description="A1 to H12")
    sample_code: str
    sample_role: SampleRole = "sample"
    buffer_well: str | None = Field(None, description="well holding this sample's buffer (samples only)")
    concentration_mg_ml: float | None = None
    exposure_time: float = Field(0.3, description="s/frame")
    num_frames: int = 33
    sample_type: SampleType | None = None
    molecular_weight_kda: float | None = None
    buffer_name: str | None = None
    description: str | None = None

    @field_validator(
        "well",
        "buffer_well",
        "sample_code",
        "concentration_mg_ml",
        "exposure_time",
        "num_frames",
        "molecular_weight_kda",
        "buffer_name",
        "description",
        mode="before",
    )
    @classmethod
    def _ruled(cls, value: Any, info) -> Any:
        """Each column obeys the rule of the plan parameter of the same name (sibyls.metadata.rules)."""
        if value is None:
            return None
        _check_rule(info.field_name, value, info.field_name)
        return value.strip().upper() if info.field_name in ("well", "buffer_well") else value

    @model_validator(mode="after")
    def _role_rules(self) -> PlateWell:
        if self.sample_role == "sample":
            if self.buffer_well is None:
                raise ValueError("a sample needs buffer_well (the well holding its buffer)")
            if self.concentration_mg_ml is None:
                raise ValueError("a sample needs concentration_mg_ml (> 0)")
        elif self.sample_role == "buffer_blank" and self.buffer_well is not None:
            raise ValueError("a buffer_blank has no buffer_well")
        return self


class PlateSpec(BaseModel):
    """A 96-well plate to measure, wells in measurement order."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    plate_id: str
    wells: list[PlateWell] = Field(min_length=PLATE_WELLS[0], max_length=PLATE_WELLS[1])

    @field_validator("plate_id", mode="before")
    @classmethod
    def _plate_id(cls, value: Any) -> Any:
        _check_rule("plate_id", value, "plate_id")
        return value.strip()

    @model_validator(mode="after")
    def _plate_rules(self) -> PlateSpec:
        problems = []
        position: dict[str, int] = {}
        for index, well in enumerate(self.wells):
            if well.well in position:
                problems.append(
                    f"wells[{index}].well: {well.well} is listed twice (also wells[{position[well.well]}])"
                )
            else:
                position[well.well] = index
        for index, well in enumerate(self.wells):
            if well.buffer_well is None:
                continue
            where = f"wells[{index}].buffer_well"
            buffer_index = position.get(well.buffer_well)
            if buffer_index is None:
                problems.append(
                    f"{where}: buffer well {well.buffer_well} of {well.sample_code} is not on the plate"
                )
            elif self.wells[buffer_index].sample_role != "buffer_blank":
                problems.append(
                    f"{where}: {well.buffer_well} holds a {self.wells[buffer_index].sample_role}, "
                    "not a buffer_blank"
                )
            elif buffer_index > index:
                problems.append(
                    f"{where}: buffer {well.buffer_well} must be measured before its sample "
                    f"{well.well} (list it earlier)"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def well_metadata(self, project_code: str, plan_type: str = "ht_plate", **common: Any) -> WellContracts:
        """The RunStart contract of every well's run (``buffer_run_uid`` is added when the buffer has run).

        Each well's own values were checked by :class:`PlateWell` with the same rules the contract
        uses (``sibyls.metadata.rules``), so the contract as a whole (plate-wide values, cross-field
        rules) is validated once per kind of well — the same role and the same fields given — and
        the other wells of that kind are copies with their own values, made when the plan reads
        them: a 96-well plate is checked (at queue add too) in a fraction of the time, with the same
        verdicts. ``ContractError`` names every well whose contract is refused.
        """
        fields_of, kinds, problems = [], [], []
        validated: dict[tuple, RunMetadata] = {}
        for index, well in enumerate(self.wells):
            fields = {
                "sample_code": well.sample_code,
                "project_code": project_code,
                "plan_type": plan_type,
                "plate_id": self.plate_id,
                "well": well.well,
                "sample_role": well.sample_role,
                "concentration_mg_ml": well.concentration_mg_ml,
                "sample_type": well.sample_type,
                "molecular_weight_kda": well.molecular_weight_kda,
                "buffer_name": well.buffer_name,
                "description": well.description,
                **common,
            }
            fields = {k: v for k, v in fields.items() if v is not None}
            kind = (well.sample_role, *sorted(fields))
            fields_of.append(fields)
            kinds.append(kind)
            if kind in validated:
                continue
            try:
                validated[kind] = RunMetadata(**fields)
            except ValidationError as exc:
                validated[kind] = None  # type: ignore[assignment]
                problems += [f"wells[{index}] ({well.well}): {p}" for p in _describe(exc)]
        if problems:
            raise ContractError(problems)
        return WellContracts(fields_of, kinds, validated)


class WellContracts(Sequence[RunMetadata]):
    """The wells' RunStart contracts in plate order; a well's is made from its kind's validated
    contract and the well's own values (:data:`_PER_WELL`) when first read."""

    def __init__(
        self, fields_of: list[dict], kinds: list[tuple], validated: dict[tuple, RunMetadata]
    ) -> None:
        self._fields_of, self._kinds, self._validated = fields_of, kinds, validated
        self._made: dict[int, RunMetadata] = {}

    def __len__(self) -> int:
        return len(self._kinds)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = range(len(self))[index]
        made = self._made.get(index)
        if made is None:
            fields = self._fields_of[index]
            made = self._validated[self._kinds[index]].model_copy(
                update={k: fields[k] for k in _PER_WELL if k in fields}
            )
            self._made[index] = made
        return made


#: The contract fields a plate's wells differ in (each checked by PlateWell's rules).
_PER_WELL = (
    "sample_code",
    "well",
    "concentration_mg_ml",
    "sample_type",
    "molecular_weight_kda",
    "buffer_name",
    "description",
)


def validate_plate(plate: Any) -> PlateSpec:
    """Check a submitted plate (a dict) and return it as a PlateSpec; ``ContractError`` names each problem."""
    if isinstance(plate, PlateSpec):
        return plate
    try:
        return PlateSpec.model_validate(plate)
    except ValidationError as exc:
        # Plate-level rules already name their field (wells[i]...); pydantic's own errors get a path.
        problems = [p.removeprefix("metadata: ") for p in _describe(exc)]
        raise ContractError([f"plate.{p}" for p in problems]) from None
