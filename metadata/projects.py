"""The facility's projects and their people, as one file: who may queue for and see which project.

A beamline user sees, queues for and is notified about only the projects they belong to. The file
(YAML, ``project_code → {title, members: [login names], emails: [addresses]}``) is edited by
facility staff (by hand or with ``sibyls project add|members``), read like the plate registry:
cached, re-read when it changes, every entry checked against the rule table
(:data:`sibyls.metadata.rules.PROJECT_RULES`). Its path is the ``projects`` setting
(:class:`sibyls.startup.config.ProfileConfig`; ``sibyls up`` sets it to ``<var>/projects.yaml``).

**Never an open door.** A malformed file raises :class:`ProjectsFileError` from
:meth:`ProjectsFile.projects` (``sibyls status`` shows it), and :meth:`ProjectsFile.projects_of`
then answers "no project" for everyone: every membership check denies until the file is fixed. A
configured file that does not exist also means no project. With no file configured at all (a plain
RE Manager, unit tests), nothing is restricted by project. Staff (their login roles are the HTTP
server's business, not this file's) belong to every project: callers pass ``staff=True``.

Project codes are compared exactly: ``my_project`` is not ``MY_PROJECT``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sibyls.metadata.atomic import atomic_write_text
from sibyls.metadata.record_yaml import load_record_text
from sibyls.metadata.rules import PROJECT_RULES, argument_problems

#: What a person belongs to when everything is theirs (staff, or no projects file configured).
EVERY_PROJECT = None


#: How many people's project lists a ProjectsFile keeps between changes of the file.
MEMBERSHIPS_KEPT = 1024


class ProjectsFileError(ValueError):
    """The projects file cannot be read or breaks a rule; the message names the file and each field."""


@dataclass(frozen=True)
class Project:
    """One project: its code, title, its people's login names and the addresses notices go to."""

    code: str
    title: str = ""
    members: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()

    def as_entry(self) -> dict[str, Any]:
        return {"title": self.title, "members": list(self.members), "emails": list(self.emails)}


@dataclass
class ProjectsFile:
    """The projects file at ``path``; reads are cached until the file changes."""

    path: Path
    _stamp: tuple[int, int] | None = field(default=None, repr=False)
    _projects: dict[str, Project] = field(default_factory=dict, repr=False)
    _error: ProjectsFileError | None = field(default=None, repr=False)
    #: login → the codes of their projects, for the projects as last read (the queue gate asks per item).
    _memberships: dict[str | None, frozenset[str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    def projects(self) -> dict[str, Project]:
        """``project_code → Project`` as in the file now; raises :class:`ProjectsFileError` if malformed."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._projects, self._error, self._memberships = None, {}, None, {}
            return {}
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            self._memberships = {}
            try:
                self._projects, self._error = parse_projects(self.path.read_text(), str(self.path)), None
            except ProjectsFileError as exc:
                self._projects, self._error = {}, exc
            except OSError as exc:
                self._projects, self._error = {}, ProjectsFileError(f"{self.path}: cannot be read ({exc})")
        if self._error is not None:
            raise self._error
        return self._projects

    def problem(self) -> str | None:
        """What is wrong with the file (for ``sibyls status``); None when it is readable and valid."""
        try:
            self.projects()
        except ProjectsFileError as exc:
            return str(exc)
        return None

    def projects_of(self, username: str | None, staff: bool = False) -> frozenset[str] | None:
        """The codes of the projects ``username`` belongs to; ``None`` means every project (staff).

        A malformed file gives staff every project and everyone else none.
        """
        if staff:
            return EVERY_PROJECT
        try:
            projects = self.projects()
        except ProjectsFileError:
            return frozenset()
        known = self._memberships.get(username)
        if known is None:
            known = frozenset(code for code, p in projects.items() if username in p.members)
            if len(self._memberships) >= MEMBERSHIPS_KEPT:  # names a client claims are not bounded
                self._memberships.clear()
            self._memberships[username] = known
        return known

    def is_member(self, username: str | None, project_code: Any, staff: bool = False) -> bool:
        """True if ``username`` may queue for and see ``project_code`` (exact code, staff always)."""
        allowed = self.projects_of(username, staff)
        return allowed is EVERY_PROJECT or (isinstance(project_code, str) and project_code in allowed)

    def add(self, project: Project) -> None:
        """Add or replace one project, checked against the rules first, written atomically."""
        problems = project_problems(project.code, project.as_entry())
        if problems:
            raise ProjectsFileError("; ".join(problems))
        projects = {**self.projects(), project.code: project}
        self.write(projects)

    def set_members(self, code: str, add: list[str] = (), remove: list[str] = ()) -> Project:
        """Add and remove login names of project ``code``; the project as written."""
        projects = self.projects()
        if code not in projects:
            raise ProjectsFileError(f"project_code: no project {code!r} in {self.path}")
        old = projects[code]
        members = [m for m in old.members if m not in remove] + [m for m in add if m not in old.members]
        new = Project(code, old.title, tuple(members), old.emails)
        self.add(new)
        return new

    def write(self, projects: dict[str, Project]) -> None:
        """The whole file, atomically (a reader sees the old file or the new one)."""
        text = yaml.safe_dump({code: p.as_entry() for code, p in sorted(projects.items())}, sort_keys=False)
        atomic_write_text(self.path, HEADER + text)


HEADER = (
    "# The facility's projects: project_code -> title, members (login names), emails (notices).\n"
    "# Staff belong to every project. Edit by hand or with 'sibyls project add|members'.\n"
)


def project_problems(code: Any, entry: Any) -> list[str]:
    """Every rule project ``code``'s entry breaks, each named ``<code>.<field>``."""
    if not isinstance(entry, dict):
        return [f"{code}: must be a mapping with title, members, emails"]
    problems = argument_problems({"project_code": code}, table=PROJECT_RULES)
    unknown = sorted(set(entry) - {"title", "members", "emails"})
    problems += [f"{code}.{key}: not a project field (title, members, emails)" for key in map(str, unknown)]
    values = {
        "title": entry.get("title") or None,
        "members": entry.get("members"),
        "emails": entry.get("emails"),
    }
    problems += [f"{code}.{p}" for p in argument_problems(values, table=PROJECT_RULES)]
    return problems


def parse_projects(text: str, where: str = "projects file") -> dict[str, Project]:
    """The projects in ``text`` (YAML); :class:`ProjectsFileError` listing every problem otherwise."""
    try:
        loaded = load_record_text(text) or {}
    except yaml.YAMLError as exc:
        raise ProjectsFileError(f"{where}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(loaded, dict):
        raise ProjectsFileError(f"{where}: must map project codes to {{title, members, emails}}")
    problems = [p for code, entry in loaded.items() for p in project_problems(code, entry)]
    if problems:
        raise ProjectsFileError(f"{where}: " + "; ".join(problems))
    return {
        code: Project(
            code,
            entry.get("title") or "",
            tuple(entry.get("members") or ()),
            tuple(entry.get("emails") or ()),
        )
        for code, entry in loaded.items()
    }


_files: dict[str, ProjectsFile] = {}


def configured_projects(path: Path | str | None) -> ProjectsFile | None:
    """The projects file at ``path``, one reader per path (None when no file is configured: nothing
    is restricted by project)."""
    if not path:
        return None
    path = str(path)
    found = _files.get(path)
    if found is None:
        found = _files[path] = ProjectsFile(Path(path))
    return found
