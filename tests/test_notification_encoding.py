"""The translator's shortcuts produce the bytes of the plain spelling they replace."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventstore.kafka.records import iso_micros, iso_of_oslo_timestamp, oslo_envelope, parse_iso_micros
from projections.translator import _MESSAGE_IDS, message_id_for, notification_timestamp


@given(st.text())
def test_message_ids_are_uuid5(event_id: str) -> None:
    assert message_id_for(event_id) == str(uuid.uuid5(_MESSAGE_IDS, event_id))


# Up to 2200: from about 2242 on, the old round trip through a float timestamp lost the microseconds
# (31_675_287_599_999_999 came back a second late); the text is exact at any date.
@given(st.integers(min_value=0, max_value=7_258_118_399_999_999))
def test_ce_time_from_the_envelope_text_is_the_instant_it_names(us: int) -> None:
    text = notification_timestamp(us)
    assert iso_of_oslo_timestamp(text) == iso_micros(parse_iso_micros(text.replace(" ", "T") + "Z"))


@pytest.mark.parametrize("notification", [
    {}, {"a": 1}, {"é": "ü\u2028\"\\", "x": [1, {"y": None}]}, {"_context": {"x": 1}, "b": 2}, {"b": 2, "_context": None},
])
def test_oslo_envelope_is_oslo_messagings_double_encoding(notification: dict[str, Any]) -> None:
    expected = json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps({**notification, "_context": {}})}).encode()
    assert oslo_envelope(notification) == expected
