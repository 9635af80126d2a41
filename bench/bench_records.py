"""Record-writer benchmark: how long the RunEngine waits in the record writer's stop callback.

Runs of 10, 600 and 3600 frames (one HDF5 file per frame, as the IOC writes them), binned 4×4
(419×368 int32) and full size (1679×1475 int32, ~10 MB). Ours: the :class:`RecordWriter` (frame
files hashed in the background as their events arrive; the stop callback only hands the run off).
Baseline, measured in the same run on the same files and documents: the old synchronous writer,
which built the record — hashing every frame file — inside the stop callback. Target: ≤ 50 ms
and flat in frame count. The documents are a real run's stream built with event_model and fed
to each writer as fast as it takes them; one case also goes through a real RunEngine.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import event_model
import h5py
import numpy as np

from bench.common import Figure
from sibyls.devices.geometry import DetectorGeometry, module_gap_mask
from sibyls.metadata.atomic import atomic_write_text
from sibyls.metadata.hashing import FileFacts, sha256_file
from sibyls.metadata.mapping import RunSummary, record_relpath
from sibyls.metadata.writer import RecordWriter, dump_record

FRAME_COUNTS = (10, 600, 3600)
DISTINCT = 8  # frame files written like the IOC's; the others are their copies or hard links
TARGET_S = 0.050


def _write_ioc_frame(path: Path, frame: np.ndarray, mask: np.ndarray) -> None:
    """One frame file laid out like the simulated IOC's (``.partial`` until closed, then renamed)."""
    partial = path.with_name(path.name + ".partial")
    with h5py.File(partial, "w") as fh:
        entry = fh.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        data = entry.create_dataset(
            "data/data", shape=(1, *frame.shape), dtype="<i4", chunks=(1, *frame.shape), fillvalue=-1
        )
        data[0] = frame
        det = entry.create_group("instrument/detector")
        det["distance"], det["count_time"] = 2105.0, 1.0
        det.create_dataset("pixel_mask", data=mask.astype(np.uint8), compression="gzip", compression_opts=1)
        entry["instrument/monochromator/wavelength"] = 1.127
    os.replace(partial, path)


def _frames(folder: Path, binning: int, count: int) -> list[Path]:
    """``count`` frame files from ``DISTINCT`` IOC-layout files: copies (binned) or hard links (full size)."""
    folder.mkdir(parents=True)
    shape = DetectorGeometry(binning=binning).shape
    mask = module_gap_mask(binning)
    base = np.random.default_rng(binning).poisson(30.0, shape).astype(np.int32)
    base[mask] = -1
    paths: list[Path] = []
    for i in range(count):
        path = folder / f"SEC1_{i + 1:05d}.h5"
        if i < DISTINCT:
            _write_ioc_frame(path, base + i, mask)
        elif binning == 1:
            os.link(paths[i % DISTINCT], path)
        else:
            shutil.copyfile(paths[i % DISTINCT], path)
        paths.append(path)
    return paths


def _documents(paths: list[Path], scan_id: int) -> list[tuple[str, dict]]:
    """start, descriptor, then per frame resource, datum and event, then stop (event_model-built)."""
    run = event_model.compose_run(
        metadata={"scan_id": scan_id, "sample_code": "SEC1", "project_code": "BENCH", "plan_type": "sec_saxs"}
    )
    desc = run.compose_descriptor(
        name="primary",
        data_keys={
            "pilatus_image": {"source": "sim", "dtype": "array", "shape": [], "external": "FILESTORE:"},
            "pilatus_num_images": {"source": "sim", "dtype": "integer", "shape": []},
        },
    )
    docs = [("start", run.start_doc), ("descriptor", desc.descriptor_doc)]
    t0 = time.time()
    for i, path in enumerate(paths):
        res = run.compose_resource(
            spec="AD_HDF5",
            root="/",
            resource_path=str(path).lstrip("/"),
            resource_kwargs={"frame_per_point": 1},
        )
        datum = res.compose_datum(datum_kwargs={"point_number": 0})
        event = desc.compose_event(
            data={"pilatus_image": datum["datum_id"], "pilatus_num_images": 1},
            timestamps={"pilatus_image": t0 + i, "pilatus_num_images": t0 + i},
        )
        docs += [("resource", res.resource_doc), ("datum", datum), ("event", event)]
    docs.append(("stop", run.compose_stop()))
    return docs


