"""The queue gate: everything a SIBYLS plan would refuse at run start, refused when an item is added.

A beamline user gets a bad item refused at once, on every way in, with every problem named by the
plan argument and the rule: the RE Manager runs :func:`item_problems` for every item it adds,
updates, executes or starts (installed by ``sibyls-re-manager``), and the HTTP dry-run endpoint,
plate sheets and ``sibyls validate-item`` run :func:`validate_queue_item`. The checks are the plans'
own (:data:`sibyls.plans.checks.PLAN_CHECKS`), so a plan started from a console refuses the same.

Order: the item's shape (size, nesting, non-finite numbers, over-long text), its ``meta`` (no
reserved RunStart key), binding to the plan's signature (unknown, missing or repeated arguments),
strict types (``"3"`` is not a number, ``3.5`` not a whole number), device names, then the plan's
check (rules, contract, plate, limits of every setpoint).

Hardware-free: imports no ophyd unless a dry run asks for a plan's Python signature.
"""

from __future__ import annotations

import inspect
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

from sibyls.metadata.contract import PLAN_WRITTEN_KEYS, RESERVED_KEYS, SEAL_KEY, ContractError, RunMetadata
from sibyls.metadata.rules import (
    ITEM_MAX_BYTES,
    ITEM_MAX_DEPTH,
    NAME_MAX_LENGTH,
    TEXT_MAX_LENGTH,
    WHITESPACE,
    argument_problems,
    short_text,
)
from sibyls.plans.checks import PLAN_CHECKS

#: RunStart keys a queue item's ``meta`` may not set: the contract, what the plans write, and
#: who/what queued the run. Compared regardless of case and surrounding whitespace (``Plan_Type``).
PROTECTED_META_KEYS = frozenset(
    key.casefold()
    for key in (
        *RESERVED_KEYS,
        SEAL_KEY,
        *RunMetadata.model_fields,
        *PLAN_WRITTEN_KEYS,
        "queue_item_uid",
        "submitted_by",
        "user_group",
    )
)

_STRICT = ConfigDict(strict=True, allow_inf_nan=False)
_NO_ANNOTATION = (inspect.Parameter.empty, Any)


# ---- the item's shape ---------------------------------------------------------------------------


def structure_problems(item: dict[str, Any]) -> list[str]:
    """Size, nesting depth, non-finite numbers and over-long text anywhere in args, kwargs and meta.

    The size is about the item's JSON: text by its UTF-8 bytes, keys by their characters, a number as 24.
    """
    problems: list[str] = []
    size = 0
    # Only containers go on the stack; leaves are checked where they sit. Paths are kept as
    # (parent, key) links and spelled out only for a problem: most items have none. The exact types
    # JSON gives (str, float, int, dict, list) are told apart by ``type`` first (the gate runs for every
    # item); anything else (a subclass, a tuple) takes the general ``isinstance`` path.
    stack: list[tuple[Any, tuple | None, int]] = []
    for key in ("args", "kwargs", "meta"):
        value = item.get(key)
        if isinstance(value, dict | list | tuple):
            stack.append((value, None if key == "kwargs" else (None, key), 0))
    while stack:
        container, where, depth = stack.pop()
        if depth >= ITEM_MAX_DEPTH:
            problems.append(f"{_path(where)}: nested deeper than {ITEM_MAX_DEPTH} levels")
            continue
        if isinstance(container, dict):
            entries = container.items()
            keys_size, longest = _keys_measure(tuple(container))
            size += keys_size
            if longest > NAME_MAX_LENGTH:
                problems.append(
                    f"{_path(where) or 'item'}: a key of {longest} characters; at most {NAME_MAX_LENGTH}"
                )
        else:
            entries = enumerate(container)
        size += 8 + 8 * len(container)
        for key, value in entries:
            kind = type(value)
            if kind is str or (kind not in _LEAF_OR_CONTAINER and isinstance(value, str)):
                length = len(value)
                size += length if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
                if length > TEXT_MAX_LENGTH and len(recorded := value.strip(WHITESPACE)) > TEXT_MAX_LENGTH:
                    problems.append(
                        f"{_path((where, key))}: at most {TEXT_MAX_LENGTH} characters (got {len(recorded)})"
                    )
            elif kind is float or (kind not in _LEAF_OR_CONTAINER and isinstance(value, float)):
                size += 16
                if value - value != 0.0:  # NaN or infinity
                    problems.append(f"{_path((where, key))}: must be a finite number, got {value!r}")
            elif kind is int or (kind not in _LEAF_OR_CONTAINER and isinstance(value, int)):
                size += 16 if -(2**53) < value < 2**53 else value.bit_length() // 3
            elif kind is dict or kind is list or isinstance(value, dict | list | tuple):
                stack.append((value, (where, key), depth + 1))
        if size > ITEM_MAX_BYTES:
            return [f"item: larger than {ITEM_MAX_BYTES // 1024} KiB; split it or shorten its text"]
    return problems


