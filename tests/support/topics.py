"""Where a topic ends now, as the position a consumer has reached when it has read all of it."""

from __future__ import annotations

from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import TopicFollower, positions_reached


def end_of(kafka: KafkaSettings, topic: str) -> dict[str, int]:
    """Each partition of ``topic`` with a record: ``topic/partition`` -> offset + 1 of its last record."""
    follower = TopicFollower(kafka, topic)
    try:
        return positions_reached(follower.drain())
    finally:
        follower.close()
