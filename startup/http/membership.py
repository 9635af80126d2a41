"""Whose data is it: what a logged-in person may see of runs, files, queue, history and progress.

A beamline user sees only their projects' data (the projects file, :mod:`sibyls.metadata.projects`);
staff (httpserver roles ``admin``/``expert``) see everything. The rules, applied by the custom router
(:mod:`sibyls.startup.http.extensions`) and the server's middleware (:mod:`sibyls.startup.http.server`):

* **runs, records, files, exports**: only under the person's projects' folders
  (``<records|data|processed>/<project_code>/...``, judged on the resolved path, so ``..``, symlinks
  and absolute paths land where they really point). A run or file that is not theirs answers exactly
  like one that does not exist: 404 with the same words.
* **history** (``/api/history/get``, the events stream's ``history``): others' items do not appear
  at all (an item counts as the person's when its ``project_code`` is one of their projects now);
  the stream sends the latest :data:`HISTORY_SHOWN` of the person's own items.
* **queue** (``/api/queue/get``, ``/api/queue/item/get``, the stream's ``queue``): others' items keep
  their place, plan name and item uid (the queue's order and time left stay true) and lose their
  arguments, submitter and metadata.
* **progress** (``/api/sibyls/progress``, the stream's ``progress``): another project's running item
  shows its plan name and progress only (no sample, project, submitter, scan or well id).
* **console** (the stream's ``console``): staff only; the manager's console prints every item.

A person removed from a project keeps their queued items (they run), but from the next request on
sees none of that project's data, old or new.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sibyls.metadata.projects import EVERY_PROJECT, ProjectsFile, configured_projects

#: Progress fields anyone may see of a running item that is not theirs.
PUBLIC_PROGRESS = frozenset(
    {
        "state",
        "plan_name",
        "plan_type",
        "frame",
        "frames",
        "well",
        "elapsed_s",
        "run_remaining_s",
        "item_remaining_s",
        "item_fraction",
        "queue_remaining_s",
        "items_queued",
        "pace",
        "published_at",
    }
)
#: History items the page's stream sends a person: the latest of their projects' (staff: of all).
HISTORY_SHOWN = 50
#: Queue item fields anyone may see of an item that is not theirs.
PUBLIC_ITEM = ("item_uid", "item_type", "name")


@dataclass(frozen=True)
class Person:
    """Who is asking: login name and whether they are staff (every project)."""

    username: str | None
    staff: bool = False

    def projects(self) -> frozenset[str] | None:
        """The projects whose data this person may see; None means every project."""
        found = _projects_file()
        if found is None:  # no projects file configured: nothing is restricted by project
            return EVERY_PROJECT
        return found.projects_of(self.username, staff=self.staff)

    def may_see(self, project_code: Any) -> bool:
        return visible(project_code, self.projects())


def visible(project_code: Any, allowed: frozenset[str] | None) -> bool:
    """True if ``project_code`` is among ``allowed`` (None: every project)."""
    return allowed is EVERY_PROJECT or (isinstance(project_code, str) and project_code in allowed)


def person_of(principal: Any) -> Person:
    """The person behind an httpserver principal (login token or API key)."""
    from sibyls.startup.stack.security import is_staff

    identities = getattr(principal, "identities", None) or []
    username = identities[0].id if identities else None
    return Person(username, is_staff(getattr(principal, "roles", None)))


def _projects_file() -> ProjectsFile | None:
    from sibyls.startup.config import ProfileConfig

    path = ProfileConfig().projects
    return configured_projects(path)


def project_of_path(path: Path, roots: list[Path]) -> str | None:
    """The project a resolved file lies under: the first folder below the data, records or processed
    root (``<root>/<project_code>/...``); None if it lies under none of them."""
    for root in roots:
        if path.is_relative_to(root):
            parts = path.relative_to(root).parts
            return parts[0] if len(parts) > 1 else None
    return None


def item_project(item: Any) -> Any:
    """A queue or history item's ``project_code`` (keyword or positional)."""
    from sibyls.plans.validation import item_project_code

    if not isinstance(item, dict):
        return None
    try:
        return item_project_code(item)
    except Exception:  # a plan this process cannot describe: nobody's project but staff's
        return None


def is_own_item(item: Any, allowed: frozenset[str] | None) -> bool:
    return allowed is EVERY_PROJECT or visible(item_project(item), allowed)


def public_item(item: dict[str, Any]) -> dict[str, Any]:
    return {key: item[key] for key in PUBLIC_ITEM if key in item}


def history_for(reply: Any, person: Person) -> Any:
    """A history reply (``{"items": [...]}``) with only the person's projects' items."""
    if person.staff or not isinstance(reply, dict) or not isinstance(reply.get("items"), list):
        return reply
    allowed = person.projects()
    return {**reply, "items": [item for item in reply["items"] if is_own_item(item, allowed)]}


def queue_for(reply: Any, person: Person) -> Any:
    """A queue reply with others' items (and running item) reduced to plan name and uid."""
    if person.staff or not isinstance(reply, dict):
        return reply
    shown, allowed = dict(reply), person.projects()
    if isinstance(reply.get("items"), list):
        shown["items"] = [i if is_own_item(i, allowed) else public_item(i) for i in reply["items"]]
    for key in ("running_item", "item"):
        item = reply.get(key)
        if isinstance(item, dict) and item and not is_own_item(item, allowed):
            shown[key] = public_item(item)
    return shown


def progress_for(progress: Any, person: Person) -> Any:
    """The running item's progress; of another project's item, its plan name and progress only."""
    if person.staff or not isinstance(progress, dict) or person.may_see(progress.get("project_code")):
        return progress
    return {key: value for key, value in progress.items() if key in PUBLIC_PROGRESS}


def event_for(kind: str, data: Any, person: Person) -> Any:
    """An event of the page's stream as this person may see it; None: not for them."""
    if kind == "history":
        shown = history_for(data, person)
        if isinstance(shown, dict) and isinstance(shown.get("items"), list):
            shown = {**shown, "items": shown["items"][-HISTORY_SHOWN:]}
        return shown
    if kind == "queue":
        return queue_for(data, person)
    if kind == "progress":
        return progress_for(data, person)
    if kind == "console" and not person.staff:
        return None
    return data
