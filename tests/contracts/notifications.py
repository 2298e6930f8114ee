"""The ``NotificationSink`` port's contract (``projections/translator.py``): where notifications go.

``NotificationOutbox`` keeps them in a SQLite file watchers follow (sent inside the consumer's
write transaction); ``NotificationTopics`` publishes them to ``<topic>.info``/``.error``, confirmed
when ``send`` returns. Read back the way their consumers read them (the outbox's rows; the topics
by the wire contract's "Notifications" section), they must be what the translator built: the same
envelope, message id, plan sequence number, event and payload set, and a re-sent notification the
same message. A backend's module says how to build its sink and how its consumers read it.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from eventstore.codec import AvroCodec
from eventstore.domain.decide import decide
from eventstore.domain.messages import Command, to_record
from eventstore.domain.plan import Plan, evolve
from eventstore.log import StoredEvent
from projections.payloads import LATEST_PAYLOAD_SET, payload_set
from projections.translator import Notification, NotificationSink, Translator

from .. import factories as f
from tests.support.appends import A

from .event_log import Opens


@dataclass(frozen=True)
class Received:
    """A notification as its consumer reads it back."""

    message_id: str
    event_type: str
    priority: str
    plan_uuid: str
    plan_seq: int
    event_id: str
    payload_set: str
    envelope: dict[str, Any]

    @classmethod
    def sent(cls, n: Notification) -> Received:
        return cls(n.message_id, n.event_type, n.priority, n.plan_uuid, n.plan_seq, n.event_id, n.payload_set, n.envelope)


def translated(codec: AvroCodec, commands: list[Command], payloads: str = "1.0") -> list[Notification]:
    """What the translator makes of these commands' events (one plan, in order)."""
    plan: Plan | None = None
    stored: list[StoredEvent] = []
    for command in commands:
        for event in decide(plan, command, f.T0):
            plan = evolve(plan, event)
            name = type(event).__name__
            stored.append(StoredEvent(
                len(stored) + 1, command.plan_uuid, plan.version, event.event_id, name, command.command_id, event.occurred_at,
                codec.encode(name, to_record(event)), "",
            ))
    return Translator(codec, None, "infra-optim:contract", payloads=payload_set(payloads)).translate(stored)


class NotificationSinkTestCase(Opens, ABC):
    @abstractmethod
    def create_sink(self) -> NotificationSink: ...

    @abstractmethod
    def received(self) -> list[Received]:
        """Every notification the sink holds, as its consumers read it (a re-sent one may be there twice)."""

    def notes(self, codec: AvroCodec) -> tuple[list[Notification], list[Notification]]:
        """An ended cancellation with a failed abort (INFO and ERROR notifications) and one at the latest payload set."""
        p, q = str(uuid.uuid4()), str(uuid.uuid4())
        failed = translated(codec, [
            f.register(p, "ONGOING", [f.action(A[0], "ONGOING"), f.action(A[1])]), f.cancel(p), f.abort_failed(p, A[0]),
        ])
        latest = translated(codec, [f.register(q, "PENDING", [f.action(A[2])]), f.cancel(q)], LATEST_PAYLOAD_SET)
        assert {n.priority for n in failed} == {"INFO", "ERROR"} and {n.payload_set for n in latest} == {LATEST_PAYLOAD_SET}
        return failed, latest

    def test_nothing_sent_nothing_received(self) -> None:
        self.create_sink().send([])
        assert self.received() == []

    def test_consumers_receive_what_the_translator_built(self, codec: AvroCodec) -> None:
        sink = self.create_sink()
        failed, latest = self.notes(codec)
        sink.send(failed)
        sink.send(latest)
        received = self.received()
        assert sorted(received, key=lambda r: r.message_id) == sorted(map(Received.sent, failed + latest), key=lambda r: r.message_id)

    def test_each_plans_notifications_arrive_in_its_order_within_a_priority(self, codec: AvroCodec) -> None:
        """A consumer merges ``.info`` and ``.error`` back into order by the plan sequence number."""
        sink = self.create_sink()
        failed, latest = self.notes(codec)
        sink.send(failed + latest)
        by_stream: dict[tuple[str, str], list[int]] = defaultdict(list)
        for r in self.received():
            by_stream[(r.plan_uuid, r.priority)].append(r.plan_seq)
        assert by_stream and all(seqs == sorted(seqs) and len(set(seqs)) == len(seqs) for seqs in by_stream.values()), by_stream
        merged = sorted((r for r in self.received() if r.plan_uuid == failed[0].plan_uuid), key=lambda r: r.plan_seq)
        assert [r.message_id for r in merged] == [n.message_id for n in failed]

    def test_a_resent_notification_is_the_same_message(self, codec: AvroCodec) -> None:
        sink = self.create_sink()
        failed, _ = self.notes(codec)
        sink.send(failed)
        sink.send(failed[1:3])  # a translator that resumes from an older position sends these again
        copies: dict[str, list[Received]] = defaultdict(list)
        for r in self.received():
            copies[r.message_id].append(r)
        assert set(copies) == {n.message_id for n in failed}
        assert all(len(set(map(repr, same))) == 1 for same in copies.values()), "every copy of a message is the same"
