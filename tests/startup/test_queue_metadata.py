"""The queue identity in RunStart comes from the RE Manager; an item's meta cannot change it."""

from __future__ import annotations

import bluesky.plans as bp
import pytest
from bluesky import RunEngine
from ophyd.sim import det

from sibyls.metadata.contract import ContractError
from sibyls.startup.queue_metadata import QueueItemMetadata

RUNNING = {"item_uid": "item-1", "user": "alice", "user_group": "primary"}


class AnsweringManager(QueueItemMetadata):
    """The preprocessor with the manager's answer given (no RE Manager in a unit test)."""

    def __init__(self, running: dict | Exception | None) -> None:
        super().__init__("tcp://127.0.0.1:1")
        self.running = running

    def running_item(self):
        if isinstance(self.running, Exception):
            raise self.running
        return self.running


def run_engine(running: dict | Exception | None) -> tuple[RunEngine, list]:
    RE = RunEngine({})
    AnsweringManager(running).install(RE)
    starts: list = []
    RE.subscribe(lambda name, doc: starts.append(doc), "start")
    return RE, starts


def test_runstart_carries_the_running_items_identity_over_the_plans_own():
    RE, starts = run_engine(RUNNING)
    RE(bp.count([det], md={"submitted_by": "plan-author"}))
    (start,) = starts
    assert (start["queue_item_uid"], start["submitted_by"], start["user_group"]) == (
        "item-1",
        "alice",
        "primary",
    )


def test_meta_naming_another_submitter_is_refused_before_the_run_opens():
    RE, starts = run_engine(RUNNING)
    with pytest.raises(ContractError, match="submitted_by: reserved, set by the queue server to 'alice'"):
        RE(bp.count([det]), submitted_by="beamline-director")
    assert starts == []
    RE(bp.count([det]))  # the refusal is not remembered: the next honest run goes through
    assert starts[0]["submitted_by"] == "alice"


def test_the_inner_validator_still_runs_and_both_problems_are_listed():
    RE = RunEngine({})

    def refuse_everything(md):
        raise ContractError(["sample_code: missing"])

    RE.md_validator = refuse_everything
    AnsweringManager(RUNNING).install(RE)
    with pytest.raises(ContractError) as refused:
        RE(bp.count([det]), user_group="admin")
    first, second = refused.value.problems
    assert first == "sample_code: missing"
    assert second.startswith("user_group: reserved, set by the queue server to 'primary'")


def test_outside_the_queue_nothing_is_added_or_checked():
    RE, starts = run_engine(None)
    RE(bp.count([det]), submitted_by="console-user")
    assert starts[0]["submitted_by"] == "console-user"
    assert "queue_item_uid" not in starts[0]


def test_a_silent_manager_means_no_identity_and_no_meta_claiming_one():
    RE, starts = run_engine(TimeoutError("RE Manager did not answer"))
    with pytest.raises(
        ContractError, match="submitted_by: reserved for the queue server, which did not answer"
    ):
        RE(bp.count([det]), submitted_by="beamline-director")
    assert starts == []
    RE(bp.count([det]))
    assert not {"queue_item_uid", "submitted_by", "user_group"} & set(starts[0])
