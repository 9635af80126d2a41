"""The one table of rules for SIBYLS plan parameters: every limit, pattern and length, defined once.

A beamline user gets the same verdict, with the same words, wherever an item is checked: the
queueserver annotations (``min``/``max`` and the descriptions a GUI shows) are generated from
:data:`RULES`, the RE Manager's queue gate and each plan's own first statement run
:func:`argument_problems` over the same table, the RunStart contract and the plate model take their
limits from it, and the simulated IOC takes its soft limits from :data:`AXIS_LIMITS`.

This module imports nothing but the standard library, so every layer (devices, metadata, plans, the
RE Manager process) can use it.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

RuleKind = Literal["float", "int", "code", "text", "well", "uid", "username", "email"]

# 40: codes are shown in EPICS string PVs (40 characters) and, with a "buff_" prefix, in file names.
CODE_MAX_LENGTH = 40
#: Codes end up in file names: a letter or digit first, then letters, digits, ``.``, ``_``, ``-``.
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
#: A well of a 96-well plate, A1 to H12.
WELL_PATTERN = r"^[A-H](?:[1-9]|1[0-2])$"
WELL_ROWS = "ABCDEFGH"
WELL_COLUMNS = range(1, 13)
PLATE_WELLS = (1, 96)
TEXT_MAX_LENGTH = 2000
NAME_MAX_LENGTH = 200
UID_PATTERN = r"^[0-9a-fA-F][0-9a-fA-F-]{7,63}$"
#: A login name as an authenticator gives it (PAM, LDAP, OIDC e-mail-like names included).
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$"
#: An e-mail address a notice can be sent to (one ``@``, a dot in the domain, no spaces).
EMAIL_PATTERN = r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;.]+$"
#: The whitespace a code, well or text is stripped of before it is judged and recorded: Unicode
#: White_Space, what pydantic's ``str_strip_whitespace`` strips (Python's ``str.strip()`` would also
#: strip the control characters U+001C–U+001F, which a code must not end in unnoticed).
WHITESPACE = (
    "".join(map(chr, (*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B))))
    + "\u2028\u2029\u202f\u205f\u3000"
)

#: Characters a text may not hold: control characters other than tab, newline and carriage return
#: (a NUL ends a C string; an escape sequence rewrites the terminal of whoever reads the record).
_FORBIDDEN_IN_TEXT = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
TEXT_FORBIDDEN = f"[{_FORBIDDEN_IN_TEXT}]"
#: A whole text free of them (the pattern the model field types use).
TEXT_PATTERN = f"^[^{_FORBIDDEN_IN_TEXT}]*$"

#: A queue item as a whole: its JSON size and how deeply its values may nest.
ITEM_MAX_BYTES = 512 * 1024
ITEM_MAX_DEPTH = 6


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: each rule is one table entry
class Rule:
    """What one plan parameter may hold: its kind, range (inclusive unless ``low_open``), unit, length."""

    kind: RuleKind
    low: float | None = None
    high: float | None = None
    unit: str = ""
    low_open: bool = False  # the low end itself is refused (a concentration of 0 is no sample)
    max_length: int | None = None  # characters of a text; entries of an ``each`` list
    min_length: int = 0  # characters of a text (1: not empty or blank)
    each: bool = False  # the parameter is a list; every element obeys the rule
    what: str = ""

    def range_text(self) -> str:
        """``0.001–60 s``, ``> 0–1000 mg/mL``: the range as a user reads it."""
        unit = f" {self.unit}" if self.unit else ""
        low = f"> {self.low:g}" if self.low_open else f"{self.low:g}"
        return f"{low}–{self.high:g}{unit}"

    def annotation(self, description: str | None = None) -> dict[str, Any]:
        """The ``parameter_annotation_decorator`` entry: description with the range, ``min``, ``max``."""
        text = description or self.what
        entry: dict[str, Any] = {}
        if self.low is not None and self.high is not None:
            text = f"{text} ({'each ' if self.each else ''}{self.range_text()})"
            entry = {} if self.each else {"min": self.low, "max": self.high}
        elif self.max_length is not None:
            text = f"{text} (at most {self.max_length} characters)"
        return {"description": text, **entry}

    def problem(self, field: str, value: Any) -> str | None:
        """What is wrong with ``value`` for the parameter named ``field``; None if nothing is."""
        try:  # a 96-well plate repeats its values: each distinct (rule, field, type, value) once
            return _cached_problem(self, field, type(value), value)
        except TypeError:  # unhashable (a list): checked, not cached
            return self._problem(field, value)

    def _problem(self, field: str, value: Any) -> str | None:
        if self.kind in ("float", "int"):
            return self._number_problem(field, value)
        if not isinstance(value, str):
            return f"{field}: must be text, got {type(value).__name__} {short_text(value)}"
        if self.kind == "text":
            recorded = value.strip(WHITESPACE)
            length = len(recorded)
            if length < self.min_length:
                return f"{field}: must not be empty or blank"
            if self.max_length is not None and length > self.max_length:
                return f"{field}: at most {self.max_length} characters (got {length})"
            if found := _TEXT_FORBIDDEN_RE.search(recorded):
                return f"{field}: must not contain control characters (found {found.group()!r})"
            return None
        if self.kind == "uid":
            if not _UID_RE.match(value.strip(WHITESPACE)):
                return f"{field}: {short_text(value)} is not a run uid (8–64 hex digits or '-', hex first)"
            return None
        if self.kind == "well":
            if not _WELL_RE.match(value.strip(WHITESPACE)):
                return f"{field}: {short_text(value)} is not a 96-well plate position A1 to H12"
            return None
        if self.kind == "username":
            if not _USERNAME_RE.match(value):
                return f"{field}: {short_text(value)} is not a login name (letters, digits, '._@+-')"
            return None
        if self.kind == "email":
            if not _EMAIL_RE.match(value):
                return f"{field}: {short_text(value)} is not an e-mail address"
            return None
        return _code_problem(field, value)

    def _number_problem(self, field: str, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            kind = "a whole number" if self.kind == "int" else "a number"
            return f"{field}: must be {kind}, got {type(value).__name__} {short_text(value)}"
        if self.kind == "int" and not isinstance(value, int):
            return f"{field}: must be a whole number, got {value!r}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{field}: must be a finite number, got {value!r}"
        too_low = value <= self.low if self.low_open else value < self.low
        if too_low or value > self.high:
            unit = f" {self.unit}" if self.unit else ""
            return f"{field}: {number_text(value)}{unit} is outside {self.range_text()}"
        return None

    def check(self, field: str, value: Any) -> None:
        """Raise ``ValueError`` naming ``field`` when ``value`` breaks the rule."""
        problem = self.problem(field, value)
        if problem:
            raise ValueError(problem)


@functools.lru_cache(maxsize=8192)
def _cached_problem(rule: Rule, field: str, kind: type, value: Any) -> str | None:
    # ``kind`` keeps 1, 1.0 and True apart (they hash alike; the rules judge them differently).
    return rule._problem(field, value)


def number_text(value: int | float) -> str:
    """A number as a user reads it (``0.5``, ``1e+09``); an integer beyond float range abbreviated."""
    return f"{value:g}" if isinstance(value, float) or abs(value) < 1e15 else short_text(value)


def short_text(value: Any) -> str:
    """``repr(value)``, at most 60 characters (and never an exception, however large the value)."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # nested a thousand deep; an integer of 5000 digits
        return f"<{type(value).__name__} too large to show>"
    return text if len(text) <= 60 else text[:57] + "..."


