"""Watcher's notifications back in the order Watcher sent them.

Watcher's records have no key: one plan's notifications are spread over every partition of two
topics and are read back out of order. Each record waits here until every partition has been
read past its timestamp (a partition at its end has nothing older to give), and a little longer
(``grace_s``, for records of other hosts still on their way); then the records are let go in
timestamp order. Watcher's timestamps come from several hosts' clocks, so this is the order
Watcher meant as far as its clocks agree; ``mirror.py`` takes each plan's facts so that what
Watcher does in one service (the applier, in order) keeps its order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(order=True)
class _Held(Generic[T]):
    timestamp: int
    source: str
    position: int
    arrived: float = field(compare=False)
    item: T = field(compare=False)


class Reorder(Generic[T]):
    """Items (each with its Watcher timestamp and where it was read) held until they can be let go in order."""

    def __init__(self, grace_s: float = 0.3, clock: Callable[[], float] = time.monotonic) -> None:
        self._grace_s = grace_s
        self._clock = clock
        self._held: list[_Held[T]] = []
        #: The newest timestamp read from each source (a partition).
        self._latest: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._held)

    def add(self, timestamp: int, source: str, position: int, item: T) -> None:
        self._held.append(_Held(timestamp, source, position, self._clock(), item))
        self._latest[source] = max(self._latest.get(source, timestamp), timestamp)

    def release(self, sources: Iterable[str], at_end: Mapping[str, bool], everything: bool = False) -> list[T]:
        """What can go now, oldest first: read past by every source (or the source is at its end) and
        held ``grace_s``. Only a prefix in timestamp order goes: a record that must wait holds back
        every later one, so nothing ever goes before an older record still held."""
        if not self._held:
            return []
        now = self._clock()
        fronts = [self._latest.get(s, -1) for s in sources if not at_end.get(s, False)]
        front = min(fronts) if fronts else None  # None: every source is at its end
        self._held.sort()
        ready = 0
        for h in self._held:
            if not everything and ((front is not None and h.timestamp > front) or now - h.arrived < self._grace_s):
                break
            ready += 1
        gone, self._held = self._held[:ready], self._held[ready:]
        return [h.item for h in gone]

    def first_positions(self) -> dict[str, int]:
        """Each source's earliest position still held: a restart must read again from there."""
        first: dict[str, int] = {}
        for h in self._held:
            first[h.source] = min(first.get(h.source, h.position), h.position)
        return first
