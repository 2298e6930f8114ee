"""The dead-letter sink contract on Kafka: ``DeadLetters``, the dead-letter topic, listed as `dlq` reads it."""

from __future__ import annotations

import pytest

from eventstore.kafka.admin import letters
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import DeadLetters, Publisher
from eventstore.log import DeadLetter, DeadLetterSink

from .dead_letters import DeadLetterSinkTestCase
from tests.support.wire import read_topic

pytestmark = pytest.mark.kafka


class TestDeadLetterTopic(DeadLetterSinkTestCase):
    @pytest.fixture(autouse=True)
    def _topics(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self.publisher = Publisher(kafka)

    def create_sink(self) -> DeadLetterSink:
        return DeadLetters(self.publisher, self.kafka.topics.dead_letters)

    def source(self, n: int) -> str:
        return f"{self.kafka.topics.events}/{n}"

    def letters(self) -> list[DeadLetter]:
        self.publisher.flush()  # what every part does before it moves its positions past a parked record
        return letters(self.kafka)

    def test_the_topic_keeps_the_record_and_kafka_connects_headers(self) -> None:
        """The wire contract's "Dead letters" section, read with a plain consumer."""
        self.test_each_letter_says_where_the_record_was_who_parked_it_and_why()
        reads = read_topic(self.kafka.bootstrap_servers, self.kafka.topics.dead_letters)
        by_value = {r.value: r for r in reads}
        third = by_value[b"x" * 300]
        assert third.key == b"plan-a"
        assert [(k, v.decode()) for k, v in third.headers] == [
            ("__connect.errors.topic", self.kafka.topics.events), ("__connect.errors.partition", "0"),
            ("__connect.errors.offset", "2"), ("__connect.errors.stage", "fence"),
            ("__connect.errors.exception.class.name", "eventstore.exceptions.StaleAppendError"),
            ("__connect.errors.exception.message", "lost"), ("ce_id", "c-1"),
        ]
