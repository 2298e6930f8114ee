"""Plugin: the broker for the Kafka tests, and the ``kafka`` marker that says which tests need it.

One Tansu broker per session (``broker``: its bootstrap servers), started by the first test that
needs it; every test gets topics and consumer groups of its own (``kafka``). A test needs the
broker when ``broker`` is in its fixture closure: such a test is marked ``kafka`` at collection,
so ``pytest -m "not kafka"`` deselects exactly the tests that would start it. A test that reaches
the broker some other way (``request.getfixturevalue``) must carry the marker itself; one that
does not fails when it asks for the broker, so a ``-m "not kafka"`` run can never start Tansu.
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator

import pytest

from eventstore.kafka.admin import init_topics
from eventstore.kafka.config import KafkaSettings, Topics
from tests.support.tansu import Tansu, tansu_binary

BROKER = "broker"
MARKER = "kafka"
_RUNNING = pytest.StashKey[pytest.Item]()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Before ``-m`` selects: every test whose fixtures start the broker is a ``kafka`` test."""
    for item in items:
        if BROKER in getattr(item, "fixturenames", ()):
            item.add_marker(MARKER)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.config.stash[_RUNNING] = item


def _marked(item: pytest.Item | None) -> None:
    if item is not None and item.get_closest_marker(MARKER) is None:
        pytest.fail(
            f"{item.nodeid} uses the Kafka broker but is not marked `{MARKER}`: ask for the `{BROKER}` or `kafka` "
            f"fixture by name, or mark it, so that `pytest -m 'not {MARKER}'` never starts a broker",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def broker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    _marked(request.config.stash.get(_RUNNING, None))
    try:
        tansu_binary()
    except FileNotFoundError as e:
        pytest.fail(str(e), pytrace=False)
    with Tansu(tmp_path_factory.mktemp("tansu") / "tansu.log") as tansu:
        yield tansu.bootstrap_servers
        # Clients a test left to the garbage collector go while the broker still answers, not at
        # exit, where librdkafka would log every refused reconnection.
        gc.collect()


@pytest.fixture
def kafka(request: pytest.FixtureRequest, broker: str) -> KafkaSettings:
    """Topics and consumer groups of this test's own, created with `init`'s code."""
    _marked(request.node if isinstance(request.node, pytest.Item) else None)
    tag = uuid.uuid4().hex[:8]
    settings = KafkaSettings(broker, Topics.with_prefix(f"t{tag}", f"notifications{tag}"), group_prefix=f"g{tag}")
    init_topics(settings, partitions=3, replication_factor=1)
    return settings
