"""The ``Store`` port's contract (``projections/store.py``): what the CLI asks, answered with the same shapes.

``EmbeddedStore`` answers from the SQLite files beside --db; ``KafkaStore`` sends commands to a
running ``serve`` and answers queries from a read model it catches up itself. No CLI command
branches on the backend, so what users see is the store's answer: these cases run the commands
(`demo`, `plans`, `status`, `audit`, `notifications`, `dlq`) as users do, with ``--json``, and hold
every answer to one shape (the same keys, value types and numbering) on both. A backend's module
says how to open its store, run the CLI on it, and make one record a consumer has to park.
"""

from __future__ import annotations

import json
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterator, Mapping
from typing import Any

from eventstore.domain.messages import Command
from projections.store import Store

from .. import factories as f
from .event_log import Opens

JSON = dict[str, Any]
#: The JSON types a value may have: each key's must be one of them on both stores.
Types = tuple[type, ...]
TEXT, NUMBER, OPT_TEXT, OPT_NUMBER = (str,), (int,), (str, type(None)), (int, type(None))

PLAN: Mapping[str, Types] = {
    "uuid": TEXT, "audit_uuid": TEXT, "strategy_uuid": TEXT, "state": TEXT, "global_efficacy": (list, dict),
    "created_at": OPT_TEXT, "updated_at": OPT_TEXT, "deleted_at": OPT_TEXT, "version": NUMBER, "last_position": NUMBER,
    "last_event_at": TEXT, "cancel_requested_by": OPT_TEXT, "cancel_reason": OPT_TEXT, "cancel_started_at": OPT_TEXT,
    "abort_deadline": OPT_TEXT, "cancel_finished_at": OPT_TEXT, "fault": (dict, type(None)), "mirrored": (bool,),
}
PLAN_ROW: Mapping[str, Types] = {**PLAN, "action_count": NUMBER}
ACTION: Mapping[str, Types] = {
    "uuid": TEXT, "action_plan_uuid": TEXT, "idx": NUMBER, "action_type": TEXT, "input_parameters": (dict,), "parents": (list,),
    "state": TEXT, "fault": (dict, type(None)), "created_at": OPT_TEXT, "updated_at": OPT_TEXT, "deleted_at": OPT_TEXT,
    "last_event_at": OPT_TEXT,
}
CONSUMER: Mapping[str, Types] = {"part": TEXT, "source": TEXT, "position": OPT_NUMBER, "lag": NUMBER}
AUDIT_ENTRY: Mapping[str, Types] = {
    "time": TEXT, "kind": TEXT, "at": NUMBER, "position": OPT_NUMBER, "type": TEXT, "id": TEXT, "command_id": TEXT,
    "issued_by": OPT_TEXT, "origin": OPT_TEXT, "outcome": OPT_TEXT, "outcome_reason": OPT_TEXT, "details": (dict,),
}
DEAD_LETTER: Mapping[str, Types] = {
    "topic": TEXT, "partition": OPT_NUMBER, "offset": NUMBER, "position": NUMBER, "stage": TEXT, "error": TEXT, "message": TEXT,
    "plan_uuid": TEXT, "key": TEXT, "bytes": OPT_NUMBER, "dlq_partition": OPT_NUMBER, "dlq_offset": OPT_NUMBER,
}
ENVELOPE: Mapping[str, Types] = {
    "event_type": TEXT, "priority": TEXT, "publisher_id": TEXT, "message_id": TEXT, "timestamp": TEXT, "payload": (dict,),
}
KINDS = {
    "action_plan.cancel.start", "action_plan.cancel.end", "action_plan.cancel.error",
    "action.cancel.start", "action.cancel.end", "action.cancel.error",
}


def assert_shape(value: JSON, shape: Mapping[str, Types], what: str) -> None:
    assert list(value) == list(shape), f"{what}: keys {list(value)}, the shape's {list(shape)}"
    wrong = {k: type(v).__name__ for k, v in value.items() if not isinstance(v, shape[k])}
    assert not wrong, f"{what}: values of the wrong type {wrong}"


def numbers_of(table: str) -> list[int]:
    """The ``#`` column of a rich table as the CLI prints it (NO_COLOR)."""
    return [int(line.split("│")[1]) for line in table.splitlines() if line.startswith("│") and line.split("│")[1].strip().isdigit()]