def _old_facts(path: Path) -> FileFacts:
    st = os.stat(path)
    return FileFacts(str(path), st.st_size, st.st_mtime_ns, sha256_file(path), st.st_ino, st.st_ctime_ns)


class OldWriter:
    """The writer as it was: the record, frame-file hashes included, built in the stop callback."""

    def __init__(self, records_dir: Path) -> None:
        self.records_dir = records_dir
        self._runs: dict[str, RunSummary] = {}
        self._owner: dict[str, str] = {}

    def __call__(self, name: str, doc: dict) -> None:
        if name == "start":
            self._runs[doc["uid"]] = summary = RunSummary()
            summary(name, doc)
            return
        key = doc.get("run_start") or self._owner.get(doc.get("descriptor") or doc.get("resource", ""))
        summary = self._runs.get(key)
        if summary is None:
            return
        if name in ("descriptor", "resource"):
            self._owner[doc["uid"]] = key
        summary(name, doc)
        if name == "stop":
            del self._runs[key]
            record = summary.to_dataset(facts=_old_facts).to_dict()
            atomic_write_text(self.records_dir / record_relpath(summary.start), dump_record(record))


def _feed(writer, docs: list[tuple[str, dict]]) -> tuple[float, float]:
    """Feed a run's documents; (seconds per frame before the stop, seconds in the stop callback)."""
    t0 = time.perf_counter()
    for name, doc in docs[:-1]:
        writer(name, doc)
    t1 = time.perf_counter()
    writer(*docs[-1])
    t2 = time.perf_counter()
    frames = sum(1 for name, _ in docs if name == "event")
    return (t1 - t0) / frames, t2 - t1


def _case(tmp: Path, binning: int, paths: list[Path], scan_id: int, wait: bool) -> dict[str, float]:
    """Ours then the old writer on the same run; ``wait``: let ours finish its record (else spool it)."""
    docs = _documents(paths, scan_id)
    records = tmp / f"records_{binning}_{len(paths)}"
    ours = RecordWriter(records / "ours", spool_dir=records / "spool")
    landed = float("nan")
    try:
        ours_feed, ours_stop = _feed(ours, docs)
        if wait:
            t = time.perf_counter()
            assert ours.flush(600), "record not written"
            landed = time.perf_counter() - t
            assert ours.last_status == "written"
    finally:
        quiet = logging.getLogger("sibyls.metadata.writer")
        level = quiet.level
        quiet.setLevel(logging.WARNING if wait else logging.ERROR)  # the spooling warning is expected
        ours.close(5 if wait else 0)  # not waiting: the exit path spools the run's summary
        quiet.setLevel(level)
    old_feed, old_stop = _feed(OldWriter(records / "old"), docs)
    if wait:
        ours_text = next((records / "ours").rglob("*.yaml")).read_text()
        old_text = next((records / "old").rglob("*.yaml")).read_text()
        assert ours_text == old_text, "the two writers' records differ"
    else:
        assert list((records / "spool").rglob("*.run.json")), "run summary not spooled"
    return {
        "ours": ours_stop,
        "old": old_stop,
        "landed": landed,
        "ours_feed": ours_feed,
        "old_feed": old_feed,
    }


