"""`serve` runs its parts (handler, projections, translator) each in a thread, or with
`--processes` each in a process of its own, so a busy serve uses every core.

What operators rely on: commands are handled and notified either way; SIGTERM stops every part
cleanly; a part that dies (of the unforeseen, or killed) takes serve down with an error (a
supervisor then restarts it whole) instead of leaving it running without that part; and a serve
killed outright leaves no part behind.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from eventstore.codec import AvroCodec
from eventstore.config import Settings
from eventstore.kafka.client import KafkaClient
from eventstore.kafka.config import KafkaSettings
from projections.kafka.service import kafka_service

from tests import factories as f
from tests.support.outcomes import handled
from tests.support.serve import Serve, cli_env, run_cli
from tests.support.waiting import wait_until

#: How long serve may take to start its parts and show a command's effects (the first group joins included).
TIMEOUT_S = 90


class Broken:
    def __init__(self) -> None:
        self.closed = False

    def poll(self, timeout: float = 0.2) -> int:
        raise RuntimeError("a bug in a part")

    def close(self) -> None:
        self.closed = True


def test_a_part_that_dies_stops_serve_with_its_error(tmp_path: Path) -> None:
    kafka = KafkaSettings("127.0.0.1:9")  # nothing is contacted: the service has no Kafka part here
    service = kafka_service(Settings(db=tmp_path / "w.db"), kafka, only=())
    broken = Broken()
    service.parts["broken"] = broken
    with pytest.raises(RuntimeError, match="a bug in a part"):
        service.run()
    assert broken.closed


def parts_of(serve: Serve) -> list[int]:
    assert serve.proc is not None
    pid = serve.proc.pid
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def started(kafka: KafkaSettings, tmp_path: Path) -> Serve:
    serve = Serve(cli_env(kafka, tmp_path / "serve.db"), tmp_path / "serve.log", ("--processes",)).start()
    wait_until(lambda: len(parts_of(serve)) == 3, TIMEOUT_S, "serve --processes to fork one process per part")
    return serve


def test_commands_are_handled_notified_and_stopped_cleanly(kafka: KafkaSettings, tmp_path: Path) -> None:
    serve = started(kafka, tmp_path)
    parts = parts_of(serve)
    client = KafkaClient(kafka, AvroCodec())
    try:
        story = f.cancellation_story()
        outcomes = handled(client, story)
        assert list(outcomes.values()) == ["accepted", "accepted", "accepted", "rejected"], outcomes  # the second cancel is refused
        plan = story[0].plan_uuid
        env = cli_env(kafka, tmp_path / "cli.db")
        wait_until(lambda: "CANCELLED" in run_cli(env, "status", plan).stdout, TIMEOUT_S, "the cancellation in the read model", interval=0.2)
        wait_until(lambda: "action_plan.cancel.end" in run_cli(env, "notifications", "--plan", plan).stdout, TIMEOUT_S, "the translator's notification of it", interval=0.2)
    finally:
        client.close()
        serve.stop()
    assert serve.proc is not None and serve.proc.returncode == 0, serve.log()
    assert not any(alive(p) for p in parts)
    assert "Traceback" not in serve.log()


def test_a_part_that_dies_stops_serve_with_an_error(kafka: KafkaSettings, tmp_path: Path) -> None:
    serve = started(kafka, tmp_path)
    parts = parts_of(serve)
    os.kill(parts[0], signal.SIGKILL)
    assert serve.proc is not None
    serve.proc.wait(60)
    assert serve.proc.returncode != 0
    assert "stopped; the other parts were stopped with it" in serve.log()
    wait_until(lambda: not any(alive(p) for p in parts), TIMEOUT_S, "the other parts to stop")


def test_a_killed_serve_leaves_no_part_running(kafka: KafkaSettings, tmp_path: Path) -> None:
    serve = started(kafka, tmp_path)
    parts = parts_of(serve)
    serve.kill()
    wait_until(lambda: not any(alive(p) for p in parts), 30, "the parts to end with their serve")


def test_a_part_that_cannot_start_says_why(kafka: KafkaSettings, tmp_path: Path) -> None:
    env = {**cli_env(kafka, tmp_path / "serve.db"), "WATCHER_ES_TOPIC_PREFIX": "never-created"}
    done = run_cli(env, "serve", "--processes", timeout=120)
    assert done.returncode == 1
    assert "handler cannot start: topic never-created.events does not exist: run `watcher-es init`" in done.stderr
    assert "stopped; the other parts were stopped with it" in done.stderr and "Traceback" not in done.stderr
