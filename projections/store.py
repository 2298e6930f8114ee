"""A watcher-es store as every CLI command sees it: the embedded one, or a cluster.

Built once from the resolved settings (``open_store``): the one place that asks which backend
the product is on. Each command calls one method and prints what it returns, so the two
backends answer the same questions with the same shapes, and the CLI never branches.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from eventstore.codec import AvroCodec
from eventstore.config import Settings, system_clock
from eventstore.domain.deadline import deadline_commands
from eventstore.domain.messages import Command, Fault
from eventstore.domain.validation import validate_command
from eventstore.exceptions import CommandValidationError, ConfigurationError, WaitTimeoutError, WatcherEsError
from eventstore.handler import HandlingResult, load_plan
from eventstore.kafka.admin import TopicResult, consumer_positions, dead_letters, init_topics
from eventstore.kafka.client import KafkaClient, OutcomeWatcher, delivered_notifications
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import Publisher, topic_pages
from eventstore.sqlite_log import SqliteEventLog

from .audit import PlanStory, plan_story
from .dead_letters import parked
from .demo import DemoReport, KafkaDemo, run_demo
from .embedded import EmbeddedService
from .kafka_history import KafkaPlanHistory
from .kafka_parts import publish_notification, recorded_on_topics, replay_topic_notifications
from .kafka_service import PARTS, KafkaService
from .outbox import stored_notifications
from .read_model import ReadModel
from .replay import ProgressCallback, ReplayResult, replay, replay_notifications
from .translator import Notification, translator_for
from .verify import VerifyReport, verify
from .views import action_rows, plan_row

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
    def serve(self, only: Sequence[str], interval: float, once: bool, say: Any) -> None: ...
    def audit(self, plan: str) -> PlanStory: ...
    def verify(self, on_disk: bool) -> VerifyReport: ...
    def replay(self, until: str | None, into: Path | None, progress: ProgressCallback | None) -> ReplayResult: ...
    def dead_letters(self, limit: int) -> list[Row]: ...
    def init(self, partitions: int, replication_factor: int) -> list[TopicResult] | None: ...


def open_store(settings: Settings) -> Store:
    return KafkaStore(settings, settings.kafka) if settings.kafka is not None else EmbeddedStore(settings)


# ---------------------------------------------------------------- the embedded store


class EmbeddedStore:
    """Everything in SQLite files beside --db; commands are handled in the calling process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._service: EmbeddedService | None = None

    @property
    def service(self) -> EmbeddedService:
        if self._service is None:
            self._service = EmbeddedService(self.settings)
        return self._service

    def close(self) -> None:
        if self._service is not None:
            self._service.close()

    def submit(self, command: Command, *, wait: bool, timeout: float) -> Submitted:
        return Submitted.of(self.service.submit(command))

    def settled(self, plan_uuid: str, timeout: float) -> tuple[str, Fault | None]:
        """Another process reports the aborts: re-read the plan until its cancellation ends."""
        deadline = time.monotonic() + timeout
        while True:
            plan = load_plan(self.service.codec, self.service.log.read_plan(plan_uuid))
            if plan is None or plan.state != "CANCELLING":
                return (plan.state if plan else "UNKNOWN"), (plan.fault if plan else None)
            if time.monotonic() > deadline:
                raise WaitTimeoutError(f"plan {plan_uuid} is still CANCELLING after {timeout:.0f} s")
            time.sleep(0.2)

    def plan(self, uuid: str) -> tuple[Row, list[Row]]:
        model = self.service.model
        self.service.catch_up()
        row = model.plan(uuid)
        if row is None:
            raise UnknownPlanError(f"action plan {uuid} is not registered")
        return row, model.actions(uuid)

    def plans(self, state: str | None) -> list[Row]:
        self.service.catch_up()
        rows = self.service.model.plans(state)
        for row in rows:
            row["action_count"] = len(self.service.model.actions(row["uuid"]))
        return rows

    def consumers(self) -> list[ConsumerPosition]:
        end = self.service.log.last_position()
        return [
            ConsumerPosition(part, str(self.settings.paths.log), position, end - position)
            for part, position in (("read-model", self.service.model.position()), ("translator", self.service.outbox.position()))
        ]

    def notifications(self, plan: str | None, after: int, follow: bool) -> Iterator[list[tuple[int, dict[str, Any]]]]:
        seq = after
        while True:
            self.service.catch_up()
            batch = self.service.outbox.read(seq, plan_uuid=plan)
            if batch:
                seq = batch[-1][0]
                yield batch
            if not follow:
                return
            time.sleep(0.05)  # a cheap indexed read: followers see a cancel within ms

    def replayed_notifications(self, plan: str | None, first: int, last: int | None) -> Iterator[Notification]:
        service = self.service
        translator = translator_for(service.settings, service.codec, service.log, recorded=service.outbox.payload_sets_of)
        return replay_notifications(service.log, translator, first, last, plan_uuid=plan)

    def publish(self, notes: Iterator[Notification]) -> int:
        raise CommandValidationError("--publish sends to the Kafka notification topics: it needs --bootstrap-servers")

    def enforce_deadlines(self, origin: str) -> list[Submitted]:
        return [Submitted.of(r) for r in self.service.enforce_deadlines(origin)]

    def demo(self) -> DemoReport:
        return run_demo(self.service)

    def serve(self, only: Sequence[str], interval: float, once: bool, say: Any) -> None:
        if only:
            raise CommandValidationError("--only: the embedded service runs as one part; --only needs --bootstrap-servers")
        say(f"serving {self.settings.db} (Ctrl-C to stop)")
        while True:
            self.service.catch_up()
            for result in self.service.enforce_deadlines("watcher-es serve"):
                say(f"deadline pass: plan {result.plan_uuid}: {result.outcome}")
            if once:
                return
            time.sleep(interval)

    def audit(self, plan: str) -> PlanStory:
        service = self.service
        service.catch_up()
        return plan_story(plan, service.log, service.log, stored_notifications(service.outbox, plan), service.codec)

    def _log(self) -> tuple[SqliteEventLog, AvroCodec]:
        """The embedded log and a codec that reads every schema it was written with; never creates a log."""
        path = self.settings.paths.log
        if not path.exists():
            raise MissingLogError(f"no event log at {path} (set --db or WATCHER_ES_DB)")
        events = SqliteEventLog(path)
        codec = AvroCodec()
        codec.learn(events.writer_schemas())
        return events, codec

    def verify(self, on_disk: bool) -> VerifyReport:
        events, codec = self._log()
        try:
            return _verify_against(events, codec, self.settings, on_disk)
        finally:
            events.close()

    def replay(self, until: str | None, into: Path | None, progress: ProgressCallback | None) -> ReplayResult:
        events, codec = self._log()
        try:
            return replay(events, codec, self.settings.paths, until, into, progress=progress)
        finally:
            events.close()

    def dead_letters(self, limit: int) -> list[Row]:
        self.service.catch_up()
        return [
            {"topic": "log", "partition": "", "offset": r["position"], "stage": r["consumer"], "error": r["error"], "message": r["message"], "plan_uuid": r["plan_uuid"]}
            for r in parked(self.service.model.db) + parked(self.service.outbox.db)
        ][:limit]

    def init(self, partitions: int, replication_factor: int) -> list[TopicResult] | None:
        return None  # the embedded store is created on first use


