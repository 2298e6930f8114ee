"""Kafka settings and every librdkafka configuration, built in one place.

Our typed settings win over passthrough properties (``-X key=value``, a properties file); a
passthrough key may be scoped to one client with a ``producer.``, ``consumer.`` or ``admin.``
prefix, as Kafka Connect does. Secrets are masked whenever a configuration is shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from eventstore.exceptions import ConfigurationError

SECRET_MARKERS = ("password", "secret", "sasl.oauthbearer.config", "ssl.key.pem", "token")
SCOPES = ("producer.", "consumer.", "admin.")


@dataclass(frozen=True)
class Topics:
    """Topic names; every one can be renamed (``--topic-prefix`` or one flag each)."""

    commands: str = "watcher-es.commands"
    events: str = "watcher-es.events"
    outcomes: str = "watcher-es.outcomes"
    dead_letters: str = "watcher-es.dlq"
    notifications: str = "notifications"

    def notification_topic(self, priority: str) -> str:
        """oslo.messaging's Kafka driver listens on ``<topic>.<priority>``."""
        return f"{self.notifications}.{priority.lower()}"

    @classmethod
    def with_prefix(cls, prefix: str, notifications: str = "notifications") -> Topics:
        return cls(f"{prefix}.commands", f"{prefix}.events", f"{prefix}.outcomes", f"{prefix}.dlq", notifications)


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str
    topics: Topics = field(default_factory=Topics)
    group_prefix: str = "watcher-es"
    passthrough: Mapping[str, str] = field(default_factory=dict)

    def _scoped(self, scope: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in self.passthrough.items():
            if key.startswith(SCOPES):
                prefix, _, bare = key.partition(".")
                if f"{prefix}." == scope:
                    out[bare] = value
            else:
                out[key] = value
        return out

    def admin_config(self) -> dict[str, str | int | bool]:
        return {**self._scoped("admin."), "bootstrap.servers": self.bootstrap_servers}

    def producer_config(self) -> dict[str, str | int | bool]:
        return {
            "delivery.report.only.error": True,  # see Publisher: flush says whether everything was delivered
            **self._scoped("producer."),
            "bootstrap.servers": self.bootstrap_servers,
            # An append is done only when every in-sync replica has it, once.
            "acks": "all",
            "enable.idempotence": True,
            # Java's default partitioner (murmur2 of the key bytes): a plan's records land in the
            # same partition whichever client, in whichever language, produced them.
            "partitioner": "murmur2_random",
            "linger.ms": self._scoped("producer.").get("linger.ms", 1),
            # Notifications are JSON of a few KB that lz4 shrinks several times: less for the broker
            # to write, store and serve to every reader (a sixth of its CPU and of serve's, measured),
            # and every Kafka client decompresses it (oslo.messaging's driver is librdkafka's).
            "compression.type": self._scoped("producer.").get("compression.type", "lz4"),
        }

    def consumer_config(self, group: str | None, prompt: bool = False, catch_up: bool = False) -> dict[str, str | int | bool]:
        """``prompt``: a reader on the way from a cancel to its notification, or one a caller waits
        on, asks for a 10 ms fetch wait; others 100 ms (why: ARCHITECTURE.md, "Fetch waits").
        Either default gives way to ``-X fetch.wait.max.ms``."""
        scoped = self._scoped("consumer.")
        config: dict[str, str | int | bool] = {
            # Quick group joins and failure detection; 6 s/0.5 s are librdkafka-legal minimums we rely on.
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            # How long the broker may hold a fetch that finds nothing (see the docstring).
            "fetch.wait.max.ms": 10 if prompt else 100,
            # Records fetched ahead of the application, at most 4 MB per consumer (librdkafka's
            # default is 64 MB): a part that falls behind in a burst (the read model, which yields
            # the cores to the others) would otherwise hold the backlog in memory; at 16 MB the
            # read model's process peaked at 134 MB in a 20,000-plan burst, at 4 MB at 99 MB, with
            # no loss of throughput (each fetch still brings up to 1 MB per partition).
            # A reader that catches up and stops (a query's own model) fetches 16 MB ahead: it
            # lives seconds, and the smaller queue tripled the time `status` took to read a
            # 27,000-plan gap (0.9 s to 3.1 s).
            "queued.max.messages.kbytes": 16384 if catch_up else 4096,
            **scoped,
            "bootstrap.servers": self.bootstrap_servers,
            # A projector starting at `latest` silently skips history; offsets are ours to commit.
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
        config["group.id"] = f"{self.group_prefix}.{group}" if group else f"{self.group_prefix}.reader"
        return config

    def shown(self) -> dict[str, str]:
        """The passthrough configuration, safe to print or log."""
        return {k: mask(k, v) for k, v in {**self.passthrough, "bootstrap.servers": self.bootstrap_servers}.items()}


def mask(key: str, value: str) -> str:
    return "********" if any(marker in key.lower() for marker in SECRET_MARKERS) else value


def parse_properties(pairs: Iterable[str], where: str = "-X") -> dict[str, str]:
    """``key=value`` pairs (kcat's ``-X``); blank lines and ``#`` comments are skipped."""
    out: dict[str, str] = {}
    for raw in pairs:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(f"{where}: {mask(line, line)!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def read_properties_file(path: Path) -> dict[str, str]:
    """A Java-style properties file (kcat's ``-F``), as Kafka tooling writes them."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigurationError(f"--kafka-config {path}: {exc.strerror}") from None
    return parse_properties(text.splitlines(), where=str(path))