class StoreTestCase(Opens, ABC):
    @abstractmethod
    def create_store(self) -> Store:
        """The store the CLI opens, on this test's --db (commands answered: ``serve`` runs where it must)."""

    @abstractmethod
    def cli(self, *args: str) -> str:
        """Run ``watcher-es ARGS`` on this test's store; its stdout (a non-zero exit fails the test)."""

    @abstractmethod
    def park_a_record(self) -> None:
        """Make one record a consumer cannot use, so that a consumer parks it."""

    def lines(self, *args: str) -> list[JSON]:
        return [json.loads(line) for line in self.cli(*args, "--json").splitlines()]

    def dead_letters(self, timeout_s: float = 60.0) -> list[JSON]:
        deadline = time.monotonic() + timeout_s
        while not (letters := self.lines("dlq")):
            assert time.monotonic() < deadline, "nothing was parked"
            time.sleep(0.5)
        return letters

    def test_every_query_answers_with_one_shape(self) -> None:
        """After the demo (two plans, every kind of notification) and one parked record."""
        notes = [json.loads(line) for line in self.cli("demo", "--json").splitlines()]
        self.park_a_record()
        assert {n["event_type"] for n in notes} == KINDS
        plans = self.lines("plans")
        assert len(plans) == 2 and {p["state"] for p in plans} == {"CANCELLED", "FAILED"}
        for row in plans:
            assert_shape(row, PLAN_ROW, "plans")
            status = self.lines("status", row["uuid"])
            assert len(status) == 1 and list(status[0]) == ["plan", "actions"]
            assert_shape(status[0]["plan"], PLAN, "status PLAN: plan")
            assert len(status[0]["actions"]) == row["action_count"] == 5
            for action in status[0]["actions"]:
                assert_shape(action, ACTION, "status PLAN: action")
            assert [a["idx"] for a in status[0]["actions"]] == [0, 1, 2, 3, 4]

            story = self.lines("audit", row["uuid"])
            assert len(story) == 1 and list(story[0]) == ["plan_uuid", "entries"] and story[0]["plan_uuid"] == row["uuid"]
            entries = story[0]["entries"]
            for entry in entries:
                assert_shape(entry, AUDIT_ENTRY, "audit")
            self.assert_story_order(entries)
            events = [e for e in entries if e["kind"] == "event"]
            assert [e["details"]["version"] for e in events] == list(range(1, row["version"] + 1))
            assert row["last_position"] == max(e["position"] for e in events), "positions are numbered alike in status and audit"

        for consumer in self.lines("status"):
            assert_shape(consumer, CONSUMER, "status")
        listed = self.lines("notifications")
        assert [n["message_id"] for n in listed] == [n["message_id"] for n in notes]
        for note in listed:
            assert_shape(note, ENVELOPE, "notifications")
        assert numbers_of(self.cli("notifications")) == list(range(1, len(notes) + 1))
        for letter in self.dead_letters():
            assert_shape(letter, DEAD_LETTER, "dlq")
            assert letter["position"] == letter["offset"] + (0 if letter["partition"] is None else 1)
            assert letter["plan_uuid"] == letter["key"]

    def assert_story_order(self, entries: list[JSON]) -> None:
        """Each command, then its events in version order, each followed by the notification it caused."""
        last_event: JSON | None = None
        for i, entry in enumerate(entries):
            if entry["kind"] == "notification":
                assert entries[i - 1]["kind"] == "event" and entries[i - 1]["id"] == entry["details"]["event_id"], entry
            elif entry["kind"] == "event":
                assert last_event is None or entry["details"]["version"] == last_event["details"]["version"] + 1
                assert entry["command_id"] == entries[i - 1]["command_id"] or entries[i - 1]["kind"] == "command"
                last_event = entry

    def test_notifications_are_numbered_on_across_batches(self) -> None:
        """The numbers only grow and never restart, from one batch to the next, while following."""
        store = self.opened(self.create_store())
        first = self.cancelled(store, str(uuid.uuid4()))
        following = store.notifications(None, 0, follow=True)
        assert isinstance(following, Generator)
        seen = self.read(following, first)
        second = self.cancelled(store, str(uuid.uuid4()))  # arrives in a later batch
        seen += self.read(following, second)
        following.close()
        assert [n for n, _ in seen] == list(range(1, len(seen) + 1)), [n for n, _ in seen]
        assert len(seen) == first + second == 8
        listed = [item for batch in store.notifications(None, 0, follow=False) for item in batch]
        assert [n for n, _ in listed] == list(range(1, len(listed) + 1)) and len(listed) == 8
        one = [n for batch in store.notifications(seen[-1][1]["payload"]["watcher_object.data"]["uuid"], 0, False) for n, _ in batch]
        assert one and one == sorted(set(one)), "one plan's notifications are numbered in order too"

    def cancelled(self, store: Store, plan_uuid: str) -> int:
        """Register a PENDING plan with one action and cancel it: four notifications."""
        commands: list[Command] = [f.register(plan_uuid, "PENDING", [f.action()]), f.cancel(plan_uuid)]
        for command in commands:
            assert store.submit(command, wait=True, timeout=120).outcome == "accepted"
        return 4

    def read(self, following: Iterator[list[tuple[int, JSON]]], count: int, timeout_s: float = 60.0) -> list[tuple[int, JSON]]:
        got: list[tuple[int, JSON]] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < count:
            assert time.monotonic() < deadline, f"{len(got)} of {count} notifications"
            got.extend(next(following))
        return got
