"""Mail-in notices against a real SMTP server on loopback (aiosmtpd): sent at the plate's last well,
to the project's people, with the summary inline and as CSV; retried while undeliverable; saved and
logged (not sent) when no SMTP host is set."""

from __future__ import annotations

import email
import email.policy
import socket
import time

import pytest
from aiosmtpd.controller import Controller

from sibyls.metadata.projects import Project, ProjectsFile
from sibyls.saxs.processing.notices import PlateNotifier, SmtpSettings


class Inbox:
    """aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def plate(tmp_path):
    """A project with two people and a 3-well plate's summary."""
    projects = ProjectsFile(tmp_path / "projects.yaml")
    projects.write({"LAB_B": Project("LAB_B", "B", ("bob",), ("bob@lab-b.org", "pi@lab-b.org"))})
    folder = tmp_path / "processed" / "LAB_B"
    folder.mkdir(parents=True)
    (folder / "plate_P7_summary.csv").write_text("well,sample_code,Rg_A\nA2,lysozyme,14.3\n")
    (folder / "plate_P7_summary.html").write_text(
        "<html><body><table><tr><td>lysozyme</td></tr></table></body></html>"
    )
    return tmp_path, projects


def starts(total: int = 3) -> list[dict]:
    return [{"uid": f"r{i}", "plate_id": "P7", "queue_item_uid": "item-0001-x",
             "plate_position": {"index": i, "total": total}} for i in range(1, total + 1)]  # fmt: skip


def record(tmp_path):
    return tmp_path / "records" / "LAB_B" / "1_lysozyme_abcdef12.yaml"


def test_the_last_well_sends_the_plate_summary_to_the_projects_people(plate, smtp_server):
    tmp_path, projects = plate
    inbox, port = smtp_server
    smtp = SmtpSettings("127.0.0.1", port, starttls=False, sender="beamline@sibyls.test")
    notifier = PlateNotifier(
        tmp_path / "processed", tmp_path / "notices", projects, smtp, "http://page/sibyls/"
    )
    first, *rest = starts()
    assert notifier(first, record(tmp_path)) is None  # not the plate's last well yet
    notices = [notifier(start, record(tmp_path)) for start in rest]
    assert notices[0] is None and notices[1] is not None
    assert notifier.wait(10)
    assert notices[1].outcome == "sent"
    ((recipients, message),) = inbox.messages
    assert recipients == ["bob@lab-b.org", "pi@lab-b.org"]
    assert "plate P7 of LAB_B" in message["Subject"]
    html = message.get_body(("html",)).get_content()
    assert "<td>lysozyme</td>" in html and 'href="http://page/sibyls/#project=LAB_B"' in html
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "plate_P7_summary.csv"
    assert "lysozyme,14.3" in attachment.get_content()
    assert notices[1].saved_as.is_file()


def test_an_undeliverable_notice_is_retried_until_the_server_answers(plate):
    tmp_path, projects = plate
    port = free_port()  # nothing listens yet
    smtp = SmtpSettings("127.0.0.1", port, starttls=False)
    notifier = PlateNotifier(
        tmp_path / "processed", tmp_path / "notices", projects, smtp, retry_s=0.2, attempts=200
    )
    for start in starts(1):
        notice = notifier(start, record(tmp_path))  # returns at once: sending is another thread's job
    deadline = time.monotonic() + 30
    while not notice.outcome.startswith("retrying"):  # the first attempt failed (nobody listens)
        assert time.monotonic() < deadline, notice.outcome
        time.sleep(0.05)
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        assert notifier.wait(30)
        assert notice.outcome == "sent" and notice.attempts >= 2
        assert len(inbox.messages) == 1
    finally:
        controller.stop()


def test_without_an_smtp_host_the_notice_is_logged_and_saved_not_sent(plate, caplog):
    tmp_path, projects = plate
    notifier = PlateNotifier(tmp_path / "processed", tmp_path / "notices", projects, None)
    with caplog.at_level("INFO"):
        (notice,) = [notifier(start, record(tmp_path)) for start in starts(1)]
        assert notifier.wait(10)
    assert notice.outcome.startswith("not sent")
    assert "bob@lab-b.org" in caplog.text and str(notice.saved_as) in caplog.text
    assert b"lysozyme,14.3" in notice.saved_as.read_bytes() or "lysozyme" in notice.saved_as.read_text()


def test_a_run_outside_a_plate_or_a_broken_summary_never_raises(plate):
    tmp_path, projects = plate
    notifier = PlateNotifier(tmp_path / "processed", tmp_path / "notices", projects, None)
    assert notifier({"uid": "x"}, record(tmp_path)) is None
    assert (
        notifier({"plate_id": "P7", "plate_position": {"index": "x", "total": 1}}, record(tmp_path)) is None
    )


def test_a_plate_item_of_only_buffers_sends_no_results_notice(plate):
    """The water of a calibration measured from the robot is a plate item of one buffer well: no user
    result, no mail; a plate of buffers and samples still sends its notice."""
    tmp_path, projects = plate
    notifier = PlateNotifier(tmp_path / "processed", tmp_path / "notices", projects, None)
    water = [{**start, "sample_role": "buffer_blank"} for start in starts(1)]
    assert [notifier(start, record(tmp_path)) for start in water] == [None]
    mixed = [{**start, "queue_item_uid": "item-0002-y"} for start in starts(2)]
    mixed[0]["sample_role"], mixed[1]["sample_role"] = "buffer_blank", "sample"
    notices = [notifier(start, record(tmp_path)) for start in mixed]
    assert notices[0] is None and notices[1] is not None
    assert notifier.wait(10) and len(notifier.sent) == 1


