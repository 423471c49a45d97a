"""The topic registry: unique names, a dead-letter topic for everything consumers read, bytes keys."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticketflow.contracts.ids import agent_stream, notification_stream, sla_stream, ticket_stream
from ticketflow.contracts.topics import (
    AGENT_EVENTS,
    CHAT_INBOUND,
    CHAT_REPLIES,
    OPS_COMMANDS,
    OPS_EVENTS,
    TICKET_COMMANDS,
    TICKET_EVENTS,
    key_for_stream,
    topic_for_stream,
)
from ticketflow.messaging.topics import TOPICS, TOPICS_BY_NAME, TopicSpec

# Topics that services consume (a poison record must have somewhere to go); ops.commands without a group.
CONSUMED = {TICKET_EVENTS, AGENT_EVENTS, CHAT_INBOUND, CHAT_REPLIES, TICKET_COMMANDS, OPS_COMMANDS}
DEAD_LETTERS = {t.dead_letter for t in TOPICS if t.dead_letter}


def test_topic_names_are_unique() -> None:
    names = [t.name for t in TOPICS]
    assert len(names) == len(set(names)) == len(TOPICS_BY_NAME)


def test_every_consumed_topic_has_a_declared_dead_letter_topic() -> None:
    for name in CONSUMED:
        dead_letter = TOPICS_BY_NAME[name].dead_letter
        assert dead_letter is not None, f"{name} has no dead-letter topic"
        assert dead_letter in TOPICS_BY_NAME, f"{name}: dead-letter topic {dead_letter} is not declared"


def test_every_live_delete_topic_is_consumed_and_has_a_dead_letter() -> None:
    """A new delete-policy topic is a new consumer input: it gets a dead-letter topic from day one
    (ops.commands too: a record there that is not a command is also answered on ops.events). ops.events
    excepted: people read it, no service consumes it."""
    live = {t.name for t in TOPICS if t.name not in DEAD_LETTERS and t.cleanup_policy == "delete"}
    assert live == CONSUMED | {OPS_EVENTS}
    assert all(TOPICS_BY_NAME[name].dead_letter for name in CONSUMED)
    assert not TOPICS_BY_NAME[OPS_EVENTS].dead_letter


def test_dead_letter_topics_have_no_dead_letter_topic_and_keep_longer() -> None:
    for name in DEAD_LETTERS:
        assert name is not None
        spec = TOPICS_BY_NAME[name]
        assert spec.dead_letter is None and spec.cleanup_policy == "delete"
        source = next(t for t in TOPICS if t.dead_letter == name)
        assert spec.retention_ms >= source.retention_ms


@pytest.mark.parametrize("spec", TOPICS, ids=lambda t: t.name)
def test_topic_specs_are_sane(spec: TopicSpec) -> None:
    assert spec.partitions >= 1 and spec.retention_ms > 0 and spec.description
    assert spec.config() == {"retention.ms": str(spec.retention_ms), "cleanup.policy": spec.cleanup_policy}


@given(ticket=st.uuids())
def test_every_ticket_keyed_stream_goes_to_ticket_events_keyed_by_the_ticket_id(ticket: uuid.UUID) -> None:
    for stream in (ticket_stream(ticket), sla_stream(ticket), notification_stream(ticket)):
        key = key_for_stream(stream)
        assert isinstance(key, bytes)  # aiokafka raises TypeError on a str key
        assert key == str(ticket).encode()
        assert topic_for_stream(stream) == TICKET_EVENTS  # one topic, one key: per-ticket order holds


@given(agent=st.text(alphabet="abcxyz-_.@0123456789", min_size=1, max_size=20))
def test_agent_streams_go_to_agent_events_keyed_by_the_agent_id(agent: str) -> None:
    stream = agent_stream(agent)
    assert key_for_stream(stream) == agent.encode()  # only the stream prefix is cut, dashes survive
    assert topic_for_stream(stream) == AGENT_EVENTS
