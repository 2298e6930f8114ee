"""Commands sent to a cluster and their outcomes read back from the outcomes topic, as a sender
that waits for them does (`--wait`): one at a time, or a stream and then every outcome."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from eventstore.domain.messages import Command
from eventstore.kafka.client import KafkaClient, OutcomeWatcher
from tests.support.waiting import wait_until


def handled(client: KafkaClient, commands: list[Command], timeout: float = 120) -> dict[str, str]:
    """Send the commands one by one, each once the previous one is handled; each one's outcome."""
    watcher = client.follow_outcomes(time.time_ns() // 1_000_000 - 5000)
    try:
        outcomes: dict[str, str] = {}
        for command in commands:
            client.send(command)
            outcomes[command.command_id] = client.wait_outcome(command.command_id, watcher, timeout).outcome
        return outcomes
    finally:
        watcher.close()


def send_steadily(client: KafkaClient, commands: Sequence[Command], every_s: float) -> None:
    """A steady stream, one command every ``every_s``: the pause shapes the load (commands still
    arriving while something else happens), it waits for nothing."""
    for command in commands:
        client.send(command)
        time.sleep(every_s)


def read_outcomes(watcher: OutcomeWatcher, seen: set[str]) -> set[str]:
    """``seen``, with the command ids of the outcomes one poll brings."""
    seen.update(o.command_id for o in watcher.poll(0.2))
    return seen


def wait_outcomes(
    watcher: OutcomeWatcher, ids: Iterable[str], seen: set[str], timeout: float, what: str, logs: Callable[[], str] = lambda: "",
) -> None:
    """Until every command of ``ids`` has an outcome (collected into ``seen``)."""
    wanted = set(ids)
    wait_until(
        lambda: wanted <= read_outcomes(watcher, seen), timeout,
        lambda: f"{what}: {len(wanted - seen)} of {len(wanted)} commands have no outcome\n{logs()}", interval=0,
    )
