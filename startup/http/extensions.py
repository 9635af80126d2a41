"""bluesky-httpserver extensions: the SIBYLS page, its pushed updates, dry runs, plate sheets, results.

Loaded by ``sibyls up`` through ``QSERVER_HTTP_CUSTOM_ROUTERS=sibyls.startup.http.extensions.router``
and ``QSERVER_CUSTOM_MODULES=sibyls.startup.http.extensions`` (``spreadsheet_to_plan_list`` for
``POST /api/queue/upload/spreadsheet``). Endpoints (each needs a login with the scope named):

==========================================  ==================================================
``GET /sibyls/``                            the page (static, same origin; no login to load it)
``POST /api/sibyls/validate``               dry-run an item with the plans' checks (read:queue)
``POST /api/sibyls/validate/sheet``         dry-run a plate sheet: every well's verdict (read:queue)
``GET /api/sibyls/progress``                frame i/N, well i/N, ETA, queue ETA (read:status)
``POST /api/sibyls/events/ticket``          a single-use ticket for the event stream (read:status)
``GET /api/sibyls/events?ticket=``          Server-Sent Events: status, queue, history, progress,
                                            beamline, console (see :mod:`sibyls.startup.http.events`)
``GET /api/sibyls/runs``                    the person's projects' runs, newest first (read:history)
``GET /api/sibyls/projects``                the person's projects (the page's picker; read:history)
``GET /api/sibyls/runs/{uid}``              a run's record, its files and results (read:history)
``GET /api/sibyls/runs/{uid}/export/{fmt}`` the run as NXcanSAS or CSV (several files: one zip)
                                            (read:history)
``GET /api/sibyls/runs/{uid}/files.zip``     everything of the run in one zip: record, frames,
                                            processed files, plots (read:history)
``GET /api/sibyls/files?path=``             a frame, processed or record file (read:history)
``GET /api/sibyls/projects/{code}/``        a project's records, processed curves, summaries and
``results.zip``                             CSV exports in one zip, its length known up front
                                            (read:history; :mod:`.project_archive`)
==========================================  ==================================================

Dry runs and sheets run the plans' own checks before anything reaches the queue. Every endpoint that
shows a run, file, result or progress shows only the person's projects' data (staff: all); a run or
file of another project answers exactly like one that does not exist (404, same words): see
:mod:`sibyls.startup.http.membership`.

Over 450 lines: the page's endpoints belong together (one router, one set of scopes); the run
view's reading of a record is the part that grows and may move to its own module.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import re
import time
from importlib import resources
from pathlib import Path
from typing import Any

from bluesky_httpserver.authentication import get_current_principal
from bluesky_httpserver.settings import get_settings
from fastapi import APIRouter, Depends, HTTPException, Request, Security, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, RootModel
from starlette.background import BackgroundTask

from sibyls.plans.plate_sheet import (
    SHEET_DATA_TYPE,
    SheetReport,
    read_sheet_rows,
    sheet_report,
    sheet_to_plate_item,
)
from sibyls.plans.validation import validate_queue_item
from sibyls.saxs.analysis.flags import flag_words
from sibyls.startup.http.membership import Person, person_of, progress_for, project_of_path
from sibyls.startup.http.zipstream import zip_chunks

logger = logging.getLogger(__name__)

#: The ``/api/sibyls`` endpoints; ``router`` (at the end of this module) also serves the page.
api = APIRouter(prefix="/api/sibyls")


class QueueItemRequest(RootModel[dict[str, Any]]):
    """Body of ``POST /api/sibyls/validate``: a queue item as the queue takes it.

    ``{"name": ..., "args": [...], "kwargs": {...}, "meta": {...}, "item_type": "plan"}`` — any JSON
    object: its structure is judged by the plans' checks, so a malformed item gets the same named
    problems here as when it is added to the queue.
    """


class ValidationReport(BaseModel):
    """The verdict on an item: valid, or each problem as ``"argument: rule"``."""

    success: bool
    problems: list[str]


@api.post("/validate", response_model=ValidationReport)
async def validate_item(
    item: QueueItemRequest, principal=Security(get_current_principal, scopes=["read:queue"])
) -> ValidationReport:
    """Dry-run a queue item with the plan's own checks and the project rule; nothing is queued."""
    from sibyls.plans.validation import membership_problem

    report = validate_queue_item(item.root)
    person = person_of(principal)
    projects = None if person.staff else _projects_file()
    if problem := membership_problem(item.root, person.username, projects):
        report = {"success": False, "problems": [*report["problems"], problem]}
    return ValidationReport.model_validate(report)


