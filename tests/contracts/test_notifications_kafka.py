"""The notification sink contract on Kafka: the ``.info``/``.error`` topics, read back by the wire contract."""

from __future__ import annotations

import pytest

from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import Publisher
from projections.kafka.notifications import NotificationTopics
from projections.translator import NotificationSink

from .notifications import NotificationSinkTestCase, Received
from tests.support.wire import notifications

pytestmark = pytest.mark.kafka


class TestNotificationTopics(NotificationSinkTestCase):
    @pytest.fixture(autouse=True)
    def _topics(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka

    def create_sink(self) -> NotificationSink:
        return NotificationTopics(Publisher(self.kafka), self.kafka)  # confirmed when `send` returns: nothing to flush here

    def received(self) -> list[Received]:
        topics = [self.kafka.topics.notification_topic(p) for p in ("INFO", "ERROR")]
        out = []
        for d in notifications(self.kafka.bootstrap_servers, topics):
            assert d.topic == self.kafka.topics.notification_topic(d.message["priority"]) and d.key == d.plan_uuid
            assert d.message_id == d.message["message_id"]
            out.append(Received(
                d.message_id, d.message["event_type"], d.message["priority"], d.plan_uuid, d.plan_seq, d.event_id, d.payload_set, d.message,
            ))
        return out
