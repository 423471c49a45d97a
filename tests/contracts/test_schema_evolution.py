"""Schema evolution: stored rows are never rewritten, so old versions must decode as the current one.

A test-local event `NoteAdded` evolves: v1 had `body`; v2 renamed it to `text` (upcaster registered);
v2 also gained `visibility` with a default (needs no upcaster). The rules are in docs/contracts.md."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import asyncpg
import msgspec
import pytest
import pytest_asyncio
from support.eventstore import migrated_pool, read_all_settled

from ticketflow.contracts.codec import EventCodec, UnknownEventType, Upcaster, default_codec
from ticketflow.contracts.envelope import NewEvent
from ticketflow.contracts.events import EVENT_TYPES
from ticketflow.contracts.ids import new_event_id, ticket_stream
from ticketflow.contracts.upcasters import UPCASTERS
from ticketflow.eventstore import EventStore

TICKET = uuid.UUID("018f0000-0000-7000-8000-0000000000aa")


class NoteAddedV1(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", tag="NoteAdded"):
    schema_version: ClassVar[int] = 1
    ticket_id: uuid.UUID
    body: str


class NoteAdded(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", tag="NoteAdded"):
    schema_version: ClassVar[int] = 2
    ticket_id: uuid.UUID
    text: str  # was `body` in v1
    visibility: str = "internal"  # new in v2, with a default


class NoteAddedV1WithAuthor(NoteAddedV1, tag="NoteAdded", frozen=True):
    """v1 plus a defaulted field: the same schema version, no upcaster."""

    author: str = "unknown"


def body_to_text(v1: dict[str, Any]) -> dict[str, Any]:
    v2 = dict(v1)
    v2["text"] = v2.pop("body")
    return v2


UPCAST_V1: dict[tuple[str, int], Upcaster] = {("NoteAdded", 1): body_to_text}
V1 = EventCodec({"NoteAdded": NoteAddedV1})
V2 = EventCodec({"NoteAdded": NoteAdded}, UPCAST_V1)
STORED_V1 = V1.encode(NoteAddedV1(TICKET, "customer called twice"))


def test_a_stored_v1_document_decodes_as_v2() -> None:
    assert V2.current_version("NoteAdded") == 2
    assert V2.decode("NoteAdded", 1, STORED_V1) == NoteAdded(TICKET, "customer called twice", "internal")


def test_a_current_document_needs_no_upcaster() -> None:
    current = NoteAdded(TICKET, "hi", "public")
    assert V2.decode("NoteAdded", 2, V2.encode(current)) == current


def test_a_document_newer_than_the_code_is_refused() -> None:
    v3 = msgspec.json.encode({"type": "NoteAdded", "ticket_id": str(TICKET), "text": "x", "channel": "mail"})
    with pytest.raises(UnknownEventType, match=r"NoteAdded v3 is newer than this code \(v2\)"):
        V2.decode("NoteAdded", 3, v3)


def test_a_missing_upcaster_is_refused() -> None:
    without_upcaster = EventCodec({"NoteAdded": NoteAdded})
    with pytest.raises(UnknownEventType, match=r"no upcaster for NoteAdded v1 -> v2"):
        without_upcaster.decode("NoteAdded", 1, STORED_V1)


def test_upcasters_chain_one_version_at_a_time() -> None:
    class NoteAddedV3(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", tag="NoteAdded"):
        schema_version: ClassVar[int] = 3
        ticket_id: uuid.UUID
        text: str
        audience: tuple[str, ...]  # v3 split `visibility` into a list of audiences

    def visibility_to_audience(v2: dict[str, Any]) -> dict[str, Any]:
        v3 = {k: v for k, v in v2.items() if k != "visibility"}
        v3["audience"] = [v2.get("visibility", "internal")]
        return v3

    v3 = EventCodec({"NoteAdded": NoteAddedV3}, {**UPCAST_V1, ("NoteAdded", 2): visibility_to_audience})
    assert v3.decode("NoteAdded", 1, STORED_V1) == NoteAddedV3(TICKET, "customer called twice", ("internal",))


def test_an_upcaster_that_produces_an_invalid_document_is_refused_with_the_path() -> None:
    broken = EventCodec({"NoteAdded": NoteAdded}, {("NoteAdded", 1): lambda doc: {**body_to_text(doc), "text": 7}})
    with pytest.raises(msgspec.ValidationError, match=r"at `\$.text`"):
        broken.decode("NoteAdded", 1, STORED_V1)


def test_adding_a_field_with_a_default_needs_no_upcaster() -> None:
    grown = EventCodec({"NoteAdded": NoteAddedV1WithAuthor})
    assert grown.decode("NoteAdded", 1, STORED_V1) == NoteAddedV1WithAuthor(TICKET, "customer called twice")


def test_the_registered_upcasters_lead_from_an_old_version_of_a_known_event() -> None:
    codec = default_codec()
    for event_type, from_version in UPCASTERS:
        assert event_type in EVENT_TYPES
        assert 1 <= from_version < codec.current_version(event_type)
    for event_type in EVENT_TYPES:  # every step from v1 to the current version has an upcaster
        missing = [v for v in range(1, codec.current_version(event_type)) if (event_type, v) not in UPCASTERS]
        assert not missing, f"{event_type}: no upcaster from v{missing}"


# --- the same through the real PostgreSQL event store -------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pool(pg_database: str) -> AsyncIterator[asyncpg.Pool]:
    p = await migrated_pool(pg_database, max_size=2)
    yield p
    await p.close()


@pytest.mark.pg
async def test_a_v1_row_in_the_event_store_reads_back_through_the_v2_codec(pool: asyncpg.Pool) -> None:
    stream = ticket_stream(TICKET)
    old_code, new_code = EventStore(pool, codec=V1), EventStore(pool, codec=V2)
    stored = NewEvent(new_event_id(), NoteAddedV1(TICKET, "customer called twice"), datetime.now(UTC))  # type: ignore[arg-type]
    await old_code.append(stream, 0, [stored])

    [read] = await new_code.read_stream(stream)
    assert read.event == NoteAdded(TICKET, "customer called twice", "internal")  # type: ignore[comparison-overlap]
    assert (read.event_id, read.stream_version, read.schema_version) == (stored.event_id, 1, 2)
    [logged] = await read_all_settled(new_code)
    assert logged.envelope.event == read.event

    row = await pool.fetchrow("SELECT schema_version, data FROM events WHERE event_id = $1", stored.event_id)
    assert row is not None
    assert row["schema_version"] == 1 and "body" in msgspec.json.decode(row["data"]), "the row was rewritten"
