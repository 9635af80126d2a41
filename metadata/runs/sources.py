"""Where exports and conversions read runs from: a folder of document logs, or a Tiled server.

Both sources give the same :class:`StoredRun` (RunStart/RunStop, each stream as columns, the frame
files of the primary stream), found by scan id, by uid (or its first characters) or by project.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import numpy as np
from event_model import unpack_event_page

from sibyls.metadata.errors import ExchangeError
from sibyls.metadata.mapping import KEY_IMAGE
from sibyls.metadata.runs.doclog import read_document_log

#: The node beside a run's streams in Tiled where the first look keeps its curves (not a stream).
PROCESSED_KEY = "processed"


class RunNotFoundError(ExchangeError, LookupError):
    """No stored run matches the scan id / uid / project asked for."""


@dataclass
class StreamData:
    """One event stream: its descriptor and its scalar readings as columns (``time``, ``seq_num`` too)."""

    name: str
    descriptor: dict
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.columns.get("seq_num", ()))


@dataclass
class StoredRun:
    """A stored run as exports see it; ``documents()`` gives its Bluesky documents."""

    start: dict
    stop: dict | None
    streams: dict[str, StreamData]
    frame_files: list[Path]
    _documents: list[tuple[str, dict]] | None = None
    _frame_reader: Any = None

    @property
    def uid(self) -> str:
        return self.start["uid"]

    @property
    def scan_id(self) -> int | None:
        return self.start.get("scan_id")

    def documents(self) -> Iterator[tuple[str, dict]]:
        """The run's documents: as stored (document log) or rebuilt from Tiled (same content)."""
        if self._documents is not None:
            yield from self._documents
        else:
            yield from synthesize_documents(self)

    def frames(self) -> Iterator[np.ndarray]:
        """Every primary-stream frame, in order (``(rows, cols)`` int32, -1 in module gaps)."""
        if self._frame_reader is not None:
            yield from self._frame_reader()
            return
        import h5py

        for path in self.frame_files:
            with h5py.File(path, "r") as fh:
                data = fh["entry/data/data"]
                for i in range(data.shape[0]):
                    yield data[i]


def run_from_documents(documents: Iterable[tuple[str, dict]]) -> StoredRun:
    """Build a :class:`StoredRun` from one run's ``(name, doc)`` pairs."""
    docs = list(documents)
    start = stop = None
    descriptors: dict[str, dict] = {}
    rows: dict[str, list[dict]] = {}
    resources: dict[str, Path] = {}
    datum_resource: dict[str, str] = {}
    image_datums: list[str] = []
    for name, doc in docs:
        if name == "start":
            start = doc
        elif name == "stop":
            stop = doc
        elif name == "descriptor":
            descriptors[doc["uid"]] = doc
            rows.setdefault(doc["name"], [])
        elif name in ("event", "event_page"):
            events = [doc] if name == "event" else unpack_event_page(doc)
            for event in events:
                desc = descriptors.get(event["descriptor"])
                if desc is None:
                    continue
                row = {"time": event["time"], "seq_num": event["seq_num"], **event["data"]}
                rows[desc["name"]].append(row)
                if desc["name"] == "primary" and isinstance(event["data"].get(KEY_IMAGE), str):
                    image_datums.append(event["data"][KEY_IMAGE])
        elif name == "resource":
            resources[doc["uid"]] = Path(doc.get("root") or "/") / doc["resource_path"]
        elif name == "datum":
            datum_resource[doc["datum_id"]] = doc["resource"]
        elif name == "datum_page":
            for datum_id in doc["datum_id"]:
                datum_resource[datum_id] = doc["resource"]
    if start is None:
        raise ExchangeError("the documents hold no RunStart")
    streams: dict[str, StreamData] = {}
    for desc in descriptors.values():
        if desc["name"] in streams:
            continue
        external = {k for k, v in desc["data_keys"].items() if v.get("external")}
        stream_rows = rows.get(desc["name"], [])
        keys = ["time", "seq_num"] + [k for k in desc["data_keys"] if k not in external]
        streams[desc["name"]] = StreamData(
            desc["name"], desc, {k: np.asarray([r.get(k) for r in stream_rows]) for k in keys}
        )
    frame_files = []
    for datum_id in image_datums:
        path = resources.get(datum_resource.get(datum_id, ""))
        if path is not None and path not in frame_files:
            frame_files.append(path)
    return StoredRun(start, stop, streams, frame_files, _documents=docs)


