"""HDF5 frame files laid out like areaDetector's NeXus output, and the detector's I/O error messages.

A user gets ``FullFileName_RBV``: ``/entry/data/data`` (frames × rows × columns, int32, -1 where
not written), ``/entry/instrument/detector`` (geometry, exposure, pixel mask),
``/entry/instrument/monochromator`` and ``/entry/sample_in_beam`` (sample code per frame).
No PV plumbing here: :mod:`sibyls.devices.sim.pilatus` drives it.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import re

import h5py
import numpy as np

from sibyls.devices.geometry import DetectorGeometry, write_detector_geometry
from sibyls.devices.sim import physics
from sibyls.devices.sim.physics import BeamState

logger = logging.getLogger("sibyls.ioc")

#: Disk space held beside a frame file while it is written and given back when the disk fills, so
#: that HDF5 can still write what it must on close: a failed close cannot be retried (h5py
#: segfaults on a second close, or when the half-closed file is garbage-collected).
FRAME_FILE_RESERVE_BYTES = 1 << 20


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


def remove_quietly(path: str) -> None:
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
        remove_quietly(path)
        raise
    os.close(fd)


#: Files whose close failed: never closed again and never garbage-collected (either segfaults h5py).
_UNCLOSABLE: list = []


@functools.lru_cache(maxsize=8)
def _cached_pixel_mask(geometry: DetectorGeometry, beamstop_offset_mm: tuple[float, float]) -> np.ndarray:
    return physics.pixel_mask(geometry, beamstop_offset_mm)


class FrameFileWriter:
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
        write_detector_geometry(det, geometry, distance_name="distance")
        for key, value, unit in (
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
        remove_quietly(self.path)

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
            remove_quietly(self._reserve)
