"""The plan states contract on Kafka: ``StorePlans``, the handler's state store kept current by its log."""

from __future__ import annotations

import pytest

from eventstore.codec import AvroCodec
from eventstore.handler import PlanStates
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.handler import StorePlans
from eventstore.kafka.state_store import PlanStateStore
from eventstore.log import EventLog, LogReader

from .plan_states import PlanStatesTestCase
from tests.support.wire import WireLog

pytestmark = pytest.mark.kafka


class TestStorePlans(PlanStatesTestCase):
    @pytest.fixture(autouse=True)
    def _topics(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka

    def create(self, codec: AvroCodec) -> tuple[EventLog, PlanStates]:
        plans = StorePlans(self.kafka, codec, PlanStateStore(None))
        return self.opened(plans.log), plans

    def create_reader(self) -> LogReader:
        return WireLog(self.kafka.bootstrap_servers, self.kafka.topics.events)
