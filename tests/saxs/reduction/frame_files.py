"""Frame files laid out like the IOC's, for the reduction tests (imported by name, like real_runs)."""

from __future__ import annotations

import numpy as np

from sibyls.devices.geometry import DetectorGeometry, write_detector_geometry


def write_frame_file(path, geometry: DetectorGeometry, frames: np.ndarray, mask: np.ndarray, count_time=0.5):
    """A frame file with the keys the IOC's writer puts there (geometry in binned pixels, mask, exposure)."""
    import h5py

    with h5py.File(path, "w") as fh:
        fh["entry/data/data"] = frames
        det = fh.create_group("entry/instrument/detector")
        write_detector_geometry(det, geometry, distance_name="distance")
        det["binning"] = geometry.binning
        det["count_time"] = count_time
        det["pixel_mask"] = mask
        fh["entry/instrument/monochromator/wavelength"] = geometry.wavelength_a
        fh["entry/instrument/monochromator/energy"] = 11.0
    return path
