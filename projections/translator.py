"""Events in, Watcher versioned notifications out; builds envelopes and publishes nothing.

One notification per cancellation event, so a notification's ``message_id`` is derived from
the event's id alone: translating the same events again yields byte-identical messages, which
is how a downstream consumer recognises a re-send.
"""

from __future__ import annotations

import functools
import json
import socket
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol

from eventstore.codec import AvroCodec
from eventstore.config import Settings
from eventstore.domain.identity import name_uuid
from eventstore.domain.messages import (
    EVENT_TYPES, ActionCancellationFailed, ActionCancellationStarted, ActionCancelled, ActionPlanCancellationFailed,
    ActionPlanCancellationStarted, ActionPlanCancelled, Event, from_record,
)
from eventstore.domain.plan import Plan, UnexpectedEventError, evolve
from eventstore.exceptions import ConfigurationError, WatcherEsError
from eventstore.frozen import quick_init
from eventstore.handler import load_plan
from eventstore.log import LogReader, StoredEvent

from projections.exceptions import UnusableEventError
from projections.payloads import DEFAULT_PAYLOAD_SET, PayloadSet, Shown, payload_set
from projections.tracking import PoisonHandler, decode_batch

Priority = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_MESSAGE_IDS = uuid.UUID("0e5b1c7a-3a8e-4f0c-9d4e-2b7c6a1f9e55")

# event type -> (event_type, priority, the state its payload shows)
KINDS: Final[dict[type[Any], tuple[str, Priority, str]]] = {
    ActionPlanCancellationStarted: ("action_plan.cancel.start", "INFO", "CANCELLING"),
    ActionPlanCancelled: ("action_plan.cancel.end", "INFO", "CANCELLED"),
    ActionPlanCancellationFailed: ("action_plan.cancel.error", "ERROR", "CANCELLING"),
    ActionCancellationStarted: ("action.cancel.start", "INFO", "CANCELLING"),
    ActionCancelled: ("action.cancel.end", "INFO", "CANCELLED"),
    ActionCancellationFailed: ("action.cancel.error", "ERROR", "FAILED"),
}


def message_id_for(event_id: str) -> str:
    return name_uuid(_MESSAGE_IDS, event_id)


@functools.lru_cache(maxsize=1024)
def notification_timestamp(us: int) -> str:
    """The envelope's timestamp: ``YYYY-MM-DD HH:MM:SS.ffffff`` UTC, as oslo.messaging writes it.

    Cached: the events of one command share their time, so a cancel's notifications ask for the same one."""
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000).strftime("%Y-%m-%d %H:%M:%S.%f")


def parse_level(level: str) -> str:
    """Watcher's ``notification_level``: '' disables notifications; otherwise a priority."""
    normal = level.strip().upper()
    if normal and normal not in LEVELS:
        raise ConfigurationError(f"notification_level: {level!r} is not one of '', {', '.join(l.lower() for l in LEVELS)}")
    return normal


@quick_init
@dataclass(frozen=True)
class Notification:
    """One envelope and where it came from (for ordering and audit, not part of the envelope)."""

    message_id: str
    event_type: str
    priority: Priority
    plan_uuid: str
    plan_seq: int
    position: int
    event_id: str
    envelope: dict[str, Any]
    #: The payload set it was built with (``payloads.PAYLOAD_SETS``): re-emission builds it again so.
    payload_set: str = DEFAULT_PAYLOAD_SET

    def to_json(self) -> str:
        return json.dumps(self.envelope, sort_keys=False, separators=(", ", ": "))


class NotificationSink(Protocol):
    """The third port (ARCHITECTURE.md): where the translator's notifications go (sent again, one has the same message id and bytes)."""

    def send(self, notes: Sequence[Notification]) -> None: ...


def build_notification(
    plan: Plan, event: Event, *, publisher_id: str, message_id: str, position: int = 0, plan_seq: int = 0,
    payloads: PayloadSet | None = None,
) -> Notification | None:
    """The notification an event causes, given the plan as that event left it; None if none."""
    payloads = payloads or payload_set(DEFAULT_PAYLOAD_SET)
    kind = KINDS.get(type(event))
    if kind is None:
        return None
    event_type, priority, state = kind
    fault = event.fault if isinstance(event, (ActionPlanCancellationFailed, ActionCancellationFailed)) else None
    if isinstance(event, ActionCancellationFailed):
        state = event.state  # FAILED, or SUCCEEDED where a mirrored Watcher let the action finish
    if isinstance(event, (ActionCancellationStarted, ActionCancelled, ActionCancellationFailed)):
        action = plan.action(event.action_uuid)
        if action is None:
            return None
        payload = payloads.declaration("ActionCancelPayload").build(Shown(action, plan, state, fault), payloads)
    else:  # one of the plan's three
        payload = payloads.declaration("ActionPlanCancelPayload").build(Shown(plan, plan, state, fault), payloads)
    envelope = {
        "event_type": event_type,
        "priority": priority,
        "publisher_id": publisher_id,
        "message_id": message_id,
        "timestamp": notification_timestamp(event.occurred_at),
        "payload": payload,
    }
    return Notification(message_id, event_type, priority, plan.uuid, plan_seq, position, event.event_id, envelope, payloads.name)


#: A plan's state by uuid, from wherever a part keeps them (None: not known).
PlanLoader = Callable[[str], Plan | None]

#: Given a batch's event ids, the payload set each one's notification was first emitted with.
RecordedPayloads = Callable[[Sequence[str]], Mapping[str, str]]


