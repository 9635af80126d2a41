"""Records as YAML text, with libyaml's C emitter and parser where PyYAML has them (a 600-frame SEC
record is read and written several times a second; the pure-Python ones take about a second)."""

from __future__ import annotations

from typing import Any

import yaml

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def dump_record(record: dict) -> str:
    """YAML text of a record (key order kept)."""
    return yaml.dump(record, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def load_record_text(text: str) -> Any:
    """A record (or any YAML document) from its text, safely."""
    return yaml.load(text, Loader=_Loader)
