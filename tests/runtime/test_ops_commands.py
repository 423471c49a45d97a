"""ops.commands as the runtime reads and answers them: bad records rejected with their reason, a command
id executed and answered once per service, commands for every instance applied by every instance, and
a consumer that nothing in a record stops. The reader and the claims run on the real broker and
PostgreSQL, on this test's own topics and database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from support.dead_letters import read_dead_letters
from support.infra import KafkaTopicFactory
from support.ops import Answers, command, send

from ticketflow.contracts.ops import OpsCommandEnvelope, RebuildProjection, ReloadDeskConfig
from ticketflow.messaging.dead_letters import DeadLetterWriter, dead_letter_topic
from ticketflow.runtime.ops_commands import (
    Counts,
    OpsConsumer,
    OpsExecutor,
    OpsHandlers,
    OpsLedger,
    OpsRejected,
    decode,
)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"pause intake please", "not JSON"),
        (command("c1", {"type": "Frobnicate"}), "unknown command type 'Frobnicate': known types are PauseIntake"),
        (command("c2", {"type": "PauseIntake"}), "wrong fields: Object missing required field `desk_id`"),
        (command("c3", {"type": "PauseIntake", "desk_id": "x", "why": 1}), "wrong fields: Object contains unknown"),
        (b'{"version": 2, "command_id": "c4", "actor": "a", "command": {}}', "unsupported version 2"),
        (command("c5", {"type": "ReloadDeskConfig"}, target="billing"), "unknown target 'billing'"),
        (b"[1, 2]", "wrong fields: Expected `object`, got `array`"),
    ],
)
def test_a_record_that_is_not_a_command_is_rejected_with_a_reason_a_person_can_act_on(
    value: bytes, reason: str
) -> None:
    with pytest.raises(OpsRejected) as rejected:
        decode(value)
    assert str(rejected.value).startswith(reason)


def test_a_command_written_by_hand_decodes() -> None:
    envelope = decode(command("rebuild-1", {"type": "RebuildProjection"}, target="projector"))
    assert envelope == OpsCommandEnvelope(1, "rebuild-1", "sre:test", RebuildProjection(), target="projector")


class Instance:
    """One service instance's reader, with handlers that count what they did."""

    def __init__(
        self,
        service: str,
        name: str,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        topics: tuple[str, str],
        *,
        dead_letters: bool = False,
    ):
        self.rebuilt: list[str] = []
        self.reloaded = 0
        self.handlers = OpsHandlers(service)
        if service == "projector":
            self.handlers.on(RebuildProjection, self.rebuild)
        self.handlers.on(ReloadDeskConfig, self.reload, each_instance=True)
        writer = DeadLetterWriter(producer, service) if dead_letters else None
        self.executor = OpsExecutor(self.handlers, OpsLedger(pool, name), producer, topics[1], writer)
        self.topics = topics

    async def rebuild(self, command: RebuildProjection, envelope: OpsCommandEnvelope) -> Counts:
        if command.projection == "nope":
            raise OpsRejected("unknown projection 'nope'")
        self.rebuilt.append(envelope.command_id)
        return {"events": 7}

    async def reload(self, command: ReloadDeskConfig, envelope: OpsCommandEnvelope) -> Counts:
        self.reloaded += 1
        return {"desks": 2}

    @contextlib.asynccontextmanager
    async def running(self, bootstrap: str) -> AsyncIterator[OpsConsumer]:
        reader = OpsConsumer(self.executor, bootstrap, self.topics[0])
        stop = asyncio.Event()
        task = asyncio.create_task(reader.run(stop))
        try:
            yield reader
        finally:
            stop.set()
            await task


@pytest.fixture
async def topics(kafka_topic_factory: KafkaTopicFactory) -> tuple[str, str]:
    return await kafka_topic_factory(suffix="ops-commands"), await kafka_topic_factory(suffix="ops-events")


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await p.start()
    yield p
    await p.stop()


async def started(reader: OpsConsumer) -> None:
    """The reader has taken its position (it starts at the end of the topic for a new service)."""
    async with asyncio.timeout(30):
        await reader.ready.wait()


