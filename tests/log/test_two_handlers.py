"""Two `serve` processes share the consumer groups; one is paused holding decided appends.

What it proves: a handler that wakes up deposed cannot fork a plan's history, and neither
process falls over. Serve A stops itself (SIGSTOP, the test-only fault point
``stop-before-append``) the moment it is about to append commands it has already decided. The
group hands A's partitions to serve B, which decides those same commands again on the state in
the topic and appends them. When A is continued it goes on with its batch: either it sees, on
reading the log, that B handled those commands already (and appends nothing), or its appends
land at plan versions B has moved past, where every reader skips them and A parks them in the
dead-letter topic as ``fence`` conflicts naming its own writer. Either way, afterwards every plan
has exactly the seven events one handling of its four commands makes, every notification
``message_id`` was delivered with one content only, both processes were still running, and a
read model built from scratch by a third process verifies against the log and equals a replay.

Why it matters: a paused process (a long GC, a VM freeze, SIGSTOP) that wakes up after its
group moved on is the classic way to fork an event stream; a consumer group only promises that
*eventually* one member owns a partition, not that a deposed one stops writing.

How it is made deterministic: B starts first; A joins and handles exactly one warm-up command
(its first batch, found by the writer id on its append), so ``stop-before-append@3`` pauses it
on its third batch, early in the stream, and every first-wave command gets its outcome from B
while A is still stopped. Whether A's held appends then reach the topic depends on how far its
own read of the log has got when it wakes, so the number of conflicts is reported, not required.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eventstore.codec import AvroCodec
from eventstore.config import StorePaths
from eventstore.domain.messages import Command
from eventstore.exceptions import StaleAppendError
from eventstore.kafka.admin import dead_letters
from eventstore.kafka.appends import Append, append_of
from eventstore.kafka.client import KafkaClient
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import TopicFollower, topic_pages
from eventstore.kafka.records import header_map
from projections.read_model import ReadModel

from tests import factories as f
from tests.support.folding import folded_plans
from tests.support.outcomes import send_steadily, wait_outcomes
from tests.support.serve import Serve, cli_env, wait_verified
from tests.support.waiting import wait_until

PLANS = 150
#: A's first batch is a warm-up; the third is the one it is paused in, early in the stream.
FAULT_AT = 3


def process_state(pid: int) -> str:
    """The state letter of /proc/<pid>/stat ('T': stopped by a signal); '' once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return ""
    return stat.rpartition(")")[2].split()[0]  # the command name may hold spaces; the state follows it


def pid_of(server: Serve) -> int:
    assert server.proc is not None, "not started"
    return server.proc.pid


def logs(*servers: Serve) -> Callable[[], str]:
    return lambda: "\n".join(s.log()[-3000:] for s in servers)


def writer_of(events: TopicFollower, writers: dict[str, list[str]], command_id: str, timeout: float) -> list[str]:
    """Who appended for this command (read from the events topic), waiting until it is there."""

    def appended() -> list[str] | None:
        for msg in events.poll(0.2):
            append = append_of(AvroCodec(), msg)
            writers.setdefault(append.command_id, []).append(append.writer)
        return writers.get(command_id)

    return wait_until(appended, timeout, f"an append of {command_id} on the events topic", interval=0)


def is_writer_of(writer: str, pid: int) -> bool:
    """Writer ids are ``host:pid:random``."""
    return writer.split(":")[-2] == str(pid)


