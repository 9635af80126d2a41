"""HT-SAXS sample robot: loads a well of a 96-well plate into the cell, cleans and dries the cell."""

from __future__ import annotations

import json
import re

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO, Kind

from sibyls.devices.status import BoundedStatus, bound, describe_state
from sibyls.metadata import rules

WELL_PATTERN = re.compile(rules.WELL_PATTERN)


class RobotError(RuntimeError):
    """The robot refused or failed a command; the message is the robot's own."""


class WellSignal(EpicsSignal):
    """Target well; only A1–H12 are accepted."""

    def check_value(self, value):
        if not isinstance(value, str) or not WELL_PATTERN.match(value):
            raise ValueError(f"{self.name}: well {value!r} is not a 96-well position A1-H12")
        super().check_value(value)


class PlateIdSignal(EpicsSignal):
    """Plate on the robot deck; only plates the robot knows are accepted."""

    def check_value(self, value):
        known = self.parent.known_plate_ids()
        if value not in known:
            raise ValueError(f"{self.name}: unknown plate {value!r}; known plates: {known}")
        super().check_value(value)


class HTRobot(Device):
    """The HT robot. ``bps.mv(ht_robot, "B3")`` loads well B3 of the current plate;
    ``bps.mv(ht_robot, "clean")`` and ``bps.mv(ht_robot, "dry")`` clean and dry the cell.

    A command the robot refuses raises :class:`RobotError` with the robot's reason. A command
    that does not finish within ``timeout_margin`` × its expected duration + ``timeout_allowance_s``
    fails with a timeout naming the command and the robot's state then; a profile may set the
    expected durations (``load_time_s``, ``clean_time_s``, ``dry_time_s``) to the real robot's.
    """

    #: Expected seconds of each command (the simulation's nominal durations, devices/sim/robot.py).
    load_time_s = 15.0
    clean_time_s = 20.0
    dry_time_s = 10.0
    timeout_margin = 3.0
    timeout_allowance_s = 10.0

    plate_definition = Cpt(EpicsSignal, "PlateDefinition", string=True, auto_monitor=False, kind=Kind.omitted)
    known_plates = Cpt(EpicsSignalRO, "KnownPlates_RBV", string=True, auto_monitor=False, kind=Kind.omitted)
    plate_id = Cpt(PlateIdSignal, "PlateId", put_complete=True, string=True, kind=Kind.config)
    well = Cpt(WellSignal, "Well", put_complete=True, string=True, kind=Kind.omitted)
    load_cmd = Cpt(EpicsSignal, "Load", put_complete=True, kind=Kind.omitted)
    clean_cmd = Cpt(EpicsSignal, "Clean", put_complete=True, kind=Kind.omitted)
    dry_cmd = Cpt(EpicsSignal, "Dry", put_complete=True, kind=Kind.omitted)
    state = Cpt(EpicsSignalRO, "State_RBV", string=True, kind=Kind.normal, auto_monitor=False)
    loaded_well = Cpt(EpicsSignalRO, "LoadedWell_RBV", string=True, kind=Kind.normal, auto_monitor=False)
    loaded_sample = Cpt(EpicsSignalRO, "LoadedSample_RBV", string=True, kind=Kind.normal, auto_monitor=False)
    message = Cpt(EpicsSignalRO, "Message_RBV", string=True, auto_monitor=False, kind=Kind.omitted)
    command_refused = Cpt(EpicsSignalRO, "CommandRefused_RBV", kind=Kind.omitted, auto_monitor=False)

    def known_plate_ids(self) -> list[str]:
        """Plate ids the robot has definitions for."""
        return json.loads(self.known_plates.get(use_monitor=False) or "[]")

    def define_plate(self, plate: dict) -> None:
        """Register a plate definition (``{"plate_id": ..., "wells": {...}}``) with the robot."""
        self.plate_definition.put(json.dumps(plate), wait=True)
        if plate.get("plate_id") not in self.known_plate_ids():
            raise RobotError(f"{self.name}: the robot did not accept plate {plate.get('plate_id')!r}")

    def select_plate(self, plate_id: str) -> None:
        """Put plate ``plate_id`` on the deck (it must be defined)."""
        self.plate_id.put(plate_id, wait=True)

    def command_timeout(self, expected_s: float) -> float:
        """Seconds a command expected to take ``expected_s`` may take before it counts as failed."""
        return bound(expected_s, self.timeout_margin, self.timeout_allowance_s)

    def _command(
        self, signal: EpicsSignal, expected_state: str, what: str, expected_s: float
    ) -> BoundedStatus:
        status = BoundedStatus(
            self,
            what,
            self.command_timeout(expected_s),
            detail=lambda: describe_state(("robot state", self.state), ("", self.message)),
            watch=[self.state],
        )

        def check() -> None:
            state = self.state.get(use_monitor=False)
            if self.command_refused.get(use_monitor=False) or state != expected_state:
                raise RobotError(f"{self.name}: {self.message.get(use_monitor=False)} (state {state})")

        return status.follow(signal.set(1, timeout=None), check)

    def set(self, value: str, **kwargs) -> BoundedStatus:
        """``"B3"``: load well B3 of the current plate; ``"clean"`` / ``"dry"``: clean or dry the cell.

        The status finishes when the robot is done (loaded, or idle again).
        """
        if value == "clean":
            return self._command(self.clean_cmd, "idle", "cleaning the cell", self.clean_time_s)
        if value == "dry":
            return self._command(self.dry_cmd, "idle", "drying the cell", self.dry_time_s)
        self.well.put(value, wait=True)
        return self._command(self.load_cmd, "loaded", f"load of well {value}", self.load_time_s)

    def clean(self) -> BoundedStatus:
        """Flush the cell; finishes when clean."""
        return self.set("clean")

    def dry(self) -> BoundedStatus:
        """Dry the cell; finishes when dry."""
        return self.set("dry")