#: The exact types :func:`structure_problems` tells apart by ``type`` alone.
_LEAF_OR_CONTAINER = frozenset({str, float, int, dict, list})
#: Size and longest key of the key sets seen lately: the wells of a plate share theirs.
_KEY_MEASURES: dict[tuple, tuple[int, int]] = {}
_KEY_MEASURES_KEPT = 256


def _keys_measure(keys: tuple) -> tuple[int, int]:
    """The keys' share of an item's size (text by characters, anything else as 24) and the longest."""
    measure = _KEY_MEASURES.get(keys)
    if measure is None:
        lengths = [len(k) if isinstance(k, str) else 24 for k in keys]
        measure = (sum(lengths), max(lengths, default=0))
        if len(_KEY_MEASURES) >= _KEY_MEASURES_KEPT:
            _KEY_MEASURES.clear()
        _KEY_MEASURES[keys] = measure
    return measure


def _path(where: tuple | None) -> str:
    """``plate.wells[3].well`` from the (parent, key) links of :func:`structure_problems`."""
    parts: list[str] = []
    while where is not None:
        where, key = where
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return "".join(reversed(parts)).lstrip(".")


def meta_problems(meta: Any) -> list[str]:
    """``meta`` must be a dict (or a list of dicts) setting no reserved RunStart key."""
    problems = []
    for entry in meta if isinstance(meta, list | tuple) else [{} if meta is None else meta]:
        if not isinstance(entry, dict):
            problems.append("meta: must be a dict or a list of dicts")
            continue
        for key in entry:
            if not isinstance(key, str):
                problems.append(f"meta: keys must be text, got {type(key).__name__} {key!r}")
            elif key.strip().casefold() in PROTECTED_META_KEYS:
                problems.append(f"meta.{key}: reserved RunStart key; it comes from the plan, not the item")
    return problems


