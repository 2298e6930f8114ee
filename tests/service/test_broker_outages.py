"""The cluster goes away and `serve` stays: a broker frozen in the middle of a load, connections
cut while commands flow, a broker that is not there yet when `serve` starts.

Faults for real, on a broker of this module's own (the session's broker must not freeze under
other tests): Tansu behind a TCP proxy of the test's own that it advertises, so every client
connection goes through the proxy; SIGSTOP and SIGCONT of Tansu's process. What operators rely
on after each: every command has its outcome, every plan its notifications, no ``message_id``
was delivered with two contents, `serve` never restarted and printed no traceback, and
`/healthz` said 503 while the cluster was gone and 200 after.
"""

from __future__ import annotations

import gc
import os
import signal
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from eventstore.codec import AvroCodec
from eventstore.domain.messages import Command
from eventstore.kafka.admin import init_topics
from eventstore.kafka.client import KafkaClient, OutcomeWatcher
from eventstore.kafka.config import KafkaSettings, Topics
from eventstore.kafka.io import TopicFollower
from eventstore.kafka.records import header_map

from tests import factories as f
from tests.support.endpoint import healthz
from tests.support.folding import folded_plans
from tests.support.outcomes import handled, read_outcomes, send_steadily, wait_outcomes
from tests.support.proxy import Proxy
from tests.support.serve import Serve, cli_env
from tests.support.tansu import Tansu, free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.kafka  # a broker of its own, not the session's `broker` fixture

#: How long the broker stays frozen, and how soon /healthz must notice (a part is unhealthy
#: 10 s after it last reached the cluster; its check runs every 2 s and waits 5 s for an answer).
FROZEN_S = 20
NOTICED_S = 18
#: Four notifications a plan: action_plan.cancel.start, action.cancel.start/.end, action_plan.cancel.end.
NOTES_PER_PLAN = 4


@dataclass
class Outage:
    tansu: Tansu
    proxy: Proxy

    def topics(self) -> KafkaSettings:
        """Topics and groups of the test's own on this broker, created with `init`'s code."""
        tag = uuid.uuid4().hex[:8]
        settings = KafkaSettings(self.tansu.bootstrap_servers, Topics.with_prefix(f"o{tag}", f"notifications{tag}"), group_prefix=f"g{tag}")
        init_topics(settings, partitions=3, replication_factor=1)
        return settings

    @property
    def pid(self) -> int:
        assert self.tansu.proc is not None
        return self.tansu.proc.pid


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    tansu_port, proxy_port = free_port(), free_port()
    log = tmp_path_factory.mktemp("outage") / "tansu.log"
    with Proxy(tansu_port, proxy_port) as proxy, Tansu(log, port=tansu_port, advertised_port=proxy_port) as tansu:
        yield Outage(tansu, proxy)
        gc.collect()  # clients left to the collector go while the broker answers


def load(plans: int) -> tuple[list[str], list[Command]]:
    """Each plan registered PENDING with one PENDING action, then cancelled: four notifications each."""
    uuids = [str(uuid.uuid4()) for _ in range(plans)]
    commands: list[Command] = []
    for plan in uuids:
        commands += [f.register(plan, "PENDING", [f.action()]), f.cancel(plan, reason="outage test")]
    return uuids, commands


