"""`watcher-es serve` on Kafka: the handler, the read model and the translator as parts of the one ``Service``.

Each part can run alone (``--only``). The abort-deadline pass runs beside the read model,
wherever ``projections`` does (``--only handler`` alone has no model and runs no pass); any
number of `serve`s may run it: each overdue cancellation's EnforceAbortDeadline command has a
derived id, so it takes effect once.

Threads share one interpreter lock, so a busy `serve` uses about one core whatever the host has.
``serve --processes`` runs each part in a process of its own instead (``run_in_processes``),
forked before any client exists: the parts then work on every core. The parent only watches:
a part that dies stops the others and `serve` exits with an error, SIGTERM or Ctrl-C stops them
all cleanly, and a part whose parent is gone (SIGKILL) stops by itself. The read model's process
runs at a lower priority (``MODEL_NICENESS``): when the cores are short, a burst of cancels reaches
OpenStack first and the model, which answers people, catches up seconds later instead of slowing
every notification down (run it with ``--only projections`` as a process of its own to choose).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Literal, TypeVar

from eventstore import health
from eventstore.boundary import guarded, translated
from eventstore.bridge.part import BridgePart
from eventstore.bridge.state import BridgeState
from eventstore.codec import AvroCodec
from eventstore.config import Settings, system_clock
from eventstore.exceptions import ClusterUnreachableError, CommandValidationError, PartStoppedError, WatcherEsError
from eventstore.kafka.checks import ConsumerCheck, reach_cluster
from eventstore.kafka.client import KafkaClient
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.handler import KafkaCommandHandler
from eventstore.kafka.io import DeadLetters, Publisher, kafka_error
from eventstore.sqlite_support import sqlite_error
from projections.deadlines import overdue_commands
from projections.kafka.notifications import KafkaTranslatorPart
from projections.kafka.read_model import KafkaReadModelPart
from projections.read_model import ReadModel
from projections.service import Check, Part, Service
from projections.store import WatcherFeed
from projections.translator import translator_for

logger = logging.getLogger(__name__)

PartName = Literal["handler", "projections", "translator", "bridge"]
#: The parts `serve` runs by default; the bridge too when given ``--watcher-topic``.
PARTS: tuple[PartName, ...] = ("handler", "projections", "translator")

#: ``nice`` of the read model's process under ``--processes``. Measured on 2 cores with the broker
#: beside them (3,000 plans, `make bench`): at 10 the notifications of a burst were all out about
#: 12% sooner than at 0. The model is complete about a second after the last notification of a
#: 3,000-plan burst, and about 25 s after that of a 27,000-plan one (its process then peaks at
#: about 100 MB, holding at most 4 MB of records fetched ahead).
MODEL_NICENESS = 10


#: How long `serve` waits for a cluster that did not answer at start before it asks again.
RETRY_S = 5.0

T = TypeVar("T")


def when_reachable(kafka: KafkaSettings, parts: Iterable[str], build: Callable[[], T]) -> T:
    """``build()`` once the cluster answers: a serve started before its cluster (or while it is
    down) waits for it, saying so in one line per attempt, and starts when it comes. A cluster
    that answers but lacks a topic is no wait: that is an error (run `watcher-es init`)."""
    while True:
        started = time.monotonic()
        try:
            reach_cluster(kafka, RETRY_S)
            return build()
        except ClusterUnreachableError as exc:
            logger.warning("waiting for the cluster at %s: %s; trying again", kafka.bootstrap_servers, exc)
            for part in parts:
                health.set_state(part, "starting", f"waiting for the cluster at {kafka.bootstrap_servers}: {exc}")
        time.sleep(max(0.0, started + RETRY_S - time.monotonic()))  # a cluster refused at once is asked again only after RETRY_S


@guarded(kafka_error, sqlite_error)
class KafkaBridge(BridgePart):
    """The bridge sending its commands to the commands topic, its dead letters to the dead-letter topic."""


def kafka_service(
    settings: Settings, kafka: KafkaSettings, only: Iterable[PartName] = PARTS,
    clock: Callable[[], int] | None = None, deadline_interval_s: float = 5.0, feed: WatcherFeed | None = None,
) -> Service:
    """The service with these parts, each on its own clients (one producer per part: a part's flush
    confirms its own records, never waits on another's)."""
    clock = clock or system_clock
    codec = AvroCodec()
    parts: dict[str, Part] = {}
    checks: dict[str, Check] = {}  # each through the part's own consumer
    publishers: list[Publisher] = []
    closers_early: list[Callable[[], object]] = []
    model_part: KafkaReadModelPart | None = None
    for name in only:
        if name == "handler":
            handler = KafkaCommandHandler(kafka, codec, clock, settings.abort_timeout_us, state_path=settings.paths.handler_state)
            parts[name], checks[name] = handler, ConsumerCheck(handler.consumer, kafka.topics.commands)
            continue
        if name == "bridge":
            if feed is None:
                raise CommandValidationError("--only bridge: the bridge needs --watcher-topic")
            state = BridgeState(settings.paths.bridge_state)
            client = KafkaClient(kafka, codec)
            dead = Publisher(kafka)
            bridge = KafkaBridge(
                feed.open(state.positions()), client, DeadLetters(dead, kafka.topics.dead_letters), state, confirm_dead=dead.flush,
            )
            parts[name], checks[name] = bridge, bridge.source.check
            closers_early.append(client.close)
            continue
        publishers.append(Publisher(kafka))
        if name == "projections":
            model_part = KafkaReadModelPart(kafka, publishers[-1], ReadModel(settings.paths.model, codec), codec)
            parts[name], checks[name] = model_part, ConsumerCheck(model_part.consumer, kafka.topics.events)
        else:
            translator = translator_for(settings, codec, None)
            part = KafkaTranslatorPart(kafka, publishers[-1], translator, codec, state_path=settings.paths.translator_state)
            parts[name], checks[name] = part, ConsumerCheck(part.consumer, kafka.topics.events)
    closers: list[Callable[[], object]] = [p.flush for p in publishers] + closers_early
    if model_part is None:
        return Service(parts, closers=closers, checks=checks)
    model, deadlines, caught_up = model_part, KafkaClient(kafka, codec), [False]

    def deadline_pass() -> bool:
        """The pending deadlines from the model (an indexed query), once the model has first caught
        up: a model catching up at start shows plans CANCELLING whose cancellation has long ended."""
        caught_up[0] = caught_up[0] or model.at_end
        if not caught_up[0]:
            return False
        for command in overdue_commands(model.model, model.trail.read_plan, codec, clock(), "watcher-es serve"):
            deadlines.send(command)  # sent again each pass until handled: its id is derived, so it takes effect once
        return True

    closers += [deadlines.close, model.model.close]
    return Service(parts, deadline_pass=deadline_pass, interval_s=deadline_interval_s, closers=closers, checks=checks)


def run_in_processes(
    settings: Settings, kafka: KafkaSettings, parts: Iterable[PartName], deadline_interval_s: float, feed: WatcherFeed | None = None,
) -> None:
    """Each part in a forked process of its own, watched until one dies or serve is told to stop."""
    parts = tuple(parts)
    when_reachable(kafka, parts, lambda: None)  # one line per attempt, not one per part's process
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    fork = multiprocessing.get_context("fork")
    children = {
        name: fork.Process(target=_serve_part, args=(settings, kafka, name, deadline_interval_s, os.getpid(), feed), name=f"serve-{name}")
        for name in parts
    }
    for child in children.values():
        child.start()
    dead: list[str] = []
    try:
        while not stopping.is_set() and not dead:
            dead = [f"{name} (exit code {child.exitcode})" for name, child in children.items() if child.exitcode is not None]
            for name, child in children.items():
                if child.exitcode is not None:
                    health.set_state(name, "stopped", f"its process exited with code {child.exitcode}")
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


def _serve_part(
    settings: Settings, kafka: KafkaSettings, name: PartName, deadline_interval_s: float, parent: int, feed: WatcherFeed | None,
) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler: SIGTERM before ``run`` takes it over ends the part
    _die_with_parent()
    if name == "projections":
        os.nice(MODEL_NICENESS)  # before its clients start their threads, which inherit it
    try:
        with translated(kafka_error, sqlite_error):
            service = when_reachable(kafka, [name], lambda: kafka_service(settings, kafka, [name], deadline_interval_s=deadline_interval_s, feed=feed))
    except WatcherEsError as exc:  # a missing topic, a refused setting: say which
        logger.error("%s cannot start: %s", name, exc)
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
