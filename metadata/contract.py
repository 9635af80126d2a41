"""The RunStart metadata contract: one pydantic model, enforced at plan entry and by the RunEngine.

A beamline user gets: every run carries ``sample_code``, ``project_code`` and ``plan_type`` (plus
optional SAXS fields), checked before anything moves, and a queue item's ``meta`` or ``RE.md`` can
never silently change those values.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator, Mapping
from typing import Any, Literal, get_args

from bluesky.preprocessors import inject_md_wrapper, msg_mutator
from bluesky.utils import Msg
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sibyls.metadata.rule_fields import describe, ruled
from sibyls.metadata.rules import (  # noqa: F401  (re-exported: the contract's own limits)
    CODE_MAX_LENGTH,
    CODE_PATTERN,
    RULES,
    TEXT_MAX_LENGTH,
    UID_PATTERN,
    WELL_COLUMNS,
    WELL_PATTERN,
    WELL_ROWS,
)

# ---- rule constants (reused by plan signatures and plate validation) -----------------------------

PlanType = Literal[
    "saxs_exposure",
    "ht_plate",
    "sec_saxs",
    "temperature_series",
    "alignment",
    "count",
    "scan",
    "rel_scan",
    "list_scan",
    "grid_scan",
]
PLAN_TYPES: tuple[str, ...] = get_args(PlanType)

# Values of lambda-ber SampleTypeEnum, ExperimentSampleRoleEnum subset and CollectionModeEnum subset.
SampleType = Literal["protein", "nucleic_acid", "complex", "membrane_protein", "virus", "organelle"]
SAMPLE_TYPES: tuple[str, ...] = get_args(SampleType)
SampleRole = Literal["sample", "buffer_blank", "standard"]
SAMPLE_ROLES: tuple[str, ...] = get_args(SampleRole)
CollectionMode = Literal["batch", "sec_saxs"]
COLLECTION_MODES: tuple[str, ...] = get_args(CollectionMode)

CELL_TEMPERATURE_MIN_C: float = RULES["cell_temperature"].low  # type: ignore[assignment]
CELL_TEMPERATURE_MAX_C: float = RULES["cell_temperature"].high  # type: ignore[assignment]

#: Keys no queue item ``meta`` or ``RE.md`` may change.
RESERVED_KEYS: tuple[str, ...] = ("uid", "time", "scan_id", "plan_type", "sample_code", "project_code")
CONTRACT_KEYS: tuple[str, ...] = ("sample_code", "project_code", "plan_type")
#: RunStart keys the plans themselves write (bluesky's standard plans and ``exposure_run``).
PLAN_WRITTEN_KEYS: tuple[str, ...] = (
    "plan_name",
    "plan_args",
    "plan_pattern",
    "plan_pattern_module",
    "plan_pattern_args",
    "detectors",
    "motors",
    "num_points",
    "num_intervals",
    "hints",
    "exposure_time_s",
    "num_frames",
)
#: RunStart key under which the injection helper seals the contract values it validated.
SEAL_KEY = "sibyls_contract"


class ContractError(ValueError):
    """Raised when run metadata breaks the contract; the message names each field and rule."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("run metadata contract violated:\n  - " + "\n  - ".join(self.problems))


