"""The event log contract on a Kafka events topic (a real broker), read back by the wire-contract oracle."""

from __future__ import annotations

import pytest

from eventstore.codec import AvroCodec
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.log import KafkaEventLog
from eventstore.log import EventLog, LogReader

from .event_log import EventLogTestCase
from tests.support.wire import WireLog

pytestmark = pytest.mark.kafka


class TestKafkaEventLog(EventLogTestCase):
    @pytest.fixture(autouse=True)
    def _topics(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka

    def create_log(self) -> EventLog:
        return self.opened(KafkaEventLog(self.kafka, AvroCodec()))

    def create_reader(self) -> LogReader:
        return WireLog(self.kafka.bootstrap_servers, self.kafka.topics.events)
