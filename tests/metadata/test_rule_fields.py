"""The pydantic field types generated from the rule table accept exactly what the rules accept.

A plate well, the RunStart contract and a plan argument must give one verdict, with one message,
for every value: the models check with pydantic's compiled validators, the plan arguments with
``Rule.problem``.
"""

from __future__ import annotations

import itertools
import math

import pytest
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from sibyls.metadata.rule_fields import describe, ruled
from sibyls.metadata.rules import CODE_MAX_LENGTH, RULES, WHITESPACE

_SPACES = [*WHITESPACE, "\x1c", "\x1d", "\x1e", "\x1f", "\u200b", "\u180e", "\x00"]

_TEXTS = [
    "",
    " ",
    "a",
    "A1",
    "a1",
    " h12 ",
    "H13",
    "I1",
    "A0",
    "A01",
    "b7\n",
    "lys-1.2_a",
    "_lys",
    ".hidden",
    "-x",
    "../..",
    "a/b",
    "a b",
    "ß",
    "Ａ1",
    "ｈ12",
    "ǆ",
    "x" * CODE_MAX_LENGTH,
    "x" * (CODE_MAX_LENGTH + 1),
    " " + "x" * CODE_MAX_LENGTH + " ",
    "y" * 200,
    "y" * 201,
    "y" * 200 + " ",
    "y" * 2000,
    "y" * 2001,
    "a\x00b",
    "=SUM(A1)",
    "0f3a9c1e-1111-2222-3333-444455556666",
    " abcdef12 ",
    "--------",
    "-0123456789",
    "g0000000",
    "0123456",
    "a\x1b[2Jb",
    "del\x7f",
    "tab\tand\nnewline",
    *(f"{space}lys{space}" for space in _SPACES),
    *(f"a{space}1" for space in _SPACES),
    *(f"A1{space}" for space in _SPACES),
]
_NUMBERS = [
    0,
    1,
    -1,
    3,
    33,
    10000,
    10001,
    0.0,
    0.001,
    0.0009999,
    1e-300,
    4.0,
    3.999,
    60.0,
    60.0000001,
    14,
    1000.0,
    1e6,
    1e6 + 1,
    5e-324,
    10**400,
    -(10**400),
    math.nan,
    math.inf,
    -math.inf,
    True,
    False,
    3.0,
    2.5,
    "3",
    "",
    None,
    [1],
    {"a": 1},
    b"1",
]


@pytest.mark.parametrize("name", sorted(n for n, rule in RULES.items() if not rule.each))
def test_ruled_type_accepts_exactly_what_the_rule_accepts(name):
    adapter = TypeAdapter(ruled(name))
    rule = RULES[name]
    for value in [*_TEXTS, *_NUMBERS]:
        problem = rule.problem(name, value)
        try:
            result = adapter.validate_python(value)
        except ValidationError:
            assert problem, f"{name}={value!r}: refused by the model, accepted by the rule"
            continue
        assert problem is None, f"{name}={value!r}: accepted by the model, refused by the rule ({problem})"
        if rule.kind == "well":
            assert result == value.strip(WHITESPACE).upper()
        elif rule.kind in ("code", "text", "uid"):
            assert result == value.strip(WHITESPACE)
        else:
            assert result == value and type(result) is (int if rule.kind == "int" else float)


class _Columns(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    sample_code: ruled("sample_code")
    well: ruled("well") | None = None
    exposure_time: ruled("exposure_time") = 0.3
    num_frames: ruled("num_frames") = 33
    description: ruled("description") | None = None


@pytest.mark.parametrize(
    ("field", "value"),
    list(
        itertools.product(
            ["sample_code", "well", "exposure_time", "num_frames", "description"],
            ["", " ", "a/b", "Z99", "x" * 2001, "a\x00", 0, -1, 10**400, math.nan, True, 3.5, "3", [1]],
        )
    ),
)
def test_refusal_is_worded_by_the_rule_and_names_the_field(field, value):
    problem = RULES[field].problem(field, value)
    fields = {"sample_code": "lys", field: value}
    if problem is None:
        _Columns(**fields)
        return
    with pytest.raises(ValidationError) as refused:
        _Columns(**fields)
    assert describe(refused.value) == [problem]


def test_missing_and_unknown_fields_keep_their_own_words():
    with pytest.raises(ValidationError) as refused:
        _Columns(well="A1", colour="red")
    assert describe(refused.value) == [
        "sample_code: required field is missing",
        "colour: not a contract field",
    ]
