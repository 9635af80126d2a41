"""Map one Bluesky run's documents to one lambda-ber ``Dataset`` record.

Pure code, shared by the record writer (live, at each stop) and by any later conversion of stored
runs. (Over 400 lines on purpose: the whole documents → record mapping, from the data keys to every
lambda-ber class filled, reads top to bottom in one place against the schema.)

A user gets, per run: Study (project + RunStart), Sample, the SIBYLS instrument, the ExperimentRun
(conditions, strategy, streams, exit status) and one DataFile per frame file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from event_model import DocumentRouter, unpack_datum_page, unpack_event_page

from sibyls.metadata.hashing import FileFacts, file_facts
from sibyls.metadata.lambda_ber import (
    BeamlineInstrument,
    BlueskyDataFile,
    BlueskyDataset,
    BlueskyExperimentRun,
    BlueskyStream,
    BlueskyStudy,
    BufferComposition,
    DataCollectionStrategy,
    ExperimentalConditions,
    ExperimentInstrumentAssociation,
    ExperimentSampleAssociation,
    Sample,
    StudyExperimentAssociation,
    StudySampleAssociation,
    qv,
)

log = logging.getLogger(__name__)

# Data keys the SIBYLS devices produce.
KEY_ENERGY = "mono_energy"  # keV
KEY_WAVELENGTH = "mono_wavelength"  # Å
KEY_DISTANCE = "detector_distance"  # mm
KEY_CELL_TEMPERATURE = "cell_temperature"  # °C
KEY_IMAGE = "pilatus_image"
KEY_ACQUIRE_TIME = "pilatus_acquire_time"  # s
KEY_NUM_IMAGES = "pilatus_num_images"
DETECTOR_NAME = "pilatus"
_INTERESTING = (
    KEY_ENERGY,
    KEY_WAVELENGTH,
    KEY_DISTANCE,
    KEY_CELL_TEMPERATURE,
    KEY_ACQUIRE_TIME,
    KEY_NUM_IMAGES,
)

INSTRUMENT_ID = "sibyls:instrument/ALS-12.3.1-SIBYLS"
SAMPLE_ROLE_TO_STUDY = {"sample": "target", "buffer_blank": "blank", "standard": "reference"}
SAMPLE_ROLE_TO_EXPERIMENT = {"sample": "target", "buffer_blank": "buffer_blank", "standard": "standard"}
_SAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")

#: ``facts(path)`` → size, mtime and sha256 of a frame file; raises ``OSError`` when it is unreadable.
FactsProvider = Callable[[Path], FileFacts]


def sibyls_instrument() -> BeamlineInstrument:
    """The SIBYLS beamline record (facts from the published setup and lambda-ber's SIBYLS example)."""
    return BeamlineInstrument(
        id=INSTRUMENT_ID,
        title="SIBYLS Beamline 12.3.1",
        description=(
            "SIBYLS beamline at the ALS for SAXS and crystallography; Dectris PILATUS3 X 2M "
            "(1475 x 1679 px, 172 um), sample-detector 2105 mm, cell 4-60 C"
        ),
        instrument_code="ALS-12.3.1-SIBYLS",
        instrument_registry_id="ALS_SIBYLS",
        instrument_category="SYNCHROTRON_BEAMLINE",
        facility_name="ALS",
        facility_ror="https://ror.org/02jbv0t02",
        beamline_id="12.3.1",
        manufacturer="Lawrence Berkeley National Laboratory",
        model="SIBYLS Dual Endstation",
        installation_date="2008-09-01",
        current_status="operational",
        techniques_supported=["saxs", "xray_crystallography"],
        source_type="synchrotron",
        q_range_min=qv(0.01, "inverse Angstroms"),
        q_range_max=qv(0.6, "inverse Angstroms"),
        sample_changer_capacity=qv(96, "samples"),
        mail_in_service=True,
        website="https://bl1231.als.lbl.gov/",
        daq_system="bluesky",
        control_system="epics",
    )


def safe_part(text: Any, default: str) -> str:
    """A file-name-safe version of ``text`` (the contract already guarantees this for codes)."""
    cleaned = "".join(c if c in _SAFE else "_" for c in str(text or "")).strip("._-")
    return cleaned or default


def record_relpath(start: dict) -> Path:
    """Where a run's record goes below the records folder: ``<project>/<scan_id>_<sample>_<uid8>.yaml``."""
    project = safe_part(start.get("project_code"), "_no_project")
    sample = safe_part(start.get("sample_code"), "no_sample")
    scan_id = start.get("scan_id")
    scan = f"{int(scan_id):05d}" if isinstance(scan_id, int) else "noscan"
    return Path(project) / f"{scan}_{sample}_{start['uid'][:8]}.yaml"


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for document values: numpy arrays and scalars as lists and numbers."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def _file_format(spec: str, path: Path) -> str:
    """lambda-ber FileFormatEnum value from the resource spec or file suffix."""
    suffix = path.suffix.lower()
    if "HDF5" in spec.upper() or suffix in (".h5", ".hdf5", ".nxs"):
        return "hdf5"
    return {".tif": "tiff", ".tiff": "tiff", ".cbf": "cbf", ".npy": "img"}.get(suffix, "img")


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


@dataclass
class _Stream:
    name: str
    uid: str
    configuration: dict[str, Any]
    count: int = 0
    seq_max: int | None = None
    t_first: float | None = None
    t_last: float | None = None
    first: dict[str, Any] = field(default_factory=dict)
    num_images_sum: float = 0.0
    num_images_seen: bool = False


@dataclass
class _Resource:
    uid: str
    spec: str
    path: str
    root: str
    resource_path: str
    datum_ids: list[str] = field(default_factory=list)


class _Ingest(DocumentRouter):
    """event_model's dispatch by document name for a :class:`RunSummary`; pages are unpacked."""

    def __init__(self, summary: RunSummary) -> None:
        super().__init__()
        self.summary = summary

    def start(self, doc):
        self.summary._start(doc)

    def stop(self, doc):
        self.summary._stop(doc)

    def descriptor(self, doc):
        self.summary._descriptor(doc)

    def event(self, doc):
        self.summary._event(doc)

    def event_page(self, doc):
        # Pages built by hand may lack the uids and timestamps the summary does not need.
        page = {"uid": [None] * len(doc.get("seq_num", [])), "timestamps": {}, **doc}
        for event in unpack_event_page(page):
            self.summary._event(event)

    def resource(self, doc):
        self.summary._resource(doc)

    def stream_resource(self, doc):
        self.summary._stream_resource(doc)

    def datum(self, doc):
        self.summary._datum(doc)

    def datum_page(self, doc):
        for datum in unpack_datum_page({"datum_kwargs": {}, **doc}):
            self.summary._datum(datum)


class RunSummary:
    """Accumulates what the record needs from a run's documents: ``summary(name, doc)``, one at a time."""

    def __init__(self) -> None:
        self._ingest = _Ingest(self)
        self.start: dict | None = None
        self.stop: dict | None = None
        self.streams: dict[str, _Stream] = {}
        self.resources: dict[str, _Resource] = {}
        self.image_datums: list[str] = []

    def to_state(self) -> dict[str, Any]:
        """What the record still needs, as plain data (for a spool file); see :meth:`from_state`."""
        return {
            "start": self.start,
            "stop": self.stop,
            "streams": {uid: asdict(s) for uid, s in self.streams.items()},
            "resources": {uid: asdict(r) for uid, r in self.resources.items()},
            "image_datums": list(self.image_datums),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RunSummary:
        """The summary :meth:`to_state` described."""
        summary = cls()
        summary.start, summary.stop = state["start"], state.get("stop")
        summary.streams = {uid: _Stream(**s) for uid, s in state.get("streams", {}).items()}
        summary.resources = {uid: _Resource(**r) for uid, r in state.get("resources", {}).items()}
        summary.image_datums = list(state.get("image_datums", []))
        return summary

    def __call__(self, name: str, doc: dict) -> None:
        """Ingest one ``(name, doc)`` pair (routed by event_model's ``DocumentRouter``)."""
        self._ingest(name, doc)

    def file_paths(self) -> dict[str, Path]:
        """Resource uid → the frame file it names."""
        return {uid: Path(res.path) for uid, res in self.resources.items()}

    def _start(self, doc: dict) -> None:
        self.start = doc

    def _stop(self, doc: dict) -> None:
        self.stop = doc

    def _descriptor(self, doc: dict) -> None:
        config: dict[str, Any] = {}
        for obj in (doc.get("configuration") or {}).values():
            config.update((obj or {}).get("data") or {})
        self.streams[doc["uid"]] = _Stream(doc.get("name", "primary"), doc["uid"], config)

    def _event(self, doc: dict) -> None:
        stream = self.streams.get(doc["descriptor"])
        if stream is None:
            return
        data = doc.get("data", {})
        stream.count += 1
        seq = doc.get("seq_num")
        if seq is not None:
            stream.seq_max = seq if stream.seq_max is None else max(stream.seq_max, seq)
        t = doc.get("time")
        if t is not None:
            stream.t_first = t if stream.t_first is None else min(stream.t_first, t)
            stream.t_last = t if stream.t_last is None else max(stream.t_last, t)
        for key in _INTERESTING:
            if key in data and key not in stream.first:
                stream.first[key] = data[key]
        n = data.get(KEY_NUM_IMAGES, stream.configuration.get(KEY_NUM_IMAGES))
        if n is not None:
            stream.num_images_sum += float(n)
            stream.num_images_seen = True
        if KEY_IMAGE in data and isinstance(data[KEY_IMAGE], str):
            self.image_datums.append(data[KEY_IMAGE])

    def _resource(self, doc: dict) -> None:
        root = doc.get("root") or ""
        rpath = doc.get("resource_path") or ""
        self.resources[doc["uid"]] = _Resource(
            doc["uid"], doc.get("spec", ""), os.path.join(root, rpath), root, rpath
        )

    def _stream_resource(self, doc: dict) -> None:
        uri = doc.get("uri") or ""
        parsed = urlparse(uri)
        path = parsed.path if parsed.scheme == "file" else uri
        self.resources[doc["uid"]] = _Resource(
            doc["uid"], doc.get("mimetype") or doc.get("spec", ""), path, os.path.dirname(path), path
        )

    def _datum(self, doc: dict) -> None:
        res = self.resources.get(doc["resource"])
        if res is not None:
            res.datum_ids.append(doc["datum_id"])

    # ---- values -----------------------------------------------------------------------------------

    def _primary(self) -> list[_Stream]:
        return [s for s in self.streams.values() if s.name == "primary"]

    def value(self, key: str) -> Any:
        """A device reading: primary events, then baseline, other streams, then configuration."""
        order = sorted(self.streams.values(), key=lambda s: (s.name != "primary", s.name != "baseline"))
        for stream in order:
            if key in stream.first:
                return stream.first[key]
        for stream in order:
            if key in stream.configuration:
                return stream.configuration[key]
        return None

    def total_frames(self) -> int | None:
        """Sum of num_images over primary events, else the number of image datums, else unknown."""
        primary = self._primary()
        if primary and any(s.num_images_seen for s in primary):
            return int(sum(s.num_images_sum for s in primary))
        if self.image_datums:
            return len(self.image_datums)
        return None

    # ---- the record -------------------------------------------------------------------------------

    def to_dataset(self, facts: FactsProvider | None = None) -> BlueskyDataset:
        """The lambda-ber Dataset for this run (call after the stop document).

        ``facts`` gives each frame file's size, date and checksum (e.g. computed earlier in the
        background); by default each file is hashed here.
        """
        if self.start is None:
            raise ValueError("no start document: nothing to record")
        start, stop = self.start, self.stop or {}
        uid = start["uid"]
        project = start.get("project_code") or "_no_project"
        sample_code = start.get("sample_code")
        role = start.get("sample_role") or "sample"
        run_id = f"urn:uuid:{uid}"
        study_id = f"sibyls:project/{safe_part(project, '_no_project')}"
        plan_type = start.get("plan_type")
        mode = start.get("collection_mode") or ("sec_saxs" if plan_type == "sec_saxs" else "batch")
        exit_status = stop.get("exit_status")

        study = BlueskyStudy(
            id=study_id,
            title=f"SIBYLS project {project}",
            bluesky_uid=uid,
            plan_name=start.get("plan_name"),
            plan_type=plan_type,
            scan_id=start.get("scan_id"),
            time_start=start.get("time"),
            project_code=start.get("project_code"),
        )

        samples, study_samples, experiment_samples = [], [], []
        if sample_code and start.get("sample_type"):
            sample_id = f"sibyls:sample/{safe_part(project, '_')}/{safe_part(sample_code, '_')}"
            buffer = None
            if (
                start.get("buffer_name")
                or start.get("buffer_composition")
                or start.get("buffer_ph") is not None
            ):
                buffer = BufferComposition(
                    description=start.get("buffer_name"),
                    ph=qv(start.get("buffer_ph"), "pH units"),
                    components=start.get("buffer_composition"),
                )
            samples.append(
                Sample(
                    id=sample_id,
                    sample_code=sample_code,
                    sample_type=start["sample_type"],
                    molecular_weight=qv(start.get("molecular_weight_kda"), "kilodaltons"),
                    concentration=qv(start.get("concentration_mg_ml"), "milligrams per milliliter"),
                    buffer_composition=buffer,
                )
            )
            study_samples.append(
                StudySampleAssociation(
                    study_id=study_id, sample_id=sample_id, role=SAMPLE_ROLE_TO_STUDY.get(role)
                )
            )
            experiment_samples.append(
                ExperimentSampleAssociation(
                    experiment_id=run_id, sample_id=sample_id, role=SAMPLE_ROLE_TO_EXPERIMENT.get(role)
                )
            )

        temperature = self.value(KEY_CELL_TEMPERATURE)
        if temperature is None:
            temperature = start.get("cell_temperature_c")
        exposure = self.value(KEY_ACQUIRE_TIME)
        conditions = ExperimentalConditions(
            temperature=qv(temperature, "degrees Celsius"),
            beam_energy=qv(self.value(KEY_ENERGY), "kiloelectronvolts"),
            exposure_time=qv(exposure, "seconds"),
        )
        strategy = DataCollectionStrategy(
            collection_mode=mode,
            total_frames=qv(self.total_frames(), "frames"),
            detector_distance_mm=qv(self.value(KEY_DISTANCE), "millimeters"),
            wavelength_a=qv(self.value(KEY_WAVELENGTH), "Angstroms"),
            exposure_time=qv(exposure, "seconds"),
        )

        data_files = [self._data_file(res, run_id, facts or file_facts) for res in self.resources.values()]
        dirs = sorted({os.path.dirname(f.file_path) for f in data_files if f.file_path})
        streams = [
            BlueskyStream(
                stream_name=s.name,
                bluesky_descriptor_uid=s.uid,
                event_count=s.count,
                seq_num=s.seq_max,
                event_time_first=s.t_first,
                event_time_last=s.t_last,
            )
            for s in self.streams.values()
        ]
        slot = f"{start['plate_id']}/{start['well']}" if start.get("plate_id") and start.get("well") else None
        run = BlueskyExperimentRun(
            id=run_id,
            title=f"scan {start.get('scan_id')} {plan_type} {sample_code}",
            description=start.get("description"),
            experiment_code=f"SIBYLS-{start.get('scan_id')}-{safe_part(sample_code, 'no_sample')}-{uid[:8]}",
            experiment_date=_iso(start.get("time"))[:10] if start.get("time") else None,
            operator_id=start.get("operator"),
            technique="saxs",
            experimental_conditions=conditions if conditions.to_dict() else None,
            data_collection_strategy=strategy,
            raw_data_location=dirs[0] if len(dirs) == 1 else None,
            processing_status="collected" if exit_status == "success" else "failed",
            daq_system="bluesky",
            detector=DETECTOR_NAME if DETECTOR_NAME in (start.get("detectors") or []) else None,
            autoloader_slot=slot,
            start_time=_iso(start.get("time")),
            end_time=_iso(stop.get("time")),
            bluesky_uid=uid,
            sample_code=sample_code,
            sample_role=start.get("sample_role"),
            plate_id=start.get("plate_id"),
            well=start.get("well"),
            buffer_run_uid=start.get("buffer_run_uid"),
            exit_status=exit_status,
            exit_reason=stop.get("reason") or None,
            time_stop=stop.get("time"),
            bluesky_streams=streams or None,
        )
        return BlueskyDataset(
            id=f"sibyls:record/{uid}",
            title=f"SIBYLS run {start.get('scan_id')} ({sample_code}, project {project})",
            studies=[study],
            instruments=[sibyls_instrument()],
            samples=samples or None,
            experiment_runs=[run],
            data_files=data_files or None,
            study_sample_associations=study_samples or None,
            study_experiment_associations=[
                StudyExperimentAssociation(study_id=study_id, experiment_id=run_id)
            ],
            experiment_sample_associations=experiment_samples or None,
            experiment_instrument_associations=[
                ExperimentInstrumentAssociation(
                    experiment_id=run_id, instrument_id=INSTRUMENT_ID, role="primary"
                )
            ],
        )

    def _data_file(self, res: _Resource, run_id: str, facts: FactsProvider) -> BlueskyDataFile:
        path = Path(res.path)
        size = checksum = created = None
        try:
            known = facts(path)
            size, created, checksum = known.size, _iso(known.mtime_ns / 1e9), known.sha256
        except OSError as exc:
            try:
                st = path.stat()
                size, created = st.st_size, _iso(st.st_mtime)
            except OSError:
                pass
            log.warning("data file %s of resource %s is missing or unreadable: %s", path, res.uid, exc)
        return BlueskyDataFile(
            id=f"urn:uuid:{res.uid}" if len(res.uid) == 36 else f"sibyls:resource/{res.uid}",
            file_name=path.name,
            file_path=str(path),
            file_format=_file_format(res.spec, path),
            file_size_bytes=qv(size, "bytes"),
            checksum=f"sha256:{checksum}" if checksum else None,
            creation_date=created,
            data_type="scattering",
            related_entity=run_id,
            file_role="raw",
            bluesky_resource_uid=res.uid,
            bluesky_datum_ids=res.datum_ids or None,
            resource_path=res.resource_path,
            resource_root=res.root,
            resource_spec=res.spec,
        )


def documents_to_dataset(documents: Iterable[tuple[str, dict]]) -> BlueskyDataset:
    """Map one run's ``(name, doc)`` pairs (start … stop) to its lambda-ber Dataset record."""
    summary = RunSummary()
    for name, doc in documents:
        summary(name, doc)
    return summary.to_dataset()
