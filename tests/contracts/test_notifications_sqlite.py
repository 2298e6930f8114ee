"""The notification sink contract on the embedded store: the outbox, sent to inside the consumer's write transaction."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from eventstore.codec import AvroCodec
from eventstore.config import Settings
from eventstore.sqlite_support import write_transaction
from projections.sqlite.notifications import NotificationOutbox, stored_notifications
from projections.translator import Notification, NotificationSink, translator_for

from .notifications import NotificationSinkTestCase, Received


class InItsTransaction:
    """The outbox as its consumer sends to it: in the write transaction that also moves its position."""

    def __init__(self, outbox: NotificationOutbox) -> None:
        self.outbox = outbox

    def send(self, notes: Sequence[Notification]) -> None:
        with write_transaction(self.outbox.db):
            self.outbox.send(notes)


class TestNotificationOutbox(NotificationSinkTestCase):
    @pytest.fixture(autouse=True)
    def _file(self, tmp_path: Path, codec: AvroCodec) -> None:
        settings = Settings(db=tmp_path / "w.db")
        self.outbox = self.opened(NotificationOutbox(settings.paths.notifications, translator_for(settings, codec, None)))

    def create_sink(self) -> NotificationSink:
        return InItsTransaction(self.outbox)

    def received(self) -> list[Received]:
        return [Received.sent(n) for n in stored_notifications(self.outbox)]