class Translator:
    """Turns batches of stored events into notifications, keeping each plan's state as it goes.

    The plan states are a bounded cache; a plan not in it is folded from the log up to the
    event at hand, or, once ``load_plans_from`` has given it a loader (a Kafka part's state
    store), read from there, so the translator can start at any position. Notifications are built with
    ``payloads``; a re-emission passes ``recorded`` so that each one is built with the payload set
    it was first emitted with, and only notifications never emitted take ``payloads``.
    """

    def __init__(
        self, codec: AvroCodec, log: LogReader | None, publisher_id: str, level: str = "INFO",
        cache_size: int | None = 10_000,
        payloads: PayloadSet | None = None, recorded: RecordedPayloads | None = None,
    ) -> None:
        self.payloads = payloads or payload_set(DEFAULT_PAYLOAD_SET)
        self._recorded = recorded
        self._codec = codec
        self._log = log
        self.publisher_id = publisher_id
        self.set_level(level)
        self._plans: OrderedDict[str, Plan] = OrderedDict()
        self._cache_size = cache_size
        self._load: PlanLoader | None = None
        #: With a loader: the plans changed since ``changed_plans`` was last called (the part stores them).
        self._changed: dict[str, Plan] = {}

    def load_plans_from(self, loader: PlanLoader, cache_size: int) -> None:
        """Read a plan missing from the cache with ``loader`` (its state as the events before the one at
        hand left it), not from the log, and keep at most ``cache_size`` plans in memory."""
        self._load = loader
        self._cache_size = cache_size if self._cache_size is None else min(self._cache_size, cache_size)

    def changed_plans(self) -> list[Plan]:
        """With a loader: each plan's state as the batches translated since the last call left it."""
        changed, self._changed = list(self._changed.values()), {}
        return changed

    def forget(self) -> None:
        """Drop every cached plan state and change (what was folded is being read again)."""
        self._plans.clear()
        self._changed.clear()

    def set_level(self, level: str) -> None:
        """Watcher's ``notification_level``: '' sends none; otherwise the lowest priority sent."""
        self.level = parse_level(level)
        self._min = LEVELS.index(self.level) if self.level else None  # None: notifications disabled

    def translate(self, batch: Sequence[StoredEvent], emit: bool = True, on_poison: PoisonHandler | None = None) -> list[Notification]:
        """The notifications a batch causes; ``emit=False`` only folds (warming up after a restart)."""
        out: list[Notification] = []
        recorded = self._recorded([e.event_id for e in batch]) if self._recorded is not None and emit else {}
        for stored, name, record in decode_batch(self._codec, batch, on_poison):
            event = from_record(EVENT_TYPES[name], record)
            try:
                plan = evolve(self._plan_before(stored), event)
            except (UnexpectedEventError, WatcherEsError) as exc:  # its plan's history is broken before it
                if on_poison is None:
                    raise
                on_poison(stored, UnusableEventError(f"{stored.where}: {name} cannot be applied to its plan: {exc}"))
                continue
            self._remember(plan)
            if self._min is None or not emit or type(event) not in KINDS:  # no message id for what causes none
                continue
            note = build_notification(
                plan, event, publisher_id=self.publisher_id, message_id=message_id_for(stored.event_id),
                position=stored.position, plan_seq=stored.version,
                payloads=payload_set(recorded[stored.event_id]) if stored.event_id in recorded else self.payloads,
            )
            if note is not None and LEVELS.index(note.priority) >= self._min:
                out.append(note)
        return out

    def _plan_before(self, stored: StoredEvent) -> Plan | None:
        plan = self._plans.get(stored.plan_uuid)
        if plan is not None and plan.version == stored.version - 1:
            return plan
        if stored.version == 1:
            return None
        if self._load is not None:  # changed since the part last stored its plans (evicted meanwhile), else stored
            loaded = self._changed.get(stored.plan_uuid) or self._load(stored.plan_uuid)
            if loaded is not None and loaded.version == stored.version - 1:
                return loaded
            raise UnexpectedEventError(f"{stored.where}: plan {stored.plan_uuid} event {stored.version} does not follow its stored state")
        if self._log is None:
            raise UnexpectedEventError(f"{stored.where}: plan {stored.plan_uuid} event {stored.version} arrived without its predecessors")
        return load_plan(self._codec, self._log.read_plan(stored.plan_uuid, until_position=stored.position - 1))

    def _remember(self, plan: Plan) -> None:
        if self._load is not None:
            self._changed[plan.uuid] = plan
        self._plans[plan.uuid] = plan
        self._plans.move_to_end(plan.uuid)
        while self._cache_size is not None and len(self._plans) > self._cache_size:
            self._plans.popitem(last=False)


def translator_for(
    settings: Settings, codec: AvroCodec, log: LogReader | None, *, cache_size: int | None = 10_000,
    recorded: RecordedPayloads | None = None,
) -> Translator:
    """The one place a translator is built from the settings: publisher id, level, payload set.

    With ``recorded`` (a re-emission) and no payload version given, each notification keeps the
    payload set it was first emitted with; a version given explicitly wins over the record.
    """
    explicit = settings.payload_version is not None
    return Translator(
        codec, log, settings.publisher_id or f"infra-optim:{socket.gethostname()}",
        settings.notification_level if settings.notification_level is not None else "INFO",
        cache_size=cache_size, payloads=payload_set(settings.payload_version or DEFAULT_PAYLOAD_SET),
        recorded=None if explicit else recorded,
    )
