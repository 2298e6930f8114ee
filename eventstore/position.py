"""Where a reader has got to in the log, as a value: compared source by source, never summed.

The embedded log is one source, ``log``, numbered by one global sequence. On Kafka every
partition of the events topic (``topic/partition``) is a source of its own, numbered offset + 1,
so 0 always means "nothing read yet". Offsets of different partitions say nothing about each
other: adding them gives no position, so nothing here does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

LOG = "log"


def where(source: str, position: int) -> str:
    """A position as people read it, the one spelling in every message: ``position 7`` in the
    embedded log, ``<topic>/<partition> offset 6`` in a topic (position = offset + 1)."""
    return f"position {position}" if source == LOG else f"{source} offset {position - 1}"


@dataclass(frozen=True)
class Position:
    """The last position applied, per source."""

    sources: tuple[tuple[str, int], ...] = ()

    @classmethod
    def of(cls, positions: Mapping[str, int]) -> Position:
        """Sources at 0 (nothing read) are left out, so every position has one spelling."""
        return cls(tuple(sorted((s, p) for s, p in positions.items() if p)))

    @classmethod
    def at(cls, sequence: int) -> Position:
        """A position of the embedded log."""
        return cls.of({LOG: sequence})

    def __getitem__(self, source: str) -> int:
        return dict(self.sources).get(source, 0)

    @property
    def sequence(self) -> int | None:
        """The embedded log's global sequence number; None on a partitioned log."""
        return self[LOG] if all(s == LOG for s, _ in self.sources) else None

    def covers(self, other: Position) -> bool:
        """Everything ``other`` has applied, this has applied too."""
        return all(self[source] >= position for source, position in other.sources)

    def behind(self, other: Position) -> int:
        """How many positions ``other`` has applied that this has not: a count, source by source."""
        return sum(max(position - self[source], 0) for source, position in other.sources)

    def to_json(self) -> int | dict[str, int]:
        """The embedded log's sequence number as it is; a partitioned log's as ``{source: position}``."""
        return self.sequence if self.sequence is not None else dict(self.sources)

    def __str__(self) -> str:
        if self.sequence is not None:
            return str(self.sequence)
        return ", ".join(f"{source}@{position}" for source, position in self.sources) or "the start"
