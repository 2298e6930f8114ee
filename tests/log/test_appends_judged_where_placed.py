"""A Kafka writer judges its own appends where the cluster put them, and reads back only when it must.

The delivery reports give each append's offset. Appends of ours that landed one after another
right where the writer's state of their partition ends have nothing between them, so the writer
applies the fence to them at once, as every reader will. When another writer's record landed
first, the writer reads the partition back and the partition order decides, as before.
"""

from __future__ import annotations

import uuid

import pytest

from eventstore.codec import AvroCodec
from eventstore.exceptions import StaleVersionError
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.log import KafkaEventLog
from eventstore.log import AppendRequest

from tests import factories as f
from tests.support.appends import A, new_events, record_of
from tests.support.wire import WireLog


def test_appends_that_land_where_the_state_ends_are_judged_without_being_read_back(kafka: KafkaSettings) -> None:
    codec = AvroCodec()
    writer, reader = KafkaEventLog(kafka, codec), WireLog(kafka.bootstrap_servers, kafka.topics.events)
    try:
        p, q = str(uuid.uuid4()), str(uuid.uuid4())
        register_p, register_q = f.register(p, "ONGOING", [f.action(A[0], "ONGOING")]), f.register(q, "PENDING", [f.action(A[1])])
        plan_p, events_p = new_events(codec, None, register_p)
        _, events_q = new_events(codec, None, register_q)
        cancel_p = f.cancel(p)
        _, cancelled = new_events(codec, plan_p, cancel_p)
        writer.refresh()
        results = writer.append_all([
            AppendRequest(p, 0, events_p, record_of(codec, register_p)),
            AppendRequest(p, 1, cancelled, record_of(codec, cancel_p)),
            AppendRequest(q, 0, events_q, record_of(codec, register_q)),
        ])
        assert [type(r).__name__ for r in results] == ["CommandRecord"] * 3
        assert writer.records_read == 0, "nothing read back"
        assert (writer.state.version(p), writer.state.version(q)) == (1 + len(cancelled), 1)
        writer.refresh()  # its records come back from the broker: already judged, skipped
        assert writer.records_read == 0
        assert (writer.state.version(p), writer.state.version(q)) == (1 + len(cancelled), 1)
        # A reader applying the fence as the wire contract states it agrees.
        assert [e.command_id for e in reader.read_plan(p)] == [register_p.command_id] + [cancel_p.command_id] * len(cancelled)
        assert [e.hash for e in reader.read_plan(p)][-1] == writer.state.head(p)
    finally:
        writer.close()


def test_an_append_behind_another_writers_record_is_read_back_and_loses_there(
    kafka: KafkaSettings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    codec = AvroCodec()
    first, second = KafkaEventLog(kafka, codec), KafkaEventLog(kafka, codec)
    reader = WireLog(kafka.bootstrap_servers, kafka.topics.events)
    try:
        p = str(uuid.uuid4())
        register, other = f.register(p, "ONGOING", [f.action(A[0], "ONGOING")]), f.register(p, "PENDING", [f.action(A[1])])
        _, events = new_events(codec, None, register)
        _, also = new_events(codec, None, other)
        second.refresh()
        first.append(p, 0, events, record_of(codec, register))

        # The second writer appends without having read the first one's record (a paused handler):
        # its own lands after it, not where its state ends, so it reads the partition back.
        refreshes: list[float] = []
        real = second.refresh

        def late(wait_s: float = 0.0) -> None:
            if refreshes:
                real(wait_s)
            refreshes.append(wait_s)

        monkeypatch.setattr(second, "refresh", late)
        with pytest.raises(StaleVersionError):
            second.append(p, 0, also, record_of(codec, other))
        assert second.records_read == 2, "the first writer's record, then its own, read back"
        assert second.state.version(p) == 1 and second.state.command(other.command_id) is None
        assert [e.command_id for e in reader.read_plan(p)] == [register.command_id]
        assert [(a.record["command_id"], a.stands) for a in reader.appends()] == [(register.command_id, True), (other.command_id, False)]
    finally:
        for log in (first, second):
            log.close()