# ---- a failed plate ------------------------------------------------------------------------------


def well_starts(total: int) -> list[dict]:
    """The plate's wells A1, A2, ... as their runs' start documents (project LAB_B, plate P7)."""
    more = [
        {"well": f"A{i}", "project_code": "LAB_B", "sample_code": f"s{i}", "scan_id": i}
        for i in range(1, total + 1)
    ]
    return [{**start, **extra} for start, extra in zip(starts(total), more, strict=True)]


def test_a_well_whose_first_look_failed_is_named_with_why_to_the_projects_people(plate, smtp_server):
    tmp_path, projects = plate
    inbox, port = smtp_server
    smtp = SmtpSettings("127.0.0.1", port, starttls=False, sender="beamline@sibyls.test")
    notifier = PlateNotifier(
        tmp_path / "processed", tmp_path / "notices", projects, smtp, "http://page/sibyls/"
    )
    first, second, third = well_starts(3)
    assert notifier(first, record(tmp_path)) is None
    assert notifier.failed(second, record(tmp_path), "first look failed: no frames to look at") is None
    notice = notifier(third, record(tmp_path))  # the plate's wells have ended: one failed
    assert notifier.wait(10) and notice.outcome == "sent"
    ((recipients, message),) = inbox.messages
    assert recipients == ["bob@lab-b.org", "pi@lab-b.org"]
    assert message["Subject"] == "SIBYLS: plate P7 of LAB_B: failed well(s) A2"
    text = message.get_body(("plain",)).get_content()
    assert "A2: first look failed: no frames to look at" in text and "A1" not in text
    html = message.get_body(("html",)).get_content()
    assert "<td>A2</td>" in html and 'href="http://page/sibyls/#project=LAB_B"' in html
    (attachment,) = list(message.iter_attachments())  # the wells that succeeded
    assert attachment.get_filename() == "plate_P7_summary.csv"
    assert notice.saved_as.name.endswith("_failed.eml") and notice.saved_as.is_file()


def test_a_plan_aborted_during_a_well_ends_the_plate_and_its_notice_is_retried_until_delivered(plate):
    tmp_path, projects = plate
    port = free_port()  # nobody listens yet: the notice waits and is retried
    smtp = SmtpSettings("127.0.0.1", port, starttls=False)
    notifier = PlateNotifier(
        tmp_path / "processed", tmp_path / "notices", projects, smtp, retry_s=0.2, attempts=200
    )
    first, second, *_ = well_starts(5)
    assert notifier(first, record(tmp_path)) is None
    assert notifier.stopped(first, {"exit_status": "success"}) is None
    notice = notifier.stopped(second, {"exit_status": "abort", "reason": "aborted by staff (RE abort)"})
    assert notice is not None  # wells 3-5 will never run: the plate has ended at A2
    assert notifier.failed(second, record(tmp_path), "first look failed: no frames") is None  # said once
    assert notifier(second, record(tmp_path)) is None
    deadline = time.monotonic() + 30
    while not notice.outcome.startswith("retrying"):
        assert time.monotonic() < deadline, notice.outcome
        time.sleep(0.05)
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        assert notifier.wait(30) and notice.outcome == "sent" and notice.attempts >= 2
    finally:
        controller.stop()
    ((_, message),) = inbox.messages
    text = message.get_body(("plain",)).get_content()
    assert "A2: the plan was aborted during this well: aborted by staff (RE abort)" in text
    assert "wells 3 to 5 of the plate's 5: not measured" in text
    assert "first look failed" not in text


def test_without_an_smtp_host_a_failed_plate_is_logged_and_saved(plate, caplog):
    tmp_path, projects = plate
    notifier = PlateNotifier(tmp_path / "processed", tmp_path / "notices", projects, None)
    (only,) = well_starts(1)
    with caplog.at_level("INFO"):
        notice = notifier.stopped(only, {"exit_status": "fail", "reason": "robot: well A1 is empty"})
        assert notifier.wait(10)
    assert notice.outcome.startswith("not sent")
    assert "bob@lab-b.org" in caplog.text and str(notice.saved_as) in caplog.text
    assert "robot: well A1 is empty" in notice.saved_as.read_text()


def test_the_first_look_service_tells_the_notifier_of_an_aborted_well(plate, smtp_server):
    """The service's hooks: a plate well's run aborted with no frames gives the failed-plate notice."""
    from sibyls.saxs.processing.service import FirstLookService

    tmp_path, projects = plate
    inbox, port = smtp_server
    notifier = PlateNotifier(
        tmp_path / "processed",
        tmp_path / "notices",
        projects,
        SmtpSettings("127.0.0.1", port, starttls=False),
    )
    service = FirstLookService(
        tmp_path / "records",
        tmp_path / "processed",
        reducer_for=lambda path: None,
        on_first_look=notifier,
    )
    service.on_first_look_failed, service.on_run_stop = notifier.failed, notifier.stopped
    try:
        (only,) = well_starts(1)
        start = {**only, "plan_type": "ht_plate", "time": 0.0}
        service("start", start)
        service("stop", {"uid": "stop-1", "run_start": start["uid"], "time": 1.0, "exit_status": "abort",
                         "reason": "aborted by staff", "num_events": {}})  # fmt: skip
        assert service.flush(30)
        assert notifier.wait(10)
    finally:
        service.close()
    ((_, message),) = inbox.messages
    assert (
        "A1: the plan was aborted during this well: aborted by staff"
        in message.get_body(("plain",)).get_content()
    )
