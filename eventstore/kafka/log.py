"""The EventLog port on a Kafka events topic: atomic, fenced appends (the record and the fence:
``appends.py``), judged in partition order.

Once the cluster confirms an append, one that lost to another writer's raises
``StaleVersionError``, as the SQLite log's unique key does. ``append_all``, the handler's path,
does a batch with one flush. Where the delivery reports say a partition's records of ours landed
one after another right where the state ends, nothing can stand between them: the fence judges
them at once from the records written, and they are never fetched back. Elsewhere (another
writer's record landed first) the partition is read back from where the state ends and they are
judged there. The topic is read only then, at the first append and when the handler asks (after
a rebalance or a failure): in between the follower is paused, and a decision made on a state
another writer has moved on loses at the fence and is made again. Each append chains on the hash of the version it was decided on,
so that version must be one this log has read: one decided on appends it has not fetched yet
waits a moment for them, and is refused as stale if they do not come.

The state (``PlanStateStore``) holds each plan's version and chain head, each handled command's
record and the positions they reflect, so a log opened on a stored state reads only the topic's
tail; without a file it is in memory and the topic is read from its start.

It only writes (the port is the write side's): what stands is folded into the state as it is
judged, and every other reader of the topic consumes it through the fence in its own way.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from confluent_kafka import OFFSET_BEGINNING

from eventstore.codec import AvroCodec, WriterSchema
from eventstore.domain.plan import Plan
from eventstore.exceptions import DuplicateCommandError, KafkaUnavailableError, StaleAppendError, StaleVersionError
from eventstore.log import AppendRequest, AppendResult, CommandRecord, DeadLetterSink, NewEvent, ParkedRecord, Verdict
from eventstore.kafka.appends import Append, Fence, PreparedAppend, admitted, append_from, appends_in, new_writer_id, prepare_append
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import DeadLetters, Publisher, TopicFollower, positions_reached
from eventstore.kafka.records import offset_of, partition_source, source_of
from eventstore.kafka.state_store import PlanStateStore


#: Called with every append that stands, in partition order, and the plan it leaves when this
#: writer knows it already (its own append: the decision's plan, not decoded again); a handler
#: folds its plans with it into the same store, in the same transaction.
AppendListener = Callable[[Append, Plan | None], None]


def command_record(codec: AvroCodec, append: Append) -> CommandRecord:
    """What a standing append says of its command: the audit trail's row."""
    issued_by, origin, issued_at = "", "", append.appended_at
    if append.command:
        _, r = codec.decode(append.command, f"the command in {append.where}")
        issued_by, origin, issued_at = r["issued_by"], r["origin"], r["issued_at"]
    first = append.position if append.events else None
    return CommandRecord(
        append.command_id, append.command_type, append.plan_uuid, issued_by, origin, issued_at, append.command,
        cast(Verdict, append.outcome), append.reason, first, first,
    )


