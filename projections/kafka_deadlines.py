"""The abort-deadline pass on Kafka, from the read model: the pending deadlines, never every plan.

`serve` (beside its read-model part) and `enforce-deadlines` ask the model for the plans still
CANCELLING past their abort deadline (an indexed query), fold only those plans from the events
the audit trail keeps, and hand them to ``deadline_commands``, the one pure rule. A plan whose
history cannot be folded is skipped and logged; the others still get their pass.
"""

from __future__ import annotations

import logging

from eventstore.codec import AvroCodec
from eventstore.domain.deadline import deadline_commands
from eventstore.domain.messages import EnforceAbortDeadline
from eventstore.domain.plan import Plan, UnexpectedEventError
from eventstore.exceptions import WatcherEsError
from eventstore.handler import load_plan

from .kafka_history import AuditTrail
from .read_model import ReadModel

log = logging.getLogger(__name__)


def folded_plan(trail: AuditTrail, codec: AvroCodec, plan_uuid: str) -> Plan | None:
    """One plan folded from the events the trail keeps (None if it has none)."""
    return load_plan(codec, trail.read_plan(plan_uuid))


def overdue_commands(model: ReadModel, trail: AuditTrail, codec: AvroCodec, now: int, origin: str) -> list[EnforceAbortDeadline]:
    plans = []
    for uuid in model.overdue_cancellations(now):
        try:
            plan = folded_plan(trail, codec, uuid)
        except (WatcherEsError, UnexpectedEventError, KeyError) as exc:
            log.warning("the deadline pass skips plan %s: %s", uuid, exc)
            continue
        if plan is not None:
            plans.append(plan)
    return deadline_commands(plans, now, origin)
