"""The detector geometry as a pyFAI PONI file — the calibration format SAXS users have.

A user gets :func:`write_poni` (the SIBYLS PILATUS3 X 2M geometry, binned or not, as a PONI file
pyFAI, pyFAI-calib2, BioXTAS RAW and Dioptas read) and :func:`read_poni` (a PONI file from any of
them, as the geometry the reduction uses). Both go through pyFAI's own code
(:class:`pyFAI.io.ponifile.PoniFile`, :func:`pyFAI.load`).

Conventions, checked by ``tests/saxs/reduction/test_poni.py``:

* pyFAI measures ``Poni1`` along rows (slow axis, y) and ``Poni2`` along columns (fast axis, x), in
  metres from the outer corner of pixel (0, 0): the centre of pixel ``i`` is at ``(i + ½)·pixel``.
  :class:`DetectorGeometry` gives the beam centre in full-resolution pixel-centre coordinates, so
  ``Poni1 = (beam_center_y + ½)·pixel`` and ``Poni2 = (beam_center_x + ½)·pixel`` whatever the binning
  (a binned pixel ``r`` is centred at full-resolution coordinate ``r·b + (b−1)/2``, i.e. at
  ``(r + ½)·b·pixel`` in pyFAI's frame).
* ``Rot1 = Rot2 = Rot3 = 0``: the detector is normal to the beam; the PONI is the direct beam.
* Detector orientation 3 (pyFAI ≥ 2024, "BottomRight", pyFAI's historical convention: pixel indices
  grow with the coordinates). PONI files with orientation 1, 2 or 4 (an axis flipped) are read
  too: the beam centre is mirrored, which gives every pixel the same 2θ and azimuth magnitude.
* A PONI file with a tilted detector (any rotation ≠ 0) cannot be a :class:`DetectorGeometry`;
  :class:`PoniGeometry` then keeps pyFAI's integrator, and the reduction takes q, solid angle and
  polarisation of each pixel from pyFAI itself.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sibyls.devices.geometry import DetectorGeometry
from sibyls.metadata.atomic import atomic_write_text
from sibyls.metadata.errors import ExchangeError

if TYPE_CHECKING:
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

#: pyFAI's orientation code for "pixel indices grow with the coordinates" (its historical default).
ORIENTATION = 3
#: Rotations below this (radians) count as an untilted detector.
UNTILTED_RAD = 1e-9


def pyfai_integrator(geometry: DetectorGeometry) -> AzimuthalIntegrator:
    """pyFAI's integrator for ``geometry``: PILATUS 2M binned like the frames, untilted, PONI on the beam."""
    from pyFAI.detectors import Pilatus2M
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    detector = Pilatus2M(orientation=ORIENTATION)
    if not math.isclose(detector.pixel1, geometry.pixel_size_mm * 1e-3, rel_tol=1e-9):
        detector = _generic_detector(geometry)
    elif geometry.binning > 1:
        detector.binning = (geometry.binning, geometry.binning)
    if tuple(detector.shape) != geometry.shape:
        raise ValueError(
            f"pyFAI detector shape {detector.shape} differs from the geometry's {geometry.shape}"
        )
    pixel_m = geometry.pixel_size_mm * 1e-3
    return AzimuthalIntegrator(
        dist=geometry.distance_mm * 1e-3,
        poni1=(geometry.beam_center_y + 0.5) * pixel_m,
        poni2=(geometry.beam_center_x + 0.5) * pixel_m,
        rot1=0.0,
        rot2=0.0,
        rot3=0.0,
        detector=detector,
        wavelength=geometry.wavelength_a * 1e-10,
    )


def _generic_detector(geometry: DetectorGeometry):
    from pyFAI.detectors import Detector

    pixel_m = geometry.binned_pixel_mm * 1e-3
    return Detector(pixel1=pixel_m, pixel2=pixel_m, max_shape=geometry.shape, orientation=ORIENTATION)


def poni_text(geometry: DetectorGeometry) -> str:
    """The PONI file text for ``geometry``, as pyFAI writes it."""
    from pyFAI.io.ponifile import PoniFile

    buffer = io.StringIO()
    PoniFile(pyfai_integrator(geometry)).write(buffer)
    return buffer.getvalue()