def _verify_against(events: Any, codec: AvroCodec, settings: Settings, on_disk: bool) -> VerifyReport:
    with tempfile.TemporaryDirectory(dir=settings.paths.model.parent, prefix=".verify-") as tmp:
        model = ReadModel(settings.paths.model, codec)
        try:
            return verify(events, codec, model, scratch=Path(tmp) / "fresh.db" if on_disk else ":memory:")
        finally:
            model.close()


# ---------------------------------------------------------------- a cluster


class KafkaStore:
    """Commands go to the commands topic and `serve` handles them; answers come from the topics."""

    def __init__(self, settings: Settings, kafka: KafkaSettings) -> None:
        self.settings = settings
        self.kafka = kafka
        self._client: KafkaClient | None = None
        self._outcomes: OutcomeWatcher | None = None  # opened by a waiting submit, followed by `settled`

    @property
    def client(self) -> KafkaClient:
        if self._client is None:
            self._client = KafkaClient(self.kafka, AvroCodec())
        return self._client

    def close(self) -> None:
        if self._outcomes is not None:
            self._outcomes.close()
        if self._client is not None:
            self._client.close()

    def submit(self, command: Command, *, wait: bool, timeout: float) -> Submitted:
        validate_command(command)  # refused here, naming the field, rather than dead-lettered by the handler
        if not wait:
            self.client.send(command)
            return Submitted(command.command_id, command.plan_uuid, "sent")
        self._outcomes = self._outcomes or self.client.follow_outcomes(command.issued_at // 1000 - 5000)
        self.client.send(command)
        outcome = self.client.wait_outcome(command.command_id, self._outcomes, timeout)
        return Submitted(
            outcome.command_id, outcome.plan_uuid, outcome.outcome, outcome.reason, outcome.duplicate,  # type: ignore[arg-type]
            outcome.event_types, outcome.plan_state,
        )

    def settled(self, plan_uuid: str, timeout: float) -> tuple[str, Fault | None]:
        if self._outcomes is None:
            self._outcomes = self.client.follow_outcomes(system_clock() // 1000 - 5000)
        state = self.client.wait_plan_settled(plan_uuid, self._outcomes, timeout).plan_state or "UNKNOWN"
        plan = self.client.plan(plan_uuid) if state == "FAILED" else None
        return state, plan.fault if plan else None

    def plan(self, uuid: str) -> tuple[Row, list[Row]]:
        found = self.client.plan(uuid)
        if found is None:
            raise UnknownPlanError(f"action plan {uuid} is not registered")
        return plan_row(found), action_rows(found)

    def plans(self, state: str | None) -> list[Row]:
        return [plan_row(p) for p in self.client.plans() if state in (None, p.state)]

    def consumers(self) -> list[ConsumerPosition]:
        model_positions = None
        if self.settings.paths.model.exists():  # `serve` on this host: its own tracking is the truth
            model = ReadModel(self.settings.paths.model, AvroCodec())
            prefix = f"{self.kafka.topics.events}/"
            model_positions = {k: v for k, v in model.positions().items() if k.startswith(prefix)} or None
            model.close()
        return [
            ConsumerPosition(p.part, f"{p.topic}/{p.partition}", p.position, p.lag)
            for p in consumer_positions(self.kafka, model_positions)
        ]

    def notifications(self, plan: str | None, after: int, follow: bool) -> Iterator[list[tuple[int, dict[str, Any]]]]:
        if after:
            raise CommandValidationError("--after numbers the embedded store's notifications; on Kafka use --plan or --follow")
        for number, delivered in enumerate(delivered_notifications(self.kafka, {plan} if plan else None, follow=follow)):
            if delivered or number == 0:
                yield [(i + 1, d.envelope) for i, d in enumerate(delivered)]

    def replayed_notifications(self, plan: str | None, first: int, last: int | None) -> Iterator[Notification]:
        if first != 1 or last is not None:
            raise CommandValidationError("--from-position/--to-position number the embedded log; on Kafka re-emit all, or one --plan")
        codec = AvroCodec()
        translator = translator_for(self.settings, codec, None, cache_size=None, recorded=recorded_on_topics(self.kafka, plan))
        return replay_topic_notifications(self.kafka, translator, codec, plan)

    def publish(self, notes: Iterator[Notification]) -> int:
        publisher = Publisher(self.kafka)
        count = 0
        for note in notes:
            publish_notification(publisher, self.kafka, note)
            count += 1
        publisher.flush()
        return count

    def enforce_deadlines(self, origin: str) -> list[Submitted]:
        commands = deadline_commands(self.client.plans(), system_clock(), origin)
        for command in commands:
            self.client.send(command)
        return [Submitted(c.command_id, c.plan_uuid, "sent") for c in commands]

    def demo(self) -> DemoReport:
        return run_demo(KafkaDemo(self.client))

    def serve(self, only: Sequence[str], interval: float, once: bool, say: Any) -> None:
        parts = tuple(only or PARTS)
        unknown = [p for p in parts if p not in PARTS]
        if unknown:
            raise CommandValidationError(f"--only: {', '.join(unknown)} is not one of {', '.join(PARTS)}")
        say(f"serving {', '.join(parts)} on {self.kafka.bootstrap_servers} with {self.kafka.shown()}")
        KafkaService(self.settings, self.kafka, parts, deadline_interval_s=interval).run()  # type: ignore[arg-type]

    def audit(self, plan: str) -> PlanStory:
        codec = AvroCodec()
        history = KafkaPlanHistory(self.kafka, codec, plan)
        return plan_story(plan, history, history, history.notifications(), codec, history.conflicts())

    def verify(self, on_disk: bool) -> VerifyReport:
        if not self.settings.paths.model.exists():
            raise MissingModelError(f"no read model at {self.settings.paths.model}: run verify where `serve` keeps it (same --db)")
        codec = AvroCodec()
        return _verify_against(topic_pages(self.kafka, codec), codec, self.settings, on_disk)

    def replay(self, until: str | None, into: Path | None, progress: ProgressCallback | None) -> ReplayResult:
        codec = AvroCodec()
        kafka = self.kafka
        return replay(lambda: topic_pages(kafka, codec), codec, self.settings.paths, until, into, progress=progress)

    def dead_letters(self, limit: int) -> list[Row]:
        return dead_letters(self.kafka, limit)

    def init(self, partitions: int, replication_factor: int) -> list[TopicResult] | None:
        return init_topics(self.kafka, partitions, replication_factor)


__all__ = ["ConfigurationError", "EmbeddedStore", "KafkaStore", "Store", "Submitted", "open_store"]
