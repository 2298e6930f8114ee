"""The bridge as a part of `serve`: read Watcher's topics, put the notifications back in order,
mirror them into commands, send the commands, then store the state and the positions.

The ports it runs on: a ``WatcherSource`` (Watcher's ``<topic>.info``/``.error`` on a Kafka
cluster today: ``eventstore/kafka/watcher.py``; Watcher on RabbitMQ sends the same envelope and
would be another source), a ``CommandSink`` (the commands topic, or the embedded store's
handler) and a ``DeadLetterSink`` for what it cannot use (stage ``bridge``). Nothing is stored
before the commands it made are durable; the positions stored never pass a record still held
for ordering, so a restart reads those again, and every command id derives from its
notification: what is read twice is taken once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from eventstore import metrics
from eventstore.bridge.mirror import Mirror, PlanNotCreatedError
from eventstore.bridge.ordering import Reorder
from eventstore.bridge.received import ReceivedNotification, parse
from eventstore.bridge.state import BridgeState
from eventstore.config import system_clock
from eventstore.domain.messages import Command
from eventstore.exceptions import UnusableNotificationError
from eventstore.log import DeadLetterSink, ParkedRecord
from eventstore.position import where

logger = logging.getLogger(__name__)

STAGE = "bridge"

#: A plan is registered this long after its audit's planning ended (``audit.planner.end``): an
#: ``action.create`` delivered after it, on another partition, still makes it.
SETTLE_US = 2 * 1_000_000
#: A plan whose creation has had no notification for this long and no ``audit.planner.end`` is
#: registered with the actions known.
CREATION_TIMEOUT_US = 60 * 1_000_000


@dataclass(frozen=True)
class Incoming:
    """One record of Watcher's topics: where it was read (``source``, ``position`` = offset + 1) and its bytes."""

    source: str
    position: int
    value: bytes
    key: str = ""
    headers: Sequence[tuple[str, str | bytes | None]] = field(default=())

    def parked(self) -> ParkedRecord:
        return ParkedRecord(self.source, self.position, self.key, self.value, self.headers)


class WatcherSource(Protocol):
    @property
    def sources(self) -> list[str]:
        """Every partition read (``topic/partition``)."""

    def poll(self, timeout: float) -> list[Incoming]: ...

    def at_end(self) -> Mapping[str, bool]:
        """Which sources have been read to their end (nothing older is still to come from them)."""

    def check(self, timeout: float) -> int | None:
        """Raise our error unless the source answers within ``timeout``; the records still to read (None if unknown)."""

    def close(self) -> None: ...


class CommandSink(Protocol):
    def send_all(self, commands: Sequence[Command]) -> None:
        """Every command, in order; durable when this returns."""


class BridgePart:
    """``serve``'s bridge part: ``poll`` handles what arrived, ``close`` closes the source and the state."""

    def __init__(
        self, source: WatcherSource, sink: CommandSink, dead: DeadLetterSink, state: BridgeState, *,
        confirm_dead: Callable[[], object] = lambda: None, grace_s: float = 1.0, origin: str = "watcher-es bridge",
        clock: Callable[[], int] = system_clock,
    ) -> None:
        self._source = source
        self._sink = sink
        self._dead = dead
        self._confirm_dead = confirm_dead
        self._state = state
        self._mirror = Mirror(state.plans(), origin)
        self._reorder: Reorder[tuple[ReceivedNotification, Incoming]] = Reorder(grace_s)
        self._read: dict[str, int] = state.positions()
        self._stored = dict(self._read)
        self._clock = clock
        #: Notifications taken (what `make bench` counts).
        self.taken = 0

    @property
    def source(self) -> WatcherSource:
        return self._source

    def close(self) -> None:
        self._source.close()
        self._state.close()

    def poll(self, timeout: float = 0.2) -> int:
        records = self._source.poll(timeout if not len(self._reorder) else min(timeout, 0.05))
        taken = self.taken
        parked = False
        for record in records:
            self._read[record.source] = max(self._read.get(record.source, 0), record.position)
            try:
                notification = parse(record.value, where(record.source, record.position))
            except UnusableNotificationError as exc:
                self._dead.park(record.parked(), STAGE, exc)
                parked = True
                continue
            self._reorder.add(notification.timestamp, record.source, record.position, (notification, record))
        commands: list[Command] = []
        unregistered: list[tuple[str, int, str, str]] = []
        for notification, record in self._reorder.release(self._source.sources, self._source.at_end()):
            try:
                commands += self._mirror.take(notification)
            except PlanNotCreatedError as exc:
                unregistered.append((exc.plan_uuid, notification.timestamp, "action_plan.create", notification.event_type))
                self._dead.park(record.parked(), STAGE, exc)
                parked = True
            except UnusableNotificationError as exc:
                self._dead.park(record.parked(), STAGE, exc)
                parked = True
            self.taken += 1
        commands += self._mirror.due(self._clock(), SETTLE_US, CREATION_TIMEOUT_US)
        if commands:
            self._sink.send_all(commands)  # durable before anything is stored
        metrics.bridge_took(self.taken - taken, commands)
        if parked:
            self._confirm_dead()
        positions = self._positions()
        if positions != self._stored or unregistered or self._mirror.changed:
            self._store(positions, unregistered)
        return len(records)

    def _positions(self) -> dict[str, int]:
        """Each partition's next offset, never past a record still held for ordering."""
        held = self._reorder.first_positions()
        return {s: min(p, held[s] - 1) if s in held else p for s, p in self._read.items()}

    def _store(self, positions: dict[str, int], unregistered: list[tuple[str, int, str, str]]) -> None:
        changed = [self._mirror.plans[u] for u in sorted(self._mirror.changed) if u in self._mirror.plans]
        forgotten = self._state.commit(changed, positions, unregistered)
        self._stored = positions
        self._mirror.changed.clear()
        self._mirror.forget(forgotten)