def synthesize_documents(run: StoredRun) -> Iterator[tuple[str, dict]]:
    """Bluesky documents equivalent to ``run`` (for runs read back from Tiled).

    Uids of the RunStart and descriptors are the stored ones; each frame file becomes one AD_HDF5
    Resource with one Datum, with uids derived from the run uid and file path (stable across calls).
    """
    start = dict(run.start)
    yield "start", start
    for stream in run.streams.values():
        desc = dict(stream.descriptor)
        desc.setdefault("uid", str(uuid.uuid5(uuid.NAMESPACE_URL, f"{run.uid}/{stream.name}")))
        desc.update(name=stream.name, run_start=run.uid)
        desc.setdefault("time", start["time"])
        desc.setdefault("configuration", {})
        desc.setdefault("hints", {})
        desc.setdefault("object_keys", {})
        data_keys = {
            k: {kk: vv for kk, vv in v.items() if kk != "object_name"} for k, v in desc["data_keys"].items()
        }
        for v in data_keys.values():
            if v.get("external") == "":
                v["external"] = "FILESTORE:"
        desc["data_keys"] = data_keys
        yield "descriptor", desc
        image = KEY_IMAGE in data_keys and stream.name == "primary"
        n = len(stream)
        for i in range(n):
            data = {k: _plain(v[i]) for k, v in stream.columns.items() if k not in ("time", "seq_num")}
            if image and i < len(run.frame_files):
                path = run.frame_files[i]
                res_uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{run.uid}/{path}"))
                yield (
                    "resource",
                    {
                        "uid": res_uid,
                        "spec": "AD_HDF5",
                        "root": "/",
                        "resource_path": str(path).lstrip("/"),
                        "resource_kwargs": {"frame_per_point": _frames_in(path)},
                        "path_semantics": "posix",
                        "run_start": run.uid,
                    },
                )
                datum_id = f"{res_uid}/0"
                yield (
                    "datum",
                    {"resource": res_uid, "datum_id": datum_id, "datum_kwargs": {"point_number": 0}},
                )
                data[KEY_IMAGE] = datum_id
            t = float(stream.columns["time"][i])
            yield (
                "event",
                {
                    "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{desc['uid']}/{i}")),
                    "descriptor": desc["uid"],
                    "time": t,
                    "seq_num": int(stream.columns["seq_num"][i]),
                    "data": data,
                    "timestamps": {k: t for k in data},
                    "filled": {KEY_IMAGE: False} if KEY_IMAGE in data else {},
                },
            )
    if run.stop is not None:
        yield "stop", dict(run.stop)


def _frames_in(path: Path) -> int:
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            return int(fh["entry/data/data"].shape[0])
    except (OSError, KeyError):
        return 1


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


class RunSource(Protocol):
    """Anything runs can be read from."""

    def find(
        self,
        *,
        scan_id: int | None = None,
        uid: str | None = None,
        project: str | None = None,
        every: bool = False,
    ) -> list[str]: ...

    def load(self, uid: str) -> StoredRun: ...


def _check_query(scan_id, uid, project, every=False) -> None:
    if scan_id is None and uid is None and project is None and not every:
        raise ValueError("give a scan id, a uid or a project (or every run)")


def _not_found(scan_id, uid, project, where: str) -> RunNotFoundError:
    what = ", ".join(
        f"{k} {v!r}" for k, v in (("scan id", scan_id), ("uid", uid), ("project", project)) if v is not None
    )
    return RunNotFoundError(f"no stored run with {what} in {where}")