def spreadsheet_to_plan_list(
    *, spreadsheet_file, file_name: str, data_type: str | None = None, user: str | None = None, **kwargs
) -> list[dict] | None:
    """httpserver hook: an HT plate sheet (CSV/XLSX) → exactly one ``ht_plate`` item, all or nothing.

    Sheets uploaded with another ``data_type`` are left to the default processing (returns None).
    """
    if data_type not in (None, "", SHEET_DATA_TYPE):
        return None
    return [sheet_to_plate_item(read_sheet_rows(spreadsheet_file, file_name), user)]


# ---- the page's endpoints -----------------------------------------------------------------------


@api.post("/validate/sheet", response_model=SheetReport)
async def validate_sheet(
    spreadsheet: UploadFile, principal=Security(get_current_principal, scopes=["read:queue"])
) -> SheetReport:
    """Dry-run a plate sheet (CSV/XLSX): the 96-well map's verdict per well; nothing is queued."""
    content = io.BytesIO(await spreadsheet.read())
    return await run_in_threadpool(sheet_report, content, spreadsheet.filename or "")


class ProgressReport(BaseModel, extra="allow"):
    """Where the running item is: frame i/N, well i/N, seconds left for the item and the queue."""

    state: str
    item_remaining_s: float | None = None
    item_fraction: float | None = None
    queue_remaining_s: float | None = None
    items_queued: int = 0


@api.get("/progress", response_model=ProgressReport)
async def progress(principal=Security(get_current_principal, scopes=["read:status"])) -> ProgressReport:
    """The running plan's progress (published by the RE worker into Redis) and the queue's ETA."""
    from sibyls.startup.http.events import HUB

    return ProgressReport.model_validate(progress_for(await HUB.current_progress(), person_of(principal)))


class StreamTicket(BaseModel):
    """A single-use ticket for ``GET /api/sibyls/events?ticket=...``, valid ``expires_in`` seconds."""

    ticket: str
    expires_in: float


@api.post("/events/ticket", response_model=StreamTicket)
async def events_ticket(
    principal=Security(get_current_principal, scopes=["read:status"]),
    settings=Depends(get_settings),
) -> StreamTicket:
    """A ticket to open the event stream with (a browser's EventSource cannot send the token)."""
    from sibyls.startup.http.events import TICKETS

    username = principal.identities[0].id if principal.identities else "?"
    lifetime = settings.access_token_max_age.total_seconds()
    ticket = TICKETS.issue(
        username, principal.scopes or [], stream_s=lifetime, staff=person_of(principal).staff
    )
    return StreamTicket(ticket=ticket, expires_in=TICKETS.ttl_s)


#: Events each scope may see (status and progress need only ``read:status``).
_EVENT_SCOPES = {"queue": "read:queue", "history": "read:history", "console": "read:console"}


@api.get("/events")
async def events(request: Request, ticket: str = "") -> StreamingResponse:
    """Server-Sent Events for the page: status, queue, history, progress, beamline, console lines."""
    from sibyls.startup.http.events import HUB, TICKETS
    from sibyls.startup.http.membership import event_for

    holder = TICKETS.redeem(ticket)
    if holder is None:
        raise HTTPException(status_code=401, detail="Invalid or expired event-stream ticket")
    queue = await HUB.subscribe()

    async def stream():
        try:
            yield "retry: 2000\n\n"
            while time.time() < holder.stream_until:
                try:
                    kind, data = await asyncio.wait_for(queue.get(), timeout=15)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keep-alive\n\n"
                    continue
                needed = _EVENT_SCOPES.get(kind)
                if needed and needed not in holder.scopes:
                    continue
                data = event_for(kind, data, Person(holder.username, holder.staff))
                if data is None:
                    continue
                yield f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n"
            yield 'event: expired\ndata: {"reason": "the login behind this stream expired"}\n\n'
        finally:
            HUB.unsubscribe(queue)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


# ---- records, files and results of past runs ----------------------------------------------------

