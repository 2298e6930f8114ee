"""What the Kafka translator counts once its notifications are produced (``eventstore/metrics.py``).

The translator hands a batch's notifications to the client at once and confirms them with its state
about once a second (``_confirm``); the client delivers them within milliseconds, so the time is
taken at the hand-over, not at the confirmation a second later.

Among them, for each cancel's ``action_plan.cancel.start``, the time since the cancel was issued:
the command travels inside its append (``EventsAppended.command``), so its ``issued_at`` is read
back from there, only for cancels and only when metrics are on.
"""

from __future__ import annotations

from collections.abc import Sequence

from eventstore import metrics
from eventstore.codec import AvroCodec
from eventstore.config import system_clock
from eventstore.kafka.appends import Append
from eventstore.kafka.log import command_record
from projections.translator import Notification

CANCEL_START = "action_plan.cancel.start"


def confirmed(notes: Sequence[Notification], appends: Sequence[Append], codec: AvroCodec) -> None:
    """``notes`` (made from ``appends``) are confirmed by the topics now."""
    if not metrics.enabled():
        return
    metrics.notifications_confirmed(n.event_type for n in notes)
    starts = {n.event_id for n in notes if n.event_type == CANCEL_START}
    if not starts:
        return
    now = system_clock()
    for append in appends:
        if append.command_type == "CancelActionPlan" and any(e.event_id in starts for e in append.events):
            metrics.cancel_confirmed((now - command_record(codec, append).issued_at) / 1_000_000)
