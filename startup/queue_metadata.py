"""Put the queue item's uid and its submitting user into every RunStart of a queued plan."""

from __future__ import annotations

import logging
from typing import Any

from bluesky.preprocessors import msg_mutator

logger = logging.getLogger(__name__)


class QueueItemMetadata:
    """RunEngine preprocessor: ``queue_item_uid``, ``submitted_by`` and ``user_group`` in each RunStart.

    The RE worker does not hand the running item to the plan, so this asks the RE Manager (over
    its 0MQ control address) which item is running when a run opens. Outside the queue (a
    console), nothing is added. A manager that does not answer never stops the run.
    """

    def __init__(self, zmq_control_addr: str) -> None:
        self.zmq_control_addr = zmq_control_addr
        self._api = None

    def running_item(self) -> dict[str, Any] | None:
        """The item the manager is running now (None when idle or unreachable)."""
        try:
            if self._api is None:
                from bluesky_queueserver_api.zmq import REManagerAPI

                self._api = REManagerAPI(
                    zmq_control_addr=self.zmq_control_addr, timeout_recv=2, timeout_send=2
                )
            return self._api.queue_get().get("running_item") or None
        except Exception as exc:
            logger.warning("could not ask the RE Manager for the running item: %s", exc)
            return None

    def __call__(self, plan):
        def add_item_metadata(msg):
            if msg.command == "open_run":
                item = self.running_item()
                if item:
                    for key, value in (
                        ("queue_item_uid", item.get("item_uid")),
                        ("submitted_by", item.get("user")),
                        ("user_group", item.get("user_group")),
                    ):
                        if value is not None:
                            msg.kwargs.setdefault(key, value)
            return msg

        return msg_mutator(plan, add_item_metadata)
