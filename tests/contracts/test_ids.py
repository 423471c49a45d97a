"""Identifiers: deterministic event ids are RFC 4122 UUIDv5s of their parts, byte for byte."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from ticketflow.contracts import ids
from ticketflow.contracts.ids import deterministic_event_id, sla_stream, sla_streams

PARTS = st.lists(st.one_of(st.text(), st.integers(), st.uuids()), max_size=5)


@given(parts=PARTS)
def test_deterministic_ids_are_uuid5_of_the_joined_parts(parts: list[object]) -> None:
    expected = uuid.uuid5(ids._NAMESPACE, "|".join(str(p) for p in parts))
    made = deterministic_event_id(*parts)
    assert made == expected and made.version == 5 and made.variant == uuid.RFC_4122


def test_deterministic_ids_are_stable_across_releases() -> None:
    """Stored events carry these ids: a change of namespace or joining would duplicate every replayed firing."""
    ticket = uuid.UUID("01a1fd66-e3fd-7be4-8c67-2dffba54a480")
    assert str(deterministic_event_id(ticket, "first_response", 1795246468, "breach")) == str(
        uuid.uuid5(uuid.UUID("6b1e8f3a-6c1d-4a53-9a44-1f1c6f3f2a10"), f"{ticket}|first_response|1795246468|breach")
    )


@given(st.lists(st.uuids(), max_size=50))
def test_sla_streams_names_each_ticket_as_sla_stream_does(tickets: list[uuid.UUID]) -> None:
    assert sla_streams(tickets) == [sla_stream(t) for t in tickets]
