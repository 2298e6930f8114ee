"""What `serve` counts as it works, for Prometheus (docs/operations.md says what each metric means).

Counted where it happens, in whichever layer that is, through the functions below. Nothing is
counted, and prometheus_client is not even imported, until `serve --metrics-port` calls
``enable``: every other command starts as quickly as before. ``enable`` uses prometheus_client's
multiprocess mode (each process writes its values to files in one folder), so with
`serve --processes` every part's process counts for itself and the one endpoint adds them up.
"""

from __future__ import annotations

import os
from collections import Counter as Tally
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: Seconds from a cancel being issued to its action_plan.cancel.start being confirmed: tens of
#: milliseconds when all is well, seconds under a burst, minutes through an outage.
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class _Metrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.commands = Counter("watcher_es_commands_total", "Commands handled, by command type and outcome.", ["type", "outcome"])
        self.notifications = Counter(
            "watcher_es_notifications_total", "Notifications confirmed by the notification sink, by event type.", ["event_type"],
        )
        self.dead_letters = Counter("watcher_es_dead_letters_total", "Records parked as dead letters, by stage.", ["stage"])
        self.fence_conflicts = Counter(
            "watcher_es_fence_conflicts_total", "Appends of this serve that lost at the fence (another append stood at their version).",
        )
        self.lag = Gauge(
            "watcher_es_consumer_lag", "Records (Kafka) or log positions (embedded) a part has still to read.", ["part"],
            multiprocess_mode="livemax",
        )
        self.latency = Histogram(
            "watcher_es_cancel_to_notification_seconds",
            "From a cancel command's issued_at to its action_plan.cancel.start being confirmed.", buckets=LATENCY_BUCKETS,
        )
        self.bridge_taken = Counter("watcher_es_bridge_notifications_total", "Watcher notifications the bridge took, in Watcher's order.")
        self.bridge_sent = Counter("watcher_es_bridge_commands_total", "Commands the bridge made and sent, by command type.", ["type"])


_on: _Metrics | None = None


def enable(directory: Path) -> None:
    """Count from now on, in ``directory`` (empty, this serve's own; every process forked later writes there too)."""
    global _on
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    from prometheus_client import values

    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]  # decided when prometheus_client was first imported: multiprocess from now on
    _on = _on or _Metrics()


def enabled() -> bool:
    return _on is not None


def commands_handled(outcomes: Iterable[tuple[str, str]]) -> None:
    """``(command type, outcome)`` of each command handled."""
    if _on is not None:
        for (kind, outcome), n in Tally(outcomes).items():
            _on.commands.labels(kind, outcome).inc(n)


def notifications_confirmed(event_types: Iterable[str]) -> None:
    if _on is not None:
        for event_type, n in Tally(event_types).items():
            _on.notifications.labels(event_type).inc(n)


def cancel_confirmed(seconds: float) -> None:
    """A cancel's action_plan.cancel.start confirmed this long after the cancel was issued."""
    if _on is not None:
        _on.latency.observe(max(seconds, 0.0))


def dead_lettered(stage: str) -> None:
    """A record parked; one of ours that lost at the fence is parked with stage ``fence``."""
    if _on is not None:
        _on.dead_letters.labels(stage).inc()
        if stage == "fence":
            _on.fence_conflicts.inc()


def consumer_lag(part: str, behind: int) -> None:
    if _on is not None:
        _on.lag.labels(part).set(behind)


def bridge_took(notifications: int, commands: Iterable[Any]) -> None:
    """The bridge took these many Watcher notifications and sent these commands."""
    if _on is not None:
        if notifications:
            _on.bridge_taken.inc(notifications)
        for kind, n in Tally(type(c).__name__ for c in commands).items():
            _on.bridge_sent.labels(kind).inc(n)
