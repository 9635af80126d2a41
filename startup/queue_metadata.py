"""Put the queue item's uid and its submitting user into every RunStart of a queued plan."""

from __future__ import annotations

import logging
from typing import Any

from bluesky.preprocessors import msg_mutator

from sibyls.metadata.contract import raise_all_problems

logger = logging.getLogger(__name__)

#: The manager did not answer when the run opened: its queue identity cannot be checked.
UNANSWERED = object()


class QueueItemMetadata:
    """RunEngine preprocessor: ``queue_item_uid``, ``submitted_by`` and ``user_group`` in each RunStart.

    The RE worker does not hand the running item to the plan, so this asks the RE Manager (over
    its 0MQ control address) which item is running when a run opens. Outside the queue (a
    console), nothing is added. A manager that does not answer never stops the run.

    The manager's answer is authoritative: an item's ``meta`` (which bluesky ranks above the
    plan's metadata) that names another submitter, item or group makes the run be refused before
    it opens, by the validator ``install`` chains in front of ``RE.md_validator``. When the manager
    does not answer, the run goes on without the three keys, and is refused if its metadata sets
    any of them anyway. ``install`` appends this preprocessor last, so it is the outermost one and
    sees every ``open_run``, including those other preprocessors add.
    """

    #: RunStart key -> the running item's field it comes from
    ITEM_FIELDS = {"queue_item_uid": "item_uid", "submitted_by": "user", "user_group": "user_group"}

    def __init__(self, zmq_control_addr: str, zmq_public_key: str | None = None) -> None:
        self.zmq_control_addr = zmq_control_addr
        self.zmq_public_key = zmq_public_key  # of an encrypted manager (CURVE); None: plain 0MQ
        self._api = None
        self._identity: dict[str, Any] | object = {}  # of the run being opened; checked by ``problems``

    def install(self, run_engine: Any) -> None:
        """Add the preprocessor and refuse runs whose metadata contradicts the manager."""
        run_engine.preprocessors.append(self)
        inner = run_engine.md_validator

        def validate(md: dict) -> None:
            raise_all_problems(inner, md, self.problems(md))

        run_engine.md_validator = validate

    def problems(self, md: dict) -> list[str]:
        """What in a run's final metadata differs from the item the manager is running."""
        identity, self._identity = self._identity, {}
        if identity is UNANSWERED:
            return [
                f"{key}: reserved for the queue server, which did not answer, so {md[key]!r} cannot be "
                "checked; remove it from the item's meta"
                for key in self.ITEM_FIELDS
                if key in md
            ]
        return [
            f"{key}: reserved, set by the queue server to {value!r}; the item's meta may not change it "
            f"(got {md.get(key)!r})"
            for key, value in identity.items()
            if md.get(key) != value
        ]

    def running_item(self) -> dict[str, Any] | None:
        """The item the manager is running now (None when idle); raises when it does not answer."""
        if self._api is None:
            from bluesky_queueserver_api.zmq import REManagerAPI

            self._api = REManagerAPI(
                zmq_control_addr=self.zmq_control_addr,
                zmq_public_key=self.zmq_public_key,
                timeout_recv=2,
                timeout_send=2,
            )
        return self._api.queue_get().get("running_item") or None

    def _identity_of_running_item(self) -> dict[str, Any] | object:
        try:
            item = self.running_item() or {}
        except Exception as exc:
            logger.warning("could not ask the RE Manager for the running item: %s", exc)
            return UNANSWERED
        values = {key: item.get(field) for key, field in self.ITEM_FIELDS.items()}
        return {key: value for key, value in values.items() if value is not None}

    def __call__(self, plan):
        def add_item_metadata(msg):
            if msg.command == "open_run":
                self._identity = self._identity_of_running_item()
                if self._identity is not UNANSWERED:
                    msg.kwargs.update(self._identity)
            return msg

        return msg_mutator(plan, add_item_metadata)
