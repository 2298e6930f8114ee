"""The ports of the write side and the records they deal in: the event log and the dead-letter sink.

The third port, the notification sink, deals in notifications and so lives beside them
(``projections/translator.py``); ARCHITECTURE.md, "The ports", names every implementation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from eventstore.codec import WriterSchema
from eventstore.domain.plan import Plan
from eventstore.exceptions import DuplicateCommandError, StaleVersionError
from eventstore.position import LOG, Position, where
from eventstore.frozen import changed, quick_init

#: The verdict on a command, in the words of the log and the outcomes topic. "pending": on Kafka,
#: a command read back before the handler has said what became of it; "sent": a command its
#: sender did not wait for.
Verdict = Literal["accepted", "unchanged", "rejected", "pending", "sent"]

#: How the handler came to an outcome: decided now (its append stood); handled earlier (a
#: resend gets the first outcome); its id was used by another command (refused); raced (another
#: writer's append of it stood meanwhile, and says what became of it).
How = Literal["decided", "earlier", "reused", "raced"]


@dataclass(frozen=True)
class Outcome:
    """What became of a command: the one answer the handler gives, `--wait` reads back from the
    outcomes topic, and the CLI prints."""

    command_id: str
    plan_uuid: str
    outcome: Verdict
    reason: str = ""
    #: The record names of the events it caused, in order.
    event_types: tuple[str, ...] = ()
    #: The plan after it: its state (None while unknown), version (0 when not known) and each
    #: action's (uuid, action_type, state).
    plan_state: str | None = None
    plan_version: int = 0
    action_states: tuple[tuple[str, str, str], ...] = ()
    how: How = "decided"
    #: Where its events are in the log, where the handler knows it (the embedded log).
    first_position: int | None = None
    last_position: int | None = None

    @property
    def duplicate(self) -> bool:
        """A resend: the outcome of its first handling, nothing done again."""
        return self.how == "earlier"

    @property
    def succeeded(self) -> bool:
        return self.outcome != "rejected"


@quick_init
@dataclass(frozen=True)
class NewEvent:
    event_id: str
    event_type: str
    occurred_at: int
    body: bytes


@quick_init
@dataclass(frozen=True)
class StoredEvent:
    position: int
    plan_uuid: str
    version: int
    event_id: str
    event_type: str
    command_id: str
    occurred_at: int
    body: bytes
    hash: str
    #: Where the position counts: "log" for the embedded log, "<topic>/<partition>" on Kafka
    #: (position = offset + 1 there, so 0 always means "nothing read yet").
    source: str = "log"

    @property
    def where(self) -> str:
        return where(self.source, self.position)


@quick_init
@dataclass(frozen=True)
class CommandRecord:
    """A command as received and what became of it: the audit trail of who asked for what."""

    command_id: str
    command_type: str
    plan_uuid: str
    issued_by: str
    origin: str
    issued_at: int
    body: bytes
    outcome: Verdict
    reason: str
    first_position: int | None = None
    last_position: int | None = None

    def placed(self, first: int | None, last: int | None) -> CommandRecord:
        """The record with the positions its events got (a handler writes one per command: no ``dataclasses.replace``)."""
        return changed(self, first_position=first, last_position=last)


@quick_init
@dataclass(frozen=True)
class AppendRequest:
    """One command's events and outcome, to append at the plan version its decision was made on."""

    plan_uuid: str
    expected_version: int
    events: Sequence[NewEvent]
    command: CommandRecord
    #: The plan as these events leave it, if the writer has it (its decision's): a reader-back keeps it.
    plan: Plan | None = None


AppendResult = CommandRecord | StaleVersionError | DuplicateCommandError


@dataclass(frozen=True)
class RejectedAppend:
    """An append the log refused because another got to the plan's version first: the audit shows it."""

    position: int
    where: str
    appended_at: int
    command_id: str
    command_type: str
    writer: str
    expected_version: int
    reason: str


@dataclass(frozen=True)
class ParkedRecord:
    """A record a consumer cannot use, as a dead-letter sink keeps it: where it was, its key (the
    plan) and its bytes, with the headers it came with (Kafka's; none on the embedded log)."""

    source: str
    #: The log's sequence; on Kafka offset + 1, as every position.
    position: int
    key: str
    value: bytes = b""
    headers: Sequence[tuple[str, str | bytes | None]] = ()


