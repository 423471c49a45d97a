"""Cursors (pure): where a page ended, as the sort key of its last item, so the next page continues after
that item whatever arrived meanwhile (keyset pagination: no offsets, so new tickets never shift a page).

A cursor is opaque to clients: base64url of [version, fingerprint, key...]. The fingerprint is a hash of
the filters and sort it was issued for; a cursor sent with other filters, or one this API never issued,
is a `BadRequest`."""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from ticketflow.queries.domain.params import BadRequest

_VERSION = 1
_encoder = msgspec.json.Encoder()


def fingerprint(*parts: object) -> str:
    """A short hash of what a cursor belongs to (route, filters, sort)."""
    return hashlib.sha256(_encoder.encode([repr(p) for p in parts])).hexdigest()[:16]


def encode(print_: str, key: Sequence[Any]) -> str:
    raw = _encoder.encode([_VERSION, print_, *key])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, print_: str, kinds: Sequence[type]) -> tuple[Any, ...]:
    """The key of a cursor issued for `print_`, each part converted to its kind (datetime, int, str, UUID)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = msgspec.json.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise BadRequest("not a cursor this API issued", "cursor") from None
    if not isinstance(parts, list) or len(parts) != 2 + len(kinds) or parts[0] != _VERSION:
        raise BadRequest("not a cursor this API issued", "cursor")
    if parts[1] != print_:
        raise BadRequest("the cursor belongs to other filters or another sort: start again without it", "cursor")
    try:
        return tuple(msgspec.convert(value, kind) for value, kind in zip(parts[2:], kinds, strict=True))
    except msgspec.ValidationError:
        raise BadRequest("not a cursor this API issued", "cursor") from None


CURSOR_KINDS = {"datetime": datetime, "int": int, "str": str, "uuid": uuid.UUID}
