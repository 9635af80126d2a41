"""caproto IOC that simulates the SIBYLS beamline (ALS 12.3.1) over EPICS Channel Access.

One PVGroup per device, all under one prefix. The physics lives in
:mod:`sibyls.devices.sim.physics`; this module keeps the beamline's state, its timing and
the PV interface. Durations are simulated durations: ``Sim:TimeScale`` = 50 makes a robot
load, an elution, a motor move or an exposure take 1/50 of its real wall time (counts and
file contents do not change).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import json
import logging
import math
import os
import re
import socket
import time
from pathlib import Path

import h5py
import numpy as np
from caproto import ChannelType
from caproto.asyncio import server as caproto_asyncio_server
from caproto.server import PVGroup, SubGroup, pvproperty
from pydantic import ValidationError

from sibyls.devices.epics_env import apply_loopback_ca_env
from sibyls.devices.geometry import DetectorGeometry, energy_to_wavelength
from sibyls.devices.sim import physics
from sibyls.devices.sim.physics import BeamState, PlateDefinition, ScatteringSample
from sibyls.metadata.plate_registry import PlateRegistry
from sibyls.metadata.rules import AXIS_LIMITS

logger = logging.getLogger("sibyls.ioc")

DEFAULT_PREFIX = "SIBYLS:"
LONG_STRING = 65536  # bytes of a JSON char waveform (plate definitions)
PATH_STRING = 1024
DETECTOR_STATES = ["Idle", "Acquire", "Readout", "Correct", "Saving", "Aborting", "Error", "Waiting"]
ROBOT_STATES = ["idle", "loading", "loaded", "cleaning", "drying", "fault"]
# Nominal durations (simulated seconds) of the HT robot's commands.
ROBOT_LOAD_S = 15.0
ROBOT_CLEAN_S = 20.0
ROBOT_DRY_S = 10.0
CELL_TEMPERATURE_TAU_S = 20.0
REGISTRY_POLL_S = 1.0
#: Disk space held beside a frame file while it is written and given back when the disk fills, so
#: that HDF5 can still write what it must on close: a failed close cannot be retried (h5py
#: segfaults on a second close, or when the half-closed file is garbage-collected).
FRAME_FILE_RESERVE_BYTES = 1 << 20


def _limits(axis: str) -> tuple[float, float]:
    """Soft limits of a simulated motor: those of the rule table's axis."""
    rule = AXIS_LIMITS[axis]
    return (rule.low, rule.high)  # type: ignore[return-value]


SHUTTER_DELAY_S = {"photon": 0.5, "fast": 0.005}


def _format_validation_error(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}" for err in exc.errors()
    )


def _json_text(value) -> str:
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


class SimulationClock:
    """Simulated time that runs ``scale`` times faster than the wall clock."""

    def __init__(self, scale: float = 1.0) -> None:
        self._scale = scale
        self._sim_at_change = 0.0
        self._wall_at_change = time.monotonic()

    @property
    def scale(self) -> float:
        return self._scale

    @scale.setter
    def scale(self, value: float) -> None:
        self._sim_at_change = self.now()
        self._wall_at_change = time.monotonic()
        self._scale = value

    def now(self) -> float:
        """Simulated seconds since the IOC started."""
        return self._sim_at_change + (time.monotonic() - self._wall_at_change) * self._scale

    async def sleep(self, sim_seconds: float) -> None:
        """Wait for ``sim_seconds`` of simulated time."""
        if sim_seconds > 0:
            await asyncio.sleep(sim_seconds / self._scale)


class SimControlGroup(PVGroup):
    """Simulation knobs: time scale, and the sample put in the cell by hand (not by the robot)."""

    time_scale = pvproperty(
        value=1.0,
        name="TimeScale",
        lower_ctrl_limit=0.01,
        upper_ctrl_limit=10000.0,
        doc="simulated seconds per wall-clock second",
    )
    cell_sample = text_pv(
        "CellSample",
        max_length=LONG_STRING,
        doc="JSON ScatteringSample put in the cell by hand; null empties the cell",
    )
    cell_contents = pvproperty(
        value="empty",
        name="CellContents_RBV",
        dtype=ChannelType.STRING,
        read_only=True,
        doc="sample_code of what is in the cell (empty when dry)",
    )

    @time_scale.putter
    async def time_scale(self, instance, value):
        self.parent.clock.scale = float(value)
        return value

    @time_scale.startup
    async def time_scale(self, instance, async_lib):
        await instance.write(self.parent.clock.scale)

    @cell_sample.putter
    async def cell_sample(self, instance, value):
        text = _json_text(value).strip()
        if text in ("", "null"):
            await self.parent.set_cell_contents(None)
            return "null"  # caproto cannot store an empty char waveform
        try:
            sample = ScatteringSample.model_validate_json(text)
        except ValidationError as exc:
            raise ValueError(f"CellSample refused: {_format_validation_error(exc)}") from None
        await self.parent.set_cell_contents(sample)
        return text


class RingGroup(PVGroup):
    """ALS storage ring in top-off: ~500 mA with a small sawtooth and noise."""

    current = pvproperty(value=500.0, name="Current_RBV", read_only=True, units="mA", precision=2)

    @current.startup
    async def current(self, instance, async_lib):
        rng = np.random.default_rng()
        while True:
            phase = (self.parent.clock.now() % 30.0) / 30.0  # one top-off injection every 30 s
            value = 500.3 - 0.6 * phase + rng.normal(0.0, 0.03)
            await instance.write(value)
            await asyncio.sleep(0.5)


