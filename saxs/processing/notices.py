"""Mail-in notices: when every well of a plate has its first look, the project's people get an email.

A mail-in user learns their plate is done without watching anything: the email carries the plate's
summary (Rg, I(0), MW, flags per well) as an HTML table inline, the same as CSV attached, and a link
to the page. The processing service calls :class:`PlateNotifier` after each run's results are stored
(summaries written); the notifier counts the plate's wells (by the plate item's queue uid, from each
run's ``plate_position``) and, at the last one, queues one message to the project's ``emails``
(:mod:`sibyls.metadata.projects`).

Nothing here may hold up processing or the queue: :meth:`PlateNotifier.__call__` only counts and
queues; a background thread sends, retrying an undeliverable message every ``retry_s`` seconds up to
``attempts`` times (then it is given up and logged, and stays saved). Each message is also saved as
``<notices_dir>/<project>_<plate>_<item8>.eml``. With no SMTP host configured nothing is sent: the
notice is logged with its recipients and saved, and :attr:`PlateNotifier.sent` says where it went.
A service restarted in the middle of a plate counts only the wells it processed itself.

**A failed plate** gets its own notice, to the same people through the same path: when the plate's
wells have ended and some well failed, the email names each failed well and why. A well fails when
its first look fails (:meth:`PlateNotifier.failed`, the reason its record carries) or when the plan
failed or was aborted during it (:meth:`PlateNotifier.stopped`: the run's stop document's exit status
and reason); the plan ending at a well also ends the plate, so the wells after it are named as not
measured. The summary of the wells that did succeed is attached when there is one. Not covered: a
plate that ends while no well's run is open (the robot refusing a well, an abort between wells)
leaves no run to hear of, so it gets no notice at all; the queue's history says why it ended.
"""

from __future__ import annotations

