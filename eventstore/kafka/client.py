"""The CLI's side of Kafka: send a command, wait for what became of it, read plans and notifications back."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_END, TopicPartition

from eventstore.codec import AvroCodec
from eventstore.domain.messages import Command, to_record
from eventstore.exceptions import ClusterUnreachableError, WaitTimeoutError
from eventstore.kafka.client_log import why
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import Publisher, TopicFollower, new_consumer, partitions_of
from eventstore.kafka.records import header_map, parse_iso_micros, record_headers, unwrap_oslo_envelope
from eventstore.log import Outcome


class OutcomeWatcher:
    """Outcomes read from the topic, kept: one poll may carry the outcomes of several commands.

    What `cancel --wait` waits on. It follows the outcomes topic from a time just before the
    command was sent (``offsets_since``: a time lookup per partition, never offset 0) and only
    decodes the small outcome records from there, never folding a topic: bounded by the few
    seconds of outcomes around one command, whatever the history. Outcomes, not the read model,
    because they are the handler's answer to this command id (a re-delivery or a reused id is
    answered there and appends nothing).
    """

    def __init__(self, client: KafkaClient, follower: TopicFollower) -> None:
        self._client = client
        self._follower = follower
        self.seen: list[Outcome] = []

    def wait(self, match: Callable[[Outcome], bool], timeout_s: float) -> Outcome | None:
        checked = 0
        deadline = time.monotonic() + timeout_s
        while True:
            for outcome in self.seen[checked:]:
                if match(outcome):
                    return outcome
            checked = len(self.seen)
            if time.monotonic() > deadline:
                return None
            self.poll(0.2)

    def poll(self, timeout: float) -> list[Outcome]:
        """Outcomes that arrived within ``timeout`` (also kept for later waits)."""
        new = [self._client.outcome_of(m.value() or b"") for m in self._follower.poll(timeout)]
        self.seen.extend(new)
        return new

    def close(self) -> None:
        self._follower.close()


def offsets_since(settings: KafkaSettings, topic: str, since_ms: int) -> Callable[[int], int]:
    """Where each partition's records from ``since_ms`` start (a time lookup, not the end offset)."""
    consumer = new_consumer(settings.consumer_config(None))
    try:
        parts = partitions_of(consumer, topic)
        found = consumer.offsets_for_times([TopicPartition(topic, p, since_ms) for p in parts], timeout=10)
    finally:
        consumer.close()
    starts = {tp.partition: (tp.offset if tp.offset >= 0 else OFFSET_END) for tp in found}
    # A partition the lookup did not answer for starts at its end, never at offset 0: whoever
    # follows from a time starts following before it acts, so nothing it waits for is earlier.
    return lambda p: starts.get(p, OFFSET_END)


