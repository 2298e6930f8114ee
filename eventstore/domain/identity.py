"""Identifiers as the boundary accepts them: light enough for every CLI command to load."""

from __future__ import annotations

import hashlib
import re
import uuid

from eventstore.exceptions import CommandValidationError


#: A uuid already in its one spelling: most are, and parsing each one cost the handler a tenth of a command.
_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


def canonical_uuid(field: str, value: str) -> str:
    """The one spelling of a uuid (lower-case, hyphenated): what the boundary turns any spelling into."""
    if isinstance(value, str) and _CANONICAL.match(value):
        return value
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise CommandValidationError(f"{field}: {value!r} is not a UUID") from None


def name_uuid(namespace: uuid.UUID, name: str) -> str:
    """``str(uuid.uuid5(namespace, name))``, spelled out: building the UUID object was 3/4 of the time,
    and every event and notification id is one of these."""
    h = hashlib.sha1(namespace.bytes + name.encode()).hexdigest()
    # RFC 4122: version 5 in the 13th hex digit, variant 10xx in the 17th.
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"
