"""One command's handling as one record on the events topic, and the fence every reader applies.

*Atomic*: all the events one command causes travel in one ``EventsAppended`` record, so no crash,
pause or broker without transactional isolation can make half of them visible.

*Fenced*: a record names the plan version its decision was made on. Where it lands in the
partition, it stands only if the plan is still at that version; otherwise another append got
there first and this one is a conflict. Every reader (handler, read model, translator, replay,
verify, audit) reads the same partition in the same order and applies the same rule, so they
all skip the same records: a deposed or paused handler cannot fork a plan's history.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Message

from eventstore.codec import AvroCodec
from eventstore.faults import fault_point
from eventstore.exceptions import CorruptRecordError, PoisonRecordError, StaleAppendError, UnknownSchemaError
from eventstore.log import NewEvent, StoredEvent, chain_hash
from eventstore.position import where
from eventstore.kafka.records import offset_of, source_of
from eventstore.frozen import changed, quick_init

RECORD = "EventsAppended"


def new_writer_id() -> str:
    """Who appends: what `audit` and `dlq` show for a conflict."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@quick_init
@dataclass(frozen=True)
class Append:
    """An ``EventsAppended`` record as read from a partition."""

    append_id: str
    command_id: str
    command_type: str
    plan_uuid: str
    expected_version: int
    writer: str
    appended_at: int
    outcome: str
    reason: str
    command: bytes
    events: tuple[StoredEvent, ...]
    source: str
    offset: int

    @property
    def position(self) -> int:
        """Where a consumer has got to once it has applied this record: offset + 1."""
        return self.offset + 1

    @property
    def where(self) -> str:
        return where(self.source, self.position)

    @property
    def last_hash(self) -> str | None:
        return self.events[-1].hash if self.events else None

    def chained(self, previous: str) -> tuple[StoredEvent, ...]:
        """Its events with every hash, chained on from ``previous`` (the plan's hash before them).

        A hash the record carries is kept as it is, even one the chain would not give, so that
        ``verify`` finds the break where it is; only the ones left out are computed.
        """
        if all(e.hash for e in self.events):
            return self.events
        out = []
        for e in self.events:
            previous = e.hash or chain_hash(previous, e.body)
            out.append(e if e.hash else changed(e, hash=previous))
        return tuple(out)


@quick_init
@dataclass(frozen=True)
class PreparedAppend:
    """An append ready to produce: its record and the chain head it leaves."""

    append_id: str
    value: bytes
    last_hash: str
    #: What ``value`` encodes: read back, the writer builds its ``Append`` from this, not decoding again.
    record: Mapping[str, Any]


def prepare_append(
    codec: AvroCodec, *, append_id: str | None = None, command_id: str, command_type: str, plan_uuid: str, expected_version: int, writer: str,
    appended_at: int, outcome: str, reason: str, events: Sequence[NewEvent], previous_hash: str, command: bytes = b"",
) -> PreparedAppend:
    """Encode one command's events as one record, chaining each event's hash to the previous one.

    Only the last hash travels (``head``, raw): every other one follows from it and the bodies,
    and 64 hex characters per event were a quarter of the record. ``append_id``: the writer's
    count (``KafkaEventLog``); a uuid for anyone else.
    """
    append_id = append_id or str(uuid.uuid4())
    items = []
    head = previous_hash
    for i, event in enumerate(events):
        if i == 1:
            fault_point("kill-between-events")  # a crash here must leave none of them
        head = chain_hash(head, event.body)
        items.append({"event_id": event.event_id, "event_type": event.event_type, "occurred_at": event.occurred_at, "body": event.body, "hash": ""})
    record = {
        "append_id": append_id, "command_id": command_id, "command_type": command_type, "plan_uuid": plan_uuid,
        "expected_version": expected_version, "writer": writer, "appended_at": appended_at, "outcome": outcome,
        "reason": reason, "command": command, "events": items, "head": bytes.fromhex(head) if items else b"",
    }
    return PreparedAppend(append_id, codec.encode(RECORD, record), head, record)


