"""The store on a cluster: commands go to the commands topic and `serve` handles them.

Queries (`status`, `plans`, `audit`, `enforce-deadlines`, the fault a `cancel --wait` reports)
read the read model at --db, never the topics: kept current by a `serve` with the same --db, or
caught up by the CLI itself from its stored positions (``model``). ``projections/store.py`` says
what every store answers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from eventstore.boundary import guarded
from eventstore.codec import AvroCodec
from eventstore.config import Settings, system_clock
from eventstore.domain.messages import Command, Fault
from eventstore.log import DeadLetter, Outcome
from eventstore.domain.validation import validate_command
from eventstore.exceptions import CommandValidationError
from eventstore.handler import load_plan
from eventstore.kafka.admin import TopicResult, consumer_positions, init_topics, letters
from eventstore.kafka.client import KafkaClient, OutcomeWatcher, delivered_notifications
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import Publisher, kafka_error
from eventstore.sqlite_support import sqlite_error

from projections.audit import PlanStory, plan_story
from projections.demo import DemoReport, run_demo
from projections.kafka.demo import KafkaDemo
from projections.kafka.history import TopicHistory
from projections.deadlines import overdue_commands
from projections.kafka.audit import AuditTrail
from projections.kafka.read_model import KafkaReadModelPart
from projections.kafka.notifications import NotificationTopics, recorded_on_topics, replay_notifications
from projections.kafka.service import PARTS, kafka_service, run_in_processes, when_reachable
from projections.read_model import ReadModel
from projections.replay import ProgressCallback, ReplayResult, replay
from projections.store import ConsumerPosition, MissingModelError, Row, UnregisteredPlan, WatcherFeed, unknown_plan, unregistered_plans
from projections.translator import Notification, translator_for
from projections.verify import VerifyReport, verify_against


@guarded(kafka_error, sqlite_error)
class KafkaStore:
    """Commands go to the commands topic and `serve` handles them; answers come from the read model."""

    def __init__(self, settings: Settings, kafka: KafkaSettings) -> None:
        self.settings = settings
        self.kafka = kafka
        self._client: KafkaClient | None = None
        self._outcomes: OutcomeWatcher | None = None  # opened by a waiting submit, followed by `cancellation_end`
        self._codec = AvroCodec()
        self._model: ReadModel | None = None
        self._feed: KafkaReadModelPart | None = None

    def model(self) -> tuple[ReadModel, AuditTrail]:
        """The read model at --db, caught up to the end of every partition; returns it and its audit trail.

        Caught up on every call (a command that asks twice sees what was appended between), from
        the positions the file holds: the first query on a host reads the topics once, every
        later one only their tail. Records it cannot use are parked in the file, not the cluster.
        """
        if self._model is None:
            self._model = ReadModel(self.settings.paths.model, self._codec)
        if self._feed is not None:
            # Partition EOF is told once per end reached: a second catch-up needs a consumer of its own.
            self._feed.close()
        self._feed = KafkaReadModelPart(self.kafka, None, self._model, self._codec, park_to_topic=False, commit=False)
        self._feed.catch_up()
        return self._model, self._feed.trail

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
        if self._feed is not None:
            self._feed.close()
        if self._model is not None:
            self._model.close()

    def submit(self, command: Command, *, wait: bool, timeout: float) -> Outcome:
        validate_command(command)  # refused here, naming the field, rather than dead-lettered by the handler
        self.client.reach(timeout)  # no cluster: one clear error within the timeout, not a wait for a delivery
        if not wait:
            self.client.send(command)
            return Outcome(command.command_id, command.plan_uuid, "sent")
        self._outcomes = self._outcomes or self.client.follow_outcomes(command.issued_at // 1000 - 5000)
        self.client.send(command)
        return self.client.wait_outcome(command.command_id, self._outcomes, timeout)

    def cancellation_end(self, plan_uuid: str, timeout: float) -> tuple[str, Fault | None]:
        if self._outcomes is None:
            self._outcomes = self.client.follow_outcomes(system_clock() // 1000 - 5000)
        state = self.client.wait_cancellation_end(plan_uuid, self._outcomes, timeout).plan_state or "UNKNOWN"
        if state != "FAILED":
            return state, None
        # The events were appended before the outcome was published: the model caught up now has them.
        _, trail = self.model()
        plan = load_plan(self._codec, trail.read_plan(plan_uuid))
        return state, plan.fault if plan else None

    def plan(self, uuid: str) -> tuple[Row, list[Row]]:
        model, _ = self.model()
        row = model.plan(uuid)
        if row is None:
            raise unknown_plan(self.settings, uuid)
        return row, model.actions(uuid)

    def plans(self, state: str | None) -> list[Row]:
        model, _ = self.model()
        return model.plans(state)

    def consumers(self) -> list[ConsumerPosition]:
        model_positions = None
        if self.settings.paths.model.exists():  # the model at --db (a `serve`'s or this CLI's): its own tracking is the truth
            model = ReadModel(self.settings.paths.model, AvroCodec())
            prefix = f"{self.kafka.topics.events}/"
            read = AuditTrail(model.db, self._codec).positions()
            for source, position in model.positions().items():  # a model swapped in by `replay` may be ahead of its trail
                read[source] = max(read.get(source, 0), position)
            model_positions = {k: v for k, v in read.items() if k.startswith(prefix)} or None
            model.close()
        return [
            ConsumerPosition(p.part, f"{p.topic}/{p.partition}", p.position, p.lag)
            for p in consumer_positions(self.kafka, model_positions)
        ]

    def notifications(self, plan: str | None, after: int, follow: bool) -> Iterator[list[tuple[int, dict[str, Any]]]]:
        if after:
            raise CommandValidationError("--after numbers the embedded store's notifications; on Kafka use --plan or --follow")
        # Numbered on from one batch to the next: 1, 2, 3... across the whole listing, as a fresh
        # embedded store numbers them. Nothing on the topics orders every notification (two
        # topics, many partitions), so a number is this listing's, not one `--after` could resume from.
        numbered = 0
        for batch, delivered in enumerate(delivered_notifications(self.kafka, {plan} if plan else None, follow=follow)):
            if delivered or batch == 0:
                yield [(numbered + i, d.envelope) for i, d in enumerate(delivered, start=1)]
                numbered += len(delivered)

    def replayed_notifications(self, plan: str | None, first: int, last: int | None) -> Iterator[Notification]:
        if first != 1 or last is not None:
            raise CommandValidationError("--from-position/--to-position number the embedded log; on Kafka re-emit all, or one --plan")
        codec = AvroCodec()
        translator = translator_for(self.settings, codec, None, cache_size=None, recorded=recorded_on_topics(self.kafka, plan))
        return replay_notifications(self.kafka, translator, codec, plan)

    def publish(self, notes: Iterator[Notification]) -> int:
        sink, count = NotificationTopics(Publisher(self.kafka), self.kafka), 0
        while batch := list(islice(notes, 1000)):  # confirmed a thousand at a time, never all held at once
            sink.send(batch)
            count += len(batch)
        return count

    def enforce_deadlines(self, origin: str) -> list[Outcome]:
        model, trail = self.model()
        commands = overdue_commands(model, trail.read_plan, self._codec, system_clock(), origin)
        for command in commands:
            self.client.send(command)
        return [Outcome(c.command_id, c.plan_uuid, "sent") for c in commands]

    def demo(self) -> DemoReport:
        return run_demo(KafkaDemo(self.client))

    def serve(
        self, only: Sequence[str], interval: float, once: bool, say: Any, processes: bool = False, feed: WatcherFeed | None = None,
    ) -> None:
        known = (*PARTS, "bridge") if feed is not None else PARTS
        parts = tuple(only or known)
        unknown = [p for p in parts if p not in (*PARTS, "bridge")]
        if unknown:
            raise CommandValidationError(f"--only: {', '.join(unknown)} is not one of {', '.join((*PARTS, 'bridge'))}")
        if "bridge" in parts and feed is None:
            raise CommandValidationError("--only bridge: the bridge needs --watcher-topic (Watcher's notification topic)")
        say(f"serving {', '.join(parts)}{' (a process each)' if processes else ''} on {self.kafka.bootstrap_servers} with {self.kafka.shown()}")
        if feed is not None and "bridge" in parts:
            say(f"bridging Watcher's notifications from {feed.shown}")
        if processes and len(parts) > 1:
            run_in_processes(self.settings, self.kafka, parts, interval, feed)  # type: ignore[arg-type]
        else:
            when_reachable(self.kafka, parts, lambda: kafka_service(self.settings, self.kafka, parts, deadline_interval_s=interval, feed=feed)).run()  # type: ignore[arg-type]

    def audit(self, plan: str) -> PlanStory:
        _, trail = self.model()
        return plan_story(plan, trail, trail, trail.notifications(plan), self._codec, trail.conflicts(plan))

    def verify(self, on_disk: bool) -> VerifyReport:
        if not self.settings.paths.model.exists():
            raise MissingModelError(f"no read model at {self.settings.paths.model}: run verify where `serve` keeps it (same --db)")
        codec = AvroCodec()
        return verify_against(TopicHistory(self.kafka, codec), codec, self.settings, on_disk)

    def replay(self, until: str | None, into: Path | None, progress: ProgressCallback | None) -> ReplayResult:
        codec = AvroCodec()
        return replay(TopicHistory(self.kafka, codec), codec, self.settings.paths, until, into, progress=progress)

    def unregistered(self) -> list[UnregisteredPlan]:
        return unregistered_plans(self.settings)

    def dead_letters(self, limit: int) -> list[DeadLetter]:
        return letters(self.kafka, limit)

    def init(self, partitions: int, replication_factor: int) -> list[TopicResult] | None:
        return init_topics(self.kafka, partitions, replication_factor)
