"""Plugin: ``watcher-es`` as operators run it against a cluster, each command a process of its own.

``serve`` (a ``Serve`` on the test's topics, stopped at the end), ``cli_env`` (the environment
that points a CLI at those topics and a --db), ``run_cli``, and ``wait_verified`` (until `verify`
finds a model caught up with the log).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from eventstore.kafka.config import KafkaSettings
from tests.support.waiting import wait_until


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
    """`watcher-es [options] serve [args]` as a separate process, as operators run it; its output goes to ``log_path``."""

    env: dict[str, str]
    log_path: Path
    args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    options: tuple[str, ...] = ()

    def start(self) -> Serve:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "projections", *self.options, "serve", *self.args], env=self.env, stdout=log, stderr=log,
        )
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


def wait_verified(env: dict[str, str], plans: int, timeout: float = 60) -> dict[str, Any]:
    """`verify --json` at ``env``'s --db until it passes on a model at the log's position with ``plans`` plans."""
    last: list[subprocess.CompletedProcess[str]] = []

    def verified() -> dict[str, Any] | None:
        last[:] = [run_cli(env, "verify", "--json")]
        report: dict[str, Any] = json.loads(last[0].stdout) if last[0].stdout.strip() else {}
        done = last[0].returncode == 0 and report["model_position"] == report["log_position"] and report["plans"] == plans
        return report if done else None

    return wait_until(verified, timeout, lambda: f"a verified model of {plans} plans: {last[0].stdout}{last[0].stderr}", interval=0.5)
