"""HT-SAXS plate definitions: what a user submits for a 96-well plate, checked as a whole.

The whole plate is validated before the robot moves: wells unique within A1–H12, every sample's
buffer present and measured before it, concentrations positive, exposures and frame counts in
range, and every well's run metadata valid under the RunStart contract.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sibyls.metadata.contract import ContractError, RunMetadata, SampleRole, SampleType
from sibyls.metadata.rule_fields import argument_named, describe, ruled
from sibyls.metadata.rules import PLATE_WELLS


class PlateWell(BaseModel):
    """One well to measure: what is in it and how to expose it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    # Each column obeys the rule of the plan parameter of the same name (sibyls.metadata.rules).
    well: ruled("well") = Field(description="A1 to H12")
    sample_code: ruled("sample_code")
    sample_role: SampleRole = "sample"
    buffer_well: ruled("buffer_well") | None = Field(None, description="well holding this sample's buffer")
    concentration_mg_ml: ruled("concentration_mg_ml") | None = None
    exposure_time: ruled("exposure_time") = Field(0.3, description="s/frame")
    num_frames: ruled("num_frames") = 33
    sample_type: SampleType | None = None
    molecular_weight_kda: ruled("molecular_weight_kda") | None = None
    buffer_name: ruled("buffer_name") | None = None
    description: ruled("description") | None = None

    @model_validator(mode="after")
    def _role_rules(self) -> PlateWell:
        problems = []  # each names its column (describe() gives each its own line)
        if self.sample_role == "sample":
            if self.buffer_well is None:
                problems.append("buffer_well: a sample needs the well holding its buffer")
            if self.concentration_mg_ml is None:
                problems.append("concentration_mg_ml: a sample needs its concentration (> 0)")
        elif self.sample_role == "buffer_blank" and self.buffer_well is not None:
            problems.append("buffer_well: a buffer_blank has none")
        if problems:
            raise ValueError("\n".join(problems))
        return self


class PlateSpec(BaseModel):
    """A 96-well plate to measure, wells in measurement order."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    plate_id: ruled("plate_id")
    wells: list[PlateWell] = Field(min_length=PLATE_WELLS[0], max_length=PLATE_WELLS[1])

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
            raise ValueError("\n".join(problems))
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
        plate_wide = {
            "project_code": project_code,
            "plan_type": plan_type,
            "plate_id": self.plate_id,
            **common,
        }
        plate_wide = {k: v for k, v in plate_wide.items() if v is not None}
        kinds, problems = [], []
        validated: dict[tuple, RunMetadata | None] = {}
        for index, well in enumerate(self.wells):
            kind = _kind(well)
            kinds.append(kind)
            if kind in validated:
                continue
            try:
                validated[kind] = RunMetadata(**{**_own_fields(well), **plate_wide})
            except ValidationError as exc:
                validated[kind] = None
                for problem in describe(exc):  # a well's own column, or a plate-wide argument (once)
                    per_well = problem.partition(":")[0] in _PER_WELL
                    problem = f"plate.wells[{index}].{problem}" if per_well else argument_named(problem)
                    if problem not in problems:
                        problems.append(problem)
        if problems:
            raise ContractError(problems)
        return WellContracts(self.wells, kinds, validated)  # type: ignore[arg-type]


#: The contract fields a plate's wells differ in (each checked by PlateWell's rules); a well's kind
#: is its role and which of the optional ones it gives.
_OPTIONAL_PER_WELL = (
    "concentration_mg_ml",
    "sample_type",
    "molecular_weight_kda",
    "buffer_name",
    "description",
)
_PER_WELL = ("sample_code", "well", "sample_role", *_OPTIONAL_PER_WELL)


_kind_values = operator.itemgetter("sample_role", *_OPTIONAL_PER_WELL)


def _kind(well: PlateWell) -> tuple:
    # Spelled out (read for each of 96 wells at every queue add); five names: _OPTIONAL_PER_WELL's.
    role, concentration, sample_type, molecular_weight, buffer_name, description = _kind_values(well.__dict__)
    return (
        role,
        concentration is None,
        sample_type is None,
        molecular_weight is None,
        buffer_name is None,
        description is None,
    )


def _own_fields(well: PlateWell) -> dict[str, Any]:
    return {name: value for name in _PER_WELL if (value := getattr(well, name)) is not None}


class WellContracts(Sequence[RunMetadata]):
    """The wells' RunStart contracts in plate order; a well's is made from its kind's validated
    contract and the well's own values when first read."""

    def __init__(
        self, wells: list[PlateWell], kinds: list[tuple], validated: dict[tuple, RunMetadata]
    ) -> None:
        self._wells, self._kinds, self._validated = wells, kinds, validated
        self._made: dict[int, RunMetadata] = {}

    def __len__(self) -> int:
        return len(self._kinds)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = range(len(self))[index]
        made = self._made.get(index)
        if made is None:
            made = self._validated[self._kinds[index]].model_copy(update=_own_fields(self._wells[index]))
            self._made[index] = made
        return made


def validate_plate(plate: Any) -> PlateSpec:
    """Check a submitted plate (a dict) and return it as a PlateSpec; ``ContractError`` names each problem."""
    if isinstance(plate, PlateSpec):
        return plate
    try:
        return PlateSpec.model_validate(plate)
    except ValidationError as exc:
        # Plate-level rules already name their field (wells[i]...); pydantic's own errors get a path.
        problems = [p.removeprefix("metadata: ") for p in describe(exc)]
        raise ContractError([f"plate.{p}" for p in problems]) from None
