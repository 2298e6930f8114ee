"""The store port: the questions every CLI command asks, answered alike by both backends (ARCHITECTURE.md, "the store").

``projections/sqlite/store.py`` and ``projections/kafka/store.py`` implement it; ``projections/backends.py`` picks one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from eventstore.config import Settings
from eventstore.exceptions import WatcherEsError

# Only names for the type checker: `status` and `plans` must answer within the CLI's start-up
# time, so nothing here loads the codec, sqlite-utils or the services.
if TYPE_CHECKING:
    from eventstore.bridge.part import WatcherSource
    from eventstore.domain.messages import Command, Fault
    from eventstore.log import DeadLetter, Outcome
    from projections.audit import PlanStory
    from projections.demo import DemoReport
    from projections.replay import ProgressCallback, ReplayResult
    from projections.translator import Notification
    from projections.verify import VerifyReport

Row = dict[str, Any]


@dataclass(frozen=True)
class WatcherFeed:
    """Where `serve`'s bridge reads Watcher's notifications (``--watcher-topic``): ``open`` makes the
    source, reading each partition from the positions given; ``shown`` says where, for the log."""

    open: Callable[[Mapping[str, int]], WatcherSource]
    shown: str


class UnknownPlanError(WatcherEsError):
    """The store has no such plan."""


@dataclass(frozen=True)
class UnregisteredPlan:
    """A plan Watcher's notifications named but the bridge could not register, and what was missing."""

    plan_uuid: str
    missing: str
    notifications: int
    last_event_type: str
    first_seen: int
    last_seen: int


def unregistered_plans(settings: Settings) -> list[UnregisteredPlan]:
    """What the bridge beside --db could not register, newest first (none without a bridge)."""
    from eventstore.bridge.state import unregistered_plans as read

    return [
        UnregisteredPlan(r["plan_uuid"], r["missing"], r["notifications"], r["last_event_type"], r["first_seen"], r["last_seen"])
        for r in read(settings.paths.bridge_state)
    ]


def unknown_plan(settings: Settings, uuid: str) -> UnknownPlanError:
    """Why a plan is not in the store: never registered, or named by Watcher without its creation."""
    for plan in unregistered_plans(settings):
        if plan.plan_uuid == uuid:
            return UnknownPlanError(
                f"action plan {uuid} is not registered: Watcher's notifications name it ({plan.notifications}, the last "
                f"{plan.last_event_type}) but the bridge never saw its {plan.missing} (it started after Watcher created the plan)"
            )
    return UnknownPlanError(f"action plan {uuid} is not registered")


class MissingLogError(WatcherEsError):
    """There is no event log at the configured --db path."""


class MissingModelError(WatcherEsError):
    """The read model `serve` keeps is not on this host."""


@dataclass(frozen=True)
class ConsumerPosition:
    part: str
    source: str
    position: int | None
    lag: int


class Store(Protocol):
    """What the CLI asks of a store; each command calls one of these and prints the answer."""

    def close(self) -> None: ...
    def submit(self, command: Command, *, wait: bool, timeout: float) -> Outcome: ...
    def cancellation_end(self, plan_uuid: str, timeout: float) -> tuple[str, Fault | None]: ...
    def plan(self, uuid: str) -> tuple[Row, list[Row]]: ...
    def plans(self, state: str | None) -> list[Row]: ...
    def consumers(self) -> list[ConsumerPosition]: ...
    def notifications(self, plan: str | None, after: int, follow: bool) -> Iterator[list[tuple[int, dict[str, Any]]]]: ...
    def replayed_notifications(self, plan: str | None, first: int, last: int | None) -> Iterator[Notification]: ...
    def publish(self, notes: Iterator[Notification]) -> int: ...
    def enforce_deadlines(self, origin: str) -> list[Outcome]: ...
    def demo(self) -> DemoReport: ...
    def serve(
        self, only: Sequence[str], interval: float, once: bool, say: Any, processes: bool = False, feed: WatcherFeed | None = None,
    ) -> None: ...
    def audit(self, plan: str) -> PlanStory: ...
    def verify(self, on_disk: bool) -> VerifyReport: ...
    def replay(self, until: str | None, into: Path | None, progress: ProgressCallback | None) -> ReplayResult: ...
    def unregistered(self) -> list[UnregisteredPlan]:
        """Plans Watcher named but the bridge could not register."""

    def dead_letters(self, limit: int) -> list[DeadLetter]: ...
    def init(self, partitions: int, replication_factor: int) -> list[Any] | None: ...
