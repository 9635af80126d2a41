"""Pydantic field types generated from the rule table, and refusals in the rule's own words.

A model field typed ``ruled("exposure_time")`` is checked by pydantic's compiled validator with the
limits, pattern and length of :data:`sibyls.metadata.rules.RULES` (strict types, no NaN), so a
96-well plate's some 500 values are checked without a Python call each. When a value is refused,
:func:`describe` words the problem as :meth:`Rule.problem` does for the same value, so a user reads
the same message whether a plate well, the RunStart contract or a plan argument refused it.
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Any

from pydantic import AllowInfNan, Field, Strict, StringConstraints, ValidationError

from sibyls.metadata.rules import CODE_PATTERN, RULES, TEXT_PATTERN, UID_PATTERN, WELL_PATTERN, Rule

_NAMES_FIELDS = re.compile(r"Value error, [A-Za-z_][\w.\[\]]*: ")

#: Model fields named otherwise than the plan parameter whose rule they obey (and whose value they hold).
RULE_OF_FIELD = {"cell_temperature_c": "cell_temperature"}


@functools.cache
def ruled(name: str) -> Any:
    """The field type that holds exactly what the rule of plan parameter ``name`` accepts."""
    rule = RULES[name]
    if rule.kind in ("float", "int"):
        bounds = {"gt" if rule.low_open else "ge": rule.low, "le": rule.high}
        if rule.kind == "int":
            return Annotated[int, Strict(), Field(**bounds)]
        return Annotated[float, Strict(), AllowInfNan(False), Field(**bounds)]
    if rule.kind == "code":
        text = StringConstraints(strip_whitespace=True, max_length=rule.max_length, pattern=CODE_PATTERN)
    elif rule.kind == "uid":
        text = StringConstraints(strip_whitespace=True, pattern=UID_PATTERN)
    elif rule.kind == "well":  # recorded in upper case
        text = StringConstraints(strip_whitespace=True, to_upper=True, pattern=f"(?i){WELL_PATTERN}")
    else:
        text = StringConstraints(
            strip_whitespace=True,
            min_length=rule.min_length,
            max_length=rule.max_length,
            pattern=TEXT_PATTERN,
        )
    return Annotated[str, Strict(), text]


def rule_of_field(field: Any) -> Rule | None:
    """The rule a model field obeys (by the plan parameter it stands for), if any."""
    return RULES.get(RULE_OF_FIELD.get(field, field)) if isinstance(field, str) else None


def argument_named(problem: str) -> str:
    """``cell_temperature_c: ...`` → ``cell_temperature: ...``: a problem named by the plan argument."""
    field, sep, rest = problem.partition(":")
    return f"{RULE_OF_FIELD.get(field, field)}{sep}{rest}"


def describe(exc: ValidationError) -> list[str]:
    """One ``field: problem`` line per error; a ruled field's problem in the rule's words."""
    problems = []
    for err in exc.errors():
        loc = err["loc"]
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        if err["type"] == "value_error" and _NAMES_FIELDS.match(err["msg"]):
            # a model's cross-field rules: one "field: problem" per line, relative to the model
            lines = err["msg"].removeprefix("Value error, ").splitlines()
            problems += [f"{field}.{line}" if field else line for line in lines]
            continue
        field = field or "metadata"
        rule = rule_of_field(loc[-1]) if loc else None
        ruled_problem = rule.problem(field, err["input"]) if rule and err["type"] != "missing" else None
        if ruled_problem:
            problems.append(ruled_problem)
        elif err["type"] == "missing":
            problems.append(f"{field}: required field is missing")
        elif err["type"] == "literal_error":
            allowed = err.get("ctx", {}).get("expected", "")
            hint = ""
            if field == "plan_type":
                hint = " (without one, the RunEngine records the plan object's type name; pass plan_type)"
            problems.append(f"{field}: {err['input']!r} is not one of {allowed}{hint}")
        elif err["type"] == "extra_forbidden":
            problems.append(f"{field}: not a contract field")
        else:
            problems.append(f"{field}: {err['msg'].removeprefix('Value error, ')}")
    return problems