class FolderRunSource:
    """Runs stored as document logs (``*.jsonl``) below a folder (see :class:`DocumentLog`)."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ExchangeError(f"run folder {self.folder} does not exist")
        self._found: dict[str, tuple[dict, Path]] = {}  # the index of the last find (loads reuse it)

    def _index(self) -> dict[str, tuple[dict, Path]]:
        index = {}
        for path in sorted(self.folder.rglob("*.jsonl")):
            if path.name.startswith("."):
                continue
            with open(path, encoding="utf-8") as fh:
                first = fh.readline()
            try:
                name, doc = json.loads(first)
            except ValueError:
                continue
            if name == "start":
                index[doc["uid"]] = (doc, path)
        return index

    def find(self, *, scan_id=None, uid=None, project=None, every=False) -> list[str]:
        """Uids of the stored runs matching all the given criteria, or ``every`` one (oldest first)."""
        _check_query(scan_id, uid, project, every)
        self._found = self._index()
        hits = [
            (start.get("time", 0), run_uid)
            for run_uid, (start, _) in self._found.items()
            if (scan_id is None or start.get("scan_id") == scan_id)
            and (uid is None or run_uid.startswith(uid))
            and (project is None or start.get("project_code") == project)
        ]
        if not hits:
            raise _not_found(scan_id, uid, project, str(self.folder))
        return [u for _, u in sorted(hits)]

    def load(self, uid: str) -> StoredRun:
        """The run with this uid."""
        entry = self._found.get(uid)
        if entry is None or not entry[1].is_file():
            entry = self._index().get(uid)
        if entry is None:
            raise _not_found(None, uid, None, str(self.folder))
        return run_from_documents(read_document_log(entry[1]))


class TiledRunSource:
    """Runs stored in Tiled by bluesky's TiledWriter (see :func:`make_tiled_writer`)."""

    def __init__(self, client_or_url: Any, api_key: str | None = None) -> None:
        if isinstance(client_or_url, str):
            from tiled.client import from_uri

            client_or_url = from_uri(client_or_url, api_key=api_key)
        self.client = client_or_url

    def find(self, *, scan_id=None, uid=None, project=None, every=False) -> list[str]:
        """Uids of the runs in Tiled matching all the given criteria, or ``every`` one (oldest first)."""
        from tiled.queries import Key

        _check_query(scan_id, uid, project, every)
        results = self.client
        if scan_id is not None:
            results = results.search(Key("start.scan_id") == scan_id)
        if project is not None:
            results = results.search(Key("start.project_code") == project)
        hits = [
            (node.metadata["start"].get("time", 0), key)
            for key, node in results.items()
            if uid is None or key.startswith(uid)
        ]
        if not hits:
            raise _not_found(scan_id, uid, project, f"Tiled at {self.client.uri}")
        return [u for _, u in sorted(hits)]

    def load(self, uid: str) -> StoredRun:
        """The run with this uid, its tables read through the tiled client."""
        if uid not in self.client:
            raise _not_found(None, uid, None, f"Tiled at {self.client.uri}")
        node = self.client[uid]
        meta = node.metadata
        streams: dict[str, StreamData] = {}
        frame_files: list[Path] = []
        frame_node = None
        for name in node:
            if name == PROCESSED_KEY:  # the first look's curves beside the run, not a stream
                continue
            stream_node = node[name]
            desc = dict(stream_node.metadata)
            desc["name"] = name
            columns: dict[str, np.ndarray] = {}
            base = getattr(stream_node, "base", stream_node)  # composite streams hide their table
            if "internal" in base:
                table = base["internal"].read()
                for col in table.columns:
                    if not col.startswith("ts_"):
                        columns[col] = table[col].to_numpy()
            streams[name] = StreamData(name, desc, columns)
            if name == "primary" and KEY_IMAGE in base:
                frame_node = base[KEY_IMAGE]
                for source in frame_node.data_sources():
                    for asset in source.assets:
                        frame_files.append(Path(urlparse(asset.data_uri).path))

        def frames() -> Iterator[np.ndarray]:
            if frame_node is None:
                return
            for i in range(frame_node.shape[0]):
                yield frame_node[i]

        return StoredRun(meta["start"], meta.get("stop"), streams, frame_files, _frame_reader=frames)


def select_runs(source: RunSource, *, scan_id=None, uid=None, project=None, every=False) -> list[StoredRun]:
    """Load the runs matching the criteria (or ``every`` run); :class:`RunNotFoundError` when there is
    none."""
    return [source.load(u) for u in source.find(scan_id=scan_id, uid=uid, project=project, every=every)]
