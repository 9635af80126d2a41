"""``python -m bench.manager_without_gate``: ``sibyls-re-manager`` whose queue gate passes every item.

For ``python -m bench stack`` only: the same manager as the stack's (options, project gate, Redis
retries, console publishing, reply encoder), except that validation of a SIBYLS plan answers
"valid" at once. ``item_add`` of a 96-well plate on it is then what queueserver itself does with an
item that size (0MQ and JSON both ways, the Redis write, the reply echoing the item): the floor
beside which the gate's own share of the plate's ``item_add`` is read. Never a service: nothing is
checked.
"""

from __future__ import annotations

import sys

from sibyls.startup import re_manager


def _pass_every_item(plan, *, allowed_plans, allowed_devices) -> tuple[bool, str]:
    return True, ""


if __name__ == "__main__":
    re_manager.validate_plan = _pass_every_item  # install_queue_gate installs it under this name
    sys.exit(re_manager.main())
