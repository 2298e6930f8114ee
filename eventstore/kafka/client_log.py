"""librdkafka's own log lines, taken into Python logging instead of written to stderr by the C library.

Left to itself, a client that cannot reach its cluster writes "Connect to ... failed: Connection
refused" to stderr at every reconnection attempt (every 50 ms at first): hundreds of lines for
one CLI command, in no format a log collector can read. Every client gets ``CLIENT_LOG`` as its
``logger`` instead (``io._client``). The complaints about reaching a broker (facilities in
``CONNECTION``) go to the DEBUG level, and the last of them is kept: our own messages say it once,
in one line ("the cluster did not answer within 10 s: ... Connection refused"). Every other line
keeps librdkafka's level (a refused configuration property still warns).
"""

from __future__ import annotations

import logging
import re
import threading

from confluent_kafka import KafkaError, KafkaException

#: librdkafka's log facilities that only say a broker could not be reached or answered in time.
CONNECTION = frozenset({"FAIL", "ERROR", "REQTMOUT", "BROKERFAIL", "DISCONNECT", "CONNECT", "TIMEOUT"})

_THREAD = re.compile(r"^\[thrd:[^\]]*\]:\s*")


class ClientLog:
    """What confluent-kafka calls as ``logger.log(level, "%s [%s] %s", facility, client, text)``."""

    def __init__(self, name: str = "eventstore.kafka.librdkafka") -> None:
        self._logger = logging.getLogger(name)
        self._lock = threading.Lock()
        self._complaint = ""

    def log(self, level: int, fmt: str, *args: object) -> None:
        facility = str(args[0]) if args else ""
        text = _THREAD.sub("", str(args[-1])) if args else fmt
        if facility in CONNECTION:
            with self._lock:
                self._complaint = text
            level = logging.DEBUG
        self._logger.log(level, "librdkafka %s: %s", facility, text)

    def complaint(self) -> str:
        """The last thing a client said about reaching a broker ('' if none)."""
        with self._lock:
            return self._complaint


CLIENT_LOG = ClientLog()

#: What a client says when no broker answered in time.
NO_ANSWER = frozenset({KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN, KafkaError._MSG_TIMED_OUT})


def unreachable(exc: KafkaException) -> bool:
    """Whether the client's error says no broker answered (rather than that one refused something)."""
    error = exc.args[0] if exc.args else None
    return isinstance(error, KafkaError) and error.code() in NO_ANSWER


def why(fallback: object) -> str:
    """The last complaint about reaching a broker, or ``fallback`` (a client's error: its text) when no client made one.

    A client hands its log lines over only when it is polled: a caller that may poll it (a
    producer, an admin client) does so before asking; a consumer's poll could take a record."""
    error = fallback.args[0] if isinstance(fallback, KafkaException) and fallback.args else fallback
    return CLIENT_LOG.complaint() or (error.str() if isinstance(error, KafkaError) else str(error))
