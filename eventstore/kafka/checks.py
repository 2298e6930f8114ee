"""A Kafka part's check (``projections/service.py`` runs it every few seconds in the part's thread):
has its cluster answered, and how many records has it still to read? And ``reach_cluster``,
which `serve` asks before it starts its parts.

Asked through the part's own consumer, so "reached" means this part's client reached the
cluster: a metadata request for one of its topics, answered within the timeout. The lag is
counted from what the consumer already knows, with no request: the high watermark of each
assigned partition as the last fetch reported it, less the consumer's position there. It can
be a fetch behind, and on a broker that reports watermarks wrong it is wrong too; `status`
counts lag exactly, by reading the records.
"""

from __future__ import annotations

from confluent_kafka import Consumer, KafkaException

from eventstore.exceptions import ClusterUnreachableError
from eventstore.kafka.client_log import why
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import new_consumer


class ConsumerCheck:
    def __init__(self, consumer: Consumer, topic: str) -> None:
        self._consumer = consumer
        self._topic = topic

    def __call__(self, timeout: float) -> int | None:
        try:
            self._consumer.list_topics(self._topic, timeout=timeout)
        except KafkaException as exc:
            raise ClusterUnreachableError(f"the cluster did not answer within {timeout:g} s: {why(exc)}") from None
        return lag_of(self._consumer)


def lag_of(consumer: Consumer) -> int | None:
    """Records past the consumer's position in every assigned partition (None if it has none yet)."""
    try:
        assigned = consumer.assignment()
        positions = consumer.position(assigned) if assigned else []
    except KafkaException:
        return None
    behind = 0
    for tp in positions:
        if tp.offset < 0:
            continue  # nothing consumed there since the part started: its position is not known here yet
        try:
            _, high = consumer.get_watermark_offsets(tp, cached=True)
        except KafkaException:
            continue
        if high is not None and high >= 0:
            behind += max(0, high - tp.offset)
    return behind


def reach_cluster(settings: KafkaSettings, timeout: float) -> None:
    """Return once the cluster answers a metadata request, or raise within ``timeout`` saying why not.

    Asked by a consumer: a producer's or an admin client's request for a topic may create it on a
    cluster that creates topics on demand, and a missing topic must stay an error (`init`)."""
    consumer = new_consumer(settings.consumer_config(None))
    try:
        consumer.list_topics(settings.topics.events, timeout=timeout)
    except KafkaException as exc:
        consumer.poll(0)  # its log lines, so the error says why (client_log.py); it is assigned nothing
        raise ClusterUnreachableError(f"the cluster did not answer within {timeout:g} s: {why(exc)}") from None
    finally:
        consumer.close()
