"""`watcher-es serve` on Kafka: the handler, the read model and the translator, a thread each.

Each part blocks in a long poll of its own consumer (the client releases the GIL while it
waits), so a record wakes its part at once whatever the others are doing: a cancel's command
is decided, and its events translated, within milliseconds of arriving, and an idle `serve`
costs the broker one fetch per part and ``fetch.wait.max.ms``.

The handler and the translator are members of their consumer groups and share the partitions
with the other `serve`s; the read model (``projections``) is a replicated view of every
partition, so each `serve` answers for every plan. Each part can run alone (``--only``). Beside
the read model the loop runs the abort-deadline pass from the model's pending deadlines,
publishing one deterministic EnforceAbortDeadline command per overdue cancellation: it runs
wherever ``projections`` does (``--only handler`` alone has no model and runs no pass); any
number of `serve`s may run it, a derived command id takes effect once.

Threads share one interpreter lock, so a busy `serve` uses about one core whatever the host has.
``serve --processes`` runs each part in a process of its own instead (``run_in_processes``),
forked before any client exists: the parts then work on every core. The parent only watches:
a part that dies stops the others and `serve` exits with an error, SIGTERM or Ctrl-C stops them
all cleanly, and a part whose parent is gone (SIGKILL) stops by itself.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Literal, Protocol

from confluent_kafka import KafkaException

from .deadlines import overdue_commands
from .kafka_parts import KafkaReadModelPart
from .kafka_translator import KafkaTranslatorPart
from .read_model import ReadModel
from .translator import translator_for

from eventstore.codec import AvroCodec
from eventstore.config import Settings, system_clock
from eventstore.exceptions import PartStoppedError, WatcherEsError
from eventstore.kafka.client import KafkaClient
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.handler import KafkaCommandHandler
from eventstore.kafka.io import Publisher

log = logging.getLogger(__name__)

#: How long a part waits for its next record before looking whether it should stop.
POLL_S = 0.5

#: How much lower the read model's process runs under ``--processes`` (``nice``; 0 to 19).
PROJECTIONS_NICENESS = 5

PartName = Literal["handler", "projections", "translator"]
PARTS: tuple[PartName, ...] = ("handler", "projections", "translator")


class Part(Protocol):
    def poll(self, timeout: float = 0.2) -> int: ...

    def close(self) -> None: ...


class KafkaService:
    def __init__(
        self, settings: Settings, kafka: KafkaSettings, only: Iterable[PartName] = PARTS,
        clock: Callable[[], int] | None = None, deadline_interval_s: float = 5.0,
    ) -> None:
        self._clock = clock or system_clock
        self._codec = AvroCodec()
        #: One producer per part: a part's flush confirms its own records, never waits on another's.
        self._publishers: list[Publisher] = []
        self._deadline_interval_s = deadline_interval_s
        self.parts: dict[str, Part] = {}
        self.handler: KafkaCommandHandler | None = None
        self.model: ReadModel | None = None
        self.model_part: KafkaReadModelPart | None = None
        for name in only:
            if name == "handler":
                self.handler = KafkaCommandHandler(
                    kafka, self._codec, self._clock, settings.abort_timeout_us, state_path=settings.paths.handler_state,
                )
                self.parts[name] = self.handler
            elif name == "projections":
                self.model = ReadModel(settings.paths.model, self._codec)
                self.model_part = KafkaReadModelPart(kafka, self._publisher(kafka), self.model, self._codec)
                self.parts[name] = self.model_part
            else:
                translator = translator_for(settings, self._codec, None)
                self.parts[name] = KafkaTranslatorPart(
                    kafka, self._publisher(kafka), translator, self._codec, state_path=settings.paths.translator_state,
                )
        self._deadlines = KafkaClient(kafka, self._codec) if self.model_part is not None else None
        self._stopping = False
        self._stopped = threading.Event()
        self._crashed: BaseException | None = None
        self._next_deadline_pass = 0.0
        self._model_ready = False

    def _publisher(self, kafka: KafkaSettings) -> Publisher:
        self._publishers.append(Publisher(kafka))
        return self._publishers[-1]

    def stop(self, *_: object) -> None:
        self._stopping = True
        self._stopped.set()

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Until stopped (SIGTERM, Ctrl-C) or ``until()`` says so; then every part closes."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
        threads = [
            threading.Thread(target=self._run_part, args=(name, part), name=f"serve-{name}", daemon=True)
            for name, part in self.parts.items()
        ]
        for thread in threads:
            thread.start()
        try:
            while not self._stopping and not (until and until()):
                self._stopped.wait(0.05)
        finally:
            self.stop()
            for thread in threads:
                thread.join()
            self.close()
        if self._crashed is not None:
            raise self._crashed  # a part died of something unforeseen: serve exits, so a supervisor restarts it whole

    def _run_part(self, name: str, part: Part) -> None:
        try:
            while not self._stopping:
                self._isolated(name, lambda: part.poll(POLL_S))
                if part is self.model_part:
                    self._isolated("deadline pass", self._deadline_pass)
        except BaseException as exc:  # never a silently dead part in a live serve
            log.critical("%s stopped on an unexpected error; serve stops", name, exc_info=True)
            self._crashed = exc
            self.stop()

    def _isolated(self, name: str, work: Callable[[], object]) -> None:
        """One part failing never takes the others down: it is logged and tried again (every effect is idempotent)."""
        try:
            work()
        except (WatcherEsError, KafkaException, sqlite3.Error) as exc:
            log.error("%s failed, retrying: %s", name, exc)
            time.sleep(0.5)

    def _deadline_pass(self) -> None:
        """The pending deadlines from the model (an indexed query), not a walk over every plan."""
        part = self.model_part
        if part is None or self._deadlines is None or time.monotonic() < self._next_deadline_pass:
            return
        if not (self._model_ready or part.at_end):
            return  # a model catching up at start shows plans CANCELLING that have long settled
        self._model_ready = True
        self._next_deadline_pass = time.monotonic() + self._deadline_interval_s
        for command in overdue_commands(part.model, part.trail.read_plan, self._codec, self._clock(), "watcher-es serve"):
            self._deadlines.send(command)  # sent again each pass until handled: its id is derived, so it takes effect once

    def close(self) -> None:
        for name, part in self.parts.items():
            try:
                part.close()
            except Exception as exc:  # noqa: BLE001 - every part must get closed; a rebalance callback may fail as the client shuts down
                log.warning("closing %s: %s", name, exc)
        for publisher in self._publishers:
            publisher.flush()
        if self._deadlines is not None:
            self._deadlines.close()
        if self.model is not None:
            self.model.close()


def run_in_processes(settings: Settings, kafka: KafkaSettings, parts: Iterable[PartName], deadline_interval_s: float) -> None:
    """Each part in a forked process of its own, watched until one dies or serve is told to stop."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    fork = multiprocessing.get_context("fork")
    children = {
        name: fork.Process(target=_serve_part, args=(settings, kafka, name, deadline_interval_s, os.getpid()), name=f"serve-{name}")
        for name in parts
    }
    for child in children.values():
        child.start()
    dead: list[str] = []
    try:
        while not stopping.is_set() and not dead:
            dead = [f"{name} (exit code {child.exitcode})" for name, child in children.items() if child.exitcode is not None]
            stopping.wait(0.1)
    finally:
        for child in children.values():
            if child.is_alive():
                child.terminate()  # SIGTERM: the part closes cleanly
        for child in children.values():
            child.join(30)
            if child.is_alive():
                child.kill()
    if dead:
        raise PartStoppedError(f"serve part {', '.join(dead)} stopped; the other parts were stopped with it")


def _serve_part(settings: Settings, kafka: KafkaSettings, name: PartName, deadline_interval_s: float, parent: int) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler: SIGTERM before ``run`` takes it over ends the part
    _die_with_parent()
    if name == "projections":
        # The read model answers queries; the handler and the translator are on a cancel's way to
        # its notification. When the cores are full they go first; the model catches up after
        # (in larger batches, which cost it less per record).
        os.nice(PROJECTIONS_NICENESS)
    try:
        service = KafkaService(settings, kafka, [name], deadline_interval_s=deadline_interval_s)
    except (WatcherEsError, KafkaException, sqlite3.Error) as exc:  # a missing topic, a refused setting: say which
        log.error("%s cannot start: %s", name, exc)
        sys.exit(1)
    try:
        service.run(until=lambda: os.getppid() != parent)
    except KeyboardInterrupt:
        pass  # Ctrl-C reached the whole process group: the parent says "stopped"
    except BaseException:  # logged by the part as it stopped; the parent reports it
        sys.exit(1)


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when its parent dies, so a killed serve leaves no part running (elsewhere ``until`` notices within a poll)."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
