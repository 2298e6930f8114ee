"""The events topic as a ``History``: read from its start through the fence, cut at a time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from eventstore.codec import AvroCodec
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import topic_pages
from eventstore.log import StoredEvent
from projections.exceptions import UnknownInstantError
from projections.history import EditedCommand, Until, occurred_by, parse_timestamp


class TopicHistory:
    """Its length is not known before it is read (``end`` is None); its commands travel inside the
    appends, so there is no separate command chain to check."""

    def __init__(self, settings: KafkaSettings, codec: AvroCodec) -> None:
        self._settings = settings
        self._codec = codec

    def pages(self, until: Until | None, batch_size: int) -> Iterator[Sequence[StoredEvent]]:
        return occurred_by(self.stored(batch_size), until.bound if until is not None else None)

    def stored(self, batch_size: int) -> Iterator[list[StoredEvent]]:
        return topic_pages(self._settings, self._codec)

    def until(self, text: str) -> Until:
        if text.strip().isdigit():
            raise UnknownInstantError(f"--until {text}: positions number the embedded log; on Kafka give an ISO 8601 time")
        at = parse_timestamp(text)
        return Until(at, f"{datetime.fromtimestamp(at / 1e6, UTC):%Y%m%dT%H%M%SZ}")

    def end(self) -> None:
        return None

    def edited_command(self) -> EditedCommand | None:
        return None
