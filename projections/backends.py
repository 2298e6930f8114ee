"""The composition root: the one place that names both backends and picks one from the settings.

It sits above both adapters and below the CLI alone. The Kafka side is imported only when a
cluster is configured, so the embedded store never loads the Kafka client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventstore.config import Settings
from projections.sqlite.store import EmbeddedStore
from projections.store import Store, WatcherFeed

if TYPE_CHECKING:
    from eventstore.kafka.config import KafkaSettings


def open_store(settings: Settings, kafka: KafkaSettings | None) -> Store:
    """The embedded store without a cluster, the Kafka store with one."""
    if kafka is None:
        return EmbeddedStore(settings)
    from projections.kafka.store import KafkaStore

    return KafkaStore(settings, kafka)


def watcher_feed(cluster: KafkaSettings, topic: str) -> WatcherFeed:
    """Watcher's notifications on a Kafka cluster (the only transport bridged today; Watcher on
    RabbitMQ sends the same envelope and would be a source of its own here)."""
    from eventstore.kafka.watcher import WatcherTopics, watcher_topics

    return WatcherFeed(
        lambda start: WatcherTopics(cluster, topic, start), f"{' and '.join(watcher_topics(topic))} on {cluster.bootstrap_servers}",
    )