class MonoGroup(PVGroup):
    """Double-multilayer monochromator: energy setpoint, energy and wavelength readbacks."""

    energy = pvproperty(
        value=11.0, name="Energy", lower_ctrl_limit=6.0, upper_ctrl_limit=20.0, units="keV", precision=4
    )
    energy_rbv = pvproperty(value=11.0, name="Energy_RBV", read_only=True, units="keV", precision=4)
    wavelength_rbv = pvproperty(
        value=energy_to_wavelength(11.0), name="Wavelength_RBV", read_only=True, units="Å", precision=5
    )

    @energy.putter
    async def energy(self, instance, value):
        await self.parent.clock.sleep(1.0)  # mono move
        await self.energy_rbv.write(value)
        await self.wavelength_rbv.write(energy_to_wavelength(value))
        return value


class ShutterGroup(PVGroup):
    """A shutter: ``Open`` command (Close/Open; put-completion waits for the blades) and status."""

    command = pvproperty(value="Close", name="Open", enum_strings=["Close", "Open"], dtype=ChannelType.ENUM)
    status = pvproperty(
        value="Closed",
        name="Status_RBV",
        enum_strings=["Closed", "Open", "Moving"],
        dtype=ChannelType.ENUM,
        read_only=True,
    )

    def __init__(self, *args, delay_s: float = 0.1, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.delay_s = delay_s

    @property
    def is_open(self) -> bool:
        return self.status.value == "Open"

    @command.putter
    async def command(self, instance, value):
        target = "Open" if value == "Open" else "Closed"
        if self.status.value != target:
            await self.status.write("Moving")
            await self.parent.clock.sleep(self.delay_s)
            await self.status.write(target)
        return value


class CounterGroup(PVGroup):
    """A scaler channel (ion chamber or beamstop diode): count for a preset time, or read the rate."""

    preset_time = pvproperty(
        value=1.0, name="PresetTime", lower_ctrl_limit=1e-4, upper_ctrl_limit=3600.0, units="s", precision=4
    )
    count = pvproperty(value=0, name="Count", doc="put 1 to count for PresetTime (put-completion waits)")
    counts = pvproperty(value=0.0, name="Counts_RBV", read_only=True, units="counts", precision=0)
    rate = pvproperty(value=0.0, name="Rate_RBV", read_only=True, units="counts/s", precision=0)

    def __init__(self, *args, channel: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.channel = channel
        self.rng = np.random.default_rng()

    def _counts(self, state: BeamState, seconds: float) -> float:
        if self.channel == "i0":
            return physics.i0_counts(state, seconds, self.rng)
        return physics.bs_diode_counts(state, seconds, self.rng)

    @count.putter
    async def count(self, instance, value):
        if not value:
            return 0
        preset = float(self.preset_time.value)
        # Sample the beam every ~20 ms of wall time (at most 10 times): short counts take one look.
        slices = max(1, min(10, int(preset / self.parent.clock.scale / 0.02)))
        total = 0.0
        for _ in range(slices):  # integrate the beam as it is while counting
            await self.parent.clock.sleep(preset / slices)
            total += self._counts(self.parent.beam_state(), preset / slices)
        await self.counts.write(total)
        return 0

    @rate.startup
    async def rate(self, instance, async_lib):
        while True:
            rate = self._counts(self.parent.beam_state(), 1.0)
            if rate or instance.value:  # no monitor traffic while the beam is off
                await instance.write(rate)
            await asyncio.sleep(0.5)


class PilatusGroup(PVGroup):
    """PILATUS3 X 2M: areaDetector-like acquisition writing HDF5 frame files (one file per Acquire)."""

    acquire_time = pvproperty(
        value=1.0, name="AcquireTime", lower_ctrl_limit=1e-4, upper_ctrl_limit=3600.0, units="s", precision=4
    )
    acquire_period = pvproperty(
        value=1.0, name="AcquirePeriod", lower_ctrl_limit=0.0, upper_ctrl_limit=3600.0, units="s", precision=4
    )
    num_images = pvproperty(value=1, name="NumImages", lower_ctrl_limit=1, upper_ctrl_limit=100000)
    acquire = pvproperty(value=0, name="Acquire", doc="1 starts; busy until the file is written; 0 aborts")
    array_counter = pvproperty(value=0, name="ArrayCounter")
    array_counter_rbv = pvproperty(value=0, name="ArrayCounter_RBV", read_only=True)
    num_images_counter = pvproperty(value=0, name="NumImagesCounter_RBV", read_only=True)
    detector_state = pvproperty(
        value="Idle",
        name="DetectorState_RBV",
        enum_strings=DETECTOR_STATES,
        dtype=ChannelType.ENUM,
        read_only=True,
    )
    status_message = text_pv("StatusMessage_RBV", read_only=True)
    file_path = text_pv("FilePath", value="/tmp/sibyls/")
    file_path_exists = pvproperty(value=0, name="FilePathExists_RBV", read_only=True)
    file_name = text_pv("FileName", value="frames", max_length=256)
    file_number = pvproperty(value=1, name="FileNumber", lower_ctrl_limit=0, upper_ctrl_limit=2**31 - 2)
    file_template = text_pv("FileTemplate", value="%s%s_%5.5d.h5", max_length=256)
    auto_increment = pvproperty(value=1, name="AutoIncrement", lower_ctrl_limit=0, upper_ctrl_limit=1)
    full_file_name = text_pv("FullFileName_RBV", read_only=True)
    binning = pvproperty(value=1, name="Binning", lower_ctrl_limit=1, upper_ctrl_limit=8)
    size_x = pvproperty(value=0, name="ArraySizeX_RBV", read_only=True)
    size_y = pvproperty(value=0, name="ArraySizeY_RBV", read_only=True)
    beam_x = pvproperty(value=737.0, name="BeamX", units="px", precision=2)
    beam_y = pvproperty(value=1460.0, name="BeamY", units="px", precision=2)
    distance = pvproperty(value=2105.0, name="Distance_RBV", read_only=True, units="mm", precision=1)
    total_counts = pvproperty(
        value=0.0,
        name="TotalCounts_RBV",
        read_only=True,
        units="counts",
        precision=0,
        doc="sum of the valid pixels of the last frame",
    )

    def __init__(self, *args, binning: int = 1, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._initial_binning = binning
        self._busy = False
        self._abort = False
        self.rng = np.random.default_rng()

    def geometry(self) -> DetectorGeometry:
        return DetectorGeometry(
            wavelength_a=float(self.parent.mono.wavelength_rbv.value),
            distance_mm=float(self.distance.value),
            beam_center_x=float(self.beam_x.value),
            beam_center_y=float(self.beam_y.value),
            binning=int(self.binning.value),
        )

    @binning.startup
    async def binning(self, instance, async_lib):
        await instance.write(self._initial_binning)

    @binning.putter
    async def binning(self, instance, value):
        if value not in (1, 2, 4, 8):
            raise ValueError(f"Binning must be 1, 2, 4 or 8, got {value}")
        if self._busy:
            raise ValueError("Binning cannot change during an acquisition")
        rows, cols = DetectorGeometry(binning=value).shape
        await self.size_x.write(cols)
        await self.size_y.write(rows)
        return value

    @file_path.putter
    async def file_path(self, instance, value):
        text = _json_text(value)
        if not text.startswith("/"):
            raise ValueError(f"FilePath must be absolute, got {text!r}")
        if not text.endswith("/"):
            text += "/"
        await self.file_path_exists.write(int(os.path.isdir(text)))
        return text

    @file_name.putter
    async def file_name(self, instance, value):
        text = _json_text(value)
        if not physics.FILE_NAME_PATTERN.match(text):
            raise ValueError(f"FileName {text!r} must use only A-Z a-z 0-9 _ . - (max 64)")
        return text

    @array_counter.putter
    async def array_counter(self, instance, value):
        await self.array_counter_rbv.write(value)
        return value

    def _next_file_name(self) -> str:
        template = _json_text(self.file_template.value)
        return template % (
            _json_text(self.file_path.value),
            _json_text(self.file_name.value),
            int(self.file_number.value),
        )

    @acquire.putter
    async def acquire(self, instance, value):
        if not value:
            if self._busy:
                self._abort = True
                await self.detector_state.write("Aborting")
            return 0
        if self._busy:
            raise ValueError("Acquire refused: the detector is busy with an acquisition")
        self._busy = True
        self._abort = False
        await instance.write(1, verify_value=False)
        try:
            await self._acquire_series()
        except FrameFileError as exc:  # the disk's fault, not the IOC's: no traceback
            logger.warning("acquisition failed: %s", exc)
            await self._report_error(str(exc))
        except Exception as exc:  # the detector reports, it does not crash the IOC
            logger.exception("acquisition failed")
            await self._report_error(f"Error: {exc}")
        finally:
            self._busy = False
        return 0

    async def _report_error(self, message: str) -> None:
        await self.status_message.write(message[: PATH_STRING - 1])
        await self.detector_state.write("Error")

    async def _acquire_series(self) -> None:
        target = self._next_file_name()
        directory = os.path.dirname(target)
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise FrameFileError(f"cannot create FilePath {directory}: {exc.strerror}") from None
        await self.file_path_exists.write(1)
        if os.path.exists(target):
            raise RuntimeError(f"{target} exists; refusing to overwrite (set FileNumber)")
        n_images = int(self.num_images.value)
        exposure = float(self.acquire_time.value)
        period = max(float(self.acquire_period.value), exposure)
        geometry = self.geometry()
        await self.status_message.write(f"Acquiring {n_images} x {exposure:g} s")
        await self.detector_state.write("Acquire")
        await self.num_images_counter.write(0)
        partial = target + ".partial"
        # The file is prepared while the first frame is exposed.
        writer_task = asyncio.create_task(
            asyncio.to_thread(_FrameFileWriter, partial, geometry, n_images, self._file_metadata())
        )
        writer = None
        try:
            for index in range(n_images):
                if self._abort:
                    break
                state = self.parent.beam_state()
                frame_task = asyncio.create_task(
                    asyncio.to_thread(physics.simulate_frame, geometry, state, exposure, self.rng)
                )
                await self.parent.clock.sleep(exposure)
                frame = await frame_task
                if writer is None:
                    writer = await writer_task
                await asyncio.to_thread(writer.write_frame, index, frame, state)
                await self.num_images_counter.write(index + 1)
                counter = int(self.array_counter_rbv.value) + 1
                await self.array_counter_rbv.write(counter)
                await self.array_counter.write(counter, verify_value=False)
                await self.total_counts.write(float(frame[frame > 0].sum()))
                if index < n_images - 1:
                    await self.parent.clock.sleep(period - exposure)
            if self._abort:
                raise _Aborted
            await self.detector_state.write("Saving")
            writer = writer or await writer_task
            await asyncio.to_thread(writer.finish)
            os.replace(partial, target)
        except BaseException as exc:
            if writer is None:
                with contextlib.suppress(Exception):  # a writer that failed to open discarded itself
                    writer = await writer_task
            if writer is not None:
                await asyncio.to_thread(writer.discard)
            _remove_quietly(partial)
            if isinstance(exc, _Aborted):
                await self.status_message.write("Aborted; no file written")
                await self.detector_state.write("Idle")
                return
            if isinstance(exc, OSError):
                raise FrameFileError(io_error_message(exc, target)) from exc
            raise
        await self.full_file_name.write(target)
        if int(self.auto_increment.value):
            await self.file_number.write(int(self.file_number.value) + 1)
        await self.status_message.write(f"Wrote {n_images} frames to {target}")
        await self.detector_state.write("Idle")

    def _file_metadata(self) -> dict:
        return {
            "count_time": float(self.acquire_time.value),
            "frame_time": max(float(self.acquire_period.value), float(self.acquire_time.value)),
            "energy_kev": float(self.parent.mono.energy_rbv.value),
            "beamstop_offset_mm": self.parent.beamstop_offset_mm(),
        }


class _Aborted(Exception):
    pass


class FrameFileError(RuntimeError):
    """A frame file could not be written; the message is what the detector reports."""


_H5_ERRNO = re.compile(r"errno = (\d+)")


def io_error_message(exc: OSError, path: str) -> str:
    """The detector's message for an I/O error on frame file ``path``: disk full, no permission..."""
    code = exc.errno
    if code is None and (match := _H5_ERRNO.search(str(exc))):  # HDF5 puts errno in its message
        code = int(match.group(1))
    if code in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on device: {path}"
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write to {os.path.dirname(path)}: {os.strerror(code)}"
    reason = os.strerror(code) if code else str(exc).splitlines()[0]
    return f"cannot write {path}: {reason}"


def _remove_quietly(path: str) -> None:
    """Remove ``path`` if it is there; a failure is logged, never raised over the error being handled."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if os.path.lexists(path):  # on a read-only file system even a missing file reports EROFS
            logger.warning("could not remove %s: %s", path, exc.strerror)


def _reserve_space(path: str, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.posix_fallocate(fd, 0, size)
    except BaseException:
        os.close(fd)
        _remove_quietly(path)
        raise
    os.close(fd)


#: Files whose close failed: never closed again and never garbage-collected (either segfaults h5py).
_UNCLOSABLE: list = []


@functools.lru_cache(maxsize=8)
def _cached_pixel_mask(geometry: DetectorGeometry, beamstop_offset_mm: tuple[float, float]) -> np.ndarray:
    return physics.pixel_mask(geometry, beamstop_offset_mm)


class _FrameFileWriter:
    """Writes frames into an HDF5 file laid out like areaDetector's NeXus output.

    An I/O error (disk full, folder not writable) raises ``OSError`` from the call that met it,
    and the file is then :meth:`discard`-ed: closed exactly once and removed. Frames go to disk as
    they come (direct chunk writes), so little is left for the close to write, and that little
    fits in the space reserved beside the file.
    """

    def __init__(self, path: str, geometry: DetectorGeometry, n_images: int, meta: dict) -> None:
        self.path = path
        self.file: h5py.File | None = None
        self._closed = False
        self._reserve = path + ".reserve"
        self._reserved = False
        _reserve_space(self._reserve, FRAME_FILE_RESERVE_BYTES)
        self._reserved = True
        try:
            self.file = h5py.File(path, "w")
            self._lay_out(geometry, n_images, meta)
            self.file.flush()  # layout and pixel mask on disk before the first frame
        except BaseException:
            self.discard()
            raise

    def _lay_out(self, geometry: DetectorGeometry, n_images: int, meta: dict) -> None:
        assert self.file is not None
        rows, cols = geometry.shape
        entry = self.file.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        data = entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        self.frames = data.create_dataset(
            "data", shape=(n_images, rows, cols), dtype="<i4", chunks=(1, rows, cols), fillvalue=-1
        )
        instrument = entry.create_group("instrument")
        instrument.attrs["NX_class"] = "NXinstrument"
        det = instrument.create_group("detector")
        det.attrs["NX_class"] = "NXdetector"
        det["description"] = "Dectris PILATUS3 X 2M (simulated)"
        for key, value, unit in (
            ("distance", geometry.distance_mm, "mm"),
            ("x_pixel_size", geometry.binned_pixel_mm, "mm"),
            ("y_pixel_size", geometry.binned_pixel_mm, "mm"),
            ("beam_center_x", geometry.beam_center_x / geometry.binning, "pixel"),
            ("beam_center_y", geometry.beam_center_y / geometry.binning, "pixel"),
            ("count_time", meta["count_time"], "s"),
            ("frame_time", meta["frame_time"], "s"),
        ):
            det[key] = value
            det[key].attrs["units"] = unit
        det["binning"] = geometry.binning
        det.create_dataset(
            "pixel_mask",
            data=_cached_pixel_mask(geometry, meta["beamstop_offset_mm"]),
            compression="gzip",
            compression_opts=1,
        )
        mono = instrument.create_group("monochromator")
        mono.attrs["NX_class"] = "NXmonochromator"
        mono["wavelength"] = geometry.wavelength_a
        mono["wavelength"].attrs["units"] = "angstrom"
        mono["energy"] = meta["energy_kev"]
        mono["energy"].attrs["units"] = "keV"
        self.samples = entry.create_dataset("sample_in_beam", shape=(n_images,), dtype=h5py.string_dtype())

    def write_frame(self, index: int, frame: np.ndarray, state: BeamState) -> None:
        # Straight to disk (no chunk cache): a full disk shows here, not in close().
        self.frames.id.write_direct_chunk((index, 0, 0), np.ascontiguousarray(frame, dtype="<i4").tobytes())
        contents = state.effective_contents
        self.samples[index] = contents.sample_code if contents is not None else "empty"

    def finish(self) -> None:
        """Write out and close the complete file; on an I/O error it is discarded and the error raised."""
        # No fsync: the file only gets its final name (os.replace) once closed, so a reader never
        # sees a partial file; durability across power loss is the storage system's business.
        try:
            assert self.file is not None
            self.file.flush()
            self._close()
        except BaseException:
            self.discard()
            raise
        self._release()

    def discard(self) -> None:
        """Close (once) and remove the unfinished file; the reserved space is given back first."""
        self._release()
        try:
            self._close()
        except Exception:
            logger.exception("closing the discarded frame file %s failed; it stays open", self.path)
        _remove_quietly(self.path)

    def _close(self) -> None:
        if self._closed or self.file is None:
            return
        self._closed = True
        try:
            self.file.close()
        except BaseException:
            _UNCLOSABLE.append(self.file)
            raise

    def _release(self) -> None:
        if self._reserved:
            self._reserved = False
            _remove_quietly(self._reserve)


class MotorGroup(PVGroup):
    """An EPICS motor record (VAL, RBV, DMOV, MOVN, VELO, STOP, HLM, LLM, EGU...) moving at VELO."""

    motor = pvproperty(value=0.0, name="", record="motor", precision=4)

    def __init__(
        self,
        *args,
        velocity: float,
        limits: tuple[float, float],
        egu: str = "mm",
        description: str = "",
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.defaults = {"velocity": velocity, "limits": limits, "egu": egu, "description": description}
        self._new_target = False
        self._target = 0.0
        self._moving = False
        self._stop_requested = False

    @motor.putter
    async def motor(self, instance, value):
        fields = instance.field_inst
        low, high = fields.user_low_limit.value, fields.user_high_limit.value
        if low < high and not (low <= value <= high):
            await fields.limit_violation.write(1)
            raise ValueError(f"{self.prefix} target {value} outside soft limits [{low}, {high}]")
        await fields.limit_violation.write(0)
        # The loop reads the target from here: VAL itself only changes after this putter returns.
        self._target = float(value)
        self._new_target = True
        return value

    async def _on_limit_change(self, instance, value):
        # As in the motor record, VAL's control limits follow LLM/HLM, so clients (ophyd's
        # check_value) see the soft limits and refuse out-of-range targets themselves.
        fields = self.motor.field_inst
        low = value if instance is fields.user_low_limit else fields.user_low_limit.value
        high = value if instance is fields.user_high_limit else fields.user_high_limit.value
        await self.motor.write_metadata(lower_ctrl_limit=low, upper_ctrl_limit=high)
        return value

    async def _on_stop(self, instance, value):
        # Like the motor record, STOP only acts on a move in progress; the RunEngine sends STOP
        # to every motor it touched when a plan ends, and that must not cancel the next move.
        if value and (self._moving or self._new_target):
            self._stop_requested = True
        return 0

    @motor.startup
    async def motor(self, instance, async_lib):
        fields = instance.field_inst
        fields.stop.putter = self._on_stop
        fields.user_low_limit.putter = self._on_limit_change
        fields.user_high_limit.putter = self._on_limit_change
        await fields.velocity.write(self.defaults["velocity"])
        await fields.user_low_limit.write(self.defaults["limits"][0])
        await fields.user_high_limit.write(self.defaults["limits"][1])
        await fields.engineering_units.write(self.defaults["egu"])
        await fields.description.write(self.defaults["description"])
        await fields.motor_step_size.write(1e-4)
        await fields.done_moving_to_value.write(1)
        tick = 0.02
        while True:
            if not self._new_target:
                await asyncio.sleep(tick)
                continue
            self._new_target = False
            self._moving = True
            await fields.done_moving_to_value.write(0)
            await fields.motor_is_moving.write(1)
            position = fields.user_readback_value.value
            while True:
                if self._stop_requested:
                    self._target = position
                    await instance.write(position, verify_value=False)
                    break
                target = self._target
                step = max(fields.velocity.value, 1e-6) * tick * self.parent.clock.scale
                if abs(target - position) <= step:
                    position = target
                    await fields.user_readback_value.write(position)
                    await fields.dial_readback_value.write(position)
                    break
                position += math.copysign(step, target - position)
                await fields.user_readback_value.write(position)
                await fields.dial_readback_value.write(position)
                await asyncio.sleep(tick)
                self._new_target = False  # retargeted while moving: the loop follows _target
            self._moving = False
            self._stop_requested = False
            await fields.motor_is_moving.write(0)
            await fields.done_moving_to_value.write(1)


class TemperatureGroup(PVGroup):
    """Sample-cell Peltier controller: setpoint 4–60 °C, readback approaching it (τ ≈ 20 s)."""

    setpoint = pvproperty(
        value=20.0,
        name="SP",
        lower_ctrl_limit=_limits("cell_temperature")[0],
        upper_ctrl_limit=_limits("cell_temperature")[1],
        units="degC",
        precision=2,
    )
    readback = pvproperty(value=20.0, name="RBV", read_only=True, units="degC", precision=3)

    @readback.startup
    async def readback(self, instance, async_lib):
        rng = np.random.default_rng()
        temperature = float(instance.value)
        last = self.parent.clock.now()
        while True:
            await asyncio.sleep(0.1)
            now = self.parent.clock.now()
            dt, last = now - last, now
            target = float(self.setpoint.value)
            temperature = target + (temperature - target) * math.exp(-dt / CELL_TEMPERATURE_TAU_S)
            await instance.write(temperature + rng.normal(0.0, 0.005))


class RobotGroup(PVGroup):
    """HT-SAXS robot: loads a well of a known plate into the cell, cleans and dries the cell."""

    plate_definition = text_pv(
        "PlateDefinition", max_length=LONG_STRING, doc="put a JSON PlateDefinition to register a plate"
    )
    known_plates = text_pv("KnownPlates_RBV", value="[]", max_length=LONG_STRING, read_only=True)
    plate_id = pvproperty(value="", name="PlateId", dtype=ChannelType.STRING)
    well = pvproperty(value="A1", name="Well", dtype=ChannelType.STRING)
    load = pvproperty(value=0, name="Load", doc="put 1: load Well of PlateId into the cell")
    clean = pvproperty(value=0, name="Clean", doc="put 1: flush the cell")
    dry = pvproperty(value=0, name="Dry", doc="put 1: dry the cell with air")
    state = pvproperty(
        value="idle", name="State_RBV", enum_strings=ROBOT_STATES, dtype=ChannelType.ENUM, read_only=True
    )
    loaded_well = pvproperty(value="", name="LoadedWell_RBV", dtype=ChannelType.STRING, read_only=True)
    loaded_sample = pvproperty(value="", name="LoadedSample_RBV", dtype=ChannelType.STRING, read_only=True)
    message = text_pv("Message_RBV", read_only=True)
    command_refused = pvproperty(
        value=0, name="CommandRefused_RBV", read_only=True, doc="1 when the last command was refused"
    )

    def __init__(self, *args, plates: list[PlateDefinition] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.plates: dict[str, PlateDefinition] = {p.plate_id: p for p in plates or []}
        self.registry: PlateRegistry | None = None  # the plate registry file shared with the queue gate
        self._busy = False

    def load_registry(self) -> None:
        """Take in every plate of the registry file (it may have changed since the last look)."""
        if self.registry is None:
            return
        for plate_id, definition in self.registry.definitions().items():
            if plate_id not in self.plates or self.plates[plate_id].model_dump(mode="json") != definition:
                try:
                    self.plates[plate_id] = PlateDefinition.model_validate(definition)
                except ValidationError as exc:
                    logger.warning("plate registry: %s refused: %s", plate_id, _format_validation_error(exc))

    @known_plates.startup
    async def known_plates(self, instance, async_lib):
        while True:  # the registry file is shared: follow its changes
            self.load_registry()
            known = json.dumps(sorted(self.plates))
            if known != instance.value:
                await instance.write(known)
            await asyncio.sleep(REGISTRY_POLL_S)

    @plate_definition.putter
    async def plate_definition(self, instance, value):
        text = _json_text(value)
        try:
            plate = PlateDefinition.model_validate_json(text)
        except ValidationError as exc:
            raise ValueError(f"PlateDefinition refused: {_format_validation_error(exc)}") from None
        if self._busy or (self.state.value != "idle" and self.plate_id.value == plate.plate_id):
            raise ValueError(f"plate {plate.plate_id} is in use; redefine it when the robot is idle")
        self.plates[plate.plate_id] = plate
        if self.registry is not None:
            self.registry.add(plate.model_dump(mode="json"))
        await self.known_plates.write(json.dumps(sorted(self.plates)))
        return text

    @plate_id.putter
    async def plate_id(self, instance, value):
        self.load_registry()
        if value not in self.plates:
            raise ValueError(f"unknown plate {value!r}; known plates: {sorted(self.plates)}")
        return value

    @well.putter
    async def well(self, instance, value):
        if not physics.WELL_PATTERN.match(value):
            raise ValueError(f"well {value!r} is not a 96-well position A1-H12")
        return value

    async def _refuse(self, reason: str) -> None:
        await self.message.write(reason)
        await self.command_refused.write(1)

    async def _run(
        self, command: str, allowed: tuple[str, ...], busy_state: str, seconds: float, after: str
    ) -> bool:
        if self._busy or self.state.value not in allowed:
            await self._refuse(f"{command} refused: robot is {self.state.value}")
            return False
        await self.command_refused.write(0)
        self._busy = True
        try:
            await self.state.write(busy_state)
            await self.message.write(f"{command} ...")
            await self.parent.clock.sleep(seconds)
            await self.state.write(after)
            await self.message.write(f"{command} done")
        finally:
            self._busy = False
        return True

    @load.putter
    async def load(self, instance, value):
        if not value:
            return 0
        plate = self.plates.get(self.plate_id.value)
        well = self.well.value
        if plate is None:
            await self._refuse("Load refused: no plate selected (set PlateId)")
            return 0
        sample = plate.wells.get(well)
        if sample is None:
            await self._refuse(f"Load refused: well {well} of plate {plate.plate_id} is empty")
            return 0
        if await self._run("Load", ("idle",), "loading", ROBOT_LOAD_S, "loaded"):
            await self.loaded_well.write(well)
            await self.loaded_sample.write(sample.sample_code)
            await self.parent.set_cell_contents(sample)
        return 0

    @clean.putter
    async def clean(self, instance, value):
        if value and await self._run("Clean", ("idle", "loaded", "fault"), "cleaning", ROBOT_CLEAN_S, "idle"):
            await self.loaded_well.write("")
            await self.loaded_sample.write("")
            await self.parent.set_cell_contents(None)
        return 0

    @dry.putter
    async def dry(self, instance, value):
        if value:
            await self._run("Dry", ("idle",), "drying", ROBOT_DRY_S, "idle")
        return 0


class SECGroup(PVGroup):
    """SEC-SAXS-MALS: Agilent 1260 pump, KW-803 column, UV 280 nm, MALS and RI after the SAXS cell."""

    flow_rate = pvproperty(
        value=0.0,
        name="Pump:FlowRate",
        lower_ctrl_limit=0.0,
        upper_ctrl_limit=1.0,
        units="mL/min",
        precision=3,
    )
    flow_rate_rbv = pvproperty(
        value=0.0, name="Pump:FlowRate_RBV", read_only=True, units="mL/min", precision=3
    )
    pressure = pvproperty(value=0.0, name="Pump:Pressure_RBV", read_only=True, units="MPa", precision=2)
    inject_sample = text_pv(
        "InjectSample", max_length=LONG_STRING, doc="JSON ScatteringSample in the autosampler vial"
    )
    inject = pvproperty(value=0, name="Inject", doc="put 1: inject InjectSample and start the run")
    stop = pvproperty(value=0, name="Stop", doc="put 1: end the run")
    run_time = pvproperty(
        value=30.0, name="RunTime", lower_ctrl_limit=0.1, upper_ctrl_limit=600.0, units="min", precision=2
    )
    run_state = pvproperty(
        value="Idle",
        name="RunState_RBV",
        enum_strings=["Idle", "Running"],
        dtype=ChannelType.ENUM,
        read_only=True,
    )
    elapsed = pvproperty(value=0.0, name="Elapsed_RBV", read_only=True, units="s", precision=1)
    eluted_volume = pvproperty(value=0.0, name="ElutedVolume_RBV", read_only=True, units="mL", precision=4)
    uv280 = pvproperty(
        value=physics.UV_BASELINE_MAU, name="UV:A280_RBV", read_only=True, units="mAU", precision=2
    )
    mals = pvproperty(value=0.01, name="MALS:LS90_RBV", read_only=True, units="V", precision=5)
    refractive_index = pvproperty(value=0.0, name="RI:dRI_RBV", read_only=True, units="RIU", precision=8)
    message = text_pv("Message_RBV", read_only=True)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sample: ScatteringSample | None = None
        self.running = False

    def eluate(self) -> ScatteringSample | None:
        """What flows through the SAXS capillary right now (None when no run is going)."""
        if not self.running or self.sample is None:
            return None
        concentration = physics.eluate_concentration(self.sample, float(self.eluted_volume.value))
        return self.sample.with_concentration(concentration)

    @flow_rate.putter
    async def flow_rate(self, instance, value):
        await self.flow_rate_rbv.write(value)
        await self.pressure.write(physics.column_pressure_mpa(value))
        return value

    @inject_sample.putter
    async def inject_sample(self, instance, value):
        text = _json_text(value)
        try:
            self.sample = ScatteringSample.model_validate_json(text)
        except ValidationError as exc:
            raise ValueError(f"InjectSample refused: {_format_validation_error(exc)}") from None
        return text

    @inject.putter
    async def inject(self, instance, value):
        if not value:
            return 0
        if self.sample is None:
            await self.message.write("Inject refused: no InjectSample defined")
            return 0
        if self.running:
            await self.message.write("Inject refused: a run is in progress")
            return 0
        if float(self.flow_rate_rbv.value) <= 0:
            await self.message.write("Inject refused: flow rate is 0")
            return 0
        await self.eluted_volume.write(0.0)
        await self.elapsed.write(0.0)
        self.running = True
        await self.run_state.write("Running")
        await self.message.write(f"Running {self.sample.sample_code}")
        return 0

    @stop.putter
    async def stop(self, instance, value):
        if value and self.running:
            self.running = False
            # The reason first: a client that sees Idle reads why.
            await self.message.write("Run stopped")
            await self.run_state.write("Idle")
        return 0

    @elapsed.startup
    async def elapsed(self, instance, async_lib):
        last = self.parent.clock.now()
        while True:
            # Fast while eluting (the peak must be resolved at 100x); idle, nothing changes.
            await asyncio.sleep(0.02 if self.running else 0.2)
            now = self.parent.clock.now()
            dt, last = now - last, now
            if self.running:
                elapsed = float(instance.value) + dt
                volume = float(self.eluted_volume.value) + float(self.flow_rate_rbv.value) * dt / 60.0
                await instance.write(elapsed)
                await self.eluted_volume.write(volume)
                if elapsed >= float(self.run_time.value) * 60.0:
                    self.running = False
                    await self.message.write("Run finished")
                    await self.run_state.write("Idle")
                sample = self.sample
            else:
                volume, sample = 0.0, None
            for pv, value in (
                (self.uv280, physics.uv280_mau(sample, volume)),
                (self.mals, physics.mals_volts(sample, volume)),
                (self.refractive_index, physics.refractive_index_riu(sample, volume)),
            ):
                if value != pv.value:
                    await pv.write(value)


class SibylsIOC(PVGroup):
    """The simulated SIBYLS beamline (ALS 12.3.1)."""

    sim = SubGroup(SimControlGroup, prefix="Sim:")
    ring = SubGroup(RingGroup, prefix="Ring:")
    mono = SubGroup(MonoGroup, prefix="Mono:")
    photon_shutter = SubGroup(ShutterGroup, prefix="PShutter:", delay_s=SHUTTER_DELAY_S["photon"])
    fast_shutter = SubGroup(ShutterGroup, prefix="FShutter:", delay_s=SHUTTER_DELAY_S["fast"])
    i0 = SubGroup(CounterGroup, prefix="I0:", channel="i0")
    bs_diode = SubGroup(CounterGroup, prefix="BSDiode:", channel="bs_diode")
    pilatus = SubGroup(PilatusGroup, prefix="Pilatus:")
    sample_x = SubGroup(
        MotorGroup,
        prefix="SampleStage:X",
        velocity=2.0,
        limits=_limits("sample_stage.x"),
        description="sample stage X",
    )
    sample_y = SubGroup(
        MotorGroup,
        prefix="SampleStage:Y",
        velocity=2.0,
        limits=_limits("sample_stage.y"),
        description="sample stage Y",
    )
    beamstop_x = SubGroup(
        MotorGroup, prefix="Beamstop:X", velocity=1.0, limits=_limits("beamstop.x"), description="beamstop X"
    )
    beamstop_y = SubGroup(
        MotorGroup, prefix="Beamstop:Y", velocity=1.0, limits=_limits("beamstop.y"), description="beamstop Y"
    )
    cell_temperature = SubGroup(TemperatureGroup, prefix="Cell:Temp:")
    robot = SubGroup(RobotGroup, prefix="Robot:")
    sec = SubGroup(SECGroup, prefix="SEC:")

    def __init__(
        self,
        *args,
        time_scale: float = 1.0,
        binning: int = 1,
        plates: list[PlateDefinition] | None = None,
        plate_registry: Path | str | None = None,
        **kwargs,
    ) -> None:
        self.clock = SimulationClock(time_scale)
        self._cell_contents: ScatteringSample | None = None
        super().__init__(*args, **kwargs)
        self.pilatus._initial_binning = binning
        self.robot.plates = {p.plate_id: p for p in plates or []}
        if plate_registry is not None:
            self.robot.registry = PlateRegistry(plate_registry)
            for plate in plates or []:  # plates given on the command line become known to all
                self.robot.registry.add(plate.model_dump(mode="json"))

    async def set_cell_contents(self, sample: ScatteringSample | None) -> None:
        """Put ``sample`` in the SAXS capillary (None: clean and dry)."""
        self._cell_contents = sample
        await self.sim.cell_contents.write(sample.sample_code if sample is not None else "empty")

    def beamstop_offset_mm(self) -> tuple[float, float]:
        nominal = physics.BEAMSTOP_NOMINAL_MM
        return (
            float(self.beamstop_x.motor.field_inst.user_readback_value.value) - nominal[0],
            float(self.beamstop_y.motor.field_inst.user_readback_value.value) - nominal[1],
        )

    def beam_state(self) -> BeamState:
        """Everything a detector or counter needs to know about the beam right now."""
        eluate = self.sec.eluate()
        return BeamState(
            ring_current_ma=float(self.ring.current.value),
            photon_shutter_open=self.photon_shutter.is_open,
            fast_shutter_open=self.fast_shutter.is_open,
            energy_kev=float(self.mono.energy_rbv.value),
            contents=eluate if eluate is not None else self._cell_contents,
            sample_offset_mm=float(self.sample_x.motor.field_inst.user_readback_value.value),
            beamstop_offset_mm=self.beamstop_offset_mm(),
        )


def load_plates(paths: list[str]) -> list[PlateDefinition]:
    """Read plate definitions (JSON or YAML files) for the robot."""
    import yaml

    plates = []
    for path in paths:
        text = Path(path).read_text()
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
        plates.append(PlateDefinition.model_validate(data))
    return plates


def run_ioc(
    prefix: str = DEFAULT_PREFIX,
    port: int = 5064,
    time_scale: float = 1.0,
    binning: int = 1,
    plates: list[PlateDefinition] | None = None,
    interfaces: tuple[str, ...] = ("127.0.0.1",),
    plate_registry: Path | str | None = None,
) -> None:
    """Serve the simulated beamline until interrupted."""
    apply_loopback_ca_env(port)
    ioc = SibylsIOC(
        prefix=prefix,
        time_scale=time_scale,
        binning=binning,
        plates=plates,
        plate_registry=plate_registry,
    )

    async def serve() -> None:
        await _LowLatencyContext(ioc.pvdb, list(interfaces)).run(log_pv_names=False)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


class _LowLatencyContext(caproto_asyncio_server.Context):
    """caproto's asyncio server with TCP_NODELAY on client connections.

    caproto leaves Nagle's algorithm on; with the client's delayed ACKs every put-completion
    round trip then costs ~40 ms, which would dominate a frame of a few milliseconds.
    """

    async def server_accept_loop(self, sock):
        def new_client(reader, writer):
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            transport = caproto_asyncio_server._TransportWrapper(reader, writer)
            self.server_tasks.create(self.tcp_handler(transport, transport.getpeername()))

        await asyncio.start_server(new_client, sock=sock)
