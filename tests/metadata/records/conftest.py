"""Fixtures of the record tests (contract, mapping, writer, housekeeping, lambda-ber export) without an IOC.

A guarded RunEngine and a tiny HDF5-writing detector: ``beamline`` and ``RE`` here shadow the
simulated-IOC ``beamline`` of ``tests/conftest.py`` for this folder only.
"""

from __future__ import annotations

import itertools
import uuid
from collections import deque
from pathlib import Path

import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.preprocessors import SupplementalData
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import StatusBase

from sibyls.metadata import install_contract


class TinyPilatus(Device):
    """Writes real HDF5 frames and emits Resource (AD_HDF5) / Datum documents, like an AD HDF5 plugin."""

    image = Cpt(Signal, value="", kind="normal")
    acquire_time = Cpt(Signal, value=0.2, kind="config")
    acquire_period = Cpt(Signal, value=0.25, kind="config")
    num_images = Cpt(Signal, value=5, kind="config")

    def __init__(self, *args, write_dir: Path, **kwargs):
        super().__init__(*args, **kwargs)
        self.write_dir = Path(write_dir)
        self._assets: deque = deque()

    def stage(self):
        self._resource_uid = str(uuid.uuid4())
        rel = f"{self._resource_uid[:8]}_frames.h5"
        self._path = self.write_dir / rel
        with h5py.File(self._path, "w") as fh:
            fh.create_dataset("entry/data/data", (0, 8, 8), maxshape=(None, 8, 8), dtype="i4")
        self._counter = itertools.count()
        self._assets.append(
            (
                "resource",
                {
                    "uid": self._resource_uid,
                    "spec": "AD_HDF5",
                    "root": str(self.write_dir),
                    "resource_path": rel,
                    "resource_kwargs": {"frame_per_point": self.num_images.get()},
                    "path_semantics": "posix",
                },
            )  # fmt: skip
        )
        return super().stage()

    def trigger(self):
        # Like an AD HDF5 plugin that completes its capture per point: the file is closed afterwards,
        # so its checksum at the run's stop is final.
        n = int(self.num_images.get())
        point = next(self._counter)
        with h5py.File(self._path, "a") as fh:
            frames = fh["entry/data/data"]
            old = frames.shape[0]
            frames.resize(old + n, axis=0)
            frames[old:] = np.random.default_rng(point).integers(0, 100, (n, 8, 8))
        datum_id = f"{self._resource_uid}/{point}"
        self._assets.append(("datum", {"resource": self._resource_uid, "datum_id": datum_id,
                                       "datum_kwargs": {"point_number": point}}))  # fmt: skip
        self.image.put(datum_id)
        status = StatusBase()
        status.set_finished()
        return status

    def describe(self):
        desc = super().describe()
        desc[self.image.name].update(
            external="FILESTORE:", dtype="array", shape=[int(self.num_images.get()), 8, 8]
        )
        return desc

    def collect_asset_docs(self):
        while self._assets:
            yield self._assets.popleft()


@pytest.fixture
def beamline(tmp_path):
    """Signals named like the SIBYLS devices' data keys plus the tiny detector."""
    frames = tmp_path / "frames"
    frames.mkdir()
    return {
        "pilatus": TinyPilatus(name="pilatus", write_dir=frames),
        "mono_energy": Signal(name="mono_energy", value=11.0),
        "mono_wavelength": Signal(name="mono_wavelength", value=1.127),
        "detector_distance": Signal(name="detector_distance", value=2105.0),
        "cell_temperature": Signal(name="cell_temperature", value=20.0),
        "ring_current": Signal(name="ring_current", value=500.0),
        "sec_uv280": Signal(name="sec_uv280", value=0.01),
    }


@pytest.fixture
def RE(beamline):
    """A contract-guarded RunEngine with a baseline (optics, cell, ring) and a UV monitor."""
    engine = RunEngine({})
    install_contract(engine)
    baseline = ["mono_energy", "mono_wavelength", "detector_distance", "cell_temperature", "ring_current"]
    engine.preprocessors.append(
        SupplementalData(baseline=[beamline[k] for k in baseline], monitors=[beamline["sec_uv280"]])
    )
    docs: list[tuple[str, dict]] = []
    engine.subscribe(lambda name, doc: docs.append((name, doc)))
    engine.captured = docs
    return engine
