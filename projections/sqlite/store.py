"""The embedded store: everything in SQLite files beside --db; commands are handled in the calling process."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eventstore.boundary import guarded
from eventstore.config import Settings
from eventstore.exceptions import CommandValidationError, WaitTimeoutError
from eventstore.sqlite_support import open_read_only, sqlite_error
from projections.model_view import ModelView
from projections.store import ConsumerPosition, MissingLogError, Row, UnregisteredPlan, WatcherFeed, unknown_plan, unregistered_plans

# The rest loads when a command needs it: `status` and `plans` read through ``ModelView`` alone
# and answer within the CLI's start-up time (fastavro, sqlite-utils and the services stay unloaded).
if TYPE_CHECKING:
    from eventstore.codec import AvroCodec
    from eventstore.domain.messages import Command, Fault
    from eventstore.log import DeadLetter, Outcome
    from projections.audit import PlanStory
    from projections.demo import DemoReport
    from projections.replay import ProgressCallback, ReplayResult
    from projections.sqlite.backend import EmbeddedBackend
    from projections.sqlite.history import SqliteHistory
    from projections.translator import Notification
    from projections.verify import VerifyReport


@guarded(sqlite_error)
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
            from projections.sqlite.backend import EmbeddedBackend

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

    def submit(self, command: Command, *, wait: bool, timeout: float) -> Outcome:
        return self.backend.submit(command)

    def cancellation_end(self, plan_uuid: str, timeout: float) -> tuple[str, Fault | None]:
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
            raise unknown_plan(self.settings, uuid)
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
            elif not follow:
                return  # read to the end (a page holds 1000)
            else:
                time.sleep(0.05)  # a cheap indexed read: followers see a cancel within ms

    def replayed_notifications(self, plan: str | None, first: int, last: int | None) -> Iterator[Notification]:
        from projections.sqlite.notifications import replay_notifications
        from projections.translator import translator_for

        backend = self.existing
        translator = translator_for(backend.settings, backend.codec, backend.log, recorded=backend.outbox.payload_sets_of)
        translator.set_level(backend.outbox.translator.level)  # the store's level, as when first emitted
        return replay_notifications(backend.log, translator, first, last, plan_uuid=plan)

    def publish(self, notes: Iterator[Notification]) -> int:
        raise CommandValidationError("--publish sends to the Kafka notification topics: it needs --bootstrap-servers")

    def enforce_deadlines(self, origin: str) -> list[Outcome]:
        return self.backend.enforce_deadlines(origin)

    def demo(self) -> DemoReport:
        from projections.demo import run_demo
        from projections.sqlite.demo import EmbeddedDemo

        return run_demo(EmbeddedDemo(self.backend))

    def serve(
        self, only: Sequence[str], interval: float, once: bool, say: Any, processes: bool = False, feed: WatcherFeed | None = None,
    ) -> None:
        if only or processes:
            flag = "--only" if only else "--processes"
            raise CommandValidationError(f"{flag}: the embedded service runs as one part; {flag} needs --bootstrap-servers")
        from projections.sqlite.service import embedded_service

        say(f"serving {self.settings.db} (Ctrl-C to stop)")
        if feed is not None:
            say(f"bridging Watcher's notifications from {feed.shown}")
        service = embedded_service(self.backend, interval, say, feed)
        service.run_once() if once else service.run()

    def audit(self, plan: str) -> PlanStory:
        from projections.audit import plan_story
        from projections.sqlite.notifications import stored_notifications

        backend = self.existing
        return plan_story(plan, backend.log, backend.log, stored_notifications(backend.outbox, plan), backend.codec)

    @contextmanager
    def _history(self) -> Iterator[tuple[SqliteHistory, AvroCodec]]:
        """The embedded log and a codec that reads every schema it was written with; never creates a log."""
        from eventstore.codec import AvroCodec
        from eventstore.sqlite.log import SqliteEventLog
        from projections.sqlite.history import SqliteHistory

        with closing(SqliteEventLog(self._require_log())) as events:
            codec = AvroCodec()
            codec.learn(events.writer_schemas())
            yield SqliteHistory(events), codec

    def verify(self, on_disk: bool) -> VerifyReport:
        from projections.verify import verify_against

        with self._history() as (history, codec):
            return verify_against(history, codec, self.settings, on_disk)

    def replay(self, until: str | None, into: Path | None, progress: ProgressCallback | None) -> ReplayResult:
        from projections.replay import replay

        with self._history() as (history, codec):
            return replay(history, codec, self.settings.paths, until, into, progress=progress)

    def unregistered(self) -> list[UnregisteredPlan]:
        return unregistered_plans(self.settings)

    def dead_letters(self, limit: int) -> list[DeadLetter]:
        from eventstore.sqlite_support import connect
        from projections.dead_letters import letters

        found = letters(self.existing.model.db) + letters(self.existing.outbox.db)
        bridge = self.settings.paths.bridge_state
        if bridge.exists():  # what the bridge beside the store could not use (stage bridge)
            db = connect(bridge, "NORMAL")
            try:
                found += letters(db) if "dead_letters" in db.table_names() else []
            finally:
                db.conn.close()
        return found[:limit]

    def init(self, partitions: int, replication_factor: int) -> list[Any] | None:
        return None  # the embedded store is created on first use