def write_poni(geometry: DetectorGeometry, path: Path | str) -> Path:
    """Write ``geometry`` as a PONI file (atomically; pyFAI's own ``save`` appends to an existing file)."""
    path = Path(path)
    atomic_write_text(path, poni_text(geometry))
    return path


@dataclass(frozen=True)
class PoniGeometry:
    """A PONI file read back: pyFAI's integrator, and the same geometry as a :class:`DetectorGeometry`
    when the detector is untilted (``None`` for a tilted one)."""

    integrator: AzimuthalIntegrator
    geometry: DetectorGeometry | None
    path: Path | None = None

    @property
    def tilted(self) -> bool:
        """True when a rotation is not zero: only pyFAI's per-pixel arrays describe such a geometry."""
        return self.geometry is None

    def for_binning(self, binning: int) -> PoniGeometry:
        """The same calibration for frames binned ``binning × binning`` (a PONI is often made unbinned)."""
        if self.geometry is None:
            if _binning(self.integrator) != binning:
                raise ExchangeError(
                    f"PONI file {self.path}: a tilted detector calibrated at binning "
                    f"{_binning(self.integrator)} cannot be used for frames binned {binning}"
                )
            return self
        if self.geometry.binning == binning:
            return self
        g = self.geometry
        geometry = DetectorGeometry(
            wavelength_a=g.wavelength_a,
            distance_mm=g.distance_mm,
            beam_center_x=g.beam_center_x,
            beam_center_y=g.beam_center_y,
            binning=binning,
            pixel_size_mm=g.pixel_size_mm,
        )
        return PoniGeometry(pyfai_integrator(geometry), geometry, self.path)


def _binning(ai: AzimuthalIntegrator) -> int:
    binning = getattr(ai.detector, "binning", (1, 1)) or (1, 1)
    return int(binning[0])


def read_poni(path: Path | str) -> PoniGeometry:
    """Read a PONI file with pyFAI's loader; :class:`ExchangeError` when it is missing or not a PONI file."""
    import pyFAI

    path = Path(path)
    if not path.is_file():
        raise ExchangeError(f"PONI file {path} does not exist")
    try:
        ai = pyFAI.load(str(path))
    except Exception as exc:  # pyFAI raises whatever its parser meets
        raise ExchangeError(f"{path} is not a readable PONI file: {exc}") from exc
    if ai.wavelength is None or ai.detector is None or ai.detector.pixel1 is None:
        raise ExchangeError(f"PONI file {path} lacks the wavelength or the detector's pixel size")
    return PoniGeometry(ai, detector_geometry(ai), path)


def detector_geometry(ai: AzimuthalIntegrator) -> DetectorGeometry | None:
    """The :class:`DetectorGeometry` of an untilted pyFAI geometry (``None`` if tilted).

    Beam centre in full-resolution pixel-centre coordinates: ``Poni/pixel − ½``, mirrored along an
    axis the detector orientation flips (``rows·binning − ½ − Poni/pixel``).
    """
    if max(abs(ai.rot1), abs(ai.rot2), abs(ai.rot3)) > UNTILTED_RAD:
        return None
    det = ai.detector
    binning = _binning(ai)
    if abs(det.pixel1 - det.pixel2) > 1e-12:
        raise ExchangeError(f"non-square pixels ({det.pixel1} x {det.pixel2} m) are not supported")
    pixel_full = det.pixel1 / binning
    p1, p2 = ai.poni1 / pixel_full, ai.poni2 / pixel_full
    orientation = int(det.orientation or ORIENTATION)
    flip1, flip2 = orientation in (1, 2), orientation in (1, 4)
    rows, cols = det.shape
    return DetectorGeometry(
        wavelength_a=ai.wavelength * 1e10,
        distance_mm=ai.dist * 1e3,
        beam_center_x=(cols * binning - 0.5 - p2) if flip2 else (p2 - 0.5),
        beam_center_y=(rows * binning - 0.5 - p1) if flip1 else (p1 - 0.5),
        binning=binning,
        pixel_size_mm=pixel_full * 1e3,
    )
