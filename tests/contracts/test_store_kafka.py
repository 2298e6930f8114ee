"""The store contract on Kafka: commands through the topics to a `serve` running as its own process, queries
answered by the CLI's own read model (uses ``Serve`` and ``cli_env`` from tests/support/serve.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from typer.testing import CliRunner

from eventstore.config import Settings
from eventstore.kafka.config import KafkaSettings
from projections.cli import app
from projections.kafka.store import KafkaStore
from projections.store import Store

from tests.support.serve import Serve, cli_env
from .store import StoreTestCase

pytestmark = pytest.mark.kafka


class TestKafkaStore(StoreTestCase):
    @pytest.fixture(autouse=True)
    def _serving(self, kafka: KafkaSettings, tmp_path: Path) -> Iterator[None]:
        self.kafka = kafka
        self.db = tmp_path / "client.db"
        self.serve = Serve(cli_env(kafka, tmp_path / "serve.db"), tmp_path / "serve.log").start()
        try:
            yield
        finally:
            self.serve.stop()

    def create_store(self) -> Store:
        return KafkaStore(Settings(db=self.db, publisher_id="infra-optim:tests"), self.kafka)

    def cli(self, *args: str) -> str:
        result = CliRunner(env={**cli_env(self.kafka, self.db), "COLUMNS": "200"}).invoke(app, list(args))
        assert result.exit_code == 0, result.output + self.serve.log()
        return result.stdout

    def park_a_record(self) -> None:
        """A record on the commands topic that is no command: the handler parks it."""
        producer = Producer({"bootstrap.servers": self.kafka.bootstrap_servers})
        producer.produce(self.kafka.topics.commands, key=b"junk-key", value=b"\xde\xad not avro")
        assert producer.flush(30) == 0
