"""PV building blocks the simulated devices share: UTF-8 text PVs, refusal messages, soft limits.

A put a device refuses raises ``ValueError``; caproto then answers the client with an error and
the PV keeps its value. Motor and temperature limits come from the rule table the queue gate
checks too, so a target the gate lets through is one the IOC accepts.
"""

from __future__ import annotations

from caproto import ChannelType
from caproto.server import pvproperty
from pydantic import ValidationError

from sibyls.metadata.rules import AXIS_LIMITS

LONG_STRING = 65536  # bytes of a JSON char waveform (plate definitions)
PATH_STRING = 1024


def axis_limits(axis: str) -> tuple[float, float]:
    """Soft limits of a simulated motor: those of the rule table's axis."""
    rule = AXIS_LIMITS[axis]
    return (rule.low, rule.high)  # type: ignore[return-value]


def validation_message(exc: ValidationError) -> str:
    """A refused JSON value's problems in one line (``field: message; ...``), as the client sees it."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}" for err in exc.errors()
    )


def json_text(value) -> str:
    """Text of a char-waveform value as caproto hands it to a putter."""
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8")
    return str(value)


def text_pv(name: str, value: str = "", max_length: int = PATH_STRING, **kwargs) -> pvproperty:
    """A UTF-8 text PV as a char waveform (paths, JSON, messages longer than 40 characters)."""
    return pvproperty(
        value=value,
        name=name,
        dtype=ChannelType.CHAR,
        max_length=max_length,
        string_encoding="utf-8",
        **kwargs,
    )