# ---- a plan's signature -------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanSignature:
    """What the gate needs of a plan: its parameters and, per device parameter, the allowed names."""

    name: str
    signature: inspect.Signature
    devices: dict[str, tuple[frozenset[str], bool]]  # parameter → (allowed names, takes a list)
    #: Worked out once per plan (the gate runs for every item): see :func:`_fast_binding`.
    binding: _Binding | None = field(default=None, compare=False, repr=False)

    #: Where a positional ``project_code`` sits (None: the plan has no such parameter).
    project_index: int | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "binding", _fast_binding(self.signature))
        names = list(self.signature.parameters)
        object.__setattr__(
            self, "project_index", names.index("project_code") if "project_code" in names else None
        )

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> PlanSignature:
        """From queueserver's plan description (what the RE Manager holds for a user group)."""
        from bluesky_queueserver.manager import profile_ops

        parameters = profile_ops.construct_parameters(description.get("parameters", []))
        devices = {}
        for entry in description.get("parameters", []):
            spec = entry.get("annotation") or {}
            if "devices" in spec:
                names = frozenset(n for group in spec["devices"].values() for n in group)
                devices[entry["name"]] = (names, str(spec.get("type", "")).startswith("typing.List"))
        return cls(description["name"], inspect.Signature(parameters), devices)

    @classmethod
    def from_plan(cls, name: str) -> PlanSignature:
        """From the plan function itself (dry runs outside the RE Manager; imports the plans)."""
        import sibyls.plans

        plan = getattr(sibyls.plans, name)
        specs = getattr(plan, "_custom_parameter_annotation_", {}).get("parameters", {})
        devices = {
            pname: (
                frozenset(n for group in spec["devices"].values() for n in group),
                str(spec.get("annotation", "")).startswith("typing.List"),
            )
            for pname, spec in specs.items()
            if "devices" in spec
        }
        return cls(name, inspect.signature(plan), devices)

    def problems(self, args: Any, kwargs: Any) -> list[str]:
        """Everything wrong with calling the plan with ``args``/``kwargs``; empty if nothing is."""
        if not isinstance(args, list | tuple):
            return [f"args: must be a list, got {type(args).__name__}"]
        if not isinstance(kwargs, dict):
            return [f"kwargs: must be a dict, got {type(kwargs).__name__}"]
        if odd := [k for k in kwargs if not isinstance(k, str)]:
            return [f"kwargs: argument names must be text, got {odd[0]!r}"]
        given = self.binding.bind(args, kwargs) if self.binding is not None else None
        if given is None:  # not a plain call (or a refused one): inspect binds it and words the refusal
            try:
                given = self.signature.bind(*args, **kwargs).arguments
            except TypeError as exc:
                return self._missing_problems(args, kwargs) or [self._binding_problem(str(exc))]
        problems = self._argument_problems(given)
        if problems:
            return problems
        try:
            PLAN_CHECKS[self.name](self._with_defaults(given))
        except ContractError as exc:
            return list(exc.problems)
        except (ValueError, TypeError) as exc:
            return [str(exc)]
        return []

    def _with_defaults(self, given: dict[str, Any]) -> dict[str, Any]:
        """Every parameter's value, in the signature's order: given, else its default."""
        if self.binding is not None:
            return {name: given.get(name, default) for name, default in self.binding.defaults}
        bound = self.signature.bind_partial()
        bound.arguments.update(given)
        bound.apply_defaults()
        return {name: bound.arguments[name] for name in self.signature.parameters if name in bound.arguments}

    def _argument_problems(self, arguments: dict[str, Any]) -> list[str]:
        """Device names and strict types of each given argument, in the rule's words where it has one."""
        problems = []
        plain = self.binding.plain if self.binding is not None else {}
        for pname, value in arguments.items():
            if pname in self.devices:
                problem = _device_problem(pname, *self.devices[pname], value)
            elif _plainly_valid(plain.get(pname), value):
                continue
            else:
                problem = _type_problem(pname, self.signature.parameters[pname].annotation, value)
                if problem:  # in the rule's words where it has one (10**400 is out of range, not "no number")
                    problem = next(iter(argument_problems({pname: value})), problem)
            if problem:
                problems.append(problem)
        return problems

    def _missing_problems(self, args: Any, kwargs: Any) -> list[str]:
        """With required arguments missing: each of them, and every other argument's own problems.

        So a form with ``sample_code`` still empty also shows that a 1000 s exposure is refused
        (the plan's whole check needs every argument, so it waits until none is missing).
        """
        try:
            bound = self.signature.bind_partial(*args, **kwargs)
        except TypeError:
            return []
        missing = [
            f"{name}: required argument of {self.name} is missing"
            for name, parameter in self.signature.parameters.items()
            if parameter.default is inspect.Parameter.empty
            and parameter.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
            and name not in bound.arguments
        ]
        if not missing:
            return []
        own = self._argument_problems(bound.arguments)
        typed = {
            name: value for name, value in bound.arguments.items() if name not in {_field_of(p) for p in own}
        }
        return missing + own + argument_problems(typed)

    def _binding_problem(self, message: str) -> str:
        names = ", ".join(self.signature.parameters)
        if match := re.search(r"missing a required argument: '(.*)'", message):
            return f"{match.group(1)}: required argument of {self.name} is missing"
        if match := re.search(r"unexpected keyword argument '(.*)'", message):
            return f"{match.group(1)}: {self.name} has no such parameter (parameters: {names})"
        if match := re.search(r"multiple values for argument '(.*)'", message):
            return f"{match.group(1)}: given both as positional and as keyword argument"
        if "too many positional arguments" in message:
            return f"args: too many positional arguments for {self.name} (parameters: {names})"
        return f"args: {message}"