def started(kafka: KafkaSettings, tmp_path: Path, port: int, client: KafkaClient) -> tuple[Serve, OutcomeWatcher]:
    """`serve` with its endpoint, once it has handled a first command (its groups joined)."""
    serve = Serve(cli_env(kafka, tmp_path / "serve.db"), tmp_path / "serve.log", ("--metrics-port", str(port))).start()
    watcher = client.follow_outcomes(time.time_ns() // 1_000_000 - 5000)
    warm_up = f.register()
    client.send(warm_up)
    client.wait_outcome(warm_up.command_id, watcher, 120)
    wait_until(lambda: healthz(port)[0] == 200, 60, lambda: f"/healthz 200: {healthz(port)}\n{serve.log()}", interval=0.5)
    return serve, watcher


def delivered_once(kafka: KafkaSettings, expected: int) -> dict[str, set[bytes]]:
    """Every notification on both topics by message_id (each with every content it was delivered with)."""
    contents: dict[str, set[bytes]] = defaultdict(set)
    followers = [TopicFollower(kafka, kafka.topics.notification_topic(p)) for p in ("INFO", "ERROR")]

    def read() -> int:
        for follower in followers:
            for msg in follower.poll(0.2):
                contents[header_map(msg.headers())["ce_id"]].add(msg.value() or b"")
        return len(contents)

    try:
        wait_until(lambda: read() >= expected, 120, lambda: f"{expected} notifications ({len(contents)} so far)", interval=0)
        for follower in followers:
            for msg in follower.drain():
                contents[header_map(msg.headers())["ce_id"]].add(msg.value() or b"")
    finally:
        for follower in followers:
            follower.close()
    return contents


def assert_nothing_lost_or_doubled(kafka: KafkaSettings, plans: list[str], serve: Serve) -> None:
    contents = delivered_once(kafka, len(plans) * NOTES_PER_PLAN)
    assert len(contents) == len(plans) * NOTES_PER_PLAN, "every plan's notifications, none more"
    assert [m for m, values in contents.items() if len(values) > 1] == [], "no message_id with two contents"
    final = folded_plans(kafka)
    assert {final[p].state for p in plans} == {"CANCELLED"}
    assert {final[p].version for p in plans} == {5}, "registered, then the cancel's four events, once"
    assert serve.proc is not None and serve.proc.poll() is None, "serve is still running, never restarted"
    assert "Traceback" not in serve.log()


def test_a_broker_frozen_for_20_s_mid_load_is_survived(outage: Outage, tmp_path: Path) -> None:
    kafka, port = outage.topics(), free_port()
    client = KafkaClient(kafka, AvroCodec())
    serve, watcher = started(kafka, tmp_path, port, client)
    plans, commands = load(1000)
    sender = threading.Thread(target=send_steadily, args=(client, commands, 0.002))
    seen: set[str] = set()
    problems: list[str] = []
    try:
        sender.start()
        wait_until(lambda: len(read_outcomes(watcher, seen)) >= len(commands) // 4, 120,
                   lambda: f"a quarter of the load handled\n{serve.log()}", interval=0)
        os.kill(outage.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            status, report = wait_until(lambda: (lambda h: h if h[0] == 503 else None)(healthz(port)), NOTICED_S,
                                        lambda: f"/healthz 503 while the broker is frozen: {healthz(port)}")
            problems = report["problems"]
            time.sleep(max(0.0, frozen_at + FROZEN_S - time.monotonic()))  # the freeze's length is the fault under test
        finally:
            os.kill(outage.pid, signal.SIGCONT)
        assert len(seen) < len(commands), "the freeze came after the load: it tested nothing"
        sender.join()
        wait_outcomes(watcher, (c.command_id for c in commands), seen, 180, "after the freeze", serve.log)
        wait_until(lambda: healthz(port)[0] == 200, 60, lambda: f"/healthz 200 after the freeze: {healthz(port)}")
        assert_nothing_lost_or_doubled(kafka, plans, serve)
    finally:
        os.kill(outage.pid, signal.SIGCONT)
        sender.join()
        watcher.close()
        client.close()
        serve.stop()
    # Each problem names a part and why: it no longer reaches the cluster, or its work fails for it.
    parts = ("handler", "projections", "translator")
    assert problems and all(p.startswith(parts) and ("has not reached its store" in p or " is failing: " in p) for p in problems), problems


def test_connections_cut_mid_load_lose_nothing_and_double_nothing(outage: Outage, tmp_path: Path) -> None:
    kafka, port = outage.topics(), free_port()
    client = KafkaClient(kafka, AvroCodec())
    serve, watcher = started(kafka, tmp_path, port, client)
    plans, commands = load(300)
    sender = threading.Thread(target=send_steadily, args=(client, commands, 0.008))
    seen: set[str] = set()
    cuts: list[int] = []
    try:
        sender.start()
        for fifth in (1, 2, 3):
            wait_until(lambda: len(read_outcomes(watcher, seen)) >= len(commands) * fifth // 5, 120,
                       lambda: f"{fifth} fifths of the load handled\n{serve.log()}", interval=0)
            if fifth == 1:
                assert sender.is_alive(), "the first cut came after the load was sent: it tested nothing"
            cuts.append(outage.proxy.cut())
        sender.join()
        wait_outcomes(watcher, (c.command_id for c in commands), seen, 180, "after the cuts", serve.log)
        assert_nothing_lost_or_doubled(kafka, plans, serve)
    finally:
        sender.join()
        watcher.close()
        client.close()
        serve.stop()
    assert min(cuts) >= 2, f"connections cut each time: {cuts} (serve's and the sender's at least)"


def test_serve_started_before_its_cluster_waits_for_it_then_works(outage: Outage, tmp_path: Path) -> None:
    kafka, port = outage.topics(), free_port()
    outage.proxy.refuse()  # the broker is down for serve's clients
    serve = Serve(cli_env(kafka, tmp_path / "serve.db"), tmp_path / "serve.log", ("--metrics-port", str(port))).start()
    client = KafkaClient(kafka, AvroCodec())
    try:
        wait_until(lambda: serve.log().count("waiting for the cluster") >= 2, 60, lambda: f"two attempts said\n{serve.log()}", interval=0.5)
        status, report = healthz(port)
        assert status == 503 and all("waiting for the cluster" in p for p in report["problems"]), report
        outage.proxy.accept()
        assert list(handled(client, [f.register()]).values()) == ["accepted"]
        wait_until(lambda: healthz(port)[0] == 200, 60, lambda: f"/healthz 200 once the cluster came: {healthz(port)}")
    finally:
        if serve.proc is not None and serve.proc.poll() is None:
            serve.stop()
        outage.proxy.refuse()
        outage.proxy.accept()
        client.close()
    log = serve.log()
    waiting = [line for line in log.splitlines() if "waiting for the cluster" in line]
    assert waiting and all("Connection refused" in line for line in waiting), log
    assert len(log.splitlines()) <= len(waiting) + 8, f"one line per attempt, not librdkafka's retries:\n{log}"
    assert "Traceback" not in log
