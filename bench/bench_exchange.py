"""Exchange benchmarks: azimuthal averaging of full-size frames; export of a 600-frame SEC-SAXS run."""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path

import h5py
import numpy as np

from bench.common import Figure, median_seconds
from sibyls.devices.geometry import DetectorGeometry, module_gap_mask
from sibyls.saxs.reduction.integrate import CorrectedIntegrator, PixelCorrections


def reference_average(frame: np.ndarray, geometry: DetectorGeometry, edges: np.ndarray) -> np.ndarray:
    """Plain numpy: per frame, mask, then np.histogram of counts and of pixels over q."""
    q = geometry.q_map()
    valid = frame >= 0
    counts, _ = np.histogram(q[valid], bins=edges, weights=frame[valid].astype(np.float64))
    pixels, _ = np.histogram(q[valid], bins=edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts / pixels


def _write_sec_run(folder: Path, n_frames: int = 600, binning: int = 4) -> list[tuple[str, dict]]:
    geometry = DetectorGeometry(binning=binning)
    rng = np.random.default_rng(0)
    mask = module_gap_mask(binning).astype(np.uint32)
    uid, desc = str(uuid.uuid4()), str(uuid.uuid4())
    t0 = time.time()
    docs = [
        (
            "start",
            {
                "uid": uid,
                "time": t0,
                "scan_id": 1,
                "sample_code": "SEC1",
                "project_code": "BENCH",
                "plan_type": "sec_saxs",
            },
        )
    ]
    docs.append(
        (
            "descriptor",
            {
                "uid": desc,
                "run_start": uid,
                "name": "primary",
                "time": t0,
                "data_keys": {
                    "pilatus_image": {"source": "x", "dtype": "array", "shape": [], "external": "FILESTORE:"},
                    "i0_counts": {"source": "x", "dtype": "number", "shape": []},
                },
                "configuration": {},
                "object_keys": {},
                "hints": {},
            },
        )
    )
    mean = 50.0 * np.exp(-geometry.q_map() * 20)
    for i in range(n_frames):
        path = folder / f"SEC1_{i + 1:05d}.h5"
        frame = rng.poisson(mean).astype(np.int32)
        frame[module_gap_mask(binning)] = -1
        with h5py.File(path, "w") as fh:
            fh["entry/data/data"] = frame[None]
            det = fh.create_group("entry/instrument/detector")
            det["distance"], det["x_pixel_size"], det["binning"] = 2105.0, 0.172 * binning, binning
            det["beam_center_x"], det["beam_center_y"] = 737.0 / binning, 1460.0 / binning
            det["pixel_mask"], det["count_time"] = mask, 3.0
            fh["entry/instrument/monochromator/wavelength"] = 1.127
        res = str(uuid.uuid4())
        docs += [
            (
                "resource",
                {
                    "uid": res,
                    "spec": "AD_HDF5",
                    "root": "/",
                    "resource_path": str(path).lstrip("/"),
                    "resource_kwargs": {},
                    "path_semantics": "posix",
                    "run_start": uid,
                },
            ),
            ("datum", {"resource": res, "datum_id": f"{res}/0", "datum_kwargs": {}}),
            (
                "event",
                {
                    "uid": str(uuid.uuid4()),
                    "descriptor": desc,
                    "time": t0 + 3 * i,
                    "seq_num": i + 1,
                    "data": {"pilatus_image": f"{res}/0", "i0_counts": 1e7},
                    "timestamps": {"pilatus_image": t0, "i0_counts": t0},
                    "filled": {},
                },
            ),
        ]
    docs.append(
        (
            "stop",
            {
                "uid": str(uuid.uuid4()),
                "run_start": uid,
                "time": t0 + 1800,
                "exit_status": "success",
                "reason": "",
                "num_events": {"primary": n_frames},
            },
        )
    )
    return docs


def run() -> list[Figure]:
    geometry = DetectorGeometry(binning=1)
    rng = np.random.default_rng(1)
    frames = rng.poisson(40.0, size=(8, *geometry.shape)).astype(np.int32)
    frames[:, module_gap_mask(1)] = -1
    edges = np.linspace(0.0, float(geometry.q_map().max()), 400)
    integrator = CorrectedIntegrator(PixelCorrections.from_geometry(geometry), module_gap_mask(1), edges)
    ours = median_seconds(lambda: [integrator.integrate(f) for f in frames], 3) / len(frames)
    base = median_seconds(lambda: [reference_average(f, geometry, edges) for f in frames], 3) / len(frames)
    figures = [
        Figure(
            "azimuthal average, full 1679x1475 frame",
            1 / ours,
            1 / base,
            "/s",
            3.0,
            "np.histogram per frame",
            lower_is_better=False,
        )
    ]

    from sibyls.metadata.runs.doclog import write_document_log
    from sibyls.metadata.runs.sources import FolderRunSource
    from sibyls.saxs.exports.formats import export
    from sibyls.saxs.reduction.iq import read_frame_geometry

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "frames").mkdir()
        docs = _write_sec_run(tmp / "frames")
        write_document_log(tmp / "runs" / "sec.jsonl", docs)
        source = FolderRunSource(tmp / "runs")

        def export_all():
            for fmt in ("nxcansas", "csv", "json", "png"):
                export(source, fmt, tmp / "out", scan_id=1)

        t = time.perf_counter()
        export_all()
        ours_s = time.perf_counter() - t

        def baseline():
            run = source.load(source.find(scan_id=1)[0])
            geo = read_frame_geometry(run.frame_files[0]).geometry
            e = np.linspace(0.0, float(geo.q_map().max()), 400)
            for frame in run.frames():
                reference_average(frame, geo, e)

        t = time.perf_counter()
        baseline()
        base_s = time.perf_counter() - t
    figures.append(
        Figure(
            "export 600-frame SEC run (nxcansas+csv+json+png)",
            ours_s,
            base_s,
            "s",
            None,
            "read + per-frame np.histogram only",
            note="binning 4 frames",
        )
    )
    return figures
