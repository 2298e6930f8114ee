"""The one way a test waits: for a condition, or for a consumer to reach a position; never a bare sleep.

A test that sleeps for "long enough" is slow when the machine is idle and flaky when it is busy;
a test that polls a condition until a deadline is neither, and says what it waited for when it
gives up. Everything that waits in tests/ comes here (the Watcher peer's harness too, so this
module imports nothing from the product).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")

#: Between two calls of a condition that returns at once; a condition that blocks by itself
#: (a consumer's poll, a subprocess) is called again at once with ``interval=0``.
INTERVAL_S = 0.05


class WaitTimeout(AssertionError):
    """What a test waited for did not happen in time (an AssertionError: pytest reports a failed expectation)."""


def wait_until(condition: Callable[[], T | None], timeout: float, what: str | Callable[[], str], *, interval: float = INTERVAL_S) -> T:
    """Calls ``condition`` until it returns a true value, and returns that value.

    ``what`` names the awaited thing (a callable is only called on a timeout, so it may read a
    log). On a timeout, ``WaitTimeout`` names it, the time waited and the condition's last value.
    An exception from ``condition`` ends the wait at once: that is how a condition says "this
    will never happen" (a process that died, a wrong answer).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            described = what() if callable(what) else what
            raise WaitTimeout(f"gave up after {timeout:g} s waiting for {described}; the last value was {_short(value)}")
        if interval:
            time.sleep(interval)


def wait_for_position(
    position: Callable[[], Mapping[str, int]], target: Mapping[str, int], timeout: float, what: str | Callable[[], str],
    *, interval: float = INTERVAL_S,
) -> dict[str, int]:
    """Until a consumer's position (source -> position, as ``Position`` and the tracking tables
    keep it) covers ``target`` source by source, and returns it. Positions of different sources
    say nothing about each other, so they are compared one by one, never summed."""
    reached: dict[str, int] = {}

    def covered() -> bool:
        reached.clear()
        reached.update(position())
        return all(reached.get(source, 0) >= at for source, at in target.items())

    def described() -> str:
        behind = {source: (reached.get(source, 0), at) for source, at in sorted(target.items()) if reached.get(source, 0) < at}
        return f"{what() if callable(what) else what}: behind at {', '.join(f'{s} {r} of {a}' for s, (r, a) in behind.items())}"

    wait_until(covered, timeout, described, interval=interval)
    return dict(reached)


def _short(value: object, limit: int = 2000) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
