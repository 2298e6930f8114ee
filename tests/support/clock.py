"""Plugin: clocks the tests control, in UTC microseconds: ``clock`` (a ``FakeClock``)."""

from __future__ import annotations

import pytest

from tests import factories as f

SECOND = 1_000_000


class FakeClock:
    """An injectable clock: it only moves when a test moves it."""

    def __init__(self, start: int = f.T0) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, microseconds: int) -> int:
        self.now += microseconds
        return self.now


class TickingClock:
    """Every reading is one second after the previous one: each command of a story gets its own time."""

    def __init__(self, start: int = f.T0) -> None:
        self.now = start

    def __call__(self) -> int:
        self.now += SECOND
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
