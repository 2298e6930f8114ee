"""Plugin: ``codec``, one AvroCodec for the session."""

from __future__ import annotations

import pytest

from eventstore.codec import AvroCodec


@pytest.fixture(scope="session")
def codec() -> AvroCodec:
    """Parsing the schemas once is enough: a codec only grows by ``learn``, which tests do on their own."""
    return AvroCodec()
