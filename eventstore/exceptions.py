"""Every error the write side raises; one root so callers can catch the product's errors alone."""

from __future__ import annotations


class WatcherEsError(Exception):
    """Base of every error watcher-es raises on purpose."""


class SchemaError(WatcherEsError):
    """An Avro schema under avro/ cannot be loaded."""


class SerializationError(WatcherEsError):
    """A record does not fit its Avro schema (names the record type and the field)."""


class UnknownSchemaError(WatcherEsError):
    """A record's fingerprint matches no writer schema kept with the log."""

    def __init__(self, fingerprint: str, where: str = "") -> None:
        self.fingerprint = fingerprint
        place = f" at {where}" if where else ""
        super().__init__(f"unknown schema fingerprint {fingerprint}{place}: no writer schema with that fingerprint is kept with the log")


class CorruptRecordError(WatcherEsError):
    """A record's bytes are not a valid Avro single-object encoding."""

    def __init__(self, reason: str, where: str = "") -> None:
        place = f" at {where}" if where else ""
        super().__init__(f"corrupt record{place}: {reason}")


class StaleVersionError(WatcherEsError):
    """An append was made at an expected version the stream has moved past."""

    def __init__(self, plan_uuid: str, expected: int, actual: int) -> None:
        self.plan_uuid, self.expected, self.actual = plan_uuid, expected, actual
        super().__init__(f"stale append to plan {plan_uuid}: expected version {expected}, stream is at {actual}")


class CommandValidationError(WatcherEsError):
    """A command is malformed: names the field, the value and why."""


class ConfigurationError(WatcherEsError):
    """A setting has a value that cannot be used."""


class DuplicateCommandError(WatcherEsError):
    """A command id was already handled; its first outcome stands."""

    def __init__(self, command_id: str) -> None:
        self.command_id = command_id
        super().__init__(f"command {command_id} was already handled")


class KafkaUnavailableError(WatcherEsError):
    """The cluster could not be reached or answered with an error."""


class ClusterUnreachableError(KafkaUnavailableError):
    """The cluster did not answer within the time given (down, frozen, unreachable, or refusing our credentials)."""


class DeliveryError(WatcherEsError):
    """A produced record was not confirmed by the cluster; the append did not happen."""


class MissingTopicError(WatcherEsError):
    """A topic the service needs does not exist: run `watcher-es init`."""


class PoisonRecordError(WatcherEsError):
    """A record on a topic cannot be used (missing or bad header, wrong type); it is dead-lettered."""


class WaitTimeoutError(WatcherEsError):
    """The outcome a command waited for did not arrive in time; the command may still be handled."""


class StoreUnavailableError(WatcherEsError):
    """An embedded store's file cannot be opened (a missing folder, no permission, not SQLite)."""


class StoreError(WatcherEsError):
    """A SQLite file of the store failed (damaged, read-only, locked): SQLite's own message."""


class KafkaClientError(KafkaUnavailableError):
    """The Kafka client raised an error no check foresaw: the client's own message."""


class StaleAppendError(WatcherEsError):
    """An append on the Kafka events topic landed after another at the same plan version: it is skipped."""


class UnusableNotificationError(WatcherEsError):
    """A record of Watcher's notification topics the bridge cannot use: it is dead-lettered (stage ``bridge``)."""


class PartStoppedError(WatcherEsError):
    """A part of `serve --processes` stopped on its own; serve stops the others and exits."""
