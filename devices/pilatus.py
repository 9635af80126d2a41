"""Dectris PILATUS3 X 2M with HDF5 file writing, traceable through Resource/Datum documents.

Each trigger acquires ``num_images`` frames into one HDF5 file (``/entry/data/data``, shape
``(num_images, rows, columns)``, int32 with -1 in the module gaps). The event carries a datum
id; the Resource names the file (spec ``AD_HDF5``), so every frame file can be found from the
run's documents.
"""

from __future__ import annotations

import os
import re
import threading
from collections import deque
from pathlib import PurePosixPath

from event_model import compose_resource
from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO, Kind, Signal

from sibyls.devices.geometry import FULL_SHAPE
from sibyls.devices.status import BoundedStatus, at_least_written, bound, describe_state

FILE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def check_file_name(owner: str, file_name: str) -> None:
    """Refuse file names that are unsafe on disk, naming ``owner`` (the device) in the error."""
    if not re.match(FILE_NAME_PATTERN, file_name):
        raise ValueError(
            f"{owner}: file_name {file_name!r} must use only A-Z a-z 0-9 _ . - (max 64 characters)"
        )


def next_file_number(directory: str, file_name: str) -> int:
    """One more than the highest ``<file_name>_<number>.h5`` already in ``directory`` (1 if none)."""
    pattern = re.compile(rf"^{re.escape(file_name)}_(\d+)\.h5(?:\.partial)?$")
    try:
        numbers = [int(m.group(1)) for name in os.listdir(directory) if (m := pattern.match(name))]
    except FileNotFoundError:
        return 1
    return max(numbers, default=0) + 1


class DetectorError(RuntimeError):
    """The detector refused or failed an acquisition; the message says why."""