@dataclass(frozen=True)
class _Binding:
    """A plan signature of plain parameters (positional-or-keyword, then keyword-only; no ``*args``,
    ``**kwargs`` or positional-only), bound without :meth:`inspect.Signature.bind`'s general machinery.

    ``positional``: the names a positional argument may fill, in order; ``required``: those without a
    default; ``defaults``: every parameter with its default (``inspect.Parameter.empty`` if none), in
    order; ``plain``: per parameter whose type a value's own type decides (see :func:`_plain_types`).
    """

    positional: tuple[str, ...]
    names: frozenset[str]
    required: frozenset[str]
    defaults: tuple[tuple[str, Any], ...]
    plain: dict[str, tuple[frozenset[type], frozenset[str]]]

    def bind(self, args: list | tuple, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        """The given arguments by name in the signature's order, as ``Signature.bind(...).arguments``
        has them; None for anything else (too many, unknown, repeated or missing arguments)."""
        if len(args) > len(self.positional):
            return None
        given = dict(zip(self.positional, args, strict=False))
        for name in kwargs:
            if name in given or name not in self.names:
                return None
        if len(given) + len(kwargs) < len(self.required) or not self.required <= given.keys() | kwargs.keys():
            return None
        if not kwargs:
            return given
        given.update(kwargs)
        return {name: given[name] for name, _ in self.defaults if name in given}


_PLAIN_TYPES = (str, int, float, bool, type(None))


def _fast_binding(signature: inspect.Signature) -> _Binding | None:
    """The plain binding of ``signature`` (None if it has ``*args``, ``**kwargs`` or positional-only)."""
    kinds = [parameter.kind for parameter in signature.parameters.values()]
    if any(
        kind not in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        for kind in kinds
    ):
        return None
    parameters = signature.parameters.values()
    return _Binding(
        positional=tuple(p.name for p in parameters if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD),
        names=frozenset(signature.parameters),
        required=frozenset(p.name for p in parameters if p.default is inspect.Parameter.empty),
        defaults=tuple((p.name, p.default) for p in parameters),
        plain={p.name: plain for p in parameters if (plain := _plain_types(p.annotation)) is not None},
    )


def _plain_types(annotation: Any) -> tuple[frozenset[type], frozenset[str]] | None:
    """For an annotation whose strict check a value's exact type decides (``str``, ``float | None``,
    ``Literal['a', 'b']``...): the exact types it accepts and the texts a ``Literal`` of text allows.

    Each accepted type is confirmed with the strict adapter itself, so the shortcut accepts only what
    :func:`_type_problem` accepts; None (always ask the adapter) for anything else.
    """
    import types
    import typing

    members = (
        typing.get_args(annotation)
        if typing.get_origin(annotation) in (typing.Union, types.UnionType)
        else (annotation,)
    )
    accepted: set[type] = set()
    texts: set[str] = set()
    for member in members:
        if typing.get_origin(member) is typing.Literal:
            values = typing.get_args(member)
            if not all(type(v) is str for v in values):
                return None
            texts.update(values)
        elif member in _PLAIN_TYPES:
            accepted.add(member)
        else:
            return None
    samples = {str: "x", int: 1, float: 1.5, bool: True, type(None): None}
    confirmed = {kind for kind in accepted if _type_problem("x", annotation, samples[kind]) is None}
    if confirmed != accepted or any(_type_problem("x", annotation, text) is not None for text in texts):
        return None
    return frozenset(confirmed), frozenset(texts)


def _plainly_valid(plain: tuple[frozenset[type], frozenset[str]] | None, value: Any) -> bool:
    """True when ``value`` passes the strict check by its type alone (a finite float, a whole number
    of at most 64 bits, an allowed ``Literal`` text); False means: ask :func:`_type_problem`."""
    if plain is None:
        return False
    kinds, texts = plain
    kind = type(value)
    if kind in kinds:
        if kind is float:
            return value - value == 0.0  # not NaN or infinity
        return kind is not int or -(2**63) <= value < 2**63
    return kind is str and value in texts


def _device_problem(name: str, allowed: frozenset[str], wants_list: bool, value: Any) -> str | None:
    """An unknown name in a device parameter (one name, or a list for ``typing.List[...]``)."""
    if wants_list and not isinstance(value, list | tuple):
        return f"{name}: a list of device names, got {value!r}"
    unknown = [v for v in (value if wants_list else [value]) if not isinstance(v, str) or v not in allowed]
    if unknown:
        choices = ", ".join(sorted(allowed))
        return f"{name}: {', '.join(map(repr, unknown))} not allowed here; choose from {choices}"
    return None


_ADAPTERS: dict[Any, TypeAdapter] = {}


def _type_problem(name: str, annotation: Any, value: Any) -> str | None:
    """Strict type check: no ``"3"`` for a number, no ``3.5`` for a whole number, no NaN."""
    if annotation in _NO_ANNOTATION:
        return None
    adapter = _ADAPTERS.get(annotation)
    if adapter is None:
        adapter = _ADAPTERS[annotation] = TypeAdapter(annotation, config=_STRICT)
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else "" for p in error["loc"])
        return f"{name}{where}: {error['msg']} (got {type(value).__name__} {short_text(value)})"
    return None


