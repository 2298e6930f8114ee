"""The history contract on Kafka: ``TopicHistory``, the events topic through the fence, cut at a time."""

from __future__ import annotations

import pytest

from eventstore.codec import AvroCodec
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.log import KafkaEventLog
from eventstore.log import EventLog, LogReader
from projections.history import History
from projections.kafka.history import TopicHistory

from .history import HistoryTestCase
from tests.support.wire import WireLog

pytestmark = pytest.mark.kafka


class TestTopicHistory(HistoryTestCase):
    @pytest.fixture(autouse=True)
    def _topics(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka

    def create_log(self) -> EventLog:
        return self.opened(KafkaEventLog(self.kafka, AvroCodec()))

    def create_history(self) -> History:
        return TopicHistory(self.kafka, AvroCodec())

    def create_reader(self) -> LogReader:
        return WireLog(self.kafka.bootstrap_servers, self.kafka.topics.events)
