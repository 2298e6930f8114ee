"""The embedded backend: handler, read model and translator on one SQLite store, caught up in the
process after each command, so a cancel's first notification is readable as soon as it returns."""

from __future__ import annotations

from projections.dead_letters import ParkingLot
from projections.deadlines import overdue_commands
from projections.sqlite.notifications import NotificationOutbox
from projections.read_model import ReadModel
from projections.tracking import catch_up
from projections.translator import translator_for

from eventstore.codec import AvroCodec
from eventstore.config import Settings, system_clock
from eventstore.domain.messages import Command
from eventstore.handler import Clock, CommandHandler
from eventstore.log import Outcome
from eventstore.sqlite.log import SqliteEventLog


class EmbeddedBackend:
    def __init__(self, settings: Settings, clock: Clock = system_clock, codec: AvroCodec | None = None) -> None:
        self.settings = settings
        self.clock = clock
        paths = settings.paths
        self.codec = codec or AvroCodec()
        self.log = SqliteEventLog(paths.log)
        self.codec.learn(self.log.writer_schemas())
        self.handler = CommandHandler(self.log, self.codec, clock, settings.abort_timeout_us)
        self.model = ReadModel(paths.model, self.codec)
        self.outbox = NotificationOutbox(paths.notifications, translator_for(settings, self.codec, self.log))
        # The level is the store's: set when it is created, changed only by a command that says so.
        self.outbox.translator.set_level(self.outbox.notification_level(settings.notification_level))
        # A bad event is parked with its reason in each consumer's own file; they go on.
        self.model.on_poison = ParkingLot(self.model.db).poison_handler(ReadModel.CONSUMER)
        self.outbox.on_poison = ParkingLot(self.outbox.db).poison_handler(NotificationOutbox.CONSUMER)
        self._catch_ups = 0

    def close(self) -> None:
        for part in (self.log, self.model, self.outbox):
            part.close()

    def __enter__(self) -> EmbeddedBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, command: Command) -> Outcome:
        result = self.handler.handle(command)
        self.catch_up()
        return result

    #: How many catch-ups between two checkpoints of the notification store.
    CHECKPOINT_EVERY = 64

    def catch_up(self) -> int:
        """Both projections brought to the end of the log; returns how many events were new to them."""
        done = catch_up(self.log, self.outbox)  # notifications first: they are what watchers wait for
        done += catch_up(self.log, self.model)
        self._catch_ups += 1
        if self._catch_ups % self.CHECKPOINT_EVERY == 0:
            self.outbox.checkpoint()
        return done

    def enforce_deadlines(self, origin: str = "watcher-es") -> list[Outcome]:
        """Fail every abort past its deadline; safe to run anywhere, any number of times."""
        self.catch_up()
        # From the log, not the handler's cache: another process may have cancelled a plan cached before.
        commands = overdue_commands(self.model, self.log.read_plan, self.codec, self.clock(), origin)
        return [self.submit(command) for command in commands]
