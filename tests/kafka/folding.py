"""The tests' oracle on Kafka: every plan folded from the events topic through the fence, independently of serve."""

from __future__ import annotations

from eventstore.codec import AvroCodec
from eventstore.domain.messages import EVENT_TYPES, from_record
from eventstore.domain.plan import Plan, evolve
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import topic_pages


def folded_plans(settings: KafkaSettings, codec: AvroCodec) -> dict[str, Plan]:
    """Reads the whole topic: a test's final check, never a product path (queries read the read model)."""
    plans: dict[str, Plan] = {}
    for page in topic_pages(settings, codec):
        for stored in page:
            name, record = codec.decode(stored.body, stored.where)
            plan = evolve(plans.get(stored.plan_uuid), from_record(EVENT_TYPES[name], record))
            plans[stored.plan_uuid] = plan
    return plans
