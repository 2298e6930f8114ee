"""Which cancellations the abort-deadline pass must end, as commands; pure, so every backend shares it.

The command id derives from the cancellation it ends, so any number of passes, on any
number of hosts, produce the same command and it takes effect once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from eventstore.domain.messages import EnforceAbortDeadline
from eventstore.domain.plan import Plan

_DEADLINE_IDS = uuid.UUID("8f1d2c3b-4a5e-4f60-8b71-9c0d1e2f3a4b")
PASS_NAME = "watcher-es deadline pass"


def deadline_commands(plans: Iterable[Plan], now: int, origin: str) -> list[EnforceAbortDeadline]:
    """The deadline pass, whoever runs it: one command per cancellation past its abort deadline."""
    return [
        EnforceAbortDeadline(str(uuid.uuid5(_DEADLINE_IDS, p.cancellation.started_event_id)), now, PASS_NAME, origin, p.uuid)
        for p in plans
        if p.state == "CANCELLING" and p.cancellation is not None and p.cancellation.abort_deadline <= now
    ]