def test_a_paused_handler_wakes_up_deposed_and_its_stale_batch_is_fenced(kafka: KafkaSettings, tmp_path: Path) -> None:
    started = time.monotonic()
    client = KafkaClient(kafka, AvroCodec())
    watcher = client.follow_outcomes(time.time_ns() // 1_000_000 - 5000)
    events = TopicFollower(kafka, kafka.topics.events)
    writers: dict[str, list[str]] = {}
    b = Serve(cli_env(kafka, tmp_path / "b.db"), tmp_path / "b.log")
    a = Serve({**cli_env(kafka, tmp_path / "a.db"), "WATCHER_ES_TEST_FAULT": f"stop-before-append@{FAULT_AT}"}, tmp_path / "a.log")
    replayer_prefix = f"{kafka.group_prefix}-replay"
    replayer_env = {**cli_env(kafka, tmp_path / "replay.db"), "WATCHER_ES_GROUP_PREFIX": replayer_prefix}
    replayer = Serve(replayer_env, tmp_path / "replay.log", args=("--only", "projections"))
    sender: threading.Thread | None = None
    try:
        # B alone first, then A: the groups never see two members joining at the same moment.
        b.start()
        warm_ups = [f.register()]
        client.send(warm_ups[0])
        client.wait_outcome(warm_ups[0].command_id, watcher, 120)
        a.start()
        a_pid, b_pid = pid_of(a), pid_of(b)
        # Warm up one command at a time until A has handled one: A has joined, owns partitions, and
        # its fault counter stands at exactly 1 (each warm-up is a batch of its own).
        def handled_by_a() -> bool:
            assert a.proc is not None and a.proc.poll() is None, a.log()
            warm_up = f.register()
            warm_ups.append(warm_up)
            client.send(warm_up)
            client.wait_outcome(warm_up.command_id, watcher, 120)
            (writer,) = writer_of(events, writers, warm_up.command_id, 30)
            assert is_writer_of(writer, a_pid) or is_writer_of(writer, b_pid), writer
            return is_writer_of(writer, a_pid)

        wait_until(handled_by_a, 90, lambda: "serve A to get a partition of the commands topic\n" + a.log()[-3000:], interval=0)

        plans = [(str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())) for _ in range(PLANS)]
        failing = {p for i, (p, _, _) in enumerate(plans) if i % 10 == 0}  # every tenth abort fails
        first_wave: list[Command] = []
        for plan, ongoing, pending in plans:
            first_wave.append(f.register(plan, "ONGOING", [f.action(ongoing, "ONGOING"), f.action(pending, "PENDING")]))
            first_wave.append(f.cancel(plan, by="operator-1", reason="two handlers"))

        sender = threading.Thread(target=send_steadily, args=(client, first_wave, 0.03))
        sender.start()
        # A pauses itself holding a decided batch while the stream goes on.

        def paused() -> bool:
            assert a.proc is not None and a.proc.poll() is None, "serve A exited instead of pausing\n" + a.log()[-3000:]
            return process_state(a_pid) == "T"

        wait_until(paused, 120, lambda: "serve A to reach its fault point\n" + a.log()[-3000:])
        stopped_after = time.monotonic() - started
        mid_stream = sender.is_alive()
        sender.join()
        sender = None

        # B takes A's partitions over once A's session times out, and handles everything A held.
        seen: set[str] = set()
        wait_outcomes(watcher, (c.command_id for c in first_wave), seen, 180, "first wave, A paused", logs(b))
        assert process_state(a_pid) == "T", "serve A was continued by something else"
        assert b.proc is not None and b.proc.poll() is None, b.log()[-3000:]
        os.kill(a_pid, signal.SIGCONT)  # A wakes up deposed and produces the batch it decided

        aborts = [f.abort_failed(plan, ongoing) if plan in failing else f.abort_ok(plan, ongoing) for plan, ongoing, _ in plans]
        send_steadily(client, aborts, 0.01)
        wait_outcomes(watcher, (c.command_id for c in aborts), seen, 180, "aborts, A continued", logs(a, b))

        # A's stale appends lost, were parked by A naming itself, and are skipped by every reader.
        conflicts: list[tuple[Append, StaleAppendError]] = []
        stored = [
            e for page in topic_pages(kafka, AvroCodec(), on_conflict=lambda append, error: conflicts.append((append, error)))
            for e in page
        ]
        assert len(stored) == PLANS * 7 + len(warm_ups)
        conflict_places = {(c.source, c.offset) for c, _ in conflicts}
        print(
            f"\nA ({a_pid}) paused {stopped_after:.1f} s in ({'mid-stream' if mid_stream else 'after the stream'}); "
            f"{len(conflicts)} conflicting append(s): "
            + "; ".join(f"{c.where} {c.command_type} {c.command_id} by {c.writer} at v{c.expected_version}" for c, _ in conflicts)
        )
        assert all(is_writer_of(c.writer, a_pid) for c, _ in conflicts), [c.writer for c, _ in conflicts]
        assert all(c.command_id in seen for c, _ in conflicts)  # every lost command was still handled
        fence_letters: list[dict[str, Any]] = []
        parked: set[tuple[str, int]] = set()

        def all_parked() -> bool:
            fence_letters[:] = [d for d in dead_letters(kafka) if d["stage"] == "fence"]
            parked.clear()
            parked.update((f"{d['topic']}/{d['partition']}", int(d["offset"])) for d in fence_letters)
            return parked >= conflict_places

        wait_until(all_parked, 60, lambda: f"every conflicting append parked: {sorted(parked)} of {sorted(conflict_places)}", interval=0.5)
        assert parked == conflict_places, (parked, conflict_places)
        for letter in fence_letters:
            assert str(letter["error"]).endswith("StaleAppendError"), letter
            assert f":{a_pid}:" in str(letter["message"]), letter
        print(f"{len(fence_letters)} fence dead letter(s), all naming A's writer")

        # Every plan reached its final state with exactly the events one handling makes.
        final = folded_plans(kafka, AvroCodec())
        for plan, ongoing, pending in plans:
            failed = plan in failing
            assert final[plan].state == ("FAILED" if failed else "CANCELLED"), plan
            assert final[plan].version == 7, plan  # registered, 4 from the cancel, 2 from the abort
            states = {x.uuid: x.state for x in final[plan].actions}
            assert states == {ongoing: "FAILED" if failed else "CANCELLED", pending: "CANCELLED"}, plan

        # No message_id was ever delivered with two different contents, and none is missing.
        contents: dict[str, set[bytes]] = defaultdict(set)
        followers = [TopicFollower(kafka, kafka.topics.notification_topic(p)) for p in ("INFO", "ERROR")]

        def delivered() -> int:
            for follower in followers:
                for msg in follower.poll(0.2):
                    contents[header_map(msg.headers())["ce_id"]].add(msg.value() or b"")
            return len(contents)

        wait_until(lambda: delivered() >= PLANS * 6, 90, lambda: f"every notification delivered ({len(contents)} so far)", interval=0)
        for follower in followers:  # and whatever else is there up to the end
            for msg in follower.drain():
                contents[header_map(msg.headers())["ce_id"]].add(msg.value() or b"")
            follower.close()
        twice = {k: len(v) for k, v in contents.items() if len(v) != 1}
        assert not twice, f"message_ids delivered with different contents: {twice}"
        assert len(contents) == PLANS * 6, f"{len(contents)} distinct notifications"

        # Neither process crashed: both were running right up to their stop.
        for name, server in (("A", a), ("B", b)):
            assert server.proc is not None and server.proc.poll() is None, f"serve {name} exited\n" + server.log()[-3000:]
        a.stop()
        b.stop()
        for name, server in (("A", a), ("B", b)):
            assert "Traceback" not in server.log(), f"serve {name}:\n" + server.log()[-5000:]

        # A read model built from scratch by a third process verifies against the log, and equals a replay.
        replayer.start()
        report = wait_verified(replayer_env, PLANS + len(warm_ups), 120)
        assert report["verified"] is True and report["events"] == len(stored)
        fresh = ReadModel(":memory:", AvroCodec())
        fresh.process(sorted(stored, key=lambda e: (e.source, e.position, e.version)))
        live = ReadModel(StorePaths.beside(tmp_path / "replay.db").model, AvroCodec())
        try:
            assert live.tables() == fresh.tables()
        finally:
            live.close()
            fresh.close()
        assert replayer.proc is not None and replayer.proc.poll() is None, replayer.log()[-3000:]
        replayer.stop()
        assert "Traceback" not in replayer.log(), replayer.log()[-5000:]
        print(f"done in {time.monotonic() - started:.0f} s")
    finally:
        if sender is not None:
            sender.join()
        for server in (a, b, replayer):
            if server.proc is not None and server.proc.poll() is None:
                os.kill(server.proc.pid, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            server.stop()
        events.close()
        watcher.close()
        client.close()