def append_from(r: Mapping[str, Any], source: str, offset: int) -> Append:
    """An ``EventsAppended`` record's fields as the ``Append`` found at this place.

    Since 0.3.0 only the last event's hash is in the record (``head``): the others are left
    empty here, for the readers that show them to chain on (``Append.chained``).
    """
    position = offset + 1
    first = r["expected_version"] + 1
    items = r["events"]
    head = r.get("head")
    last = len(items) - 1
    events = tuple(
        StoredEvent(
            position=position, plan_uuid=r["plan_uuid"], version=first + i, event_id=e["event_id"], event_type=e["event_type"],
            command_id=r["command_id"], occurred_at=e["occurred_at"], body=e["body"],
            hash=head.hex() if head and i == last else e["hash"], source=source,
        )
        for i, e in enumerate(items)
    )
    return Append(
        r["append_id"], r["command_id"], r["command_type"], r["plan_uuid"], r["expected_version"], r["writer"],
        r["appended_at"], r["outcome"], r["reason"], r["command"], events, source, offset,
    )


def append_of(codec: AvroCodec, msg: Message, known: Mapping[bytes, Mapping[str, Any]] | None = None) -> Append:
    """An events-topic record as an ``Append``; a record that is not one raises PoisonRecordError.

    ``known``: records this reader encoded itself, by their bytes (a writer reading back its own appends).
    """
    source, offset = source_of(msg), offset_of(msg)
    value = msg.value() or b""
    record = known.get(value) if known else None
    if record is None:
        place = where(source, offset + 1)
        try:
            name, record = codec.decode(value, place)
        except (CorruptRecordError, UnknownSchemaError) as exc:
            raise PoisonRecordError(str(exc)) from None
        if name != RECORD:
            raise PoisonRecordError(f"{place}: a {name} record on the events topic, where every record is an {RECORD}")
    return append_from(record, source, offset)


class Fence:
    """The rule every reader applies, in partition order: an append stands at its plan's version.

    ``known`` gives the versions of plans this reader has not seen in this process (a read
    model resuming from its stored positions asks its own tables); without it a plan not seen is
    at version 0. The versions it holds are only those seen since ``forget``.
    """

    def __init__(self, known: Callable[[Iterable[str]], Mapping[str, int]] | None = None) -> None:
        self._known = known
        self._versions: dict[str, int] = {}

    def version(self, plan_uuid: str) -> int:
        if plan_uuid not in self._versions:
            self.prime([plan_uuid])
        return self._versions.get(plan_uuid, 0)

    def prime(self, plan_uuids: Iterable[str]) -> None:
        """Look up many plans' versions at once (one query for a whole batch)."""
        missing = {p for p in plan_uuids if p not in self._versions}
        if missing and self._known is not None:
            found = self._known(missing)
            for p in missing:
                self._versions[p] = found.get(p, 0)

    def admit(self, append: Append) -> StaleAppendError | None:
        """None if the append stands (and the plan moves on), else the conflict it is."""
        current = self.version(append.plan_uuid)
        if append.expected_version != current:
            return StaleAppendError(
                f"{append.where}: {append.command_type} {append.command_id} appended by {append.writer} at plan "
                f"{append.plan_uuid} version {append.expected_version}, but the plan was at version {current}: "
                "another append got there first; this one is skipped by every reader"
            )
        self._versions[append.plan_uuid] = current + len(append.events)
        return None

    def forget(self) -> None:
        self._versions.clear()


def appends_in(
    codec: AvroCodec, messages: Iterable[Message], on_poison: Callable[[Message, Exception], None] | None = None,
    known: Mapping[bytes, Mapping[str, Any]] | None = None,
) -> list[Append]:
    """The appends these records are, before the fence; a record that is not one goes to ``on_poison``."""
    appends: list[Append] = []
    for msg in messages:
        try:
            appends.append(append_of(codec, msg, known))
        except PoisonRecordError as exc:
            if on_poison is None:
                raise
            on_poison(msg, exc)
    return appends


def admitted(
    appends: Sequence[Append], fence: Fence, on_conflict: Callable[[Append, StaleAppendError], None] | None = None,
) -> list[Append]:
    """The appends that stand, in the order given (their partition order); the rest go to ``on_conflict``."""
    fence.prime(a.plan_uuid for a in appends)
    out = []
    for append in appends:
        conflict = fence.admit(append)
        if conflict is None:
            out.append(append)
        elif on_conflict is not None:
            on_conflict(append, conflict)
    return out


def events_of(appends: Iterable[Append]) -> list[StoredEvent]:
    return [e for a in appends for e in a.events]
