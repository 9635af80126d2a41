"""``Pilatus:``: the PILATUS3 X 2M, areaDetector-like PVs; each Acquire writes one HDF5 frame file.

The frames are simulated by :func:`sibyls.devices.sim.physics.simulate_frame`, the file is written
by :mod:`sibyls.devices.sim.frame_writer`; this module holds the acquisition sequence and its PVs.
A disk that is full or not writable shows as DetectorState Error with the reason in
StatusMessage; no partial file is left under the final name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

import numpy as np
from caproto import ChannelType
from caproto.server import PVGroup, pvproperty

from sibyls.devices.geometry import DetectorGeometry
from sibyls.devices.sim import physics
from sibyls.devices.sim.frame_writer import FrameFileError, FrameFileWriter, io_error_message, remove_quietly
from sibyls.devices.sim.pvs import PATH_STRING, json_text, text_pv

logger = logging.getLogger("sibyls.ioc")

DEFAULT_GEOMETRY = DetectorGeometry()  # the PV defaults follow the one set of geometry defaults
DETECTOR_STATES = ["Idle", "Acquire", "Readout", "Correct", "Saving", "Aborting", "Error", "Waiting"]


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
    beam_x = pvproperty(value=DEFAULT_GEOMETRY.beam_center_x, name="BeamX", units="px", precision=2)
    beam_y = pvproperty(value=DEFAULT_GEOMETRY.beam_center_y, name="BeamY", units="px", precision=2)
    distance = pvproperty(
        value=DEFAULT_GEOMETRY.distance_mm, name="Distance_RBV", read_only=True, units="mm", precision=1
    )
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
        text = json_text(value)
        if not text.startswith("/"):
            raise ValueError(f"FilePath must be absolute, got {text!r}")
        if not text.endswith("/"):
            text += "/"
        await self.file_path_exists.write(int(os.path.isdir(text)))
        return text

    @file_name.putter
    async def file_name(self, instance, value):
        text = json_text(value)
        if not physics.FILE_NAME_PATTERN.match(text):
            raise ValueError(f"FileName {text!r} must use only A-Z a-z 0-9 _ . - (max 64)")
        return text

    @array_counter.putter
    async def array_counter(self, instance, value):
        await self.array_counter_rbv.write(value)
        return value

    def _next_file_name(self) -> str:
        template = json_text(self.file_template.value)
        return template % (
            json_text(self.file_path.value),
            json_text(self.file_name.value),
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
            asyncio.to_thread(FrameFileWriter, partial, geometry, n_images, self._file_metadata())
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
                await self.parent.add_dose(state, exposure)
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
            remove_quietly(partial)
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