_WELL_RE = re.compile(WELL_PATTERN, re.IGNORECASE)  # recorded in upper case
_TEXT_FORBIDDEN_RE = re.compile(TEXT_FORBIDDEN)
_UID_RE = re.compile(UID_PATTERN)
_CODE_RE = re.compile(CODE_PATTERN)
_USERNAME_RE = re.compile(USERNAME_PATTERN)
_EMAIL_RE = re.compile(EMAIL_PATTERN)


def _code_problem(field: str, value: str) -> str | None:
    stripped = value.strip(WHITESPACE)
    if not stripped:
        return f"{field}: must not be empty or blank"
    if len(stripped) > CODE_MAX_LENGTH:
        return f"{field}: at most {CODE_MAX_LENGTH} characters (got {len(stripped)})"
    if not _CODE_RE.match(stripped):
        return (
            f"{field}: {short_text(value)} must start with a letter or digit and use only letters, digits, "
            "'.', '_' and '-' (it becomes part of file names)"
        )
    return None


_TEMPERATURE = Rule("float", 4.0, 60.0, "°C", what="cell temperature")
_EXPOSURE = Rule("float", 0.001, 60.0, "s", what="seconds per frame")

#: Plan parameter name → its rule. A plan parameter with one of these names obeys it, in every plan.
RULES: dict[str, Rule] = {
    # codes and text
    "sample_code": Rule("code", max_length=CODE_MAX_LENGTH, what="what is in the cell; part of file names"),
    "project_code": Rule("code", max_length=CODE_MAX_LENGTH, what="project the runs are filed under"),
    "plate_id": Rule("code", max_length=CODE_MAX_LENGTH, what="plate identifier known to the robot"),
    "proposal_id": Rule("code", max_length=CODE_MAX_LENGTH, what="beam-time proposal"),
    "buffer_well": Rule("well", what="well holding this sample's buffer"),
    "well": Rule("well", what="96-well plate position A1 to H12"),
    "buffer_run_uid": Rule("uid", what="uid of the buffer run to subtract"),
    "description": Rule("text", max_length=TEXT_MAX_LENGTH, what="free text recorded with the run"),
    "buffer_name": Rule("text", max_length=NAME_MAX_LENGTH, min_length=1, what="buffer name"),
    "operator": Rule("text", max_length=NAME_MAX_LENGTH, min_length=1, what="who measured"),
    # exposures
    "exposure_time": _EXPOSURE,
    "num_frames": Rule("int", 1, 10000, what="number of frames"),
    "cell_temperature": _TEMPERATURE,
    "temperatures": Rule(
        "float", 4.0, 60.0, "°C", each=True, max_length=100, what="setpoints in °C, in measurement order"
    ),
    "equilibration_time": Rule("float", 0.0, 3600.0, "s", what="seconds to hold each temperature"),
    # sample description
    "concentration_mg_ml": Rule("float", 0.0, 1000.0, "mg/mL", low_open=True, what="concentration"),
    "molecular_weight_kda": Rule("float", 0.0, 1e6, "kDa", low_open=True, what="molecular weight"),
    "buffer_ph": Rule("float", 0.0, 14.0, what="buffer pH"),
    # SEC-SAXS-MALS
    "flow_rate": Rule("float", 0.01, 1.0, "mL/min", what="HPLC flow (KW-803 is run at 0.45–0.55)"),
    "frame_period": Rule("float", 0.1, 60.0, "s", what="seconds between frames"),
    "duration": Rule("float", 0.1, 600.0, "min", what="elution time to record"),
    "buffer_threshold_mau": Rule(
        "float", 0.01, 1000.0, "mAU", what="UV rise over the injection baseline that ends the buffer frames"
    ),
    # standard scans
    "num": Rule("int", 1, 10000, what="number of points"),
    "num1": Rule("int", 1, 10000, what="points of the slow axis"),
    "num2": Rule("int", 1, 10000, what="points of the fast axis"),
    "delay": Rule("float", 0.0, 3600.0, "s", what="seconds between readings"),
    # alignment
    "points": Rule("int", 3, 501, what="points per scan"),
    "num_x": Rule("int", 3, 501, what="points along x"),
    "num_y": Rule("int", 3, 501, what="points along y"),
    "count_time": Rule("float", 0.001, 10.0, "s", what="diode counting time per point"),
    "half_width": Rule("float", 0.01, 5.0, "mm", what="scan half-width around the current position"),
    "half_width_x": Rule("float", 0.01, 5.0, "mm", what="scan half-width along x"),
    "half_width_y": Rule("float", 0.01, 5.0, "mm", what="scan half-width along y"),
    "nscans": Rule("int", 1, 5, what="scans, each narrowed to the peak"),
}