def _real_run_engine_case(tmp: Path, paths: list[Path]) -> dict[str, float]:
    """The 600 binned frames through a real RunEngine: a detector that emits each file's documents."""
    import bluesky.plans as bp
    from bluesky import RunEngine
    from ophyd import Component, Device, Signal
    from ophyd.status import StatusBase

    class Replay(Device):
        image = Component(Signal, value="")

        def stage(self):
            self._files, self._assets = iter(paths), []
            return super().stage()

        def trigger(self):
            path = next(self._files)
            res, compose_datum, _ = event_model.compose_resource(
                spec="AD_HDF5", root="/", resource_path=str(path).lstrip("/"), resource_kwargs={}
            )
            res.pop("run_start", None)  # the RunEngine fills it in
            datum = compose_datum(datum_kwargs={"point_number": 0})
            self._assets += [("resource", res), ("datum", datum)]
            self.image.put(datum["datum_id"])
            status = StatusBase()
            status.set_finished()
            return status

        def describe(self):
            desc = super().describe()
            desc[self.image.name].update(external="FILESTORE:", dtype="array", shape=[1, 419, 368])
            return desc

        def collect_asset_docs(self):
            yield from self._assets
            self._assets = []

    results = {}
    for label, make in (
        ("ours", lambda: RecordWriter(tmp / "re_records" / "ours", spool_dir=tmp / "re_records" / "spool")),
        ("old", lambda: OldWriter(tmp / "re_records" / "old")),
    ):
        writer = make()
        stop_times: list[float] = []

        def timed(name, doc, writer=writer, stop_times=stop_times):
            t = time.perf_counter()
            writer(name, doc)
            if name == "stop":
                stop_times.append(time.perf_counter() - t)

        engine = RunEngine({})
        engine.subscribe(timed)
        engine(bp.count([Replay(name="pilatus")], num=len(paths)), sample_code="SEC1", project_code="BENCH")
        if isinstance(writer, RecordWriter):
            assert writer.flush(600)
            writer.close(5)
        results[label] = stop_times[0]
    return results


def run() -> list[Figure]:
    figures = []
    with tempfile.TemporaryDirectory(prefix="bench_records_") as tmp:
        tmp = Path(tmp)
        scan = iter(range(1, 100))
        for binning, label in ((4, "binned 4x4"), (1, "full-size")):
            t = time.perf_counter()
            paths = _frames(tmp / f"frames_{binning}", binning, max(FRAME_COUNTS))
            made = time.perf_counter() - t
            # Full size, 3600 frames: ours is not awaited (36 GB to hash twice would not fit the
            # budget); closing the writer spools the run's summary, as at a process exit.
            cases = {
                n: _case(tmp, binning, paths[:n], next(scan), wait=binning != 1 or n < 3600)
                for n in FRAME_COUNTS
            }
            how = (
                f"{DISTINCT} IOC-layout HDF5 files and hard links to them (page-cached like fresh frames)"
                if binning == 1
                else f"{DISTINCT} IOC-layout HDF5 files and copies of them"
            )
            for n, c in cases.items():
                landed = (
                    f"record on disk {c['landed']:.2f} s after stop (frames fed instantly)"
                    if c["landed"] == c["landed"]
                    else "record not awaited: writer closed at once, run summary spooled"
                )
                figures.append(
                    Figure(
                        f"stop callback, {n} {label} frames",
                        c["ours"] * 1e3,
                        c["old"] * 1e3,
                        "ms",
                        None,
                        "old writer: hashes in the stop callback",
                        note=f"target ≤ 50 ms: {'ok' if c['ours'] <= TARGET_S else 'MISSED'}; {landed}",
                    )
                )
            spread = max(c["ours"] for c in cases.values()) - min(c["ours"] for c in cases.values())
            figures.append(
                Figure(
                    f"stop callback, {label}: 3600 minus 10 frames",
                    (cases[3600]["ours"] - cases[10]["ours"]) * 1e3,
                    (cases[3600]["old"] - cases[10]["old"]) * 1e3,
                    "ms",
                    None,
                    "old writer, same difference",
                    note=f"flat: ours spread {spread * 1e3:.2f} ms over 10-3600 frames; frames: {how}, "
                    f"made in {made:.1f} s",
                )
            )
            figures.append(
                Figure(
                    f"callback time per frame during a 600-frame {label} run",
                    cases[600]["ours_feed"] * 1e6,
                    cases[600]["old_feed"] * 1e6,
                    "µs",
                    None,
                    "old writer (no hashing during the run)",
                    note="resource + datum + event on the RE thread; ours also queues the file for hashing",
                )
            )
            if binning == 4:
                real = _real_run_engine_case(tmp, paths[:600])
                figures.append(
                    Figure(
                        "stop callback, 600 binned frames, real RunEngine",
                        real["ours"] * 1e3,
                        real["old"] * 1e3,
                        "ms",
                        None,
                        "old writer in the same RunEngine plan",
                        note=f"target ≤ 50 ms: {'ok' if real['ours'] <= TARGET_S else 'MISSED'}",
                    )
                )
    return figures
