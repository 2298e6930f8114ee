"""`watcher-es serve` on the embedded store: one part that catches the projections up, and the
deadline pass; with ``--watcher-topic``, the bridge beside it, on a backend of its own."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from eventstore.boundary import guarded
from eventstore.bridge.part import BridgePart
from eventstore.bridge.state import BridgeState
from eventstore.domain.messages import Command
from eventstore.sqlite_support import sqlite_error
from projections.dead_letters import ParkingLot
from projections.service import Check, Part, Service
from projections.sqlite.backend import EmbeddedBackend
from projections.sqlite.measures import EmbeddedCheck
from projections.store import WatcherFeed

logger = logging.getLogger(__name__)


def embedded_service(backend: EmbeddedBackend, interval_s: float, say: Callable[[str], object], feed: WatcherFeed | None = None) -> Service:
    """The service; ``say`` reports each deadline the pass enforced."""

    def deadline_pass() -> bool:
        for result in backend.enforce_deadlines("watcher-es serve"):
            say(f"deadline pass: plan {result.plan_uuid}: {result.outcome}")
        return True

    parts: dict[str, Part] = {"projections": CatchingUp(backend, interval_s)}
    checks: dict[str, Check] = {}
    closers: list[Callable[[], object]] = []
    lots = []
    if feed is not None:
        # Its own connections: the bridge runs in a thread of its own, and a backend is one writer's.
        bridging = EmbeddedBackend(backend.settings, backend.clock)
        state = BridgeState(backend.settings.paths.bridge_state)
        bridge = EmbeddedBridge(feed.open(state.positions()), EmbeddedCommands(bridging), ParkingLot(state.db), state)
        parts["bridge"], checks["bridge"] = bridge, bridge.source.check
        closers.append(bridging.close)
        lots.append(state.db)
    checks["projections"] = EmbeddedCheck(backend, lots)
    return Service(parts, deadline_pass=deadline_pass, interval_s=interval_s, closers=closers, checks=checks)


@guarded(sqlite_error)
class EmbeddedBridge(BridgePart):
    """The bridge on the embedded store: its SQLite errors are ours (its source's are its own adapter's)."""


class EmbeddedCommands:
    """The bridge's command sink on the embedded store: each command handled, and durable, before the next."""

    def __init__(self, backend: EmbeddedBackend) -> None:
        self._backend = backend

    def send_all(self, commands: Sequence[Command]) -> None:
        for command in commands:
            outcome = self._backend.submit(command)
            if outcome.outcome == "rejected":
                logger.warning(
                    "bridge: %s %s of plan %s rejected: %s", type(command).__name__, command.command_id, command.plan_uuid, outcome.reason,
                    extra={"plan": command.plan_uuid, "command": command.command_id},
                )


@guarded(sqlite_error)
class CatchingUp:
    """The embedded `serve`'s one part: the projections caught up with what other processes
    appended. The log cannot wake it, so an idle poll waits ``idle_s`` (``serve --interval``)."""

    def __init__(self, backend: EmbeddedBackend, idle_s: float) -> None:
        self._backend = backend
        self._idle_s = idle_s

    def poll(self, timeout: float = 0.2) -> int:
        done = self._backend.catch_up()
        if not done and timeout:
            time.sleep(self._idle_s)
        return done

    def close(self) -> None:
        """The backend is its store's to close."""
