"""The tests' oracle on Kafka: every plan folded from the events topic as the wire contract says to read it, independently of serve."""

from __future__ import annotations

from eventstore.codec import AvroCodec
from eventstore.domain.messages import EVENT_TYPES, from_record
from eventstore.domain.plan import Plan, evolve
from eventstore.kafka.config import KafkaSettings

from tests.support.wire import WireLog


def folded_plans(settings: KafkaSettings, codec: AvroCodec | None = None) -> dict[str, Plan]:
    """Reads the whole topic through ``tests/contracts/wire.py`` (the fence and the chain from the
    contract's text, not the product's code): a test's final check, never a product path (queries
    read the read model). ``codec`` is not used: the bodies are decoded from the ``.avsc`` files."""
    plans: dict[str, Plan] = {}
    for stored, name, record in WireLog(settings.bootstrap_servers, settings.topics.events).decoded():
        plans[stored.plan_uuid] = evolve(plans.get(stored.plan_uuid), from_record(EVENT_TYPES[name], record))
    return plans
