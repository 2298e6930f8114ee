"""Identifiers as the boundary accepts them: light enough for every CLI command to load."""

from __future__ import annotations

import uuid

from ..exceptions import CommandValidationError


def canonical_uuid(field: str, value: str) -> str:
    """The one spelling of a uuid (lower-case, hyphenated): what the boundary turns any spelling into."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise CommandValidationError(f"{field}: {value!r} is not a UUID") from None
