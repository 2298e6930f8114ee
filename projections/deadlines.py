"""The abort-deadline pass, one for both backends: from the read model's pending deadlines, never every plan.

`serve` (beside its read model) and `enforce-deadlines` ask the model for the plans still
CANCELLING past their abort deadline (an indexed query), fold only those plans from their events
(the embedded log's stream, or on Kafka the events the audit trail keeps: the log itself is a
topic), and hand them to ``deadline_commands``, the one pure rule. A plan whose history cannot be
folded is skipped and logged; the others still get their pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from eventstore.codec import AvroCodec
from eventstore.domain.deadline import deadline_commands
from eventstore.domain.messages import EnforceAbortDeadline
from eventstore.domain.plan import UnexpectedEventError
from eventstore.exceptions import WatcherEsError
from eventstore.handler import load_plan
from eventstore.log import StoredEvent

from projections.read_model import ReadModel

logger = logging.getLogger(__name__)

#: One plan's events, in version order.
PlanEvents = Callable[[str], list[StoredEvent]]


def overdue_commands(model: ReadModel, plan_events: PlanEvents, codec: AvroCodec, now: int, origin: str) -> list[EnforceAbortDeadline]:
    plans = []
    for uuid in model.overdue_cancellations(now):
        try:
            plan = load_plan(codec, plan_events(uuid))
        except (WatcherEsError, UnexpectedEventError, KeyError) as exc:  # its history is broken (and parked)
            logger.warning("the deadline pass skips plan %s: %s", uuid, exc)
            continue
        if plan is not None:
            plans.append(plan)
    return deadline_commands(plans, now, origin)