class _SignatureCache:
    """Signatures by the identity of queueserver's description object (kept alive while cached)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._entries: OrderedDict[int, tuple[dict, PlanSignature]] = OrderedDict()

    def get(self, description: dict[str, Any]) -> PlanSignature:
        entry = self._entries.get(id(description))
        if entry is not None and entry[0] is description:
            self._entries.move_to_end(id(description))
            return entry[1]
        signature = PlanSignature.from_description(description)
        self._entries[id(description)] = (description, signature)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return signature


_from_descriptions = _SignatureCache()
_from_plans: dict[str, PlanSignature] = {}


# ---- the gate -----------------------------------------------------------------------------------


def is_gated(name: Any) -> bool:
    """True for the SIBYLS plans (the gate leaves other plans, e.g. staff's ``mv``, to queueserver)."""
    return isinstance(name, str) and name in PLAN_CHECKS


def item_problems(item: dict[str, Any], description: dict[str, Any] | None = None) -> list[str]:
    """Every problem of queue item ``item`` (name, args, kwargs, meta) for a SIBYLS plan; [] if none.

    ``description`` is queueserver's description of the plan (the RE Manager passes the one of the
    submitting user's group); without it the plan's own Python signature is used.
    """
    if not isinstance(item, dict):
        return ["item: must be a dict with 'name', 'args', 'kwargs'"]
    name = item.get("name")
    if not is_gated(name):
        return [f"name: {name!r} is not a SIBYLS plan (plans: {', '.join(sorted(PLAN_CHECKS))})"]
    problems = structure_problems(item)
    if problems and problems[0].startswith("item:"):  # too large to look into further
        return problems
    problems += meta_problems(item.get("meta"))
    if description is not None:
        signature = _from_descriptions.get(description)
    else:
        signature = _from_plans.get(name) or _from_plans.setdefault(name, PlanSignature.from_plan(name))
    # Positional arguments are named by their parameter; where the structure walk and the plan's
    # check both speak of one field, the plan's words (its rule) are kept.
    args, kwargs = item.get("args"), item.get("kwargs")
    own = signature.problems([] if args is None else args, {} if kwargs is None else kwargs)
    if not problems:
        return own
    names = list(signature.signature.parameters)
    spoken_of = {_field_of(p) for p in own}
    named = (_named_positional(p, names) for p in problems)
    return [p for p in named if _field_of(p) not in spoken_of] + own


def item_project_code(item: dict[str, Any], description: dict[str, Any] | None = None) -> Any:
    """The ``project_code`` queue item ``item`` names (keyword or positional); None if it names none."""
    kwargs, args = item.get("kwargs") or {}, item.get("args") or []
    if isinstance(kwargs, dict) and "project_code" in kwargs:
        return kwargs["project_code"]
    name = item.get("name")
    if not is_gated(name) or not isinstance(args, list | tuple):
        return None
    if description is not None:
        signature = _from_descriptions.get(description)
    else:
        signature = _from_plans.get(name) or _from_plans.setdefault(name, PlanSignature.from_plan(name))
    index = signature.project_index
    return args[index] if index is not None and index < len(args) else None


def membership_problem(
    item: dict[str, Any],
    user: Any,
    projects: Any,
    staff_names: frozenset[str] = frozenset(),
    description=None,
) -> str | None:
    """``project_code: 'X' is not a project of <user>`` when the submitting ``user`` may not queue for
    the item's project (:class:`sibyls.metadata.projects.ProjectsFile`); None when they may, when
    ``projects`` is None (no projects file configured) or the item is not a SIBYLS plan. The words
    are the same whether the project exists or not: a refusal tells nobody which projects there are.
    """
    if projects is None or not isinstance(item, dict) or not is_gated(item.get("name")):
        return None
    code = item_project_code(item, description)
    # httpserver names a login as 'jdoe', 'jdoe <mail>' or 'jdoe "John Doe"': the login comes first.
    login = user.split(" ", 1)[0] if isinstance(user, str) else user
    if code is None or projects.is_member(login, code, staff=user in staff_names or login in staff_names):
        return None
    return (
        f"project_code: {short_text(code)} is not a project of {short_text(login)} "
        "(beamline staff add people to projects)"
    )


def _field_of(problem: str) -> str:
    return problem.split(":", 1)[0]


def _named_positional(problem: str, names: list[str]) -> str:
    """``args[2].x: ...`` → ``exposure_time.x: ...`` (the parameter the positional argument fills)."""
    if match := re.match(r"args\[(\d+)\]", problem):
        index = int(match.group(1))
        if index < len(names):
            return names[index] + problem[match.end() :]
    return problem


def refusal_message(name: Any, problems: list[str]) -> str:
    """The one message a refused item gets: the plan and each problem on its own line."""
    return f"{name} refused, nothing was queued or moved:\n  - " + "\n  - ".join(problems)


def validate_plan_call(name: str, args: list | tuple | None = None, kwargs: dict | None = None) -> list[str]:
    """Everything wrong with calling plan ``name`` with ``args``/``kwargs``; an empty list if nothing is."""
    return item_problems({"name": name, "args": list(args or []), "kwargs": dict(kwargs or {})})


def validate_queue_item(item: dict) -> dict[str, Any]:
    """Dry-run a queue item (name, args, kwargs, meta): ``{"success": bool, "problems": [...]}``.

    The same verdict the RE Manager gives when the item is added, without queueing anything.
    """
    problems = []
    if isinstance(item, dict) and item.get("item_type", "plan") != "plan":
        problems.append(f"item_type: only plans are validated here, got {item.get('item_type')!r}")
    problems += item_problems(item)
    return {"success": not problems, "problems": problems}