#: Every axis a plan may drive, with its soft limits (the IOC's motor records are set from these;
#: at plan start the live limits of the real PVs are what counts).
AXIS_LIMITS: dict[str, Rule] = {
    "sample_stage.x": Rule("float", -10.0, 10.0, "mm", what="sample stage X"),
    "sample_stage.y": Rule("float", -10.0, 10.0, "mm", what="sample stage Y"),
    "beamstop.x": Rule("float", -5.0, 5.0, "mm", what="beamstop X"),
    "beamstop.y": Rule("float", -5.0, 5.0, "mm", what="beamstop Y"),
    "cell_temperature": _TEMPERATURE,
}


#: A project of the facility's projects file (``<var>/projects.yaml``): field → its rule.
PROJECT_RULES: dict[str, Rule] = {
    "project_code": RULES["project_code"],
    "title": Rule("text", max_length=NAME_MAX_LENGTH, what="the project's title"),
    "members": Rule("username", each=True, max_length=1000, what="login names of the project's people"),
    "emails": Rule("email", each=True, max_length=100, what="addresses notices go to"),
}


def annotation(name: str, description: str | None = None, **extra: Any) -> dict[str, Any]:
    """Queueserver annotation of parameter ``name`` from its rule (``extra`` adds e.g. ``devices``)."""
    return {**RULES[name].annotation(description), **extra}


def annotations(*names: str, **described: str) -> dict[str, dict[str, Any]]:
    """Annotations of several parameters: ``names`` with the rule's own wording, ``described`` with theirs."""
    entries = {name: annotation(name) for name in names}
    entries.update({name: annotation(name, text) for name, text in described.items()})
    return entries


def argument_problems(
    arguments: dict[str, Any], names: Any = None, table: dict[str, Rule] = RULES
) -> list[str]:
    """Every rule broken by ``arguments`` (plan argument name → value; None means not given).

    ``names`` limits the check to those arguments. A list argument whose rule holds for each
    element (``temperatures``) is checked element by element, named ``temperatures[1]``. ``table``
    is the rule table to judge by (default the plan parameters').
    """
    problems = []
    for name in names if names is not None else arguments:
        rule, value = table.get(name), arguments.get(name)
        if rule is None or value is None:
            continue
        if rule.each:
            if not isinstance(value, list | tuple):
                problems.append(f"{name}: must be a list, got {type(value).__name__} {short_text(value)}")
                continue
            if rule.max_length is not None and len(value) > rule.max_length:
                problems.append(f"{name}: at most {rule.max_length} entries (got {len(value)})")
                continue
            problems += [p for i, v in enumerate(value) if (p := rule.problem(f"{name}[{i}]", v))]
        elif problem := rule.problem(name, value):
            problems.append(problem)
    return problems
