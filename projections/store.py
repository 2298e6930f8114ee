"""A watcher-es store as every CLI command sees it, the embedded one or a cluster: see "the store" in ARCHITECTURE.md."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from eventstore.config import Settings
from eventstore.exceptions import CommandValidationError, WaitTimeoutError, WatcherEsError
from eventstore.sqlite_support import open_read_only

from .model_view import ModelView

# The rest loads when a command needs it: `status` and `plans` read through ``ModelView`` alone
# and answer within the CLI's start-up time (fastavro, sqlite-utils and the services stay unloaded).
if TYPE_CHECKING:
    from eventstore.codec import AvroCodec
    from eventstore.domain.messages import Command, Fault
    from eventstore.handler import HandlingResult
    from eventstore.sqlite_log import SqliteEventLog

    from .audit import PlanStory
    from .demo import DemoReport
    from .embedded import EmbeddedBackend
    from .replay import ProgressCallback, ReplayResult
    from .translator import Notification
    from .verify import VerifyReport

Row = dict[str, Any]


class UnknownPlanError(WatcherEsError):
    """The store has no such plan."""


class MissingLogError(WatcherEsError):
    """There is no event log at the configured --db path."""


class MissingModelError(WatcherEsError):
    """The read model `serve` keeps is not on this host."""


@dataclass(frozen=True)
class Submitted:
    """What became of a command (``sent`` on a cluster when the caller does not wait)."""

    command_id: str
    plan_uuid: str
    outcome: Literal["accepted", "unchanged", "rejected", "pending", "sent"]
    reason: str = ""
    duplicate: bool = False
    event_types: list[str] = field(default_factory=list)
    plan_state: str | None = None

    @classmethod
    def of(cls, result: HandlingResult, plan_state: str | None = None) -> Submitted:
        return cls(result.command_id, result.plan_uuid, result.outcome, result.reason, result.duplicate, result.event_types, plan_state)


@dataclass(frozen=True)
class ConsumerPosition:
    part: str
    source: str
    position: int | None
    lag: int


class Store(Protocol):
    def close(self) -> None: ...
    def submit(self, command: Command, *, wait: bool, timeout: float) -> Submitted: ...
    def settled(self, plan_uuid: str, timeout: float) -> tuple[str, Fault | None]: ...
    def plan(self, uuid: str) -> tuple[Row, list[Row]]: ...
    def plans(self, state: str | None) -> list[Row]: ...
    def consumers(self) -> list[ConsumerPosition]: ...
    def notifications(self, plan: str | None, after: int, follow: bool) -> Iterator[list[tuple[int, dict[str, Any]]]]: ...
    def replayed_notifications(self, plan: str | None, first: int, last: int | None) -> Iterator[Notification]: ...
    def publish(self, notes: Iterator[Notification]) -> int: ...
    def enforce_deadlines(self, origin: str) -> list[Submitted]: ...
    def demo(self) -> DemoReport: ...
    def serve(self, only: Sequence[str], interval: float, once: bool, say: Any, processes: bool = False) -> None: ...
    def audit(self, plan: str) -> PlanStory: ...
    def verify(self, on_disk: bool) -> VerifyReport: ...
    def replay(self, until: str | None, into: Path | None, progress: ProgressCallback | None) -> ReplayResult: ...
    def dead_letters(self, limit: int) -> list[Row]: ...
    def init(self, partitions: int, replication_factor: int) -> list[Any] | None: ...


def open_store(settings: Settings) -> Store:
    """The one place that asks which backend the settings name (the Kafka side is loaded only for it)."""
    if settings.kafka is None:
        return EmbeddedStore(settings)
    from .kafka_store import KafkaStore

    return KafkaStore(settings, settings.kafka)


# ---------------------------------------------------------------- the embedded store


class EmbeddedStore:
    """Everything in SQLite files beside --db; commands are handled in the calling process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._backend: EmbeddedBackend | None = None
        self._view: ModelView | None = None

    @property
    def backend(self) -> EmbeddedBackend:
        """The writer's side: log, handler and both projections (commands, and `serve`)."""
        if self._backend is None:
            from .embedded import EmbeddedBackend

            self._backend = EmbeddedBackend(self.settings)
        return self._backend

    def _require_log(self) -> Path:
        """A read command's store must be there: it is an error, never created."""
        path = self.settings.paths.log
        if not path.exists():
            raise MissingLogError(f"no event log at {path} (set --db or WATCHER_ES_DB)")
        return path

    @property
    def existing(self) -> EmbeddedBackend:
        """The backend for a read command (its log must exist)."""
        if self._backend is None:
            self._require_log()
        return self.backend

    @property
    def view(self) -> ModelView:
        """What read commands read: the model as `serve` and the writers keep it, never caught up here."""
        if self._view is None:
            open_read_only(self._require_log(), "watcher-es.log", "watcher-es event log").close()  # refuses a file that is not a log
            self._view = ModelView(self.settings.paths.model)
        return self._view

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
        if self._view is not None:
            self._view.close()

    def submit(self, command: Command, *, wait: bool, timeout: float) -> Submitted:
        return Submitted.of(self.backend.submit(command))

    def settled(self, plan_uuid: str, timeout: float) -> tuple[str, Fault | None]:
        """Another process reports the aborts: re-read the plan until its cancellation ends."""
        from eventstore.handler import load_plan

        deadline = time.monotonic() + timeout
        while True:
            plan = load_plan(self.backend.codec, self.backend.log.read_plan(plan_uuid))
            if plan is None or plan.state != "CANCELLING":
                return (plan.state if plan else "UNKNOWN"), (plan.fault if plan else None)
            if time.monotonic() > deadline:
                raise WaitTimeoutError(f"plan {plan_uuid} is still CANCELLING after {timeout:.0f} s")
            time.sleep(0.2)

    def plan(self, uuid: str) -> tuple[Row, list[Row]]:
        row = self.view.plan(uuid)
        if row is None:
            raise UnknownPlanError(f"action plan {uuid} is not registered")
        return row, self.view.actions(uuid)

    def plans(self, state: str | None) -> list[Row]:
        return self.view.plans(state)

    def consumers(self) -> list[ConsumerPosition]:
        end = self.existing.log.last_position()
        return [
            ConsumerPosition(part, str(self.settings.paths.log), position, end - position)
            for part, position in (("read-model", self.existing.model.position()), ("translator", self.existing.outbox.position()))
        ]

    def notifications(self, plan: str | None, after: int, follow: bool) -> Iterator[list[tuple[int, dict[str, Any]]]]:
        seq = after
        while True:  # writers and `serve` keep the notifications current; a reader only reads
            batch = self.existing.outbox.read(seq, plan_uuid=plan)
            if batch:
                seq = batch[-1][0]
                yield batch
            if not follow:
                return
            time.sleep(0.05)  # a cheap indexed read: followers see a cancel within ms

    def replayed_notifications(self, plan: str | None, first: int, last: int | None) -> Iterator[Notification]:
        from .replay import replay_notifications
        from .translator import translator_for

        backend = self.existing
        translator = translator_for(backend.settings, backend.codec, backend.log, recorded=backend.outbox.payload_sets_of)
        translator.set_level(backend.outbox.translator.level)  # the store's level, as when first emitted
        return replay_notifications(backend.log, translator, first, last, plan_uuid=plan)

    def publish(self, notes: Iterator[Notification]) -> int:
        raise CommandValidationError("--publish sends to the Kafka notification topics: it needs --bootstrap-servers")

    def enforce_deadlines(self, origin: str) -> list[Submitted]:
        return [Submitted.of(r) for r in self.backend.enforce_deadlines(origin)]

    def demo(self) -> DemoReport:
        from .demo import run_demo

        return run_demo(self.backend)

    def serve(self, only: Sequence[str], interval: float, once: bool, say: Any, processes: bool = False) -> None:
        if only or processes:
            flag = "--only" if only else "--processes"
            raise CommandValidationError(f"{flag}: the embedded service runs as one part; {flag} needs --bootstrap-servers")
        from .embedded import CatchingUp
        from .service import Service

        backend = self.backend

        def deadline_pass() -> bool:
            for result in backend.enforce_deadlines("watcher-es serve"):
                say(f"deadline pass: plan {result.plan_uuid}: {result.outcome}")
            return True

        service = Service({"projections": CatchingUp(backend, interval)}, deadline_pass=deadline_pass, interval_s=interval)
        say(f"serving {self.settings.db} (Ctrl-C to stop)")
        service.run_once() if once else service.run()

    def audit(self, plan: str) -> PlanStory:
        from .audit import plan_story
        from .outbox import stored_notifications

        backend = self.existing
        return plan_story(plan, backend.log, backend.log, stored_notifications(backend.outbox, plan), backend.codec)

    @contextmanager
    def _log(self) -> Iterator[tuple[SqliteEventLog, AvroCodec]]:
        """The embedded log and a codec that reads every schema it was written with; never creates a log."""
        from eventstore.codec import AvroCodec
        from eventstore.sqlite_log import SqliteEventLog

        with closing(SqliteEventLog(self._require_log())) as events:
            codec = AvroCodec()
            codec.learn(events.writer_schemas())
            yield events, codec

    def verify(self, on_disk: bool) -> VerifyReport:
        with self._log() as (events, codec):
            return verify_against(events, codec, self.settings, on_disk)

    def replay(self, until: str | None, into: Path | None, progress: ProgressCallback | None) -> ReplayResult:
        from .replay import replay

        with self._log() as (events, codec):
            return replay(events, codec, self.settings.paths, until, into, progress=progress)

    def dead_letters(self, limit: int) -> list[Row]:
        from .dead_letters import parked

        return [
            {"topic": "log", "partition": "", "offset": r["position"], "stage": r["consumer"], "error": r["error"], "message": r["message"], "plan_uuid": r["plan_uuid"]}
            for r in parked(self.existing.model.db) + parked(self.existing.outbox.db)
        ][:limit]

    def init(self, partitions: int, replication_factor: int) -> list[Any] | None:
        return None  # the embedded store is created on first use


def verify_against(events: Any, codec: AvroCodec, settings: Settings, on_disk: bool) -> VerifyReport:
    from .read_model import ReadModel
    from .verify import verify

    with tempfile.TemporaryDirectory(dir=settings.paths.model.parent, prefix=".verify-") as tmp:
        with closing(ReadModel(settings.paths.model, codec)) as model:
            return verify(events, codec, model, scratch=Path(tmp) / "fresh.db" if on_disk else ":memory:")


__all__ = ["EmbeddedStore", "Store", "Submitted", "open_store"]