@pytest.mark.kafka
@pytest.mark.pg
async def test_each_command_is_answered_once_and_no_record_stops_the_reader(
    pool: asyncpg.Pool, kafka_bootstrap: str, topics: tuple[str, str], producer: AIOKafkaProducer
) -> None:
    commands, events = topics
    one, two = (Instance("projector", f"pod-{n}", pool, producer, topics) for n in (1, 2))
    other = Instance("routing", "pod-r", pool, producer, topics)
    logging.getLogger("ticketflow.test.ops").setLevel(logging.INFO)
    async with Answers(kafka_bootstrap, events) as answers, one.running(kafka_bootstrap) as r1, \
            two.running(kafka_bootstrap) as r2, other.running(kafka_bootstrap) as r3:  # fmt: skip
        for reader in (r1, r2, r3):
            await started(reader)
        await send(
            kafka_bootstrap, commands,
            b"{not json",
            command("rb-1", {"type": "RebuildProjection"}, target="projector"),
            command("rb-1", {"type": "RebuildProjection"}, target="projector"),  # sent twice: executed once
            command("typo-1", {"type": "RebuildProjections"}),
            command("rb-2", {"type": "RebuildProjection", "projection": "nope"}),
            command("reload-1", {"type": "ReloadDeskConfig"}),
            command("rb-3", {"type": "RebuildProjection"}, target="routing"),
            command("log-1", {"type": "SetLogLevel", "level": "DEBUG", "logger": "ticketflow.test.ops"}),
        )  # fmt: skip
        done = await answers.of("rb-1", "done")
        assert (done.service, done.command_type, done.counts) == ("projector", "RebuildProjection", {"events": 7})
        assert (await answers.of("rb-2", "rejected")).reason == "unknown projection 'nope'"
        typo = await answers.of("typo-1", "rejected")
        assert typo.service == "*" and typo.reason.startswith("unknown command type 'RebuildProjections'")
        bad = next(a for a in await answers.until(lambda s: any(a.command_id.endswith(":0:0") for a in s), "bad")
                   if a.command_id.endswith(":0:0"))  # fmt: skip
        assert (bad.command_id, bad.status, bad.reason[:8]) == (f"{commands}:0:0", "rejected", "not JSON")
        misdirected = await answers.of("rb-3", "rejected")
        assert misdirected.service == "routing" and "routing does not execute RebuildProjection" in misdirected.reason
        await answers.until(lambda s: sum(a.command_id == "reload-1" for a in s) == 2, "reload by both services")
        await answers.until(lambda s: sum(a.command_id == "log-1" for a in s) == 2, "log level by both services")
        seen = await answers.quiet(2.0)
    assert sorted(one.rebuilt + two.rebuilt) == ["rb-1"]  # one instance of the service executed it, once
    assert (one.reloaded, two.reloaded, other.reloaded) == (1, 1, 1)  # every instance applied it
    answered = [(a.command_id, a.service, a.status) for a in seen]
    assert answered.count(("rb-1", "projector", "accepted")) == 1 and answered.count(("rb-1", "projector", "done")) == 1
    assert (
        answered.count(("reload-1", "projector", "done")) == 1 and answered.count(("reload-1", "routing", "done")) == 1
    )
    assert len([a for a in seen if a.command_id == "typo-1"]) == 1  # rejected once, not once per service
    assert logging.getLogger("ticketflow.test.ops").level == logging.DEBUG
    assert all(a.instance in ("pod-1", "pod-2", "pod-r") for a in seen)


@pytest.mark.kafka
@pytest.mark.pg
async def test_a_restarted_reader_goes_on_after_the_last_record_its_service_saw(
    pool: asyncpg.Pool, kafka_bootstrap: str, topics: tuple[str, str], producer: AIOKafkaProducer
) -> None:
    commands, events = topics
    first = Instance("notifications", "pod-a", pool, producer, topics)
    async with Answers(kafka_bootstrap, events) as answers:
        async with first.running(kafka_bootstrap) as reader:
            await started(reader)
            await send(kafka_bootstrap, commands, command("n-1", {"type": "ReloadDeskConfig"}))
            await answers.of("n-1", "done")
        await send(kafka_bootstrap, commands, command("n-2", {"type": "ReloadDeskConfig"}))  # while none runs
        again = Instance("notifications", "pod-b", pool, producer, topics)
        async with again.running(kafka_bootstrap):
            assert (await answers.of("n-2", "done")).instance == "pod-b"
            await answers.quiet(1.0)
    assert (first.reloaded, again.reloaded) == (1, 1)  # n-1 was not read again, n-2 was not missed


@pytest.mark.kafka
@pytest.mark.pg
async def test_a_record_that_is_not_a_command_is_dead_lettered_once_with_its_reason_and_the_reader_goes_on(
    pool: asyncpg.Pool, kafka_bootstrap: str, kafka_topic_factory: KafkaTopicFactory, producer: AIOKafkaProducer
) -> None:
    """Issue 21 item 3 on ops.commands: bad records in `ops.commands.dlq` with their reason, once however
    many services read them (the first to claim it writes it), and the good command after them executed."""
    commands = await kafka_topic_factory(suffix="ops-commands")
    events = await kafka_topic_factory(suffix="ops-events")
    await kafka_topic_factory(name=dead_letter_topic(commands))
    topics = (commands, events)
    # Services no other test of this module's database reads as (positions are kept per service).
    preflight = Instance("preflight", "pod-p", pool, producer, topics, dead_letters=True)
    sla = Instance("sla", "pod-s", pool, producer, topics, dead_letters=True)
    async with Answers(kafka_bootstrap, events) as answers, preflight.running(kafka_bootstrap) as r1, \
            sla.running(kafka_bootstrap) as r2:  # fmt: skip
        for reader in (r1, r2):
            await started(reader)
        await send(
            kafka_bootstrap, commands,
            b"{not json",
            b"",
            command("typo-9", {"type": "RebuildProjections"}),
            command("far-9", {"type": "ReloadDeskConfig"}, target="billing"),
            command("reload-9", {"type": "ReloadDeskConfig"}),
        )  # fmt: skip
        await answers.until(lambda s: sum(a.command_id == "reload-9" for a in s) == 2, "reload by both services")
        letters = await read_dead_letters(kafka_bootstrap, dead_letter_topic(commands), count=4)
        await answers.quiet(2.0)
        with pytest.raises(TimeoutError):  # once, not once per service
            await read_dead_letters(kafka_bootstrap, dead_letter_topic(commands), count=5, timeout_s=3)
    found = sorted((d.original_offset, d.reason, d.detail.split(":")[0]) for d in letters)
    assert found == [
        (0, "undecodable", "not JSON"),
        (1, "undecodable", "not JSON"),
        (2, "undecodable", "unknown command type 'RebuildProjections'"),
        (3, "rejected", "unknown target 'billing'"),
    ]
    assert all(d.original_topic == commands and d.consumer in ("preflight", "sla") for d in letters)
    assert {d.context.get("command-id") for d in letters} >= {"typo-9", "far-9"}
    assert (preflight.reloaded, sla.reloaded) == (1, 1)  # the good command after them, by every instance
