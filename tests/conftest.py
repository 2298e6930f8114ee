"""Small, generic factory fixtures: a fake clock, a codec, a log and an embedded backend on temp files.

Backend-specific fixtures (Kafka brokers, topics) live beside their tests, e.g. tests/kafka/.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from eventstore.codec import AvroCodec
from eventstore.config import Settings
from projections.sqlite.backend import EmbeddedBackend
from eventstore.sqlite.log import SqliteEventLog

from . import factories as f
from .kafka.conftest import broker, kafka  # noqa: F401  the contract suite runs one half on the broker


class FakeClock:
    """An injectable clock in UTC microseconds: it only moves when a test moves it."""

    def __init__(self, start: int = f.T0) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, microseconds: int) -> int:
        self.now += microseconds
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def codec() -> AvroCodec:
    """Parsing the schemas once is enough: a codec only grows by ``learn``, which tests do on their own."""
    return AvroCodec()


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SqliteEventLog]:
    event_log = SqliteEventLog(tmp_path / "log.db")
    yield event_log
    event_log.close()


ServiceFactory = Callable[..., EmbeddedBackend]


@pytest.fixture
def make_service(tmp_path: Path, clock: FakeClock) -> Iterator[ServiceFactory]:
    """Opens embedded backends on a temp store (same file each call unless ``db`` is given); closes them all."""
    opened: list[EmbeddedBackend] = []

    def make(db: Path | None = None, abort_timeout_us: int | None = None, publisher_id: str = "infra-optim:test") -> EmbeddedBackend:
        settings = Settings(db=db or tmp_path / "store.db", publisher_id=publisher_id)
        if abort_timeout_us is not None:
            settings = dataclasses.replace(settings, abort_timeout_us=abort_timeout_us)
        service = EmbeddedBackend(settings, clock=clock, codec=AvroCodec())
        opened.append(service)
        return service

    yield make
    for service in opened:
        service.close()


@pytest.fixture
def service(make_service: ServiceFactory) -> EmbeddedBackend:
    return make_service()
