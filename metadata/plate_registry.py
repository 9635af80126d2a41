"""The HT robot's plate registry as a file: which plates the robot knows, readable without hardware.

A beamline user gets an unknown ``plate_id`` refused when the plate item is added to the queue, not
hours later when the robot is asked for it. The file (YAML, ``plate_id → definition``) is shared by
the robot (the simulated IOC loads it and adds what is defined over Channel Access), the RE Manager's
queue gate and the plans. Each process's entry point names it with :func:`use_registry` (the RE
worker's profile, the RE Manager, the HTTP server: from the profile's settings, where ``sibyls up``
puts it at ``<var>/plates.yaml``); with no registry configured, plate ids are checked by the robot alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sibyls.metadata.atomic import atomic_write_text
from sibyls.metadata.record_yaml import load_record_text


class PlateRegistry:
    """Plate definitions in one YAML file; reads are cached until the file changes."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._plates: dict[str, Any] = {}

    def definitions(self) -> dict[str, Any]:
        """``plate_id → definition`` as in the file now (empty when there is no file yet)."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._plates = None, {}
            return {}
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp != self._stamp:
            loaded = load_record_text(self.path.read_text()) or {}  # libyaml: read at queue add
            if not isinstance(loaded, dict):
                raise ValueError(f"{self.path}: a plate registry maps plate ids to definitions")
            self._plates, self._stamp = loaded, stamp
        return self._plates

    def plate_ids(self) -> list[str]:
        """The plate ids the robot knows, sorted."""
        return sorted(self.definitions())

    def add(self, definition: dict[str, Any]) -> None:
        """Add or replace one plate definition (``{"plate_id": ..., ...}``), written atomically."""
        self.write({**self.definitions(), definition["plate_id"]: definition})

    def write(self, plates: dict[str, Any]) -> None:
        """The registry file with exactly ``plates`` (``plate_id → definition``) below :data:`HEADER`."""
        atomic_write_text(self.path, HEADER + yaml.safe_dump(plates, sort_keys=True))


#: The registry file's first lines: its format, for the person who adds a plate by hand.
HEADER = """\
# The HT robot's plates (the plate registry). The queue refuses a plate item whose plate_id is not a
# key here, or that names a well its plate leaves empty; the robot and the queue read this file
# again whenever it changes. To add a plate, copy an entry, give it your plate_id (letters, digits,
# _ . -) as key and as plate_id, and list each filled well (A1-H12):
#   kind: buffer                 a buffer well (solvent only)
#   kind: sample                 a sample well, with concentration_mg_ml and mw_kda; on the
#                                simulated beamline also its size (rg_a in Angstrom: a sphere)
#   sample_code                  what the well holds (letters, digits, _ . -)
# Example:
#   MY_PLATE_1:
#     plate_id: MY_PLATE_1
#     wells:
#       A1: {sample_code: my_buffer, kind: buffer}
#       A2: {sample_code: my_protein, kind: sample, concentration_mg_ml: 2.0, mw_kda: 50, rg_a: 20}
"""


def use_registry(path: Path | str | None) -> None:
    """Check plate ids and wells against the registry file at ``path`` in this process from now on
    (None: no registry; the robot alone checks plate ids)."""
    global _configured
    _configured = PlateRegistry(path) if path else None


def configured_registry() -> PlateRegistry | None:
    """The registry :func:`use_registry` named (None when there is none)."""
    return _configured


_configured: PlateRegistry | None = None


def unknown_plate_problem(plate_id: Any, field: str = "plate.plate_id") -> str | None:
    """``plate.plate_id: the robot has no plate 'X' ...`` when a registry is configured and lacks it."""
    registry = configured_registry()
    if registry is None or not isinstance(plate_id, str):
        return None
    known = registry.plate_ids()
    if plate_id.strip() in known:
        return None
    return (
        f"{field}: the robot has no plate {plate_id!r} (known plates: {', '.join(known) or 'none'}); "
        f"define it in {registry.path} as {definition_hint(plate_id.strip())}"
    )


def definition_hint(plate_id: str) -> str:
    """A one-line plate definition to copy into the registry: a buffer well and its sample well."""
    return (
        f"'{plate_id}: {{plate_id: {plate_id}, wells: {{A1: {{sample_code: my_buffer, kind: buffer}}, "
        "A2: {sample_code: my_protein, kind: sample, concentration_mg_ml: 2.0, mw_kda: 50, rg_a: 20}}}' "
        "(one entry per filled well; the format is in the file's header and the README)"
    )


def empty_well_problems(plate_id: Any, wells: list[Any], field: str = "plate.wells") -> list[str]:
    """``plate.wells[3].well: the robot's plate 'X' has nothing in H12`` for each well the registry's
    definition of the plate leaves empty (the robot would refuse to load it halfway through the plate)."""
    registry = configured_registry()
    if registry is None or not isinstance(plate_id, str):
        return []
    definition = registry.definitions().get(plate_id.strip())
    filled = definition.get("wells") if isinstance(definition, dict) else None
    if not isinstance(filled, dict):
        return []
    return [
        f"{field}[{index}].well: the robot's plate {plate_id!r} has nothing in {well}"
        for index, well in enumerate(wells)
        if well not in filled
    ]