@dataclass(frozen=True)
class DeadLetter:
    """A parked record as ``watcher-es dlq`` lists it: one row shape whichever sink kept it.

    The dead-letter topic keeps Kafka Connect's headers and the record's bytes; an embedded
    consumer (or a CLI's own Kafka model) a row of its file. What one of them cannot say is None.
    """

    #: Where it was read: its topic, or ``log`` (the embedded log).
    topic: str
    #: Its partition; None on the embedded log, which has none.
    partition: int | None
    #: Its place as its source numbers it: the Kafka offset, or the embedded log's position.
    offset: int
    #: The same place as a position (offset + 1 on Kafka, the log position embedded), numbered alike on both.
    position: int
    #: Who parked it: ``handler``, ``read-model``, ``translator`` or ``fence``.
    stage: str
    #: The exception's class, with its module.
    error: str
    message: str
    #: The record's key: the plan, for every record of ours.
    plan_uuid: str
    #: The key as it came (the same; a foreign producer's record may have another).
    key: str
    #: The size of the record's value (None for a row parked before rows kept it).
    bytes: int | None
    #: Where the letter itself is on the dead-letter topic; None for a row in a consumer's file.
    dlq_partition: int | None = None
    dlq_offset: int | None = None

    @classmethod
    def of(cls, source: str, position: int, stage: str, error: str, message: str, key: str, size: int | None,
           dlq: tuple[int, int] | None = None) -> DeadLetter:
        """A letter for a record at ``position`` of ``source`` (``log``, or ``topic/partition``)."""
        topic, _, partition = source.rpartition("/")
        if source == LOG or not partition.isdigit():
            return cls(source, None, position, position, stage, error, message, key, key, size, *(dlq or (None, None)))
        return cls(topic, int(partition), position - 1, position, stage, error, message, key, key, size, *(dlq or (None, None)))


class DeadLetterSink(Protocol):
    """Where a consumer parks what it cannot use, with the stage that refused it and why, and goes on."""

    def park(self, record: ParkedRecord, stage: str, error: BaseException) -> None: ...


def chain_hash(previous: str, body: bytes) -> str:
    """Each event's hash covers its bytes and the previous event of its plan: edits show."""
    return hashlib.sha256(previous.encode("ascii") + body).hexdigest()


def command_hash(previous: str, c: CommandRecord) -> str:
    """A command's hash covers everything `audit` shows of it, chained to the command stored before."""
    fields = (
        c.command_id, c.command_type, c.plan_uuid, c.issued_by, c.origin, str(c.issued_at), c.outcome, c.reason,
        str(c.first_position), str(c.last_position),
    )
    return hashlib.sha256("\x1f".join((previous, *fields)).encode() + b"\x1e" + c.body).hexdigest()


def pages(log: LogReader, batch_size: int, after: Position = Position()) -> Iterator[list[StoredEvent]]:
    """The log after ``after``, a page at a time: what replay, verify and the projections stream through."""
    while batch := log.events_after(after, limit=batch_size):
        yield batch
        after = Position.of({**dict(after.sources), **{e.source: e.position for e in batch}})


@runtime_checkable
class EventLog(Protocol):
    """The event log port: what the write side needs of a backend (``CommandHandler`` over it).

    ``SqliteEventLog`` (eventstore/sqlite/log.py) and ``KafkaEventLog`` (eventstore/kafka/log.py)
    implement it and pass one contract suite (tests/contracts/event_log.py). Reading back what was
    appended is no part of it: on Kafka every reader consumes the topic in its own way.
    """

    def append(self, plan_uuid: str, expected_version: int, events: Sequence[NewEvent], command: CommandRecord) -> CommandRecord:
        """Append one command's events and its outcome atomically, at the plan's expected version.

        Raises StaleVersionError if the plan is no longer at ``expected_version`` (another append
        got there first: nothing of this one is ever applied by any reader) and
        DuplicateCommandError if the command id was already handled.
        """

    def append_all(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        """``append`` for each request in order, each atomic on its own; each one's result (the
        stored record, or the StaleVersionError or DuplicateCommandError it met) instead of raising.
        On Kafka the whole batch is produced and confirmed together."""

    def command_outcome(self, command_id: str) -> CommandRecord | None:
        """The command and what became of it, if it was handled."""

    def record_refused(self, command: CommandRecord) -> None:
        """Keep, for the audit, a command refused before any decision (an id already used by another command)."""

    def writer_schemas(self) -> list[WriterSchema]: ...

    def keep_schemas(self, schemas: Sequence[WriterSchema]) -> None: ...


@runtime_checkable
class LogReader(Protocol):
    """A log read back by plan and by position: the embedded log (``SqliteEventLog``), which its
    projections, replay and verify read so. On Kafka the parts consume the topic themselves."""

    def read_plan(self, plan_uuid: str, until_position: int | None = None) -> list[StoredEvent]:
        """One plan's events in version order (a plan lives in one source), up to a position of it."""

    def events_after(self, after: Position, limit: int = 1000) -> list[StoredEvent]:
        """Events past ``after`` in log order, about ``limit`` of them: one command's events are never split."""


class ReadableLog(EventLog, LogReader, Protocol):
    """An event log its writer can also read back: what ``FoldedPlans`` folds (the embedded log)."""
