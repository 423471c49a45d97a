"""The NUL rule for inbound chat messages (ticketflow.contracts.text): free text keeps everything but NUL,
which becomes U+FFFD; an identifier with a NUL is refused, naming the field."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticketflow.contracts.chat import ChatMessage, ChatSender
from ticketflow.contracts.text import (
    NUL,
    REPLACEMENT,
    MalformedIdentifier,
    has_escaped_nul,
    normalise_chat_message,
    without_nul,
)
from ticketflow.contracts.values import Attachment

# Any text a JSON document can carry (no lone surrogates), weighted towards NUL, other C0/C1 controls,
# backslashes and the literal "\u0000" text, which must not be mistaken for a NUL.
_tricky = st.sampled_from([NUL, "\x01", "\x1f", "\x7f", "\x9f", "\\", "\\u0000", "u0000", '"', REPLACEMENT, "\n"])
texts = st.lists(st.text(st.characters(exclude_categories=["Cs"]), max_size=8) | _tricky, max_size=8).map("".join)
identifiers = st.text(st.characters(exclude_categories=["Cs"], exclude_characters=NUL), min_size=1, max_size=12)


def message(text: str, display: str = "", file: str = "f", email: str | None = None) -> ChatMessage:
    return ChatMessage(
        platform="generic",
        tenant_id="t",
        conversation_id="c",
        message_id="m",
        sender=ChatSender("u", display, locale="en", email=email),
        text=text,
        received_at=datetime(2026, 11, 21, 10, 0, tzinfo=UTC),
        attachments=(Attachment(file, url="https://x/" + file),),
        portal_url=None,
    )


@given(text=texts, display=texts, file=texts, email=st.none() | texts, ids=st.tuples(identifiers, identifiers))
def test_no_nul_survives_and_everything_else_is_unchanged(
    text: str, display: str, file: str, email: str | None, ids: tuple[str, str]
) -> None:
    before = msgspec.structs.replace(message(text, display, file, email), conversation_id=ids[0], message_id=ids[1])
    after = normalise_chat_message(before)
    assert NUL not in msgspec.json.encode(after).decode("utf-8")  # nowhere, nested fields included
    assert not has_escaped_nul(msgspec.json.encode(after))
    expected = msgspec.structs.replace(
        before,
        text=without_nul(text),
        sender=msgspec.structs.replace(
            before.sender, display_name=without_nul(display), email=None if email is None else without_nul(email)
        ),
        attachments=(Attachment(without_nul(file), url="https://x/" + without_nul(file)),),
    )
    assert after == expected
    assert len(after.text) == len(text)  # one U+FFFD per NUL: nothing dropped, nothing merged
    if NUL not in text + display + file + (email or ""):
        assert after is before  # the common case costs no copy


@given(text=texts)
def test_without_nul_replaces_exactly_the_nul_characters(text: str) -> None:
    cleaned = without_nul(text)
    assert NUL not in cleaned
    assert [c for c in cleaned] == [REPLACEMENT if c == NUL else c for c in text]


@given(text=texts)
def test_has_escaped_nul_tells_a_nul_from_the_literal_text(text: str) -> None:
    assert has_escaped_nul(msgspec.json.encode({"k": text})) == (NUL in text)


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("tenant_id", {"tenant_id": f"t{NUL}"}),
        ("conversation_id", {"conversation_id": f"c{NUL}1"}),
        ("message_id", {"message_id": NUL}),
        ("delivery_id", {"delivery_id": f"d{NUL}"}),
        ("sender.user_id", {"sender": ChatSender(f"u{NUL}")}),
    ],
)
def test_an_identifier_with_nul_is_refused_naming_the_field(field: str, change: dict[str, object]) -> None:
    bad = msgspec.structs.replace(message(f"text{NUL}"), **change)
    with pytest.raises(MalformedIdentifier, match="NUL") as refused:
        normalise_chat_message(bad)
    assert refused.value.field == field
    assert field in str(refused.value)