class KafkaClient:
    def __init__(self, settings: KafkaSettings, codec: AvroCodec) -> None:
        self._settings = settings
        self._codec = codec
        self._publisher = Publisher(settings)

    def close(self) -> None:
        self._publisher.flush()

    def reach(self, timeout_s: float) -> None:
        """Return once the cluster has answered and has the commands topic, or raise within
        ``timeout_s``: a record produced to a cluster that is not there waits minutes for its delivery."""
        producer = self._publisher.producer
        try:
            partitions_of(producer, self._settings.topics.commands, timeout_s)
        except ClusterUnreachableError:
            producer.poll(0)  # its log lines, so the error says why (client_log.py)
            raise ClusterUnreachableError(
                f"the cluster at {self._settings.bootstrap_servers} did not answer within {timeout_s:g} s: {why('no answer')}"
            ) from None

    def send(self, command: Command) -> None:
        """Append a command; returns once the cluster confirmed it."""
        self.send_all([command])

    def send_all(self, commands: Sequence[Command]) -> None:
        """Append commands in order (one plan's keep their order: one key, one partition); returns once all are confirmed."""
        for command in commands:
            name = type(command).__name__
            value = self._codec.encode(name, to_record(command))
            headers = record_headers(
                type_=name, id_=command.command_id, subject=command.plan_uuid, time_us=command.issued_at,
                content_type="application/avro", fingerprint=self._codec.fingerprint_of(name),
            )
            self._publisher.produce(self._settings.topics.commands, command.plan_uuid, value, headers)
        self._publisher.flush()

    def follow_outcomes(self, since_ms: int) -> OutcomeWatcher:
        topic = self._settings.topics.outcomes
        return OutcomeWatcher(self, TopicFollower(self._settings, topic, start=offsets_since(self._settings, topic, since_ms)))

    def wait_outcome(self, command_id: str, watcher: OutcomeWatcher, timeout_s: float = 60.0) -> Outcome:
        found = watcher.wait(lambda o: o.command_id == command_id, timeout_s)
        if found is None:
            raise WaitTimeoutError(f"no outcome for command {command_id} within {timeout_s:.0f} s: is `watcher-es serve` running?")
        return found

    def wait_cancellation_end(self, plan_uuid: str, watcher: OutcomeWatcher, timeout_s: float) -> Outcome:
        """Follow the plan's outcomes until its cancellation ends (CANCELLED or FAILED)."""
        found = watcher.wait(
            lambda o: o.plan_uuid == plan_uuid and o.outcome == "accepted" and o.plan_state in ("CANCELLED", "FAILED"), timeout_s,
        )
        if found is None:
            raise WaitTimeoutError(f"plan {plan_uuid} is still being cancelled after {timeout_s:.0f} s")
        return found

    def outcome_of(self, value: bytes) -> Outcome:
        """A CommandHandled record as an ``Outcome`` (the plan's version is known where it caused events)."""
        _, r = self._codec.decode(value)
        return Outcome(
            r["command_id"], r["plan_uuid"], r["outcome"], r["reason"], tuple(r["event_types"]), r["plan_state"], r["last_seq"] or 0,
            tuple((a["uuid"], a["action_type"], a["state"]) for a in r["action_states"]),
        )

    def notifications(self, plan_uuids: Iterable[str], since_ms: int, until: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 60.0) -> list[dict[str, Any]]:
        """Notifications of these plans since ``since_ms``, in order, once ``until`` says they are all there."""
        wanted = set(plan_uuids)
        found: dict[str, Delivered] = {}
        deadline = time.monotonic() + timeout_s
        for batch in delivered_notifications(self._settings, wanted, follow=True, since_ms=since_ms):
            found.update((d.envelope["message_id"], d) for d in batch)
            ordered = [d.envelope for d in sorted(found.values())]
            if not batch and until(ordered):  # complete, and nothing more in flight on either topic
                return ordered
            if time.monotonic() > deadline:
                break
        raise WaitTimeoutError(f"not every notification of {', '.join(sorted(wanted))} arrived within {timeout_s:.0f} s")


@dataclass(frozen=True, order=True)
class Delivered:
    """A notification read back from a topic, ordered as it was emitted.

    `.info` and `.error` are separate topics, so Kafka keeps no order between them: the event
    time orders plans, the plan's sequence number header (``ce_sequence``) orders within one.
    """

    at: int
    seq: int
    envelope: dict[str, Any] = field(compare=False)
    #: The event it came from and the payload set it was built with (headers), for re-emission.
    event_id: str = field(default="", compare=False)
    payload_set: str = field(default="1.0", compare=False)


def delivered_notifications(
    settings: KafkaSettings, plan_uuids: Collection[str] | None = None, *, follow: bool = False, since_ms: int | None = None,
) -> Iterator[list[Delivered]]:
    """Batches of notifications from both priority topics, each batch in emission order.

    Without ``follow``, one batch: everything up to the end of both topics.
    """
    t = settings.topics
    topics = (t.notification_topic("INFO"), t.notification_topic("ERROR"))
    followers = [
        TopicFollower(settings, topic, start=offsets_since(settings, topic, since_ms) if since_ms is not None else None)
        for topic in topics
    ]
    try:
        while True:
            messages = [m for f in followers for m in (f.poll(0.2) if follow else f.drain())]
            batch = []
            for msg in messages:
                h = header_map(msg.headers())
                if plan_uuids is None or h.get("ce_subject") in plan_uuids:
                    envelope = unwrap_oslo_envelope(msg.value() or b"")
                    at = parse_iso_micros(envelope["timestamp"].replace(" ", "T") + "Z")
                    batch.append(Delivered(
                        at, int(h.get("ce_sequence", 0)), envelope,
                        h.get("watcher_es_event_id", ""), h.get("watcher_es_payload_set", "1.0"),
                    ))
            yield sorted(batch)
            if not follow:
                return
    finally:
        for f in followers:
            f.close()
