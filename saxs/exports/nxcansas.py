"""NXcanSAS export: a run's I(q) as the canSAS HDF5 file SAS programs read (SasView, ATSAS, BioXTAS RAW).

A user gets ``<project>/<scan_id>_<sample>_<uid8>.h5``: SASentry / SASdata (I, Idev, Q, Qdev) /
SASinstrument (source wavelength, detector geometry) / SASsample (temperature) / SASprocess,
written atomically. I is the run's normalised curve (:mod:`sibyls.saxs.reduction.reducer`):
``1/cm`` on absolute scale, else ``arbitrary``; Qdev the 1σ q-resolution; the beam centre a length
(mm from the outer corner of the detector's first pixel, = pyFAI's Poni2/Poni1).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sibyls.devices.geometry import write_detector_geometry
from sibyls.metadata.atomic import atomic_path
from sibyls.metadata.runs.sources import StoredRun
from sibyls.saxs.reduction.iq import RunProfile, reduce_run


def write_nxcansas(run: StoredRun, target: Path, reduced: RunProfile | None = None) -> Path:
    """NXcanSAS HDF5 of the run's I(q): SASentry / SASdata (I, Idev, Q) / SASinstrument / SASsample."""
    import h5py

    reduced = reduced or reduce_run(run)
    curve, geo = reduced.curve, reduced.frame_geometry
    g = geo.geometry
    start = run.start
    with atomic_path(target) as tmp, h5py.File(tmp, "w") as fh:
        fh.attrs.update(
            {
                "default": "sasentry01",
                "file_name": target.name,
                "file_time": datetime.now(UTC).isoformat(),
                "producer": "sibyls.metadata.exports",
                "NX_class": "NXroot",
            }
        )
        entry = fh.create_group("sasentry01")
        entry.attrs.update({"NX_class": "NXentry", "canSAS_class": "SASentry", "version": "1.1"})
        entry.attrs["default"] = "sasdata01"
        entry["definition"] = "NXcanSAS"
        entry["title"] = f"{start.get('sample_code')} scan {start.get('scan_id')}"
        entry["run"] = str(start.get("scan_id"))
        entry["run"].attrs["name"] = start["uid"]

        data = entry.create_group("sasdata01")
        data.attrs.update(
            {"NX_class": "NXdata", "canSAS_class": "SASdata", "signal": "I", "I_axes": "Q", "Q_indices": 0}
        )
        data["Q"] = curve.q
        data["Q"].attrs["units"] = "1/angstrom"
        if curve.qdev is not None:
            data["Q"].attrs["resolutions"] = "Qdev"
            data["Qdev"] = curve.qdev
            data["Qdev"].attrs["units"] = "1/angstrom"
        data["I"] = curve.intensity
        data["I"].attrs.update({"units": curve.unit, "uncertainties": "Idev"})
        data["Idev"] = curve.sigma
        data["Idev"].attrs["units"] = curve.unit

        inst = entry.create_group("sasinstrument")
        inst.attrs.update({"NX_class": "NXinstrument", "canSAS_class": "SASinstrument"})
        inst["name"] = "SIBYLS beamline 12.3.1 (ALS)"
        source = inst.create_group("sassource")
        source.attrs.update({"NX_class": "NXsource", "canSAS_class": "SASsource"})
        source["radiation"] = "Synchrotron X-ray Source"
        source["incident_wavelength"] = g.wavelength_a
        source["incident_wavelength"].attrs["units"] = "angstrom"
        coll = inst.create_group("sascollimation01")
        coll.attrs.update({"NX_class": "NXcollimator", "canSAS_class": "SAScollimation"})
        det = inst.create_group("sasdetector01")
        det.attrs.update({"NX_class": "NXdetector", "canSAS_class": "SASdetector"})
        det["name"] = "PILATUS3 X 2M"
        write_detector_geometry(det, g)
        for axis, centre in (("x", g.beam_center_x), ("y", g.beam_center_y)):
            del det[f"beam_center_{axis}"]  # NXcanSAS wants a length, the frame files' block has pixels
            det[f"beam_center_{axis}"] = (centre + 0.5) * g.pixel_size_mm
            det[f"beam_center_{axis}"].attrs["units"] = "mm"

        sample = entry.create_group("sassample")
        sample.attrs.update({"NX_class": "NXsample", "canSAS_class": "SASsample"})
        sample["name"] = str(start.get("sample_code") or "")
        temperature = _baseline_value(run, "cell_temperature")
        if temperature is not None:
            sample["temperature"] = temperature
            sample["temperature"].attrs["units"] = "degC"

        process = entry.create_group("sasprocess01")
        process.attrs.update({"NX_class": "NXprocess", "canSAS_class": "SASprocess"})
        process["name"] = "sibyls corrected azimuthal average"
        process["date"] = datetime.now(UTC).isoformat()
        process["description"] = (
            f"mean of {reduced.frames} frames; pixel mask (module gaps, beamstop) applied; solid-angle and "
            f"polarisation corrections; normalised by I0, transmission (beamstop diode) and PONI-pixel solid "
            f"angle ({curve.unit}); Idev from Poisson statistics; Qdev from beam size, pixel, bin width and "
            "wavelength spread"
        )
    return target


def _baseline_value(run: StoredRun, key: str) -> float | None:
    for name in ("baseline", "primary"):
        stream = run.streams.get(name)
        if stream is not None and key in stream.columns and len(stream.columns[key]):
            try:
                return float(stream.columns[key][0])
            except (TypeError, ValueError):
                return None
    return None