class KafkaEventLog:
    """One writer (and reader) of the events topic, its state in ``state`` (in memory if not given)."""

    def __init__(
        self, settings: KafkaSettings, codec: AvroCodec, publisher: Publisher | None = None, writer: str | None = None,
        state: PlanStateStore | None = None, listener: AppendListener | None = None,
    ) -> None:
        self._settings = settings
        self._codec = codec
        self.writer = writer or new_writer_id()
        self._publisher = publisher or Publisher(settings, report_offsets=True)
        self._dead: DeadLetterSink = DeadLetters(self._publisher, settings.topics.dead_letters)
        self.state = state if state is not None else PlanStateStore(None)
        self._follower: TopicFollower | None = self._follow()
        self._fence = Fence(known=self.state.versions)
        self._pending: dict[str, tuple[PreparedAppend, AppendRequest]] = {}
        #: The records of the pending appends by their bytes: read back without decoding them again.
        self._mine: dict[bytes, Mapping[str, Any]] = {}
        self._results: dict[str, bool] = {}
        #: Where the cluster put each pending append: (partition, offset).
        self._placed: dict[str, tuple[int, int]] = {}
        self._listener = listener
        #: Append ids: a count, unique with ``writer`` (an instance's own), cheaper and shorter than a uuid.
        self._count = itertools.count(1)
        #: Records folded from the events topic by this log, not counting its own appends judged
        #: where they landed (what a restart on a stored state saves).
        self.records_read = 0
        #: Whether this log has read the topic (to its end) at least once.
        self.has_read = False

    def _follow(self) -> TopicFollower:
        self._paused = False
        return TopicFollower(self._settings, self._settings.topics.events, start=self._start)

    def _start(self, partition: int) -> int:
        """Where reading a partition goes on: the state's position of it (its next offset)."""
        return self.state.position(partition_source(self._settings.topics.events, partition)) or OFFSET_BEGINNING

    def close(self) -> None:
        self._publisher.flush()
        if self._follower is not None:
            self._follower.close()
        self.state.commit()  # only judged appends are pending: each one is on the topic, as its position says
        self.state.close()

    # ---------------------------------------------------------------- reading the topic forward

    def refresh(self, wait_s: float = 0.0) -> None:
        """Read every partition to its end through the fence, folding each page into the state.

        Up to ``wait_s`` is spent waiting for a first record when the log was current already.
        Our own appends that were judged where they landed come back too, and are skipped.
        A page that cannot be committed is dropped with everything pending, and the topic is read
        again from the stored positions.
        """
        if self._follower is None:
            self._follower = self._follow()
        elif self._paused:  # read on from where the state is: our own appends judged where they landed are not fetched again
            self._follower.rewind(self._start)
        try:
            for page in self._follower.pages(wait_s=wait_s):
                page = [msg for msg in page if offset_of(msg) >= self.state.position(source_of(msg))]
                self.records_read += len(page)
                self._judge(appends_in(self._codec, page, lambda m, e: None, self._mine), positions_reached(page))
        except BaseException:
            self.state.discard()
            self._fence.forget()
            follower, self._follower = self._follower, None  # opened again at the stored positions
            follower.close()
            raise
        self._follower.pause()  # nothing fetched until the next read: most appends are judged where they land
        self._paused = self.has_read = True

    def _judge(self, appends: list[Append], positions: Mapping[str, int]) -> None:
        """Judge appends read (or placed) in partition order at the fence, and fold what stands into the
        state with the positions (written with them when the store says it is due)."""
        for append in admitted(appends, self._fence, self._lost):
            self._stood(append)
        self.state.stage(positions)
        self.checkpoint()
        self._fence.forget()  # the versions are in the store now (pending ones included)

    def checkpoint(self) -> None:
        """Write the state's pending changes if they are due: a part calls it on every poll, idle or not."""
        if self.state.due:
            self.state.commit()

    def _judge_where_placed(self) -> None:
        """Our appends that landed one after another right where this log's state of their partition ends.

        Nothing can stand between them, so the fence judges them here exactly as every reader
        will, from the records we wrote and the offsets the cluster confirmed, without waiting to
        read them back. Any other partition (a record of another writer before or among ours,
        or an offset unknown) is read back as before.
        """
        topic = self._settings.topics.events
        by_partition: dict[int, list[tuple[int, str]]] = {}
        for append_id in self._pending:
            if append_id not in self._placed:
                return  # a publisher without delivery offsets: its partition is unknown, so is what came before it
            partition, offset = self._placed[append_id]
            by_partition.setdefault(partition, []).append((offset, append_id))
        for partition, placed in by_partition.items():
            where = partition_source(topic, partition)
            placed.sort()
            first = self.state.position(where)
            if [offset for offset, _ in placed] != list(range(first, first + len(placed))):
                continue
            appends = [append_from(self._pending[i][0].record, where, offset) for offset, i in placed]
            self._judge(appends, {where: first + len(placed)})

    def _mine_of(self, append: Append) -> tuple[PreparedAppend, AppendRequest] | None:
        """The pending append this is, if this writer wrote it (an append id is unique per writer only)."""
        return self._pending.get(append.append_id) if append.writer == self.writer else None

    def _stood(self, append: Append) -> None:
        mine = self._mine_of(append)
        first = append.position if append.events else None
        if mine is not None:  # our own append: its record and plan are known, nothing to decode
            self._results[append.append_id] = True
            record = mine[1].command.placed(first, first)
        else:
            record = command_record(self._codec, append)
        self.state.put_command(record)
        if append.last_hash is not None:
            self.state.mark(append.plan_uuid, append.expected_version + len(append.events), append.last_hash)
        if self._listener is not None:
            self._listener(append, mine[1].plan if mine is not None else None)

    def _lost(self, append: Append, error: StaleAppendError) -> None:
        mine = self._mine_of(append)
        if mine is not None:  # ours lost: say so where operators look, once, from the writer that lost
            self._results[append.append_id] = False
            self._dead.park(ParkedRecord(append.source, append.position, append.plan_uuid, mine[0].value), "fence", error)

    def version(self, plan_uuid: str) -> int:
        return self._fence.version(plan_uuid)

    def prime(self, plan_uuids: Iterable[str]) -> None:
        """Look up the versions of a batch's plans at once (new plans included), not one query each."""
        self._fence.prime(plan_uuids)

    # ---------------------------------------------------------------- the port

    def append(self, plan_uuid: str, expected_version: int, events: Sequence[NewEvent], command: CommandRecord) -> CommandRecord:
        [result] = self.append_all([AppendRequest(plan_uuid, expected_version, events, command)])
        if isinstance(result, Exception):
            raise result
        return result

    def append_all(self, requests: Sequence[AppendRequest], timeout_s: float = 60.0) -> list[AppendResult]:
        """Append each request in order with one flush (and a read-back where needed); each result says whether it stood.

        The topic is read first only if this log never has: an append decided on a state that
        another writer moved on meanwhile lands after that writer's record, is read back there and
        loses at the fence, so reading before every batch would only save that rare retry, at the
        price of a fetch for every batch.
        """
        if not self.has_read:
            self.refresh()
        try:
            return self._append_all(requests, timeout_s)
        finally:
            self._pending, self._results, self._mine, self._placed = {}, {}, {}, {}

    #: How long an append decided on a version this log has not read yet waits for it to arrive.
    CATCH_UP_S = 2.0

    def _catch_up_to(self, requests: Sequence[AppendRequest]) -> None:
        """Read on until this log knows every version the requests were decided on, for a while.

        A caller may have seen appends this log's last refresh had not fetched yet (another
        writer's, just confirmed); chaining on them needs their hashes. The handler never asks
        for more than its log knows, so it never waits here.
        """
        needed: dict[str, int] = {}
        after: dict[str, int] = {}
        for r in requests:
            if after.get(r.plan_uuid) != r.expected_version:  # not the version an earlier request of the batch leaves
                needed[r.plan_uuid] = max(needed.get(r.plan_uuid, 0), r.expected_version)
            after[r.plan_uuid] = r.expected_version + len(r.events)
        deadline = time.monotonic() + self.CATCH_UP_S
        while time.monotonic() < deadline:
            behind = {p: v for p, v in needed.items() if v > 0}
            known = self.state.versions(behind)
            if all(known.get(p, 0) >= v for p, v in behind.items()):
                return
            self.refresh(wait_s=0.05)

    def _on_placed(self, append_id: str, partition: int, offset: int) -> None:
        self._placed[append_id] = (partition, offset)

    def _append_all(self, requests: Sequence[AppendRequest], timeout_s: float) -> list[AppendResult]:
        self._catch_up_to(requests)
        #: Each plan's version and chain head as this batch's appends leave it, where they can stand.
        heads: dict[str, tuple[int, str]] = {}
        ids: list[str | DuplicateCommandError | StaleVersionError] = []
        batch: set[str] = set()
        for r in requests:
            if r.command.command_id in batch or self.state.command(r.command.command_id) is not None:
                ids.append(DuplicateCommandError(r.command.command_id))
                continue
            version, head = heads.get(r.plan_uuid) or (self.state.version(r.plan_uuid), self.state.head(r.plan_uuid))
            if r.expected_version > version:
                # Decided on appends this log has not read: it cannot chain on their hash, and an
                # append that stood with a wrong one would break the plan's chain for every reader.
                ids.append(StaleVersionError(r.plan_uuid, r.expected_version, version))
                continue
            batch.add(r.command.command_id)
            prepared = prepare_append(
                self._codec, append_id=str(next(self._count)), command_id=r.command.command_id, command_type=r.command.command_type, plan_uuid=r.plan_uuid,
                expected_version=r.expected_version, writer=self.writer, appended_at=time.time_ns() // 1000,
                outcome=r.command.outcome, reason=r.command.reason, events=r.events, previous_hash=head, command=r.command.body,
            )
            self._publisher.produce(  # no headers: the value says everything a reader needs
                self._settings.topics.events, r.plan_uuid, prepared.value, None, functools.partial(self._on_placed, prepared.append_id),
            )
            self._pending[prepared.append_id] = (prepared, r)
            self._mine[prepared.value] = prepared.record
            if r.expected_version == version:  # one decided on an older version loses: the next chains on what stands
                heads[r.plan_uuid] = (r.expected_version + len(r.events), prepared.last_hash)
            ids.append(prepared.append_id)
        if not self._pending:
            return [i for i in ids if not isinstance(i, str)]
        self._publisher.flush()
        self._judge_where_placed()
        deadline = time.monotonic() + timeout_s
        while len(self._results) < len(self._pending):
            if time.monotonic() > deadline:
                raise KafkaUnavailableError(f"{len(self._pending) - len(self._results)} confirmed append(s) never read back from {self._settings.topics.events}")
            self.refresh(wait_s=0.05)  # our own appends, read back: the partition order says which stood
        out: list[AppendResult] = []
        for r, i in zip(requests, ids, strict=True):
            if not isinstance(i, str):
                out.append(i)
            elif self._results[i]:
                out.append(cast(CommandRecord, self.state.command(r.command.command_id)))
            else:
                out.append(StaleVersionError(r.plan_uuid, r.expected_version, self._fence.version(r.plan_uuid)))
        return out

    def command_outcome(self, command_id: str) -> CommandRecord | None:
        self.refresh(wait_s=0.01)
        return self.state.command(command_id)

    def record_refused(self, command: CommandRecord) -> None:
        """On Kafka the refusal is the command's outcome record (the handler publishes it); nothing to append."""

    def writer_schemas(self) -> list[WriterSchema]:
        return self._codec.current_schemas()

    def keep_schemas(self, schemas: Sequence[WriterSchema]) -> None:
        """Every released schema ships with the code (avro/history): nothing to keep beside a topic."""


__all__ = ["KafkaEventLog", "command_record"]
