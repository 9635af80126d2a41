"""A project's results as one archive: what a group takes home from the page's "Download results".

``GET /api/sibyls/projects/{code}/results.zip`` (:mod:`sibyls.startup.http.extensions`) sends, for one
project the person belongs to (staff: any project):

* ``<code>/records/``: every run's lambda-ber record (YAML) as it is when the download starts;
* ``<code>/processed/``: the first look's products of every run (per-frame and averaged, subtracted
  I(q) curves ``.dat``, the first-look JSON, the plots) and the project's and plates' summaries
  (HTML, CSV);
* ``<code>/exports/csv/``: each run's readings as CSV (``sibyls export csv``), made from the runs'
  document logs for this download;
* ``<code>/MANIFEST.txt``: what is in the archive and each run that could not be exported, and why.

Frame files (the raw detector images) are left out: they are the large part, one run's zip
(``/api/sibyls/runs/{uid}/files.zip``) has them. NXcanSAS needs the frames reduced again, so it stays
the run view's per-run export. The archive is stored (not compressed: curves and plots gain little)
and its length is known before it is sent (:func:`sibyls.startup.http.zipstream.sized_zip`), so the
browser shows a true progress bar.

A project the person does not belong to, one that does not exist and a code in the wrong case
(``lab_b`` for ``LAB_B``) all answer the same 404: the archive lists nothing the person may not see.
Only files under the project's own records and processed folders are read (judged on the resolved
path: a symlink pointing elsewhere is left out).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from sibyls.startup.http.membership import Person
from sibyls.startup.http.zipstream import SizedEntry

#: The one answer to a project that is not the person's, unknown, or misspelt (no code in it).
NOT_FOUND = "no such project among yours"
#: Formats exported for every run of the project into the archive (see the module docstring).
ARCHIVE_EXPORTS = ("csv",)


def _config():
    from sibyls.startup.config import ProfileConfig

    return ProfileConfig()


def known_project(code: str, person: Person) -> bool:
    """True if ``person`` may download project ``code`` (exact code; staff: any project that exists)."""
    from sibyls.metadata.projects import ProjectsFileError, configured_projects

    allowed = person.projects()
    if allowed is not None:
        return code in allowed
    config = _config()
    names: set[str] = set()
    found = configured_projects(config.projects)
    if found is not None:
        try:
            names |= set(found.projects())
        except ProjectsFileError:
            pass
    for root in (config.records_dir, config.processed_dir):
        if root.is_dir():
            names |= {
                entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith(".")
            }
    return code in names


def _files_under(folder: Path) -> list[Path]:
    """Every regular file below ``folder`` whose real place is below it too, in name order."""
    if not folder.is_dir():
        return []
    real = folder.resolve()
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith(".") or name.endswith(".tmp"):
                continue
            resolved = path.resolve()
            if resolved.is_relative_to(real) and resolved.is_file():
                found.append(path)
    return found


def project_entries(code: str, exports_dir: Path) -> list[SizedEntry]:
    """The archive's files for project ``code`` (membership already checked); exports are written
    into ``exports_dir`` (the caller removes it after sending)."""
    config = _config()
    entries: list[SizedEntry] = []
    records = config.records_dir / code
    for path in _files_under(records):
        if path.suffix == ".yaml" and path.parent == records:
            entries.append(SizedEntry.of_bytes(f"{code}/records/{path.name}", path.read_bytes()))
    processed = config.processed_dir / code
    for path in _files_under(processed):
        name = f"{code}/processed/{path.relative_to(processed).as_posix()}"
        if path.parent == processed:  # summaries: rewritten after every run, taken as they are now
            entries.append(SizedEntry.of_bytes(name, path.read_bytes()))
        else:
            entries.append(SizedEntry.of_file(name, path))
    exported, notes = _csv_exports(config.var_dir / "runs" / code, exports_dir)
    entries += [SizedEntry.of_file(f"{code}/exports/csv/{path.name}", path) for path in exported]
    record_count = sum(1 for e in entries if "/records/" in e.name)
    manifest = [
        f"SIBYLS project {code}: results",
        f"records: {record_count} (records/, lambda-ber YAML)",
        f"processed files: {sum(1 for e in entries if '/processed/' in e.name)} "
        "(processed/: I(q) curves .dat, first-look JSON, plots, summaries)",
        f"csv exports: {sum(1 for e in entries if '/exports/' in e.name)} files (exports/csv/)",
        "frame files are not included: each run's own zip on the page has them",
        *(f"not exported: {note}" for note in notes),
    ]
    entries.insert(0, SizedEntry.of_bytes(f"{code}/MANIFEST.txt", ("\n".join(manifest) + "\n").encode()))
    return entries


def _csv_exports(runs: Path, out: Path) -> tuple[list[Path], list[str]]:
    """Each stored run of the project folder ``runs`` exported as CSV into ``out`` (each log read
    once); the files, and per run that could not be exported, why."""
    from sibyls.metadata.runs.doclog import read_document_log
    from sibyls.metadata.runs.sources import run_from_documents
    from sibyls.saxs.exports.formats import export_run

    written: list[Path] = []
    notes: list[str] = []
    for log in _files_under(runs):
        if log.suffix != ".jsonl" or log.parent != runs:
            continue
        try:
            run = run_from_documents(read_document_log(log))
            for fmt in ARCHIVE_EXPORTS:
                written += export_run(run, fmt, out)
        except Exception as exc:  # one unreadable run must not lose the others' exports
            notes.append(f"{log.stem}: {type(exc).__name__}: {exc}".replace(str(runs), "<runs>"))
    return sorted(written), notes


def new_exports_dir() -> Path:
    """A private temporary folder for one download's exports."""
    return Path(tempfile.mkdtemp(prefix="sibyls-project-archive-"))


def remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