class RunMetadata(BaseModel):
    """The RunStart contract: three required codes plus the optional SAXS fields users expect."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    sample_code: ruled("sample_code") = Field(description="Sample identifier; part of record and file names")
    project_code: ruled("project_code") = Field(description="Project identifier; records filed per project")
    plan_type: PlanType = Field(description="Which SIBYLS plan produced the run")
    sample_type: SampleType | None = Field(None, description="lambda-ber SampleTypeEnum value")
    concentration_mg_ml: ruled("concentration_mg_ml") | None = Field(None, description="mg/mL")
    molecular_weight_kda: ruled("molecular_weight_kda") | None = Field(None, description="kDa")
    buffer_name: ruled("buffer_name") | None = None
    buffer_composition: list[str] | None = Field(None, description="Components, e.g. '25 mM Tris'")
    buffer_ph: ruled("buffer_ph") | None = None
    sample_role: SampleRole | None = None
    buffer_run_uid: ruled("buffer_run_uid") | None = Field(None, description="Buffer run to subtract")
    plate_id: ruled("plate_id") | None = None
    well: ruled("well") | None = Field(None, description="96-well plate well, A1 to H12")
    cell_temperature_c: ruled("cell_temperature") | None = None
    collection_mode: CollectionMode | None = None
    proposal_id: ruled("proposal_id") | None = None
    operator: ruled("operator") | None = None
    description: ruled("description") | None = None

    @field_validator("buffer_composition")
    @classmethod
    def _components(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not c.strip() for c in value):
            raise ValueError("buffer_composition entries must not be empty")
        return [c.strip() for c in value] if value is not None else None

    @model_validator(mode="after")
    def _cross_field(self) -> RunMetadata:
        problems = []  # each names the field to change (describe() gives each its own line)
        if self.well is not None and self.plate_id is None:
            problems.append("plate_id: required with well (a well is a position on a plate)")
        if self.plan_type == "ht_plate":
            problems += [
                f"{name}: required by plan_type 'ht_plate'"
                for name in ("plate_id", "well")
                if getattr(self, name) is None
            ]
        if self.plan_type == "sec_saxs" and self.collection_mode == "batch":
            problems.append("collection_mode: plan_type 'sec_saxs' cannot have collection_mode 'batch'")
        if self.sample_role == "buffer_blank" and self.buffer_run_uid is not None:
            problems.append("buffer_run_uid: is for samples; a buffer_blank run is not subtracted")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def effective_collection_mode(self) -> str:
        """The collection mode to record: explicit, else ``sec_saxs`` for SEC plans, else ``batch``."""
        if self.collection_mode:
            return self.collection_mode
        return "sec_saxs" if self.plan_type == "sec_saxs" else "batch"

    def run_start_md(self) -> dict[str, Any]:
        """The metadata to put into ``open_run`` (set fields only) plus the contract seal."""
        md = self.model_dump(exclude_none=True)
        md[SEAL_KEY] = dict(md)  # every contract field the plan set, so none can be changed later
        return md

    @classmethod
    def from_run_start(cls, md: Mapping[str, Any]) -> RunMetadata:
        """Build the contract from a RunStart (or metadata about to become one); other keys ignored."""
        try:
            return cls(**{k: md[k] for k in cls.model_fields if k in md})
        except ValidationError as exc:
            raise ContractError(describe(exc)) from None


def validate_run_metadata(**fields: Any) -> RunMetadata:
    """Build ``RunMetadata`` from keyword fields, raising ``ContractError`` naming each bad field."""
    try:
        return RunMetadata(**fields)
    except ValidationError as exc:
        raise ContractError(describe(exc)) from None


# ---- RE.md_validator -------------------------------------------------------------------------------


def contract_md_validator(md: dict) -> None:
    """``RE.md_validator``: refuse any run whose metadata lacks or breaks the contract.

    Runs before the RunEngine adds ``uid``/``time``: those keys must not be supplied at all. When the
    run was built by ``inject_run_metadata``, the sealed contract values must be unchanged (so a queue
    item's ``meta`` cannot override them).
    """
    problems: list[str] = []
    for key in ("uid", "time"):
        if key in md:
            problems.append(f"{key}: reserved, assigned by the RunEngine; remove it from the metadata")
    try:
        RunMetadata.from_run_start(md)
    except ContractError as exc:
        problems.extend(exc.problems)
    seal = md.get(SEAL_KEY)
    if seal is not None:
        if not isinstance(seal, Mapping):
            problems.append(f"{SEAL_KEY}: reserved for the plan's sealed contract")
        else:
            for key in RunMetadata.model_fields:
                if md.get(key) != seal.get(key):
                    problems.append(
                        f"{key}: reserved; the plan set {seal.get(key)!r} but the run metadata says "
                        f"{md.get(key)!r} (overridden by the queue item's meta or RE(...) keywords)"
                    )
    if problems:
        raise ContractError(problems)


class ContractGuard:
    """``RE.md_validator`` bound to one RunEngine: the contract plus checks only the RE can make.

    Besides ``contract_md_validator`` it refuses runs while ``RE.md`` holds reserved contract keys
    and runs whose ``scan_id`` was overridden (it must be the RE's own counter).
    """

    def __init__(self, run_engine: Any):
        self._re = run_engine

    def __call__(self, md: dict) -> None:
        problems: list[str] = []
        for key in ("uid", "time", "plan_type", "sample_code", "project_code", SEAL_KEY):
            if key in self._re.md:
                problems.append(f"{key}: reserved; remove it from RE.md (it must come from the plan)")
        counter = self._re.md.get("scan_id")
        if counter is not None and md.get("scan_id") != counter:
            problems.append(
                f"scan_id: reserved, assigned by the RunEngine ({counter}); got {md.get('scan_id')!r} "
                "from the run's metadata"
            )
        raise_all_problems(contract_md_validator, md, problems)


def raise_all_problems(validator: Callable[[dict], None], md: dict, problems: list[str]) -> None:
    """Run ``validator`` on ``md``; raise one ContractError with its problems, then ``problems``."""
    try:
        validator(md)
    except ContractError as exc:
        problems = exc.problems + problems
    if problems:
        raise ContractError(problems)


def install_contract(run_engine: Any) -> ContractGuard:
    """Make ``run_engine`` refuse every run without a valid contract (sets ``RE.md_validator``)."""
    guard = ContractGuard(run_engine)
    run_engine.md_validator = guard
    return guard


# ---- injection into plans ---------------------------------------------------------------------------


def inject_run_metadata(plan: Any, metadata: RunMetadata) -> Generator[Msg, Any, Any]:
    """Run ``plan`` with ``metadata`` in every ``open_run`` (above the plan's own ``md``), sealed.

    The plan's own ``md`` may not carry ``uid``, ``time`` or ``scan_id``; its ``sample_code``,
    ``project_code`` and ``plan_type`` are replaced by the validated ones.
    """
    if not isinstance(metadata, RunMetadata):
        raise TypeError("inject_run_metadata needs a RunMetadata instance")

    def _refuse_reserved(msg: Msg) -> Msg:
        if msg.command == "open_run":
            bad = [k for k in ("uid", "time", "scan_id") if k in msg.kwargs]
            if bad:
                raise ContractError([f"{k}: reserved, assigned by the RunEngine" for k in bad])
        return msg

    return (yield from inject_md_wrapper(msg_mutator(plan, _refuse_reserved), metadata.run_start_md()))


def with_run_metadata(
    plan_type: str,
) -> Callable[[Callable[..., Generator]], Callable[..., Generator]]:
    """Decorator for plan functions taking contract fields as keyword arguments.

    The wrapped plan validates ``RunMetadata`` (with this ``plan_type``) from the keywords whose names
    are contract fields before its first message, then runs with the metadata injected. The contract
    keywords are also passed through to the plan function.
    """

    def decorate(func: Callable[..., Generator]) -> Callable[..., Generator]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Generator[Msg, Any, Any]:
            fields = {k: v for k, v in kwargs.items() if k in RunMetadata.model_fields and v is not None}
            metadata = validate_run_metadata(**{**fields, "plan_type": plan_type})
            return (yield from inject_run_metadata(func(*args, **kwargs), metadata))

        wrapper._is_plan_ = True  # type: ignore[attr-defined]
        return wrapper

    return decorate