class PilatusDetector(Device):
    """PILATUS3 X 2M: set ``acquire_time``/``num_images`` and where files go, then trigger.

    Primary-stream readings: ``<name>_image`` (the frames, external) and
    ``<name>_total_counts`` (sum over valid pixels of the last frame). Acquisition settings
    and geometry go to the run's configuration.

    A trigger fails with the detector's own message when the detector reports an error (e.g.
    ``pilatus: no space left on device: /data/P1/GluRS_1_00003.h5``), and with a timeout naming
    the acquisition when it takes longer than ``trigger_timeout()`` (the acquisition is then
    aborted).
    """

    #: A trigger may take ``trigger_timeout_margin`` × (frames × period), plus
    #: ``readout_allowance_s`` and ``frame_readout_s`` per frame for opening, writing and closing
    #: the file, before it counts as failed.
    trigger_timeout_margin = 2.0
    readout_allowance_s = 10.0
    frame_readout_s = 0.2

    acquire_time = Cpt(EpicsSignal, "AcquireTime", put_complete=True, limits=True, kind=Kind.config)
    acquire_period = Cpt(EpicsSignal, "AcquirePeriod", put_complete=True, limits=True, kind=Kind.config)
    num_images = Cpt(EpicsSignal, "NumImages", put_complete=True, limits=True, kind=Kind.config)
    binning = Cpt(EpicsSignal, "Binning", put_complete=True, limits=True, kind=Kind.config)
    beam_center_x = Cpt(EpicsSignal, "BeamX", kind=Kind.config)
    beam_center_y = Cpt(EpicsSignal, "BeamY", kind=Kind.config)
    distance = Cpt(EpicsSignalRO, "Distance_RBV", kind=Kind.config)
    size_x = Cpt(EpicsSignalRO, "ArraySizeX_RBV", kind=Kind.omitted)
    size_y = Cpt(EpicsSignalRO, "ArraySizeY_RBV", kind=Kind.omitted)

    acquire = Cpt(EpicsSignal, "Acquire", put_complete=True, kind=Kind.omitted)
    detector_state = Cpt(EpicsSignalRO, "DetectorState_RBV", string=True, kind=Kind.omitted)
    status_message = Cpt(
        EpicsSignalRO, "StatusMessage_RBV", string=True, auto_monitor=False, kind=Kind.omitted
    )
    array_counter = Cpt(EpicsSignal, "ArrayCounter_RBV", write_pv="ArrayCounter", kind=Kind.omitted)
    file_path = Cpt(
        EpicsSignal, "FilePath", put_complete=True, string=True, auto_monitor=False, kind=Kind.omitted
    )
    file_name = Cpt(
        EpicsSignal, "FileName", put_complete=True, string=True, auto_monitor=False, kind=Kind.omitted
    )
    file_number = Cpt(EpicsSignal, "FileNumber", put_complete=True, limits=True, kind=Kind.omitted)
    file_template = Cpt(
        EpicsSignal, "FileTemplate", put_complete=True, string=True, auto_monitor=False, kind=Kind.omitted
    )
    full_file_name = Cpt(
        EpicsSignalRO, "FullFileName_RBV", string=True, auto_monitor=False, kind=Kind.omitted
    )

    # Read fresh after each trigger: a monitor update may arrive after the put-completion.
    total_counts = Cpt(EpicsSignalRO, "TotalCounts_RBV", kind=Kind.hinted, auto_monitor=False)
    image = Cpt(Signal, value="", kind=Kind.normal)

    def __init__(self, prefix: str = "", *, name: str, **kwargs) -> None:
        super().__init__(prefix, name=name, **kwargs)
        self._asset_docs = deque()
        self._lock = threading.Lock()

    # --- configuration helpers ---------------------------------------------------------------
    def set_file_destination(self, directory: str, file_name: str) -> None:
        """Write the next files as ``<directory>/<file_name>_<number>.h5`` (e.g. GluRS_1_00001.h5).

        Numbering continues after the highest number already in ``directory`` for that name,
        so earlier files are never in the way.
        """
        if not os.path.isabs(directory):
            raise ValueError(f"{self.name}: file directory must be an absolute path, got {directory!r}")
        check_file_name(self.name, file_name)
        self.file_path.put(directory.rstrip("/") + "/", wait=True)
        self.file_name.put(file_name, wait=True)
        self.file_number.put(next_file_number(directory, file_name), wait=True)

    # --- bluesky flyer/readable protocol ------------------------------------------------------
    def stage(self):
        if self.acquire_period.get() < self.acquire_time.get():
            self.acquire_period.put(self.acquire_time.get(), wait=True)
        return super().stage()

    def _acquisition_settings(self) -> tuple[int, float, float]:
        frames = int(at_least_written(self.num_images))
        exposure = at_least_written(self.acquire_time)
        return frames, exposure, max(exposure, at_least_written(self.acquire_period))

    def trigger_timeout(self, settings: tuple[int, float, float] | None = None) -> float:
        """Seconds the next trigger may take with the current ``num_images``, times and period."""
        frames, _, period = settings or self._acquisition_settings()
        allowance = self.readout_allowance_s + frames * self.frame_readout_s
        return bound(frames * period, self.trigger_timeout_margin, allowance)

    def trigger(self) -> BoundedStatus:
        """Acquire ``num_images`` frames into a new HDF5 file; finishes when the file is written."""
        previous_file = self.full_file_name.get()
        settings = self._acquisition_settings()
        frames, exposure, _ = settings
        status = BoundedStatus(
            self,
            f"acquisition of {frames} x {exposure:g} s",
            self.trigger_timeout(settings),
            detail=lambda: describe_state(("detector", self.detector_state), ("", self.status_message)),
            watch=[self.acquire],
        )
        return status.follow(self.acquire.set(1, timeout=None), lambda: self._register_file(previous_file))

    def _register_file(self, previous_file: str) -> None:
        state = self.detector_state.get(use_monitor=False)
        path = self.full_file_name.get(use_monitor=False)
        if state == "Error":
            raise DetectorError(f"{self.name}: {self.status_message.get(use_monitor=False)}")
        if not path or path == previous_file or not os.path.isabs(path):
            raise DetectorError(
                f"{self.name}: no new file was written ({self.status_message.get(use_monitor=False)})"
            )
        frames = int(self.num_images.get())
        relative = str(PurePosixPath(path).relative_to("/"))
        resource, compose_datum, _ = compose_resource(
            start={"uid": "unknown"},
            spec="AD_HDF5",
            root="/",
            resource_path=relative,
            resource_kwargs={"frame_per_point": frames},
        )
        resource.pop("run_start", None)
        datum = compose_datum(datum_kwargs={"point_number": 0})
        with self._lock:
            self._asset_docs.append(("resource", resource))
            self._asset_docs.append(("datum", datum))
        self.image.put(datum["datum_id"])

    def stop(self, *, success: bool = False) -> None:
        """Abort an acquisition in progress (the RunEngine calls this when a plan ends or fails).

        The detector discards the unfinished file: no partial file is left behind.
        """
        if self.detector_state.get(use_monitor=False) not in ("Idle", "Error"):
            self.acquire.put(0, use_complete=False)
        super().stop(success=success)

    def collect_asset_docs(self):
        """Yield the Resource and Datum documents of the files written since the last call."""
        with self._lock:
            items = list(self._asset_docs)
            self._asset_docs.clear()
        yield from items

    def describe(self):
        description = super().describe()
        frames = int(self.num_images.get())
        rows, cols = int(self.size_y.get()) or FULL_SHAPE[0], int(self.size_x.get()) or FULL_SHAPE[1]
        description[self.image.name].update(
            {
                "shape": [frames, rows, cols],
                "dtype": "array",
                "dtype_numpy": "<i4",
                "external": "FILESTORE:",
            }
        )
        return description