_UID = re.compile(r"^[0-9a-fA-F-]{8,36}$")
#: Run exports the page offers (the formats of ``sibyls export`` a SAXS user takes home).
PAGE_EXPORTS = ("nxcansas", "csv")


def _settings():
    from sibyls.startup.config import ProfileConfig

    return ProfileConfig()


def _projects_file():
    from sibyls.metadata.projects import configured_projects

    path = _settings().projects
    return configured_projects(path)


def find_record(uid: str, person: Person | None = None) -> Path | None:
    """The lambda-ber record of run ``uid`` (``<records>/<project>/<scan>_<sample>_<uid8>.yaml``),
    looked for only in ``person``'s projects (all for staff, or without a person)."""
    if not _UID.match(uid):
        return None
    records = _settings().records_dir
    allowed = None if person is None else person.projects()
    folders = "*" if allowed is None else [p for p in sorted(allowed) if (records / p).is_dir()]
    for folder in [folders] if isinstance(folders, str) else folders:
        for path in sorted(records.glob(f"{folder}/*_{uid[:8]}.yaml")):
            if uid in path.read_text(errors="replace"):
                return path
    return None


def _walk(node: Any, found: dict[str, list]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "quality_metrics" and isinstance(value, dict | list):
                found["quality_metrics"].append(value)
            elif key == "file_path" and isinstance(value, str):
                found["files"].append(node)
            elif key == "images" and isinstance(value, list):
                found["images"] += [v for v in value if isinstance(v, dict)]
            _walk(value, found)
    elif isinstance(node, list):
        for value in node:
            _walk(value, found)


def _readable_roots() -> list[Path]:
    """The folders the page may read from: frames, records and the first look's products."""
    settings = _settings()
    roots = [settings.data_dir, settings.records_dir, getattr(settings, "processed_dir", None)]
    return [root.resolve() for root in roots if root is not None]


def readable_file(path: str, person: Person | None = None) -> Path | None:
    """``path`` if it is a file under the data, records or processed folder (never the stack's
    secrets) in one of ``person``'s projects, judged where it really is (``..`` and symlinks resolved)."""
    try:
        resolved = Path(path).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # ValueError: a NUL in the path
        return None
    roots = _readable_roots()
    if not resolved.is_file() or not any(resolved.is_relative_to(root) for root in roots):
        return None
    if person is not None and not person.may_see(project_of_path(resolved, roots)):
        return None
    return resolved


class RunFile(BaseModel):
    """A file of a run the page links to (``GET /api/sibyls/files?path=...``)."""

    name: str
    path: str
    kind: str
    size_bytes: int | None = None


class RunResults(BaseModel):
    """What the results layer wrote into a run's record: metrics (Rg, I(0), MW, flags) and plots."""

    quality_metrics: list[Any]
    images: list[RunFile]


class RunDetails(BaseModel):
    """A run's record (YAML), its frame and processed files, its exports and its results if any.

    ``experiment_run`` is the record's run entry as written (processing status and its reason,
    ``quality_metrics``, ``saxs_results``, sample role, buffer, plate and well; the Bluesky streams
    left out): the page reads whichever numbers it holds. ``first_look_note`` is what the first
    look's workflow entry says (why it failed, why the run has none, or its notes). ``summaries``
    are the plate's and the project's first-look summary pages, for a plate run. ``plan_type`` is the
    workflow the run's study names (``sec_saxs`` subtracts its own buffer frames, for instance).
    ``flag_words`` says in words what each of the run's first-look flags means.
    """

    uid: str
    record_name: str
    record_path: str
    record_text: str
    files: list[RunFile]
    exports: list[str]
    results: RunResults | None
    experiment_run: dict[str, Any] = {}
    first_look_note: str | None = None
    summaries: list[RunFile] = []
    plan_type: str | None = None
    flag_words: dict[str, str] = {}


_PATH_IN_TEXT = re.compile(r"(/[^\s;()]+)")


def _run_file(entry: dict, kind: str, person: Person | None = None) -> RunFile | None:
    """The readable file a record entry names: its ``file_path``, or a path its description quotes."""
    raw = entry.get("file_path") or entry.get("path") or entry.get("uri") or ""
    if not raw and entry.get("file_name"):
        quoted = [
            m
            for m in _PATH_IN_TEXT.findall(str(entry.get("description", "")))
            if m.endswith(entry["file_name"])
        ]
        raw = quoted[0] if quoted else ""
    path = readable_file(str(raw).removeprefix("file://"), person)
    if path is None:
        return None
    return RunFile(name=path.name, path=str(path), kind=kind, size_bytes=path.stat().st_size)


def _plan_type(record: Any) -> str | None:
    """The workflow the record's (first) study names, e.g. ``sec_saxs``; None if it names none."""
    studies = record.get("studies") if isinstance(record, dict) else None
    if not studies or not isinstance(studies[0], dict):
        return None
    return studies[0].get("plan_type") or None


def _experiment_run(record: Any) -> dict[str, Any]:
    """The record's (first) run entry without its Bluesky streams; {} if the record has none."""
    runs = record.get("experiment_runs") if isinstance(record, dict) else None
    if not runs or not isinstance(runs[0], dict):
        return {}
    return {key: value for key, value in runs[0].items() if key != "bluesky_streams"}


#: Id prefix of the first look's ``workflow_runs`` entry in a record (``urn:sibyls:first-look:<uid>``).
FIRST_LOOK_ID = "urn:sibyls:first-look:"


def _first_look_note(record: Any) -> str | None:
    """The description of the record's first-look workflow entry: a failure's reason, or its notes."""
    entries = record.get("workflow_runs") if isinstance(record, dict) else None
    for entry in entries or []:
        if isinstance(entry, dict) and str(entry.get("id", "")).startswith(FIRST_LOOK_ID):
            return entry.get("description") or None
    return None


def _summaries(record_path: Path, run: dict[str, Any], person: Person | None = None) -> list[RunFile]:
    """A plate run's first-look summaries: the plate's page and the project's, where they exist."""
    plate = run.get("plate_id")
    if not plate:
        return []
    folder = _settings().processed_dir / record_path.parent.name
    found = []
    for name in (f"plate_{plate}_summary.html", "summary.html"):
        path = readable_file(str(folder / name), person)
        if path is not None:
            found.append(RunFile(name=name, path=str(path), kind="summary", size_bytes=path.stat().st_size))
    return found


def run_details(uid: str, person: Person | None = None) -> RunDetails | None:
    """A run's record and everything the page links from it; None if it has no record (yet) or the
    record is not in one of ``person``'s projects."""
    import yaml

    path = find_record(uid, person)
    if path is None:
        return None
    text = path.read_text()
    found: dict[str, list] = {"quality_metrics": [], "files": [], "images": []}
    record: Any = None
    with contextlib.suppress(yaml.YAMLError):
        record = yaml.safe_load(text)
        _walk(record, found)
    experiment_run = _experiment_run(record)
    images = [f for entry in found["images"] if (f := _run_file(entry, "image", person))]
    image_paths = {f.path for f in images}
    files = []
    for entry in found["files"]:
        file = _run_file(
            entry, "frames" if str(entry.get("file_format", "")).lower() == "hdf5" else "processed", person
        )
        if file and file.path not in image_paths and file.path not in {f.path for f in files}:
            files.append(file)
    metrics = [m for m in found["quality_metrics"] if m]
    results = RunResults(quality_metrics=metrics, images=images) if metrics or images else None
    return RunDetails(
        uid=uid,
        record_name=path.name,
        record_path=str(path),
        record_text=text,
        files=files,
        exports=list(PAGE_EXPORTS),
        results=results,
        experiment_run=experiment_run,
        first_look_note=_first_look_note(record),
        plan_type=_plan_type(record),
        summaries=_summaries(path, experiment_run, person),
        flag_words=flag_words(_run_flags(experiment_run)),
    )


def _run_flags(experiment_run: dict[str, Any]) -> list[str]:
    flags = (experiment_run.get("saxs_results") or {}).get("flags")
    return [str(flag) for flag in flags] if isinstance(flags, list) else []


class RunEntry(BaseModel):
    """One run in a listing: its project, record file name, scan id, sample and uid prefix."""

    project_code: str
    record_name: str
    uid8: str
    modified: float


def list_runs(person: Person | None = None, project: str | None = None) -> list[RunEntry]:
    """Runs with a record in ``person``'s projects (optionally one of them), newest first; only
    the person's project folders are read."""
    records = _settings().records_dir
    allowed = None if person is None else person.projects()
    if allowed is None:
        folders = sorted(p.name for p in records.iterdir() if p.is_dir()) if records.is_dir() else []
    else:
        folders = sorted(allowed)
    if project is not None:
        folders = [f for f in folders if f == project]
    entries = []
    for folder in folders:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for entry in os.scandir(records / folder):
                if entry.name.endswith(".yaml") and entry.is_file():
                    uid8 = entry.name[:-5].rsplit("_", 1)[-1]
                    entries.append(RunEntry(project_code=folder, record_name=entry.name, uid8=uid8,
                                            modified=entry.stat().st_mtime))  # fmt: skip
    entries.sort(key=lambda e: e.modified, reverse=True)
    return entries


@api.get("/runs", response_model=list[RunEntry])
def runs_list(
    project: str | None = None, principal=Security(get_current_principal, scopes=["read:history"])
) -> list[RunEntry]:
    """The runs of the person's projects (or of ``project``, if it is one of theirs), newest first."""
    return list_runs(person_of(principal), project)


class ProjectsReport(BaseModel):
    """The projects a person sees: their codes and titles; ``staff`` sees every project."""

    username: str | None
    staff: bool
    projects: dict[str, str]


@api.get("/projects", response_model=ProjectsReport)
def my_projects(principal=Security(get_current_principal, scopes=["read:history"])) -> ProjectsReport:
    """The person's projects for the page's picker (staff: every project in the file)."""
    person = person_of(principal)
    found = _projects_file()
    known = {}
    with contextlib.suppress(ValueError):
        known = {code: p.title for code, p in (found.projects() if found else {}).items()}
    allowed = person.projects()
    shown = known if allowed is None else {code: known.get(code, "") for code in sorted(allowed)}
    return ProjectsReport(username=person.username, staff=person.staff, projects=shown)


@api.get("/runs/{uid}", response_model=RunDetails)
def run_record(uid: str, principal=Security(get_current_principal, scopes=["read:history"])) -> RunDetails:
    """A run's lambda-ber record, links to its files and exports, and its first-look results."""
    details = run_details(uid, person_of(principal))
    if details is None:
        raise HTTPException(status_code=404, detail=f"no record of run {uid!r} (yet)")
    return details


@api.get("/runs/{uid}/export/{fmt}")
def run_export(
    uid: str, fmt: str, principal=Security(get_current_principal, scopes=["read:history"])
) -> Response:
    """The run exported as NXcanSAS or CSV (``sibyls export``), made now from its document log: the
    file as it is, or, where the format makes several (CSV: one per stream, the measurement and the
    baseline), all of them in one zip named after the run's record (``<record>_csv.zip``)."""
    import shutil
    import tempfile

    from sibyls.metadata.errors import ExchangeError
    from sibyls.metadata.runs.sources import FolderRunSource
    from sibyls.saxs.exports.formats import export

    if fmt not in PAGE_EXPORTS:
        raise HTTPException(
            status_code=404, detail=f"no export format {fmt!r}; the page offers {PAGE_EXPORTS}"
        )
    if not _UID.match(uid) or find_record(uid, person_of(principal)) is None:
        raise HTTPException(status_code=404, detail=f"no run {uid!r}")
    out = Path(tempfile.mkdtemp(prefix="sibyls-export-"))
    try:
        paths = export(FolderRunSource(_settings().var_dir / "runs"), fmt, out, uid=uid)
    except (ExchangeError, ValueError) as exc:  # the run cannot be exported: say why
        shutil.rmtree(out, ignore_errors=True)
        raise HTTPException(status_code=422, detail=f"{fmt} export of run {uid[:8]}: {exc}") from None
    except Exception as exc:  # never a bare 500: the reason goes to the page, the traceback to the log
        shutil.rmtree(out, ignore_errors=True)
        logger.exception("%s export of run %s failed", fmt, uid)
        raise HTTPException(
            status_code=500, detail=f"{fmt} export of run {uid[:8]} failed: {type(exc).__name__}: {exc}"
        ) from None
    if not paths:
        shutil.rmtree(out, ignore_errors=True)
        raise HTTPException(status_code=422, detail=f"{fmt} export of run {uid[:8]}: nothing to export")
    cleanup = BackgroundTask(shutil.rmtree, out, ignore_errors=True)
    if len(paths) == 1:
        return FileResponse(paths[0], filename=paths[0].name, background=cleanup)
    record = find_record(uid)
    name = f"{record.stem if record else uid[:8]}_{fmt}.zip"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    entries = [(path.name, path) for path in paths]
    return StreamingResponse(
        zip_chunks(entries), media_type="application/zip", headers=headers, background=cleanup
    )


def _archive_entries(details: RunDetails) -> list[tuple[str, Path]]:
    """The run's own files in its zip: the record, frames, processed files and plots, one name each."""
    folders = {"frames": "frames", "processed": "processed", "image": "plots"}
    entries = [(details.record_name, Path(details.record_path))]
    seen = {details.record_path}
    for file in [*details.files, *(details.results.images if details.results else [])]:
        if file.path in seen:
            continue
        seen.add(file.path)
        entries.append((f"{folders.get(file.kind, 'other')}/{file.name}", Path(file.path)))
    return entries


@api.get("/runs/{uid}/files.zip")
def run_archive(
    uid: str, principal=Security(get_current_principal, scopes=["read:history"])
) -> StreamingResponse:
    """Everything of one run in one zip, sent while it is written: record, frames, processed files, plots.

    Only the files the run's record names (and that lie under the data, records or processed
    folders) are included; nothing else is ever read.
    """
    details = run_details(uid, person_of(principal))  # not yours: the same 404 as no run at all
    if details is None:
        raise HTTPException(status_code=404, detail=f"no record of run {uid!r} (yet)")
    stem = Path(details.record_name).stem
    entries = [(f"{stem}/{name}", path) for name, path in _archive_entries(details)]
    headers = {"Content-Disposition": f'attachment; filename="{stem}.zip"', "Cache-Control": "no-store"}
    return StreamingResponse(zip_chunks(entries), media_type="application/zip", headers=headers)


@api.get("/projects/{code:path}/results.zip")  # a code with "/" in it: the same 404
def project_results(
    code: str, principal=Security(get_current_principal, scopes=["read:history"])
) -> StreamingResponse:
    """A project's results in one zip (records, processed curves, summaries, CSV exports), with its
    Content-Length so the browser shows progress; another project's answers like a missing one."""
    from sibyls.startup.http import project_archive
    from sibyls.startup.http.zipstream import sized_zip

    if not project_archive.known_project(code, person_of(principal)):
        raise HTTPException(status_code=404, detail=project_archive.NOT_FOUND)
    exports = project_archive.new_exports_dir()
    try:
        length, chunks = sized_zip(project_archive.project_entries(code, exports))
    except BaseException:
        project_archive.remove(exports)
        raise
    headers = {
        "Content-Disposition": f'attachment; filename="{code}_results.zip"',
        "Content-Length": str(length),
        "Cache-Control": "no-store",
    }
    return StreamingResponse(
        chunks,
        media_type="application/zip",
        headers=headers,
        background=BackgroundTask(project_archive.remove, exports),
    )


@api.get("/files")
def run_file(path: str, principal=Security(get_current_principal, scopes=["read:history"])) -> FileResponse:
    """A frame file, processed file, plot or record under the data or records folder."""
    found = readable_file(path, person_of(principal))
    if found is None:
        raise HTTPException(status_code=404, detail="no such file among the runs' files")
    return FileResponse(found, filename=found.name)


# ---- the page ----------------------------------------------------------------------------------

page = APIRouter(prefix="/sibyls")
#: The page's files (startup/http/web) and their media types; nothing else is served.
PAGE_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
#: The page runs only its own script and talks only to this server.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@page.get("/", include_in_schema=False)
@page.get("/{name}", include_in_schema=False)
async def page_file(name: str = "index.html") -> Response:
    """The SIBYLS page: log in, queue samples and plates, watch progress, read results."""
    if name not in PAGE_FILES:
        raise HTTPException(status_code=404)
    content = (resources.files("sibyls.startup.http") / "web" / name).read_bytes()
    return Response(content, media_type=PAGE_FILES[name], headers=PAGE_HEADERS)


@page.get("", include_in_schema=False)
async def page_root() -> RedirectResponse:
    return RedirectResponse("/sibyls/")


#: The router ``QSERVER_HTTP_CUSTOM_ROUTERS`` names: the API and the page.
router = APIRouter()
router.include_router(api)
router.include_router(page)