import html
import logging
import queue
import re
import smtplib
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sibyls.metadata.mapping import record_relpath, safe_part
from sibyls.metadata.projects import ProjectsFile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmtpSettings:
    """Where notices go out: host, port, STARTTLS, login (password read from a file), sender."""

    host: str
    port: int = 587
    starttls: bool = True
    user: str = ""
    password_file: str = field(default="", repr=False)
    sender: str = "sibyls@localhost"
    timeout_s: float = 10.0

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` now (raises ``OSError``/``smtplib.SMTPException`` when it cannot)."""
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.user:
                password = Path(self.password_file).read_text().strip() if self.password_file else ""
                smtp.login(self.user, password)
            smtp.send_message(message)


@dataclass
class Notice:
    """One plate's notice: to whom, and the message; ``outcome`` once sent, given up or not configured."""

    recipients: tuple[str, ...]
    message: EmailMessage
    saved_as: Path | None = None
    attempts: int = 0
    outcome: str = "queued"


class PlateNotifier:
    """Counts each plate's first looks and, at the last well, mails the plate summary (see module)."""

    def __init__(
        self,
        processed_dir: Path | str,
        notices_dir: Path | str,
        projects: ProjectsFile | None,
        smtp: SmtpSettings | None = None,
        page_url: str = "",
        *,
        retry_s: float = 60.0,
        attempts: int = 30,
    ) -> None:
        self.processed_dir = Path(processed_dir)
        self.notices_dir = Path(notices_dir)
        self.projects, self.smtp, self.page_url = projects, smtp, page_url
        self.retry_s, self.attempts = retry_s, attempts
        self._plates: dict[tuple[str, str, str], _PlateWells] = {}
        self._finished: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()
        self._outbox: queue.Queue[Notice | None] = queue.Queue()
        self.sent: list[Notice] = []  # every notice, whatever became of it (newest last)
        self._thread = threading.Thread(target=self._send_loop, name="sibyls-notices", daemon=True)
        self._thread.start()

    def __call__(self, start: dict[str, Any], record_path: Path) -> Notice | None:
        """A run's first look is stored: count its well; at the plate's last, queue the notice."""
        return self._safely(start, Path(record_path).parent.name, None)

    def failed(self, start: dict[str, Any], record_path: Path | None, reason: str) -> Notice | None:
        """A run's first look failed (``reason`` as its record says): its well counts as failed."""
        project = Path(record_path).parent.name if record_path else None
        return self._safely(start, project, reason)

    def stopped(self, start: dict[str, Any], stop: dict[str, Any]) -> Notice | None:
        """A run stopped: if its plan failed or was aborted, its well failed and the plate ended there."""
        status = stop.get("exit_status") or "success"
        if status == "success":
            return None
        reason = f"the plan {'was aborted' if status == 'abort' else 'failed'} during this well"
        if stop.get("reason"):
            reason += f": {stop['reason']}"
        return self._safely(start, None, reason, ends=True)

    def _safely(
        self, start: dict[str, Any], project: str | None, reason: str | None, ends: bool = False
    ) -> Notice | None:
        try:
            with self._lock:
                return self._count(start, project, reason, ends)
        except Exception:  # a notice must never stop processing
            log.exception("mail-in notice after run %s failed", start.get("uid"))
            return None

    def _count(
        self, start: dict[str, Any], project: str | None, reason: str | None, ends: bool
    ) -> Notice | None:
        position, plate_id = start.get("plate_position"), start.get("plate_id")
        if not isinstance(position, dict) or not plate_id:
            return None
        project = project or record_relpath(start).parent.name
        key = (project, str(plate_id), str(start.get("queue_item_uid") or ""))
        if key in self._finished:  # a late word on a plate already reported (the well its plan ended at)
            return None
        index = int(position.get("index", 0))
        plate = self._plates.setdefault(key, _PlateWells(total=int(position.get("total", 0))))
        if reason is not None and (ends or index not in plate.done):  # the plan's end is the well's truth
            plate.failures[index] = (str(start.get("well") or f"well {index}"), reason)
        plate.done.add(index)
        if start.get("sample_role") != "buffer_blank":
            plate.with_samples = True
        if ends:
            plate.last = index
        if not plate.complete():
            return None
        del self._plates[key]
        self._finished.add(key)
        if plate.failures:
            notice = self.failed_plate_notice(*key, plate)
        elif not plate.with_samples:  # only buffers (e.g. the water of a calibration): no results to tell of
            log.info("plate %s of %s: only buffer wells, no notice", plate_id, project)
            return None
        else:
            notice = self.plate_notice(*key)
        if notice is not None:
            self.sent.append(notice)
            self._outbox.put(notice)
        return notice

    def plate_notice(self, project: str, plate_id: str, item_uid: str = "") -> Notice | None:
        """The plate's notice (its summary as HTML and CSV), saved; None if it has no summary."""
        stem = f"plate_{safe_part(plate_id, 'plate')}_summary"
        folder = self.processed_dir / project
        html_path, csv_path = folder / f"{stem}.html", folder / f"{stem}.csv"
        if not csv_path.is_file():
            log.warning("no summary of plate %s of %s to send", plate_id, project)
            return None
        entry = self.projects.projects().get(project) if self.projects else None
        recipients = tuple(entry.emails) if entry else ()
        message = EmailMessage()
        message["Subject"] = f"SIBYLS: plate {plate_id} of {project} measured, first look ready"
        message["From"] = self.smtp.sender if self.smtp else "sibyls@localhost"
        message["To"] = ", ".join(recipients) or "undisclosed-recipients:;"
        link = f"{self.page_url}#project={project}" if self.page_url else ""
        text = (
            f"Every well of plate {plate_id} (project {project}) has been measured and has its first look.\n"
            f"The summary (Rg, I(0), MW, flags per well) is attached as CSV."
            + (f"\nResults, files and exports: {link}\n" if link else "\n")
        )
        message.set_content(text)
        page = html_path.read_text(encoding="utf-8") if html_path.is_file() else "<p>(no HTML summary)</p>"
        intro = (
            f'<p>Plate {plate_id} of {project} is done. <a href="{link}">Open it on the SIBYLS page</a>.</p>'
        )
        message.add_alternative(_with_intro(page, intro if link else ""), subtype="html")
        message.add_attachment(csv_path.read_bytes(), maintype="text", subtype="csv", filename=csv_path.name)
        self.notices_dir.mkdir(parents=True, exist_ok=True)
        saved = self.notices_dir / f"{project}_{safe_part(plate_id, 'plate')}_{item_uid[:8] or 'plate'}.eml"
        saved.write_bytes(bytes(message))
        return Notice(recipients, message, saved)

    def failed_plate_notice(self, project: str, plate_id: str, item_uid: str, plate: _PlateWells) -> Notice:
        """The notice of a plate some well of which failed: each failed well and why, the wells never
        measured, and the summary of the wells that succeeded (attached, when there is one), saved."""
        lines = [f"{well}: {why}" for _, (well, why) in sorted(plate.failures.items())]
        if plate.last is not None and plate.last < plate.total:
            after = plate.last + 1
            wells_after = f"well {after}" if after == plate.total else f"wells {after} to {plate.total}"
            lines.append(f"{wells_after} of the plate's {plate.total}: not measured (the plate ended above)")
        wells = ", ".join(well for _, (well, _) in sorted(plate.failures.items()))
        link = f"{self.page_url}#project={project}" if self.page_url else ""
        message, recipients = self._message(
            project,
            f"SIBYLS: plate {plate_id} of {project}: failed well(s) {wells}",
            f"Plate {plate_id} (project {project}) has ended, and not every well succeeded:\n\n"
            + "\n".join(f"  {line}" for line in lines)
            + "\n\nThe other wells' first looks are in the attached summary, if any."
            + (f"\nResults, files and exports: {link}\n" if link else "\n"),
        )
        cells = [[html.escape(part) for part in line.split(": ", 1)] for line in lines]
        rows = "".join(f"<tr><td>{well}</td><td>{why}</td></tr>" for well, why in cells)
        opened = f' <a href="{html.escape(link)}">Open it on the SIBYLS page</a>.' if link else ""
        message.add_alternative(
            f"<html><body><p>Plate {html.escape(plate_id)} of {html.escape(project)} has ended with failed "
            f"wells.{opened}</p><table><tr><th>well</th><th>why</th></tr>{rows}</table></body></html>",
            subtype="html",
        )
        csv_path = self.processed_dir / project / f"plate_{safe_part(plate_id, 'plate')}_summary.csv"
        if csv_path.is_file():
            message.add_attachment(
                csv_path.read_bytes(), maintype="text", subtype="csv", filename=csv_path.name
            )
        return self._save(message, recipients, project, plate_id, item_uid, "_failed")

    def _message(self, project: str, subject: str, text: str) -> tuple[EmailMessage, tuple[str, ...]]:
        entry = self.projects.projects().get(project) if self.projects else None
        recipients = tuple(entry.emails) if entry else ()
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = self.smtp.sender if self.smtp else "sibyls@localhost"
        message["To"] = ", ".join(recipients) or "undisclosed-recipients:;"
        message.set_content(text)
        return message, recipients

    def _save(
        self, message: EmailMessage, recipients: tuple[str, ...], project: str, plate_id: str, item_uid: str,
        suffix: str = "",
    ) -> Notice:  # fmt: skip
        self.notices_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{project}_{safe_part(plate_id, 'plate')}_{item_uid[:8] or 'plate'}{suffix}"
        saved = self.notices_dir / f"{stem}.eml"
        saved.write_bytes(bytes(message))
        return Notice(recipients, message, saved)

    def _send_loop(self) -> None:
        while True:
            notice = self._outbox.get()
            if notice is None:
                return
            if not notice.recipients:
                notice.outcome = "no recipients (the project has no emails)"
                log.warning("notice %s: %s", notice.saved_as, notice.outcome)
                continue
            if self.smtp is None:
                notice.outcome = "not sent: no SMTP host is set (the smtp_host setting)"
                log.info("notice for %s not sent (no SMTP host); saved as %s", ", ".join(notice.recipients),
                         notice.saved_as)  # fmt: skip
                continue
            self._deliver(notice)

    def _deliver(self, notice: Notice) -> None:
        while notice.attempts < self.attempts:
            notice.attempts += 1
            try:
                self.smtp.send(notice.message)
            except (OSError, smtplib.SMTPException) as exc:
                notice.outcome = f"retrying: {type(exc).__name__}: {exc}"
                log.warning(
                    "notice to %s, attempt %d: %s", ", ".join(notice.recipients), notice.attempts, exc
                )
                time.sleep(self.retry_s)
                continue
            notice.outcome = "sent"
            log.info("notice sent to %s", ", ".join(notice.recipients))
            return
        notice.outcome = f"given up after {notice.attempts} attempts; saved as {notice.saved_as}"
        log.error("notice to %s %s", ", ".join(notice.recipients), notice.outcome)

    def wait(self, timeout: float = 10.0) -> bool:
        """Until every queued notice has an outcome other than queued/retrying (tests, the demo)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(n.outcome == "queued" or n.outcome.startswith("retrying") for n in self.sent):
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self._outbox.put(None)


@dataclass
class _PlateWells:
    """One plate's wells heard of so far: done (either way), failed ones with why, where it ended."""

    total: int
    done: set[int] = field(default_factory=set)
    failures: dict[int, tuple[str, str]] = field(default_factory=dict)
    last: int | None = None  # the well the plan ended at (failed or aborted), if it did
    with_samples: bool = False  # a well that is not a buffer blank (a sample or a standard) was heard of

    def complete(self) -> bool:
        end = self.last if self.last is not None else self.total
        return set(range(1, end + 1)) <= self.done


def _with_intro(page: str, intro: str) -> str:
    if not intro:
        return page
    match = re.search(r"<body[^>]*>", page, re.IGNORECASE)
    return page[: match.end()] + intro + page[match.end() :] if match else intro + page
