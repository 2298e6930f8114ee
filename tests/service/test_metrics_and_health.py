"""`serve --metrics-port`: what Prometheus scrapes at /metrics and an orchestrator asks at /healthz.

Scraped over HTTP as Prometheus does and read with prometheus_client's own parser; with
`--processes`, one endpoint counts every part's process. /healthz is 200 with each part's state
while every part runs and reaches its store, 503 naming the part and why otherwise.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventstore import health
from eventstore.codec import AvroCodec
from eventstore.config import Settings, system_clock
from eventstore.kafka.client import KafkaClient
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import Publisher
from projections.exporter import health_report
from projections.kafka.service import kafka_service

from tests import factories as f
from tests.support.endpoint import Samples, healthz, scrape, value
from tests.support.outcomes import handled
from tests.support.plan_documents import plan_document, write_plan
from tests.support.serve import Serve, cli_env, run_cli
from tests.support.tansu import free_port
from tests.support.waiting import wait_until

@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def serving(kafka: KafkaSettings, tmp_path: Path, port: int) -> Iterator[Serve]:
    serve = Serve(cli_env(kafka, tmp_path / "serve.db"), tmp_path / "serve.log", ("--processes", "--metrics-port", str(port))).start()
    try:
        yield serve
    finally:
        serve.stop()


def test_one_endpoint_counts_every_part_of_serve_processes(kafka: KafkaSettings, serving: Serve, port: int) -> None:
    wait_until(lambda: healthz(port)[0] == 200, 90, lambda: f"/healthz to say 200: {healthz(port)}\n{serving.log()}", interval=0.5)
    status, report = healthz(port)
    assert report["status"] == "ok" and set(report["parts"]) == {"handler", "projections", "translator"}
    assert all(p["state"] == "running" and p["healthy"] for p in report["parts"].values())

    client = KafkaClient(kafka, AvroCodec())
    plans = [str(uuid.uuid4()) for _ in range(3)]
    try:
        commands = [c for plan in plans for c in f.cancellation_story(plan)]
        now = system_clock()  # the latency is from issued_at: these cancels are issued now
        commands = [f.cancel(c.plan_uuid, reason="now", at=now) if type(c).__name__ == "CancelActionPlan" else c for c in commands]
        outcomes = handled(client, commands)
        # Not a command at all: the handler dead-letters it.
        publisher = Publisher(kafka)
        publisher.produce(kafka.topics.commands, plans[0], b"not avro", [("ce_type", b"CancelActionPlan")])
        publisher.flush()
    finally:
        client.close()
    assert sorted(outcomes.values()).count("rejected") == 3  # each story's second cancel

    def counted() -> Samples | None:
        samples = scrape(port)
        done = (
            value(samples, "watcher_es_dead_letters_total", stage="handler") == 1
            and value(samples, "watcher_es_notifications_total", event_type="action_plan.cancel.end") == 3
            and value(samples, "watcher_es_cancel_to_notification_seconds_count") == 3
        )
        return samples if done else None

    samples = wait_until(counted, 60, lambda: f"the counts of 12 commands: {scrape(port)}\n{serving.log()}", interval=0.5)
    assert value(samples, "watcher_es_commands_total", type="RegisterActionPlan", outcome="accepted") == 3
    assert value(samples, "watcher_es_commands_total", type="CancelActionPlan", outcome="accepted") == 3
    assert value(samples, "watcher_es_commands_total", type="CancelActionPlan", outcome="rejected") == 3
    assert value(samples, "watcher_es_commands_total", type="ReportAbortResult", outcome="accepted") == 3
    assert value(samples, "watcher_es_notifications_total", event_type="action_plan.cancel.start") == 3
    assert value(samples, "watcher_es_fence_conflicts_total") == 0
    # Issued now, confirmed within a minute: every observation is in a bucket below +Inf's neighbour.
    assert value(samples, "watcher_es_cancel_to_notification_seconds_bucket", le="60.0") == 3
    for part in ("handler", "projections", "translator"):
        assert ("watcher_es_consumer_lag", (("part", part),)) in samples, part
        assert value(samples, "watcher_es_part_healthy", part=part) == 1
    assert healthz(port)[0] == 200
    assert "Traceback" not in serving.log()


def test_the_embedded_serve_counts_what_every_process_did_to_the_store(tmp_path: Path, port: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_ES_")} | {"WATCHER_ES_DB": str(tmp_path / "w.db"), "NO_COLOR": "1"}
    serve = Serve(env, tmp_path / "serve.log", ("--metrics-port", str(port), "--interval", "0.1")).start()
    try:
        wait_until(lambda: healthz(port)[0] == 200, 60, lambda: f"/healthz to say 200: {healthz(port)}\n{serve.log()}", interval=0.2)
        assert run_cli(env, "register", write_plan(tmp_path, plan_document())).returncode == 0
        cancelled = run_cli(env, "cancel", plan_document()["uuid"], "--reason", "r")  # handled by the CLI's own process
        assert cancelled.returncode == 0, cancelled.stderr

        def counted() -> Samples | None:
            samples = scrape(port)
            return samples if value(samples, "watcher_es_notifications_total", event_type="action_plan.cancel.end") == 1 else None

        samples = wait_until(counted, 30, lambda: f"the cancel counted: {scrape(port)}", interval=0.2)
        assert value(samples, "watcher_es_commands_total", type="CancelActionPlan", outcome="accepted") == 1
        assert value(samples, "watcher_es_notifications_total", event_type="action.cancel.start") == 3
        assert value(samples, "watcher_es_consumer_lag", part="projections") == 0
        status, report = healthz(port)
        assert status == 200 and report["parts"]["projections"]["state"] == "running"
    finally:
        serve.stop()
    assert "Traceback" not in serve.log()


class Broken:
    def poll(self, timeout: float = 0.2) -> int:
        raise RuntimeError("a bug in a part")

    def close(self) -> None:
        pass


def test_health_names_a_dead_part_and_why(tmp_path: Path) -> None:
    board = health.Board()
    health.install(board)
    try:
        service = kafka_service(Settings(db=tmp_path / "w.db"), KafkaSettings("127.0.0.1:9"), only=())  # nothing is contacted
        service.parts["broken"] = Broken()
        with pytest.raises(RuntimeError):
            service.run()
        ok, report = health_report(board.parts())
    finally:
        health.install(None)
    assert not ok and report["status"] == "unhealthy"
    assert report["problems"] == ["broken is stopped: RuntimeError: a bug in a part"]
    assert report["parts"]["broken"]["state"] == "stopped"
