"""Acceptance: an unmodified oslo.messaging notification listener on kafka:// receives our notifications."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Any

import oslo_messaging
from oslo_config import cfg

from eventstore.codec import AvroCodec
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import Publisher, topic_pages
from eventstore.kafka.records import oslo_envelope
from projections.translator import Translator

from tests.support.serve import Serve, cli_env, run_cli
from tests.support.waiting import wait_until


class Endpoint:
    """What an OpenStack service writes: one method per priority it cares about."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = []
        self.lock = threading.Lock()

    def _take(self, priority: str, publisher_id: str, event_type: str, payload: dict[str, Any], metadata: dict[str, Any]) -> None:
        with self.lock:
            self.received.append((priority, event_type, payload, {**metadata, "publisher_id": publisher_id}))

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: dict[str, Any], metadata: dict[str, Any]) -> None:
        self._take("info", publisher_id, event_type, payload, metadata)

    def error(self, ctxt: Any, publisher_id: str, event_type: str, payload: dict[str, Any], metadata: dict[str, Any]) -> None:
        self._take("error", publisher_id, event_type, payload, metadata)

    def seen(self, predicate: Any) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
        with self.lock:
            return [r for r in self.received if predicate(r)]


def test_oslo_listener_receives_every_demo_notification_at_its_priority(kafka: KafkaSettings, serve: Serve, tmp_path: Path) -> None:
    conf = cfg.ConfigOpts()
    conf([], project="watcher-es-tests")
    transport = oslo_messaging.get_notification_transport(conf, url=f"kafka://{kafka.bootstrap_servers}")
    endpoint = Endpoint()
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=kafka.topics.notifications)], [endpoint],
        executor="threading", pool=f"oslo-{uuid.uuid4().hex[:6]}",
    )
    listener.start()
    try:
        # The listener starts at `latest` once its group has joined: probe until it hears both topics.
        probe = Publisher(kafka)
        probe_id = str(uuid.uuid4())

        def heard_probes() -> bool:
            for priority in ("INFO", "ERROR"):
                note: dict[str, Any] = {"message_id": str(uuid.uuid4()), "publisher_id": "probe", "event_type": f"probe.{probe_id}",
                        "priority": priority, "payload": {}, "timestamp": "2026-01-01 00:00:00.000000"}
                probe.produce(kafka.topics.notification_topic(priority), "probe", oslo_envelope(note), [])
            probe.flush()
            return {r[0] for r in endpoint.seen(lambda r: r[1] == f"probe.{probe_id}")} == {"info", "error"}

        wait_until(heard_probes, 120, "the oslo.messaging listener to join its group", interval=0.2)

        serve.start()
        result = run_cli(cli_env(kafka, tmp_path / "client.db"), "demo", "--json")
        assert result.returncode == 0, result.stderr + serve.log()
        emitted = [json.loads(line) for line in result.stdout.splitlines()]
        ids = {n["message_id"] for n in emitted}
        wait_until(lambda: {r[3]["message_id"] for r in endpoint.seen(lambda r: True)} >= ids, 60, "every notification at the listener", interval=0.2)
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()

    got = {r[3]["message_id"]: r for r in endpoint.seen(lambda r: r[3]["message_id"] in ids)}
    assert {r[1] for r in got.values()} == {
        "action_plan.cancel.start", "action_plan.cancel.end", "action_plan.cancel.error",
        "action.cancel.start", "action.cancel.end", "action.cancel.error",
    }
    for priority, event_type, _, _ in got.values():
        assert priority == ("error" if event_type.endswith(".error") else "info")

    # What the translator produces from the events topic, re-derived independently.
    codec = AvroCodec()
    events = sorted((e for page in topic_pages(kafka, AvroCodec()) for e in page), key=lambda e: (e.source, e.position, e.version))
    translated = {n.message_id: n.envelope for n in Translator(codec, None, "infra-optim:tests", cache_size=None).translate(events)}
    assert set(translated) == ids
    for message_id, (_, event_type, payload, metadata) in got.items():
        expected = translated[message_id]
        assert payload == expected["payload"]
        assert event_type == expected["event_type"]
        assert metadata["timestamp"] == expected["timestamp"]
        assert metadata["publisher_id"] == expected["publisher_id"]
